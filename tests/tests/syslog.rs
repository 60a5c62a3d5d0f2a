//! The syslog lines themselves, as a syslog daemon receives them: one datagram per decision on
//! `/dev/log`, facility authpriv, the fields of the SPEC, escaped and bounded, no secrets.
//!
//! Needs root and a machine where nothing owns `/dev/log` (no syslog daemon, as in a container
//! or a fresh CI machine): the test binds `/dev/log` itself for its duration and removes it
//! afterwards. Elsewhere it prints a SKIP line; run it with `journalctl -f` instead.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use apppw_integration_tests::pam::{ServiceDir, apppw_line, pam_wrapper_available, primary_line};
use apppw_integration_tests::{
    CAMPUS_IP, EXCEPT_IP, OFF_IP, TestEnv, checkpassword_command, is_root, run_with_stdin,
};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// The tests of this file take turns owning `/dev/log`.
static DEV_LOG: Mutex<()> = Mutex::new(());

fn own_dev_log() -> MutexGuard<'static, ()> {
    DEV_LOG.lock().unwrap_or_else(PoisonError::into_inner)
}

const DEV_LOG_PATH: &str = "/dev/log";
const NORMAL: &str = "Winter-2026-normal";

/// `/dev/log`, bound by this test and removed on drop.
struct SyslogSocket(UnixDatagram);

impl SyslogSocket {
    fn bind() -> Option<SyslogSocket> {
        if Path::new(DEV_LOG_PATH).exists() {
            return None;
        }
        let socket = UnixDatagram::bind(DEV_LOG_PATH).ok()?;
        std::fs::set_permissions(DEV_LOG_PATH, std::fs::Permissions::from_mode(0o666)).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        Some(SyslogSocket(socket))
    }

    /// Every datagram received until none comes for half a second.
    fn drain(&self) -> Vec<String> {
        let mut lines = Vec::new();
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = self.0.recv(&mut buf) {
            lines.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        lines
    }
}

impl Drop for SyslogSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(DEV_LOG_PATH);
    }
}

/// `apppw-checkpassword --config CONFIG /bin/true` as Dovecot runs it; the exit status.
fn checkpassword(env: &TestEnv, user: &[u8], pass: &str, ip: &str) -> Option<i32> {
    let mut cmd = checkpassword_command();
    cmd.arg("--config")
        .arg(&env.config)
        .arg("/bin/true")
        .env("SERVICE", "imap")
        .env("TCPREMOTEIP", ip);
    let mut input = user.to_vec();
    input.push(0);
    input.extend_from_slice(pass.as_bytes());
    input.extend_from_slice(b"\0\0");
    run_with_stdin(&mut cmd, &input).status.code()
}

/// The one line in `lines` that contains every one of `parts`.
#[track_caller]
fn one_line<'a>(lines: &'a [String], parts: &[&str]) -> &'a str {
    let found: Vec<&String> = lines
        .iter()
        .filter(|l| parts.iter().all(|p| l.contains(p)))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "lines with {parts:?}: {found:#?}\nall: {lines:#?}"
    );
    found[0]
}

