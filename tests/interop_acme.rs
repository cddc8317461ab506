//! ACME against Debian's `pebble` (a test ACME CA) with
//! `pebble-challtestsrv` as its DNS server (every name resolves to
//! 127.0.0.1). pebble's HTTPS runs on a certificate from a CA the test makes;
//! mailc trusts that CA through `acme ca-file=`. pebble keeps its default
//! rejection of good nonces (`PEBBLE_WFE_NONCEREJECT` unset: 5% in pebble
//! 2.4): the orders must still succeed.
//!
//! Run by `.ci/run` with `-- --ignored`; a missing pebble fails the test.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::server::Server;
use common::tls::Lines;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed (and reaped) on drop, also when the test fails.
struct Daemon {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- {} log ---\n{}", self.name, self.log());
        }
    }
}

fn wait_port(addr: SocketAddr, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "{what} did not start on {addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct Pebble {
    _dir: tempfile::TempDir,
    /// The CA of pebble's own HTTPS (listener and management).
    ca_file: PathBuf,
    ca_der: CertificateDer<'static>,
    directory: String,
    management: SocketAddr,
    _dns: Daemon,
    pebble: Daemon,
}

/// Starts pebble-challtestsrv (DNS only) and pebble, validating TLS-ALPN-01
/// on `tls_port` and HTTP-01 on `http_port`, issuing certificates valid
/// for `validity_secs`.
fn start_pebble(
    tls_port: u16,
    http_port: u16,
    validity_secs: u64,
    nonce_reject: Option<u32>,
) -> Pebble {
    common::tool("pebble");
    common::tool("pebble-challtestsrv");
    let dir = tempfile::tempdir().unwrap();
    // The CA and the certificate of pebble's HTTPS.
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "mailc test CA for pebble");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    std::fs::write(dir.path().join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();

    let dns_port = free_port();
    let dns_log = dir.path().join("challtestsrv.log");
    let dns = Daemon {
        name: "pebble-challtestsrv",
        child: Command::new("pebble-challtestsrv")
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .args(["-dns01", &format!("127.0.0.1:{dns_port}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &format!("127.0.0.1:{}", free_port())])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&dns_log).unwrap())
            .stderr(Stdio::from(
                std::fs::File::options()
                    .append(true)
                    .open(&dns_log)
                    .unwrap(),
            ))
            .spawn()
            .expect("pebble-challtestsrv starts"),
        log: dns_log,
    };

    let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let management: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let config = serde_json::json!({
        "pebble": {
            "listenAddress": listen.to_string(),
            "managementListenAddress": management.to_string(),
            "certificate": dir.path().join("cert.pem"),
            "privateKey": dir.path().join("key.pem"),
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
            "certificateValidityPeriod": validity_secs,
        }
    });
    let config_path = dir.path().join("pebble.json");
    std::fs::write(&config_path, config.to_string()).unwrap();
    let log = dir.path().join("pebble.log");
    let mut cmd = Command::new("pebble");
    cmd.arg("-config")
        .arg(&config_path)
        .args(["-dnsserver", &format!("127.0.0.1:{dns_port}")])
        .env("PEBBLE_VA_NOSLEEP", "1")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::from(
            std::fs::File::options().append(true).open(&log).unwrap(),
        ));
    if let Some(n) = nonce_reject {
        cmd.env("PEBBLE_WFE_NONCEREJECT", n.to_string());
    }
    let pebble = Daemon {
        name: "pebble",
        child: cmd.spawn().expect("pebble starts"),
        log,
    };
    wait_port(listen, "pebble");
    wait_port(management, "pebble management");
    Pebble {
        ca_file,
        ca_der: ca.der().clone(),
        directory: format!("https://{listen}/dir"),
        management,
        _dir: dir,
        _dns: dns,
        pebble,
    }
}

fn client_config(root: CertificateDer<'static>) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(root).unwrap();
    Arc::new(
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

type Tls = StreamOwned<ClientConnection, TcpStream>;

/// A verified TLS connection: the handshake fails unless the server's
/// chain leads to `root` and names `name`.
fn tls_connect(
    addr: SocketAddr,
    name: &str,
    root: &CertificateDer<'static>,
) -> Result<Tls, String> {
    let tcp = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let conn = ClientConnection::new(
        client_config(root.clone()),
        ServerName::try_from(name.to_string()).unwrap(),
    )
    .map_err(|e| e.to_string())?;
    let mut tls = StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn
            .complete_io(&mut tls.sock)
            .map_err(|e| e.to_string())?;
    }
    Ok(tls)
}

fn leaf_serial(tls: &Tls) -> String {
    let chain = tls.conn.peer_certificates().expect("a certificate");
    let (_, cert) = x509_parser::parse_x509_certificate(&chain[0]).unwrap();
    cert.raw_serial_as_string()
}

impl Pebble {
    /// pebble's root for the certificates it issues (management API).
    fn issuing_root(&self) -> CertificateDer<'static> {
        let mut tls = tls_connect(self.management, "127.0.0.1", &self.ca_der)
            .expect("pebble management over TLS");
        write!(
            tls,
            "GET /roots/0 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut body = Vec::new();
        let _ = tls.read_to_end(&mut body);
        let text = String::from_utf8_lossy(&body);
        let pem = &text[text.find("-----BEGIN").expect("a PEM root")..];
        use rustls::pki_types::pem::PemObject;
        CertificateDer::from_pem_slice(pem.as_bytes()).expect("root PEM")
    }
}

/// Waits until a verified connection to `addr` for `name` succeeds; returns
/// it.
fn wait_for_issued(
    server: &Server,
    addr: SocketAddr,
    name: &str,
    pebble: &Pebble,
    root: &CertificateDer<'static>,
) -> Tls {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        match tls_connect(addr, name, root) {
            Ok(t) => return t,
            Err(e) => {
                if Instant::now() > deadline {
                    panic!(
                        "no certificate from pebble for {name}: {e}\n--- mailc ---\n{}\n--- pebble ---\n{}",
                        server.log_text(),
                        pebble.pebble.log()
                    );
                }
                std::thread::sleep(Duration::from_millis(300));
            }
        }
    }
}

fn acme_body(imaps_port: u16, pebble: &Pebble, challenge: &str, extra: &str) -> String {
    format!(
        "listen \"imaps\" \"127.0.0.1:{imaps_port}\"\n\
         {extra}\
         tls {{\n    acme directory=\"{}\" contact=\"mailto:postmaster@example.test\" ca-file=\"{}\" challenge=\"{challenge}\"\n}}\n{}",
        pebble.directory,
        pebble.ca_file.display(),
        common::server::standard_domain()
    )
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// TLS-ALPN-01 on an implicit-TLS listener; pebble issues 30-second
/// certificates, so mailc renews after about 20 seconds; a client connected
/// before the renewal keeps working, a new one sees the new serial. A
/// quarter of pebble's good nonces are rejected, and the orders still
/// succeed.
#[test]
#[ignore]
fn tls_alpn_01_issues_renews_and_swaps_without_dropping_connections() {
    let imaps_port = free_port();
    let pebble = start_pebble(imaps_port, free_port(), 30, Some(25));
    let server = Server::start(&acme_body(imaps_port, &pebble, "tls-alpn-01", ""));
    let root = pebble.issuing_root();
    let addr = server.addr("imaps");

    // Issued: the chain verifies against pebble's root for every name.
    let first = wait_for_issued(&server, addr, "mail.example.test", &pebble, &root);
    let first_serial = leaf_serial(&first);
    tls_connect(addr, "autoconfig.example.test", &root)
        .expect("the certificate covers autoconfig.example.test");
    let mut old = Lines::new(first);
    assert!(old.line().unwrap().starts_with("* OK"), "IMAP greeting");

    // Durable state, private files.
    let acme_dir = server.state().join("tls/acme");
    for f in ["mail.example.test.pem", "mail.example.test.key"] {
        assert_eq!(mode(&acme_dir.join(f)), 0o600, "{f}");
    }
    let account = std::fs::read_dir(&acme_dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .find(|e| e.file_name().to_string_lossy().starts_with("account-"))
        .expect("account credentials saved");
    assert_eq!(mode(&account.path()), 0o600);

    // Renewal of the short-lived certificate; a new connection sees it.
    let deadline = Instant::now() + Duration::from_secs(90);
    let new_serial = loop {
        let t = tls_connect(addr, "mail.example.test", &root).expect("verified connection");
        let s = leaf_serial(&t);
        if s != first_serial {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "no renewal within 90 s\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_ne!(new_serial, first_serial);
    assert!(server.count_log("ACME: new certificate in service") >= 2);

    // The connection made before the swap still works.
    let reply = old.cmd("a1 NOOP").unwrap();
    assert!(reply.starts_with("a1 OK"), "{reply}");

    // pebble rejected a quarter of the good nonces: instant-acme sends a
    // request again twice, mailc places the order again after a third
    // rejection in a row. How many were seen (random; a CA that rejects
    // every nonce is the next test):
    let log = pebble.pebble.log();
    assert!(log.contains("reject 25% of good nonces"), "{log}");
    eprintln!(
        "badNonce answers seen: {}",
        server.count_log("the CA rejected a nonce")
    );

    // `mailc tls status` shows the ACME certificate.
    let text = common::mailc_tls_status(&server.config);
    assert!(text.contains("source: acme"), "{text}");
    assert!(
        text.contains("mail.example.test, autoconfig.example.test"),
        "{text}"
    );
    assert!(text.contains("Pebble Intermediate"), "{text}");
    assert!(text.contains("last error: none"), "{text}");
}

/// A CA that rejects every nonce (`badNonce`, RFC 8555 §6.5): each
/// rejection is seen in the log, a request goes three times (instant-acme),
/// an order is placed five times (mailc), then the renewal counts as failed
/// with the CA's error in `mailc tls status` and waits for the backoff,
/// with no further request.
#[test]
#[ignore]
fn a_ca_rejecting_every_nonce_is_retried_a_bounded_number_of_times() {
    let imaps_port = free_port();
    let pebble = start_pebble(imaps_port, free_port(), 90 * 86_400, Some(100));
    let server = Server::start(&acme_body(imaps_port, &pebble, "tls-alpn-01", ""));
    assert!(
        server.wait_log("ACME: renewal failed", Duration::from_secs(60)),
        "{}",
        server.log_text()
    );
    let rejected = "the CA rejected a nonce";
    assert_eq!(server.count_log(rejected), 15, "{}", server.log_text());
    assert_eq!(
        server.count_log("the CA kept rejecting nonces; ordering again"),
        4,
        "{}",
        server.log_text()
    );
    assert!(pebble.pebble.log().contains("reject 100% of good nonces"));
    // The backoff holds: nothing more is sent.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(server.count_log(rejected), 15);

    let text = common::mailc_tls_status(&server.config);
    assert!(text.contains("source: acme"), "{text}");
    assert!(
        text.contains("urn:ietf:params:acme:error:badNonce"),
        "the CA's error is shown: {text}"
    );
    assert!(!text.contains("last error: none"), "{text}");
}

/// A 90-day certificate: issued once; a restart serves the same one from
/// the state directory, with the same account, and orders nothing.
#[test]
#[ignore]
fn a_restart_reuses_the_account_and_the_certificate() {
    let imaps_port = free_port();
    let pebble = start_pebble(imaps_port, free_port(), 90 * 86_400, None);
    let mut server = Server::start(&acme_body(imaps_port, &pebble, "tls-alpn-01", ""));
    let root = pebble.issuing_root();
    let addr = server.addr("imaps");
    let first = leaf_serial(&wait_for_issued(
        &server,
        addr,
        "mail.example.test",
        &pebble,
        &root,
    ));
    let acme_dir = server.state().join("tls/acme");
    let files = |dir: &Path| {
        let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| !e.file_name().to_string_lossy().ends_with(".status.json"))
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let before = files(&acme_dir);
    assert_eq!(before.len(), 3, "account, key, chain: {before:?}");
    let orders = server.count_log("ACME: ordering a certificate");
    assert!(orders >= 1);

    server.stop();
    server.spawn();
    let addr = server.addr("imaps");
    let again = tls_connect(addr, "mail.example.test", &root)
        .expect("the stored certificate verifies at once after the restart");
    assert_eq!(leaf_serial(&again), first);
    // Give the renewal task time to look, then check it did nothing.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(server.count_log("ACME: ordering a certificate"), orders);
    assert_eq!(files(&acme_dir), before);
    assert_eq!(server.count_log("no ACME certificate yet"), 1);
}

/// HTTP-01: the CA fetches the key authorization from the `http`
/// listener, which reads the challenge store the ACME client fills.
/// (Needs the `http`/`https` listener kinds of the http branch; verified
/// on a merge of both.)
#[test]
#[ignore]
fn http_01_issues_through_the_http_listener() {
    let imaps_port = free_port();
    let http_port = free_port();
    let pebble = start_pebble(imaps_port, http_port, 90 * 86_400, None);
    let server = Server::start(&acme_body(
        imaps_port,
        &pebble,
        "http-01",
        &format!("listen \"http\" \"127.0.0.1:{http_port}\"\n"),
    ));
    let root = pebble.issuing_root();
    let addr = server.addr("imaps");
    let tls = wait_for_issued(&server, addr, "mail.example.test", &pebble, &root);
    let mut imap = Lines::new(tls);
    assert!(imap.line().unwrap().starts_with("* OK"), "IMAP greeting");
    tls_connect(addr, "autodiscover.example.test", &root)
        .expect("the certificate covers autodiscover.example.test");
    // pebble fetched the tokens over HTTP.
    assert!(
        pebble
            .pebble
            .log()
            .contains("Attempting to validate w/ HTTP: http://mail.example.test:"),
        "{}",
        pebble.pebble.log()
    );
    let status = common::mailc_tls_status(&server.config);
    assert!(
        status.contains("acme (") && status.contains("http-01)"),
        "{status}"
    );
    assert!(status.contains("last error: none"), "{status}");
}

/// TLS-ALPN-01 answered by the `https` listener (port 443 in production),
/// which offers `http/1.1` and `acme-tls/1` over the shared resolver.
#[test]
#[ignore]
fn tls_alpn_01_through_the_https_listener() {
    let https_port = free_port();
    let pebble = start_pebble(https_port, free_port(), 90 * 86_400, None);
    let server = Server::start(&acme_body(
        free_port(),
        &pebble,
        "tls-alpn-01",
        &format!("listen \"https\" \"127.0.0.1:{https_port}\"\n"),
    ));
    let root = pebble.issuing_root();
    let https: SocketAddr = format!("127.0.0.1:{https_port}").parse().unwrap();
    wait_for_issued(&server, https, "mail.example.test", &pebble, &root);
    // pebble validated on the https port (its `tlsPort`); the IMAPS
    // listener, on another port, serves the same certificate.
    tls_connect(server.addr("imaps"), "autoconfig.example.test", &root)
        .expect("IMAPS has the ACME certificate too");
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// TLSA `3 1 1` data of the certificate a connection was served.
fn served_spki(tls: &Tls) -> String {
    let chain = tls.conn.peer_certificates().expect("a certificate");
    let (_, cert) = x509_parser::parse_x509_certificate(&chain[0]).unwrap();
    sha256_hex(cert.tbs_certificate.subject_pki.raw)
}

/// TLSA `3 1 1` data of a PEM private key file.
fn key_spki(path: &Path) -> String {
    use rcgen::PublicKeyData;
    let key = rcgen::KeyPair::from_pem(&std::fs::read_to_string(path).unwrap()).unwrap();
    sha256_hex(&key.subject_public_key_info())
}

fn mailc(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_mailc"))
        .args(args)
        .output()
        .unwrap()
}

/// `dane #true` with ACME: renewals keep the key; `mailc tls rollover`
/// (against a real DNS server on loopback serving both TLSA records) is
/// refused while the next record is new, and with `--force` makes the
/// running server get a certificate on the next key from pebble and swap
/// it in: the certificate served afterwards has the SPKI hash of the old
/// next TLSA record, a fresh next key is made, a connection opened before
/// keeps working, and `mailc plan` shows the switch done and the old record
/// to retire.
#[test]
#[ignore]
fn dane_rollover_renews_on_the_next_key_and_swaps_it_in() {
    let imaps_port = free_port();
    let pebble = start_pebble(imaps_port, free_port(), 90 * 86_400, None);
    let server = Server::start(&acme_body(
        imaps_port,
        &pebble,
        "tls-alpn-01",
        "dane #true\n",
    ));
    let root = pebble.issuing_root();
    let addr = server.addr("imaps");
    let first = wait_for_issued(&server, addr, "mail.example.test", &pebble, &root);
    let first_serial = leaf_serial(&first);
    let current = served_spki(&first);
    let mut old = Lines::new(first);
    assert!(old.line().unwrap().starts_with("* OK"), "IMAP greeting");
    let state = server.state();
    let next_key = state.join("tls/dane-next.key");
    let next = key_spki(&next_key);
    assert_eq!(
        key_spki(&state.join("tls/acme/mail.example.test.key")),
        current
    );
    assert_ne!(current, next);

    let config = server.config.display().to_string();
    let zone = format!(
        "_25._tcp.mail 3600 IN TLSA 3 1 1 {current}\n_25._tcp.mail 3600 IN TLSA 3 1 1 {next}\n"
    );
    let dns = common::dns_server::DnsServer::start(&[("example.test.", zone)]);
    let resolver = dns.addr.to_string();
    let rollover = |force: bool| {
        let mut args = vec![
            "tls",
            "rollover",
            "--resolver",
            &resolver,
            "--wait",
            "150",
            &config,
        ];
        if force {
            args.push("--force");
        }
        mailc(&args)
    };

    // Just published: the TTL has not passed.
    let out = rollover(false);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("wait") && err.contains("--force"), "{err}");
    assert_eq!(key_spki(&next_key), next, "nothing changed");

    // Forced: the server switches.
    let start = Instant::now();
    let out = rollover(true);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}\n--- mailc serve ---\n{}\n--- pebble ---\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log_text(),
        pebble.pebble.log()
    );
    eprintln!("switch took {:?}", start.elapsed());
    assert!(text.contains("switched"), "{text}");

    let t = tls_connect(addr, "mail.example.test", &root).expect("verified after the switch");
    assert_eq!(
        served_spki(&t),
        next,
        "the certificate is on the old next key"
    );
    assert_ne!(leaf_serial(&t), first_serial);
    assert_eq!(
        key_spki(&state.join("tls/acme/mail.example.test.key")),
        next
    );
    let fresh = key_spki(&next_key);
    assert!(fresh != next && fresh != current, "a fresh next key");
    assert!(text.contains(&format!("TLSA 3 1 1 {fresh}")), "{text}");
    assert_eq!(mode(&next_key), 0o600);
    assert!(!state.join("tls/dane-rollover.request").exists());
    assert!(server.count_log("DANE rollover: switched to the next key") == 1);

    // The connection made before the switch still works.
    let reply = old.cmd("a1 NOOP").unwrap();
    assert!(reply.starts_with("a1 OK"), "{reply}");

    // `mailc plan`: switch done, the old record to retire, the fresh one
    // to publish.
    let out = mailc(&["plan", "--resolver", &resolver, &config]);
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(plan.contains("1. publish-next NOW"), "{plan}");
    assert!(plan.contains("3. switch       done"), "{plan}");
    assert!(
        plan.contains(&format!(
            "4. retire       NOW    remove the stale TLSA 3 1 1 {}…",
            &current[..12]
        )),
        "{plan}"
    );

    // `mailc dns` publishes the key served and the fresh next one only.
    drop(t);
    let out = mailc(&["dns", &config]);
    let zone = String::from_utf8_lossy(&out.stdout);
    assert!(zone.contains(&next) && zone.contains(&fresh), "{zone}");
    assert!(!zone.contains(&current), "{zone}");
}

/// A switch whose order fails (the CA is gone): `mailc tls rollover`
/// reports the server's error, and nothing changes — the current
/// certificate and key are still served, the next key stays next.
#[test]
#[ignore]
fn a_failed_dane_rollover_keeps_the_current_certificate() {
    let imaps_port = free_port();
    let mut pebble = start_pebble(imaps_port, free_port(), 90 * 86_400, None);
    let server = Server::start(&acme_body(
        imaps_port,
        &pebble,
        "tls-alpn-01",
        "dane #true\n",
    ));
    let root = pebble.issuing_root();
    let addr = server.addr("imaps");
    let first = wait_for_issued(&server, addr, "mail.example.test", &pebble, &root);
    let current = served_spki(&first);
    let state = server.state();
    let next_key = state.join("tls/dane-next.key");
    let next = key_spki(&next_key);
    let zone = format!(
        "_25._tcp.mail 3600 IN TLSA 3 1 1 {current}\n_25._tcp.mail 3600 IN TLSA 3 1 1 {next}\n"
    );
    let dns = common::dns_server::DnsServer::start(&[("example.test.", zone)]);
    let resolver = dns.addr.to_string();
    // The CA goes away.
    let _ = pebble.pebble.child.kill();
    let _ = pebble.pebble.child.wait();

    let config = server.config.display().to_string();
    let out = mailc(&[
        "tls",
        "rollover",
        "--force",
        "--resolver",
        &resolver,
        "--wait",
        "150",
        &config,
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}\n{}", server.log_text());
    assert!(
        err.contains("the server could not get a certificate on the next key"),
        "{err}"
    );
    assert!(
        err.contains("the old certificate and key are still served"),
        "{err}"
    );
    let t = tls_connect(addr, "mail.example.test", &root).expect("still verified");
    assert_eq!(served_spki(&t), current, "the current certificate stays");
    assert_eq!(
        key_spki(&state.join("tls/acme/mail.example.test.key")),
        current
    );
    assert_eq!(key_spki(&next_key), next, "the next key stays next");
    assert!(!state.join("tls/dane-rollover.request").exists());
    assert!(!state.join("tls/dane-switch.json").exists());
    assert!(server.count_log("DANE rollover failed") >= 1);
}
