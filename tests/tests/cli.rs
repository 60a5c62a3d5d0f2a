//! The `apppw` admin CLI, run as a built binary against a temp config and a real SQLite file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use apppw_integration_tests::{CAMPUS_IP, EXCEPT_IP, OFF_IP, TestEnv};
use std::process::Output;

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

#[test]
fn create_prints_the_password_once_in_groups_of_four() {
    let env = TestEnv::new("");
    let out = env.apppw(&["create", "alice", "phone"], "");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    let first = text.lines().next().unwrap();
    let groups: Vec<&str> = first.split(' ').collect();
    assert_eq!(groups.len(), 6, "{first}");
    assert!(
        groups
            .iter()
            .all(|g| g.len() == 4 && g.bytes().all(|b| b.is_ascii_lowercase()))
    );
    assert!(text.contains("shown only this once"), "{text}");

    // The plaintext is nowhere in the database, nor in list output.
    let compact = first.replace(' ', "");
    let db = env.dump();
    assert!(!db.windows(compact.len()).any(|w| w == compact.as_bytes()));
    let list = stdout(&env.apppw(&["list", "--json"], ""));
    assert!(
        !list.contains(&compact[4..]) && !list.contains("argon2"),
        "{list}"
    );
    let table = stdout(&env.apppw(&["list"], ""));
    assert!(
        !table.contains(&compact[4..]) && !table.contains("argon2"),
        "{table}"
    );
}

