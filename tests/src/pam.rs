//! Driving `pam_apppw.so` through real Linux-PAM without root: `pamtester` under `pam_wrapper`,
//! with service files that name modules by absolute path.
//!
//! The normal password is checked by `pam_exec.so expose_authtok` running a small script: like
//! `pam_unix.so try_first_pass` it reuses `PAM_AUTHTOK` when an earlier module set it and
//! prompts otherwise. (`pam_matrix.so` from pam_wrapper always prompts again, ignoring
//! `PAM_AUTHTOK`, so it cannot show that the password is asked for only once.)

use crate::bin;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Linux-PAM's modules.
pub const SECURITY_DIR: &str = "/usr/lib/x86_64-linux-gnu/security";
/// pam_wrapper's test modules (`pam_matrix.so`, `pam_set_items.so`, ...).
pub const WRAPPER_MODULES: &str = "/usr/lib/x86_64-linux-gnu/pam_wrapper";
/// The preloaded library that redirects PAM configuration lookups.
pub const WRAPPER_LIB: &str = "/usr/lib/x86_64-linux-gnu/libpam_wrapper.so";

/// The built module.
pub fn module() -> PathBuf {
    bin("libpam_apppw.so")
}

/// A Linux-PAM module by name (`pam_exec.so`).
pub fn system_module(name: &str) -> PathBuf {
    Path::new(SECURITY_DIR).join(name)
}

/// Whether pamtester and pam_wrapper are installed; prints a SKIP line if not.
pub fn pam_wrapper_available(test: &str) -> bool {
    let missing: Vec<&str> = [WRAPPER_LIB, "/usr/bin/pamtester", WRAPPER_MODULES]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    if missing.is_empty() {
        true
    } else {
        eprintln!(
            "SKIP {test}: not installed: {} (apt-get install pamtester libpam-wrapper)",
            missing.join(", ")
        );
        false
    }
}

/// The `pam_apppw.so` line of the documented stack.
pub fn apppw_line(args: &str) -> String {
    format!(
        "auth [success=done ignore=ignore default=die] {} {args}",
        module().display()
    )
}

