//! A real Dovecot 2.4 (Debian 13's 2.4.1, in a jail on the cached trixie root: see
//! `tests/src/trixie.rs`) with the shipped `packaging/examples/dovecot-2.4/auth-apppw-pam.conf.ext`
//! and `packaging/examples/pam.d/dovecot`, both unchanged, and the real `pam_unix.so` for the
//! normal password of a system user inside the jail. The same outcomes as on 2.3
//! (`dovecot_pam.rs`), through `doveadm auth test -x rip=IP`, real IMAP logins over TCP, and
//! Postfix SMTP AUTH through Dovecot 2.4's SASL socket; and with Dovecot's auth cache on.
//!
//! Needs root and the root made by `scripts/trixie-root.sh`; prints SKIP otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use apppw_integration_tests::dovecot::Imap;
use apppw_integration_tests::postfix::{self, Postfix};
use apppw_integration_tests::trixie::{self, Dovecot24, Example, Options, jail_with_build};
use apppw_integration_tests::{CAMPUS_IP, EXCEPT_IP, OFF_IP, TestEnv};

const USER: &str = "alice";
const NORMAL: &str = "Normal-Pass-2026";
/// Off campus, IPv6.
const OFF_V6: &str = "2001:db9::1";
/// On campus, IPv6.
const CAMPUS_V6: &str = "2001:db8::7";

macro_rules! require_trixie {
    ($name:literal) => {
        if !trixie::available($name) {
            return;
        }
    };
}

fn check(d: &Dovecot24, password: &str, rip: &str, accepted: bool, what: &str) {
    assert_eq!(
        d.accepts(rip, USER, password),
        accepted,
        "{what} from {rip}\n{}",
        d.log()
    );
}

