//! Header fields a server writes or inspects: `Received:` (RFC 5321 §4.4,
//! protocol keywords of RFC 3848), `Return-Path:`, RFC 5322 dates, removal of
//! fields for the privacy option, and the addresses of `From:`.

use std::net::IpAddr;

/// What a `Received:` field records about one hop.
#[derive(Debug, Clone)]
pub struct ReceivedInfo<'a> {
    pub helo: &'a str,
    /// `None` when the client's address is withheld (privacy option).
    pub client_ip: Option<IpAddr>,
    pub by_host: &'a str,
    /// `ESMTP`, `ESMTPS`, `ESMTPSA`, `LMTP`, ... (RFC 3848).
    pub protocol: &'a str,
    /// e.g. `TLSv1.3 TLS13_AES_256_GCM_SHA384`.
    pub tls: Option<&'a str>,
    pub id: &'a str,
    /// Only given for a single recipient (RFC 5321 §4.4: for multiple it leaks).
    pub for_rcpt: Option<&'a str>,
    pub unix_time: u64,
}

/// The protocol keyword of RFC 3848 / RFC 8314 for a session.
pub fn protocol_keyword(lmtp: bool, esmtp: bool, tls: bool, auth: bool) -> &'static str {
    match (lmtp, esmtp, tls, auth) {
        (true, _, false, false) => "LMTP",
        (true, _, true, false) => "LMTPS",
        (true, _, false, true) => "LMTPA",
        (true, _, true, true) => "LMTPSA",
        (false, false, _, _) => "SMTP",
        (false, true, false, false) => "ESMTP",
        (false, true, true, false) => "ESMTPS",
        (false, true, false, true) => "ESMTPA",
        (false, true, true, true) => "ESMTPSA",
    }
}

/// A complete `Received:` field with CRLF, folded for readability.
pub fn received(info: &ReceivedInfo<'_>) -> String {
    let helo = sanitize(info.helo, 255);
    let mut s = String::from("Received: ");
    if let Some(ip) = info.client_ip {
        let literal = match ip {
            IpAddr::V4(v4) => format!("[{v4}]"),
            IpAddr::V6(v6) => format!("[IPv6:{v6}]"),
        };
        s.push_str(&format!("from {helo} ({literal})\r\n\t"));
    }
    s.push_str(&format!(
        "by {} (mailc) with {}",
        info.by_host, info.protocol
    ));
    if let Some(t) = info.tls {
        s.push_str(&format!(" ({})", sanitize(t, 100)));
    }
    s.push_str(&format!("\r\n\tid {}", info.id));
    if let Some(r) = info.for_rcpt {
        s.push_str(&format!(" for <{}>", sanitize(r, 300)));
    }
    s.push_str(&format!("; {}\r\n", rfc5322_date(info.unix_time)));
    s
}

pub fn return_path(sender: &str) -> String {
    format!("Return-Path: <{}>\r\n", sanitize(sender, 300))
}

/// Printable text only: a HELO argument or address cannot add lines or
/// control characters to a header.
fn sanitize(text: &str, max: usize) -> String {
    text.chars()
        .filter(|c| !c.is_control() && *c != '(' && *c != ')')
        .take(max)
        .collect()
}

/// `Tue, 24 Nov 2026 22:13:55 +0000` for a Unix time (UTC).
pub fn rfc5322_date(unix: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix / 86400;
    let secs = unix % 86400;
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{}, {} {} {} {:02}:{:02}:{:02} +0000",
        DAYS[(days % 7) as usize],
        d,
        MONTHS[(m - 1) as usize],
        y,
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian
/// (Howard Hinnant's algorithm).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Where the header section ends: the index just after the blank line, or
/// the message length when there is no body.
pub fn header_end(message: &[u8]) -> usize {
    if message.starts_with(b"\r\n") {
        return 2;
    }
    match message.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) => i + 4,
        None => message.len(),
    }
}

