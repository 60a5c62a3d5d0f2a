//! `apppw-checkpassword` at the protocol level: the built binary is run the way Dovecot runs
//! it (credentials on fd 3, Dovecot's environment, a reply program to exec), and every exit
//! status, input limit and store fault is checked.
//!
//! Tests that need root (a service file in /etc/pam.d, running as the `dovecot` user) print a
//! SKIP line without it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use apppw_integration_tests::dovecot::{self, CHECKPASSWORD_REPLY, PamService};
use apppw_integration_tests::{
    CAMPUS_IP, EXCEPT_IP, OFF_IP, TestEnv, bin, checkpassword_command, is_root, run_with_stdin,
};
use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const NORMAL_PW: &str = "Winter2026!";
/// App-password shaped, but never issued.
const UNKNOWN_APP_PW: &str = "abcd efgh ijkl mnop qrst uvwx";

/// Dumps its environment and arguments to the file named by its first argument.
const REPLY_SCRIPT: &str =
    "#!/bin/sh\nout=\"$1\"\nshift\n{ env; echo \"REPLY_ARGS=$*\"; } > \"$out\"\nexit 0\n";

/// What one run of the binary did.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stderr: String,
    /// The reply program's environment, if it ran.
    reply: Option<HashMap<String, String>>,
    elapsed: Duration,
}

impl Run {
    fn accepted(&self) -> bool {
        self.code == Some(0) && self.reply.is_some()
    }
}

struct Fixture {
    env: TestEnv,
    reply: PathBuf,
}

static CALLS: AtomicU32 = AtomicU32::new(0);

impl Fixture {
    fn new(extra_toml: &str) -> Fixture {
        let env = TestEnv::new(extra_toml);
        let reply = env.dir.path().join("reply.sh");
        std::fs::write(&reply, REPLY_SCRIPT).unwrap();
        std::fs::set_permissions(&reply, std::fs::Permissions::from_mode(0o755)).unwrap();
        Fixture { env, reply }
    }

    /// Dovecot's environment for a login of service imap from `ip`.
    fn dovecot_env(ip: Option<&str>) -> Vec<(String, String)> {
        let mut v = vec![
            ("PROTO".into(), "TCP".into()),
            ("ORIG_UID".into(), "0".into()),
            ("SERVICE".into(), "imap".into()),
            ("TCPLOCALIP".into(), "127.0.0.1".into()),
        ];
        if let Some(ip) = ip {
            v.push(("TCPREMOTEIP".into(), ip.into()));
            v.push(("REMOTE_IP".into(), ip.into()));
        }
        v
    }

