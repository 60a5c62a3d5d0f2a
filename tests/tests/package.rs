//! The Debian package, the way an admin meets it: build it with `packaging/build-deb.sh`,
//! inspect it, install it, create an app password with the installed `apppw`, log in through a
//! Dovecot configured from the shipped example, then remove and purge it.
//!
//! The install test needs root and dpkg, changes the machine (package, group `apppw`) and puts
//! it back even when it fails. `APPPW_DEB=FILE` tests a prebuilt package instead of building one.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use apppw_integration_tests::dovecot::{Imap, free_port};
use apppw_integration_tests::trixie::{self, Dovecot24, Jail};
use apppw_integration_tests::{OFF_IP, bin, is_root, workspace};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const CONFIG: &str = "/etc/apppw/apppw.toml";
const DATA_DIR: &str = "/var/lib/apppw";
const CHECKPASSWORD_EXAMPLE: &str =
    "/usr/share/doc/apppw/examples/dovecot-2.3/auth-apppw-checkpassword.conf.ext";

/// Lintian tags the package is known and meant to have (overridden in the package, listed
/// here for lintian versions that do not apply the overrides); see docs/install.md.
const KNOWN_LINTIAN_WARNINGS: &[&str] = &[
    "non-standard-dir-perm",
    "non-standard-file-perm",
    "initial-upload-closes-no-bugs",
];

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn has(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn group_exists(name: &str) -> bool {
    run(Command::new("getent").args(["group", name]))
        .status
        .success()
}

fn package_installed() -> bool {
    let out = run(Command::new("dpkg-query").args(["-W", "-f=${Status}", "apppw"]));
    String::from_utf8_lossy(&out.stdout).contains("installed")
        && !String::from_utf8_lossy(&out.stdout).contains("not-installed")
}

fn multiarch() -> String {
    ok(Command::new("dpkg-architecture").arg("-qDEB_HOST_MULTIARCH"))
        .trim()
        .to_owned()
}

/// The .deb: `$APPPW_DEB`, or built by the packaging script from the already built binaries
/// (`scripts/test.sh` builds them first; the script's own `cargo build` is for people).
fn the_package(out_dir: &Path) -> PathBuf {
    if let Some(deb) = std::env::var_os("APPPW_DEB") {
        return PathBuf::from(deb);
    }
    let release = bin("apppw").parent().unwrap().to_path_buf();
    let stdout = ok(Command::new("bash")
        .arg(workspace().join("packaging/build-deb.sh"))
        .arg("--no-build")
        .arg("--out")
        .arg(out_dir)
        .env("APPPW_BIN_DIR", &release));
    let deb = PathBuf::from(stdout.lines().last().unwrap().trim());
    assert!(
        deb.is_file(),
        "the script printed {deb:?}, which is no file"
    );
    deb
}

/// Puts the machine back: stops the throwaway Dovecot, purges the package, and recreates the
/// group `apppw` if the other tests had made it (tests/src/dovecot.rs `package_group`).
struct Restore {
    dovecot_conf: Option<PathBuf>,
    /// gid and members of an `apppw` group found before the test.
    group_before: Option<(u32, Vec<String>)>,
}

impl Drop for Restore {
    fn drop(&mut self) {
        if let Some(conf) = self.dovecot_conf.take() {
            let _ = Command::new("doveadm")
                .arg("-c")
                .arg(conf)
                .arg("stop")
                .output();
        }
        // Also purges a package that was removed but not yet purged when the test failed.
        let _ = Command::new("dpkg").args(["-P", "apppw"]).output();
        // The package's postrm deletes it on purge; this is for a test that failed earlier.
        if group_exists("apppw") {
            let _ = Command::new("groupdel").arg("apppw").output();
        }
        let _ = std::fs::remove_dir_all("/etc/apppw");
        let _ = std::fs::remove_dir_all(DATA_DIR);
        if let Some((gid, members)) = &self.group_before {
            let _ = Command::new("groupadd")
                .args(["--system", "--gid", &gid.to_string(), "apppw"])
                .output();
            for m in members {
                let _ = Command::new("gpasswd").args(["-a", m, "apppw"]).output();
            }
        }
    }
}

fn mode(path: &str) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn gid_of(group: &str) -> u32 {
    let line = ok(Command::new("getent").args(["group", group]));
    line.split(':').nth(2).unwrap().parse().unwrap()
}

#[test]
fn package_builds_installs_authenticates_and_purges() {
    if !is_root() || !has("dpkg-deb") || !has("dpkg-architecture") {
        eprintln!("skipped: the package test needs root, dpkg-deb and dpkg-architecture");
        return;
    }
    if package_installed() {
        eprintln!("skipped: apppw is already installed on this machine; the test would remove it");
        return;
    }
    if Path::new("/etc/apppw").exists() || Path::new(DATA_DIR).exists() {
        eprintln!("skipped: /etc/apppw or {DATA_DIR} exists; purging would delete it");
        return;
    }
    // The other tests make the group as the package does (tests/src/dovecot.rs); no test of
    // this binary uses it meanwhile. It goes for the install to make it, and comes back.
    let group_before = group_exists("apppw").then(|| {
        let line = ok(Command::new("getent").args(["group", "apppw"]));
        let f: Vec<&str> = line.trim().split(':').collect();
        let members = f[3]
            .split(',')
            .filter(|m| !m.is_empty())
            .map(str::to_owned)
            .collect();
        (f[2].parse().unwrap(), members)
    });
    let tmp = tempfile::Builder::new()
        .prefix("apppw-pkg.")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let deb = the_package(tmp.path());

    inspect_contents(&deb, tmp.path());
    inspect_control(&deb, tmp.path());
    run_lintian(&deb);

    let mut restore = Restore {
        dovecot_conf: None,
        group_before,
    };
    if restore.group_before.is_some() {
        ok(Command::new("groupdel").arg("apppw"));
    }
    ok(Command::new("dpkg").arg("-i").arg(&deb));
    check_installed();

    // The first app password, the way the README's quick start and docs/install.md say.
    let config = std::fs::read_to_string(CONFIG).unwrap();
    assert!(config.contains("\ncampus = []"), "{config}");
    std::fs::write(
        CONFIG,
        config.replace("\ncampus = []", "\ncampus = [\"192.0.2.0/24\"]"),
    )
    .unwrap();
    let explain = ok(Command::new("/usr/bin/apppw").args(["explain", "192.0.2.10"]));
    assert!(explain.starts_with("campus"), "{explain}");
    let created = ok(Command::new("/usr/bin/apppw").args(["create", "alice", "phone", "--json"]));
    let created: serde_json::Value = serde_json::from_str(&created).unwrap();
    let password = created["password"].as_str().unwrap().to_owned();
    let db = format!("{DATA_DIR}/apppw.db");
    let meta = std::fs::metadata(&db).unwrap();
    assert_eq!(
        meta.gid(),
        gid_of("apppw"),
        "the setgid directory gives the database its group"
    );
    // Group-writable, so that logins can record their last use; never world-readable.
    assert_eq!(
        meta.mode() & 0o777,
        0o660,
        "database mode {:o}",
        meta.mode()
    );

    // SQLite's -wal and -shm: made by root's `apppw create`, kept, so that the Dovecot user
    // never creates them as its own (root's PAM module would refuse them).
    let sidecars = || {
        ["-wal", "-shm"].map(|s| {
            let m = std::fs::metadata(format!("{db}{s}")).unwrap();
            (m.uid(), m.gid(), m.mode() & 0o777, m.ino())
        })
    };
    let made = sidecars();
    for (uid, gid, mode, _) in made {
        assert_eq!((uid, gid, mode), (0, gid_of("apppw"), 0o660), "{made:?}");
    }
    ok(Command::new("/usr/bin/apppw").args(["migrate", "--check"]));

    if has("dovecot")
        && has("doveadm")
        && Path::new("/usr/lib/dovecot/checkpassword-reply").exists()
    {
        login_through_dovecot(tmp.path(), &mut restore, &password);
        assert_eq!(
            sidecars(),
            made,
            "the Dovecot user's login changed -wal or -shm"
        );
    } else {
        eprintln!("Dovecot step skipped: dovecot-core is not installed");
    }

    remove_and_purge();
    drop(restore);
}

/// `dpkg-deb -c`: every file where the docs say, with the right modes, owned by root, and
/// nothing else.
fn inspect_contents(deb: &Path, tmp: &Path) {
    let listing = ok(Command::new("dpkg-deb").arg("-c").arg(deb));
    let entries: Vec<(String, String, String)> = listing
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (
                f[0].to_owned(),
                f[1].to_owned(),
                f[5].trim_start_matches('.').to_owned(),
            )
        })
        .collect();
    let pam = format!("/usr/lib/{}/security/pam_apppw.so", multiarch());
    let expected = [
        ("/usr/bin/apppw", "-rwxr-xr-x"),
        ("/usr/lib/apppw/apppw-checkpassword", "-rwxr-xr-x"),
        ("/usr/lib/apppw/apppw-checkpassword-tls", "-rwxr-xr-x"),
        ("/usr/lib/tmpfiles.d/apppw.conf", "-rw-r--r--"),
        (pam.as_str(), "-rw-r--r--"),
        ("/etc/apppw/apppw.toml", "-rw-r-----"),
        ("/var/lib/apppw/", "drwxr-x---"),
        ("/usr/share/doc/apppw/copyright", "-rw-r--r--"),
        ("/usr/share/doc/apppw/changelog.Debian.gz", "-rw-r--r--"),
        ("/usr/share/man/man1/apppw.1.gz", "-rw-r--r--"),
        ("/usr/share/man/man1/apppw-create.1.gz", "-rw-r--r--"),
        ("/usr/share/man/man5/apppw.toml.5.gz", "-rw-r--r--"),
        ("/usr/share/man/man8/apppw-checkpassword.8.gz", "-rw-r--r--"),
        ("/usr/share/man/man8/pam_apppw.8.gz", "-rw-r--r--"),
        ("/usr/share/man/man1/apppw-exempt.1.gz", "-rw-r--r--"),
        ("/usr/share/man/man1/apppw-doctor.1.gz", "-rw-r--r--"),
        ("/usr/share/bash-completion/completions/apppw", "-rw-r--r--"),
        ("/usr/share/zsh/vendor-completions/_apppw", "-rw-r--r--"),
        (
            "/usr/share/fish/vendor_completions.d/apppw.fish",
            "-rw-r--r--",
        ),
        (CHECKPASSWORD_EXAMPLE, "-rw-r--r--"),
        (
            "/usr/share/doc/apppw/examples/dovecot-2.4/auth-apppw-pam.conf.ext",
            "-rw-r--r--",
        ),
        ("/usr/share/doc/apppw/examples/pam.d/dovecot", "-rw-r--r--"),
        (
            "/usr/share/doc/apppw/examples/postfix/main.cf",
            "-rw-r--r--",
        ),
        (
            "/usr/share/doc/apppw/examples/fail2ban/filter.d/apppw.conf",
            "-rw-r--r--",
        ),
        (
            "/usr/share/doc/apppw/examples/fail2ban/jail.d/apppw.local",
            "-rw-r--r--",
        ),
    ];
    for (path, perms) in expected {
        let Some((p, _, _)) = entries.iter().find(|(_, _, name)| name == path) else {
            panic!("{path} is not in the package:\n{listing}");
        };
        assert_eq!(p, perms, "mode of {path}");
    }
    for (perms, owner, path) in &entries {
        assert_eq!(owner, "root/root", "{path}");
        let allowed = ["/", "/etc/", "/etc/apppw/", "/var/", "/var/lib/"].contains(&path.as_str())
            || path.starts_with("/etc/apppw/")
            || path.starts_with("/var/lib/apppw/")
            || path.starts_with("/usr/");
        assert!(allowed, "unexpected path {path} in the package");
        // No setuid/setgid in the archive (postinst sets the one setgid bit), nothing
        // world-writable.
        assert!(
            !perms.contains('s') && perms.as_bytes()[8] != b'w',
            "{perms} {path}"
        );
    }

    // Stripped: no symbol table, no debug sections.
    let root = tmp.join("contents");
    ok(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&root));
    for elf in [
        "usr/bin/apppw",
        "usr/lib/apppw/apppw-checkpassword",
        "usr/lib/apppw/apppw-checkpassword-tls",
        &pam[1..],
    ] {
        let sections = ok(Command::new("readelf").arg("-SW").arg(root.join(elf)));
        assert!(
            !sections.contains(".symtab") && !sections.contains(".debug_"),
            "{elf} is not stripped"
        );
    }
}

