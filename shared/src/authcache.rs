//! Flushing a user from Dovecot's authentication cache after a revocation.
//!
//! With `auth_cache_size` set, Dovecot answers a repeated login from its cache without asking
//! the passdb, so a revoked app password would keep working until the entry's TTL runs out.
//! After deleting app passwords, the CLI (and the web page) run
//! `doveadm auth cache flush [-a SOCKET] -- USER` when `[dovecot] flush_auth_cache` allows it.
//! A flush that fails is reported, never an error of the revocation: the app password is gone
//! from the store either way.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The `doveadm` used unless `[dovecot] doveadm` names another.
pub const DEFAULT_DOVEADM: &str = "/usr/bin/doveadm";
/// How long a flush may take before it is given up (the revocation has happened already).
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// `[dovecot]` in the config file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Settings {
    /// `flush_auth_cache`: `None` (not set) flushes when `doveadm` is installed.
    pub flush_auth_cache: Option<bool>,
    /// `doveadm`: the program (absolute path); default [`DEFAULT_DOVEADM`].
    pub doveadm: Option<PathBuf>,
    /// `auth_master_socket`: passed as `-a`, for a Dovecot whose `base_dir` is not the default
    /// (another instance); default: doveadm's own, from `dovecot.conf`.
    pub auth_master_socket: Option<PathBuf>,
}

/// `[dovecot]` as written in the file (validated by [`Settings::from_raw`]).
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawSettings {
    flush_auth_cache: Option<bool>,
    doveadm: Option<toml::Spanned<String>>,
    auth_master_socket: Option<toml::Spanned<String>>,
}

impl Settings {
    /// Checks the paths: absolute, no NUL. The error is the span, the dotted key and the
    /// message, for the config's located error.
    pub fn from_raw(
        raw: RawSettings,
    ) -> Result<Settings, (std::ops::Range<usize>, &'static str, String)> {
        let path = |v: Option<toml::Spanned<String>>, key: &'static str| match v {
            None => Ok(None),
            Some(s) if s.get_ref().starts_with('/') && !s.get_ref().contains('\0') => {
                Ok(Some(PathBuf::from(s.get_ref())))
            }
            Some(s) => Err((s.span(), key, "must be an absolute path".to_owned())),
        };
        Ok(Settings {
            flush_auth_cache: raw.flush_auth_cache,
            doveadm: path(raw.doveadm, "dovecot.doveadm")?,
            auth_master_socket: path(raw.auth_master_socket, "dovecot.auth_master_socket")?,
        })
    }
}

/// What a flush did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `doveadm` flushed the user; the number of cache entries it removed, if it said.
    Flushed(Option<u64>),
    /// `flush_auth_cache = false`.
    Disabled,
    /// Not configured and no `doveadm` installed: nothing to flush.
    NoDoveadm,
    /// It did not work: why (for a warning).
    Failed(String),
}

/// Flushes `user` from Dovecot's auth cache as `settings` say. Never panics; waits at most
/// [`TIMEOUT`].
#[must_use]
pub fn flush(settings: &Settings, user: &str) -> Outcome {
    flush_users(settings, &[user])
}

/// Flushes several users with one `doveadm` run (it takes a list), e.g. after `apppw prune`.
/// Nothing to do for an empty list.
#[must_use]
pub fn flush_users(settings: &Settings, users: &[&str]) -> Outcome {
    if users.is_empty() {
        return Outcome::Flushed(Some(0));
    }
    if settings.flush_auth_cache == Some(false) {
        return Outcome::Disabled;
    }
    let doveadm = settings
        .doveadm
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DOVEADM));
    if !doveadm.exists() {
        return if settings.flush_auth_cache == Some(true) {
            Outcome::Failed(format!("{} does not exist", doveadm.display()))
        } else {
            Outcome::NoDoveadm
        };
    }
    let mut cmd = Command::new(&doveadm);
    cmd.args(["auth", "cache", "flush"]);
    if let Some(socket) = &settings.auth_master_socket {
        cmd.arg("-a").arg(socket);
    }
    // "--": a user name that starts with "-" is a name, not an option.
    cmd.arg("--").args(users);
    run(&doveadm, &mut cmd)
}

