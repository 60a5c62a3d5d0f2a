//! Sessions (in memory: a restart signs everyone out), CSRF tokens, create-form nonces and
//! rate limits.
//!
//! Session ids and tokens are 256 random bits from the OS, hex-encoded. Time is passed in, so
//! tests need no clock tricks.
//!
//! A create form carries a one-time nonce. Sending it starts the creation; the same nonce sent
//! again (a double click, a reload of the result) gets the *same* result: while the first
//! request is still hashing, the second waits for it; afterwards it is shown the same password
//! for [`SHOW_AGAIN_FOR`], from this session's memory only. Then only "already created" is left.

use crate::webconfig::SessionPolicy;
use apppw::store::Credential;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// Most sessions kept; beyond that the least recently used one is dropped.
const MAX_SESSIONS: usize = 10_000;
/// Most create forms remembered per session (one nonce each).
const MAX_NONCES: usize = 8;
/// How long a created password can be shown again to the same session.
pub const SHOW_AGAIN_FOR: Duration = Duration::from_secs(120);

/// What became of a create form.
#[derive(Debug)]
pub enum FormState {
    /// Issued, not sent yet.
    Open,
    /// Sent; the app password is being created.
    Running,
    /// Created.
    Done(Box<Created>),
}

/// A created app password, as the session remembers it.
pub struct Created {
    /// The credential.
    pub cred: Credential,
    /// The password as shown (groups of four), kept for [`SHOW_AGAIN_FOR`], then wiped.
    pub password: Option<Zeroizing<String>>,
    /// When it was created.
    pub at: Instant,
    /// The configuration profile (with the password) was downloaded.
    pub profile_taken: bool,
}

impl std::fmt::Debug for Created {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Created")
            .field("cred", &self.cred.id)
            .field("password", &self.password.as_ref().map(|_| "..."))
            .field("profile_taken", &self.profile_taken)
            .finish()
    }
}

/// What sending a create form with some nonce means.
#[derive(Debug)]
pub enum Submit {
    /// A fresh nonce: create (it is now [`FormState::Running`]).
    Fresh,
    /// Another request with this nonce is creating right now: wait for it.
    Running,
    /// Already created; the password, if still within [`SHOW_AGAIN_FOR`].
    Done {
        /// The credential.
        cred: Credential,
        /// The password, if it may still be shown.
        password: Option<Zeroizing<String>>,
    },
    /// Never issued to this session, or forgotten.
    Unknown,
}

/// 256 random bits, hex. `None` if the OS generator fails (then nothing is signed in).
#[must_use]
pub fn random_token() -> Option<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).ok()?;
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Compares two secrets in time that depends only on their lengths.
#[must_use]
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// A message shown once on the next page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flash(pub String);

/// One signed-in user.
#[derive(Debug)]
pub struct Session {
    /// The user.
    pub user: String,
    /// The CSRF token every form of this session carries.
    pub csrf: String,
    /// Create forms of this session by nonce: a form creates at most one app password.
    forms: Vec<(String, FormState)>,
    /// A message for the next page.
    pub flash: Option<Flash>,
    started: Instant,
    last_seen: Instant,
}

impl Session {
    /// Checks a submitted CSRF token.
    #[must_use]
    pub fn csrf_ok(&self, submitted: Option<&str>) -> bool {
        submitted.is_some_and(|t| constant_time_eq(t.as_bytes(), self.csrf.as_bytes()))
    }

    /// A nonce for a new create form.
    pub fn new_nonce(&mut self) -> Option<String> {
        let nonce = random_token()?;
        if self.forms.len() >= MAX_NONCES {
            // The oldest form that is not being created right now.
            if let Some(i) = self
                .forms
                .iter()
                .position(|(_, s)| !matches!(s, FormState::Running))
            {
                self.forms.remove(i);
            }
        }
        self.forms.push((nonce.clone(), FormState::Open));
        Some(nonce)
    }

    fn form(&mut self, nonce: Option<&str>) -> Option<&mut FormState> {
        let n = nonce?;
        self.forms
            .iter_mut()
            .find(|(k, _)| constant_time_eq(k.as_bytes(), n.as_bytes()))
            .map(|(_, s)| s)
    }

    /// Wipes passwords shown longer than [`SHOW_AGAIN_FOR`] ago.
    pub fn forget_old_passwords(&mut self, now: Instant) {
        for (_, state) in &mut self.forms {
            if let FormState::Done(c) = state {
                if now.saturating_duration_since(c.at) > SHOW_AGAIN_FOR {
                    c.password = None;
                }
            }
        }
    }

