//! A real Dovecot 2.3 with `apppw-checkpassword` as passdb: `doveadm auth test` with a chosen
//! client address, and real IMAP logins over TCP (the client address forwarded with IMAP ID
//! from a trusted loopback connection). The normal password is checked on campus by a
//! `pam_matrix`-backed PAM service, in Dovecot's unprivileged auth process.
//!
//! Needs root and dovecot-core + dovecot-imapd; prints a SKIP line otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use apppw_integration_tests::dovecot::{self, Dovecot, Imap, PamService, Userdb};
use apppw_integration_tests::{CAMPUS_IP, EXCEPT_IP, OFF_IP, TestEnv};

const NORMAL_PW: &str = "Winter2026!";

/// A config with a primary PAM service accepting alice's normal password, alice's app
/// password, and a running Dovecot.
struct Site {
    dovecot: Dovecot,
    env: TestEnv,
    app_pw: String,
    _pam: PamService,
}

impl Site {
    fn start(userdb: Userdb) -> Site {
        let pam = PamService::matrix(&[("alice", NORMAL_PW)]);
        let env = TestEnv::new(&pam.toml());
        let app_pw = env.create("alice", "phone", &[]);
        dovecot::share_with_dovecot(&env);
        let dovecot = Dovecot::start(&env.config, userdb);
        Site {
            dovecot,
            env,
            app_pw,
            _pam: pam,
        }
    }
}

macro_rules! require_dovecot {
    ($name:literal) => {
        if !dovecot::available($name) {
            return;
        }
    };
}

#[test]
fn doveadm_auth_test_follows_the_campus_policy() {
    require_dovecot!("doveadm_auth_test_follows_the_campus_policy");
    let site = Site::start(Userdb::Static);
    let d = &site.dovecot;
    let pw = site.app_pw.as_str();

    // App password: accepted from anywhere.
    for ip in [
        OFF_IP,
        CAMPUS_IP,
        EXCEPT_IP,
        "::ffff:192.0.2.200",
        "2001:db8::7",
    ] {
        assert!(
            d.accepts(ip, "alice", pw),
            "app password from {ip}\n{}",
            d.log()
        );
    }
    // Normal password: only on campus, IPv4-mapped IPv6 included; eduroam-style except
    // addresses are off campus.
    assert!(d.accepts(CAMPUS_IP, "alice", NORMAL_PW), "{}", d.log());
    assert!(
        d.accepts("::ffff:192.0.2.10", "alice", NORMAL_PW),
        "{}",
        d.log()
    );
    assert!(d.accepts("2001:db8::7", "alice", NORMAL_PW), "{}", d.log());
    for ip in [
        OFF_IP,
        EXCEPT_IP,
        "::ffff:192.0.2.200",
        "::ffff:203.0.113.9",
        "2001:db9::1",
    ] {
        assert!(
            !d.accepts(ip, "alice", NORMAL_PW),
            "normal password from {ip}"
        );
    }
    // Wrong passwords and unknown users, on and off campus.
    assert!(!d.accepts(CAMPUS_IP, "alice", "Winter2025!"));
    assert!(!d.accepts(CAMPUS_IP, "mallory", NORMAL_PW));
    assert!(!d.accepts(OFF_IP, "mallory", pw));

    // Other services reach the same passdb.
    let out = d.auth_test("smtp", OFF_IP, "alice", pw);
    assert_eq!(out.status.code(), Some(0));
    let out = d.auth_test("pop3", OFF_IP, "alice", NORMAL_PW);
    assert_eq!(out.status.code(), Some(77));

    // Dovecot saw status 1 for the refusals, never an internal failure.
    let log = d.log();
    assert!(log.contains("Login failed (status=1)"), "{log}");
    assert!(!log.contains("exited with status"), "{log}");
    assert!(
        !log.contains(NORMAL_PW) && !log.contains(pw),
        "password in the log"
    );
}

#[test]
fn real_imap_logins() {
    require_dovecot!("real_imap_logins");
    let site = Site::start(Userdb::Static);
    let d = &site.dovecot;
    let pw = site.app_pw.as_str();

    assert_eq!(
        d.imap_login(Some(OFF_IP), "alice", pw),
        Imap::LoggedIn,
        "{}",
        d.log()
    );
    assert!(matches!(
        d.imap_login(Some(OFF_IP), "alice", NORMAL_PW),
        Imap::Refused(_)
    ));
    assert_eq!(
        d.imap_login(Some(CAMPUS_IP), "alice", NORMAL_PW),
        Imap::LoggedIn,
        "{}",
        d.log()
    );
    assert_eq!(
        d.imap_login(Some("::ffff:192.0.2.10"), "alice", NORMAL_PW),
        Imap::LoggedIn,
        "{}",
        d.log()
    );
    assert!(matches!(
        d.imap_login(Some(EXCEPT_IP), "alice", NORMAL_PW),
        Imap::Refused(_)
    ));
    assert_eq!(d.imap_login(Some(EXCEPT_IP), "alice", pw), Imap::LoggedIn);
    // The connection's own address (127.0.0.1, not forwarded) is off campus.
    assert!(matches!(
        d.imap_login(None, "alice", NORMAL_PW),
        Imap::Refused(_)
    ));
    assert_eq!(d.imap_login(None, "alice", pw), Imap::LoggedIn);

    let log = d.log();
    assert!(
        log.contains("Login: user=<alice>, method=PLAIN, rip=203.0.113.9"),
        "{log}"
    );
    assert!(log.contains("rip=::ffff:192.0.2.10"), "{log}");
}

