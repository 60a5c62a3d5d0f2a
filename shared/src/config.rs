//! The configuration file (`/etc/apppw/apppw.toml`).
//!
//! Which file, by program (SPEC "Configuration"):
//!
//! | program                         | lookup                                                   | constructor                      |
//! |---------------------------------|----------------------------------------------------------|----------------------------------|
//! | `pam_apppw.so`                  | `config=FILE`, else [`DEFAULT_PATH`]; **never the environment** | [`Config::load_for_pam_module`] |
//! | checkpassword, web page         | `--config FILE`, `$APPPW_CONFIG`, [`DEFAULT_PATH`]        | [`Config::load_trusted`]         |
//! | admin CLI                       | the same                                                 | [`Config::load`]                 |
//!
//! A PAM module runs inside su, sudo, login and polkit helpers, whose caller controls the
//! environment: a config (and so a database) chosen by the caller would let any local user in
//! as anyone. The PAM constructor therefore takes no part in the environment lookup at all.
//! The login front-ends also check the file, and the directories above it, with
//! [`crate::trust`]; the CLI only refuses a world-writable file and warns about the rest.
//!
//! Unknown keys, malformed CIDRs and `except` entries outside every `campus` entry are errors
//! naming the file, line and key. A config that cannot be loaded never grants access: without
//! it nobody knows where campus is.
//!
//! The config describes; it does not act. This file holds what it describes (the policies,
//! the errors) and which file each program loads; `config/database.rs` the database it names,
//! `config/parse.rs` the reading of the TOML. The store, the gate and the verification use
//! it, and nothing here uses them.

use crate::hash::Params;
use crate::network::{NetworkPolicy, canonical_net};
use crate::trust::{self, CheckError, Identity, Parent, TrustError};
use ipnet::IpNet;
use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};
use toml::Spanned;

mod database;
mod parse;
pub use database::{Database, PgTarget};

/// Used when no path is given (and, except for the PAM module, `APPPW_CONFIG` is not set).
pub const DEFAULT_PATH: &str = "/etc/apppw/apppw.toml";
/// Used when the file has no `database` key.
pub const DEFAULT_DATABASE: &str = "/var/lib/apppw/apppw.db";
/// Environment variable naming the config file (CLI, checkpassword and web page only).
pub const ENV_VAR: &str = "APPPW_CONFIG";
/// Config files larger than this are refused (a config is a few hundred bytes).
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// A loaded, validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The file it was read from.
    pub path: PathBuf,
    /// The SQLite file (relative paths are relative to the config file's directory), or the
    /// PostgreSQL database with its `database_password_file`.
    pub database: Database,
    /// Campus and except networks.
    pub network: NetworkPolicy,
    /// PAM service used by the checkpassword backend for the normal password on campus.
    pub primary_pam_service: Option<String>,
    /// Argon2id parameters for new app passwords (and the dummy verification).
    pub argon2: Params,
    /// Cool-down after repeated failed app-password attempts.
    pub lockout: Lockout,
    /// `[dovecot]`: flushing Dovecot's auth cache after a revocation.
    pub dovecot: crate::authcache::Settings,
    /// `[users] case_sensitive`: keep user names exactly as given instead of lowercasing them.
    pub case_sensitive_users: bool,
    /// `[enforcement]`: enforce the off-campus rule, or only report what it would refuse.
    pub enforcement: Enforcement,
    /// `[argon2] max_concurrent`, `queue_timeout_ms`, `gate_file`: the host's Argon2
    /// admission gate.
    pub gate: crate::gate::Settings,
    /// `database_idle_seconds`: a database connection a long-lived process keeps between
    /// logins is closed after this long without one (zero: kept for the process's life).
    pub database_idle: std::time::Duration,
}

