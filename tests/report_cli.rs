//! `mailc report` on a Maildir of received reports, all built here: DMARC
//! aggregate reports written by hand after RFC 7489 Appendix C (one as a
//! `.xml.gz` attachment, one as `.zip`, one too old for `--since`), a
//! TLS-RPT report shaped like RFC 8460 §4.4's example (`.json.gz`), an
//! ordinary message and garbage. The text and the JSON are pinned as
//! snapshots; the numbers that matter are asserted directly too.

use std::io::Write;
use std::path::Path;

use assert_cmd::Command;
use mail_send::mail_builder::MessageBuilder;

/// 2026-12-01T00:00:00Z.
const DEC_1: u64 = 1_796_083_200;

fn record(ip: &str, count: u32, disposition: &str, dkim: &str, spf: &str, from: &str) -> String {
    format!(
        "  <record>\n    <row>\n      <source_ip>{ip}</source_ip>\n      <count>{count}</count>\n      <policy_evaluated>\n        <disposition>{disposition}</disposition>\n        <dkim>{dkim}</dkim>\n        <spf>{spf}</spf>\n      </policy_evaluated>\n    </row>\n    <identifiers>\n      <header_from>{from}</header_from>\n    </identifiers>\n    <auth_results>\n      <dkim>\n        <domain>{from}</domain>\n        <selector>s1</selector>\n        <result>{dkim}</result>\n      </dkim>\n      <spf>\n        <domain>{from}</domain>\n        <result>{spf}</result>\n      </spf>\n    </auth_results>\n  </record>\n"
    )
}

fn feedback(org: &str, id: &str, begin: u64, records: &[String]) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n<feedback>\n  <report_metadata>\n    <org_name>{org}</org_name>\n    <email>noreply-dmarc@{org}</email>\n    <report_id>{id}</report_id>\n    <date_range>\n      <begin>{begin}</begin>\n      <end>{}</end>\n    </date_range>\n  </report_metadata>\n  <policy_published>\n    <domain>example.test</domain>\n    <adkim>r</adkim>\n    <aspf>r</aspf>\n    <p>quarantine</p>\n    <sp>quarantine</sp>\n    <pct>100</pct>\n  </policy_published>\n{}</feedback>\n",
        begin + 86_399,
        records.concat()
    )
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn zip(name: &str, bytes: &[u8]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    w.start_file(name, zip::write::SimpleFileOptions::default())
        .unwrap();
    w.write_all(bytes).unwrap();
    w.finish().unwrap().into_inner()
}

fn mail(from: &str, subject: &str, content_type: &str, file: &str, body: Vec<u8>) -> Vec<u8> {
    MessageBuilder::new()
        .from(from)
        .to("dmarc@example.test")
        .subject(subject)
        .text_body("A report is attached.\r\n")
        .attachment(content_type, file, body)
        .write_to_vec()
        .unwrap()
}

const TLS_RPT: &str = r#"{
  "organization-name": "Company-X",
  "date-range": {
    "start-datetime": "2026-12-01T00:00:00Z",
    "end-datetime": "2026-12-01T23:59:59Z"
  },
  "contact-info": "sts-reporting@company-x.example",
  "report-id": "5065427c-23d3-47ca-b6e0-946ea0e8c4be",
  "policies": [{
    "policy": {
      "policy-type": "sts",
      "policy-string": ["version: STSv1", "mode: testing",
            "mx: *.mail.example.test", "max_age: 86400"],
      "policy-domain": "example.test",
      "mx-host": ["*.mail.example.test"]
    },
    "summary": {
      "total-successful-session-count": 5326,
      "total-failure-session-count": 303
    },
    "failure-details": [{
      "result-type": "certificate-expired",
      "sending-mta-ip": "2001:db8:abcd:0012::1",
      "receiving-mx-hostname": "mx1.mail.example.test",
      "failed-session-count": 100
    }, {
      "result-type": "starttls-not-supported",
      "sending-mta-ip": "2001:db8:abcd:0013::1",
      "receiving-mx-hostname": "mx2.mail.example.test",
      "receiving-ip": "203.0.113.56",
      "failed-session-count": 200,
      "additional-information": "https://reports.company-x.example/report_info?id=5065427c-23d3#StarttlsNotSupported"
    }, {
      "result-type": "validation-failure",
      "sending-mta-ip": "198.51.100.62",
      "receiving-ip": "203.0.113.58",
      "receiving-mx-hostname": "mx-backup.mail.example.test",
      "failed-session-count": 3,
      "failure-reason-code": "X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED"
    }]
  }, {
    "policy": {
      "policy-type": "no-policy-found",
      "policy-domain": "lists.example.test"
    },
    "summary": {
      "total-successful-session-count": 40,
      "total-failure-session-count": 0
    }
  }]
}"#;

