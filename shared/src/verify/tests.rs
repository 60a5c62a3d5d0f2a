//! Tests of the one decision: every reason a login is accepted, refused or passed on, the
//! one-Argon2 rule, the cool-downs and the report counts, against test doubles of the store and
//! the KDF.

use super::*;
use crate::hash::{Argon2Kdf, Params};
use crate::secret::AppPassword;
use crate::store::{Candidate, StoreError};
use std::collections::HashMap;
use std::path::Path;

const FAST: Params = Params {
    memory_kib: 1024,
    iterations: 1,
    parallelism: 1,
};

/// Real Argon2, counted.
struct CountingKdf {
    inner: Argon2Kdf,
    verifies: usize,
    dummies: usize,
}
impl Kdf for CountingKdf {
    fn verify(&mut self, stored: &str, pw: &[u8]) -> Result<bool, HashError> {
        self.verifies += 1;
        self.inner.verify(stored, pw)
    }
    fn dummy(&mut self, params: Params, pw: &[u8]) {
        self.dummies += 1;
        self.inner.dummy(params, pw);
    }
    fn dummy_outcome(&self) -> Result<(), HashError> {
        self.inner.dummy_outcome()
    }
    fn take_warning(&mut self) -> Option<String> {
        self.inner.take_warning()
    }
}
impl CountingKdf {
    fn total(&self) -> usize {
        self.verifies + self.dummies
    }
}

#[derive(Default)]
struct MemStore {
    rows: HashMap<(String, String), Candidate>,
    lookups: usize,
    recorded: Vec<i64>,
    broken: bool,
    untrusted: bool,
    exempt: HashMap<String, i64>,
    exemption_reads: usize,
    /// (user, passed on) of each counted off-campus attempt.
    offcampus: Vec<(String, bool)>,
}
impl CredentialSource for MemStore {
    fn exempt_until(&mut self, user: &str, now: i64) -> Result<Option<i64>, StoreError> {
        self.exemption_reads += 1;
        if self.broken {
            return Err(StoreError::Missing("/x.db".into()));
        }
        Ok(self.exempt.get(user).copied().filter(|&t| t > now))
    }
    fn record_offcampus(
        &mut self,
        a: &OffCampusAttempt<'_>,
        _: &crate::config::Enforcement,
    ) -> Result<(), StoreError> {
        if self.broken {
            return Err(StoreError::Missing("/x.db".into()));
        }
        self.offcampus.push((a.user.to_owned(), a.passed_on));
        Ok(())
    }
    fn lookup(&mut self, user: &str, tag: &str) -> Result<Option<Candidate>, StoreError> {
        self.lookups += 1;
        if self.broken {
            return Err(StoreError::Missing("/x.db".into()));
        }
        if self.untrusted {
            return Err(StoreError::Untrusted(crate::trust::TrustError {
                path: "/x.db".into(),
                problem: "is owned by someone else".into(),
                fix: "chown root /x.db".into(),
            }));
        }
        Ok(self.rows.get(&(user.into(), tag.into())).cloned())
    }
    fn record_use(
        &mut self,
        id: i64,
        _: i64,
        _: Option<&str>,
        _: Option<&str>,
    ) -> Result<(), StoreError> {
        self.recorded.push(id);
        Ok(())
    }
}

struct World {
    config: Config,
    store: MemStore,
    kdf: CountingKdf,
}

impl World {
    fn new() -> World {
        let mut config = Config::parse(
            Path::new("/t.toml"),
            "[network]\ncampus = [\"192.0.2.0/24\"]\nexcept = [\"192.0.2.128/25\"]\n\
                 [argon2]\nmemory_kib = 1024\niterations = 1\n",
        )
        .unwrap();
        config.argon2 = FAST;
        World {
            config,
            store: MemStore::default(),
            kdf: CountingKdf {
                inner: Argon2Kdf::new(),
                verifies: 0,
                dummies: 0,
            },
        }
    }

