//! Tests of the trust rule: owners, modes and directories of the files that may decide a login.

use super::*;
use std::os::unix::fs::PermissionsExt;

const ME: u32 = 1000;
const MINE: u32 = 1000;
const PACKAGE: u32 = 990;
const OTHER: u32 = 1001;
const OTHERS: u32 = 1001;

fn fields(uid: u32, gid: u32, mode: u32, who: &Identity, kind: Kind) -> Result<(), String> {
    judge_fields(Path::new("/x"), kind, (uid, gid, mode), who, true).map_err(|e| e.to_string())
}

#[test]
fn owner_root_or_self_writable_by_own_groups_only() {
    let me = Identity::new(ME, vec![MINE, PACKAGE], Some(PACKAGE));
    for (uid, gid, mode) in [
        (0, 0, 0o644),
        (ME, MINE, 0o600),
        (0, PACKAGE, 0o660),
        (ME, OTHERS, 0o640),
    ] {
        assert_eq!(
            fields(uid, gid, mode, &me, Kind::File),
            Ok(()),
            "{uid} {gid} {mode:o}"
        );
    }
    let e = fields(OTHER, MINE, 0o600, &me, Kind::File).unwrap_err();
    assert!(e.contains("owned by") && e.contains("chown root /x"), "{e}");
    let e = fields(0, OTHERS, 0o660, &me, Kind::File).unwrap_err();
    assert!(
        e.contains("writable by group") && e.contains("chmod g-w /x"),
        "{e}"
    );
    let e = fields(0, 0, 0o666, &me, Kind::File).unwrap_err();
    assert!(
        e.contains("every user") && e.contains("chmod o-w /x"),
        "{e}"
    );
    // A link's mode means nothing; its owner does.
    assert_eq!(fields(ME, OTHERS, 0o777, &me, Kind::Link), Ok(()));
    assert!(fields(OTHER, MINE, 0o777, &me, Kind::Link).is_err());
}

#[test]
fn sticky_directories_only_where_allowed() {
    let me = Identity::new(ME, vec![MINE], None);
    assert_eq!(fields(0, 0, 0o1777, &me, Kind::Directory), Ok(()));
    assert!(fields(0, 0, 0o777, &me, Kind::Directory).is_err());
    assert!(fields(0, 0, 0o1777, &me, Kind::File).is_err());
    let e = judge_fields(
        Path::new("/tmp"),
        Kind::Directory,
        (0, 0, 0o1777),
        &me,
        false,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("directory of its own"), "{e}");
}

#[test]
fn root_trusts_the_package_group_others_only_their_own() {
    let root = Identity::new(0, vec![0], Some(PACKAGE));
    assert_eq!(fields(0, PACKAGE, 0o660, &root, Kind::File), Ok(()));
    assert_eq!(fields(0, PACKAGE, 0o2770, &root, Kind::Directory), Ok(()));
    assert!(fields(0, OTHERS, 0o660, &root, Kind::File).is_err());
    let root_without_group = Identity::new(0, vec![0], None);
    assert!(fields(0, PACKAGE, 0o660, &root_without_group, Kind::File).is_err());
    // An ordinary user outside the package group does not trust it.
    let outsider = Identity::new(ME, vec![MINE], Some(PACKAGE));
    assert!(fields(0, PACKAGE, 0o660, &outsider, Kind::File).is_err());
}

fn me() -> Identity {
    Identity::of_process()
}

fn tempdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    dir
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn walk_resolves_links_and_checks_every_directory() {
    let dir = tempdir();
    let real = dir.path().join("real");
    std::fs::create_dir(&real).unwrap();
    std::fs::write(real.join("f"), "x").unwrap();
    std::os::unix::fs::symlink(&real, dir.path().join("link")).unwrap();
    std::os::unix::fs::symlink("../real/f", real.join("rel")).unwrap();
    let canonical = std::fs::canonicalize(real.join("f")).unwrap();
    let f = open(&dir.path().join("link/f"), &me(), Parent::Checked).unwrap();
    assert_eq!(f.path, canonical);
    let f = open(&dir.path().join("link/rel"), &me(), Parent::Private).unwrap();
    assert_eq!(f.path, canonical);

    // A directory on the way that everyone may write, without the sticky bit.
    chmod(&real, 0o777);
    let e = open(&dir.path().join("link/f"), &me(), Parent::Checked).unwrap_err();
    assert!(
        matches!(&e, CheckError::Untrusted(t) if t.path == std::fs::canonicalize(&real).unwrap()),
        "{e}"
    );
    // With it, fine for a config, not for a database (SQLite creates files there).
    chmod(&real, 0o1777);
    assert!(open(&dir.path().join("link/f"), &me(), Parent::Checked).is_ok());
    assert!(open(&dir.path().join("link/f"), &me(), Parent::Private).is_err());
    chmod(&real, 0o755);

    // The file itself.
    chmod(&real.join("f"), 0o666);
    assert!(open(&real.join("f"), &me(), Parent::Checked).is_err());
    chmod(&real.join("f"), 0o644);

    // Missing, loops, not a file.
    assert!(
        open(&real.join("none"), &me(), Parent::Checked)
            .unwrap_err()
            .is_not_found()
    );
    std::os::unix::fs::symlink("loop", real.join("loop")).unwrap();
    assert!(matches!(
        open(&real.join("loop"), &me(), Parent::Checked),
        Err(CheckError::Io { .. })
    ));
    assert!(matches!(
        open(&real, &me(), Parent::Checked),
        Err(CheckError::Untrusted(_))
    ));
    assert!(matches!(
        open(&real.join("f/x"), &me(), Parent::Checked),
        Err(CheckError::Io { .. })
    ));
}

#[test]
fn sidecars_and_wal_header() {
    let dir = tempdir();
    let db = dir.path().join("a.db");
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.pragma_update(None, "journal_mode", "WAL").unwrap();
        c.execute_batch("CREATE TABLE t(x);").unwrap();
    }
    let checked = check_sqlite(&db, &me()).unwrap();
    assert!(checked.wal);
    std::fs::write(with_suffix(&db, "-wal"), "").unwrap();
    chmod(&with_suffix(&db, "-wal"), 0o666);
    let e = check_sqlite(&db, &me()).unwrap_err().to_string();
    assert!(e.contains("a.db-wal") && e.contains("chmod o-w"), "{e}");
    std::fs::remove_file(with_suffix(&db, "-wal")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", with_suffix(&db, "-wal")).unwrap();
    assert!(check_sqlite(&db, &me()).is_err());
}

/// Files of another ordinary user (needs root to make them).
#[test]
fn another_users_files_are_refused() {
    if sys::euid() != 0 {
        eprintln!("SKIP another_users_files_are_refused: needs root");
        return;
    }
    let dir = tempdir();
    let f = dir.path().join("f");
    std::fs::write(&f, "x").unwrap();
    std::os::unix::fs::chown(&f, Some(65534), Some(65534)).unwrap();
    let e = open(&f, &me(), Parent::Checked).unwrap_err().to_string();
    assert!(e.contains("owned by") && e.contains("uid 65534"), "{e}");
    std::os::unix::fs::chown(&f, Some(0), Some(0)).unwrap();
    std::os::unix::fs::chown(dir.path(), Some(65534), None).unwrap();
    assert!(open(&f, &me(), Parent::Checked).is_err());
    // The same file is fine for the user who owns the directory.
    let nobody = Identity::new(65534, vec![65534], None);
    chmod(dir.path(), 0o755);
    assert!(open(&f, &nobody, Parent::Checked).is_ok());
}
