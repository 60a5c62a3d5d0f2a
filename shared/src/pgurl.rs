//! What a PostgreSQL URL (`database = "postgresql://..."`) asks for, checked without
//! connecting ([`check`]), and TLS to PostgreSQL: libpq's `sslmode`, `sslrootcert`, `sslcert`
//! and `sslkey`, with the system's OpenSSL.
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
//!
//! Why OpenSSL and not rustls (measured, see the README "TLS"): libpq itself uses OpenSSL, so
//! host names, wildcards, IP addresses and the CN fallback are checked exactly as by `psql`;
//! Debian's security updates reach it without rebuilding apppw; the system-wide OpenSSL policy
//! (minimum protocol, ciphers) applies; and it adds 0.17 MB to the PAM module where rustls with
//! ring added 1.5 MB. Its cost is loading `libssl.so.3` (~0.7 ms) into a process that did not
//! have it yet.

use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::ssl::{
    Ssl, SslContext, SslContextBuilder, SslFiletype, SslMethod, SslRef, SslVerifyMode, SslVersion,
};
use openssl::x509::X509;
use openssl::x509::store::{X509Lookup, X509Store, X509StoreBuilder};
use openssl::x509::verify::X509CheckFlags;
use postgres::config::{Host, SslMode as WireMode};
use postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};
use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, BufReader, ReadBuf};
use tokio_openssl::SslStream;

/// The system's trusted CAs, as a hashed directory (Debian's `ca-certificates`): OpenSSL reads
/// only the issuer it looks for. Loading the whole bundle, as OpenSSL's default paths do,
/// costs ~60 ms with OpenSSL 3.0.
pub const SYSTEM_CA_DIR: &str = "/etc/ssl/certs";

/// A certificate or key file larger than this is refused.
const MAX_FILE: u64 = 1 << 20;

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

// --- The connector --------------------------------------------------------------------------
//
// `postgres-openssl` (the rust-postgres project's own glue) takes only an
// `openssl::ssl::SslConnector`, whose builder loads OpenSSL's default CA paths: the whole
// system bundle (~60 ms per connection with OpenSSL 3.0, more than a login) and whatever
// `SSL_CERT_FILE` / `SSL_CERT_DIR` name. So the few lines of glue are here, on an
// `SslContext` that trusts exactly what the URL says.

/// Makes the connector for `tls`: reads `sslrootcert`, `sslcert` and `sslkey`. The error
/// says which file is wrong and how.
pub(crate) fn connector(tls: &Tls) -> Result<MakeConnector, String> {
    let ssl_error = |e: ErrorStack| format!("TLS setup failed: {e}");
    let mut ctx = SslContextBuilder::new(SslMethod::tls_client()).map_err(ssl_error)?;
    ctx.set_min_proto_version(Some(SslVersion::TLS1_2))
        .map_err(ssl_error)?;
    // As libpq 17 (required by `sslnegotiation=direct`, harmless otherwise).
    ctx.set_alpn_protos(b"\x0apostgresql").map_err(ssl_error)?;
    if tls.check == Check::Nothing {
        ctx.set_verify(SslVerifyMode::NONE);
    } else {
        ctx.set_verify(SslVerifyMode::PEER);
        ctx.set_cert_store(trust_store(&tls.roots)?);
    }
    if let Some((cert, key)) = &tls.client {
        client_certificate(&mut ctx, cert, key)?;
    }
    Ok(MakeConnector {
        ctx: ctx.build(),
        check_name: tls.check == Check::ChainAndName,
        trusted: Arc::from(match &tls.roots {
            Roots::File(path) => format!("the CAs of sslrootcert {}", path.display()),
            Roots::System => format!(
                "the system's CAs in {SYSTEM_CA_DIR}; name the database's own CA with \
                 sslrootcert=FILE"
            ),
        }),
    })
}

