//! POP3 end to end: mail delivered by the real server's SMTP side, read back
//! over POP3S and over POP3 with STLS, byte for byte; deletions only after
//! QUIT; UIDLs stable across sessions; one session per maildrop.

mod common;

use std::time::{Duration, Instant};

use common::server::{Raw, Server, standard_domain};
use common::tls::{Lines, Tls, connect, upgrade};

fn start() -> Server {
    Server::start(&format!(
        "listen \"smtp\" \"127.0.0.1:0\"\nlisten \"pop3\" \"127.0.0.1:0\"\nlisten \"pop3s\" \"127.0.0.1:0\"\n{}",
        standard_domain()
    ))
}

fn deliver(server: &Server, bodies: &[String]) {
    let mut c = Raw::connect(server.addr("smtp"));
    c.reply().unwrap();
    c.cmd("EHLO t").unwrap();
    for b in bodies {
        assert_eq!(
            c.send_mail("x@remote.example", &["alice@example.test"], b)
                .unwrap(),
            250
        );
    }
    c.cmd("QUIT").unwrap();
    assert_eq!(
        server
            .wait_for_mail(
                "example.test",
                "alice",
                bodies.len(),
                Duration::from_secs(10)
            )
            .len(),
        bodies.len()
    );
}

/// Logs in as alice over POP3 with STLS, checking that USER is refused
/// before STLS. The server notices a client that went away only when it
/// next reads; until then the maildrop is held and PASS answers
/// `-ERR [IN-USE]`, which is retried until a deadline.
fn login_with_stls(server: &Server) -> Lines<Tls> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let tcp = std::net::TcpStream::connect(server.addr("pop3")).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut plain = Lines::new(tcp);
        assert!(plain.line().unwrap().starts_with("+OK"));
        assert!(
            plain
                .cmd("USER alice@example.test")
                .unwrap()
                .starts_with("-ERR")
        );
        assert!(plain.cmd("STLS").unwrap().starts_with("+OK"));
        let mut p = Lines::new(upgrade(plain.into_inner(), "mail.example.test"));
        assert!(p.cmd("USER alice@example.test").unwrap().starts_with("+OK"));
        let reply = p.cmd("PASS secret").unwrap();
        if reply.starts_with("+OK") {
            return p;
        }
        assert!(
            reply.starts_with("-ERR [IN-USE]") && Instant::now() < deadline,
            "{reply}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn retrieve_delete_and_uidl_over_pop3s_and_stls() {
    let server = start();
    let big: String = (0..20_000)
        .map(|i| format!("line {i} {}\r\n", if i % 7 == 0 { "ünïcödé" } else { "" }))
        .collect();
    let bodies = vec![
        "Subject: first\r\n\r\n.leading dot\r\nplain\r\n".to_string(),
        format!("Subject: big\r\n\r\n{big}"),
        "Subject: third\r\n\r\nthree\r\n".to_string(),
    ];
    deliver(&server, &bodies);
    let on_disk: Vec<Vec<u8>> = server
        .maildir_files("example.test", "alice")
        .iter()
        .map(|f| std::fs::read(f).unwrap())
        .collect();

    // POP3S: everything byte-exact.
    let mut p = Lines::new(connect(server.addr("pop3s")));
    assert!(p.line().unwrap().starts_with("+OK"));
    assert!(p.cmd("USER alice@example.test").unwrap().starts_with("+OK"));
    assert!(p.cmd("PASS secret").unwrap().starts_with("+OK"));
    assert_eq!(
        p.cmd("STAT").unwrap(),
        format!("+OK 3 {}", on_disk.iter().map(|d| d.len()).sum::<usize>())
    );
    p.send("UIDL").unwrap();
    assert!(p.line().unwrap().starts_with("+OK"));
    let uidls = String::from_utf8(p.multiline().unwrap()).unwrap();
    let mut got = Vec::new();
    for n in 1..=3 {
        let status = p.cmd(&format!("RETR {n}")).unwrap();
        assert!(status.starts_with("+OK"), "{status}");
        got.push(p.multiline().unwrap());
    }
    let mut got_sorted = got.clone();
    got_sorted.sort();
    let mut disk_sorted = on_disk.clone();
    disk_sorted.sort();
    assert_eq!(
        got_sorted, disk_sorted,
        "RETR returns the stored messages byte for byte"
    );
    assert!(
        got.iter()
            .any(|g| g.windows(13).any(|w| w == b".leading dot\r"))
    );
    assert!(p.cmd("DELE 1").unwrap().starts_with("+OK"));
    // Dropped without QUIT. POP3 on the STLS port: login only after STLS,
    // and only once the dropped session has let go of the maildrop...
    drop(p);
    let mut p = login_with_stls(&server);
    // ...which deleted nothing.
    assert_eq!(server.maildir_files("example.test", "alice").len(), 3);
    p.send("UIDL").unwrap();
    p.line().unwrap();
    assert_eq!(
        String::from_utf8(p.multiline().unwrap()).unwrap(),
        uidls,
        "UIDLs are stable across sessions"
    );

    // A second session on the same maildrop is refused.
    let mut second = Lines::new(connect(server.addr("pop3s")));
    second.line().unwrap();
    second.cmd("USER alice@example.test").unwrap();
    let refused = second.cmd("PASS secret").unwrap();
    assert!(refused.starts_with("-ERR [IN-USE]"), "{refused}");

    assert!(p.cmd("DELE 2").unwrap().starts_with("+OK"));
    // The session commits the UPDATE state before it answers QUIT.
    assert!(p.cmd("QUIT").unwrap().starts_with("+OK"));
    let left = server.maildir_files("example.test", "alice");
    assert_eq!(left.len(), 2, "QUIT commits the deletion");
    // The retrieved messages were marked \Seen... by the first session? No:
    // it dropped, so nothing was committed; the second retrieved nothing.
    assert!(left.iter().all(|f| !f.to_string_lossy().ends_with(":2,S")));
}
