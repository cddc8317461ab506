//! `mailc sendmail`: the sendmail-compatible command (`/usr/sbin/sendmail`
//! for cron, mutt, git send-email, mail(1)).
//!
//! It reads the message on standard input, decides the envelope (`-f`, or
//! `<login>@<hostname>`; the recipients of the arguments, plus those of
//! `To:`/`Cc:`/`Bcc:` with `-t`), completes the header (`Date:`,
//! `Message-ID:`, `From:` when missing; `Bcc:` removed) and hands the
//! message to the running server over its control socket (`submit`), which
//! queues it as submission would. When no server runs, the message is
//! written durably into `<state>/queue/incoming/`, which the server takes at
//! start. Exit codes are those of sysexits.h, as sendmail's.
//!
//! **Who may use it.** The control socket is 0600 and the state directory
//! 0700, both owned by the server's user: root and that user may submit;
//! anybody else gets EX_NOPERM (77) and a message saying so. This is the
//! small, safe choice for now: a submitter can set any envelope sender, so
//! the right to submit is the right to forge locally. Opening it to every
//! local user (their cron jobs) is planned as a second, world-connectable
//! socket where the server reads the caller's uid from the kernel
//! (SO_PEERCRED, OpenSMTPD's `smtpd.sock` model) and enforces
//! `<login>@<hostname>` or `sender-must-own` for that login — rather than a
//! setgid helper and group-writable drop directory (Postfix's `postdrop`).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::proto::smtp::headers;
use crate::runtime::control::{SubmitAnswer, socket_path};
use crate::services::submit::{self, Submission, exit};
use crate::tables::Tables;

/// Where the config is read from without `-C`.
pub const DEFAULT_CONFIG: &str = "/etc/mailc/config.kdl";

/// How long the server may take to answer a submission (it answers once
/// the message is durable).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(120);

/// What the command line asked for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Invocation {
    pub config: Option<PathBuf>,
    /// `-t`: recipients from the header too.
    pub extract: bool,
    /// `-i`/`-oi`: a line with a single dot does not end the message.
    pub ignore_dots: bool,
    /// `-f`/`-r`: the envelope sender (`<>` or empty: the null sender).
    pub sender: Option<String>,
    /// `-F`: the full name for a `From:` the command adds.
    pub full_name: Option<String>,
    pub recipients: Vec<String>,
}

/// A usage error (EX_USAGE).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage(pub String);

/// Flags that take a value and are accepted and ignored (`-N dsn`, `-R
/// ret`, `-V envid`, `-B type`, `-h hops`, `-L tag`, `-X file`).
const IGNORED_WITH_VALUE: &[char] = &['N', 'R', 'V', 'B', 'h', 'L', 'X', 'p'];
/// Flags without value accepted and ignored (`-v` verbose, `-m` me too,
/// `-n` no aliasing, `-U` initial submission, `-G` gateway, `-A…`, `-d…`).
const IGNORED: &[char] = &['v', 'm', 'n', 'U', 'G', 'A', 'd', 'e'];

