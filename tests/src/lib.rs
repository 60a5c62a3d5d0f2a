//! Helpers for the integration tests in `tests/tests/`: they drive the built release binaries
//! (`target/release/apppw`, `apppw-checkpassword`, `libpam_apppw.so`) the way an admin would.
//!
//! Build first: `cargo build --release --workspace` (`scripts/test.sh` does).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod dovecot;
pub mod pam;
pub mod postfix;
pub mod postgres;
pub mod trixie;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
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
///
/// With `APPPW_TEST_STORE=postgres` and `APPPW_TEST_PG_URL=postgresql://...` in the
/// environment, the config names a fresh PostgreSQL database instead of the SQLite file
/// (`db` is then never created); tests of SQLite specifics skip with
/// [`TestEnv::skip_unless_sqlite`].
pub struct TestEnv {
    /// The temp directory (removed on drop).
    pub dir: tempfile::TempDir,
    /// The Argon2 admission gate's file (`[argon2] gate_file`), in `dir/run`: the test's own
    /// gate, removed on drop.
    pub gate: PathBuf,
    /// The config file.
    pub config: PathBuf,
    /// The SQLite database path named in the config (unused with PostgreSQL).
    pub db: PathBuf,
    /// The PostgreSQL URL named in the config, if the store is PostgreSQL.
    pub pg_url: Option<String>,
}

/// The PostgreSQL database the environment asks tests to use, if any: a fresh one per call.
fn postgres_from_environment() -> Option<String> {
    if std::env::var("APPPW_TEST_STORE").ok().as_deref() != Some("postgres") {
        return None;
    }
    let admin = std::env::var("APPPW_TEST_PG_URL")
        .expect("APPPW_TEST_STORE=postgres needs APPPW_TEST_PG_URL (scripts/test.sh sets both)");
    let name = postgres::create_database(&admin);
    Some(postgres::with_database(&admin, &name))
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        // System V semaphores outlive processes: remove the test's gate.
        let _ = apppw::gate::remove(&self.gate);
    }
}

impl TestEnv {
    /// A config with campus 192.0.2.0/24 and 2001:db8::/48, except 192.0.2.128/25, default
    /// (OWASP) Argon2 parameters, and `extra` appended.
    pub fn new(extra: &str) -> TestEnv {
        Self::build(postgres_from_environment(), "", extra)
    }

    /// Like [`TestEnv::new`], always with an SQLite file, whatever `APPPW_TEST_STORE` says.
    pub fn sqlite(extra: &str) -> TestEnv {
        Self::build(None, "", extra)
    }

    /// Like [`TestEnv::new`], with the given PostgreSQL URL as `database`; `top` holds more
    /// top-level keys (e.g. `database_password_file = "..."`).
    pub fn with_postgres(url: &str, top: &str, extra: &str) -> TestEnv {
        Self::build(Some(url.to_owned()), top, extra)
    }

