//! Staged rollout, end to end: `[enforcement] mode = "report"` and exemptions through the
//! real front-ends (the checkpassword binary, pamtester under pam_wrapper, a real Dovecot with
//! checkpassword, `apppw verify`), the report they fill, and the admin commands around it
//! (`exempt`, `unexempt`, `report`, `list`/`prune` filters, `stats --prometheus`,
//! completions, `--json`) on real files.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use apppw_integration_tests::dovecot::{self, Dovecot, PamService, Userdb};
use apppw_integration_tests::pam::{ServiceDir, apppw_line, pam_wrapper_available, primary_line};
use apppw_integration_tests::{CAMPUS_IP, EXCEPT_IP, OFF_IP, TestEnv, bin};
use serde_json::Value;
use std::process::{Command, Output};

const NORMAL: &str = "Winter-2026-normal";
const REPORT: &str = "[enforcement]\nmode = \"report\"\n";

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
#[track_caller]
fn ok(o: Output) -> Output {
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    o
}
#[track_caller]
fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

/// Switches `[enforcement] mode` in the test config (appending the table if needed).
fn set_mode(env: &TestEnv, mode: &str) {
    let text = std::fs::read_to_string(&env.config).unwrap();
    let text = match text.find("[enforcement]") {
        Some(i) => text[..i].to_owned(),
        None => text,
    };
    std::fs::write(
        &env.config,
        format!("{text}[enforcement]\nmode = \"{mode}\"\n"),
    )
    .unwrap();
}

fn checkpassword(env: &TestEnv, user: &str, pass: &str, ip: &str) -> Option<i32> {
    env.checkpassword(user, pass, ip)
}

/// `apppw --config CONFIG ARGS...` with `SUDO_USER` set as sudo sets it.
fn apppw_as(env: &TestEnv, sudo_user: &str, args: &[&str]) -> Output {
    Command::new(bin("apppw"))
        .arg("--config")
        .arg(&env.config)
        .args(args)
        .env("SUDO_USER", sudo_user)
        .output()
        .unwrap()
}

