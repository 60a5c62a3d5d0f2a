//! `apppw`: create, list and revoke application passwords; explain and test decisions.
//!
//! Exit status: 0 success, 1 failure (one line on stderr saying what to do), 2 usage error.
#![forbid(unsafe_code)]

use apppw_cli::cli;

use apppw::config::Config;
use apppw::hash::Argon2Kdf;
use apppw::issue;
use apppw::secret;
use apppw::store::{Credential, Database, LazyStore, PgTarget, Store, StoreError};
use apppw::timefmt::{parse_expiry, rfc3339};
use apppw::verify::{Decision, Record, Request, verify};
use clap::Parser;
use cli::{Cli, Command};
use serde_json::json;
use std::io::{Read, Write};
use std::process::ExitCode;
use zeroize::Zeroizing;

/// A failure reported as `apppw: MESSAGE` with exit status 1; `None` is a closed stdout
/// (`apppw list | head`), which ends the program quietly like any Unix filter.
struct Failure(Option<String>);

macro_rules! failure_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Failure {
            fn from(e: $t) -> Self {
                Failure(Some(e.to_string()))
            }
        }
    )*};
}
failure_from!(
    String,
    apppw::issue::CreateError,
    apppw::config::ConfigError,
    StoreError,
    apppw::hash::HashError,
    apppw::secret::RandomError
);

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            Failure(None)
        } else {
            Failure(Some(e.to_string()))
        }
    }
}

/// Writes one line to stdout; a closed pipe becomes a quiet [`Failure`] instead of a panic.
macro_rules! say {
    ($($arg:tt)*) => {
        writeln!(std::io::stdout().lock(), $($arg)*)?
    };
}

type Result<T> = std::result::Result<T, Failure>;

impl Failure {
    fn msg(text: impl Into<String>) -> Self {
        Failure(Some(text.into()))
    }
}

