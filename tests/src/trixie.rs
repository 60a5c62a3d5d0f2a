//! Dovecot 2.4 from a Debian 13 (trixie) root, on a Debian 12 machine.
//!
//! `scripts/trixie-root.sh` makes the root once (debootstrap + Dovecot 2.4.1). A [`Jail`] is a
//! private, writable view of it for one test: in its own mount namespace (`unshare -m`), an
//! overlay whose lower layer is the cached root and whose upper layer is the test's temp
//! directory, with `/proc`, `/dev`, and the test's own directories bind-mounted at the same
//! paths as outside. Nothing a test does (users, `/etc/pam.d`, packages) reaches the cache, and
//! everything goes when the test's processes end.
//!
//! Commands run inside with `nsenter` into the namespace and the root of a holder process; the
//! host reaches the jail's files through `/proc/PID/root`. The network is the host's: Dovecot's
//! ports are loopback ports, and a Unix socket in a bind-mounted directory is the same socket
//! on both sides (that is how the host's Postfix talks to Dovecot 2.4's SASL socket).

use crate::dovecot::{Imap, auth_test_args, free_port, imap_login_at};
use crate::{TestEnv, bin, is_root, workspace};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Where `scripts/trixie-root.sh` puts the root unless `APPPW_TRIXIE_ROOT` says otherwise.
pub const DEFAULT_ROOT: &str = "/var/cache/apppw-test/trixie";
/// The shipped Dovecot 2.4 example, included unchanged by every 2.4 test.
pub const EXAMPLE_24: &str = "packaging/examples/dovecot-2.4/auth-apppw-pam.conf.ext";
/// The shipped PAM stack, copied unchanged to `/etc/pam.d/imap`, `smtp`, `submission`.
pub const EXAMPLE_PAM: &str = "packaging/examples/pam.d/dovecot";
/// Where the jail's PAM modules are (`pam_apppw.so` goes there, as the package puts it).
pub const PAM_DIR: &str = "/usr/lib/x86_64-linux-gnu/security";

/// The cached root: `$APPPW_TRIXIE_ROOT`, else [`DEFAULT_ROOT`].
pub fn root_dir() -> PathBuf {
    std::env::var_os("APPPW_TRIXIE_ROOT")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_ROOT), PathBuf::from)
}

/// Whether Dovecot 2.4 tests can run: root, `unshare`/`nsenter`, and a complete root. Prints a
/// SKIP line naming the test if not. When `APPPW_TRIXIE_ROOT` is set (as `scripts/test.sh`
/// does after making the root), a missing root is a failure, not a skip: CI must not pass
/// by skipping Dovecot 2.4.
pub fn available(test: &str) -> bool {
    let root = root_dir();
    let complete = root.join(".apppw-root").is_file();
    if std::env::var_os("APPPW_TRIXIE_ROOT").is_some() {
        assert!(
            complete,
            "{test}: APPPW_TRIXIE_ROOT={} is not a root made by scripts/trixie-root.sh",
            root.display()
        );
    }
    if !is_root() {
        eprintln!("SKIP {test}: needs root (mount namespace, chroot, Dovecot 2.4)");
        return false;
    }
    if !complete {
        eprintln!(
            "SKIP {test}: no Debian 13 root at {} (make it with scripts/trixie-root.sh)",
            root.display()
        );
        return false;
    }
    true
}

/// One test's private Debian 13 system (see the module documentation).
pub struct Jail {
    /// upper/, work/, merged/ of the overlay, and share/ (bind-mounted at the same path).
    pub dir: tempfile::TempDir,
    holder: Child,
    /// Kept open: the holder lives until it reads end of file.
    _stdin: ChildStdin,
    pid: u32,
}