/// The Maildir: `cur/` and `new/` both hold messages.
fn maildir(dir: &Path) {
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let google = feedback(
        "google.com",
        "g-1",
        DEC_1,
        &[
            record("192.0.2.10", 120, "none", "pass", "pass", "example.test"),
            record("203.0.113.5", 7, "reject", "fail", "fail", "example.test"),
            record("198.51.100.20", 3, "none", "fail", "pass", "example.test"),
        ],
    );
    let outlook = feedback(
        "Enterprise Outlook",
        "o-1",
        DEC_1,
        &[
            record("192.0.2.10", 30, "none", "pass", "pass", "example.test"),
            record(
                "203.0.113.5",
                2,
                "quarantine",
                "fail",
                "fail",
                "example.test",
            ),
        ],
    );
    let old = feedback(
        "google.com",
        "g-0",
        DEC_1 - 30 * 86_400,
        &[record(
            "203.0.113.99",
            50,
            "none",
            "fail",
            "fail",
            "example.test",
        )],
    );
    let files: Vec<(&str, Vec<u8>)> = vec![
        (
            "cur/1796100001.M1P1.mx:2,S",
            mail(
                "noreply-dmarc@google.com",
                "Report domain: example.test Submitter: google.com Report-ID: g-1",
                "application/gzip",
                "google.com!example.test!1796083200!1796169599.xml.gz",
                gzip(google.as_bytes()),
            ),
        ),
        (
            "cur/1796100002.M2P1.mx:2,S",
            mail(
                "dmarcreport@microsoft.com",
                "Report Domain: example.test Submitter: enterprise.protection.outlook.com",
                "application/zip",
                "enterprise.protection.outlook.com!example.test!1796083200!1796169599.zip",
                zip("report.xml", outlook.as_bytes()),
            ),
        ),
        (
            "cur/1796100003.M3P1.mx:2,S",
            mail(
                "noreply-dmarc@google.com",
                "Report domain: example.test Submitter: google.com Report-ID: g-0",
                "application/gzip",
                "google.com!example.test!old.xml.gz",
                gzip(old.as_bytes()),
            ),
        ),
        (
            "new/1796100004.M4P1.mx",
            mail(
                "tlsrpt@company-x.example",
                "Report Domain: example.test Submitter: company-x.example Report-ID: <5065427c>",
                "application/tlsrpt+gzip",
                "company-x.example!example.test!1796083200!1796169599.json.gz",
                gzip(TLS_RPT.as_bytes()),
            ),
        ),
        (
            "new/1796100005.M5P1.mx",
            b"From: friend@elsewhere.test\r\nSubject: lunch?\r\n\r\nNot a report.\r\n".to_vec(),
        ),
        (
            "new/1796100006.M6P1.mx",
            b"\x00\xff garbage \x1b[31m\r\n\r\n\r\n".to_vec(),
        ),
        (
            "new/1796100007.M7P1.mx",
            mail(
                "noreply-dmarc@broken.test",
                "Report domain: example.test",
                "application/gzip",
                "broken.xml.gz",
                b"\x1f\x8b\x08\x00 this is not gzip".to_vec(),
            ),
        ),
    ];
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

fn run(dir: &Path, extra: &[&str]) -> String {
    let out = Command::cargo_bin("mailc")
        .unwrap()
        .args(["report", "--mailbox"])
        .arg(dir)
        .args(extra)
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    String::from_utf8(out)
        .unwrap()
        .replace(&dir.display().to_string(), "<maildir>")
}

#[test]
fn summary_of_received_reports() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("Maildir");
    maildir(&dir);

    let raw = run(&dir, &["--json", "--since", "2026-12-01"]);
    let json: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(json["messages"], 7);
    assert_eq!(
        json["dmarc"]["reports"], 2,
        "the November report is left out"
    );
    let d = &json["dmarc"]["domains"][0];
    assert_eq!(d["domain"], "example.test");
    assert_eq!(d["messages"], 162);
    assert_eq!(d["dmarc-pass"], 153);
    assert_eq!(d["dmarc-fail"], 9);
    assert_eq!(
        d["dkim-aligned"],
        serde_json::json!({"pass": 150, "fail": 12})
    );
    assert_eq!(
        d["disposition"],
        serde_json::json!({"none": 153, "quarantine": 2, "reject": 7})
    );
    // Who sends as us and fails: 203.0.113.5, seen by both reporters.
    assert_eq!(
        d["failing"],
        serde_json::json!([{
            "ip": "203.0.113.5",
            "messages": 9,
            "header-from": ["example.test"],
            "reporters": ["Enterprise Outlook", "google.com"]
        }])
    );
    assert_eq!(d["reporters"].as_array().unwrap().len(), 2);
    let tls = &json["tls"]["policies"];
    assert_eq!(tls[0]["policy-type"], "sts");
    assert_eq!(tls[0]["successful"], 5326);
    assert_eq!(tls[0]["failed"], 303);
    assert_eq!(
        tls[0]["failures"][0]["result-type"],
        "starttls-not-supported"
    );
    assert_eq!(tls[1]["policy-type"], "no-policy-found");
    let unreadable = json["unreadable"].as_array().unwrap();
    assert_eq!(unreadable.len(), 3, "{unreadable:?}");
    assert!(
        unreadable[2]["reason"]
            .as_str()
            .unwrap()
            .contains("decompress"),
        "{unreadable:?}"
    );
    insta::assert_snapshot!("json", raw);

    let text = run(&dir, &[]);
    assert!(text.contains("DMARC example.test: 212 messages"), "{text}");
    assert!(
        text.contains("sending as example.test and failing DMARC:"),
        "{text}"
    );
    insta::assert_snapshot!("text", text);
}

