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
mod tests {
    use super::*;
    use apppw::hash::Params;
    use apppw::store::NewCredential;
    use std::path::Path;

    const FAST: Params = Params {
        memory_kib: 1024,
        iterations: 1,
        parallelism: 1,
    };

    /// Records calls; answers with a fixed outcome.
    struct FakePam {
        answer: PamOutcome,
        calls: Vec<(String, String, Option<String>)>,
    }

    impl FakePam {
        fn new(answer: PamOutcome) -> Self {
            FakePam {
                answer,
                calls: vec![],
            }
        }
    }

    impl Primary for FakePam {
        fn check(
            &mut self,
            service: &str,
            user: &str,
            _: &[u8],
            rhost: Option<&str>,
        ) -> PamOutcome {
            self.calls
                .push((service.into(), user.into(), rhost.map(str::to_owned)));
            self.answer.clone()
        }
    }

    struct World {
        _dir: tempfile::TempDir,
        config: Config,
    }

    impl World {
        fn new(primary: bool) -> World {
            let dir = tempfile::tempdir().unwrap();
            let text = format!(
                "database = \"{}\"\n[network]\ncampus = [\"192.0.2.0/24\"]\nexcept = [\"192.0.2.128/25\"]\n{}",
                dir.path().join("apppw.db").display(),
                if primary {
                    "[primary]\npam_service = \"mail-primary\"\n"
                } else {
                    ""
                }
            );
            let mut config = Config::parse(&dir.path().join("apppw.toml"), &text).unwrap();
            config.argon2 = FAST;
            // The admission gate has tests of its own (and through this program in the
            // integration tests); a System V set per unit test would outlive it.
            config.gate.max_concurrent = 0;
            World { _dir: dir, config }
        }

        fn add(&self, user: &str, label: &str) -> String {
            let pw = apppw::secret::generate().unwrap();
            let hash = Argon2Kdf::new().hash_new(FAST, pw.as_bytes()).unwrap();
            let mut store = Store::open_for_admin(&self.config.database).unwrap();
            store
                .create(&NewCredential {
                    user,
                    label,
                    tag: pw.tag(),
                    hash: &hash,
                    created_at: 1,
                    expires_at: None,
                    services: None,
                })
                .unwrap();
            pw.grouped().to_string()
        }

        fn login(&self, user: &str, pw: &str, ip: &str, pam: &mut FakePam) -> Outcome {
            let env = CallEnv {
                client: Some(ip.into()),
                service: Some("imap".into()),
                ..CallEnv::default()
            };
            let creds = Credentials {
                user: user.as_bytes(),
                password: pw.as_bytes(),
            };
            authenticate(&self.config, creds, &env, pam, 1000)
        }
    }

    const OFF: &str = "203.0.113.9";
    const CAMPUS: &str = "192.0.2.10";
    const EXCEPT: &str = "192.0.2.200";

    fn accepted(user: &str) -> Outcome {
        Outcome::Reply {
            user: user.into(),
            lookup: false,
        }
    }

    fn code(o: &Outcome) -> Option<Exit> {
        match o {
            Outcome::Exit(e, _) => Some(*e),
            Outcome::Reply { .. } => None,
        }
    }

    #[test]
    fn app_password_everywhere_normal_password_only_on_campus() {
        let w = World::new(true);
        let pw = w.add("alice", "phone");
        let mut pam = FakePam::new(PamOutcome::Accepted);
        for ip in [OFF, CAMPUS, EXCEPT, "", "mail.example.org"] {
            assert_eq!(
                w.login("alice", &pw, ip, &mut pam),
                accepted("alice"),
                "{ip}"
            );
        }
        assert!(pam.calls.is_empty(), "an app password never reaches PAM");

        for ip in [OFF, EXCEPT, "", "mail.example.org"] {
            assert_eq!(
                code(&w.login("alice", "Winter2026!", ip, &mut pam)),
                Some(Exit::Refused)
            );
        }
        assert!(
            pam.calls.is_empty(),
            "off campus the normal password never reaches PAM"
        );

        assert_eq!(
            w.login("alice", "Winter2026!", CAMPUS, &mut pam),
            accepted("alice")
        );
        assert_eq!(
            pam.calls,
            vec![("mail-primary".into(), "alice".into(), Some(CAMPUS.into()))]
        );
    }