#[test]
fn dovecot_24_enforces_the_campus_rule() {
    require_trixie!("dovecot_24_enforces_the_campus_rule");
    let env = TestEnv::new("");
    let jail = jail_with_build(&env, USER, NORMAL);
    let d = Dovecot24::start(&jail, Options::default());
    let version = jail.sh("dovecot --version");
    assert!(version.starts_with("2.4"), "{version}");
    let app = env.create(USER, "phone", &[]);

    for ip in [OFF_IP, CAMPUS_IP, EXCEPT_IP, OFF_V6, "::ffff:203.0.113.9"] {
        check(&d, &app, ip, true, "app password");
    }
    for ip in [CAMPUS_IP, "::ffff:192.0.2.10", CAMPUS_V6] {
        check(
            &d,
            NORMAL,
            ip,
            true,
            "normal password (pam_unix decides on campus)",
        );
    }
    for ip in [
        OFF_IP,
        EXCEPT_IP,
        OFF_V6,
        "::ffff:203.0.113.9",
        "::ffff:192.0.2.200",
    ] {
        check(&d, NORMAL, ip, false, "normal password");
    }
    check(&d, "Wrong-password", CAMPUS_IP, false, "wrong password");

    // Real IMAP logins, the client address forwarded with IMAP ID.
    assert_eq!(
        d.imap_login(Some(OFF_IP), USER, &app),
        Imap::LoggedIn,
        "{}",
        d.log()
    );
    assert!(matches!(
        d.imap_login(Some(OFF_IP), USER, NORMAL),
        Imap::Refused(_)
    ));
    assert!(matches!(
        d.imap_login(Some(EXCEPT_IP), USER, NORMAL),
        Imap::Refused(_)
    ));
    assert_eq!(
        d.imap_login(Some(CAMPUS_IP), USER, NORMAL),
        Imap::LoggedIn,
        "{}",
        d.log()
    );
    // Not forwarded: the connection's own address, 127.0.0.1, is off campus.
    assert!(matches!(d.imap_login(None, USER, NORMAL), Imap::Refused(_)));
    assert_eq!(d.imap_login(None, USER, &app), Imap::LoggedIn);
    // 2.4 words it "Logged in" (2.3: "Login").
    let logged_in = format!("Logged in: user=<{USER}>, method=PLAIN, rip={OFF_IP}");
    let log = d.log_with(&logged_in);
    assert!(log.contains(&logged_in), "{log}");

    // The use is recorded with the address Dovecot 2.4 passed as PAM_RHOST.
    let out = env.apppw(&["list", USER, "--json"], "");
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list[0]["last_used_ip"], "127.0.0.1", "{list}");
    assert_eq!(list[0]["last_used_service"], "imap", "{list}");

    // Expired and service-scoped app passwords.
    let old = env.create(USER, "old", &["--expires", "1h"]);
    check(&d, &old, OFF_IP, true, "app password before its expiry");
    env.sql(r#"UPDATE app_passwords SET expires_at = 1 WHERE "user" = 'alice' AND label = 'old'"#);
    check(&d, &old, OFF_IP, false, "expired app password");
    let smtp_only = env.create(USER, "mailer", &["--services", "smtp"]);
    check(
        &d,
        &smtp_only,
        OFF_IP,
        false,
        "smtp-only app password for imap",
    );
    assert_eq!(
        d.auth_test("smtp", OFF_IP, USER, &smtp_only),
        0,
        "{}",
        d.log()
    );

    // Revocation: refused at the very next attempt, IMAP included.
    let out = env.apppw(&["revoke", USER, "phone"], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    check(&d, &app, OFF_IP, false, "revoked app password");
    assert!(matches!(
        d.imap_login(Some(OFF_IP), USER, &app),
        Imap::Refused(_)
    ));

    let log = d.log();
    assert!(
        !log.contains(NORMAL) && !log.contains(&app),
        "a password in Dovecot's log"
    );
}

#[test]
fn dovecot_24_store_unavailable_is_a_temporary_failure() {
    require_trixie!("dovecot_24_store_unavailable_is_a_temporary_failure");
    let env = TestEnv::new("");
    if env.skip_unless_sqlite("dovecot_24_store_unavailable_is_a_temporary_failure") {
        return;
    }
    let jail = jail_with_build(&env, USER, NORMAL);
    let app = env.create(USER, "phone", &[]);
    let d = Dovecot24::start(&jail, Options::default());
    check(&d, &app, OFF_IP, true, "app password");

    // A new file in its place: the auth worker's kept connection belongs to the old one.
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", env.db.display()));
    }
    std::fs::remove_file(&env.db).unwrap();
    std::fs::write(&env.db, vec![0x5a; 8192]).unwrap();
    check(&d, &app, OFF_IP, false, "app password, store unusable");
    // Dovecot's passdb pam reports every PAM failure to the client as a wrong password; the
    // PAM code in its log tells the temporary failure apart.
    let unavailable =
        "pam_authenticate() failed: Authentication service cannot retrieve authentication info";
    let log = d.log_with(unavailable);
    assert!(log.contains(unavailable), "{log}");
    // On campus the normal password does not need the store.
    check(
        &d,
        NORMAL,
        CAMPUS_IP,
        true,
        "normal password on campus, store unusable",
    );
    check(
        &d,
        NORMAL,
        OFF_IP,
        false,
        "normal password off campus, store unusable",
    );
}

#[test]
fn postfix_smtp_auth_through_dovecot_24_sasl() {
    let test = "postfix_smtp_auth_through_dovecot_24_sasl";
    if !trixie::available(test) || !postfix::available(test) {
        return;
    }
    let env = TestEnv::new("");
    let jail = jail_with_build(&env, USER, NORMAL);
    let d = Dovecot24::start(
        &jail,
        Options {
            postfix_socket: true,
            ..Options::default()
        },
    );
    let postfix = Postfix::start(env.dir.path(), &jail.share().join("postfix-auth"));
    let app = env.create(USER, "phone", &["--services", "smtp"]);
    let smtp = |xclient: Option<&str>, password: &str, accepted: bool, what: &str| {
        let (code, replies) = postfix.auth_plain(xclient, USER, password);
        let expected = if accepted { (0, "235 ") } else { (28, "535 ") };
        assert!(
            code == expected.0 && replies.contains(expected.1),
            "{what}: swaks exit {code}\n{replies}\n{}\n{}",
            postfix.log_text(),
            d.log()
        );
    };
    // The SMTP client is 127.0.0.1: off campus.
    smtp(None, &app, true, "app password (smtp only) from off campus");
    smtp(None, NORMAL, false, "normal password from off campus");
    smtp(
        Some(EXCEPT_IP),
        NORMAL,
        false,
        "normal password from an except network",
    );
    smtp(Some(CAMPUS_IP), NORMAL, true, "normal password from campus");
    smtp(
        Some(OFF_IP),
        &app,
        true,
        "app password from off campus via XCLIENT",
    );
    // The address Postfix learned from XCLIENT is the one PAM decided on.
    let worker = format!("auth-worker({USER},{EXCEPT_IP})");
    let log = d.log_with(&worker);
    assert!(log.contains(&worker), "{log}");
}

