//! What a PostgreSQL URL (`database = "postgresql://..."`) asks for, decided without
//! connecting: the URL the `postgres` crate is given, libpq's `sslmode`, `sslrootcert`,
//! `sslcert` and `sslkey`, and whether TLS is needed. The config checks a URL with it when it
//! is loaded ([`check`]); the store connects by its [`Plan`] (`store/postgres.rs`, with the
//! OpenSSL connector in `store/postgres/tls.rs`).
//!
//! A forged lookup row logs anyone in, so the connection to a database on another machine must
//! be authenticated. The `postgres` crate knows only `sslmode=disable|prefer|require` and
//! rejects every other TLS parameter of libpq; [`Plan::new`] takes apppw's TLS parameters out
//! of the URL, hands the rest to the crate, and decides what the connection must be:
//!
//! | `sslmode`     | TLS      | plaintext if the server has no TLS | certificate checked          |
//! |---------------|----------|------------------------------------|------------------------------|
//! | `disable`     | never    | yes                                | —                            |
//! | `prefer`      | if offered | loopback hosts only              | chain, if `sslrootcert=FILE` |
//! | `require`     | always   | no                                 | chain, if `sslrootcert=FILE` |
//! | `verify-ca`   | always   | no                                 | chain                        |
//! | `verify-full` | always   | no                                 | chain and host name          |
//!
//! As in libpq: the default is `prefer`; a failed handshake is never retried in plaintext
//! (libpq's `prefer` does retry; apppw does not, so a bad certificate is an error, never a
//! downgrade); Unix sockets never use TLS. apppw's own rules on top: a TCP host that is not
//! loopback defaults to `verify-full` and gets plaintext only with an explicit
//! `sslmode=disable`; trusted CAs come from `sslrootcert` or else from the system's CA
//! directory ([`SYSTEM_CA_DIR`]) — never from `~/.postgresql/` or from environment variables,
//! which the caller of a PAM module controls.

use postgres::config::{Host, SslMode as WireMode};
use std::borrow::Cow;
use std::net::IpAddr;
use std::path::PathBuf;

/// The system's trusted CAs, as a hashed directory (Debian's `ca-certificates`): OpenSSL reads
/// only the issuer it looks for. Loading the whole bundle, as OpenSSL's default paths do,
/// costs ~60 ms with OpenSSL 3.0.
pub const SYSTEM_CA_DIR: &str = "/etc/ssl/certs";

/// `sslmode`, as libpq documents it (`allow` is not supported).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<SslMode, String> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            "allow" => {
                return Err(
                    "has sslmode=allow, which apppw does not support; use prefer, or disable"
                        .into(),
                );
            }
            other => {
                return Err(format!(
                    "has sslmode={:?}; use disable, prefer, require, verify-ca or verify-full",
                    printable(other)
                ));
            }
        })
    }

    fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// Where the trusted CA certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Roots {
    /// `sslrootcert=FILE`.
    File(PathBuf),
    /// `sslrootcert=system`, or no `sslrootcert`: [`SYSTEM_CA_DIR`].
    System,
}

/// What is checked about the server's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// Nothing: encryption only (`prefer`/`require` without `sslrootcert`).
    Nothing,
    /// Signed by a trusted CA (`verify-ca`).
    Chain,
    /// Signed by a trusted CA and issued for the host name or address (`verify-full`).
    ChainAndName,
}

/// TLS as one URL asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tls {
    pub(crate) check: Check,
    pub(crate) roots: Roots,
    /// `sslcert` and `sslkey`.
    pub(crate) client: Option<(PathBuf, PathBuf)>,
}

/// How to connect to one URL.
pub(crate) struct Plan {
    /// The URL without apppw's TLS parameters, `ssl_mode` set.
    pub(crate) config: postgres::Config,
    /// `sslmode` after the defaults.
    pub(crate) mode: SslMode,
    /// `None`: plaintext only (Unix sockets, `sslmode=disable`).
    pub(crate) tls: Option<Tls>,
    /// TLS is required because a host is not loopback, and the URL did not ask for it.
    required_by_apppw: bool,
}

