//! Deleting one of the user's own app passwords: the confirmation page and the deletion.

use super::*;

impl App {
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
