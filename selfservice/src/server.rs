//! Listening: the socket systemd passes (socket activation), or one of our own — a Unix
//! socket by default, loopback TCP with the proxy secret otherwise — and the HTTP/1.1
//! connections on it, with limits: at most [`MAX_CONNECTIONS`] at once, request heads read
//! within [`HEAD_TIMEOUT`] and bounded in size, each connection at most [`CONNECTION_LIFETIME`].

use crate::routes::Conn;
use crate::webconfig::{Listen, WebConfig};
use axum::Router;
use axum::body::Body;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// Connections served at the same time; more wait in the listen queue.
pub const MAX_CONNECTIONS: usize = 256;
/// A request's head (line and headers) must arrive within this.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// The read buffer, and so the largest request head.
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Most header lines in one request.
const MAX_HEADERS: usize = 64;
/// No connection lives longer than this (keep-alive included).
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(300);

/// A bound listener.
pub enum Listener {
    /// Unix socket (path, if it has one).
    Unix(UnixListener, Option<PathBuf>),
    /// Loopback TCP.
    Tcp(TcpListener),
}

impl std::fmt::Display for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listener::Unix(_, Some(p)) => write!(f, "unix:{}", p.display()),
            Listener::Unix(_, None) => f.write_str("an unnamed Unix socket"),
            Listener::Tcp(l) => match l.local_addr() {
                Ok(a) => write!(f, "http://{a}"),
                Err(_) => f.write_str("a TCP socket"),
            },
        }
    }
}

/// The socket systemd passed, else the one `web.toml` names; checked so that only the
/// proxy can use it.
pub fn listen(web: &WebConfig) -> Result<(Listener, bool), String> {
    let mut fds = listenfd::ListenFd::from_env();
    let inherited = if fds.len() > 0 {
        if let Some(l) = fds.take_unix_listener(0).ok().flatten() {
            l.set_nonblocking(true)
                .map_err(|e| format!("inherited socket: {e}"))?;
            let path = l
                .local_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(PathBuf::from));
            let l = UnixListener::from_std(l).map_err(|e| format!("inherited socket: {e}"))?;
            Some(Listener::Unix(l, path))
        } else if let Some(l) = fds
            .take_tcp_listener(0)
            .map_err(|e| format!("inherited socket: {e}"))?
        {
            l.set_nonblocking(true)
                .map_err(|e| format!("inherited socket: {e}"))?;
            let l = TcpListener::from_std(l).map_err(|e| format!("inherited socket: {e}"))?;
            Some(Listener::Tcp(l))
        } else {
            return Err(
                "the socket passed by systemd is neither a Unix nor a TCP stream socket".into(),
            );
        }
    } else {
        None
    };
    let activated = inherited.is_some();
    let listener = match inherited {
        Some(l) => l,
        None => match &web.listen {
            Listen::Unix(path) => {
                // A socket left by an earlier run; anything else there is not ours to remove.
                if let Ok(meta) = std::fs::symlink_metadata(path) {
                    if !meta.file_type().is_socket() {
                        return Err(format!("{} exists and is not a socket", path.display()));
                    }
                    std::fs::remove_file(path)
                        .map_err(|e| format!("cannot replace {}: {e}", path.display()))?;
                }
                let l = UnixListener::bind(path)
                    .map_err(|e| format!("cannot listen on {}: {e}", path.display()))?;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(web.socket_mode))
                    .map_err(|e| format!("cannot set the mode of {}: {e}", path.display()))?;
                Listener::Unix(l, Some(path.clone()))
            }
            Listen::Tcp(addr) => {
                let l = std::net::TcpListener::bind(addr)
                    .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
                l.set_nonblocking(true).map_err(|e| e.to_string())?;
                Listener::Tcp(TcpListener::from_std(l).map_err(|e| e.to_string())?)
            }
        },
    };
    check(&listener, web)?;
    Ok((listener, activated))
}

/// Only the proxy may be able to connect: a Unix socket that admits no other users, or a
/// loopback TCP socket with the proxy secret configured.
fn check(listener: &Listener, web: &WebConfig) -> Result<(), String> {
    match listener {
        Listener::Unix(_, None) => Err(
            "the Unix socket has no path (abstract or unnamed): any local process could connect; \
             use a socket file with SocketMode=0660 and SocketGroup= the proxy's group"
                .into(),
        ),
        Listener::Unix(_, Some(path)) => {
            let mode = std::fs::metadata(path)
                .map_err(|e| format!("{}: {e}", path.display()))?
                .permissions()
                .mode();
            if mode & 0o002 != 0 {
                return Err(format!(
                    "socket {} has mode {:04o}: every local user could claim to be the proxy; \
                     set SocketMode=0660 and SocketGroup= the proxy's group (or socket_mode)",
                    path.display(),
                    mode & 0o777
                ));
            }
            Ok(())
        }
        Listener::Tcp(l) => {
            let addr = l.local_addr().map_err(|e| e.to_string())?;
            if !addr.ip().is_loopback() {
                return Err(format!("TCP socket {addr} is not on a loopback address"));
            }
            if web.proxy_secret.is_none() {
                return Err(format!(
                    "listening on TCP {addr} needs `[proxy] secret_file` in {}: any local \
                     process could claim to be the proxy",
                    web.path.display()
                ));
            }
            Ok(())
        }
    }
}

/// Serves connections until `shutdown` completes.
pub async fn serve(
    listener: Listener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let accepted = tokio::select! {
            () = &mut shutdown => return,
            a = accept(&listener) => a,
        };
        match accepted {
            Ok(Accepted::Unix(s)) => spawn(s, Conn::Unix, router.clone(), permit),
            Ok(Accepted::Tcp(s, ip)) => spawn(s, Conn::Tcp(ip), router.clone(), permit),
            Err(e) => {
                crate::audit::problem(&format!("accepting a connection failed: {e}"));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

enum Accepted {
    Unix(tokio::net::UnixStream),
    Tcp(tokio::net::TcpStream, std::net::IpAddr),
}

async fn accept(listener: &Listener) -> std::io::Result<Accepted> {
    match listener {
        Listener::Unix(l, _) => l.accept().await.map(|(s, _)| Accepted::Unix(s)),
        Listener::Tcp(l) => l
            .accept()
            .await
            .map(|(s, a)| Accepted::Tcp(s, a.ip().to_canonical())),
    }
}

fn spawn<S>(stream: S, conn: Conn, router: Router, permit: tokio::sync::OwnedSemaphorePermit)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let service =
            hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(conn);
                let router = router.clone();
                async move {
                    let resp = router.oneshot(req.map(Body::new)).await;
                    Ok::<_, Infallible>(match resp {
                        Ok(r) => r,
                        Err(never) => match never {},
                    })
                }
            });
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEAD_TIMEOUT)
            .max_buf_size(MAX_HEAD_BYTES)
            .max_headers(MAX_HEADERS)
            .serve_connection(TokioIo::new(stream), service);
        // Errors here are clients going away or sending garbage; hyper answered if it could.
        let _ = tokio::time::timeout(CONNECTION_LIFETIME, connection).await;
        drop(permit);
    });
}
