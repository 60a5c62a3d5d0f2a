//! Tests of the store on SQLite files: creation and permissions, the trust rule at login,
//! migrations, lookups, the failure counters, exemptions and the report. (PostgreSQL is tested
//! end to end in tests/tests/postgres.rs.)

use super::*;
use rusqlite::Connection;

fn new_cred<'a>(user: &'a str, label: &'a str, tag: &'a str) -> NewCredential<'a> {
    NewCredential {
        user,
        label,
        tag,
        hash: "$argon2id$fake",
        created_at: 1_700_000_000,
        expires_at: None,
        services: None,
    }
}

#[test]
fn create_lookup_list_revoke() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let mut s = Store::open_for_admin(&path).unwrap();
    let services = vec!["imap".to_owned(), "smtp".to_owned()];
    let c = s
        .create(&NewCredential {
            services: Some(&services),
            expires_at: Some(1_800_000_000),
            ..new_cred("alice", "phone", "abcd")
        })
        .unwrap();
    s.create(&new_cred("alice", "laptop", "efgh")).unwrap();
    s.create(&new_cred("bob", "phone", "abcd")).unwrap();

    let mut login = Store::open_for_login(&path).unwrap();
    let cand = login.lookup("alice", "abcd").unwrap().unwrap();
    assert_eq!(cand.id, c.id);
    assert_eq!(cand.services, Some(services));
    assert_eq!(cand.expires_at, Some(1_800_000_000));
    assert!(login.lookup("alice", "zzzz").unwrap().is_none());
    assert!(login.lookup("carol", "abcd").unwrap().is_none());
    login
        .record_use(c.id, 1_700_000_100, Some("192.0.2.1"), Some("imap"))
        .unwrap();

    let all = s.list(None).unwrap();
    assert_eq!(all.len(), 3);
    let alice = s.list(Some("alice")).unwrap();
    assert_eq!(alice.len(), 2);
    assert_eq!(alice[0].last_used_ip.as_deref(), Some("192.0.2.1"));
    assert_eq!(alice[0].last_used_at, Some(1_700_000_100));

    assert!(matches!(
        s.create(&new_cred("alice", "phone", "wxyz")),
        Err(StoreError::DuplicateLabel { .. })
    ));
    assert!(matches!(
        s.create(&new_cred("alice", "tablet", "efgh")),
        Err(StoreError::TagCollision)
    ));

    assert_eq!(s.revoke("alice", "nope").unwrap().len(), 0);
    // Another user's id is not revocable through this user.
    let bob_id = s.list(Some("bob")).unwrap()[0].id;
    assert_eq!(s.revoke("alice", &bob_id.to_string()).unwrap().len(), 0);
    assert_eq!(s.revoke("alice", "phone").unwrap()[0].id, c.id);
    assert!(login.lookup("alice", "abcd").unwrap().is_none());
    let laptop = s.list(Some("alice")).unwrap()[0].id;
    assert_eq!(s.revoke("alice", &laptop.to_string()).unwrap().len(), 1);
    assert_eq!(s.revoke_all("bob").unwrap().len(), 1);
    assert!(s.list(None).unwrap().is_empty());
}

#[test]
fn login_never_creates_and_rejects_foreign_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.db");
    assert!(matches!(
        Store::open_for_login(&path),
        Err(StoreError::Missing(_))
    ));
    assert!(!path.exists());

    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, b"this is not a database at all, not even close....").unwrap();
    assert!(Store::open_for_login(&junk).is_err());

    let other = dir.path().join("other.db");
    Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE t(x);")
        .unwrap();
    assert!(matches!(
        Store::open_for_login(&other),
        Err(StoreError::Schema { found: 0, .. })
    ));
}

#[test]
fn new_database_is_private_and_in_wal_mode() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let s = Store::open_for_admin(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660, "mode {mode:o}");
    let Backend::Sqlite(b) = &s.backend else {
        panic!("not sqlite")
    };
    let jm: String = b
        .conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(jm, "wal");
    drop(s);
    // Re-opening is idempotent.
    Store::open_for_admin(&path).unwrap();
}

