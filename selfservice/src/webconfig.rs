//! `web.toml`: the self-service page's own settings.
//!
//! The main apppw config (`apppw.toml`: database, campus networks, Argon2) is shared with the
//! other front-ends and read as usual; this file holds only what the web server adds. Unknown
//! keys, settings of the other sign-in mode and values that make no sense are errors naming the
//! file, the line and the key, like in `apppw.toml`. This file says what the settings are; reading
//! them is `webconfig/parse.rs`.

use ipnet::IpNet;
use lettre::message::Mailbox;
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

mod parse;

/// Used when `--config-web` is not given.
pub const DEFAULT_PATH: &str = "/etc/apppw/web.toml";
/// Where the server listens when `listen` is not set (and no socket is inherited).
pub const DEFAULT_SOCKET: &str = "/run/apppw-web.sock";
/// Files larger than this are refused.
const MAX_BYTES: u64 = 1 << 20;
/// Largest logo served.
const MAX_LOGO_BYTES: u64 = 256 * 1024;
/// Shortest proxy secret accepted (bytes).
const MIN_SECRET_BYTES: usize = 32;

/// Where the server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// A Unix socket at this path: every peer is the reverse proxy (the socket's mode admits
    /// only the proxy's group).
    Unix(PathBuf),
    /// A loopback TCP address: the proxy proves itself with the shared secret.
    Tcp(SocketAddr),
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listen::Unix(p) => write!(f, "unix:{}", p.display()),
            Listen::Tcp(a) => write!(f, "http://{a}"),
        }
    }
}

/// How users prove who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignIn {
    /// The reverse proxy signs the user in (SSO with MFA) and passes the user name in
    /// `header`.
    Header {
        /// Request header carrying the user name, e.g. `X-Remote-User`.
        header: String,
        /// Where "sign out" sends the browser (the SSO's logout URL), if anywhere.
        logout_url: Option<String>,
    },
    /// User name and normal password, checked by this PAM service.
    Pam {
        /// `/etc/pam.d/<service>`.
        service: String,
        /// Only clients on the campus network may sign in (the default).
        campus_only: bool,
    },
}

/// Session cookie and lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    /// Signed out after this long without a request.
    pub idle: Duration,
    /// Signed out this long after signing in, however active.
    pub lifetime: Duration,
    /// Mark the cookie `Secure` (and name it `__Host-...`). Off only for plain-HTTP tests.
    pub secure_cookie: bool,
}

/// Rate limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Failed sign-ins per client address within `window`; 0 = no limit.
    pub signin_failures_per_address: u32,
    /// Failed sign-ins per user name within `window`; 0 = no limit.
    pub signin_failures_per_user: u32,
    /// New app passwords per user within `window`; 0 = no limit.
    pub creates_per_user: u32,
    /// The counting window, and how long a limit holds once reached.
    pub window: Duration,
    /// Most app passwords one user may have; 0 = no limit.
    pub max_per_user: u32,
}

/// E-mail to the user when an app password is created or deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    /// The SMTP server the mail is submitted to (the local MTA by default), `host:port`.
    pub smtp_host: String,
    /// Its port.
    pub smtp_port: u16,
    /// `From:`.
    pub from: Mailbox,
    /// `To:` address; `{user}` is replaced by the user name.
    pub to: String,
}

/// How a mail client connects to one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// TLS from the first byte (IMAPS 993, SMTPS 465).
    Tls,
    /// Plain connection upgraded with STARTTLS (IMAP 143, submission 587).
    StartTls,
}

impl Security {
    /// The Fluent message id of its name.
    #[must_use]
    pub fn text_id(self) -> &'static str {
        match self {
            Security::Tls => "security-tls",
            Security::StartTls => "security-starttls",
        }
    }
}

/// One mail server users configure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// Host name.
    pub host: String,
    /// Port.
    pub port: u16,
    /// TLS or STARTTLS.
    pub security: Security,
}

/// The site: name, logo, help, time zone, languages, the mail servers users configure.
#[derive(Debug, Clone)]
pub struct Site {
    /// Shown instead of the catalogue's `app-title`.
    pub title: Option<String>,
    /// The logo (read at start) and its content type.
    pub logo: Option<(Vec<u8>, &'static str)>,
    /// The help desk's page.
    pub help_url: Option<String>,
    /// Times on pages and in mails are in this zone.
    pub timezone: jiff::tz::TimeZone,
    /// Its name, for messages (`Asia/Tokyo`, or "system").
    pub timezone_name: String,
    /// More or changed texts: `<dir>/<lang>/*.ftl`, found at run time.
    pub locales: Option<PathBuf>,
    /// Language when the browser asks for none that is available.
    pub default_language: String,
    /// The user's mail address (`{user}` is replaced): for the configuration profile.
    pub address: Option<String>,
    /// Incoming mail server.
    pub imap: Option<Server>,
    /// Outgoing mail server.
    pub smtp: Option<Server>,
}

/// How the reverse proxy proves itself on a TCP listener.
#[derive(Clone)]
pub struct ProxySecret {
    /// The header that carries it.
    pub header: String,
    /// The secret (from a file).
    pub value: zeroize::Zeroizing<String>,
}

impl std::fmt::Debug for ProxySecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxySecret")
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

/// A loaded, validated `web.toml`.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// The file it came from.
    pub path: PathBuf,
    /// Where to listen (unless a socket is inherited from systemd).
    pub listen: Listen,
    /// Mode of a socket this program creates itself.
    pub socket_mode: u32,
    /// The proxy's secret, required when listening on TCP.
    pub proxy_secret: Option<ProxySecret>,
    /// Proxies in front of the one that connects: their `X-Forwarded-For` entries are skipped
    /// when looking for the client's address.
    pub trusted_proxies: Vec<IpNet>,
    /// Sign-in mode.
    pub signin: SignIn,
    /// Sessions.
    pub session: SessionPolicy,
    /// Rate limits.
    pub limits: Limits,
    /// Notification e-mail, if configured.
    pub notify: Option<Notify>,
    /// Services offered as restrictions on the create form.
    pub services: Vec<String>,
    /// Branding, time zone, languages, mail server settings.
    pub site: Site,
}

/// Why `web.toml` could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    /// Unreadable.
    #[error("cannot read {path}: {source} (pass --config-web FILE or create {DEFAULT_PATH})")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Bad content.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong (with line and key where known).
        message: String,
    },
}

impl WebConfig {
    /// Is `ip` one of the proxies in front of the one that connects?
    #[must_use]
    pub fn is_trusted_proxy(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.trusted_proxies.iter().any(|n| n.contains(&ip))
    }
}

#[cfg(test)]
mod tests;