/// `[enforcement]`: how the off-campus rule for normal passwords is applied, and how long the
/// per-user, per-day counts behind `apppw report` are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enforcement {
    /// `mode`.
    pub mode: Mode,
    /// `report_retention_days`: rows of the off-campus attempt report older than this many
    /// days are deleted by the next write.
    pub report_retention_days: u32,
    /// `report_max_users_per_day`: at most this many users get their own report row per day;
    /// attempts of further users are only counted in total (a user-name spray cannot grow
    /// the table without bound).
    pub report_max_users_per_day: u32,
}

/// `[enforcement] mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Off campus only app passwords are accepted (the default).
    Enforce,
    /// Every decision is computed and logged as under `Enforce`, but an off-campus attempt
    /// with a normal password is passed on to the normal-password check (`would-refuse`).
    Report,
}

impl Default for Enforcement {
    fn default() -> Self {
        Enforcement {
            mode: Mode::Enforce,
            report_retention_days: 90,
            report_max_users_per_day: 100_000,
        }
    }
}

/// `database_idle_seconds` unless the file says otherwise.
pub const DEFAULT_DATABASE_IDLE: std::time::Duration = std::time::Duration::from_secs(60);

/// `[lockout]`: after `per_client` failed app-password attempts for a user from one address,
/// or `per_user` from all addresses, within `window_seconds`, further app-password attempts
/// for that user (from that address, or from everywhere) are refused for `cooldown_seconds`
/// without running Argon2. A limit of 0 disables that counter. The user's directory account
/// is never locked: on campus the normal password still goes to the next mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lockout {
    /// Failures per user and client address.
    pub per_client: u32,
    /// Failures per user from all addresses.
    pub per_user: u32,
    /// Counting window (seconds).
    pub window_seconds: i64,
    /// Cool-down (seconds).
    pub cooldown_seconds: i64,
}

impl Default for Lockout {
    fn default() -> Self {
        Lockout {
            per_client: 10,
            per_user: 100,
            window_seconds: 900,
            cooldown_seconds: 900,
        }
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {}: {source}{hint}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
        /// What to do about it.
        hint: &'static str,
    },
    /// The file, or a directory above it, may be changed by someone this program does not
    /// trust (SPEC "Trust").
    #[error("config file not trusted: {0}")]
    Untrusted(TrustError),
    /// Everyone may write the file: anyone could declare the Internet to be campus.
    #[error("config file {0} is writable by every user; refusing to use it (fix with chmod o-w)")]
    Insecure(PathBuf),
    /// The file is too large to be a config.
    #[error("config file {0} is larger than 1 MiB; is it the right file?")]
    TooLarge(PathBuf),
    /// A syntax or value error at a place in the file.
    #[error("{}", .0)]
    Invalid(Located),
}

/// How a program finds its config: what the "not found" hint tells the admin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lookup {
    /// `--config`, `APPPW_CONFIG`, default.
    CommandLine,
    /// `config=FILE`, default.
    PamModule,
}

fn read_hint(kind: std::io::ErrorKind, lookup: Lookup) -> &'static str {
    match (kind, lookup) {
        (std::io::ErrorKind::NotFound, Lookup::CommandLine) => {
            " (create it, or pass --config FILE / set APPPW_CONFIG)"
        }
        (std::io::ErrorKind::NotFound, Lookup::PamModule) => {
            " (create it, or name it with the module argument config=FILE; the PAM module \
             never reads APPPW_CONFIG)"
        }
        (std::io::ErrorKind::PermissionDenied, _) => {
            " (make it readable by this user, e.g. root:apppw mode 0640)"
        }
        _ => "",
    }
}

