//! The MTA-STS policy client (`services::mta_sts`) against a real DNS server
//! (hickory, in-process) and a hostile HTTPS server (tokio-rustls) on
//! loopback, port 0 (the client's `https_port` is set for the test; the
//! server binary always uses 443): a good policy is fetched and cached and
//! the cache answers the next lookup; a redirect, an HTML page, a 1 MB body,
//! a body that never ends, and a certificate for another name each fail
//! with their RFC 8460 result type; a failed fetch keeps a fresh cached
//! policy.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::dns_server::DnsServer;
use mailc::outbound::mta_sts::{Cached, Mode, Policy};
use mailc::outbound::tlsrpt::FailureType;
use mailc::services::mta_sts::StsClient;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const DOMAINS: &[&str] = &[
    "good",
    "redirect",
    "html",
    "big",
    "endless",
    "wrongcert",
    "cached",
];

fn response(host: &str) -> Vec<u8> {
    let policy = b"version: STSv1\r\nmode: enforce\r\nmx: mx.good.test\r\nmax_age: 604800\r\n";
    match host {
        "mta-sts.good.test" => {
            let mut r = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
                policy.len()
            )
            .into_bytes();
            r.extend_from_slice(policy);
            r
        }
        "mta-sts.redirect.test" => {
            b"HTTP/1.1 301 Moved\r\nLocation: https://mta-sts.good.test/.well-known/mta-sts.txt\r\nContent-Length: 0\r\n\r\n".to_vec()
        }
        "mta-sts.html.test" => {
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 7\r\n\r\n<html/>".to_vec()
        }
        "mta-sts.big.test" => {
            let mut r = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n".to_vec();
            r.extend_from_slice(policy);
            r.resize(1024 * 1024, b'#');
            r
        }
        _ => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec(),
    }
}

/// The HTTPS server: one response per connection, chosen by the Host
/// header; `mta-sts.endless.test` gets bytes forever (until the client
/// goes).
async fn https_server(
    acceptor: tokio_rustls::TlsAcceptor,
    hits: Arc<Mutex<HashMap<String, usize>>>,
) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, hits) = (acceptor.clone(), hits.clone());
            tokio::spawn(async move {
                let mut tls = acceptor.accept(tcp).await.ok()?;
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 8192 {
                    let n = tls.read(&mut buf).await.ok()?;
                    if n == 0 {
                        return None;
                    }
                    req.extend_from_slice(&buf[..n]);
                }
                let text = String::from_utf8_lossy(&req).to_string();
                let host = text
                    .lines()
                    .find_map(|l| l.strip_prefix("Host: "))
                    .unwrap_or_default()
                    .trim()
                    .to_string();
                *hits.lock().unwrap().entry(host.clone()).or_default() += 1;
                if host == "mta-sts.endless.test" {
                    tls.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")
                        .await
                        .ok()?;
                    let junk = [b'x'; 4096];
                    loop {
                        tls.write_all(&junk).await.ok()?;
                    }
                }
                let _ = tls.write_all(&response(&host)).await;
                let _ = tls.shutdown().await;
                Some(())
            });
        }
    });
    port
}