#[test]
fn create_json_has_the_documented_fields() {
    let env = TestEnv::new("");
    let out = env.apppw(
        &[
            "create",
            "bob",
            "laptop",
            "--json",
            "--services",
            "imap,SMTP",
            "--expires",
            "2099-12-31",
        ],
        "",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["user"], "bob");
    assert_eq!(v["label"], "laptop");
    assert!(v["id"].is_i64());
    assert_eq!(v["expires_at"], "2099-12-31T23:59:59Z");
    assert_eq!(v["services"], serde_json::json!(["imap", "smtp"]));
    assert!(v["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(v["password"].as_str().unwrap().len(), 29);
}

#[test]
fn list_shows_metadata_never_secrets() {
    let env = TestEnv::new("");
    // Before anything exists: empty, not an error.
    let out = env.apppw(&["list", "--json"], "");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "[]");

    env.create("alice", "phone", &[]);
    env.create("alice", "tablet", &["--services", "imap"]);
    env.create("bob", "phone", &["--expires", "30d"]);
    let v: serde_json::Value =
        serde_json::from_slice(&env.apppw(&["list", "alice", "--json"], "").stdout).unwrap();
    let arr = v.as_array().unwrap();
    assert_eq!(arr.len(), 2);
    for key in [
        "id",
        "user",
        "label",
        "created_at",
        "expires_at",
        "services",
        "last_used_at",
        "last_used_ip",
        "last_used_service",
    ] {
        assert!(arr[0].get(key).is_some(), "missing {key}");
    }
    assert!(arr[0].get("password").is_none() && arr[0].get("hash").is_none());
    let all = stdout(&env.apppw(&["list"], ""));
    assert!(all.starts_with("ID"), "{all}");
    assert_eq!(all.lines().count(), 4, "{all}");
    assert!(all.contains("imap") && all.contains("never"), "{all}");
}

#[test]
fn labels_with_invisible_or_direction_characters_are_refused() {
    let env = TestEnv::new("");
    for label in ["phone\u{202e}LTR", "pho\u{200b}ne"] {
        let out = env.apppw(&["create", "alice", label], "");
        assert_eq!(code(&out), 1, "{label:?}: {}", stdout(&out));
        assert!(
            stderr(&out).contains("invisible or text-direction character"),
            "{}",
            stderr(&out)
        );
    }
    assert!(stdout(&env.apppw(&["list", "--json"], "")).contains("[]"));
}

#[test]
fn duplicate_label_and_unknown_label_fail_with_status_1() {
    let env = TestEnv::new("");
    env.create("alice", "phone", &[]);
    let out = env.apppw(&["create", "alice", "phone"], "");
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("already has an app password labelled \"phone\""));
    assert_eq!(stderr(&out).lines().count(), 1);
    // Another user may use the same label.
    env.create("bob", "phone", &[]);

    let out = env.apppw(&["revoke", "alice", "tablet"], "");
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("apppw list alice"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn revoke_by_label_id_and_all_is_effective_immediately() {
    let env = TestEnv::new("");
    let phone = env.create("alice", "phone", &[]);
    let laptop = env.create("alice", "laptop", &[]);
    let tablet = env.create("alice", "tablet", &[]);
    let verify =
        |pw: &str| code(&env.apppw(&["verify", "alice", "--ip", OFF_IP], &format!("{pw}\n")));
    assert_eq!(verify(&phone), 0);

    assert_eq!(code(&env.apppw(&["revoke", "alice", "phone"], "")), 0);
    assert_eq!(verify(&phone), 1);
    assert_eq!(verify(&laptop), 0);

    let v: serde_json::Value =
        serde_json::from_slice(&env.apppw(&["list", "alice", "--json"], "").stdout).unwrap();
    let laptop_id = v.as_array().unwrap()[0]["id"].as_i64().unwrap().to_string();
    assert_eq!(code(&env.apppw(&["revoke", "alice", &laptop_id], "")), 0);
    assert_eq!(verify(&laptop), 1);

    let out = env.apppw(&["revoke", "alice", "--all"], "");
    assert_eq!(code(&out), 0);
    assert!(stdout(&out).contains("tablet"));
    assert_eq!(verify(&tablet), 1);
}

#[test]
fn verify_decides_like_a_login() {
    let env = TestEnv::new("");
    let pw = env.create("alice", "phone", &[]);
    let run = |user: &str, ip: &str, input: &str| {
        env.apppw(&["verify", user, "--ip", ip, "--service", "imap"], input)
    };
    let out = run("alice", OFF_IP, &format!("{pw}\n"));
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    assert!(
        stdout(&out).starts_with("accepted: app-password"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("off-campus"), "{}", stdout(&out));

    // Case, spaces and dashes are ignored.
    let shouty = pw.to_uppercase().replace(' ', "-");
    assert_eq!(code(&run("alice", OFF_IP, &format!("{shouty}\r\n"))), 0);
    let squashed = pw.replace(' ', "");
    assert_eq!(code(&run("alice", "::ffff:203.0.113.9", &squashed)), 0);

    // Normal passwords: may be tried on campus, refused elsewhere.
    let out = run("alice", CAMPUS_IP, "Winter2026!\n");
    assert_eq!(code(&out), 1);
    assert!(
        stdout(&out).starts_with("continue: primary-on-campus"),
        "{}",
        stdout(&out)
    );
    for ip in [OFF_IP, EXCEPT_IP, "mail.example.org", ""] {
        let out = run("alice", ip, "Winter2026!\n");
        assert_eq!(code(&out), 1);
        assert!(
            stdout(&out).starts_with("refused: primary-off-campus-refused"),
            "{ip}: {}",
            stdout(&out)
        );
    }
    // Wrong user, wrong secret.
    assert_eq!(code(&run("mallory", OFF_IP, &pw)), 1);
    let wrong = format!("{}aaaa aaaa aaaa aaaa aaaa", &pw[..5]);
    let out = run("alice", OFF_IP, &wrong);
    assert!(
        stdout(&out).starts_with("refused: no-match"),
        "{}",
        stdout(&out)
    );

    // verify records nothing.
    let v: serde_json::Value =
        serde_json::from_slice(&env.apppw(&["list", "--json"], "").stdout).unwrap();
    assert!(v[0]["last_used_at"].is_null());
}

#[test]
fn oversized_and_nul_input_is_refused_not_truncated() {
    let env = TestEnv::new("");
    let pw = env.create("alice", "phone", &[]);
    let run = |input: Vec<u8>| {
        apppw_integration_tests::run_with_stdin(
            std::process::Command::new(apppw_integration_tests::bin("apppw"))
                .arg("--config")
                .arg(&env.config)
                .args(["verify", "alice", "--ip", OFF_IP]),
            &input,
        )
    };
    // The app password followed by 1100 spaces: over 1024 bytes, so refused even though
    // normalising would have produced the right password.
    let mut long = pw.clone().into_bytes();
    long.extend(std::iter::repeat_n(b' ', 1100));
    let out = run(long);
    assert_eq!(code(&out), 1);
    assert!(
        stdout(&out).contains("password-too-long"),
        "{}",
        stdout(&out)
    );

    let mut nul = pw.clone().into_bytes();
    nul.insert(5, 0);
    let out = run(nul);
    assert_eq!(code(&out), 1);
    assert!(
        stdout(&out).contains("password-malformed"),
        "{}",
        stdout(&out)
    );

    let out = run(format!("{pw}\x07").into_bytes());
    assert_eq!(code(&out), 1);
}

#[test]
fn expired_and_service_restricted_credentials() {
    let env = TestEnv::new("");
    let imap_only = env.create("alice", "imap only", &["--services", "imap"]);
    let soon = env.create("alice", "soon", &["--expires", "1h"]);
    let run = |pw: &str, service: &str| {
        env.apppw(
            &["verify", "alice", "--ip", OFF_IP, "--service", service],
            pw,
        )
    };
    assert_eq!(code(&run(&imap_only, "imap")), 0);
    let out = run(&imap_only, "smtp");
    assert_eq!(code(&out), 1);
    assert!(
        stdout(&out).contains("service-not-allowed"),
        "{}",
        stdout(&out)
    );
    assert_eq!(code(&run(&soon, "smtp")), 0);

    // Move the expiry into the past, as time would.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    env.sql(&format!(
        "UPDATE app_passwords SET expires_at = {} WHERE label = 'soon'",
        now - 1
    ));
    let out = run(&soon, "smtp");
    assert_eq!(code(&out), 1);
    assert!(
        stdout(&out).contains("refused: expired"),
        "{}",
        stdout(&out)
    );

    // Past expiry at creation is refused.
    let out = env.apppw(&["create", "alice", "old", "--expires", "2001-01-01"], "");
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("in the past"), "{}", stderr(&out));
}