/// Where one host of the URL is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Socket,
    Loopback,
    Remote,
}

impl Plan {
    /// Parses `url` and decides how to connect. The error says what is wrong with the URL
    /// (it is shown after "database ..."), never repeating a password.
    pub(crate) fn new(url: &str) -> Result<Plan, String> {
        let (rest, params) = split_ssl_params(url)?;
        let mut config: postgres::Config = rest.parse().map_err(|e: postgres::Error| {
            format!("is not a valid PostgreSQL URL: {}", describe(&e))
        })?;

        let places = places(&config);
        let tcp: Vec<&(Place, bool)> = places.iter().filter(|(p, _)| *p != Place::Socket).collect();
        let remote = tcp.iter().any(|(p, _)| *p == Place::Remote);
        let roots = match params.rootcert.as_deref() {
            None | Some("system") => Roots::System,
            Some(file) => Roots::File(PathBuf::from(file)),
        };
        let system_named = params.rootcert.as_deref() == Some("system");
        let mode = match params.mode {
            Some(mode) => mode,
            None if remote || system_named => SslMode::VerifyFull,
            None => SslMode::Prefer,
        };
        if system_named && mode != SslMode::VerifyFull {
            // As libpq 16: the public CAs vouch for names, so only the name check means anything.
            return Err(format!(
                "has sslrootcert=system with the weak sslmode={}; use sslmode=verify-full",
                mode.name()
            ));
        }
        let client = match (params.cert, params.key) {
            (Some(cert), Some(key)) => Some((PathBuf::from(cert), PathBuf::from(key))),
            (None, None) => None,
            _ => return Err("has only one of sslcert and sslkey; give both, or neither".into()),
        };

        let nameless = tcp.iter().any(|(_, named)| !named);
        let wire = match mode {
            _ if tcp.is_empty() => WireMode::Disable,
            SslMode::Disable => WireMode::Disable,
            // TLS needs a name to check (and the crate refuses to start it without one); over
            // loopback, plaintext is allowed anyway.
            SslMode::Prefer if !remote && nameless => WireMode::Disable,
            SslMode::Prefer if !remote => WireMode::Prefer,
            _ => WireMode::Require,
        };
        config.ssl_mode(wire);
        if wire == WireMode::Disable {
            return Ok(Plan {
                config,
                mode,
                tls: None,
                required_by_apppw: false,
            });
        }
        if wire == WireMode::Require && places.iter().any(|(p, _)| *p == Place::Socket) {
            return Err(format!(
                "mixes Unix sockets, which never use TLS, with TCP hosts that must \
                 (sslmode={}{}); use separate URLs, or sslmode=disable",
                mode.name(),
                if params.mode.is_none() {
                    " by default"
                } else {
                    ""
                }
            ));
        }
        if nameless {
            return Err(
                "has a hostaddr without a host name: TLS checks the server's certificate \
                 against host=NAME, so give one for each hostaddr (or sslmode=disable)"
                    .into(),
            );
        }
        let check = match mode {
            SslMode::VerifyFull => Check::ChainAndName,
            SslMode::VerifyCa => Check::Chain,
            // As libpq: with a root certificate file, require (and prefer) check the chain.
            _ if matches!(roots, Roots::File(_)) => Check::Chain,
            _ => Check::Nothing,
        };
        Ok(Plan {
            config,
            mode,
            tls: Some(Tls {
                check,
                roots,
                client,
            }),
            required_by_apppw: remote && matches!(params.mode, None | Some(SslMode::Prefer)),
        })
    }

    /// A hint for a failed connection: TLS was required only because the host is not loopback.
    pub(crate) fn hint(&self, message: &str) -> Option<String> {
        (self.required_by_apppw && message.contains("server does not support TLS")).then(|| {
            format!(
                "; a host that is not loopback gets TLS (sslmode={}{}), plaintext only if the URL \
                 says sslmode=disable",
                self.mode.name(),
                if self.mode == SslMode::Prefer {
                    " falls back to plaintext only over loopback"
                } else {
                    " by default"
                }
            )
        })
    }
}