/// Control fields and maintainer scripts.
fn inspect_control(deb: &Path, tmp: &Path) {
    let field = |name: &str| {
        ok(Command::new("dpkg-deb").arg("-f").arg(deb).arg(name))
            .trim()
            .to_owned()
    };
    assert_eq!(field("Package"), "apppw");
    let version = field("Version");
    assert!(
        version.starts_with(&format!("{}-", env!("CARGO_PKG_VERSION"))),
        "Version {version} is not the workspace version {}",
        env!("CARGO_PKG_VERSION")
    );
    let arch = ok(Command::new("dpkg").arg("--print-architecture"));
    assert_eq!(field("Architecture"), arch.trim());
    let depends = field("Depends");
    for dep in ["libc6", "libpam0g", "libsodium23", "libssl3", "adduser"] {
        assert!(depends.contains(dep), "Depends lacks {dep}: {depends}");
    }
    assert!(field("Description").contains("application passwords"));

    let control = tmp.join("control");
    ok(Command::new("dpkg-deb").arg("-e").arg(deb).arg(&control));
    let conffiles = std::fs::read_to_string(control.join("conffiles")).unwrap();
    assert_eq!(conffiles.trim(), CONFIG);
    for script in ["postinst", "postrm"] {
        let path = control.join(script);
        assert_eq!(
            mode(path.to_str().unwrap()) & 0o111,
            0o111,
            "{script} is not executable"
        );
        ok(Command::new("sh").arg("-n").arg(&path));
    }
    let postinst = std::fs::read_to_string(control.join("postinst")).unwrap();
    assert!(postinst.contains("addgroup --system"), "{postinst}");
    assert!(postinst.contains("2770 /var/lib/apppw"), "{postinst}");
    let postrm = std::fs::read_to_string(control.join("postrm")).unwrap();
    let purge = postrm.find("purge)").expect("postrm handles purge");
    let removal = postrm
        .find("rm -rf /var/lib/apppw")
        .expect("purge removes the database");
    assert!(
        removal > purge,
        "the database is removed outside the purge branch:\n{postrm}"
    );

    // md5sums covers every packaged file but the conffile.
    let md5sums = std::fs::read_to_string(control.join("md5sums")).unwrap();
    assert!(md5sums.contains("  usr/bin/apppw\n"), "{md5sums}");
    assert!(!md5sums.contains("etc/apppw"), "{md5sums}");
}

