//! The configuration file (`/etc/apppw/apppw.toml`).
//!
//! Lookup order: an explicit path (`--config FILE`, `config=FILE`), then `APPPW_CONFIG`, then
//! [`DEFAULT_PATH`]. Unknown keys, malformed CIDRs and `except` entries outside every `campus`
//! entry are errors naming the file, line and key. A config that cannot be loaded never grants
//! access: without it nobody knows where campus is.

use crate::hash::Params;
use crate::network::{NetworkPolicy, canonical_net};
use crate::store::{Database, PgTarget};
use ipnet::IpNet;
use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// Used when neither an explicit path nor `APPPW_CONFIG` is given.
pub const DEFAULT_PATH: &str = "/etc/apppw/apppw.toml";
/// Used when the file has no `database` key.
pub const DEFAULT_DATABASE: &str = "/var/lib/apppw/apppw.db";
/// Environment variable naming the config file.
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
    /// `[argon2] max_concurrent`, `queue_timeout_ms`, `gate_file`: the host's Argon2
    /// admission gate.
    pub gate: crate::gate::Settings,
    /// `database_idle_seconds`: a database connection a long-lived process keeps between
    /// logins is closed after this long without one (zero: kept for the process's life).
    pub database_idle: std::time::Duration,
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
    #[error("cannot read config file {path}: {source}{hint}", hint = read_hint(source))]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
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

