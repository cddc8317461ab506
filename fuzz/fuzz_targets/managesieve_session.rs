//! Any bytes from a client through the ManageSieve session (framer,
//! SASL exchanges, every script command against an in-memory store, the
//! Sieve compiler on uploaded scripts) must never panic or hang, and the
//! output must stay bounded. The input is cut into chunks at the bytes
//! 0xFE, as reads from a socket would be.
//! Run: `RUSTC_BOOTSTRAP=1 cargo fuzz run managesieve_session` from the repository root.
#![no_main]

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock, Mutex};

use libfuzzer_sys::fuzz_target;
use mailc::compile::{Options, compile_str};
use mailc::proto::managesieve::Framer;
use mailc::session::AuthOutcome;
use mailc::session::managesieve::{Env, ScriptStorage, Session};
use mailc::session::protocol::Effect;
use mailc::tables::Tables;

#[derive(Clone, Default)]
struct Mem(Arc<Mutex<(BTreeMap<String, Vec<u8>>, Option<String>)>>);

impl ScriptStorage for Mem {
    fn list(&self) -> std::io::Result<Vec<(String, bool)>> {
        let m = self.0.lock().unwrap();
        Ok(m.0
            .keys()
            .map(|n| (n.clone(), m.1.as_ref() == Some(n)))
            .collect())
    }
    fn get(&self, name: &str) -> std::io::Result<Option<Vec<u8>>> {
        Ok(self.0.lock().unwrap().0.get(name).cloned())
    }
    fn put(&self, name: &str, text: &[u8]) -> std::io::Result<()> {
        self.0.lock().unwrap().0.insert(name.into(), text.to_vec());
        Ok(())
    }
    fn delete(&self, name: &str) -> std::io::Result<bool> {
        let mut m = self.0.lock().unwrap();
        if m.1.as_deref() == Some(name) {
            return Err(std::io::ErrorKind::ResourceBusy.into());
        }
        Ok(m.0.remove(name).is_some())
    }
    fn rename(&self, from: &str, to: &str) -> std::io::Result<bool> {
        let mut m = self.0.lock().unwrap();
        if m.0.contains_key(to) {
            return Err(std::io::ErrorKind::AlreadyExists.into());
        }
        Ok(match m.0.remove(from) {
            Some(t) => {
                m.0.insert(to.into(), t);
                true
            }
            None => false,
        })
    }
    fn set_active(&self, name: Option<&str>) -> std::io::Result<bool> {
        let mut m = self.0.lock().unwrap();
        if let Some(n) = name
            && !m.0.contains_key(n)
        {
            return Ok(false);
        }
        m.1 = name.map(str::to_string);
        Ok(true)
    }
}

impl Env for Mem {
    fn open(&self, _: &str) -> Box<dyn ScriptStorage> {
        Box::new(self.clone())
    }
}

static TABLES: LazyLock<Arc<Tables>> = LazyLock::new(|| {
    let text = "hostname \"mail.example.test\"\nstate \"/nonexistent\"\ntls self-signed=#true\nlisten \"managesieve\" \"127.0.0.1:4190\" insecure-plaintext-auth=#true\nmanagesieve max-scripts=4\nsieve {\n max-script-size \"4KiB\"\n}\ndomain \"example.test\" {\n dkim selector=\"s\"\n dmarc policy=\"none\"\n mailbox \"alice\" {\n alias \"postmaster\"\n }\n}\n";
    let out = compile_str(
        "f.kdl",
        std::path::Path::new("/nonexistent"),
        text,
        Options { offline: true },
    );
    Arc::new(out.compiled.expect("fuzz config compiles").tables)
});

fuzz_target!(|data: &[u8]| {
    let tables = TABLES.clone();
    let listener = tables.listeners[0];
    let mut s = Session::new(tables, listener, false, Mem::default());
    let mut framer = Framer::new(8 * 1024);
    let mut input = Vec::new();
    let mut total_out = s.greeting().len();
    for chunk in data.split(|&b| b == 0xFE) {
        input.extend_from_slice(chunk);
        loop {
            let step = s.process(&mut input, &mut framer);
            total_out += step.bytes.len();
            let again = match step.effect {
                // Every login succeeds, so the script commands run.
                Some(Effect::Authenticate(_)) => {
                    total_out += s
                        .auth_result(AuthOutcome::Ok("alice@example.test".into()))
                        .bytes
                        .len();
                    true
                }
                Some(Effect::StartTls) => {
                    input.clear();
                    total_out += s.tls_established().bytes.len();
                    true
                }
                Some(Effect::Other(never)) => match never {},
                None => false,
            };
            if step.close || s.is_closed() {
                return;
            }
            if !again {
                break;
            }
        }
        // Input kept is bounded: one command's runs of at most 8 KiB
        // between its literals (at most 9 runs), and 8 KiB of literals.
        assert!(input.len() <= 10 * 8 * 1024 + 64, "{}", input.len());
    }
    // The output is bounded by the input: the largest answer to the
    // shortest command is a 4 KiB script read back by a 15-byte GETSCRIPT.
    assert!(total_out <= 64 * 1024 + data.len() * 512, "{total_out}");
});
