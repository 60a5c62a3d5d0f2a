//! Fault injection with real SQLite files and real processes: every fault is put in front of
//! both front-ends (`apppw-checkpassword` with credentials on fd 3, and `pam_apppw.so` through
//! pamtester under pam_wrapper) and, where it means something, `apppw verify`. Each attempt
//! must end in "refused" or "temporarily unavailable" (or, where the fault only hits the
//! best-effort last-used update, in the right decision), within [`BOUND`], and never in a
//! crash. The admin CLI must never leave the database half-written.
//!
//! Root bypasses file permissions, so the permission faults run the front-ends as the
//! `dovecot` user (or `nobody`) and print a SKIP line without root.
//!
//! A full disk is simulated with the file-size limit (`ulimit -f`, SIGXFSZ ignored): the kernel
//! then refuses to grow any file past the limit, which is what a full disk does to SQLite's
//! write-ahead log. (`PRAGMA max_page_count` cannot do it: it is a setting of one connection,
//! not of the file, so another process never sees it.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use apppw_integration_tests::dovecot;
use apppw_integration_tests::pam::{
    PamResult, ServiceDir, WRAPPER_LIB, apppw_line, harness_failed, pam_wrapper_available,
    primary_line,
};
use apppw_integration_tests::{CAMPUS_IP, OFF_IP, TestEnv, bin, is_root, run_with_stdin};
use rusqlite::Connection;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Every attempt must be decided within this time (the login busy timeout is 3 s and the
/// checkpassword deadline 5 s).
const BOUND: Duration = Duration::from_secs(6);
/// The normal password the stand-in for `pam_unix` accepts.
const NORMAL: &str = "Winter-2026-normal";
/// App-password shaped, never issued.
const UNKNOWN_APP_PW: &str = "abcd efgh ijkl mnop qrst uvwx";
/// The file-size limit of a "full disk", in KiB (`ulimit -f` units in bash). Larger than
/// the copy of libpam that pam_wrapper writes, far smaller than the write-ahead log.
const FULL_DISK_KIB: u64 = 512;

/// A decision as any front-end reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Said {
    /// checkpassword exec'd the reply program, `PAM_SUCCESS`, `apppw verify` exit 0.
    Accepted,
    /// checkpassword exit 1, `PAM_AUTH_ERR`, `apppw verify` "refused".
    Refused,
    /// checkpassword exit 111, `PAM_AUTHINFO_UNAVAIL`, `apppw verify` "tempfail".
    Unavailable,
    /// The config could not be loaded: `PAM_SERVICE_ERR` (the stack ends), `apppw` exit 1
    /// with a message. (checkpassword says 111, [`Said::Unavailable`].)
    StackEnded,
    /// On campus the app password did not decide: `PAM_IGNORE`, so the normal-password
    /// module ran and refused it (`pam_exec` says `PAM_SYSTEM_ERR`); `apppw verify` "continue".
    NextModule,
}

/// Who runs a front-end: root, or an unprivileged user (uid, gid).
type Who = Option<(u32, u32)>;

/// The dovecot user (else nobody) in the package's group `apppw`, as the package sets Dovecot
/// up; `None` (with a SKIP line) without root.
fn unprivileged(test: &str) -> Option<(u32, u32)> {
    if !is_root() {
        eprintln!("SKIP {test}: needs root (to run the front-ends as another user)");
        return None;
    }
    let gid = dovecot::package_group();
    Some((dovecot::user_id("dovecot").unwrap_or(65534), gid))
}

static FAULTS: AtomicUsize = AtomicUsize::new(0);
static ATTEMPTS: AtomicUsize = AtomicUsize::new(0);

/// Counts what one test did, printed at its end (`cargo test --test faults -- --nocapture`).
struct Tally {
    name: &'static str,
    faults: AtomicUsize,
    attempts: AtomicUsize,
}

impl Tally {
    fn new(name: &'static str) -> Tally {
        Tally {
            name,
            faults: AtomicUsize::new(0),
            attempts: AtomicUsize::new(0),
        }
    }
    fn fault(&self) {
        self.faults.fetch_add(1, Ordering::SeqCst);
        FAULTS.fetch_add(1, Ordering::SeqCst);
    }
}

impl Drop for Tally {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            eprintln!(
                "faults: {}: {} faults injected, {} attempts, 0 wrong decisions \
                 (binary so far: {} faults, {} attempts)",
                self.name,
                self.faults.load(Ordering::SeqCst),
                self.attempts.load(Ordering::SeqCst),
                FAULTS.load(Ordering::SeqCst),
                ATTEMPTS.load(Ordering::SeqCst),
            );
        }
    }
}

/// A config, a database, a PAM service directory and a reply program.
struct Rig {
    env: TestEnv,
    services: ServiceDir,
    reply: PathBuf,
    /// The normal-password line of every service (written once: rewriting a script that
    /// another pamtester is running would race).
    primary: String,
    /// PAM services already written, by config file.
    service_names: std::sync::Mutex<Vec<PathBuf>>,
    tally: Tally,
}

