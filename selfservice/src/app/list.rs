//! The list of the user's own app passwords, and the store behind the pages (its health,
//! the user's rows).

use super::*;

impl App {
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

    pub(super) fn own_credentials(&self, user: &str) -> Result<Vec<Credential>, String> {
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

    pub(super) fn list_page(&self, req: &Req, who: &Signed, notice: Option<&str>) -> Response {
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

    pub(super) fn service_name(tr: &Tr<'_>, service: &str) -> String {
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
}