    /// Runs the binary with `args`, then the reply script (its arguments: the file to dump
    /// into, and a flag), with `input` on fd 3 and exactly `env` as environment; as `uid`
    /// (group apppw, as the package sets Dovecot's user up) if given.
    fn run_raw(
        &self,
        args: &[OsString],
        input: &[u8],
        env: &[(String, String)],
        uid: Option<u32>,
    ) -> Run {
        let n = CALLS.fetch_add(1, Ordering::SeqCst);
        let out = self.env.dir.path().join(format!("reply-{n}.env"));
        // Like Dovecot: credentials on fd 3 (here: a copy of the stdin pipe), nothing on stdin.
        let mut cmd = checkpassword_command();
        cmd.args(args)
            .arg(&self.reply)
            .arg(&out)
            .arg("--reply-flag")
            .envs(env.iter().map(|(k, v)| (k, v)));
        if let Some(uid) = uid {
            cmd.uid(uid).gid(dovecot::package_group());
        }
        let start = Instant::now();
        let output = run_with_stdin(&mut cmd, input);
        let elapsed = start.elapsed();
        let reply = std::fs::read_to_string(&out).ok().map(|text| {
            text.lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
        });
        Run {
            code: output.status.code(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            reply,
            elapsed,
        }
    }

    fn config_args(&self) -> Vec<OsString> {
        vec!["--config".into(), self.env.config.clone().into_os_string()]
    }

    fn call(&self, input: &[u8], env: &[(String, String)]) -> Run {
        self.run_raw(&self.config_args(), input, env, None)
    }

    /// A login of `user` with `pass` from `ip` (None: no address variables at all).
    fn login(&self, user: &str, pass: &str, ip: Option<&str>) -> Run {
        let run = self.call(&input(user, pass), &Self::dovecot_env(ip));
        assert!(
            pass.is_empty() || !run.stderr.contains(pass),
            "password on stderr: {}",
            run.stderr
        );
        run
    }

    fn code(&self, user: &str, pass: &str, ip: &str) -> Option<i32> {
        self.login(user, pass, Some(ip)).code
    }

    fn lookup(&self, user: &str) -> Run {
        let mut env = Self::dovecot_env(None);
        env.push(("AUTHORIZED".into(), "1".into()));
        env.push(("CREDENTIALS_LOOKUP".into(), "1".into()));
        env.push(("SCHEME".into(), "PLAIN".into()));
        self.call(&input(user, ""), &env)
    }
}

/// Dovecot's fd 3 format: user NUL password NUL timestamp(empty) NUL.
fn input(user: &str, pass: &str) -> Vec<u8> {
    format!("{user}\0{pass}\0\0").into_bytes()
}

fn root_or_skip(test: &str) -> bool {
    if is_root() {
        true
    } else {
        eprintln!("SKIP {test}: needs root");
        false
    }
}

#[test]
fn app_password_is_accepted_from_anywhere_and_the_reply_program_gets_user() {
    let f = Fixture::new("");
    let pw = f.env.create("alice", "phone", &[]);
    for ip in [
        Some(OFF_IP),
        Some(CAMPUS_IP),
        Some(EXCEPT_IP),
        Some("mail.example.org"),
        None,
    ] {
        let run = f.login("alice", &pw, ip);
        assert!(run.accepted(), "{ip:?}: {run:?}");
        let reply = run.reply.unwrap();
        assert_eq!(reply["USER"], "alice");
        // Dovecot's variables pass through untouched; checkpassword-reply needs ORIG_UID.
        assert_eq!(reply["ORIG_UID"], "0");
        assert_eq!(reply["SERVICE"], "imap");
        assert_eq!(reply["PROTO"], "TCP");
        assert!(!reply.contains_key("AUTHORIZED"));
        assert!(
            reply.values().all(|v| !v.contains(&pw)),
            "password leaked into the environment"
        );
        assert_eq!(
            reply["REPLY_ARGS"], "--reply-flag",
            "reply arguments are passed on"
        );
    }
    // Case, spaces and dashes do not matter.
    let typed = pw.to_uppercase().replace(' ', "-");
    assert!(f.login("alice", &typed, Some(OFF_IP)).accepted());
    // The user must match.
    assert_eq!(f.code("bob", &pw, OFF_IP), Some(1));
}

#[test]
fn normal_password_only_on_campus_through_the_primary_pam_service() {
    if !root_or_skip("normal_password_only_on_campus_through_the_primary_pam_service") {
        return;
    }
    let pam = PamService::matrix(&[("alice", NORMAL_PW)]);
    let f = Fixture::new(&pam.toml());
    let pw = f.env.create("alice", "phone", &[]);

    let run = f.login("alice", NORMAL_PW, Some(CAMPUS_IP));
    assert!(run.accepted(), "{run:?}");
    assert_eq!(run.reply.unwrap()["USER"], "alice");
    assert!(
        f.login("alice", NORMAL_PW, Some("::ffff:192.0.2.10"))
            .accepted()
    );
    assert!(f.login("alice", NORMAL_PW, Some("2001:db8::5")).accepted());

    for ip in [
        OFF_IP,
        EXCEPT_IP,
        "::ffff:192.0.2.200",
        "mail.example.org",
        "",
    ] {
        assert_eq!(f.code("alice", NORMAL_PW, ip), Some(1), "{ip}");
    }
    assert_eq!(
        f.login("alice", NORMAL_PW, None).code,
        Some(1),
        "no address is off campus"
    );
    assert_eq!(f.code("alice", "wrong", CAMPUS_IP), Some(1));
    assert_eq!(f.code("alice", "", CAMPUS_IP), Some(1));
    assert_eq!(f.code("mallory", NORMAL_PW, CAMPUS_IP), Some(1));
    // The app password still works on campus, without PAM.
    assert!(f.login("alice", &pw, Some(CAMPUS_IP)).accepted());

    // TCPREMOTEIP decides; REMOTE_IP is only the fallback.
    let mut env = Fixture::dovecot_env(None);
    env.push(("TCPREMOTEIP".into(), OFF_IP.into()));
    env.push(("REMOTE_IP".into(), CAMPUS_IP.into()));
    assert_eq!(f.call(&input("alice", NORMAL_PW), &env).code, Some(1));
    let mut env = Fixture::dovecot_env(None);
    env.push(("REMOTE_IP".into(), CAMPUS_IP.into()));
    assert_eq!(f.call(&input("alice", NORMAL_PW), &env).code, Some(0));
}

#[test]
fn without_primary_service_the_normal_password_is_refused_even_on_campus() {
    let f = Fixture::new("");
    f.env.create("alice", "phone", &[]);
    for ip in [CAMPUS_IP, OFF_IP, EXCEPT_IP] {
        assert_eq!(f.code("alice", NORMAL_PW, ip), Some(1), "{ip}");
    }
}

#[test]
fn revoked_and_service_restricted_app_passwords() {
    let f = Fixture::new("");
    let pw = f.env.create("alice", "phone", &[]);
    let smtp_only = f.env.create("alice", "mailer", &["--services", "smtp"]);
    assert!(f.login("alice", &pw, Some(OFF_IP)).accepted());
    let out = f.env.apppw(&["revoke", "alice", "phone"], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        f.code("alice", &pw, OFF_IP),
        Some(1),
        "revocation is effective at once"
    );

    assert_eq!(
        f.code("alice", &smtp_only, OFF_IP),
        Some(1),
        "SERVICE=imap is not allowed"
    );
    let mut env = Fixture::dovecot_env(Some(OFF_IP));
    env.retain(|(k, _)| k != "SERVICE");
    env.push(("SERVICE".into(), "smtp".into()));
    assert_eq!(f.call(&input("alice", &smtp_only), &env).code, Some(0));
}

#[test]
fn works_with_dovecots_checkpassword_reply() {
    if !Path::new(CHECKPASSWORD_REPLY).exists() {
        eprintln!("SKIP works_with_dovecots_checkpassword_reply: {CHECKPASSWORD_REPLY} missing");
        return;
    }
    let f = Fixture::new("");
    let pw = f.env.create("alice", "phone", &[]);
    let fd4 = f.env.dir.path().join("fd4.out");
    let uid = if is_root() { "0".to_owned() } else { own_uid() };
    let run = |pass: &str, extra: &[(&str, &str)]| {
        let _ = std::fs::remove_file(&fd4);
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg("exec \"$@\" 3<&0 0</dev/null 4>\"$FD4\"")
            .arg("sh")
            .arg(bin("apppw-checkpassword"))
            .arg("--config")
            .arg(&f.env.config)
            .arg(CHECKPASSWORD_REPLY)
            .env_clear()
            .env("FD4", &fd4)
            .env("ORIG_UID", &uid)
            .env("SERVICE", "imap")
            .env("TCPREMOTEIP", OFF_IP)
            .envs(extra.iter().copied());
        let out = run_with_stdin(&mut cmd, &input("alice", pass));
        (
            out.status.code(),
            std::fs::read_to_string(&fd4).unwrap_or_default(),
        )
    };
    let (code, fields) = run(&pw, &[]);
    assert_eq!(code, Some(0));
    assert!(fields.split('\t').any(|f| f == "user=alice"), "{fields:?}");
    let (code, fields) = run("", &[("AUTHORIZED", "1"), ("CREDENTIALS_LOOKUP", "1")]);
    // checkpassword-reply exits 2 on a successful lookup; Dovecot expects exactly that.
    assert_eq!(code, Some(2));
    assert!(fields.split('\t').any(|f| f == "user=alice"), "{fields:?}");
    let (code, _) = run(NORMAL_PW, &[]);
    assert_eq!(code, Some(1));
}

fn own_uid() -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        .unwrap()
}