#[test]
fn fetch_cache_and_hostile_policy_servers() {
    let mut zones = Vec::new();
    for d in DOMAINS {
        let id = if *d == "cached" { "2" } else { "1" };
        // mta-sts.cached.test has no address: its fetch fails.
        let addr = if *d == "cached" {
            String::new()
        } else {
            "mta-sts 300 IN A 127.0.0.1\n".to_string()
        };
        zones.push((
            format!("{d}.test."),
            format!("_mta-sts 300 IN TXT \"v=STSv1; id={id}\"\n{addr}"),
        ));
    }
    let zones: Vec<(&str, String)> = zones.iter().map(|(o, t)| (o.as_str(), t.clone())).collect();
    let dns = DnsServer::start(&zones);

    // One self-signed certificate, trusted by the client, for every name
    // but mta-sts.wrongcert.test.
    let names: Vec<String> = DOMAINS
        .iter()
        .filter(|d| **d != "wrongcert")
        .map(|d| format!("mta-sts.{d}.test"))
        .collect();
    let generated = rcgen::generate_simple_self_signed(names).unwrap();
    let cert = generated.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        generated.signing_key.serialize_der(),
    ));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.clone()], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();

    let state = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let hits = Arc::new(Mutex::new(HashMap::new()));
        let port = https_server(acceptor, hits.clone()).await;
        let resolver = mailc::dns::resolver::build(&[dns.addr], Duration::from_secs(2)).unwrap();
        let mut client = StsClient::new(state.path(), Arc::new(roots), resolver);
        client.https_port = port;

        // A good policy: fetched once, cached, then the cache answers.
        let good = client.lookup("good.test").await;
        let policy = good.policy.clone().expect("a policy");
        assert_eq!(policy.mode, Mode::Enforce);
        assert_eq!(policy.mx, vec!["mx.good.test"]);
        assert_eq!(good.failure, None);
        assert!(state.path().join("mta-sts/good.test.json").is_file());
        let again = client.lookup("good.test").await;
        assert_eq!(again.policy, Some(policy));
        assert_eq!(hits.lock().unwrap()["mta-sts.good.test"], 1, "cached");

        for (d, kind, text) in [
            ("redirect.test", FailureType::StsPolicyFetchError, "301"),
            ("html.test", FailureType::StsPolicyInvalid, "text/html"),
            ("big.test", FailureType::StsPolicyInvalid, "larger than"),
            ("endless.test", FailureType::StsPolicyInvalid, "larger than"),
            (
                "wrongcert.test",
                FailureType::StsWebpkiInvalid,
                "certificate",
            ),
        ] {
            let start = Instant::now();
            let r = client.lookup(d).await;
            assert_eq!(r.policy, None, "{d}");
            let (k, why) = r.failure.unwrap_or_else(|| panic!("{d}: no failure"));
            assert_eq!(k, kind, "{d}: {why}");
            assert!(why.contains(text), "{d}: {why}");
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{d}: {:?}",
                start.elapsed()
            );
            assert!(!state.path().join(format!("mta-sts/{d}.json")).exists());
        }
        assert_eq!(
            hits.lock().unwrap().get("mta-sts.redirect.test"),
            Some(&1),
            "no redirect followed"
        );
        // A failed fetch is not repeated at once: the same failure comes
        // back without a request.
        let r = client.lookup("html.test").await;
        assert_eq!(r.failure.map(|f| f.0), Some(FailureType::StsPolicyInvalid));
        assert_eq!(hits.lock().unwrap().get("mta-sts.html.test"), Some(&1));
        assert_eq!(hits.lock().unwrap().get("mta-sts.good.test"), Some(&1));

        // A changed id whose fetch fails: the fresh cached policy stays.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let cached = Cached {
            id: "1".into(),
            fetched: now - 60,
            policy: Policy {
                mode: Mode::Testing,
                mx: vec!["*.cached.test".into()],
                max_age: 3600,
            },
        };
        std::fs::write(
            state.path().join("mta-sts/cached.test.json"),
            serde_json::to_vec(&cached).unwrap(),
        )
        .unwrap();
        let r = client.lookup("cached.test").await;
        assert_eq!(r.policy, Some(cached.policy.clone()));
        assert_eq!(
            r.failure.map(|f| f.0),
            Some(FailureType::StsPolicyFetchError)
        );
        // An expired one does not.
        let expired = Cached {
            fetched: now - 7200,
            ..cached
        };
        std::fs::write(
            state.path().join("mta-sts/cached.test.json"),
            serde_json::to_vec(&expired).unwrap(),
        )
        .unwrap();
        assert_eq!(client.lookup("cached.test").await.policy, None);
        // A domain without a TXT record has no policy and costs no fetch.
        let calls = AtomicUsize::new(hits.lock().unwrap().values().sum());
        assert_eq!(client.lookup("nothing.test").await.policy, None);
        assert_eq!(
            hits.lock().unwrap().values().sum::<usize>(),
            calls.load(Ordering::Relaxed)
        );
    });
}
