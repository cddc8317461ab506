//! The session with an in-memory script store: capabilities before and
//! after STARTTLS, the SASL exchanges, every script command with its
//! response codes, quotas, and hostile input (bounded, answered, no
//! panic).

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock, Mutex};

use super::*;
use crate::compile::{Options, compile_str};
use crate::proto::sasl::base64_encode;

fn tables(listen: &str, extra: &str) -> Arc<Tables> {
    let text = format!(
        "hostname \"mail.example.test\"\nstate \"/nonexistent-mailc-test\"\ntls self-signed=#true\n{listen}\n{extra}\ndomain \"example.test\" {{\n dkim selector=\"s\"\n dmarc policy=\"none\"\n mailbox \"alice\" {{\n alias \"postmaster\"\n }}\n}}\n"
    );
    let out = compile_str(
        "t.kdl",
        std::path::Path::new("/nonexistent-mailc-test"),
        &text,
        Options { offline: true },
    );
    Arc::new(out.compiled.expect("test config compiles").tables)
}

static PLAIN: LazyLock<Arc<Tables>> = LazyLock::new(|| {
    tables(
        "listen \"managesieve\" \"127.0.0.1:4190\" insecure-plaintext-auth=#true",
        "managesieve max-scripts=2\nsieve {\n max-script-size \"1KiB\"\n max-redirects 2\n}",
    )
});
static STARTTLS: LazyLock<Arc<Tables>> =
    LazyLock::new(|| tables("listen \"managesieve\" \"127.0.0.1:4190\"", ""));

/// Scripts in memory: name → text, and the active name.
#[derive(Default)]
struct Memory {
    scripts: BTreeMap<String, Vec<u8>>,
    active: Option<String>,
}

#[derive(Clone, Default)]
struct Fake(Arc<Mutex<Memory>>);

impl ScriptStorage for Fake {
    fn list(&self) -> std::io::Result<Vec<(String, bool)>> {
        let m = self.0.lock().unwrap();
        Ok(m.scripts
            .keys()
            .map(|n| (n.clone(), m.active.as_ref() == Some(n)))
            .collect())
    }
    fn get(&self, name: &str) -> std::io::Result<Option<Vec<u8>>> {
        Ok(self.0.lock().unwrap().scripts.get(name).cloned())
    }
    fn put(&self, name: &str, text: &[u8]) -> std::io::Result<()> {
        if name.starts_with('.') {
            return Err(ErrorKind::InvalidInput.into());
        }
        self.0
            .lock()
            .unwrap()
            .scripts
            .insert(name.into(), text.to_vec());
        Ok(())
    }
    fn delete(&self, name: &str) -> std::io::Result<bool> {
        let mut m = self.0.lock().unwrap();
        if m.active.as_deref() == Some(name) {
            return Err(ErrorKind::ResourceBusy.into());
        }
        Ok(m.scripts.remove(name).is_some())
    }
    fn rename(&self, from: &str, to: &str) -> std::io::Result<bool> {
        let mut m = self.0.lock().unwrap();
        if !m.scripts.contains_key(from) {
            return Ok(false);
        }
        if m.scripts.contains_key(to) {
            return Err(ErrorKind::AlreadyExists.into());
        }
        let text = m.scripts.remove(from).unwrap();
        m.scripts.insert(to.into(), text);
        if m.active.as_deref() == Some(from) {
            m.active = Some(to.into());
        }
        Ok(true)
    }
    fn set_active(&self, name: Option<&str>) -> std::io::Result<bool> {
        let mut m = self.0.lock().unwrap();
        match name {
            Some(n) if !m.scripts.contains_key(n) => Ok(false),
            n => {
                m.active = n.map(str::to_string);
                Ok(true)
            }
        }
    }
}

impl Env for Fake {
    fn open(&self, _mailbox: &str) -> Box<dyn ScriptStorage> {
        Box::new(self.clone())
    }
}

struct T {
    s: Session<Fake>,
    framer: Framer,
    store: Fake,
}

impl T {
    fn new(tables: &Arc<Tables>, tls: bool) -> T {
        let store = Fake::default();
        let s = Session::new(tables.clone(), tables.listeners[0], tls, store.clone());
        let framer = Framer::new(s.max_script_size().max(8 * 1024));
        T { s, framer, store }
    }

