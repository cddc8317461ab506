//! Delivery status notifications: bounces, delay warnings and success
//! reports as RFC 3464 `multipart/report` messages (RFC 6522), with the
//! RFC 6533 `global` types when an address or the original is UTF-8
//! (SMTPUTF8), and the rules of RFC 3461 for who gets one.
//!
//! [`build`] is a pure function of its inputs (`now` included): the same
//! inputs give the same bytes, so the messages are pinned by golden files.
//! The caller queues the result with the null sender `<>` to the original
//! envelope sender, after checking [`is_bounce_allowed`] and
//! [`notify_allows`] for each recipient.
//!
//! What is returned with the report (the third part):
//! - failures: the whole message (`message/rfc822`), unless the client
//!   asked `RET=HDRS` or the message is bigger than [`FULL_RETURN_LIMIT`];
//!   then its header section (`text/rfc822-headers`). Like Postfix, the
//!   default returns the text (a script's or a phone's user often has no
//!   copy of what was lost), but capped (Postfix's `bounce_size_limit` is
//!   50 kB), because a returned 20 MB attachment mostly fills a mailbox;
//! - delays and successes: the header section only, whatever `RET` says
//!   (RFC 3461 §4.3: the full message is for failure reports; the message
//!   is still on its way or has arrived).

use sha2::{Digest, Sha256};

use crate::envelope::{Envelope, Notify, Ret};
use crate::proto::smtp::headers::{header_end, rfc5322_date};

/// Largest original returned in full with a failure report; bigger ones
/// get their header section only.
pub const FULL_RETURN_LIMIT: usize = 256 * 1024;

/// Longest diagnostic text kept from a remote server's reply.
const MAX_DIAGNOSTIC: usize = 2_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DsnKind {
    /// Permanent failure (a bounce).
    Failure,
    /// Still being retried (a delay warning).
    Delay,
    /// Delivered, relayed to a server without DSN, or expanded (`NOTIFY=SUCCESS`).
    Success,
}

/// `Action` of RFC 3464 §2.3.3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Failed,
    Delayed,
    Delivered,
    Relayed,
    Expanded,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Failed => "failed",
            Action::Delayed => "delayed",
            Action::Delivered => "delivered",
            Action::Relayed => "relayed",
            Action::Expanded => "expanded",
        }
    }
}

/// What happened to one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DsnRecipient {
    /// `ORCPT` as the client gave it (without the `rfc822;` type).
    pub original: Option<String>,
    pub final_recipient: String,
    pub action: Action,
    /// Enhanced status code, e.g. `5.1.1` (RFC 3463).
    pub status: String,
    /// The server that answered, e.g. `mx1.example.org`.
    pub remote_mta: Option<String>,
    /// `smtp; 550 5.1.1 <bob@example.org>: no such user`.
    pub diagnostic: Option<String>,
    pub last_attempt: u64,
    /// For delays: when the mail system gives up.
    pub will_retry_until: Option<u64>,
}

/// Never report to the null sender (RFC 5321 §4.5.5, RFC 3464 §2): a
/// report about a report could loop for ever.
pub fn is_bounce_allowed(env: &Envelope) -> bool {
    !env.sender.trim().is_empty() && env.sender.trim() != "<>"
}

/// Whether a recipient's `NOTIFY` asks for this kind of report (RFC 3461
/// §4.1). Without `NOTIFY` (all flags off) failures and delays are reported;
/// `NEVER` silences everything; successes only when asked for.
pub fn notify_allows(notify: &Notify, kind: DsnKind) -> bool {
    if notify.never {
        return false;
    }
    let absent = !notify.success && !notify.failure && !notify.delay;
    match kind {
        DsnKind::Failure => absent || notify.failure,
        DsnKind::Delay => absent || notify.delay,
        DsnKind::Success => notify.success,
    }
}

