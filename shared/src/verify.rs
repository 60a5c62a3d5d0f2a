//! The one decision: is this login attempt an app password, may the normal password be tried,
//! or is it refused?
//!
//! ```text
//! bad input (over 1024 bytes, control characters, bad user) ........ refused
//! candidate is app-password shaped (24 letters after normalising):
//!     one indexed lookup by (user, tag), then exactly one Argon2id:
//!       against the stored hash if the tag exists, else against nothing (dummy),
//!       so unknown users and unknown tags cost the same as known ones
//!     matches, not expired, service allowed ....................... ACCEPTED
//!     otherwise: campus → primary may be tried; off campus → refused
//!     database unusable: campus → primary may be tried; off campus → unavailable
//! candidate is not app-password shaped (no lookup, no Argon2):
//!     campus → primary may be tried; off campus → refused
//! ```
//!
//! "Primary may be tried" is what the front-ends turn into PAM_IGNORE (the next PAM module
//! checks the normal password) or, in the checkpassword backend, a PAM call to
//! `[primary] pam_service`.

use crate::config::Config;
use crate::hash::{HashError, Kdf};
use crate::input::{BadInput, check_password, check_user};
use crate::network::Location;
use crate::secret::AppPassword;
use crate::store::CredentialSource;

/// One login attempt.
#[derive(Clone, Copy)]
pub struct Request<'a> {
    /// User name as given by the client.
    pub user: &'a str,
    /// Password candidate as given by the client.
    pub password: &'a [u8],
    /// Client address as given by the caller (`PAM_RHOST`, `TCPREMOTEIP`); unparsed.
    pub client: Option<&'a str>,
    /// Service (`PAM_SERVICE`, Dovecot's `SERVICE`).
    pub service: Option<&'a str>,
    /// Current time (Unix seconds).
    pub now: i64,
}

/// Why an app password did not decide the attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// The input was rejected before any lookup.
    BadInput(BadInput),
    /// The candidate cannot be an app password (so it may be a normal password).
    NotAppPassword,
    /// App-password shaped, but no stored credential matched.
    NoMatch,
    /// Too many failed app-password attempts: refused without Argon2 during the cool-down.
    LockedOut,
    /// Matched an app password that has expired.
    Expired,
    /// Matched an app password not allowed for this service.
    ServiceNotAllowed,
    /// The stored hash of the matching tag is unreadable.
    StoredHashInvalid,
    /// The database could not be used; the message says why.
    StoreUnavailable(String),
}

impl Reason {
    /// The code used in log lines.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Reason::BadInput(b) => b.code(),
            Reason::NotAppPassword => "not-app-password",
            Reason::NoMatch => "no-match",
            Reason::LockedOut => "locked-out",
            Reason::Expired => "expired",
            Reason::ServiceNotAllowed => "service-not-allowed",
            Reason::StoredHashInvalid => "stored-hash-invalid",
            Reason::StoreUnavailable(_) => "store-unavailable",
        }
    }
}

/// The outcome of [`verify`]. Front-ends map it to their protocol; nothing else grants access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// An app password matched: authenticated.
    Accepted {
        /// Credential id.
        id: i64,
        /// Credential label.
        label: String,
    },
    /// The client is on campus and no app password matched: the normal password may be
    /// checked by the next mechanism. `.0` says why the app password did not decide.
    TryPrimary(Reason),
    /// Not authenticated.
    Refused(Reason),
    /// Off campus and the database is unusable: temporary failure.
    Unavailable(String),
    /// The host's Argon2 admission gate had no slot within the queue timeout (on campus too:
    /// an app password is never handed to the normal-password check as if it were wrong).
    /// Temporary failure; the message says why.
    Busy(String),
}

impl Decision {
    /// `(result, reason)` for the audit line.
    #[must_use]
    pub fn audit_fields(&self) -> (&'static str, &'static str) {
        match self {
            Decision::Accepted { .. } => ("accepted", "app-password"),
            Decision::TryPrimary(_) => ("continue", "primary-on-campus"),
            Decision::Refused(Reason::NotAppPassword) => ("refused", "primary-off-campus-refused"),
            Decision::Refused(r) => ("refused", r.code()),
            Decision::Unavailable(_) => ("tempfail", "store-unavailable"),
            Decision::Busy(_) => ("tempfail", "argon2-busy"),
        }
    }
}

/// The decision with its context, for logging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// What to do.
    pub decision: Decision,
    /// Where the client is.
    pub location: Location,
    /// A non-fatal problem worth logging (e.g. the last-used update failed).
    pub warning: Option<String>,
}

/// Whether a successful attempt is recorded as the credential's last use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    /// Real logins.
    LastUse,
    /// `apppw verify`: decide only.
    DryRun,
}

