//! MTA-STS (RFC 8461), the pure parts: the `_mta-sts` TXT record, the
//! policy file, MX pattern matching and the cache entry's freshness. The
//! fetching (DNS, HTTPS) and the cache files live in
//! `services::mta_sts`.

use serde::{Deserialize, Serialize};

/// The policy file is read up to this size (RFC 8461 §3.3 suggests 64 KiB).
pub const MAX_POLICY_BYTES: usize = 64 * 1024;

/// RFC 8461 §3.2: `max_age` is at most 31557600 seconds (about a year).
pub const MAX_AGE_LIMIT: u64 = 31_557_600;

/// `mx` lines of one policy processed at most.
pub const MAX_MX_PATTERNS: usize = 64;

/// `mode` of a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Only a verified TLS connection to an MX host that matches counts.
    Enforce,
    /// Failures are reported (TLS-RPT), delivery goes on as without policy.
    Testing,
    /// The domain withdrew its policy.
    None,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Testing => "testing",
            Mode::None => "none",
        }
    }
}

/// A parsed policy file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub mode: Mode,
    /// `mx` patterns, lower case, without a final dot: `mail.example.org` or
    /// `*.example.org`.
    pub mx: Vec<String>,
    /// Seconds, capped at [`MAX_AGE_LIMIT`].
    pub max_age: u64,
}

impl Policy {
    /// Does `host` (an MX host name) match one of the `mx` patterns?
    pub fn matches_mx(&self, host: &str) -> bool {
        self.mx.iter().any(|p| mx_matches(p, host))
    }

    /// RFC 8460 `policy-string`: the policy's lines.
    pub fn policy_strings(&self) -> Vec<String> {
        let mut out = vec![
            "version: STSv1".to_string(),
            format!("mode: {}", self.mode.as_str()),
        ];
        out.extend(self.mx.iter().map(|m| format!("mx: {m}")));
        out.push(format!("max_age: {}", self.max_age));
        out
    }
}

/// The `id` of the one `v=STSv1` TXT record at `_mta-sts.<domain>`
/// (RFC 8461 §3.1). `None` when there is no such record, when there are
/// several, or when the one there is malformed: in each case the domain
/// has no available policy.
pub fn txt_id(records: &[String]) -> Option<String> {
    let mut sts = records
        .iter()
        .filter(|r| r.trim_start().starts_with("v=STSv1"));
    let record = sts.next()?;
    if sts.next().is_some() {
        return None;
    }
    let mut id = None;
    for (i, field) in record.split(';').enumerate() {
        let field = field.trim_matches([' ', '\t']);
        if field.is_empty() {
            continue;
        }
        let (k, v) = field.split_once('=')?;
        let (k, v) = (k.trim_matches([' ', '\t']), v.trim_matches([' ', '\t']));
        if i == 0 {
            if k != "v" || v != "STSv1" {
                return None;
            }
        } else if k == "id" && id.is_none() {
            if v.is_empty() || v.len() > 32 || !v.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return None;
            }
            id = Some(v.to_string());
        }
    }
    id
}

