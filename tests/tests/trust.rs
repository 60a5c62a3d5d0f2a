//! SPEC "Trust": the files that decide a login (config, SQLite database, its `-wal`/`-shm`,
//! the directories above them) must belong to root or to the user the front-end runs as, and
//! be writable by nobody else but groups it belongs to. Each rule is put in front of both
//! front-ends: `pam_apppw.so` (pamtester under pam_wrapper, as root like Dovecot's auth worker
//! or su) and `apppw-checkpassword` (as root, or as `dovecot` in the package's group `apppw`).
//!
//! Needs root (to make files of other users and to run as `dovecot`); prints a SKIP line
//! otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use apppw_integration_tests::dovecot::{self, package_group, share_with_dovecot};
use apppw_integration_tests::pam::{
    PamResult, ServiceDir, apppw_line, pam_wrapper_available, primary_line,
};
use apppw_integration_tests::{CAMPUS_IP, OFF_IP, TestEnv, checkpassword_command, is_root};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const NORMAL: &str = "Winter-2026-normal";
/// Cheap Argon2: these tests are about files, not hashing.
const FAST: &str = "[argon2]\nmemory_kib = 1024\niterations = 1\n";
const NOBODY: u32 = 65534;

/// A config and database, a PAM service `imap` with the documented stack, a reply program.
struct Rig {
    env: TestEnv,
    services: ServiceDir,
    reply: PathBuf,
}

impl Rig {
    fn new() -> Rig {
        let env = TestEnv::sqlite(FAST);
        let services = ServiceDir::new();
        let apppw = apppw_line(&format!("config={}", env.config.display()));
        let primary = primary_line(services.dir.path(), NORMAL);
        services.add("imap", &[&apppw, &primary]);
        // Outside the rig's directory, which some tests close to all but root and apppw.
        let reply = services.dir.path().join("reply.sh");
        std::fs::write(&reply, "#!/bin/sh\necho \"USER=$USER\"\n").unwrap();
        chmod(&reply, 0o755);
        chmod(services.dir.path(), 0o755);
        Rig {
            env,
            services,
            reply,
        }
    }

    fn pam(&self, password: &str, ip: &str) -> PamResult {
        self.services
            .authenticate("imap", "alice", Some(ip), &format!("{password}\n"), &[])
    }

    /// `apppw-checkpassword --config CONFIG REPLY` as root, or through `setpriv` as `user`
    /// with that user's groups (as Dovecot starts it: initgroups).
    fn checkpassword(&self, password: &str, ip: &str, user: Option<&str>) -> Output {
        let mut cmd = match user {
            None => checkpassword_command(),
            Some(user) => {
                let mut cmd = Command::new("setpriv");
                cmd.arg(format!("--reuid={user}"))
                    .arg(format!("--regid={user}"))
                    .arg("--init-groups")
                    .arg("--")
                    .arg("/bin/sh")
                    .arg("-c")
                    .arg("exec \"$@\" 3<&0 0</dev/null")
                    .arg("sh")
                    .arg(apppw_integration_tests::bin("apppw-checkpassword"))
                    .env_clear();
                cmd
            }
        };
        cmd.arg("--config")
            .arg(&self.env.config)
            .arg(&self.reply)
            .env("SERVICE", "imap")
            .env("TCPREMOTEIP", ip);
        apppw_integration_tests::run_with_stdin(
            &mut cmd,
            format!("alice\0{password}\0\0").as_bytes(),
        )
    }