#[test]
fn lookup_mode_never_authenticates() {
    let f = Fixture::new("");
    let pw = f.env.create("alice", "phone", &[]);

    let run = f.lookup("alice");
    assert_eq!(run.code, Some(0), "{run:?}");
    let reply = run.reply.unwrap();
    assert_eq!(reply["AUTHORIZED"], "2");
    assert_eq!(reply["USER"], "alice");
    assert_eq!(reply["CREDENTIALS_LOOKUP"], "1");

    assert_eq!(f.lookup("bob").code, Some(3));
    assert_eq!(f.lookup("al\tice").code, Some(3));

    // A lookup that carries a password is not something Dovecot sends: refuse, never accept.
    let mut env = Fixture::dovecot_env(Some(OFF_IP));
    env.push(("AUTHORIZED".into(), "1".into()));
    for pass in [pw.as_str(), NORMAL_PW] {
        let run = f.call(&input("alice", pass), &env);
        assert_eq!(run.code, Some(2), "{run:?}");
        assert!(run.reply.is_none());
    }
    // Only AUTHORIZED=1 means lookup; an empty password otherwise is a failed login.
    assert_eq!(f.login("alice", "", Some(OFF_IP)).code, Some(1));
    let mut env = Fixture::dovecot_env(Some(OFF_IP));
    env.push(("AUTHORIZED".into(), "2".into()));
    assert_eq!(f.call(&input("alice", ""), &env).code, Some(1));

    // Store gone: temporary failure, not "unknown user".
    f.env.remove_database();
    let run = f.lookup("alice");
    assert_eq!(run.code, Some(111), "{run:?}");
    assert!(run.stderr.contains("does not exist"), "{}", run.stderr);
}