/// The report's rows as (user, refused, passed_on).
fn report_counts(env: &TestEnv) -> Vec<(String, i64, i64)> {
    let v = json(&ok(env.apppw(&["report", "--json"], "")));
    v["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["user"].as_str().unwrap().to_owned(),
                u["refused"].as_i64().unwrap(),
                u["passed_on"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn exempt_unexempt_and_list_with_real_files() {
    let env = TestEnv::new("");
    env.create("alice", "phone", &[]);

    let out = ok(apppw_as(
        &env,
        "helpdesk1",
        &[
            "exempt",
            "alice",
            "--until",
            "14d",
            "--reason",
            "ticket 4711",
        ],
    ));
    assert!(
        stdout(&out).starts_with("alice is exempt until 20"),
        "{}",
        stdout(&out)
    );
    // A date is valid through that day; longer than 90 days is refused, saying so.
    let out = env.apppw(&["exempt", "bob", "--until", "91d"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("at most 90 days"), "{}", stderr(&out));
    assert_eq!(stderr(&out).lines().count(), 1);
    let out = env.apppw(&["exempt", "bob", "--until", "2020-01-01"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("past"), "{}", stderr(&out));
    let v = json(&ok(
        env.apppw(&["exempt", "bob", "--until", "30d", "--json"], "")
    ));
    assert_eq!(
        (v["user"].as_str(), v["expired"].as_bool()),
        (Some("bob"), Some(false))
    );
    assert!(v["until"].as_str().unwrap().ends_with('Z'));
    assert!(v["granted_by"].is_string() && v["replaced"].is_null());
    // Replacing an exemption says what it replaced.
    let v = json(&ok(
        env.apppw(&["exempt", "bob", "--until", "2d", "--json"], "")
    ));
    assert!(v["replaced"]["until"].is_string(), "{v}");
    ok(env.apppw(&["exempt", "carol", "--until", "1h"], ""));
    // Carol's exemption ends: still listed, marked expired, and ignored by logins.
    assert_eq!(
        env.sql("UPDATE exemptions SET expires_at = 1000 WHERE \"user\" = 'carol'"),
        1
    );

    let list = json(&ok(env.apppw(&["exempt", "--list", "--json"], "")));
    let list = list.as_array().unwrap();
    let users: Vec<&str> = list.iter().map(|e| e["user"].as_str().unwrap()).collect();
    assert_eq!(users, ["alice", "bob", "carol"]);
    assert_eq!(list[0]["granted_by"], "helpdesk1");
    assert_eq!(list[0]["reason"], "ticket 4711");
    assert_eq!(list[0]["expired"], false);
    assert_eq!(list[2]["expired"], true);
    assert_eq!(list[2]["until"], "1970-01-01T00:16:40Z");
    for key in [
        "user",
        "until",
        "reason",
        "granted_by",
        "granted_at",
        "expired",
    ] {
        assert!(list[1].get(key).is_some(), "{key} missing");
    }
    let table = stdout(&ok(env.apppw(&["exempt", "--list"], "")));
    assert!(table.starts_with("USER"), "{table}");
    assert!(
        table.contains("ticket 4711") && table.contains("helpdesk1"),
        "{table}"
    );
    assert!(table.contains("1970-01-01T00:16:40Z (expired)"), "{table}");

    assert_eq!(checkpassword(&env, "alice", NORMAL, OFF_IP), Some(1)); // no [primary]
    assert_eq!(checkpassword(&env, "carol", NORMAL, OFF_IP), Some(1));
    let counts = report_counts(&env);
    assert!(counts.contains(&("alice".into(), 0, 1)), "{counts:?}");
    assert!(counts.contains(&("carol".into(), 1, 0)), "{counts:?}");

    let out = ok(env.apppw(&["unexempt", "alice"], ""));
    assert!(
        stdout(&out).contains("ended the exemption of alice"),
        "{}",
        stdout(&out)
    );
    let out = env.apppw(&["unexempt", "alice"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("exempt --list"), "{}", stderr(&out));
    let v = json(&ok(env.apppw(&["unexempt", "carol", "--json"], "")));
    assert_eq!(v["expired"], true);
    let left = json(&ok(env.apppw(&["exempt", "--list", "--json"], "")));
    assert_eq!(left.as_array().unwrap().len(), 1);
}

#[test]
fn report_lists_who_would_break_most_attempts_first() {
    let env = TestEnv::new("");
    // Before any database exists: an empty report, not an error.
    let out = ok(env.apppw(&["report"], ""));
    assert!(stdout(&out).starts_with("no off-campus normal-password attempts"));
    env.create("alice", "phone", &[]);
    ok(env.apppw(&["exempt", "bob", "--until", "7d"], ""));

    for (user, ip) in [
        ("bob", OFF_IP),
        ("bob", EXCEPT_IP),
        ("bob", "2001:db9::7"),
        ("alice", OFF_IP),
        ("carol", OFF_IP),
        ("carol", OFF_IP),
        // On campus: not counted.
        ("alice", CAMPUS_IP),
    ] {
        assert_eq!(
            checkpassword(&env, user, NORMAL, ip),
            Some(1),
            "{user} {ip}"
        );
    }
    let v = json(&ok(env.apppw(&["report", "--since", "1d", "--json"], "")));
    assert_eq!(v["mode"], "enforce");
    assert_eq!(v["unlisted"]["refused"], 0);
    let users = v["users"].as_array().unwrap();
    let order: Vec<&str> = users.iter().map(|u| u["user"].as_str().unwrap()).collect();
    assert_eq!(order, ["bob", "carol", "alice"]);
    let bob = &users[0];
    assert_eq!(
        (bob["attempts"].as_i64(), bob["passed_on"].as_i64()),
        (Some(3), Some(3))
    );
    assert_eq!(bob["last_ip"], "2001:db9::7");
    assert_eq!(bob["last_service"], "imap");
    assert_eq!(bob["has_app_password"], false);
    assert_eq!(bob["exempt"], true);
    assert_eq!(
        (users[1]["refused"].as_i64(), users[1]["days"].as_i64()),
        (Some(2), Some(1))
    );
    assert_eq!(users[2]["has_app_password"], true);
    assert_eq!(users[2]["app_passwords"], 1);

    let table = stdout(&ok(env.apppw(&["report"], "")));
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[1].starts_with("USER"), "{table}");
    assert!(
        lines[2].starts_with("bob") && lines[2].contains("2001:db9::7"),
        "{table}"
    );
    assert_eq!(lines.len(), 5, "{table}");

    // Counted per UTC day: rows older than --since are left out.
    assert_eq!(
        env.sql("UPDATE offcampus_attempts SET day = day - 10 WHERE \"user\" = 'carol'"),
        1
    );
    let v = json(&ok(env.apppw(&["report", "--since", "7d", "--json"], "")));
    assert_eq!(v["users"].as_array().unwrap().len(), 2);
    let out = env.apppw(&["report", "--since", "soon"], "");
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn verify_shows_would_refuse_under_report_mode() {
    let env = TestEnv::new(REPORT);
    let pw = env.create("alice", "phone", &[]);
    let out = env.apppw(&["verify", "alice", "--ip", OFF_IP], &format!("{NORMAL}\n"));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stdout(&out).lines().next().unwrap(),
        "would-refuse: primary-off-campus-refused (report mode: passed on, the normal \
         password would be checked next)"
    );
    let v = json(&env.apppw(
        &["verify", "alice", "--ip", OFF_IP, "--json"],
        &format!("{NORMAL}\n"),
    ));
    assert_eq!(
        (v["result"].as_str(), v["location"].as_str()),
        (Some("would-refuse"), Some("off-campus"))
    );
    // App passwords as always; `verify` records nothing.
    let out = ok(env.apppw(&["verify", "alice", "--ip", OFF_IP], &format!("{pw}\n")));
    assert!(stdout(&out).starts_with("accepted: app-password"));
    assert!(report_counts(&env).is_empty());

    set_mode(&env, "enforce");
    ok(env.apppw(&["exempt", "alice", "--until", "3d"], ""));
    let out = env.apppw(
        &["verify", "alice", "--ip", EXCEPT_IP],
        &format!("{NORMAL}\n"),
    );
    assert!(
        stdout(&out).starts_with("would-refuse: primary-off-campus-refused (exempt until 20"),
        "{}",
        stdout(&out)
    );
    let out = env.apppw(
        &["verify", "bob", "--ip", EXCEPT_IP],
        &format!("{NORMAL}\n"),
    );
    assert!(stdout(&out).starts_with("refused: primary-off-campus-refused"));
}

#[test]
fn list_and_prune_expired_and_unused_app_passwords() {
    let env = TestEnv::new("");
    env.create("alice", "old-phone", &["--expires", "1h"]);
    env.create("alice", "tablet", &[]);
    env.create("bob", "laptop", &[]);
    env.create("bob", "printer", &[]);
    env.sql("UPDATE app_passwords SET expires_at = 1000 WHERE label = 'old-phone'");
    // The printer was last used 200 days ago, the laptop never (created 200 days ago).
    env.sql(
        "UPDATE app_passwords SET created_at = created_at - 200 * 86400 WHERE \"user\" = 'bob'",
    );
    env.sql("UPDATE app_passwords SET last_used_at = created_at WHERE label = 'printer'");
    let labels = |o: Output| -> Vec<String> {
        json(&ok(o))
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["label"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        labels(env.apppw(&["list", "--expired", "--json"], "")),
        ["old-phone"]
    );
    assert_eq!(
        labels(env.apppw(&["list", "--unused-since", "90d", "--json"], "")),
        ["laptop", "printer"]
    );
    assert_eq!(
        labels(env.apppw(&["list", "alice", "--unused-since", "90d", "--json"], "")),
        Vec::<String>::new()
    );
    let text = stdout(&ok(env.apppw(&["list", "--expired"], "")));
    assert!(
        text.starts_with("ID") && text.contains("old-phone"),
        "{text}"
    );
    let out = env.apppw(&["list", "--expired", "--unused-since", "9d"], "");
    assert_eq!(out.status.code(), Some(2));

    // --dry-run deletes nothing.
    let text = stdout(&ok(
        env.apppw(&["prune", "--unused-since", "180d", "--dry-run"], "")
    ));
    assert!(
        text.starts_with("would delete 2 app passwords unused since"),
        "{text}"
    );
    assert_eq!(labels(env.apppw(&["list", "--json"], "")).len(), 4);
    assert_eq!(
        labels(env.apppw(&["prune", "bob", "--unused-since", "180d", "--json"], "")),
        ["laptop", "printer"]
    );
    let text = stdout(&ok(env.apppw(&["prune", "--expired"], "")));
    assert!(
        text.starts_with("deleted 1 app passwords that have expired"),
        "{text}"
    );
    assert_eq!(labels(env.apppw(&["list", "--json"], "")), ["tablet"]);
    let text = stdout(&ok(env.apppw(&["prune", "--expired"], "")));
    assert!(
        text.starts_with("no app passwords that have expired"),
        "{text}"
    );
    assert_eq!(env.apppw(&["prune"], "").status.code(), Some(2));
}

#[test]
fn stats_in_the_node_exporter_textfile_format() {
    let env = TestEnv::new(REPORT);
    env.create("alice", "phone", &[]);
    env.create("alice", "old", &["--expires", "1h"]);
    env.sql("UPDATE app_passwords SET expires_at = 1000 WHERE label = 'old'");
    ok(env.apppw(&["exempt", "bob", "--until", "1d"], ""));
    for user in ["alice", "bob", "bob"] {
        assert_eq!(checkpassword(&env, user, NORMAL, OFF_IP), Some(1));
    }
    let text = stdout(&ok(env.apppw(&["stats", "--prometheus"], "")));
    for line in [
        "apppw_app_passwords{state=\"active\"} 1",
        "apppw_app_passwords{state=\"expired\"} 1",
        "apppw_users_with_app_passwords 1",
        "apppw_exemptions{state=\"active\"} 1",
        "apppw_offcampus_normal_password_attempts{day=\"today\",result=\"would-refuse\"} 3",
        "apppw_offcampus_normal_password_attempts{day=\"today\",result=\"refused\"} 0",
        "apppw_offcampus_normal_password_users{day=\"today\"} 2",
        "apppw_report_mode 1",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
    }
    // Well-formed for the textfile collector: every sample after its HELP and TYPE.
    let mut announced = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert_eq!(kind, "gauge");
            announced.push(name.to_owned());
        } else if !line.starts_with("# HELP ") {
            let name = line.split(['{', ' ']).next().unwrap();
            assert_eq!(announced.last().map(String::as_str), Some(name), "{line}");
            assert!(
                line.rsplit(' ').next().unwrap().parse::<i64>().is_ok(),
                "{line}"
            );
        }
    }
    let v = json(&ok(env.apppw(&["stats", "--json"], "")));
    assert_eq!(
        v["offcampus_normal_password_attempts"]["today"]["passed_on"],
        3
    );
    assert_eq!(
        env.apppw(&["stats", "--json", "--prometheus"], "")
            .status
            .code(),
        Some(1)
    );
}

#[test]
fn every_printing_command_speaks_json() {
    let env = TestEnv::new("");
    let pw = env.create("alice", "phone", &[]);
    env.create("alice", "laptop", &[]);
    let cases: &[(&[&str], &str)] = &[
        (&["list"], ""),
        (&["list", "--expired"], ""),
        (&["explain", CAMPUS_IP], ""),
        (&["verify", "alice", "--ip", OFF_IP], &pw),
        (&["exempt", "alice", "--until", "1d"], ""),
        (&["exempt", "--list"], ""),
        (&["unexempt", "alice"], ""),
        (&["report"], ""),
        (&["stats"], ""),
        (&["prune", "--expired", "--dry-run"], ""),
        (&["revoke", "alice", "laptop"], ""),
    ];
    for (args, stdin) in cases {
        let mut with_json = args.to_vec();
        with_json.push("--json");
        let out = env.apppw(&with_json, &format!("{stdin}\n"));
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        let text = stdout(&out);
        assert_eq!(
            text.lines().count(),
            1,
            "{args:?}: one JSON document: {text}"
        );
        serde_json::from_str::<Value>(&text).unwrap_or_else(|e| panic!("{args:?}: {e}: {text}"));
    }
    let v = json(&ok(env.apppw(&["explain", EXCEPT_IP, "--json"], "")));
    assert_eq!(v["location"], "off-campus");
    assert!(
        v["rule"].as_str().unwrap().contains("except network"),
        "{v}"
    );
}

#[test]
fn shell_completions_name_every_command() {
    for shell in ["bash", "zsh", "fish"] {
        let out = ok(Command::new(bin("apppw"))
            .args(["completions", shell])
            .output()
            .unwrap());
        let text = stdout(&out);
        for command in [
            "create", "exempt", "unexempt", "report", "doctor", "prune", "stats",
        ] {
            assert!(text.contains(command), "{shell}: {command} missing");
        }
    }
    // The bash script loads and registers the completion.
    let out = ok(Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source <('{}' completions bash) && complete -p apppw",
            bin("apppw").display()
        ))
        .output()
        .unwrap());
    assert!(stdout(&out).contains("apppw"), "{}", stdout(&out));
    // Not a documented command.
    let help = stdout(&ok(Command::new(bin("apppw"))
        .arg("--help")
        .output()
        .unwrap()));
    assert!(!help.contains("completions"), "{help}");
}

#[test]
fn report_mode_and_exemptions_through_the_pam_stack() {
    if !pam_wrapper_available("report_mode_and_exemptions_through_the_pam_stack") {
        return;
    }
    let env = TestEnv::new(REPORT);
    let services = ServiceDir::new();
    let apppw = apppw_line(&format!("config={}", env.config.display()));
    let primary = primary_line(services.dir.path(), NORMAL);
    services.add("imap", &[&apppw, &primary]);
    let pw = env.create("alice", "phone", &[]);
    let login = |user: &str, ip: &str, pass: &str| {
        let r = services.authenticate("imap", user, Some(ip), &format!("{pass}\n"), &[]);
        (r.code(), r.prompts(), r.transcript())
    };

    // Report mode: the normal password works off campus, asked for once; a wrong one fails
    // in the normal-password module; app passwords as always.
    let (code, prompts, t) = login("alice", OFF_IP, NORMAL);
    assert_eq!((code, prompts), ("PAM_SUCCESS", 1), "{t}");
    let (code, _, t) = login("alice", EXCEPT_IP, "Wrong-2026");
    assert_eq!(code, "PAM_SYSTEM_ERR", "{t}");
    assert_eq!(login("alice", OFF_IP, &pw).0, "PAM_SUCCESS");

    // Enforce: refused, except for an exempt user until the exemption ends.
    set_mode(&env, "enforce");
    assert_eq!(login("alice", OFF_IP, NORMAL).0, "PAM_AUTH_ERR");
    ok(env.apppw(&["exempt", "bob", "--until", "2d"], ""));
    assert_eq!(login("bob", OFF_IP, NORMAL).0, "PAM_SUCCESS");
    assert_eq!(login("bob", OFF_IP, "Wrong-2026").0, "PAM_SYSTEM_ERR");
    env.sql("UPDATE exemptions SET expires_at = 1000 WHERE \"user\" = 'bob'");
    assert_eq!(login("bob", OFF_IP, NORMAL).0, "PAM_AUTH_ERR");
    ok(env.apppw(&["exempt", "bob", "--until", "2d"], ""));
    ok(env.apppw(&["unexempt", "bob"], ""));
    assert_eq!(login("bob", OFF_IP, NORMAL).0, "PAM_AUTH_ERR");

    let mut counts = report_counts(&env);
    counts.sort();
    assert_eq!(
        counts,
        [("alice".into(), 1, 2), ("bob".into(), 2, 2)],
        "passed on: alice 2 in report mode; bob 2 while exempt"
    );
}

#[test]
fn report_mode_and_exemptions_through_dovecot_checkpassword() {
    if !dovecot::available("report_mode_and_exemptions_through_dovecot_checkpassword") {
        return;
    }
    let pam = PamService::matrix(&[("alice", NORMAL), ("bob", NORMAL)]);
    let env = TestEnv::new(&format!("{}{REPORT}", pam.toml()));
    let pw = env.create("alice", "phone", &[]);
    dovecot::share_with_dovecot(&env);
    let d = Dovecot::start(&env.config, Userdb::Static);

    assert!(d.accepts(OFF_IP, "alice", NORMAL), "{}", d.log());
    assert!(d.accepts(EXCEPT_IP, "bob", NORMAL), "{}", d.log());
    assert!(!d.accepts(OFF_IP, "alice", "Wrong-2026"));
    assert!(d.accepts(OFF_IP, "alice", &pw));

    set_mode(&env, "enforce");
    assert!(!d.accepts(OFF_IP, "alice", NORMAL));
    ok(env.apppw(
        &["exempt", "bob", "--until", "1d", "--reason", "scanner"],
        "",
    ));
    dovecot::share_with_dovecot(&env);
    assert!(d.accepts(OFF_IP, "bob", NORMAL), "{}", d.log());
    assert!(!d.accepts(OFF_IP, "alice", NORMAL));
    // A real IMAP login of the exempt user from off campus.
    assert_eq!(
        d.imap_login(Some(OFF_IP), "bob", NORMAL),
        dovecot::Imap::LoggedIn,
        "{}",
        d.log()
    );

    // The report was written by Dovecot's unprivileged auth process.
    let mut counts = report_counts(&env);
    counts.sort();
    assert_eq!(counts, [("alice".into(), 2, 2), ("bob".into(), 0, 3)]);
    let log = d.log();
    assert!(
        !log.contains(NORMAL) && !log.contains(&pw),
        "password in the log"
    );
}
