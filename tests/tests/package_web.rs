//! The `apppw-web` package, the way an admin meets it: build it with
//! `packaging/build-deb-web.sh` (next to the apppw package it depends on), inspect and lint it,
//! install both, check the system user, permissions, the database root created and the unit's
//! sandbox score, then start the page **from its units** and use it through its socket.
//!
//! Starting it: without systemd as PID 1 (CI containers), the socket unit is emulated with
//! `systemd-socket-activate` (systemd's own tool for the socket-activation protocol): it
//! listens on the unit's `ListenStream=`, the socket gets the unit's `SocketGroup=` and
//! `SocketMode=`, and at the first connection it executes the unit's `ExecStart=` as the unit's
//! `User=`, `Group=` and `SupplementaryGroups=` (through `setpriv`), handing over the listening
//! socket in `LISTEN_FDS` exactly as systemd does. What this cannot show is systemd's sandbox
//! itself (namespaces, seccomp); that is rated offline with `systemd-analyze security`.
//!
//! Needs root, dpkg and systemd's tools; changes the machine (packages, user apppw-web, groups)
//! and puts it back even when it fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use apppw_integration_tests::{bin, is_root, workspace};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const SERVICE: &str = "/lib/systemd/system/apppw-web.service";
const SOCKET: &str = "/lib/systemd/system/apppw-web.socket";

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
    run(Command::new("sh").args(["-c", &format!("command -v {program}")]))
        .status
        .success()
}

fn exists(kind: &str, name: &str) -> bool {
    run(Command::new("getent").args([kind, name]))
        .status
        .success()
}

fn installed(package: &str) -> bool {
    let out = run(Command::new("dpkg-query").args(["-W", "-f=${db:Status-Status}", package]));
    String::from_utf8_lossy(&out.stdout).trim() == "installed"
}

/// Puts the machine back.
struct Restore {
    server: Option<Child>,
}

impl Drop for Restore {
    fn drop(&mut self) {
        if let Some(mut c) = self.server.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("dpkg")
            .args(["-P", "apppw-web", "apppw"])
            .output();
        // The test only runs when none of these existed before it.
        let _ = Command::new("userdel").arg("apppw-web").output();
        for group in ["apppw-web", "apppw"] {
            if exists("group", group) {
                let _ = Command::new("groupdel").arg(group).output();
            }
        }
        let _ = std::fs::remove_dir_all("/etc/apppw");
        let _ = std::fs::remove_dir_all("/var/lib/apppw");
        let _ = std::fs::remove_file("/run/apppw-web.sock");
    }
}

/// The value of `key=` in a unit file (the last one wins, as in systemd).
fn unit_value(unit: &str, key: &str) -> String {
    unit.lines()
        .rev()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in the unit"))
        .trim()
        .to_owned()
}

fn build(script: &str, out_dir: &Path) -> PathBuf {
    let release = bin("apppw").parent().unwrap().to_path_buf();
    let stdout = ok(Command::new("bash")
        .arg(workspace().join(script))
        .arg("--no-build")
        .arg("--out")
        .arg(out_dir)
        .env("APPPW_BIN_DIR", &release));
    PathBuf::from(stdout.lines().last().unwrap().trim())
}

/// One HTTP request over the Unix socket, as the reverse proxy sends it.
fn request(
    socket: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut s = UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nX-Forwarded-For: 192.0.2.10\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.split(' ').nth(1).unwrap_or("0").parse().unwrap_or(0);
    (status, out)
}

fn field(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {page}"))
        + marker.len();
    page[start..].split('"').next().unwrap().to_owned()
}