/// Parses sendmail's command line (without the program name).
pub fn parse(args: &[String]) -> Result<Invocation, Usage> {
    let mut inv = Invocation::default();
    let mut i = 0;
    let mut only_recipients = false;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if only_recipients || !arg.starts_with('-') || arg == "-" {
            push_recipients(&mut inv.recipients, arg);
            continue;
        }
        if arg == "--" {
            only_recipients = true;
            continue;
        }
        if arg.starts_with("--") {
            return Err(Usage(format!("unknown option {arg}")));
        }
        let mut chars = arg[1..].chars();
        let flag = chars.next().unwrap_or('-');
        let rest: String = chars.collect();
        // The value of `-fADDR` or `-f ADDR`.
        let mut value = |name: &str| -> Result<String, Usage> {
            if !rest.is_empty() {
                return Ok(rest.clone());
            }
            let v = args
                .get(i)
                .cloned()
                .ok_or_else(|| Usage(format!("{name} needs a value")))?;
            i += 1;
            Ok(v)
        };
        match flag {
            't' if rest.is_empty() => inv.extract = true,
            'i' if rest.is_empty() => inv.ignore_dots = true,
            'f' | 'r' => inv.sender = Some(value(&format!("-{flag}"))?),
            'F' => inv.full_name = Some(value("-F")?),
            'C' => inv.config = Some(PathBuf::from(value("-C")?)),
            'o' => match rest.as_str() {
                "i" => inv.ignore_dots = true,
                // -oem, -oee, -oeq, -odi, -odb, -om, -oQ…: sendmail's
                // options, meaningless here.
                "" => return Err(Usage("-o needs an option letter".into())),
                _ => {}
            },
            'b' => match rest.as_str() {
                "m" => {}
                other => {
                    return Err(Usage(format!(
                        "mode -b{other} is not supported (only -bm, the default: deliver mail)"
                    )));
                }
            },
            'q' => {
                return Err(Usage(
                    "queue runs (-q) are the server's work: use `mailc queue flush`".into(),
                ));
            }
            c if IGNORED_WITH_VALUE.contains(&c) => {
                value(&format!("-{c}"))?;
            }
            c if IGNORED.contains(&c) => {}
            _ => return Err(Usage(format!("unknown option {arg}"))),
        }
    }
    Ok(inv)
}

/// `a@x, b@y` as one argument is two recipients (sendmail accepts lists).
fn push_recipients(out: &mut Vec<String>, arg: &str) {
    out.extend(
        arg.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string),
    );
}

/// Reads the message: bounded by `limit` (more is `Err`), ended by EOF or,
/// without `-i`, by a line holding a single dot. Lines end in CRLF.
pub fn read_message(input: impl Read, ignore_dots: bool, limit: u64) -> Result<Vec<u8>, String> {
    let mut reader = BufReader::new(input.take(limit.saturating_add(1)));
    let mut out = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| format!("cannot read the message: {e}"))?;
        if n == 0 {
            break;
        }
        let had_newline = line.ends_with(b"\n");
        while matches!(line.last(), Some(b'\n' | b'\r')) {
            line.pop();
        }
        if !ignore_dots && line == b"." && had_newline {
            break;
        }
        out.extend_from_slice(&line);
        out.extend_from_slice(b"\r\n");
        if out.len() as u64 > limit {
            return Err(format!("message too big (more than {limit} bytes)"));
        }
    }
    Ok(out)
}

fn has_field(message: &[u8], name: &str) -> bool {
    headers::count_fields(message, name) > 0
}

/// The addresses of `To:`, `Cc:` and `Bcc:` (for `-t`).
pub fn header_recipients(message: &[u8]) -> Vec<String> {
    let end = headers::header_end(message);
    let Some(parsed) = mail_parser::MessageParser::default().parse_headers(&message[..end]) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for list in [parsed.to(), parsed.cc(), parsed.bcc()]
        .into_iter()
        .flatten()
    {
        for a in list.iter() {
            if let Some(addr) = a.address() {
                out.push(addr.to_string());
            }
        }
    }
    out
}

/// A display name as an RFC 5322 phrase: quoted, or RFC 2047 encoded when
/// not ASCII.
fn phrase(name: &str) -> String {
    let name: String = name.chars().filter(|c| !c.is_control()).take(200).collect();
    if name.is_ascii() {
        let escaped = name.replace('\\', "\\\\").replace('"', "\\\"");
        return format!("\"{escaped}\"");
    }
    let mut out = String::from("=?UTF-8?Q?");
    for b in name.bytes() {
        match b {
            b' ' => out.push('_'),
            b if b.is_ascii_alphanumeric() => out.push(b as char),
            b => out.push_str(&format!("={b:02X}")),
        }
    }
    out.push_str("?=");
    out
}

