//! `apppw`: create, list and revoke application passwords; explain and test decisions;
//! stage the rollout (exemptions, report); check the installation (doctor).
//!
//! Exit status: 0 success, 1 failure (one line on stderr saying what to do), 2 usage error.
// Unsafe code only in `doctor/as_user.rs` (fork and setuid to test access as Dovecot's user).
#![deny(unsafe_code)]

use apppw_cli::cli;

use apppw::audit::{Admin, log_admin};
use apppw::config::{Config, Database, PgTarget};
use apppw::hash::Argon2Kdf;
use apppw::issue;
use apppw::secret;
use apppw::store::{Credential, CredentialFilter, LazyStore, SCHEMA_VERSION, Store, StoreError};
use apppw::timefmt::{parse_expiry, rfc3339};
use apppw::verify::{Decision, Record, Relaxed, Request, verify};
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

mod doctor;
mod ops;
mod rollout;
mod table;

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
    let json = cli.json;
    match cli.command {
        Command::Create {
            user,
            label,
            expires,
            services,
        } => create(
            &config()?,
            &user,
            &label,
            expires.as_deref(),
            services,
            json,
        ),
        Command::List {
            user,
            expired,
            unused_since,
        } => {
            let filter = ops::filter(expired, unused_since.as_deref(), apppw::now())?;
            list(&config()?, user.as_deref(), filter, json)
        }
        Command::Revoke {
            user,
            label_or_id,
            all,
        } => revoke(&config()?, &user, label_or_id.as_deref(), all, json),
        Command::Explain { ip } => explain(&config()?, &ip, json),
        Command::Verify { user, ip, service } => {
            verify_stdin(&config()?, &user, &ip, service.as_deref(), json)
        }
        Command::Migrate {
            check,
            from,
            to,
            password_file,
            force,
        } => match from {
            Some(from) => migrate(&config, &from, to, password_file, force, json),
            None if check => migrate_check(&config()?),
            None => migrate_schema(&config()?),
        },
        Command::Prune {
            user,
            expired,
            unused_since,
            dry_run,
        } => {
            let now = apppw::now();
            let filter = ops::filter(expired, unused_since.as_deref(), now)?
                .ok_or_else(|| Failure::msg("name --expired or --unused-since AGE"))?;
            ops::prune(&config()?, user.as_deref(), filter, dry_run, json)
        }
        Command::Exempt {
            user: Some(user),
            until: Some(until),
            reason,
            list: false,
        } => rollout::exempt(&config()?, &user, &until, reason.as_deref(), json),
        Command::Exempt { .. } => rollout::exemptions(&config()?, json),
        Command::Unexempt { user } => rollout::unexempt(&config()?, &user, json),
        Command::Report { since } => rollout::report(&config()?, &since, json),
        Command::Doctor => doctor::run(cli.config.as_deref(), &doctor::Paths::from_env(), json),
        Command::Stats { prometheus } => ops::stats(&config()?, prometheus, json),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            // Into a buffer first: the generator panics on a write error such as a closed pipe.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "apppw", &mut script);
            std::io::stdout().lock().write_all(&script)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `apppw migrate` without `--from`: brings the config's database to the current schema
/// (logins refuse an older one), then reports what needs the admin, as `--check` does.
fn migrate_schema(config: &Config) -> Result<ExitCode> {
    let store = open_for_admin(config)?;
    say!(
        "database {}: schema version {SCHEMA_VERSION} (current)",
        store.path().display()
    );
    log_admin(
        "migrate",
        &Admin::current(),
        &[
            ("database", &store.path().display().to_string()),
            ("schema", &SCHEMA_VERSION.to_string()),
        ],
    );
    report_user_names(config, &store)
}

/// `apppw migrate --check`: changes nothing; reports what needs the admin. Exit 1 if
/// anything does.
fn migrate_check(config: &Config) -> Result<ExitCode> {
    warn_about_config(config);
    let store = match Store::open_read_only(&config.database) {
        Ok(store) => store,
        Err(StoreError::Missing(_)) => {
            say!("database {}: not created yet", config.database);
            return Ok(ExitCode::SUCCESS);
        }
        Err(e) => return Err(e.into()),
    };
    warn_about(&store);
    say!(
        "database {}: schema version {SCHEMA_VERSION} (current)",
        store.path().display()
    );
    report_user_names(config, &store)
}

/// Lists the stored user names that are not in canonical form: their app passwords no longer
/// log in (lookups use the canonical name). They are reported, never merged: only the admin
/// can tell whether `Alice` and `alice` are one person.
fn report_user_names(config: &Config, store: &Store) -> Result<ExitCode> {
    let stray = store.noncanonical_users(config)?;
    if stray.is_empty() {
        say!("user names: all in canonical form");
        return Ok(ExitCode::SUCCESS);
    }
    let total: usize = stray.iter().map(|(_, n)| n).sum();
    say!(
        "user names: {total} app password(s) stored under {} name(s) that are not in \
         canonical form. THEY NO LONGER LOG IN: logins look the user up by the canonical name.",
        stray.len()
    );
    for (user, n) in &stray {
        say!(
            "  {:?}: {n} app password(s); logins look up {:?}",
            printable(user),
            printable(&config.canonical_user(user))
        );
    }
    say!(
        "Check with each user, then `apppw revoke USER --all` (it also removes these) and \
         create new ones; or set [users] case_sensitive = true if names differing in case are \
         different people here."
    );
    Err(Failure::msg(format!(
        "{total} app password(s) under user names not in canonical form (see above)"
    )))
}

/// Warns on stderr about stored user names not in canonical form (see
/// [`report_user_names`]).
fn warn_about_user_names(config: &Config, store: &Store) {
    if let Ok(stray) = store.noncanonical_users(config) {
        if !stray.is_empty() {
            let names: Vec<String> = stray.iter().map(|(u, _)| printable(u)).collect();
            eprintln!(
                "apppw: warning: app passwords stored under user names not in canonical form \
                 no longer log in: {}; see `apppw migrate --check`",
                names.join(", ")
            );
        }
    }
}

/// `apppw explain IP`: the location and the rule.
fn explain(config: &Config, ip: &str, as_json: bool) -> Result<ExitCode> {
    let location = config.network.locate(Some(ip));
    if as_json {
        let text = location.to_string();
        let (place, rule) = text.split_once('\n').unwrap_or((&text, ""));
        say!(
            "{}",
            json!({ "address": ip, "location": place, "rule": rule })
        );
    } else {
        say!("{location}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `apppw migrate`: copies every row (hashes, tags, last use) from an SQLite file into
/// PostgreSQL in one transaction.
fn migrate(
    config: &dyn Fn() -> std::result::Result<Config, apppw::config::ConfigError>,
    from: &std::path::Path,
    to: Option<String>,
    password_file: Option<std::path::PathBuf>,
    force: bool,
    as_json: bool,
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
    log_admin(
        "migrate",
        &Admin::current(),
        &[
            ("from", &from.display().to_string()),
            ("to", &target.url),
            ("copied", &done.copied.to_string()),
            ("skipped", &done.skipped.to_string()),
        ],
    );
    if as_json {
        say!(
            "{}",
            json!({
                "from": from.display().to_string(),
                "to": target.url,
                "total": rows.len(),
                "copied": done.copied,
                "skipped": done.skipped,
            })
        );
        return Ok(ExitCode::SUCCESS);
    }
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
    let canonical = config.canonical_user(user);
    if canonical != user {
        eprintln!(
            "apppw: note: user {} is stored as {} (user names are lowercased; see [users] in \
             apppw.toml(5))",
            printable(user),
            printable(&canonical)
        );
    }
    let mut store = open_for_admin(config)?;
    let (cred, password) = issue::create(
        config,
        &mut store,
        &canonical,
        label,
        expires_at,
        services.as_deref(),
        now,
    )?;
    let expires = cred.expires_at.map_or_else(|| "-".to_owned(), rfc3339);
    let services = cred
        .services
        .as_ref()
        .map_or_else(|| "-".to_owned(), |s| s.join(","));
    log_admin(
        "create",
        &Admin::current(),
        &[
            ("user", &cred.user),
            ("label", &cred.label),
            ("id", &cred.id.to_string()),
            ("expires", &expires),
            ("services", &services),
        ],
    );
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
pub(crate) fn open_for_admin(config: &Config) -> Result<Store> {
    warn_about_config(config);
    let store = Store::open_for_admin(&config.database)?;
    warn_about(&store);
    Ok(store)
}

/// The CLI reads any config it is given; the PAM module and checkpassword refuse one that
/// fails the trust rule. Say so before the admin wonders why logins fail.
fn warn_about_config(config: &Config) {
    use apppw::trust::{self, CheckError, Identity, Parent};
    if let Err(CheckError::Untrusted(t)) =
        trust::open(&config.path, &Identity::of_process(), Parent::Checked)
    {
        eprintln!("apppw: warning: logins will refuse this config: {t}");
    }
}

pub(crate) fn warn_about(store: &Store) {
    if let Some(w) = store.warning() {
        eprintln!("apppw: warning: {w}");
    }
}

pub(crate) fn credential_json(c: &Credential) -> serde_json::Value {
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

fn list(
    config: &Config,
    user: Option<&str>,
    filter: Option<CredentialFilter>,
    as_json: bool,
) -> Result<ExitCode> {
    warn_about_config(config);
    let creds = match Store::open_read_only(&config.database) {
        Ok(store) => {
            warn_about(&store);
            warn_about_user_names(config, &store);
            match (user, filter) {
                (None, None) => store.list(None)?,
                (user, Some(f)) => {
                    let user = user.map(|u| config.canonical_user(u));
                    store.matching(f, user.as_deref())?
                }
                // The canonical name, and the variants that no longer log in, so that the
                // admin sees everything that was issued to this person.
                (Some(user), None) => {
                    let mut all = Vec::new();
                    for name in store.names_of(config, &config.canonical_user(user))? {
                        all.extend(store.list(Some(&name))?);
                    }
                    all.sort_by(|a, b| {
                        (&a.user, a.created_at, a.id).cmp(&(&b.user, b.created_at, b.id))
                    });
                    all
                }
            }
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
        let which = match filter {
            Some(CredentialFilter::ExpiredAt(_)) => "expired ",
            Some(CredentialFilter::UnusedSince(_)) => "unused ",
            None => "",
        };
        match user {
            Some(u) => writeln!(out, "{} has no {which}app passwords", printable(u))?,
            None => writeln!(out, "no {which}app passwords")?,
        }
        return Ok(ExitCode::SUCCESS);
    }
    credential_table(&mut out, &creds)?;
    Ok(ExitCode::SUCCESS)
}

/// The table of `apppw list` (also printed by `apppw prune`).
pub(crate) fn credential_table(out: &mut impl Write, creds: &[Credential]) -> Result<()> {
    let rows: Vec<Vec<String>> = creds
        .iter()
        .map(|c| {
            let last = match (c.last_used_at, &c.last_used_ip, &c.last_used_service) {
                // Stored from the client's side of a login: as untrusted as a label.
                (Some(t), ip, svc) => format!(
                    "{} {} {}",
                    rfc3339(t),
                    ip.as_deref().map_or_else(|| "-".into(), printable),
                    svc.as_deref().map_or_else(|| "-".into(), printable)
                ),
                _ => "never".into(),
            };
            vec![
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
    table::write(out, &header, &rows)
}

/// Replaces control characters so a stored label cannot mess up the terminal.
pub(crate) fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

fn revoke(
    config: &Config,
    user: &str,
    what: Option<&str>,
    all: bool,
    as_json: bool,
) -> Result<ExitCode> {
    let mut store = open_for_admin(config)?;
    let canonical = config.canonical_user(user);
    // The canonical name first, then variants stored before names were canonical.
    let mut names = store.names_of(config, &canonical)?;
    names.sort_by_key(|n| *n != canonical);
    let shown = printable(&canonical);
    let mut removed = Vec::new();
    match (what, all) {
        (_, true) => {
            for name in &names {
                removed.extend(store.revoke_all(name)?);
            }
        }
        (Some(what), false) => {
            for name in &names {
                removed = store.revoke(name, what)?;
                if !removed.is_empty() {
                    break;
                }
            }
            if removed.is_empty() {
                return Err(Failure::msg(format!(
                    "{shown} has no app password with label or id {what:?}; see `apppw list {shown}`"
                )));
            }
        }
        (None, false) => return Err(Failure::msg("name a label or id, or use --all")),
    }
    let admin = Admin::current();
    let ids: Vec<String> = removed.iter().map(|c| c.id.to_string()).collect();
    let labels: Vec<&str> = removed.iter().map(|c| c.label.as_str()).collect();
    log_admin(
        "revoke",
        &admin,
        &[
            ("user", &canonical),
            ("what", if all { "--all" } else { what.unwrap_or("") }),
            ("ids", &ids.join(",")),
            ("labels", &labels.join(",")),
        ],
    );
    if as_json {
        let arr: Vec<_> = removed.iter().map(credential_json).collect();
        say!("{}", serde_json::Value::Array(arr));
        if let Some(c) = removed.first() {
            flush_auth_cache(config, &c.user, true)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    if removed.is_empty() {
        say!("{shown} has no app passwords; nothing revoked");
    }
    for c in &removed {
        say!(
            "revoked app password {:?} (id {}) of {}",
            c.label,
            c.id,
            printable(&c.user)
        );
    }
    if let Some(c) = removed.first() {
        flush_auth_cache(config, &c.user, false)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Dovecot may answer a login from its auth cache: flush the user (as the store names them),
/// so that the revocation holds at the next attempt. A failure is a warning; the app password
/// is deleted either way. With `--json` the note goes to standard error.
pub(crate) fn flush_auth_cache(config: &Config, user: &str, as_json: bool) -> Result<()> {
    flush_auth_cache_of(config, &[user], as_json)
}

/// [`flush_auth_cache`] for several users with one `doveadm` run (`apppw prune`).
pub(crate) fn flush_auth_cache_of(config: &Config, users: &[&str], as_json: bool) -> Result<()> {
    use apppw::authcache::{Outcome, flush_users};
    if users.is_empty() {
        return Ok(());
    }
    let who = users
        .iter()
        .map(|u| printable(u))
        .collect::<Vec<_>>()
        .join(" ");
    match flush_users(&config.dovecot, users) {
        Outcome::Flushed(n) => {
            let note = match n {
                Some(1) => format!("flushed {who} from Dovecot's auth cache (1 entry)"),
                Some(n) => format!("flushed {who} from Dovecot's auth cache ({n} entries)"),
                None => format!("flushed {who} from Dovecot's auth cache"),
            };
            // Standard output is the JSON document's alone.
            if as_json {
                eprintln!("apppw: {note}");
            } else {
                say!("{note}");
            }
        }
        Outcome::Disabled | Outcome::NoDoveadm => {}
        Outcome::Failed(why) => eprintln!(
            "apppw: warning: could not flush {who} from Dovecot's auth cache ({why}); a login \
             cached before the deletion may still succeed until auth_cache_ttl: run \
             `doveadm auth cache flush {who}`"
        ),
    }
    Ok(())
}

fn verify_stdin(
    config: &Config,
    user: &str,
    ip: &str,
    service: Option<&str>,
    as_json: bool,
) -> Result<ExitCode> {
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
        &mut Argon2Kdf::with_gate(&config.gate),
        &req,
        Record::DryRun,
    );
    if let Some(why) = apppw::hash::self_test_failure() {
        return Err(Failure(Some(why)));
    }
    let (result, reason) = verdict.decision.audit_fields();
    let detail = match &verdict.decision {
        Decision::Accepted { id, label } => format!("app password {label:?}, id {id}"),
        Decision::TryPrimary(why) => format!(
            "app password: {}; the normal password would be checked next",
            why.code()
        ),
        Decision::Refused(_) => String::new(),
        Decision::Unavailable(why) | Decision::ConfigError(why) | Decision::Busy(why) => {
            why.clone()
        }
        Decision::PassedOn { because, .. } => format!(
            "{}: passed on, the normal password would be checked next",
            match because {
                Relaxed::ReportMode => "report mode".to_owned(),
                Relaxed::Exempt { until } => format!("exempt until {}", rfc3339(*until)),
            }
        ),
    };
    let location = verdict.location.to_string();
    let (place, rule) = location.split_once('\n').unwrap_or((&location, ""));
    if as_json {
        let label = match &verdict.decision {
            Decision::Accepted { label, .. } => Some(label.as_str()),
            _ => None,
        };
        say!(
            "{}",
            json!({
                "result": result,
                "reason": reason,
                "detail": (!detail.is_empty()).then_some(&detail),
                "label": label,
                "location": place,
                "rule": rule,
            })
        );
    } else {
        if detail.is_empty() {
            say!("{result}: {reason}");
        } else {
            say!("{result}: {reason} ({detail})");
        }
        say!("client {ip}: {place} ({rule})");
    }
    Ok(if matches!(verdict.decision, Decision::Accepted { .. }) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
