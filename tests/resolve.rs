//! Outbound routing (`dns::resolver`) against real DNS servers on loopback:
//! an authoritative hickory-server in-process for the zones below, a
//! responder that answers SERVFAIL to everything, and a port where nobody
//! answers. Addresses in the zones are documentation ranges; nothing
//! connects to them.

mod common;

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::dns_server::DnsServer;
use mailc::dns::resolver::{self, Hop, MxPolicy, Resolver, RouteError};

const ZONE: &str = r#"
order      IN MX 30 mx3
order      IN MX 10 mx1
order      IN MX 20 mx2
mx1        IN A 192.0.2.1
mx2        IN A 192.0.2.2
mx3        IN A 192.0.2.3

shuffle    IN MX 10 a
shuffle    IN MX 10 b
shuffle    IN MX 20 c
a          IN A 192.0.2.10
b          IN A 192.0.2.11
c          IN A 192.0.2.12

implicit   IN A 192.0.2.20
implicit   IN AAAA 2001:db8::20

nullmx     IN MX 0 .

loop       IN MX 10 self
loop       IN MX 20 mx2
self       IN A 192.0.2.25
backup     IN MX 5 mx1
backup     IN MX 10 self
backup     IN MX 20 mx2
loopname   IN MX 10 mx.self.test.
loopname   IN MX 10 mx2
selfimpl   IN A 192.0.2.25

noaddr     IN MX 10 ghost
noaddr     IN MX 20 textonly
textonly   IN TXT "no address here"
someaddr   IN MX 10 ghost
someaddr   IN MX 20 mx3

dual       IN MX 10 dualhost
dualhost   IN A 192.0.2.30
dualhost   IN AAAA 2001:db8::30
dualhost   IN A 192.0.2.31
dualhost   IN AAAA 2001:db8::31

many       IN MX 10 h1
many       IN MX 20 h2
many       IN MX 30 h3
many       IN MX 40 h4
h1         IN A 192.0.2.41
h1         IN A 192.0.2.42
h1         IN A 192.0.2.43
h2         IN A 192.0.2.44
h2         IN A 192.0.2.45
h3         IN A 192.0.2.46
h4         IN A 192.0.2.47

cname      IN MX 10 alias
alias      IN CNAME target
target     IN A 192.0.2.50

nothing    IN TXT "exists, no MX, no address"

MiXeD      IN MX 10 MX1
"#;

const SELF_ZONE: &str = "mx IN A 192.0.2.99\n";

fn server() -> &'static DnsServer {
    static SERVER: OnceLock<DnsServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        DnsServer::start(&[
            ("example.test.", ZONE.to_string()),
            ("self.test.", SELF_ZONE.to_string()),
        ])
    })
}