/// Removes every header field with one of `names` (case-insensitive),
/// continuation lines included. The body is untouched.
pub fn remove_fields(message: &[u8], names: &[&str]) -> Vec<u8> {
    let end = header_end(message);
    let (head, body) = message.split_at(end);
    let mut out = Vec::with_capacity(message.len());
    let mut skipping = false;
    let mut rest = head;
    while !rest.is_empty() {
        let len = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .map_or(rest.len(), |i| i + 2);
        let (line, tail) = rest.split_at(len);
        rest = tail;
        let continuation = line.first().is_some_and(|&b| b == b' ' || b == b'\t');
        if !continuation {
            skipping = names.iter().any(|n| {
                line.len() > n.len()
                    && line[..n.len()].eq_ignore_ascii_case(n.as_bytes())
                    && line[n.len()] == b':'
            });
        }
        if !skipping {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(body);
    out
}

/// The addresses in the `From:` field(s), lower-cased domains untouched.
pub fn from_addresses(message: &[u8]) -> Vec<String> {
    let end = header_end(message);
    let parsed = mail_parser::MessageParser::default().parse_headers(&message[..end]);
    let mut out = Vec::new();
    if let Some(m) = parsed
        && let Some(from) = m.from()
    {
        for a in from.iter() {
            if let Some(addr) = a.address() {
                out.push(addr.to_string());
            }
        }
    }
    out
}

/// Number of `From:` fields (RFC 5322 allows exactly one).
pub fn count_fields(message: &[u8], name: &str) -> usize {
    let end = header_end(message);
    message[..end]
        .split(|&b| b == b'\n')
        .filter(|l| {
            l.len() > name.len()
                && l[..name.len()].eq_ignore_ascii_case(name.as_bytes())
                && l[name.len()] == b':'
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(rfc5322_date(0), "Thu, 1 Jan 1970 00:00:00 +0000");
        assert_eq!(
            rfc5322_date(1_795_558_435),
            "Tue, 24 Nov 2026 22:13:55 +0000"
        );
        assert_eq!(rfc5322_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
    }

    #[test]
    fn received_field() {
        let r = received(&ReceivedInfo {
            helo: "client.example\r\nX-Evil: 1",
            client_ip: Some("192.0.2.7".parse().expect("ip")),
            by_host: "mail.example.test",
            protocol: "ESMTPS",
            tls: Some("TLSv1.3 TLS13_AES_256_GCM_SHA384"),
            id: "Q1",
            for_rcpt: Some("a@example.test"),
            unix_time: 0,
        });
        assert_eq!(
            r,
            "Received: from client.exampleX-Evil: 1 ([192.0.2.7])\r\n\tby mail.example.test (mailc) with ESMTPS (TLSv1.3 TLS13_AES_256_GCM_SHA384)\r\n\tid Q1 for <a@example.test>; Thu, 1 Jan 1970 00:00:00 +0000\r\n"
        );
        assert_eq!(r.matches("\r\n").count(), 3);
    }

    #[test]
    fn removing_fields() {
        let m = b"From: a@b\r\nUser-Agent: Foo\r\n  continued\r\nSubject: x\r\nX-Mailer: y\r\n\r\nUser-Agent: body stays\r\n";
        let out = remove_fields(m, &["user-agent", "X-Mailer"]);
        assert_eq!(
            out,
            b"From: a@b\r\nSubject: x\r\n\r\nUser-Agent: body stays\r\n"
        );
    }

    #[test]
    fn from_field() {
        let m = b"From: \"Alice\" <alice@example.test>, bob@example.test\r\nTo: x@y\r\n\r\nbody";
        assert_eq!(
            from_addresses(m),
            vec!["alice@example.test", "bob@example.test"]
        );
        assert_eq!(count_fields(m, "from"), 1);
        assert!(from_addresses(b"Subject: none\r\n\r\n").is_empty());
    }
}
