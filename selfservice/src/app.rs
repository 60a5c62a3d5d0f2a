//! The application: who is asking (sessions, header or PAM sign-in), the page chrome and the
//! error pages; the pages themselves are in `app/signin.rs`, `app/list.rs`, `app/create.rs`
//! and `app/delete.rs`, each an `impl App` block.
//!
//! Each handler here is plain blocking code (SQLite, PAM and Argon2 block), run by
//! [`crate::routes`] on tokio's blocking pool. A handler gets a [`Req`] — method, headers,
//! the body in wiped memory, and the [`Ctx`] the proxy gate worked out — and returns a
//! response.

use crate::audit;
use crate::credentials::{self, CreateError, LabelError};
use crate::form::{Form, cookie};
use crate::i18n::{Catalogue, Tr};
use crate::notify::{self, Change};
use crate::onboarding;
use crate::session::{Created, Limiter, Sessions, Submit, constant_time_eq, random_token};
use crate::templates::{
    Card, Choice, Chrome, CreatedPage, DeletePage, LangLink, LastUse, ListPage, MessagePage,
    NewPage, ServerView, Settings, SignInPage, UserBar,
};
use crate::webconfig::{SignIn, WebConfig};
use apppw::Config;
use apppw::config::Database;
use apppw::store::{Credential, Store, StoreError};
use apppw::timefmt::parse_expiry;
use askama::Template;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use fluent_templates::LanguageIdentifier;
use fluent_templates::fluent_bundle::FluentValue;
use pamauth::PamOutcome;
use std::net::IpAddr;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

mod create;
mod delete;
mod list;
mod signin;

/// What the proxy gate found out about a request.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The page's language.
    pub lang: LanguageIdentifier,
    /// The client's address as the proxy forwarded it; `None` if it did not (off campus).
    pub client: Option<IpAddr>,
}

/// One request, as the handlers see it.
pub struct Req {
    /// Method.
    pub method: Method,
    /// Path (for log lines).
    pub path: String,
    /// Query string without `?`.
    pub query: String,
    /// Headers (the proxy secret removed).
    pub headers: HeaderMap,
    /// The body, wiped when dropped.
    pub body: Zeroizing<Vec<u8>>,
    /// Language and client.
    pub ctx: Ctx,
}

impl Req {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn form(&self) -> Form {
        Form::parse(&self.body)
    }

    fn query_form(&self) -> Form {
        Form::parse(self.query.as_bytes())
    }

    fn client_text(&self) -> String {
        self.ctx
            .client
            .map_or_else(|| "unknown".into(), |ip| ip.to_string())
    }
}

/// Checks a normal password. A trait so that tests can stand in for libpam.
pub trait PasswordCheck: Send + Sync {
    /// PAM service `service` (auth, then account) for `user`, `PAM_RHOST` = `rhost`; on
    /// success also the user name PAM ended with.
    fn check(
        &self,
        service: &str,
        user: &str,
        password: &[u8],
        rhost: Option<&str>,
    ) -> (PamOutcome, Option<String>);
}

/// The real thing: libpam.
pub struct Pam;

impl PasswordCheck for Pam {
    fn check(
        &self,
        service: &str,
        user: &str,
        password: &[u8],
        rhost: Option<&str>,
    ) -> (PamOutcome, Option<String>) {
        pamauth::authenticate(service, user, password, rhost)
    }
}