#[test]
fn explain_names_the_rule() {
    let env = TestEnv::new("");
    let run = |ip: &str| stdout(&env.apppw(&["explain", ip], ""));
    assert!(run(CAMPUS_IP).starts_with("campus\n"));
    assert!(run("::ffff:192.0.2.10").starts_with("campus\n"));
    assert!(run("[2001:db8::1]").starts_with("campus\n"));
    let eduroam = run(EXCEPT_IP);
    assert!(eduroam.starts_with("off-campus\n") && eduroam.contains("192.0.2.128/25"));
    assert!(run(OFF_IP).starts_with("off-campus\n"));
    assert!(run("mail.example.org").starts_with("off-campus\n"));
    assert!(run("").starts_with("off-campus\n"));
}

#[test]
fn bad_config_names_file_line_and_key() {
    let env = TestEnv::new("[primary]\npam_servise = \"x\"\n");
    let out = env.apppw(&["list"], "");
    assert_eq!(code(&out), 1);
    let err = stderr(&out);
    assert!(err.contains(&env.config.display().to_string()), "{err}");
    assert!(err.contains("pam_servise"), "{err}");
    assert!(err.contains("line 7"), "{err}");

    let env = TestEnv::new("");
    std::fs::write(&env.config, "[network]\ncampus = [\"10.0.0.0/33\"]\n").unwrap();
    let err = stderr(&env.apppw(&["explain", "10.0.0.1"], ""));
    assert!(
        err.contains("line 2") && err.contains("network.campus"),
        "{err}"
    );

    let out = apppw_integration_tests::run_with_stdin(
        std::process::Command::new(apppw_integration_tests::bin("apppw")).args([
            "--config",
            "/nonexistent/apppw.toml",
            "list",
        ]),
        b"",
    );
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("/nonexistent/apppw.toml"));
}

