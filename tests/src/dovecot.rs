//! A throwaway Dovecot 2.3 for one test: everything under one temp directory, listening on
//! a free loopback port, `apppw-checkpassword` as passdb (and optionally userdb), stopped on
//! drop.
//!
//! Dovecot runs the checkpassword program as its auth user (`dovecot`), so the config, the
//! database and the database's directory must be reachable by that user:
//! [`share_with_dovecot`] sets them up the way the package does (group `apppw`).

use crate::{TestEnv, bin, is_root};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Dovecot's reply program (appended to the checkpassword arguments by Dovecot).
pub const CHECKPASSWORD_REPLY: &str = "/usr/lib/dovecot/checkpassword-reply";
/// `pam_matrix.so` from pam_wrapper: a PAM module that checks passwords against a text file.
pub const PAM_MATRIX: &str = "/usr/lib/x86_64-linux-gnu/pam_wrapper/pam_matrix.so";
/// The unprivileged user mail processes run as in the throwaway server.
const MAIL_UID: u32 = 65534;

/// Whether a real Dovecot test can run here (root, dovecot 2.3 with checkpassword). Prints a
/// SKIP line naming the test if not.
pub fn available(test: &str) -> bool {
    if !is_root() {
        eprintln!("SKIP {test}: needs root (starts Dovecot, writes /etc/pam.d)");
        return false;
    }
    let missing: Vec<&str> = ["/usr/sbin/dovecot", "/usr/bin/doveadm", CHECKPASSWORD_REPLY]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    if !missing.is_empty() {
        eprintln!(
            "SKIP {test}: not installed: {} (apt-get install dovecot-core dovecot-imapd)",
            missing.join(", ")
        );
        return false;
    }
    true
}

/// Numeric id of a group in /etc/group.
pub fn group_id(name: &str) -> Option<u32> {
    std::fs::read_to_string("/etc/group")
        .ok()?
        .lines()
        .find_map(|l| {
            let mut f = l.split(':');
            (f.next() == Some(name)).then(|| f.nth(1)?.parse().ok())?
        })
}

/// Numeric id of a user in /etc/passwd.
pub fn user_id(name: &str) -> Option<u32> {
    std::fs::read_to_string("/etc/passwd")
        .ok()?
        .lines()
        .find_map(|l| {
            let mut f = l.split(':');
            (f.next() == Some(name)).then(|| f.nth(1)?.parse().ok())?
        })
}

/// The package's group, which shares the store with Dovecot's checkpassword user.
pub const PACKAGE_GROUP: &str = "apppw";

/// Makes sure the group `apppw` exists and `dovecot` (if there is such a user) is in it, as
/// the package's postinst does; returns its gid. Never removed again: tests run in parallel,
/// and tests/tests/package.rs puts a group it finds back after purging the package.
pub fn package_group() -> u32 {
    static ONCE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = ONCE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if group_id(PACKAGE_GROUP).is_none() {
        let out = Command::new("groupadd")
            .args(["--system", PACKAGE_GROUP])
            .output()
            .unwrap();
        assert!(
            out.status.success() || group_id(PACKAGE_GROUP).is_some(),
            "groupadd {PACKAGE_GROUP}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    if user_id("dovecot").is_some() && !group_members(PACKAGE_GROUP).iter().any(|m| m == "dovecot")
    {
        let out = Command::new("gpasswd")
            .args(["-a", "dovecot", PACKAGE_GROUP])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "gpasswd -a dovecot {PACKAGE_GROUP}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    group_id(PACKAGE_GROUP).unwrap()
}

/// The members of a group in /etc/group.
pub fn group_members(name: &str) -> Vec<String> {
    std::fs::read_to_string("/etc/group")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&name)).then(|| {
                f.get(3)
                    .unwrap_or(&"")
                    .split(',')
                    .filter(|m| !m.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
        })
        .unwrap_or_default()
}

/// Sets up the package's layout (docs/install.md, "Files, owners, modes"), which Dovecot's
/// checkpassword user (in group `apppw`) and root (the PAM module in the auth worker) can
/// both trust: the database's directory `root:apppw 2770`, the database and its `-wal` and
/// `-shm` `root:apppw 0660` (0660 so that last-used updates are recorded), the config
/// `root:apppw 0640`.
pub fn share_with_dovecot(env: &TestEnv) {
    let gid = package_group();
    let dir = env.dir.path();
    std::os::unix::fs::chown(dir, Some(0), Some(gid)).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o2770)).unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let mut p = env.db.clone().into_os_string();
        p.push(suffix);
        let p = PathBuf::from(p);
        if p.exists() {
            std::os::unix::fs::chown(&p, Some(0), Some(gid)).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o660)).unwrap();
        }
    }
    std::os::unix::fs::chown(&env.config, Some(0), Some(gid)).unwrap();
    std::fs::set_permissions(&env.config, std::fs::Permissions::from_mode(0o640)).unwrap();
}

