//! Helpers for the integration tests in `tests/tests/`: they drive the built release binaries
//! (`target/release/apppw`, `apppw-checkpassword`, `libpam_apppw.so`) the way an admin would.
//!
//! Build first: `cargo build --release --workspace` (the README's test command does).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod dovecot;
pub mod pam;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Campus network used by every test config.
pub const CAMPUS_IP: &str = "192.0.2.10";
/// Inside campus but listed in `except` (eduroam-style).
pub const EXCEPT_IP: &str = "192.0.2.200";
/// Off campus.
pub const OFF_IP: &str = "203.0.113.9";

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A built artifact in `target/release` (or `$APPPW_BIN_DIR`).
pub fn bin(name: &str) -> PathBuf {
    let dir = std::env::var_os("APPPW_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/release"));
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --release --workspace` first",
        p.display()
    );
    p
}

/// A temp directory with a config file and (once something is created) a database.
pub struct TestEnv {
    /// The temp directory (removed on drop).
    pub dir: tempfile::TempDir,
    /// The config file.
    pub config: PathBuf,
    /// The database path named in the config.
    pub db: PathBuf,
}

impl TestEnv {
    /// A config with campus 192.0.2.0/24 and 2001:db8::/48, except 192.0.2.128/25, default
    /// (OWASP) Argon2 parameters, and `extra` appended.
    pub fn new(extra: &str) -> TestEnv {
        let dir = tempfile::Builder::new()
            .prefix("apppw-test.")
            .tempdir()
            .unwrap();
        // Dovecot's unprivileged processes must be able to reach files in here.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let db = dir.path().join("apppw.db");
        let config = dir.path().join("apppw.toml");
        let text = format!(
            "database = \"{}\"\n\n[network]\ncampus = [\"192.0.2.0/24\", \"2001:db8::/48\"]\n\
             except = [\"192.0.2.128/25\"]\n{extra}\n",
            db.display()
        );
        std::fs::write(&config, text).unwrap();
        TestEnv { dir, config, db }
    }

    /// Runs `apppw --config CONFIG ARGS...` with `stdin`.
    pub fn apppw(&self, args: &[&str], stdin: &str) -> Output {
        run_with_stdin(
            Command::new(bin("apppw"))
                .arg("--config")
                .arg(&self.config)
                .args(args),
            stdin.as_bytes(),
        )
    }

    /// Creates an app password and returns it as printed (grouped).
    pub fn create(&self, user: &str, label: &str, extra: &[&str]) -> String {
        let mut args = vec!["create", user, label, "--json"];
        args.extend_from_slice(extra);
        let out = self.apppw(&args, "");
        assert!(
            out.status.success(),
            "create failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["password"].as_str().unwrap().to_owned()
    }
}

/// Runs a command with `stdin` fed and stdout/stderr captured.
pub fn run_with_stdin(cmd: &mut Command, stdin: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(mut s) = child.stdin.take() {
        let _ = s.write_all(stdin);
    }
    child.wait_with_output().unwrap()
}

/// Whether we run as root (some tests need it: Dovecot, /etc/pam.d entries).
pub fn is_root() -> bool {
    std::env::var("USER").map(|u| u == "root").unwrap_or(false)
        || std::fs::read_to_string("/proc/self/status")
            .map(|s| {
                s.lines()
                    .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
            })
            .unwrap_or(false)
}