#[test]
fn config_from_environment_variable() {
    let env = TestEnv::new("");
    let out = apppw_integration_tests::run_with_stdin(
        std::process::Command::new(apppw_integration_tests::bin("apppw"))
            .env("APPPW_CONFIG", &env.config)
            .args(["explain", CAMPUS_IP]),
        b"",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).starts_with("campus"));
}

#[test]
fn usage_errors_exit_2() {
    let env = TestEnv::new("");
    for args in [
        &["frobnicate"][..],
        &["create", "alice"],
        &["revoke", "alice"],
        &["verify", "alice"],
    ] {
        assert_eq!(code(&env.apppw(args, "")), 2, "{args:?}");
    }
    assert_eq!(
        code(&env.apppw(&["create", "alice", "x", "--expires", "soon"], "")),
        1
    );
    assert_eq!(
        code(&env.apppw(&["create", "alice", "x", "--services", "im ap"], "")),
        1
    );
    assert_eq!(code(&env.apppw(&["create", "al\nice", "x"], "")), 1);
    assert_eq!(code(&env.apppw(&["create", "alice", ""], "")), 1);
}

#[test]
fn database_file_is_not_world_readable() {
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::new("");
    if env.skip_unless_sqlite("database_file_is_not_world_readable") {
        return;
    }
    env.create("alice", "phone", &[]);
    let mode = std::fs::metadata(&env.db).unwrap().permissions().mode();
    assert_eq!(mode & 0o007, 0, "mode {mode:o}");
}

#[test]
fn insecure_permissions_are_warned_about_or_refused() {
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::new("");
    if env.skip_unless_sqlite("insecure_permissions_are_warned_about_or_refused") {
        return;
    }
    let pw = env.create("alice", "phone", &[]);
    let chmod = |p: &std::path::Path, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    };
    chmod(&env.db, 0o644);
    let out = env.apppw(&["list"], "");
    assert_eq!(code(&out), 0);
    assert!(
        stderr(&out).contains("readable by every user"),
        "{}",
        stderr(&out)
    );

    // World-writable database: nobody logs in with it, and the CLI refuses it too.
    chmod(&env.db, 0o666);
    let out = env.apppw(&["verify", "alice", "--ip", OFF_IP], &pw);
    assert_eq!(code(&out), 1);
    assert!(
        stdout(&out).starts_with("error: untrusted-file") && stdout(&out).contains("chmod o-w"),
        "{}",
        stdout(&out)
    );
    let out = env.apppw(&["create", "alice", "tablet"], "");
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("writable by every user"),
        "{}",
        stderr(&out)
    );

    // World-writable config: refused.
    chmod(&env.db, 0o660);
    chmod(&env.config, 0o666);
    let out = env.apppw(&["verify", "alice", "--ip", OFF_IP], &pw);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("writable by every user"),
        "{}",
        stderr(&out)
    );
}

/// The last-used address and service come from the client side of a login: they go through
/// the same printable filter as labels, so they cannot drive the admin's terminal.
#[test]
fn list_prints_last_use_through_the_printable_filter() {
    let env = TestEnv::new("");
    env.create("alice", "phone", &[]);
    // The control characters go into the literals as they are (portable to both stores).
    let n = env.sql(
        "UPDATE app_passwords SET last_used_at = 1700000000, \
         last_used_ip = '203.0.113.9\u{1b}[2J', last_used_service = 'im\u{7}ap'",
    );
    assert_eq!(n, 1);
    let out = env.apppw(&["list"], "");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{7}'),
        "{text:?}"
    );
    assert!(text.contains("203.0.113.9?[2J im?ap"), "{text:?}");
}

