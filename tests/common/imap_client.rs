//! A minimal IMAP client over plain TCP for tests that only need a few
//! commands (LOGIN, SELECT, UID MOVE/COPY, APPEND): one command at a time,
//! the whole response up to its tagged line. Every response is bounded by
//! the socket's read timeout.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

pub struct Imap {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    next: u32,
}

impl Imap {
    pub fn connect(addr: SocketAddr) -> Imap {
        let s = TcpStream::connect(addr).expect("IMAP connects");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut c = Imap {
            reader: BufReader::new(s.try_clone().unwrap()),
            writer: s,
            next: 1,
        };
        let greeting = c.line();
        assert!(greeting.starts_with("* OK"), "{greeting}");
        c
    }

    fn line(&mut self) -> String {
        let mut l = String::new();
        self.reader
            .read_line(&mut l)
            .expect("the server answers within 10 s");
        assert!(!l.is_empty(), "the server closed the connection");
        l
    }

    /// Sends `command` and returns the response lines, the tagged one
    /// last. Panics unless it is OK.
    pub fn ok(&mut self, command: &str) -> Vec<String> {
        let lines = self.cmd(command);
        let last = lines.last().unwrap();
        assert!(
            last.split_whitespace().nth(1) == Some("OK"),
            "{command}: {lines:?}"
        );
        lines
    }

    pub fn cmd(&mut self, command: &str) -> Vec<String> {
        let tag = format!("t{}", self.next);
        self.next += 1;
        self.writer
            .write_all(format!("{tag} {command}\r\n").as_bytes())
            .unwrap();
        self.until(&tag)
    }

    fn until(&mut self, tag: &str) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let l = self.line();
            let done = l.starts_with(&format!("{tag} "));
            lines.push(l);
            if done {
                return lines;
            }
        }
    }

    /// APPENDs `message` to `mailbox` (a synchronizing literal).
    pub fn append(&mut self, mailbox: &str, message: &[u8]) -> Vec<String> {
        let tag = format!("t{}", self.next);
        self.next += 1;
        self.writer
            .write_all(format!("{tag} APPEND {mailbox} {{{}}}\r\n", message.len()).as_bytes())
            .unwrap();
        let cont = self.line();
        assert!(cont.starts_with('+'), "{cont}");
        self.writer.write_all(message).unwrap();
        self.writer.write_all(b"\r\n").unwrap();
        let lines = self.until(&tag);
        assert!(
            lines.last().unwrap().split_whitespace().nth(1) == Some("OK"),
            "APPEND: {lines:?}"
        );
        lines
    }
}
