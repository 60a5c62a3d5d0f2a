//! The application: routes, sign-in, sessions, and the create / list / delete pages.
//!
//! Independent of the HTTP server: [`App::handle`] turns a [`Request`] into a [`Response`],
//! which is what the unit tests drive.

use crate::audit;
use crate::credentials::{self, CreateError, LabelError};
use crate::http::{Form, Method, Request, Response};
use crate::notify::{self, Change};
use crate::pages::{self, Header, NewForm};
use crate::session::{Limiter, Sessions, constant_time_eq, random_token};
use crate::strings::{Strings, fill};
use crate::webconfig::{SignIn, WebConfig};
use apppw::Config;
use apppw::network::parse_client_addr;
use apppw::store::{Credential, Store, StoreError};
use apppw::timefmt::{parse_expiry, rfc3339};
use pamauth::PamOutcome;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

const STYLE: &str = include_str!("../assets/style.css");
const SCRIPT: &str = include_str!("../assets/copy.js");

/// Sent with every response.
const SECURITY_HEADERS: &[(&str, &str)] = &[
    (
        "Content-Security-Policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
         form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
    (
        "Permissions-Policy",
        "camera=(), microphone=(), geolocation=(), payment=()",
    ),
];

/// Checks a normal password. A trait so that tests can stand in for libpam.
pub trait PasswordCheck: Send + Sync {
    /// PAM service `service` (auth, then account) for `user`, `PAM_RHOST` = `rhost`.
    fn check(&self, service: &str, user: &str, password: &[u8], rhost: Option<&str>) -> PamOutcome;
}

/// The real thing: libpam.
pub struct Pam;

impl PasswordCheck for Pam {
    fn check(&self, service: &str, user: &str, password: &[u8], rhost: Option<&str>) -> PamOutcome {
        pamauth::check_password(service, user, password, rhost)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The signed-in user of one request.
struct Signed {
    sid: String,
    user: String,
    csrf: String,
}

/// Who sent a request.
enum Who {
    User(Signed),
    Anonymous,
    Refused(Response),
}

/// The self-service application.
pub struct App {
    config: Config,
    web: WebConfig,
    pam: Box<dyn PasswordCheck>,
    sessions: Mutex<Sessions>,
    signin_by_address: Mutex<Limiter>,
    signin_by_user: Mutex<Limiter>,
    creates: Mutex<Limiter>,
}

impl App {
    /// An application over the main config, the web config and a password checker.
    #[must_use]
    pub fn new(config: Config, web: WebConfig, pam: Box<dyn PasswordCheck>) -> App {
        let l = web.limits;
        App {
            sessions: Mutex::new(Sessions::new(web.session)),
            signin_by_address: Mutex::new(Limiter::new(l.signin_failures_per_address, l.window)),
            signin_by_user: Mutex::new(Limiter::new(l.signin_failures_per_user, l.window)),
            creates: Mutex::new(Limiter::new(l.creates_per_user, l.window)),
            config,
            web,
            pam,
        }
    }

    fn s(&self) -> &'static Strings {
        self.web.strings
    }

    fn session_cookie(&self) -> &'static str {
        if self.web.session.secure_cookie {
            "__Host-apppw-session"
        } else {
            "apppw-session"
        }
    }

    fn signin_cookie(&self) -> &'static str {
        if self.web.session.secure_cookie {
            "__Host-apppw-signin"
        } else {
            "apppw-signin"
        }
    }

    fn cookie(&self, name: &str, value: &str, max_age: Option<u32>) -> String {
        let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
        if self.web.session.secure_cookie {
            c.push_str("; Secure");
        }
        if let Some(age) = max_age {
            c.push_str(&format!("; Max-Age={age}"));
        }
        c
    }

    /// Answers one request.
    #[must_use]
    pub fn handle(&self, req: &Request) -> Response {
        self.handle_at(req, Instant::now())
    }

    /// Answers one request at time `now`.
    #[must_use]
    pub fn handle_at(&self, req: &Request, now: Instant) -> Response {
        let mut resp = self.route(req, now);
        for (name, value) in SECURITY_HEADERS {
            resp.headers.push(((*name).into(), (*value).into()));
        }
        if resp.header("Cache-Control").is_none() {
            // Every page is personal, and one shows a password: nothing is stored anywhere.
            resp.headers
                .push(("Cache-Control".into(), "no-store".into()));
        }
        resp
    }

    /// The client's address: the TCP peer, or the address a trusted proxy forwarded
    /// (`X-Forwarded-For`, read from the right, skipping trusted proxies). `None` when a
    /// trusted proxy forwarded something that is not an address (off campus).
    #[must_use]
    pub fn client_addr(&self, req: &Request) -> Option<IpAddr> {
        let peer = req.peer?.to_canonical();
        if !self.web.is_trusted_proxy(peer) {
            return Some(peer);
        }
        let hops: Vec<&str> = req
            .headers_named("x-forwarded-for")
            .flat_map(|h| h.split(','))
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .collect();
        if hops.is_empty() {
            return Some(peer);
        }
        for hop in hops.iter().rev() {
            match parse_client_addr(hop) {
                Some(ip) if self.web.is_trusted_proxy(ip) => {}
                other => return other,
            }
        }
        hops.first().and_then(|h| parse_client_addr(h))
    }

    fn client_text(&self, req: &Request) -> String {
        self.client_addr(req)
            .map_or_else(|| "unknown".into(), |ip| ip.to_string())
    }

    fn page(&self, status: u16, title: &str, header: &Header<'_>, main: &str) -> Response {
        Response::html(status, pages::page(self.s(), title, header, main, false))
    }

    fn user_header<'a>(&'a self, who: &'a Signed) -> Header<'a> {
        let (logout_url, can_sign_out) = match &self.web.signin {
            SignIn::Header { logout_url, .. } => (logout_url.as_deref(), false),
            SignIn::Pam { .. } => (None, true),
        };
        Header::User {
            user: &who.user,
            csrf: &who.csrf,
            logout_url,
            can_sign_out,
        }
    }

    fn message(&self, status: u16, heading: &str, text: &str) -> Response {
        self.page(
            status,
            heading,
            &Header::Anonymous,
            &pages::message(heading, text, None),
        )
    }

    fn not_found(&self) -> Response {
        let s = self.s();
        self.message(404, s.not_found_heading, s.not_found_text)
    }

    fn forbidden(&self) -> Response {
        let s = self.s();
        self.message(403, s.forbidden_heading, s.forbidden_text)
    }

    fn csrf_failed(&self) -> Response {
        let s = self.s();
        self.message(403, s.csrf_heading, s.csrf_text)
    }

    fn server_error(&self, what: &str, e: &dyn std::fmt::Display) -> Response {
        audit::problem(&format!("{what}: {e}"));
        let s = self.s();
        self.message(500, s.error_heading, s.error_text)
    }

    /// A POST from another site is refused whatever it carries (defence in depth besides the
    /// CSRF token and `SameSite=Strict`).
    fn cross_site(req: &Request) -> bool {
        req.header("sec-fetch-site")
            .is_some_and(|v| v.eq_ignore_ascii_case("cross-site"))
    }

    fn route(&self, req: &Request, now: Instant) -> Response {
        match (req.method, req.path.as_str()) {
            (Method::Get, "/style.css") => Response {
                status: 200,
                headers: vec![
                    ("Content-Type".into(), "text/css; charset=utf-8".into()),
                    ("Cache-Control".into(), "max-age=3600".into()),
                ],
                body: STYLE.as_bytes().to_vec(),
            },
            (Method::Get, "/copy.js") => Response {
                status: 200,
                headers: vec![
                    (
                        "Content-Type".into(),
                        "text/javascript; charset=utf-8".into(),
                    ),
                    ("Cache-Control".into(), "max-age=3600".into()),
                ],
                body: SCRIPT.as_bytes().to_vec(),
            },
            (Method::Other, _) => self
                .message(405, self.s().forbidden_heading, "")
                .with("Allow", "GET, HEAD, POST"),
            (method, "/signin") => match &self.web.signin {
                SignIn::Pam {
                    service,
                    campus_only,
                } => {
                    if method == Method::Post {
                        self.signin_post(req, now, service, *campus_only)
                    } else {
                        self.signin_get(req, now, *campus_only)
                    }
                }
                SignIn::Header { .. } => Response::redirect("./"),
            },
            (_, "/" | "/new" | "/delete" | "/signout") => match self.identify(req, now) {
                Who::Refused(r) => r,
                Who::Anonymous => self.anonymous(req),
                Who::User(who) => {
                    let mut resp = self.signed_in(req, now, &who);
                    if let Some(cookie) = self.new_session_cookie(req, &who) {
                        resp.headers.push(("Set-Cookie".into(), cookie));
                    }
                    resp
                }
            },
            _ => self.not_found(),
        }
    }

    /// A `Set-Cookie` for a session the request did not carry yet (header mode signs in on
    /// the first request).
    fn new_session_cookie(&self, req: &Request, who: &Signed) -> Option<String> {
        let sent = req.cookie(self.session_cookie());
        if sent.is_some_and(|c| constant_time_eq(c.as_bytes(), who.sid.as_bytes())) {
            return None;
        }
        Some(self.cookie(self.session_cookie(), &who.sid, None))
    }

    fn anonymous(&self, req: &Request) -> Response {
        let s = self.s();
        match &self.web.signin {
            SignIn::Pam { .. } => Response::redirect("signin"),
            SignIn::Header { .. } => {
                let _ = req;
                self.message(403, s.not_signed_in_heading, s.not_signed_in_text)
            }
        }
    }

    /// Who sent this request: a session, or (header mode) the reverse proxy's word.
    fn identify(&self, req: &Request, now: Instant) -> Who {
        let cookie = req.cookie(self.session_cookie());
        let mut sessions = lock(&self.sessions);
        let current = cookie.and_then(|id| {
            sessions.get(id, now).map(|s| Signed {
                sid: id.to_owned(),
                user: s.user.clone(),
                csrf: s.csrf.clone(),
            })
        });
        let SignIn::Header { header, .. } = &self.web.signin else {
            return current.map_or(Who::Anonymous, Who::User);
        };
        let asserted = req.header(header).map(str::trim).filter(|v| !v.is_empty());
        let from_proxy = req
            .peer
            .is_some_and(|p| self.web.is_trusted_proxy(p.to_canonical()));
        let Some(user) = asserted else {
            // The proxy sends the header on every request while its SSO session lasts.
            if let Some(c) = &current {
                sessions.end(&c.sid);
            }
            return Who::Anonymous;
        };
        if !from_proxy {
            drop(sessions);
            let peer = req.peer.map_or_else(|| "unknown".into(), |p| p.to_string());
            audit::record(
                user,
                "signin",
                &[("method", "header"), ("client", &peer)],
                "refused-untrusted-peer",
            );
            return Who::Refused(self.forbidden());
        }
        if apppw::input::check_user(user).is_err() {
            drop(sessions);
            return Who::Refused(self.forbidden());
        }
        match current {
            Some(c) if c.user == user => Who::User(c),
            stale => {
                if let Some(c) = stale {
                    sessions.end(&c.sid);
                }
                let Some(sid) = sessions.start(user, now) else {
                    drop(sessions);
                    return Who::Refused(self.server_error("session", &"no random numbers"));
                };
                let csrf = sessions
                    .get(&sid, now)
                    .map(|s| s.csrf.clone())
                    .unwrap_or_default();
                drop(sessions);
                audit::record(
                    user,
                    "signin",
                    &[("method", "header"), ("client", &self.client_text(req))],
                    "ok",
                );
                Who::User(Signed {
                    sid,
                    user: user.to_owned(),
                    csrf,
                })
            }
        }
    }

    fn off_campus_refused(&self, req: &Request, campus_only: bool) -> bool {
        campus_only
            && !self
                .config
                .network
                .locate(self.client_addr(req).map(|ip| ip.to_string()).as_deref())
                .is_campus()
    }

    fn off_campus_page(&self) -> Response {
        let s = self.s();
        self.message(403, s.off_campus_heading, s.off_campus_text)
    }

    fn signin_get(&self, req: &Request, now: Instant, campus_only: bool) -> Response {
        if let Some(id) = req.cookie(self.session_cookie()) {
            if lock(&self.sessions).get(id, now).is_some() {
                return Response::redirect("./");
            }
        }
        if self.off_campus_refused(req, campus_only) {
            return self.off_campus_page();
        }
        let Some(token) = random_token() else {
            return self.server_error("sign-in", &"no random numbers");
        };
        self.signin_form(200, &token, "", None).with(
            "Set-Cookie",
            &self.cookie(self.signin_cookie(), &token, None),
        )
    }

    fn signin_form(&self, status: u16, token: &str, user: &str, error: Option<&str>) -> Response {
        let s = self.s();
        self.page(
            status,
            s.signin_heading,
            &Header::Anonymous,
            &pages::signin(s, token, user, error),
        )
    }

    fn signin_post(
        &self,
        req: &Request,
        now: Instant,
        service: &str,
        campus_only: bool,
    ) -> Response {
        let s = self.s();
        let form = req.form();
        let token = req.cookie(self.signin_cookie());
        let token_ok = match (token, form.get("csrf")) {
            (Some(c), Some(f)) => constant_time_eq(c.as_bytes(), f.as_bytes()),
            _ => false,
        };
        if Self::cross_site(req) || !token_ok {
            return self.csrf_failed();
        }
        let token = token.unwrap_or_default();
        if self.off_campus_refused(req, campus_only) {
            return self.off_campus_page();
        }
        let client = self.client_text(req);
        let user = form.get("user").map(str::trim).unwrap_or_default();
        let password = form.get("password").unwrap_or_default();
        let shown_user = if user.chars().count() <= 256 {
            user
        } else {
            ""
        };

        let blocked = {
            let by_addr = lock(&self.signin_by_address).blocked(&client, now);
            let by_user = lock(&self.signin_by_user).blocked(user, now);
            by_addr.max(by_user)
        };
        if let Some(wait) = blocked {
            audit::record(
                user,
                "signin",
                &[("method", "pam"), ("client", &client)],
                "rate-limited",
            );
            let minutes = wait.as_secs().div_ceil(60).max(1).to_string();
            let msg = fill(s.signin_rate_limited, &[("minutes", &minutes)]);
            return self
                .signin_form(429, token, shown_user, Some(&msg))
                .with("Retry-After", &wait.as_secs().max(1).to_string());
        }

        let well_formed = apppw::input::check_user(user).is_ok()
            && !password.is_empty()
            && apppw::input::check_password(password.as_bytes()).is_ok();
        let outcome = if well_formed {
            self.pam
                .check(service, user, password.as_bytes(), Some(&client))
        } else {
            PamOutcome::Refused("malformed".into())
        };
        match outcome {
            PamOutcome::Accepted => {
                lock(&self.signin_by_user).clear(user);
                let Some(sid) = lock(&self.sessions).start(user, now) else {
                    return self.server_error("sign-in", &"no random numbers");
                };
                audit::record(
                    user,
                    "signin",
                    &[("method", "pam"), ("client", &client)],
                    "ok",
                );
                Response::redirect("./")
                    .with(
                        "Set-Cookie",
                        &self.cookie(self.session_cookie(), &sid, None),
                    )
                    .with(
                        "Set-Cookie",
                        &self.cookie(self.signin_cookie(), "", Some(0)),
                    )
            }
            PamOutcome::Refused(why) => {
                lock(&self.signin_by_address).hit(&client, now);
                lock(&self.signin_by_user).hit(user, now);
                audit::record(
                    user,
                    "signin",
                    &[("method", "pam"), ("client", &client), ("detail", &why)],
                    "refused",
                );
                self.signin_form(401, token, shown_user, Some(s.signin_failed))
            }
            PamOutcome::Unavailable(why) => {
                audit::problem(&format!("PAM service {service} cannot decide: {why}"));
                self.signin_form(503, token, shown_user, Some(s.signin_unavailable))
            }
        }
    }

    fn signed_in(&self, req: &Request, now: Instant, who: &Signed) -> Response {
        if req.method == Method::Post {
            let form = req.form();
            if Self::cross_site(req)
                || !constant_time_eq(
                    form.get("csrf").unwrap_or_default().as_bytes(),
                    who.csrf.as_bytes(),
                )
            {
                audit::record(
                    &who.user,
                    "post",
                    &[("path", &req.path), ("client", &self.client_text(req))],
                    "refused-csrf",
                );
                return self.csrf_failed();
            }
            return match req.path.as_str() {
                "/new" => self.create(req, now, who, &form),
                "/delete" => self.delete(req, now, who, &form),
                "/signout" => self.signout(req, who),
                _ => self.not_found(),
            };
        }
        match req.path.as_str() {
            "/" => self.list(now, who),
            "/new" => self.new_form(now, who, &NewForm::default(), None, 200),
            "/delete" => self.delete_confirm(req, who),
            _ => self.not_found(),
        }
    }

    fn own_credentials(&self, user: &str) -> Result<Vec<Credential>, StoreError> {
        match Store::open_read_only(&self.config.database) {
            Ok(store) => store.list(Some(user)),
            // A fresh installation has no database until the first app password.
            Err(StoreError::Missing(_)) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    fn list(&self, now: Instant, who: &Signed) -> Response {
        let s = self.s();
        let creds = match self.own_credentials(&who.user) {
            Ok(c) => c,
            Err(e) => return self.server_error("list", &e),
        };
        let flash = lock(&self.sessions)
            .get(&who.sid, now)
            .and_then(|sess| sess.flash.take());
        let main = pages::list(
            s,
            &creds,
            &self.config.network,
            apppw::now(),
            flash.as_ref().map(|f| f.0.as_str()),
        );
        self.page(200, s.list_heading, &self.user_header(who), &main)
    }

    fn new_form(
        &self,
        now: Instant,
        who: &Signed,
        filled: &NewForm<'_>,
        error: Option<&str>,
        status: u16,
    ) -> Response {
        let s = self.s();
        let nonce = lock(&self.sessions)
            .get(&who.sid, now)
            .and_then(crate::session::Session::new_nonce);
        let Some(nonce) = nonce else {
            return self.server_error("create form", &"session or random numbers unavailable");
        };
        let main = pages::new_form(s, &who.csrf, &nonce, &self.web.services, filled, error);
        self.page(status, s.new_heading, &self.user_header(who), &main)
    }

    fn flash_and_go_home(&self, now: Instant, who: &Signed, text: String) -> Response {
        if let Some(sess) = lock(&self.sessions).get(&who.sid, now) {
            sess.flash = Some(crate::session::Flash(text));
        }
        Response::redirect("./")
    }

    fn create(&self, req: &Request, now: Instant, who: &Signed, form: &Form) -> Response {
        let s = self.s();
        let fresh = lock(&self.sessions)
            .get(&who.sid, now)
            .is_some_and(|sess| sess.take_nonce(form.get("nonce")));
        if !fresh {
            // A reload or a second submit of the result page: never a second password, and
            // never the first one again.
            return self.flash_and_go_home(now, who, s.already_created_flash.into());
        }
        let label = form.get("label").unwrap_or_default();
        let trimmed = label.trim();
        let services: Vec<&str> = form.all("service");
        let expires = form.get("expires").unwrap_or_default();
        let filled = NewForm {
            label,
            services: services.clone(),
            expires,
        };
        let again =
            |error: &str, status: u16| self.new_form(now, who, &filled, Some(error), status);

        match credentials::check_label(trimmed) {
            Ok(()) => {}
            Err(LabelError::Empty) => return again(s.name_empty, 400),
            Err(LabelError::Invalid | LabelError::Invisible(_)) => {
                return again(s.name_invalid, 400);
            }
        }
        let mut chosen: Vec<String> = Vec::new();
        for svc in &services {
            if !self.web.services.iter().any(|o| o == svc) {
                return again(s.service_invalid, 400);
            }
            if !chosen.iter().any(|c| c == svc) {
                chosen.push((*svc).to_owned());
            }
        }
        let wall = apppw::now();
        let expires_at = if expires.is_empty() {
            None
        } else if s.expiry_choices.iter().any(|(v, _)| *v == expires) {
            match parse_expiry(expires, wall) {
                Ok(t) => Some(t),
                Err(_) => return again(s.expiry_invalid, 400),
            }
        } else {
            return again(s.expiry_invalid, 400);
        };

        let existing = match self.own_credentials(&who.user) {
            Ok(c) => c,
            Err(e) => return self.server_error("create", &e),
        };
        let max = self.web.limits.max_per_user;
        if max > 0 && existing.len() >= usize::try_from(max).unwrap_or(usize::MAX) {
            return again(&fill(s.too_many, &[("max", &max.to_string())]), 409);
        }
        if lock(&self.creates).blocked(&who.user, now).is_some() {
            return again(s.create_rate_limited, 429);
        }

        let client = self.client_text(req);
        let mut store = match Store::open_for_admin(&self.config.database) {
            Ok(st) => st,
            Err(e) => return self.server_error("create", &e),
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
                return again(&fill(s.name_taken, &[("label", trimmed)]), 409);
            }
            Err(e) => {
                audit::record(
                    &who.user,
                    "create",
                    &[("label", trimmed), ("client", &client)],
                    "error",
                );
                return self.server_error("create", &e);
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
        self.notify(Change::Created, &who.user, &cred.label, wall, &client);
        let grouped = password.grouped();
        let main = pages::created(s, &cred, grouped.as_str());
        let title = fill(s.created_heading, &[("label", &cred.label)]);
        Response::html(
            200,
            pages::page(s, &title, &self.user_header(who), &main, true),
        )
    }

    fn notify(&self, change: Change, user: &str, label: &str, at: i64, client: &str) {
        let Some(n) = &self.web.notify else { return };
        match notify::message(n, self.s(), change, user, label, &rfc3339(at), client) {
            Some(text) => notify::send(n, text, user.to_owned()),
            None => audit::problem(&format!(
                "notification not sent: `notify.to` gives no plain address for user {}",
                apppw::audit::escape(user)
            )),
        }
    }

    /// The user's own credential with this id; `None` for anyone else's (or none).
    fn find_own(&self, who: &Signed, id: Option<&str>) -> Result<Option<Credential>, StoreError> {
        let Some(id) = id.and_then(|i| i.trim().parse::<i64>().ok()) else {
            return Ok(None);
        };
        Ok(self
            .own_credentials(&who.user)?
            .into_iter()
            .find(|c| c.id == id))
    }

    fn delete_confirm(&self, req: &Request, who: &Signed) -> Response {
        let s = self.s();
        let query = req.query_form();
        match self.find_own(who, query.get("id")) {
            Ok(Some(cred)) => {
                let main = pages::delete_confirm(s, &who.csrf, &cred);
                let title = fill(s.delete_heading, &[("label", &cred.label)]);
                self.page(200, &title, &self.user_header(who), &main)
            }
            Ok(None) => self.not_found(),
            Err(e) => self.server_error("delete", &e),
        }
    }

    fn delete(&self, req: &Request, now: Instant, who: &Signed, form: &Form) -> Response {
        let s = self.s();
        let client = self.client_text(req);
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
                return self.not_found();
            }
            Err(e) => return self.server_error("delete", &e),
        };
        // Labels are unique per user and `revoke` matches the label first: this removes
        // exactly the credential found above.
        let removed = Store::open_for_admin(&self.config.database)
            .and_then(|mut store| store.revoke(&who.user, &cred.label));
        let id = cred.id.to_string();
        match removed {
            Ok(r) if r.iter().any(|c| c.id == cred.id) => {
                audit::record(
                    &who.user,
                    "delete",
                    &[("label", &cred.label), ("id", &id), ("client", &client)],
                    "ok",
                );
                self.notify(
                    Change::Deleted,
                    &who.user,
                    &cred.label,
                    apppw::now(),
                    &client,
                );
                self.flash_and_go_home(now, who, fill(s.deleted_flash, &[("label", &cred.label)]))
            }
            // Deleted meanwhile (another tab, the CLI).
            Ok(_) => self.not_found(),
            Err(e) => {
                audit::record(
                    &who.user,
                    "delete",
                    &[("label", &cred.label), ("id", &id), ("client", &client)],
                    "error",
                );
                self.server_error("delete", &e)
            }
        }
    }

    fn signout(&self, req: &Request, who: &Signed) -> Response {
        let s = self.s();
        lock(&self.sessions).end(&who.sid);
        audit::record(
            &who.user,
            "signout",
            &[("client", &self.client_text(req))],
            "ok",
        );
        let main = pages::message(s.signed_out, "", Some(("signin", s.sign_in_again)));
        self.page(200, s.signed_out, &Header::Anonymous, &main)
            .with(
                "Set-Cookie",
                &self.cookie(self.session_cookie(), "", Some(0)),
            )
    }
}
