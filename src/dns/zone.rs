//! Zone-file snippets (RFC 1035 §5 master file format) that BIND, Knot and
//! NSD load as they are: `$ORIGIN` and `$TTL`, owner names relative to the
//! origin, TXT data split into quoted strings of at most 255 bytes, and a
//! comment above each record.

use std::fmt::Write;

use super::{Data, TTL, Zone};

/// Longest string in a TXT record's character-string (RFC 1035 §3.3).
pub const TXT_CHUNK: usize = 255;

/// A TXT value as quoted character-strings of at most 255 bytes.
pub fn txt_strings(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut parts = Vec::new();
    let mut start = 0;
    while start < bytes.len() || parts.is_empty() {
        let mut end = (start + TXT_CHUNK).min(bytes.len());
        while end < bytes.len() && !text.is_char_boundary(end) {
            end -= 1;
        }
        let chunk = &text[start..end];
        let escaped = chunk.replace('\\', "\\\\").replace('"', "\\\"");
        parts.push(format!("\"{escaped}\""));
        start = end;
        if start >= bytes.len() {
            break;
        }
    }
    parts.join(" ")
}

/// The owner name relative to the origin (`@` for the apex).
fn relative(name: &str, origin: &str) -> String {
    let apex = format!("{origin}.");
    if name == apex {
        "@".into()
    } else if let Some(label) = name.strip_suffix(&format!(".{apex}")) {
        label.to_string()
    } else {
        name.to_string()
    }
}

pub fn data_text(data: &Data) -> String {
    match data {
        Data::Mx { preference, host } => format!("{preference} {host}"),
        Data::A(ip) => ip.to_string(),
        Data::Aaaa(ip) => ip.to_string(),
        Data::Txt(t) => txt_strings(t),
        Data::Srv {
            priority,
            weight,
            port,
            target,
        } => format!("{priority} {weight} {port} {target}"),
        Data::Cname(t) => t.clone(),
        Data::Tlsa {
            usage,
            selector,
            matching,
            data,
        } => format!("{usage} {selector} {matching} {data}"),
    }
}

/// Renders one zone as a snippet.
pub fn render(zone: &Zone, tables_hash: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "; DNS records for {}, made by `mailc dns` from tables {tables_hash}.",
        zone.origin
    );
    let _ = writeln!(
        out,
        "; Add them to the zone of {} (BIND, Knot and NSD read this format).",
        zone.origin
    );
    let _ = writeln!(out, "$ORIGIN {}.", zone.origin);
    let _ = writeln!(out, "$TTL {TTL}");
    let width = zone
        .records
        .iter()
        .map(|r| relative(&r.name, &zone.origin).len())
        .max()
        .unwrap_or(1);
    for r in &zone.records {
        let _ = writeln!(out);
        for line in wrap(&r.comment, 78) {
            let _ = writeln!(out, "; {line}");
        }
        let _ = writeln!(
            out,
            "{:width$} IN {:<5} {}",
            relative(&r.name, &zone.origin),
            r.data.rtype(),
            data_text(&r.data)
        );
    }
    for sel in &zone.missing_keys {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "; DKIM selector {sel}: no key yet. Run `mailc dkim keygen CONFIG`, then `mailc dns` again."
        );
    }
    if !zone.advice.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "; Outside this zone:");
        for a in &zone.advice {
            for (i, line) in wrap(a, 76).into_iter().enumerate() {
                let _ = writeln!(out, ";   {}{line}", if i == 0 { "- " } else { "  " });
            }
        }
    }
    if let Some(policy) = &zone.mta_sts_policy {
        let _ = writeln!(out, ";");
        let _ = writeln!(
            out,
            "; https://mta-sts.{}/.well-known/mta-sts.txt:",
            zone.origin
        );
        for line in policy.lines() {
            let _ = writeln!(out, ";   {line}");
        }
    }
    out
}

fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txt_is_split_at_255_bytes() {
        let long = "p=".to_string() + &"A".repeat(400);
        let s = txt_strings(&long);
        let parts: Vec<&str> = s.split("\" \"").collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].trim_start_matches('"').len(), 255);
        assert_eq!(txt_strings("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(txt_strings(""), "\"\"");
    }

    #[test]
    fn relative_names() {
        assert_eq!(relative("example.com.", "example.com"), "@");
        assert_eq!(relative("_dmarc.example.com.", "example.com"), "_dmarc");
        assert_eq!(
            relative("mail.other.org.", "example.com"),
            "mail.other.org."
        );
    }
}