    fn feed(&mut self, input: &[u8]) -> Out {
        let mut buf = input.to_vec();
        self.s.process(&mut buf, &mut self.framer)
    }

    fn say(&mut self, input: &str) -> String {
        let step = self.feed(input.as_bytes());
        assert!(step.effect.is_none(), "{input}: unexpected effect");
        String::from_utf8(step.bytes).unwrap()
    }

    /// Logged in as alice.
    fn logged_in() -> T {
        let mut t = T::new(&PLAIN, false);
        let ir = base64_encode(b"\0alice@example.test\0secret");
        let step = t.feed(format!("AUTHENTICATE \"PLAIN\" \"{ir}\"\r\n").as_bytes());
        assert!(matches!(step.effect, Some(Effect::Authenticate(_))));
        let step =
            t.s.auth_result(AuthOutcome::Ok("alice@example.test".into()));
        assert_eq!(step.bytes, b"OK \"logged in\"\r\n");
        t
    }

    fn put(&mut self, name: &str, script: &str) -> String {
        self.say(&format!(
            "PUTSCRIPT \"{name}\" {{{}+}}\r\n{script}\r\n",
            script.len()
        ))
    }
}

#[test]
fn capabilities_before_and_after_starttls() {
    let mut t = T::new(&STARTTLS, false);
    let greeting = String::from_utf8(t.s.greeting()).unwrap();
    assert!(greeting.starts_with("\"IMPLEMENTATION\" \"mailc\"\r\n"));
    assert!(greeting.contains("\"SASL\" \"\"\r\n"), "{greeting}");
    assert!(greeting.contains("\"STARTTLS\"\r\n"));
    assert!(greeting.contains("\"VERSION\" \"1.0\"\r\n"));
    assert!(greeting.contains("\"SIEVE\" \"fileinto reject"));
    assert!(greeting.ends_with("OK \"mail.example.test ManageSieve ready\"\r\n"));
    // No login before TLS.
    assert_eq!(
        t.say("AUTHENTICATE \"PLAIN\" \"AGEAYg==\"\r\n"),
        "NO (ENCRYPT-NEEDED) \"plaintext login is disabled: use STARTTLS first\"\r\n"
    );
    // STARTTLS: anything pipelined behind it is the driver's to drop.
    let step = t.feed(b"STARTTLS\r\n");
    assert_eq!(step.bytes, b"OK \"begin TLS negotiation now\"\r\n");
    assert!(matches!(step.effect, Some(Effect::StartTls)));
    let after = String::from_utf8(t.s.tls_established().bytes).unwrap();
    assert!(after.contains("\"SASL\" \"PLAIN LOGIN\"\r\n"), "{after}");
    assert!(!after.contains("STARTTLS"));
    assert!(after.ends_with("OK \"TLS negotiation successful\"\r\n"));
    assert_eq!(t.say("STARTTLS\r\n"), "NO \"TLS already active\"\r\n");
}

#[test]
fn sasl_plain_and_login_exchanges() {
    let mut t = T::new(&PLAIN, false);
    // PLAIN without an initial response: an empty challenge, then a
    // literal response.
    assert_eq!(t.say("AUTHENTICATE \"PLAIN\"\r\n"), "\"\"\r\n");
    let resp = base64_encode(b"\0alice@example.test\0pw");
    let step = t.feed(format!("{{{}+}}\r\n{resp}\r\n", resp.len()).as_bytes());
    let Some(Effect::Authenticate(c)) = step.effect else {
        panic!("no auth effect");
    };
    assert_eq!(
        (c.username.as_str(), c.password.as_str()),
        ("alice@example.test", "pw")
    );
    assert_eq!(
        t.s.auth_result(AuthOutcome::Failed).bytes,
        b"NO \"authentication failed\"\r\n"
    );
    // LOGIN: two challenges.
    assert_eq!(t.say("Authenticate \"LOGIN\"\r\n"), "\"VXNlcm5hbWU6\"\r\n");
    assert_eq!(
        t.say(&format!("\"{}\"\r\n", base64_encode(b"alice@example.test"))),
        "\"UGFzc3dvcmQ6\"\r\n"
    );
    let step = t.feed(format!("\"{}\"\r\n", base64_encode(b"secret")).as_bytes());
    assert!(matches!(step.effect, Some(Effect::Authenticate(c)) if c.password == "secret"));
    assert_eq!(
        t.s.auth_result(AuthOutcome::Locked).bytes,
        b"BYE (TRYLATER) \"too many failed logins, try again later\"\r\n"
    );
    assert!(t.s.is_closed());
    // Cancelled, and a mechanism not offered.
    let mut t = T::new(&PLAIN, false);
    assert_eq!(t.say("AUTHENTICATE \"PLAIN\"\r\n"), "\"\"\r\n");
    assert_eq!(t.say("\"*\"\r\n"), "NO \"authentication cancelled\"\r\n");
    assert_eq!(
        t.say("AUTHENTICATE \"CRAM-MD5\"\r\n"),
        "NO \"unsupported authentication mechanism\"\r\n"
    );
    assert_eq!(t.say("LISTSCRIPTS\r\n"), "NO \"log in first\"\r\n");
}