#[test]
fn failures_start_and_end_a_cooldown() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    Store::open_for_admin(&path).unwrap();
    let mut s = Store::open_for_login(&path).unwrap();
    let policy = Lockout {
        per_client: 3,
        per_user: 5,
        window_seconds: 100,
        cooldown_seconds: 50,
    };
    for t in 0..2 {
        s.record_failure("alice", "203.0.113.9", 1000 + t, &policy)
            .unwrap();
    }
    let no = LockedOut::No;
    assert_eq!(s.locked_out("alice", "203.0.113.9", 1002).unwrap(), no);
    s.record_failure("alice", "203.0.113.9", 1002, &policy)
        .unwrap();
    assert_eq!(
        s.locked_out("alice", "203.0.113.9", 1003).unwrap(),
        LockedOut::FromClient
    );
    assert_eq!(s.locked_out("alice", "198.51.100.1", 1003).unwrap(), no);
    assert_eq!(s.locked_out("bob", "203.0.113.9", 1003).unwrap(), no);
    assert_eq!(s.locked_out("alice", "203.0.113.9", 1052).unwrap(), no);
    // Two more from elsewhere reach the per-user limit of 5: every address is locked.
    s.record_failure("alice", "198.51.100.1", 1010, &policy)
        .unwrap();
    s.record_failure("alice", "198.51.100.2", 1011, &policy)
        .unwrap();
    assert_eq!(
        s.locked_out("alice", "192.0.2.77", 1012).unwrap(),
        LockedOut::Everywhere
    );
    // Failures spread beyond the window never lock.
    for t in 0..10 {
        s.record_failure("carol", "203.0.113.9", 2000 + t * 60, &policy)
            .unwrap();
    }
    assert_eq!(s.locked_out("carol", "203.0.113.9", 2600).unwrap(), no);
}

#[test]
fn what_others_may_change_is_refused_world_readable_warned() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    Store::open_for_admin(&path).unwrap();
    let set = |p: &Path, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    };
    assert!(Store::open_for_login(&path).unwrap().warning().is_none());
    set(&path, 0o664);
    let w = Store::open_for_login(&path)
        .unwrap()
        .warning()
        .map(str::to_owned);
    assert!(w.unwrap().contains("readable by every user"));
    let untrusted = |what: &str| match Store::open_for_login(&path) {
        Err(e @ StoreError::Untrusted(_)) => {
            assert!(e.is_configuration());
            e.to_string()
        }
        Err(e) => panic!("{what}: {e}"),
        Ok(_) => panic!("{what}: opened"),
    };
    set(&path, 0o666);
    let e = untrusted("world-writable file");
    assert!(e.contains("a.db") && e.contains("chmod o-w"), "{e}");
    // The CLI refuses it too (and says why logins do).
    assert!(matches!(
        Store::open_for_admin(&path),
        Err(StoreError::Insecure(_))
    ));
    set(&path, 0o660);
    set(dir.path(), 0o777);
    untrusted("world-writable directory");
    // Sticky is not enough for the database's own directory: SQLite creates files there.
    set(dir.path(), 0o1777);
    let e = untrusted("sticky directory");
    assert!(e.contains("directory of its own"), "{e}");
    set(dir.path(), 0o700);
    // A -wal file someone else may write.
    let wal = crate::trust::with_suffix(&path, "-wal");
    set(&wal, 0o666);
    let e = untrusted("world-writable -wal");
    assert!(e.contains("a.db-wal"), "{e}");
    set(&wal, 0o660);
    assert!(Store::open_for_login(&path).is_ok());
}

/// Logins in processes of their own (checkpassword) keep -wal short: each such process
/// rebuilds SQLite's WAL index from all of it, and SQLite's own checkpoints never restart a
/// file that every connection opened afresh.
#[test]
fn logins_in_fresh_processes_keep_the_wal_short() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let mut s = Store::open_for_admin(&path).unwrap();
    s.create(&new_cred("alice", "phone", "abcd")).unwrap();
    drop(s);
    let wal = crate::trust::with_suffix(&path, "-wal");
    let mut longest = 0;
    for at in 0..300 {
        // A new connection per login, closed before the next: as a process per login.
        let mut login = Store::open_for_login(&path).unwrap();
        login
            .record_use(1, at, Some("2001:db8::1"), Some("imap"))
            .unwrap();
        drop(login);
        longest = longest.max(std::fs::metadata(&wal).unwrap().len());
    }
    // One write transaction adds a frame or two past the bound before it is emptied.
    assert!(longest <= 70 * (4096 + 24), "-wal grew to {longest} bytes");
    let last: i64 = Connection::open(&path)
        .unwrap()
        .query_row("SELECT last_used_at FROM app_passwords", [], |r| r.get(0))
        .unwrap();
    assert_eq!(last, 299);
}

