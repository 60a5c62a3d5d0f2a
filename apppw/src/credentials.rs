//! `apppw create`, `list` and `revoke`: the app passwords themselves, as the admin sees them
//! (a table or JSON, never a hash).

use crate::migrate::warn_about_user_names;
use crate::{
    Failure, Result, flush_auth_cache, open_for_admin, printable, table, warn_about,
    warn_about_config,
};
use apppw::audit::{Admin, log_admin};
use apppw::config::Config;
use apppw::issue;
use apppw::secret;
use apppw::store::{Credential, CredentialFilter, Store, StoreError};
use apppw::timefmt::{parse_expiry, rfc3339};
use serde_json::json;
use std::io::Write;
use std::process::ExitCode;
use zeroize::Zeroizing;

pub(crate) fn create(
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

pub(crate) fn print_created(
    cred: &Credential,
    password: &secret::AppPassword,
    as_json: bool,
) -> Result<()> {
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

pub(crate) fn list(
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

pub(crate) fn revoke(
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