/// Lintian, when installed: errors and unknown warnings fail; the rest is printed.
fn run_lintian(deb: &Path) {
    if !has("lintian") {
        eprintln!("lintian step skipped: lintian is not installed");
        return;
    }
    let out = run(Command::new("lintian").arg("--pedantic").arg("-I").arg(deb));
    let report = String::from_utf8_lossy(&out.stdout);
    eprintln!("lintian:\n{report}");
    for line in report.lines() {
        let tag = line.split_whitespace().nth(2).unwrap_or("");
        if line.starts_with("E:") {
            panic!("lintian error: {line}");
        }
        if line.starts_with("W:") && !KNOWN_LINTIAN_WARNINGS.contains(&tag) {
            panic!("new lintian warning (fix it, or list it in docs/install.md and here): {line}");
        }
    }
}

/// After `dpkg -i`: the group, the permissions postinst sets, and the files in place.
fn check_installed() {
    assert!(
        group_exists("apppw"),
        "postinst did not create the group apppw"
    );
    let apppw = gid_of("apppw");
    for (path, want) in [
        ("/etc/apppw", 0o750),
        (CONFIG, 0o640),
        (DATA_DIR, 0o2770),
        // The Argon2 admission gate's directory (tmpfiles.d).
        ("/run/apppw", 0o2770),
    ] {
        let meta = std::fs::metadata(path).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (0, apppw), "owner of {path}");
        assert_eq!(mode(path), want, "mode of {path}: {:o}", mode(path));
    }
    if run(Command::new("getent").args(["passwd", "dovecot"]))
        .status
        .success()
    {
        let groups = ok(Command::new("id").args(["-nG", "dovecot"]));
        assert!(
            groups.split_whitespace().any(|g| g == "apppw"),
            "dovecot is not in apppw: {groups}"
        );
    }
    let pam = format!("/usr/lib/{}/security/pam_apppw.so", multiarch());
    for f in [
        "/usr/bin/apppw",
        "/usr/lib/apppw/apppw-checkpassword",
        "/usr/lib/apppw/apppw-checkpassword-tls",
        pam.as_str(),
    ] {
        assert!(Path::new(f).is_file(), "{f} is not installed");
    }
    // Nothing changed since unpacking (the md5sums match).
    ok(Command::new("dpkg").args(["--verify", "apppw"]));
    // The man pages are where man finds them.
    if has("man") {
        for page in [
            "apppw",
            "apppw-create",
            "apppw.toml",
            "apppw-checkpassword",
            "pam_apppw",
        ] {
            let path = ok(Command::new("man").args(["-w", page]));
            assert!(path.contains("/usr/share/man/"), "man -w {page}: {path}");
        }
    }
    // The installed CLI runs with the installed config.
    let out = ok(Command::new("/usr/bin/apppw").args(["explain", OFF_IP]));
    assert!(out.starts_with("off-campus"), "{out}");
    // bash finds the completion where bash-completion looks for it.
    let out = ok(Command::new("bash")
        .arg("-c")
        .arg("source /usr/share/bash-completion/completions/apppw && complete -p apppw"));
    assert!(out.contains("apppw"), "{out}");
}