    /// Adds a credential and returns its password in grouped form.
    fn add(&mut self, user: &str, label: &str, f: impl FnOnce(&mut Candidate)) -> String {
        let pw = crate::secret::generate().unwrap();
        let hash = self.kdf.inner.hash_new(FAST, pw.as_bytes()).unwrap();
        let id = i64::try_from(self.store.rows.len()).unwrap() + 1;
        let mut c = Candidate {
            id,
            label: label.into(),
            hash,
            expires_at: None,
            services: None,
        };
        f(&mut c);
        self.store.rows.insert((user.into(), pw.tag().into()), c);
        pw.grouped().to_string()
    }

    fn check(&mut self, user: &str, pw: &str, ip: Option<&str>, service: &str) -> Decision {
        self.verdict(user, pw, ip, service).decision
    }

    fn verdict(&mut self, user: &str, pw: &str, ip: Option<&str>, service: &str) -> Verdict {
        let req = Request {
            user,
            password: pw.as_bytes(),
            client: ip,
            service: Some(service),
            now: 1_000,
        };
        verify(
            &self.config,
            &mut self.store,
            &mut self.kdf,
            &req,
            Record::LastUse,
        )
    }
}

const OFF: Option<&str> = Some("203.0.113.9");
const CAMPUS: Option<&str> = Some("192.0.2.10");
const EDUROAM: Option<&str> = Some("192.0.2.200");

#[test]
fn app_password_is_accepted_everywhere() {
    let mut w = World::new();
    let pw = w.add("alice", "phone", |_| {});
    for ip in [OFF, CAMPUS, EDUROAM, None, Some("host.example.org")] {
        assert!(
            matches!(w.check("alice", &pw, ip, "imap"), Decision::Accepted { ref label, .. } if label == "phone"),
            "{ip:?}"
        );
    }
    assert_eq!(w.store.recorded.len(), 5);
    let upper = pw.to_uppercase().replace(' ', "-");
    assert!(matches!(
        w.check("alice", &upper, OFF, "imap"),
        Decision::Accepted { .. }
    ));
}

#[test]
fn normal_password_only_on_campus() {
    let mut w = World::new();
    w.add("alice", "phone", |_| {});
    assert_eq!(
        w.check("alice", "Winter2026!", CAMPUS, "imap"),
        Decision::TryPrimary(Reason::NotAppPassword)
    );
    for ip in [OFF, EDUROAM, None, Some(""), Some("host.example.org")] {
        let d = w.check("alice", "Winter2026!", ip, "imap");
        assert_eq!(d, Decision::Refused(Reason::NotAppPassword), "{ip:?}");
        assert_eq!(d.audit_fields(), ("refused", "primary-off-campus-refused"));
    }
    // No lookup and no Argon2 for a candidate that cannot be an app password.
    assert_eq!(w.store.lookups, 0);
    assert_eq!(w.kdf.total(), 0);
}

#[test]
fn wrong_unknown_expired_and_restricted() {
    let mut w = World::new();
    let good = w.add("alice", "phone", |_| {});
    let expired = w.add("alice", "old", |c| c.expires_at = Some(1_000));
    let imap_only = w.add("alice", "imap", |c| c.services = Some(vec!["imap".into()]));

    // Same tag, wrong secret.
    let wrong = format!("{}zzzz zzzz zzzz zzzz zzzz", &good[..5]);
    assert_eq!(
        w.check("alice", &wrong, OFF, "imap"),
        Decision::Refused(Reason::NoMatch)
    );
    assert_eq!(
        w.check("alice", &wrong, CAMPUS, "imap"),
        Decision::TryPrimary(Reason::NoMatch)
    );
    assert_eq!(
        w.check("mallory", &good, OFF, "imap"),
        Decision::Refused(Reason::NoMatch)
    );
    assert_eq!(
        w.check("alice", &expired, OFF, "imap"),
        Decision::Refused(Reason::Expired)
    );
    assert!(matches!(
        w.check("alice", &imap_only, OFF, "IMAP"),
        Decision::Accepted { .. }
    ));
    assert_eq!(
        w.check("alice", &imap_only, OFF, "smtp"),
        Decision::Refused(Reason::ServiceNotAllowed)
    );
    assert_eq!(
        w.store.recorded.len(),
        1,
        "only the accepted attempt is recorded"
    );
}

