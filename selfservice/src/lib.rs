//! `apppw-web`: a self-service page where users create, see and delete their own app
//! passwords. Runs behind the site's reverse proxy (which does TLS and, in header mode, the
//! multi-factor sign-in), on a Unix socket only the proxy can open.
//!
//! - [`webconfig`], the `web.toml` file;
//! - [`server`], the socket and the HTTP connections; [`routes`], the routes and the layers
//!   (proxy gate, security headers, limits, error pages);
//! - [`app`], sign-in and the pages' logic; [`session`], sessions, CSRF tokens, form nonces,
//!   rate limits; [`form`], request bodies in wiped memory;
//! - [`templates`], the askama page structs, and [`i18n`], the Fluent texts and local times;
//! - [`onboarding`], the mail app profile and autoconfig;
//! - [`credentials`], creating an app password (shared with the CLI: `apppw::issue`);
//! - [`notify`], optional e-mail after a change, and [`audit`], the log lines.
#![forbid(unsafe_code)]

pub mod app;
pub mod audit;
pub use apppw::issue as credentials;
pub mod form;
pub mod i18n;
pub mod notify;
pub mod onboarding;
pub mod routes;
pub mod server;
pub mod session;
pub mod templates;
pub mod webconfig;