#[test]
fn usage_errors_exit_2() {
    let f = Fixture::new("");
    let env = Fixture::dovecot_env(Some(OFF_IP));
    let mut cmd = Command::new(bin("apppw-checkpassword"));
    let out = cmd.env_clear().output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage:"));
    let out = Command::new(bin("apppw-checkpassword"))
        .args(["--frobnicate", "/bin/true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(bin("apppw-checkpassword"))
        .arg("--config")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));

    // fd 3 not open at all.
    let out = Command::new(bin("apppw-checkpassword"))
        .args([
            "--config".as_ref(),
            f.env.config.as_os_str(),
            "/bin/true".as_ref(),
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("file descriptor 3"));

    let pw = f.env.create("alice", "phone", &[]);
    let malformed: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"alice".to_vec(),
        format!("alice\0{pw}").into_bytes(),
        format!("\0{pw}\0\0").into_bytes(),
    ];
    for bad in malformed {
        let run = f.call(&bad, &env);
        assert_eq!(
            run.code,
            Some(2),
            "{:?}: {run:?}",
            String::from_utf8_lossy(&bad)
        );
        assert!(run.stderr.contains("malformed"), "{}", run.stderr);
        assert!(!run.stderr.contains(&pw));
    }
    // Qmail-style input without the final extra NUL is fine.
    assert!(f.call(format!("alice\0{pw}\0").as_bytes(), &env).accepted());
}

#[test]
fn input_over_512_bytes_is_refused_not_truncated() {
    let f = Fixture::new("");
    let pw = f.env.create("alice", "phone", &[]);
    let env = Fixture::dovecot_env(Some(OFF_IP));

    // Exactly 512 bytes (a long extra field after the password) are read and accepted.
    let mut exact = format!("alice\0{pw}\0").into_bytes();
    exact.resize(511, b'x');
    exact.push(0);
    assert_eq!(exact.len(), 512);
    assert!(f.call(&exact, &env).accepted(), "512 bytes are allowed");

    let mut over = exact.clone();
    over.insert(0, b'a');
    let run = f.call(&over, &env);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("512"), "{}", run.stderr);

    let huge = [input("alice", &pw), vec![b'y'; 1 << 20]].concat();
    let run = f.call(&huge, &env);
    assert_eq!(run.code, Some(2));
    assert!(run.reply.is_none());
}