    /// A create form was sent with `nonce`: what to do ([`Submit`]). A fresh one becomes
    /// [`FormState::Running`].
    pub fn submit(&mut self, nonce: Option<&str>, now: Instant) -> Submit {
        self.forget_old_passwords(now);
        let Some(state) = self.form(nonce) else {
            return Submit::Unknown;
        };
        match state {
            FormState::Open => {
                *state = FormState::Running;
                Submit::Fresh
            }
            FormState::Running => Submit::Running,
            FormState::Done(c) => Submit::Done {
                cred: c.cred.clone(),
                password: c.password.clone(),
            },
        }
    }

    /// The creation started by [`Session::submit`] ended: with a new app password, or with
    /// none (the form had a mistake; the nonce may be sent again).
    pub fn finish(&mut self, nonce: Option<&str>, created: Option<Created>) {
        if let Some(state) = self.form(nonce) {
            *state = match created {
                Some(c) => FormState::Done(Box::new(c)),
                None => FormState::Open,
            };
        }
    }

    /// The configuration profile of the password created by this nonce: the password once,
    /// within [`SHOW_AGAIN_FOR`]; `None` afterwards or for any other nonce.
    pub fn take_profile(
        &mut self,
        nonce: Option<&str>,
        now: Instant,
    ) -> Option<(Credential, Zeroizing<String>)> {
        self.forget_old_passwords(now);
        match self.form(nonce)? {
            FormState::Done(c) if !c.profile_taken => {
                let password = c.password.clone()?;
                c.profile_taken = true;
                Some((c.cred.clone(), password))
            }
            _ => None,
        }
    }
}

/// All sessions.
#[derive(Debug)]
pub struct Sessions {
    policy: SessionPolicy,
    map: HashMap<String, Session>,
}

impl Sessions {
    /// No sessions yet.
    #[must_use]
    pub fn new(policy: SessionPolicy) -> Sessions {
        Sessions {
            policy,
            map: HashMap::new(),
        }
    }

    /// The live session with this id, touched; an expired one is removed.
    pub fn get(&mut self, id: &str, now: Instant) -> Option<&mut Session> {
        let expired = {
            let s = self.map.get(id)?;
            now.saturating_duration_since(s.last_seen) > self.policy.idle
                || now.saturating_duration_since(s.started) > self.policy.lifetime
        };
        if expired {
            self.map.remove(id);
            return None;
        }
        let s = self.map.get_mut(id)?;
        s.last_seen = now;
        Some(s)
    }

    /// Starts a session for `user`; returns its id.
    pub fn start(&mut self, user: &str, now: Instant) -> Option<String> {
        if self.map.len() >= MAX_SESSIONS {
            self.prune(now);
        }
        if self.map.len() >= MAX_SESSIONS {
            let oldest = self
                .map
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(id, _)| id.clone());
            if let Some(id) = oldest {
                self.map.remove(&id);
            }
        }
        let id = random_token()?;
        let csrf = random_token()?;
        self.map.insert(
            id.clone(),
            Session {
                user: user.to_owned(),
                csrf,
                forms: Vec::new(),
                flash: None,
                started: now,
                last_seen: now,
            },
        );
        Some(id)
    }

    /// Ends a session.
    pub fn end(&mut self, id: &str) {
        self.map.remove(id);
    }

    /// Drops expired sessions.
    pub fn prune(&mut self, now: Instant) {
        let policy = self.policy;
        self.map.retain(|_, s| {
            now.saturating_duration_since(s.last_seen) <= policy.idle
                && now.saturating_duration_since(s.started) <= policy.lifetime
        });
    }

    /// Number of live or not yet pruned sessions.
    #[must_use]
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// No sessions.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// Counts events per key within a window; once `max` is reached the key is blocked until the
/// window that started with its first event has passed.
#[derive(Debug)]
pub struct Limiter {
    max: u32,
    window: Duration,
    map: HashMap<String, (Instant, u32)>,
}

impl Limiter {
    /// `max` = 0 disables the limit.
    #[must_use]
    pub fn new(max: u32, window: Duration) -> Limiter {
        Limiter {
            max,
            window,
            map: HashMap::new(),
        }
    }

    /// If `key` is blocked, for how much longer.
    pub fn blocked(&mut self, key: &str, now: Instant) -> Option<Duration> {
        if self.max == 0 {
            return None;
        }
        let (first, count) = *self.map.get(key)?;
        let elapsed = now.saturating_duration_since(first);
        if elapsed >= self.window {
            self.map.remove(key);
            return None;
        }
        (count >= self.max).then(|| self.window - elapsed)
    }