#[test]
fn script_commands() {
    let mut t = T::logged_in();
    assert_eq!(t.say("LISTSCRIPTS\r\n"), "OK \"done\"\r\n");
    assert_eq!(t.put("work", "keep;"), "OK \"done\"\r\n");
    // A syntax error is refused with its line.
    let bad = t.put("bad", "require \"fileinto\";\n\nfileinto \"x\"\n");
    assert!(bad.starts_with("NO \"line 4: "), "{bad}");
    assert!(!t.store.0.lock().unwrap().scripts.contains_key("bad"));
    let checked = t.say("CHECKSCRIPT {9+}\r\nfoo bar;\n\r\n");
    assert!(checked.starts_with("NO \"line 1: "), "{checked}");
    assert_eq!(t.say("CHECKSCRIPT \"keep;\"\r\n"), "OK \"done\"\r\n");
    assert_eq!(t.say("SETACTIVE \"work\"\r\n"), "OK \"done\"\r\n");
    assert_eq!(
        t.say("LISTSCRIPTS\r\n"),
        "\"work\" ACTIVE\r\nOK \"done\"\r\n"
    );
    assert_eq!(
        t.say("GETSCRIPT \"work\"\r\n"),
        "{5}\r\nkeep;\r\nOK \"done\"\r\n"
    );
    assert_eq!(
        t.say("DELETESCRIPT \"work\"\r\n"),
        "NO (ACTIVE) \"the active script cannot be deleted\"\r\n"
    );
    assert_eq!(
        t.say("GETSCRIPT \"nope\"\r\n"),
        "NO (NONEXISTENT) \"there is no script by that name\"\r\n"
    );
    assert_eq!(
        t.say("SETACTIVE \"nope\"\r\n"),
        "NO (NONEXISTENT) \"there is no script by that name\"\r\n"
    );
    assert_eq!(t.put("other", "discard;"), "OK \"done\"\r\n");
    assert_eq!(
        t.say("RENAMESCRIPT \"work\" \"other\"\r\n"),
        "NO (ALREADYEXISTS) \"a script by that name already exists\"\r\n"
    );
    assert_eq!(
        t.say("RENAMESCRIPT \"work\" \"home\"\r\n"),
        "OK \"done\"\r\n"
    );
    assert_eq!(
        t.say("LISTSCRIPTS\r\n"),
        "\"home\" ACTIVE\r\n\"other\"\r\nOK \"done\"\r\n"
    );
    // The empty name deactivates; then the script may be deleted.
    assert_eq!(t.say("SETACTIVE \"\"\r\n"), "OK \"done\"\r\n");
    assert_eq!(t.say("DELETESCRIPT \"home\"\r\n"), "OK \"done\"\r\n");
    assert_eq!(
        t.say("DELETESCRIPT \"home\"\r\n"),
        "NO (NONEXISTENT) \"there is no script by that name\"\r\n"
    );
    assert_eq!(t.say("NOOP \"t1\"\r\n"), "OK (TAG \"t1\") \"done\"\r\n");
    let caps = t.say("CAPABILITY\r\n");
    // From `sieve { max-redirects }`, as delivery enforces it.
    assert!(caps.contains("\"MAXREDIRECTS\" \"2\"\r\n"), "{caps}");
    assert!(
        caps.contains("\"OWNER\" \"alice@example.test\"\r\n"),
        "{caps}"
    );
    assert!(caps.ends_with("\"VERSION\" \"1.0\"\r\nOK\r\n"));
    // Names the store refuses, and names that are not names.
    assert_eq!(t.put(".hidden", "keep;"), "NO \"invalid script name\"\r\n");
    assert_eq!(
        t.say("GETSCRIPT \"a\\\\b\x01\"\r\n"),
        "NO \"invalid script name\"\r\n"
    );
    assert_eq!(
        t.say("UNAUTHENTICATE\r\n"),
        "OK \"logged out, log in again\"\r\n"
    );
    assert_eq!(t.say("LISTSCRIPTS\r\n"), "NO \"log in first\"\r\n");
}