/// apppw's TLS parameters, as taken out of a URL.
#[derive(Debug, Default)]
struct SslParams {
    mode: Option<SslMode>,
    rootcert: Option<String>,
    cert: Option<String>,
    key: Option<String>,
}

/// Splits `url` into the URL the `postgres` crate is given and apppw's TLS parameters.
///
/// The query string is found exactly as the crate's URL parser finds it (credentials up to
/// the first `@`, then the host up to `/` or `?`, then the database up to `?`), so that both
/// read the same parameters.
fn split_ssl_params(url: &str) -> Result<(String, SslParams), String> {
    let mut params = SslParams::default();
    let Some(start) = query_start(url) else {
        return Ok((url.to_owned(), params));
    };
    let mut kept: Vec<&str> = Vec::new();
    let mut rest = &url[start + 1..];
    while !rest.is_empty() {
        let Some(eq) = rest.find('=') else {
            // The crate reports it ("unterminated parameter").
            kept.push(rest);
            break;
        };
        let end = rest[eq..].find('&').map_or(rest.len(), |i| eq + i);
        let (pair, key, value) = (&rest[..end], &rest[..eq], &rest[eq + 1..end]);
        rest = rest.get(end + 1..).unwrap_or("");
        let key = decode(key, "a parameter name")?;
        let slot = match &*key {
            "sslmode" => {
                let mode = SslMode::parse(&decode(value, "sslmode")?)?;
                if params.mode.replace(mode).is_some() {
                    return Err(twice("sslmode"));
                }
                continue;
            }
            "sslrootcert" => &mut params.rootcert,
            "sslcert" => &mut params.cert,
            "sslkey" => &mut params.key,
            // Known to the crate.
            "sslnegotiation" => {
                kept.push(pair);
                continue;
            }
            other if other.starts_with("ssl") || other == "requiressl" => {
                return Err(format!(
                    "has the parameter {:?}, which apppw does not support; it understands \
                     sslmode, sslrootcert, sslcert, sslkey and sslnegotiation",
                    printable(other)
                ));
            }
            _ => {
                kept.push(pair);
                continue;
            }
        };
        let value = decode(value, &key)?;
        if value.is_empty() {
            return Err(format!("has an empty {key}"));
        }
        if slot.replace(value.into_owned()).is_some() {
            return Err(twice(&key));
        }
    }
    let head = &url[..start];
    Ok(if kept.is_empty() {
        (head.to_owned(), params)
    } else {
        (format!("{head}?{}", kept.join("&")), params)
    })
}

/// Where the query string of a `postgresql://` URL starts (the index of its `?`), found as
/// the `postgres` crate's URL parser finds it.
fn query_start(url: &str) -> Option<usize> {
    let prefix = ["postgresql://", "postgres://"]
        .iter()
        .find(|p| url.starts_with(*p))?
        .len();
    let mut at = prefix;
    if let Some(i) = url[at..].find('@') {
        at += i + 1;
    }
    at += url[at..].find(['/', '?']).unwrap_or(url.len() - at);
    if url[at..].starts_with('/') {
        at += url[at..].find('?').unwrap_or(url.len() - at);
    }
    url[at..].starts_with('?').then_some(at)
}

fn decode<'a>(text: &'a str, what: &str) -> Result<Cow<'a, str>, String> {
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .map_err(|_| format!("has {what} that is not UTF-8 once decoded"))
}

fn twice(key: &str) -> String {
    format!("has {key} twice; give it once")
}

/// A value from the URL as it may be shown: control characters escaped, at most 40 characters.
fn printable(text: &str) -> String {
    text.chars()
        .take(40)
        .flat_map(char::escape_default)
        .collect()
}