/// The complete report message (CRLF line ends) for the envelope's sender.
pub fn build(
    kind: DsnKind,
    hostname: &str,
    env: &Envelope,
    rcpts: &[DsnRecipient],
    original: &[u8],
    now: u64,
) -> Vec<u8> {
    let global = needs_global(env, rcpts, original);
    let returned = Returned::choose(kind, env.ret, original);
    let boundary = boundary(env, kind, original, now);
    let report_type = if global {
        "global-delivery-status"
    } else {
        "delivery-status"
    };

    let mut out = String::new();
    report_headers(&mut out, kind, hostname, env, rcpts, now);
    out.push_str(&format!(
        "Content-Type: multipart/report; report-type={report_type};\r\n\tboundary=\"{boundary}\"\r\n"
    ));
    out.push_str("\r\nThis is a delivery status notification in MIME format.\r\n");

    // 1. What happened, in words.
    out.push_str(&format!("\r\n--{boundary}\r\n"));
    notification_part(&mut out, &human_text(kind, hostname, rcpts, returned));

    // 2. The machine-readable report.
    out.push_str(&format!("\r\n--{boundary}\r\n"));
    out.push_str("Content-Description: Delivery report\r\n");
    out.push_str(&format!("Content-Type: message/{report_type}\r\n\r\n"));
    out.push_str(&delivery_status(hostname, env, rcpts, global));

    // 3. The original, or its header section.
    out.push_str(&format!("\r\n--{boundary}\r\n"));
    let mut bytes = out.into_bytes();
    match returned {
        Returned::Full => original_part(&mut bytes, original, global),
        Returned::Headers | Returned::HeadersTooBig => {
            original_headers_part(&mut bytes, kind, original, global)
        }
    }
    bytes.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    bytes
}

/// The RFC 6533 `global` types are needed when an address or the
/// original's header section is UTF-8.
fn needs_global(env: &Envelope, rcpts: &[DsnRecipient], original: &[u8]) -> bool {
    env.smtputf8
        || !env.sender.is_ascii()
        || rcpts.iter().any(|r| {
            !r.final_recipient.is_ascii() || r.original.as_deref().is_some_and(|o| !o.is_ascii())
        })
        || !original[..header_end(original)].is_ascii()
}

/// From the mailer daemon to the envelope sender, marked auto-replied.
fn report_headers(
    out: &mut String,
    kind: DsnKind,
    hostname: &str,
    env: &Envelope,
    rcpts: &[DsnRecipient],
    now: u64,
) {
    let tag = match kind {
        DsnKind::Failure => "failure",
        DsnKind::Delay => "delay",
        DsnKind::Success => "success",
    };
    header(
        out,
        "From",
        &format!("Mail Delivery System <MAILER-DAEMON@{hostname}>"),
    );
    header(out, "To", &format!("<{}>", clean(&env.sender, 400)));
    header(out, "Subject", subject(kind, rcpts));
    header(out, "Date", &rfc5322_date(now));
    header(
        out,
        "Message-ID",
        &format!("<{}.{tag}.{now}@{hostname}>", clean(&env.id, 100)),
    );
    header(out, "Auto-Submitted", "auto-replied");
    header(out, "MIME-Version", "1.0");
}

/// The human-readable part: plain ASCII as it is, UTF-8 quoted-printable.
fn notification_part(out: &mut String, text: &str) {
    out.push_str("Content-Description: Notification\r\n");
    if text.is_ascii() {
        out.push_str("Content-Type: text/plain; charset=us-ascii\r\n\r\n");
        for line in text.lines() {
            out.push_str(line);
            out.push_str("\r\n");
        }
    } else {
        out.push_str("Content-Type: text/plain; charset=utf-8\r\n");
        out.push_str("Content-Transfer-Encoding: quoted-printable\r\n\r\n");
        out.push_str(&quoted_printable(text));
    }
}

/// The whole original message.
fn original_part(bytes: &mut Vec<u8>, original: &[u8], global: bool) {
    let subtype = if global { "global" } else { "rfc822" };
    let cte = if original.is_ascii() { "7bit" } else { "8bit" };
    bytes.extend_from_slice(
        format!(
            "Content-Description: Undelivered message\r\n\
             Content-Type: message/{subtype}\r\n\
             Content-Transfer-Encoding: {cte}\r\n\r\n"
        )
        .as_bytes(),
    );
    bytes.extend_from_slice(original);
    if !original.ends_with(b"\r\n") {
        bytes.extend_from_slice(b"\r\n");
    }
}

/// The original's header section, without the blank line that ends it.
fn original_headers_part(bytes: &mut Vec<u8>, kind: DsnKind, original: &[u8], global: bool) {
    let desc = match kind {
        DsnKind::Failure => "Undelivered message headers",
        DsnKind::Delay => "Headers of the delayed message",
        DsnKind::Success => "Headers of the delivered message",
    };
    let ctype = if global {
        "message/global-headers"
    } else {
        "text/rfc822-headers"
    };
    bytes.extend_from_slice(
        format!("Content-Description: {desc}\r\nContent-Type: {ctype}\r\n\r\n").as_bytes(),
    );
    let headers = &original[..header_end(original)];
    let headers = if headers.ends_with(b"\r\n\r\n") || headers == b"\r\n" {
        &headers[..headers.len() - 2]
    } else {
        headers
    };
    bytes.extend_from_slice(headers);
    if !headers.is_empty() && !headers.ends_with(b"\r\n") {
        bytes.extend_from_slice(b"\r\n");
    }
}

