//! Runs the real `mailc serve` binary for end-to-end tests: a private state
//! directory, listeners on port 0 (the bound ports are read from the
//! `listening proto=… addr=…` log lines), SIGTERM then SIGKILL on drop, and
//! the temporary directory kept when the test failed.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const ALICE_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$14ukWqiThj4Xz77NYv01V28GbBZHY9AaZwsFswQFO0U";

pub struct Server {
    pub dir: Option<tempfile::TempDir>,
    pub config: PathBuf,
    child: Option<Child>,
    /// Bound addresses by listener kind, in config order.
    pub addrs: HashMap<String, Vec<SocketAddr>>,
    log: Arc<Mutex<Vec<String>>>,
}

/// A config with the given body under a standard head: hostname, state in
/// the temp dir, self-signed TLS. `{STATE}` in `body` is replaced too.
/// Unless the body names its own `resolver`, DNS goes to a loopback port
/// where nothing answers: tests never query the machine's resolvers.
pub fn config_text(state: &Path, body: &str) -> String {
    let resolver = if body.contains("resolver ") {
        ""
    } else {
        "resolver \"127.0.0.1:9\"\n"
    };
    // Without a DNS server the inbound checks would defer every message
    // (451, DNS error): tests that exercise them say `checks #true`.
    let body = if body.contains("inbound {") || body.contains("inbound{") {
        body.to_string()
    } else {
        format!("inbound {{\n    checks #false\n}}\n{body}")
    };
    format!(
        "hostname \"mail.example.test\"\nstate \"{}\"\ntls self-signed=#true\n{resolver}{}",
        state.display(),
        body.replace("{STATE}", &state.display().to_string())
    )
}

/// The usual test domain: alice (password "secret"), bob with a quota,
/// postmaster alias.
pub fn standard_domain() -> String {
    format!(
        "domain \"example.test\" {{\n    dkim selector=\"s1\" generate=#true\n    dmarc policy=\"none\"\n    mailbox \"alice\" password=\"{ALICE_HASH}\" {{\n        alias \"postmaster\"\n    }}\n    mailbox \"bob\" password=\"{ALICE_HASH}\" quota=\"1MiB\"\n}}\n"
    )
}

impl Server {
    pub fn start(body: &str) -> Server {
        Server::start_with_state_files(body, &[])
    }

