//! Day-to-day operations: `list --expired/--unused-since`, `prune`, `stats`.

use crate::credentials::{credential_json, credential_table};
use crate::flush_auth_cache_of;
use crate::rollout::audit_change;
use crate::{Failure, Result, open_for_admin, warn_about};
use apppw::config::{Config, Mode};
use apppw::store::{CredentialFilter, DayCounts, Stats, Store, StoreError};
use apppw::timefmt::{parse_expiry, rfc3339};
use serde_json::json;
use std::fmt::Write as _;
use std::io::Write;
use std::process::ExitCode;

/// The instant `age` before `now`: a duration (`12h`, `90d`, `26w`) or a date (`2026-09-01`,
/// its start, UTC) or time (`2026-09-01T08:00:00Z`) that is not in the future.
pub(crate) fn parse_age(age: &str, now: i64) -> std::result::Result<i64, String> {
    let s = age.trim();
    let bad = || {
        format!("invalid age {s:?}: use a duration like 90d, 12h, 26w, or a date like 2026-09-01")
    };
    if let Some(unit) = s.chars().last().filter(|c| "hdw".contains(*c)) {
        let mult = match unit {
            'h' => 3600,
            'd' => 86_400,
            _ => 7 * 86_400,
        };
        let n: i64 = s[..s.len() - 1].parse().map_err(|_| bad())?;
        return match n.checked_mul(mult) {
            Some(secs) if n > 0 && secs <= 100 * 366 * 86_400 => Ok(now - secs),
            _ => Err(bad()),
        };
    }
    // The expiry parser reads the same dates (ending at 23:59:59 of a date); any date it
    // accepts lies after -1.
    let at = parse_expiry(s, -1).map_err(|_| bad())?;
    let at = if s.len() == 10 { at - 86_399 } else { at };
    if at > now {
        return Err(format!("{s} is in the future"));
    }
    Ok(at)
}

/// The filter of `list` and `prune`.
pub(crate) fn filter(
    expired: bool,
    unused_since: Option<&str>,
    now: i64,
) -> Result<Option<CredentialFilter>> {
    Ok(match (expired, unused_since) {
        (true, _) => Some(CredentialFilter::ExpiredAt(now)),
        (false, Some(age)) => Some(CredentialFilter::UnusedSince(
            parse_age(age, now).map_err(|e| Failure::msg(format!("--unused-since: {e}")))?,
        )),
        (false, None) => None,
    })
}

/// `apppw prune (--expired | --unused-since AGE) [USER] [--dry-run]`.
pub(crate) fn prune(
    config: &Config,
    user: Option<&str>,
    filter: CredentialFilter,
    dry_run: bool,
    as_json: bool,
) -> Result<ExitCode> {
    let user = user.map(|u| config.canonical_user(u));
    let user = user.as_deref();
    let selected = if dry_run {
        match Store::open_read_only(&config.database) {
            Ok(store) => {
                warn_about(&store);
                store.matching(filter, user)?
            }
            Err(StoreError::Missing(_)) => Vec::new(),
            Err(e) => return Err(e.into()),
        }
    } else {
        open_for_admin(config)?.prune(filter, user)?
    };
    let what = match filter {
        CredentialFilter::ExpiredAt(_) => "that have expired".to_owned(),
        CredentialFilter::UnusedSince(t) => format!("unused since {}", rfc3339(t)),
    };
    if !dry_run && !selected.is_empty() {
        let ids = selected
            .iter()
            .map(|c| c.id.to_string())
            .collect::<Vec<_>>()
            .join(",");
        audit_change(
            "prune",
            &[
                ("which", &what),
                ("user", user.unwrap_or("*")),
                ("ids", &ids),
            ],
        );
    }
    // As after `apppw revoke`: Dovecot must not answer a deleted password from its cache.
    if !dry_run {
        let mut users: Vec<&str> = selected.iter().map(|c| c.user.as_str()).collect();
        users.sort_unstable();
        users.dedup();
        for chunk in users.chunks(100) {
            flush_auth_cache_of(config, chunk, as_json)?;
        }
    }
    let mut out = std::io::stdout().lock();
    if as_json {
        let arr: Vec<_> = selected.iter().map(credential_json).collect();
        writeln!(out, "{}", serde_json::Value::Array(arr))?;
        return Ok(ExitCode::SUCCESS);
    }
    if selected.is_empty() {
        writeln!(out, "no app passwords {what}; nothing to delete")?;
        return Ok(ExitCode::SUCCESS);
    }
    let verb = if dry_run { "would delete" } else { "deleted" };
    writeln!(out, "{verb} {} app passwords {what}:", selected.len())?;
    credential_table(&mut out, &selected)?;
    Ok(ExitCode::SUCCESS)
}

