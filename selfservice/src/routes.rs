//! The routes and the layers around them.
//!
//! From the outside in: security headers on every response; the proxy gate (only the reverse
//! proxy may talk to the page; the client's address and the page's language are worked out
//! here); error pages for the bare statuses of the layers below (404, 405, 408, 413); the
//! request time-out and body limit; the routes. Handlers run the blocking [`App`] code on
//! tokio's blocking pool.

use crate::app::{App, Ctx, Req, Signed};
use crate::form::{BodyError, MAX_BODY, cookie, read_body};
use crate::onboarding;
use crate::session::constant_time_eq;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

const STYLE: &str = include_str!("../assets/style.css");
const SCRIPT: &str = include_str!("../assets/app.js");

/// Longest a request may take, body and answer included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Sent with every response.
const SECURITY_HEADERS: &[(&str, &str)] = &[
    (
        "content-security-policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
         form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    (
        "permissions-policy",
        "camera=(), microphone=(), geolocation=(), payment=()",
    ),
];

/// How a connection reached the server (put into each request by [`crate::server`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conn {
    /// Over the Unix socket, whose mode admits only the proxy.
    Unix,
    /// Over loopback TCP, from this peer: the proxy must prove itself with the secret.
    Tcp(IpAddr),
}

/// The whole application as one axum router.
pub fn router(app: Arc<App>) -> Router {
    let pages = Router::new()
        .route("/", get(list))
        .route("/new", get(new_form).post(create))
        .route("/profile", post(profile))
        .route("/delete", get(delete_confirm).post(delete))
        .route("/signin", get(signin_get).post(signin_post))
        .route("/signout", post(signout))
        .route("/healthz", get(healthz))
        .route(
            "/style.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
        .route(
            "/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route("/logo", get(logo))
        .route("/mail/config-v1.1.xml", get(autoconfig))
        .route(
            "/.well-known/autoconfig/mail/config-v1.1.xml",
            get(autoconfig),
        )
        .fallback(not_found)
        .with_state(Arc::clone(&app));
    pages
        .layer(RequestBodyLimitLayer::new(MAX_BODY))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&app),
            error_pages,
        ))
        .layer(middleware::from_fn_with_state(Arc::clone(&app), gate))
        .layer(middleware::from_fn(security_headers))
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        body,
    )
        .into_response()
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        h.insert(*name, HeaderValue::from_static(value));
    }
    if !h.contains_key(header::CACHE_CONTROL) {
        // Every page is personal, and one shows a password: nothing is stored anywhere.
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// The client's address: the `X-Forwarded-For` entry the proxy added (read from the right,
/// skipping `trusted_proxies` in front of it). `None` when there is none, or it is no address
/// (off campus).
fn client_addr(app: &App, headers: &axum::http::HeaderMap) -> Option<IpAddr> {
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|h| h.split(','))
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .collect();
    for hop in hops.iter().rev() {
        match apppw::network::parse_client_addr(hop) {
            Some(ip) if app.web().is_trusted_proxy(ip) => {}
            other => return other,
        }
    }
    None
}