/// One canonical user name (lowercase by default): create, list, verify and revoke agree on
/// it; rows stored under other spellings are reported, never merged, and no longer log in.
#[test]
fn user_names_are_canonical_and_strays_are_reported() {
    let env = TestEnv::new("");
    let out = env.apppw(&["create", "Alice", "phone", "--json"], "");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stderr(&out).contains("stored as alice"), "{}", stderr(&out));
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(created["user"], "alice");
    let pw = created["password"].as_str().unwrap().to_owned();
    for user in ["alice", "ALICE"] {
        let out = env.apppw(&["verify", user, "--ip", OFF_IP], &format!("{pw}\n"));
        assert_eq!(code(&out), 0, "{user}: {}", stdout(&out));
    }
    let listed: serde_json::Value =
        serde_json::from_slice(&env.apppw(&["list", "ALICE", "--json"], "").stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");

    // A row from before names were canonical.
    let bob = env.create("bob", "laptop", &[]);
    assert_eq!(
        env.sql(r#"UPDATE app_passwords SET "user" = 'Bob' WHERE "user" = 'bob'"#),
        1
    );
    let out = env.apppw(&["verify", "Bob", "--ip", OFF_IP], &format!("{bob}\n"));
    assert_eq!(
        code(&out),
        1,
        "lookups use the canonical name: {}",
        stdout(&out)
    );
    let out = env.apppw(&["migrate", "--check"], "");
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    assert!(
        stdout(&out).contains("\"Bob\": 1 app password(s); logins look up \"bob\"")
            && stdout(&out).contains("NO LONGER LOG IN"),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).starts_with("apppw: 1 app password(s)"),
        "{}",
        stderr(&out)
    );
    let out = env.apppw(&["list"], "");
    assert!(
        stderr(&out).contains("no longer log in: Bob"),
        "{}",
        stderr(&out)
    );
    // The admin sees it under bob, and revoking bob removes it.
    let listed: serde_json::Value =
        serde_json::from_slice(&env.apppw(&["list", "bob", "--json"], "").stdout).unwrap();
    assert_eq!(listed[0]["user"], "Bob", "{listed}");
    let out = env.apppw(&["revoke", "bob", "--all"], "");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).contains("laptop"), "{}", stdout(&out));
    let out = env.apppw(&["migrate", "--check"], "");
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));

    // Where names that differ in case are different people, they stay apart.
    let exact = TestEnv::new("[users]\ncase_sensitive = true\n");
    let pw = exact.create("Carol", "phone", &[]);
    let out = exact.apppw(&["verify", "carol", "--ip", OFF_IP], &format!("{pw}\n"));
    assert_eq!(code(&out), 1);
    let out = exact.apppw(&["verify", "Carol", "--ip", OFF_IP], &format!("{pw}\n"));
    assert_eq!(code(&out), 0);
}

/// `apppw migrate` without --from brings an older database to the current schema; logins
/// refuse the older one with a message saying so.
#[test]
fn migrate_upgrades_an_older_schema() {
    let env = TestEnv::new("");
    if env.skip_unless_sqlite("migrate_upgrades_an_older_schema") {
        return;
    }
    let pw = env.create("alice", "phone", &[]);
    // What an older apppw left: schema 1, without the tables of versions 2 (known devices)
    // and 3 (exemptions, the off-campus report).
    let conn = rusqlite::Connection::open(&env.db).unwrap();
    conn.execute_batch(
        "DROP TABLE known_devices; DROP TABLE exemptions; DROP TABLE offcampus_attempts; \
         DROP TABLE offcampus_days; PRAGMA user_version = 1;",
    )
    .unwrap();
    drop(conn);
    let out = env.apppw(&["verify", "alice", "--ip", OFF_IP], &format!("{pw}\n"));
    assert!(
        stdout(&out).contains("schema version 1") && stdout(&out).contains("apppw migrate"),
        "{}",
        stdout(&out)
    );
    let out = env.apppw(&["migrate"], "");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stdout(&out).contains("schema version 3"),
        "{}",
        stdout(&out)
    );
    let out = env.apppw(&["verify", "alice", "--ip", OFF_IP], &format!("{pw}\n"));
    assert_eq!(code(&out), 0, "{}", stdout(&out));
}
