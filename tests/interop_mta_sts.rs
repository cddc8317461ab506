//! Outbound MTA-STS (RFC 8461) on loopback: a Python HTTPS server
//! (`http.server` + `ssl`, certificate from a test CA) serves the policies
//! at `https://mta-sts.<domain>/.well-known/mta-sts.txt` on
//! 127.0.0.63:443; an in-process DNS server publishes the MX records, the
//! `_mta-sts` TXT records and the `mta-sts.<domain>` addresses; the
//! receiving side is a second mailc on 127.0.0.2 with a certificate from
//! the same CA, which the sender trusts through `outbound { ca-file }`.
//!
//! - `good.test`: enforce, MX and certificate match → delivered;
//! - `badmx.test`: enforce, the MX is not in the policy → deferred;
//! - `badcert.test`: enforce, the certificate does not name the MX →
//!   deferred;
//! - `testing.test`: testing, the same bad certificate → delivered;
//! - `huge.test`: a 1 MB policy file → refused as too large, no policy,
//!   delivered;
//! - the cache: policies are in `<state>/mta-sts/`; after the HTTPS server
//!   is gone and the sender restarted, `good.test` and `badmx.test` are
//!   still handled by their cached policies.
//!
//! `#[ignore]`d (run by `.ci/run`): it binds port 443 (root or
//! CAP_NET_BIND_SERVICE) and panics when python3 is missing.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::dns_server::DnsServer;
use common::server::{ALICE_HASH, Server, standard_domain, submit_as_alice};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

const HTTPS_IP: &str = "127.0.0.63";

const SERVER_PY: &str = r#"
import http.server, ssl, sys, os
ip, port, cert, key, root = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        host = (self.headers.get('Host') or '').split(':')[0]
        path = os.path.join(root, host + '.txt')
        if self.path != '/.well-known/mta-sts.txt' or not os.path.isfile(path):
            self.send_response(404); self.end_headers(); return
        body = open(path, 'rb').read()
        self.send_response(200)
        self.send_header('Content-Type', 'text/plain')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, fmt, *args):
        sys.stderr.write('GET ' + (self.headers.get('Host') or '') + ' ' + (fmt % args) + '\n')
        sys.stderr.flush()
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv = http.server.ThreadingHTTPServer((ip, port), H)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print('ready', flush=True)
srv.serve_forever()
"#;

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Ca {
    issuer: rcgen::Issuer<'static, KeyPair>,
    pem: String,
}

fn ca() -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "mailc MTA-STS test CA");
    let cert = p.self_signed(&key).unwrap();
    Ca {
        pem: cert.pem(),
        issuer: rcgen::Issuer::new(p, key),
    }
}

/// (chain PEM, key PEM) for `names`.
fn issue(ca: &Ca, names: &[&str]) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .unwrap()
        .signed_by(&key, &ca.issuer)
        .unwrap();
    (format!("{}{}", cert.pem(), ca.pem), key.serialize_pem())
}

fn policy(mode: &str, mx: &str) -> String {
    format!("version: STSv1\r\nmode: {mode}\r\nmx: {mx}\r\nmax_age: 86400\r\n")
}

fn https_server(dir: &Path, ca: &Ca) -> (Daemon, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let names: Vec<String> = ["good", "badmx", "badcert", "testing", "huge"]
        .iter()
        .map(|d| format!("mta-sts.{d}.test"))
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let (chain, key) = issue(ca, &names);
    std::fs::write(dir.join("https.pem"), chain).unwrap();
    std::fs::write(dir.join("https.key"), key).unwrap();
    std::fs::write(dir.join("server.py"), SERVER_PY).unwrap();
    let mut child = Command::new("python3")
        .arg(dir.join("server.py"))
        .args([HTTPS_IP, "443"])
        .arg(dir.join("https.pem"))
        .arg(dir.join("https.key"))
        .arg(dir.join("policies"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is installed");
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let l2 = log.clone();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            l2.lock().unwrap().push(line);
        }
    });
    let mut first = String::new();
    use std::io::BufRead;
    std::io::BufReader::new(stdout)
        .read_line(&mut first)
        .unwrap();
    let daemon = Daemon(child);
    assert_eq!(
        first.trim(),
        "ready",
        "the HTTPS server did not start (port 443 needs root): {:?}",
        log.lock().unwrap()
    );
    (daemon, log)
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn deferral(local: &Server, rcpt: &str) -> Option<String> {
    local
        .log_lines_containing("delivery deferred")
        .into_iter()
        .find(|l| l.contains(&format!("to={rcpt} ")))
}

