//! Any bytes as a message arriving at the MX, through the header
//! processing around the inbound checks: removal of forged
//! `Authentication-Results` (`inbound::strip_forged`), mail-auth's parse of
//! the message the checks verify (every DKIM-Signature and ARC field, the
//! From: addresses), then, as for a forwarded message, our results put on
//! top, read back (`outbound::arc::own_results`) and sealed
//! (`outbound::arc::seal`, for one input in 16: RSA signing is slow). No
//! DNS: nothing here looks anything up. Must never panic or hang.
//! Run from the repository root:
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run inbound_headers fuzz/corpus/inbound_headers tests/data`
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mail_auth::common::crypto::{DkimKey, RsaKey};
use mail_auth::dkim::generate::DkimKeyPair;
use mailc::inbound::strip_forged;
use mailc::outbound::arc::{Chain, own_results, seal};
use mailc::proto::smtp::headers::from_addresses;

const ID: &str = "mail.example.test";

fn key() -> &'static DkimKey {
    static KEY: OnceLock<DkimKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let pair = DkimKeyPair::generate_rsa(2048).expect("key");
        let der = rustls_pki_types::PrivateKeyDer::Pkcs1(pair.private_key().to_vec().into());
        DkimKey::Rsa(RsaKey::from_key_der(der).expect("rsa"))
    })
}

fuzz_target!(|data: &[u8]| {
    // Before the checks: fields claiming our authserv-id go; idempotent.
    let stripped = strip_forged(data, ID);
    assert!(stripped.len() <= data.len());
    assert_eq!(&*strip_forged(&stripped, ID), &*stripped);

    // What the checks parse.
    if let Some(msg) = mail_auth::AuthenticatedMessage::parse(&stripped) {
        for (name, value) in &msg.headers {
            if name.eq_ignore_ascii_case(b"DKIM-Signature") {
                let _ = mail_auth::dkim::Signature::parse(value);
            }
        }
        assert!(msg.body_offset as usize <= stripped.len());
    }
    let _ = from_addresses(&stripped);

    // After the checks: our results on top, then the seal of a forward.
    let (arc, chain) = match data.first().map(|b| b >> 6) {
        Some(0) => ("none", Chain::None),
        Some(1) => ("pass", Chain::Pass),
        Some(2) => ("fail", Chain::Fail),
        _ => ("temperror", Chain::Unknown),
    };
    let mut message = format!(
        "Authentication-Results: {ID};\r\n\tdkim=pass header.d=sender.test;\r\n\tarc={arc} smtp.remote-ip=127.0.0.1\r\n"
    )
    .into_bytes();
    message.extend_from_slice(&stripped);
    let ours = own_results(&message, ID).expect("our results on top");
    assert_eq!(ours.chain, Some(chain));
    if data.first().is_some_and(|b| b & 0x0f == 0) {
        let fields = ["From".to_string(), "Subject".into(), "From".into()];
        if let Ok(set) = seal(key(), "fwd.test", "arc", &fields, &message, ID) {
            assert!(set.starts_with("ARC-Seal: i="), "{set}");
            assert!(set.ends_with("\r\n"));
        }
    }
});
