//! RFC 3339 UTC times and expiry arguments (`90d`, `12h`, `2027-03-31`).

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Formats Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`.
#[must_use]
pub fn rfc3339(secs: i64) -> String {
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn parse_date(s: &str) -> Option<(i64, u32, u32)> {
    let mut it = s.splitn(3, '-');
    let y: i64 = it.next()?.parse().ok()?;
    let m: u32 = it.next()?.parse().ok()?;
    let d: u32 = it.next()?.parse().ok()?;
    if s.len() != 10 || !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || d == 0 {
        return None;
    }
    // Reject 2027-02-30 and friends by round-tripping.
    (civil_from_days(days_from_civil(y, m, d)) == (y, m, d)).then_some((y, m, d))
}

/// Parses an expiry argument relative to `now`:
/// - a duration `N` + `h` (hours), `d` (days) or `w` (weeks): `now` + N;
/// - a date `YYYY-MM-DD`: valid through that whole day (UTC), i.e. expires at its 23:59:59;
/// - a time `YYYY-MM-DDTHH:MM:SSZ`.
///
/// The result must be in the future.
pub fn parse_expiry(s: &str, now: i64) -> Result<i64, String> {
    let s = s.trim();
    let bad = || {
        format!("invalid expiry {s:?}: use a duration like 90d, 12h, 2w, or a date like 2027-03-31")
    };
    let at = if let Some(unit) = s.chars().last().filter(|c| "hdw".contains(*c)) {
        let n: i64 = s[..s.len() - 1].parse().map_err(|_| bad())?;
        let mult = match unit {
            'h' => 3600,
            'd' => 86_400,
            _ => 7 * 86_400,
        };
        if n <= 0 || n > 100 * 366 * 86_400 / mult {
            return Err(bad());
        }
        now + n * mult
    } else if s.len() == 10 {
        let (y, m, d) = parse_date(s).ok_or_else(bad)?;
        days_from_civil(y, m, d) * 86_400 + 86_399
    } else if s.len() == 20 && s.as_bytes()[10] == b'T' && s.ends_with('Z') {
        let (y, m, d) = parse_date(&s[..10]).ok_or_else(bad)?;
        let hms: Vec<i64> = s[11..19]
            .split(':')
            .map(|p| p.parse().map_err(|_| bad()))
            .collect::<Result<_, _>>()?;
        if hms.len() != 3 || hms[0] > 23 || hms[1] > 59 || hms[2] > 59 {
            return Err(bad());
        }
        days_from_civil(y, m, d) * 86_400 + hms[0] * 3600 + hms[1] * 60 + hms[2]
    } else {
        return Err(bad());
    };
    if at <= now {
        return Err(format!("expiry {s:?} is in the past ({})", rfc3339(at)));
    }
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_000_000), "2026-11-18T11:06:40Z");
    }

    #[test]
    fn parses_expiry_forms() {
        let now = 1_795_000_000;
        assert_eq!(parse_expiry("90d", now), Ok(now + 90 * 86_400));
        assert_eq!(parse_expiry("12h", now), Ok(now + 12 * 3600));
        assert_eq!(parse_expiry("2w", now), Ok(now + 14 * 86_400));
        assert_eq!(
            parse_expiry("2027-03-31", now).map(rfc3339),
            Ok("2027-03-31T23:59:59Z".into())
        );
        assert_eq!(
            parse_expiry("2027-03-31T08:00:00Z", now).map(rfc3339),
            Ok("2027-03-31T08:00:00Z".into())
        );
        for bad in [
            "",
            "0d",
            "-3d",
            "90",
            "soon",
            "2027-02-30",
            "2027-13-01",
            "27-03-31",
            "9999999999999d",
        ] {
            assert!(parse_expiry(bad, now).is_err(), "{bad}");
        }
        assert!(
            parse_expiry("2020-01-01", now)
                .unwrap_err()
                .contains("past")
        );
    }

    proptest! {
        #[test]
        fn date_round_trip(days in -1_000_000i64..3_000_000) {
            let (y, m, d) = civil_from_days(days);
            prop_assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
