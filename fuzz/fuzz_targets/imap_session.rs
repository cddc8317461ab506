//! Any bytes from a client through the IMAP session (framer, command
//! parser, every command against an in-memory mail store holding MIME
//! messages, FETCH/SEARCH/SORT/THREAD over them) must never panic or hang,
//! and the output must stay bounded.
//! Run: `RUSTC_BOOTSTRAP=1 cargo fuzz run imap_session` from the repository root.
#![no_main]

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use libfuzzer_sys::fuzz_target;
use mailc::compile::{Options, compile_str};
use mailc::session::AuthOutcome;
use mailc::session::imap::{
    Effect, Env, FlagResult, FolderState, MsgMeta, Recent, Session, Store, StoreError,
};
use mailc::tables::{ListenerKind, Tables};

const MESSAGES: &[&[u8]] = &[
    b"From: A <a@example.com>\r\nTo: b@example.org, g: c@x, d@y;\r\nSubject: =?UTF-8?Q?caf=C3=A9?=\r\nDate: Mon, 30 Nov 2026 07:00:00 +0000\r\nMessage-ID: <1@x>\r\n\r\nbody\r\n",
    b"Subject: Re: nested\r\nReferences: <1@x>\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: in\r\nContent-Type: multipart/alternative; boundary=c\r\n\r\n--c\r\n\r\nx\r\n--c--\r\n--b\r\nContent-Transfer-Encoding: base64\r\n\r\nAAEC\r\n--b--\r\n",
    b"no header at all",
    b"Content-Type: multipart/mixed; boundary=\"\"\r\n\r\n--\r\n--\r\n",
];

#[derive(Default)]
struct Mem {
    folders: BTreeMap<String, (u32, Vec<(MsgMeta, Vec<u8>)>, u64)>,
}

impl Store for Mem {
    fn folders(&mut self) -> Result<Vec<String>, StoreError> {
        Ok(self.folders.keys().cloned().collect())
    }
    fn create(&mut self, name: &str) -> Result<(), StoreError> {
        if self.folders.contains_key(name) {
            return Err(StoreError::Exists);
        }
        self.folders.insert(name.into(), (1, Vec::new(), 1));
        Ok(())
    }
    fn delete(&mut self, name: &str) -> Result<(), StoreError> {
        self.folders.remove(name).map(|_| ()).ok_or(StoreError::NotFound)
    }
    fn rename(&mut self, from: &str, to: &str) -> Result<(), StoreError> {
        let f = self.folders.remove(from).ok_or(StoreError::NotFound)?;
        self.folders.insert(to.into(), f);
        Ok(())
    }
    fn subscriptions(&mut self) -> Vec<String> {
        vec!["INBOX".into()]
    }
    fn subscribe(&mut self, _: &str, _: bool) -> Result<(), StoreError> {
        Ok(())
    }
    fn sync(&mut self, name: &str, _: Recent) -> Result<FolderState, StoreError> {
        let (next, msgs, modseq) = self.folders.get(name).ok_or(StoreError::NotFound)?;
        Ok(FolderState {
            uidvalidity: 7,
            uidnext: *next,
            highestmodseq: *modseq,
            messages: msgs.iter().map(|m| m.0.clone()).collect(),
            recent: Vec::new(),
            keywords: Vec::new(),
        })
    }
    fn read(&mut self, name: &str, uid: u32) -> Result<Vec<u8>, StoreError> {
        let f = self.folders.get(name).ok_or(StoreError::NotFound)?;
        f.1.iter()
            .find(|m| m.0.uid == uid)
            .map(|m| m.1.clone())
            .ok_or(StoreError::NotFound)
    }
    fn set_flags(
        &mut self,
        name: &str,
        updates: &[(u32, Vec<String>)],
        _: Option<u64>,
    ) -> Result<FlagResult, StoreError> {
        let f = self.folders.get_mut(name).ok_or(StoreError::NotFound)?;
        let mut r = FlagResult::default();
        for (uid, flags) in updates {
            if let Some(m) = f.1.iter_mut().find(|m| m.0.uid == *uid) {
                f.2 += 1;
                m.0.flags = flags.clone();
                m.0.modseq = f.2;
                r.changed.push(m.0.clone());
            }
        }
        Ok(r)
    }
    fn expunge(&mut self, name: &str, uids: &[u32]) -> Result<Vec<u32>, StoreError> {
        let f = self.folders.get_mut(name).ok_or(StoreError::NotFound)?;
        f.1.retain(|m| !uids.contains(&m.0.uid));
        f.2 += 1;
        Ok(uids.to_vec())
    }
    fn append(
        &mut self,
        name: &str,
        data: &[u8],
        flags: &[String],
        date: Option<i64>,
    ) -> Result<(u32, u32), StoreError> {
        let f = self.folders.get_mut(name).ok_or(StoreError::NotFound)?;
        if f.1.len() >= 50 {
            return Err(StoreError::OverQuota);
        }
        let uid = f.0;
        f.0 += 1;
        f.2 += 1;
        f.1.push((
            MsgMeta {
                uid,
                flags: flags.to_vec(),
                modseq: f.2,
                size: data.len() as u64,
                internal_date: date.unwrap_or(1_796_000_000),
            },
            data.to_vec(),
        ));
        Ok((7, uid))
    }
    fn copy(
        &mut self,
        from: &str,
        uids: &[u32],
        to: &str,
    ) -> Result<(u32, Vec<(u32, u32)>), StoreError> {
        let mut pairs = Vec::new();
        for uid in uids {
            let data = self.read(from, *uid)?;
            let (_, new) = self.append(to, &data, &[], None)?;
            pairs.push((*uid, new));
        }
        Ok((7, pairs))
    }
    fn vanished_since(&mut self, _: &str, _: u64) -> Result<Vec<u32>, StoreError> {
        Ok(vec![1, 2])
    }
    fn quota(&mut self) -> (u64, Option<u64>) {
        (100, Some(10_000))
    }
}