fn read_hint(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::NotFound => " (create it, or pass --config FILE / set APPPW_CONFIG)",
        std::io::ErrorKind::PermissionDenied => {
            " (make it readable by this user, e.g. root:dovecot mode 0640)"
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    database: Option<Spanned<String>>,
    database_password_file: Option<Spanned<String>>,
    database_idle_seconds: Option<Spanned<u32>>,
    #[serde(default)]
    network: RawNetwork,
    #[serde(default)]
    primary: RawPrimary,
    #[serde(default)]
    argon2: RawArgon2,
    #[serde(default)]
    lockout: RawLockout,
    #[serde(default)]
    dovecot: crate::authcache::RawSettings,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLockout {
    max_failures_per_client: Option<u32>,
    max_failures_per_user: Option<u32>,
    window_seconds: Option<Spanned<u32>>,
    cooldown_seconds: Option<Spanned<u32>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawNetwork {
    #[serde(default)]
    campus: Vec<Spanned<String>>,
    #[serde(default)]
    except: Vec<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPrimary {
    pam_service: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawArgon2 {
    memory_kib: Option<Spanned<u32>>,
    iterations: Option<Spanned<u32>>,
    parallelism: Option<Spanned<u32>>,
    max_concurrent: Option<Spanned<u32>>,
    queue_timeout_ms: Option<Spanned<u32>>,
    gate_file: Option<Spanned<String>>,
}

impl Config {
    /// The path the lookup order selects.
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

    /// Locates and loads the config.
    pub fn load(explicit: Option<&Path>) -> Result<Config, ConfigError> {
        Self::load_file(&Self::locate(explicit))
    }

    /// Loads and validates one file.
    pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
        use std::io::Read;
        let read_err = |source| ConfigError::Read {
            path: path.to_path_buf(),
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

    /// Parses config text; `path` is used for messages and relative database paths.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let at = |span: Option<std::ops::Range<usize>>, key: Option<&str>, message: String| {
            ConfigError::Invalid(Located {
                path: path.to_path_buf(),
                line: span.map(|s| line_of(text, s.start)),
                key: key.map(str::to_owned),
                message,
            })
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let span = e.span();
            let key = span
                .clone()
                .and_then(|s| key_at(text, s.start))
                .or_else(|| unknown_field_name(e.message()));
            at(span, key.as_deref(), first_line(e.message()))
        })?;

        let relative = |p: PathBuf| {
            if p.is_relative() {
                path.parent().unwrap_or(Path::new(".")).join(p)
            } else {
                p
            }
        };
        let database = match raw.database {
            Some(db) if Database::is_url(db.get_ref()) => {
                Database::check_url(db.get_ref())
                    .map_err(|m| at(Some(db.span()), Some("database"), m))?;
                let password_file = match &raw.database_password_file {
                    Some(f) if f.get_ref().is_empty() => {
                        return Err(at(
                            Some(f.span()),
                            Some("database_password_file"),
                            "is empty".into(),
                        ));
                    }
                    Some(f) => Some(relative(PathBuf::from(f.get_ref()))),
                    None => None,
                };
                Database::Postgres(PgTarget {
                    url: db.get_ref().clone(),
                    password_file,
                })
            }
            Some(db) => {
                if db.get_ref().is_empty() {
                    return Err(at(Some(db.span()), Some("database"), "is empty".into()));
                }
                Database::Sqlite(relative(PathBuf::from(db.get_ref())))
            }
            None => Database::Sqlite(PathBuf::from(DEFAULT_DATABASE)),
        };
        if let (Database::Sqlite(_), Some(f)) = (&database, &raw.database_password_file) {
            return Err(at(
                Some(f.span()),
                Some("database_password_file"),
                "only applies to a PostgreSQL database (database = \"postgresql://...\")".into(),
            ));
        }

        let parse_nets = |list: &[Spanned<String>], key: &str| -> Result<Vec<IpNet>, ConfigError> {
            list.iter()
                .map(|s| parse_cidr(s.get_ref()).map_err(|m| at(Some(s.span()), Some(key), m)))
                .collect()
        };
        let campus = parse_nets(&raw.network.campus, "network.campus")?;
        let except = parse_nets(&raw.network.except, "network.except")?;
        for (net, raw_net) in except.iter().zip(&raw.network.except) {
            let inside = campus.iter().any(|c| {
                let (c, n) = (canonical_net(*c), canonical_net(*net));
                c.contains(&n.network()) && c.contains(&n.broadcast())
            });
            if !inside {
                return Err(at(
                    Some(raw_net.span()),
                    Some("network.except"),
                    format!(
                        "{net} is not inside any campus network; except lists parts of campus \
                         that are treated as off campus"
                    ),
                ));
            }
        }

        let primary_pam_service = match raw.primary.pam_service {
            Some(s) => {
                let name = s.get_ref();
                let ok = !name.is_empty()
                    && name.len() <= 64
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
                if !ok {
                    return Err(at(
                        Some(s.span()),
                        Some("primary.pam_service"),
                        "must be a PAM service name (letters, digits, - _ .)".into(),
                    ));
                }
                Some(name.clone())
            }
            None => None,
        };

        let defaults = Params::default();
        let get = |v: &Option<Spanned<u32>>, d: u32| v.as_ref().map_or(d, |s| *s.get_ref());
        let argon2 = Params {
            memory_kib: get(&raw.argon2.memory_kib, defaults.memory_kib),
            iterations: get(&raw.argon2.iterations, defaults.iterations),
            parallelism: get(&raw.argon2.parallelism, defaults.parallelism),
        };
        if let Err(msg) = argon2.validate() {
            let span = raw
                .argon2
                .memory_kib
                .as_ref()
                .or(raw.argon2.iterations.as_ref())
                .or(raw.argon2.parallelism.as_ref())
                .map(Spanned::span);
            return Err(at(span, Some("argon2"), msg));
        }

        let database_idle = match &raw.database_idle_seconds {
            None => DEFAULT_DATABASE_IDLE,
            Some(v) if *v.get_ref() <= 86_400 => {
                std::time::Duration::from_secs(u64::from(*v.get_ref()))
            }
            Some(v) => {
                return Err(at(
                    Some(v.span()),
                    Some("database_idle_seconds"),
                    "must be between 0 (never closed) and 86400".into(),
                ));
            }
        };
        let gate = crate::gate::Settings::from_raw(
            raw.argon2.max_concurrent,
            raw.argon2.queue_timeout_ms,
            raw.argon2.gate_file,
        )
        .map_err(|(span, key, m)| at(Some(span), Some(key), m))?;

        let d = Lockout::default();
        let mut lockout = Lockout {
            per_client: raw.lockout.max_failures_per_client.unwrap_or(d.per_client),
            per_user: raw.lockout.max_failures_per_user.unwrap_or(d.per_user),
            window_seconds: d.window_seconds,
            cooldown_seconds: d.cooldown_seconds,
        };
        for (field, key, target) in [
            (
                &raw.lockout.window_seconds,
                "lockout.window_seconds",
                &mut lockout.window_seconds,
            ),
            (
                &raw.lockout.cooldown_seconds,
                "lockout.cooldown_seconds",
                &mut lockout.cooldown_seconds,
            ),
        ] {
            if let Some(v) = field {
                if *v.get_ref() == 0 || *v.get_ref() > 7 * 86_400 {
                    return Err(at(
                        Some(v.span()),
                        Some(key),
                        "must be between 1 and 604800 seconds".into(),
                    ));
                }
                *target = i64::from(*v.get_ref());
            }
        }

        let dovecot = crate::authcache::Settings::from_raw(raw.dovecot)
            .map_err(|(span, key, m)| at(Some(span), Some(key), m))?;

        Ok(Config {
            database_idle,
            gate,
            dovecot,
            lockout,
            path: path.to_path_buf(),
            database,
            network: NetworkPolicy::new(campus, except),
            primary_pam_service,
            argon2,
        })
    }
}

fn parse_cidr(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    if let Ok(net) = s.parse::<IpNet>() {
        if net.trunc() != net {
            return Err(format!(
                "{s} has host bits set; did you mean {}?",
                net.trunc()
            ));
        }
        return Ok(net);
    }
    // A bare address is a /32 or /128: convenient and unambiguous.
    if let Ok(ip) = s.parse::<std::net::IpAddr>() {
        return Ok(IpNet::from(ip));
    }
    Err(format!(
        "`{s}` is not a network in CIDR form (e.g. 192.0.2.0/24 or 2001:db8::/48)"
    ))
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).map_or(1, |prefix| {
        prefix.bytes().filter(|&b| b == b'\n').count() + 1
    })
}

/// The dotted key whose value or name is at `offset`: the table header above plus the key on
/// that line.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let before = text.get(..offset)?;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text.get(line_start..)?.lines().next()?;
    let key = line.split('=').next()?.trim();
    if key.is_empty() || key.starts_with('[') || key.starts_with('#') {
        return None;
    }
    let table = before
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('[') && !l.starts_with("[["))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_owned());
    Some(match table {
        Some(t) if !t.is_empty() => format!("{t}.{key}"),
        _ => key.to_owned(),
    })
}

