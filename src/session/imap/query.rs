//! SEARCH (with ESEARCH and CONDSTORE's MODSEQ), SORT and THREAD: the
//! commands over [`search`](super::search), which evaluates the keys.

use super::view::{CompactMeta, Mailbox};
use super::{Account, Handled, Output, mime, search};
use crate::proto::imap::encode::{seq_set, string};
use crate::proto::imap::response::{Response, r};
use crate::proto::imap::{SearchKey, SearchReturn, SortKey, ThreadAlgorithm};

/// How SORT or THREAD orders the matches.
pub(super) enum Order {
    /// SORT criteria (reverse, key) and ESORT return options.
    Sort(Vec<(bool, SortKey)>, Option<Vec<SearchReturn>>),
    Thread(ThreadAlgorithm),
}

fn charset_ok(charset: Option<&str>) -> bool {
    charset.is_none_or(|c| {
        let c = c.to_ascii_uppercase();
        c == "UTF-8" || c == "US-ASCII"
    })
}

impl Account {
    /// What SEARCH, SORT and THREAD start with: the charset checked, the
    /// view brought up to date (expunges reported only for UID commands),
    /// the matching view indexes.
    fn search_prologue(
        &mut self,
        mb: &mut Mailbox,
        uid: bool,
        charset: Option<&str>,
        key: &SearchKey,
        now: i64,
    ) -> Result<(Vec<u8>, Vec<usize>), Response> {
        if !charset_ok(charset) {
            return Err(r::bad_charset());
        }
        let mut out = Vec::new();
        self.refresh(mb, &mut out, uid);
        let hits = self.evaluate(mb, key, now);
        Ok((out, hits))
    }