struct MemEnv;

impl Env for MemEnv {
    fn open(&self, _: &str) -> Result<Box<dyn Store>, String> {
        let mut m = Mem::default();
        for f in ["INBOX", "Sent", "a/b"] {
            m.create(f).map_err(|e| format!("{e:?}"))?;
        }
        for (i, data) in MESSAGES.iter().enumerate() {
            let flags = if i % 2 == 0 { vec!["\\Seen".to_string()] } else { Vec::new() };
            m.append("INBOX", data, &flags, None).map_err(|e| format!("{e:?}"))?;
        }
        Ok(Box::new(m))
    }
}

static TABLES: LazyLock<Arc<Tables>> = LazyLock::new(|| {
    let text = "hostname \"mail.example.test\"\nstate \"/nonexistent-mailc-fuzz\"\ntls self-signed=#true\nlisten \"imap\" \"127.0.0.1:143\" insecure-plaintext-auth=#true\ninbound {\n max-message-size \"64KiB\"\n}\ndomain \"example.test\" {\n dkim selector=\"s\"\n dmarc policy=\"none\"\n mailbox \"alice\" {\n alias \"postmaster\"\n }\n}\n";
    let out = compile_str("fuzz.kdl", std::path::Path::new("/nonexistent-mailc-fuzz"), text, Options { offline: true });
    Arc::new(out.compiled.expect("fuzz config compiles").tables)
});

fuzz_target!(|data: &[u8]| {
    let tables = TABLES.clone();
    let local = "127.0.0.1:143".parse().expect("addr");
    let listener = *tables.listener(ListenerKind::Imap, local).expect("listener");
    let mut s = Session::new(tables, listener, false, MemEnv);
    s.set_clock(|| 1_796_212_800);
    // Logged in first, so every command is reachable.
    let mut input = b"a LOGIN alice@example.test x\r\n".to_vec();
    let mut out = s.process(&mut input);
    if let Some(Effect::Authenticate { .. }) = out.effect.take() {
        s.auth_result(AuthOutcome::Ok("alice@example.test".into()));
    }
    input.extend_from_slice(data);
    let mut total = 0usize;
    for _ in 0..10_000 {
        let mut out = s.process(&mut input);
        total += out.bytes.len();
        assert!(total < 64 * 1024 * 1024, "output grows without bound");
        match out.effect.take() {
            Some(Effect::StartTls) => {
                s.tls_established();
            }
            Some(Effect::Authenticate { .. }) => {
                s.auth_result(AuthOutcome::Failed);
            }
            None if out.close || (!s.has_pending() && !input.contains(&b'\n')) => break,
            None if !s.has_pending() && s.wants_input() => {
                // Input left that does not make a command yet.
                let before = input.len();
                let again = s.process(&mut input);
                if input.len() == before && again.bytes.is_empty() {
                    break;
                }
            }
            None => {}
        }
        if s.is_closed() {
            break;
        }
    }
    let _ = s.poll();
});