/// No connection deletes -wal and -shm on close: they keep the owner who created them
/// (see the module documentation).
#[test]
fn wal_files_are_kept_and_the_main_file_is_complete() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let id = |suffix: &str| {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(crate::trust::with_suffix(&path, suffix)).unwrap();
        (m.dev(), m.ino())
    };
    let mut s = Store::open_for_admin(&path).unwrap();
    s.create(&new_cred("alice", "phone", "abcd")).unwrap();
    drop(s);
    let (wal, shm) = (id("-wal"), id("-shm"));
    let mut login = Store::open_for_login(&path).unwrap();
    assert!(login.lookup("alice", "abcd").unwrap().is_some());
    login
        .record_use(1, 5, Some("2001:db8::1"), Some("imap"))
        .unwrap();
    drop(login);
    drop(Store::open_read_only(&path).unwrap());
    assert_eq!((id("-wal"), id("-shm")), (wal, shm), "recreated");
    // After a change the CLI leaves -wal empty, so nothing in it can outlive a file put in
    // its place.
    let mut s = Store::open_for_admin(&path).unwrap();
    s.create(&new_cred("bob", "phone", "abcd")).unwrap();
    drop(s);
    let wal_len = std::fs::metadata(crate::trust::with_suffix(&path, "-wal"))
        .unwrap()
        .len();
    assert_eq!(wal_len, 0);
    // The CLI checkpointed: the main file alone has both (a copy of it is a backup).
    let copy = dir.path().join("copy.db");
    std::fs::copy(&path, &copy).unwrap();
    let n: i64 = Connection::open(&copy)
        .unwrap()
        .query_row("SELECT count(*) FROM app_passwords", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 2);
}

#[test]
fn known_devices_are_recorded_per_user_and_network() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let mut admin = Store::open_for_admin(&path).unwrap();
    let id = admin
        .create(&new_cred("alice", "phone", "abcd"))
        .unwrap()
        .id;
    admin.create(&new_cred("bob", "phone", "abcd")).unwrap();
    let mut s = Store::open_for_login(&path).unwrap();
    s.record_use(id, 1000, Some("203.0.113.9"), Some("imap"))
        .unwrap();
    s.record_use(id, 1000, Some("2001:db8:1:2::5"), None)
        .unwrap();
    assert!(s.known_device("alice", "203.0.113.0/24", 900).unwrap());
    assert!(s.known_device("alice", "2001:db8:1:2::/64", 900).unwrap());
    assert!(!s.known_device("alice", "203.0.113.0/24", 1001).unwrap());
    assert!(!s.known_device("bob", "203.0.113.0/24", 0).unwrap());
    assert!(!s.known_device("alice", "198.51.100.0/24", 0).unwrap());
}

#[test]
fn user_names_and_their_variants() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let mut s = Store::open_for_admin(&path).unwrap();
    s.create(&new_cred("alice", "phone", "abcd")).unwrap();
    s.create(&new_cred("Alice", "laptop", "abcd")).unwrap();
    s.create(&new_cred("ALICE", "tablet", "abcd")).unwrap();
    s.create(&new_cred("bob", "phone", "abcd")).unwrap();
    let config = Config::parse(Path::new("/t.toml"), "").unwrap();
    assert_eq!(
        s.noncanonical_users(&config).unwrap(),
        vec![("ALICE".to_owned(), 1), ("Alice".to_owned(), 1)]
    );
    let mut names = s.names_of(&config, "alice").unwrap();
    names.sort();
    assert_eq!(names, ["ALICE", "Alice", "alice"]);
    let exact = Config::parse(Path::new("/t.toml"), "[users]\ncase_sensitive = true\n").unwrap();
    assert!(s.noncanonical_users(&exact).unwrap().is_empty());
    assert_eq!(s.names_of(&exact, "alice").unwrap(), ["alice"]);
}