#[test]
fn config_lookup_order_and_broken_config() {
    let f = Fixture::new("");
    let pw = f.env.create("alice", "phone", &[]);
    let env = Fixture::dovecot_env(Some(OFF_IP));
    let none: Vec<OsString> = vec![];

    // APPPW_CONFIG is used without --config.
    let mut with_var = env.clone();
    with_var.push(("APPPW_CONFIG".into(), f.env.config.display().to_string()));
    assert!(
        f.run_raw(&none, &input("alice", &pw), &with_var, None)
            .accepted()
    );

    // --config wins over APPPW_CONFIG.
    let mut wrong_var = env.clone();
    wrong_var.push(("APPPW_CONFIG".into(), "/nonexistent/apppw.toml".into()));
    assert!(f.call(&input("alice", &pw), &wrong_var).accepted());

    // A missing or broken config is a temporary failure naming the file, never a success.
    let run = f.run_raw(&none, &input("alice", &pw), &wrong_var, None);
    assert_eq!(run.code, Some(111), "{run:?}");
    assert!(
        run.stderr.contains("/nonexistent/apppw.toml"),
        "{}",
        run.stderr
    );

    let broken = f.env.dir.path().join("broken.toml");
    std::fs::write(
        &broken,
        "[network]\ncampus = [\"192.0.2.0/24\"]\ncampsu = []\n",
    )
    .unwrap();
    let args: Vec<OsString> = vec!["--config".into(), broken.clone().into_os_string()];
    for pass in [pw.as_str(), NORMAL_PW] {
        let run = f.run_raw(&args, &input("alice", pass), &env, None);
        assert_eq!(run.code, Some(111), "{run:?}");
        assert!(run.stderr.contains("broken.toml line 3"), "{}", run.stderr);
    }
}

#[test]
fn missing_or_corrupt_database_is_never_a_success() {
    let f = Fixture::new("");
    if f.env
        .skip_unless_sqlite("missing_or_corrupt_database_is_never_a_success")
    {
        return;
    }
    // No database yet.
    assert_eq!(f.code("alice", UNKNOWN_APP_PW, OFF_IP), Some(111));
    assert_eq!(f.code("alice", UNKNOWN_APP_PW, CAMPUS_IP), Some(111));
    // Not app-password shaped: refused off campus without touching the store.
    assert_eq!(f.code("alice", NORMAL_PW, OFF_IP), Some(1));

    let pw = f.env.create("alice", "phone", &[]);
    std::fs::write(&f.env.db, vec![0x5a; 8192]).unwrap();
    for f_ip in [OFF_IP, CAMPUS_IP] {
        let run = f.login("alice", &pw, Some(f_ip));
        assert_eq!(run.code, Some(111), "{f_ip}: {run:?}");
        assert!(
            run.stderr.contains(&f.env.db.display().to_string()),
            "{}",
            run.stderr
        );
    }
    // A database of another program (right format, wrong schema).
    std::fs::remove_file(&f.env.db).unwrap();
    let conn = rusqlite::Connection::open(&f.env.db).unwrap();
    conn.execute_batch("CREATE TABLE t (x); PRAGMA user_version = 99;")
        .unwrap();
    drop(conn);
    assert_eq!(f.code("alice", &pw, OFF_IP), Some(111));
}

#[test]
fn store_down_on_campus_falls_back_to_the_primary_service() {
    if !root_or_skip("store_down_on_campus_falls_back_to_the_primary_service") {
        return;
    }
    let pam = PamService::matrix(&[("alice", "abcd efgh ijkl mnop qrst uvwx")]);
    let f = Fixture::new(&pam.toml());
    // No database: a 24-letter password is looked up first, the store is down, so on
    // campus PAM decides (documented), off campus it is a temporary failure.
    assert!(f.login("alice", UNKNOWN_APP_PW, Some(CAMPUS_IP)).accepted());
    assert_eq!(f.code("alice", UNKNOWN_APP_PW, OFF_IP), Some(111));
    assert_eq!(
        f.code("alice", "qqqq wwww eeee rrrr tttt yyyy", CAMPUS_IP),
        Some(1)
    );
}

