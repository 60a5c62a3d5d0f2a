//! RFC 3339 UTC times and expiry arguments (`90d`, `12h`, `2027-03-31`), on the `jiff` crate.

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

/// Formats Unix seconds as `YYYY-MM-DDTHH:MM:SSZ` (seconds beyond jiff's range, ±9999 years,
/// as the bare number: no stored time is anywhere near).
#[must_use]
pub fn rfc3339(secs: i64) -> String {
    match Timestamp::from_second(secs) {
        Ok(t) => t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        Err(_) => secs.to_string(),
    }
}

/// A date `YYYY-MM-DD` between 1970 and 9999 that exists (not 2027-02-30).
fn parse_date(s: &str) -> Option<Date> {
    let ok = s.len() == 10 && s.as_bytes()[4] == b'-' && s.as_bytes()[7] == b'-';
    let date: Date = s.parse().ok().filter(|_| ok)?;
    (1970..=9999).contains(&date.year()).then_some(date)
}

/// Unix seconds of `date` at `h:m:s` UTC.
fn utc_seconds(date: Date, h: i8, m: i8, s: i8) -> Option<i64> {
    let at = TimeZone::UTC.to_timestamp(date.at(h, m, s, 0)).ok()?;
    Some(at.as_second())
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
        let date = parse_date(s).ok_or_else(bad)?;
        utc_seconds(date, 23, 59, 59).ok_or_else(bad)?
    } else if s.len() == 20 && s.as_bytes()[10] == b'T' && s.ends_with('Z') {
        let date = parse_date(&s[..10]).ok_or_else(bad)?;
        let hms: Vec<i8> = s[11..19]
            .split(':')
            .map(|p| p.parse().map_err(|_| bad()))
            .collect::<Result<_, _>>()?;
        let (&[h, m, sec], [b':'], [b':']) =
            (hms.as_slice(), &s.as_bytes()[13..14], &s.as_bytes()[16..17])
        else {
            return Err(bad());
        };
        if !(0..=23).contains(&h) || !(0..=59).contains(&m) || !(0..=59).contains(&sec) {
            return Err(bad());
        }
        utc_seconds(date, h, m, sec).ok_or_else(bad)?
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
            "2027-03-31T24:00:00Z",
            "2027-03-31T08-00-00Z",
            "+02027-03-31",
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
        fn printed_times_parse_back(secs in 1i64..253_402_300_799) {
            prop_assert_eq!(parse_expiry(&rfc3339(secs), secs - 1), Ok(secs));
        }
    }
}