/// Each host of `config` and whether it has a name to check a certificate against. A
/// `hostaddr` decides where the connection goes (as in libpq and the `postgres` crate).
fn places(config: &postgres::Config) -> Vec<(Place, bool)> {
    let hosts = config.get_hosts();
    let addrs = config.get_hostaddrs();
    (0..hosts.len().max(addrs.len()))
        .map(|i| {
            let name = match hosts.get(i) {
                Some(Host::Tcp(name)) => Some(name.as_str()),
                _ => None,
            };
            let place = match (addrs.get(i), hosts.get(i)) {
                (Some(addr), _) => place_of_addr(*addr),
                (None, Some(Host::Tcp(name))) => place_of_name(name),
                (None, _) => Place::Socket,
            };
            (place, name.is_some())
        })
        .collect()
}

fn place_of_addr(addr: IpAddr) -> Place {
    if addr.to_canonical().is_loopback() {
        Place::Loopback
    } else {
        Place::Remote
    }
}

/// `localhost` and loopback addresses are loopback; any other name is not, whatever it
/// resolves to (DNS is not trusted to decide whether TLS is needed).
fn place_of_name(name: &str) -> Place {
    if name.eq_ignore_ascii_case("localhost") || name.eq_ignore_ascii_case("localhost.") {
        return Place::Loopback;
    }
    match name.parse::<IpAddr>() {
        Ok(addr) => place_of_addr(addr),
        Err(_) => Place::Remote,
    }
}

/// The checks that can be made without connecting: a PostgreSQL URL without a password,
/// with TLS parameters apppw understands (see [`Plan::new`]).
pub(crate) fn check(url: &str) -> Result<(), String> {
    let plan = Plan::new(url)?;
    if plan.config.get_password().is_some() {
        return Err(
            "contains a password; put it in a file named by `database_password_file` instead"
                .into(),
        );
    }
    Ok(())
}

/// Does a connection to `url` need TLS (always, or if the server offers it)? `false` for a
/// URL that does not parse: connecting reports that.
pub(crate) fn needs_tls(url: &str) -> bool {
    Plan::new(url).is_ok_and(|plan| plan.tls.is_some())
}

