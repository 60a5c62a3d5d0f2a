//! Turns one checkpassword call into a [`verify`] request, and its decision into the
//! checkpassword answer. The policy itself lives in `apppw::verify`.

use crate::protocol::{CallEnv, Credentials, Exit};
use crate::sys::PamOutcome;
use apppw::audit::{self, Event};
use apppw::hash::Argon2Kdf;
use apppw::store::{LazyStore, Store};
use apppw::verify::{self, Decision, Reason, Record, Relaxed, Request};
use apppw::{Config, input};

/// Prefix of this program's syslog lines.
pub const PROG: &str = "apppw-checkpassword";

/// What the program does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Success: exec the reply program with `USER` set (and `AUTHORIZED=2` for a lookup).
    Reply {
        /// Value for `USER`.
        user: String,
        /// The call was a lookup (`AUTHORIZED=1`).
        lookup: bool,
    },
    /// Exit with this status; the message (never a secret) goes to stderr, which Dovecot logs
    /// as an error.
    Exit(Exit, Option<String>),
}

/// Checks the normal password with PAM. A trait so that tests can stand in for libpam.
pub trait Primary {
    /// Runs PAM service `service` (auth + account) for `user` with `password`, `PAM_RHOST`
    /// set to `rhost`.
    fn check(
        &mut self,
        service: &str,
        user: &str,
        password: &[u8],
        rhost: Option<&str>,
    ) -> PamOutcome;
}

/// The real thing.
pub struct Pam;

impl Primary for Pam {
    fn check(
        &mut self,
        service: &str,
        user: &str,
        password: &[u8],
        rhost: Option<&str>,
    ) -> PamOutcome {
        crate::sys::check_password(service, user, password, rhost)
    }
}

/// Fields shared by every audit line of one call.
struct Audit<'a> {
    env: &'a CallEnv,
    user: &'a str,
}

impl Audit<'_> {
    fn log(&self, result: &str, reason: &str, label: Option<&str>, detail: Option<&str>) {
        let master;
        let detail = match (&self.env.master_user, detail) {
            (Some(m), Some(d)) => {
                master = format!("{d}; master user {m}");
                Some(master.as_str())
            }
            (Some(m), None) => {
                master = format!("master user {m}");
                Some(master.as_str())
            }
            (None, d) => d,
        };
        audit::log(
            PROG,
            &Event {
                service: self.env.service.as_deref(),
                user: self.user,
                rhost: self.env.client.as_deref(),
                result,
                reason,
                label,
                detail,
            },
        );
    }
}

/// Authenticates `creds` (a login attempt, not a lookup).
pub fn authenticate(
    config: &Config,
    creds: Credentials<'_>,
    env: &CallEnv,
    primary: &mut dyn Primary,
    now: i64,
) -> Outcome {
    let Ok(user) = std::str::from_utf8(creds.user) else {
        let lossy = String::from_utf8_lossy(creds.user);
        Audit { env, user: &lossy }.log("refused", "user-malformed", None, None);
        return Outcome::Exit(Exit::Refused, None);
    };
    let audit = Audit { env, user };
    let req = Request {
        user,
        password: creds.password,
        client: env.client.as_deref(),
        service: env.service.as_deref(),
        now,
    };
    let verdict = verify::verify(
        config,
        &mut LazyStore::new(&config.database),
        &mut Argon2Kdf::with_gate(&config.gate),
        &req,
        Record::LastUse,
    );
    // The Argon2 known-answer test failed: not accepted, and not a wrong password either.
    if let Some(why) = apppw::hash::self_test_failure() {
        audit::warn(PROG, &why);
        return Outcome::Exit(Exit::TempFail, Some(why));
    }
    if let Some(warning) = &verdict.warning {
        audit::warn(PROG, &format!("user {}: {warning}", audit::escape(user)));
    }
    let (result, reason) = verdict.decision.audit_fields();
    match verdict.decision {
        // The app password belongs to the canonical name: Dovecot continues as that user
        // (with `auth_username_format = %u` and a case-sensitive userdb, `ALICE` could be
        // another account, which alice's app password must not open).
        Decision::Accepted { label, .. } => {
            audit.log(result, reason, Some(&label), None);
            reply(&config.canonical_user(user), false)
        }
        Decision::ConfigError(why) => {
            audit.log(result, reason, None, None);
            audit::warn(
                PROG,
                &format!("{why}; every login is refused until it is fixed"),
            );
            Outcome::Exit(Exit::TempFail, Some(why))
        }
        Decision::Refused(_) => {
            audit.log(result, reason, None, None);
            Outcome::Exit(Exit::Refused, None)
        }
        Decision::Unavailable(why) | Decision::Busy(why) => {
            audit.log(result, reason, None, Some(&why));
            Outcome::Exit(Exit::TempFail, Some(why))
        }
        Decision::TryPrimary(why) => try_primary(config, &req, why, &audit, primary),
        Decision::PassedOn { because, .. } => {
            pass_on(config, &req, reason, because, &audit, primary)
        }
    }
}