    /// Counts one event.
    pub fn hit(&mut self, key: &str, now: Instant) {
        if self.max == 0 {
            return;
        }
        if self.map.len() >= MAX_SESSIONS {
            let window = self.window;
            self.map
                .retain(|_, (first, _)| now.saturating_duration_since(*first) < window);
        }
        let window = self.window;
        let entry = self.map.entry(key.to_owned()).or_insert((now, 0));
        if now.saturating_duration_since(entry.0) >= window {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }

    /// Forgets a key (after a successful sign-in).
    pub fn clear(&mut self, key: &str) {
        self.map.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> SessionPolicy {
        SessionPolicy {
            idle: Duration::from_secs(60),
            lifetime: Duration::from_secs(300),
            secure_cookie: true,
        }
    }

    #[test]
    fn sessions_expire_when_idle_and_after_their_lifetime() {
        let t0 = Instant::now();
        let mut s = Sessions::new(policy());
        let id = s.start("alice", t0).unwrap();
        assert_eq!(id.len(), 64);
        assert!(s.get(&id, t0 + Duration::from_secs(50)).is_some());
        assert!(
            s.get(&id, t0 + Duration::from_secs(100)).is_some(),
            "touched at 50"
        );
        assert!(s.get(&id, t0 + Duration::from_secs(161)).is_none(), "idle");
        let id = s.start("alice", t0).unwrap();
        for i in 1..=5 {
            assert!(s.get(&id, t0 + Duration::from_secs(i * 59)).is_some());
        }
        assert!(
            s.get(&id, t0 + Duration::from_secs(301)).is_none(),
            "lifetime"
        );
        assert!(s.get("nonsense", t0).is_none());
    }

    #[test]
    fn csrf_and_nonces() {
        let t0 = Instant::now();
        let mut s = Sessions::new(policy());
        let id = s.start("alice", t0).unwrap();
        let sess = s.get(&id, t0).unwrap();
        let token = sess.csrf.clone();
        assert!(sess.csrf_ok(Some(&token)));
        assert!(!sess.csrf_ok(Some(&token[1..])));
        assert!(!sess.csrf_ok(None));
        let n = sess.new_nonce().unwrap();
        assert!(matches!(sess.submit(Some(&n), t0), Submit::Fresh));
        assert!(matches!(sess.submit(Some(&n), t0), Submit::Running));
        assert!(matches!(sess.submit(None, t0), Submit::Unknown));
        assert!(matches!(sess.submit(Some("0"), t0), Submit::Unknown));
        // A mistake in the form: it may be sent again.
        sess.finish(Some(&n), None);
        assert!(matches!(sess.submit(Some(&n), t0), Submit::Fresh));
    }

    fn credential() -> Credential {
        Credential {
            id: 7,
            user: "alice".into(),
            label: "phone".into(),
            created_at: 0,
            expires_at: None,
            services: None,
            last_used_at: None,
            last_used_ip: None,
            last_used_service: None,
        }
    }

    #[test]
    fn a_created_password_is_shown_again_for_two_minutes_only() {
        let t0 = Instant::now();
        let mut s = Sessions::new(policy());
        let id = s.start("alice", t0).unwrap();
        let sess = s.get(&id, t0).unwrap();
        let n = sess.new_nonce().unwrap();
        assert!(matches!(sess.submit(Some(&n), t0), Submit::Fresh));
        sess.finish(
            Some(&n),
            Some(Created {
                cred: credential(),
                password: Some(Zeroizing::new("abcd efgh".into())),
                at: t0,
                profile_taken: false,
            }),
        );
        let again = sess.submit(Some(&n), t0 + Duration::from_secs(119));
        assert!(
            matches!(&again, Submit::Done { password: Some(p), cred } if p.as_str() == "abcd efgh" && cred.id == 7),
            "{again:?}"
        );
        let (cred, pw) = sess
            .take_profile(Some(&n), t0 + Duration::from_secs(1))
            .unwrap();
        assert_eq!((cred.id, pw.as_str()), (7, "abcd efgh"));
        assert!(
            sess.take_profile(Some(&n), t0 + Duration::from_secs(2))
                .is_none(),
            "once"
        );
        let later = sess.submit(Some(&n), t0 + Duration::from_secs(121));
        assert!(
            matches!(later, Submit::Done { password: None, .. }),
            "{later:?}"
        );
        // Other sessions know nothing of it.
        let other = s.start("alice", t0).unwrap();
        assert!(matches!(
            s.get(&other, t0).unwrap().submit(Some(&n), t0),
            Submit::Unknown
        ));
    }

    #[test]
    fn limiter_blocks_then_forgets() {
        let t0 = Instant::now();
        let mut l = Limiter::new(3, Duration::from_secs(60));
        for _ in 0..3 {
            assert!(l.blocked("a", t0).is_none());
            l.hit("a", t0);
        }
        assert_eq!(
            l.blocked("a", t0 + Duration::from_secs(10)),
            Some(Duration::from_secs(50))
        );
        assert!(l.blocked("b", t0).is_none());
        assert!(l.blocked("a", t0 + Duration::from_secs(60)).is_none());
        l.hit("c", t0);
        l.clear("c");
        assert!(
            Limiter::new(0, Duration::from_secs(1))
                .blocked("a", t0)
                .is_none()
        );
    }

    #[test]
    fn constant_time_eq_is_eq() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