/// What the third part carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Returned {
    Full,
    Headers,
    /// `RET=FULL` (or the failure default) but over [`FULL_RETURN_LIMIT`].
    HeadersTooBig,
}

impl Returned {
    fn choose(kind: DsnKind, ret: Option<Ret>, original: &[u8]) -> Returned {
        match (kind, ret) {
            (DsnKind::Failure, Some(Ret::Full) | None) if original.len() > FULL_RETURN_LIMIT => {
                Returned::HeadersTooBig
            }
            (DsnKind::Failure, Some(Ret::Full) | None) => Returned::Full,
            _ => Returned::Headers,
        }
    }
}

fn header(out: &mut String, name: &str, value: &str) {
    out.push_str(name);
    out.push_str(": ");
    out.push_str(value);
    out.push_str("\r\n");
}

fn subject(kind: DsnKind, rcpts: &[DsnRecipient]) -> &'static str {
    match kind {
        DsnKind::Failure => "Undelivered Mail Returned to Sender",
        DsnKind::Delay => "Delayed Mail (still being retried)",
        DsnKind::Success if rcpts.iter().all(|r| r.action == Action::Relayed) => {
            "Mail Relayed (delivery notification)"
        }
        DsnKind::Success => "Successful Mail Delivery Report",
    }
}

/// A boundary that depends on the inputs only (deterministic output) and
/// cannot occur in the returned original: it holds a hash of it.
fn boundary(env: &Envelope, kind: DsnKind, original: &[u8], now: u64) -> String {
    let mut h = Sha256::new();
    h.update(env.id.as_bytes());
    h.update([kind as u8]);
    h.update(now.to_be_bytes());
    h.update(original);
    let digest = h.finalize();
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("=_mailc_dsn_{hex}")
}

/// Printable characters only, at most `max` of them: text from the
/// envelope or a remote server cannot add lines or control characters.
fn clean(text: &str, max: usize) -> String {
    text.chars().filter(|c| !c.is_control()).take(max).collect()
}

/// For the ASCII `delivery-status` type: non-ASCII becomes `?`.
fn ascii_only(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_ascii() { c } else { '?' })
        .collect()
}

/// xtext (RFC 3461 §4): `+XX` for `+`, `=`, and anything outside `!`..`~`.
fn xtext(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if (33..=126).contains(&b) && b != b'+' && b != b'=' {
            out.push(b as char);
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

/// `rfc822; a@b` or, for a UTF-8 address in a global report, `utf-8; ...`
/// (RFC 6533 §3).
fn address_field(address: &str, global: bool) -> String {
    let address = clean(address, 400);
    if address.is_ascii() {
        format!("rfc822; {address}")
    } else if global {
        format!("utf-8; {address}")
    } else {
        // Not reachable through `build` (a UTF-8 address makes the report
        // global), kept total for safety.
        format!("rfc822; {}", ascii_only(&address))
    }
}

fn delivery_status(hostname: &str, env: &Envelope, rcpts: &[DsnRecipient], global: bool) -> String {
    let text = |s: &str| {
        let s = clean(s, MAX_DIAGNOSTIC);
        if global { s } else { ascii_only(&s) }
    };
    let mut out = String::new();
    out.push_str(&format!("Reporting-MTA: dns; {hostname}\r\n"));
    if let Some(envid) = &env.envid {
        out.push_str(&format!(
            "Original-Envelope-Id: {}\r\n",
            xtext(&clean(envid, 100))
        ));
    }
    out.push_str(&format!(
        "Arrival-Date: {}\r\n",
        rfc5322_date(env.received_at)
    ));
    for r in rcpts {
        out.push_str("\r\n");
        if let Some(o) = &r.original {
            out.push_str(&format!(
                "Original-Recipient: {}\r\n",
                address_field(o, global)
            ));
        }
        out.push_str(&format!(
            "Final-Recipient: {}\r\n",
            address_field(&r.final_recipient, global)
        ));
        out.push_str(&format!("Action: {}\r\n", r.action.as_str()));
        out.push_str(&format!("Status: {}\r\n", status_code(&r.status, r.action)));
        if let Some(mta) = &r.remote_mta {
            out.push_str(&format!("Remote-MTA: dns; {}\r\n", text(mta)));
        }
        if let Some(diag) = &r.diagnostic {
            crate::proto::header::folded_field(&mut out, "Diagnostic-Code", &text(diag));
        }
        out.push_str(&format!(
            "Last-Attempt-Date: {}\r\n",
            rfc5322_date(r.last_attempt)
        ));
        if r.action == Action::Delayed
            && let Some(until) = r.will_retry_until
        {
            out.push_str(&format!("Will-Retry-Until: {}\r\n", rfc5322_date(until)));
        }
    }
    out
}

/// The status as given when it is a well-formed `class.subject.detail`,
/// else the generic code of the action (RFC 3463): a DSN always carries a
/// valid `Status`.
fn status_code(status: &str, action: Action) -> String {
    let parts: Vec<&str> = status.split('.').collect();
    let valid = parts.len() == 3
        && matches!(parts[0], "2" | "4" | "5")
        && parts[1..]
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()));
    if valid {
        return status.to_string();
    }
    match action {
        Action::Failed => "5.0.0",
        Action::Delayed => "4.0.0",
        Action::Delivered | Action::Relayed | Action::Expanded => "2.0.0",
    }
    .to_string()
}

