//! The `http` and `https` listeners of the real `mailc serve`, with a
//! rustls client writing HTTP/1.1 by hand: the MTA-STS policy compared with
//! what `mailc dns` prints, the three autoconfiguration documents parsed by
//! python3's XML and plist parsers, the redirect to https, ALPN
//! `acme-tls/1`, and hostile clients (slowloris, idle, oversized heads and
//! bodies, too many connections, too many requests) — each bounded,
//! answered or cut off, and the server still serving afterwards.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::http::{
    AUTODISCOVER_CHECK, MOBILECONFIG_CHECK, THUNDERBIRD_CHECK, dns_policy, python, start,
};
use common::server::Server;

/// A response: status, lower-cased headers, body.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
    fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("utf-8 body")
    }
}

/// Parses one response from the front of `buf`; `None` until it is whole.
fn parse(buf: &[u8], head_request: bool) -> Option<(Reply, usize)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&buf[..end]).expect("ascii head");
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (n, v) = l.split_once(':').expect("header line");
            (n.trim().to_ascii_lowercase(), v.trim().to_string())
        })
        .collect();
    let len: usize = if head_request {
        0
    } else {
        headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .map_or(0, |(_, v)| v.parse().expect("content-length"))
    };
    if buf.len() < end + len {
        return None;
    }
    Some((
        Reply {
            status,
            headers,
            body: buf[end..end + len].to_vec(),
        },
        end + len,
    ))
}

