//! `mailc deliver`: the standalone delivery agent (MDA), for Postfix's
//! `mailbox_command`, fetchmail's `mda` or getmail's external MDA. The
//! message comes on standard input; each recipient is resolved as the
//! server resolves it, the Sieve scripts run as at the server's delivery,
//! and every copy is written into the Maildir with the same durability
//! (data synced, renamed, directory synced) and the same file names. No
//! server needs to run: messages the scripts send (redirects, vacation
//! replies) and copies for remote alias targets are handed to the server
//! as `mailc sendmail` hands its messages (to the running server, else
//! its `incoming/` spool for its next start).
//!
//! Exit codes (sysexits.h), as the calling MTA expects: 0 delivered; 64
//! usage; 65 the message cannot be read; 67 no such recipient; 73 a
//! Maildir cannot be written; 75 try again later (mailbox over quota, a
//! disk error); 77 a Sieve script rejected the message (the reason on
//! standard error, which the MTA puts into its bounce); 78 the config does
//! not compile.

use std::path::PathBuf;
use std::sync::Arc;

use crate::envelope::Destination;
use crate::filter::Action;
use crate::inbound::scan::{self, RcptFate};
use crate::proto::smtp::headers;
use crate::services::filtering::{self, Filters};
use crate::services::submit::{self, Submission, exit};
use crate::store::folder::FolderLocks;
use crate::store::usage::{self, Usage};
use crate::store::{fsutil, maildir};
use crate::tables::Tables;

/// What the command line asked for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Invocation {
    pub config: Option<PathBuf>,
    /// `-f`/`-r`: the envelope sender (empty: the null sender).
    pub sender: Option<String>,
    /// `-d`/`-a`: the recipients.
    pub recipients: Vec<String>,
}

/// Parses `-C CONFIG`, `-f|-r SENDER`, `-d|-a RECIPIENT` (repeatable; an
/// argument without an option is a recipient too, as procmail takes it).
pub fn parse(args: &[String]) -> Result<Invocation, String> {
    let mut inv = Invocation::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| -> Result<String, String> {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match a.as_str() {
            "-C" | "--config" => inv.config = Some(PathBuf::from(value(a)?)),
            "-f" | "-r" | "--from" => inv.sender = Some(value(a)?),
            "-d" | "-a" | "--to" => inv.recipients.push(value(a)?),
            s if s.starts_with("-C") && s.len() > 2 => inv.config = Some(PathBuf::from(&s[2..])),
            s if (s.starts_with("-f") || s.starts_with("-r")) && s.len() > 2 => {
                inv.sender = Some(s[2..].to_string())
            }
            s if (s.starts_with("-d") || s.starts_with("-a")) && s.len() > 2 => {
                inv.recipients.push(s[2..].to_string())
            }
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            s => inv.recipients.push(s.to_string()),
        }
    }
    if inv.recipients.is_empty() {
        return Err("no recipient (-d ADDRESS)".into());
    }
    Ok(inv)
}

fn fail(code: u8, message: &str) -> i32 {
    eprintln!("mailc deliver: {message}");
    i32::from(code)
}

/// The command: returns the sysexits code.
pub fn run(args: &[String]) -> i32 {
    let inv = match parse(args) {
        Ok(i) => i,
        Err(m) => {
            eprintln!(
                "mailc deliver: {m}\nusage: mailc deliver [-C CONFIG] [-f SENDER] -d RECIPIENT [-d RECIPIENT...] < message"
            );
            return i32::from(exit::USAGE);
        }
    };
    let config = inv
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from(super::sendmail::DEFAULT_CONFIG));
    let tables = match super::tables_for_command(&config, "deliver") {
        Ok(t) => t,
        Err(code) => return code,
    };
    let filters = match Filters::load(&tables) {
        Ok(f) => f,
        Err(e) => return fail(exit::CONFIG, &e),
    };
    let limit = tables.inbound.max_message_size;
    // Postfix and fetchmail hand over the message as it is (a "From "
    // line first from some MTAs); no dot-stuffing on a pipe.
    let message = match super::sendmail::read_message(std::io::stdin().lock(), true, limit) {
        Ok(m) => m,
        Err(e) => return fail(exit::DATAERR, &e),
    };
    let message = strip_mbox_from(message);
    let sender = inv
        .sender
        .as_deref()
        .unwrap_or("")
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_string();
    deliver(&tables, &filters, &sender, &inv.recipients, &message)
}

/// A leading mbox `From ` line is not part of the message.
fn strip_mbox_from(message: Vec<u8>) -> Vec<u8> {
    if message.starts_with(b"From ")
        && let Some(end) = message.windows(2).position(|w| w == b"\r\n")
    {
        return message[end + 2..].to_vec();
    }
    message
}