#[test]
#[ignore = "interop: binds 127.0.0.63:443 (root) for a Python HTTPS server"]
fn mta_sts_enforce_testing_and_the_cache_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca();
    std::fs::write(dir.path().join("ca.pem"), &ca.pem).unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    for (d, text) in [
        ("good", policy("enforce", "mx.good.test")),
        ("badmx", policy("enforce", "mail.elsewhere.test")),
        ("badcert", policy("enforce", "*.badcert.test")),
        ("testing", policy("testing", "mx.testing.test")),
    ] {
        std::fs::write(policies.join(format!("mta-sts.{d}.test.txt")), text).unwrap();
    }
    let mut huge = policy("enforce", "nothing.invalid").into_bytes();
    huge.resize(1024 * 1024, b'#');
    std::fs::write(policies.join("mta-sts.huge.test.txt"), huge).unwrap();

    let mut zones = Vec::new();
    for d in ["good", "badmx", "badcert", "testing", "huge"] {
        zones.push((
            format!("{d}.test."),
            format!(
                "@ 300 IN MX 10 mx.{d}.test.\nmx 300 IN A 127.0.0.2\n_mta-sts 300 IN TXT \"v=STSv1; id=1;\"\nmta-sts 300 IN A {HTTPS_IP}\n"
            ),
        ));
    }
    let zones: Vec<(&str, String)> = zones.iter().map(|(o, t)| (o.as_str(), t.clone())).collect();
    let dns = DnsServer::start(&zones);
    let (https, https_log) = https_server(dir.path(), &ca);

    // The MX certificate names every MX but those of badcert and testing.
    let (chain, key) = issue(&ca, &["mx.good.test", "mx.badmx.test", "mx.huge.test"]);
    let port = std::net::TcpListener::bind("127.0.0.2:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut domains = String::new();
    for d in ["good", "badmx", "badcert", "testing", "huge"] {
        domains.push_str(&format!(
            "domain \"{d}.test\" {{\n    mailbox \"u\" password=\"{ALICE_HASH}\"\n}}\n"
        ));
    }
    let remote = Server::start_with_state_files(
        &format!("listen \"smtp\" \"127.0.0.2:{port}\"\n{domains}"),
        &[
            ("tls/selfsigned.pem", chain.as_bytes()),
            ("tls/selfsigned.key", key.as_bytes()),
        ],
    );
    let mut local = Server::start(&format!(
        "listen \"submissions\" \"127.0.0.1:0\"\nresolver \"{}\"\noutbound {{\n    port {port}\n    ca-file \"{}\"\n}}\n{}",
        dns.addr,
        dir.path().join("ca.pem").display(),
        standard_domain()
    ));
    submit_as_alice(
        &local,
        &[
            "u@good.test",
            "u@badmx.test",
            "u@badcert.test",
            "u@testing.test",
            "u@huge.test",
        ],
        "MTA-STS",
    );
    for d in ["good.test", "testing.test", "huge.test"] {
        let got = remote.wait_for_mail(d, "u", 1, Duration::from_secs(60));
        assert_eq!(got.len(), 1, "{d}: {}", local.log_text());
    }
    wait_until("two deferrals", Duration::from_secs(60), || {
        deferral(&local, "u@badmx.test").is_some() && deferral(&local, "u@badcert.test").is_some()
    });
    let badmx = deferral(&local, "u@badmx.test").unwrap();
    assert!(
        badmx.contains("does not match the domain's MTA-STS policy"),
        "{badmx}"
    );
    let badcert = deferral(&local, "u@badcert.test").unwrap();
    assert!(badcert.contains("not valid for name"), "{badcert}");
    assert!(remote.maildir_files("badmx.test", "u").is_empty());
    assert!(remote.maildir_files("badcert.test", "u").is_empty());
    let fetch_failures = local.log_lines_containing("MTA-STS policy fetch failed");
    assert!(
        fetch_failures
            .iter()
            .any(|l| l.contains("huge.test") && l.contains("larger than")),
        "{fetch_failures:?}"
    );

    // What TLS-RPT is told (RFC 8460 result types).
    for (domain, result) in [
        ("good.test", "success"),
        ("badmx.test", "validation-failure"),
        ("badcert.test", "certificate-host-mismatch"),
        ("testing.test", "certificate-host-mismatch"),
        ("huge.test", "sts-policy-invalid"),
    ] {
        let needle = format!("tls-rpt attempt domain={domain} policy=sts");
        assert!(
            local
                .log_lines_containing(&needle)
                .iter()
                .any(|l| l.contains(&format!("result={result}"))),
            "{needle} result={result}: {}",
            local.log_text()
        );
    }

    // Cached in the state directory.
    let cache = local.state().join("mta-sts");
    for d in ["good.test", "badmx.test", "badcert.test", "testing.test"] {
        let text = std::fs::read_to_string(cache.join(format!("{d}.json")))
            .unwrap_or_else(|e| panic!("{d} cached: {e}"));
        assert!(text.contains("\"id\": \"1\""), "{text}");
    }
    assert!(!cache.join("huge.test.json").exists());
    let fetches = https_log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("mta-sts.good.test"))
        .count();
    assert_eq!(fetches, 1, "{:?}", https_log.lock().unwrap());

    // The HTTPS server goes away; the sender restarts; the cached policies
    // still decide, and nothing is fetched.
    drop(https);
    let badmx_deferrals = |local: &Server| {
        local
            .log_lines_containing("delivery deferred")
            .iter()
            .filter(|l| l.contains("to=u@badmx.test ") && l.contains("MTA-STS"))
            .count()
    };
    let before = badmx_deferrals(&local);
    let failures_before = local
        .log_lines_containing("MTA-STS policy fetch failed")
        .len();
    local.stop();
    local.spawn();
    submit_as_alice(&local, &["u@good.test", "u@badmx.test"], "cached");
    let got = remote.wait_for_mail("good.test", "u", 2, Duration::from_secs(60));
    assert_eq!(got.len(), 2, "{}", local.log_text());
    wait_until("the second badmx deferral", Duration::from_secs(60), || {
        badmx_deferrals(&local) > before
    });
    assert_eq!(
        local
            .log_lines_containing("MTA-STS policy fetch failed")
            .len(),
        failures_before,
        "the cache answered: {}",
        local.log_text()
    );
    assert!(remote.maildir_files("badmx.test", "u").is_empty());
}
