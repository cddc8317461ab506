//! `mailc tls status CONFIG`: every certificate the config declares, as
//! the server finds it on disk: the names it is selected by and covers,
//! issuer, validity, serial, where it comes from, and for ACME the last
//! renewal attempt and its error; with `dane #true`, the TLSA data of the
//! current and next keys and where the rollover stands. Reads files only;
//! the server need not run.

use std::fmt::Write as _;
use std::path::Path;

use crate::compile::{self, Options};
use crate::net::certinfo;
use crate::services::acme::RenewalStatus;
use crate::tables::{CertSource, Tables};

pub fn status(config: &Path) -> i32 {
    let out = compile::compile_file(config, Options { offline: true });
    let Some(c) = out.compiled else {
        super::report_failure(config, &out);
        return 1;
    };
    print!("{}", render(&c.tables, crate::services::unix_now() as i64));
    0
}

fn when(secs: i64, now: i64) -> String {
    let rel = secs - now;
    let days = rel.abs() / 86_400;
    let hours = (rel.abs() % 86_400) / 3600;
    let span = if days > 0 {
        format!("{days}d {hours}h")
    } else {
        format!("{}m", (rel.abs() + 59) / 60)
    };
    let date = unix_to_utc(secs);
    if rel >= 0 {
        format!("{date} (in {span})")
    } else {
        format!("{date} ({span} ago)")
    }
}

/// `YYYY-MM-DD HH:MM:SS UTC` (proleptic Gregorian, days from the epoch).
fn unix_to_utc(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// With `dane #true`: both keys' TLSA data and where the rollover stands
/// (from the state directory; no DNS lookup).
fn render_dane(tables: &Tables, now: i64, s: &mut String) {
    use crate::dns::{dane, rollover};
    let Some(p) = dane::key_paths(tables) else {
        return;
    };
    let _ = writeln!(s, "\nDANE _25._tcp.{} (TLSA 3 1 1)", p.host);
    let current = dane::cert_spki_sha256(&p.cert).ok();
    let next = dane::key_spki_sha256(&p.next_key).ok();
    let _ = writeln!(
        s,
        "  current key: {}",
        current.as_deref().unwrap_or("no certificate on disk")
    );
    match &next {
        Some(n) => {
            let _ = writeln!(s, "  next key: {n} ({})", p.next_key.display());
            let seen = match rollover::seen(&p, n) {
                Some(s) => format!(
                    "since {} (switch after {}s)",
                    when(s.first_seen as i64, now),
                    s.wait()
                ),
                None => "not yet (by `mailc plan`, `mailc tls rollover` or the server)".into(),
            };
            let _ = writeln!(s, "  next key seen published: {seen}");
        }
        None => {
            let _ = writeln!(s, "  next key: none yet (`mailc dns` makes one)");
        }
    }
    if let Some(r) = rollover::read_request(&p) {
        let state = match &r.error {
            Some(e) => format!("failed: {e}"),
            None => "pending (the server carries it out)".into(),
        };
        let _ = writeln!(
            s,
            "  switch requested: {} to {}: {state}",
            when(r.requested_at as i64, now),
            r.next
        );
    }
    if let Some(w) = rollover::read_switch(&p) {
        let _ = writeln!(s, "  last switch: {} to {}", when(w.at as i64, now), w.to);
    }
}

pub fn render(tables: &Tables, now: i64) -> String {
    let mut s = String::new();
    if tables.tls.is_empty() {
        s.push_str("no certificates configured\n");
    }
    for (i, cert) in tables.tls.iter().enumerate() {
        if i > 0 {
            s.push('\n');
        }
        let (source, path, status) = match &cert.source {
            CertSource::Files { cert, .. } => ("files".to_string(), cert, None),
            CertSource::SelfSigned { cert, .. } => ("self-signed".to_string(), cert, None),
            CertSource::Acme(a) => (
                format!(
                    "acme ({}, {})",
                    a.directory,
                    match a.challenge {
                        crate::tables::AcmeChallenge::TlsAlpn01 => "tls-alpn-01",
                        crate::tables::AcmeChallenge::Http01 => "http-01",
                    }
                ),
                &a.cert,
                Some(RenewalStatus::read(&a.status)),
            ),
        };
        let selected = if cert.names.is_empty() {
            "(default)".to_string()
        } else if cert.default {
            format!("{} (default)", cert.names.join(", "))
        } else {
            cert.names.join(", ")
        };
        let _ = writeln!(s, "certificate {}", path.display());
        let _ = writeln!(s, "  source: {source}");
        let _ = writeln!(s, "  selected by: {selected}");
        match certinfo::read(path) {
            Ok(info) => {
                let _ = writeln!(s, "  names: {}", info.names.join(", "));
                let _ = writeln!(s, "  issuer: {}", info.issuer);
                let _ = writeln!(s, "  serial: {}", info.serial);
                let _ = writeln!(s, "  not before: {}", when(info.not_before, now));
                let expired = if info.not_after < now {
                    "  EXPIRED"
                } else {
                    ""
                };
                let _ = writeln!(s, "  not after: {}{expired}", when(info.not_after, now));
            }
            Err(e) => {
                let _ = writeln!(s, "  no certificate on disk: {e}");
            }
        }
        if let Some(st) = status {
            let attempt = st
                .last_attempt
                .map_or("never".to_string(), |t| when(t as i64, now));
            let success = st
                .last_success
                .map_or("never".to_string(), |t| when(t as i64, now));
            let _ = writeln!(s, "  last renewal attempt: {attempt}");
            let _ = writeln!(s, "  last issued: {success}");
            match &st.last_error {
                Some(e) => {
                    let _ = writeln!(s, "  last error: {e} ({} failures in a row)", st.failures);
                    if let Some(t) = st.retry_after {
                        let _ = writeln!(s, "  next attempt not before: {}", when(t as i64, now));
                    }
                }
                None => {
                    let _ = writeln!(s, "  last error: none");
                }
            }
        }
    }
    render_dane(tables, now, &mut s);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(unix_to_utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(unix_to_utc(1_775_088_000), "2026-04-02 00:00:00 UTC");
        assert_eq!(unix_to_utc(951_782_400 + 3661), "2000-02-29 01:01:01 UTC");
        assert_eq!(
            when(100 + 3 * 86_400 + 7200, 100),
            "1970-01-04 02:01:40 UTC (in 3d 2h)"
        );
        assert_eq!(when(40, 100), "1970-01-01 00:00:40 UTC (1m ago)");
    }
}
