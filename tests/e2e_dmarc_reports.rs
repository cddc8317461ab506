//! DMARC aggregate reports end to end: the real `mailc serve` as the MX of
//! example.test checks mail from sender.test and external.test against
//! records served by a real DNS server on 127.0.0.1 (both ask for reports
//! at `mailto:reports@rua.test`; only sender.test is authorised there by
//! `sender.test._report._dmarc.rua.test`). With a 3-second reporting
//! interval, the report about sender.test reaches a second mailc, the MX of
//! rua.test on 127.0.0.2, as a gzip'd XML attachment, DKIM-signed by
//! example.test, with the messages counted right; external.test's report
//! is never sent. Then `mailc report` reads that mailbox.

mod common;

use std::time::{Duration, Instant};

use common::dns_server::DnsServer;
use common::inbound::{message, send};
use common::server::{ALICE_HASH, Server, standard_domain};
use mail_auth::dkim::generate::DkimKeyPair;
use mail_auth::report::{ActionDisposition, DmarcResult, Report};

fn zones(dkim_public: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "sender.test.",
            format!(
                "@ 300 IN TXT \"v=spf1 ip4:127.0.0.1 -all\"\n\
                 _dmarc 300 IN TXT \"v=DMARC1; p=none; rua=mailto:reports@rua.test\"\n\
                 s1._domainkey 300 IN TXT \"v=DKIM1; k=ed25519; p={dkim_public}\"\n\
                 mx 300 IN A 127.0.0.1\n"
            ),
        ),
        ("other.test.", "@ 300 IN TXT \"v=spf1 -all\"\n".into()),
        (
            "external.test.",
            "@ 300 IN TXT \"v=spf1 -all\"\n_dmarc 300 IN TXT \"v=DMARC1; p=reject; rua=mailto:reports@rua.test\"\n".into(),
        ),
        (
            "rua.test.",
            "@ 300 IN MX 10 mx.rua.test.\nmx 300 IN A 127.0.0.2\n\
             sender.test._report._dmarc 300 IN TXT \"v=DMARC1\"\n"
                .into(),
        ),
        (
            "127.in-addr.arpa.",
            "1.0.0 300 IN PTR mx.sender.test.\n".into(),
        ),
    ]
}

