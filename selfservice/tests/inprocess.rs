//! The application in process, with a stand-in for libpam: what PAM says decides who signs in.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use apppw_web::app::{App, PasswordCheck};
use apppw_web::i18n::Catalogue;
use apppw_web::routes::{Conn, router};
use apppw_web::webconfig::WebConfig;
use axum::body::Body;
use axum::http::{Request, Response, header};
use http_body_util::BodyExt;
use pamauth::PamOutcome;
use std::path::Path;
use tower::ServiceExt;

/// A PAM stack that maps names the way directory modules do (`Alice@EXAMPLE.ORG` is `ALICE`),
/// and one case where it leaves no user name at all.
struct Directory;

impl PasswordCheck for Directory {
    fn check(
        &self,
        _service: &str,
        user: &str,
        password: &[u8],
        _rhost: Option<&str>,
    ) -> (PamOutcome, Option<String>) {
        match (user, password) {
            ("Alice@EXAMPLE.ORG", b"right") => (PamOutcome::Accepted, Some("ALICE".into())),
            ("ghost", b"right") => (PamOutcome::Accepted, None),
            _ => (PamOutcome::Refused("Authentication failure".into()), None),
        }
    }
}

fn app(dir: &Path) -> axum::Router {
    let config = apppw::Config::parse(
        &dir.join("apppw.toml"),
        &format!(
            "database = \"{}\"\n[network]\ncampus = [\"192.0.2.0/24\"]\n",
            dir.join("apppw.db").display()
        ),
    )
    .unwrap();
    let web = WebConfig::parse(
        &dir.join("web.toml"),
        "[signin]\nmode = \"pam\"\n[session]\nsecure_cookie = false\n",
    )
    .unwrap();
    let catalogue = Catalogue::load(None, "en").unwrap();
    router(std::sync::Arc::new(App::new(
        config,
        web,
        catalogue,
        Box::new(Directory),
    )))
}

async fn send(
    app: &axum::Router,
    method: &str,
    path: &str,
    cookie: &str,
    body: String,
) -> (Response<Body>, String) {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("x-forwarded-for", "192.0.2.10")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::COOKIE, cookie)
        .body(Body::from(body))
        .unwrap();
    req.extensions_mut().insert(Conn::Unix);
    let resp = app.clone().oneshot(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (
        Response::from_parts(parts, Body::empty()),
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

fn set_cookie(resp: &Response<Body>, name: &str) -> Option<String> {
    resp.headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&format!("{name}=")))
        .and_then(|c| c.split(';').next())
        .map(str::to_owned)
}

async fn sign_in(app: &axum::Router, user: &str) -> (Response<Body>, String) {
    let (resp, page) = send(app, "GET", "/signin", "", String::new()).await;
    let token = set_cookie(&resp, "apppw-signin").unwrap();
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let body = format!(
        "csrf={csrf}&user={}&password=right",
        user.replace('@', "%40")
    );
    send(app, "POST", "/signin", &token, body).await
}

#[tokio::test]
async fn the_name_pam_returned_signs_in_canonical_not_the_typed_one() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path());
    let (resp, _) = sign_in(&app, "Alice@EXAMPLE.ORG").await;
    assert_eq!(resp.status(), 303);
    let session = set_cookie(&resp, "apppw-session").unwrap();
    let (_, list) = send(&app, "GET", "/", &session, String::new()).await;
    assert!(list.contains("Signed in as alice"), "{list}");
    assert!(
        !list.contains("Alice@EXAMPLE.ORG") && !list.contains("ALICE"),
        "{list}"
    );

    // PAM said yes but left no user name: nobody is signed in.
    let (resp, page) = sign_in(&app, "ghost").await;
    assert_eq!(resp.status(), 503, "{page}");
    assert!(set_cookie(&resp, "apppw-session").is_none());
}