fn unknown_field_name(msg: &str) -> Option<String> {
    let rest = msg.split("unknown field `").nth(1)?;
    Some(rest.split('`').next()?.to_owned())
}

fn first_line(msg: &str) -> String {
    msg.lines().next().unwrap_or(msg).trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
database = "/var/lib/apppw/apppw.db"

[network]
campus = ["192.0.2.0/24", "2001:db8::/48"]
except = ["192.0.2.128/25"]

[primary]
pam_service = "apppw-primary"

[argon2]
memory_kib = 19456
iterations = 2
parallelism = 1
"#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/etc/apppw/apppw.toml"), text)
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn parses_the_documented_example() {
        let c = parse(FULL).unwrap();
        assert_eq!(
            c.database,
            Database::Sqlite(PathBuf::from("/var/lib/apppw/apppw.db"))
        );
        assert_eq!(c.primary_pam_service.as_deref(), Some("apppw-primary"));
        assert_eq!(c.network.campus().len(), 2);
        assert_eq!(c.argon2, Params::default());
        assert_eq!(c.lockout, Lockout::default());
        assert!(c.network.locate(Some("192.0.2.1")).is_campus());
        assert!(!c.network.locate(Some("192.0.2.129")).is_campus());
    }

    #[test]
    fn empty_file_means_no_campus_and_defaults() {
        let c = parse("").unwrap();
        assert_eq!(
            c.database,
            Database::Sqlite(PathBuf::from(DEFAULT_DATABASE))
        );
        assert!(!c.network.locate(Some("192.0.2.1")).is_campus());
        assert_eq!(c.primary_pam_service, None);
    }

    #[test]
    fn relative_database_is_relative_to_the_config() {
        let c = Config::parse(Path::new("/srv/x/apppw.toml"), "database = \"a.db\"").unwrap();
        assert_eq!(c.database, Database::Sqlite(PathBuf::from("/srv/x/a.db")));
    }

    #[test]
    fn postgresql_database_and_password_file() {
        let c = Config::parse(
            Path::new("/etc/apppw/apppw.toml"),
            "database = \"postgresql://apppw@db.example.org:5432/apppw?connect_timeout=2\"\n\
             database_password_file = \"db-password\"\n",
        )
        .unwrap();
        assert_eq!(
            c.database,
            Database::Postgres(PgTarget {
                url: "postgresql://apppw@db.example.org:5432/apppw?connect_timeout=2".into(),
                password_file: Some(PathBuf::from("/etc/apppw/db-password")),
            })
        );
        let c = parse("database = \"postgres:///apppw?host=/var/run/postgresql\"\n").unwrap();
        assert!(matches!(
            c.database,
            Database::Postgres(PgTarget {
                password_file: None,
                ..
            })
        ));
    }

    #[test]
    fn postgresql_mistakes_are_located() {
        let e = err("database = \"/x.db\"\ndatabase_password_file = \"/etc/apppw/pw\"\n");
        assert!(
            e.contains("line 2") && e.contains("database_password_file"),
            "{e}"
        );
        let e = err("\ndatabase = \"postgresql://apppw:s3cret@db/apppw\"\n");
        assert!(e.contains("line 2") && e.contains("key `database`"), "{e}");
        assert!(e.contains("database_password_file"), "{e}");
        assert!(!e.contains("s3cret"), "{e}");
        #[cfg(feature = "postgres")]
        {
            let e = err("database = \"postgresql://db/apppw?connect_timeout=soon\"\n");
            assert!(
                e.contains("line 1") && e.contains("not a valid PostgreSQL URL"),
                "{e}"
            );
        }
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let e = err("database = \"/x.db\"\n[network]\ncampus = []\ncampsu = [\"10.0.0.0/8\"]\n");
        assert!(e.contains("/etc/apppw/apppw.toml line 4"), "{e}");
        assert!(e.contains("campsu"), "{e}");
        let e = err("databse = \"/x.db\"\n");
        assert!(e.contains("line 1"), "{e}");
        assert!(e.contains("databse"), "{e}");
    }

    #[test]
    fn malformed_cidr_names_line_and_key() {
        let e = err("[network]\ncampus = [\n  \"192.0.2.0/24\",\n  \"10.0.0/8\",\n]\n");
        assert!(e.contains("line 4"), "{e}");
        assert!(e.contains("network.campus"), "{e}");
        assert!(e.contains("10.0.0/8"), "{e}");
        let e = err("[network]\ncampus = [\"192.0.2.1/24\"]\n");
        assert!(e.contains("host bits"), "{e}");
    }

    #[test]
    fn except_outside_campus_is_an_error() {
        let e = err("[network]\ncampus = [\"192.0.2.0/24\"]\nexcept = [\"198.51.100.0/24\"]\n");
        assert!(e.contains("line 3"), "{e}");
        assert!(e.contains("network.except"), "{e}");
        // Larger than the campus network it starts in.
        let e = err("[network]\ncampus = [\"192.0.2.0/24\"]\nexcept = [\"192.0.0.0/16\"]\n");
        assert!(e.contains("network.except"), "{e}");
    }

    #[test]
    fn wrong_types_and_syntax_are_located() {
        let e = err("[argon2]\nmemory_kib = \"lots\"\n");
        assert!(e.contains("line 2"), "{e}");
        assert!(e.contains("argon2.memory_kib"), "{e}");
        let e = err("[network\ncampus = []\n");
        assert!(e.contains("line 1"), "{e}");
        let e = err("[argon2]\nmemory_kib = 4\n");
        assert!(e.contains("argon2"), "{e}");
        let e = err("[primary]\npam_service = \"../../etc/shadow\"\n");
        assert!(e.contains("primary.pam_service"), "{e}");
    }

    #[test]
    fn lockout_settings() {
        let c = parse("[lockout]\nmax_failures_per_client = 0\ncooldown_seconds = 60\n").unwrap();
        assert_eq!(c.lockout.per_client, 0);
        assert_eq!(c.lockout.per_user, 100);
        assert_eq!(c.lockout.cooldown_seconds, 60);
        let e = err("[lockout]\nwindow_seconds = 0\n");
        assert!(
            e.contains("line 2") && e.contains("lockout.window_seconds"),
            "{e}"
        );
    }

    #[test]
    fn dovecot_settings() {
        let c = parse("").unwrap();
        assert_eq!(c.dovecot, crate::authcache::Settings::default());
        let c = parse(
            "[dovecot]\nflush_auth_cache = false\ndoveadm = \"/opt/dovecot/bin/doveadm\"\n\
             auth_master_socket = \"/run/dovecot2/auth-master\"\n",
        )
        .unwrap();
        assert_eq!(c.dovecot.flush_auth_cache, Some(false));
        assert_eq!(
            c.dovecot.doveadm.as_deref(),
            Some(Path::new("/opt/dovecot/bin/doveadm"))
        );
        let e = err("[dovecot]\ndoveadm = \"doveadm\"\n");
        assert!(e.contains("line 2") && e.contains("dovecot.doveadm"), "{e}");
        let e = err("[dovecot]\nflush_cache = true\n");
        assert!(e.contains("line 2") && e.contains("flush_cache"), "{e}");
    }

    #[test]
    fn database_idle_seconds() {
        assert_eq!(parse("").unwrap().database_idle, DEFAULT_DATABASE_IDLE);
        let c = parse("database_idle_seconds = 0\n").unwrap();
        assert!(c.database_idle.is_zero());
        let e = err("\ndatabase_idle_seconds = 100000\n");
        assert!(
            e.contains("line 2") && e.contains("database_idle_seconds"),
            "{e}"
        );
    }

    #[test]
    fn argon2_gate_settings() {
        let c = parse("").unwrap();
        assert_eq!(c.gate, crate::gate::Settings::default());
        let c = parse(
            "[argon2]\nmax_concurrent = 0\nqueue_timeout_ms = 500\ngate_file = \"/run/x/g\"\n",
        )
        .unwrap();
        assert_eq!(c.gate.max_concurrent, 0);
        assert_eq!(c.gate.queue_timeout, std::time::Duration::from_millis(500));
        assert_eq!(c.gate.path, PathBuf::from("/run/x/g"));
        let e = err("[argon2]\nmax_concurrent = 100000\n");
        assert!(
            e.contains("line 2") && e.contains("argon2.max_concurrent"),
            "{e}"
        );
        let e = err("[argon2]\n\ngate_file = \"gate\"\n");
        assert!(
            e.contains("line 3") && e.contains("argon2.gate_file"),
            "{e}"
        );
    }

    #[test]
    fn missing_file_says_what_to_do() {
        let e = Config::load_file(Path::new("/nonexistent/apppw.toml")).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("/nonexistent/apppw.toml"), "{msg}");
        assert!(msg.contains("--config"), "{msg}");
    }

    #[test]
    fn world_writable_config_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("apppw.toml");
        std::fs::write(&path, "").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(Config::load_file(&path).is_ok());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        let e = Config::load_file(&path).unwrap_err().to_string();
        assert!(e.contains("writable by every user"), "{e}");
    }

    #[test]
    fn explicit_path_wins() {
        assert_eq!(
            Config::locate(Some(Path::new("/a/b.toml"))),
            PathBuf::from("/a/b.toml")
        );
    }
}
