//! IMAP dates: `date` (`2-Dec-2026`) for SEARCH and `date-time`
//! (`"02-Dec-2026 06:30:00 +0000"`) for INTERNALDATE and APPEND.

use crate::proto::smtp::headers::civil_from_days;

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// (year, month, day) → days since 1970-01-01 (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 } as i64;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn month(name: &str) -> Option<u32> {
    MONTHS
        .iter()
        .position(|m| m.eq_ignore_ascii_case(name))
        .map(|i| i as u32 + 1)
}

/// `d-Mon-yyyy` → days since the epoch.
pub fn parse_date(s: &str) -> Option<i64> {
    let mut it = s.split('-');
    let d: u32 = it.next()?.trim().parse().ok()?;
    let m = month(it.next()?)?;
    let y: i64 = it.next()?.parse().ok()?;
    if it.next().is_some() || !(1..=31).contains(&d) || !(1..=9999).contains(&y) {
        return None;
    }
    Some(days_from_civil(y, m, d))
}

/// Whether the day of a `d-Mon-yyyy` date exists: `31-Feb-2026` has the
/// syntax of a date (RFC 3501 §9 allows any day 1-31) but names no day.
pub fn day_exists(s: &str) -> bool {
    let s = s.trim_start();
    let date = s.split(' ').next().unwrap_or("");
    let mut it = date.split('-');
    let (Some(d), Some(m), Some(y)) = (it.next(), it.next(), it.next()) else {
        return false;
    };
    let (Ok(d), Some(m), Ok(y)) = (d.trim().parse::<i64>(), month(m), y.parse::<i64>()) else {
        return false;
    };
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let last = match m {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    (1..=last).contains(&d)
}

/// `dd-Mon-yyyy hh:mm:ss +zzzz` → Unix time.
pub fn parse_date_time(s: &str) -> Option<i64> {
    let s = s.trim_start();
    let (date, rest) = s.split_once(' ')?;
    let (time, zone) = rest.split_once(' ')?;
    let days = parse_date(date)?;
    let mut t = time.split(':');
    let h: i64 = t.next()?.parse().ok()?;
    let mi: i64 = t.next()?.parse().ok()?;
    let se: i64 = t.next()?.parse().ok()?;
    if t.next().is_some() || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let (sign, z) = match zone.as_bytes().first()? {
        b'+' => (1, &zone[1..]),
        b'-' => (-1, &zone[1..]),
        _ => return None,
    };
    if z.len() != 4 || !z.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let zh: i64 = z[..2].parse().ok()?;
    let zm: i64 = z[2..].parse().ok()?;
    let offset = sign * (zh * 3600 + zm * 60);
    Some(days * 86400 + h * 3600 + mi * 60 + se - offset)
}

/// Unix time → `"dd-Mon-yyyy hh:mm:ss +0000"` (quoted, UTC).
pub fn format_date_time(unix: i64) -> String {
    let days = unix.div_euclid(86400);
    let secs = unix.rem_euclid(86400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "\"{:02}-{}-{:04} {:02}:{:02}:{:02} +0000\"",
        d,
        MONTHS[(m - 1) as usize],
        y,
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        assert_eq!(parse_date("1-Jan-1970"), Some(0));
        assert_eq!(parse_date("02-dec-2026"), Some(20_789));
        assert_eq!(
            parse_date_time("02-Dec-2026 06:30:00 +0100"),
            Some(20_789 * 86400 + 5 * 3600 + 1800)
        );
        assert_eq!(
            format_date_time(20_789 * 86400 + 5 * 3600 + 1800),
            "\"02-Dec-2026 05:30:00 +0000\""
        );
        assert_eq!(parse_date("31-Foo-2020"), None);
        assert_eq!(parse_date_time("02-Dec-2026 25:00:00 +0000"), None);
        assert!(day_exists("28-Feb-2026 00:00:00 +0000"));
        assert!(!day_exists("29-Feb-2026 00:00:00 +0000"));
        assert!(day_exists("29-Feb-2028"));
        assert!(!day_exists("29-Feb-2100"));
        assert!(day_exists("29-Feb-2000"));
        assert!(!day_exists("31-Apr-2026"));
        assert!(day_exists("31-Dec-2026"));
        assert!(!day_exists("0-Dec-2026"));
    }
}