    fn build(pg_url: Option<String>, top: &str, extra: &str) -> TestEnv {
        let dir = tempfile::Builder::new()
            .prefix("apppw-test.")
            .tempdir()
            .unwrap();
        // Dovecot's unprivileged processes must be able to reach files in here.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let db = dir.path().join("apppw.db");
        let config = dir.path().join("apppw.toml");
        let database = pg_url.clone().unwrap_or_else(|| db.display().to_string());
        // The test's own Argon2 admission gate, as the package sets up /run/apppw: a directory
        // for root and the group of the processes that verify (here Dovecot's, whose auth
        // process runs checkpassword), setgid so that the gate file and set get that group.
        let run = dir.path().join("run");
        std::fs::create_dir(&run).unwrap();
        let gid = dovecot::group_id("dovecot").unwrap_or(0);
        std::os::unix::fs::chown(&run, None, Some(gid)).unwrap();
        std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o2770)).unwrap();
        let gate = run.join("argon2-gate");
        let gate_line = format!("gate_file = \"{}\"\n", gate.display());
        let extra = if extra.contains("[argon2]\n") {
            extra.replacen("[argon2]\n", &format!("[argon2]\n{gate_line}"), 1)
        } else {
            format!("{extra}\n[argon2]\n{gate_line}")
        };
        let text = format!(
            "database = \"{database}\"\n{top}\n[network]\ncampus = [\"192.0.2.0/24\", \"2001:db8::/48\"]\n\
             except = [\"192.0.2.128/25\"]\n{extra}\n"
        );
        std::fs::write(&config, text).unwrap();
        TestEnv {
            dir,
            gate,
            config,
            db,
            pg_url,
        }
    }

    /// The gate's semaphore set right now: (free, capacity, waiting).
    pub fn gate_status(&self) -> Option<(i32, i32, i32)> {
        let out = Command::new(bin("apppw-test-gate"))
            .arg("status")
            .arg(&self.config)
            .output()
            .ok()?;
        let v: Vec<i32> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        (v.len() == 3).then(|| (v[0], v[1], v[2]))
    }

    /// Is the store PostgreSQL?
    pub fn is_postgres(&self) -> bool {
        self.pg_url.is_some()
    }

    /// Runs one SQL statement on the store (SQLite or PostgreSQL); returns the rows changed.
    /// Keep it portable: the same text runs on both.
    pub fn sql(&self, sql: &str) -> usize {
        match &self.pg_url {
            None => rusqlite::Connection::open(&self.db)
                .unwrap()
                .execute(sql, [])
                .unwrap(),
            Some(url) => {
                let out = Command::new("psql")
                    .args(["-X", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql])
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "psql: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                // "UPDATE 1", "DELETE 0", ...
                String::from_utf8_lossy(&out.stdout)
                    .split_whitespace()
                    .last()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0)
            }
        }
    }

    /// Everything the store holds, as bytes (the SQLite file, or a dump of the PostgreSQL
    /// tables): to show that a secret is not in it.
    pub fn dump(&self) -> Vec<u8> {
        match &self.pg_url {
            None => std::fs::read(&self.db).unwrap(),
            Some(url) => postgres::psql(
                url,
                "SELECT string_agg(t::text, E'\\n') FROM app_passwords t",
            )
            .into_bytes(),
        }
    }

    /// Removes the database (SQLite: the file; PostgreSQL: apppw's tables), as if it had
    /// never been created.
    pub fn remove_database(&self) {
        match &self.pg_url {
            None => std::fs::remove_file(&self.db).unwrap(),
            // Every table of every schema version, whatever it is.
            Some(url) => {
                postgres::psql(url, "DROP SCHEMA public CASCADE; CREATE SCHEMA public");
            }
        }
    }

    /// For tests of SQLite specifics (file modes, corrupt files, locks): prints a SKIP line
    /// and returns true when the store is PostgreSQL.
    pub fn skip_unless_sqlite(&self, test: &str) -> bool {
        if self.is_postgres() {
            eprintln!("SKIP {test}: SQLite-specific, the store is PostgreSQL");
            return true;
        }
        false
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

    /// One login through `apppw-checkpassword` as Dovecot runs it (service imap, client
    /// `ip`, reply program `/bin/true`); the exit status.
    pub fn checkpassword(&self, user: &str, pass: &str, ip: &str) -> Option<i32> {
        let mut cmd = checkpassword_command();
        cmd.arg("--config")
            .arg(&self.config)
            .arg("/bin/true")
            .env("SERVICE", "imap")
            .env("TCPREMOTEIP", ip);
        run_with_stdin(&mut cmd, format!("{user}\0{pass}\0\0").as_bytes())
            .status
            .code()
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

/// `apppw-checkpassword` as Dovecot starts it: what the caller writes to stdin arrives on fd 3,
/// stdin itself is closed, and the environment is empty. Add the arguments and the variables.
pub fn checkpassword_command() -> Command {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg("exec \"$@\" 3<&0 0</dev/null")
        .arg("sh")
        .arg(bin("apppw-checkpassword"))
        .env_clear();
    cmd
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
