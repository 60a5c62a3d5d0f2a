//! `apppw migrate`: the config's database brought to the current schema, checked (`--check`:
//! user names stored in another spelling), or copied from an SQLite file into PostgreSQL
//! (`--from`).

use crate::{Failure, Result, open_for_admin, printable, warn_about, warn_about_config};
use apppw::audit::{Admin, log_admin};
use apppw::config::{Config, Database, PgTarget};
use apppw::store::{SCHEMA_VERSION, Store, StoreError};
use serde_json::json;
use std::io::Write;
use std::process::ExitCode;

/// `apppw migrate` without `--from`: brings the config's database to the current schema
/// (logins refuse an older one), then reports what needs the admin, as `--check` does.
pub(crate) fn migrate_schema(config: &Config) -> Result<ExitCode> {
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
pub(crate) fn migrate_check(config: &Config) -> Result<ExitCode> {
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
pub(crate) fn report_user_names(config: &Config, store: &Store) -> Result<ExitCode> {
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
pub(crate) fn warn_about_user_names(config: &Config, store: &Store) {
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

/// `apppw migrate`: copies every row (hashes, tags, last use) from an SQLite file into
/// PostgreSQL in one transaction.
pub(crate) fn migrate(
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