/// One front-end call.
struct Call<'a> {
    config: &'a Path,
    user: &'a str,
    pass: &'a str,
    ip: &'a str,
    who: Who,
    /// Shell commands run before the front-end is exec'd (e.g. `ulimit -f`).
    prefix: &'a str,
}

impl Rig {
    fn new(name: &'static str) -> Rig {
        Rig::with_config(name, "")
    }

    fn with_config(name: &'static str, extra: &str) -> Rig {
        let env = TestEnv::new(extra);
        let services = ServiceDir::new();
        // Readable by the unprivileged user the permission faults run as.
        std::fs::set_permissions(services.dir.path(), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        let primary = primary_line(services.dir.path(), NORMAL);
        for f in ["other", "primary-password"] {
            let p = services.dir.path().join(f);
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        std::fs::set_permissions(&env.config, std::fs::Permissions::from_mode(0o644)).unwrap();
        let reply = env.dir.path().join("reply.sh");
        std::fs::write(&reply, "#!/bin/sh\necho \"replied USER=$USER\"\nexit 0\n").unwrap();
        std::fs::set_permissions(&reply, std::fs::Permissions::from_mode(0o755)).unwrap();
        Rig {
            env,
            services,
            reply,
            primary,
            service_names: std::sync::Mutex::new(Vec::new()),
            tally: Tally::new(name),
        }
    }

    fn call<'a>(&'a self, user: &'a str, pass: &'a str, ip: &'a str) -> Call<'a> {
        Call {
            config: &self.env.config,
            user,
            pass,
            ip,
            who: None,
            prefix: "",
        }
    }

    fn count(&self) {
        self.tally.attempts.fetch_add(1, Ordering::SeqCst);
        ATTEMPTS.fetch_add(1, Ordering::SeqCst);
    }

    /// The PAM service that runs the documented stack with `config=CONFIG`.
    fn service(&self, config: &Path) -> String {
        let mut names = self.service_names.lock().unwrap();
        let i = match names.iter().position(|c| c == config) {
            Some(i) => i,
            None => {
                names.push(config.to_path_buf());
                let name = format!("svc{}", names.len() - 1);
                let apppw = apppw_line(&format!("config={}", config.display()));
                self.services.add(&name, &[&apppw, &self.primary]);
                let p = self.services.dir.path().join(&name);
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
                names.len() - 1
            }
        };
        format!("svc{i}")
    }

    /// `apppw-checkpassword --config CONFIG REPLY` with `user\0pass\0\0` on fd 3.
    fn checkpassword(&self, c: &Call<'_>) -> Said {
        let mut cmd = Command::new("/bin/bash");
        cmd.arg("-c")
            .arg(format!("{} exec \"$@\" 3<&0 0</dev/null", c.prefix))
            .arg("bash")
            .arg(bin("apppw-checkpassword"))
            .arg("--config")
            .arg(c.config)
            .arg(&self.reply)
            .env_clear()
            .env("SERVICE", "imap")
            .env("TCPREMOTEIP", c.ip);
        as_user(&mut cmd, c.who);
        let input = format!("{}\0{}\0\0", c.user, c.pass);
        let (out, elapsed) = timed(&mut cmd, input.as_bytes());
        self.count();
        let what = format!("checkpassword {} from {}", c.user, c.ip);
        let said = match out.status.code() {
            Some(0) => {
                let stdout = String::from_utf8_lossy(&out.stdout);
                assert!(
                    stdout.contains(&format!("replied USER={}", c.user)),
                    "{what}: exit 0 without the reply program: {stdout}"
                );
                Said::Accepted
            }
            Some(1) => Said::Refused,
            Some(111) => Said::Unavailable,
            _ => panic!("{what}: crashed or unexpected status\n{}", transcript(&out)),
        };
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains(c.pass) || c.pass.is_empty(),
            "{what}: password on stderr"
        );
        within_bound(&what, elapsed);
        said
    }

    /// `pamtester -I rhost=IP svcN USER authenticate` under pam_wrapper.
    fn pam(&self, c: &Call<'_>) -> Said {
        let service = self.service(c.config);
        let mut cmd = Command::new("/bin/bash");
        cmd.arg("-c")
            .arg(format!(
                "{} LD_PRELOAD=\"$PWRAP_LIB\" exec \"$@\"",
                c.prefix
            ))
            .arg("bash")
            .arg("/usr/bin/pamtester")
            .arg("-I")
            .arg(format!("rhost={}", c.ip))
            .args([service.as_str(), c.user, "authenticate"])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("PWRAP_LIB", WRAPPER_LIB)
            .env("PAM_WRAPPER", "1")
            .env("PAM_WRAPPER_SERVICE_DIR", self.services.dir.path());
        as_user(&mut cmd, c.who);
        let (mut out, mut elapsed) = timed(&mut cmd, format!("{}\n", c.pass).as_bytes());
        // A run where pam_wrapper failed, not the stack, is made again.
        for _ in 0..5 {
            if !harness_failed(&out, &service) {
                break;
            }
            (out, elapsed) = timed(&mut cmd, format!("{}\n", c.pass).as_bytes());
        }
        self.count();
        let what = format!("PAM {} from {}", c.user, c.ip);
        let result = PamResult(out);
        let said = match result.code() {
            "PAM_SUCCESS" => Said::Accepted,
            "PAM_AUTH_ERR" => Said::Refused,
            "PAM_AUTHINFO_UNAVAIL" => Said::Unavailable,
            "PAM_SERVICE_ERR" => Said::StackEnded,
            "PAM_SYSTEM_ERR" => Said::NextModule,
            other => panic!("{what}: {other}\n{}", result.transcript()),
        };
        within_bound(&what, elapsed);
        said
    }

    /// `apppw --config CONFIG verify USER --ip IP --service imap` with the password on stdin.
    fn verify(&self, c: &Call<'_>) -> Said {
        let mut cmd = Command::new("/bin/bash");
        cmd.arg("-c")
            .arg(format!("{} exec \"$@\"", c.prefix))
            .arg("bash")
            .arg(bin("apppw"))
            .arg("--config")
            .arg(c.config)
            .args(["verify", c.user, "--ip", c.ip, "--service", "imap"])
            .env_clear();
        as_user(&mut cmd, c.who);
        let (out, elapsed) = timed(&mut cmd, format!("{}\n", c.pass).as_bytes());
        self.count();
        let what = format!("apppw verify {} from {}", c.user, c.ip);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let said = match (out.status.code(), stdout.split(':').next().unwrap_or("")) {
            (Some(0), "accepted") => Said::Accepted,
            (Some(1), "refused") => Said::Refused,
            (Some(1), "tempfail") => Said::Unavailable,
            // The database fails the trust rule: what PAM_SERVICE_ERR is to the PAM module.
            (Some(1), "error") => Said::StackEnded,
            (Some(1), "continue") => Said::NextModule,
            (Some(1), "") if stderr.starts_with("apppw: ") => Said::StackEnded,
            _ => panic!("{what}: unexpected\n{}", transcript(&out)),
        };
        within_bound(&what, elapsed);
        said
    }

    /// The three front-ends at once (a lock or a deadline then costs its time only once).
    fn all(&self, c: &Call<'_>) -> [Said; 3] {
        std::thread::scope(|s| {
            let cp = s.spawn(|| self.checkpassword(c));
            let pam = s.spawn(|| self.pam(c));
            let verify = s.spawn(|| self.verify(c));
            [
                cp.join().unwrap(),
                pam.join().unwrap(),
                verify.join().unwrap(),
            ]
        })
    }

    /// Asserts what checkpassword, PAM and `apppw verify` said; none may be "accepted"
    /// unless expected.
    fn expect(&self, what: &str, c: &Call<'_>, want: [Said; 3]) {
        let got = self.all(c);
        assert_eq!(
            got, want,
            "{what}: [checkpassword, PAM, apppw verify] for {} from {}",
            c.user, c.ip
        );
    }

    /// The documented fail-closed answers when the store cannot be used, off campus and on
    /// campus, for a valid app password; a normal password off campus is refused without
    /// the store.
    fn expect_store_unavailable(&self, what: &str, pw: &str, who: Who) {
        let off = Call {
            who,
            ..self.call("alice", pw, OFF_IP)
        };
        self.expect(what, &off, [Said::Unavailable; 3]);
        let campus = Call {
            who,
            ..self.call("alice", pw, CAMPUS_IP)
        };
        // checkpassword without [primary]: nothing can decide → 111. PAM: PAM_IGNORE, the
        // normal-password module refuses the app password.
        self.expect(
            &format!("{what}, on campus"),
            &campus,
            [Said::Unavailable, Said::NextModule, Said::NextModule],
        );
        let normal = Call {
            who,
            ..self.call("alice", NORMAL, OFF_IP)
        };
        self.expect(
            &format!("{what}, normal password off campus"),
            &normal,
            [Said::Refused; 3],
        );
    }
}

fn as_user(cmd: &mut Command, who: Who) {
    if let Some((uid, gid)) = who {
        cmd.uid(uid).gid(gid);
    }
}

fn timed(cmd: &mut Command, stdin: &[u8]) -> (Output, Duration) {
    let start = Instant::now();
    let out = run_with_stdin(cmd, stdin);
    (out, start.elapsed())
}

fn within_bound(what: &str, elapsed: Duration) {
    assert!(elapsed < BOUND, "{what}: took {elapsed:?}");
}

fn transcript(out: &Output) -> String {
    format!(
        "status {:?} (signal {:?})\nstdout: {}\nstderr: {}",
        out.status.code(),
        out.status.signal(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn open(db: &Path) -> Connection {
    Connection::open(db).unwrap()
}

fn integrity_ok(db: &Path) {
    let result: String = open(db)
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(result, "ok", "integrity_check of {}", db.display());
}

fn labels(db: &Path) -> Vec<String> {
    let conn = open(db);
    let mut stmt = conn
        .prepare("SELECT user || '/' || label FROM app_passwords ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn last_used(db: &Path, label: &str) -> Option<i64> {
    open(db)
        .query_row(
            "SELECT last_used_at FROM app_passwords WHERE label = ?1",
            [label],
            |r| r.get(0),
        )
        .unwrap()
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

macro_rules! require_pam_wrapper {
    ($name:expr) => {
        if !pam_wrapper_available($name) {
            return;
        }
    };
}

#[test]
fn database_missing() {
    require_pam_wrapper!("database_missing");
    let rig = Rig::new("database missing");
    assert!(!rig.env.db.exists());
    rig.tally.fault();
    rig.expect_store_unavailable("no database file", UNKNOWN_APP_PW, None);
    assert!(!rig.env.db.exists(), "a front-end created the database");

    // The database's directory does not exist either.
    let elsewhere = rig.env.dir.path().join("elsewhere.toml");
    std::fs::write(
        &elsewhere,
        format!(
            "database = \"{}\"\n[network]\ncampus = [\"192.0.2.0/24\"]\n",
            rig.env.dir.path().join("no/such/dir/apppw.db").display()
        ),
    )
    .unwrap();
    rig.tally.fault();
    let c = Call {
        config: &elsewhere,
        ..rig.call("alice", UNKNOWN_APP_PW, OFF_IP)
    };
    rig.expect("no database directory", &c, [Said::Unavailable; 3]);

    // Deleted under a working setup: the app password that worked a moment ago is not
    // accepted from a stale cache.
    let pw = rig.env.create("alice", "phone", &[]);
    rig.expect(
        "before deletion",
        &rig.call("alice", &pw, OFF_IP),
        [Said::Accepted; 3],
    );
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", rig.env.db.display()));
    }
    rig.tally.fault();
    rig.expect_store_unavailable("database deleted", &pw, None);
}

#[test]
fn database_unreadable_by_the_front_end_user() {
    require_pam_wrapper!("database_unreadable_by_the_front_end_user");
    let Some(who) = unprivileged("database_unreadable_by_the_front_end_user") else {
        return;
    };
    let rig = Rig::new("database unreadable");
    let pw = rig.env.create("alice", "phone", &[]);
    let who = Some(who);

    // Shared as documented (group-writable by the front-end's group): it works. The -wal
    // and -shm files go with the database.
    let shared = |mode| {
        std::os::unix::fs::chown(&rig.env.db, Some(0), who.map(|w| w.1)).unwrap();
        chmod(&rig.env.db, mode);
        for suffix in ["-wal", "-shm"] {
            let p = PathBuf::from(format!("{}{suffix}", rig.env.db.display()));
            std::os::unix::fs::chown(&p, Some(0), who.map(|w| w.1)).unwrap();
            chmod(&p, 0o660);
        }
    };
    shared(0o660);
    chmod(rig.env.dir.path(), 0o775);
    std::os::unix::fs::chown(rig.env.dir.path(), Some(0), who.map(|w| w.1)).unwrap();
    let ok = Call {
        who,
        ..rig.call("alice", &pw, OFF_IP)
    };
    rig.expect(
        "shared with the front-end's group",
        &ok,
        [Said::Accepted; 3],
    );

    // chmod 000.
    shared(0o000);
    rig.tally.fault();
    rig.expect_store_unavailable("database mode 000", &pw, who);

    // Owned by root and private to it (the group was never set up).
    std::os::unix::fs::chown(&rig.env.db, Some(0), Some(0)).unwrap();
    chmod(&rig.env.db, 0o600);
    rig.tally.fault();
    rig.expect_store_unavailable("database root:root 0600", &pw, who);

    // Readable file in a directory the user cannot enter.
    shared(0o660);
    let sub = rig.env.dir.path().join("private");
    std::fs::create_dir(&sub).unwrap();
    chmod(&sub, 0o700);
    let moved = sub.join("apppw.db");
    std::fs::rename(&rig.env.db, &moved).unwrap();
    let config = rig.env.dir.path().join("private-dir.toml");
    std::fs::write(
        &config,
        format!(
            "database = \"{}\"\n[network]\ncampus = [\"192.0.2.0/24\"]\n",
            moved.display()
        ),
    )
    .unwrap();
    chmod(&config, 0o644);
    rig.tally.fault();
    let c = Call {
        config: &config,
        ..ok
    };
    rig.expect("directory mode 0700", &c, [Said::Unavailable; 3]);
    // As root the same setup works: the fault, not the test, made the difference.
    let c = Call { who: None, ..c };
    rig.expect("directory mode 0700, as root", &c, [Said::Accepted; 3]);
}

#[test]
fn database_locked_by_a_long_writer() {
    require_pam_wrapper!("database_locked_by_a_long_writer");
    let rig = Rig::new("database locked");
    let pw = rig.env.create("alice", "phone", &[]);
    let before = labels(&rig.env.db);

    // WAL (what `apppw` creates): a writer in the middle of a transaction does not stop
    // readers. The right password is accepted, a wrong one refused, both quickly; the
    // last-used update and failure counter wait at most 100 ms and are skipped.
    let writer = open(&rig.env.db);
    let mode: String = writer
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    writer
        .execute_batch("BEGIN EXCLUSIVE; UPDATE app_passwords SET label = 'hijacked';")
        .unwrap();
    rig.tally.fault();
    let start = Instant::now();
    rig.expect(
        "WAL, writer holds BEGIN EXCLUSIVE",
        &rig.call("alice", &pw, OFF_IP),
        [Said::Accepted; 3],
    );
    rig.expect(
        "WAL, writer holds BEGIN EXCLUSIVE, unknown app password",
        &rig.call("alice", UNKNOWN_APP_PW, OFF_IP),
        [Said::Refused; 3],
    );
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
    writer.execute_batch("ROLLBACK").unwrap();
    drop(writer);
    assert_eq!(labels(&rig.env.db), before, "the writer's change leaked");

    // Rollback journal: an exclusive writer locks readers out. Every front-end waits for the
    // busy timeout and answers "temporarily unavailable"; `apppw create` waits its own
    // (longer) timeout and fails without writing.
    open(&rig.env.db)
        .query_row("PRAGMA journal_mode = DELETE", [], |r| {
            r.get::<_, String>(0)
        })
        .unwrap();
    let writer = open(&rig.env.db);
    writer
        .execute_batch("BEGIN EXCLUSIVE; UPDATE app_passwords SET label = 'hijacked';")
        .unwrap();
    rig.tally.fault();
    let start = Instant::now();
    std::thread::scope(|s| {
        let create = s.spawn(|| {
            let start = Instant::now();
            let out = rig.env.apppw(&["create", "alice", "tablet"], "");
            (out, start.elapsed())
        });
        rig.expect_store_unavailable("rollback journal, writer holds BEGIN EXCLUSIVE", &pw, None);
        let (out, elapsed) = create.join().unwrap();
        rig.count();
        assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("locked"),
            "{}",
            transcript(&out)
        );
        assert!(out.stdout.is_empty(), "a password was printed");
        assert!(elapsed < Duration::from_secs(15), "create took {elapsed:?}");
    });
    eprintln!(
        "locked (rollback journal): decided in {:?}",
        start.elapsed()
    );
    writer.execute_batch("ROLLBACK").unwrap();
    drop(writer);
    assert_eq!(labels(&rig.env.db), before);
    integrity_ok(&rig.env.db);
    rig.expect(
        "lock released",
        &rig.call("alice", &pw, OFF_IP),
        [Said::Accepted; 3],
    );
}

#[test]
fn read_only_directory() {
    require_pam_wrapper!("read_only_directory");
    let Some(who) = unprivileged("read_only_directory") else {
        return;
    };
    let rig = Rig::new("read-only directory");
    let pw = rig.env.create("alice", "phone", &[]);
    let who = Some(who);
    let sidecar = |suffix: &str| PathBuf::from(format!("{}{suffix}", rig.env.db.display()));
    // The file is writable by the front-end's group, the directory (root 0755) is not. The
    // -wal and -shm files the CLI made are kept, so the directory need not be writable:
    // logins read and record their use.
    for p in [rig.env.db.clone(), sidecar("-wal"), sidecar("-shm")] {
        std::os::unix::fs::chown(&p, Some(0), who.map(|w| w.1)).unwrap();
        chmod(&p, 0o660);
    }
    chmod(rig.env.dir.path(), 0o755);
    let c = Call {
        who,
        ..rig.call("alice", &pw, OFF_IP)
    };
    rig.expect(
        "kept -wal and -shm, read-only directory",
        &c,
        [Said::Accepted; 3],
    );
    // (This connection of the test, like the sqlite3 shell, removes -wal and -shm on close.)
    assert!(last_used(&rig.env.db, "phone").is_some());

    // Without them (a database from an older apppw): SQLite could not create them here, and
    // a login as another user than root or the owner must not create them anyway (root's
    // PAM module would refuse files of that user): a configuration error naming the fix.
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(sidecar(suffix));
    }
    rig.tally.fault();
    rig.expect(
        "WAL database without -wal and -shm, as the front-end's user",
        &c,
        [Said::Unavailable, Said::StackEnded, Said::StackEnded],
    );
    let wrong = Call {
        who,
        ..rig.call("alice", NORMAL, OFF_IP)
    };
    rig.expect("normal password off campus", &wrong, [Said::Refused; 3]);
    assert!(!sidecar("-wal").exists() && !sidecar("-shm").exists());

    // With a rollback journal reading needs no new file: logins work, only the last-used
    // update (which needs a -journal file) fails and is skipped.
    open(&rig.env.db)
        .query_row("PRAGMA journal_mode = DELETE", [], |r| {
            r.get::<_, String>(0)
        })
        .unwrap();
    open(&rig.env.db)
        .execute("UPDATE app_passwords SET last_used_at = NULL", [])
        .unwrap();
    chmod(&rig.env.db, 0o660);
    rig.tally.fault();
    assert_eq!(rig.checkpassword(&c), Said::Accepted);
    assert_eq!(rig.pam(&c), Said::Accepted);
    assert_eq!(
        last_used(&rig.env.db, "phone"),
        None,
        "no journal, no update"
    );
    let wrong = Call {
        who,
        ..rig.call("alice", UNKNOWN_APP_PW, OFF_IP)
    };
    rig.expect(
        "rollback journal, read-only directory, wrong password",
        &wrong,
        [Said::Refused; 3],
    );
    integrity_ok(&rig.env.db);
    assert!(!Path::new(&format!("{}-journal", rig.env.db.display())).exists());
}

#[test]
fn corrupt_database() {
    require_pam_wrapper!("corrupt_database");
    let rig = Rig::new("corrupt database");
    let pw = rig.env.create("alice", "phone", &[]);
    rig.env.create("bob", "laptop", &[]);
    let good = std::fs::read(&rig.env.db).unwrap();
    assert!(good.len() >= 4 * 4096, "{} bytes", good.len());

    type Corrupt = fn(&[u8]) -> Vec<u8>;
    let variants: &[(&str, Corrupt, &[Said])] = &[
        (
            "header overwritten",
            |g| [vec![0x5a; 100].as_slice(), &g[100..]].concat(),
            &[Said::Unavailable],
        ),
        ("truncated to 0 bytes", |_| Vec::new(), &[Said::Unavailable]),
        (
            "truncated to the first page",
            |g| g[..4096].to_vec(),
            &[Said::Unavailable],
        ),
        (
            "truncated mid-page",
            |g| g[..g.len() / 2 + 123].to_vec(),
            &[Said::Unavailable],
        ),
        (
            "every page but the first overwritten",
            |g| {
                let mut v = g.to_vec();
                for (i, b) in v.iter_mut().enumerate().skip(4096) {
                    *b = (i * 31 % 251) as u8;
                }
                v
            },
            &[Said::Unavailable],
        ),
        (
            "schema version from the future",
            |g| {
                let mut v = g.to_vec();
                v[60..64].copy_from_slice(&99u32.to_be_bytes());
                v
            },
            &[Said::Unavailable],
        ),
        (
            "random bytes",
            |g| (0..g.len()).map(|i| (i * 7919 % 256) as u8).collect(),
            &[Said::Unavailable],
        ),
    ];
    let remove_side_files = || {
        for suffix in ["-wal", "-shm", "-journal"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", rig.env.db.display()));
        }
    };
    for (what, corrupt, allowed) in variants {
        remove_side_files();
        std::fs::write(&rig.env.db, corrupt(&good)).unwrap();
        let corrupted = std::fs::read(&rig.env.db).unwrap();
        rig.tally.fault();
        let got = rig.all(&rig.call("alice", &pw, OFF_IP));
        for said in got {
            assert!(
                allowed.contains(&said),
                "{what}: [checkpassword, PAM, verify] said {got:?}, allowed {allowed:?}"
            );
        }
        eprintln!("corrupt database, {what}: {got:?}");
        let normal = rig.all(&rig.call("alice", NORMAL, OFF_IP));
        assert_eq!(normal, [Said::Refused; 3], "{what}: normal password");

        // The CLI neither prints a password nor "repairs" a file that is not its database.
        let out = rig.env.apppw(&["create", "alice", "tablet", "--json"], "");
        rig.count();
        if *what == "truncated to 0 bytes" {
            // An empty file is an empty SQLite database: the CLI may initialise it.
            if out.status.success() {
                integrity_ok(&rig.env.db);
                continue;
            }
        }
        assert_eq!(out.status.code(), Some(1), "{what}: {}", transcript(&out));
        assert!(
            out.stdout.is_empty(),
            "{what}: printed {}",
            String::from_utf8_lossy(&out.stdout)
        );
        if !what.starts_with("truncated mid") && !what.starts_with("every page") {
            assert_eq!(
                std::fs::read(&rig.env.db).unwrap(),
                corrupted,
                "{what}: the CLI wrote to a file it cannot read"
            );
        }
    }
    // Restored: everything works again.
    remove_side_files();
    std::fs::write(&rig.env.db, &good).unwrap();
    rig.expect(
        "restored",
        &rig.call("alice", &pw, OFF_IP),
        [Said::Accepted; 3],
    );
}

/// Pins the write-ahead log at more than [`FULL_DISK_KIB`]: many small transactions append
/// to it, and a reader on an old snapshot stops SQLite from starting it over, so the next
/// write must grow it. Drop to release.
struct BigWal {
    _writer: Connection,
    _reader: Connection,
}

fn big_wal(db: &Path) -> BigWal {
    let writer = open(db);
    writer
        .execute_batch("PRAGMA synchronous = OFF; PRAGMA wal_autocheckpoint = 0;")
        .unwrap();
    let reader = open(db);
    reader.execute_batch("BEGIN").unwrap();
    let _: i64 = reader
        .query_row("SELECT count(*) FROM app_passwords", [], |r| r.get(0))
        .unwrap();
    // SQLite does not write a row that an UPDATE leaves unchanged: insert and delete.
    for i in 0..300 {
        writer
            .execute(
                "INSERT INTO failures (user, client, first_at, count) VALUES ('ballast', '-', ?1, 0)",
                [i],
            )
            .unwrap();
        writer
            .execute("DELETE FROM failures WHERE user = 'ballast'", [])
            .unwrap();
    }
    let wal = std::fs::metadata(format!("{}-wal", db.display()))
        .unwrap()
        .len();
    assert!(wal > 2 * FULL_DISK_KIB * 1024, "WAL only {wal} bytes");
    BigWal {
        _writer: writer,
        _reader: reader,
    }
}

#[test]
fn disk_full_during_the_last_used_update() {
    require_pam_wrapper!("disk_full_during_the_last_used_update");
    let rig = Rig::new("disk full");
    let pw = rig.env.create("alice", "phone", &[]);
    let prefix = format!("trap '' XFSZ; ulimit -f {FULL_DISK_KIB};");
    let full = Call {
        prefix: &prefix,
        ..rig.call("alice", &pw, OFF_IP)
    };

    let laptop = rig.env.create("alice", "laptop", &[]);
    let pinned = big_wal(&rig.env.db);
    // Control: the pinned log alone does not stop the update.
    let control = Call {
        pass: &laptop,
        prefix: "",
        ..full
    };
    assert_eq!(rig.checkpassword(&control), Said::Accepted);
    assert!(last_used(&rig.env.db, "laptop").is_some());
    rig.tally.fault();
    // The login is decided as if the update had worked; the update is lost.
    assert_eq!(rig.checkpassword(&full), Said::Accepted);
    assert_eq!(rig.pam(&full), Said::Accepted);
    assert_eq!(last_used(&rig.env.db, "phone"), None);
    // The failure counter cannot be written either: still refused.
    let wrong = Call {
        pass: UNKNOWN_APP_PW,
        ..full
    };
    rig.expect("disk full, wrong password", &wrong, [Said::Refused; 3]);
    // `apppw create` cannot commit: exit 1, nothing printed, no row.
    let before = labels(&rig.env.db);
    let mut cmd = Command::new("/bin/bash");
    cmd.arg("-c")
        .arg(format!("{prefix} exec \"$@\""))
        .arg("bash")
        .arg(bin("apppw"))
        .arg("--config")
        .arg(&rig.env.config)
        .args(["create", "alice", "tablet", "--json"]);
    let (out, _) = timed(&mut cmd, b"");
    rig.count();
    assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
    assert!(out.stdout.is_empty(), "printed a password it did not store");
    drop(pinned);
    assert_eq!(labels(&rig.env.db), before);
    integrity_ok(&rig.env.db);

    // Space again: the next login records its use.
    let fine = Call { prefix: "", ..full };
    assert_eq!(rig.checkpassword(&fine), Said::Accepted);
    assert!(last_used(&rig.env.db, "phone").is_some());
    integrity_ok(&rig.env.db);
}

#[test]
fn config_missing_invalid_or_unreadable() {
    require_pam_wrapper!("config_missing_invalid_or_unreadable");
    let rig = Rig::new("config");
    let pw = rig.env.create("alice", "phone", &[]);
    let dir = rig.env.dir.path();
    let db = rig.env.db.display().to_string();
    let write = |name: &str, text: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        chmod(&p, 0o644);
        p
    };
    let good = std::fs::read_to_string(&rig.env.config).unwrap();
    let mut configs: Vec<(&str, PathBuf)> = vec![
        ("missing", dir.join("nope.toml")),
        (
            "unknown key",
            write("typo.toml", format!("{good}campsu = []\n").as_bytes()),
        ),
        (
            "malformed CIDR",
            write(
                "cidr.toml",
                format!("database = \"{db}\"\n[network]\ncampus = [\"192.0.2/24\"]\n").as_bytes(),
            ),
        ),
        (
            "except outside campus",
            write(
                "except.toml",
                format!(
                    "database = \"{db}\"\n[network]\ncampus = [\"192.0.2.0/24\"]\n\
                     except = [\"0.0.0.0/0\"]\n"
                )
                .as_bytes(),
            ),
        ),
        (
            "cut off mid-line",
            write("cut.toml", &good.as_bytes()[..good.len() - 12]),
        ),
        (
            "not UTF-8",
            write("latin1.toml", &[good.as_bytes(), b"# caf\xe9\n"].concat()),
        ),
        (
            "NUL byte",
            write("nul.toml", &[good.as_bytes(), b"\0\n"].concat()),
        ),
        (
            "larger than 1 MiB",
            write(
                "huge.toml",
                format!("{good}{}", "# padding\n".repeat(110_000)).as_bytes(),
            ),
        ),
        ("a directory", {
            let p = dir.join("dir.toml");
            std::fs::create_dir(&p).unwrap();
            p
        }),
        (
            "bad argon2 parameters",
            write(
                "argon.toml",
                format!("{good}[argon2]\nmemory_kib = 1\n").as_bytes(),
            ),
        ),
    ];
    let who = unprivileged("config_missing_invalid_or_unreadable (unreadable part)");
    if who.is_some() {
        let p = write("private.toml", good.as_bytes());
        chmod(&p, 0o000);
        configs.push(("unreadable (mode 000)", p));
    }
    let before = labels(&rig.env.db);
    for (what, config) in &configs {
        let who = if what.starts_with("unreadable") {
            who
        } else {
            None
        };
        rig.tally.fault();
        for (pass, ip) in [
            (pw.as_str(), OFF_IP),
            (NORMAL, CAMPUS_IP),
            (pw.as_str(), CAMPUS_IP),
        ] {
            let c = Call {
                config,
                who,
                ..rig.call("alice", pass, ip)
            };
            rig.expect(
                &format!("config {what}"),
                &c,
                [Said::Unavailable, Said::StackEnded, Said::StackEnded],
            );
        }
        // The CLI writes nothing with a config it cannot load.
        let mut cmd = Command::new(bin("apppw"));
        cmd.arg("--config")
            .arg(config)
            .args(["create", "alice", "tablet"]);
        as_user(&mut cmd, who);
        let out = run_with_stdin(&mut cmd, b"");
        rig.count();
        assert_eq!(out.status.code(), Some(1), "{what}: {}", transcript(&out));
        assert!(out.stdout.is_empty());
    }
    assert_eq!(labels(&rig.env.db), before);
}

#[test]
fn failed_cli_writes_leave_no_row_and_a_whole_database() {
    require_pam_wrapper!("failed_cli_writes_leave_no_row_and_a_whole_database");
    let rig = Rig::new("CLI writes");
    let pw = rig.env.create("alice", "phone", &[]);
    let db = rig.env.db.clone();

    // Duplicate label.
    rig.tally.fault();
    let out = rig.env.apppw(&["create", "alice", "phone", "--json"], "");
    assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
    assert!(out.stdout.is_empty());
    assert_eq!(labels(&db), ["alice/phone"]);
    integrity_ok(&db);

    // Killed at random moments while creating (hashing, opening, inside the transaction).
    let mut landed = 0;
    for i in 0..10u64 {
        rig.tally.fault();
        let mut child = Command::new(bin("apppw"))
            .arg("--config")
            .arg(&rig.env.config)
            .args(["create", "alice", &format!("killed{i}"), "--json"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(1 + i * 4));
        let _ = child.kill();
        let status = child.wait().unwrap();
        if status.success() {
            landed += 1;
        }
        integrity_ok(&db);
        let rows = labels(&db);
        assert!(
            rows.iter()
                .filter(|l| **l == format!("alice/killed{i}"))
                .count()
                <= 1,
            "{rows:?}"
        );
    }
    eprintln!("CLI killed mid-create: {landed} of 10 finished before the kill");
    rig.expect(
        "after the kills",
        &rig.call("alice", &pw, OFF_IP),
        [Said::Accepted; 3],
    );

    // Database not writable by the user running the CLI.
    if let Some(who) = unprivileged("failed_cli_writes (read-only database)") {
        let before = labels(&db);
        chmod(&db, 0o644);
        for args in [
            &["create", "alice", "tablet", "--json"][..],
            &["revoke", "alice", "phone"],
            &["revoke", "alice", "--all"],
        ] {
            rig.tally.fault();
            let mut cmd = Command::new(bin("apppw"));
            cmd.arg("--config").arg(&rig.env.config).args(args);
            as_user(&mut cmd, Some(who));
            let out = run_with_stdin(&mut cmd, b"");
            rig.count();
            assert_eq!(out.status.code(), Some(1), "{args:?}: {}", transcript(&out));
            assert!(out.stdout.is_empty(), "{args:?}");
            assert_eq!(labels(&db), before, "{args:?}");
        }
        // No database yet, and its directory not writable: nothing is created.
        let fresh = TestEnv::new("");
        chmod(fresh.dir.path(), 0o755);
        chmod(&fresh.config, 0o644);
        rig.tally.fault();
        let mut cmd = Command::new(bin("apppw"));
        cmd.arg("--config")
            .arg(&fresh.config)
            .args(["create", "alice", "phone"]);
        as_user(&mut cmd, Some(who));
        let out = run_with_stdin(&mut cmd, b"");
        assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
        assert!(!fresh.db.exists());
        chmod(&db, 0o660);
    }
    integrity_ok(&db);
    rig.expect(
        "at the end",
        &rig.call("alice", &pw, OFF_IP),
        [Said::Accepted; 3],
    );
}