fn attempt(user: &str, at: i64, passed_on: bool) -> OffCampusAttempt<'_> {
    OffCampusAttempt {
        user,
        at,
        ip: Some("203.0.113.9"),
        service: Some("imap"),
        passed_on,
    }
}

#[test]
fn offcampus_attempts_are_counted_per_user_and_day() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let mut admin = Store::open_for_admin(&path).unwrap();
    admin.create(&new_cred("alice", "phone", "abcd")).unwrap();
    let mut login = Store::open_for_login(&path).unwrap();
    let policy = Enforcement::default();
    let day0 = 20_000 * 86_400;
    for (user, at, passed) in [
        ("bob", day0 + 10, false),
        ("bob", day0 + 20, true),
        ("alice", day0 + 30, false),
        ("bob", day0 + 86_400 + 5, false),
    ] {
        login
            .record_offcampus(&attempt(user, at, passed), &policy)
            .unwrap();
    }
    let last = OffCampusAttempt {
        ip: Some("198.51.100.7"),
        service: Some("smtp"),
        ..attempt("bob", day0 + 86_400 + 9, true)
    };
    login.record_offcampus(&last, &policy).unwrap();

    let (rows, overflow) = admin.report(20_000, day0 + 86_400 + 10).unwrap();
    assert_eq!(overflow, ReportOverflow::default());
    assert_eq!(rows.len(), 2);
    let bob = &rows[0];
    assert_eq!(
        (bob.user.as_str(), bob.refused, bob.passed_on, bob.days),
        ("bob", 2, 2, 2)
    );
    assert_eq!(bob.last_at, day0 + 86_400 + 9);
    assert_eq!(bob.last_ip.as_deref(), Some("198.51.100.7"));
    assert_eq!(bob.last_service.as_deref(), Some("smtp"));
    assert_eq!((bob.app_passwords, bob.exempt_until), (0, None));
    assert_eq!((rows[1].user.as_str(), rows[1].app_passwords), ("alice", 1));
    // --since the second day: only that day's rows.
    let (rows, _) = admin.report(20_001, day0 + 86_400 + 10).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].refused, rows[0].passed_on, rows[0].days),
        (1, 1, 1)
    );

    let stats = admin.stats(day0 + 86_400 + 10).unwrap();
    assert_eq!(
        stats.today,
        DayCounts {
            refused: 1,
            passed_on: 1,
            users: 1
        }
    );
    assert_eq!(
        stats.yesterday,
        DayCounts {
            refused: 2,
            passed_on: 1,
            users: 2
        }
    );
    assert_eq!((stats.active, stats.users), (1, 1));
}

#[test]
fn report_rows_are_bounded_by_retention_and_users_per_day() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let admin = Store::open_for_admin(&path).unwrap();
    let mut login = Store::open_for_login(&path).unwrap();
    let policy = Enforcement {
        report_retention_days: 3,
        report_max_users_per_day: 2,
        ..Enforcement::default()
    };
    let day = |d: i64| d * 86_400 + 100;
    for user in ["a", "b", "c", "d"] {
        login
            .record_offcampus(&attempt(user, day(100), false), &policy)
            .unwrap();
    }
    // The first two users of the day have rows; the others are counted in total only,
    // and a user with a row keeps counting there.
    login
        .record_offcampus(&attempt("a", day(100) + 1, true), &policy)
        .unwrap();
    login
        .record_offcampus(&attempt("c", day(100) + 2, true), &policy)
        .unwrap();
    let (rows, overflow) = admin.report(0, day(100)).unwrap();
    let users: Vec<&str> = rows.iter().map(|r| r.user.as_str()).collect();
    assert_eq!(users, ["a", "b"]);
    assert_eq!(
        overflow,
        ReportOverflow {
            refused: 2,
            passed_on: 1
        }
    );
    assert_eq!(admin.stats(day(100)).unwrap().today.refused, 4);

    // Day 102 keeps days 100..=102; the first new row of day 103 deletes day 100.
    login
        .record_offcampus(&attempt("a", day(102), false), &policy)
        .unwrap();
    assert_eq!(admin.report(0, day(102)).unwrap().0.len(), 2);
    login
        .record_offcampus(&attempt("a", day(103), false), &policy)
        .unwrap();
    let (rows, overflow) = admin.report(0, day(103)).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].days, rows[0].refused), (2, 2));
    assert_eq!(overflow, ReportOverflow::default());
}