/// A script standing in for the normal-password module (`pam_exec.so expose_authtok`): it
/// accepts exactly `password`. Written into `dir`; returns the `auth required` line.
pub fn primary_line(dir: &Path, password: &str) -> String {
    let expected = dir.join("primary-password");
    std::fs::write(&expected, password).unwrap();
    let script = dir.join("check-primary");
    // pam_exec writes the token NUL-terminated on stdin.
    std::fs::write(
        &script,
        format!(
            "#!/bin/bash\nIFS= read -r -d '' pw\n[ \"$pw\" = \"$(cat '{}')\" ]\n",
            expected.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    format!(
        "auth required {} expose_authtok quiet {}",
        system_module("pam_exec.so").display(),
        script.display()
    )
}

/// A `PAM_WRAPPER_SERVICE_DIR`.
pub struct ServiceDir {
    /// The directory (removed on drop).
    pub dir: tempfile::TempDir,
}

impl Default for ServiceDir {
    fn default() -> Self {
        Self::new()
    }
}

impl ServiceDir {
    /// An empty service directory with a deny-all `other`.
    pub fn new() -> ServiceDir {
        let dir = tempfile::Builder::new()
            .prefix("apppw-pam.")
            .tempdir()
            .unwrap();
        let deny = system_module("pam_deny.so");
        std::fs::write(
            dir.path().join("other"),
            format!("auth required {0}\naccount required {0}\n", deny.display()),
        )
        .unwrap();
        ServiceDir { dir }
    }

    /// Writes service `name` with these lines (plus `account required pam_permit.so`).
    ///
    /// Each stack (auth and account) starts with a line that only prints
    /// [`stack_marker`]`(name)` and cannot change the result (`[default=ignore]`): its
    /// output proves that this file, and not a fallback, was what PAM ran.
    pub fn add(&self, name: &str, lines: &[&str]) {
        let exec = system_module("pam_exec.so");
        let marker = |kind: &str| {
            format!(
                "{kind} [default=ignore] {} stdout /bin/echo {}",
                exec.display(),
                stack_marker(name)
            )
        };
        let mut text = marker("auth");
        text.push('\n');
        text.push_str(&marker("account"));
        text.push('\n');
        text.push_str(&lines.join("\n"));
        text.push_str(&format!(
            "\naccount required {}\n",
            system_module("pam_permit.so").display()
        ));
        std::fs::write(self.dir.path().join(name), text).unwrap();
    }

    /// `pamtester [-I rhost=RHOST] SERVICE USER authenticate` with `stdin` as the terminal.
    pub fn authenticate(
        &self,
        service: &str,
        user: &str,
        rhost: Option<&str>,
        stdin: &str,
        env: &[(&str, &str)],
    ) -> PamResult {
        self.run(service, user, rhost, stdin, env, &["authenticate"])
    }

    /// `pamtester [-I rhost=RHOST] SERVICE USER OPS...` (`authenticate`, `setcred`,
    /// `acct_mgmt`, ...) with `stdin` as the terminal; made again while
    /// [`harness_failed`] says pam_wrapper failed.
    pub fn run(
        &self,
        service: &str,
        user: &str,
        rhost: Option<&str>,
        stdin: &str,
        env: &[(&str, &str)],
        ops: &[&str],
    ) -> PamResult {
        let mut cmd = self.command(service, user, rhost, env, ops);
        let _shared = short_lived_run();
        let mut out = crate::run_with_stdin(&mut cmd, stdin.as_bytes());
        for _ in 0..5 {
            if !harness_failed(&out, service) {
                break;
            }
            out = crate::run_with_stdin(&mut cmd, stdin.as_bytes());
        }
        PamResult(out)
    }

    /// The pamtester command line of [`ServiceDir::run`], under pam_wrapper.
    pub fn command(
        &self,
        service: &str,
        user: &str,
        rhost: Option<&str>,
        env: &[(&str, &str)],
        ops: &[&str],
    ) -> Command {
        let mut cmd = Command::new("pamtester");
        self.wrap(&mut cmd);
        for (k, v) in env {
            cmd.env(k, v);
        }
        if let Some(rhost) = rhost {
            cmd.arg("-I").arg(format!("rhost={rhost}"));
        }
        cmd.args([service, user]).args(ops);
        cmd
    }

    /// Runs `cmd` under pam_wrapper with these service files.
    pub fn wrap(&self, cmd: &mut Command) {
        cmd.env("LD_PRELOAD", WRAPPER_LIB)
            .env("PAM_WRAPPER", "1")
            .env("PAM_WRAPPER_SERVICE_DIR", self.dir.path())
            .env_remove("APPPW_CONFIG")
            .env_remove("PAM_AUTHTOK");
    }
}

/// pam_wrapper keeps each process's copy of the service files in a directory named after
/// `pid % 70`, which another process of the same slot overwrites or removes (see
/// [`harness_failed`]). A short run can simply be made again; a [`Host`] cannot (it would lose
/// the state it is there to show), so short runs share this lock and a host holds it
/// exclusively for its life: within a test binary no other pam_wrapper process runs beside it.
static PAM_WRAPPER_SLOTS: RwLock<()> = RwLock::new(());

/// Held by a short pam_wrapper run (pamtester) of this test binary for its duration.
pub fn short_lived_run() -> RwLockReadGuard<'static, ()> {
    PAM_WRAPPER_SLOTS
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn long_lived_run() -> RwLockWriteGuard<'static, ()> {
    PAM_WRAPPER_SLOTS
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What the first line of each stack written by [`ServiceDir::add`] prints.
pub fn stack_marker(service: &str) -> String {
    format!("apppw-test-stack={service}")
}

/// pamtester runs made again because pam_wrapper, not the stack, failed.
pub static HARNESS_RETRIES: AtomicUsize = AtomicUsize::new(0);

/// Did pam_wrapper fail to put `service`'s file in front of Linux-PAM?
///
/// pam_wrapper names its private copy of the configuration after `pid % 70`, and an exiting
/// process removes its copy while another one may be creating or reading it. Then pam_start
/// fails, or PAM runs a fallback (`other`, or the host's own configuration) and our module is
/// never called. Neither is a decision of the stack under test, so the caller runs again: a
/// run counts only if it printed the stack's marker. Counted in [`HARNESS_RETRIES`].
pub fn harness_failed(out: &Output, service: &str) -> bool {
    let marker = stack_marker(service);
    let failed = !String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.trim() == marker)
        && out.status.code().is_some();
    if failed {
        HARNESS_RETRIES.fetch_add(1, Ordering::SeqCst);
    }
    failed
}

/// What pamtester reported.
pub struct PamResult(pub Output);

impl PamResult {
    /// The PAM code `pam_authenticate` returned, recognised from pamtester's message, or
    /// `"crashed"` if pamtester did not exit normally.
    pub fn code(&self) -> &'static str {
        let stdout = String::from_utf8_lossy(&self.0.stdout);
        let stderr = String::from_utf8_lossy(&self.0.stderr);
        match self.0.status.code() {
            Some(0) if stdout.contains("successfully authenticated") => return "PAM_SUCCESS",
            Some(1) => {}
            _ => return "crashed",
        }
        const MESSAGES: &[(&str, &str)] = &[
            ("pamtester: Authentication failure", "PAM_AUTH_ERR"),
            ("pamtester: Error in service module", "PAM_SERVICE_ERR"),
            (
                "pamtester: Authentication service cannot retrieve authentication info",
                "PAM_AUTHINFO_UNAVAIL",
            ),
            ("pamtester: System error", "PAM_SYSTEM_ERR"),
            ("pamtester: Critical error - immediate abort", "PAM_ABORT"),
            ("pamtester: Conversation error", "PAM_CONV_ERR"),
            (
                "pamtester: Authentication token manipulation error",
                "PAM_AUTHTOK_ERR",
            ),
        ];
        MESSAGES
            .iter()
            .find(|(msg, _)| stderr.contains(msg))
            .map_or("unrecognised", |(_, code)| code)
    }

    /// How many times a password was asked for through the conversation.
    pub fn prompts(&self) -> usize {
        let all = [self.0.stdout.as_slice(), self.0.stderr.as_slice()].concat();
        String::from_utf8_lossy(&all).matches("Password: ").count()
    }

    /// Everything pamtester printed, for assertion messages.
    pub fn transcript(&self) -> String {
        format!(
            "status {:?}\nstdout: {}\nstderr: {}",
            self.0.status,
            String::from_utf8_lossy(&self.0.stdout),
            String::from_utf8_lossy(&self.0.stderr)
        )
    }
}

