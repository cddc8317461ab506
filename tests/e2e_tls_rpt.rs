//! TLS reports (RFC 8460) end to end: the real `mailc serve` (example.test,
//! on 127.0.0.1) delivers mail through a real DNS server on 127.0.0.1 to
//! three receiving mailc servers on one port of other loopback addresses:
//!
//! - ok.test, MX mx.ok.test on 127.0.0.2: STARTTLS with a certificate from
//!   a test CA the sender trusts (`outbound { ca-file }`) → success (twice);
//! - plain.test, MX on 127.0.0.3: no STARTTLS offered →
//!   `starttls-not-supported`;
//! - badcert.test, MX on 127.0.0.4: a self-signed certificate →
//!   `certificate-not-trusted` (the mail is delivered all the same:
//!   opportunistic TLS).
//!
//! Each domain publishes `_smtp._tls` with a `rua`: ok.test and
//! badcert.test `mailto:tlsrpt@rua.test` (rua.test's MX is the mailc on
//! 127.0.0.2), plain.test an `https:` URI served by a Python HTTPS server
//! with a certificate of the same test CA. "The day" is the configured
//! reporting interval (4 s here; a day by default). The reports that
//! arrive are checked: a `multipart/report; report-type="tlsrpt"` mail
//! with the §5.3 headers and file name, DKIM-signed by example.test (the
//! signature verified against the key published on a DNS server), gzip'd
//! JSON read by mail-auth's TLS-RPT parser and, in the `--ignored`
//! variant, valid under the RFC 8460 JSON Schema in tests/data (checked
//! with python3-jsonschema), totals matching the attempts made; the https POST
//! is `application/tlsrpt+gzip` with a valid report.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::dns_server::DnsServer;
use common::server::{ALICE_HASH, Server, standard_domain, submit_as_alice};

const INTERVAL: u64 = 4;

/// A test CA and leaf certificates it signed, as PEM files in `dir`.
struct Pki {
    ca: PathBuf,
}

impl Pki {
    fn new(dir: &Path) -> Pki {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "mailc test CA");
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let issuer = rcgen::CertifiedIssuer::self_signed(params, ca_key).unwrap();
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, issuer.pem()).unwrap();
        let pki = Pki { ca };
        for (name, sans) in [
            ("mx", vec!["mx.ok.test", "mx.rua.test"]),
            ("https", vec!["reports.plain.test"]),
        ] {
            let key = rcgen::KeyPair::generate().unwrap();
            let params = rcgen::CertificateParams::new(
                sans.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            )
            .unwrap();
            let cert = params.signed_by(&key, &issuer).unwrap();
            std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
            std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
            let mut perms = std::fs::metadata(dir.join(format!("{name}.key")))
                .unwrap()
                .permissions();
            std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o600);
            std::fs::set_permissions(dir.join(format!("{name}.key")), perms).unwrap();
        }
        pki
    }
}

/// A Python HTTPS server that stores each POST (headers and body) as a
/// file and answers 201; killed on drop.
struct HttpsSink {
    child: Child,
    port: u16,
    dir: PathBuf,
}

const HTTPS_SINK: &str = r#"
import http.server, ssl, sys, os, json
cert, key, out = sys.argv[1], sys.argv[2], sys.argv[3]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get('Content-Length', '0'))
        if n > 1 << 20:
            self.send_response(413); self.end_headers(); return
        body = self.rfile.read(n)
        i = len(os.listdir(out))
        with open(os.path.join(out, '%d.json' % i), 'w') as f:
            json.dump({'path': self.path, 'headers': dict(self.headers), 'body': body.hex()}, f)
        self.send_response(201); self.send_header('Content-Length', '0'); self.end_headers()
    def log_message(self, *a): pass