/// Parses a policy file (RFC 8461 §3.2): `key: value` lines ended by CRLF
/// or LF; `version: STSv1`, `mode` and `max_age` required; `mx` required
/// (one or more) unless the mode is `none`; unknown keys ignored; the first
/// occurrence of a repeated single-valued key counts.
pub fn parse_policy(body: &[u8]) -> Result<Policy, String> {
    if body.len() > MAX_POLICY_BYTES {
        return Err(format!(
            "policy larger than {MAX_POLICY_BYTES} bytes ({} bytes)",
            body.len()
        ));
    }
    let text = std::str::from_utf8(body).map_err(|_| "policy is not UTF-8".to_string())?;
    let mut version = None;
    let mut mode = None;
    let mut max_age = None;
    let mut mx = Vec::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            continue;
        }
        let Some((k, v)) = line.split_once(':') else {
            return Err(format!("line without a colon: {:?}", truncate(line)));
        };
        let (k, v) = (k.trim(), v.trim());
        match k {
            "version" if version.is_none() => version = Some(v.to_string()),
            "mode" if mode.is_none() => {
                mode = Some(match v {
                    "enforce" => Mode::Enforce,
                    "testing" => Mode::Testing,
                    "none" => Mode::None,
                    other => return Err(format!("unknown mode {:?}", truncate(other))),
                })
            }
            "max_age" if max_age.is_none() => {
                if v.is_empty() || v.len() > 10 || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(format!("max_age is not a number: {:?}", truncate(v)));
                }
                let n: u64 = v.parse().map_err(|_| "max_age is not a number")?;
                max_age = Some(n.min(MAX_AGE_LIMIT));
            }
            "mx" => {
                if mx.len() >= MAX_MX_PATTERNS {
                    return Err(format!("more than {MAX_MX_PATTERNS} mx lines"));
                }
                mx.push(valid_pattern(v)?);
            }
            _ => {}
        }
    }
    match version.as_deref() {
        Some("STSv1") => {}
        Some(v) => return Err(format!("unknown version {:?}", truncate(v))),
        None => return Err("no version field".into()),
    }
    let mode = mode.ok_or("no mode field")?;
    let max_age = max_age.ok_or("no max_age field")?;
    if mx.is_empty() && mode != Mode::None {
        return Err("no mx field".into());
    }
    Ok(Policy { mode, mx, max_age })
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(40) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn valid_pattern(v: &str) -> Result<String, String> {
    let p = v.trim_end_matches('.').to_ascii_lowercase();
    let host = p.strip_prefix("*.").unwrap_or(&p);
    let ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if ok {
        Ok(p)
    } else {
        Err(format!("invalid mx pattern {:?}", truncate(v)))
    }
}

/// RFC 8461 §4.1: `*.example.org` matches exactly one leftmost label
/// (`mx.example.org`, not `a.b.example.org` nor `example.org`); otherwise
/// the names must be equal. Case-insensitive, final dots ignored.
pub fn mx_matches(pattern: &str, host: &str) -> bool {
    let p = pattern.trim_end_matches('.').to_ascii_lowercase();
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    match p.strip_prefix("*.") {
        Some(parent) => match h.split_once('.') {
            Some((first, rest)) => !first.is_empty() && rest == parent,
            None => false,
        },
        None => p == h,
    }
}

/// A policy as cached in the state directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cached {
    /// The TXT record's `id` the policy was fetched under.
    pub id: String,
    /// Unix seconds of the fetch.
    pub fetched: u64,
    pub policy: Policy,
}

impl Cached {
    /// Still within its `max_age`?
    pub fn is_fresh(&self, now: u64) -> bool {
        now < self.fetched.saturating_add(self.policy.max_age)
    }
}

/// What to do about a domain's policy given the cache and the TXT id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refresh {
    /// Use the cached policy as it is.
    UseCached,
    /// Fetch; if the fetch fails, fall back to the cached policy when it
    /// is still fresh (RFC 8461 §5.1).
    Fetch { id: String },
    /// No TXT record and nothing fresh cached: the domain has no policy.
    NoPolicy,
}

