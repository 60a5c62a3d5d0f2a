//! A real Dovecot 2.3 with `passdb { driver = pam }`, configured the way Dovecot 2.4 installs
//! must use apppw (2.4 has no checkpassword driver), and the documented PAM stack with the real
//! `pam_unix.so try_first_pass` for the normal password of a throwaway system user.
//!
//! Needs root (an `/etc/pam.d` entry, `useradd`, Dovecot's root auth worker); prints SKIP
//! otherwise. Everything created outside the temp directory is removed by drop guards, also
//! when an assertion fails.
//!
//! The PAM service is a unique name (`args = apppwtest-PID-N`) rather than `args = %s`: `%s`
//! makes the service the protocol name (`/etc/pam.d/imap`), which a test must not create on a
//! machine that may have one.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use apppw_integration_tests::postfix::{self, Postfix};
use apppw_integration_tests::{CAMPUS_IP, EXCEPT_IP, OFF_IP, TestEnv, bin, is_root};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const NORMAL: &str = "Normal-Pass-2026";

fn unique(prefix: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}{}x{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn skip_unless_ready(test: &str) -> bool {
    if !is_root() {
        eprintln!("SKIP {test}: needs root (an /etc/pam.d entry, useradd, Dovecot's auth worker)");
        return false;
    }
    for tool in [
        "/usr/sbin/dovecot",
        "/usr/bin/doveadm",
        "/usr/sbin/useradd",
        "/usr/sbin/chpasswd",
    ] {
        if !Path::new(tool).exists() {
            eprintln!("SKIP {test}: {tool} is not installed");
            return false;
        }
    }
    true
}

/// A system user with a normal password, for `pam_unix`; deleted on drop.
struct SystemUser(String);

impl SystemUser {
    fn create(password: &str) -> SystemUser {
        let name = unique("apppwt");
        // Another test may hold the lock on /etc/passwd for a moment.
        let useradd = || {
            Command::new("useradd")
                .args(["-M", "-s", "/usr/sbin/nologin", &name])
                .status()
                .unwrap()
        };
        let mut status = useradd();
        for _ in 0..20 {
            if status.success() {
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
            status = useradd();
        }
        assert!(status.success(), "useradd {name} failed");
        let user = SystemUser(name);
        let out = apppw_integration_tests::run_with_stdin(
            &mut Command::new("chpasswd"),
            format!("{}:{password}\n", user.0).as_bytes(),
        );
        assert!(
            out.status.success(),
            "chpasswd: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        user
    }
}

impl Drop for SystemUser {
    fn drop(&mut self) {
        // Retried like useradd: a user left behind would outlive the test run.
        for _ in 0..20 {
            let status = Command::new("userdel")
                .arg(&self.0)
                .stderr(Stdio::null())
                .status();
            if status.is_ok_and(|s| s.success()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// `/etc/pam.d/NAME`, removed on drop.
struct PamService {
    name: String,
    path: PathBuf,
}

impl PamService {
    fn create(config: &Path) -> PamService {
        let name = unique("apppwtest-");
        let path = Path::new("/etc/pam.d").join(&name);
        let text = format!(
            "# Temporary service of the apppw integration tests.\n\
             auth [success=done ignore=ignore default=die] {} config={}\n\
             auth required pam_unix.so try_first_pass\n\
             account required pam_unix.so\n",
            bin("libpam_apppw.so").display(),
            config.display()
        );
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap();
        let service = PamService { name, path };
        file.write_all(text.as_bytes()).unwrap();
        service
    }
}

impl Drop for PamService {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A Dovecot instance in a temp directory, stopped on drop.
struct Dovecot {
    conf: PathBuf,
    log: PathBuf,
    master: Child,
}

impl Dovecot {
    /// `postfix_listener`: also offer the auth socket `run/postfix-auth` to the `postfix` user.
    /// `cache`: `auth_cache_size = 1M` and the documented `cache_key=%u%r%s` in `args`.
    fn start(dir: &Path, pam_service: &str, postfix_listener: bool, cache: bool) -> Dovecot {
        let run = dir.join("run");
        let state = dir.join("state");
        for d in [&run, &state] {
            std::fs::create_dir_all(d).unwrap();
        }
        let conf = dir.join("dovecot.conf");
        let log = dir.join("dovecot.log");
        // No listeners: doveadm talks to the auth socket in base_dir.
        let text = format!(
            "instance_name = {instance}\n\
             base_dir = {run}\n\
             state_dir = {state}\n\
             log_path = {log}\n\
             protocols = imap\n\
             listen = 127.0.0.1\n\
             ssl = no\n\
             disable_plaintext_auth = no\n\
             auth_mechanisms = plain login\n\
             auth_verbose = yes\n\
             auth_failure_delay = 0\n\
             {cache_size}passdb {{\n  driver = pam\n  args = {cache_key}{pam_service}\n}}\n\
             userdb {{\n  driver = static\n  args = uid=nobody gid=nogroup home={home} allow_all_users=yes\n}}\n\
             service imap-login {{\n  inet_listener imap {{\n    port = 0\n  }}\n  inet_listener imaps {{\n    port = 0\n  }}\n}}\n",
            instance = unique("apppw-pam-"),
            run = run.display(),
            state = state.display(),
            log = log.display(),
            home = dir.join("home/%u").display(),
            cache_size = if cache { "auth_cache_size = 1M\n" } else { "" },
            cache_key = if cache { "cache_key=%u%r%s " } else { "" },
        );
        let text = if postfix_listener {
            format!(
                "{text}service auth {{\n  unix_listener postfix-auth {{\n    mode = 0600\n    \
                 user = postfix\n  }}\n}}\n"
            )
        } else {
            text
        };
        std::fs::write(&conf, text).unwrap();
        let master = Command::new("dovecot")
            .arg("-F")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut dovecot = Dovecot { conf, log, master };
        let socket = run.join("auth-client");
        let deadline = Instant::now() + Duration::from_secs(15);
        while !socket.exists() {
            if let Ok(Some(status)) = dovecot.master.try_wait() {
                panic!("dovecot exited with {status}:\n{}", dovecot.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "dovecot did not start:\n{}",
                dovecot.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        dovecot
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `doveadm auth test -x service=imap -x rip=RIP USER PASS`: 0 accepted, 77 refused.
    fn auth_test(&self, user: &str, password: &str, rip: &str) -> i32 {
        let out = Command::new("doveadm")
            .arg("-c")
            .arg(&self.conf)
            // No anvil penalty: it keys IPv6 (and so ::ffff:) clients by /48 and slows the test.
            .args([
                "auth",
                "test",
                "-x",
                "service=imap",
                "-x",
                "no-penalty",
                "-x",
            ])
            .arg(format!("rip={rip}"))
            .args([user, password])
            .output()
            .unwrap();
        out.status.code().unwrap_or(-1)
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let _ = Command::new("doveadm")
            .arg("-c")
            .arg(&self.conf)
            .arg("stop")
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.master.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.master.kill();
        let _ = self.master.wait();
    }
}

/// A throwaway system user with the documented stack in `/etc/pam.d/` behind a running Dovecot.
/// Fields drop in declaration order: Dovecot stops before the service and the user go.
struct Fixture {
    dovecot: Dovecot,
    _pam: PamService,
    user: SystemUser,
    env: TestEnv,
}

impl Fixture {
    fn new(postfix_listener: bool) -> Fixture {
        Self::with(postfix_listener, false)
    }

    fn with(postfix_listener: bool, cache: bool) -> Fixture {
        let env = TestEnv::new("");
        let user = SystemUser::create(NORMAL);
        let pam = PamService::create(&env.config);
        let dovecot = Dovecot::start(env.dir.path(), &pam.name, postfix_listener, cache);
        Fixture {
            dovecot,
            _pam: pam,
            user,
            env,
        }
    }

    fn name(&self) -> &str {
        &self.user.0
    }
}

#[test]
fn dovecot_passdb_pam_report_mode_and_exemptions() {
    if !skip_unless_ready("dovecot_passdb_pam_report_mode_and_exemptions") {
        return;
    }
    let f = Fixture::new(false);
    let (env, dovecot, name) = (&f.env, &f.dovecot, f.name());
    let app = env.create(name, "phone", &[]);
    let enforce = std::fs::read_to_string(&env.config).unwrap();
    let check = |password: &str, rip: &str, expected: i32, what: &str| {
        let got = dovecot.auth_test(name, password, rip);
        assert_eq!(got, expected, "{what} from {rip}\n{}", dovecot.log_text());
    };

    // Report mode: pam_unix decides off campus too; app passwords as always.
    std::fs::write(
        &env.config,
        format!("{enforce}[enforcement]\nmode = \"report\"\n"),
    )
    .unwrap();
    check(NORMAL, OFF_IP, 0, "normal password, report mode");
    check(
        "Wrong-password",
        EXCEPT_IP,
        77,
        "wrong password, report mode",
    );
    check(&app, OFF_IP, 0, "app password, report mode");

    // Enforce, then an exemption for this user, then its end.
    std::fs::write(&env.config, &enforce).unwrap();
    check(NORMAL, OFF_IP, 77, "normal password, enforce");
    let out = env.apppw(&["exempt", name, "--until", "7d"], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    check(NORMAL, OFF_IP, 0, "normal password, exempt");
    let out = env.apppw(&["unexempt", name], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    check(NORMAL, OFF_IP, 77, "normal password, exemption ended");

    // The attempts were counted by Dovecot's auth worker, with the PAM service.
    let out = env.apppw(&["report", "--json"], "");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let row = &report["users"][0];
    assert_eq!(row["user"], name, "{report}");
    assert_eq!(
        (row["refused"].as_i64(), row["passed_on"].as_i64()),
        (Some(2), Some(3)),
        "{report}"
    );
    assert_eq!(row["last_service"], f._pam.name.as_str(), "{report}");
    assert_eq!(row["has_app_password"], true, "{report}");
}

#[test]
fn dovecot_passdb_pam_enforces_the_campus_rule() {
    if !skip_unless_ready("dovecot_passdb_pam_enforces_the_campus_rule") {
        return;
    }
    let f = Fixture::new(false);
    let (env, dovecot, name) = (&f.env, &f.dovecot, f.name());
    let app = env.create(name, "phone", &[]);

    let check = |password: &str, rip: &str, expected: i32, what: &str| {
        let t = Instant::now();
        let got = dovecot.auth_test(name, password, rip);
        eprintln!("{what} from {rip}: {got} in {:?}", t.elapsed());
        assert_eq!(got, expected, "{what} from {rip}\n{}", dovecot.log_text());
    };

    check(&app, OFF_IP, 0, "app password");
    check(&app, CAMPUS_IP, 0, "app password");
    check(&app, EXCEPT_IP, 0, "app password");
    check(NORMAL, OFF_IP, 77, "normal password");
    check(NORMAL, EXCEPT_IP, 77, "normal password");
    check(NORMAL, "::ffff:203.0.113.9", 77, "normal password");
    check(
        NORMAL,
        CAMPUS_IP,
        0,
        "normal password (pam_unix decides on campus)",
    );
    check(NORMAL, "::ffff:192.0.2.10", 0, "normal password");
    check("Wrong-password", CAMPUS_IP, 77, "wrong password");

    // The use is recorded with the client address Dovecot passed as PAM_RHOST.
    let out = env.apppw(&["list", name, "--json"], "");
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list[0]["last_used_ip"], EXCEPT_IP, "{list}");

    // Revocation is effective for the very next attempt (no auth cache configured).
    let out = env.apppw(&["revoke", name, "phone"], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    check(&app, OFF_IP, 77, "revoked app password");

    // The module reads the config on every request: broken, it refuses even the normal
    // password on campus.
    let good = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(&env.config, format!("{good}\nunknown_key = 1\n")).unwrap();
    check(
        NORMAL,
        CAMPUS_IP,
        77,
        "normal password with a broken config",
    );
    std::fs::write(&env.config, good).unwrap();
    check(
        NORMAL,
        CAMPUS_IP,
        0,
        "normal password with the config fixed",
    );

    let log = dovecot.log_text();
    assert!(
        !log.contains(NORMAL) && !log.contains(&app),
        "a password reached Dovecot's log"
    );
}

#[test]
fn postfix_smtp_auth_through_dovecot_sasl() {
    let test = "postfix_smtp_auth_through_dovecot_sasl";
    if !skip_unless_ready(test) || !postfix::available(test) {
        return;
    }
    let f = Fixture::new(true);
    let postfix = Postfix::start(f.env.dir.path(), &f.env.dir.path().join("run/postfix-auth"));
    let name = f.name();
    let app = f.env.create(name, "phone", &[]);
    let check = |xclient: Option<&str>, password: &str, accepted: bool, what: &str| {
        let (code, replies) = postfix.auth_plain(xclient, name, password);
        let expected = if accepted { (0, "235 ") } else { (28, "535 ") };
        assert!(
            code == expected.0 && replies.contains(expected.1),
            "{what}: swaks exit {code}\n{replies}\n{}\n{}",
            postfix.log_text(),
            f.dovecot.log_text()
        );
    };

    // The SMTP client is 127.0.0.1: off campus.
    check(None, &app, true, "app password from off campus");
    check(None, NORMAL, false, "normal password from off campus");
    check(
        Some(EXCEPT_IP),
        NORMAL,
        false,
        "normal password from an except network",
    );
    check(Some(CAMPUS_IP), NORMAL, true, "normal password from campus");
    check(
        Some(OFF_IP),
        &app,
        true,
        "app password from off campus via XCLIENT",
    );
}

/// `apppw revoke USER LABEL` with the test's config plus a `[dovecot]` section.
fn revoke_with(env: &TestEnv, dovecot: &str, user: &str, label: &str) -> std::process::Output {
    let config = env.dir.path().join("apppw-revoke.toml");
    let text = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(&config, format!("{text}\n[dovecot]\n{dovecot}\n")).unwrap();
    Command::new(bin("apppw"))
        .arg("--config")
        .arg(&config)
        .args(["revoke", user, label])
        .output()
        .unwrap()
}

/// Dovecot 2.3 `passdb pam` with the auth cache on and the documented key (`cache_key=%u%r%s`):
/// the campus rule holds, a revocation without a flush is served from the cache (the hole
/// the flush closes), and `apppw revoke` flushes it; a failed flush is a warning, exit 0.
#[test]
fn dovecot_passdb_pam_with_the_auth_cache() {
    if !skip_unless_ready("dovecot_passdb_pam_with_the_auth_cache") {
        return;
    }
    let f = Fixture::with(false, true);
    let (env, dovecot, name) = (&f.env, &f.dovecot, f.name());
    let check = |password: &str, rip: &str, expected: i32, what: &str| {
        let got = dovecot.auth_test(name, password, rip);
        assert_eq!(got, expected, "{what} from {rip}\n{}", dovecot.log_text());
    };
    check(NORMAL, CAMPUS_IP, 0, "normal password");
    check(NORMAL, CAMPUS_IP, 0, "normal password, again (cached)");
    check(NORMAL, OFF_IP, 77, "normal password after a campus success");
    check(
        NORMAL,
        EXCEPT_IP,
        77,
        "normal password after a campus success",
    );
    check(
        NORMAL,
        "2001:db9::1",
        77,
        "normal password after a campus success",
    );

    // Without a flush a revoked app password is served from the cache.
    let app = env.create(name, "phone", &[]);
    check(&app, OFF_IP, 0, "app password");
    let out = revoke_with(env, "flush_auth_cache = false", name, "phone");
    assert!(out.status.success());
    check(
        &app,
        OFF_IP,
        0,
        "revoked app password, cache not flushed (the hole)",
    );

    // apppw revoke flushes this Dovecot (its own base_dir: auth_master_socket).
    let socket = env.dir.path().join("run/auth-master");
    let laptop = env.create(name, "laptop", &[]);
    check(&laptop, OFF_IP, 0, "second app password");
    let out = revoke_with(
        env,
        &format!("auth_master_socket = \"{}\"", socket.display()),
        name,
        "laptop",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("flushed {name} from Dovecot's auth cache")),
        "{stdout}"
    );
    check(&laptop, OFF_IP, 77, "revoked app password after the flush");

    // A flush that cannot reach Dovecot: a warning, and the revocation stands.
    let tablet = env.create(name, "tablet", &[]);
    let out = revoke_with(
        env,
        "auth_master_socket = \"/nonexistent/auth-master\"",
        name,
        "tablet",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("warning: could not flush") && stderr.contains("doveadm auth cache flush"),
        "{stderr}"
    );
    check(&tablet, OFF_IP, 77, "revoked app password, flush failed");
    let list = env.apppw(&["list", name, "--json"], "");
    assert_eq!(String::from_utf8_lossy(&list.stdout).trim(), "[]");
}