/// Off campus under report mode or an exemption: the normal password goes to
/// `[primary] pam_service` as on campus; the one log line says `result=would-refuse`, the
/// reason enforcement gives, and what PAM said.
fn pass_on(
    config: &Config,
    req: &Request<'_>,
    reason: &str,
    because: Relaxed,
    audit: &Audit<'_>,
    primary: &mut dyn Primary,
) -> Outcome {
    let relaxed = because.detail();
    let log = |what: &str| {
        audit.log(
            "would-refuse",
            reason,
            None,
            Some(&format!("{relaxed}; {what}")),
        );
    };
    let Some(service) = &config.primary_pam_service else {
        log("no [primary] pam_service configured, so refused");
        return Outcome::Exit(Exit::Refused, None);
    };
    if req.password.is_empty() {
        log("empty password, refused");
        return Outcome::Exit(Exit::Refused, None);
    }
    match primary.check(service, req.user, req.password, req.client) {
        PamOutcome::Accepted => {
            log(&format!("PAM {service}: accepted"));
            reply(req.user, false)
        }
        PamOutcome::Refused(msg) => {
            log(&format!("PAM {service}: {msg}"));
            Outcome::Exit(Exit::Refused, None)
        }
        PamOutcome::Unavailable(msg) => {
            let detail = format!("PAM service {service}: {msg}");
            log(&detail);
            Outcome::Exit(Exit::TempFail, Some(detail))
        }
    }
}

/// On campus, no app password decided: the normal password, if a PAM service is configured.
fn try_primary(
    config: &Config,
    req: &Request<'_>,
    why: Reason,
    audit: &Audit<'_>,
    primary: &mut dyn Primary,
) -> Outcome {
    let store_down = match &why {
        Reason::StoreUnavailable(msg) => Some(msg.as_str()),
        _ => None,
    };
    let Some(service) = &config.primary_pam_service else {
        // App passwords only: without the store nothing can be decided; otherwise the app
        // password simply did not match.
        return match store_down {
            Some(msg) => {
                audit.log("tempfail", "store-unavailable", None, Some(msg));
                Outcome::Exit(Exit::TempFail, Some(msg.to_owned()))
            }
            None => {
                audit.log(
                    "refused",
                    why.code(),
                    None,
                    Some("on campus; no [primary] pam_service configured"),
                );
                Outcome::Exit(Exit::Refused, None)
            }
        };
    };
    if req.password.is_empty() {
        audit.log(
            "refused",
            "primary-on-campus-refused",
            None,
            Some("empty password"),
        );
        return Outcome::Exit(Exit::Refused, None);
    }
    match primary.check(service, req.user, req.password, req.client) {
        // PAM vouched for the name as given, so that is the name Dovecot continues with.
        PamOutcome::Accepted => {
            let detail = store_down.map(|m| format!("app-password store unavailable: {m}"));
            audit.log("accepted", "primary-on-campus", None, detail.as_deref());
            reply(req.user, false)
        }
        PamOutcome::Refused(msg) => {
            let detail = format!("app password: {}; PAM {service}: {msg}", why.code());
            audit.log("refused", "primary-on-campus-refused", None, Some(&detail));
            Outcome::Exit(Exit::Refused, None)
        }
        PamOutcome::Unavailable(msg) => {
            let detail = format!("PAM service {service}: {msg}");
            audit.log("tempfail", "primary-unavailable", None, Some(&detail));
            Outcome::Exit(Exit::TempFail, Some(detail))
        }
    }
}

/// Lookup mode (`AUTHORIZED=1`): never authenticates; says whether the user (in canonical
/// form) has app passwords. `USER` stays the name Dovecot gave: nothing was verified here.
pub fn lookup(config: &Config, user: &[u8], env: &CallEnv) -> Outcome {
    let Some(user) = std::str::from_utf8(user)
        .ok()
        .filter(|u| input::check_user(u).is_ok())
    else {
        return Outcome::Exit(Exit::UnknownUser, None);
    };
    let canonical = config.canonical_user(user);
    match Store::open_for_login(&config.database).and_then(|s| s.user_exists(&canonical)) {
        Ok(true) => reply(user, true),
        Ok(false) => Outcome::Exit(Exit::UnknownUser, None),
        Err(e) => {
            let msg = e.to_string();
            let (result, reason) = if e.is_configuration() {
                ("error", "untrusted-file")
            } else {
                ("tempfail", "store-unavailable")
            };
            Audit { env, user }.log(result, reason, None, Some(&msg));
            Outcome::Exit(Exit::TempFail, Some(msg))
        }
    }
}

fn reply(user: &str, lookup: bool) -> Outcome {
    Outcome::Reply {
        user: user.to_owned(),
        lookup,
    }
}

#[cfg(test)]
mod tests;
