//! The application: sign-in, sessions, and the create / list / delete pages.
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

/// The expiry choices of the create form: values for `apppw create --expires` ("" = never).
const EXPIRY_CHOICES: &[&str] = &["", "30d", "90d", "365d"];
/// How long a repeated submit waits for the first one to finish creating.
const WAIT_FOR_FIRST: Duration = Duration::from_secs(30);

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

    // ---------------------------------------------------------------------------------
    // Sign-in (PAM mode).

    fn off_campus_refused(&self, req: &Req, campus_only: bool) -> bool {
        campus_only
            && !self
                .config
                .network
                .locate(req.ctx.client.map(|ip| ip.to_string()).as_deref())
                .is_campus()
    }

    fn off_campus_page(&self, req: &Req) -> Response {
        self.message_page(
            &req.ctx.lang,
            StatusCode::FORBIDDEN,
            "off-campus-heading",
            "off-campus-text",
        )
    }

    /// `GET /signin`.
    pub fn signin_get(&self, req: &Req) -> Response {
        let SignIn::Pam { campus_only, .. } = &self.web.signin else {
            return redirect("./");
        };
        if let Some(id) = cookie(&req.headers, self.session_cookie()) {
            if lock(&self.sessions).get(id, Instant::now()).is_some() {
                return redirect("./");
            }
        }
        if self.off_campus_refused(req, *campus_only) {
            return self.off_campus_page(req);
        }
        self.signin_form_fresh(req, StatusCode::OK, "", None, None)
    }

    /// The sign-in form with a new pre-session token (in the form and a cookie).
    fn signin_form_fresh(
        &self,
        req: &Req,
        status: StatusCode,
        user: &str,
        notice: Option<&str>,
        error: Option<String>,
    ) -> Response {
        let Some(token) = random_token() else {
            return self.server_error(req, "sign-in", &"no random numbers");
        };
        let resp = self.signin_form(req, status, &token, user, notice, error);
        with_cookie(resp, &self.cookie(self.signin_cookie(), &token, None))
    }

    fn signin_form(
        &self,
        req: &Req,
        status: StatusCode,
        token: &str,
        user: &str,
        notice: Option<&str>,
        error: Option<String>,
    ) -> Response {
        let tr = self.tr(&req.ctx.lang);
        let page = SignInPage {
            c: self.chrome(tr, tr.t("signin-heading"), None),
            token,
            user,
            notice: notice.map(|n| tr.t(n)),
            error,
        };
        html(status, &page)
    }

    /// `POST /signin`.
    pub fn signin_post(&self, req: &Req) -> Response {
        let SignIn::Pam {
            service,
            campus_only,
        } = &self.web.signin
        else {
            return redirect("./");
        };
        let now = Instant::now();
        let tr = self.tr(&req.ctx.lang);
        let form = req.form();
        let typed = form.get("user").map(str::trim).unwrap_or_default();
        let shown_user = if typed.chars().count() <= 256 {
            typed
        } else {
            ""
        };
        if Self::is_cross_site(req) {
            return self.cross_site(req);
        }
        let token = cookie(&req.headers, self.signin_cookie());
        let token_ok = match (token, form.get("csrf")) {
            (Some(c), Some(f)) => constant_time_eq(c.as_bytes(), f.as_bytes()),
            _ => false,
        };
        let Some(token) = token.filter(|_| token_ok) else {
            // The form was open too long, or its cookie is gone: the form again, name kept.
            return self.signin_form_fresh(
                req,
                StatusCode::FORBIDDEN,
                shown_user,
                Some("signin-expired"),
                None,
            );
        };
        if self.off_campus_refused(req, *campus_only) {
            return self.off_campus_page(req);
        }
        let client = req.client_text();
        let password = form.get("password").unwrap_or_default();
        let limit_key = canonical_user(&self.config, typed);

        let blocked = {
            let by_addr = lock(&self.signin_by_address).blocked(&client, now);
            let by_user = lock(&self.signin_by_user).blocked(&limit_key, now);
            by_addr.max(by_user)
        };
        if let Some(wait) = blocked {
            audit::record(
                typed,
                "signin",
                &[("method", "pam"), ("client", &client)],
                "rate-limited",
            );
            let minutes = wait.as_secs().div_ceil(60).max(1);
            let msg = tr.ta(
                "signin-rate-limited",
                &[("minutes", FluentValue::from(minutes))],
            );
            let mut resp = self.signin_form(
                req,
                StatusCode::TOO_MANY_REQUESTS,
                token,
                shown_user,
                None,
                Some(msg),
            );
            if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return resp;
        }

        let well_formed = apppw::input::check_user(typed).is_ok()
            && !password.is_empty()
            && apppw::input::check_password(password.as_bytes()).is_ok();
        let (outcome, pam_user) = if well_formed {
            self.pam
                .check(service, typed, password.as_bytes(), Some(&client))
        } else {
            (PamOutcome::Refused("malformed".into()), None)
        };
        // The name PAM ended with is who signed in; a module that left none is refused.
        let user = pam_user
            .map(|u| canonical_user(&self.config, &u))
            .filter(|u| apppw::input::check_user(u).is_ok());
        match (outcome, user) {
            (PamOutcome::Accepted, Some(user)) => {
                lock(&self.signin_by_user).clear(&limit_key);
                let Some(sid) = lock(&self.sessions).start(&user, now) else {
                    return self.server_error(req, "sign-in", &"no random numbers");
                };
                let fields: Vec<(&str, &str)> = if user == typed {
                    vec![("method", "pam"), ("client", &client)]
                } else {
                    vec![("method", "pam"), ("typed", typed), ("client", &client)]
                };
                audit::record(&user, "signin", &fields, "ok");
                let resp = with_cookie(
                    redirect("./"),
                    &self.cookie(self.session_cookie(), &sid, None),
                );
                with_cookie(resp, &self.cookie(self.signin_cookie(), "", Some(0)))
            }
            (PamOutcome::Accepted, None) => {
                audit::problem(&format!(
                    "PAM service {service} accepted {} but left no usable PAM_USER; refused",
                    apppw::audit::escape(typed)
                ));
                self.signin_form(
                    req,
                    StatusCode::SERVICE_UNAVAILABLE,
                    token,
                    shown_user,
                    None,
                    Some(tr.t("signin-unavailable")),
                )
            }
            (PamOutcome::Refused(why), _) => {
                lock(&self.signin_by_address).hit(&client, now);
                lock(&self.signin_by_user).hit(&limit_key, now);
                audit::record(
                    typed,
                    "signin",
                    &[("method", "pam"), ("client", &client), ("detail", &why)],
                    "refused",
                );
                self.signin_form(
                    req,
                    StatusCode::UNAUTHORIZED,
                    token,
                    shown_user,
                    None,
                    Some(tr.t("signin-failed")),
                )
            }
            (PamOutcome::Unavailable(why), _) => {
                audit::problem(&format!("PAM service {service} cannot decide: {why}"));
                self.signin_form(
                    req,
                    StatusCode::SERVICE_UNAVAILABLE,
                    token,
                    shown_user,
                    None,
                    Some(tr.t("signin-unavailable")),
                )
            }
        }
    }

    /// `POST /signout`.
    pub fn signout(&self, req: &Req, who: &Signed) -> Response {
        let form = req.form();
        match self.check_post(req, who, &form) {
            PostCheck::CrossSite => return self.cross_site(req),
            // An old tab's sign-out button: the list, with the bar's fresh sign-out form.
            PostCheck::Expired => return self.list_page(req, who, Some("form-expired")),
            PostCheck::Ok => {}
        }
        lock(&self.sessions).end(&who.sid);
        audit::record(
            &who.user,
            "signout",
            &[("client", &req.client_text())],
            "ok",
        );
        let resp = self.message_with(
            &req.ctx.lang,
            StatusCode::OK,
            "signed-out",
            "",
            Some(("signin", "sign-in-again")),
            None,
        );
        with_cookie(resp, &self.cookie(self.session_cookie(), "", Some(0)))
    }

    // ---------------------------------------------------------------------------------
    // The store.

    /// The database's directory exists (for an SQLite file): a fresh installation has no
    /// file until the first app password, but a missing directory is a broken one.
    fn store_dir_problem(&self) -> Option<String> {
        let Database::Sqlite(path) = &self.config.database else {
            return None;
        };
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty())?;
        (!dir.is_dir()).then(|| {
            format!(
                "the directory {} of database {} does not exist",
                dir.display(),
                path.display()
            )
        })
    }

    fn own_credentials(&self, user: &str) -> Result<Vec<Credential>, String> {
        if let Some(p) = self.store_dir_problem() {
            return Err(p);
        }
        match Store::open_read_only(&self.config.database) {
            Ok(store) => store.list(Some(user)).map_err(|e| e.to_string()),
            // A fresh installation has no database until the first app password.
            Err(StoreError::Missing(_)) => Ok(Vec::new()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// `GET /healthz`: the store can be read.
    pub fn healthz(&self) -> Response {
        const TEXT: &str = "text/plain; charset=utf-8";
        match self.own_credentials("") {
            Ok(_) => typed(StatusCode::OK, TEXT, "ok\n".into()),
            Err(e) => {
                audit::problem(&format!("health check: {e}"));
                typed(
                    StatusCode::SERVICE_UNAVAILABLE,
                    TEXT,
                    "store unavailable\n".into(),
                )
            }
        }
    }

    // ---------------------------------------------------------------------------------
    // The list.

    /// `GET /`.
    pub fn list(&self, req: &Req, who: &Signed) -> Response {
        self.list_page(req, who, None)
    }

    fn list_page(&self, req: &Req, who: &Signed, notice: Option<&str>) -> Response {
        let tr = self.tr(&req.ctx.lang);
        let creds = match self.own_credentials(&who.user) {
            Ok(c) => c,
            Err(e) => return self.server_error(req, "list", &e),
        };
        let flash = lock(&self.sessions)
            .get(&who.sid, Instant::now())
            .and_then(|sess| sess.flash.take())
            .map(|f| f.0)
            .or_else(|| notice.map(|n| tr.t(n)));
        let now = apppw::now();
        let cards = creds.iter().map(|c| self.card(&tr, c, now)).collect();
        let page = ListPage {
            c: self.chrome(tr, tr.t("list-heading"), Some(who)),
            flash,
            cards,
        };
        html(StatusCode::OK, &page)
    }

    fn service_name(tr: &Tr<'_>, service: &str) -> String {
        let id = format!("service-{service}");
        let text = tr.t(&id);
        if text == id { service.to_owned() } else { text }
    }

    fn card(&self, tr: &Tr<'_>, c: &Credential, now: i64) -> Card {
        let time = |t: i64| (tr.iso(t), tr.when(t));
        let last_used = c.last_used_at.map(|t| LastUse {
            at: time(t),
            place: c.last_used_ip.as_ref().map(|ip| {
                let place = if self.config.network.locate(Some(ip)).is_campus() {
                    tr.t("on-campus")
                } else {
                    tr.t("off-campus")
                };
                tr.ta(
                    "last-used-where",
                    &[
                        ("ip", FluentValue::from(ip.as_str())),
                        ("place", FluentValue::from(place)),
                    ],
                )
            }),
            via: c
                .last_used_service
                .as_ref()
                .map(|s| tr.t1("last-used-via", "service", s)),
        });
        let services = match &c.services {
            None => tr.t("all-services"),
            Some(list) => list
                .iter()
                .map(|s| Self::service_name(tr, s))
                .collect::<Vec<_>>()
                .join(if tr.lang() == "ja" { "、" } else { ", " }),
        };
        Card {
            id: c.id,
            label: c.label.clone(),
            expired: c.expires_at.is_some_and(|t| t <= now),
            created: time(c.created_at),
            last_used,
            expires: c.expires_at.map(time),
            services,
        }
    }

    // ---------------------------------------------------------------------------------
    // Create.

    /// `GET /new`.
    pub fn new_form(&self, req: &Req, who: &Signed) -> Response {
        self.new_page(req, who, &Filled::default(), None, None, StatusCode::OK)
    }

    fn new_page(
        &self,
        req: &Req,
        who: &Signed,
        filled: &Filled<'_>,
        notice: Option<&str>,
        error: Option<String>,
        status: StatusCode,
    ) -> Response {
        let tr = self.tr(&req.ctx.lang);
        let nonce = lock(&self.sessions)
            .get(&who.sid, Instant::now())
            .and_then(crate::session::Session::new_nonce);
        let Some(nonce) = nonce else {
            return self.server_error(req, "create form", &"session or random numbers unavailable");
        };
        let services = self
            .web
            .services
            .iter()
            .map(|s| {
                let checked = filled.services.contains(&s.as_str());
                Choice {
                    value: s.clone(),
                    name: Self::service_name(&tr, s),
                    checked,
                    selected: checked,
                }
            })
            .collect();
        let expiry = EXPIRY_CHOICES
            .iter()
            .map(|v| {
                let id = if v.is_empty() {
                    "expiry-never".to_owned()
                } else {
                    format!("expiry-{v}")
                };
                let selected = *v == filled.expires;
                Choice {
                    value: (*v).to_owned(),
                    name: tr.t(&id),
                    checked: selected,
                    selected,
                }
            })
            .collect();
        let page = NewPage {
            c: self.chrome(tr, tr.t("new-heading"), Some(who)),
            csrf: &who.csrf,
            nonce: &nonce,
            label: filled.label,
            services,
            expiry,
            notice: notice.map(|n| tr.t(n)),
            error,
        };
        html(status, &page)
    }

    fn flash_and_go_home(&self, who: &Signed, text: String) -> Response {
        if let Some(sess) = lock(&self.sessions).get(&who.sid, Instant::now()) {
            sess.flash = Some(crate::session::Flash(text));
        }
        redirect("./")
    }

    /// `POST /new`.
    pub fn create(&self, req: &Req, who: &Signed) -> Response {
        let tr = self.tr(&req.ctx.lang);
        let form = req.form();
        let filled = Filled {
            label: form.get("label").unwrap_or_default(),
            services: form.all("service"),
            expires: form.get("expires").unwrap_or_default(),
        };
        match self.check_post(req, who, &form) {
            PostCheck::CrossSite => return self.cross_site(req),
            PostCheck::Expired => {
                return self.new_page(
                    req,
                    who,
                    &filled,
                    Some("form-expired"),
                    None,
                    StatusCode::FORBIDDEN,
                );
            }
            PostCheck::Ok => {}
        }
        let nonce = form.get("nonce");
        let deadline = Instant::now() + WAIT_FOR_FIRST;
        let mut sessions = lock(&self.sessions);
        loop {
            let now = Instant::now();
            let Some(sess) = sessions.get(&who.sid, now) else {
                drop(sessions);
                return self.new_page(
                    req,
                    who,
                    &filled,
                    Some("form-expired"),
                    None,
                    StatusCode::FORBIDDEN,
                );
            };
            match sess.submit(nonce, now) {
                Submit::Fresh => break,
                Submit::Running if now < deadline => {
                    // A double click: the first request is creating; show what it creates.
                    sessions = self
                        .created
                        .wait_timeout(sessions, deadline - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
                Submit::Running => {
                    drop(sessions);
                    return self.server_error(
                        req,
                        "create",
                        &"a repeated submit waited too long for the first",
                    );
                }
                Submit::Done {
                    cred,
                    password: Some(pw),
                } => {
                    drop(sessions);
                    audit::record(
                        &who.user,
                        "create",
                        &[
                            ("label", &cred.label),
                            ("id", &cred.id.to_string()),
                            ("client", &req.client_text()),
                        ],
                        "shown-again",
                    );
                    return self.created_page(
                        req,
                        who,
                        &cred,
                        &pw,
                        true,
                        nonce.unwrap_or_default(),
                    );
                }
                Submit::Done { password: None, .. } => {
                    drop(sessions);
                    return self.flash_and_go_home(who, tr.t("already-created-flash"));
                }
                Submit::Unknown => {
                    // A form this session no longer remembers: again, as typed, to send anew.
                    drop(sessions);
                    return self.new_page(
                        req,
                        who,
                        &filled,
                        Some("form-expired"),
                        None,
                        StatusCode::FORBIDDEN,
                    );
                }
            }
        }
        drop(sessions);
        // From here on this request owns the nonce; every way out ends the creation.
        let mut running = Running {
            app: self,
            sid: &who.sid,
            nonce,
            created: None,
        };
        let resp = self.create_fresh(req, who, &filled, &mut running);
        drop(running);
        resp
    }

    fn create_fresh(
        &self,
        req: &Req,
        who: &Signed,
        filled: &Filled<'_>,
        running: &mut Running<'_>,
    ) -> Response {
        let tr = self.tr(&req.ctx.lang);
        let again = |error: String, status: StatusCode| {
            self.new_page(req, who, filled, None, Some(error), status)
        };
        let trimmed = filled.label.trim();
        match credentials::check_label(trimmed) {
            Ok(()) => {}
            Err(LabelError::Empty) => return again(tr.t("name-empty"), StatusCode::BAD_REQUEST),
            Err(LabelError::Invalid) => {
                return again(tr.t("name-invalid"), StatusCode::BAD_REQUEST);
            }
            Err(LabelError::Invisible(c)) => {
                let code = format!("U+{:04X}", u32::from(c));
                return again(
                    tr.t1("name-invisible", "char", &code),
                    StatusCode::BAD_REQUEST,
                );
            }
        }
        let mut chosen: Vec<String> = Vec::new();
        for svc in &filled.services {
            if !self.web.services.iter().any(|o| o == svc) {
                return again(tr.t("service-invalid"), StatusCode::BAD_REQUEST);
            }
            if !chosen.iter().any(|c| c == svc) {
                chosen.push((*svc).to_owned());
            }
        }
        let wall = apppw::now();
        let expires_at = if filled.expires.is_empty() {
            None
        } else if EXPIRY_CHOICES.contains(&filled.expires) {
            match parse_expiry(filled.expires, wall) {
                Ok(t) => Some(t),
                Err(_) => return again(tr.t("expiry-invalid"), StatusCode::BAD_REQUEST),
            }
        } else {
            return again(tr.t("expiry-invalid"), StatusCode::BAD_REQUEST);
        };

        let existing = match self.own_credentials(&who.user) {
            Ok(c) => c,
            Err(e) => return self.server_error(req, "create", &e),
        };
        let max = self.web.limits.max_per_user;
        if max > 0 && existing.len() >= usize::try_from(max).unwrap_or(usize::MAX) {
            return again(
                tr.ta("too-many", &[("max", FluentValue::from(max))]),
                StatusCode::CONFLICT,
            );
        }
        let now = Instant::now();
        if lock(&self.creates).blocked(&who.user, now).is_some() {
            return again(tr.t("create-rate-limited"), StatusCode::TOO_MANY_REQUESTS);
        }

        let client = req.client_text();
        if let Some(missing) = self.config.database.sqlite_path().filter(|p| !p.exists()) {
            // Created by this service's user, the file would not be trusted by the PAM module
            // and checkpassword (SPEC "Trust"): root creates it.
            return self.server_error(
                req,
                "create",
                &format!(
                    "database {} does not exist; create it as root with `apppw-web \
                     --init-database` (the package does) or `apppw create`",
                    missing.display()
                ),
            );
        }
        let mut store = match Store::open_for_admin(&self.config.database) {
            Ok(st) => st,
            Err(e) => return self.server_error(req, "create", &e),
        };
        let services = (!chosen.is_empty()).then_some(chosen.as_slice());
        let result = credentials::create(
            &self.config,
            &mut store,
            &who.user,
            trimmed,
            expires_at,
            services,
            wall,
        );
        drop(store);
        let (cred, password) = match result {
            Ok(ok) => ok,
            Err(CreateError::Store(StoreError::DuplicateLabel { .. })) => {
                return again(tr.t1("name-taken", "label", trimmed), StatusCode::CONFLICT);
            }
            // Every Argon2 slot of the host stayed taken (a login burst): nothing was stored.
            Err(CreateError::Hash(apppw::hash::HashError::Busy)) => {
                audit::problem(&format!(
                    "create for {}: no Argon2 slot free within {} ms ([argon2] \
                     max_concurrent = {}); the user was asked to try again",
                    apppw::audit::escape(&who.user),
                    self.config.gate.queue_timeout.as_millis(),
                    self.config.gate.max_concurrent
                ));
                return again(tr.t("create-busy"), StatusCode::SERVICE_UNAVAILABLE);
            }
            Err(e) => {
                audit::record(
                    &who.user,
                    "create",
                    &[("label", trimmed), ("client", &client)],
                    "error",
                );
                return self.server_error(req, "create", &e);
            }
        };
        lock(&self.creates).hit(&who.user, now);
        let id = cred.id.to_string();
        audit::record(
            &who.user,
            "create",
            &[("label", &cred.label), ("id", &id), ("client", &client)],
            "ok",
        );
        self.notify(&tr, Change::Created, &who.user, &cred.label, wall, &client);
        let grouped = Zeroizing::new(password.grouped().as_str().to_owned());
        drop(password);
        let resp = self.created_page(
            req,
            who,
            &cred,
            &grouped,
            false,
            running.nonce.unwrap_or_default(),
        );
        running.created = Some(Created {
            cred,
            password: Some(grouped),
            at: now,
            profile_taken: false,
        });
        resp
    }

    fn created_page(
        &self,
        req: &Req,
        who: &Signed,
        cred: &Credential,
        password: &str,
        shown_again: bool,
        nonce: &str,
    ) -> Response {
        let tr = self.tr(&req.ctx.lang);
        let site = &self.web.site;
        let settings = (site.imap.is_some() || site.smtp.is_some()).then(|| {
            let mut servers = Vec::new();
            for (kind, title, s) in [
                ("imap", "settings-incoming", &site.imap),
                ("smtp", "settings-outgoing", &site.smtp),
            ] {
                if let Some(s) = s {
                    servers.push(ServerView {
                        kind,
                        title: tr.t(title),
                        host: &s.host,
                        port: s.port,
                        security: tr.t(s.security.text_id()),
                    });
                }
            }
            Settings {
                servers,
                user: &who.user,
                profile: onboarding::profile_possible(&self.web),
                thunderbird: onboarding::autoconfig_possible(&self.web),
            }
        });
        let heading = tr.t1("created-heading", "label", &cred.label);
        let page = CreatedPage {
            c: self.chrome(tr, heading, Some(who)),
            label: &cred.label,
            user: &who.user,
            password,
            shown_again,
            settings,
            csrf: &who.csrf,
            nonce,
        };
        html(StatusCode::OK, &page)
    }

    /// `POST /profile`: the Apple configuration profile with the password just created, once.
    pub fn profile(&self, req: &Req, who: &Signed) -> Response {
        let form = req.form();
        let gone = || {
            self.message_with(
                &req.ctx.lang,
                StatusCode::GONE,
                "profile-gone-heading",
                "profile-gone-text",
                Some(("./", "back-to-list")),
                Some(who),
            )
        };
        match self.check_post(req, who, &form) {
            PostCheck::CrossSite => return self.cross_site(req),
            PostCheck::Expired => return gone(),
            PostCheck::Ok => {}
        }
        let taken = lock(&self.sessions)
            .get(&who.sid, Instant::now())
            .and_then(|s| s.take_profile(form.get("nonce"), Instant::now()));
        let Some((cred, password)) = taken else {
            return gone();
        };
        let tr = self.tr(&req.ctx.lang);
        match onboarding::mobileconfig(&self.web, &self.site_title(&tr), &tr, &who.user, &password)
        {
            Some(resp) => {
                audit::record(
                    &who.user,
                    "profile",
                    &[
                        ("label", &cred.label),
                        ("id", &cred.id.to_string()),
                        ("client", &req.client_text()),
                    ],
                    "ok",
                );
                resp
            }
            None => gone(),
        }
    }

    fn notify(&self, tr: &Tr<'_>, change: Change, user: &str, label: &str, at: i64, client: &str) {
        let Some(n) = &self.web.notify else { return };
        match notify::message(n, tr, change, user, label, at, client) {
            Some(m) => notify::send(n, m, user.to_owned()),
            None => audit::problem(&format!(
                "notification not sent: `notify.to` gives no plain address for user {}",
                apppw::audit::escape(user)
            )),
        }
    }

    // ---------------------------------------------------------------------------------
    // Delete.

    /// The user's own credential with this id; `None` for anyone else's (or none).
    fn find_own(&self, who: &Signed, id: Option<&str>) -> Result<Option<Credential>, String> {
        let Some(id) = id.and_then(|i| i.trim().parse::<i64>().ok()) else {
            return Ok(None);
        };
        Ok(self
            .own_credentials(&who.user)?
            .into_iter()
            .find(|c| c.id == id))
    }

    /// `GET /delete?id=N`.
    pub fn delete_confirm(&self, req: &Req, who: &Signed) -> Response {
        let query = req.query_form();
        self.delete_page(req, who, query.get("id"), None, StatusCode::OK)
    }

    fn delete_page(
        &self,
        req: &Req,
        who: &Signed,
        id: Option<&str>,
        notice: Option<&str>,
        status: StatusCode,
    ) -> Response {
        match self.find_own(who, id) {
            Ok(Some(cred)) => {
                let tr = self.tr(&req.ctx.lang);
                let heading = tr.t1("delete-heading", "label", &cred.label);
                let page = DeletePage {
                    c: self.chrome(tr, heading, Some(who)),
                    csrf: &who.csrf,
                    id: cred.id,
                    label: &cred.label,
                    notice: notice.map(|n| tr.t(n)),
                    error: None,
                };
                html(status, &page)
            }
            Ok(None) => self.not_found(req, Some(who)),
            Err(e) => self.server_error(req, "delete", &e),
        }
    }

    /// `POST /delete`.
    pub fn delete(&self, req: &Req, who: &Signed) -> Response {
        let tr = self.tr(&req.ctx.lang);
        let form = req.form();
        match self.check_post(req, who, &form) {
            PostCheck::CrossSite => return self.cross_site(req),
            PostCheck::Expired => {
                return self.delete_page(
                    req,
                    who,
                    form.get("id"),
                    Some("form-expired"),
                    StatusCode::FORBIDDEN,
                );
            }
            PostCheck::Ok => {}
        }
        let client = req.client_text();
        let cred = match self.find_own(who, form.get("id")) {
            Ok(Some(c)) => c,
            Ok(None) => {
                audit::record(
                    &who.user,
                    "delete",
                    &[
                        ("id", form.get("id").unwrap_or_default()),
                        ("client", &client),
                    ],
                    "not-found",
                );
                return self.not_found(req, Some(who));
            }
            Err(e) => return self.server_error(req, "delete", &e),
        };
        // Labels are unique per user and `revoke` matches the label first: this removes
        // exactly the credential found above.
        let removed = Store::open_for_admin(&self.config.database)
            .and_then(|mut store| store.revoke(&who.user, &cred.label));
        let id = cred.id.to_string();
        match removed {
            Ok(r) if r.iter().any(|c| c.id == cred.id) => {}
            // Deleted meanwhile (another tab, the CLI).
            Ok(_) => return self.not_found(req, Some(who)),
            Err(e) => {
                audit::record(
                    &who.user,
                    "delete",
                    &[("label", &cred.label), ("id", &id), ("client", &client)],
                    "error",
                );
                return self.server_error(req, "delete", &e);
            }
        }
        // Deleted. As after `apppw revoke` (SPEC "Revocation and Dovecot's cache"): a login
        // Dovecot cached before the delete must not be answered from its cache. The outcome is
        // the administrator's business: it goes to the log, never into the user's page.
        let cache = match apppw::authcache::flush(&self.config.dovecot, &who.user) {
            apppw::authcache::Outcome::Flushed(_) => "flushed",
            apppw::authcache::Outcome::Disabled => "not-flushed-disabled",
            apppw::authcache::Outcome::NoDoveadm => "no-doveadm",
            apppw::authcache::Outcome::Failed(why) => {
                audit::problem(&format!(
                    "user {}: Dovecot's auth cache was not flushed after a delete: {why}",
                    apppw::audit::escape(&who.user)
                ));
                "flush-failed"
            }
        };
        audit::record(
            &who.user,
            "delete",
            &[
                ("label", &cred.label),
                ("id", &id),
                ("client", &client),
                ("auth_cache", cache),
            ],
            "ok",
        );
        self.notify(
            &tr,
            Change::Deleted,
            &who.user,
            &cred.label,
            apppw::now(),
            &client,
        );
        self.flash_and_go_home(who, tr.t1("deleted-flash", "label", &cred.label))
    }
}

/// What the create form was filled with (re-shown after an error).
#[derive(Debug, Default, Clone)]
struct Filled<'a> {
    label: &'a str,
    services: Vec<&'a str>,
    expires: &'a str,
}

/// A creation in progress for one nonce; when dropped — whatever way the handler ended — the
/// nonce's form becomes Done (with the new password) or Open again, and waiting repeats wake.
struct Running<'a> {
    app: &'a App,
    sid: &'a str,
    nonce: Option<&'a str>,
    created: Option<Created>,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let mut sessions = lock(&self.app.sessions);
        if let Some(sess) = sessions.get(self.sid, Instant::now()) {
            sess.finish(self.nonce, self.created.take());
        }
        drop(sessions);
        self.app.created.notify_all();
    }
}
