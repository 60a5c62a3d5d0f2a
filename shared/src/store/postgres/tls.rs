//! TLS to PostgreSQL with the system's OpenSSL: the connector for what the URL asks for
//! ([`crate::pgurl::Plan`]: `sslmode`, `sslrootcert`, `sslcert`, `sslkey`).
//!
//! Why OpenSSL and not rustls (measured, see docs/postgresql.md, "TLS"): libpq itself uses OpenSSL, so
//! host names, wildcards, IP addresses and the CN fallback are checked exactly as by `psql`;
//! Debian's security updates reach it without rebuilding apppw; the system-wide OpenSSL policy
//! (minimum protocol, ciphers) applies; and it adds 0.17 MB to the PAM module where rustls with
//! ring added 1.5 MB. Its cost is loading `libssl.so.3` (~0.7 ms) into a process that did not
//! have it yet.

use crate::pgurl::{Check, Roots, SYSTEM_CA_DIR, Tls};
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
use postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};
use std::fmt;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, BufReader, ReadBuf};
use tokio_openssl::SslStream;

/// A certificate or key file larger than this is refused.
const MAX_FILE: u64 = 1 << 20;

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