fn policy() -> MxPolicy {
    MxPolicy {
        ipv4: true,
        ipv6: true,
        max_mx: 10,
        max_addrs: 20,
        port: 2525,
        me: vec!["mx.self.test".into()],
        my_ips: vec!["192.0.2.25".parse().unwrap()],
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn resolver_for(servers: &[SocketAddr]) -> Resolver {
    resolver::build(servers, Duration::from_millis(800)).expect("resolver")
}

fn route(domain: &str, p: &MxPolicy) -> Result<Vec<Hop>, RouteError> {
    let r = resolver_for(&[server().addr]);
    runtime().block_on(resolver::mx_route(&r, domain, p))
}

fn hosts(hops: &[Hop]) -> Vec<(&str, u16)> {
    hops.iter()
        .map(|h| (h.host.as_str(), h.preference))
        .collect()
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn permanent_status(e: RouteError) -> &'static str {
    match e {
        RouteError::Permanent { status, .. } => status,
        RouteError::Temporary(t) => panic!("expected a permanent failure, got temporary: {t}"),
    }
}

#[test]
fn mx_hosts_come_in_preference_order_with_the_configured_port() {
    let hops = route("order.example.test", &policy()).unwrap();
    assert_eq!(
        hosts(&hops),
        [
            ("mx1.example.test", 10),
            ("mx2.example.test", 20),
            ("mx3.example.test", 30)
        ]
    );
    assert_eq!(hops[0].addrs, [sa("192.0.2.1:2525")]);
    assert_eq!(hops[2].addrs, [sa("192.0.2.3:2525")]);
    // Case and a final dot do not matter.
    let again = route("ORDER.Example.Test.", &policy()).unwrap();
    assert_eq!(hosts(&again), hosts(&hops));
    let mixed = route("mixed.example.test", &policy()).unwrap();
    assert_eq!(hosts(&mixed), [("mx1.example.test", 10)]);
}

#[test]
fn hosts_of_one_preference_are_shuffled() {
    let r = resolver_for(&[server().addr]);
    let rt = runtime();
    let mut a_first = 0;
    let mut b_first = 0;
    for _ in 0..200 {
        let hops = rt
            .block_on(resolver::mx_route(&r, "shuffle.example.test", &policy()))
            .unwrap();
        let names: Vec<&str> = hops.iter().map(|h| h.host.as_str()).collect();
        // The preference-20 host is always last.
        assert_eq!(names.len(), 3);
        assert_eq!(names[2], "c.example.test");
        match names[0] {
            "a.example.test" => a_first += 1,
            "b.example.test" => b_first += 1,
            other => panic!("unexpected first host {other}"),
        }
    }
    // Both orders occur, roughly evenly (each well above 1 in 2^40 odds).
    assert!(
        a_first > 40 && b_first > 40,
        "a first {a_first}, b first {b_first}"
    );
}

#[test]
fn a_domain_without_mx_is_its_own_mx() {
    let hops = route("implicit.example.test", &policy()).unwrap();
    assert_eq!(hosts(&hops), [("implicit.example.test", 0)]);
    // IPv6 first, then IPv4.
    assert_eq!(
        hops[0].addrs,
        [sa("[2001:db8::20]:2525"), sa("192.0.2.20:2525")]
    );
}

#[test]
fn null_mx_fails_permanently() {
    let e = route("nullmx.example.test", &policy()).unwrap_err();
    assert!(e.to_string().contains("null MX"), "{e}");
    assert_eq!(permanent_status(e), "5.1.10");
}

#[test]
fn a_domain_that_does_not_exist_fails_permanently() {
    let e = route("nope.example.test", &policy()).unwrap_err();
    assert!(e.to_string().contains("does not exist"), "{e}");
    assert_eq!(permanent_status(e), "5.1.2");
    // Outside every zone (the server's empty root zone says NXDOMAIN).
    let e = route("nowhere.invalid", &policy()).unwrap_err();
    assert_eq!(permanent_status(e), "5.1.2");
    // Exists, but neither MX nor address.
    let e = route("nothing.example.test", &policy()).unwrap_err();
    assert_eq!(permanent_status(e), "5.1.2");
}

/// A DNS server that answers SERVFAIL to every query (UDP).
fn servfail_server(rt: &tokio::runtime::Runtime) -> SocketAddr {
    let sock = rt
        .block_on(tokio::net::UdpSocket::bind("127.0.0.1:0"))
        .unwrap();
    let addr = sock.local_addr().unwrap();
    rt.spawn(async move {
        let mut buf = [0u8; 1500];
        while let Ok((n, peer)) = sock.recv_from(&mut buf).await {
            if n < 12 {
                continue;
            }
            let mut reply = buf[..n].to_vec();
            reply[2] |= 0x80; // QR: a response
            reply[3] = (reply[3] & 0xf0) | 2; // RCODE: SERVFAIL
            let _ = sock.send_to(&reply, peer).await;
        }
    });
    addr
}

#[test]
fn servfail_is_temporary_and_quick() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let addr = servfail_server(&rt);
    let r = resolver_for(&[addr]);
    let start = Instant::now();
    let e = rt
        .block_on(resolver::mx_route(&r, "order.example.test", &policy()))
        .unwrap_err();
    assert!(matches!(e, RouteError::Temporary(_)), "{e:?}");
    assert!(
        e.to_string().contains("SERVFAIL") || e.to_string().contains("Server Failure"),
        "{e}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn a_silent_or_dead_server_is_temporary_within_the_bound() {
    let rt = runtime();
    // Bound and never read: queries time out.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    // Bound, then closed: queries are refused (ICMP port unreachable).
    let dead = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    for addr in [silent.local_addr().unwrap(), dead_addr] {
        let r = resolver_for(&[addr]);
        let start = Instant::now();
        let e = rt
            .block_on(resolver::mx_route(&r, "order.example.test", &policy()))
            .unwrap_err();
        assert!(matches!(e, RouteError::Temporary(_)), "{addr}: {e:?}");
        // 800 ms per query, twice, plus slack: bounded, never hanging.
        assert!(
            start.elapsed() < Duration::from_secs(4),
            "{addr}: {:?}",
            start.elapsed()
        );
        let e = rt
            .block_on(resolver::host_addrs(&r, "mx1.example.test", 25, &policy()))
            .unwrap_err();
        assert!(matches!(e, RouteError::Temporary(_)), "{addr}: {e:?}");
    }
}

#[test]
fn a_dead_server_is_skipped_for_a_live_one() {
    let dead = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let r = resolver_for(&[dead_addr, server().addr]);
    let hops = runtime()
        .block_on(resolver::mx_route(&r, "order.example.test", &policy()))
        .unwrap();
    assert_eq!(hops.len(), 3);
}

#[test]
fn an_mx_that_is_this_server_is_a_loop_not_a_delivery() {
    // We are the best MX: nothing may be tried.
    let e = route("loop.example.test", &policy()).unwrap_err();
    assert!(e.to_string().contains("loops back to myself"), "{e}");
    assert_eq!(permanent_status(e), "5.4.6");
    // A better MX than us exists: only it is tried (RFC 5321 §5.1).
    let hops = route("backup.example.test", &policy()).unwrap();
    assert_eq!(hosts(&hops), [("mx1.example.test", 5)]);
    // By name: our hostname at preference 10 drops mx2 of the same
    // preference too.
    let e = route("loopname.example.test", &policy()).unwrap_err();
    assert_eq!(permanent_status(e), "5.4.6");
    // Implicit MX pointing at our address.
    let e = route("selfimpl.example.test", &policy()).unwrap_err();
    assert_eq!(permanent_status(e), "5.4.6");
    // A literal of our own address.
    let e = route("[192.0.2.25]", &policy()).unwrap_err();
    assert_eq!(permanent_status(e), "5.4.6");
    // Without us in the policy, the same domains route normally.
    let mut other = policy();
    other.me.clear();
    other.my_ips = vec!["127.0.0.1".parse().unwrap()];
    let hops = route("loop.example.test", &other).unwrap();
    assert_eq!(
        hosts(&hops),
        [("self.example.test", 10), ("mx2.example.test", 20)]
    );
}

#[test]
fn mx_hosts_without_address_are_skipped() {
    let hops = route("someaddr.example.test", &policy()).unwrap();
    assert_eq!(hosts(&hops), [("mx3.example.test", 20)]);
    let e = route("noaddr.example.test", &policy()).unwrap_err();
    match &e {
        RouteError::Temporary(t) => {
            assert!(t.contains("ghost.example.test"), "{t}");
            assert!(t.contains("textonly.example.test"), "{t}");
        }
        other => panic!("expected temporary, got {other:?}"),
    }
}

#[test]
fn address_families_follow_the_policy() {
    let hops = route("dual.example.test", &policy()).unwrap();
    assert_eq!(hops[0].addrs.len(), 4);
    // Interleaved, IPv6 first.
    assert!(hops[0].addrs[0].is_ipv6() && hops[0].addrs[1].is_ipv4());
    assert!(hops[0].addrs[2].is_ipv6() && hops[0].addrs[3].is_ipv4());

    let mut v4 = policy();
    v4.ipv6 = false;
    let hops = route("dual.example.test", &v4).unwrap();
    let mut addrs = hops[0].addrs.clone();
    addrs.sort();
    assert_eq!(addrs, [sa("192.0.2.30:2525"), sa("192.0.2.31:2525")]);

    let mut v6 = policy();
    v6.ipv4 = false;
    let hops = route("dual.example.test", &v6).unwrap();
    assert!(hops[0].addrs.iter().all(|a| a.is_ipv6()), "{hops:?}");
    // Only IPv4 exists: with IPv6 only there is nothing to try.
    let e = route("order.example.test", &v6).unwrap_err();
    assert!(matches!(e, RouteError::Temporary(_)), "{e:?}");
    // A literal of a disabled family.
    let e = route("[192.0.2.7]", &v6).unwrap_err();
    assert_eq!(permanent_status(e), "5.4.4");
}

#[test]
fn hosts_and_addresses_are_bounded() {
    let mut p = policy();
    p.max_mx = 2;
    p.max_addrs = 4;
    let hops = route("many.example.test", &p).unwrap();
    assert_eq!(
        hosts(&hops),
        [("h1.example.test", 10), ("h2.example.test", 20)]
    );
    assert_eq!(hops[0].addrs.len(), 3);
    assert_eq!(hops[1].addrs.len(), 1);
    p.max_mx = 10;
    p.max_addrs = 2;
    let hops = route("many.example.test", &p).unwrap();
    assert_eq!(hosts(&hops), [("h1.example.test", 10)]);
    assert_eq!(hops[0].addrs.len(), 2);
    p.max_addrs = 100;
    let hops = route("many.example.test", &p).unwrap();
    let total: usize = hops.iter().map(|h| h.addrs.len()).sum();
    assert_eq!((hops.len(), total), (4, 7));
}

#[test]
fn an_mx_pointing_at_a_cname_is_followed() {
    let hops = route("cname.example.test", &policy()).unwrap();
    assert_eq!(hosts(&hops), [("alias.example.test", 10)]);
    assert_eq!(hops[0].addrs, [sa("192.0.2.50:2525")]);
}

#[test]
fn address_literals_are_routed_directly() {
    let hops = route("[192.0.2.7]", &policy()).unwrap();
    assert_eq!(hosts(&hops), [("[192.0.2.7]", 0)]);
    assert_eq!(hops[0].addrs, [sa("192.0.2.7:2525")]);
    let hops = route("[IPv6:2001:db8::7]", &policy()).unwrap();
    assert_eq!(hops[0].addrs, [sa("[2001:db8::7]:2525")]);
    let e = route("[not-an-address]", &policy()).unwrap_err();
    assert_eq!(permanent_status(e), "5.1.2");
}

#[test]
fn host_addrs_resolves_smarthosts_with_the_same_outcomes() {
    let r = resolver_for(&[server().addr]);
    let rt = runtime();
    let p = policy();
    let got = rt
        .block_on(resolver::host_addrs(&r, "mx1.example.test", 587, &p))
        .unwrap();
    assert_eq!(got, [sa("192.0.2.1:587")]);
    let got = rt
        .block_on(resolver::host_addrs(&r, "alias.example.test", 465, &p))
        .unwrap();
    assert_eq!(got, [sa("192.0.2.50:465")]);
    let got = rt
        .block_on(resolver::host_addrs(&r, "127.0.0.2", 2526, &p))
        .unwrap();
    assert_eq!(got, [sa("127.0.0.2:2526")]);
    let e = rt
        .block_on(resolver::host_addrs(&r, "ghost.example.test", 587, &p))
        .unwrap_err();
    assert_eq!(permanent_status(e), "5.4.4");
    let e = rt
        .block_on(resolver::host_addrs(&r, "textonly.example.test", 587, &p))
        .unwrap_err();
    assert_eq!(permanent_status(e), "5.4.4");
    // Ourselves on the outbound port is a loop; on another port it is not.
    let e = rt
        .block_on(resolver::host_addrs(&r, "self.example.test", 2525, &p))
        .unwrap_err();
    assert_eq!(permanent_status(e), "5.4.6");
    let got = rt
        .block_on(resolver::host_addrs(&r, "self.example.test", 587, &p))
        .unwrap();
    assert_eq!(got, [sa("192.0.2.25:587")]);
    let e = rt
        .block_on(resolver::host_addrs(&r, "mx.self.test", 587, &p))
        .unwrap_err();
    assert_eq!(permanent_status(e), "5.4.6");
}

#[test]
fn the_system_resolver_can_be_built() {
    // No query is made (no network in tests): building reads resolv.conf.
    if std::path::Path::new("/etc/resolv.conf").exists() {
        let r = resolver::build(&[], Duration::from_secs(1)).expect("system resolver");
        assert_eq!(r.servers(), "system");
    }
    let r = resolver_for(&[sa("127.0.0.1:5353"), sa("[::1]:53")]);
    assert_eq!(r.servers(), "127.0.0.1:5353, [::1]:53");
}