/// The one canonical form of every user name the page gets from authentication (the name PAM
/// returned, or the proxy's header): SPEC "Trust", the same rule as every other front-end
/// ([`Config::canonical_user`]).
#[must_use]
pub fn canonical_user(config: &Config, name: &str) -> String {
    config.canonical_user(name)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn typed(status: StatusCode, kind: &'static str, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, kind)], body).into_response()
}

fn html(status: StatusCode, page: &impl Template) -> Response {
    const HTML: &str = "text/html; charset=utf-8";
    match page.render() {
        Ok(body) => typed(status, HTML, body),
        Err(e) => {
            audit::problem(&format!("rendering a page failed: {e}"));
            typed(StatusCode::INTERNAL_SERVER_ERROR, HTML, String::new())
        }
    }
}

/// `303 See Other` to a relative location.
fn redirect(location: &'static str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
}

fn with_cookie(mut resp: Response, cookie: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// The signed-in user of one request.
pub struct Signed {
    sid: String,
    user: String,
    csrf: String,
    /// The session was started by this request (header mode): send its cookie.
    new: bool,
}

/// Who sent a request.
enum Who {
    User(Signed),
    Anonymous,
    Refused(Response),
}

/// Why a POST was not accepted.
enum PostCheck {
    Ok,
    /// Sent from another site: refused outright.
    CrossSite,
    /// The token is missing or not this session's (an old tab, a restarted session): the form
    /// is shown again.
    Expired,
}

/// The self-service application.
pub struct App {
    config: Config,
    web: WebConfig,
    catalogue: Catalogue,
    pam: Box<dyn PasswordCheck>,
    sessions: Mutex<Sessions>,
    /// Signalled whenever a creation ends, for repeated submits waiting on it.
    created: Condvar,
    signin_by_address: Mutex<Limiter>,
    signin_by_user: Mutex<Limiter>,
    creates: Mutex<Limiter>,
}

impl App {
    /// An application over the main config, the web config, the texts and a password checker.
    #[must_use]
    pub fn new(
        config: Config,
        web: WebConfig,
        catalogue: Catalogue,
        pam: Box<dyn PasswordCheck>,
    ) -> App {
        let l = web.limits;
        App {
            sessions: Mutex::new(Sessions::new(web.session)),
            created: Condvar::new(),
            signin_by_address: Mutex::new(Limiter::new(l.signin_failures_per_address, l.window)),
            signin_by_user: Mutex::new(Limiter::new(l.signin_failures_per_user, l.window)),
            creates: Mutex::new(Limiter::new(l.creates_per_user, l.window)),
            config,
            web,
            catalogue,
            pam,
        }
    }

    /// The web config.
    #[must_use]
    pub fn web(&self) -> &WebConfig {
        &self.web
    }

    /// The texts.
    #[must_use]
    pub fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    /// Texts and times in `lang`.
    #[must_use]
    pub fn tr<'a>(&'a self, lang: &'a LanguageIdentifier) -> Tr<'a> {
        Tr::new(&self.catalogue, lang, &self.web.site.timezone)
    }

    /// The site's name in `tr`'s language.
    #[must_use]
    pub fn site_title(&self, tr: &Tr<'_>) -> String {
        self.web
            .site
            .title
            .clone()
            .unwrap_or_else(|| tr.t("app-title"))
    }

    fn secure(&self) -> bool {
        self.web.session.secure_cookie
    }

    fn session_cookie(&self) -> &'static str {
        if self.secure() {
            "__Host-apppw-session"
        } else {
            "apppw-session"
        }
    }

    fn signin_cookie(&self) -> &'static str {
        if self.secure() {
            "__Host-apppw-signin"
        } else {
            "apppw-signin"
        }
    }

    /// The cookie that remembers the language chosen with the switcher.
    #[must_use]
    pub fn lang_cookie(&self) -> &'static str {
        if self.secure() {
            "__Host-apppw-lang"
        } else {
            "apppw-lang"
        }
    }

    /// A `Set-Cookie` value.
    #[must_use]
    pub fn cookie(&self, name: &str, value: &str, max_age: Option<u32>) -> String {
        let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
        if self.secure() {
            c.push_str("; Secure");
        }
        if let Some(age) = max_age {
            c.push_str(&format!("; Max-Age={age}"));
        }
        c
    }

    // ---------------------------------------------------------------------------------
    // Pages.

    /// The chrome of a page in the request's language.
    fn chrome<'a>(&'a self, tr: Tr<'a>, title: String, who: Option<&'a Signed>) -> Chrome<'a> {
        let user = who.map(|w| {
            let (logout_url, can_sign_out) = match &self.web.signin {
                SignIn::Header { logout_url, .. } => (logout_url.as_deref(), false),
                SignIn::Pam { .. } => (None, true),
            };
            UserBar {
                user: &w.user,
                csrf: &w.csrf,
                logout_url,
                can_sign_out,
            }
        });
        let langs = self
            .catalogue
            .languages()
            .iter()
            .map(|l| LangLink {
                tag: l.id.to_string(),
                name: l.name.clone(),
                current: l.id == *tr.id(),
            })
            .collect();
        Chrome {
            site_title: self.site_title(&tr),
            title,
            user,
            langs,
            help_url: self.web.site.help_url.as_deref(),
            logo: self.web.site.logo.is_some(),
            tr,
        }
    }

    /// A heading-and-text page in `lang`.
    #[must_use]
    pub fn message_page(
        &self,
        lang: &LanguageIdentifier,
        status: StatusCode,
        heading: &str,
        text: &str,
    ) -> Response {
        self.message_with(lang, status, heading, text, None, None)
    }

    fn message_with(
        &self,
        lang: &LanguageIdentifier,
        status: StatusCode,
        heading: &str,
        text: &str,
        link: Option<(&str, &str)>,
        who: Option<&Signed>,
    ) -> Response {
        let tr = self.tr(lang);
        let heading = tr.t(heading);
        let page = MessagePage {
            c: self.chrome(tr, heading.clone(), who),
            heading,
            text: if text.is_empty() {
                String::new()
            } else {
                tr.t(text)
            },
            link: link.map(|(href, label)| (href.to_owned(), tr.t(label))),
        };
        html(status, &page)
    }

    fn not_found(&self, req: &Req, who: Option<&Signed>) -> Response {
        self.message_with(
            &req.ctx.lang,
            StatusCode::NOT_FOUND,
            "not-found-heading",
            "not-found-text",
            who.map(|_| ("./", "back-to-list")),
            who,
        )
    }

    fn server_error(&self, req: &Req, what: &str, e: &dyn std::fmt::Display) -> Response {
        audit::problem(&format!("{what}: {e}"));
        self.message_page(
            &req.ctx.lang,
            StatusCode::INTERNAL_SERVER_ERROR,
            "error-heading",
            "error-text",
        )
    }

    fn cross_site(&self, req: &Req) -> Response {
        self.message_page(
            &req.ctx.lang,
            StatusCode::FORBIDDEN,
            "refused-heading",
            "cross-site-text",
        )
    }

    /// A POST from another site — or a sibling site under the same domain — is refused
    /// whatever it carries (defence in depth besides the CSRF token and `SameSite=Strict`).
    fn is_cross_site(req: &Req) -> bool {
        req.header("sec-fetch-site").is_some_and(|v| {
            v.eq_ignore_ascii_case("cross-site") || v.eq_ignore_ascii_case("same-site")
        })
    }

    fn check_post(&self, req: &Req, who: &Signed, form: &Form) -> PostCheck {
        if Self::is_cross_site(req) {
            audit::record(
                &who.user,
                "post",
                &[("path", &req.path), ("client", &req.client_text())],
                "refused-cross-site",
            );
            return PostCheck::CrossSite;
        }
        let sent = form.get("csrf").unwrap_or_default();
        if constant_time_eq(sent.as_bytes(), who.csrf.as_bytes()) {
            return PostCheck::Ok;
        }
        audit::record(
            &who.user,
            "post",
            &[("path", &req.path), ("client", &req.client_text())],
            "refused-csrf",
        );
        PostCheck::Expired
    }

    // ---------------------------------------------------------------------------------
    // Who is asking.

    /// Who sent this request: a session, or (header mode) the reverse proxy's word. The gate
    /// has made sure the request came through the proxy.
    fn identify(&self, req: &Req, now: Instant) -> Who {
        let cookie = cookie(&req.headers, self.session_cookie());
        let mut sessions = lock(&self.sessions);
        let current = cookie.and_then(|id| {
            sessions.get(id, now).map(|s| Signed {
                sid: id.to_owned(),
                user: s.user.clone(),
                csrf: s.csrf.clone(),
                new: false,
            })
        });
        let SignIn::Header { header, .. } = &self.web.signin else {
            return current.map_or(Who::Anonymous, Who::User);
        };
        let Some(raw) = req.headers.get(header.as_str()) else {
            // The proxy sends the header on every request while its SSO session lasts.
            if let Some(c) = &current {
                sessions.end(&c.sid);
            }
            return Who::Anonymous;
        };
        drop(sessions);
        // Header values are bytes; a UTF-8 name is taken as it is, anything else refused.
        let asserted = String::from_utf8_lossy(raw.as_bytes()).trim().to_owned();
        if asserted.is_empty() {
            return Who::Anonymous;
        }
        let user = canonical_user(&self.config, &asserted);
        if std::str::from_utf8(raw.as_bytes()).is_err() || apppw::input::check_user(&user).is_err()
        {
            audit::record(
                &asserted,
                "signin",
                &[("method", "header"), ("client", &req.client_text())],
                "refused-bad-user",
            );
            return Who::Refused(self.message_page(
                &req.ctx.lang,
                StatusCode::FORBIDDEN,
                "forbidden-heading",
                "bad-user-text",
            ));
        }
        let mut sessions = lock(&self.sessions);
        match current {
            Some(c) if c.user == user => Who::User(c),
            stale => {
                if let Some(c) = stale {
                    sessions.end(&c.sid);
                }
                let Some(sid) = sessions.start(&user, now) else {
                    drop(sessions);
                    return Who::Refused(self.server_error(req, "session", &"no random numbers"));
                };
                let csrf = sessions
                    .get(&sid, now)
                    .map(|s| s.csrf.clone())
                    .unwrap_or_default();
                drop(sessions);
                audit::record(
                    &user,
                    "signin",
                    &[("method", "header"), ("client", &req.client_text())],
                    "ok",
                );
                Who::User(Signed {
                    sid,
                    user,
                    csrf,
                    new: true,
                })
            }
        }
    }

    /// Runs `page` for a signed-in user; otherwise the sign-in page (PAM mode: for a POST with
    /// a one-line explanation that the session had ended) or "not signed in".
    pub fn signed_in(
        &self,
        req: &Req,
        page: impl FnOnce(&App, &Req, &Signed) -> Response,
    ) -> Response {
        let now = Instant::now();
        match self.identify(req, now) {
            Who::Refused(r) => r,
            Who::Anonymous => match &self.web.signin {
                SignIn::Pam { .. } if req.method == Method::POST => self.signin_form_fresh(
                    req,
                    StatusCode::UNAUTHORIZED,
                    "",
                    Some("session-ended"),
                    None,
                ),
                SignIn::Pam { .. } => redirect("signin"),
                SignIn::Header { .. } => self.message_page(
                    &req.ctx.lang,
                    StatusCode::FORBIDDEN,
                    "not-signed-in-heading",
                    "not-signed-in-text",
                ),
            },
            Who::User(who) => {
                let resp = page(self, req, &who);
                if who.new {
                    with_cookie(resp, &self.cookie(self.session_cookie(), &who.sid, None))
                } else {
                    resp
                }
            }
        }
    }
}
