//! `pam_apppw.so` in a long-lived host: one process running many logins, as Dovecot's auth
//! worker does. The module stays loaded (`-z nodelete`) and keeps its Argon2 memory and its
//! database connection between logins; these tests show that nothing it keeps can outlive a
//! change: a revoke, a new password, a database removed and made again, a file made unsafe.
//!
//! Each test file runs alone, so no other pam_wrapper process shares `/tmp/pam.*` with the
//! host while it runs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use apppw_integration_tests::pam::{
    Host, HostAnswer, ServiceDir, apppw_line, pam_wrapper_available, primary_line,
};
use apppw_integration_tests::{CAMPUS_IP, OFF_IP, TestEnv};

const NORMAL: &str = "Winter-2026-normal";

#[track_caller]
fn expect(answer: &HostAnswer, said: &str, what: &str) {
    assert_eq!(answer.said, said, "{what}: {answer:?}");
    assert!(
        answer.resident,
        "{what}: the module was unloaded: {answer:?}"
    );
}

#[test]
fn a_long_lived_host_sees_every_change_at_the_next_login() {
    if !pam_wrapper_available("a_long_lived_host_sees_every_change_at_the_next_login") {
        return;
    }
    let env = TestEnv::new("");
    let services = ServiceDir::new();
    let apppw = apppw_line(&format!("config={}", env.config.display()));
    let primary = primary_line(services.dir.path(), NORMAL);
    services.add("imap", &[&apppw, &primary]);
    let phone = env.create("alice", "phone", &[]);
    let mut host = Host::start(&services);
    let mut login = |user: &str, ip: &str, pass: &str| host.login("imap", user, Some(ip), pass);

    // The module stays mapped after pam_end, and answers the same as a fresh one.
    for round in 0..3 {
        expect(
            &login("alice", OFF_IP, &phone),
            "accepted",
            &format!("round {round}"),
        );
    }
    expect(
        &login("alice", OFF_IP, NORMAL),
        "refused",
        "normal password off campus",
    );
    expect(
        &login("alice", CAMPUS_IP, NORMAL),
        "accepted",
        "normal password on campus",
    );
    expect(
        &login("bob", OFF_IP, &phone),
        "refused",
        "alice's password for bob",
    );

    // A revoke is effective at the very next login, and a new password at once.
    let out = env.apppw(&["revoke", "alice", "phone"], "");
    assert!(out.status.success());
    expect(&login("alice", OFF_IP, &phone), "refused", "revoked");
    let laptop = env.create("alice", "laptop", &[]);
    expect(
        &login("alice", OFF_IP, &laptop),
        "accepted",
        "created after the first login",
    );

    // The database removed and made again (SQLite: a new file; PostgreSQL: new tables): the
    // connection to the old one is not used again.
    env.remove_database();
    if !env.is_postgres() {
        for suffix in ["-wal", "-shm"] {
            let mut name = env.db.clone().into_os_string();
            name.push(suffix);
            let _ = std::fs::remove_file(name);
        }
    }
    let tablet = env.create("alice", "tablet", &[]);
    expect(
        &login("alice", OFF_IP, &laptop),
        "refused",
        "password of the old database",
    );
    expect(
        &login("alice", OFF_IP, &tablet),
        "accepted",
        "password of the new database",
    );

    // An SQLite file that has become world-writable is refused, kept connection or not.
    if !env.is_postgres() {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&env.db, std::fs::Permissions::from_mode(0o666)).unwrap();
        let answer = login("alice", OFF_IP, &tablet);
        assert_ne!(
            answer.said, "accepted",
            "world-writable database: {answer:?}"
        );
        std::fs::set_permissions(&env.db, std::fs::Permissions::from_mode(0o640)).unwrap();
        expect(
            &login("alice", OFF_IP, &tablet),
            "accepted",
            "permissions fixed",
        );
    }
}
