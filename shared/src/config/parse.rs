//! Reading `apppw.toml`: the raw TOML tables, then each key checked and turned into the
//! [`Config`] of `config.rs`, every error naming the file, the line and the key.

use super::*;

impl Config {
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
        let enforcement = parse_enforcement(&raw.enforcement)
            .map_err(|(span, key, message)| at(Some(span), Some(key), message))?;

        Ok(Config {
            database_idle,
            gate,
            dovecot,
            enforcement,
            lockout,
            case_sensitive_users: raw.users.case_sensitive.unwrap_or(false),
            path: path.to_path_buf(),
            database,
            network: NetworkPolicy::new(campus, except),
            primary_pam_service,
            argon2,
        })
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
    #[serde(default)]
    users: RawUsers,
    #[serde(default)]
    enforcement: RawEnforcement,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawUsers {
    case_sensitive: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawEnforcement {
    mode: Option<Spanned<String>>,
    report_retention_days: Option<Spanned<u32>>,
    report_max_users_per_day: Option<Spanned<u32>>,
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

type SpannedError = (std::ops::Range<usize>, &'static str, String);

fn parse_enforcement(raw: &RawEnforcement) -> Result<Enforcement, SpannedError> {
    let mut e = Enforcement::default();
    if let Some(mode) = &raw.mode {
        e.mode = match mode.get_ref().as_str() {
            "enforce" => Mode::Enforce,
            "report" => Mode::Report,
            other => {
                return Err((
                    mode.span(),
                    "enforcement.mode",
                    format!("must be \"enforce\" or \"report\", not {other:?}"),
                ));
            }
        };
    }
    for (field, key, max, target) in [
        (
            &raw.report_retention_days,
            "enforcement.report_retention_days",
            3650,
            &mut e.report_retention_days,
        ),
        (
            &raw.report_max_users_per_day,
            "enforcement.report_max_users_per_day",
            10_000_000,
            &mut e.report_max_users_per_day,
        ),
    ] {
        if let Some(v) = field {
            if *v.get_ref() == 0 || *v.get_ref() > max {
                return Err((v.span(), key, format!("must be between 1 and {max}")));
            }
            *target = *v.get_ref();
        }
    }
    Ok(e)
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