/// A long-lived PAM host (`apppw-test-pam-host`): one process running login after login, as
/// Dovecot's auth worker does. Killed on drop.
pub struct Host {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// No other pam_wrapper process of this test binary runs while the host lives.
    _alone: RwLockWriteGuard<'static, ()>,
}

/// The host's answer to one login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostAnswer {
    /// `accepted`, `refused` or `unavailable`.
    pub said: String,
    /// Was `pam_apppw.so` still mapped after `pam_end`?
    pub resident: bool,
    /// PAM's message.
    pub message: String,
}

impl Host {
    /// Starts the host under pam_wrapper with `services`.
    pub fn start(services: &ServiceDir) -> Host {
        let alone = long_lived_run();
        let mut cmd = Command::new(bin("apppw-test-pam-host"));
        services.wrap(&mut cmd);
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Host {
            child,
            stdin,
            stdout,
            _alone: alone,
        }
    }

    /// One login through `service` (auth and account stacks).
    pub fn login(
        &mut self,
        service: &str,
        user: &str,
        rhost: Option<&str>,
        password: &str,
    ) -> HostAnswer {
        writeln!(
            self.stdin,
            "{service}\t{user}\t{}\t{password}",
            rhost.unwrap_or("-")
        )
        .unwrap();
        self.stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        let mut fields = line.trim_end_matches('\n').splitn(3, '\t');
        let said = fields.next().unwrap_or("").to_owned();
        let resident = fields.next() == Some("resident");
        let message = fields.next().unwrap_or("").to_owned();
        assert!(!said.is_empty(), "the PAM host died");
        HostAnswer {
            said,
            resident,
            message,
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