fn trust_store(roots: &Roots) -> Result<X509Store, String> {
    let ssl_error = |e: ErrorStack| format!("TLS setup failed: {e}");
    let mut store = X509StoreBuilder::new().map_err(ssl_error)?;
    match roots {
        Roots::System => store
            .add_lookup(X509Lookup::hash_dir())
            .and_then(|lookup| lookup.add_dir(SYSTEM_CA_DIR, SslFiletype::PEM))
            .map_err(ssl_error)?,
        Roots::File(path) => {
            let pem = read_file(path, "sslrootcert", 0o002)?;
            let certs =
                X509::stack_from_pem(&pem).map_err(|e| file_error(path, "sslrootcert", e))?;
            if certs.is_empty() {
                return Err(format!(
                    "sslrootcert {} holds no PEM certificate",
                    path.display()
                ));
            }
            for cert in certs {
                store.add_cert(cert).map_err(ssl_error)?;
            }
        }
    }
    Ok(store.build())
}

fn client_certificate(ctx: &mut SslContextBuilder, cert: &Path, key: &Path) -> Result<(), String> {
    let pem = read_file(cert, "sslcert", 0o002)?;
    let mut chain = X509::stack_from_pem(&pem)
        .map_err(|e| file_error(cert, "sslcert", e))?
        .into_iter();
    let leaf = chain
        .next()
        .ok_or_else(|| format!("sslcert {} holds no PEM certificate", cert.display()))?;
    ctx.set_certificate(&leaf)
        .map_err(|e| file_error(cert, "sslcert", e))?;
    for extra in chain {
        ctx.add_extra_chain_cert(extra)
            .map_err(|e| file_error(cert, "sslcert", e))?;
    }
    // Like `database_password_file`: a client key every user may read is refused.
    let pem = zeroize::Zeroizing::new(read_file(key, "sslkey", 0o006)?);
    // An empty passphrase rather than none: without one OpenSSL would ask on the terminal,
    // and this may run inside su or sudo.
    let pkey = PKey::private_key_from_pem_passphrase(&pem, b"").map_err(|e| {
        format!(
            "sslkey {} cannot be used (an unencrypted PEM key is needed): {e}",
            key.display()
        )
    })?;
    ctx.set_private_key(&pkey)
        .and_then(|()| ctx.check_private_key())
        .map_err(|e| format!("sslkey {} does not match sslcert: {e}", key.display()))
}

fn file_error(path: &Path, what: &str, e: ErrorStack) -> String {
    format!("{what} {} cannot be used: {e}", path.display())
}

/// Reads a certificate or key file named in the URL. `forbidden` are the permission bits for
/// "every user" that make it unsafe (writable: anyone could substitute a CA; readable: a key).
fn read_file(path: &Path, what: &str, forbidden: u32) -> Result<Vec<u8>, String> {
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;
    let err = |problem: String| format!("{what} {} {problem}", path.display());
    let file = std::fs::File::open(path).map_err(|e| err(format!("cannot be read: {e}")))?;
    let meta = file
        .metadata()
        .map_err(|e| err(format!("cannot be read: {e}")))?;
    let mode = meta.permissions().mode();
    if mode & forbidden != 0 {
        let (how, fix) = if forbidden & 0o004 != 0 {
            ("readable or writable", "o-rw")
        } else {
            ("writable", "o-w")
        };
        return Err(err(format!(
            "is {how} by every user (mode {:o}); run chmod {fix} on it",
            mode & 0o777
        )));
    }
    if !meta.is_file() || meta.len() > MAX_FILE {
        return Err(err("is not a regular file of at most 1 MiB".into()));
    }
    let mut data = Vec::new();
    file.take(MAX_FILE)
        .read_to_end(&mut data)
        .map_err(|e| err(format!("cannot be read: {e}")))?;
    Ok(data)
}

/// Makes a [`Connector`] per host, for its name.
pub(crate) struct MakeConnector {
    ctx: SslContext,
    check_name: bool,
    /// Which CAs are trusted, for messages.
    trusted: Arc<str>,
}