fn run(doveadm: &Path, cmd: &mut Command) -> Outcome {
    let mut child = match cmd
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return Outcome::Failed(format!("cannot run {}: {e}", doveadm.display())),
    };
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Outcome::Failed(format!(
                    "{} did not finish within {} s",
                    doveadm.display(),
                    TIMEOUT.as_secs()
                ));
            }
            Err(e) => return Outcome::Failed(format!("waiting for doveadm: {e}")),
        }
    };
    // The output is one short line; it fits in the pipe, so reading after the exit is safe.
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(mut s) = child.stdout.take() {
        let _ = s.by_ref().take(64 * 1024).read_to_string(&mut stdout);
    }
    if let Some(mut s) = child.stderr.take() {
        let _ = s.by_ref().take(64 * 1024).read_to_string(&mut stderr);
    }
    // doveadm (2.3 and 2.4) prints "0 cache entries flushed" and exits 0 when it cannot
    // reach the auth-master socket; only its "Error:" line tells.
    let error = stderr
        .lines()
        .map(str::trim)
        .find(|l| l.contains("Error:") || l.contains("Fatal:"));
    if status.success() && error.is_none() {
        return Outcome::Flushed(entries(&stdout));
    }
    let said = error
        .or_else(|| {
            stderr
                .lines()
                .chain(stdout.lines())
                .map(str::trim)
                .find(|l| !l.is_empty())
        })
        .unwrap_or("no message");
    let status = match status.code() {
        Some(0) => String::new(),
        Some(c) => format!(" exited with status {c}"),
        None => " was killed by a signal".to_owned(),
    };
    Outcome::Failed(format!(
        "{} auth cache flush{status}: {}",
        doveadm.display(),
        said.chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .take(300)
            .collect::<String>()
    ))
}

/// "3 cache entries flushed" → 3.
fn entries(stdout: &str) -> Option<u64> {
    stdout.lines().find_map(|l| {
        l.trim()
            .strip_suffix("cache entries flushed")?
            .trim()
            .parse()
            .ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A stand-in doveadm: a shell script that logs its arguments and behaves as told.
    fn fake(dir: &Path, body: &str) -> Settings {
        let path = dir.join("doveadm");
        std::fs::write(
            &path,
            format!("#!/bin/sh\necho \"$@\" >{}/args\n{body}\n", dir.display()),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        Settings {
            flush_auth_cache: None,
            doveadm: Some(path),
            auth_master_socket: None,
        }
    }

    #[test]
    fn flushes_the_user_and_reports_the_count() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = fake(dir.path(), "echo '2 cache entries flushed'");
        assert_eq!(flush(&s, "alice"), Outcome::Flushed(Some(2)));
        let args = std::fs::read_to_string(dir.path().join("args")).unwrap();
        assert_eq!(args.trim(), "auth cache flush -- alice");
        s.auth_master_socket = Some(PathBuf::from("/run/dovecot2/auth-master"));
        assert_eq!(flush(&s, "-bob"), Outcome::Flushed(Some(2)));
        let args = std::fs::read_to_string(dir.path().join("args")).unwrap();
        assert_eq!(
            args.trim(),
            "auth cache flush -a /run/dovecot2/auth-master -- -bob"
        );
    }

    #[test]
    fn failure_is_an_outcome_with_the_message() {
        let dir = tempfile::tempdir().unwrap();
        let s = fake(
            dir.path(),
            "echo 'Error: net_connect_unix(/run/dovecot/auth-master) failed: Permission denied' >&2; exit 75",
        );
        match flush(&s, "alice") {
            Outcome::Failed(why) => {
                assert!(why.contains("status 75"), "{why}");
                assert!(why.contains("Permission denied"), "{why}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_error_line_is_a_failure_even_with_status_0() {
        let dir = tempfile::tempdir().unwrap();
        let s = fake(
            dir.path(),
            "echo '0 cache entries flushed'; echo 'Error: auth-master: auth cache flush: \
             connect(/run/dovecot/auth-master) failed: No such file or directory' >&2",
        );
        match flush(&s, "alice") {
            Outcome::Failed(why) => assert!(why.contains("connect("), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn disabled_and_missing_doveadm() {
        let s = Settings {
            flush_auth_cache: None,
            doveadm: Some(PathBuf::from("/nonexistent/doveadm")),
            auth_master_socket: None,
        };
        assert_eq!(flush(&s, "alice"), Outcome::NoDoveadm);
        let s = Settings {
            flush_auth_cache: Some(true),
            ..s
        };
        assert!(matches!(flush(&s, "alice"), Outcome::Failed(_)));
        let s = Settings {
            flush_auth_cache: Some(false),
            ..s
        };
        assert_eq!(flush(&s, "alice"), Outcome::Disabled);
    }

    #[test]
    fn a_hanging_doveadm_is_given_up() {
        let dir = tempfile::tempdir().unwrap();
        let s = fake(dir.path(), "exec sleep 30");
        let t = Instant::now();
        assert!(matches!(flush(&s, "alice"), Outcome::Failed(w) if w.contains("did not finish")));
        assert!(t.elapsed() < Duration::from_secs(15));
    }
}