#[test]
fn quotas() {
    let mut t = T::logged_in();
    assert_eq!(t.say("HAVESPACE \"a\" 1024\r\n"), "OK \"done\"\r\n");
    assert_eq!(
        t.say("HAVESPACE \"a\" 1025\r\n"),
        "NO (QUOTA/MAXSIZE) \"scripts are limited to 1024 bytes\"\r\n"
    );
    assert_eq!(t.say("HAVESPACE \"a\" x\r\n"), "NO \"invalid number\"\r\n");
    assert_eq!(t.put("a", "keep;"), "OK \"done\"\r\n");
    assert_eq!(t.put("b", "keep;"), "OK \"done\"\r\n");
    let full = "NO (QUOTA/MAXSCRIPTS) \"at most 2 scripts per user\"\r\n";
    assert_eq!(t.put("c", "keep;"), full);
    assert_eq!(t.say("HAVESPACE \"c\" 10\r\n"), full);
    // Replacing a script does not need room for another.
    assert_eq!(t.put("b", "discard;"), "OK \"done\"\r\n");
    assert_eq!(t.say("HAVESPACE \"b\" 10\r\n"), "OK \"done\"\r\n");
    // A literal over the limit: the quota answer, after skipping it.
    let mut big = b"PUTSCRIPT \"big\" {20000+}\r\n".to_vec();
    big.extend(std::iter::repeat_n(b'#', 20000));
    big.extend_from_slice(b"\r\nNOOP\r\n");
    let step = t.feed(&big);
    assert_eq!(
        String::from_utf8(step.bytes).unwrap(),
        "NO (QUOTA/MAXSIZE) \"scripts are limited to 1024 bytes\"\r\nOK \"done\"\r\n"
    );
    // 1000 bytes of comment fit the literal limit (8 KiB for SASL) but
    // not the script limit.
    let long = format!("#{}\nkeep;", "x".repeat(1100));
    assert_eq!(
        t.put("long", &long),
        "NO (QUOTA/MAXSIZE) \"scripts are limited to 1024 bytes\"\r\n"
    );
}

#[test]
fn hostile_input_is_bounded_and_answered() {
    let mut t = T::new(&PLAIN, false);
    // An endless line: answered at once, the rest skipped.
    let mut input = vec![b'A'; 20_000];
    let step = t.s.process(&mut input, &mut t.framer);
    assert_eq!(step.bytes, b"NO \"line too long\"\r\n");
    assert!(input.is_empty());
    assert_eq!(t.say("AAAA\r\nNOOP\r\n"), "OK \"done\"\r\n");
    // Garbage and unknown commands, up to the error limit, then BYE.
    let mut all = String::new();
    for _ in 0..30 {
        let step = t.feed(b"\x01\x02 {x}\r\n");
        all.push_str(&String::from_utf8_lossy(&step.bytes));
        if step.close {
            break;
        }
    }
    assert!(t.s.is_closed(), "{all}");
    assert!(all.ends_with("BYE \"too many errors, closing connection\"\r\n"));
    // A literal over the limit outside PUTSCRIPT counts as an error.
    let mut t = T::new(&PLAIN, false);
    assert_eq!(t.say("FOO {999999+}\r\n"), "NO \"literal too large\"\r\n");
}