/// What went wrong, with the causes (PostgreSQL's own message, the OS error), never a secret.
pub(crate) fn describe(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!(
            "{}: {} (SQLSTATE {})",
            db.severity(),
            db.message(),
            db.code().code()
        );
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(url: &str) -> Plan {
        Plan::new(url).unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    fn refused(url: &str) -> String {
        match Plan::new(url) {
            Ok(p) => panic!("{url} accepted: mode {:?}, tls {:?}", p.mode, p.tls),
            Err(e) => e,
        }
    }

    #[test]
    fn a_host_that_is_not_loopback_defaults_to_verify_full() {
        for url in [
            "postgresql://apppw@db.example.org/apppw",
            "postgresql://apppw@192.0.2.7:5433/apppw?connect_timeout=2",
            "postgresql://apppw@[2001:db8::7]/apppw",
            "postgres://apppw@localhost,db.example.org/apppw",
            // hostaddr decides where the connection goes.
            "postgresql://apppw@localhost/apppw?hostaddr=192.0.2.7",
        ] {
            let p = plan(url);
            assert_eq!(p.mode, SslMode::VerifyFull, "{url}");
            assert_eq!(p.config.get_ssl_mode(), WireMode::Require, "{url}");
            let tls = p.tls.unwrap();
            assert_eq!(tls.check, Check::ChainAndName, "{url}");
            assert_eq!(tls.roots, Roots::System, "{url}");
        }
    }

    #[test]
    fn plaintext_to_a_remote_host_only_with_an_explicit_disable() {
        let p = plan("postgresql://apppw@db.example.org/apppw?sslmode=disable");
        assert_eq!(p.config.get_ssl_mode(), WireMode::Disable);
        assert!(p.tls.is_none());
        // prefer would fall back to plaintext: for a remote host TLS is required instead.
        let p = plan("postgresql://apppw@db.example.org/apppw?sslmode=prefer");
        assert_eq!(p.mode, SslMode::Prefer);
        assert_eq!(p.config.get_ssl_mode(), WireMode::Require);
        assert_eq!(p.tls.as_ref().unwrap().check, Check::Nothing);
        assert!(
            p.hint("error performing TLS handshake: server does not support TLS")
                .is_some()
        );
        assert!(p.hint("connection refused").is_none());
        assert!(
            plan("postgresql://apppw@db.example.org/apppw")
                .hint("server does not support TLS")
                .is_some()
        );
        assert!(
            plan("postgresql://apppw@localhost/apppw?sslmode=verify-full")
                .hint("server does not support TLS")
                .is_none()
        );
        let p = plan("postgresql://apppw@db.example.org/apppw?sslmode=require");
        assert_eq!(p.config.get_ssl_mode(), WireMode::Require);
        assert_eq!(p.tls.unwrap().check, Check::Nothing);
        assert!(
            plan("postgresql://apppw@db.example.org/apppw?sslmode=require")
                .hint("server does not support TLS")
                .is_none()
        );
    }

    #[test]
    fn loopback_and_sockets_may_stay_plaintext() {
        for url in [
            "postgresql://apppw@localhost/apppw",
            "postgresql://apppw@LOCALHOST:6432/apppw",
            "postgresql://apppw@127.0.0.1:6432/apppw",
            "postgresql://apppw@127.3.4.5/apppw",
            "postgresql://apppw@[::1]/apppw",
            "postgresql://apppw@[::ffff:127.0.0.1]/apppw",
            "postgresql://apppw@pgbouncer.local/apppw?hostaddr=127.0.0.1",
        ] {
            let p = plan(url);
            assert_eq!(p.mode, SslMode::Prefer, "{url}");
            assert_eq!(p.config.get_ssl_mode(), WireMode::Prefer, "{url}");
            assert_eq!(p.tls.unwrap().check, Check::Nothing, "{url}");
        }
        for url in [
            "postgresql://apppw@/apppw?host=/var/run/postgresql",
            "postgresql://apppw@%2Fvar%2Frun%2Fpostgresql/apppw",
            // libpq ignores sslmode on Unix sockets.
            "postgresql://apppw@/apppw?host=/var/run/postgresql&sslmode=verify-full",
        ] {
            let p = plan(url);
            assert_eq!(p.config.get_ssl_mode(), WireMode::Disable, "{url}");
            assert!(p.tls.is_none(), "{url}");
        }
        // A name that merely resolves to loopback is not trusted to.
        assert_eq!(
            plan("postgresql://apppw@localhost.localdomain/apppw").mode,
            SslMode::VerifyFull
        );
    }

    #[test]
    fn modes_and_root_certificates_as_libpq() {
        let tls = |url: &str| plan(url).tls.unwrap();
        let base = "postgresql://apppw@db.example.org/apppw?connect_timeout=2";
        assert_eq!(
            tls(&format!("{base}&sslmode=verify-ca")).check,
            Check::Chain
        );
        // require (and prefer) with a root certificate: verify-ca.
        let t = tls(&format!(
            "{base}&sslmode=require&sslrootcert=/etc/apppw/ca.pem"
        ));
        assert_eq!(t.check, Check::Chain);
        assert_eq!(t.roots, Roots::File("/etc/apppw/ca.pem".into()));
        let t = tls("postgresql://a@localhost/a?sslrootcert=%2Fetc%2Fca%20x.pem");
        assert_eq!(t.check, Check::Chain);
        assert_eq!(t.roots, Roots::File("/etc/ca x.pem".into()));
        // sslrootcert=system: verify-full by default, and nothing weaker.
        let p = plan("postgresql://a@localhost/a?sslrootcert=system");
        assert_eq!(p.mode, SslMode::VerifyFull);
        assert_eq!(p.tls.unwrap().roots, Roots::System);
        let e = refused(&format!("{base}&sslrootcert=system&sslmode=require"));
        assert!(e.contains("verify-full"), "{e}");
        // Client certificates.
        let t = tls(&format!(
            "{base}&sslcert=/etc/apppw/c.pem&sslkey=/etc/apppw/c.key"
        ));
        assert_eq!(
            t.client,
            Some(("/etc/apppw/c.pem".into(), "/etc/apppw/c.key".into()))
        );
        assert!(refused(&format!("{base}&sslcert=/etc/apppw/c.pem")).contains("sslkey"));
    }

    #[test]
    fn the_crate_gets_the_url_without_apppw_parameters() {
        let (rest, params) = split_ssl_params(
            "postgresql://u@h:5/db?connect_timeout=2&sslmode=verify-full&sslrootcert=/ca.pem\
             &application_name=x&sslnegotiation=postgres",
        )
        .unwrap();
        assert_eq!(
            rest,
            "postgresql://u@h:5/db?connect_timeout=2&application_name=x&sslnegotiation=postgres"
        );
        assert_eq!(params.mode, Some(SslMode::VerifyFull));
        assert_eq!(params.rootcert.as_deref(), Some("/ca.pem"));
        let (rest, _) = split_ssl_params("postgresql://u@h/db?sslmode=disable").unwrap();
        assert_eq!(rest, "postgresql://u@h/db");
        // A '?' inside the credentials part is not the query, as for the crate.
        assert_eq!(query_start("postgresql://u?x@h/db"), None);
        assert_eq!(query_start("postgresql://h?sslmode=disable"), Some(14));
        assert_eq!(query_start("postgresql://u@h/d?a=b"), Some(18));
        assert_eq!(query_start("postgresql://u@h/d"), None);
        // Options still reach the crate.
        let p = plan("postgresql://u@localhost/db?application_name=x&sslmode=disable");
        assert_eq!(p.config.get_application_name(), Some("x"));
    }

    #[test]
    fn unsupported_or_ambiguous_tls_parameters_are_refused() {
        let base = "postgresql://apppw@db.example.org/apppw?";
        for (query, expect) in [
            ("sslmode=allow", "allow"),
            ("sslmode=verify_full", "verify-full"),
            ("sslmode=", "use disable"),
            ("sslcrl=/etc/crl.pem", "sslcrl"),
            ("sslpassword=x", "sslpassword"),
            ("requiressl=1", "requiressl"),
            ("sslmode=disable&sslmode=verify-full", "twice"),
            ("sslrootcert=", "empty"),
            ("ssl%6Dode=bogus", "bogus"),
        ] {
            let e = refused(&format!("{base}{query}"));
            assert!(e.contains(expect), "{query}: {e}");
        }
        let e = refused("postgresql://a@db.example.org/a?host=/run/postgresql");
        assert!(e.contains("Unix sockets"), "{e}");
        let e = refused("postgresql://a@/a?hostaddr=192.0.2.7");
        assert!(e.contains("hostaddr"), "{e}");
        let e = refused("postgresql://a@/a?hostaddr=127.0.0.1&sslmode=require");
        assert!(e.contains("hostaddr"), "{e}");
        // Over loopback without a name: plaintext, as prefer allows there.
        let p = plan("postgresql://a@/a?hostaddr=127.0.0.1");
        assert_eq!(p.config.get_ssl_mode(), WireMode::Disable);
        // Fine in plaintext, and over loopback with prefer when the server offers no TLS...
        plan("postgresql://a@/a?hostaddr=192.0.2.7&sslmode=disable");
        plan("postgresql://a@localhost/a?host=/run/postgresql");
    }

    #[test]
    fn messages_never_repeat_a_password() {
        for url in [
            "postgresql://u:S3cret-pw@db.example.org/a?sslmode=bogus",
            "postgresql://u:S3cret-pw@db.example.org/a?sslcrl=x",
            "postgresql://u:S3cret-pw@db.example.org/a?bogus=1",
            "postgresql://u:S3cret-pw@/a?hostaddr=192.0.2.7",
        ] {
            let e = refused(url);
            assert!(!e.contains("S3cret"), "{e}");
        }
    }
}