    /// Matching view indexes.
    fn evaluate(&mut self, mb: &Mailbox, key: &SearchKey, now: i64) -> Vec<usize> {
        let cx = search::Context {
            max_seq: mb.msgs.len() as u32,
            max_uid: mb.max_uid(),
            now,
        };
        let content = search::needs_content(key);
        let body = search::needs_body(key);
        let mut hits = Vec::new();
        for (i, vm) in mb.msgs.iter().enumerate() {
            let item = search::Item {
                seq: i as u32 + 1,
                meta: &vm.meta,
                recent: mb.recent.contains(&vm.meta.uid),
            };
            let ok = if content && !body {
                let Ok(header) = self.store.read_header(&mb.name, vm.meta.uid) else {
                    continue;
                };
                let c = search::Content::new(&header);
                search::matches(key, &item, Some(&c), &cx)
            } else if content {
                let Ok(data) = self.store.read(&mb.name, vm.meta.uid) else {
                    continue;
                };
                let data = mime::to_crlf(data);
                let c = search::Content::new(&data);
                search::matches(key, &item, Some(&c), &cx)
            } else {
                search::matches(key, &item, None, &cx)
            };
            if ok {
                hits.push(i);
            }
        }
        hits
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn search(
        &mut self,
        mb: &mut Mailbox,
        tag: &str,
        uid: bool,
        ret: Option<Vec<SearchReturn>>,
        charset: Option<&str>,
        key: &SearchKey,
        now: i64,
    ) -> Handled {
        let (mut out, hits) = self.search_prologue(mb, uid, charset, key, now)?;
        let nums: Vec<u32> = hits
            .iter()
            .map(|&i| {
                if uid {
                    mb.msgs[i].meta.uid
                } else {
                    i as u32 + 1
                }
            })
            .collect();
        let modseq_key = uses_modseq(key);
        let max_modseq = hits.iter().map(|&i| mb.msgs[i].meta.modseq).max();
        match ret {
            None => {
                out.extend_from_slice(b"* SEARCH");
                for n in &nums {
                    out.extend_from_slice(format!(" {n}").as_bytes());
                }
                if modseq_key && let Some(m) = max_modseq {
                    out.extend_from_slice(format!(" (MODSEQ {m})").as_bytes());
                }
                out.extend_from_slice(b"\r\n");
            }
            Some(opts) => {
                let mut sorted = nums;
                sorted.sort_unstable();
                esearch(&mut out, tag, uid, &opts, &sorted, false);
                // MODSEQ goes on the same line.
                out.truncate(out.len() - 2);
                if modseq_key && let Some(m) = max_modseq {
                    out.extend_from_slice(format!(" MODSEQ {m}").as_bytes());
                }
                out.extend_from_slice(b"\r\n");
            }
        }
        if modseq_key {
            self.ext.condstore = true;
        }
        r::completed("SEARCH").write_tagged(&mut out, tag);
        Ok(Output::bytes(out))
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn sort_or_thread(
        &mut self,
        mb: &mut Mailbox,
        tag: &str,
        uid: bool,
        order: Order,
        charset: &str,
        key: &SearchKey,
        now: i64,
    ) -> Handled {
        let (mut out, hits) = self.search_prologue(mb, uid, Some(charset), key, now)?;
        let metas: Vec<(u32, &CompactMeta)> = hits
            .iter()
            .map(|&i| (i as u32 + 1, &mb.msgs[i].meta))
            .collect();
        let mut values = Vec::new();
        for (seq, meta) in metas {
            let Ok(header) = self.store.read_header(&mb.name, meta.uid) else {
                continue;
            };
            let c = search::Content::new(&header);
            values.push(search::SortValues::new(seq, meta, &c));
        }
        let what = match order {
            Order::Sort(criteria, ret) => {
                search::sort(&mut values, &criteria);
                let nums: Vec<u32> = values
                    .iter()
                    .map(|v| if uid { v.uid } else { v.seq })
                    .collect();
                match ret {
                    Some(opts) => esearch(&mut out, tag, uid, &opts, &nums, true),
                    None => {
                        out.extend_from_slice(b"* SORT");
                        for n in nums {
                            out.extend_from_slice(format!(" {n}").as_bytes());
                        }
                        out.extend_from_slice(b"\r\n");
                    }
                }
                "SORT"
            }
            Order::Thread(algorithm) => {
                let text = match algorithm {
                    ThreadAlgorithm::References => search::thread_references(&values, uid),
                    _ => search::thread_ordered_subject(&values, uid),
                };
                out.extend_from_slice(b"* THREAD ");
                out.extend_from_slice(text.as_bytes());
                out.extend_from_slice(b"\r\n");
                "THREAD"
            }
        };
        r::completed(what).write_tagged(&mut out, tag);
        Ok(Output::bytes(out))
    }
}

/// An ESEARCH response (RFC 4731; RFC 5267 for SORT). `nums` are in
/// ascending order for SEARCH, in sort order for SORT (`ordered`): then MIN
/// and MAX are the first and last in that order and ALL keeps the order.
fn esearch(
    out: &mut Vec<u8>,
    tag: &str,
    uid: bool,
    opts: &[SearchReturn],
    nums: &[u32],
    ordered: bool,
) {
    out.extend_from_slice(b"* ESEARCH (TAG ");
    string(out, tag.as_bytes(), false);
    out.push(b')');
    if uid {
        out.extend_from_slice(b" UID");
    }
    let all = [SearchReturn::All];
    let opts = if opts.is_empty() { &all[..] } else { opts };
    for o in opts {
        match o {
            SearchReturn::Min => {
                if let Some(m) = nums.first() {
                    out.extend_from_slice(format!(" MIN {m}").as_bytes());
                }
            }
            SearchReturn::Max => {
                if let Some(m) = nums.last() {
                    out.extend_from_slice(format!(" MAX {m}").as_bytes());
                }
            }
            SearchReturn::Count => {
                out.extend_from_slice(format!(" COUNT {}", nums.len()).as_bytes())
            }
            SearchReturn::All if nums.is_empty() => {}
            SearchReturn::All if ordered => {
                let list: Vec<String> = nums.iter().map(u32::to_string).collect();
                out.extend_from_slice(format!(" ALL {}", list.join(",")).as_bytes());
            }
            SearchReturn::All => {
                out.extend_from_slice(format!(" ALL {}", seq_set(nums)).as_bytes())
            }
        }
    }
    out.extend_from_slice(b"\r\n");
}

fn uses_modseq(key: &SearchKey) -> bool {
    match key {
        SearchKey::ModSeq(_) => true,
        SearchKey::Not(k) => uses_modseq(k),
        SearchKey::Or(a, b) => uses_modseq(a) || uses_modseq(b),
        SearchKey::And(ks) => ks.iter().any(uses_modseq),
        _ => false,
    }
}