    /// Like [`Server::start`], with files put in the state directory
    /// first (`tls/selfsigned.pem` and `.key`: a certificate of the test's
    /// choosing in place of the generated development one).
    pub fn start_with_state_files(body: &str, files: &[(&str, &[u8])]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        for (rel, bytes) in files {
            let path = state.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
        let config = dir.path().join("mailc.kdl");
        std::fs::write(&config, config_text(&state, body)).unwrap();
        let mut s = Server {
            dir: Some(dir),
            config,
            child: None,
            addrs: HashMap::new(),
            log: Arc::new(Mutex::new(Vec::new())),
        };
        s.spawn();
        s
    }

    pub fn state(&self) -> PathBuf {
        self.dir.as_ref().unwrap().path().join("state")
    }

    pub fn path(&self) -> &Path {
        self.dir.as_ref().unwrap().path()
    }

    /// Starts the binary and waits until every listener is bound.
    pub fn spawn(&mut self) {
        let expected = std::fs::read_to_string(&self.config)
            .unwrap()
            .lines()
            .filter(|l| l.trim_start().starts_with("listen "))
            .filter(|l| {
                [
                    "\"smtp\"",
                    "\"submission\"",
                    "\"submissions\"",
                    "\"lmtp\"",
                    "\"imap\"",
                    "\"imaps\"",
                    "\"pop3\"",
                    "\"pop3s\"",
                    "\"managesieve\"",
                    "\"http\"",
                    "\"https\"",
                ]
                .iter()
                .any(|k| l.contains(k))
            })
            .count();
        let mut child = Command::new(env!("CARGO_BIN_EXE_mailc"))
            .arg("serve")
            .arg(&self.config)
            .env("RUST_LOG", "mailc=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("mailc starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let log = self.log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                log.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        self.addrs.clear();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = 0;
        while seen < expected {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(l) => l,
                Err(_) => panic!("mailc did not start listening:\n{}", self.log_text()),
            };
            if let Some(rest) = line.split("listening proto=").nth(1) {
                let mut parts = rest.split_whitespace();
                let kind = parts.next().unwrap().to_string();
                let addr = parts
                    .next()
                    .unwrap()
                    .strip_prefix("addr=")
                    .unwrap()
                    .parse()
                    .unwrap();
                self.addrs.entry(kind).or_default().push(addr);
                seen += 1;
            }
            if line.contains("not served by this version yet") {
                seen += 1;
            }
        }
        self.child = Some(child);
    }

    pub fn addr(&self, kind: &str) -> SocketAddr {
        self.addrs
            .get(kind)
            .and_then(|v| v.first())
            .copied()
            .unwrap_or_else(|| panic!("no {kind} listener"))
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn log_lines_containing(&self, needle: &str) -> Vec<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .cloned()
            .collect()
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Waits until a log line contains `needle` (after `skip` earlier lines).
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.log.lock().unwrap().iter().any(|l| l.contains(needle)) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn count_log(&self, needle: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// SIGKILL and reap: a crash.
    pub fn crash(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM; returns the exit status and how long the exit took.
    pub fn stop(&mut self) -> (Option<i32>, Duration) {
        let Some(mut c) = self.child.take() else {
            return (None, Duration::ZERO);
        };
        let start = Instant::now();
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let deadline = start + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = c.try_wait() {
                return (status.code(), start.elapsed());
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                return (None, start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Entries in the queue, as `mailc queue list --json` reports them.
    pub fn queue_entries(&self) -> Vec<serde_json::Value> {
        let out = Command::new(env!("CARGO_BIN_EXE_mailc"))
            .args(["queue", "list", "--json"])
            .arg(&self.config)
            .output()
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| panic!("queue list: {}", String::from_utf8_lossy(&out.stderr)));
        json["entries"].as_array().cloned().unwrap_or_default()
    }

    /// Files in a mailbox's `new/` and `cur/`.
    pub fn maildir_files(&self, domain: &str, local: &str) -> Vec<PathBuf> {
        let base = self.state().join("mail").join(domain).join(local);
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(rd) = std::fs::read_dir(base.join(sub)) {
                out.extend(rd.flatten().map(|e| e.path()));
            }
        }
        out.sort();
        out
    }

    /// Waits until a mailbox holds at least `n` messages.
    pub fn wait_for_mail(
        &self,
        domain: &str,
        local: &str,
        n: usize,
        timeout: Duration,
    ) -> Vec<PathBuf> {
        let deadline = Instant::now() + timeout;
        loop {
            let files = self.maildir_files(domain, local);
            if files.len() >= n || Instant::now() > deadline {
                return files;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking()
            && let Some(dir) = self.dir.take()
        {
            let kept = dir.keep();
            eprintln!(
                "test failed: server directory kept at {}\n--- server log ---\n{}",
                kept.display(),
                self.log_text()
            );
        }
    }
}

/// A minimal blocking SMTP client for tests that need exact control of the
/// bytes on the wire (pipelining, raw DATA, counting replies).
pub struct Raw {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    pub fn connect(addr: SocketAddr) -> Raw {
        Raw::from_stream(TcpStream::connect(addr).unwrap())
    }

    /// A client on an already connected stream (e.g. bound to a chosen
    /// source address first).
    pub fn from_stream(stream: TcpStream) -> Raw {
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        Raw {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn try_connect(addr: SocketAddr) -> std::io::Result<Raw> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(Raw {
            stream,
            buf: Vec::new(),
        })
    }

    pub fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Reads one (possibly multi-line) reply; returns its code and text.
    pub fn reply(&mut self) -> std::io::Result<(u16, String)> {
        let mut text = String::new();
        loop {
            let line = self.line()?;
            let code: u16 = line
                .get(..3)
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| std::io::Error::other(format!("bad reply line {line:?}")))?;
            text.push_str(&line);
            text.push('\n');
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok((code, text));
            }
        }
    }

    fn line(&mut self) -> std::io::Result<String> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..i + 2).collect();
                return Ok(String::from_utf8_lossy(&line[..i]).into_owned());
            }
            let mut chunk = [0u8; 4096];
            // A stop and continue (SIGSTOP/SIGCONT, a frozen machine) ends a
            // read with a timeout with EINTR (signal(7)): read again.
            let n = loop {
                match self.stream.read(&mut chunk) {
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    r => break r?,
                }
            };
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "connection closed",
                ));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    pub fn cmd(&mut self, line: &str) -> std::io::Result<(u16, String)> {
        self.send(format!("{line}\r\n").as_bytes())?;
        self.reply()
    }

    /// Sends one message in a plain SMTP transaction; returns the final code.
    pub fn send_mail(&mut self, from: &str, to: &[&str], body: &str) -> std::io::Result<u16> {
        let (c, _) = self.cmd(&format!("MAIL FROM:<{from}>"))?;
        if c != 250 {
            return Ok(c);
        }
        let mut ok = 0;
        for r in to {
            if self.cmd(&format!("RCPT TO:<{r}>"))?.0 == 250 {
                ok += 1;
            }
        }
        if ok == 0 {
            self.cmd("RSET")?;
            return Ok(550);
        }
        let (c, _) = self.cmd("DATA")?;
        if c != 354 {
            return Ok(c);
        }
        let mut data = body.replace("\r\n", "\n").replace('\n', "\r\n");
        if !data.ends_with("\r\n") {
            data.push_str("\r\n");
        }
        // Transparency (RFC 5321 §4.5.2): a leading dot is doubled.
        let data: String = data
            .split_inclusive("\r\n")
            .map(|l| {
                if l.starts_with('.') {
                    format!(".{l}")
                } else {
                    l.to_string()
                }
            })
            .collect();
        self.send(data.as_bytes())?;
        self.send(b".\r\n")?;
        Ok(self.reply()?.0)
    }
}

/// Submits a small message as alice (password "secret") over implicit TLS
/// to the server's `submissions` listener, with mail-send as the client.
pub fn submit_as_alice(server: &Server, to: &[&str], subject: &str) {
    let port = server.addr("submissions").port();
    let to: Vec<String> = to.iter().map(|s| s.to_string()).collect();
    let subject = subject.to_string();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async move {
            use mail_send::SmtpClientBuilder;
            use mail_send::mail_builder::MessageBuilder;
            let msg = MessageBuilder::new()
                .from(("Alice", "alice@example.test"))
                .to(to.iter().map(|s| s.as_str()).collect::<Vec<_>>())
                .subject(subject.as_str())
                .text_body("Hello over there.\r\n");
            SmtpClientBuilder::new("127.0.0.1", port)
                .unwrap()
                .implicit_tls(true)
                .allow_invalid_certs()
                .credentials(("alice@example.test", "secret"))
                .connect()
                .await
                .unwrap()
                .send(msg)
                .await
                .unwrap();
        });
}
