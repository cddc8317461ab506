//! For `bench/smtp_bench.py --checks` (not a test): makes an RSA-2048 DKIM
//! key for `bench.sender`, writes a message of about SIZE bytes signed with
//! it to OUT (LF line ends, as smtp-source -F wants them), and serves on
//! 127.0.0.1 the records the MX's checks look up: SPF allowing 127.0.0.1,
//! DMARC p=reject, the DKIM key, a PTR for 127.0.0.1 and its A. Prints the
//! server's address and runs until stdin closes.
//!
//! usage: cargo run --release --example bench_dns -- OUT SIZE

#[path = "../tests/common/dns_server.rs"]
mod dns_server;

use std::io::Read;

use mail_auth::common::crypto::{RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::DkimSigner;
use mail_auth::dkim::generate::DkimKeyPair;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(out), Some(size)) = (
        args.get(1),
        args.get(2).and_then(|s| s.parse::<usize>().ok()),
    ) else {
        eprintln!("usage: bench_dns OUT SIZE");
        std::process::exit(2);
    };
    let pair = DkimKeyPair::generate_rsa(2048).expect("RSA key");
    let key = RsaKey::<Sha256>::from_key_der(rustls_pki_types::PrivateKeyDer::Pkcs1(
        rustls_pki_types::PrivatePkcs1KeyDer::from(pair.private_key()),
    ))
    .expect("key");
    let line = "The quick brown fox jumps over the lazy dog; pack my box with five dozen jugs.\r\n";
    let body: String = line.repeat(size / line.len() + 1);
    let msg = format!(
        "From: News <news@bench.sender>\r\nTo: bench@bench.example\r\nSubject: benchmark\r\nDate: Thu, 03 Dec 2026 08:00:00 +0000\r\nMessage-ID: <bench@bench.sender>\r\n\r\n{body}"
    );
    let signature = DkimSigner::from_key(key)
        .domain("bench.sender")
        .selector("s1")
        .headers(["From", "To", "Subject", "Date", "Message-ID"])
        .sign(msg.as_bytes())
        .expect("sign");
    let signed = format!("{}{msg}", signature.to_header()).replace("\r\n", "\n");
    std::fs::write(out, signed).expect("message written");
    let public = pair.encoded_public_key();
    let strings: Vec<String> = public
        .as_bytes()
        .chunks(200)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect();
    let zone = format!(
        "@ 300 IN TXT \"v=spf1 ip4:127.0.0.1 -all\"\n\
         _dmarc 300 IN TXT \"v=DMARC1; p=reject\"\n\
         s1._domainkey 300 IN TXT \"v=DKIM1; k=rsa; p=\" {}\n\
         mx 300 IN A 127.0.0.1\n",
        strings.join(" ")
    );
    let server = dns_server::DnsServer::start(&[
        ("bench.sender.", zone),
        (
            "127.in-addr.arpa.",
            "1.0.0 300 IN PTR mx.bench.sender.\n".into(),
        ),
    ]);
    println!("{}", server.addr);
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
}