#[test]
fn every_decision_is_one_authpriv_line_without_secrets() {
    if !is_root() {
        eprintln!("SKIP every_decision_is_one_authpriv_line_without_secrets: needs root");
        return;
    }
    let _turn = own_dev_log();
    let Some(syslog) = SyslogSocket::bind() else {
        eprintln!(
            "SKIP every_decision_is_one_authpriv_line_without_secrets: {DEV_LOG_PATH} belongs to a \
             syslog daemon here"
        );
        return;
    };
    let env = TestEnv::new("");
    let phone = env.create("alice", "phone", &[]);
    let stored = env.dump();
    let _ = syslog.drain();

    // checkpassword: accepted, refused off campus, refused on campus without [primary].
    assert_eq!(checkpassword(&env, b"alice", &phone, OFF_IP), Some(0));
    assert_eq!(checkpassword(&env, b"alice", NORMAL, OFF_IP), Some(1));
    assert_eq!(checkpassword(&env, b"alice", NORMAL, CAMPUS_IP), Some(1));
    let lines = syslog.drain();
    assert_eq!(lines.len(), 3, "one line per decision: {lines:#?}");

    // <86> = authpriv.info (accepted), <85> = authpriv.notice (refused).
    let accepted = one_line(&lines, &["user=alice", "result=accepted"]);
    assert!(accepted.starts_with("<86>"), "{accepted}");
    assert!(accepted.contains("apppw["), "{accepted}");
    assert!(
        accepted.contains(&format!(
            "apppw-checkpassword: service=imap user=alice rhost={OFF_IP} result=accepted \
             reason=app-password label=phone"
        )),
        "{accepted}"
    );
    let off = one_line(
        &lines,
        &["user=alice", &format!("rhost={OFF_IP} result=refused")],
    );
    assert!(off.starts_with("<85>"), "{off}");
    assert!(off.contains("reason=primary-off-campus-refused"), "{off}");
    let campus = one_line(&lines, &["user=alice", &format!("rhost={CAMPUS_IP}")]);
    assert!(campus.contains("result=refused"), "{campus}");

    // The PAM module: the Linux-PAM style prefix.
    if pam_wrapper_available("every_decision_is_one_authpriv_line_without_secrets (PAM part)") {
        let services = ServiceDir::new();
        let apppw = apppw_line(&format!("config={}", env.config.display()));
        let primary = primary_line(services.dir.path(), NORMAL);
        services.add("imap", &[&apppw, &primary]);
        let r = services.authenticate("imap", "alice", Some(OFF_IP), &format!("{phone}\n"), &[]);
        assert_eq!(r.code(), "PAM_SUCCESS", "{}", r.transcript());
        let r = services.authenticate(
            "imap",
            "alice",
            Some(CAMPUS_IP),
            &format!("{NORMAL}\n"),
            &[],
        );
        assert_eq!(r.code(), "PAM_SUCCESS", "{}", r.transcript());
        // A user name built to forge a second line, and one far too long.
        let forged = "mallory\nFake: result=accepted";
        let r = services.authenticate("imap", forged, Some(OFF_IP), &format!("{NORMAL}\n"), &[]);
        assert_eq!(r.code(), "PAM_AUTH_ERR", "{}", r.transcript());
        let long = "x".repeat(5000);
        let r = services.authenticate("imap", &long, Some(OFF_IP), &format!("{NORMAL}\n"), &[]);
        assert_eq!(r.code(), "PAM_AUTH_ERR", "{}", r.transcript());
        let pam_lines = syslog.drain();
        let forged_line = one_line(&pam_lines, &["mallory"]);
        assert!(!forged_line.contains('\n'), "{forged_line:?}");
        assert!(
            !forged_line.contains("Fake: result=accepted"),
            "{forged_line}"
        );
        let long_line = one_line(&pam_lines, &["xxxxxxxx"]);
        assert!(long_line.len() < 1024, "{} bytes", long_line.len());
        let ok = one_line(&pam_lines, &["pam_apppw(imap:auth)", "result=accepted"]);
        assert!(ok.starts_with("<86>"), "{ok}");
        assert!(
            ok.contains(&format!(
                "pam_apppw(imap:auth): service=imap user=alice rhost={OFF_IP} \
                 result=accepted reason=app-password label=phone"
            )),
            "{ok}"
        );
        let on_campus = one_line(&pam_lines, &["pam_apppw(imap:auth)", CAMPUS_IP]);
        assert!(
            on_campus.contains("reason=primary-on-campus"),
            "{on_campus}"
        );
        assert_eq!(
            pam_lines
                .iter()
                .filter(|l| l.contains("pam_apppw(imap:auth)"))
                .count(),
            4,
            "one line per decision: {pam_lines:#?}"
        );
        lines_without_secrets(&pam_lines, &phone, &stored);
    }
    lines_without_secrets(&lines, &phone, &stored);

    // The admin CLI: one line per change, naming the admin behind sudo and the real uid.
    let _ = syslog.drain();
    let admin = |args: &[&str]| {
        let out = std::process::Command::new(apppw_integration_tests::bin("apppw"))
            .arg("--config")
            .arg(&env.config)
            .args(args)
            .env("SUDO_USER", "carol")
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        out
    };
    let created = admin(&["create", "alice", "laptop", "--services", "imap", "--json"]);
    let created: serde_json::Value = serde_json::from_slice(&created.stdout).unwrap();
    let laptop = created["password"].as_str().unwrap().to_owned();
    admin(&["list"]);
    admin(&["revoke", "alice", "laptop"]);
    admin(&["migrate"]);
    let admin_lines = syslog.drain();
    assert_eq!(admin_lines.len(), 3, "list logs nothing: {admin_lines:#?}");
    let create = one_line(&admin_lines, &["apppw(create):"]);
    assert!(create.starts_with("<85>"), "{create}");
    assert!(
        create.contains("apppw(create): admin=carol uid=0 user=alice label=laptop id=")
            && create.contains("services=imap"),
        "{create}"
    );
    let revoke = one_line(&admin_lines, &["apppw(revoke):"]);
    assert!(
        revoke.contains("admin=carol uid=0 user=alice what=laptop ids=")
            && revoke.contains("labels=laptop"),
        "{revoke}"
    );
    let migrate = one_line(&admin_lines, &["apppw(migrate):"]);
    assert!(
        migrate.contains("admin=carol uid=0") && migrate.contains("schema=3"),
        "{migrate}"
    );
    lines_without_secrets(&admin_lines, &laptop, &stored);
}