    #[test]
    fn a_failed_argon2_self_test_is_a_temporary_failure_and_no_password_is_tried() {
        let w = World::new(true);
        let pw = w.add("alice", "phone");
        // In this test's thread only, the known-answer test now expects a wrong tag.
        apppw::hash::seam::break_self_test_in_this_thread();
        for user in ["alice", "nosuchuser"] {
            for ip in [OFF, CAMPUS] {
                let mut pam = FakePam::new(PamOutcome::Accepted);
                let out = w.login(user, &pw, ip, &mut pam);
                match &out {
                    Outcome::Exit(Exit::TempFail, Some(why)) => {
                        assert!(why.contains("Argon2id self-test failed"), "{why}");
                    }
                    other => panic!("{user} from {ip}: {other:?}"),
                }
                assert!(pam.calls.is_empty(), "the normal password was tried");
            }
        }
    }

    #[test]
    fn primary_refusal_and_failure() {
        let w = World::new(true);
        w.add("alice", "phone");
        let mut pam = FakePam::new(PamOutcome::Refused("Authentication failure".into()));
        assert_eq!(
            code(&w.login("alice", "wrong", CAMPUS, &mut pam)),
            Some(Exit::Refused)
        );
        let mut pam = FakePam::new(PamOutcome::Unavailable("ldap down".into()));
        assert_eq!(
            code(&w.login("alice", "pw", CAMPUS, &mut pam)),
            Some(Exit::TempFail)
        );
        let mut pam = FakePam::new(PamOutcome::Accepted);
        assert_eq!(
            code(&w.login("alice", "", CAMPUS, &mut pam)),
            Some(Exit::Refused)
        );
        assert!(
            pam.calls.is_empty(),
            "an empty password is never offered to PAM"
        );
    }

    #[test]
    fn without_primary_the_normal_password_is_refused_on_campus() {
        let w = World::new(false);
        w.add("alice", "phone");
        let mut pam = FakePam::new(PamOutcome::Accepted);
        assert_eq!(
            code(&w.login("alice", "Winter2026!", CAMPUS, &mut pam)),
            Some(Exit::Refused)
        );
        assert!(pam.calls.is_empty());
    }

    #[test]
    fn missing_store() {
        let shaped = "abcd efgh ijkl mnop qrst uvwx";
        let mut pam = FakePam::new(PamOutcome::Accepted);
        let w = World::new(false);
        assert_eq!(
            code(&w.login("alice", shaped, OFF, &mut pam)),
            Some(Exit::TempFail)
        );
        assert_eq!(
            code(&w.login("alice", shaped, CAMPUS, &mut pam)),
            Some(Exit::TempFail)
        );
        // Not app-password shaped: no store needed to refuse it off campus.
        assert_eq!(
            code(&w.login("alice", "Winter2026!", OFF, &mut pam)),
            Some(Exit::Refused)
        );
        let w = World::new(true);
        assert_eq!(
            code(&w.login("alice", shaped, OFF, &mut pam)),
            Some(Exit::TempFail)
        );
        assert_eq!(
            w.login("alice", shaped, CAMPUS, &mut pam),
            accepted("alice")
        );
    }

    /// `USER` is the canonical name when an app password decided, the name as given when PAM
    /// checked the normal password.
    #[test]
    fn user_is_canonical_for_app_passwords_as_given_for_pam() {
        let w = World::new(true);
        let pw = w.add("alice", "phone");
        let mut pam = FakePam::new(PamOutcome::Accepted);
        assert_eq!(w.login("ALICE", &pw, OFF, &mut pam), accepted("alice"));
        assert_eq!(
            w.login("Alice", "Winter2026!", CAMPUS, &mut pam),
            accepted("Alice")
        );
        assert_eq!(pam.calls[0].1, "Alice", "PAM checks the name as given");
    }