#[test]
fn at_most_one_argon2_with_fifty_credentials() {
    let mut w = World::new();
    let mut passwords: Vec<String> = (0..50)
        .map(|i| w.add("alice", &format!("device {i}"), |_| {}))
        .collect();
    w.kdf.verifies = 0;
    w.kdf.dummies = 0;
    let last = passwords.pop().unwrap();
    assert!(matches!(
        w.check("alice", &last, OFF, "imap"),
        Decision::Accepted { .. }
    ));
    assert_eq!(w.kdf.total(), 1);
    // Unknown tag and unknown user: one dummy each, no more.
    w.check("alice", "qqqq wwww eeee rrrr tttt yyyy", OFF, "imap");
    w.check("nobody", &last, OFF, "imap");
    assert_eq!(w.kdf.total(), 3);
    assert_eq!(w.kdf.dummies, 2);
    // Not app-password shaped: none.
    w.check("alice", "correct horse battery staple", OFF, "imap");
    w.check("alice", "abc", CAMPUS, "imap");
    assert_eq!(w.kdf.total(), 3);
}

#[test]
fn bad_input_is_refused_even_on_campus() {
    let mut w = World::new();
    let pw = w.add("alice", "phone", |_| {});
    let long = "a".repeat(1025);
    for (user, pass) in [
        ("alice", long.as_str()),
        ("alice", "abc\0def"),
        ("alice", "abc\ndef"),
        ("al\nice", pw.as_str()),
        ("", pw.as_str()),
    ] {
        assert!(
            matches!(
                w.check(user, pass, CAMPUS, "imap"),
                Decision::Refused(Reason::BadInput(_))
            ),
            "{user:?}"
        );
    }
    assert_eq!(w.kdf.total(), 0);
}

#[test]
fn broken_store_is_never_accepted() {
    let mut w = World::new();
    let pw = w.add("alice", "phone", |_| {});
    w.store.broken = true;
    assert!(matches!(
        w.check("alice", &pw, OFF, "imap"),
        Decision::Unavailable(_)
    ));
    assert!(matches!(
        w.check("alice", &pw, CAMPUS, "imap"),
        Decision::TryPrimary(Reason::StoreUnavailable(_))
    ));
    // A database that fails the trust rule is a configuration error, on campus too.
    w.store.broken = false;
    w.store.untrusted = true;
    for ip in [OFF, CAMPUS] {
        let d = w.check("alice", &pw, ip, "imap");
        assert!(
            matches!(&d, Decision::ConfigError(m) if m.contains("chown root /x.db")),
            "{d:?}"
        );
        assert_eq!(d.audit_fields(), ("error", "untrusted-file"));
    }
    w.store.untrusted = false;
    // A corrupt stored hash is not a match.
    for c in w.store.rows.values_mut() {
        c.hash = "$argon2id$garbage".into();
    }
    assert_eq!(
        w.check("alice", &pw, OFF, "imap"),
        Decision::Refused(Reason::StoredHashInvalid)
    );
}