/// Delivers `message` to every recipient; the worst exit code wins (a
/// temporary failure over a permanent one, so the MTA retries). A retry
/// writes the copies that were already written again, as procmail and
/// dovecot-lda do: the command keeps no state between runs.
pub fn deliver(
    tables: &Tables,
    filters: &Filters,
    sender: &str,
    recipients: &[String],
    message: &[u8],
) -> i32 {
    let now = crate::services::unix_now();
    let id = crate::queue::new_id();
    let locks = FolderLocks::new();
    let usage = Arc::new(Usage::new());
    let mut worst = 0u8;
    let mut outgoing: Vec<(String, Vec<String>, Vec<u8>)> = Vec::new();
    let scanned = match content_scan(tables, sender, recipients, message, &id) {
        Ok(s) => s,
        Err((code, why)) => return fail(code, &why),
    };
    let message: &[u8] = scanned.as_ref().map_or(message, |(m, _)| m.as_slice());
    for (index, rcpt) in recipients.iter().enumerate() {
        let rcpt = rcpt.trim().trim_start_matches('<').trim_end_matches('>');
        let junk = match scanned.as_ref().and_then(|(_, f)| f.get(index)) {
            Some(RcptFate::Discard(why)) => {
                eprintln!("mailc deliver: {rcpt}: discarded by the content scan ({why})");
                continue;
            }
            Some(RcptFate::Junk(_)) => true,
            Some(RcptFate::Deliver) | None => false,
        };
        let dests = match submit::route(tables, rcpt) {
            Ok(d) => d,
            Err(r) => {
                eprintln!("mailc deliver: {}", r.message);
                worst = worse(worst, r.exit);
                continue;
            }
        };
        for dest in dests {
            let address = match dest {
                Destination::Mailbox { address } => address,
                Destination::Remote { address } => {
                    // An alias forwarding elsewhere: the server sends it.
                    outgoing.push((sender.to_string(), vec![address], message.to_vec()));
                    continue;
                }
            };
            let Some(m) = tables.mailboxes.get(&address) else {
                continue;
            };
            if let Some(q) = m.quota
                && usage::scan(&m.maildir).saturating_add(message.len() as u64) > q
            {
                eprintln!("mailc deliver: {address}: mailbox full (quota {q} bytes)");
                worst = worse(worst, exit::TEMPFAIL);
                continue;
            }
            let head = format!(
                "{}Delivered-To: {address}\r\n",
                headers::return_path(sender)
            );
            let evaluation = filters.evaluate(tables, m, message, sender, rcpt);
            let mut copies: Vec<(filtering::Target, Vec<u8>)> = Vec::new();
            match &evaluation {
                None => copies.push((
                    filtering::Target {
                        name: if junk { "Junk" } else { "INBOX" }.into(),
                        folder: if junk {
                            crate::services::delivery::junk_folder(&m.maildir)
                        } else {
                            m.maildir.clone()
                        },
                        flags: String::new(),
                        keywords: Vec::new(),
                        message: 0,
                    },
                    message.to_vec(),
                )),
                Some(ev) => {
                    for e in &ev.outcome.errors {
                        eprintln!("mailc deliver: {address}: Sieve: {e} (kept in INBOX)");
                    }
                    let reject = ev.outcome.actions.iter().find_map(|a| match a {
                        Action::Reject { reason, .. } => Some(reason.clone()),
                        _ => None,
                    });
                    if let Some(reason) = reject
                        && !ev.outcome.stores()
                    {
                        eprintln!(
                            "mailc deliver: {address}: rejected by the recipient's filter: {reason}"
                        );
                        worst = worse(worst, exit::NOPERM);
                        continue;
                    }
                    for t in filtering::targets(m, ev, junk, locks.clone(), usage.clone()) {
                        let body = if t.message == 0 {
                            message.to_vec()
                        } else {
                            ev.outcome
                                .messages
                                .get(&t.message)
                                .cloned()
                                .unwrap_or_else(|| message.to_vec())
                        };
                        copies.push((t, body));
                    }
                }
            }
            let mut ok = true;
            for (t, body) in &copies {
                let (folder, flags, keywords, edit) =
                    (&t.folder, &t.flags, &t.keywords, &t.message);
                let size = (head.len() + body.len()) as u64;
                let qid = if *edit == 0 {
                    id.clone()
                } else {
                    format!("{id}e{edit}")
                };
                let name = maildir::file_name(now, &qid, index, &tables.hostname, size);
                let sub = if flags.is_empty() { "new" } else { "cur" };
                let written = if keywords.is_empty() {
                    maildir::deliver(folder, &name, &[head.as_bytes(), body], false, flags)
                        .and_then(|_| fsutil::sync_dir(&folder.join(sub)))
                } else {
                    // Keywords live in the folder's index.
                    let data = [head.as_bytes(), body.as_slice()].concat();
                    crate::store::folder::Folder::new(folder)
                        .deliver_indexed(&locks.get(folder), &name, &data, flags, keywords)
                        .map(|_| ())
                };
                if let Err(e) = written {
                    eprintln!(
                        "mailc deliver: {address}: writing to {}: {e}",
                        folder.display()
                    );
                    worst = worse(
                        worst,
                        if e.kind() == std::io::ErrorKind::PermissionDenied {
                            exit::CANTCREAT
                        } else {
                            exit::TEMPFAIL
                        },
                    );
                    ok = false;
                }
            }
            if !ok {
                continue;
            }
            if let Some(ev) = &evaluation {
                filtering::record_seen(&tables.state_dir, &address, ev);
                for g in filtering::generated(tables, ev, &address, sender, &id, now) {
                    let to: Vec<String> = g
                        .envelope
                        .deliveries
                        .iter()
                        .map(|d| d.destination.address().to_string())
                        .collect();
                    outgoing.push((g.envelope.sender, to, g.message));
                }
            }
        }
    }
    for (from, to, body) in outgoing {
        let sub = Submission {
            sender: from,
            recipients: to,
            user: "mailc-deliver".into(),
            size: body.len() as u64,
        };
        let code = super::sendmail::hand_over(&tables.state_dir, &sub, &body);
        if code != 0 {
            // The local copies are written; what could not be handed over
            // is reported (and makes the MTA retry the whole message).
            worst = worse(worst, u8::try_from(code).unwrap_or(exit::TEMPFAIL));
        }
    }
    i32::from(worst)
}