/// Adds `Date:`, `Message-ID:` and `From:` when missing (RFC 5322 requires
/// Date and From; RFC 6409 §8 lets a submission agent add them) and removes
/// `Bcc:`.
pub fn complete_header(
    message: &[u8],
    sender: &str,
    full_name: Option<&str>,
    hostname: &str,
    now: u64,
    unique: &str,
) -> Vec<u8> {
    let mut added = String::new();
    if !has_field(message, "From") {
        let address = if sender.is_empty() {
            format!("MAILER-DAEMON@{hostname}")
        } else {
            sender.to_string()
        };
        match full_name.filter(|n| !n.trim().is_empty()) {
            Some(name) => added.push_str(&format!("From: {} <{address}>\r\n", phrase(name))),
            None => added.push_str(&format!("From: {address}\r\n")),
        }
    }
    if !has_field(message, "Date") {
        added.push_str(&format!("Date: {}\r\n", headers::rfc5322_date(now)));
    }
    if !has_field(message, "Message-ID") {
        added.push_str(&format!("Message-ID: <{unique}@{hostname}>\r\n"));
    }
    let message = if has_field(message, "Bcc") {
        headers::remove_fields(message, &["Bcc"])
    } else {
        message.to_vec()
    };
    let mut out = Vec::with_capacity(added.len() + message.len() + 2);
    // A message without a header section (it starts with its body, or is
    // empty) gets one: the added fields, then the blank line.
    let headerless =
        message.is_empty() || message.starts_with(b"\r\n") || !looks_like_field(&message);
    out.extend_from_slice(added.as_bytes());
    if headerless && !message.starts_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(&message);
    out
}

/// Does the message start with a header field (`Name:`)?
fn looks_like_field(message: &[u8]) -> bool {
    let line_end = message
        .iter()
        .position(|b| *b == b'\r' || *b == b'\n')
        .unwrap_or(message.len());
    let line = &message[..line_end];
    match line.iter().position(|b| *b == b':') {
        Some(colon) if colon > 0 => line[..colon].iter().all(|b| b.is_ascii_graphic()),
        _ => false,
    }
}

/// The domain a bare user name (`root`) gets: the hostname when it is one
/// of our domains, else the nearest parent that is, else the first one,
/// else the hostname.
fn local_domain(tables: &Tables) -> String {
    let mut candidate = tables.hostname.as_str();
    loop {
        if tables.domains.contains_key(candidate) {
            return candidate.to_string();
        }
        match candidate.split_once('.') {
            Some((_, rest)) if rest.contains('.') => candidate = rest,
            _ => break,
        }
    }
    tables
        .domains
        .keys()
        .next()
        .cloned()
        .unwrap_or_else(|| tables.hostname.clone())
}

/// The login name of the calling user: /etc/passwd by uid, else $LOGNAME
/// or $USER, else `uid<N>`. Also the GECOS full name when there is one.
pub fn login() -> (String, Option<String>) {
    let uid = rustix::process::getuid().as_raw();
    if let Ok(passwd) = std::fs::read_to_string("/etc/passwd") {
        for line in passwd.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() >= 5 && f[2].parse::<u32>().ok() == Some(uid) {
                let gecos = f[4].split(',').next().unwrap_or("").trim();
                let gecos = (!gecos.is_empty()).then(|| gecos.to_string());
                return (f[0].to_string(), gecos);
            }
        }
    }
    let name = std::env::var("LOGNAME")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| format!("uid{uid}"));
    (name, None)
}

fn fail(code: u8, message: &str) -> i32 {
    eprintln!("mailc sendmail: {message}");
    i32::from(code)
}