    #[test]
    fn untrusted_database_is_a_temporary_failure_everywhere() {
        use std::os::unix::fs::PermissionsExt;
        let w = World::new(true);
        let pw = w.add("alice", "phone");
        let db = w.config.database.sqlite_path().unwrap().to_path_buf();
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o666)).unwrap();
        let mut pam = FakePam::new(PamOutcome::Accepted);
        for ip in [OFF, CAMPUS] {
            let out = w.login("alice", &pw, ip, &mut pam);
            assert!(
                matches!(&out, Outcome::Exit(Exit::TempFail, Some(m)) if m.contains("chmod o-w")),
                "{out:?}"
            );
        }
        assert!(
            pam.calls.is_empty(),
            "the normal password is not tried either"
        );
    }

    #[test]
    fn report_mode_and_exemptions_reach_the_primary_service_off_campus() {
        let mut w = World::new(true);
        let pw = w.add("alice", "phone");
        w.config.enforcement.mode = apppw::config::Mode::Report;
        let mut pam = FakePam::new(PamOutcome::Accepted);
        assert_eq!(
            w.login("alice", "Winter2026!", OFF, &mut pam),
            accepted("alice")
        );
        assert_eq!(
            pam.calls,
            vec![("mail-primary".into(), "alice".into(), Some(OFF.into()))]
        );
        let mut wrong = FakePam::new(PamOutcome::Refused("Authentication failure".into()));
        assert_eq!(
            code(&w.login("alice", "Winter2026?", EXCEPT, &mut wrong)),
            Some(Exit::Refused)
        );
        // App passwords as always: never through PAM.
        let mut pam = FakePam::new(PamOutcome::Accepted);
        assert_eq!(w.login("alice", &pw, OFF, &mut pam), accepted("alice"));
        assert!(pam.calls.is_empty());

        // Enforce mode: only an exempt user gets through to PAM off campus.
        w.config.enforcement.mode = apppw::config::Mode::Enforce;
        let mut admin = Store::open_for_admin(&w.config.database).unwrap();
        admin
            .exempt(&apppw::store::Exemption {
                user: "alice".into(),
                expires_at: 2_000,
                reason: None,
                granted_by: "root".into(),
                granted_at: 1,
            })
            .unwrap();
        assert_eq!(
            w.login("alice", "Winter2026!", OFF, &mut pam),
            accepted("alice")
        );
        assert_eq!(
            code(&w.login("bob", "Winter2026!", OFF, &mut pam)),
            Some(Exit::Refused)
        );
        assert_eq!(pam.calls.len(), 1, "{:?}", pam.calls);
        let (rows, _) = admin.report(0, 1000).unwrap();
        let counts: Vec<(&str, i64, i64)> = rows
            .iter()
            .map(|r| (r.user.as_str(), r.refused, r.passed_on))
            .collect();
        assert_eq!(counts, [("alice", 0, 3), ("bob", 1, 0)]);
    }

    #[test]
    fn lookup_mode() {
        let w = World::new(true);
        let env = CallEnv {
            lookup: true,
            ..CallEnv::default()
        };
        assert_eq!(
            code(&lookup(&w.config, b"alice", &env)),
            Some(Exit::TempFail)
        );
        w.add("alice", "phone");
        assert_eq!(
            lookup(&w.config, b"alice", &env),
            Outcome::Reply {
                user: "alice".into(),
                lookup: true
            }
        );
        assert_eq!(
            lookup(&w.config, b"ALICE", &env),
            Outcome::Reply {
                user: "ALICE".into(),
                lookup: true
            }
        );
        for user in [&b"bob"[..], b"al\nice", b"\xff"] {
            assert_eq!(
                code(&lookup(&w.config, user, &env)),
                Some(Exit::UnknownUser)
            );
        }
        assert!(Path::new(w.config.database.sqlite_path().unwrap()).exists());
    }
}
