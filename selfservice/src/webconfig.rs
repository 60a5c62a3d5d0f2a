//! `web.toml`: the self-service page's own settings.
//!
//! The main apppw config (`apppw.toml`: database, campus networks, Argon2) is shared with the
//! other front-ends and read as usual; this file holds only what the web server adds. Unknown
//! keys and settings of the other sign-in mode are errors, like in `apppw.toml`.

use crate::strings::{self, Strings};
use ipnet::IpNet;
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Used when `--config-web` is not given.
pub const DEFAULT_PATH: &str = "/etc/apppw/web.toml";
/// Files larger than this are refused.
const MAX_BYTES: u64 = 1 << 20;

/// How users prove who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignIn {
    /// The reverse proxy signs the user in (SSO with MFA) and passes the user name in
    /// `header`; believed only from `trusted_proxies`.
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
    /// Program run as `sendmail -t -oi` with the message on stdin.
    pub sendmail: PathBuf,
    /// `From:` header.
    pub from: String,
    /// `To:` address; `{user}` is replaced by the user name.
    pub to: String,
}

/// A loaded, validated `web.toml`.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// The file it came from.
    pub path: PathBuf,
    /// Address the HTTP server listens on (loopback, behind the reverse proxy).
    pub listen: SocketAddr,
    /// Peers whose `X-Forwarded-For` (and sign-in header) are believed.
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
    /// UI language.
    pub strings: &'static Strings,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    listen: Option<String>,
    #[serde(default)]
    trusted_proxies: Vec<String>,
    language: Option<String>,
    services: Option<Vec<String>>,
    signin: RawSignIn,
    #[serde(default)]
    session: RawSession,
    #[serde(default)]
    limits: RawLimits,
    notify: Option<RawNotify>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSignIn {
    mode: String,
    header: Option<String>,
    logout_url: Option<String>,
    pam_service: Option<String>,
    campus_only: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSession {
    idle_timeout_minutes: Option<u32>,
    max_lifetime_minutes: Option<u32>,
    secure_cookie: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    signin_failures_per_address: Option<u32>,
    signin_failures_per_user: Option<u32>,
    creates_per_user: Option<u32>,
    window_minutes: Option<u32>,
    max_per_user: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotify {
    sendmail: Option<String>,
    from: String,
    to: String,
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

fn minutes(m: u32) -> Duration {
    Duration::from_secs(u64::from(m) * 60)
}

/// A header name: an HTTP token.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A service name as `apppw create --services` accepts it.
fn is_service(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn parse_net(s: &str) -> Option<IpNet> {
    if let Ok(net) = s.parse::<IpNet>() {
        return Some(net.trunc());
    }
    s.parse::<IpAddr>()
        .ok()
        .map(|ip| IpNet::from(ip.to_canonical()))
}

impl WebConfig {
    /// Reads and validates a file.
    pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
        use std::io::Read;
        let read_err = |source| WebConfigError::Read {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read_err)?;
        let mut text = String::new();
        file.take(MAX_BYTES)
            .read_to_string(&mut text)
            .map_err(read_err)?;
        Self::parse(path, &text)
    }

    /// Parses config text (`path` is for messages).
    pub fn parse(path: &Path, text: &str) -> Result<WebConfig, WebConfigError> {
        let bad = |message: String| WebConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let raw: Raw = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            let msg = e.message().trim().to_owned();
            bad(match line {
                Some(l) => format!("line {l}: {msg}"),
                None => msg,
            })
        })?;

        let listen_text = raw.listen.as_deref().unwrap_or("127.0.0.1:8080");
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            bad(format!(
                "key `listen`: {listen_text:?} is not an address:port like 127.0.0.1:8080"
            ))
        })?;

        let mut trusted_proxies = Vec::new();
        for p in &raw.trusted_proxies {
            trusted_proxies.push(parse_net(p).ok_or_else(|| {
                bad(format!(
                    "key `trusted_proxies`: {p:?} is not an IP address or network"
                ))
            })?);
        }

        let strings = match raw.language.as_deref().unwrap_or("en") {
            "en" => &strings::EN,
            "ja" => &strings::JA,
            other => {
                return Err(bad(format!(
                    "key `language`: {other:?} is not available (available: en, ja)"
                )));
            }
        };

        let services = match raw.services {
            None => vec!["imap".into(), "pop3".into(), "smtp".into(), "sieve".into()],
            Some(list) => {
                let mut out: Vec<String> = Vec::new();
                for s in list {
                    let s = s.trim().to_ascii_lowercase();
                    if !is_service(&s) {
                        return Err(bad(format!(
                            "key `services`: {s:?} is not a service name (imap, pop3, smtp, ...)"
                        )));
                    }
                    if !out.contains(&s) {
                        out.push(s);
                    }
                }
                out
            }
        };

        let s = raw.signin;
        let signin = match s.mode.as_str() {
            "header" => {
                if s.pam_service.is_some() || s.campus_only.is_some() {
                    return Err(bad(
                        "keys `signin.pam_service` and `signin.campus_only` belong to mode = \"pam\"".into(),
                    ));
                }
                let header = s.header.unwrap_or_else(|| "X-Remote-User".into());
                if !is_token(&header) {
                    return Err(bad(format!(
                        "key `signin.header`: {header:?} is not a header name"
                    )));
                }
                if trusted_proxies.is_empty() {
                    return Err(bad(
                        "mode = \"header\" needs `trusted_proxies`: the addresses of the reverse \
                         proxy that sets the header"
                            .into(),
                    ));
                }
                let logout_url = s.logout_url.filter(|u| !u.is_empty());
                if let Some(u) = &logout_url {
                    if u.chars().any(|c| c.is_control() || c == '"') {
                        return Err(bad("key `signin.logout_url`: not a URL".into()));
                    }
                }
                SignIn::Header { header, logout_url }
            }
            "pam" => {
                if s.header.is_some() || s.logout_url.is_some() {
                    return Err(bad(
                        "keys `signin.header` and `signin.logout_url` belong to mode = \"header\""
                            .into(),
                    ));
                }
                let service = s.pam_service.unwrap_or_else(|| "apppw-web".into());
                if service.is_empty() || service.contains(['/', '\0']) {
                    return Err(bad(format!(
                        "key `signin.pam_service`: {service:?} is not a PAM service name"
                    )));
                }
                SignIn::Pam {
                    service,
                    campus_only: s.campus_only.unwrap_or(true),
                }
            }
            other => {
                return Err(bad(format!(
                    "key `signin.mode`: {other:?}; use \"header\" (SSO at the reverse proxy) or \"pam\""
                )));
            }
        };

        let idle = raw.session.idle_timeout_minutes.unwrap_or(15);
        let lifetime = raw.session.max_lifetime_minutes.unwrap_or(480);
        if idle == 0 || lifetime == 0 || idle > 1440 || lifetime > 10080 {
            return Err(bad(
                "keys `session.idle_timeout_minutes` (1..1440) and `session.max_lifetime_minutes` \
                 (1..10080) are out of range"
                    .into(),
            ));
        }
        let session = SessionPolicy {
            idle: minutes(idle),
            lifetime: minutes(lifetime),
            secure_cookie: raw.session.secure_cookie.unwrap_or(true),
        };

        let window = raw.limits.window_minutes.unwrap_or(15);
        if window == 0 || window > 1440 {
            return Err(bad("key `limits.window_minutes`: use 1..1440".into()));
        }
        let limits = Limits {
            signin_failures_per_address: raw.limits.signin_failures_per_address.unwrap_or(10),
            signin_failures_per_user: raw.limits.signin_failures_per_user.unwrap_or(5),
            creates_per_user: raw.limits.creates_per_user.unwrap_or(10),
            window: minutes(window),
            max_per_user: raw.limits.max_per_user.unwrap_or(50),
        };

        let notify = match raw.notify {
            None => None,
            Some(n) => {
                let sendmail = PathBuf::from(n.sendmail.as_deref().unwrap_or("/usr/sbin/sendmail"));
                if !sendmail.is_absolute() {
                    return Err(bad("key `notify.sendmail`: use an absolute path".into()));
                }
                let header_safe = |v: &str| !v.is_empty() && !v.chars().any(char::is_control);
                if !header_safe(&n.from) || !header_safe(&n.to) || !n.to.contains('@') {
                    return Err(bad(
                        "keys `notify.from` and `notify.to` must be mail addresses \
                         (`to` may contain {user})"
                            .into(),
                    ));
                }
                Some(Notify {
                    sendmail,
                    from: n.from,
                    to: n.to,
                })
            }
        };

        Ok(WebConfig {
            path: path.to_path_buf(),
            listen,
            trusted_proxies,
            signin,
            session,
            limits,
            notify,
            services,
            strings,
        })
    }

    /// Is `ip` one of the trusted reverse proxies?
    #[must_use]
    pub fn is_trusted_proxy(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.trusted_proxies.iter().any(|n| n.contains(&ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<WebConfig, WebConfigError> {
        WebConfig::parse(Path::new("/etc/apppw/web.toml"), text)
    }

    #[test]
    fn header_mode_with_defaults() {
        let c = parse("trusted_proxies = [\"127.0.0.1\", \"::1\"]\n[signin]\nmode = \"header\"\n")
            .unwrap();
        assert_eq!(c.listen, "127.0.0.1:8080".parse().unwrap());
        assert!(c.is_trusted_proxy("127.0.0.1".parse().unwrap()));
        assert!(c.is_trusted_proxy("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!c.is_trusted_proxy("127.0.0.2".parse().unwrap()));
        assert_eq!(
            c.signin,
            SignIn::Header {
                header: "X-Remote-User".into(),
                logout_url: None
            }
        );
        assert!(c.session.secure_cookie);
        assert_eq!(c.session.idle, Duration::from_secs(900));
        assert!(c.notify.is_none());
    }

    #[test]
    fn pam_mode_is_campus_only_by_default() {
        let c = parse("[signin]\nmode = \"pam\"\npam_service = \"login\"\n").unwrap();
        assert_eq!(
            c.signin,
            SignIn::Pam {
                service: "login".into(),
                campus_only: true
            }
        );
    }

    #[test]
    fn mistakes_are_reported_with_the_key() {
        let e = parse("[signin]\nmode = \"header\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("trusted_proxies"), "{e}");
        let e = parse("[signin]\nmode = \"pam\"\nheader = \"X-User\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("signin.header"), "{e}");
        let e = parse("[signin]\nmode = \"pam\"\n[session]\nidle = 5\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 4") && e.contains("idle"), "{e}");
        let e = parse("trusted_proxies = [\"proxy.example.org\"]\n[signin]\nmode = \"pam\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("trusted_proxies"), "{e}");
        let e = parse("language = \"tlh\"\n[signin]\nmode = \"pam\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("language") && e.contains("en, ja"), "{e}");
        let ja = parse("language = \"ja\"\n[signin]\nmode = \"pam\"\n").unwrap();
        assert_eq!(ja.strings.lang, "ja");
        assert_eq!(
            parse("[signin]\nmode = \"pam\"\n").unwrap().strings.lang,
            "en"
        );
        let e = parse("[signin]\nmode = \"pam\"\n[notify]\nfrom = \"a@b\"\nto = \"x\\ny@z\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("notify"), "{e}");
    }
}