/// The command: returns the sysexits code.
pub fn run(args: &[String]) -> i32 {
    let inv = match parse(args) {
        Ok(i) => i,
        Err(Usage(m)) => {
            eprintln!(
                "mailc sendmail: {m}\nusage: mailc sendmail [-t] [-i] [-f SENDER] [-F NAME] [-C CONFIG] [RECIPIENT...] < message"
            );
            return i32::from(exit::USAGE);
        }
    };
    let config = inv
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
    let tables = match super::tables_for_command(&config, "sendmail") {
        Ok(t) => t,
        Err(code) => return code,
    };
    let (user, gecos) = login();
    let domain = local_domain(&tables);
    let qualify = |a: &str| -> String {
        let a = a.trim().trim_start_matches('<').trim_end_matches('>');
        if a.contains('@') || a.is_empty() {
            a.to_string()
        } else {
            format!("{a}@{domain}")
        }
    };
    let sender = match &inv.sender {
        Some(s) => qualify(s),
        None => format!("{user}@{}", tables.hostname),
    };
    let limit = tables.submission.max_message_size;
    let message = match read_message(std::io::stdin().lock(), inv.ignore_dots, limit) {
        Ok(m) => m,
        Err(e) => return fail(exit::DATAERR, &e),
    };
    let mut recipients: Vec<String> = inv.recipients.iter().map(|r| qualify(r)).collect();
    if inv.extract {
        recipients.extend(header_recipients(&message).iter().map(|r| qualify(r)));
    }
    let mut seen = std::collections::HashSet::new();
    recipients.retain(|r| seen.insert(r.to_ascii_lowercase()));
    if recipients.is_empty() {
        return fail(
            exit::USAGE,
            "no recipients (give them as arguments, or use -t to read To/Cc/Bcc)",
        );
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let unique = format!("{now}.{}.{}", std::process::id(), crate::queue::new_id());
    let full_name = inv.full_name.clone().or(gecos);
    let message = complete_header(
        &message,
        &sender,
        full_name.as_deref(),
        &tables.hostname,
        now,
        &unique,
    );
    let sub = Submission {
        sender,
        recipients,
        user,
        size: message.len() as u64,
    };
    hand_over(&tables.state_dir, &sub, &message)
}

/// To the running server, else into `incoming/`.
pub(crate) fn hand_over(state: &Path, sub: &Submission, message: &[u8]) -> i32 {
    let socket = socket_path(state);
    match UnixStream::connect(&socket) {
        Ok(stream) => match submit_over(stream, sub, message) {
            Ok(SubmitAnswer::Submitted { .. }) => return 0,
            Ok(SubmitAnswer::Refused { exit, message }) => return fail(exit, &message),
            Ok(other) => {
                return fail(
                    exit::SOFTWARE,
                    &format!("unexpected answer from the server: {other:?}"),
                );
            }
            // The server went away mid-request: the spool is the fallback
            // (at worst the message is queued twice, never lost).
            Err(e) => eprintln!("mailc sendmail: the server did not answer ({e}); spooling"),
        },
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return fail(exit::NOPERM, &not_permitted(&socket));
        }
        Err(_) => {}
    }
    match submit::write_incoming(state, sub, message) {
        Ok(_) => {
            // A server that started meanwhile takes it now; otherwise at its
            // next start.
            if let Ok(stream) = UnixStream::connect(&socket) {
                let _ = ask(stream, b"pickup\n");
            }
            0
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            fail(exit::NOPERM, &not_permitted(&socket))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => fail(
            exit::UNAVAILABLE,
            &format!(
                "no server runs and the state directory {} does not exist: start `mailc serve` once",
                state.display()
            ),
        ),
        Err(e) => fail(
            exit::CANTCREAT,
            &format!(
                "no server runs and {} cannot be written: {e}",
                submit::incoming_dir(state).display()
            ),
        ),
    }
}

fn not_permitted(socket: &Path) -> String {
    format!(
        "permission denied: only root and the mail server's user may submit ({} is mode 0600)",
        socket.display()
    )
}

fn submit_over(
    stream: UnixStream,
    sub: &Submission,
    message: &[u8],
) -> std::io::Result<SubmitAnswer> {
    let mut request = b"submit\n".to_vec();
    request.extend_from_slice(&serde_json::to_vec(sub).map_err(std::io::Error::other)?);
    request.push(b'\n');
    request.extend_from_slice(message);
    ask(stream, &request)
}

fn ask(mut stream: UnixStream, request: &[u8]) -> std::io::Result<SubmitAnswer> {
    stream.set_read_timeout(Some(ANSWER_TIMEOUT))?;
    stream.set_write_timeout(Some(ANSWER_TIMEOUT))?;
    stream.write_all(request)?;
    let mut line = String::new();
    BufReader::new(stream.take(64 * 1024)).read_line(&mut line)?;
    serde_json::from_str(line.trim()).map_err(std::io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn sendmail_flags() {
        let inv = parse(&args(
            "-oi -oem -odi -t -f root@x -F Cron -C /tmp/c.kdl -bm -v a@b c@d,e@f",
        ))
        .unwrap();
        assert!(inv.extract && inv.ignore_dots);
        assert_eq!(inv.sender.as_deref(), Some("root@x"));
        assert_eq!(inv.full_name.as_deref(), Some("Cron"));
        assert_eq!(inv.config, Some(PathBuf::from("/tmp/c.kdl")));
        assert_eq!(inv.recipients, ["a@b", "c@d", "e@f"]);
        let inv = parse(&args("-i -fme@x -FDaemon -N never -- -odd@x")).unwrap();
        assert_eq!(inv.sender.as_deref(), Some("me@x"));
        assert_eq!(inv.full_name.as_deref(), Some("Daemon"));
        assert_eq!(inv.recipients, ["-odd@x"]);
        for bad in ["-Z", "--bogus", "-bs", "-q", "-f", "-o", "-tx"] {
            assert!(parse(&args(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_message_ends_at_eof_or_a_lone_dot() {
        let m = read_message(&b"Subject: x\n\nline\n.\nafter\n"[..], false, 1000).unwrap();
        assert_eq!(m, b"Subject: x\r\n\r\nline\r\n");
        let m = read_message(&b"Subject: x\n\nline\n.\nafter"[..], true, 1000).unwrap();
        assert_eq!(m, b"Subject: x\r\n\r\nline\r\n.\r\nafter\r\n");
        assert!(read_message(&[b'x'; 2000][..], true, 1000).is_err());
    }

    #[test]
    fn header_completion() {
        let m = complete_header(
            b"To: a@b\r\nBcc: hidden@x,\r\n  other@y\r\nSubject: s\r\n\r\nbody\r\n",
            "root@mail.test",
            Some("Cron Daemon"),
            "mail.test",
            0,
            "u1",
        );
        let text = String::from_utf8(m).unwrap();
        assert!(text.starts_with("From: \"Cron Daemon\" <root@mail.test>\r\nDate: Thu, 1 Jan 1970 00:00:00 +0000\r\nMessage-ID: <u1@mail.test>\r\nTo: a@b\r\n"), "{text}");
        assert!(
            !text.contains("hidden") && !text.contains("other@y"),
            "{text}"
        );
        let m = complete_header(b"just a body\r\n", "", None, "h", 0, "u");
        let text = String::from_utf8(m).unwrap();
        assert!(text.contains("From: MAILER-DAEMON@h\r\n"), "{text}");
        assert!(text.contains("\r\n\r\njust a body\r\n"), "{text}");
        let m = complete_header(
            b"From: x@y\r\nDate: now\r\nMessage-ID: <a@b>\r\n\r\n",
            "s@h",
            None,
            "h",
            0,
            "u",
        );
        assert_eq!(m, b"From: x@y\r\nDate: now\r\nMessage-ID: <a@b>\r\n\r\n");
        assert_eq!(phrase("Zoë"), "=?UTF-8?Q?Zo=C3=AB?=");
    }

    #[test]
    fn recipients_from_the_header() {
        let m = b"To: A <a@x>, b@x\r\nCc: c@x\r\nBcc: d@x\r\nSubject: s\r\n\r\n";
        assert_eq!(header_recipients(m), ["a@x", "b@x", "c@x", "d@x"]);
    }
}
