//! DNSSEC-aware lookups for DANE (RFC 7672): mailc does not validate
//! DNSSEC itself; it trusts the AD bit of the configured `resolver`, which
//! must therefore be a validating resolver on the same host (loopback) —
//! the AD bit travels unauthenticated, like Postfix's
//! `smtp_dns_support_level = dnssec`.
//!
//! These queries bypass hickory's resolver and its cache (which keeps
//! records, not the AD bit of the answer they came in): each is one raw
//! query with RD, AD and the EDNS DO bit set, over UDP (TCP when the answer
//! is truncated), to the configured servers in turn, bounded in time and
//! in size (a UDP answer in 4 KiB, a TCP answer in 64 KiB by its length
//! prefix).

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::outbound::dane::Tlsa;
use crate::outbound::tls_policy::DaneLookup;

/// One answer.
#[derive(Debug, Clone)]
pub struct SecureAnswer {
    pub rcode: ResponseCode,
    /// The resolver vouches for the answer (AD bit).
    pub authentic: bool,
    /// The records of the asked type in the answer section.
    pub records: Vec<RData>,
    /// Where the CNAME chain in the answer section leads from the name
    /// asked (lower case, no trailing dot); `None` without a CNAME.
    pub expanded: Option<String>,
}

/// Most CNAME hops followed in one answer.
const MAX_CNAME_HOPS: usize = 8;

/// The servers to ask: the configured ones, else those of
/// `/etc/resolv.conf`.
pub fn servers(configured: &[SocketAddr]) -> Vec<SocketAddr> {
    if !configured.is_empty() {
        return configured.to_vec();
    }
    match hickory_resolver::system_conf::read_system_conf() {
        Ok((conf, _)) => conf
            .name_servers()
            .iter()
            .map(|ns| SocketAddr::new(ns.ip, 53))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// One query to the first server that answers, each tried once within
/// `timeout`.
pub async fn query(
    servers: &[SocketAddr],
    name: &str,
    rtype: RecordType,
    timeout: Duration,
) -> Result<SecureAnswer, String> {
    let fqdn = if name.ends_with('.') {
        name.to_ascii_lowercase()
    } else {
        format!("{}.", name.to_ascii_lowercase())
    };
    let qname = Name::from_ascii(&fqdn).map_err(|e| format!("{name}: {e}"))?;
    let mut last = format!("no DNS server to ask for {fqdn} {rtype}");
    for server in servers {
        match tokio::time::timeout(timeout, ask(*server, &qname, rtype)).await {
            Ok(Ok(a)) => return Ok(a),
            Ok(Err(e)) => last = format!("{fqdn} {rtype} via {server}: {e}"),
            Err(_) => last = format!("{fqdn} {rtype} via {server}: no answer within {timeout:?}"),
        }
    }
    Err(last)
}

fn request(id: u16, qname: &Name, rtype: RecordType) -> Result<Vec<u8>, String> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.metadata.authentic_data = true;
    m.add_query(Query::query(qname.clone(), rtype));
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    edns.set_dnssec_ok(true);
    m.set_edns(edns);
    m.to_vec().map_err(|e| e.to_string())
}

fn id() -> u16 {
    let mut b = [0u8; 2];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    u16::from_be_bytes(b)
}

async fn ask(server: SocketAddr, qname: &Name, rtype: RecordType) -> Result<SecureAnswer, String> {
    let id = id();
    let req = request(id, qname, rtype)?;
    let bind: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0".parse().map_err(|_| "bind")?
    } else {
        "[::]:0".parse().map_err(|_| "bind")?
    };
    let udp = UdpSocket::bind(bind).await.map_err(|e| e.to_string())?;
    udp.connect(server).await.map_err(|e| e.to_string())?;
    udp.send(&req).await.map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 4096];
    let msg = loop {
        let n = udp.recv(&mut buf).await.map_err(|e| e.to_string())?;
        // Answers to other ids (late, spoofed) are ignored.
        if let Ok(m) = Message::from_vec(&buf[..n])
            && m.metadata.id == id
            && m.metadata.message_type == MessageType::Response
        {
            break m;
        }
    };
    let msg = if msg.metadata.truncation {
        ask_tcp(server, id, &req).await?
    } else {
        msg
    };
    answer(msg, qname, rtype)
}

async fn ask_tcp(server: SocketAddr, id: u16, req: &[u8]) -> Result<Message, String> {
    let mut tcp = TcpStream::connect(server)
        .await
        .map_err(|e| e.to_string())?;
    let mut framed = Vec::with_capacity(req.len() + 2);
    framed.extend_from_slice(&(req.len() as u16).to_be_bytes());
    framed.extend_from_slice(req);
    tcp.write_all(&framed).await.map_err(|e| e.to_string())?;
    let mut len = [0u8; 2];
    tcp.read_exact(&mut len).await.map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    tcp.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
    let m = Message::from_vec(&buf).map_err(|e| e.to_string())?;
    if m.metadata.id != id {
        return Err("TCP answer with another id".into());
    }
    Ok(m)
}

