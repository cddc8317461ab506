//! The DNSSEC-aware lookups DANE uses (`dns::secure`) against a hostile
//! fake resolver on loopback (UDP and TCP on one port): the AD bit decides
//! secure vs insecure, SERVFAIL is a failed lookup (defer), a TLSA RRset of
//! 1,000 records (truncated over UDP, a 64 KiB message over TCP) is read within its
//! bounds and only the first 32 records are ever matched, garbage and
//! silence are bounded failures. And CNAME expansion (RFC 7672 §2.2.3)
//! against a real authoritative server behind an AD-setting forwarder.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_resolver::proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_resolver::proto::rr::rdata::A;
use hickory_resolver::proto::rr::rdata::tlsa::{CertUsage, Matching, Selector, TLSA};
use hickory_resolver::proto::rr::{RData, Record, RecordType};
use mailc::dns::secure;
use mailc::outbound::dane;
use mailc::outbound::tls_policy::DaneLookup;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How the fake answers, by the first label of the host asked about.
fn respond(query: &Message) -> Option<Vec<u8>> {
    let q = query.queries.first()?;
    let name = q.name().to_ascii().to_ascii_lowercase();
    let mut m = Message::new(query.metadata.id, MessageType::Response, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.metadata.recursion_available = true;
    m.add_query(q.clone());
    let host = name.trim_start_matches("_25._tcp.");
    let label = host.split('.').next().unwrap_or_default().to_string();
    if label == "silent" {
        return None;
    }
    if label == "garbage" {
        return Some(vec![0xff; 40]);
    }
    m.metadata.authentic_data = label != "insecure";
    match q.query_type() {
        RecordType::A => {
            m.add_answer(Record::from_rdata(
                q.name().clone(),
                300,
                RData::A(A::new(127, 0, 0, 2)),
            ));
        }
        RecordType::TLSA if label == "bogus" => {
            m.metadata.authentic_data = false;
            m.metadata.response_code = ResponseCode::ServFail;
        }
        RecordType::TLSA => {
            let n = if label == "many" { 1000 } else { 1 };
            for i in 0..n as u32 {
                let mut data = vec![0u8; 32];
                data[..4].copy_from_slice(&i.to_be_bytes());
                m.add_answer(Record::from_rdata(
                    q.name().clone(),
                    300,
                    RData::TLSA(TLSA::new(
                        CertUsage::from(3),
                        Selector::from(1),
                        Matching::from(1),
                        data,
                    )),
                ));
            }
        }
        _ => {}
    }
    m.to_vec().ok()
}

/// The fake resolver; UDP answers over 1,232 bytes are truncated (TC) so
/// the client must come back over TCP.
async fn fake() -> SocketAddr {
    let udp = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let addr = udp.local_addr().unwrap();
    let tcp = tokio::net::TcpListener::bind(addr).await.unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, peer)) = udp.recv_from(&mut buf).await else {
                return;
            };
            let Ok(q) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            if let Some(mut out) = respond(&q) {
                if out.len() > 1232 {
                    let mut t = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
                    t.metadata.truncation = true;
                    t.add_query(q.queries[0].clone());
                    out = t.to_vec().unwrap();
                }
                let _ = udp.send_to(&out, peer).await;
            }
        }
    });
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = tcp.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut len = [0u8; 2];
                s.read_exact(&mut len).await.ok()?;
                let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
                s.read_exact(&mut buf).await.ok()?;
                let q = Message::from_vec(&buf).ok()?;
                let out = respond(&q)?;
                let mut framed = (out.len() as u16).to_be_bytes().to_vec();
                framed.extend_from_slice(&out);
                s.write_all(&framed).await.ok()
            });
        }
    });
    addr
}

#[tokio::test]
async fn secure_insecure_bogus_and_a_thousand_records() {
    let server = fake().await;
    let servers = [server];
    let t = Duration::from_secs(2);

    match secure::tlsa(&servers, "one.example.test", 25, t).await {
        DaneLookup::Records(r) => assert_eq!(r.len(), 1),
        other => panic!("one: {other:?}"),
    }
    assert_eq!(
        secure::tlsa(&servers, "insecure.example.test", 25, t).await,
        DaneLookup::NotApplicable
    );
    assert!(matches!(
        secure::tlsa(&servers, "bogus.example.test", 25, t).await,
        DaneLookup::Failed(e) if e.contains("Server Failure")
    ));
    assert!(secure::mx_secure(&servers, "one.example.test", t).await);
    assert!(!secure::mx_secure(&servers, "insecure.example.test", t).await);

    let start = Instant::now();
    let many = secure::tlsa(&servers, "many.example.test", 25, t).await;
    let DaneLookup::Records(records) = many else {
        panic!("many: {many:?}");
    };
    // Over TCP, up to the 64 KiB a DNS message can hold (the fake's
    // encoder fits 939 of the 1,000 records into it).
    assert!(
        (900..=1000).contains(&records.len()),
        "read over TCP: {}",
        records.len()
    );
    assert_eq!(dane::usable(&records).len(), dane::MAX_TLSA_RECORDS);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn garbage_and_silence_are_bounded_failures() {
    let server = fake().await;
    let servers = [server];
    let t = Duration::from_millis(500);
    for host in ["garbage.example.test", "silent.example.test"] {
        let start = Instant::now();
        let r = secure::tlsa(&servers, host, 25, t).await;
        assert!(matches!(r, DaneLookup::Failed(_)), "{host}: {r:?}");
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{host}: {:?}",
            start.elapsed()
        );
        assert!(!secure::mx_secure(&servers, host, t).await);
    }
    // Nothing listening at all.
    let closed: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let r = secure::tlsa(&[closed], "one.example.test", 25, t).await;
    assert!(matches!(r, DaneLookup::Failed(_)), "{r:?}");
}

