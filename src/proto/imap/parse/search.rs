//! SEARCH, SORT and THREAD: search keys, RETURN options, sort criteria.

use super::*;

impl P<'_> {
    pub(super) fn search_return(&mut self) -> R<Option<Vec<SearchReturn>>> {
        if !self.peek_word_ci(b"RETURN") {
            return Ok(None);
        }
        self.i += 6;
        self.sp()?;
        let opts = self.paren_list(|p| {
            let k = p.keyword()?;
            Ok(match k.as_str() {
                "MIN" => SearchReturn::Min,
                "MAX" => SearchReturn::Max,
                "ALL" => SearchReturn::All,
                "COUNT" => SearchReturn::Count,
                _ => return Err(format!("unsupported search return option {k}")),
            })
        })?;
        self.sp()?;
        Ok(Some(opts))
    }

    /// Search keys up to the end of the command (an implicit AND).
    pub(super) fn search_program(&mut self) -> R<SearchKey> {
        let mut keys = vec![self.search_key(0)?];
        while self.eat(b' ') {
            keys.push(self.search_key(0)?);
        }
        Ok(if keys.len() == 1 {
            keys.remove(0)
        } else {
            SearchKey::And(keys)
        })
    }

    pub(super) fn search_key(&mut self, depth: usize) -> R<SearchKey> {
        if depth > MAX_DEPTH {
            return Err("search keys nested too deeply".into());
        }
        match self.peek() {
            Some(b'(') => {
                self.i += 1;
                let mut keys = vec![self.search_key(depth + 1)?];
                while self.eat(b' ') {
                    keys.push(self.search_key(depth + 1)?);
                }
                self.expect(b')')?;
                return Ok(if keys.len() == 1 {
                    keys.remove(0)
                } else {
                    SearchKey::And(keys)
                });
            }
            Some(b'0'..=b'9' | b'*') => return Ok(SearchKey::Seq(self.seq_set()?)),
            _ => {}
        }
        let k = self.keyword()?;
        match flag_key(&k) {
            Some(key) => Ok(key),
            None => self.key_with_arguments(&k, depth),
        }
    }

    /// A search key that takes arguments, after its name.
    fn key_with_arguments(&mut self, k: &str, depth: usize) -> R<SearchKey> {
        let text = |p: &mut Self| -> R<String> {
            p.sp()?;
            Ok(String::from_utf8_lossy(&p.astring()?).into_owned())
        };
        let date = |p: &mut Self| -> R<i64> {
            p.sp()?;
            p.date()
        };
        let number = |p: &mut Self| -> R<u64> {
            p.sp()?;
            p.number64()
        };
        Ok(match k {
            "BCC" => SearchKey::Bcc(text(self)?),
            "BEFORE" => SearchKey::Before(date(self)?),
            "BODY" => SearchKey::Body(text(self)?),
            "CC" => SearchKey::Cc(text(self)?),
            "FROM" => SearchKey::From(text(self)?),
            "HEADER" => {
                let f = text(self)?;
                let v = text(self)?;
                SearchKey::Header(f, v)
            }
            "KEYWORD" => {
                self.sp()?;
                SearchKey::Keyword(self.flag()?)
            }
            "LARGER" => SearchKey::Larger(number(self)?),
            "NOT" => {
                self.sp()?;
                SearchKey::Not(Box::new(self.search_key(depth + 1)?))
            }
            "ON" => SearchKey::On(date(self)?),
            "OR" => {
                self.sp()?;
                let a = self.search_key(depth + 1)?;
                self.sp()?;
                let b = self.search_key(depth + 1)?;
                SearchKey::Or(Box::new(a), Box::new(b))
            }
            "SENTBEFORE" => SearchKey::SentBefore(date(self)?),
            "SENTON" => SearchKey::SentOn(date(self)?),
            "SENTSINCE" => SearchKey::SentSince(date(self)?),
            "SINCE" => SearchKey::Since(date(self)?),
            "SMALLER" => SearchKey::Smaller(number(self)?),
            "SUBJECT" => SearchKey::Subject(text(self)?),
            "TEXT" => SearchKey::Text(text(self)?),
            "TO" => SearchKey::To(text(self)?),
            "UID" => {
                self.sp()?;
                SearchKey::Uid(self.seq_set()?)
            }
            "UNKEYWORD" => {
                self.sp()?;
                SearchKey::Unkeyword(self.flag()?)
            }
            "MODSEQ" => {
                // RFC 7162 §3.1.5: an optional entry name and type before
                // the value; every entry shares the message's MODSEQ here.
                self.sp()?;
                if self.peek() == Some(b'"') {
                    self.quoted()?;
                    self.sp()?;
                    self.keyword()?;
                    self.sp()?;
                }
                SearchKey::ModSeq(self.number64()?)
            }
            "YOUNGER" => SearchKey::Younger(number(self)?),
            "OLDER" => SearchKey::Older(number(self)?),
            _ => return Err(format!("unknown search key {k}")),
        })
    }

    pub(super) fn sort_criteria(&mut self) -> R<Vec<(bool, SortKey)>> {
        let mut reverse = false;
        let mut out = Vec::new();
        let words = self.paren_list(|p| p.keyword())?;
        for w in words {
            let key = match w.as_str() {
                "REVERSE" => {
                    reverse = true;
                    continue;
                }
                "ARRIVAL" => SortKey::Arrival,
                "CC" => SortKey::Cc,
                "DATE" => SortKey::Date,
                "FROM" => SortKey::From,
                "SIZE" => SortKey::Size,
                "SUBJECT" => SortKey::Subject,
                "TO" => SortKey::To,
                "DISPLAYFROM" => SortKey::DisplayFrom,
                "DISPLAYTO" => SortKey::DisplayTo,
                _ => return Err(format!("unknown sort criterion {w}")),
            };
            out.push((reverse, key));
            reverse = false;
        }
        if out.is_empty() || reverse {
            return Err("incomplete sort criteria".into());
        }
        Ok(out)
    }

    pub(super) fn search(&mut self, uid: bool) -> R<Body> {
        let ret = self.search_return()?;
        let mut charset = None;
        if self.peek_word_ci(b"CHARSET") {
            self.i += 7;
            self.sp()?;
            charset = Some(self.astring_text()?.to_ascii_uppercase());
            self.sp()?;
        }
        let key = self.search_program()?;
        Ok(Body::Search {
            uid,
            ret,
            charset,
            key,
        })
    }

    pub(super) fn sort(&mut self, uid: bool) -> R<Body> {
        let ret = self.search_return()?;
        let criteria = self.sort_criteria()?;
        self.sp()?;
        let charset = self.astring_text()?.to_ascii_uppercase();
        self.sp()?;
        let key = self.search_program()?;
        Ok(Body::Sort {
            uid,
            ret,
            criteria,
            charset,
            key,
        })
    }

    pub(super) fn thread(&mut self, uid: bool) -> R<Body> {
        let alg = self.keyword()?;
        let algorithm = match alg.as_str() {
            "ORDEREDSUBJECT" => ThreadAlgorithm::OrderedSubject,
            "REFERENCES" => ThreadAlgorithm::References,
            _ => return Err(format!("unknown thread algorithm {alg}")),
        };
        self.sp()?;
        let charset = self.astring_text()?.to_ascii_uppercase();
        self.sp()?;
        let key = self.search_program()?;
        Ok(Body::Thread {
            uid,
            algorithm,
            charset,
            key,
        })
    }
}

/// A search key without arguments (flags, RFC 3501 §6.4.4).
fn flag_key(k: &str) -> Option<SearchKey> {
    Some(match k {
        "ALL" => SearchKey::All,
        "ANSWERED" => SearchKey::Answered,
        "DELETED" => SearchKey::Deleted,
        "DRAFT" => SearchKey::Draft,
        "FLAGGED" => SearchKey::Flagged,
        "NEW" => SearchKey::New,
        "OLD" => SearchKey::Old,
        "RECENT" => SearchKey::Recent,
        "SEEN" => SearchKey::Seen,
        "UNANSWERED" => SearchKey::Unanswered,
        "UNDELETED" => SearchKey::Undeleted,
        "UNDRAFT" => SearchKey::Undraft,
        "UNFLAGGED" => SearchKey::Unflagged,
        "UNSEEN" => SearchKey::Unseen,
        _ => return None,
    })
}
