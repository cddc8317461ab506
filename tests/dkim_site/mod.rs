//! A site with DKIM for the signing tests (`tests/dkim_sign.rs`) and the
//! interop tests (`tests/interop_dkim.rs`): keys made by `mailc dkim keygen`,
//! the records `mailc dns` prints served by a real DNS server on loopback.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

use crate::common::dns_server::DnsServer;
use mailc::tables::Tables;

pub const CONFIG: &str = r#"hostname "mail.example.com"
state "STATE"
tls self-signed=#true
listen "submissions" "0.0.0.0:465"
domain "both.example" {
    dkim selector="rsa2026"
    dkim selector="ed2026" algorithm="ed25519"
    mailbox "alice"
}
domain "rsa.example" {
    dkim selector="s1"
    mailbox "rob"
}
domain "ed.example" {
    dkim selector="e1" algorithm="ed25519"
    mailbox "eve"
}
domain "bücher.example" {
    dkim selector="b1" algorithm="ed25519"
    mailbox "jörg"
}
domain "plain.example" {
    mailbox "carol"
}
"#;

pub struct Site {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub state: PathBuf,
    pub tables: Tables,
    pub dns: DnsServer,
}

fn mailc(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_mailc"))
        .args(args)
        .output()
        .expect("mailc runs");
    assert!(
        out.status.success(),
        "mailc {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// The zones of `mailc dns` output, split at each `$ORIGIN`.
pub fn zones(snippet: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for chunk in snippet.split("$ORIGIN ").skip(1) {
        let (origin, rest) = chunk.split_once('\n').expect("origin line");
        out.push((
            origin.trim().to_string(),
            format!("$ORIGIN {origin}\n{rest}"),
        ));
    }
    out
}

pub fn site() -> Site {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let config = dir.path().join("site.kdl");
    std::fs::write(
        &config,
        CONFIG.replace("STATE", &state.display().to_string()),
    )
    .unwrap();
    let path = config.display().to_string();
    mailc(&["dkim", "keygen", &path]);
    let snippet = mailc(&["dns", &path]);
    let zones = zones(&snippet);
    assert_eq!(zones.len(), 5, "{snippet}");
    let refs: Vec<(&str, String)> = zones.iter().map(|(o, t)| (o.as_str(), t.clone())).collect();
    let dns = DnsServer::start(&refs);
    let compiled = crate::common::compile_path(&config, false)
        .compiled
        .expect("the site compiles");
    Site {
        dir,
        config,
        state,
        tables: compiled.tables,
        dns,
    }
}

/// A message as a mail client submits it.
pub fn message(from: &str) -> Vec<u8> {
    format!(
        "Received: from client.example ([192.0.2.7])\r\n\tby mail.example.com (mailc) with ESMTPSA id 1A2B; Tue, 24 Nov 2026 19:13:55 +0000\r\n\
         From: Sender <{from}>\r\n\
         To: Bob <bob@example.org>\r\n\
         Cc: carol@example.net\r\n\
         Subject: Quarterly   figures\r\n \tfolded onto two lines\r\n\
         Date: Tue, 24 Nov 2026 19:13:50 +0000\r\n\
         Message-ID: <q3@example.com>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\
         \r\n\
         Hello Bob,  \r\n\
         \r\n\
         the figures: 12 \u{20ac}, trailing spaces and tabs \t \r\n\
         .leading dot\r\n\
         \r\n\
         \r\n"
    )
    .into_bytes()
}