fn signed(key: &DkimKeyPair, msg: &str) -> String {
    common::inbound::sign_ed25519(key, "sender.test", msg)
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.2:0").unwrap();
    l.local_addr().unwrap().port()
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

#[test]
fn aggregate_reports_reach_authorised_rua_signed_and_counted() {
    let key = DkimKeyPair::generate_ed25519().expect("key");
    let dns = DnsServer::start(&zones(&key.encoded_public_key()));
    let port = free_port();
    let rua = Server::start(&format!(
        "listen \"smtp\" \"127.0.0.2:{port}\"\ndomain \"rua.test\" {{\n    mailbox \"reports\" password=\"{ALICE_HASH}\"\n    alias \"postmaster\" to=\"reports@rua.test\"\n}}\n"
    ));
    let local = Server::start(&format!(
        "resolver \"{}\"\nlisten \"smtp\" \"127.0.0.1:0\"\noutbound {{\n    port {port}\n}}\ninbound {{\n    checks #true\n    dmarc {{\n        reports from=\"dmarc-reports@example.test\" interval=\"3s\"\n    }}\n}}\n{}",
        dns.addr,
        standard_domain()
    ));

    // Two aligned, signed messages; one whose author domain is sender.test
    // but whose envelope and missing signature are not (DMARC fail, p=none:
    // delivered, into Junk for its SPF fail); one from external.test refused under its p=reject.
    for subject in ["one", "two"] {
        let (code, text) = send(
            &local,
            "bounces@sender.test",
            &signed(&key, &message("news@sender.test", subject)),
        );
        assert_eq!(code, 250, "{text}\n{}", local.log_text());
    }
    let (code, text) = send(
        &local,
        "someone@other.test",
        &message("ceo@sender.test", "spoof"),
    );
    assert_eq!(code, 250, "{text}");
    let (code, text) = send(
        &local,
        "ceo@external.test",
        &message("ceo@external.test", "refused"),
    );
    assert_eq!(code, 550, "{text}");

    // The messages may straddle two periods: sum what arrives until the
    // three messages of sender.test are counted.
    let deadline = Instant::now() + Duration::from_secs(40);
    let reports: Vec<(Vec<u8>, Report)> = loop {
        let reports: Vec<(Vec<u8>, Report)> = rua
            .maildir_files("rua.test", "reports")
            .iter()
            .map(|f| {
                let bytes = std::fs::read(f).unwrap();
                let report = Report::parse_rfc5322(&bytes, 1 << 20)
                    .unwrap_or_else(|e| panic!("not a DMARC report: {e:?}"));
                (bytes, report)
            })
            .collect();
        let counted: u32 = reports
            .iter()
            .flat_map(|(_, r)| r.records())
            .map(|r| r.count())
            .sum();
        if counted >= 3 {
            break reports;
        }
        assert!(
            Instant::now() < deadline,
            "reports did not arrive ({counted} messages counted)\n{}\n---\n{}",
            local.log_text(),
            rua.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    };

    let mut pass = 0;
    let mut fail = 0;
    for (bytes, report) in &reports {
        let text = String::from_utf8_lossy(bytes);
        assert!(text.contains("Content-Type: application/gzip"), "{text}");
        assert!(text.contains(".xml.gz\""), "{text}");
        assert!(
            text.contains("From: <dmarc-reports@example.test>"),
            "{text}"
        );
        assert!(text.contains("d=example.test"), "{text}");
        assert_eq!(dkim_passes(&local, bytes), vec![true], "DKIM-valid");
        assert_eq!(report.domain(), "sender.test");
        assert_eq!(report.email(), "dmarc-reports@example.test");
        assert_eq!(report.org_name(), "example.test");
        assert_eq!(
            report.date_range_end() - report.date_range_begin(),
            3,
            "one 3 s period"
        );
        for r in report.records() {
            assert_eq!(r.source_ip(), Some("127.0.0.1".parse().unwrap()));
            assert_eq!(r.header_from(), "sender.test");
            match (r.dmarc_dkim_result(), r.dmarc_spf_result()) {
                (DmarcResult::Pass, DmarcResult::Pass) => {
                    assert_eq!(r.envelope_from(), "sender.test");
                    assert_eq!(r.action_disposition(), ActionDisposition::None);
                    let dkim = &r.dkim_auth_result()[0];
                    assert_eq!((dkim.domain(), dkim.selector()), ("sender.test", "s1"));
                    pass += r.count();
                }
                (DmarcResult::Fail, DmarcResult::Fail) => {
                    assert_eq!(r.envelope_from(), "other.test");
                    // p=none, but SPF fail put it into Junk: quarantined.
                    assert_eq!(r.action_disposition(), ActionDisposition::Quarantine);
                    assert!(r.dkim_auth_result().is_empty());
                    assert_eq!(
                        r.spf_auth_result()[0].result(),
                        mail_auth::report::SpfResult::Fail
                    );
                    fail += r.count();
                }
                other => panic!("unexpected record {other:?}"),
            }
        }
    }
    assert_eq!((pass, fail), (2, 1));

    // external.test asked for reports at rua.test, which does not
    // authorise it: never sent, and the period is done with all the same.
    assert!(
        local.wait_log("does not authorise it", Duration::from_secs(10)),
        "{}",
        local.log_text()
    );
    let lines = local.log_lines_containing("does not authorise it");
    assert!(lines[0].contains("external.test"), "{lines:?}");
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        rua.maildir_files("rua.test", "reports").len(),
        reports.len(),
        "no further report"
    );
    let left: Vec<_> = std::fs::read_dir(local.state().join("dmarc-reports"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "every period done: {left:?}");

    // The report viewer reads the rua mailbox.
    let maildir = rua.state().join("mail/rua.test/reports");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mailc"))
        .args(["report", "--mailbox"])
        .arg(&maildir)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let domain = &json["dmarc"]["domains"][0];
    assert_eq!(domain["domain"], "sender.test");
    assert_eq!(domain["messages"], 3);
    assert_eq!(domain["sources"][0]["ip"], "127.0.0.1");
    assert_eq!(domain["sources"][0]["dkim-aligned"]["fail"], 1);
    assert_eq!(domain["disposition"]["quarantine"], 1);
    assert_eq!(domain["failing"][0]["ip"], "127.0.0.1");
    assert_eq!(domain["failing"][0]["messages"], 1);
}
