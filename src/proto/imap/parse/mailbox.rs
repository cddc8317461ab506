//! Mailbox commands: LIST (extended), SELECT parameters, STATUS items,
//! APPEND (MULTIAPPEND).

use super::*;

impl P<'_> {
    pub(super) fn status_items(&mut self) -> R<Vec<StatusItem>> {
        self.paren_list(|p| {
            let k = p.keyword()?;
            Ok(match k.as_str() {
                "MESSAGES" => StatusItem::Messages,
                "RECENT" => StatusItem::Recent,
                "UIDNEXT" => StatusItem::UidNext,
                "UIDVALIDITY" => StatusItem::UidValidity,
                "UNSEEN" => StatusItem::Unseen,
                "DELETED" => StatusItem::Deleted,
                "SIZE" => StatusItem::Size,
                "HIGHESTMODSEQ" => StatusItem::HighestModSeq,
                _ => return Err(format!("unknown status item {k}")),
            })
        })
    }

    pub(super) fn select_params(&mut self) -> R<(bool, Option<QresyncParams>)> {
        let mut condstore = false;
        let mut qresync = None;
        if !self.eat(b' ') {
            return Ok((condstore, qresync));
        }
        self.expect(b'(')?;
        loop {
            let k = self.keyword()?;
            match k.as_str() {
                "CONDSTORE" => condstore = true,
                "QRESYNC" => {
                    self.sp()?;
                    self.expect(b'(')?;
                    let uidvalidity = self.nz_number()?;
                    self.sp()?;
                    let modseq = self.number64()?;
                    let mut known_uids = None;
                    let mut seq_match = None;
                    if self.eat(b' ') {
                        if self.peek() != Some(b'(') {
                            known_uids = Some(self.seq_set()?);
                            self.eat(b' ');
                        }
                        if self.eat(b'(') {
                            let seqs = self.seq_set()?;
                            self.sp()?;
                            let uids = self.seq_set()?;
                            self.expect(b')')?;
                            seq_match = Some((seqs, uids));
                        }
                    }
                    self.expect(b')')?;
                    qresync = Some(QresyncParams {
                        uidvalidity,
                        modseq,
                        known_uids,
                        seq_match,
                    });
                }
                _ => return Err(format!("unknown select parameter {k}")),
            }
            if self.eat(b')') {
                break;
            }
            self.sp()?;
        }
        Ok((condstore, qresync))
    }

    pub(super) fn list(&mut self) -> R<Body> {
        let mut options = ListOptions::default();
        if self.peek() == Some(b'(') {
            options.extended = true;
            for w in self.paren_list(|p| p.keyword())? {
                match w.as_str() {
                    "SUBSCRIBED" => options.subscribed = true,
                    "REMOTE" => options.remote = true,
                    "RECURSIVEMATCH" => options.recursive = true,
                    "SPECIAL-USE" => options.special_use = true,
                    _ => return Err(format!("unknown list selection option {w}")),
                }
            }
            if options.recursive && !options.subscribed && !options.special_use {
                return Err("RECURSIVEMATCH needs another selection option".into());
            }
            self.sp()?;
        }
        let reference = self.mailbox_raw()?;
        self.sp()?;
        let patterns = if self.peek() == Some(b'(') {
            options.extended = true;
            self.paren_list(|p| p.list_mailbox())?
        } else {
            vec![self.list_mailbox()?]
        };
        if self.eat(b' ') {
            if !self.peek_word_ci(b"RETURN") {
                return Err("expected RETURN".into());
            }
            options.extended = true;
            self.i += 6;
            self.sp()?;
            self.expect(b'(')?;
            if !self.eat(b')') {
                loop {
                    let w = self.keyword()?;
                    match w.as_str() {
                        "SUBSCRIBED" => options.ret_subscribed = true,
                        "CHILDREN" => options.ret_children = true,
                        "SPECIAL-USE" => options.ret_special_use = true,
                        "STATUS" => {
                            self.sp()?;
                            options.ret_status = Some(self.status_items()?);
                        }
                        _ => return Err(format!("unknown list return option {w}")),
                    }
                    if self.eat(b')') {
                        break;
                    }
                    self.sp()?;
                }
            }
        }
        Ok(Body::List {
            reference,
            patterns,
            options,
        })
    }

    pub(super) fn mailbox_raw(&mut self) -> R<String> {
        String::from_utf8(self.astring()?).map_err(|_| "mailbox name is not UTF-8".into())
    }

    pub(super) fn append(&mut self) -> R<Body> {
        let mailbox = self.mailbox()?;
        let mut messages = Vec::new();
        while self.eat(b' ') {
            let mut flags = Vec::new();
            let mut date = None;
            if self.peek() == Some(b'(') {
                flags = self.flag_list()?;
                self.sp()?;
            }
            if self.peek() == Some(b'"') {
                let raw = self.quoted()?;
                let s = String::from_utf8_lossy(&raw);
                let t = parse_date_time(&s).ok_or_else(|| format!("invalid date-time: {s}"))?;
                // A day the month does not have (31-Feb) is well-formed
                // (RFC 3501 §9 date-day-fixed): the message is kept with
                // its arrival time, as if no date were given (§6.3.11
                // sets the date only SHOULD), as Dovecot does, rather than
                // a date rolled over into the next month.
                date = day_exists(&s).then_some(t);
                self.sp()?;
            }
            let data = if self.peek_word_ci(b"UTF8") {
                self.i += 4;
                self.sp()?;
                self.expect(b'(')?;
                let d = self.literal(true)?;
                self.expect(b')')?;
                d
            } else {
                self.literal(true)?
            };
            messages.push(AppendMessage { flags, date, data });
        }
        if messages.is_empty() {
            return Err("APPEND needs a message".into());
        }
        Ok(Body::Append { mailbox, messages })
    }
}