#[test]
fn repeated_failures_are_refused_without_argon2() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("a.db");
    let mut admin = crate::store::Store::open_for_admin(&db).unwrap();
    let mut w = World::new();
    w.config.lockout = crate::config::Lockout {
        per_client: 3,
        per_user: 0,
        window_seconds: 600,
        cooldown_seconds: 600,
    };
    let pw = crate::secret::generate().unwrap();
    let hash = w.kdf.inner.hash_new(FAST, pw.as_bytes()).unwrap();
    admin
        .create(&crate::store::NewCredential {
            user: "alice",
            label: "phone",
            tag: pw.tag(),
            hash: &hash,
            created_at: 0,
            expires_at: None,
            services: None,
        })
        .unwrap();
    let mut store = crate::store::Store::open_for_login(&db).unwrap();
    let mut attempt = |w: &mut World, password: &[u8], ip: &str| {
        let req = Request {
            user: "alice",
            password,
            client: Some(ip),
            service: Some("imap"),
            now: 1_000,
        };
        verify(&w.config, &mut store, &mut w.kdf, &req, Record::LastUse).decision
    };
    let wrong = b"zzzz zzzz zzzz zzzz zzzz zzzz";
    for _ in 0..3 {
        assert_eq!(
            attempt(&mut w, wrong, "203.0.113.9"),
            Decision::Refused(Reason::NoMatch)
        );
    }
    let before = w.kdf.total();
    // Now even the right password is refused from that address, with no Argon2...
    assert_eq!(
        attempt(&mut w, pw.as_bytes(), "203.0.113.9"),
        Decision::Refused(Reason::LockedOut)
    );
    assert_eq!(w.kdf.total(), before);
    // ...while the user's own devices elsewhere still work, and campus falls through.
    assert!(matches!(
        attempt(&mut w, pw.as_bytes(), "198.51.100.7"),
        Decision::Accepted { .. }
    ));
    let campus_locked = {
        for _ in 0..3 {
            attempt(&mut w, wrong, "192.0.2.10");
        }
        attempt(&mut w, pw.as_bytes(), "192.0.2.10")
    };
    assert_eq!(campus_locked, Decision::TryPrimary(Reason::LockedOut));
}

/// Every computation is turned away by the admission gate.
struct TurnedAway;
impl Kdf for TurnedAway {
    fn verify(&mut self, _: &str, _: &[u8]) -> Result<bool, HashError> {
        Err(HashError::Busy)
    }
    fn dummy(&mut self, _: Params, _: &[u8]) {}
    fn dummy_outcome(&self) -> Result<(), HashError> {
        Err(HashError::Busy)
    }
    fn take_warning(&mut self) -> Option<String> {
        Some("gate note".into())
    }
}

#[test]
fn a_full_gate_is_a_temporary_failure_never_a_refusal() {
    let mut w = World::new();
    let pw = w.add("alice", "phone", |_| {});
    let mut kdf = TurnedAway;
    let wrong = format!("{}zzzz zzzz zzzz zzzz zzzz", &pw[..5]);
    // Correct, wrong secret, unknown tag, unknown user; off campus and on campus alike.
    for (user, password) in [
        ("alice", pw.as_str()),
        ("alice", wrong.as_str()),
        ("alice", "qqqq wwww eeee rrrr tttt yyyy"),
        ("nobody", pw.as_str()),
    ] {
        for ip in [OFF, CAMPUS] {
            let req = Request {
                user,
                password: password.as_bytes(),
                client: ip,
                service: Some("imap"),
                now: 1,
            };
            let v = verify(&w.config, &mut w.store, &mut kdf, &req, Record::LastUse);
            assert!(
                matches!(&v.decision, Decision::Busy(why) if why.contains("no Argon2 slot")),
                "{user} {ip:?}: {:?}",
                v.decision
            );
            assert_eq!(v.decision.audit_fields(), ("tempfail", "argon2-busy"));
            assert_eq!(v.warning.as_deref(), Some("gate note"));
        }
    }
    assert!(w.store.recorded.is_empty());
    // A normal password never reaches the gate.
    let v = verify(
        &w.config,
        &mut w.store,
        &mut kdf,
        &Request {
            user: "alice",
            password: b"Winter2026!",
            client: CAMPUS,
            service: None,
            now: 1,
        },
        Record::LastUse,
    );
    assert_eq!(v.decision, Decision::TryPrimary(Reason::NotAppPassword));
}