/// An error at a line and key of a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The file.
    pub path: PathBuf,
    /// 1-based line, if known.
    pub line: Option<usize>,
    /// The dotted key, if known (e.g. `network.except`).
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, " line {line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, " key `{key}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl Config {
    /// The path the command-line programs' lookup selects: `explicit` (`--config FILE`), then
    /// `APPPW_CONFIG`, then [`DEFAULT_PATH`]. Not for the PAM module (see
    /// [`Config::load_for_pam_module`]).
    #[must_use]
    pub fn locate(explicit: Option<&Path>) -> PathBuf {
        if let Some(p) = explicit {
            return p.to_path_buf();
        }
        match std::env::var_os(ENV_VAR) {
            Some(v) if !v.is_empty() => PathBuf::from(v),
            _ => PathBuf::from(DEFAULT_PATH),
        }
    }

    /// The admin CLI: locates ([`Config::locate`]) and loads the config. A world-writable file
    /// is refused; the rest of the trust rule is the CLI's to warn about.
    pub fn load(explicit: Option<&Path>) -> Result<Config, ConfigError> {
        Self::load_file(&Self::locate(explicit))
    }

    /// The checkpassword backend and the web page: locates the config like the CLI
    /// ([`Config::locate`]), and refuses it unless it and every directory above it pass
    /// [`crate::trust`].
    pub fn load_trusted(explicit: Option<&Path>) -> Result<Config, ConfigError> {
        Self::load_checked(&Self::locate(explicit), Lookup::CommandLine)
    }

    /// The PAM module: `config_arg` (the module argument `config=FILE`), else [`DEFAULT_PATH`].
    /// **Never the environment**: su, sudo and login run PAM modules with an environment their
    /// caller chose. The file and every directory above it must pass [`crate::trust`].
    pub fn load_for_pam_module(config_arg: Option<&Path>) -> Result<Config, ConfigError> {
        let path = config_arg.unwrap_or(Path::new(DEFAULT_PATH));
        Self::load_checked(path, Lookup::PamModule)
    }

    fn load_checked(path: &Path, lookup: Lookup) -> Result<Config, ConfigError> {
        let mut file =
            trust::open(path, &Identity::of_process(), Parent::Checked).map_err(|e| match e {
                CheckError::Untrusted(t) => ConfigError::Untrusted(t),
                CheckError::Io { source, .. } => ConfigError::Read {
                    path: path.to_path_buf(),
                    hint: read_hint(source.kind(), lookup),
                    source,
                },
            })?;
        let text = trust::read_to_string(&mut file, MAX_CONFIG_BYTES).map_err(|e| match e {
            CheckError::Untrusted(t) => ConfigError::Untrusted(t),
            CheckError::Io { source, .. } => ConfigError::Read {
                path: path.to_path_buf(),
                hint: "",
                source,
            },
        })?;
        let Some(text) = text else {
            return Err(ConfigError::TooLarge(path.to_path_buf()));
        };
        Self::parse(path, &text)
    }

    /// Loads and validates one file (the CLI's checks: world-writable is refused).
    pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
        use std::io::Read;
        let read_err = |source: std::io::Error| ConfigError::Read {
            path: path.to_path_buf(),
            hint: read_hint(source.kind(), Lookup::CommandLine),
            source,
        };
        let file = std::fs::File::open(path).map_err(read_err)?;
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = file.metadata().map_err(read_err)?.permissions().mode();
            if mode & 0o002 != 0 {
                return Err(ConfigError::Insecure(path.to_path_buf()));
            }
        }
        let mut text = String::new();
        file.take(MAX_CONFIG_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(read_err)?;
        if text.len() as u64 > MAX_CONFIG_BYTES {
            return Err(ConfigError::TooLarge(path.to_path_buf()));
        }
        Self::parse(path, &text)
    }

    /// The one canonical form of a user name (SPEC "Trust"), used by every lookup, insertion,
    /// listing, revocation and failure counter: lowercased, unless `[users] case_sensitive =
    /// true`. Lowercasing is Unicode's (`ALICE`, `Alice` and `alice` are one user, and so are
    /// `ÄLICE` and `älice`, as in a case-insensitive directory such as LDAP); Dovecot's default
    /// `auth_username_format = %Lu` lowercases ASCII before apppw sees the name.
    #[must_use]
    pub fn canonical_user(&self, name: &str) -> String {
        if self.case_sensitive_users {
            name.to_owned()
        } else {
            name.to_lowercase()
        }
    }
}

#[cfg(test)]
mod tests;