/// RFC 8461 §5.1: a cached fresh policy whose id matches the TXT record is
/// used as it is; a changed id (or none cached) means fetching. Without a
/// TXT record (or when DNS failed) a fresh cached policy still applies —
/// an attacker who strips the TXT record must not downgrade.
pub fn refresh(cached: Option<&Cached>, txt_id: Option<&str>, now: u64) -> Refresh {
    let fresh = cached.filter(|c| c.is_fresh(now));
    match (txt_id, fresh) {
        (Some(id), Some(c)) if c.id == id => Refresh::UseCached,
        (Some(id), _) => Refresh::Fetch { id: id.to_string() },
        (None, Some(_)) => Refresh::UseCached,
        (None, None) => Refresh::NoPolicy,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txt_records() {
        let r = |v: &[&str]| txt_id(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            r(&["v=STSv1; id=20160831085700Z;"]),
            Some("20160831085700Z".into())
        );
        assert_eq!(r(&["v=STSv1;id=abc", "v=spf1 -all"]), Some("abc".into()));
        assert_eq!(r(&["v=STSv1; id=a", "v=STSv1; id=b"]), None, "two records");
        assert_eq!(r(&["v=STSv1;"]), None, "no id");
        assert_eq!(r(&["v=STSv1; id=bad-id"]), None);
        assert_eq!(r(&["v=STSv1; id=012345678901234567890123456789012"]), None);
        assert_eq!(r(&["v=STSv2; id=a"]), None);
        assert_eq!(r(&[]), None);
        assert_eq!(r(&["v=STSv1; junk; id=x"]), None, "field without =");
    }

    #[test]
    fn policy_files() {
        let p = parse_policy(
            b"version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.Example.NET.\r\nmax_age: 86400\r\nextension: ignored\r\n",
        )
        .unwrap();
        assert_eq!(p.mode, Mode::Enforce);
        assert_eq!(p.mx, vec!["mail.example.com", "*.example.net"]);
        assert_eq!(p.max_age, 86400);
        assert!(p.matches_mx("MAIL.example.com."));
        assert!(p.matches_mx("mx1.example.net"));
        assert!(!p.matches_mx("a.b.example.net"));
        assert!(!p.matches_mx("example.net"));
        assert!(!p.matches_mx("evil.com"));
        assert_eq!(
            p.policy_strings(),
            vec![
                "version: STSv1",
                "mode: enforce",
                "mx: mail.example.com",
                "mx: *.example.net",
                "max_age: 86400"
            ]
        );

        let lf = parse_policy(b"version: STSv1\nmode: testing\nmx: a.org\nmax_age: 999999999\n")
            .unwrap();
        assert_eq!(lf.mode, Mode::Testing);
        assert_eq!(lf.max_age, MAX_AGE_LIMIT);
        let none = parse_policy(b"version: STSv1\nmode: none\nmax_age: 1\n").unwrap();
        assert_eq!(none.mode, Mode::None);

        for bad in [
            &b"mode: enforce\nmx: a.org\nmax_age: 1\n"[..],
            b"version: STSv2\nmode: enforce\nmx: a.org\nmax_age: 1\n",
            b"version: STSv1\nmode: strict\nmx: a.org\nmax_age: 1\n",
            b"version: STSv1\nmode: enforce\nmax_age: 1\n",
            b"version: STSv1\nmode: enforce\nmx: a.org\n",
            b"version: STSv1\nmode: enforce\nmx: a.org\nmax_age: -1\n",
            b"version: STSv1\nmode: enforce\nmx: a..org\nmax_age: 1\n",
            b"version: STSv1\nmode: enforce\nmx: a.org\nmax_age: 1\ngarbage\n",
            b"\xff\xfe",
            b"<html>404</html>",
        ] {
            assert!(
                parse_policy(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn a_megabyte_policy_is_refused_without_parsing_it() {
        let mut big = b"version: STSv1\nmode: enforce\nmx: a.org\nmax_age: 1\n".to_vec();
        big.resize(1024 * 1024, b'x');
        let e = parse_policy(&big).unwrap_err();
        assert!(e.contains("larger than"), "{e}");
        let mut many = b"version: STSv1\nmode: enforce\nmax_age: 1\n".to_vec();
        for i in 0..1000 {
            many.extend_from_slice(format!("mx: m{i}.org\n").as_bytes());
        }
        assert!(parse_policy(&many).unwrap_err().contains("mx lines"));
    }

    #[test]
    fn cache_refresh_rules() {
        let c = Cached {
            id: "a".into(),
            fetched: 1000,
            policy: Policy {
                mode: Mode::Enforce,
                mx: vec!["mx.a.org".into()],
                max_age: 100,
            },
        };
        assert_eq!(refresh(Some(&c), Some("a"), 1050), Refresh::UseCached);
        assert_eq!(
            refresh(Some(&c), Some("b"), 1050),
            Refresh::Fetch { id: "b".into() }
        );
        assert_eq!(
            refresh(Some(&c), Some("a"), 1100),
            Refresh::Fetch { id: "a".into() },
            "expired"
        );
        assert_eq!(refresh(Some(&c), None, 1050), Refresh::UseCached);
        assert_eq!(refresh(Some(&c), None, 1200), Refresh::NoPolicy);
        assert_eq!(
            refresh(None, Some("x"), 0),
            Refresh::Fetch { id: "x".into() }
        );
        assert_eq!(refresh(None, None, 0), Refresh::NoPolicy);
    }
}