#[test]
fn user_names_are_canonical_unless_case_sensitive() {
    let mut w = World::new();
    let pw = w.add("alice", "phone", |_| {});
    for user in ["alice", "ALICE", "Alice"] {
        assert!(
            matches!(w.check(user, &pw, OFF, "imap"), Decision::Accepted { .. }),
            "{user}"
        );
    }
    w.config.case_sensitive_users = true;
    assert_eq!(
        w.check("ALICE", &pw, OFF, "imap"),
        Decision::Refused(Reason::NoMatch)
    );
    assert!(matches!(
        w.check("alice", &pw, OFF, "imap"),
        Decision::Accepted { .. }
    ));
}

/// A real store with one app password of alice, and its password.
fn real_store(
    w: &mut World,
    lockout: crate::config::Lockout,
) -> (tempfile::TempDir, crate::store::Store, AppPassword) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("a.db");
    let mut admin = crate::store::Store::open_for_admin(&db).unwrap();
    w.config.lockout = lockout;
    let pw = crate::secret::generate().unwrap();
    let hash = w.kdf.inner.hash_new(FAST, pw.as_bytes()).unwrap();
    admin
        .create(&crate::store::NewCredential {
            user: "alice",
            label: "phone",
            tag: pw.tag(),
            hash: &hash,
            created_at: 0,
            expires_at: None,
            services: None,
        })
        .unwrap();
    let store = crate::store::Store::open_for_login(&db).unwrap();
    (dir, store, pw)
}

fn attempt(
    w: &mut World,
    store: &mut crate::store::Store,
    user: &str,
    password: &[u8],
    ip: &str,
    now: i64,
) -> Decision {
    let req = Request {
        user,
        password,
        client: Some(ip),
        service: Some("imap"),
        now,
    };
    verify(&w.config, store, &mut w.kdf, &req, Record::LastUse).decision
}

const WRONG: &[u8] = b"zzzz zzzz zzzz zzzz zzzz zzzz";

/// Rotating through the addresses of one /64 is one client for the per-client counter.
#[test]
fn an_ipv6_client_is_counted_per_64() {
    let mut w = World::new();
    let (_dir, mut store, pw) = real_store(
        &mut w,
        crate::config::Lockout {
            per_client: 3,
            per_user: 0,
            window_seconds: 600,
            cooldown_seconds: 600,
        },
    );
    for i in 1..=3 {
        let ip = format!("2001:db8:1:2::{i:x}");
        let d = attempt(&mut w, &mut store, "alice", WRONG, &ip, 1000);
        assert_eq!(d, Decision::Refused(Reason::NoMatch), "{ip}");
    }
    let d = attempt(
        &mut w,
        &mut store,
        "alice",
        pw.as_bytes(),
        "2001:db8:1:2:ffff::9",
        1001,
    );
    assert_eq!(d, Decision::Refused(Reason::LockedOut));
    // Upper case is the same user for the counters too.
    let d = attempt(
        &mut w,
        &mut store,
        "ALICE",
        pw.as_bytes(),
        "2001:db8:1:2::7",
        1001,
    );
    assert_eq!(d, Decision::Refused(Reason::LockedOut));
    let d = attempt(
        &mut w,
        &mut store,
        "alice",
        pw.as_bytes(),
        "2001:db8:1:3::1",
        1001,
    );
    assert!(matches!(d, Decision::Accepted { .. }), "{d:?}");
}