impl<S> MakeTlsConnect<S> for MakeConnector
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = TlsStream<S>;
    type TlsConnect = Connector;
    type Error = ErrorStack;

    fn make_tls_connect(&mut self, host: &str) -> Result<Connector, ErrorStack> {
        let mut ssl = Ssl::new(&self.ctx)?;
        let addr = host.parse::<IpAddr>().ok();
        if addr.is_none() && !host.is_empty() {
            // SNI, as libpq's default sslsni=1 (never for an address).
            ssl.set_hostname(host)?;
        }
        if self.check_name {
            let param = ssl.param_mut();
            param.set_hostflags(X509CheckFlags::NO_PARTIAL_WILDCARDS);
            match addr {
                Some(addr) => param.set_ip(addr)?,
                None => param.set_host(host)?,
            }
        }
        Ok(Connector {
            ssl,
            host: host.to_owned(),
            trusted: Arc::clone(&self.trusted),
        })
    }
}

/// One TLS handshake.
pub(crate) struct Connector {
    ssl: Ssl,
    host: String,
    trusted: Arc<str>,
}

impl<S> TlsConnect<S> for Connector
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = TlsStream<S>;
    type Error = HandshakeError;
    type Future = Pin<Box<dyn Future<Output = Result<TlsStream<S>, HandshakeError>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            // OpenSSL reads a record header at a time: buffer, as postgres-openssl does.
            let stream = BufReader::with_capacity(8192, stream);
            let mut stream = SslStream::new(self.ssl, stream).map_err(|e| HandshakeError {
                message: format!("TLS setup failed: {e}"),
            })?;
            match Pin::new(&mut stream).connect().await {
                Ok(()) => Ok(TlsStream(stream)),
                Err(e) => Err(HandshakeError::new(
                    &e,
                    stream.ssl(),
                    &self.host,
                    &self.trusted,
                )),
            }
        })
    }
}

/// Why a handshake failed, in the words an administrator searches for.
#[derive(Debug)]
pub(crate) struct HandshakeError {
    message: String,
}

impl HandshakeError {
    fn new(e: &openssl::ssl::Error, ssl: &SslRef, host: &str, trusted: &str) -> HandshakeError {
        let verify = ssl.verify_result();
        let message = match verify.as_raw() {
            openssl_sys::X509_V_OK => format!("TLS handshake failed: {e}"),
            openssl_sys::X509_V_ERR_HOSTNAME_MISMATCH
            | openssl_sys::X509_V_ERR_IP_ADDRESS_MISMATCH => {
                format!(
                    "host name mismatch: the server's certificate is not issued for {host:?} \
                     (sslmode=verify-full)"
                )
            }
            _ => format!("server certificate verify failed: {verify} (trusted: {trusted})"),
        };
        HandshakeError { message }
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for HandshakeError {}

/// A TLS connection to the server.
pub(crate) struct TlsStream<S>(SslStream<BufReader<S>>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for TlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> postgres::tls::TlsStream for TlsStream<S> {
    /// `tls-server-end-point` (RFC 5929) for SCRAM-SHA-256-PLUS, so that a password login is
    /// bound to this TLS session even when the certificate is not checked.
    fn channel_binding(&self) -> ChannelBinding {
        server_end_point(self.0.ssl())
            .map_or_else(ChannelBinding::none, ChannelBinding::tls_server_end_point)
    }
}

/// The hash of the server's certificate with its signature's digest (SHA-256 for MD5 and
/// SHA-1), as RFC 5929 section 4.1 says.
fn server_end_point(ssl: &SslRef) -> Option<Vec<u8>> {
    let cert = ssl.peer_certificate()?;
    let digest = cert
        .signature_algorithm()
        .object()
        .nid()
        .signature_algorithms()?
        .digest;
    let md = match digest {
        Nid::MD5 | Nid::SHA1 => MessageDigest::sha256(),
        nid => MessageDigest::from_nid(nid)?,
    };
    cert.digest(md).ok().map(|d| d.to_vec())
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