/// What many sites do for speed: `auth_cache_size` set. With the shipped example the campus
/// rule and revocation still hold at the very next attempt.
#[test]
fn dovecot_24_cache_on_keeps_the_campus_rule() {
    require_trixie!("dovecot_24_cache_on_keeps_the_campus_rule");
    let env = TestEnv::new("");
    let jail = jail_with_build(&env, USER, NORMAL);
    let d = Dovecot24::start(
        &jail,
        Options {
            cache: true,
            ..Options::default()
        },
    );
    let app = env.create(USER, "phone", &[]);
    check(&d, NORMAL, CAMPUS_IP, true, "normal password on campus");
    check(
        &d,
        NORMAL,
        CAMPUS_IP,
        true,
        "normal password on campus, again",
    );
    check(
        &d,
        NORMAL,
        OFF_IP,
        false,
        "normal password after a campus success",
    );
    check(
        &d,
        NORMAL,
        EXCEPT_IP,
        false,
        "normal password after a campus success",
    );
    check(
        &d,
        NORMAL,
        OFF_V6,
        false,
        "normal password after a campus success",
    );
    check(&d, &app, OFF_IP, true, "app password");
    check(&d, &app, OFF_IP, true, "app password, again");
    // Revoked without touching the cache: refused all the same.
    let out = env.apppw(&["revoke", USER, "phone"], "");
    assert!(out.status.success());
    check(&d, &app, OFF_IP, false, "revoked app password");
}

/// A site that copied the old 2.4 example (`passdb pam` without `use_cache = no`) and set
/// `auth_cache_size`: the cache answers without asking PAM. This shows the hole the shipped
/// example closes (so the test above can fail), and that `apppw revoke`'s flush still makes a
/// revocation hold there.
#[test]
fn dovecot_24_old_example_with_cache_and_the_revoke_flush() {
    require_trixie!("dovecot_24_old_example_with_cache_and_the_revoke_flush");
    let env = TestEnv::new("");
    let jail = jail_with_build(&env, USER, NORMAL);
    // The old example: cached with Dovecot's default key (user and service, no address).
    jail.write(
        "/etc/dovecot/conf.d/auth-apppw-pam.conf.ext",
        "passdb pam {\n  service_name = %{protocol}\n}\nuserdb passwd {\n}\n",
    );
    let d = Dovecot24::start(
        &jail,
        Options {
            cache: true,
            example: Example::InPlace,
            ..Options::default()
        },
    );
    check(&d, NORMAL, CAMPUS_IP, true, "normal password on campus");
    check(
        &d,
        NORMAL,
        OFF_IP,
        true,
        "normal password off campus, from the cache (the hole)",
    );

    // Dovecot caches the last successful password per user and service. Without the flush,
    // the revoked app password is served from the cache.
    let app = env.create(USER, "phone", &[]);
    check(&d, &app, OFF_IP, true, "app password");
    let no_flush = jail_config(&env, "[dovecot]\nflush_auth_cache = false\n");
    let out = jail
        .command("apppw")
        .args(["--config", &no_flush, "revoke", USER, "phone"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("flushed"));
    check(
        &d,
        &app,
        OFF_IP,
        true,
        "revoked app password, cache not flushed (the hole)",
    );

    // With the default (doveadm is installed): flushed, refused at the next attempt.
    let laptop = env.create(USER, "laptop", &[]);
    check(&d, &laptop, OFF_IP, true, "second app password");
    let out = jail
        .command("apppw")
        .args(["revoke", USER, "laptop"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("flushed {USER} from Dovecot's auth cache")),
        "{stdout}"
    );
    check(
        &d,
        &laptop,
        OFF_IP,
        false,
        "revoked app password after the flush",
    );
}

/// A config for the jail's `apppw`: the test's config plus `extra`, written next to it.
fn jail_config(env: &TestEnv, extra: &str) -> String {
    let path = env.dir.path().join("apppw-extra.toml");
    let text = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(&path, format!("{text}\n{extra}")).unwrap();
    path.display().to_string()
}
