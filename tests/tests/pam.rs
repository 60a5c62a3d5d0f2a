//! `pam_apppw.so` in a real Linux-PAM stack, unprivileged: pamtester under pam_wrapper.
//!
//! Stack under test (the documented one, with a `pam_exec` script standing in for
//! `pam_unix.so try_first_pass`; it accepts only [`NORMAL`]):
//!
//! ```text
//! auth [success=done ignore=ignore default=die] libpam_apppw.so config=...
//! auth required pam_exec.so expose_authtok quiet check-primary
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use apppw_integration_tests::pam::{
    PamResult, ServiceDir, WRAPPER_MODULES, apppw_line, harness_failed, module,
    pam_wrapper_available, primary_line, short_lived_run, system_module,
};
use apppw_integration_tests::{CAMPUS_IP, EXCEPT_IP, OFF_IP, TestEnv, run_with_stdin};
use std::path::Path;

const NORMAL: &str = "Winter-2026-normal";

/// A config, a service dir with `imap` and `smtp` using the documented stack.
struct Setup {
    env: TestEnv,
    services: ServiceDir,
}

impl Setup {
    fn new() -> Setup {
        Setup::with_config("")
    }

    /// `extra` is appended to the test config.
    fn with_config(extra: &str) -> Setup {
        let env = TestEnv::new(extra);
        let services = ServiceDir::new();
        let apppw = apppw_line(&format!("config={}", env.config.display()));
        let primary = primary_line(services.dir.path(), NORMAL);
        for name in ["imap", "smtp"] {
            services.add(name, &[&apppw, &primary]);
        }
        Setup { env, services }
    }

    fn login(&self, service: &str, rhost: Option<&str>, password: &str) -> PamResult {
        self.services
            .authenticate(service, "alice", rhost, &format!("{password}\n"), &[])
    }
}

fn expect(result: &PamResult, code: &str, what: &str) {
    assert_eq!(result.code(), code, "{what}\n{}", result.transcript());
}

macro_rules! require_pam_wrapper {
    ($name:expr) => {
        if !pam_wrapper_available($name) {
            return;
        }
    };
}

#[test]
fn app_password_accepted_from_anywhere_prompting_once() {
    require_pam_wrapper!("app_password_accepted_from_anywhere_prompting_once");
    let s = Setup::new();
    let pw = s.env.create("alice", "phone", &[]);
    for rhost in [
        Some(OFF_IP),
        Some(CAMPUS_IP),
        Some(EXCEPT_IP),
        None,
        Some("mail.example.org"),
    ] {
        let r = s.login("imap", rhost, &pw);
        expect(&r, "PAM_SUCCESS", &format!("app password from {rhost:?}"));
        assert_eq!(r.prompts(), 1, "{}", r.transcript());
    }
    // Typed on a phone: upper case, dashes instead of spaces.
    let r = s.login("imap", Some(OFF_IP), &pw.to_uppercase().replace(' ', "-"));
    expect(&r, "PAM_SUCCESS", "app password typed differently");

    // The use is recorded with the client address and the PAM service.
    let out = s.env.apppw(&["list", "alice", "--json"], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list[0]["last_used_service"], "imap", "{list}");
    assert_eq!(list[0]["last_used_ip"], OFF_IP, "{list}");
}

#[test]
fn normal_password_only_from_campus_and_asked_for_once() {
    require_pam_wrapper!("normal_password_only_from_campus_and_asked_for_once");
    let s = Setup::new();
    s.env.create("alice", "phone", &[]);

    // Exactly one line on stdin: the second module must reuse PAM_AUTHTOK, or it would hit
    // end of input and fail.
    let r = s.login("imap", Some(CAMPUS_IP), NORMAL);
    expect(&r, "PAM_SUCCESS", "normal password on campus");
    assert_eq!(r.prompts(), 1, "asked for twice:\n{}", r.transcript());
    let r = s.login("imap", Some("::ffff:192.0.2.10"), NORMAL);
    expect(&r, "PAM_SUCCESS", "normal password on campus, IPv4-mapped");

    // On campus, a wrong password is refused by the second module.
    expect(
        &s.login("imap", Some(CAMPUS_IP), "Wrong-password"),
        "PAM_SYSTEM_ERR",
        "wrong on campus",
    );

    for rhost in [
        Some(EXCEPT_IP),
        Some(OFF_IP),
        Some("campus-gw.example.org"),
        Some(""),
        None,
    ] {
        let r = s.login("imap", rhost, NORMAL);
        expect(
            &r,
            "PAM_AUTH_ERR",
            &format!("normal password from {rhost:?}"),
        );
        assert_eq!(r.prompts(), 1);
    }
}

