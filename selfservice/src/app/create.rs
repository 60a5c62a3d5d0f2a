//! Creating an app password: the form, one creation per form nonce (a repeated submit waits
//! for the first and shows its result), the page that shows the password once, the mail app
//! profile, and the optional notice by e-mail.

use super::*;

/// The expiry choices of the create form: values for `apppw create --expires` ("" = never).
const EXPIRY_CHOICES: &[&str] = &["", "30d", "90d", "365d"];
/// How long a repeated submit waits for the first one to finish creating.
const WAIT_FOR_FIRST: Duration = Duration::from_secs(30);

impl App {
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

    pub(super) fn flash_and_go_home(&self, who: &Signed, text: String) -> Response {
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

    pub(super) fn notify(
        &self,
        tr: &Tr<'_>,
        change: Change,
        user: &str,
        label: &str,
        at: i64,
        client: &str,
    ) {
        let Some(n) = &self.web.notify else { return };
        match notify::message(n, tr, change, user, label, at, client) {
            Some(m) => notify::send(n, m, user.to_owned()),
            None => audit::problem(&format!(
                "notification not sent: `notify.to` gives no plain address for user {}",
                apppw::audit::escape(user)
            )),
        }
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
