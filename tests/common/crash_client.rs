//! The client side of the crash tests: SMTP clients that keep sending
//! tagged messages through a server that is killed and restarted under
//! them, recording which messages got a 250.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::server::Raw;

pub struct Outcome {
    pub acked: Vec<String>,
    pub unacked: Vec<String>,
}

/// Sends messages tagged `crash-<n>-<seq>` (in Subject and Message-ID) to
/// `rcpts`, several per connection, until `stop`.
pub fn client(
    n: usize,
    addr: Arc<Mutex<SocketAddr>>,
    stop: Arc<AtomicBool>,
    rcpts: &[&str],
) -> Outcome {
    let mut out = Outcome {
        acked: Vec::new(),
        unacked: Vec::new(),
    };
    let mut seq = 0;
    while !stop.load(Ordering::Relaxed) {
        let target = *addr.lock().unwrap();
        let Ok(mut c) = Raw::try_connect(target) else {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        // Hammering a dead server's port (from the ephemeral range) can make
        // Linux connect the socket to itself; that is not a server.
        if c.stream.local_addr().ok() == c.stream.peer_addr().ok() {
            continue;
        }
        // A connection that was still in the backlog of a server killed a
        // moment later can sit without a reset; a real client times out too.
        let _ = c.stream.set_read_timeout(Some(Duration::from_secs(3)));
        let greeted = c.reply().map(|r| r.0 == 220).unwrap_or(false)
            && c.cmd("EHLO crash").map(|r| r.0 == 250).unwrap_or(false);
        if !greeted {
            continue;
        }
        // Several messages per connection, until something breaks.
        while !stop.load(Ordering::Relaxed) {
            seq += 1;
            let tag = format!("crash-{n}-{seq}");
            let body = format!(
                "Subject: {tag}\r\nMessage-ID: <{tag}@test>\r\n\r\n{}\r\n",
                "line of text ".repeat(40)
            );
            match c.send_mail("sender@remote.example", rcpts, &body) {
                Ok(250) => out.acked.push(tag),
                Ok(_) => out.unacked.push(tag),
                Err(_) => {
                    out.unacked.push(tag);
                    break;
                }
            }
        }
    }
    out
}