#[test]
fn password_set_by_an_earlier_module_is_reused() {
    require_pam_wrapper!("password_set_by_an_earlier_module_is_reused");
    let s = Setup::new();
    let pw = s.env.create("alice", "phone", &[]);
    // pam_set_items.so copies PAM_AUTHTOK from the environment into the PAM item.
    let set_items = format!("auth optional {WRAPPER_MODULES}/pam_set_items.so");
    let apppw = apppw_line(&format!("config={}", s.env.config.display()));
    let primary = primary_line(s.services.dir.path(), NORMAL);
    s.services.add("preset", &[&set_items, &apppw, &primary]);

    for (rhost, token, code) in [
        (OFF_IP, pw.as_str(), "PAM_SUCCESS"),
        (CAMPUS_IP, NORMAL, "PAM_SUCCESS"),
        (OFF_IP, NORMAL, "PAM_AUTH_ERR"),
    ] {
        let r = s.services.authenticate(
            "preset",
            "alice",
            Some(rhost),
            "",
            &[("PAM_AUTHTOK", token)],
        );
        expect(&r, code, &format!("preset token from {rhost}"));
        assert_eq!(
            r.prompts(),
            0,
            "prompted although PAM_AUTHTOK was set:\n{}",
            r.transcript()
        );
    }
}