#[test]
fn web_package_installs_and_its_units_serve_the_page_on_the_socket() {
    for tool in [
        "dpkg-deb",
        "dpkg-architecture",
        "systemd-socket-activate",
        "systemd-analyze",
        "setpriv",
    ] {
        if !is_root() || !has(tool) {
            eprintln!("skipped: the apppw-web package test needs root and {tool}");
            return;
        }
    }
    if installed("apppw") || installed("apppw-web") {
        eprintln!("skipped: apppw or apppw-web is installed; the test would remove it");
        return;
    }
    if exists("group", "apppw")
        || exists("passwd", "apppw-web")
        || exists("group", "apppw-web")
        || Path::new("/etc/apppw").exists()
        || Path::new("/var/lib/apppw").exists()
    {
        eprintln!("skipped: apppw's or apppw-web's user, groups or directories exist");
        return;
    }
    if !exists("group", "www-data") {
        eprintln!("skipped: no group www-data (the socket's group)");
        return;
    }
    let tmp = tempfile::Builder::new()
        .prefix("apppw-web-pkg.")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let base = build("packaging/build-deb.sh", tmp.path());
    let web = build("packaging/build-deb-web.sh", tmp.path());

    // Contents and control data.
    let listing = ok(Command::new("dpkg-deb").arg("-c").arg(&web));
    for (path, mode) in [
        ("./usr/sbin/apppw-web", "-rwxr-xr-x"),
        ("./etc/apppw/web.toml", "-rw-r-----"),
        ("./lib/systemd/system/apppw-web.socket", "-rw-r--r--"),
        ("./lib/systemd/system/apppw-web.service", "-rw-r--r--"),
        ("./usr/lib/sysusers.d/apppw-web.conf", "-rw-r--r--"),
        ("./usr/share/man/man8/apppw-web.8.gz", "-rw-r--r--"),
        (
            "./usr/share/doc/apppw-web/examples/fail2ban/filter.d/apppw-web.conf",
            "-rw-r--r--",
        ),
        (
            "./usr/share/doc/apppw-web/examples/locales/ja/common.ftl",
            "-rw-r--r--",
        ),
    ] {
        assert!(
            listing
                .lines()
                .any(|l| l.starts_with(mode) && l.ends_with(path)),
            "{path} ({mode}) missing:\n{listing}"
        );
    }
    let control = ok(Command::new("dpkg-deb").arg("-f").arg(&web).arg("Depends"));
    assert!(
        control.contains("apppw (= ") && control.contains("libpam0g"),
        "{control}"
    );
    if has("lintian") {
        let out = run(Command::new("lintian")
            .arg("--pedantic")
            .arg("-I")
            .arg(&web));
        let report = String::from_utf8_lossy(&out.stdout);
        for line in report.lines() {
            assert!(
                !line.starts_with("E:") && !line.starts_with("W:"),
                "lintian: {line}\n{report}"
            );
        }
    }

    let mut restore = Restore { server: None };
    ok(Command::new("dpkg").arg("-i").arg(&base).arg(&web));

    // The user, its groups, the permissions postinst set, the database root created.
    let id = ok(Command::new("id").arg("apppw-web"));
    assert!(id.contains("(apppw)") && id.contains("(apppw-web)"), "{id}");
    let shell = ok(Command::new("getent").args(["passwd", "apppw-web"]));
    assert!(
        !shell.contains("/bin/bash") && !shell.contains("/bin/sh\n"),
        "a login shell: {shell}"
    );
    let meta = std::fs::metadata("/etc/apppw/web.toml").unwrap();
    assert_eq!(meta.mode() & 0o777, 0o640);
    assert_eq!(meta.uid(), 0);
    let db = std::fs::metadata("/var/lib/apppw/apppw.db").expect("postinst created the database");
    assert_eq!(
        (db.uid(), db.mode() & 0o777),
        (0, 0o660),
        "the database belongs to root, mode 0660"
    );

    // The sandbox: systemd's own rating of the unit, at most 2.0 ("OK").
    let out = run(Command::new("systemd-analyze").args(["security", "--offline=true", SERVICE]));
    let text = String::from_utf8_lossy(&out.stdout);
    let score: f64 = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for apppw-web.service: ")
                .nth(1)
        })
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| {
            panic!(
                "no exposure level:\n{text}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
        .parse()
        .unwrap();
    assert!(score <= 2.0, "exposure {score}:\n{text}");
    eprintln!("systemd-analyze security: exposure {score}");

    // Start it the way its units say (see the top of this file).
    let socket_unit = std::fs::read_to_string(SOCKET).unwrap();
    let service_unit = std::fs::read_to_string(SERVICE).unwrap();
    let listen = unit_value(&socket_unit, "ListenStream");
    let group = unit_value(&socket_unit, "SocketGroup");
    let mode = u32::from_str_radix(&unit_value(&socket_unit, "SocketMode"), 8).unwrap();
    let exec: Vec<String> = unit_value(&service_unit, "ExecStart")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let user = unit_value(&service_unit, "User");
    let primary = unit_value(&service_unit, "Group");
    let groups = unit_value(&service_unit, "SupplementaryGroups").replace(' ', ",");
    assert_eq!(
        (listen.as_str(), group.as_str(), mode),
        ("/run/apppw-web.sock", "www-data", 0o660)
    );
    let log = tmp.path().join("apppw-web.log");
    let server = Command::new("systemd-socket-activate")
        .arg("--listen")
        .arg(&listen)
        .arg("setpriv")
        .arg(format!("--reuid={user}"))
        .arg(format!("--regid={primary}"))
        .arg(format!("--groups={groups}"))
        .arg("--no-new-privs")
        .arg("--")
        .args(&exec)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    restore.server = Some(server);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !Path::new(&listen).exists() {
        assert!(Instant::now() < deadline, "no socket {listen}");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::os::unix::fs::chown(&listen, Some(0), Some(gid(&group))).unwrap();
    std::fs::set_permissions(&listen, std::fs::Permissions::from_mode(mode)).unwrap();

    // The proxy's group may connect, other users may not.
    let as_user = |who: &str| {
        run(Command::new("runuser").args([
            "-u",
            who,
            "--",
            "curl",
            "-s",
            "--max-time",
            "20",
            "--unix-socket",
            &listen,
            "http://localhost/healthz",
        ]))
    };
    if has("curl") {
        let proxy = as_user("www-data");
        assert_eq!(
            String::from_utf8_lossy(&proxy.stdout),
            "ok\n",
            "{proxy:?}\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        let other = as_user("nobody");
        assert!(!other.status.success(), "nobody could connect: {other:?}");
    }

    // It runs as its user, with the listener systemd-socket-activate handed over.
    let (status, page) = request(&listen, "GET", "/", &[("X-Remote-User", "alice")], "");
    assert_eq!(
        status,
        200,
        "{page}\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert!(page.contains("Signed in as alice"), "{page}");
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(
        stderr.contains("listening on unix:/run/apppw-web.sock, passed by systemd"),
        "{stderr}"
    );
    let pid = ok(Command::new("pgrep").args(["-x", "apppw-web"]));
    let owner = ok(Command::new("ps").args(["-o", "user=", "-p", pid.trim()]));
    assert_eq!(owner.trim(), "apppw-web");

    // Create an app password through the page: the database is writable for the page's user,
    // and the CLI sees it.
    let cookie = page
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .and_then(|c| c.split(';').next())
        .unwrap()
        .to_owned();
    let headers = [("X-Remote-User", "alice"), ("Cookie", cookie.as_str())];
    let (_, form) = request(&listen, "GET", "/new", &headers, "");
    let body = format!(
        "csrf={}&nonce={}&label=phone",
        field(&form, "csrf"),
        field(&form, "nonce")
    );
    let (status, created) = request(&listen, "POST", "/new", &headers, &body);
    assert_eq!(
        status,
        200,
        "{created}\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert!(created.contains("id=\"password\""));
    let list = ok(Command::new("/usr/bin/apppw").args(["list", "alice", "--json"]));
    assert!(
        list.contains("\"label\":\"phone\"") || list.contains("\"label\": \"phone\""),
        "{list}"
    );
    let db = std::fs::metadata("/var/lib/apppw/apppw.db").unwrap();
    assert_eq!(db.uid(), 0, "still root's database");

    // Remove and purge: the units and the binary go, the user stays (Debian keeps system users).
    if let Some(mut c) = restore.server.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
    ok(Command::new("dpkg").args(["-P", "apppw-web"]));
    for gone in [
        "/usr/sbin/apppw-web",
        SERVICE,
        SOCKET,
        "/etc/apppw/web.toml",
    ] {
        assert!(!Path::new(gone).exists(), "{gone} left after purge");
    }
    ok(Command::new("dpkg").args(["-P", "apppw"]));
    drop(restore);
}

fn gid(group: &str) -> u32 {
    let line = ok(Command::new("getent").args(["group", group]));
    line.split(':').nth(2).unwrap().parse().unwrap()
}

/// The fail2ban filter bans failed PAM sign-ins of the page, and only those.
#[test]
fn web_fail2ban_filter_matches_failed_sign_ins_only() {
    if !has("fail2ban-regex") || !Path::new("/etc/fail2ban/filter.d/common.conf").exists() {
        eprintln!("skipped: fail2ban is not installed");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let filter_dir = tmp.path().join("filter.d");
    std::fs::create_dir(&filter_dir).unwrap();
    std::fs::copy(
        workspace().join("packaging/web/fail2ban/filter.d/apppw-web.conf"),
        filter_dir.join("apppw-web.conf"),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        "/etc/fail2ban/filter.d/common.conf",
        filter_dir.join("common.conf"),
    )
    .unwrap();
    let lines = [
        "apppw-web: user=mallory action=signin method=pam client=203.0.113.1 detail=Authentication\\x20failure result=refused",
        "apppw-web: user=bob action=signin method=pam client=2001:db8::2 detail=User\\x20not\\x20known result=refused",
        // A user name cannot smuggle in another address: spaces and '=' are escaped.
        "apppw-web: user=x\\x20client\\x3d198.51.100.1 action=signin method=pam client=203.0.113.3 detail=malformed result=refused",
        "apppw-web: user=alice action=signin method=pam client=192.0.2.10 result=ok",
        "apppw-web: user=carol action=signin method=pam client=203.0.113.9 result=rate-limited",
        "apppw-web: user=alice action=post path=/new client=203.0.113.10 result=refused-csrf",
        "apppw-web: user=- action=request path=/ peer=127.0.0.1 result=refused-untrusted-peer",
        "apppw-web: user=dave action=signin method=pam client=unknown detail=x result=refused",
    ];
    let text: String = lines
        .iter()
        .enumerate()
        .map(|(i, l)| format!("Nov 25 12:00:{i:02} web apppw[{}]: {l}\n", 1000 + i))
        .collect();
    let log = tmp.path().join("auth.log");
    std::fs::write(&log, text).unwrap();
    let out = ok(Command::new("fail2ban-regex")
        .arg("--verbose")
        .arg(&log)
        .arg(filter_dir.join("apppw-web.conf")));
    assert!(
        out.contains("8 lines, 0 ignored, 3 matched, 5 missed"),
        "{out}"
    );
    for banned in ["203.0.113.1", "2001:db8::2", "203.0.113.3"] {
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

/// The man page renders without warnings.
#[test]
fn web_man_page_renders_without_warnings() {
    if !has("man") || !has("groff") {
        eprintln!("skipped: man and groff are not installed");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let page = tmp.path().join("apppw-web.8");
    let source = std::fs::read_to_string(workspace().join("packaging/web/apppw-web.8"))
        .unwrap()
        .replace("@VERSION@", "0.1.0")
        .replace("@DATE@", "2025-01-01");
    std::fs::write(&page, source).unwrap();
    let out = run(Command::new("man")
        .args(["--warnings", "-E", "UTF-8", "-l"])
        .arg(&page)
        .env("MANWIDTH", "80")
        .env("MAN_KEEP_STDERR", "1"));
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.trim().is_empty(), "man warnings:\n{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("socket"));
}
