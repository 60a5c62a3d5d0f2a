//! Staged rollout: time-boxed exemptions (`apppw exempt`, `unexempt`, `exempt --list`) and
//! the report of who still uses the normal password from off campus (`apppw report`).

use crate::{Failure, Result, open_for_admin, ops, printable, table, warn_about};
use apppw::config::{Config, Mode};
use apppw::store::{Exemption, ReportOverflow, ReportRow, Store, StoreError, day_of};
use apppw::timefmt::{parse_expiry, rfc3339};
use serde_json::json;
use std::io::Write;
use std::process::ExitCode;

/// The longest exemption: long enough for a semester's stragglers, short enough that nobody
/// forgets one.
pub(crate) const MAX_EXEMPTION_DAYS: i64 = 90;
/// Longest `--reason`, in characters.
const MAX_REASON_CHARS: usize = 200;

/// `apppw exempt USER --until WHEN [--reason TEXT]`.
pub(crate) fn exempt(
    config: &Config,
    user: &str,
    until: &str,
    reason: Option<&str>,
    as_json: bool,
) -> Result<ExitCode> {
    apppw::input::check_user(user)
        .map_err(|e| Failure::msg(format!("invalid user name ({})", e.code())))?;
    // Exemptions belong to the one canonical name, as app passwords do (SPEC "Trust").
    let user = &config.canonical_user(user);
    let now = apppw::now();
    let expires_at = parse_expiry(until, now).map_err(|e| Failure::msg(format!("--until: {e}")))?;
    // Whole days: `--until` with a date 90 days ahead means through that day.
    let latest = (day_of(now) + MAX_EXEMPTION_DAYS) * 86_400 + 86_399;
    if expires_at > latest {
        return Err(Failure::msg(format!(
            "an exemption may last at most {MAX_EXEMPTION_DAYS} days: --until {until} is {}, \
             the latest allowed is {}; grant a new one when it ends if it is still needed",
            rfc3339(expires_at),
            rfc3339(latest)
        )));
    }
    let reason = reason.map(str::trim).filter(|r| !r.is_empty());
    if reason
        .is_some_and(|r| r.chars().count() > MAX_REASON_CHARS || r.chars().any(char::is_control))
    {
        return Err(Failure::msg(format!(
            "--reason must be at most {MAX_REASON_CHARS} characters without control characters"
        )));
    }
    let exemption = Exemption {
        user: user.to_owned(),
        expires_at,
        reason: reason.map(str::to_owned),
        granted_by: apppw::audit::Admin::current().name,
        granted_at: now,
    };
    let mut store = open_for_admin(config)?;
    let replaced = store.exempt(&exemption)?;
    audit_change(
        "exempt",
        &[
            ("user", user),
            ("until", &rfc3339(expires_at)),
            ("reason", reason.unwrap_or("")),
        ],
    );
    let mut out = std::io::stdout().lock();
    if as_json {
        let mut v = exemption_json(&exemption, now);
        v["replaced"] = replaced.map_or(serde_json::Value::Null, |r| exemption_json(&r, now));
        writeln!(out, "{v}")?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(out, "{user} is exempt until {}", rfc3339(expires_at))?;
    if let Some(r) = replaced {
        writeln!(
            out,
            "(replaces the exemption until {})",
            rfc3339(r.expires_at)
        )?;
    }
    writeln!(
        out,
        "Off campus, their normal password now goes to the normal-password check (logged as \
         result=would-refuse); app passwords work as always."
    )?;
    if config.enforcement.mode == Mode::Report {
        eprintln!(
            "apppw: note: [enforcement] mode is \"report\" in {}, so everybody is treated like \
             this until it is \"enforce\"",
            config.path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `apppw unexempt USER`.
pub(crate) fn unexempt(config: &Config, user: &str, as_json: bool) -> Result<ExitCode> {
    let user = &config.canonical_user(user);
    let mut store = open_for_admin(config)?;
    let Some(ended) = store.unexempt(user)? else {
        return Err(Failure::msg(format!(
            "{user} has no exemption; see `apppw exempt --list`"
        )));
    };
    audit_change(
        "unexempt",
        &[("user", user), ("until", &rfc3339(ended.expires_at))],
    );
    let now = apppw::now();
    if as_json {
        say!("{}", exemption_json(&ended, now));
    } else if ended.expires_at <= now {
        say!(
            "removed the exemption of {user}, which had ended at {}",
            rfc3339(ended.expires_at)
        );
    } else {
        say!(
            "ended the exemption of {user} (it ran until {}); off campus only app passwords \
             work for them from the next login",
            rfc3339(ended.expires_at)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `apppw exempt --list`.
pub(crate) fn exemptions(config: &Config, as_json: bool) -> Result<ExitCode> {
    let list = match open_read_only(config)? {
        Some(store) => store.exemptions()?,
        None => Vec::new(),
    };
    let now = apppw::now();
    let mut out = std::io::stdout().lock();
    if as_json {
        let arr: Vec<_> = list.iter().map(|e| exemption_json(e, now)).collect();
        writeln!(out, "{}", serde_json::Value::Array(arr))?;
        return Ok(ExitCode::SUCCESS);
    }
    if list.is_empty() {
        writeln!(out, "no exemptions")?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|e| {
            let until = rfc3339(e.expires_at);
            vec![
                printable(&e.user),
                if e.expires_at <= now {
                    format!("{until} (expired)")
                } else {
                    until
                },
                printable(e.reason.as_deref().unwrap_or("-")),
                printable(&e.granted_by),
                rfc3339(e.granted_at),
            ]
        })
        .collect();
    table::write(
        &mut out,
        &["USER", "UNTIL", "REASON", "GRANTED BY", "GRANTED AT"],
        &rows,
    )?;
    Ok(ExitCode::SUCCESS)
}

fn exemption_json(e: &Exemption, now: i64) -> serde_json::Value {
    json!({
        "user": e.user,
        "until": rfc3339(e.expires_at),
        "expired": e.expires_at <= now,
        "reason": e.reason,
        "granted_by": e.granted_by,
        "granted_at": rfc3339(e.granted_at),
    })
}

/// `apppw report [--since AGE]`.
pub(crate) fn report(config: &Config, since: &str, as_json: bool) -> Result<ExitCode> {
    let now = apppw::now();
    let since_day =
        day_of(ops::parse_age(since, now).map_err(|e| Failure::msg(format!("--since: {e}")))?);
    let (rows, overflow) = match open_read_only(config)? {
        Some(store) => store.report(since_day, now)?,
        None => (Vec::new(), ReportOverflow::default()),
    };
    let since_text = rfc3339(since_day * 86_400);
    let mode = match config.enforcement.mode {
        Mode::Enforce => "enforce",
        Mode::Report => "report",
    };
    let mut out = std::io::stdout().lock();
    if as_json {
        let users: Vec<_> = rows.iter().map(|r| report_json(r, now)).collect();
        let v = json!({
            "since": since_text,
            "mode": mode,
            "users": users,
            "unlisted": { "refused": overflow.refused, "passed_on": overflow.passed_on },
        });
        writeln!(out, "{v}")?;
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() && overflow == ReportOverflow::default() {
        writeln!(
            out,
            "no off-campus normal-password attempts since {since_text} (mode {mode})"
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "off-campus normal-password attempts since {since_text} (mode {mode}), most first:"
    )?;
    let table_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let exempt = match r.exempt_until {
                Some(t) if t > now => rfc3339(t),
                Some(_) => "expired".into(),
                None => "-".into(),
            };
            vec![
                printable(&r.user),
                (r.refused + r.passed_on).to_string(),
                r.refused.to_string(),
                r.passed_on.to_string(),
                r.days.to_string(),
                rfc3339(r.last_at),
                printable(r.last_ip.as_deref().unwrap_or("-")),
                printable(r.last_service.as_deref().unwrap_or("-")),
                r.app_passwords.to_string(),
                exempt,
            ]
        })
        .collect();
    table::write(
        &mut out,
        &[
            "USER",
            "ATTEMPTS",
            "REFUSED",
            "PASSED ON",
            "DAYS",
            "LAST",
            "FROM",
            "SERVICE",
            "APP PASSWORDS",
            "EXEMPT UNTIL",
        ],
        &table_rows,
    )?;
    if overflow != ReportOverflow::default() {
        writeln!(
            out,
            "plus {} refused and {} passed-on attempts of users beyond \
             [enforcement] report_max_users_per_day, not listed one by one",
            overflow.refused, overflow.passed_on
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn report_json(r: &ReportRow, now: i64) -> serde_json::Value {
    json!({
        "user": r.user,
        "attempts": r.refused + r.passed_on,
        "refused": r.refused,
        "passed_on": r.passed_on,
        "days": r.days,
        "last_at": rfc3339(r.last_at),
        "last_ip": r.last_ip,
        "last_service": r.last_service,
        "app_passwords": r.app_passwords,
        "has_app_password": r.app_passwords > 0,
        "exempt_until": r.exempt_until.map(rfc3339),
        "exempt": r.exempt_until.is_some_and(|t| t > now),
    })
}

/// The database for a read command, or `None` on a fresh installation without one.
fn open_read_only(config: &Config) -> Result<Option<Store>> {
    match Store::open_read_only(&config.database) {
        Ok(store) => {
            warn_about(&store);
            Ok(Some(store))
        }
        Err(StoreError::Missing(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// One `authpriv` line per change, through the same helper as `create`, `revoke` and
/// `migrate`: `apppw(exempt): admin=NAME uid=N user=... until=...`.
pub(crate) fn audit_change(action: &str, fields: &[(&str, &str)]) {
    apppw::audit::log_admin(action, &apppw::audit::Admin::current(), fields);
}
