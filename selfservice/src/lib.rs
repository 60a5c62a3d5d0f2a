//! `apppw-web`: a self-service page where users create, see and delete their own app
//! passwords. Meant to run on a loopback address behind the site's reverse proxy (which does
//! TLS and, in header mode, the multi-factor sign-in).
//!
//! - [`webconfig`], the `web.toml` file;
//! - [`app`], routes, sign-in, the pages' logic;
//! - [`pages`], the HTML, and [`strings`], every text;
//! - [`session`], sessions, CSRF tokens, rate limits;
//! - [`credentials`], creating an app password (shared with the CLI: `apppw::issue`);
//! - [`notify`], optional e-mail after a change, and [`audit`], the log lines.
#![forbid(unsafe_code)]

pub mod app;
pub mod audit;
pub use apppw::issue as credentials;
pub mod http;
pub mod notify;
pub mod pages;
pub mod session;
pub mod strings;
pub mod webconfig;