fn answer(msg: Message, qname: &Name, rtype: RecordType) -> Result<SecureAnswer, String> {
    match msg.queries.first() {
        Some(q) if q.name() == qname => {}
        _ => return Err("answer to another question".into()),
    }
    let records = msg
        .answers
        .iter()
        .filter(|r| r.record_type() == rtype)
        .map(|r| r.data.clone())
        .collect();
    // The CNAME chain from the name asked, bounded (a loop ends it).
    let mut at = qname.clone();
    for _ in 0..MAX_CNAME_HOPS {
        let next = msg.answers.iter().find_map(|r| match &r.data {
            RData::CNAME(c) if r.name == at => Some(c.0.clone()),
            _ => None,
        });
        match next {
            Some(n) => at = n,
            None => break,
        }
    }
    let expanded = (at != *qname).then(|| at.to_ascii().trim_end_matches('.').to_ascii_lowercase());
    Ok(SecureAnswer {
        rcode: msg.metadata.response_code,
        authentic: msg.metadata.authentic_data,
        records,
        expanded,
    })
}

/// Is the MX RRset of `domain` (or its secure denial, for an implicit MX)
/// DNSSEC-validated? Any failure counts as not secure: DANE then does not
/// apply to its hosts (RFC 7672 §2.2.1), and the MX lookup that routing
/// made decides whether mail can go at all.
pub async fn mx_secure(servers: &[SocketAddr], domain: &str, timeout: Duration) -> bool {
    matches!(
        query(servers, domain, RecordType::MX, timeout).await,
        Ok(a) if a.authentic && a.rcode == ResponseCode::NoError
    )
}

/// The TLSA records of `_<port>._tcp.<host>` for DANE (RFC 7672 §2.2.2):
/// only when the host's address records are secure; insecure answers and
/// no records are [`DaneLookup::NotApplicable`]; a SERVFAIL (the
/// validating resolver's answer to a bogus signature) or no answer is
/// [`DaneLookup::Failed`]. See [`tlsa_expanded`] for CNAMEs.
pub async fn tlsa(servers: &[SocketAddr], host: &str, port: u16, timeout: Duration) -> DaneLookup {
    tlsa_expanded(servers, host, port, timeout).await.0
}

/// [`tlsa`], and the names a DANE-TA certificate may carry (RFC 7672
/// §3.2.2): the MX host name, and when its address records came through
/// a secure CNAME chain (the resolver vouches for the whole answer), the
/// expanded name too. TLSA records are then looked up at the expanded
/// name first and, when it has no secure ones, at the original name
/// (RFC 7672 §2.2.3); records count only from a secure answer, and a
/// failed lookup at either name fails the whole.
pub async fn tlsa_expanded(
    servers: &[SocketAddr],
    host: &str,
    port: u16,
    timeout: Duration,
) -> (DaneLookup, Vec<String>) {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let mut names = vec![host.clone()];
    let mut expanded = None;
    let addr_secure = match query(servers, &host, RecordType::A, timeout).await {
        Ok(a) if a.rcode == ResponseCode::ServFail => {
            return (DaneLookup::Failed(format!("{host} A: SERVFAIL")), names);
        }
        Ok(a) if a.authentic && !a.records.is_empty() => {
            expanded = a.expanded;
            true
        }
        Ok(_) => match query(servers, &host, RecordType::AAAA, timeout).await {
            Ok(a) if a.authentic && !a.records.is_empty() => {
                expanded = a.expanded;
                true
            }
            Ok(_) | Err(_) => false,
        },
        Err(e) => return (DaneLookup::Failed(e), names),
    };
    if !addr_secure {
        return (DaneLookup::NotApplicable, names);
    }
    if let Some(e) = expanded {
        names.push(e.clone());
        match tlsa_at(servers, &e, port, timeout).await {
            DaneLookup::NotApplicable => {}
            found => return (found, names),
        }
    }
    (tlsa_at(servers, &host, port, timeout).await, names)
}

/// The secure TLSA records at `_<port>._tcp.<name>`.
async fn tlsa_at(servers: &[SocketAddr], name: &str, port: u16, timeout: Duration) -> DaneLookup {
    let name = format!("_{port}._tcp.{name}");
    match query(servers, &name, RecordType::TLSA, timeout).await {
        Err(e) => DaneLookup::Failed(e),
        Ok(a) => match a.rcode {
            ResponseCode::NoError | ResponseCode::NXDomain => {
                if !a.authentic || a.records.is_empty() {
                    return DaneLookup::NotApplicable;
                }
                DaneLookup::Records(
                    a.records
                        .iter()
                        .filter_map(|rd| match rd {
                            RData::TLSA(t) => Some(Tlsa {
                                usage: u8::from(t.cert_usage),
                                selector: u8::from(t.selector),
                                matching: u8::from(t.matching),
                                data: t.cert_data.clone(),
                            }),
                            _ => None,
                        })
                        .collect(),
                )
            }
            code => DaneLookup::Failed(format!("{name} TLSA: {code}")),
        },
    }
}