    fn sidecar(&self, suffix: &str) -> PathBuf {
        let mut p = self.env.db.clone().into_os_string();
        p.push(suffix);
        PathBuf::from(p)
    }
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn chown(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(p, Some(uid), Some(gid)).unwrap();
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[track_caller]
fn expect_pam(r: &PamResult, code: &str, what: &str) {
    assert_eq!(r.code(), code, "{what}\n{}", r.transcript());
}

/// checkpassword's configuration error: exit 111, and the message names `path` and a fix.
#[track_caller]
fn expect_tempfail_naming(o: &Output, path: &Path, fix: &str, what: &str) {
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(111), "{what}\n{}", text(o));
    assert!(
        stderr.contains(&path.display().to_string()) && stderr.contains(fix),
        "{what}: the message must name {} and the fix {fix:?}\n{}",
        path.display(),
        text(o)
    );
}

macro_rules! require_root_and_pam_wrapper {
    ($name:literal) => {
        if !is_root() {
            eprintln!("SKIP {}: needs root (files of other users)", $name);
            return;
        }
        if !pam_wrapper_available($name) {
            return;
        }
    };
}

#[test]
fn files_of_another_ordinary_user_never_decide_a_login() {
    require_root_and_pam_wrapper!("files_of_another_ordinary_user_never_decide_a_login");
    let rig = Rig::new();
    let pw = rig.env.create("alice", "phone", &[]);
    expect_pam(&rig.pam(&pw, OFF_IP), "PAM_SUCCESS", "as set up");
    assert_eq!(rig.checkpassword(&pw, OFF_IP, None).status.code(), Some(0));

    // The config belongs to an ordinary user: nothing is decided with it, not even campus.
    chown(&rig.env.config, NOBODY, NOBODY);
    for (password, ip) in [(pw.as_str(), OFF_IP), (NORMAL, CAMPUS_IP)] {
        let r = rig.pam(password, ip);
        expect_pam(
            &r,
            "PAM_SERVICE_ERR",
            &format!("config of nobody, from {ip}"),
        );
        assert_eq!(r.prompts(), 0);
        expect_tempfail_naming(
            &rig.checkpassword(password, ip, None),
            &rig.env.config,
            "chown root",
            "config of nobody",
        );
    }
    chown(&rig.env.config, 0, 0);

    // The database belongs to an ordinary user.
    chown(&rig.env.db, NOBODY, NOBODY);
    for ip in [OFF_IP, CAMPUS_IP] {
        expect_pam(
            &rig.pam(&pw, ip),
            "PAM_SERVICE_ERR",
            &format!("database of nobody, app password from {ip}"),
        );
        expect_tempfail_naming(
            &rig.checkpassword(&pw, ip, None),
            &rig.env.db,
            "chown root",
            "database of nobody",
        );
    }
    chown(&rig.env.db, 0, 0);

    // The database's directory belongs to an ordinary user (who could swap the file).
    chown(rig.env.dir.path(), NOBODY, NOBODY);
    expect_pam(
        &rig.pam(&pw, OFF_IP),
        "PAM_SERVICE_ERR",
        "directory of nobody",
    );
    expect_tempfail_naming(
        &rig.checkpassword(&pw, OFF_IP, None),
        rig.env.dir.path(),
        "chown root",
        "directory of nobody",
    );
    chown(rig.env.dir.path(), 0, 0);
    expect_pam(&rig.pam(&pw, OFF_IP), "PAM_SUCCESS", "put back");
}

#[test]
fn a_planted_or_shared_wal_file_is_refused() {
    require_root_and_pam_wrapper!("a_planted_or_shared_wal_file_is_refused");
    let rig = Rig::new();
    let pw = rig.env.create("alice", "phone", &[]);
    let wal = rig.sidecar("-wal");
    assert!(wal.exists(), "the CLI keeps -wal");

    // Replaced by one of another user (the CLI checkpointed: the real one holds nothing).
    std::fs::remove_file(&wal).unwrap();
    std::fs::write(&wal, "").unwrap();
    chown(&wal, NOBODY, NOBODY);
    chmod(&wal, 0o600);
    expect_pam(&rig.pam(&pw, OFF_IP), "PAM_SERVICE_ERR", "-wal of nobody");
    expect_tempfail_naming(
        &rig.checkpassword(&pw, OFF_IP, None),
        &wal,
        "chown root",
        "-wal of nobody",
    );

    // Root's, but writable by a group this program is not in (users).
    chown(&wal, 0, 100);
    chmod(&wal, 0o660);
    expect_pam(
        &rig.pam(&pw, OFF_IP),
        "PAM_SERVICE_ERR",
        "-wal of group users",
    );
    expect_tempfail_naming(
        &rig.checkpassword(&pw, OFF_IP, None),
        &wal,
        "chmod g-w",
        "-wal of group users",
    );
    chown(&wal, 0, 0);
    expect_pam(&rig.pam(&pw, OFF_IP), "PAM_SUCCESS", "-wal put back");

    // A database in a directory everyone may write, even with the sticky bit (like /tmp):
    // anyone could create its -wal before SQLite does.
    chmod(rig.env.dir.path(), 0o1777);
    expect_pam(
        &rig.pam(&pw, OFF_IP),
        "PAM_SERVICE_ERR",
        "sticky shared directory",
    );
    expect_tempfail_naming(
        &rig.checkpassword(&pw, OFF_IP, None),
        rig.env.dir.path(),
        "directory of its own",
        "sticky shared directory",
    );
    chmod(rig.env.dir.path(), 0o755);
}

/// The package's layout, used by checkpassword as `dovecot` (in group apppw: it records last
/// use and failure counters) and by the PAM module as root, in turn: the -wal and -shm files
/// the CLI created as root stay root's, so neither front-end ever meets a file of the other.
#[test]
fn checkpassword_as_dovecot_and_pam_as_root_share_the_package_layout() {
    require_root_and_pam_wrapper!(
        "checkpassword_as_dovecot_and_pam_as_root_share_the_package_layout"
    );
    if dovecot::user_id("dovecot").is_none() {
        eprintln!(
            "SKIP checkpassword_as_dovecot_and_pam_as_root_share_the_package_layout: no dovecot user"
        );
        return;
    }
    let rig = Rig::new();
    let apppw = package_group();
    share_with_dovecot(&rig.env);
    let pw = rig.env.create("alice", "phone", &[]);
    let owners = || {
        ["", "-wal", "-shm"].map(|s| {
            let m = std::fs::metadata(rig.sidecar(s)).unwrap();
            (m.uid(), m.gid(), m.mode() & 0o777, m.ino())
        })
    };
    let made = owners();
    for (uid, gid, mode, _) in made {
        assert_eq!((uid, gid, mode), (0, apppw, 0o660), "{made:?}");
    }

    for round in 0..3 {
        let run = rig.checkpassword(&pw, OFF_IP, Some("dovecot"));
        assert_eq!(run.status.code(), Some(0), "round {round}: {}", text(&run));
        assert!(String::from_utf8_lossy(&run.stdout).contains("USER=alice"));
        let wrong = rig.checkpassword("qqqq wwww eeee rrrr tttt yyyy", OFF_IP, Some("dovecot"));
        assert_eq!(wrong.status.code(), Some(1), "{}", text(&wrong));
        expect_pam(
            &rig.pam(&pw, OFF_IP),
            "PAM_SUCCESS",
            &format!("round {round}"),
        );
        expect_pam(
            &rig.pam(NORMAL, CAMPUS_IP),
            "PAM_SUCCESS",
            "normal on campus",
        );
        assert_eq!(
            owners(),
            made,
            "round {round}: files recreated or changed owner"
        );
    }
    // dovecot's writes arrived: the last use and the failure counter.
    let listed = rig.env.apppw(&["list", "alice", "--json"], "");
    let v: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(v[0]["last_used_ip"], OFF_IP, "{v}");
    let failures: i64 = rusqlite::Connection::open(&rig.env.db)
        .unwrap()
        .query_row("SELECT count(*) FROM failures", [], |r| r.get(0))
        .unwrap();
    assert!(failures > 0);
}

/// A database whose -wal and -shm are gone (made by an older apppw, or removed by hand): a
/// login as `dovecot` would create them as its own, which root's PAM module then refuses. It
/// refuses instead, naming the fix; `apppw list` as root creates them, owned by root.
#[test]
fn a_login_does_not_create_wal_files_root_would_refuse() {
    require_root_and_pam_wrapper!("a_login_does_not_create_wal_files_root_would_refuse");
    if dovecot::user_id("dovecot").is_none() {
        eprintln!("SKIP a_login_does_not_create_wal_files_root_would_refuse: no dovecot user");
        return;
    }
    let rig = Rig::new();
    share_with_dovecot(&rig.env);
    let pw = rig.env.create("alice", "phone", &[]);
    for s in ["-wal", "-shm"] {
        std::fs::remove_file(rig.sidecar(s)).unwrap();
    }
    let run = rig.checkpassword(&pw, OFF_IP, Some("dovecot"));
    expect_tempfail_naming(
        &run,
        &rig.sidecar("-wal"),
        "apppw list",
        "no -wal, as dovecot",
    );
    assert!(!rig.sidecar("-wal").exists() && !rig.sidecar("-shm").exists());

    let listed = rig.env.apppw(&["list"], "");
    assert!(listed.status.success(), "{}", text(&listed));
    for s in ["-wal", "-shm"] {
        assert_eq!(std::fs::metadata(rig.sidecar(s)).unwrap().uid(), 0, "{s}");
    }
    let run = rig.checkpassword(&pw, OFF_IP, Some("dovecot"));
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    expect_pam(&rig.pam(&pw, OFF_IP), "PAM_SUCCESS", "after apppw list");
}

/// `database_password_file` decides which PostgreSQL server is believed: it is checked like
/// the config. (No server is needed: the check comes before connecting.)
#[test]
fn a_database_password_file_of_another_user_is_refused() {
    if !is_root() {
        eprintln!("SKIP a_database_password_file_of_another_user_is_refused: needs root");
        return;
    }
    let env = TestEnv::with_postgres(
        "postgresql://apppw@127.0.0.1:1/apppw?connect_timeout=1",
        "database_password_file = \"db-password\"\n",
        FAST,
    );
    let secret = env.dir.path().join("db-password");
    std::fs::write(&secret, "s3cret\n").unwrap();
    chmod(&secret, 0o600);
    chown(&secret, NOBODY, NOBODY);
    let reply = env.dir.path().join("reply.sh");
    std::fs::write(&reply, "#!/bin/sh\n").unwrap();
    chmod(&reply, 0o755);
    let mut cmd = checkpassword_command();
    cmd.arg("--config")
        .arg(&env.config)
        .arg(&reply)
        .env("TCPREMOTEIP", OFF_IP);
    let out = apppw_integration_tests::run_with_stdin(
        &mut cmd,
        b"alice\0abcd efgh ijkl mnop qrst uvwx\0\0",
    );
    assert_eq!(out.status.code(), Some(111), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("db-password")
            && stderr.contains("not trusted")
            && stderr.contains("chown root"),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cret"));
}
