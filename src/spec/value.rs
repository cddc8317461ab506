//! Parsers for the value notations of the language that KDL itself does not
//! have: sizes (`25MiB`) and durations (`1h30m`).

/// Why a size or a duration was not understood. The text is shown to the
/// admin inside a diagnostic (`bad size: ...`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("`{0}` does not start with a number")]
    NoNumber(String),
    #[error("`{0}` is too large")]
    TooLarge(String),
    #[error("unknown size unit `{0}`")]
    SizeUnit(String),
    #[error("empty duration")]
    EmptyDuration,
    #[error("expected a number at `{0}`")]
    NumberExpected(String),
    #[error("`{0}` has no unit (s, m, h, d, w)")]
    NoUnit(u64),
    #[error("unknown duration unit `{0}`")]
    DurationUnit(String),
}

/// Parses a byte size: an integer with an optional unit (`B`, `KB`, `KiB`, `MB`,
/// `MiB`, `GB`, `GiB`, `TB`, `TiB`; case-insensitive). `K`-style SI units are
/// powers of 1000, `Ki`-style binary units powers of 1024.
pub fn parse_size(text: &str) -> Result<u64, ValueError> {
    let text = text.trim();
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (num, unit) = text.split_at(digits_end);
    if num.is_empty() {
        return Err(ValueError::NoNumber(text.to_string()));
    }
    let n: u64 = num
        .parse()
        .map_err(|_| ValueError::TooLarge(num.to_string()))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "kib" => 1 << 10,
        "mb" => 1000 * 1000,
        "mib" => 1 << 20,
        "gb" => 1000 * 1000 * 1000,
        "gib" => 1 << 30,
        "tb" => 1000 * 1000 * 1000 * 1000,
        "tib" => 1 << 40,
        other => return Err(ValueError::SizeUnit(other.to_string())),
    };
    n.checked_mul(factor)
        .ok_or_else(|| ValueError::TooLarge(text.to_string()))
}

/// Parses a duration into seconds: one or more `<integer><unit>` groups with
/// units `s`, `m`, `h`, `d`, `w` (`90s`, `5m`, `1h30m`, `7d`).
pub fn parse_duration(text: &str) -> Result<u64, ValueError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(ValueError::EmptyDuration);
    }
    let mut total: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits_end == 0 {
            return Err(ValueError::NumberExpected(rest.to_string()));
        }
        let n: u64 = rest[..digits_end]
            .parse()
            .map_err(|_| ValueError::TooLarge(rest[..digits_end].to_string()))?;
        rest = &rest[digits_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let factor: u64 = match &rest[..unit_end] {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86400,
            "w" => 7 * 86400,
            "" => return Err(ValueError::NoUnit(n)),
            other => return Err(ValueError::DurationUnit(other.to_string())),
        };
        rest = &rest[unit_end..];
        total = n
            .checked_mul(factor)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| ValueError::TooLarge(text.to_string()))?;
    }
    Ok(total)
}

/// Renders seconds back in the largest exact units (`90` → `1m30s`), for
/// messages and for `mailc explain`.
pub fn format_duration(mut secs: u64) -> String {
    if secs == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [("d", 86400), ("h", 3600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("25MiB"), Ok(25 << 20));
        assert_eq!(parse_size("2GB"), Ok(2_000_000_000));
        assert_eq!(parse_size("2 gib"), Ok(2 << 30));
        assert_eq!(parse_size("1234"), Ok(1234));
        assert_eq!(parse_size("0"), Ok(0));
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("99999999999TiB").is_err());
        assert!(parse_size("1.5GiB").is_err());
        assert!(parse_size("").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5m"), Ok(300));
        assert_eq!(parse_duration("1h30m"), Ok(5400));
        assert_eq!(parse_duration("7d"), Ok(7 * 86400));
        assert_eq!(parse_duration("2w"), Ok(14 * 86400));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("m5").is_err());
        assert!(parse_duration("5 minutes").is_err());
        assert!(parse_duration("99999999999999999999s").is_err());
        assert!(parse_duration("18446744073709551615w").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn duration_roundtrip() {
        for s in [0, 1, 59, 60, 61, 3600, 5400, 86400, 90061] {
            assert_eq!(parse_duration(&format_duration(s)), Ok(s));
        }
    }
}