/// Sends `request` and reads one response.
fn exchange<S: Read + Write>(s: &mut S, request: &[u8]) -> Reply {
    s.write_all(request).unwrap();
    s.flush().unwrap();
    let head_request = request.starts_with(b"HEAD ");
    let mut buf = Vec::new();
    loop {
        if let Some((r, _)) = parse(&buf, head_request) {
            return r;
        }
        let mut chunk = [0u8; 16384];
        let n = loop {
            match s.read(&mut chunk) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                r => break r.expect("read response"),
            }
        };
        assert!(
            n > 0,
            "closed before a whole response: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn tcp(addr: SocketAddr) -> TcpStream {
    let t = TcpStream::connect(addr).unwrap();
    t.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    t
}

fn https(server: &Server, sni: &str, request: &str) -> Reply {
    let mut tls = common::tls::upgrade(tcp(server.addr("https")), sni);
    exchange(&mut tls, request.as_bytes())
}

fn get(host: &str, target: &str) -> String {
    format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
}

#[test]
fn mta_sts_policy_is_served_as_mailc_dns_prints_it() {
    let (server, _) = start();
    let r = https(
        &server,
        "mta-sts.example.test",
        &get("mta-sts.example.test", "/.well-known/mta-sts.txt"),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    let (policy, id) = dns_policy(&server);
    assert_eq!(r.text(), policy);
    assert_eq!(mailc::dns::mta_sts_id(&r.text()), id);
    assert!(r.text().contains("mode: enforce\n"));
    // The domain without a policy, and a host that is not ours.
    for host in ["mta-sts.example.org", "mta-sts.evil.example"] {
        let r = https(&server, host, &get(host, "/.well-known/mta-sts.txt"));
        assert_eq!(r.status, 404, "{host}");
    }
    // HEAD: the headers without the body.
    let r = https(
        &server,
        "mta-sts.example.test",
        "HEAD /.well-known/mta-sts.txt HTTP/1.1\r\nHost: mta-sts.example.test\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-length"),
        Some(policy.len().to_string().as_str())
    );
    // Another method.
    let r = https(
        &server,
        "mta-sts.example.test",
        "DELETE /.well-known/mta-sts.txt HTTP/1.1\r\nHost: mta-sts.example.test\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
}

#[test]
fn thunderbird_autoconfig_is_well_formed_and_names_the_listeners() {
    let (server, ports) = start();
    for (host, target) in [
        (
            "autoconfig.example.test",
            "/mail/config-v1.1.xml?emailaddress=alice%40example.test",
        ),
        (
            "example.test",
            "/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=alice@example.test",
        ),
    ] {
        let r = https(&server, host, &get(host, target));
        assert_eq!(r.status, 200, "{host}{target}: {}", r.text());
        assert_eq!(
            r.header("content-type"),
            Some("application/xml; charset=utf-8")
        );
        let summary = python(THUNDERBIRD_CHECK, &r.body);
        assert_eq!(
            summary,
            format!(
                "domains example.test\n\
                 incomingServer imap mail.example.test {} SSL %EMAILADDRESS%\n\
                 incomingServer pop3 mail.example.test {} STARTTLS %EMAILADDRESS%\n\
                 outgoingServer smtp mail.example.test {} STARTTLS %EMAILADDRESS%\n",
                ports.imaps, ports.pop3, ports.submission
            )
        );
    }
    // An address of a domain we do not serve.
    let r = https(
        &server,
        "autoconfig.example.test",
        &get(
            "autoconfig.example.test",
            "/mail/config-v1.1.xml?emailaddress=bob%40elsewhere.example",
        ),
    );
    assert_eq!(r.status, 404);
}

#[test]
fn outlook_autodiscover_answers_a_pox_request() {
    let (server, ports) = start();
    let body = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n<Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006\">\r\n<Request>\r\n<EMailAddress>alice@example.test</EMailAddress>\r\n<AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>\r\n</Request>\r\n</Autodiscover>\r\n";
    let request = format!(
        "POST /Autodiscover/Autodiscover.xml HTTP/1.1\r\nHost: autodiscover.example.test\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let r = https(&server, "autodiscover.example.test", &request);
    assert_eq!(r.status, 200, "{}", r.text());
    let summary = python(AUTODISCOVER_CHECK, &r.body);
    assert_eq!(
        summary,
        format!(
            "IMAP mail.example.test {} alice@example.test on SSL\n\
             POP3 mail.example.test {} alice@example.test on TLS\n\
             SMTP mail.example.test {} alice@example.test on TLS\n",
            ports.imaps, ports.pop3, ports.submission
        )
    );
}

#[test]
fn apple_mobileconfig_is_a_valid_plist_without_password() {
    let (server, ports) = start();
    let r = https(
        &server,
        "mail.example.test",
        &get(
            "mail.example.test",
            "/apple/mail.mobileconfig?email=alice%40example.test",
        ),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("content-type"),
        Some("application/x-apple-aspen-config")
    );
    let summary = python(MOBILECONFIG_CHECK, &r.body);
    assert_eq!(
        summary,
        format!(
            "EmailTypeIMAP alice@example.test mail.example.test {} True alice@example.test mail.example.test {} False\n",
            ports.imaps, ports.submission
        )
    );
    let r = https(
        &server,
        "mail.example.test",
        &get("mail.example.test", "/apple/mail.mobileconfig"),
    );
    assert_eq!(r.status, 400);
}

#[test]
fn plain_http_redirects_to_https_and_has_no_challenge_for_unknown_tokens() {
    let (server, _) = start();
    let mut t = tcp(server.addr("http"));
    let r = exchange(
        &mut t,
        get(
            "autoconfig.example.test",
            "/mail/config-v1.1.xml?emailaddress=a%40example.test",
        )
        .as_bytes(),
    );
    assert_eq!(r.status, 301);
    // The https listener is on port 0 in this config: no port in the URL.
    assert_eq!(
        r.header("location"),
        Some("https://autoconfig.example.test/mail/config-v1.1.xml?emailaddress=a%40example.test")
    );
    let mut t = tcp(server.addr("http"));
    let r = exchange(
        &mut t,
        get("example.test", "/.well-known/acme-challenge/no-such-token").as_bytes(),
    );
    assert_eq!(r.status, 404);
    let mut t = tcp(server.addr("http"));
    let r = exchange(&mut t, get("evil.example", "/").as_bytes());
    assert_eq!(r.status, 404);
}

#[test]
fn acme_tls_alpn_gets_the_handshake_and_nothing_else() {
    let (server, _) = start();
    let mut tls = common::tls::upgrade_alpn(
        tcp(server.addr("https")),
        "mail.example.test",
        &[b"acme-tls/1"],
    );
    assert_eq!(tls.conn.alpn_protocol(), Some(&b"acme-tls/1"[..]));
    let _ = tls.write_all(get("mail.example.test", "/mail/config-v1.1.xml").as_bytes());
    let mut buf = Vec::new();
    let _ = tls.read_to_end(&mut buf);
    assert!(buf.is_empty(), "served HTTP after acme-tls/1: {buf:?}");
    // http/1.1 is negotiated for ordinary clients.
    let mut tls = common::tls::upgrade_alpn(
        tcp(server.addr("https")),
        "mail.example.test",
        &[b"h2", b"http/1.1"],
    );
    assert_eq!(tls.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    let r = exchange(
        &mut tls,
        get("mail.example.test", "/mail/config-v1.1.xml").as_bytes(),
    );
    assert_eq!(r.status, 200);
}

/// Waits until the server closes `t`; returns how long that took.
fn closed_after(t: &mut TcpStream, started: Instant) -> (Duration, Vec<u8>) {
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match t.read(&mut chunk) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Ok(0) | Err(_) => return (started.elapsed(), got),
            Ok(n) => got.extend_from_slice(&chunk[..n]),
        }
    }
}

#[test]
fn slowloris_and_idle_clients_are_cut_off_at_the_timeout() {
    let (server, _) = start();
    // One header byte a second, never finishing the head.
    let started = Instant::now();
    let mut slow = tcp(server.addr("http"));
    let mut writer = slow.try_clone().unwrap();
    let trickle = std::thread::spawn(move || {
        let bytes =
            b"GET / HTTP/1.1\r\nHost: example.test\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        let mut sent = 0;
        for b in bytes {
            if writer.write_all(&[*b]).is_err() {
                break;
            }
            sent += 1;
            std::thread::sleep(Duration::from_secs(1));
        }
        sent
    });
    let (took, got) = closed_after(&mut slow, started);
    let sent = trickle.join().unwrap();
    // `timeouts { http "2s" }`: closed after about 2 s, not at once and
    // not after the whole trickle (54 s).
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(6),
        "slowloris closed after {took:?}"
    );
    assert!(sent < 10, "the server kept reading for {sent} bytes");
    assert!(
        got.is_empty() || got.starts_with(b"HTTP/1.1 408"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    // An idle connection (TCP and TLS alike), and one idle after a request.
    for kind in ["http", "https"] {
        let started = Instant::now();
        let mut idle = tcp(server.addr(kind));
        let (took, _) = closed_after(&mut idle, started);
        assert!(
            took < Duration::from_secs(6),
            "{kind} idle closed after {took:?}"
        );
    }
    let mut t = tcp(server.addr("http"));
    let r = exchange(&mut t, b"GET / HTTP/1.1\r\nHost: evil.example\r\n\r\n");
    assert_eq!(r.status, 404);
    let started = Instant::now();
    let (took, _) = closed_after(&mut t, started);
    assert!(
        took < Duration::from_secs(6),
        "keep-alive idle closed after {took:?}"
    );
    // Still serving.
    let r = https(
        &server,
        "mail.example.test",
        &get("mail.example.test", "/mail/config-v1.1.xml"),
    );
    assert_eq!(r.status, 200);
}

#[test]
fn oversized_heads_and_bodies_get_431_and_413() {
    let (server, _) = start();
    // One header of 20 KB.
    let mut t = tcp(server.addr("http"));
    let big = format!(
        "GET / HTTP/1.1\r\nHost: example.test\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let r = exchange(&mut t, big.as_bytes());
    assert_eq!(r.status, 431);
    // Many small headers.
    let mut t = tcp(server.addr("http"));
    let many: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    let r = exchange(
        &mut t,
        format!("GET / HTTP/1.1\r\nHost: example.test\r\n{many}\r\n").as_bytes(),
    );
    assert_eq!(r.status, 431);
    // A declared 1 GB body is refused before a byte of it is read.
    let mut tls = common::tls::upgrade(tcp(server.addr("https")), "autodiscover.example.test");
    let r = exchange(
        &mut tls,
        b"POST /autodiscover/autodiscover.xml HTTP/1.1\r\nHost: autodiscover.example.test\r\nContent-Length: 1000000000\r\n\r\n",
    );
    assert_eq!(r.status, 413);
    assert_eq!(r.header("connection"), Some("close"));
    // A chunked body that grows past the limit.
    let mut tls = common::tls::upgrade(tcp(server.addr("https")), "autodiscover.example.test");
    let mut request = b"POST /autodiscover/autodiscover.xml HTTP/1.1\r\nHost: autodiscover.example.test\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..40 {
        request.extend_from_slice(b"400\r\n");
        request.extend_from_slice(&[b'x'; 0x400]);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let r = exchange(&mut tls, &request);
    assert_eq!(r.status, 413);
    // Garbage instead of HTTP.
    let mut t = tcp(server.addr("http"));
    t.write_all(b"\x16\x03\x01\x00\x05hello\r\n\r\n").unwrap();
    let (_, got) = closed_after(&mut t, Instant::now());
    assert!(
        got.is_empty() || got.starts_with(b"HTTP/1.1 400"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    // Still serving.
    let r = https(
        &server,
        "mail.example.test",
        &get("mail.example.test", "/mail/config-v1.1.xml"),
    );
    assert_eq!(r.status, 200);
}

#[test]
fn a_kept_alive_connection_ends_after_its_request_budget() {
    let (server, _) = start();
    let mut t = tcp(server.addr("http"));
    for i in 1..=100 {
        let r = exchange(&mut t, b"GET / HTTP/1.1\r\nHost: evil.example\r\n\r\n");
        assert_eq!(r.status, 404);
        assert_eq!(
            r.header("connection"),
            (i == 100).then_some("close"),
            "request {i}"
        );
    }
    let (_, got) = closed_after(&mut t, Instant::now());
    assert!(got.is_empty());
}

#[test]
fn connections_over_the_listener_limit_get_503() {
    let server = Server::start(
        "listen \"http\" \"127.0.0.1:0\" max-connections=2\nlisten \"https\" \"127.0.0.1:0\" max-connections=1\n\
         timeouts {\n    http \"5s\"\n}\ndomain \"example.test\" {\n    dmarc policy=\"none\"\n}\n",
    );
    let held: Vec<TcpStream> = (0..2).map(|_| tcp(server.addr("http"))).collect();
    // Let the server account for both before the third arrives.
    std::thread::sleep(Duration::from_millis(300));
    let mut third = tcp(server.addr("http"));
    let (_, got) = closed_after(&mut third, Instant::now());
    assert!(
        got.starts_with(b"HTTP/1.1 503 "),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    // On https there is no TLS session to say 503 in: the connection is
    // closed at once (the held one would wait for the 5 s handshake timeout).
    let _held_tls = tcp(server.addr("https"));
    std::thread::sleep(Duration::from_millis(300));
    let mut refused = tcp(server.addr("https"));
    let (took, got) = closed_after(&mut refused, Instant::now());
    assert!(
        got.is_empty() && took < Duration::from_secs(2),
        "{took:?} {got:?}"
    );
    drop(held);
    // Slots are given back.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut t = tcp(server.addr("http"));
        let r = exchange(
            &mut t,
            b"GET / HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
        );
        if r.status == 404 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "slots not released: {}",
            r.status
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_reload_serves_the_new_policy() {
    let (server, _) = start();
    let fetch = || {
        https(
            &server,
            "mta-sts.example.test",
            &get("mta-sts.example.test", "/.well-known/mta-sts.txt"),
        )
        .text()
    };
    let before = fetch();
    assert!(before.contains("mode: enforce\n"), "{before}");
    let text = std::fs::read_to_string(&server.config).unwrap();
    std::fs::write(
        &server.config,
        text.replace("mta-sts mode=\"enforce\"", "mta-sts mode=\"testing\""),
    )
    .unwrap();
    server.signal("HUP");
    assert!(
        server.wait_log("reloaded", Duration::from_secs(20)),
        "{}",
        server.log_text()
    );
    let after = fetch();
    assert!(after.contains("mode: testing\n"), "{after}");
    let (policy, id) = dns_policy(&server);
    assert_eq!(after, policy);
    assert_eq!(mailc::dns::mta_sts_id(&after), id);
    assert_ne!(mailc::dns::mta_sts_id(&before), id);
}
