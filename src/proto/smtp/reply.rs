//! Typed SMTP replies: a basic code, an enhanced status code and text.
//! Handlers build replies from these constructors, never from string
//! literals, so the codes stay consistent across the server.

use std::fmt;

/// An enhanced status code (RFC 3463): class.subject.detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enhanced(pub u8, pub u16, pub u16);

impl fmt::Display for Enhanced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// One SMTP reply, possibly of several lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// `None` before the client has seen ENHANCEDSTATUSCODES (the greeting
    /// and EHLO replies carry none, RFC 2034 §3).
    pub enhanced: Option<Enhanced>,
    pub lines: Vec<String>,
}

impl Reply {
    pub fn new(code: u16, enhanced: Enhanced, text: impl Into<String>) -> Reply {
        Reply {
            code,
            enhanced: Some(enhanced),
            lines: vec![text.into()],
        }
    }

    pub fn plain(code: u16, text: impl Into<String>) -> Reply {
        Reply {
            code,
            enhanced: None,
            lines: vec![text.into()],
        }
    }

    pub fn multi(code: u16, lines: Vec<String>) -> Reply {
        Reply {
            code,
            enhanced: None,
            lines,
        }
    }

    pub fn is_positive(&self) -> bool {
        self.code < 400
    }

    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// Renders the reply with CRLF line ends; text is stripped of CR/LF so a
    /// value echoed into a reply can never inject another line.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let n = self.lines.len().max(1);
        for i in 0..n {
            let text = self.lines.get(i).map_or("", String::as_str);
            let sep = if i + 1 == n { ' ' } else { '-' };
            out.extend_from_slice(format!("{}{}", self.code, sep).as_bytes());
            if let Some(e) = self.enhanced {
                out.extend_from_slice(format!("{e} ").as_bytes());
            }
            out.extend(text.bytes().filter(|&b| b != b'\r' && b != b'\n'));
            out.extend_from_slice(b"\r\n");
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.write_to(&mut v);
        v
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_bytes()))
    }
}

/// The replies of the server, one constructor per situation.
pub mod r {
    use super::{Enhanced as E, Reply};