#[test]
fn unreadable_and_read_only_database_as_the_dovecot_user() {
    if !root_or_skip("unreadable_and_read_only_database_as_the_dovecot_user") {
        return;
    }
    let Some(uid) = dovecot::user_id("dovecot") else {
        eprintln!("SKIP unreadable_and_read_only_database_as_the_dovecot_user: no dovecot user");
        return;
    };
    let f = Fixture::new("");
    if f.env
        .skip_unless_sqlite("unreadable_and_read_only_database_as_the_dovecot_user")
    {
        return;
    }
    let pw = f.env.create("alice", "phone", &[]);
    let env = Fixture::dovecot_env(Some(OFF_IP));
    let as_dovecot =
        |pass: &str| f.run_raw(&f.config_args(), &input("alice", pass), &env, Some(uid));

    // Set up as documented: the dovecot group can read and write the database.
    dovecot::share_with_dovecot(&f.env);
    let run = as_dovecot(&pw);
    assert!(run.accepted(), "{run:?}");
    let listed = f.env.apppw(&["list", "alice", "--json"], "");
    let v: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(v[0]["last_used_ip"], OFF_IP, "last use recorded: {v}");

    // Read-only for the group (0640): logins still work, last use is not recorded.
    std::fs::set_permissions(&f.env.db, std::fs::Permissions::from_mode(0o640)).unwrap();
    assert!(as_dovecot(&pw).accepted());

    // Not readable at all: a temporary failure that says what to fix.
    std::fs::set_permissions(&f.env.db, std::fs::Permissions::from_mode(0o600)).unwrap();
    let run = as_dovecot(&pw);
    assert_eq!(run.code, Some(111), "{run:?}");
    assert!(run.stderr.contains("cannot be used"), "{}", run.stderr);
    assert_eq!(as_dovecot(NORMAL_PW).code, Some(1));
}

#[test]
fn database_locked_by_a_writer() {
    let f = Fixture::new("");
    if f.env.skip_unless_sqlite("database_locked_by_a_writer") {
        return;
    }
    let pw = f.env.create("alice", "phone", &[]);

    // A writer holding a write transaction (e.g. `apppw create` in progress): in WAL mode
    // readers go on, the login succeeds; only the last-used update is skipped.
    let writer = rusqlite::Connection::open(&f.env.db).unwrap();
    writer
        .execute_batch("BEGIN EXCLUSIVE; UPDATE app_passwords SET label = label;")
        .unwrap();
    let run = f.login("alice", &pw, Some(OFF_IP));
    assert!(run.accepted(), "{run:?}");
    assert!(
        run.elapsed < Duration::from_secs(3),
        "took {:?}",
        run.elapsed
    );
    assert_eq!(f.code("alice", UNKNOWN_APP_PW, OFF_IP), Some(1));
    writer.execute_batch("ROLLBACK").unwrap();
    drop(writer);

    // A writer that locks the file itself (exclusive locking mode): the login waits for the
    // busy timeout, then fails temporarily. Never a success, never a hang.
    let writer = rusqlite::Connection::open(&f.env.db).unwrap();
    writer
        .execute_batch(
            "PRAGMA journal_mode = DELETE; PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE; \
             UPDATE app_passwords SET label = label;",
        )
        .unwrap();
    let run = f.login("alice", &pw, Some(OFF_IP));
    assert_eq!(run.code, Some(111), "{run:?}");
    assert!(
        run.elapsed < Duration::from_secs(7),
        "took {:?}",
        run.elapsed
    );
    writer.execute_batch("ROLLBACK").unwrap();
}

#[test]
fn a_stuck_caller_is_a_temporary_failure_after_the_deadline() {
    let f = Fixture::new("");
    // fd 3 never reaches end of file: the deadline ends the wait.
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg("exec \"$@\" 3<&0")
        .arg("sh")
        .arg(bin("apppw-checkpassword"))
        .arg("--config")
        .arg(&f.env.config)
        .arg(&f.reply)
        .arg(f.env.dir.path().join("never.env"))
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::io::Write::write_all(&mut stdin, b"alice\0").unwrap();
    let start = Instant::now();
    let out = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "no exit after 15 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(stdin);
    assert_eq!(out.code(), Some(111));
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_secs(4),
        "exited after {elapsed:?}"
    );
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("no decision within"), "{stderr}");
}