/// The reason in words an end user understands, from the status code.
fn explain(status: &str, action: Action) -> &'static str {
    let code = status_code(status, action);
    let mut parts = code.split('.');
    let class = parts.next().unwrap_or("5");
    let subject_detail = code.split_once('.').map_or("", |(_, rest)| rest);
    match (class, subject_detail) {
        ("2", _) => match action {
            Action::Relayed => {
                "Your message was passed on to a server that does not send delivery \
                 reports; this is the last report you will get for this address."
            }
            Action::Expanded => {
                "Your message was delivered to a list or alias, which passed it on to \
                 its members."
            }
            _ => "Your message was delivered to the recipient's mailbox.",
        },
        (_, "1.1") => "The address does not exist: the recipient's server does not know it.",
        (_, "1.2") => "The domain of the address does not exist or cannot receive mail.",
        (_, "1.10") => "The domain of the address says that it does not accept any mail.",
        (_, "2.2") => "The recipient's mailbox is full.",
        (_, "2.1") => "The recipient's mailbox is disabled and does not accept mail.",
        (_, "3.4") | (_, "2.3") => "The message is too large for the recipient's server.",
        (_, "4.7") => "The message could not be delivered in time: the mail system gave up.",
        (_, "6.7") | (_, "6.9") => {
            "The address or the message uses international (UTF-8) characters, \
             which the recipient's server does not support."
        }
        (_, s) if s.starts_with("4.") => {
            "The recipient's mail server could not be reached, or the connection failed."
        }
        (_, s) if s.starts_with("7.") => {
            "The recipient's server refused the message for security or policy reasons."
        }
        (_, s) if s.starts_with("6.") => {
            "The recipient's server could not accept the format of the message."
        }
        (_, s) if s.starts_with("5.") => "The recipient's server answered in an unexpected way.",
        ("4", _) => "The recipient's server reported a temporary problem.",
        _ => "The recipient's server refused the message.",
    }
}

