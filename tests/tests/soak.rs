//! A bounded concurrency soak: parallel logins through both front-ends (`apppw-checkpassword`
//! processes and pamtester runs) while the CLI creates and revokes app passwords in a loop.
//!
//! Every attempt's decision is checked afterwards against what it had to be:
//!
//! - a credential that is never revoked is always accepted (a "database is locked" must not
//!   leak out as a refusal or a temporary failure);
//! - a wrong password is always refused;
//! - a churned credential is accepted by every attempt that ends before its `apppw revoke`
//!   starts, and refused by every attempt that starts after `apppw revoke` returned.
//!
//! Runs for 20 s by default; `APPPW_SOAK_SECS=300 cargo test --release --test soak -- --nocapture`
//! runs longer. Loopback only: nothing listens on the network.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use apppw_integration_tests::pam::{
    HARNESS_RETRIES, ServiceDir, WRAPPER_LIB, apppw_line, pam_wrapper_available, primary_line,
};
use apppw_integration_tests::{OFF_IP, TestEnv, checkpassword_command, run_with_stdin};
use std::os::unix::fs::PermissionsExt;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Parallel login threads (each alternates between the two front-ends).
const WORKERS: usize = 6;
/// Soak length unless `APPPW_SOAK_SECS` says otherwise.
const DEFAULT_SECS: u64 = 20;
/// How long a churned credential lives at least before it is revoked: longer if no attempt
/// on it has finished yet (a loaded machine), so that every credential is seen accepted.
const CHURN_LIFETIME: Duration = Duration::from_millis(250);
/// ... but not longer than this.
const CHURN_LIFETIME_MAX: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Said {
    Accepted,
    Refused,
    /// Anything else: a temporary failure, an error code, a crash.
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FrontEnd {
    Checkpassword,
    Pam,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// alice's never-revoked app password.
    Stable,
    /// bob's never-revoked app password, restricted to imap.
    StableRestricted,
    /// alice's tag with a wrong secret.
    WrongSecret,
    /// alice's password for another user.
    WrongUser,
    /// A normal password, off campus.
    Normal,
    /// The newest churned credential.
    ChurnNewest,
    /// An older churned credential (usually revoked long ago).
    ChurnOld,
}

const KINDS: [Kind; 8] = [
    Kind::Stable,
    Kind::ChurnNewest,
    Kind::WrongSecret,
    Kind::StableRestricted,
    Kind::ChurnNewest,
    Kind::WrongUser,
    Kind::ChurnOld,
    Kind::Normal,
];

/// One credential of the create/revoke loop.
#[derive(Clone)]
struct Churned {
    password: String,
    revoke_start: Option<Instant>,
    revoke_end: Option<Instant>,
    /// Attempts with it that have finished.
    finished: usize,
}

struct Attempt {
    kind: Kind,
    front_end: FrontEnd,
    churn: Option<usize>,
    start: Instant,
    end: Instant,
    said: Said,
    detail: String,
}

struct Soak {
    env: TestEnv,
    services: ServiceDir,
    reply: std::path::PathBuf,
    alice: String,
    bob: String,
    churned: Mutex<Vec<Churned>>,
}

impl Soak {
    fn run(&self, fe: FrontEnd, user: &str, pass: &str) -> (Said, String) {
        match fe {
            FrontEnd::Checkpassword => {
                let mut cmd = checkpassword_command();
                cmd.arg("--config")
                    .arg(&self.env.config)
                    .arg(&self.reply)
                    .env("SERVICE", "imap")
                    .env("TCPREMOTEIP", OFF_IP);
                let out = run_with_stdin(&mut cmd, format!("{user}\0{pass}\0\0").as_bytes());
                let stdout = String::from_utf8_lossy(&out.stdout);
                let said = match out.status.code() {
                    Some(0) if stdout.contains(&format!("replied USER={user}")) => Said::Accepted,
                    Some(1) => Said::Refused,
                    _ => Said::Other,
                };
                let detail = format!(
                    "exit {:?}: {}",
                    out.status.code(),
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                (said, detail)
            }
            FrontEnd::Pam => {
                // pam_wrapper's own failures are run again by `authenticate` (see
                // `harness_failed`): only runs of this stack are counted.
                let r = self.services.authenticate(
                    "imap",
                    user,
                    Some(OFF_IP),
                    &format!("{pass}\n"),
                    &[],
                );
                let said = match r.code() {
                    "PAM_SUCCESS" => Said::Accepted,
                    "PAM_AUTH_ERR" => Said::Refused,
                    _ => Said::Other,
                };
                (said, format!("{}: {}", r.code(), r.transcript()))
            }
        }
    }

    fn worker(&self, id: usize, deadline: Instant) -> Vec<Attempt> {
        let wrong_secret = format!("{}zzzz zzzz zzzz zzzz zzzz", &self.alice[..5]);
        let mut attempts = Vec::new();
        let mut i = id;
        while Instant::now() < deadline {
            let kind = KINDS[i % KINDS.len()];
            let front_end = if (i / KINDS.len() + id) % 2 == 0 {
                FrontEnd::Checkpassword
            } else {
                FrontEnd::Pam
            };
            i += 1;
            let (churn, user, pass) = match kind {
                Kind::Stable => (None, "alice", self.alice.clone()),
                Kind::StableRestricted => (None, "bob", self.bob.clone()),
                Kind::WrongSecret => (None, "alice", wrong_secret.clone()),
                Kind::WrongUser => (None, "mallory", self.alice.clone()),
                Kind::Normal => (None, "alice", "Winter-2026-normal".to_owned()),
                Kind::ChurnNewest | Kind::ChurnOld => {
                    let list = self.churned.lock().unwrap();
                    if list.is_empty() {
                        continue;
                    }
                    let n = if kind == Kind::ChurnNewest {
                        list.len() - 1
                    } else {
                        i * 7919 % list.len()
                    };
                    (Some(n), "carol", list[n].password.clone())
                }
            };
            let start = Instant::now();
            let (said, detail) = self.run(front_end, user, &pass);
            if let Some(n) = churn {
                self.churned.lock().unwrap()[n].finished += 1;
            }
            attempts.push(Attempt {
                kind,
                front_end,
                churn,
                start,
                end: Instant::now(),
                said,
                detail,
            });
        }
        attempts
    }

    /// Creates, lets live, revokes; returns (creates, revokes, lists).
    fn churn(&self, deadline: Instant) -> (usize, usize, usize) {
        let (mut creates, mut revokes, mut lists) = (0, 0, 0);
        let mut n = 0;
        while Instant::now() < deadline {
            let label = format!("churn{n}");
            n += 1;
            let password = self.env.create("carol", &label, &[]);
            creates += 1;
            self.churned.lock().unwrap().push(Churned {
                password,
                revoke_start: None,
                revoke_end: None,
                finished: 0,
            });
            let idx = n - 1;
            let born = Instant::now();
            std::thread::sleep(CHURN_LIFETIME);
            // On a loaded machine one attempt can take longer than CHURN_LIFETIME: keep the
            // credential until an attempt with it has finished, so that the soak sees churned
            // credentials accepted while alive, not only refused after their revoke.
            while self.churned.lock().unwrap()[idx].finished == 0
                && born.elapsed() < CHURN_LIFETIME_MAX
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            self.churned.lock().unwrap()[idx].revoke_start = Some(Instant::now());
            let out = self.env.apppw(&["revoke", "carol", &label], "");
            assert!(
                out.status.success(),
                "revoke failed under load: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            self.churned.lock().unwrap()[idx].revoke_end = Some(Instant::now());
            revokes += 1;
            if n % 5 == 0 {
                let out = self.env.apppw(&["list", "--json"], "");
                assert!(
                    out.status.success(),
                    "list failed under load: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                lists += 1;
            }
        }
        (creates, revokes, lists)
    }
}

/// What an attempt had to end in, given when the churned credential was revoked.
fn expected(a: &Attempt, churned: &[Churned]) -> &'static [Said] {
    match a.kind {
        Kind::Stable | Kind::StableRestricted => &[Said::Accepted],
        Kind::WrongSecret | Kind::WrongUser | Kind::Normal => &[Said::Refused],
        Kind::ChurnNewest | Kind::ChurnOld => {
            let c = &churned[a.churn.unwrap()];
            match (c.revoke_start, c.revoke_end) {
                (_, Some(end)) if a.start > end => &[Said::Refused],
                (Some(start), _) if a.end < start => &[Said::Accepted],
                (None, _) => &[Said::Accepted],
                _ => &[Said::Accepted, Said::Refused],
            }
        }
    }
}

#[test]
fn parallel_logins_while_the_cli_creates_and_revokes() {
    if !pam_wrapper_available("parallel_logins_while_the_cli_creates_and_revokes") {
        return;
    }
    let secs = std::env::var("APPPW_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SECS);
    // Wrong passwords would otherwise start alice's cool-down. The Argon2 gate (two slots on a
    // two-core machine for six workers) may queue an attempt for long on a loaded machine; its
    // timeout is tested elsewhere (tests/gate.rs), here it must not turn into "Other".
    let env = TestEnv::new(
        "[lockout]\nmax_failures_per_client = 0\nmax_failures_per_user = 0\n\
         [argon2]\nqueue_timeout_ms = 20000\n",
    );
    let alice = env.create("alice", "phone", &[]);
    let bob = env.create("bob", "laptop", &["--services", "imap"]);
    let services = ServiceDir::new();
    let apppw = apppw_line(&format!("config={}", env.config.display()));
    let primary = primary_line(services.dir.path(), "Winter-2026-normal");
    services.add("imap", &[&apppw, &primary]);
    let reply = env.dir.path().join("reply.sh");
    std::fs::write(&reply, "#!/bin/sh\necho \"replied USER=$USER\"\nexit 0\n").unwrap();
    std::fs::set_permissions(&reply, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(std::path::Path::new(WRAPPER_LIB).exists());

    let soak = Soak {
        env,
        services,
        reply,
        alice,
        bob,
        churned: Mutex::new(Vec::new()),
    };
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let (attempts, (creates, revokes, lists)) = std::thread::scope(|s| {
        let workers: Vec<_> = (0..WORKERS)
            .map(|id| {
                let soak = &soak;
                s.spawn(move || soak.worker(id, deadline))
            })
            .collect();
        let churn = s.spawn(|| soak.churn(deadline));
        let attempts: Vec<Attempt> = workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect();
        (attempts, churn.join().unwrap())
    });
    let elapsed = started.elapsed();

    let churned = soak.churned.lock().unwrap().clone();
    let mut wrong = Vec::new();
    let (mut after_revoke, mut churn_accepted, mut cp, mut pam) = (0, 0, 0, 0);
    for a in &attempts {
        match a.front_end {
            FrontEnd::Checkpassword => cp += 1,
            FrontEnd::Pam => pam += 1,
        }
        let allowed = expected(a, &churned);
        if allowed == [Said::Refused] && a.churn.is_some() {
            after_revoke += 1;
        }
        if allowed == [Said::Accepted] && a.churn.is_some() {
            churn_accepted += 1;
        }
        if !allowed.contains(&a.said) {
            wrong.push(format!(
                "{:?} via {:?} (churn {:?}) said {:?}, allowed {allowed:?}: {}",
                a.kind, a.front_end, a.churn, a.said, a.detail
            ));
        }
    }
    eprintln!(
        "soak: {} attempts in {:.1} s ({cp} checkpassword, {pam} PAM; {churn_accepted} of a \
         live churned credential, {after_revoke} after its revoke returned), {creates} creates, \
         {revokes} revokes, {lists} lists, {} wrong decisions ({} runs where pam_wrapper \
         failed, retried)",
        attempts.len(),
        elapsed.as_secs_f64(),
        wrong.len(),
        HARNESS_RETRIES.load(Ordering::SeqCst)
    );
    assert!(
        wrong.is_empty(),
        "{} wrong decisions, first ones:\n{}",
        wrong.len(),
        wrong.iter().take(5).cloned().collect::<Vec<_>>().join("\n")
    );
    // The soak must have exercised what it claims to.
    assert!(attempts.len() >= 50, "only {} attempts", attempts.len());
    assert!(after_revoke > 0 && churn_accepted > 0 && revokes > 0);

    let conn = rusqlite::Connection::open(&soak.env.db).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let (left, alice_used): (i64, Option<i64>) = conn
        .query_row(
            "SELECT (SELECT count(*) FROM app_passwords WHERE user = 'carol'),
                    (SELECT last_used_at FROM app_passwords WHERE label = 'phone')",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(left, 0, "a revoked credential is still stored");
    assert!(alice_used.is_some(), "no last use recorded under load");
}
