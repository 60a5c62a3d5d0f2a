//! Reading `web.toml`: the raw TOML tables, then each section checked and turned into the
//! settings of `webconfig.rs`, every error naming the line and the key.

use super::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    listen: Option<Spanned<String>>,
    /// Gone: the language follows the browser now.
    language: Option<Spanned<String>>,
    socket_mode: Option<Spanned<String>>,
    #[serde(default)]
    trusted_proxies: Vec<Spanned<String>>,
    services: Option<Vec<Spanned<String>>>,
    signin: RawSignIn,
    #[serde(default)]
    proxy: RawProxy,
    #[serde(default)]
    session: RawSession,
    #[serde(default)]
    limits: RawLimits,
    notify: Option<RawNotify>,
    #[serde(default)]
    site: RawSite,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSignIn {
    mode: Spanned<String>,
    header: Option<Spanned<String>>,
    logout_url: Option<Spanned<String>>,
    pam_service: Option<Spanned<String>>,
    campus_only: Option<Spanned<bool>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawProxy {
    secret_file: Option<Spanned<String>>,
    secret_header: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSession {
    idle_timeout_minutes: Option<Spanned<u32>>,
    max_lifetime_minutes: Option<Spanned<u32>>,
    secure_cookie: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    signin_failures_per_address: Option<u32>,
    signin_failures_per_user: Option<u32>,
    creates_per_user: Option<u32>,
    window_minutes: Option<Spanned<u32>>,
    max_per_user: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotify {
    smtp: Option<Spanned<String>>,
    sendmail: Option<Spanned<String>>,
    from: Spanned<String>,
    to: Spanned<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSite {
    title: Option<Spanned<String>>,
    logo: Option<Spanned<String>>,
    help_url: Option<Spanned<String>>,
    timezone: Option<Spanned<String>>,
    locales: Option<Spanned<String>>,
    default_language: Option<Spanned<String>>,
    address: Option<Spanned<String>>,
    imap: Option<RawServer>,
    smtp: Option<RawServer>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    host: Spanned<String>,
    port: Option<Spanned<u16>>,
    security: Option<Spanned<String>>,
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

/// A host name or address as mail clients take it.
fn is_host(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
}

/// A link target: `https://...`, `http://...` or a path on this site, nothing that could
/// leave an attribute.
fn is_link(s: &str) -> bool {
    (s.starts_with("https://") || s.starts_with("http://") || s.starts_with('/'))
        && !s.starts_with("//")
        && s.len() <= 2048
        && !s
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || "\"'<>`\\".contains(c))
}

fn parse_net(s: &str) -> Option<IpNet> {
    if let Ok(net) = s.parse::<IpNet>() {
        return Some(net.trunc());
    }
    s.parse::<IpAddr>()
        .ok()
        .map(|ip| IpNet::from(ip.to_canonical()))
}

/// Turns a byte offset of the text into "line N".
struct Lines<'t>(&'t str);

impl Lines<'_> {
    fn of<T>(&self, s: &Spanned<T>) -> usize {
        let at = s.span().start.min(self.0.len());
        self.0[..at].matches('\n').count() + 1
    }
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

    /// Parses config text (`path` is for messages; relative file names in it are taken
    /// from the working directory).
    #[allow(clippy::too_many_lines)] // one key after the other, in the order of the docs
    pub fn parse(path: &Path, text: &str) -> Result<WebConfig, WebConfigError> {
        let bad = |message: String| WebConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let lines = Lines(text);
        // "line N: key `k`: what is wrong"
        let at =
            |line: usize, key: &str, what: &str| bad(format!("line {line}: key `{key}`: {what}"));
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

        if let Some(l) = &raw.language {
            return Err(at(
                lines.of(l),
                "language",
                "the page follows the browser's language now; set the fallback with \
                 `default_language` in [site]",
            ));
        }
        let listen = match &raw.listen {
            None => Listen::Unix(PathBuf::from(DEFAULT_SOCKET)),
            Some(l) if l.get_ref().starts_with('/') => Listen::Unix(PathBuf::from(l.get_ref())),
            Some(l) => {
                let addr: SocketAddr = l.get_ref().parse().map_err(|_| {
                    at(
                        lines.of(l),
                        "listen",
                        &format!(
                            "{:?} is neither a socket path (/run/apppw-web.sock) nor a loopback \
                             address:port (127.0.0.1:8080)",
                            l.get_ref()
                        ),
                    )
                })?;
                if !addr.ip().is_loopback() {
                    return Err(at(
                        lines.of(l),
                        "listen",
                        &format!(
                            "{addr} is not a loopback address: the page listens on a Unix socket \
                             or on 127.0.0.1/::1, behind the reverse proxy"
                        ),
                    ));
                }
                Listen::Tcp(addr)
            }
        };

        let socket_mode = match &raw.socket_mode {
            None => 0o660,
            Some(m) => u32::from_str_radix(m.get_ref(), 8)
                .ok()
                .filter(|v| *v <= 0o777 && *v & 0o007 == 0)
                .ok_or_else(|| {
                    at(
                        lines.of(m),
                        "socket_mode",
                        "use an octal mode that admits no other users, like \"0660\"",
                    )
                })?,
        };

        let proxy_secret = match &raw.proxy.secret_file {
            None => None,
            Some(f) => {
                let text = std::fs::read_to_string(f.get_ref()).map_err(|e| {
                    at(
                        lines.of(f),
                        "proxy.secret_file",
                        &format!("cannot read {}: {e}", f.get_ref()),
                    )
                })?;
                let value = zeroize::Zeroizing::new(text.trim().to_owned());
                if value.len() < MIN_SECRET_BYTES || value.chars().any(|c| !c.is_ascii_graphic()) {
                    return Err(at(
                        lines.of(f),
                        "proxy.secret_file",
                        &format!(
                            "the secret must be at least {MIN_SECRET_BYTES} printable ASCII \
                             characters (e.g. `openssl rand -hex 32`)"
                        ),
                    ));
                }
                let header = match &raw.proxy.secret_header {
                    None => "X-Apppw-Proxy-Secret".to_owned(),
                    Some(h) if is_token(h.get_ref()) => h.get_ref().clone(),
                    Some(h) => {
                        return Err(at(lines.of(h), "proxy.secret_header", "not a header name"));
                    }
                };
                Some(ProxySecret { header, value })
            }
        };
        if let (Listen::Tcp(addr), None) = (&listen, &proxy_secret) {
            return Err(bad(format!(
                "listen = \"{addr}\" (TCP) needs `[proxy] secret_file`: on TCP any local process \
                 could claim to be the proxy; or listen on a Unix socket"
            )));
        }

        let mut trusted_proxies = Vec::new();
        for p in &raw.trusted_proxies {
            trusted_proxies.push(parse_net(p.get_ref()).ok_or_else(|| {
                at(
                    lines.of(p),
                    "trusted_proxies",
                    &format!("{:?} is not an IP address or network", p.get_ref()),
                )
            })?);
        }

        let services = match &raw.services {
            None => vec!["imap".into(), "pop3".into(), "smtp".into(), "sieve".into()],
            Some(list) => {
                let mut out: Vec<String> = Vec::new();
                for s in list {
                    let name = s.get_ref().trim().to_ascii_lowercase();
                    if !is_service(&name) {
                        return Err(at(
                            lines.of(s),
                            "services",
                            &format!("{name:?} is not a service name (imap, pop3, smtp, ...)"),
                        ));
                    }
                    if !out.contains(&name) {
                        out.push(name);
                    }
                }
                out
            }
        };

        let signin = Self::signin(&raw.signin, &lines, &at)?;
        let session = Self::session(&raw.session, &lines, &at)?;
        let limits = Self::limits(&raw.limits, &lines, &at)?;
        let notify = raw
            .notify
            .as_ref()
            .map(|n| Self::notify(n, &lines, &at))
            .transpose()?;
        let site = Self::site(&raw.site, &lines, &at)?;

        Ok(WebConfig {
            path: path.to_path_buf(),
            listen,
            socket_mode,
            proxy_secret,
            trusted_proxies,
            signin,
            session,
            limits,
            notify,
            services,
            site,
        })
    }

    fn signin(
        s: &RawSignIn,
        lines: &Lines<'_>,
        at: &dyn Fn(usize, &str, &str) -> WebConfigError,
    ) -> Result<SignIn, WebConfigError> {
        match s.mode.get_ref().as_str() {
            "header" => {
                if let Some(k) = &s.pam_service {
                    return Err(at(
                        lines.of(k),
                        "signin.pam_service",
                        "belongs to mode = \"pam\"",
                    ));
                }
                if let Some(k) = &s.campus_only {
                    return Err(at(
                        lines.of(k),
                        "signin.campus_only",
                        "belongs to mode = \"pam\"",
                    ));
                }
                let header = match &s.header {
                    None => "X-Remote-User".to_owned(),
                    Some(h) if is_token(h.get_ref()) => h.get_ref().clone(),
                    Some(h) => {
                        return Err(at(lines.of(h), "signin.header", "not a header name"));
                    }
                };
                let logout_url = match &s.logout_url {
                    None => None,
                    Some(u) if u.get_ref().is_empty() => None,
                    Some(u) if is_link(u.get_ref()) => Some(u.get_ref().clone()),
                    Some(u) => {
                        return Err(at(
                            lines.of(u),
                            "signin.logout_url",
                            "not a URL (https://... or a path like /Shibboleth.sso/Logout)",
                        ));
                    }
                };
                Ok(SignIn::Header { header, logout_url })
            }
            "pam" => {
                if let Some(k) = &s.header {
                    return Err(at(
                        lines.of(k),
                        "signin.header",
                        "belongs to mode = \"header\"",
                    ));
                }
                if let Some(k) = &s.logout_url {
                    return Err(at(
                        lines.of(k),
                        "signin.logout_url",
                        "belongs to mode = \"header\"",
                    ));
                }
                let service = s
                    .pam_service
                    .as_ref()
                    .map_or_else(|| "apppw-web".to_owned(), |p| p.get_ref().clone());
                if service.is_empty() || service.contains(['/', '\0']) {
                    return Err(at(
                        s.pam_service.as_ref().map_or(0, |p| lines.of(p)),
                        "signin.pam_service",
                        &format!("{service:?} is not a PAM service name"),
                    ));
                }
                Ok(SignIn::Pam {
                    service,
                    campus_only: s.campus_only.as_ref().is_none_or(|c| *c.get_ref()),
                })
            }
            other => Err(at(
                lines.of(&s.mode),
                "signin.mode",
                &format!("{other:?}; use \"header\" (SSO at the reverse proxy) or \"pam\""),
            )),
        }
    }

    fn session(
        s: &RawSession,
        lines: &Lines<'_>,
        at: &dyn Fn(usize, &str, &str) -> WebConfigError,
    ) -> Result<SessionPolicy, WebConfigError> {
        let idle = match &s.idle_timeout_minutes {
            None => 15,
            Some(v) if (1..=1440).contains(v.get_ref()) => *v.get_ref(),
            Some(v) => {
                return Err(at(
                    lines.of(v),
                    "session.idle_timeout_minutes",
                    "use 1..1440",
                ));
            }
        };
        let lifetime = match &s.max_lifetime_minutes {
            None => 480,
            Some(v) if (1..=10080).contains(v.get_ref()) => *v.get_ref(),
            Some(v) => {
                return Err(at(
                    lines.of(v),
                    "session.max_lifetime_minutes",
                    "use 1..10080",
                ));
            }
        };
        Ok(SessionPolicy {
            idle: minutes(idle),
            lifetime: minutes(lifetime),
            secure_cookie: s.secure_cookie.unwrap_or(true),
        })
    }

    fn limits(
        l: &RawLimits,
        lines: &Lines<'_>,
        at: &dyn Fn(usize, &str, &str) -> WebConfigError,
    ) -> Result<Limits, WebConfigError> {
        let window = match &l.window_minutes {
            None => 15,
            Some(v) if (1..=1440).contains(v.get_ref()) => *v.get_ref(),
            Some(v) => return Err(at(lines.of(v), "limits.window_minutes", "use 1..1440")),
        };
        Ok(Limits {
            signin_failures_per_address: l.signin_failures_per_address.unwrap_or(10),
            signin_failures_per_user: l.signin_failures_per_user.unwrap_or(5),
            creates_per_user: l.creates_per_user.unwrap_or(10),
            window: minutes(window),
            max_per_user: l.max_per_user.unwrap_or(50),
        })
    }

    fn notify(
        n: &RawNotify,
        lines: &Lines<'_>,
        at: &dyn Fn(usize, &str, &str) -> WebConfigError,
    ) -> Result<Notify, WebConfigError> {
        if let Some(s) = &n.sendmail {
            return Err(at(
                lines.of(s),
                "notify.sendmail",
                "mail is submitted over SMTP now (Postfix's sendmail needs privileges the \
                 service does not have): use `smtp = \"localhost:25\"`",
            ));
        }
        let (smtp_host, smtp_port) = match &n.smtp {
            None => ("localhost".to_owned(), 25),
            Some(s) => {
                let parsed = s
                    .get_ref()
                    .rsplit_once(':')
                    .and_then(|(h, p)| Some((h.to_owned(), p.parse::<u16>().ok()?)))
                    .filter(|(h, p)| is_host(h) && *p > 0);
                parsed.ok_or_else(|| {
                    at(
                        lines.of(s),
                        "notify.smtp",
                        "use host:port, e.g. \"localhost:25\"",
                    )
                })?
            }
        };
        let from: Mailbox = n.from.get_ref().parse().map_err(|e| {
            at(
                lines.of(&n.from),
                "notify.from",
                &format!("not a mail address ({e}); e.g. \"App passwords <noreply@example.org>\""),
            )
        })?;
        let to = n.to.get_ref();
        let example = to.replace("{user}", "alice");
        if example.parse::<lettre::Address>().is_err() || !to.contains("{user}") {
            return Err(at(
                lines.of(&n.to),
                "notify.to",
                "a mail address with {user} in it, e.g. \"{user}@example.org\"",
            ));
        }
        Ok(Notify {
            smtp_host,
            smtp_port,
            from,
            to: to.clone(),
        })
    }

    fn server(
        s: &RawServer,
        key: &str,
        default_port: u16,
        lines: &Lines<'_>,
        at: &dyn Fn(usize, &str, &str) -> WebConfigError,
    ) -> Result<Server, WebConfigError> {
        if !is_host(s.host.get_ref()) {
            return Err(at(
                lines.of(&s.host),
                &format!("{key}.host"),
                "not a host name",
            ));
        }
        let port = s.port.as_ref().map_or(default_port, |p| *p.get_ref());
        let security = match &s.security {
            None if port == 993 || port == 465 => Security::Tls,
            None => Security::StartTls,
            Some(v) => match v.get_ref().as_str() {
                "tls" => Security::Tls,
                "starttls" => Security::StartTls,
                _ => {
                    return Err(at(
                        lines.of(v),
                        &format!("{key}.security"),
                        "use \"tls\" or \"starttls\"",
                    ));
                }
            },
        };
        Ok(Server {
            host: s.host.get_ref().clone(),
            port,
            security,
        })
    }

    fn site(
        s: &RawSite,
        lines: &Lines<'_>,
        at: &dyn Fn(usize, &str, &str) -> WebConfigError,
    ) -> Result<Site, WebConfigError> {
        let title = match &s.title {
            Some(t) if t.get_ref().chars().any(char::is_control) || t.get_ref().len() > 200 => {
                return Err(at(lines.of(t), "site.title", "at most 200 bytes, one line"));
            }
            t => t.as_ref().map(|t| t.get_ref().clone()),
        };
        let logo = match &s.logo {
            None => None,
            Some(l) => {
                let path = Path::new(l.get_ref());
                let kind = match path.extension().and_then(|e| e.to_str()) {
                    Some("png") => "image/png",
                    Some("svg") => "image/svg+xml",
                    Some("jpg" | "jpeg") => "image/jpeg",
                    Some("webp") => "image/webp",
                    _ => {
                        return Err(at(
                            lines.of(l),
                            "site.logo",
                            "use a .png, .svg, .jpg or .webp file",
                        ));
                    }
                };
                let too_big = std::fs::metadata(path).is_ok_and(|m| m.len() > MAX_LOGO_BYTES);
                let bytes = std::fs::read(path).map_err(|e| {
                    at(
                        lines.of(l),
                        "site.logo",
                        &format!("cannot read {}: {e}", path.display()),
                    )
                })?;
                if too_big {
                    return Err(at(lines.of(l), "site.logo", "larger than 256 KiB"));
                }
                Some((bytes, kind))
            }
        };
        let help_url = match &s.help_url {
            None => None,
            Some(u) if is_link(u.get_ref()) => Some(u.get_ref().clone()),
            Some(u) => return Err(at(lines.of(u), "site.help_url", "not a URL (https://...)")),
        };
        let (timezone, timezone_name) = match &s.timezone {
            None => (jiff::tz::TimeZone::system(), "the system's".to_owned()),
            Some(z) => {
                let tz = jiff::tz::TimeZone::get(z.get_ref()).map_err(|e| {
                    at(
                        lines.of(z),
                        "site.timezone",
                        &format!(
                            "{:?} is not a time zone of the system's tz database (like \
                             \"Asia/Tokyo\" or \"Europe/Berlin\"): {e}",
                            z.get_ref()
                        ),
                    )
                })?;
                (tz, z.get_ref().clone())
            }
        };
        let locales = match &s.locales {
            None => None,
            Some(d) if Path::new(d.get_ref()).is_dir() => Some(PathBuf::from(d.get_ref())),
            Some(d) => {
                return Err(at(
                    lines.of(d),
                    "site.locales",
                    &format!("{} is not a directory", d.get_ref()),
                ));
            }
        };
        let default_language = match &s.default_language {
            None => "en".to_owned(),
            Some(l) => {
                if l.get_ref()
                    .parse::<fluent_templates::LanguageIdentifier>()
                    .is_err()
                {
                    return Err(at(
                        lines.of(l),
                        "site.default_language",
                        "not a language tag like \"ja\"",
                    ));
                }
                l.get_ref().clone()
            }
        };
        let address = match &s.address {
            None => None,
            Some(a) => {
                let example = a.get_ref().replace("{user}", "alice");
                if !a.get_ref().contains("{user}") || example.parse::<lettre::Address>().is_err() {
                    return Err(at(
                        lines.of(a),
                        "site.address",
                        "a mail address with {user} in it, e.g. \"{user}@example.org\"",
                    ));
                }
                Some(a.get_ref().clone())
            }
        };
        let imap = s
            .imap
            .as_ref()
            .map(|r| Self::server(r, "site.imap", 993, lines, at))
            .transpose()?;
        let smtp = s
            .smtp
            .as_ref()
            .map(|r| Self::server(r, "site.smtp", 587, lines, at))
            .transpose()?;
        Ok(Site {
            title,
            logo,
            help_url,
            timezone,
            timezone_name,
            locales,
            default_language,
            address,
            imap,
            smtp,
        })
    }
}