fn human_text(kind: DsnKind, hostname: &str, rcpts: &[DsnRecipient], returned: Returned) -> String {
    let mut t = format!("This is the mail system at {hostname}.\n\n");
    let intro = match kind {
        DsnKind::Failure => {
            "Your message could not be delivered to the recipients below. The mail \
             system will not try again for them."
        }
        DsnKind::Delay => {
            "Your message has not been delivered yet to the recipients below. This is \
             only a warning: you do not need to send it again, the mail system keeps \
             trying."
        }
        DsnKind::Success => "Your message was handled as shown below, as you asked to be told.",
    };
    wrap(&mut t, intro, "");
    t.push('\n');
    for r in rcpts {
        t.push_str(&format!("<{}>\n", clean(&r.final_recipient, 400)));
        if let Some(o) = &r.original
            && o != &r.final_recipient
        {
            wrap(
                &mut t,
                &format!("(you wrote to <{}>)", clean(o, 400)),
                "    ",
            );
        }
        wrap(&mut t, explain(&r.status, r.action), "    ");
        if let Some(mta) = &r.remote_mta {
            wrap(&mut t, &format!("Server: {}", clean(mta, 255)), "    ");
        }
        if let Some(diag) = &r.diagnostic {
            let said = diag
                .split_once(';')
                .map_or(diag.as_str(), |(_, text)| text)
                .trim();
            wrap(
                &mut t,
                &format!("It said: {}", clean(said, MAX_DIAGNOSTIC)),
                "    ",
            );
        }
        if r.action == Action::Delayed
            && let Some(until) = r.will_retry_until
        {
            wrap(
                &mut t,
                &format!(
                    "The mail system will keep trying until {}; if the message is \
                     still not delivered by then, you will get a final report.",
                    rfc5322_date(until)
                ),
                "    ",
            );
        }
        t.push('\n');
    }
    let tail = match returned {
        Returned::Full => "Your message is attached below.",
        Returned::Headers => "The header section of your message is attached below.",
        Returned::HeadersTooBig => {
            "Your message was too large to be returned in full: only its header \
             section is attached below."
        }
    };
    wrap(&mut t, tail, "");
    t
}

/// Appends `text` wrapped at 72 columns, each line with `indent`.
fn wrap(out: &mut String, text: &str, indent: &str) {
    let mut line = String::from(indent);
    for word in text
        .split_whitespace()
        .flat_map(crate::proto::header::chunks)
    {
        if line.chars().count() + 1 + word.chars().count() > 72 && line.len() > indent.len() {
            out.push_str(&line);
            out.push('\n');
            line = String::from(indent);
        }
        if line.len() > indent.len() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if line.len() > indent.len() {
        out.push_str(&line);
        out.push('\n');
    }
}

/// Quoted-printable (RFC 2045 §6.7) of text with `\n` line ends; output
/// lines end in CRLF and stay within 76 characters.
fn quoted_printable(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let bytes = line.as_bytes();
        let mut len = 0;
        for (i, &b) in bytes.iter().enumerate() {
            let last = i + 1 == bytes.len();
            let literal =
                (b == b' ' || b == b'\t') && !last || ((33..=126).contains(&b) && b != b'=');
            let piece = if literal {
                (b as char).to_string()
            } else {
                format!("={b:02X}")
            };
            if len + piece.len() > 75 {
                out.push_str("=\r\n");
                len = 0;
            }
            out.push_str(&piece);
            len += piece.len();
        }
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_rules() {
        let absent = Notify::default();
        assert!(notify_allows(&absent, DsnKind::Failure));
        assert!(notify_allows(&absent, DsnKind::Delay));
        assert!(!notify_allows(&absent, DsnKind::Success));
        let never = Notify {
            never: true,
            ..Notify::default()
        };
        for k in [DsnKind::Failure, DsnKind::Delay, DsnKind::Success] {
            assert!(!notify_allows(&never, k));
        }
        let success = Notify {
            success: true,
            ..Notify::default()
        };
        assert!(notify_allows(&success, DsnKind::Success));
        assert!(
            !notify_allows(&success, DsnKind::Failure),
            "FAILURE not asked"
        );
        assert!(!notify_allows(&success, DsnKind::Delay));
        let failure = Notify {
            failure: true,
            ..Notify::default()
        };
        assert!(notify_allows(&failure, DsnKind::Failure));
        assert!(!notify_allows(&failure, DsnKind::Delay));
    }

    #[test]
    fn status_codes_are_always_valid() {
        assert_eq!(status_code("5.1.1", Action::Failed), "5.1.1");
        assert_eq!(status_code("4.4.7", Action::Failed), "4.4.7");
        assert_eq!(status_code("5.1", Action::Failed), "5.0.0");
        assert_eq!(status_code("x.y.z", Action::Delayed), "4.0.0");
        assert_eq!(status_code("9.1.1", Action::Delivered), "2.0.0");
        assert_eq!(status_code("5.1234.1", Action::Failed), "5.0.0");
    }

    #[test]
    fn quoted_printable_lines() {
        let qp = quoted_printable("ä = b \nline\n");
        assert_eq!(qp, "=C3=A4 =3D b=20\r\nline\r\n");
        let long = "é".repeat(100);
        for line in quoted_printable(&long).split("\r\n") {
            assert!(line.len() <= 76, "{line}");
        }
    }

    #[test]
    fn xtext_encoding() {
        assert_eq!(xtext("abc+d=e f"), "abc+2Bd+3De+20f");
    }
}