impl Jail {
    /// A jail on the cached root, with `extra` host directories bind-mounted at their own paths
    /// (e.g. a [`TestEnv`]'s directory, so that its config and database work inside as outside).
    pub fn new(extra: &[&Path]) -> Jail {
        let dir = tempfile::Builder::new()
            .prefix("apppw-jail.")
            .tempdir()
            .unwrap();
        let d = dir.path();
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        for sub in ["upper", "work", "merged", "share"] {
            std::fs::create_dir(d.join(sub)).unwrap();
        }
        std::fs::set_permissions(d.join("share"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let script = workspace().join("scripts/trixie-root.sh");
        let mut holder = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "bash"])
            .arg(&script)
            .arg("jail")
            .arg(d)
            .arg(d.join("share"))
            .args(extra)
            .env("APPPW_TRIXIE_ROOT", root_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdin = holder.stdin.take().unwrap();
        let mut line = String::new();
        BufReader::new(holder.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "the jail could not be set up");
        let pid = holder.id();
        let jail = Jail {
            dir,
            holder,
            _stdin: stdin,
            pid,
        };
        // The holder has chrooted once /proc/PID/root is the cached root's view (its stamp file
        // is at the top; the host has none).
        let deadline = Instant::now() + Duration::from_secs(10);
        while !jail.path("/.apppw-root").exists() {
            assert!(Instant::now() < deadline, "the jail's root did not appear");
            std::thread::sleep(Duration::from_millis(10));
        }
        jail
    }

    /// The host path of a path inside the jail (through `/proc/PID/root`; root only).
    pub fn path(&self, inside: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root{inside}", self.pid))
    }

    /// A directory shared with the host at the same path (for logs, sockets, packages).
    pub fn share(&self) -> PathBuf {
        self.dir.path().join("share")
    }

    /// A command run inside the jail: its namespace, its root, an empty environment but PATH.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.args(["-t", &self.pid.to_string(), "-m", "-r", "-w", "--"])
            .args(["/usr/bin/env", "-i"])
            .arg("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            .arg(program);
        cmd
    }

    /// Runs a shell command line inside; panics with its output unless it succeeds.
    pub fn sh(&self, script: &str) -> String {
        let out = self.command("sh").args(["-c", script]).output().unwrap();
        assert!(
            out.status.success(),
            "in the jail: {script}\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Writes a file inside the jail (mode 0644, parents created).
    pub fn write(&self, inside: &str, text: &str) {
        let p = self.path(inside);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    }

    /// Puts the binaries of this build where the package installs them: `/usr/bin/apppw` and
    /// `pam_apppw.so` in the PAM directory.
    pub fn install_build(&self) {
        for (from, to, mode) in [
            ("apppw", "/usr/bin/apppw".to_owned(), 0o755),
            ("libpam_apppw.so", format!("{PAM_DIR}/pam_apppw.so"), 0o644),
        ] {
            let dest = self.path(&to);
            std::fs::copy(bin(from), &dest).unwrap();
            std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(mode)).unwrap();
        }
    }

    /// `useradd -m NAME` and its password, for `pam_unix` inside.
    pub fn add_user(&self, name: &str, password: &str) {
        self.sh(&format!(
            "useradd -m -s /usr/sbin/nologin {name} && echo '{name}:{password}' | chpasswd"
        ));
    }

    /// The PAM stack of `packaging/examples/pam.d/dovecot`, unchanged, as `/etc/pam.d/SERVICE`
    /// for each service, and `config` as `/etc/apppw/apppw.toml` (the path the stack names).
    pub fn install_pam_stack(&self, config: &Path, services: &[&str]) {
        let stack = std::fs::read_to_string(workspace().join(EXAMPLE_PAM)).unwrap();
        for s in services {
            self.write(&format!("/etc/pam.d/{s}"), &stack);
        }
        self.write(
            "/etc/apppw/apppw.toml",
            &std::fs::read_to_string(config).unwrap(),
        );
    }
}

impl Drop for Jail {
    fn drop(&mut self) {
        // An Argon2 admission gate made inside (by the installed package): its System V
        // semaphores belong to the host's IPC namespace and would outlive the jail.
        let _ = apppw::gate::remove(&self.path("/run/apppw/argon2-gate"));
        // Closing stdin ends the holder; Dovecot was stopped by its own guard.
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// How the test Dovecot 2.4 is configured around the shipped example.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// `auth_cache_size = 1M`, as many sites set it.
    pub cache: bool,
    /// A SASL socket for the host's Postfix: `SHARE/postfix-auth`.
    pub postfix_socket: bool,
    /// Which `auth-apppw-pam.conf.ext` the main config includes.
    pub example: Example,
}

/// Where the included passdb configuration comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Example {
    /// The repository's `packaging/examples/dovecot-2.4/auth-apppw-pam.conf.ext`, copied
    /// unchanged to `/etc/dovecot/conf.d/`.
    #[default]
    Repository,
    /// As the package installed it, in `/usr/share/doc/apppw/examples/dovecot-2.4/`.
    Packaged,
    /// Whatever the test wrote to `/etc/dovecot/conf.d/auth-apppw-pam.conf.ext`.
    InPlace,
}

/// A Dovecot 2.4 running in a [`Jail`], stopped on drop.
pub struct Dovecot24<'a> {
    /// The jail it runs in.
    pub jail: &'a Jail,
    /// Plain IMAP on 127.0.0.1.
    pub imap_port: u16,
    /// The main config inside the jail.
    pub conf: String,
}

/// Path of the test's main config inside the jail (in the shared directory).
fn main_conf(jail: &Jail) -> String {
    format!("{}/dovecot.conf", jail.share().display())
}

impl<'a> Dovecot24<'a> {
    /// Starts Dovecot 2.4: a main config that sets only paths, ports and test settings and
    /// includes the shipped `auth-apppw-pam.conf.ext` unchanged.
    pub fn start(jail: &'a Jail, opts: Options) -> Dovecot24<'a> {
        let in_conf_d = "/etc/dovecot/conf.d/auth-apppw-pam.conf.ext";
        let example = match opts.example {
            Example::Packaged => {
                "/usr/share/doc/apppw/examples/dovecot-2.4/auth-apppw-pam.conf.ext"
            }
            Example::Repository => {
                let text = std::fs::read_to_string(workspace().join(EXAMPLE_24)).unwrap();
                jail.write(in_conf_d, &text);
                in_conf_d
            }
            Example::InPlace => in_conf_d,
        };
        let share = jail.share();
        let port = free_port();
        let cache = if opts.cache {
            "auth_cache_size = 1M\nauth_cache_ttl = 1 hours\n"
        } else {
            ""
        };
        let postfix = if opts.postfix_socket {
            // Mode 0666: the host's postfix user is unknown inside the jail.
            format!(
                "service auth {{\n  unix_listener {}/postfix-auth {{\n    mode = 0666\n  }}\n}}\n",
                share.display()
            )
        } else {
            String::new()
        };
        let conf = main_conf(jail);
        let text = format!(
            "dovecot_config_version = 2.4.1
dovecot_storage_version = 2.4.1
log_path = {share}/dovecot.log
listen = 127.0.0.1
protocols = imap
ssl = no
auth_allow_cleartext = yes
auth_mechanisms = plain login
auth_verbose = yes
auth_failure_delay = 0
# Lets the test client forward a client address with IMAP ID (x-originating-ip).
login_trusted_networks = 127.0.0.0/8
mail_driver = maildir
mail_path = ~/Maildir
{cache}!include {example}
{postfix}service imap-login {{
  inet_listener imap {{
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
",
            share = share.display()
        );
        std::fs::write(&conf, text).unwrap();
        // The daemon keeps its parent's stdout/stderr: pipes would never reach end of file.
        let startup_log = share.join("startup.log");
        let status = jail
            .command("dovecot")
            .args(["-c", &conf])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&startup_log).unwrap())
            .status()
            .unwrap();
        assert!(
            status.success(),
            "dovecot 2.4 did not start: {}{}",
            std::fs::read_to_string(&startup_log).unwrap_or_default(),
            std::fs::read_to_string(share.join("dovecot.log")).unwrap_or_default()
        );
        Dovecot24::attach(jail, conf, port)
    }

    /// A Dovecot 2.4 started otherwise (e.g. by a documented command sequence) with config
    /// `conf` inside the jail, logging to `SHARE/dovecot.log`, IMAP on `imap_port`: waits until
    /// it answers. Stopped on drop.
    pub fn attach(jail: &'a Jail, conf: String, imap_port: u16) -> Dovecot24<'a> {
        let dovecot = Dovecot24 {
            jail,
            imap_port,
            conf,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while !(jail.path("/run/dovecot/auth-client").exists()
            && std::net::TcpStream::connect(("127.0.0.1", imap_port)).is_ok())
        {
            assert!(
                Instant::now() < deadline,
                "dovecot 2.4 not ready after 15 s:\n{}",
                dovecot.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        dovecot
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.jail.share().join("dovecot.log")).unwrap_or_default()
    }

    /// The log once it contains `text` (Dovecot's processes write their lines a little after
    /// answering the client), or as it is after 10 s.
    pub fn log_with(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log();
            if log.contains(text) || Instant::now() > deadline {
                return log;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `doveadm -c CONF ARGS...` inside the jail.
    pub fn doveadm(&self, args: &[&str]) -> Output {
        self.jail
            .command("doveadm")
            .args(["-c", &self.conf])
            .args(args)
            .output()
            .unwrap()
    }

    /// `doveadm auth test -x service=SERVICE -x rip=RIP USER PASS`: the exit status (0
    /// accepted, 77 refused). `no-penalty` skips anvil's growing delay after failures.
    pub fn auth_test(&self, service: &str, rip: &str, user: &str, pass: &str) -> i32 {
        let args = auth_test_args(service, rip, user, pass);
        let out = self.doveadm(&args.iter().map(String::as_str).collect::<Vec<_>>());
        out.status.code().unwrap_or(-1)
    }

    /// True if `doveadm auth test` (service imap) accepted, false if it refused; panics on
    /// anything else.
    pub fn accepts(&self, rip: &str, user: &str, pass: &str) -> bool {
        match self.auth_test("imap", rip, user, pass) {
            0 => true,
            77 => false,
            other => panic!("doveadm auth test exited {other}:\n{}", self.log()),
        }
    }

    /// A real IMAP LOGIN over TCP, the client address forwarded with IMAP ID.
    pub fn imap_login(&self, rip: Option<&str>, user: &str, pass: &str) -> Imap {
        imap_login_at(self.imap_port, rip, user, pass)
    }
}

impl Drop for Dovecot24<'_> {
    fn drop(&mut self) {
        let _ = self.doveadm(&["stop"]);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.jail.path("/run/dovecot/master.pid").exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The usual 2.4 fixture: a jail with this build installed, a system user `name` with
/// `normal` as password, the shipped PAM stack for imap/smtp/submission with `env`'s config.
pub fn jail_with_build(env: &TestEnv, name: &str, normal: &str) -> Jail {
    let tls_dirs = env.pg_url.as_deref().map(pg_file_dirs).unwrap_or_default();
    let mut extra = vec![env.dir.path()];
    extra.extend(tls_dirs.iter().map(PathBuf::as_path));
    let jail = Jail::new(&extra);
    jail.install_build();
    jail.add_user(name, normal);
    jail.install_pam_stack(&env.config, &["imap", "smtp", "submission"]);
    jail
}

/// The directories of the files a PostgreSQL URL names (`sslrootcert`, `sslcert`, `sslkey`):
/// the store is reached from inside the jail too, so they must be there at the same paths.
fn pg_file_dirs(url: &str) -> Vec<PathBuf> {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    let mut dirs: Vec<PathBuf> = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| matches!(*k, "sslrootcert" | "sslcert" | "sslkey"))
        .filter_map(|(_, v)| Path::new(v).parent().map(Path::to_path_buf))
        .filter(|d| d.is_absolute())
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs
}