/// Decides one login attempt. Costs at most one Argon2 computation, and none when the
/// candidate cannot be an app password.
pub fn verify(
    config: &Config,
    store: &mut dyn CredentialSource,
    kdf: &mut dyn Kdf,
    req: &Request<'_>,
    record: Record,
) -> Verdict {
    let mut verdict = decide(config, store, kdf, req, record);
    if let Some(kdf_warning) = kdf.take_warning() {
        verdict.warning = Some(match verdict.warning.take() {
            Some(w) => format!("{kdf_warning}; {w}"),
            None => kdf_warning,
        });
    }
    if let Some(open_warning) = store.take_warning() {
        verdict.warning = Some(match verdict.warning.take() {
            Some(w) => format!("{open_warning}; {w}"),
            None => open_warning,
        });
    }
    verdict
}

fn decide(
    config: &Config,
    store: &mut dyn CredentialSource,
    kdf: &mut dyn Kdf,
    req: &Request<'_>,
    record: Record,
) -> Verdict {
    let location = config.network.locate(req.client);
    let campus = location.is_campus();
    let verdict = |decision, warning| Verdict {
        decision,
        location: location.clone(),
        warning,
    };
    let not_decided = |reason: Reason| {
        if campus {
            Decision::TryPrimary(reason)
        } else {
            Decision::Refused(reason)
        }
    };

    if let Err(bad) = check_user(req.user).and_then(|()| check_password(req.password)) {
        return verdict(Decision::Refused(Reason::BadInput(bad)), None);
    }
    let Some(candidate) = AppPassword::parse(req.password) else {
        return verdict(not_decided(Reason::NotAppPassword), None);
    };

    let client = client_key(req.client);
    let looked_up = store
        .locked_out(req.user, &client, req.now)
        .and_then(|locked| {
            if locked {
                Ok(None)
            } else {
                store.lookup(req.user, candidate.tag()).map(Some)
            }
        });
    let stored = match looked_up {
        Ok(Some(stored)) => stored,
        Ok(None) => return verdict(not_decided(Reason::LockedOut), None),
        Err(e) => {
            let why = e.to_string();
            let decision = if campus {
                Decision::TryPrimary(Reason::StoreUnavailable(why))
            } else {
                Decision::Unavailable(why)
            };
            return verdict(decision, None);
        }
    };
    let no_match = |store: &mut dyn CredentialSource| {
        let warning = match record {
            Record::LastUse => store
                .record_failure(req.user, &client, req.now, &config.lockout)
                .err()
                .map(|e| format!("failure counter not updated: {e}")),
            Record::DryRun => None,
        };
        verdict(not_decided(Reason::NoMatch), warning)
    };
    let busy = || {
        Decision::Busy(format!(
            "no Argon2 slot free within {} ms ({} at once on this host, [argon2] \
             max_concurrent); temporary failure",
            config.gate.queue_timeout.as_millis(),
            config.gate.max_concurrent
        ))
    };
    let Some(stored) = stored else {
        kdf.dummy(config.argon2, candidate.as_bytes());
        if kdf.dummy_outcome() == Err(HashError::Busy) {
            return verdict(busy(), None);
        }
        return no_match(store);
    };
    match kdf.verify(&stored.hash, candidate.as_bytes()) {
        Ok(true) => {}
        Ok(false) => return no_match(store),
        Err(HashError::Busy) => return verdict(busy(), None),
        Err(_) => return verdict(not_decided(Reason::StoredHashInvalid), None),
    }
    drop(candidate);

    if stored.expires_at.is_some_and(|t| t <= req.now) {
        return verdict(not_decided(Reason::Expired), None);
    }
    if let Some(allowed) = &stored.services {
        let service = req.service.unwrap_or("");
        if !allowed.iter().any(|s| s.eq_ignore_ascii_case(service)) {
            return verdict(not_decided(Reason::ServiceNotAllowed), None);
        }
    }
    let warning = match record {
        Record::LastUse => store
            .record_use(
                stored.id,
                req.now,
                client_for_record(req.client),
                req.service,
            )
            .err()
            .map(|e| format!("last-used update skipped: {e}")),
        Record::DryRun => None,
    };
    verdict(
        Decision::Accepted {
            id: stored.id,
            label: stored.label,
        },
        warning,
    )
}

/// The failure-counter key of a client: the canonical address, or `-` when there is none.
fn client_key(raw: Option<&str>) -> String {
    raw.and_then(crate::network::parse_client_addr)
        .map_or_else(|| "-".to_owned(), |ip| ip.to_string())
}

/// The client address as stored for "last used": canonical when numeric, else bounded text.
fn client_for_record(raw: Option<&str>) -> Option<&str> {
    raw.map(str::trim)
        .filter(|s| !s.is_empty() && s.len() <= 64)
}

#[cfg(test)]
mod tests {
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
    }
    impl CredentialSource for MemStore {
        fn lookup(&mut self, user: &str, tag: &str) -> Result<Option<Candidate>, StoreError> {
            self.lookups += 1;
            if self.broken {
                return Err(StoreError::Missing("/x.db".into()));
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
            .decision
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
        // A corrupt stored hash is not a match.
        w.store.broken = false;
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
        assert!(AppPassword::parse(pw.as_bytes()).is_some());
    }
}