/// `apppw stats [--prometheus]`.
pub(crate) fn stats(config: &Config, prometheus: bool, as_json: bool) -> Result<ExitCode> {
    if prometheus && as_json {
        return Err(Failure::msg("--prometheus and --json exclude each other"));
    }
    let now = apppw::now();
    let stats = match Store::open_read_only(&config.database) {
        Ok(store) => {
            warn_about(&store);
            store.stats(now)?
        }
        Err(StoreError::Missing(_)) => Stats::default(),
        Err(e) => return Err(e.into()),
    };
    let report_mode = config.enforcement.mode == Mode::Report;
    let mut out = std::io::stdout().lock();
    if prometheus {
        out.write_all(prometheus_text(&stats, report_mode).as_bytes())?;
        return Ok(ExitCode::SUCCESS);
    }
    let day =
        |d: &DayCounts| json!({ "refused": d.refused, "passed_on": d.passed_on, "users": d.users });
    if as_json {
        let v = json!({
            "mode": if report_mode { "report" } else { "enforce" },
            "app_passwords": { "active": stats.active, "expired": stats.expired },
            "users_with_app_passwords": stats.users,
            "app_passwords_used_last_day": stats.used_last_day,
            "exemptions": { "active": stats.exemptions_active, "expired": stats.exemptions_expired },
            "offcampus_normal_password_attempts": {
                "today": day(&stats.today),
                "yesterday": day(&stats.yesterday),
            },
        });
        writeln!(out, "{v}")?;
        return Ok(ExitCode::SUCCESS);
    }
    let day_text = |d: &DayCounts| {
        format!(
            "{} refused, {} passed on (would-refuse), {} users",
            d.refused, d.passed_on, d.users
        )
    };
    writeln!(
        out,
        "mode: {}",
        if report_mode { "report" } else { "enforce" }
    )?;
    writeln!(
        out,
        "app passwords: {} active, {} expired, of {} users; {} used in the last 24 hours",
        stats.active, stats.expired, stats.users, stats.used_last_day
    )?;
    writeln!(
        out,
        "exemptions: {} active, {} expired",
        stats.exemptions_active, stats.exemptions_expired
    )?;
    writeln!(
        out,
        "off-campus normal-password attempts today (UTC): {}",
        day_text(&stats.today)
    )?;
    writeln!(
        out,
        "off-campus normal-password attempts yesterday (UTC): {}",
        day_text(&stats.yesterday)
    )?;
    Ok(ExitCode::SUCCESS)
}

/// The metrics in the Prometheus text format, for node_exporter's textfile collector. Only
/// what the database knows: app passwords and exemptions by state, and the off-campus
/// normal-password decisions of the report table by UTC day. Accepted app-password logins
/// are not counted anywhere but in the last-used time, hence `used_last_day`.
fn prometheus_text(s: &Stats, report_mode: bool) -> String {
    let mut t = String::new();
    let mut metric = |name: &str, help: &str, samples: &[(&str, i64)]| {
        let _ = writeln!(t, "# HELP {name} {help}");
        let _ = writeln!(t, "# TYPE {name} gauge");
        for (labels, value) in samples {
            let _ = writeln!(t, "{name}{labels} {value}");
        }
    };
    metric(
        "apppw_app_passwords",
        "App passwords stored, by state.",
        &[
            ("{state=\"active\"}", s.active),
            ("{state=\"expired\"}", s.expired),
        ],
    );
    metric(
        "apppw_users_with_app_passwords",
        "Users with at least one app password.",
        &[("", s.users)],
    );
    metric(
        "apppw_app_passwords_used_last_day",
        "App passwords whose last use is less than 24 hours old.",
        &[("", s.used_last_day)],
    );
    metric(
        "apppw_exemptions",
        "Exemptions from the off-campus rule, by state.",
        &[
            ("{state=\"active\"}", s.exemptions_active),
            ("{state=\"expired\"}", s.exemptions_expired),
        ],
    );
    metric(
        "apppw_offcampus_normal_password_attempts",
        "Off-campus normal-password attempts of a UTC day (today so far, or yesterday), by \
         result: refused, or would-refuse (passed on under report mode or an exemption).",
        &[
            ("{day=\"today\",result=\"refused\"}", s.today.refused),
            ("{day=\"today\",result=\"would-refuse\"}", s.today.passed_on),
            (
                "{day=\"yesterday\",result=\"refused\"}",
                s.yesterday.refused,
            ),
            (
                "{day=\"yesterday\",result=\"would-refuse\"}",
                s.yesterday.passed_on,
            ),
        ],
    );
    metric(
        "apppw_offcampus_normal_password_users",
        "Users with off-campus normal-password attempts in a UTC day.",
        &[
            ("{day=\"today\"}", s.today.users),
            ("{day=\"yesterday\"}", s.yesterday.users),
        ],
    );
    metric(
        "apppw_report_mode",
        "1 while [enforcement] mode is \"report\", 0 under \"enforce\".",
        &[("", i64::from(report_mode))],
    );
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages() {
        let now = 1_795_000_000;
        assert_eq!(parse_age("7d", now), Ok(now - 7 * 86_400));
        assert_eq!(parse_age("12h", now), Ok(now - 12 * 3600));
        assert_eq!(
            parse_age("2026-09-01", now).map(rfc3339),
            Ok("2026-09-01T00:00:00Z".into())
        );
        for bad in ["", "0d", "-1d", "7", "soon", "2099-01-01", "99999999999w"] {
            assert!(parse_age(bad, now).is_err(), "{bad}");
        }
    }

    #[test]
    fn prometheus_lines_are_well_formed() {
        let text = prometheus_text(
            &Stats {
                active: 3,
                today: DayCounts {
                    refused: 2,
                    passed_on: 1,
                    users: 1,
                },
                ..Stats::default()
            },
            true,
        );
        assert!(text.contains("apppw_app_passwords{state=\"active\"} 3\n"));
        assert!(text.contains(
            "apppw_offcampus_normal_password_attempts{day=\"today\",result=\"would-refuse\"} 1\n"
        ));
        assert!(text.contains("apppw_report_mode 1\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').unwrap();
            assert!(value.parse::<i64>().is_ok(), "{line}");
            assert!(name.starts_with("apppw_"), "{line}");
        }
        // Every sample belongs to a metric announced with HELP and TYPE just before.
        let types = text.matches("# TYPE ").count();
        assert_eq!(types, text.matches("# HELP ").count());
        assert_eq!(types, 7);
    }
}