#[test]
fn report_mode_and_exemptions_log_would_refuse() {
    if !is_root() {
        eprintln!("SKIP report_mode_and_exemptions_log_would_refuse: needs root");
        return;
    }
    let _turn = own_dev_log();
    let Some(syslog) = SyslogSocket::bind() else {
        eprintln!(
            "SKIP report_mode_and_exemptions_log_would_refuse: {DEV_LOG_PATH} belongs to a \
             syslog daemon here"
        );
        return;
    };
    let env = TestEnv::new("[enforcement]\nmode = \"report\"\n");
    let phone = env.create("alice", "phone", &[]);
    let stored = env.dump();
    let _ = syslog.drain();

    // checkpassword without [primary]: passed on, then refused for lack of a PAM service.
    assert_eq!(checkpassword(&env, b"alice", NORMAL, OFF_IP), Some(1));
    assert_eq!(checkpassword(&env, b"alice", &phone, OFF_IP), Some(0));
    // `apppw verify` decides without logging.
    let out = env.apppw(&["verify", "alice", "--ip", OFF_IP], &format!("{NORMAL}\n"));
    assert_eq!(out.status.code(), Some(1));
    let lines = syslog.drain();
    assert_eq!(
        lines.len(),
        2,
        "one line per login, none for verify: {lines:#?}"
    );
    let passed = one_line(&lines, &["result=would-refuse"]);
    assert!(passed.starts_with("<85>"), "{passed}");
    assert!(
        passed.contains(&format!(
            "apppw-checkpassword: service=imap user=alice rhost={OFF_IP} result=would-refuse \
             reason=primary-off-campus-refused detail=report-mode;\\x20no\\x20[primary]"
        )),
        "{passed}"
    );
    one_line(&lines, &["result=accepted reason=app-password label=phone"]);

    // Enforce, with an exemption granted by a named admin: its own audit line, then the
    // exempt user's attempts say until when.
    let text = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(&env.config, text.replace("\"report\"", "\"enforce\"")).unwrap();
    let out = std::process::Command::new(apppw_integration_tests::bin("apppw"))
        .args(["--config", &env.config.display().to_string()])
        .args([
            "exempt",
            "bob",
            "--until",
            "30d",
            "--reason",
            "old scanner",
            "--json",
        ])
        .env("SUDO_USER", "helpdesk1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let granted: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let until = granted["until"].as_str().unwrap().to_owned();
    assert_eq!(checkpassword(&env, b"bob", NORMAL, EXCEPT_IP), Some(1));
    assert_eq!(checkpassword(&env, b"alice", NORMAL, EXCEPT_IP), Some(1));
    let lines = syslog.drain();
    let grant = one_line(&lines, &["apppw(exempt):"]);
    assert!(
        grant.contains(&format!(
            "apppw(exempt): admin=helpdesk1 uid=0 user=bob until={until} reason=old\\x20scanner"
        )),
        "{grant}"
    );
    let bob = one_line(&lines, &["user=bob", "result="]);
    assert!(
        bob.contains(&format!(
            "result=would-refuse reason=primary-off-campus-refused detail=exempt-until-{until}"
        )),
        "{bob}"
    );
    let alice = one_line(&lines, &["user=alice"]);
    assert!(
        alice.contains("result=refused reason=primary-off-campus-refused"),
        "{alice}"
    );

    // The PAM module: the same result, the normal-password module decides.
    if pam_wrapper_available("report_mode_and_exemptions_log_would_refuse (PAM part)") {
        let services = ServiceDir::new();
        let apppw = apppw_line(&format!("config={}", env.config.display()));
        let primary = primary_line(services.dir.path(), NORMAL);
        services.add("imap", &[&apppw, &primary]);
        let r = services.authenticate("imap", "bob", Some(OFF_IP), &format!("{NORMAL}\n"), &[]);
        assert_eq!(r.code(), "PAM_SUCCESS", "{}", r.transcript());
        let pam_lines = syslog.drain();
        let line = one_line(&pam_lines, &["pam_apppw(imap:auth)", "user=bob"]);
        assert!(
            line.contains(&format!(
                "pam_apppw(imap:auth): service=imap user=bob rhost={OFF_IP} \
                 result=would-refuse reason=primary-off-campus-refused \
                 detail=exempt-until-{until}"
            )),
            "{line}"
        );
        lines_without_secrets(&pam_lines, &phone, &stored);
    }
    lines_without_secrets(&lines, &phone, &stored);
}

/// No line holds the app password (grouped or not), the normal password or a stored hash.
#[track_caller]
fn lines_without_secrets(lines: &[String], phone: &str, stored: &[u8]) {
    let stored = String::from_utf8_lossy(stored);
    let hashes: Vec<&str> = stored
        .split(|c: char| c == '\'' || c == '|' || c.is_whitespace() || c == '\0')
        .filter(|s| s.starts_with("$argon2id$"))
        .collect();
    let compact: String = phone.split_whitespace().collect();
    for line in lines {
        assert!(!line.contains(phone) && !line.contains(&compact), "{line}");
        assert!(!line.contains(NORMAL), "{line}");
        assert!(!line.contains("$argon2id$"), "{line}");
        for h in &hashes {
            assert!(!line.contains(h), "{line}");
        }
    }
}
