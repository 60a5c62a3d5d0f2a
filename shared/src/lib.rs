//! apppw: application passwords for Linux mail servers.
//!
//! This crate owns every decision; the PAM module (`pam_apppw.so`), the Dovecot checkpassword
//! backend (`apppw-checkpassword`) and the admin CLI (`apppw`) are thin adapters around it.
//!
//! Where to look:
//! - [`config`]: the TOML file and its lookup order, and what it describes (the database, the
//!   lockout and enforcement policies); it depends on no storage code;
//! - [`network`]: campus / except networks and client-address parsing;
//! - [`secret`]: the app-password format (generate, normalise, print);
//! - [`hash`]: Argon2id (libsodium from the system, or the `argon2` crate), PHC strings, the
//!   known-answer self-test;
//! - [`sodium`], [`hugemem`]: the libsodium binding and the `argon2` crate's working memory;
//! - [`gate`]: the host-wide Argon2 admission gate (System V semaphores);
//! - [`store`]: the SQLite or PostgreSQL database the config names, and its migrations;
//! - `pgurl`: what a PostgreSQL URL asks for (TLS, `sslmode`), checked without connecting;
//! - [`timefmt`]: RFC 3339 times and expiry arguments, on `jiff`;
//! - [`issue`]: creating an app password (validation, generation, hashing, insertion);
//! - [`verify`]: **why a login was accepted or refused** — the one decision;
//! - [`audit`]: the syslog line written for each decision, and the admin CLI's lines;
//! - [`authcache`]: flushing a user from Dovecot's auth cache after a revocation;
//! - [`trust`]: which files may decide a login (owner and mode, like sudo and OpenSSH).
#![deny(unsafe_code)] // allowed only in `hugemem` (mmap, madvise), `sodium` (libsodium FFI), `sys` (ids) and `gate` (semaphores)

pub mod audit;
pub mod authcache;
pub mod config;
pub mod gate;
pub mod hash;
pub mod hugemem;
pub mod input;
pub mod issue;
pub mod network;
#[cfg(feature = "postgres")]
mod pgurl;
pub mod secret;
pub mod sodium;
pub mod store;
pub mod sys;
pub mod timefmt;
pub mod trust;
pub mod verify;

pub use config::Config;
pub use verify::{Decision, Reason, Relaxed, Request};

/// Current time in seconds since the Unix epoch (UTC).
#[must_use]
pub fn now() -> i64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