    pub fn greeting(host: &str) -> Reply {
        Reply::plain(220, format!("{host} ESMTP mailc"))
    }
    pub fn lmtp_greeting(host: &str) -> Reply {
        Reply::plain(220, format!("{host} LMTP mailc"))
    }
    pub fn too_many_connections() -> Reply {
        Reply::new(421, E(4, 7, 0), "too many connections, try again later")
    }
    pub fn shutting_down(host: &str) -> Reply {
        Reply::new(
            421,
            E(4, 3, 2),
            format!("{host} shutting down, try again later"),
        )
    }
    pub fn timeout() -> Reply {
        Reply::new(421, E(4, 4, 2), "timeout, closing connection")
    }
    pub fn too_many_errors() -> Reply {
        Reply::new(421, E(4, 7, 0), "too many errors, closing connection")
    }
    pub fn helo(host: &str, client: &str) -> Reply {
        Reply::plain(250, format!("{host} greets {client}"))
    }
    pub fn ok() -> Reply {
        Reply::new(250, E(2, 0, 0), "OK")
    }
    pub fn sender_ok() -> Reply {
        Reply::new(250, E(2, 1, 0), "sender OK")
    }
    pub fn recipient_ok() -> Reply {
        Reply::new(250, E(2, 1, 5), "recipient OK")
    }
    pub fn reset() -> Reply {
        Reply::new(250, E(2, 0, 0), "reset")
    }
    pub fn queued(id: &str) -> Reply {
        Reply::new(250, E(2, 0, 0), format!("queued as {id}"))
    }
    pub fn delivered_lmtp(rcpt: &str, id: &str) -> Reply {
        Reply::new(250, E(2, 1, 5), format!("<{rcpt}> queued as {id}"))
    }
    pub fn bdat_chunk(size: usize) -> Reply {
        Reply::new(250, E(2, 0, 0), format!("{size} octets received"))
    }
    pub fn bye(host: &str) -> Reply {
        Reply::new(221, E(2, 0, 0), format!("{host} closing connection"))
    }
    pub fn noop() -> Reply {
        Reply::new(250, E(2, 0, 0), "OK")
    }
    pub fn vrfy() -> Reply {
        Reply::new(
            252,
            E(2, 5, 2),
            "cannot verify the user, but will accept mail for local users",
        )
    }
    pub fn help() -> Reply {
        Reply {
            code: 214,
            enhanced: Some(E(2, 0, 0)),
            lines: vec![
                "commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS AUTH"
                    .into(),
                "see RFC 5321; mailc https://mailc.dev".into(),
            ],
        }
    }
    pub fn start_data() -> Reply {
        Reply::plain(354, "end data with <CR><LF>.<CR><LF>")
    }
    pub fn ready_tls() -> Reply {
        Reply::new(220, E(2, 0, 0), "ready to start TLS")
    }
    pub fn auth_ok() -> Reply {
        Reply::new(235, E(2, 7, 0), "authentication successful")
    }
    pub fn auth_challenge(b64: &str) -> Reply {
        Reply::plain(334, b64.to_string())
    }
    pub fn auth_failed() -> Reply {
        Reply::new(535, E(5, 7, 8), "authentication credentials invalid")
    }
    pub fn auth_locked() -> Reply {
        Reply::new(454, E(4, 7, 0), "too many failed logins, try again later")
    }
    pub fn auth_temp_fail() -> Reply {
        Reply::new(454, E(4, 7, 0), "temporary authentication failure")
    }
    pub fn auth_cancelled() -> Reply {
        Reply::new(501, E(5, 0, 0), "authentication cancelled")
    }
    pub fn auth_bad_encoding() -> Reply {
        Reply::new(501, E(5, 5, 2), "cannot decode the authentication data")
    }
    pub fn auth_mechanism() -> Reply {
        Reply::new(504, E(5, 5, 4), "unrecognized authentication mechanism")
    }
    pub fn auth_already() -> Reply {
        Reply::new(503, E(5, 5, 1), "already authenticated")
    }
    pub fn auth_needs_tls() -> Reply {
        Reply::new(
            538,
            E(5, 7, 11),
            "encryption required for authentication: use STARTTLS",
        )
    }
    pub fn auth_required() -> Reply {
        Reply::new(530, E(5, 7, 0), "authentication required")
    }
    pub fn auth_not_here() -> Reply {
        Reply::new(503, E(5, 5, 1), "authentication is not offered here")
    }
    pub fn tls_not_available() -> Reply {
        Reply::new(454, E(4, 7, 0), "TLS not available")
    }
    pub fn tls_already() -> Reply {
        Reply::new(503, E(5, 5, 1), "TLS already active")
    }
    pub fn must_starttls() -> Reply {
        Reply::new(530, E(5, 7, 0), "must issue a STARTTLS command first")
    }
    pub fn bad_sequence(what: &str) -> Reply {
        Reply::new(503, E(5, 5, 1), what.to_string())
    }
    pub fn unknown_command() -> Reply {
        Reply::new(500, E(5, 5, 2), "command not recognized")
    }
    pub fn not_implemented(cmd: &str) -> Reply {
        Reply::new(502, E(5, 5, 1), format!("{cmd} not implemented"))
    }
    pub fn syntax(what: &str) -> Reply {
        Reply::new(501, E(5, 5, 4), format!("syntax error: {what}"))
    }
    pub fn line_too_long() -> Reply {
        Reply::new(500, E(5, 5, 6), "line too long")
    }
    pub fn bad_sender_syntax() -> Reply {
        Reply::new(501, E(5, 1, 7), "bad sender address syntax")
    }
    pub fn bad_recipient_syntax() -> Reply {
        Reply::new(501, E(5, 1, 3), "bad recipient address syntax")
    }
    pub fn unsupported_param(p: &str) -> Reply {
        Reply::new(555, E(5, 5, 4), format!("unsupported parameter {p}"))
    }
    pub fn size_exceeded_at_mail(max: u64) -> Reply {
        Reply::new(
            552,
            E(5, 3, 4),
            format!("message size exceeds the limit of {max} bytes"),
        )
    }
    pub fn size_exceeded() -> Reply {
        Reply::new(552, E(5, 3, 4), "message too big")
    }
    pub fn too_many_recipients() -> Reply {
        Reply::new(452, E(4, 5, 3), "too many recipients")
    }
    pub fn no_valid_recipients() -> Reply {
        Reply::new(554, E(5, 5, 1), "no valid recipients")
    }
    /// LMTP's DATA without a successful RCPT "MUST fail with a 503"
    /// (RFC 2033 §4.2).
    pub fn no_valid_recipients_lmtp() -> Reply {
        Reply::new(503, E(5, 5, 1), "no valid recipients")
    }
    pub fn unknown_user() -> Reply {
        Reply::new(550, E(5, 1, 1), "no such user here")
    }
    pub fn mailbox_disabled() -> Reply {
        Reply::new(550, E(5, 2, 1), "mailbox disabled, not accepting messages")
    }
    pub fn mailbox_full() -> Reply {
        Reply::new(452, E(4, 2, 2), "mailbox full")
    }
    pub fn relay_denied() -> Reply {
        Reply::new(554, E(5, 7, 1), "relay access denied")
    }
    pub fn sender_not_owned() -> Reply {
        Reply::new(
            553,
            E(5, 7, 1),
            "sender address not owned by the authenticated user",
        )
    }
    pub fn from_not_owned() -> Reply {
        Reply::new(
            550,
            E(5, 7, 1),
            "From: header address not owned by the authenticated user",
        )
    }
    pub fn bare_newline() -> Reply {
        Reply::new(
            550,
            E(5, 6, 11),
            "bare <CR> or <LF> in message data: lines must end with <CR><LF>",
        )
    }
    pub fn smtputf8_needed() -> Reply {
        Reply::new(
            553,
            E(5, 6, 7),
            "non-ASCII address needs the SMTPUTF8 parameter",
        )
    }
    pub fn local_error() -> Reply {
        Reply::new(
            451,
            E(4, 3, 0),
            "local error in processing, try again later",
        )
    }
    pub fn bad_message(what: &str) -> Reply {
        Reply::new(554, E(5, 6, 0), format!("message rejected: {what}"))
    }
    /// DMARC policy of the author's domain is reject (RFC 7489 §6.6.3
    /// suggests 5.7.1).
    pub fn dmarc_rejected(domain: &str) -> Reply {
        Reply::new(
            550,
            E(5, 7, 1),
            format!("rejected by the DMARC policy of {domain}"),
        )
    }
    /// SPF said fail and the policy rejects (RFC 7372 §3.2: 5.7.23).
    pub fn spf_rejected(domain: &str) -> Reply {
        Reply::new(
            550,
            E(5, 7, 23),
            format!("SPF validation failed for {domain}"),
        )
    }
    /// A DKIM signature failed and the policy rejects (RFC 7372 §3.1:
    /// 5.7.20, no passing DKIM signature).
    pub fn dkim_rejected() -> Reply {
        Reply::new(550, E(5, 7, 20), "no passing DKIM signature")
    }
    /// A DNS lookup a check needs failed for now (RFC 3463 X.4.3).
    pub fn auth_dns_error(what: &str) -> Reply {
        Reply::new(
            451,
            E(4, 4, 3),
            format!("{what} could not be checked (DNS), try again later"),
        )
    }
    /// The client's address is on DNS blocklists (Postfix's wording and
    /// code for `reject_rbl_client`; RFC 3463 X.7.1: not authorized).
    pub fn dnsbl_listed(ip: std::net::IpAddr, zones: &str, reason: Option<&str>) -> Reply {
        let mut text = format!("Service unavailable; client [{ip}] blocked using {zones}");
        if let Some(reason) = reason {
            text.push_str("; ");
            text.push_str(reason);
        }
        Reply::new(554, E(5, 7, 1), text)
    }
    /// Greylisted: the first attempt of an unknown (client, sender,
    /// recipient) triplet (RFC 6647 §2.1: a temporary failure; X.7.1 as
    /// RFC 6647 §5 and common practice use).
    pub fn greylisted(retry_in_secs: u64) -> Reply {
        Reply::new(
            451,
            E(4, 7, 1),
            format!("greylisted, please try again in {retry_in_secs} seconds"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_single_and_multi_line() {
        assert_eq!(r::ok().to_bytes(), b"250 2.0.0 OK\r\n");
        let m = Reply::multi(250, vec!["a".into(), "b".into(), "c".into()]);
        assert_eq!(m.to_bytes(), b"250-a\r\n250-b\r\n250 c\r\n");
    }

    #[test]
    fn text_cannot_inject_lines() {
        let evil = Reply::new(250, Enhanced(2, 0, 0), "x\r\n250 injected");
        assert_eq!(evil.to_bytes(), b"250 2.0.0 x250 injected\r\n");
    }
}
