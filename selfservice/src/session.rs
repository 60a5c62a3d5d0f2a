//! Sessions (in memory: a restart signs everyone out), CSRF tokens and rate limits.
//!
//! Session ids and tokens are 256 random bits from the OS, hex-encoded. Time is passed in, so
//! tests need no clock tricks.

use crate::webconfig::SessionPolicy;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Most sessions kept; beyond that the least recently used one is dropped.
const MAX_SESSIONS: usize = 10_000;
/// Most open create forms per session (one nonce each).
const MAX_NONCES: usize = 8;

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
#[derive(Debug, Clone)]
pub struct Session {
    /// The user.
    pub user: String,
    /// The CSRF token every form of this session carries.
    pub csrf: String,
    /// One-time nonces of open create forms: a reloaded result page cannot create (or show)
    /// a second password.
    nonces: Vec<String>,
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
        if self.nonces.len() >= MAX_NONCES {
            self.nonces.remove(0);
        }
        self.nonces.push(nonce.clone());
        Some(nonce)
    }

    /// Uses up a nonce; false if it was never issued or already used.
    pub fn take_nonce(&mut self, submitted: Option<&str>) -> bool {
        let Some(s) = submitted else { return false };
        match self
            .nonces
            .iter()
            .position(|n| constant_time_eq(n.as_bytes(), s.as_bytes()))
        {
            Some(i) => {
                self.nonces.remove(i);
                true
            }
            None => false,
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
                nonces: Vec::new(),
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
        assert!(sess.take_nonce(Some(&n)));
        assert!(!sess.take_nonce(Some(&n)), "used once");
        assert!(!sess.take_nonce(None));
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