srv = http.server.HTTPServer(('127.0.0.5', 0), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print('port', srv.server_address[1], flush=True)
srv.serve_forever()
"#;

impl HttpsSink {
    fn start(cert: &Path, key: &Path, dir: &Path) -> HttpsSink {
        std::fs::create_dir_all(dir).unwrap();
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(HTTPS_SINK)
            .arg(cert)
            .arg(key)
            .arg(dir)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 is needed for this test");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("port ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the HTTPS sink did not start: {line:?}"));
        HttpsSink {
            child,
            port,
            dir: dir.to_path_buf(),
        }
    }

    fn posts(&self) -> Vec<serde_json::Value> {
        let mut files: Vec<_> = std::fs::read_dir(&self.dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        files
            .iter()
            .filter_map(|f| serde_json::from_slice(&std::fs::read(f).ok()?).ok())
            .collect()
    }
}

impl Drop for HttpsSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn zones(port: u16) -> Vec<(&'static str, String)> {
    vec![
        (
            "ok.test.",
            "@ 300 IN MX 10 mx.ok.test.\nmx 300 IN A 127.0.0.2\n\
             _smtp._tls 300 IN TXT \"v=TLSRPTv1; rua=mailto:tlsrpt@rua.test\"\n"
                .into(),
        ),
        (
            "plain.test.",
            format!(
                "@ 300 IN MX 10 mx.plain.test.\nmx 300 IN A 127.0.0.3\nreports 300 IN A 127.0.0.5\n\
                 _smtp._tls 300 IN TXT \"v=TLSRPTv1; rua=https://reports.plain.test:{port}/tlsrpt\"\n"
            ),
        ),
        (
            "badcert.test.",
            "@ 300 IN MX 10 mx.badcert.test.\nmx 300 IN A 127.0.0.4\n\
             _smtp._tls 300 IN TXT \"v=TLSRPTv1; rua=mailto:tlsrpt@rua.test\"\n"
                .into(),
        ),
        (
            "rua.test.",
            "@ 300 IN MX 10 mx.rua.test.\nmx 300 IN A 127.0.0.2\n".into(),
        ),
    ]
}

fn free_port() -> u16 {
    for _ in 0..50 {
        let l = std::net::TcpListener::bind("127.0.0.2:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let free = ["127.0.0.3", "127.0.0.4"]
            .iter()
            .all(|ip| std::net::TcpListener::bind((*ip, port)).is_ok());
        if free {
            return port;
        }
    }
    panic!("no port free on 127.0.0.2-4");
}

fn mailbox(local: &str, domain: &str) -> String {
    format!(
        "domain \"{domain}\" {{\n    mailbox \"{local}\" password=\"{ALICE_HASH}\"\n    alias \"postmaster\" to=\"{local}@{domain}\"\n}}\n"
    )
}

/// The RFC 8460 JSON Schema check, by python3-jsonschema (an independent
/// validator); panics when python3 or the module is missing.
fn assert_valid_report(json: &[u8]) {
    if let Err(e) = schema_errors(json) {
        panic!(
            "report does not validate against the RFC 8460 schema:\n{e}\n{}",
            String::from_utf8_lossy(json)
        );
    }
}

fn schema_errors(json: &[u8]) -> Result<(), String> {
    let schema = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/tlsrpt-report.schema.json"
    );
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(
            "import json, sys, jsonschema\n\
             schema = json.load(open(sys.argv[1]))\n\
             jsonschema.Draft202012Validator.check_schema(schema)\n\
             v = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)\n\
             errors = [e.message + ' at ' + '/'.join(map(str, e.path)) for e in v.iter_errors(json.load(sys.stdin))]\n\
             print('\\n'.join(errors)); sys.exit(1 if errors else 0)\n",
        )
        .arg(schema)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is needed for this test");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), json).unwrap();
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .take(1 << 20)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// Verifies the DKIM signatures of `message` against the key mailc
/// generated for example.test, published on a DNS server of its own.
fn dkim_passes(local: &Server, message: &[u8]) -> Vec<bool> {
    let key = local.state().join("dkim/example.test/s1.key");
    let public = mailc::dns::keys::public_key_b64(&key, mailc::tables::DkimAlgorithm::Rsa).unwrap();
    let mut record = format!("v=DKIM1; k=rsa; p={public}");
    let mut txt = String::new();
    while !record.is_empty() {
        let n = record.len().min(200);
        txt.push_str(&format!("\"{}\" ", &record[..n]));
        record = record[n..].to_string();
    }
    let keys = DnsServer::start(&[("example.test.", format!("s1._domainkey 300 IN TXT {txt}\n"))]);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let resolver = mailc::dns::live::resolver(Some(keys.addr)).unwrap();
            let auth = mail_auth::MessageAuthenticator(resolver);
            let parsed = mail_auth::AuthenticatedMessage::parse(message).unwrap();
            auth.verify_dkim(&parsed)
                .await
                .iter()
                .map(|o| matches!(o.result(), mail_auth::DkimResult::Pass))
                .collect()
        })
}

/// (successful, failed, failure result types) per policy domain, summed
/// over reports.
type Totals = std::collections::BTreeMap<String, (u64, u64, Vec<String>)>;

fn add_totals(totals: &mut Totals, report: &serde_json::Value) {
    for p in report["policies"].as_array().unwrap() {
        let domain = p["policy"]["policy-domain"].as_str().unwrap().to_string();
        assert_eq!(p["policy"]["policy-type"], "no-policy-found");
        let t = totals.entry(domain).or_default();
        t.0 += p["summary"]["total-successful-session-count"]
            .as_u64()
            .unwrap();
        t.1 += p["summary"]["total-failure-session-count"]
            .as_u64()
            .unwrap();
        for d in p["failure-details"].as_array().into_iter().flatten() {
            t.2.push(d["result-type"].as_str().unwrap().to_string());
            assert_eq!(d["sending-mta-ip"], "127.0.0.1", "{d}");
            assert!(d["receiving-mx-hostname"].is_string(), "{d}");
            assert!(d["receiving-ip"].is_string(), "{d}");
        }
    }
}

/// Without Debian packages: the reports are read by mail-auth's TLS-RPT
/// parser (an independent reader) and checked field by field.
#[test]
fn daily_tls_reports_reach_mailto_and_https_rua_valid_and_counted() {
    scenario(false);
}

/// The same, and every report is validated against the RFC 8460 JSON
/// Schema by python3-jsonschema (Debian package; `.ci/run` installs it and
/// runs this test). Fails when the module is missing.
#[test]
#[ignore = "needs python3-jsonschema (installed by .ci/run)"]
fn daily_tls_reports_validate_against_the_rfc_8460_schema() {
    scenario(true);
}

fn scenario(schema: bool) {
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(pki_dir.path());
    let p = |n: &str| pki_dir.path().join(n).display().to_string();
    let port = free_port();
    let sink = HttpsSink::start(
        &pki_dir.path().join("https.pem"),
        &pki_dir.path().join("https.key"),
        &pki_dir.path().join("posts"),
    );
    let dns = DnsServer::start(&zones(sink.port));

    let ok = Server::start(&format!(
        "listen \"smtp\" \"127.0.0.2:{port}\"\ntls \"mx.ok.test\" \"mx.rua.test\" cert=\"{}\" key=\"{}\"\n{}{}",
        p("mx.pem"),
        p("mx.key"),
        mailbox("user", "ok.test"),
        mailbox("tlsrpt", "rua.test"),
    ));
    let plain = Server::start(&format!(
        "listen \"smtp\" \"127.0.0.3:{port}\" starttls=#false\n{}",
        mailbox("user", "plain.test")
    ));
    let badcert = Server::start(&format!(
        "listen \"smtp\" \"127.0.0.4:{port}\"\n{}",
        mailbox("user", "badcert.test")
    ));
    let local = Server::start(&format!(
        "resolver \"{}\"\nlisten \"submissions\" \"127.0.0.1:0\"\noutbound {{\n    port {port}\n    ca-file \"{}\"\n    tls-reports from=\"tls-reports@example.test\" interval=\"{INTERVAL}s\" org-name=\"Example Org\"\n}}\n{}",
        dns.addr,
        pki.ca.display(),
        standard_domain()
    ));

    // Two messages to ok.test, each waited for (two sessions), one each to
    // plain.test and badcert.test.
    submit_as_alice(&local, &["user@ok.test"], "one");
    assert_eq!(
        ok.wait_for_mail("ok.test", "user", 1, Duration::from_secs(20))
            .len(),
        1,
        "{}",
        local.log_text()
    );
    submit_as_alice(&local, &["user@ok.test"], "two");
    assert_eq!(
        ok.wait_for_mail("ok.test", "user", 2, Duration::from_secs(20))
            .len(),
        2
    );
    submit_as_alice(&local, &["user@plain.test", "user@badcert.test"], "three");
    assert_eq!(
        plain
            .wait_for_mail("plain.test", "user", 1, Duration::from_secs(20))
            .len(),
        1,
        "{}",
        local.log_text()
    );
    assert_eq!(
        badcert
            .wait_for_mail("badcert.test", "user", 1, Duration::from_secs(20))
            .len(),
        1,
        "{}",
        local.log_text()
    );

    // The sessions may straddle periods: sum what arrives until every
    // session is counted.
    let expected: Totals = [
        (
            "badcert.test",
            (0, 1, vec!["certificate-not-trusted".to_string()]),
        ),
        ("ok.test", (2, 0, vec![])),
        (
            "plain.test",
            (0, 1, vec!["starttls-not-supported".to_string()]),
        ),
    ]
    .into_iter()
    .map(|(d, t)| (d.to_string(), t))
    .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mails, posts, totals) = loop {
        let mails: Vec<Vec<u8>> = ok
            .maildir_files("rua.test", "tlsrpt")
            .iter()
            .map(|f| std::fs::read(f).unwrap())
            .collect();
        let posts = sink.posts();
        let mut totals = Totals::new();
        for m in &mails {
            let r = mail_auth::report::tlsrpt::TlsReport::parse_rfc5322(m, 1 << 20)
                .unwrap_or_else(|e| panic!("not a TLS report: {e:?}"));
            add_totals(&mut totals, &serde_json::to_value(&r).unwrap());
        }
        for p in &posts {
            let body = hex(p["body"].as_str().unwrap());
            add_totals(
                &mut totals,
                &serde_json::from_slice(&gunzip(&body)).unwrap(),
            );
        }
        let counted: u64 = totals.values().map(|t| t.0 + t.1).sum();
        if counted >= 4 {
            break (mails, posts, totals);
        }
        assert!(
            Instant::now() < deadline,
            "reports did not arrive ({counted} sessions counted: {totals:?})\n{}",
            local.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(totals, expected);

    for m in &mails {
        let text = String::from_utf8_lossy(m);
        assert!(text.contains("report-type=\"tlsrpt\""), "{text}");
        assert!(text.contains("Content-Type: multipart/report"), "{text}");
        assert!(
            text.contains("Content-Type: application/tlsrpt+gzip"),
            "{text}"
        );
        assert!(
            text.contains("TLS-Report-Submitter: example.test"),
            "{text}"
        );
        assert!(text.contains("From: <tls-reports@example.test>"), "{text}");
        let domain = text
            .lines()
            .find_map(|l| l.strip_prefix("TLS-Report-Domain: "))
            .unwrap_or_else(|| panic!("no TLS-Report-Domain: {text}"))
            .trim()
            .to_string();
        assert!(
            text.contains(&format!(
                "Subject: Report Domain: {domain} Submitter: example.test Report-ID: <"
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!("filename=\"example.test!{domain}!")),
            "{text}"
        );
        assert_eq!(dkim_passes(&local, m), vec![true], "DKIM-valid: {text}");
        let parsed = mail_parser::MessageParser::default().parse(m).unwrap();
        let part = parsed.attachments().next().expect("the report attachment");
        let json = gunzip(part.contents());
        if schema {
            assert_valid_report(&json);
        }
        let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(v["organization-name"], "Example Org");
        assert_eq!(v["contact-info"], "tls-reports@example.test");
    }
    if schema {
        // The validator can fail: a report with a result type the RFC
        // does not define, or without its summary, is refused.
        let mut bad: serde_json::Value =
            serde_json::from_slice(&gunzip(&hex(posts[0]["body"].as_str().unwrap()))).unwrap();
        bad["policies"][0]["failure-details"][0]["result-type"] = "bogus".into();
        let e = schema_errors(&serde_json::to_vec(&bad).unwrap()).unwrap_err();
        assert!(e.contains("bogus"), "{e}");
        bad["policies"][0]
            .as_object_mut()
            .unwrap()
            .remove("summary");
        assert!(schema_errors(&serde_json::to_vec(&bad).unwrap()).is_err());
    }
    assert!(!posts.is_empty());
    for post in &posts {
        assert_eq!(post["path"], "/tlsrpt");
        let headers = &post["headers"];
        assert_eq!(headers["Content-Type"], "application/tlsrpt+gzip", "{post}");
        let json = gunzip(&hex(post["body"].as_str().unwrap()));
        if schema {
            assert_valid_report(&json);
        }
        let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(v["policies"][0]["policy"]["policy-domain"], "plain.test");
    }

    // Every period is done: its files are gone.
    std::thread::sleep(Duration::from_secs(INTERVAL + 2));
    let left: Vec<_> = std::fs::read_dir(local.state().join("tls-reports"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            // The period now running (the report mails' own sessions).
            let end: u64 = n
                .split(['-', '.'])
                .nth(1)
                .and_then(|e| e.parse().ok())
                .unwrap_or(0);
            end + INTERVAL < now()
        })
        .collect();
    assert!(left.is_empty(), "closed periods not done: {left:?}");
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Attempts are durable before the day ends: mailc is killed (SIGKILL)
/// after a delivery attempt to plain.test was recorded and before its
/// period closed; the restarted server still reports that session.
#[test]
fn recorded_attempts_survive_a_crash() {
    const PERIOD: u64 = 10;
    let port = free_port();
    let dns = DnsServer::start(&[
        (
            "plain.test.",
            "@ 300 IN MX 10 mx.plain.test.\nmx 300 IN A 127.0.0.2\n\
             _smtp._tls 300 IN TXT \"v=TLSRPTv1; rua=mailto:tlsrpt@rua.test\"\n"
                .into(),
        ),
        (
            "rua.test.",
            "@ 300 IN MX 10 mx.rua.test.\nmx 300 IN A 127.0.0.2\n".into(),
        ),
    ]);
    let peer = Server::start(&format!(
        "listen \"smtp\" \"127.0.0.2:{port}\" starttls=#false\n{}{}",
        mailbox("user", "plain.test"),
        mailbox("tlsrpt", "rua.test"),
    ));
    let mut local = Server::start(&format!(
        "resolver \"{}\"\nlisten \"submissions\" \"127.0.0.1:0\"\noutbound {{\n    port {port}\n    tls-reports from=\"tls-reports@example.test\" interval=\"{PERIOD}s\"\n}}\n{}",
        dns.addr,
        standard_domain()
    ));
    // Start early in a period, so that the crash comes before its end.
    if now() % PERIOD > 3 {
        std::thread::sleep(Duration::from_secs(PERIOD - now() % PERIOD));
    }
    let begin = now() - now() % PERIOD;
    submit_as_alice(&local, &["user@plain.test"], "before the crash");
    assert_eq!(
        peer.wait_for_mail("plain.test", "user", 1, Duration::from_secs(20))
            .len(),
        1,
        "{}",
        local.log_text()
    );
    let rows = local
        .state()
        .join(format!("tls-reports/{begin}-{}.rows", begin + PERIOD));
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::fs::read_to_string(&rows).map_or(true, |t| !t.contains("plain.test")) {
        assert!(Instant::now() < deadline, "no attempt stored in {rows:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    local.crash();
    assert!(
        now() < begin + PERIOD,
        "the crash must come before the period ends"
    );
    assert!(peer.maildir_files("rua.test", "tlsrpt").is_empty());
    local.spawn();

    let deadline = Instant::now() + Duration::from_secs(40);
    let report = loop {
        if let Some(f) = peer.maildir_files("rua.test", "tlsrpt").first() {
            let bytes = std::fs::read(f).unwrap();
            break mail_auth::report::tlsrpt::TlsReport::parse_rfc5322(&bytes, 1 << 20)
                .unwrap_or_else(|e| panic!("not a TLS report: {e:?}"));
        }
        assert!(
            Instant::now() < deadline,
            "no report after the restart\n{}",
            local.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut totals = Totals::new();
    add_totals(&mut totals, &serde_json::to_value(&report).unwrap());
    assert_eq!(
        totals.get("plain.test"),
        Some(&(0, 1, vec!["starttls-not-supported".to_string()]))
    );
}
