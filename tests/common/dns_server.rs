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