#[test]
fn expired_restricted_wrong_and_revoked_app_passwords() {
    require_pam_wrapper!("expired_restricted_wrong_and_revoked_app_passwords");
    let s = Setup::new();
    let phone = s.env.create("alice", "phone", &[]);
    let old = s.env.create("alice", "old", &["--expires", "30d"]);
    let printer = s.env.create("alice", "printer", &["--services", "smtp"]);
    let bobs = s.env.create("bob", "laptop", &[]);

    // Expire "old" now (the CLI only creates future expiries).
    let n = s
        .env
        // `"user"`: unquoted, PostgreSQL reads `user` as CURRENT_USER.
        .sql(r#"UPDATE app_passwords SET expires_at = 1 WHERE "user" = 'alice' AND label = 'old'"#);
    assert_eq!(n, 1);

    expect(
        &s.login("imap", Some(OFF_IP), &old),
        "PAM_AUTH_ERR",
        "expired",
    );
    // On campus an expired app password is not the normal password either.
    expect(
        &s.login("imap", Some(CAMPUS_IP), &old),
        "PAM_SYSTEM_ERR",
        "expired on campus",
    );
    expect(
        &s.login("imap", Some(OFF_IP), &printer),
        "PAM_AUTH_ERR",
        "smtp-only on imap",
    );
    expect(
        &s.login("smtp", Some(OFF_IP), &printer),
        "PAM_SUCCESS",
        "smtp-only on smtp",
    );
    expect(
        &s.login("imap", Some(OFF_IP), &bobs),
        "PAM_AUTH_ERR",
        "bob's password for alice",
    );
    let wrong = format!("{}zzzz zzzz zzzz zzzz zzzz", &phone[..5]);
    expect(
        &s.login("imap", Some(OFF_IP), &wrong),
        "PAM_AUTH_ERR",
        "right tag, wrong secret",
    );

    expect(
        &s.login("imap", Some(OFF_IP), &phone),
        "PAM_SUCCESS",
        "before revoke",
    );
    let out = s.env.apppw(&["revoke", "alice", "phone"], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    expect(
        &s.login("imap", Some(OFF_IP), &phone),
        "PAM_AUTH_ERR",
        "right after revoke",
    );
}

#[test]
fn broken_configuration_refuses_everything_without_crashing() {
    require_pam_wrapper!("broken_configuration_refuses_everything_without_crashing");
    let s = Setup::new();
    let pw = s.env.create("alice", "phone", &[]);
    let dir = s.services.dir.path();
    let primary = primary_line(dir, NORMAL);
    let invalid = dir.join("invalid.toml");
    std::fs::write(
        &invalid,
        "[network]\ncampus = [\"192.0.2.0/24\"]\ncampsu = []\n",
    )
    .unwrap();
    let config = format!("config={}", s.env.config.display());

    let stacks = [
        ("unknown-arg", format!("{config} debug")),
        ("typo-arg", format!("conifg={}", s.env.config.display())),
        (
            "missing-config",
            format!("config={}", dir.join("nope.toml").display()),
        ),
        ("invalid-config", format!("config={}", invalid.display())),
        ("twice", format!("{config} {config}")),
    ];
    for (name, args) in &stacks {
        s.services.add(name, &[&apppw_line(args), &primary]);
        // Neither the app password nor, on campus, the normal password gets through.
        for (rhost, password) in [(OFF_IP, pw.as_str()), (CAMPUS_IP, NORMAL)] {
            let r =
                s.services
                    .authenticate(name, "alice", Some(rhost), &format!("{password}\n"), &[]);
            expect(&r, "PAM_SERVICE_ERR", &format!("{name} from {rhost}"));
            assert_eq!(
                r.prompts(),
                0,
                "{name}: asked for a password it cannot check"
            );
        }
    }
}

#[test]
fn missing_or_corrupt_database() {
    require_pam_wrapper!("missing_or_corrupt_database");
    let s = Setup::new();
    if s.env.skip_unless_sqlite("missing_or_corrupt_database") {
        return;
    }
    let pw = "abcd efgh ijkl mnop qrst uvwx";
    assert!(!s.env.db.exists());
    // Off campus nobody can be let in: temporary failure. On campus the normal password still
    // works (the app passwords are unreachable, campus is known from the config).
    expect(
        &s.login("imap", Some(OFF_IP), pw),
        "PAM_AUTHINFO_UNAVAIL",
        "missing db, off campus",
    );
    expect(
        &s.login("imap", Some(OFF_IP), NORMAL),
        "PAM_AUTH_ERR",
        "missing db, normal off campus",
    );
    expect(
        &s.login("imap", Some(CAMPUS_IP), NORMAL),
        "PAM_SUCCESS",
        "missing db, normal on campus",
    );

    std::fs::write(&s.env.db, vec![b'x'; 8192]).unwrap();
    expect(
        &s.login("imap", Some(OFF_IP), pw),
        "PAM_AUTHINFO_UNAVAIL",
        "corrupt db",
    );
    expect(
        &s.login("imap", Some(CAMPUS_IP), pw),
        "PAM_SYSTEM_ERR",
        "corrupt db, on campus",
    );
}

/// Local root through the environment: su, sudo and login run PAM modules with the caller's
/// environment. A local user points `APPPW_CONFIG` at a config and a database of their own,
/// holding an app password for the target user; the service has no `config=`. The module
/// must use /etc/apppw/apppw.toml (here: absent, so the stack ends), never the caller's file.
#[test]
fn apppw_config_in_the_environment_is_ignored() {
    require_pam_wrapper!("apppw_config_in_the_environment_is_ignored");
    let services = ServiceDir::new();
    // The attacker's files: everything in them is theirs to choose.
    let attacker = TestEnv::sqlite("[argon2]\nmemory_kib = 1024\niterations = 1\n");
    let pw = attacker.create("root", "mine", &[]);
    let primary = primary_line(services.dir.path(), NORMAL);
    services.add("noarg", &[&apppw_line(""), &primary]);
    let config = attacker.config.to_str().unwrap();
    let r = services.authenticate(
        "noarg",
        "root",
        Some(OFF_IP),
        &format!("{pw}\n"),
        &[("APPPW_CONFIG", config)],
    );
    assert_ne!(r.code(), "PAM_SUCCESS", "{}", r.transcript());
    if !Path::new("/etc/apppw/apppw.toml").exists() {
        expect(
            &r,
            "PAM_SERVICE_ERR",
            "APPPW_CONFIG set, no config at the default path",
        );
        assert_eq!(r.prompts(), 0, "{}", r.transcript());
    }
    // The same files named by the admin in the service file are used: the password is right.
    services.add(
        "named",
        &[&apppw_line(&format!("config={config}")), &primary],
    );
    let r = services.authenticate("named", "root", Some(OFF_IP), &format!("{pw}\n"), &[]);
    expect(&r, "PAM_SUCCESS", "config= names the same file");
}

#[test]
fn oversized_and_malformed_input_is_refused_on_campus_too() {
    require_pam_wrapper!("oversized_and_malformed_input_is_refused_on_campus_too");
    let s = Setup::new();
    s.env.create("alice", "phone", &[]);
    // A terminal conversation cuts answers at 512 bytes, so the long token is set directly.
    let set_items = format!("auth optional {WRAPPER_MODULES}/pam_set_items.so");
    let apppw = apppw_line(&format!("config={}", s.env.config.display()));
    let primary = primary_line(s.services.dir.path(), NORMAL);
    s.services.add("preset", &[&set_items, &apppw, &primary]);
    let long = "a".repeat(1025);
    let r = s.services.authenticate(
        "preset",
        "alice",
        Some(CAMPUS_IP),
        "",
        &[("PAM_AUTHTOK", &long)],
    );
    expect(&r, "PAM_AUTH_ERR", "1025-byte password");

    let r = s.services.authenticate(
        "imap",
        "ali\tce",
        Some(CAMPUS_IP),
        &format!("{NORMAL}\n"),
        &[],
    );
    expect(&r, "PAM_AUTH_ERR", "control character in user name");
}

#[test]
fn cool_down_after_failed_app_passwords_spares_the_normal_password() {
    require_pam_wrapper!("cool_down_after_failed_app_passwords_spares_the_normal_password");
    let s = Setup::with_config("[lockout]\nmax_failures_per_client = 3\n");
    let pw = s.env.create("alice", "phone", &[]);
    let guess = "abcd efgh ijkl mnop qrst uvwx";
    for _ in 0..3 {
        expect(
            &s.login("imap", Some(OFF_IP), guess),
            "PAM_AUTH_ERR",
            "guess",
        );
        // On campus the failed guess goes on to the normal-password module, which refuses it.
        expect(
            &s.login("imap", Some(CAMPUS_IP), guess),
            "PAM_SYSTEM_ERR",
            "guess on campus",
        );
    }
    expect(
        &s.login("imap", Some(OFF_IP), &pw),
        "PAM_AUTH_ERR",
        "right password, cooling down",
    );
    expect(
        &s.login("imap", Some("198.51.100.7"), &pw),
        "PAM_SUCCESS",
        "from another address",
    );
    expect(
        &s.login("imap", Some(CAMPUS_IP), NORMAL),
        "PAM_SUCCESS",
        "normal password on campus",
    );
}

/// `pam_sm_setcred` returns PAM_SUCCESS and account management PAM_IGNORE (SPEC). Each is
/// checked with control flags that fail the stack on any other answer, and against
/// `pam_permit`/`pam_deny` in the same place to show the check can fail.
#[test]
fn setcred_succeeds_and_account_management_is_ignored() {
    require_pam_wrapper!("setcred_succeeds_and_account_management_is_ignored");
    let env = TestEnv::new("");
    let services = ServiceDir::new();
    let apppw = format!("{} config={}", module().display(), env.config.display());
    let permit = system_module("pam_permit.so").display().to_string();
    let deny = system_module("pam_deny.so").display().to_string();
    let run = |service: &str, op: &str| {
        let r = services.run(service, "alice", Some(OFF_IP), "", &[], &[op]);
        (r.0.status.code(), r.transcript())
    };

    // Only PAM_IGNORE lets pam_permit (appended by `add`) decide; PAM_SUCCESS is "bad".
    let acct = |module: &str| format!("account [ignore=ignore success=bad default=bad] {module}");
    services.add("acct", &[&format!("auth required {permit}"), &acct(&apppw)]);
    services.add(
        "acct-control",
        &[&format!("auth required {permit}"), &acct(&permit)],
    );
    let (code, t) = run("acct", "acct_mgmt");
    assert_eq!(code, Some(0), "{t}");
    let (code, t) = run("acct-control", "acct_mgmt");
    assert_ne!(code, Some(0), "{t}");

    // setcred: the module is the only auth module, so only PAM_SUCCESS passes.
    services.add("cred", &[&format!("auth [success=ok default=bad] {apppw}")]);
    services.add(
        "cred-control",
        &[&format!("auth [success=ok default=bad] {deny}")],
    );
    let (code, t) = run("cred", "setcred");
    assert_eq!(code, Some(0), "{t}");
    assert!(
        t.contains("credential info has successfully been set"),
        "{t}"
    );
    let (code, t) = run("cred-control", "setcred");
    assert_ne!(code, Some(0), "{t}");
}

/// The harness tells a run of the stack under test from a pam_wrapper failure, where PAM ran a
/// fallback instead (here `other`, as when pam_wrapper's private copy of a service file is
/// removed by another process): only the latter is run again.
#[test]
fn harness_tells_its_own_failures_from_decisions() {
    require_pam_wrapper!("harness_tells_its_own_failures_from_decisions");
    let s = Setup::new();
    let run = |service: &str| {
        let mut cmd = s
            .services
            .command(service, "alice", Some(OFF_IP), &[], &["authenticate"]);
        let _shared = short_lived_run();
        run_with_stdin(&mut cmd, format!("{NORMAL}\n").as_bytes())
    };
    let refused = run("imap");
    assert_eq!(PamResult(refused.clone()).code(), "PAM_AUTH_ERR");
    assert!(!harness_failed(&refused, "imap"));
    let fallback = run("no-such-service");
    assert_eq!(PamResult(fallback.clone()).code(), "PAM_AUTH_ERR");
    assert!(harness_failed(&fallback, "no-such-service"));
}