/// Only the reverse proxy talks to the page: over the Unix socket that is whoever can
/// connect; over TCP, whoever sends the shared secret. Then the language and the client.
async fn gate(State(app): State<Arc<App>>, mut req: Request, next: Next) -> Response {
    let conn = req.extensions().get::<Conn>().copied();
    let headers = req.headers();
    let query = req.uri().query().unwrap_or_default().to_owned();
    let chosen = crate::form::Form::parse(query.as_bytes())
        .get("lang")
        .map(str::to_owned);
    let remembered = cookie(headers, app.lang_cookie()).map(str::to_owned);
    let choices: Vec<&str> = chosen
        .iter()
        .chain(remembered.iter())
        .map(String::as_str)
        .collect();
    let accept = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok());
    let lang = app.catalogue().negotiate(&choices, accept);

    let from_proxy = match (conn, &app.web().proxy_secret) {
        (Some(Conn::Unix), _) => true,
        (Some(Conn::Tcp(_)), Some(secret)) => headers
            .get(secret.header.as_str())
            .is_some_and(|v| constant_time_eq(v.as_bytes(), secret.value.as_bytes())),
        _ => false,
    };
    if !from_proxy && req.uri().path() != "/healthz" {
        let peer = match conn {
            Some(Conn::Tcp(ip)) => ip.to_string(),
            _ => "unknown".into(),
        };
        crate::audit::record(
            "-",
            "request",
            &[("path", req.uri().path()), ("peer", &peer)],
            "refused-untrusted-peer",
        );
        return app.message_page(
            &lang,
            StatusCode::FORBIDDEN,
            "forbidden-heading",
            "not-via-proxy-text",
        );
    }
    if let Some(secret) = &app.web().proxy_secret {
        // Handlers never see it, so it cannot end up in a page or a log line.
        req.headers_mut().remove(secret.header.as_str());
    }
    let client = client_addr(&app, req.headers());
    req.extensions_mut().insert(Ctx {
        lang: lang.clone(),
        client,
    });
    let mut resp = next.run(req).await;
    if chosen
        .as_deref()
        .and_then(|c| app.catalogue().offered(c))
        .is_some()
    {
        // The switcher's choice lasts a year. Lax, unlike the session: the cookie says
        // nothing but the language, and a link from the site's help pages should keep it.
        let mut c = format!(
            "{}={lang}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}",
            app.lang_cookie(),
            365 * 86_400
        );
        if app.web().session.secure_cookie {
            c.push_str("; Secure");
        }
        if let Ok(v) = HeaderValue::from_str(&c) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

/// The bare statuses of axum and tower-http (405, 408, 413, and 404 of an unknown path)
/// become pages in the user's language.
async fn error_pages(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let lang = req
        .extensions()
        .get::<Ctx>()
        .map(|c| c.lang.clone())
        .unwrap_or_else(|| app.catalogue().negotiate(&[], None));
    let resp = next.run(req).await;
    let is_html = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    if is_html || resp.status().is_success() || resp.status().is_redirection() {
        return resp;
    }
    let (heading, text) = match resp.status() {
        StatusCode::METHOD_NOT_ALLOWED => ("method-heading", "method-text"),
        StatusCode::PAYLOAD_TOO_LARGE => ("too-large-heading", "too-large-text"),
        StatusCode::REQUEST_TIMEOUT => ("timeout-heading", "timeout-text"),
        StatusCode::NOT_FOUND => ("not-found-heading", "not-found-text"),
        _ => return resp,
    };
    let mut page = app.message_page(&lang, resp.status(), heading, text);
    if let Some(allow) = resp.headers().get(header::ALLOW) {
        page.headers_mut().insert(header::ALLOW, allow.clone());
    }
    page
}

/// A request as the blocking handlers take it.
async fn into_req(req: Request) -> Result<Req, StatusCode> {
    let (parts, body) = req.into_parts();
    let ctx = parts
        .extensions
        .get::<Ctx>()
        .cloned()
        .ok_or(StatusCode::FORBIDDEN)?;
    let body = match read_body(body).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => return Err(StatusCode::PAYLOAD_TOO_LARGE),
        Err(BodyError::Broken) => return Err(StatusCode::BAD_REQUEST),
    };
    Ok(Req {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or_default().to_owned(),
        headers: parts.headers,
        body,
        ctx,
    })
}

/// Runs `f` on the blocking pool.
async fn blocking(app: Arc<App>, req: Request, f: fn(&App, &Req) -> Response) -> Response {
    let req = match into_req(req).await {
        Ok(r) => r,
        Err(status) => return status.into_response(),
    };
    match tokio::task::spawn_blocking(move || f(&app, &req)).await {
        Ok(resp) => resp,
        Err(e) => {
            crate::audit::problem(&format!("a request handler failed: {e}"));
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Defines handlers that need a signed-in user.
macro_rules! signed_in {
    ($($name:ident => $method:ident),* $(,)?) => {
        $(
            async fn $name(State(app): State<Arc<App>>, req: Request) -> Response {
                fn page(app: &App, req: &Req) -> Response {
                    app.signed_in(req, |a: &App, r: &Req, w: &Signed| a.$method(r, w))
                }
                blocking(app, req, page).await
            }
        )*
    };
}

signed_in! {
    list => list,
    new_form => new_form,
    create => create,
    profile => profile,
    delete_confirm => delete_confirm,
    delete => delete,
    signout => signout,
}

async fn signin_get(State(app): State<Arc<App>>, req: Request) -> Response {
    blocking(app, req, App::signin_get).await
}

async fn signin_post(State(app): State<Arc<App>>, req: Request) -> Response {
    blocking(app, req, App::signin_post).await
}

async fn healthz(State(app): State<Arc<App>>) -> Response {
    tokio::task::spawn_blocking(move || app.healthz())
        .await
        .unwrap_or_else(|_| StatusCode::SERVICE_UNAVAILABLE.into_response())
}

async fn logo(State(app): State<Arc<App>>) -> Response {
    match &app.web().site.logo {
        Some((bytes, kind)) => (
            [
                (header::CONTENT_TYPE, *kind),
                (header::CACHE_CONTROL, "max-age=3600"),
            ],
            bytes.clone(),
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn autoconfig(State(app): State<Arc<App>>, req: Request) -> Response {
    let lang = req
        .extensions()
        .get::<Ctx>()
        .map_or_else(|| app.catalogue().negotiate(&[], None), |c| c.lang.clone());
    let title = app.site_title(&app.tr(&lang));
    onboarding::autoconfig(app.web(), title)
        .unwrap_or_else(|| StatusCode::NOT_FOUND.into_response())
}

async fn not_found(method: Method) -> Response {
    if method == Method::GET || method == Method::HEAD || method == Method::POST {
        StatusCode::NOT_FOUND.into_response()
    } else {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "GET, HEAD, POST")],
        )
            .into_response()
    }
}