/// RFC 7672 §2.2.3 against a real authoritative server (hickory-server on
/// loopback) behind a forwarder that sets the AD bit per name, as a
/// validating resolver would for a partly signed zone: an MX host that is
/// a CNAME has its TLSA records looked up at the expanded name first, then
/// at the original one; records count only from secure answers; the names
/// a DANE-TA certificate may carry are both.
#[test]
fn tlsa_lookups_follow_a_secure_cname_expansion() {
    use common::dns_server::{CountingProxy, DnsServer};
    let rec = |b: u8| format!("3 1 1 {}", format!("{b:02x}").repeat(32));
    let zone = format!(
        "mx 300 IN CNAME real\n\
         real 300 IN A 127.0.0.2\n\
         _25._tcp.real 300 IN TLSA {}\n\
         _25._tcp.mx 300 IN TLSA {}\n\
         fallback 300 IN CNAME plain\n\
         plain 300 IN A 127.0.0.3\n\
         _25._tcp.fallback 300 IN TLSA {}\n\
         hop 300 IN CNAME unsigned\n\
         unsigned 300 IN A 127.0.0.4\n\
         _25._tcp.unsigned 300 IN TLSA {}\n\
         _25._tcp.hop 300 IN TLSA {}\n\
         insecurechain 300 IN CNAME real\n\
         _25._tcp.insecurechain 300 IN TLSA {}\n\
         direct 300 IN A 127.0.0.5\n\
         _25._tcp.direct 300 IN TLSA {}\n",
        rec(0x11),
        rec(0x22),
        rec(0x33),
        rec(0x44),
        rec(0x55),
        rec(0x66),
        rec(0x77)
    );
    let dns = DnsServer::start(&[("example.test.", zone)]);
    let proxy = CountingProxy::start_judging(
        dns.addr,
        Arc::new(|name: &str| {
            name != "_25._tcp.unsigned.example.test." && name != "insecurechain.example.test."
        }),
    );
    let servers = [proxy.addr];
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let lookup = |host: &str| {
        rt.block_on(secure::tlsa_expanded(
            &servers,
            host,
            25,
            Duration::from_secs(2),
        ))
    };
    let first_byte = |l: &DaneLookup| match l {
        DaneLookup::Records(r) => r.iter().map(|t| t.data[0]).collect::<Vec<_>>(),
        other => panic!("no records: {other:?}"),
    };
    let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();

    // The expanded name's records win over the original's.
    let (l, n) = lookup("mx.example.test");
    assert_eq!(first_byte(&l), [0x11]);
    assert_eq!(n, names(&["mx.example.test", "real.example.test"]));
    // None at the expanded name (secure denial): the original's.
    let (l, n) = lookup("fallback.example.test.");
    assert_eq!(first_byte(&l), [0x33]);
    assert_eq!(n, names(&["fallback.example.test", "plain.example.test"]));
    assert!(proxy.asked("_25._tcp.plain.example.test", RecordType::TLSA));
    // Insecure records at the expanded name are not used.
    let (l, _) = lookup("hop.example.test");
    assert_eq!(first_byte(&l), [0x55]);
    // An address answer (CNAME chain included) that is not secure: no DANE,
    // whatever TLSA records exist.
    let (l, n) = lookup("insecurechain.example.test");
    assert_eq!(l, DaneLookup::NotApplicable);
    assert_eq!(n, names(&["insecurechain.example.test"]));
    assert!(!proxy.asked("_25._tcp.insecurechain.example.test", RecordType::TLSA));
    // No CNAME: one name, one TLSA query.
    let (l, n) = lookup("direct.example.test");
    assert_eq!(first_byte(&l), [0x77]);
    assert_eq!(n, names(&["direct.example.test"]));
}
