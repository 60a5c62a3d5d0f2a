//! Tests of what checkpassword answers Dovecot for each outcome of the decision.

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
    fn check(&mut self, service: &str, user: &str, _: &[u8], rhost: Option<&str>) -> PamOutcome {
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
