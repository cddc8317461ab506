//! IMAP load generator for `bench/imap_bench.py` (not a test): N client
//! threads, each logged in once, loop over SELECT, FETCH of envelopes and
//! flags for 20 messages, FETCH of one whole message, SEARCH UNSEEN, SEARCH
//! SUBJECT, STORE, APPEND and UID STORE + UID EXPUNGE of the appended message,
//! for a fixed time. Every command is one operation. Written in Rust with
//! plain blocking sockets so the client costs little next to the server.
//!
//! usage: imap_load PORT CLIENTS SECONDS USER PASSWORD
//! prints: `ops <total> seconds <elapsed>`

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

struct Client {
    r: BufReader<TcpStream>,
    w: TcpStream,
    n: u64,
}

impl Client {
    fn connect(port: u16) -> Client {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_nodelay(true).expect("nodelay");
        let mut c = Client {
            r: BufReader::new(s.try_clone().expect("clone")),
            w: s,
            n: 0,
        };
        let mut greeting = String::new();
        c.r.read_line(&mut greeting).expect("greeting");
        c
    }

    /// Sends a command (with an optional literal, LITERAL+) and reads up to
    /// its tagged reply; returns the reply lines.
    fn cmd(&mut self, text: &str, literal: Option<&[u8]>) -> Vec<String> {
        self.n += 1;
        let tag = format!("t{}", self.n);
        let mut out = format!("{tag} {text}").into_bytes();
        if let Some(l) = literal {
            out.extend_from_slice(format!(" {{{}+}}\r\n", l.len()).as_bytes());
            out.extend_from_slice(l);
        }
        out.extend_from_slice(b"\r\n");
        self.w.write_all(&out).expect("write");
        let mut lines = Vec::new();
        loop {
            let mut line = Vec::new();
            self.r.read_until(b'\n', &mut line).expect("read");
            assert!(!line.is_empty(), "connection closed during {text}");
            // Skip literal data announced at the end of a line.
            if let Some(open) = line.iter().rposition(|&b| b == b'{')
                && line.ends_with(b"}\r\n")
                && let Ok(n) = std::str::from_utf8(&line[open + 1..line.len() - 3])
                    .unwrap_or("x")
                    .parse::<usize>()
            {
                let mut skip = vec![0u8; n];
                self.r.read_exact(&mut skip).expect("literal");
            }
            let text_line = String::from_utf8_lossy(&line).into_owned();
            let done = text_line.starts_with(&format!("{tag} "));
            lines.push(text_line);
            if done {
                let last = lines.last().map(String::as_str).unwrap_or("");
                assert!(last.starts_with(&format!("{tag} OK")), "{text}: {last}");
                return lines;
            }
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = args[1].parse().expect("port");
    let clients: usize = args[2].parse().expect("clients");
    let seconds: u64 = args[3].parse().expect("seconds");
    let (user, pass) = (args[4].clone(), args[5].clone());
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let handles: Vec<_> = (0..clients)
        .map(|i| {
            let (user, pass) = (user.clone(), pass.clone());
            std::thread::spawn(move || {
                let mut seed: u64 = 0x9E37_79B9_7F4A_7C15 ^ (i as u64 + 1);
                let mut rnd = move |n: u64| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed % n.max(1)
                };
                let mut c = Client::connect(port);
                c.cmd(&format!("LOGIN {user} {pass}"), None);
                let small = b"From: load@example.com\r\nSubject: appended\r\n\r\nsmall body\r\n";
                let mut ops = 0u64;
                while Instant::now() < deadline {
                    let sel = c.cmd("SELECT INBOX", None);
                    let n: u64 = sel
                        .iter()
                        .find_map(|l| {
                            l.strip_suffix(" EXISTS\r\n")
                                .and_then(|x| x.strip_prefix("* "))
                        })
                        .and_then(|x| x.parse().ok())
                        .unwrap_or(1);
                    let a = 1 + rnd(n.saturating_sub(20).max(1));
                    c.cmd(
                        &format!("FETCH {a}:{} (UID FLAGS RFC822.SIZE ENVELOPE)", a + 19),
                        None,
                    );
                    c.cmd(&format!("FETCH {} (BODY.PEEK[])", 1 + rnd(n)), None);
                    c.cmd("SEARCH UNSEEN", None);
                    c.cmd(&format!("SEARCH SUBJECT \"bench {}\"", rnd(100)), None);
                    c.cmd(&format!("STORE {} +FLAGS (\\Seen)", 1 + rnd(n)), None);
                    let app = c.cmd("APPEND INBOX", Some(small));
                    ops += 7;
                    let uid = app.last().and_then(|l| {
                        l.split("APPENDUID ")
                            .nth(1)
                            .and_then(|r| r.split(']').next())
                            .and_then(|r| r.split(' ').nth(1))
                            .map(str::to_string)
                    });
                    if let Some(uid) = uid {
                        c.cmd(&format!("UID STORE {uid} +FLAGS.SILENT (\\Deleted)"), None);
                        c.cmd(&format!("UID EXPUNGE {uid}"), None);
                        ops += 2;
                    }
                }
                c.cmd("LOGOUT", None);
                ops
            })
        })
        .collect();
    let total: u64 = handles.into_iter().map(|h| h.join().expect("client")).sum();
    println!("ops {total} seconds {:.3}", start.elapsed().as_secs_f64());
}