/// The per-user cool-down spares devices that logged in within 30 days, not strangers.
#[test]
fn smart_lockout_spares_known_devices() {
    let mut w = World::new();
    let (_dir, mut store, pw) = real_store(
        &mut w,
        crate::config::Lockout {
            per_client: 0,
            per_user: 3,
            window_seconds: 600,
            cooldown_seconds: 600,
        },
    );
    let day = 86_400;
    // The phone logs in from home (IPv4) and from its mobile network (IPv6); a laptop
    // once from a hotel.
    for ip in ["198.51.100.7", "2001:db8:77:1::10", "198.18.0.5"] {
        let d = attempt(&mut w, &mut store, "alice", pw.as_bytes(), ip, 1000);
        assert!(matches!(d, Decision::Accepted { .. }), "{d:?}");
    }
    // Later someone elsewhere guesses: the user is locked out...
    let t = 1000 + 10 * day;
    for i in 1..=3 {
        let ip = format!("203.0.113.{i}");
        attempt(&mut w, &mut store, "alice", WRONG, &ip, t);
    }
    let stranger = attempt(
        &mut w,
        &mut store,
        "alice",
        pw.as_bytes(),
        "203.0.113.50",
        t + 1,
    );
    assert_eq!(stranger, Decision::Refused(Reason::LockedOut));
    let on_campus = attempt(
        &mut w,
        &mut store,
        "alice",
        pw.as_bytes(),
        "192.0.2.99",
        t + 1,
    );
    assert_eq!(on_campus, Decision::TryPrimary(Reason::LockedOut));
    // ...but not on the phone's networks (another address in the same /24 and /64).
    for ip in ["198.51.100.200", "2001:db8:77:1::abcd"] {
        let d = attempt(&mut w, &mut store, "alice", pw.as_bytes(), ip, t + 2);
        assert!(matches!(d, Decision::Accepted { .. }), "{ip}: {d:?}");
    }
    // A known device guessing wrong is still refused.
    let d = attempt(&mut w, &mut store, "alice", WRONG, "198.51.100.7", t + 3);
    assert_eq!(d, Decision::Refused(Reason::NoMatch));
    // Thirty days after its last login the hotel network is a stranger again; the phone,
    // seen at t + 2, is not.
    let later = 1000 + 31 * day;
    for i in 1..=3 {
        let ip = format!("203.0.113.{i}");
        attempt(&mut w, &mut store, "alice", WRONG, &ip, later);
    }
    let d = attempt(
        &mut w,
        &mut store,
        "alice",
        pw.as_bytes(),
        "198.18.0.5",
        later + 1,
    );
    assert_eq!(d, Decision::Refused(Reason::LockedOut));
    let d = attempt(
        &mut w,
        &mut store,
        "alice",
        pw.as_bytes(),
        "198.51.100.7",
        later + 1,
    );
    assert!(matches!(d, Decision::Accepted { .. }), "{d:?}");
    // Once the cool-down is over everyone may try again.
    let d = attempt(
        &mut w,
        &mut store,
        "alice",
        pw.as_bytes(),
        "198.18.0.5",
        later + day,
    );
    assert!(matches!(d, Decision::Accepted { .. }), "{d:?}");
}

