//! Sign-in in PAM mode: the form, the password check with its rate limits and the
//! off-campus rule, and sign-out.

use super::*;

impl App {
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
    pub(super) fn signin_form_fresh(
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
}