#[test]
fn revoked_app_password_is_refused_on_the_very_next_attempt() {
    require_dovecot!("revoked_app_password_is_refused_on_the_very_next_attempt");
    let site = Site::start(Userdb::Static);
    let d = &site.dovecot;
    let pw = site.app_pw.as_str();
    let second = site.env.create("alice", "laptop", &[]);

    assert!(d.accepts(OFF_IP, "alice", pw));
    assert_eq!(d.imap_login(Some(OFF_IP), "alice", pw), Imap::LoggedIn);
    let out = site.env.apppw(&["revoke", "alice", "phone"], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!d.accepts(OFF_IP, "alice", pw), "revoked, yet accepted");
    assert!(matches!(
        d.imap_login(Some(OFF_IP), "alice", pw),
        Imap::Refused(_)
    ));
    // The user's other app password is untouched.
    assert!(d.accepts(OFF_IP, "alice", &second));

    // Last use was recorded by the dovecot user (database shared as documented).
    let out = site.env.apppw(&["list", "alice", "--json"], "");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["label"], "laptop");
    assert_eq!(v[0]["last_used_ip"], OFF_IP, "{v}");
    assert_eq!(v[0]["last_used_service"], "imap", "{v}");
}

#[test]
fn lookup_mode_serves_as_userdb() {
    require_dovecot!("lookup_mode_serves_as_userdb");
    let site = Site::start(Userdb::Checkpassword);
    let d = &site.dovecot;

    let out = d.doveadm(&["user", "alice"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        d.log()
    );
    let fields = String::from_utf8_lossy(&out.stdout);
    assert!(
        fields.contains("home") && fields.contains("/home/alice"),
        "{fields}"
    );

    let out = d.doveadm(&["user", "bob"]);
    assert_eq!(
        out.status.code(),
        Some(67),
        "unknown user: {}",
        String::from_utf8_lossy(&out.stdout)
    );

    // A passdb lookup (no password) finds the user but authenticates nobody.
    let out = d.doveadm(&["auth", "lookup", "alice"]);
    assert_eq!(out.status.code(), Some(0), "{}", d.log());

    // The whole chain: passdb + checkpassword userdb + mail process.
    assert_eq!(
        d.imap_login(Some(OFF_IP), "alice", &site.app_pw),
        Imap::LoggedIn,
        "{}",
        d.log()
    );
    assert!(matches!(
        d.imap_login(Some(OFF_IP), "alice", NORMAL_PW),
        Imap::Refused(_)
    ));
}

#[test]
fn store_failure_is_a_temporary_failure_in_dovecot() {
    require_dovecot!("store_failure_is_a_temporary_failure_in_dovecot");
    let site = Site::start(Userdb::Static);
    if site
        .env
        .skip_unless_sqlite("store_failure_is_a_temporary_failure_in_dovecot")
    {
        return;
    }
    let d = &site.dovecot;
    let pw = site.app_pw.as_str();

    std::fs::write(&site.env.db, vec![0x5a; 8192]).unwrap();
    let out = d.auth_test("imap", OFF_IP, "alice", pw);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("temp_fail"),
        "{:?}",
        out
    );
    assert!(matches!(
        d.imap_login(Some(OFF_IP), "alice", pw),
        Imap::Refused(_)
    ));
    // On campus the normal password is still checked by PAM (documented fallback).
    assert!(d.accepts(CAMPUS_IP, "alice", NORMAL_PW));
    let log = d.log();
    assert!(log.contains("apppw-checkpassword: database"), "{log}");
    assert!(log.contains("exited with status 111"), "{log}");
}

/// With Dovecot's auth cache on (`auth_cache_size`, as many sites set it): a normal password
/// that succeeded on campus is still refused off campus, from an except network and over
/// IPv6, and a revocation holds at the next attempt (2.3 never caches `passdb checkpassword`).
#[test]
fn cache_on_keeps_the_campus_rule_and_revocation() {
    require_dovecot!("cache_on_keeps_the_campus_rule_and_revocation");
    let pam = PamService::matrix(&[("alice", NORMAL_PW)]);
    let env = TestEnv::new(&pam.toml());
    let app_pw = env.create("alice", "phone", &[]);
    dovecot::share_with_dovecot(&env);
    let d = Dovecot::start_with(
        &env.config,
        Userdb::Static,
        "auth_cache_size = 1M\nauth_cache_ttl = 1 hours\n",
    );
    assert!(d.accepts(CAMPUS_IP, "alice", NORMAL_PW), "{}", d.log());
    assert!(d.accepts(CAMPUS_IP, "alice", NORMAL_PW), "{}", d.log());
    for ip in [OFF_IP, EXCEPT_IP, "2001:db9::1"] {
        assert!(
            !d.accepts(ip, "alice", NORMAL_PW),
            "normal password from {ip} after a campus success\n{}",
            d.log()
        );
    }
    assert!(d.accepts(OFF_IP, "alice", &app_pw));
    assert!(d.accepts(OFF_IP, "alice", &app_pw));
    let out = env.apppw(&["revoke", "alice", "phone"], "");
    assert!(out.status.success());
    assert!(
        !d.accepts(OFF_IP, "alice", &app_pw),
        "revoked, yet accepted"
    );
}