#[test]
fn report_mode_passes_normal_passwords_on_and_counts_them() {
    let mut w = World::new();
    w.config.enforcement.mode = Mode::Report;
    let pw = w.add("alice", "phone", |_| {});
    let expired = w.add("alice", "old", |c| c.expires_at = Some(1_000));
    let normal = w.check("alice", "Winter2026!", OFF, "imap");
    assert_eq!(
        normal,
        Decision::PassedOn {
            would_refuse: Reason::NotAppPassword,
            because: Relaxed::ReportMode
        }
    );
    assert_eq!(
        normal.audit_fields(),
        ("would-refuse", "primary-off-campus-refused")
    );
    // Report mode needs no exemption read, no lookup and no Argon2: one write.
    assert_eq!(
        (w.store.lookups, w.store.exemption_reads, w.kdf.total()),
        (0, 0, 0)
    );
    assert_eq!(w.store.offcampus, vec![("alice".to_owned(), true)]);

    // App-password shaped but no match: it may be a 24-letter normal password.
    let wrong = format!("{}zzzz zzzz zzzz zzzz zzzz", &pw[..5]);
    assert!(matches!(
        w.check("alice", &wrong, EDUROAM, "imap"),
        Decision::PassedOn {
            would_refuse: Reason::NoMatch,
            ..
        }
    ));
    // App passwords behave as always.
    assert!(matches!(
        w.check("alice", &pw, OFF, "imap"),
        Decision::Accepted { .. }
    ));
    assert_eq!(
        w.check("alice", &expired, OFF, "imap"),
        Decision::Refused(Reason::Expired)
    );
    // Campus and bad input are not affected, and not counted.
    assert_eq!(
        w.check("alice", "Winter2026!", CAMPUS, "imap"),
        Decision::TryPrimary(Reason::NotAppPassword)
    );
    assert!(matches!(
        w.check("alice", "a\nb", OFF, "imap"),
        Decision::Refused(Reason::BadInput(_))
    ));
    assert_eq!(w.store.offcampus.len(), 2);

    // A store outage: app-password candidates stay a temporary failure; a normal
    // password is still passed on, with a warning that it was not counted.
    w.store.broken = true;
    assert!(matches!(
        w.check("alice", &pw, OFF, "imap"),
        Decision::Unavailable(_)
    ));
    let v = w.verdict("alice", "Winter2026!", OFF, "imap");
    assert!(matches!(v.decision, Decision::PassedOn { .. }));
    assert!(v.warning.unwrap().contains("not counted"));
}

#[test]
fn exemptions_pass_on_until_they_end() {
    let mut w = World::new();
    w.store.exempt.insert("alice".into(), 2_000);
    w.store.exempt.insert("bob".into(), 1_000); // ended at `now`
    assert_eq!(
        w.check("alice", "Winter2026!", OFF, "imap"),
        Decision::PassedOn {
            would_refuse: Reason::NotAppPassword,
            because: Relaxed::Exempt { until: 2_000 }
        }
    );
    assert_eq!(
        w.check("bob", "Winter2026!", OFF, "imap"),
        Decision::Refused(Reason::NotAppPassword)
    );
    assert_eq!(
        w.check("carol", "Winter2026!", OFF, "imap"),
        Decision::Refused(Reason::NotAppPassword)
    );
    // One exemption read per off-campus normal password, none on campus; no lookup.
    w.check("alice", "Winter2026!", CAMPUS, "imap");
    assert_eq!((w.store.exemption_reads, w.store.lookups), (3, 0));
    assert_eq!(
        w.store.offcampus,
        vec![
            ("alice".to_owned(), true),
            ("bob".to_owned(), false),
            ("carol".to_owned(), false)
        ]
    );
    assert_eq!(
        Relaxed::Exempt { until: 0 }.detail(),
        "exempt-until-1970-01-01T00:00:00Z"
    );

    // An exemption that cannot be read is not granted (and not counted twice over).
    w.store.broken = true;
    let v = w.verdict("alice", "Winter2026!", OFF, "imap");
    assert_eq!(v.decision, Decision::Refused(Reason::NotAppPassword));
    assert!(v.warning.unwrap().contains("exemption not checked"));
    assert_eq!(w.store.offcampus.len(), 3);
}

#[test]
fn dry_run_does_not_record() {
    let mut w = World::new();
    let pw = w.add("alice", "phone", |_| {});
    let req = Request {
        user: "alice",
        password: pw.as_bytes(),
        client: OFF,
        service: None,
        now: 1,
    };
    let v = verify(&w.config, &mut w.store, &mut w.kdf, &req, Record::DryRun);
    assert!(matches!(v.decision, Decision::Accepted { .. }));
    assert!(w.store.recorded.is_empty());
    let normal = Request {
        password: b"Winter2026!",
        ..req
    };
    let v = verify(&w.config, &mut w.store, &mut w.kdf, &normal, Record::DryRun);
    assert_eq!(v.decision, Decision::Refused(Reason::NotAppPassword));
    assert!(w.store.offcampus.is_empty());
    assert!(AppPassword::parse(pw.as_bytes()).is_some());
}