/// A scanned message (the scanners' fields on top) and each recipient's
/// fate.
type Scanned = (Vec<u8>, Vec<RcptFate>);

/// The content scan (`scan { deliver }`): the message with the scanners'
/// fields on top and each recipient's fate under its domain's policy;
/// `None` when not scanning; the exit code and reason when the message is
/// refused (77, which the MTA turns into a bounce with the reason) or
/// deferred (75).
fn content_scan(
    tables: &Tables,
    sender: &str,
    recipients: &[String],
    message: &[u8],
    id: &str,
) -> Result<Option<Scanned>, (u8, String)> {
    let Some(table) = tables.scan.as_ref().filter(|t| t.deliver) else {
        return Ok(None);
    };
    let rcpts: Vec<String> = recipients
        .iter()
        .map(|r| {
            r.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
        .collect();
    let env = crate::proto::scan::rspamd::Envelope {
        from: sender,
        rcpts: &rcpts,
        ip: None,
        helo: "",
        user: None,
        queue_id: Some(id),
        mta: &tables.hostname,
    };
    let stripped = scan::strip_forged(message);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| (exit::TEMPFAIL, format!("async runtime: {e}")))?;
    let results = rt.block_on(crate::services::scan::scan_message(table, &env, &stripped));
    let verdict = scan::decide(table, &results, &tables.hostname);
    let fates: Vec<scan::Fate> = rcpts
        .iter()
        .map(|r| scan::fate(table, scan::policy_for(tables, table, r), &results))
        .collect();
    let fates = scan::combine(&fates).map_err(|reply| {
        let code = if reply.code >= 500 {
            exit::NOPERM
        } else {
            exit::TEMPFAIL
        };
        (
            code,
            format!("{} (scanners: {})", reply.lines.join(" "), verdict.summary),
        )
    })?;
    Ok(Some((verdict.message(&stripped), fates)))
}

/// The exit code that matters more: temporary failures first (the MTA
/// retries), then permanent ones.
fn worse(a: u8, b: u8) -> u8 {
    let rank = |c: u8| match c {
        0 => 0,
        exit::TEMPFAIL => 3,
        exit::CANTCREAT => 2,
        _ => 1,
    };
    if rank(b) > rank(a) { b } else { a }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn options_as_postfix_fetchmail_and_getmail_give_them() {
        let i = parse(&args(&[
            "-C",
            "/etc/m.kdl",
            "-f",
            "a@b",
            "-d",
            "x@y",
            "-ay@z",
        ]))
        .unwrap();
        assert_eq!(i.config, Some(PathBuf::from("/etc/m.kdl")));
        assert_eq!(i.sender.as_deref(), Some("a@b"));
        assert_eq!(i.recipients, ["x@y", "y@z"]);
        let i = parse(&args(&["-r", "", "bob@example.test"])).unwrap();
        assert_eq!(i.sender.as_deref(), Some(""));
        assert_eq!(i.recipients, ["bob@example.test"]);
        assert!(parse(&args(&["-f", "a@b"])).is_err(), "no recipient");
        assert!(parse(&args(&["-x", "a"])).is_err());
        assert!(parse(&args(&["-d"])).is_err());
    }

    #[test]
    fn temporary_failures_win() {
        assert_eq!(worse(0, exit::NOUSER), exit::NOUSER);
        assert_eq!(worse(exit::NOUSER, exit::TEMPFAIL), exit::TEMPFAIL);
        assert_eq!(worse(exit::TEMPFAIL, exit::NOPERM), exit::TEMPFAIL);
    }

    #[test]
    fn an_mbox_from_line_is_dropped() {
        assert_eq!(
            strip_mbox_from(b"From a@b Mon Jan  1 00:00:00 2026\r\nSubject: x\r\n\r\n".to_vec()),
            b"Subject: x\r\n\r\n"
        );
        assert_eq!(strip_mbox_from(b"From: a@b\r\n".to_vec()), b"From: a@b\r\n");
    }
}