#[test]
fn exemptions_grant_replace_expire_and_end() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let mut admin = Store::open_for_admin(&path).unwrap();
    let grant = |user: &str, until: i64| Exemption {
        user: user.into(),
        expires_at: until,
        reason: Some("old printer".into()),
        granted_by: "helpdesk".into(),
        granted_at: 100,
    };
    assert_eq!(admin.exempt(&grant("alice", 1_000)).unwrap(), None);
    assert_eq!(
        admin.exempt(&grant("alice", 2_000)).unwrap(),
        Some(grant("alice", 1_000))
    );
    admin.exempt(&grant("bob", 500)).unwrap();
    let mut login = Store::open_for_login(&path).unwrap();
    assert_eq!(login.exempt_until("alice", 600).unwrap(), Some(2_000));
    assert_eq!(login.exempt_until("bob", 499).unwrap(), Some(500));
    assert_eq!(login.exempt_until("bob", 500).unwrap(), None);
    assert_eq!(login.exempt_until("carol", 0).unwrap(), None);
    assert_eq!(
        admin.exemptions().unwrap(),
        vec![grant("alice", 2_000), grant("bob", 500)]
    );
    let stats = admin.stats(600).unwrap();
    assert_eq!((stats.exemptions_active, stats.exemptions_expired), (1, 1));
    assert_eq!(
        admin.unexempt("alice").unwrap(),
        Some(grant("alice", 2_000))
    );
    assert_eq!(admin.unexempt("alice").unwrap(), None);
    assert_eq!(login.exempt_until("alice", 600).unwrap(), None);
}

#[test]
fn prune_deletes_exactly_what_matching_lists() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let mut s = Store::open_for_admin(&path).unwrap();
    let at = |user, label, tag, created_at, expires_at| NewCredential {
        created_at,
        expires_at,
        ..new_cred(user, label, tag)
    };
    s.create(&at("alice", "old", "aaaa", 100, Some(500)))
        .unwrap();
    s.create(&at("alice", "new", "bbbb", 900, Some(5_000)))
        .unwrap();
    s.create(&at("bob", "unused", "cccc", 100, None)).unwrap();
    let used = s.create(&at("bob", "used", "dddd", 100, None)).unwrap();
    Store::open_for_login(&path)
        .unwrap()
        .record_use(used.id, 800, None, None)
        .unwrap();
    let labels = |v: Vec<Credential>| v.into_iter().map(|c| c.label).collect::<Vec<_>>();

    let expired = CredentialFilter::ExpiredAt(1_000);
    assert_eq!(labels(s.matching(expired, None).unwrap()), ["old"]);
    let unused = CredentialFilter::UnusedSince(700);
    assert_eq!(labels(s.matching(unused, None).unwrap()), ["old", "unused"]);
    assert_eq!(labels(s.matching(unused, Some("bob")).unwrap()), ["unused"]);
    assert_eq!(labels(s.prune(unused, Some("bob")).unwrap()), ["unused"]);
    assert_eq!(labels(s.prune(expired, None).unwrap()), ["old"]);
    assert_eq!(labels(s.list(None).unwrap()), ["new", "used"]);
    assert!(s.prune(expired, None).unwrap().is_empty());
}

#[test]
fn can_record_tells_read_only_from_writable() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    Store::open_for_admin(&path).unwrap();
    assert!(Store::open_for_login(&path).unwrap().can_record().unwrap());
    if crate::store::tests::running_as_root() {
        return; // root writes whatever the modes say
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o440)).unwrap();
    assert!(!Store::open_for_login(&path).unwrap().can_record().unwrap());
}

pub(crate) fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
    })
}

#[test]
fn lazy_store_opens_only_on_use() {
    let dir = tempfile::tempdir().unwrap();
    let mut lazy = LazyStore::new(&dir.path().join("none.db"));
    assert!(matches!(
        lazy.lookup("a", "abcd"),
        Err(StoreError::Missing(_))
    ));
}