#[test]
fn bad_arguments_are_errors_not_panics() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::cargo_bin("mailc")
        .unwrap()
        .args(["report", "--mailbox"])
        .arg(tmp.path().join("missing"))
        .assert()
        .code(1)
        .get_output()
        .stderr
        .clone();
    assert!(String::from_utf8_lossy(&out).contains("no such Maildir"));
    Command::cargo_bin("mailc")
        .unwrap()
        .args(["report", "--mailbox"])
        .arg(tmp.path())
        .args(["--since", "last tuesday"])
        .assert()
        .code(64);
    // An empty directory is a Maildir without messages: an empty summary,
    // the missing cur/ and new/ named.
    let text = run(tmp.path(), &[]);
    assert!(text.starts_with("0 messages read"), "{text}");
}

/// With the config, the mailbox is found from the domain's `dmarc rua=`
/// (or named by address); the same reports are read.
#[test]
fn the_rua_mailbox_comes_from_the_config() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let config = tmp.path().join("mailc.kdl");
    std::fs::write(
        &config,
        format!(
            "hostname \"mail.example.test\"\nstate \"{}\"\nlisten \"lmtp\" \"127.0.0.1:24\"\n\
             domain \"example.test\" {{\n    dmarc policy=\"none\" rua=\"dmarc@example.test\"\n    mailbox \"dmarc\" {{\n        alias \"postmaster\"\n    }}\n}}\n",
            state.display()
        ),
    )
    .unwrap();
    maildir(&state.join("mail/example.test/dmarc"));
    let from_rua = Command::cargo_bin("mailc")
        .unwrap()
        .arg("report")
        .arg(&config)
        .arg("--json")
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let json: serde_json::Value = serde_json::from_slice(&from_rua).unwrap();
    assert_eq!(json["dmarc"]["reports"], 3);
    assert_eq!(json["tls"]["reports"], 1);
    let by_address = Command::cargo_bin("mailc")
        .unwrap()
        .arg("report")
        .arg(&config)
        .args(["--mailbox", "postmaster@example.test", "--json"])
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    assert_eq!(by_address, from_rua);
    let out = Command::cargo_bin("mailc")
        .unwrap()
        .arg("report")
        .arg(&config)
        .args(["--mailbox", "nobody@elsewhere.test"])
        .assert()
        .code(1)
        .get_output()
        .stderr
        .clone();
    assert!(
        String::from_utf8_lossy(&out).contains("not one of our addresses"),
        "{}",
        String::from_utf8_lossy(&out)
    );
}