/// A free TCP port on 127.0.0.1 (free when this returns; good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A PAM service file `/etc/pam.d/apppw-test-<random>` backed by `pam_matrix.so`, removed on
/// drop. Stands in for the site's normal-password service (`[primary] pam_service`).
pub struct PamService {
    /// The service name.
    pub name: String,
    file: PathBuf,
    _passdb: tempfile::NamedTempFile,
}

impl PamService {
    /// Accepts exactly the given `(user, password)` pairs.
    pub fn matrix(users: &[(&str, &str)]) -> PamService {
        let name = format!("apppw-test-{:08x}", rand_u32());
        let mut passdb = tempfile::Builder::new()
            .prefix("apppw-passdb.")
            .tempfile()
            .unwrap();
        for (user, pass) in users {
            writeln!(passdb, "{user}:{pass}:{name}").unwrap();
        }
        passdb.flush().unwrap();
        // Read by the checkpassword program, i.e. by the dovecot user.
        std::fs::set_permissions(passdb.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
        let file = PathBuf::from("/etc/pam.d").join(&name);
        let db = passdb.path().display();
        std::fs::write(
            &file,
            format!("auth required {PAM_MATRIX} passdb={db}\naccount required {PAM_MATRIX} passdb={db}\n"),
        )
        .unwrap();
        PamService {
            name,
            file,
            _passdb: passdb,
        }
    }

    /// The config lines that select this service.
    pub fn toml(&self) -> String {
        format!("[primary]\npam_service = \"{}\"\n", self.name)
    }
}

impl Drop for PamService {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.file);
    }
}

fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    h.write_u32(std::process::id());
    h.finish() as u32
}

/// What an IMAP LOGIN got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Imap {
    /// `OK ... Logged in`.
    LoggedIn,
    /// `NO ...`: the server's text.
    Refused(String),
}

/// A running Dovecot.
pub struct Dovecot {
    /// Holds config, runtime files, log and mail homes.
    pub dir: tempfile::TempDir,
    /// The Dovecot config file.
    pub conf: PathBuf,
    /// Plain IMAP on 127.0.0.1.
    pub imap_port: u16,
}

/// How the throwaway server uses the checkpassword backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Userdb {
    /// `userdb static` (the usual setup: checkpassword only as passdb).
    Static,
    /// `userdb checkpassword` too (lookup mode), with uid/gid/home overridden.
    Checkpassword,
}

impl Dovecot {
    /// Starts Dovecot with `apppw-checkpassword --config APPPW_CONFIG` as passdb. Panics (with
    /// the log) if it does not come up.
    pub fn start(apppw_config: &Path, userdb: Userdb) -> Dovecot {
        Self::start_with(apppw_config, userdb, "")
    }