/// A throwaway Dovecot (own base_dir, no listener) whose passdb is the shipped example,
/// included unchanged: installed checkpassword backend, installed config, installed database.
fn login_through_dovecot(tmp: &Path, restore: &mut Restore, password: &str) {
    let dir = tmp.join("dovecot");
    for d in ["run", "state"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let conf = dir.join("dovecot.conf");
    let log = dir.join("dovecot.log");
    std::fs::write(
        &conf,
        format!(
            "base_dir = {run}\nstate_dir = {state}\nlog_path = {log}\n\
             instance_name = apppw-package-test\nprotocols = imap\nlisten = 127.0.0.1\n\
             ssl = no\ndisable_plaintext_auth = no\nauth_mechanisms = plain login\n\
             !include {CHECKPASSWORD_EXAMPLE}\n\
             service imap-login {{\n  inet_listener imap {{\n    port = 0\n  }}\n}}\n",
            run = dir.join("run").display(),
            state = dir.join("state").display(),
            log = log.display(),
        ),
    )
    .unwrap();
    // Dovecot daemonizes: its daemon would keep captured output pipes open for ever.
    let started = Command::new("dovecot")
        .arg("-c")
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    restore.dovecot_conf = Some(conf.clone());
    assert!(
        started.success(),
        "dovecot did not start:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );

    let auth = |pass: &str, rip: &str| {
        run(Command::new("doveadm")
            .arg("-c")
            .arg(&conf)
            .args(["auth", "test", "-x", "service=imap", "-x"])
            .arg(format!("rip={rip}"))
            .args(["alice", pass]))
    };
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();

    let good = auth(password, OFF_IP);
    assert_eq!(
        good.status.code(),
        Some(0),
        "the app password was refused:\n{}{}\nDovecot log:\n{}",
        String::from_utf8_lossy(&good.stdout),
        String::from_utf8_lossy(&good.stderr),
        log_text()
    );
    let bad = auth("wrong password entirely", OFF_IP);
    assert_eq!(
        bad.status.code(),
        Some(77),
        "a wrong password was not refused:\n{}",
        log_text()
    );
    assert!(
        !log_text().contains("exited with status 111"),
        "temporary failure:\n{}",
        log_text()
    );

    // The logins went through the host's Argon2 admission gate, which the checkpassword
    // backend (the dovecot user, group apppw) could make in /run/apppw.
    let gate = std::fs::read_to_string("/run/apppw/argon2-gate").unwrap_or_default();
    assert!(
        gate.starts_with("apppw-argon2-gate 1 semid="),
        "gate file: {gate:?}\n{}",
        log_text()
    );
    assert!(
        !log_text().contains("admission gate"),
        "a problem with the gate:\n{}",
        log_text()
    );

    // The login was recorded (the database is group-writable, as docs/install.md says).
    let list = ok(Command::new("/usr/bin/apppw").args(["list", "alice", "--json"]));
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list[0]["last_used_ip"], OFF_IP, "{list}");
    assert_eq!(list[0]["last_used_service"], "imap", "{list}");

    ok(Command::new("doveadm").arg("-c").arg(&conf).arg("stop"));
    restore.dovecot_conf = None;
}

/// `dpkg -r` keeps the config and the data; `dpkg -P` leaves nothing of apppw behind.
fn remove_and_purge() {
    let pam = format!("/usr/lib/{}/security/pam_apppw.so", multiarch());
    ok(Command::new("dpkg").args(["-r", "apppw"]));
    for gone in [
        "/usr/bin/apppw",
        "/usr/lib/apppw",
        pam.as_str(),
        "/usr/share/doc/apppw",
    ] {
        assert!(
            !Path::new(gone).exists(),
            "{gone} is still there after dpkg -r"
        );
    }
    assert!(Path::new(CONFIG).exists(), "dpkg -r removed the conffile");
    assert!(
        Path::new(&format!("{DATA_DIR}/apppw.db")).exists(),
        "dpkg -r removed the data"
    );
    assert!(group_exists("apppw"), "dpkg -r removed the group");

    ok(Command::new("dpkg").args(["-P", "apppw"]));
    for gone in [
        "/etc/apppw",
        DATA_DIR,
        "/run/apppw",
        "/usr/share/man/man1/apppw.1.gz",
    ] {
        assert!(
            !Path::new(gone).exists(),
            "{gone} is still there after dpkg -P"
        );
    }
    assert!(!group_exists("apppw"), "the group apppw survived the purge");
    let status = run(Command::new("dpkg-query").args(["-W", "-f=${db:Status-Status}", "apppw"]));
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.is_empty() || status == "not-installed",
        "dpkg still knows apppw: {status}"
    );
}