/// The normal password goes to a PAM stack that hangs (pam_exec of a long sleep, under
/// pam_wrapper): the deadline thread ends the process with 111 within the deadline, however
/// the main thread is stuck inside libpam.
#[test]
fn a_hanging_primary_pam_stack_is_a_temporary_failure_after_the_deadline() {
    use apppw_integration_tests::pam::{ServiceDir, pam_wrapper_available, system_module};
    if !pam_wrapper_available(
        "a_hanging_primary_pam_stack_is_a_temporary_failure_after_the_deadline",
    ) {
        return;
    }
    let services = ServiceDir::new();
    let pid_file = services.dir.path().join("hang.pid");
    let hang = services.dir.path().join("hang.sh");
    std::fs::write(
        &hang,
        format!(
            "#!/bin/sh\necho $$ > '{}'\nexec sleep 30\n",
            pid_file.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&hang, std::fs::Permissions::from_mode(0o755)).unwrap();
    let exec = system_module("pam_exec.so");
    services.add(
        "hang",
        &[&format!(
            "auth required {} {}",
            exec.display(),
            hang.display()
        )],
    );
    let f = Fixture::new("[primary]\npam_service = \"hang\"\n");
    let mut env = Fixture::dovecot_env(Some(CAMPUS_IP));
    for (k, v) in [
        ("LD_PRELOAD", apppw_integration_tests::pam::WRAPPER_LIB),
        ("PAM_WRAPPER", "1"),
        (
            "PAM_WRAPPER_SERVICE_DIR",
            services.dir.path().to_str().unwrap(),
        ),
    ] {
        env.push((k.into(), v.into()));
    }
    // pam_wrapper may fail to set up its copy of the service (see tests/src/pam.rs): then
    // the stack never ran, and the run is made again.
    let mut run = f.call(&input("alice", NORMAL_PW), &env);
    for _ in 0..3 {
        if pid_file.exists() {
            break;
        }
        run = f.call(&input("alice", NORMAL_PW), &env);
    }
    let sleeper = std::fs::read_to_string(&pid_file).unwrap_or_default();
    if let Ok(pid) = sleeper.trim().parse::<i32>() {
        let _ = Command::new("kill").arg(pid.to_string()).status();
    }
    assert!(!sleeper.is_empty(), "the hanging stack never ran: {run:?}");
    assert_eq!(run.code, Some(111), "{run:?}");
    assert!(
        run.elapsed >= Duration::from_secs(4) && run.elapsed < Duration::from_secs(8),
        "{run:?}"
    );
    assert!(run.stderr.contains("no decision within"), "{run:?}");
}

/// The cool-down through the real binary, on either store: an IPv6 guesser rotating through
/// its /64 is one client; once the per-user limit is reached strangers are refused, while a
/// device (same /24) that logged in before keeps working. `USER` is the canonical name.
#[test]
fn cool_down_per_64_and_smart_lockout() {
    let f = Fixture::new(
        "[lockout]\nmax_failures_per_client = 3\nmax_failures_per_user = 5\n\
         [argon2]\nmemory_kib = 1024\niterations = 1\n",
    );
    let pw = f.env.create("alice", "phone", &[]);
    let run = f.login("ALICE", &pw, Some("198.51.100.7"));
    assert!(run.accepted(), "{run:?}");
    assert_eq!(run.reply.unwrap()["USER"], "alice");

    for i in 1..=3 {
        let ip = format!("2001:db8:1:2::{i}");
        assert_eq!(f.code("alice", UNKNOWN_APP_PW, &ip), Some(1), "{ip}");
    }
    assert_eq!(
        f.code("alice", &pw, "2001:db8:1:2:aaaa::99"),
        Some(1),
        "another address of the same /64"
    );
    assert!(
        f.login("alice", &pw, Some("2001:db8:1:3::1")).accepted(),
        "another /64"
    );

    for ip in ["2001:db8:9:1::1", "2001:db8:9:2::1"] {
        assert_eq!(f.code("alice", UNKNOWN_APP_PW, ip), Some(1), "{ip}");
    }
    // Five failures for alice: everybody new is locked out, her known devices are not.
    assert_eq!(f.code("alice", &pw, "203.0.113.50"), Some(1), "stranger");
    assert!(
        f.login("alice", &pw, Some("198.51.100.200")).accepted(),
        "the phone's /24"
    );
    assert!(
        f.login("Alice", &pw, Some("2001:db8:1:3::77")).accepted(),
        "the /64 that logged in"
    );
}

#[test]
fn master_user_logins_check_the_login_user() {
    let f = Fixture::new("");
    let alice = f.env.create("alice", "phone", &[]);
    let admin = f.env.create("admin", "ops", &[]);
    let mut env = Fixture::dovecot_env(Some(OFF_IP));
    env.push(("MASTER_USER".into(), "admin".into()));
    // The credential on fd 3 is checked for the user on fd 3; MASTER_USER passes through.
    let run = f.call(&input("alice", &alice), &env);
    assert!(run.accepted(), "{run:?}");
    let reply = run.reply.unwrap();
    assert_eq!(reply["USER"], "alice");
    assert_eq!(reply["MASTER_USER"], "admin");
    assert_eq!(f.call(&input("alice", &admin), &env).code, Some(1));
}

#[test]
fn reply_program_that_cannot_run_is_a_temporary_failure() {
    let f = Fixture::new("");
    let pw = f.env.create("alice", "phone", &[]);
    let args: Vec<OsString> = vec![
        "--config".into(),
        f.env.config.clone().into_os_string(),
        "--".into(),
        "/nonexistent/checkpassword-reply".into(),
    ];
    let mut cmd = checkpassword_command();
    cmd.args(&args).env("TCPREMOTEIP", OFF_IP);
    let out = run_with_stdin(&mut cmd, &input("alice", &pw));
    assert_eq!(out.status.code(), Some(111));
    assert!(String::from_utf8_lossy(&out.stderr).contains("reply program"));
}

/// `apppw-checkpassword` does not load OpenSSL: a database that needs TLS is handed to
/// `apppw-checkpassword-tls` next to it, and without that program the attempt is a temporary
/// failure that says why (never a plaintext connection).
#[test]
fn a_database_that_needs_tls_goes_to_the_tls_program() {
    let needed = |elf: &Path| {
        let out = Command::new("readelf")
            .arg("-dW")
            .arg(elf)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(!needed(&bin("apppw-checkpassword")).contains("libssl"));
    assert!(needed(&bin("apppw-checkpassword-tls")).contains("libssl"));

    // A host that is not loopback: verify-full. Nothing listens at 192.0.2.1, so the TLS
    // program fails to connect; alone, the plain one cannot even try.
    let env = TestEnv::with_postgres(
        "postgresql://apppw@192.0.2.1/apppw?connect_timeout=1",
        "",
        "",
    );
    let alone = env.dir.path().join("alone");
    std::fs::create_dir(&alone).unwrap();
    std::fs::copy(
        bin("apppw-checkpassword"),
        alone.join("apppw-checkpassword"),
    )
    .unwrap();
    let shaped = "abcd efgh ijkl mnop qrst uvwx";
    let run = |program: &Path| {
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg("exec \"$@\" 3<&0 0</dev/null")
            .arg("sh")
            .arg(program)
            .arg("--config")
            .arg(&env.config)
            .arg("/bin/true")
            .env_clear()
            .env("TCPREMOTEIP", OFF_IP);
        run_with_stdin(&mut cmd, &input("alice", shaped))
    };
    let out = run(&alone.join("apppw-checkpassword"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(111), "{stderr}");
    assert!(
        stderr.contains("needs TLS") && stderr.contains("apppw-checkpassword-tls"),
        "{stderr}"
    );
    let out = run(&bin("apppw-checkpassword"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(111), "{stderr}");
    assert!(
        stderr.contains("not reachable"),
        "the TLS program tried: {stderr}"
    );
}

#[test]
fn per_attempt_cost() {
    let f = Fixture::new("");
    let pw = f.env.create("alice", "phone", &[]);
    let mut app = Duration::ZERO;
    let mut normal = Duration::ZERO;
    const N: u32 = 5;
    for _ in 0..N {
        app += f.login("alice", &pw, Some(OFF_IP)).elapsed;
        normal += f.login("alice", NORMAL_PW, Some(OFF_IP)).elapsed;
    }
    eprintln!(
        "per attempt (process start to exit): app password {:?}, normal password off campus {:?}",
        app / N,
        normal / N
    );
    assert!(app / N < Duration::from_secs(2));
}