    /// Like [`Dovecot::start`], with `extra` lines in the main config (e.g. `auth_cache_size`).
    pub fn start_with(apppw_config: &Path, userdb: Userdb, extra: &str) -> Dovecot {
        package_group();
        let dir = tempfile::Builder::new()
            .prefix("apppw-dovecot.")
            .tempdir()
            .unwrap();
        let root = dir.path();
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
        for sub in ["run", "state"] {
            std::fs::create_dir(root.join(sub)).unwrap();
        }
        let home = root.join("home");
        std::fs::create_dir(&home).unwrap();
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o1777)).unwrap();

        let port = free_port();
        let checkpassword = format!(
            "{} --config {}",
            bin("apppw-checkpassword").display(),
            apppw_config.display()
        );
        let userdb = match userdb {
            Userdb::Static => format!(
                "userdb {{\n  driver = static\n  args = uid={MAIL_UID} gid={MAIL_UID} home={}/%u allow_all_users=yes\n}}\n",
                home.display()
            ),
            Userdb::Checkpassword => format!(
                "userdb {{\n  driver = checkpassword\n  args = {checkpassword}\n  override_fields = uid={MAIL_UID} gid={MAIL_UID} home={}/%u\n}}\n",
                home.display()
            ),
        };
        let conf_text = format!(
            "base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
instance_name = apppw-test-{port}
listen = 127.0.0.1
protocols = imap
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_verbose = yes
auth_failure_delay = 0
# Lets the test client forward a client address with IMAP ID (x-originating-ip).
login_trusted_networks = 127.0.0.0/8
mail_location = maildir:~/Maildir
{extra}
passdb {{
  driver = checkpassword
  args = {checkpassword}
}}
{userdb}
# As the shipped example: Dovecot gives the auth process only the groups named here.
service auth {{
  extra_groups = {PACKAGE_GROUP}
}}
service imap-login {{
  inet_listener imap {{
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
",
            root = root.display()
        );
        let conf = root.join("dovecot.conf");
        std::fs::write(&conf, conf_text).unwrap();

        // The daemon keeps its parent's stdout/stderr: pipes would never reach end of file.
        let startup_log = root.join("startup.log");
        let status = Command::new("dovecot")
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&startup_log).unwrap())
            .status()
            .unwrap();
        let dovecot = Dovecot {
            dir,
            conf,
            imap_port: port,
        };
        assert!(
            status.success(),
            "dovecot did not start: {}{}",
            std::fs::read_to_string(&startup_log).unwrap_or_default(),
            dovecot.log()
        );
        dovecot.wait_ready();
        dovecot
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let socket = self.dir.path().join("run/auth-master");
        while Instant::now() < deadline {
            if socket.exists() && TcpStream::connect(("127.0.0.1", self.imap_port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("dovecot not ready after 10 s:\n{}", self.log());
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
    }

    /// `doveadm -c CONF ARGS...`.
    pub fn doveadm(&self, args: &[&str]) -> Output {
        Command::new("doveadm")
            .arg("-c")
            .arg(&self.conf)
            .args(args)
            .output()
            .unwrap()
    }

    /// `doveadm auth test -x service=SERVICE -x rip=RIP USER PASS` (exit status 0 accepted,
    /// 77 refused or failed). `no-penalty` only skips anvil's growing delay after failures
    /// from one address, which would make the refusal checks take seconds each.
    pub fn auth_test(&self, service: &str, rip: &str, user: &str, pass: &str) -> Output {
        let args = auth_test_args(service, rip, user, pass);
        self.doveadm(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// True if `doveadm auth test` (service imap) accepted; false if it refused. Panics on any
    /// other outcome.
    pub fn accepts(&self, rip: &str, user: &str, pass: &str) -> bool {
        let out = self.auth_test("imap", rip, user, pass);
        match out.status.code() {
            Some(0) => true,
            Some(77) => false,
            other => panic!(
                "doveadm auth test exited {other:?}: {}\n{}",
                String::from_utf8_lossy(&out.stderr),
                self.log()
            ),
        }
    }

    /// A real IMAP LOGIN on the loopback port. With `rip`, the client address is forwarded
    /// first with `ID ("x-originating-ip" RIP)` (the server trusts 127.0.0.0/8), so Dovecot
    /// sees the login as coming from `rip`.
    pub fn imap_login(&self, rip: Option<&str>, user: &str, pass: &str) -> Imap {
        imap_login_at(self.imap_port, rip, user, pass)
    }
}

/// The arguments of `doveadm auth test -x service=SERVICE -x rip=RIP -x no-penalty USER PASS`
/// (the same on Dovecot 2.3 and 2.4).
pub fn auth_test_args(service: &str, rip: &str, user: &str, pass: &str) -> Vec<String> {
    [
        "auth",
        "test",
        "-x",
        &format!("service={service}"),
        "-x",
        &format!("rip={rip}"),
        "-x",
        "no-penalty",
        user,
        pass,
    ]
    .map(str::to_owned)
    .to_vec()
}

/// A real IMAP LOGIN to 127.0.0.1:PORT (any Dovecot version), the client address forwarded
/// with IMAP ID first if given (the server must trust 127.0.0.0/8).
pub fn imap_login_at(port: u16, rip: Option<&str>, user: &str, pass: &str) -> Imap {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("* OK"), "greeting: {line}");
    let mut command = |tag: &str, text: String| -> String {
        writer
            .write_all(format!("{tag} {text}\r\n").as_bytes())
            .unwrap();
        loop {
            let mut l = String::new();
            let n = reader.read_line(&mut l).unwrap();
            assert!(n > 0, "connection closed during {tag}");
            if let Some(rest) = l.strip_prefix(&format!("{tag} ")) {
                return rest.trim_end().to_owned();
            }
        }
    };
    if let Some(ip) = rip {
        let r = command("a1", format!("ID (\"x-originating-ip\" \"{ip}\")"));
        assert!(r.starts_with("OK"), "ID: {r}");
    }
    let r = command("a2", format!("LOGIN {} {}", quote(user), quote(pass)));
    if r.starts_with("OK") {
        let _ = command("a3", "LOGOUT".into());
        Imap::LoggedIn
    } else {
        Imap::Refused(r)
    }
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let _ = self.doveadm(&["stop"]);
        // Wait for the master to go away so that the temp dir can be removed.
        let pid_file = self.dir.path().join("run/master.pid");
        let deadline = Instant::now() + Duration::from_secs(5);
        while pid_file.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