/// The fail2ban filter bans refused logins, and only those, whichever front-end logged them.
#[test]
fn fail2ban_filter_matches_refusals_only() {
    if !has("fail2ban-regex") || !Path::new("/etc/fail2ban/filter.d/common.conf").exists() {
        eprintln!("skipped: fail2ban is not installed");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let filter_dir = tmp.path().join("filter.d");
    std::fs::create_dir(&filter_dir).unwrap();
    std::fs::copy(
        workspace().join("packaging/examples/fail2ban/filter.d/apppw.conf"),
        filter_dir.join("apppw.conf"),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        "/etc/fail2ban/filter.d/common.conf",
        filter_dir.join("common.conf"),
    )
    .unwrap();
    let log = tmp.path().join("auth.log");
    let lines = [
        "pam_apppw(imap:auth): service=imap user=alice rhost=203.0.113.1 result=refused reason=no-match",
        "apppw-checkpassword: service=imap user=alice rhost=203.0.113.2 result=refused reason=primary-off-campus-refused",
        "apppw-checkpassword: service=smtp user=bob rhost=2001:db8::3 result=refused reason=expired",
        // A user name cannot smuggle in another address: spaces and '=' are escaped.
        "apppw-checkpassword: service=imap user=x\\x20rhost\\x3d198.51.100.1 rhost=203.0.113.4 result=refused reason=no-match",
        "pam_apppw(imap:auth): service=imap user=alice rhost=203.0.113.9 result=accepted reason=app-password label=phone",
        "pam_apppw(imap:auth): service=imap user=alice rhost=192.0.2.5 result=continue reason=primary-on-campus",
        "apppw-checkpassword: service=imap user=carol rhost=203.0.113.11 result=tempfail reason=store-unavailable",
        "apppw-checkpassword: service=imap user=dave rhost=- result=refused reason=no-match",
        "apppw-checkpassword: cannot read config file /etc/apppw/apppw.toml: Permission denied",
        // Report mode and exemptions let these through on purpose: banning them would break
        // exactly the users the rollout is waiting for.
        "pam_apppw(imap:auth): service=imap user=erin rhost=203.0.113.12 result=would-refuse reason=primary-off-campus-refused detail=report-mode",
        "apppw(exempt): admin=helpdesk1 uid=0 user=erin until=2026-12-15T00:00:00Z reason=",
    ];
    let text: String = lines
        .iter()
        .enumerate()
        .map(|(i, l)| format!("Nov 25 12:00:{i:02} mail apppw[{}]: {l}\n", 1000 + i))
        .collect();
    std::fs::write(&log, text).unwrap();
    let out = ok(Command::new("fail2ban-regex")
        .arg("--verbose")
        .arg(&log)
        .arg(filter_dir.join("apppw.conf")));
    assert!(
        out.contains("11 lines, 0 ignored, 4 matched, 7 missed"),
        "{out}"
    );
    for banned in ["203.0.113.1", "203.0.113.2", "2001:db8::3", "203.0.113.4"] {
        assert!(
            out.contains(&format!("|      {banned}  ")),
            "{banned} not banned:\n{out}"
        );
    }
    assert!(
        !out.contains("|      198.51.100.1"),
        "forged address banned:\n{out}"
    );
}

/// Every man page, generated and hand-written, renders without a warning.
#[test]
fn man_pages_render_without_warnings() {
    if !has("man") || !has("groff") {
        eprintln!("skipped: man and groff are not installed");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    ok(Command::new(bin("apppw-manpages"))
        .arg(tmp.path())
        .arg("2025-01-01"));
    let mut pages: Vec<PathBuf> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    for e in std::fs::read_dir(workspace().join("packaging/man")).unwrap() {
        pages.push(e.unwrap().path());
    }
    assert!(pages.len() >= 9, "{pages:?}");
    for page in pages {
        let out = run(Command::new("man")
            .args(["--warnings", "-l"])
            .arg(&page)
            .env("MANWIDTH", "80")
            .env("MAN_KEEP_STDERR", "1"));
        assert!(
            out.status.success(),
            "{}: {}",
            page.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stderr.is_empty(),
            "{} renders with warnings:\n{}",
            page.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("NAME"),
            "{}",
            page.display()
        );
    }
}

/// The same .deb on Debian 13 with Dovecot 2.4, as an administrator meets it there: in a jail on
/// the trixie root of `scripts/trixie-root.sh`, the README's quick start for Debian 13 runs
/// as written (only `systemctl`, absent without systemd, starts Dovecot instead),
/// then logins go through the installed `pam_apppw.so`, the installed example configurations and
/// the installed `apppw`, whose revoke flushes Dovecot's auth cache with the default settings.
#[test]
fn package_installs_and_works_on_debian_13_with_dovecot_24() {
    let test = "package_installs_and_works_on_debian_13_with_dovecot_24";
    if !is_root() || !has("dpkg-deb") || !has("dpkg-architecture") {
        eprintln!("skipped: the package test needs root, dpkg-deb and dpkg-architecture");
        return;
    }
    if !trixie::available(test) {
        return;
    }
    let tmp = tempfile::Builder::new()
        .prefix("apppw-pkg13.")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let deb = the_package(tmp.path());
    let jail = Jail::new(&[tmp.path()]);

    // Paths and ports of this test only; everything else is Debian's configuration.
    let port = free_port();
    jail.write(
        "/etc/dovecot/local.conf",
        &format!(
            "listen = 127.0.0.1\nlog_path = {share}/dovecot.log\nauth_failure_delay = 0\n\
             login_trusted_networks = 127.0.0.0/8\n\
             service imap-login {{\n  inet_listener imap {{\n    port = {port}\n  }}\n  \
             inet_listener imaps {{\n    port = 0\n  }}\n}}\n\
             service submission-login {{\n  inet_listener submission {{\n    port = 0\n  }}\n  \
             inet_listener submissions {{\n    port = 0\n  }}\n}}\n",
            share = jail.share().display()
        ),
    );
    let sequence = readme_block("<!-- tested: Debian 13 install -->");
    let file = deb.file_name().unwrap().to_str().unwrap();
    assert!(
        sequence.contains("./apppw_0.1.0-1_amd64.deb"),
        "the README's sequence installs another file name:\n{sequence}"
    );
    // The lines up to the first app password; the test creates its own.
    let steps: String = sequence
        .lines()
        .take_while(|l| !l.starts_with("apppw create"))
        .map(|l| l.replace("./apppw_0.1.0-1_amd64.deb", &format!("./{file}")) + "\n")
        .collect();
    let out = jail
        .command("bash")
        .arg("-c")
        .arg(format!(
            "set -e\ncd {tmp}\n\
             systemctl() {{ doveadm stop >/dev/null 2>&1 || true; \
             dovecot </dev/null >/dev/null 2>{share}/startup.log; }}\n{steps}",
            tmp = tmp.path().display(),
            share = jail.share().display()
        ))
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "the README's sequence failed:\n{steps}\n{said}"
    );
    let d = Dovecot24::attach(&jail, "/etc/dovecot/dovecot.conf".into(), port);
    // The sequence's own check shows the passdb with the cache off.
    assert!(said.contains("use_cache = no"), "{said}");

    // Installed, with its dependencies resolved from Debian 13.
    let status = jail.sh("dpkg-query -W -f='${Status} ${Version}' apppw");
    assert!(status.starts_with("install ok installed"), "{status}");
    jail.sh("apt-get check -qq");
    let groups = jail.sh("id -nG dovecot");
    assert!(groups.split_whitespace().any(|g| g == "apppw"), "{groups}");
    assert_eq!(
        jail.sh("stat -c '%U:%G %a' /var/lib/apppw /etc/apppw/apppw.toml"),
        "root:apppw 2770\nroot:apppw 640\n"
    );

    // The site's networks (edited by hand in the README), a user with a normal password.
    let config = std::fs::read_to_string(jail.path(CONFIG)).unwrap();
    let config = config
        .replace(
            "\ncampus = []",
            "\ncampus = [\"192.0.2.0/24\", \"2001:db8::/48\"]",
        )
        .replace("\nexcept = []", "\nexcept = [\"192.0.2.128/25\"]");
    std::fs::write(jail.path(CONFIG), config).unwrap();
    jail.sh("useradd -m alice && echo 'alice:Normal-Pass-2026' | chpasswd");
    let created = jail.sh("apppw create alice phone --json");
    let created: serde_json::Value = serde_json::from_str(&created).unwrap();
    let app = created["password"].as_str().unwrap().to_owned();

    let accepts = |pass: &str, rip: &str| d.accepts(rip, "alice", pass);
    assert!(accepts(&app, OFF_IP), "{}", d.log());
    assert!(!accepts("Normal-Pass-2026", OFF_IP), "{}", d.log());
    assert!(!accepts("Normal-Pass-2026", "192.0.2.200"), "{}", d.log());
    assert!(accepts("Normal-Pass-2026", "192.0.2.10"), "{}", d.log());
    assert_eq!(
        d.imap_login(Some(OFF_IP), "alice", &app),
        Imap::LoggedIn,
        "{}",
        d.log()
    );

    // Revoking flushes Dovecot's auth cache with no [dovecot] settings at all.
    let revoked = jail.sh("apppw revoke alice phone");
    assert!(
        revoked.contains("flushed alice from Dovecot's auth cache"),
        "{revoked}"
    );
    assert!(!accepts(&app, OFF_IP), "{}", d.log());
}

/// The fenced shell block that follows `marker` in the README.
fn readme_block(marker: &str) -> String {
    let readme = std::fs::read_to_string(workspace().join("README.md")).unwrap();
    let after = &readme[readme.find(marker).expect("marker in README.md") + marker.len()..];
    let start = after
        .find("```sh\n")
        .expect("a ```sh block after the marker")
        + 6;
    let end = after[start..].find("```").unwrap();
    after[start..start + end].to_owned()
}
