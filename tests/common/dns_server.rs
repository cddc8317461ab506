//! A real authoritative DNS server for tests: hickory-server in-process on
//! 127.0.0.1 (UDP and TCP on one port), serving zones given as zone-file
//! text plus an empty root zone (so names outside the zones get NXDOMAIN
//! rather than REFUSED).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_server::Server;
use hickory_server::proto::rr::{LowerName, Name};
use hickory_server::proto::serialize::txt::Parser;
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneType};

pub struct DnsServer {
    pub addr: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
}

fn soa(origin: &str) -> String {
    format!("$ORIGIN {origin}\n@ 3600 IN SOA ns.test. hostmaster.test. 1 3600 600 86400 300\n")
}

impl DnsServer {
    /// `zones`: (origin with trailing dot, zone text without SOA).
    pub fn start(zones: &[(&str, String)]) -> DnsServer {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let mut catalog = Catalog::new();
        let mut all: Vec<(String, String)> = zones
            .iter()
            .map(|(o, t)| (o.to_string(), t.clone()))
            .collect();
        if !all.iter().any(|(o, _)| o == ".") {
            all.push((".".into(), String::new()));
        }
        for (origin, text) in all {
            let full = format!("{}{text}", soa(&origin));
            let name = Name::from_ascii(&origin).expect("origin");
            let (parsed_origin, records) = Parser::new(full.as_str(), None, Some(name.clone()))
                .parse()
                .unwrap_or_else(|e| panic!("zone {origin} does not parse: {e}\n{full}"));
            let handler =
                InMemoryZoneHandler::<hickory_server::net::runtime::TokioRuntimeProvider>::new(
                    parsed_origin.clone(),
                    records,
                    ZoneType::Primary,
                    AxfrPolicy::Deny,
                )
                .unwrap_or_else(|e| panic!("zone {origin}: {e}"));
            catalog.upsert(LowerName::new(&parsed_origin), vec![Arc::new(handler)]);
        }
        let addr = runtime.block_on(async move {
            // UDP and TCP on the same port.
            for _ in 0..20 {
                let udp = tokio::net::UdpSocket::bind("127.0.0.1:0")
                    .await
                    .expect("udp");
                let addr = udp.local_addr().expect("addr");
                let Ok(tcp) = tokio::net::TcpListener::bind(addr).await else {
                    continue;
                };
                let mut server = Server::new(catalog);
                server.register_socket(udp);
                server.register_listener(tcp, Duration::from_secs(5), 65_535);
                tokio::spawn(async move {
                    let _ = server.block_until_done().await;
                });
                return addr;
            }
            panic!("no port for UDP and TCP");
        });
        DnsServer {
            addr,
            runtime: Some(runtime),
        }
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

/// One query a [`CountingProxy`] forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenQuery {
    /// Lower case, with the trailing dot.
    pub name: String,
    pub rtype: hickory_server::proto::rr::RecordType,
    /// The EDNS DO bit: a DNSSEC-aware query (mailc's DANE lookups).
    pub dnssec_ok: bool,
}

/// A UDP forwarder in front of a real DNS server that records every query
/// (name, type, DO bit), so that a test can tell which lookups a server
/// made and which it did not. With `claim_secure`, it sets the AD bit on
/// every answer, as a validating resolver does for a signed zone (the
/// upstream is not signed: this is a stand-in for the validator, not for
/// the zone). UDP only: the answers in these tests are small.
pub struct CountingProxy {
    pub addr: SocketAddr,
    seen: Arc<std::sync::Mutex<Vec<SeenQuery>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl CountingProxy {
    pub fn start(upstream: SocketAddr, claim_secure: bool) -> CountingProxy {
        CountingProxy::start_judging(upstream, Arc::new(move |_: &str| claim_secure))
    }

    /// As [`CountingProxy::start`], with the AD bit set on the answers to
    /// the names (lower case, trailing dot) `secure` says yes to: a zone
    /// signed in part, as a validating resolver would report it.
    pub fn start_judging(
        upstream: SocketAddr,
        secure: Arc<dyn Fn(&str) -> bool + Send + Sync>,
    ) -> CountingProxy {
        use hickory_server::proto::op::Message;
        use std::sync::atomic::Ordering;
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread = {
            let (seen, stop) = (seen.clone(), stop.clone());
            std::thread::spawn(move || {
                let socket = Arc::new(socket);
                let mut buf = vec![0u8; 65_535];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, from)) = socket.recv_from(&mut buf) else {
                        continue;
                    };
                    let query = buf[..n].to_vec();
                    let mut claim_secure = false;
                    if let Ok(m) = Message::from_vec(&query)
                        && let Some(q) = m.queries.first()
                    {
                        claim_secure = secure(&q.name().to_ascii().to_ascii_lowercase());
                        seen.lock().unwrap().push(SeenQuery {
                            name: q.name().to_ascii().to_ascii_lowercase(),
                            rtype: q.query_type(),
                            dnssec_ok: m.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok),
                        });
                    }
                    let socket = socket.clone();
                    std::thread::spawn(move || {
                        let up = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
                        up.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
                        up.connect(upstream).unwrap();
                        up.send(&query).unwrap();
                        let mut answer = vec![0u8; 65_535];
                        let Ok(n) = up.recv(&mut answer) else {
                            return;
                        };
                        answer.truncate(n);
                        if claim_secure && let Ok(mut m) = Message::from_vec(&answer) {
                            m.metadata.authentic_data = true;
                            answer = m.to_vec().unwrap_or(answer);
                        }
                        let _ = socket.send_to(&answer, from);
                    });
                }
            })
        };
        CountingProxy {
            addr,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    pub fn queries(&self) -> Vec<SeenQuery> {
        self.seen.lock().unwrap().clone()
    }

    /// Whether a query for `name` (trailing dot optional) of `rtype` came.
    pub fn asked(&self, name: &str, rtype: hickory_server::proto::rr::RecordType) -> bool {
        let name = format!("{}.", name.trim_end_matches('.').to_ascii_lowercase());
        self.queries()
            .iter()
            .any(|q| q.name == name && q.rtype == rtype)
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