fn main() -> ExitCode {
    apppw::store::enable_postgres_tls();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(Failure(Some(msg))) => {
            eprintln!("apppw: {msg}");
            ExitCode::from(1)
        }
        Err(Failure(None)) => ExitCode::SUCCESS,
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let config = || Config::load(cli.config.as_deref());
    match cli.command {
        Command::Create {
            user,
            label,
            expires,
            services,
            json,
        } => create(
            &config()?,
            &user,
            &label,
            expires.as_deref(),
            services,
            json,
        ),
        Command::List { user, json } => list(&config()?, user.as_deref(), json),
        Command::Revoke {
            user,
            label_or_id,
            all,
        } => revoke(&config()?, &user, label_or_id.as_deref(), all),
        Command::Explain { ip } => {
            say!("{}", config()?.network.locate(Some(&ip)));
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify { user, ip, service } => {
            verify_stdin(&config()?, &user, &ip, service.as_deref())
        }
        Command::Migrate {
            from,
            to,
            password_file,
            force,
        } => migrate(&config, &from, to, password_file, force),
    }
}

/// `apppw migrate`: copies every row (hashes, tags, last use) from an SQLite file into
/// PostgreSQL in one transaction.
fn migrate(
    config: &dyn Fn() -> std::result::Result<Config, apppw::config::ConfigError>,
    from: &std::path::Path,
    to: Option<String>,
    password_file: Option<std::path::PathBuf>,
    force: bool,
) -> Result<ExitCode> {
    let target = match to {
        Some(url) => {
            if !Database::is_url(&url) {
                return Err(Failure::msg(
                    "--to must be a PostgreSQL URL such as postgresql://apppw@db.example.org/apppw",
                ));
            }
            Database::check_url(&url).map_err(|m| Failure::msg(format!("--to {m}")))?;
            // The config's password file belongs to the config's database only.
            let password_file = password_file.or_else(|| match config().ok()?.database {
                Database::Postgres(t) if t.url == url => t.password_file,
                _ => None,
            });
            PgTarget { url, password_file }
        }
        None => match config()?.database {
            Database::Postgres(mut t) => {
                if password_file.is_some() {
                    t.password_file = password_file;
                }
                t
            }
            Database::Sqlite(_) => {
                return Err(Failure::msg(
                    "the config's database is an SQLite file: name the PostgreSQL database \
                     with --to postgresql://USER@HOST/DBNAME",
                ));
            }
        },
    };
    let source = Store::open_read_only(from)?;
    warn_about(&source);
    let rows = source.export()?;
    let mut dest = Store::open_for_admin(&Database::Postgres(target.clone()))?;
    let existing = dest.count()?;
    if existing > 0 && !force {
        return Err(Failure::msg(format!(
            "{} already has {existing} app passwords; nothing copied (run again with --force \
             to add only those whose user does not have that label yet)",
            target.url
        )));
    }
    let done = dest.import(&rows)?;
    say!(
        "copied {} of {} app passwords from {} to {}",
        done.copied,
        rows.len(),
        from.display(),
        target.url
    );
    if done.skipped > 0 {
        say!(
            "skipped {}: their user already has an app password with that label",
            done.skipped
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn create(
    config: &Config,
    user: &str,
    label: &str,
    expires: Option<&str>,
    services: Option<Vec<String>>,
    as_json: bool,
) -> Result<ExitCode> {
    apppw::input::check_user(user)
        .map_err(|e| Failure::msg(format!("invalid user name ({})", e.code())))?;
    match issue::check_label(label) {
        Ok(()) => {}
        Err(issue::LabelError::Empty) => {
            return Err(Failure::msg(
                "the label is empty: name the device, e.g. \"phone\"",
            ));
        }
        Err(issue::LabelError::Invalid) => {
            return Err(Failure::msg(
                "the label must be at most 64 characters without control characters",
            ));
        }
        Err(issue::LabelError::Invisible(c)) => {
            return Err(Failure::msg(format!(
                "the label contains U+{:04X}, an invisible or text-direction character: type it without",
                u32::from(c)
            )));
        }
    }
    let services = services
        .map(|list| issue::normalise_services(&list))
        .transpose()
        .map_err(|e| Failure::msg(format!("--services: {e}")))?;
    let now = apppw::now();
    let expires_at = expires.map(|e| parse_expiry(e, now)).transpose()?;
    let mut store = open_for_admin(config)?;
    let (cred, password) = issue::create(
        config,
        &mut store,
        user,
        label,
        expires_at,
        services.as_deref(),
        now,
    )?;
    print_created(&cred, &password, as_json)?;
    Ok(ExitCode::SUCCESS)
}

fn print_created(cred: &Credential, password: &secret::AppPassword, as_json: bool) -> Result<()> {
    let grouped = password.grouped();
    let mut out = std::io::stdout().lock();
    if as_json {
        let value = Zeroizing::new(
            json!({
                "id": cred.id,
                "user": cred.user,
                "label": cred.label,
                "password": grouped.as_str(),
                "created_at": rfc3339(cred.created_at),
                "expires_at": cred.expires_at.map(rfc3339),
                "services": cred.services,
            })
            .to_string(),
        );
        writeln!(out, "{}", value.as_str())?;
    } else {
        writeln!(out, "{}", grouped.as_str())?;
        let scope = match &cred.services {
            Some(s) => format!(" for {}", s.join(", ")),
            None => String::new(),
        };
        let until = match cred.expires_at {
            Some(t) => format!(", valid until {}", rfc3339(t)),
            None => String::new(),
        };
        writeln!(
            out,
            "\nApp password {:?} for {} (id {}){scope}{until}.\n\
             Enter it as the password in the mail client (spaces are optional).\n\
             It is shown only this once.",
            cred.label, cred.user, cred.id
        )?;
    }
    out.flush()?;
    Ok(())
}

/// Opens the database for writing, telling the admin about insecure permissions.
fn open_for_admin(config: &Config) -> Result<Store> {
    let store = Store::open_for_admin(&config.database)?;
    warn_about(&store);
    Ok(store)
}

fn warn_about(store: &Store) {
    if let Some(w) = store.warning() {
        eprintln!("apppw: warning: {w}");
    }
}

fn credential_json(c: &Credential) -> serde_json::Value {
    json!({
        "id": c.id,
        "user": c.user,
        "label": c.label,
        "created_at": rfc3339(c.created_at),
        "expires_at": c.expires_at.map(rfc3339),
        "services": c.services,
        "last_used_at": c.last_used_at.map(rfc3339),
        "last_used_ip": c.last_used_ip,
        "last_used_service": c.last_used_service,
    })
}

fn list(config: &Config, user: Option<&str>, as_json: bool) -> Result<ExitCode> {
    let creds = match Store::open_read_only(&config.database) {
        Ok(store) => {
            warn_about(&store);
            store.list(user)?
        }
        // A fresh installation has no database until the first `create`.
        Err(StoreError::Missing(_)) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let mut out = std::io::stdout().lock();
    if as_json {
        let arr: Vec<_> = creds.iter().map(credential_json).collect();
        writeln!(out, "{}", serde_json::Value::Array(arr))?;
        return Ok(ExitCode::SUCCESS);
    }
    if creds.is_empty() {
        match user {
            Some(u) => writeln!(out, "{u} has no app passwords")?,
            None => writeln!(out, "no app passwords")?,
        }
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<[String; 7]> = creds
        .iter()
        .map(|c| {
            let last = match (c.last_used_at, &c.last_used_ip, &c.last_used_service) {
                (Some(t), ip, svc) => format!(
                    "{} {} {}",
                    rfc3339(t),
                    ip.as_deref().unwrap_or("-"),
                    svc.as_deref().unwrap_or("-")
                ),
                _ => "never".into(),
            };
            [
                c.id.to_string(),
                printable(&c.user),
                printable(&c.label),
                rfc3339(c.created_at),
                c.expires_at.map_or_else(|| "never".into(), rfc3339),
                c.services
                    .as_ref()
                    .map_or_else(|| "all".into(), |s| s.join(",")),
                last,
            ]
        })
        .collect();
    let header = [
        "ID",
        "USER",
        "LABEL",
        "CREATED",
        "EXPIRES",
        "SERVICES",
        "LAST USED",
    ];
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[&str]| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                s.push_str(cell);
                s.push_str(&" ".repeat(w - cell.chars().count() + 2));
            }
        }
        s
    };
    writeln!(out, "{}", line(&header))?;
    for row in &rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        writeln!(out, "{}", line(&cells))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Replaces control characters so a stored label cannot mess up the terminal.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

fn revoke(config: &Config, user: &str, what: Option<&str>, all: bool) -> Result<ExitCode> {
    let mut store = open_for_admin(config)?;
    let removed = match (what, all) {
        (_, true) => store.revoke_all(user)?,
        (Some(what), false) => {
            let removed = store.revoke(user, what)?;
            if removed.is_empty() {
                return Err(Failure::msg(format!(
                    "{user} has no app password with label or id {what:?}; see `apppw list {user}`"
                )));
            }
            removed
        }
        (None, false) => return Err(Failure::msg("name a label or id, or use --all")),
    };
    if removed.is_empty() {
        say!("{user} has no app passwords; nothing revoked");
    }
    for c in &removed {
        say!(
            "revoked app password {:?} (id {}) of {}",
            c.label,
            c.id,
            c.user
        );
    }
    if let Some(c) = removed.first() {
        flush_auth_cache(config, &c.user)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Dovecot may answer a login from its auth cache: flush the user (as the store names them),
/// so that the revocation holds at the next attempt. A failure is a warning; the app password
/// is deleted either way.
fn flush_auth_cache(config: &Config, user: &str) -> Result<()> {
    use apppw::authcache::{Outcome, flush};
    match flush(&config.dovecot, user) {
        Outcome::Flushed(n) => match n {
            Some(1) => say!("flushed {user} from Dovecot's auth cache (1 entry)"),
            Some(n) => say!("flushed {user} from Dovecot's auth cache ({n} entries)"),
            None => say!("flushed {user} from Dovecot's auth cache"),
        },
        Outcome::Disabled | Outcome::NoDoveadm => {}
        Outcome::Failed(why) => eprintln!(
            "apppw: warning: could not flush {user} from Dovecot's auth cache ({why}); a login \
             cached before the revocation may still succeed until auth_cache_ttl: run \
             `doveadm auth cache flush {user}`"
        ),
    }
    Ok(())
}

fn verify_stdin(config: &Config, user: &str, ip: &str, service: Option<&str>) -> Result<ExitCode> {
    let mut input = Zeroizing::new(Vec::with_capacity(1100));
    std::io::stdin()
        .lock()
        .take(64 * 1024)
        .read_to_end(&mut input)?;
    let line_end = input
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(input.len());
    let mut password = &input[..line_end];
    if let Some(stripped) = password.strip_suffix(b"\r") {
        password = stripped;
    }
    let req = Request {
        user,
        password,
        client: Some(ip),
        service,
        now: apppw::now(),
    };
    let verdict = verify(
        config,
        &mut LazyStore::new(&config.database),
        &mut Argon2Kdf::for_config(config),
        &req,
        Record::DryRun,
    );
    if let Some(why) = apppw::hash::self_test_failure() {
        return Err(Failure(Some(why)));
    }
    let (result, reason) = verdict.decision.audit_fields();
    let detail = match &verdict.decision {
        Decision::Accepted { id, label } => format!(" (app password {label:?}, id {id})"),
        Decision::TryPrimary(why) => format!(
            " (app password: {}; the normal password would be checked next)",
            why.code()
        ),
        Decision::Refused(_) => String::new(),
        Decision::Unavailable(why) | Decision::Busy(why) => format!(" ({why})"),
    };
    say!("{result}: {reason}{detail}");
    let location = verdict.location.to_string();
    say!("client {ip}: {}", location.replacen('\n', " (", 1) + ")");
    Ok(if matches!(verdict.decision, Decision::Accepted { .. }) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
