//! ARC sealing of forwarded mail (RFC 8617 §5.1): the ARC set an
//! intermediary adds when it passes on a message it authenticated.
//!
//! What is sealed is what the MX concluded at reception: the
//! `Authentication-Results` field mailc put on top of the message (its
//! authserv-id is our host name; fields claiming it that came from outside
//! were removed before, so the top one is ours). Its content becomes the
//! `ARC-Authentication-Results`, its `arc=` result the chain validation
//! status `cv=` of the new `ARC-Seal`:
//!
//! | our `arc=` | existing ARC sets | sealed |
//! |---|---|---|
//! | `none` | none | `i=1`, `cv=none` |
//! | `pass` | `i=1..n`, `n < 50` | `i=n+1`, `cv=pass` |
//! | `fail`, `permerror`, `neutral` | `i=1..n`, the last not `cv=fail` | `i=n+1`, `cv=fail` |
//! | `temperror` | any | not sealed: the chain is unknown, and `cv=fail` could not be taken back |
//! | anything | `i=50` | not sealed (§4.2.1: at most 50 sets) |
//! | no result of ours (checks off, own submission) | | not sealed: nothing to seal |
//!
//! The `ARC-Message-Signature` covers the fields a DKIM signature of ours
//! covers ([`super::dkim`]) plus the `DKIM-Signature` fields, relaxed/relaxed,
//! no `l=`; both signatures use the forwarding domain's RSA key (RFC 8617
//! defines only `rsa-sha256`).
//!
//! The signatures are computed by mail-auth's `ArcSealer`; the chain it
//! seals is rebuilt here from the message's parsed ARC fields and our
//! recorded result, so sealing needs no DNS.

use mail_auth::arc::{ArcSealer, ChainValidation, Set};
use mail_auth::common::crypto::{DkimKey, Sha256, SigningKey};
use mail_auth::common::headers::{HeaderWriter, Writable};
use mail_auth::dkim::Canonicalization;
use mail_auth::{ArcOutput, AuthenticatedMessage, AuthenticationResults, DkimResult};

/// The most ARC sets a message may carry (RFC 8617 §4.2.1).
pub const MAX_SETS: u32 = 50;

/// The chain validation status the MX recorded (`arc=` of our
/// `Authentication-Results`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chain {
    None,
    Pass,
    Fail,
    /// `temperror`: a key could not be looked up.
    Unknown,
}

/// Why a forwarded message goes out without our ARC set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotSealed {
    #[error("no Authentication-Results of ours on top (checks were off)")]
    NoResults,
    #[error("our Authentication-Results has no arc= result")]
    NoArcResult,
    #[error("the ARC chain could not be validated at reception (temperror)")]
    ChainUnknown,
    #[error("the message has {0} ARC sets already (at most {MAX_SETS})")]
    ChainFull(u32),
    #[error("the ARC chain already failed at an earlier hop")]
    AlreadyFailed,
    #[error("the message carries ARC sets but our result says none")]
    Inconsistent,
    #[error("the message has no header mail-auth can read")]
    Unparsable,
    #[error("no RSA DKIM key for {0}")]
    NoKey(String),
    #[error("signing failed: {0}")]
    Sign(mail_auth::Error),
}

/// Our `Authentication-Results` at the top of the message: its value as
/// written (after the colon, folding and the final CRLF included) and the
/// `arc=` result in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnResults<'a> {
    pub value: &'a [u8],
    pub chain: Option<Chain>,
}

/// The first header field of `message`, when it is an
/// `Authentication-Results` with `authserv_id`.
pub fn own_results<'a>(message: &'a [u8], authserv_id: &str) -> Option<OwnResults<'a>> {
    // The first field, continuation lines included; a message without a
    // line end is one unterminated field.
    let mut end = 0;
    loop {
        match message[end..].iter().position(|&b| b == b'\n') {
            Some(nl) => end += nl + 1,
            None => {
                end = message.len();
                break;
            }
        }
        if !matches!(message.get(end), Some(b' ' | b'\t')) {
            break;
        }
    }
    let field = &message[..end];
    let colon = field.iter().position(|&b| b == b':')?;
    if !field[..colon].eq_ignore_ascii_case(b"Authentication-Results") {
        return None;
    }
    let value = &field[colon + 1..];
    let mut parts = value.split(|&b| b == b';');
    let id = parts.next()?.trim_ascii();
    if !id.eq_ignore_ascii_case(authserv_id.as_bytes()) {
        return None;
    }
    let chain = parts.find_map(|resinfo| {
        let resinfo = resinfo.trim_ascii();
        let result = resinfo
            .get(..4)
            .filter(|m| m.eq_ignore_ascii_case(b"arc="))
            .map(|_| &resinfo[4..])?;
        let word: Vec<u8> = result
            .iter()
            .take_while(|b| b.is_ascii_alphabetic())
            .map(u8::to_ascii_lowercase)
            .collect();
        Some(match word.as_slice() {
            b"none" => Chain::None,
            b"pass" => Chain::Pass,
            b"temperror" => Chain::Unknown,
            _ => Chain::Fail,
        })
    });
    Some(OwnResults { value, chain })
}

/// A field value unfolded, runs of white space made one space, trimmed:
/// the value as relaxed canonicalization (RFC 6376 §3.4.2) sees it.
fn relaxed(value: &[u8]) -> String {
    let mut out = String::with_capacity(value.len());
    let mut space = false;
    for &b in value {
        match b {
            b'\r' | b'\n' => {}
            b' ' | b'\t' => space = true,
            _ => {
                if space && !out.is_empty() {
                    out.push(' ');
                }
                space = false;
                out.push(char::from(b));
            }
        }
    }
    out
}

/// A borrowed key, for mail-auth's sealer, which wants to own one.
struct KeyRef<'a>(&'a DkimKey);

impl SigningKey for KeyRef<'_> {
    type Hasher = Sha256;

    fn sign(&self, input: impl Writable) -> mail_auth::Result<Vec<u8>> {
        self.0.sign(input)
    }

    fn algorithm(&self) -> mail_auth::common::crypto::Algorithm {
        self.0.algorithm()
    }
}

/// The ARC set (three fields, CRLF-terminated, to put on top of
/// `message`) that `domain` adds when it forwards `message`, sealing the
/// results of our `Authentication-Results` on top of it.
/// `signed_fields` are the fields the `ARC-Message-Signature` covers.
pub fn seal(
    key: &DkimKey,
    domain: &str,
    selector: &str,
    signed_fields: &[String],
    message: &[u8],
    authserv_id: &str,
) -> Result<String, NotSealed> {
    if !matches!(key, DkimKey::Rsa(_)) {
        return Err(NotSealed::NoKey(domain.to_string()));
    }
    let ours = own_results(message, authserv_id).ok_or(NotSealed::NoResults)?;
    let chain = ours.chain.ok_or(NotSealed::NoArcResult)?;
    let parsed = AuthenticatedMessage::parse(message).ok_or(NotSealed::Unparsable)?;
    let existing = parsed
        .as_headers
        .iter()
        .map(|h| h.header.i)
        .chain(parsed.ams_headers.iter().map(|h| h.header.i))
        .chain(parsed.aar_headers.iter().map(|h| h.header.i))
        .max()
        .unwrap_or(0);
    if existing >= MAX_SETS {
        return Err(NotSealed::ChainFull(existing));
    }
    let result = match chain {
        Chain::Unknown => return Err(NotSealed::ChainUnknown),
        Chain::None if existing > 0 => return Err(NotSealed::Inconsistent),
        Chain::None => DkimResult::None,
        Chain::Pass => DkimResult::Pass,
        Chain::Fail => {
            DkimResult::Fail(mail_auth::Error::Arc(mail_auth::arc::ArcError::BrokenChain))
        }
    };
    // The chain as the validator saw it: set 1..n in order. A set with a
    // field missing cannot be sealed over.
    let mut output = ArcOutput::default().with_result(result);
    for i in 1..=existing {
        let seal = parsed.as_headers.iter().find(|h| h.header.i == i);
        let signature = parsed.ams_headers.iter().find(|h| h.header.i == i);
        let results = parsed.aar_headers.iter().find(|h| h.header.i == i);
        let (Some(seal), Some(signature), Some(results)) = (seal, signature, results) else {
            return Err(NotSealed::AlreadyFailed);
        };
        output = output.with_set(Set {
            signature: mail_auth::common::headers::Header::new(
                signature.name,
                signature.value,
                &signature.header,
            ),
            seal: mail_auth::common::headers::Header::new(seal.name, seal.value, &seal.header),
            results: mail_auth::common::headers::Header::new(
                results.name,
                results.value,
                &results.header,
            ),
        });
    }
    if parsed
        .as_headers
        .iter()
        .find(|h| h.header.i == existing)
        .is_some_and(|h| h.header.cv == ChainValidation::Fail)
    {
        return Err(NotSealed::AlreadyFailed);
    }
    // mail-auth writes the ARC-Authentication-Results from the "host name"
    // it is given, verbatim: our whole result, canonical, on one line, is
    // what the seal signs; the field itself is written below folded as our
    // Authentication-Results was (relaxed canonicalization equates both).
    let canonical = relaxed(ours.value);
    let results = AuthenticationResults::new(&canonical);
    let mut fields: Vec<String> = signed_fields.to_vec();
    fields.push("DKIM-Signature".into());
    let sealer = ArcSealer::from_key(KeyRef(key))
        .domain(domain)
        .selector(selector)
        .headers(fields)
        .header_canonicalization(Canonicalization::Relaxed)
        .body_canonicalization(Canonicalization::Relaxed);
    let set = sealer
        .seal(&parsed, &results, &output)
        .map_err(NotSealed::Sign)?;
    let i = set.seal.i;
    let mut text = set.to_header();
    // Seal and message signature as mail-auth writes them; our folded
    // results instead of its one long line.
    let Some(at) = text.find("ARC-Authentication-Results:") else {
        return Err(NotSealed::Sign(mail_auth::Error::NoHeadersFound));
    };
    text.truncate(at);
    text.push_str(&format!("ARC-Authentication-Results: i={i};"));
    text.push_str(&String::from_utf8_lossy(ours.value));
    if !text.ends_with("\r\n") {
        text.push_str("\r\n");
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: &[u8] = b"Authentication-Results: mail.example.test;\r\n\tdkim=pass header.d=sender.test;\r\n\tarc=pass (ok) smtp.remote-ip=127.0.0.1;\r\n\tdmarc=pass\r\nReceived: from x\r\nFrom: a@sender.test\r\n\r\nbody\r\n";

    #[test]
    fn reads_our_top_results_only() {
        let got = own_results(OURS, "mail.example.test").expect("ours");
        assert_eq!(got.chain, Some(Chain::Pass));
        assert!(got.value.starts_with(b" mail.example.test;\r\n\tdkim=pass"));
        assert!(got.value.ends_with(b"dmarc=pass\r\n"));
        // Another authserv-id, or ours not on top: not ours.
        assert_eq!(own_results(OURS, "other.test"), None);
        let below = [&b"Received: from y\r\n"[..], OURS].concat();
        assert_eq!(own_results(&below, "mail.example.test"), None);
        for (arc, chain) in [
            ("none", Some(Chain::None)),
            ("fail (broken)", Some(Chain::Fail)),
            ("permerror", Some(Chain::Fail)),
            ("TempError", Some(Chain::Unknown)),
        ] {
            let m =
                format!("Authentication-Results: mail.example.test; spf=pass; arc={arc}\r\n\r\n");
            assert_eq!(
                own_results(m.as_bytes(), "mail.example.test").map(|o| o.chain),
                Some(chain),
                "{arc}"
            );
        }
        // No arc= result; "arc=" inside another result is not one.
        let m = b"Authentication-Results: mail.example.test; dkim=pass header.b=xarc=pass\r\n\r\n";
        assert_eq!(
            own_results(m, "mail.example.test").map(|o| o.chain),
            Some(None)
        );
        // Odd input: empty, no colon.
        for odd in [&b""[..], b"x\r\n", b"x"] {
            assert_eq!(own_results(odd, "mail.example.test"), None);
        }
        // No line end: one field all the same.
        let m = b"Authentication-Results: mail.example.test; arc=pass";
        assert_eq!(
            own_results(m, "mail.example.test").and_then(|o| o.chain),
            Some(Chain::Pass)
        );
        // Found by the inbound_headers fuzz target: what follows our field
        // is a continuation line without a line end; our field is still
        // read, with our arc= result (not one from the folded-in text).
        let mut m = b"Authentication-Results: mail.example.test;\r\n\tarc=none smtp.remote-ip=127.0.0.1\r\n"
            .to_vec();
        m.extend_from_slice(b" a=rsa-sha256; cv=pARC-Seal:\x7f i=Teal4A");
        let got = own_results(&m, "mail.example.test").expect("ours");
        assert_eq!(got.chain, Some(Chain::None));
        assert_eq!(got.value.len(), m.len() - "Authentication-Results:".len());
    }

    fn rsa() -> DkimKey {
        let pair = mail_auth::dkim::generate::DkimKeyPair::generate_rsa(2048).expect("key");
        let der = rustls_pki_types::PrivateKeyDer::Pkcs1(pair.private_key().to_vec().into());
        DkimKey::Rsa(mail_auth::common::crypto::RsaKey::from_key_der(der).expect("rsa"))
    }

    fn sealed(key: &DkimKey, message: &[u8]) -> Result<String, NotSealed> {
        seal(
            key,
            "fwd.test",
            "arc",
            &["From".to_string(), "From".to_string()],
            message,
            "mail.example.test",
        )
    }

    #[test]
    fn seals_or_says_why_not() {
        let key = rsa();
        let first = sealed(&key, &with_arc("none")).expect("sealed");
        let fields: Vec<&str> = first
            .split("\r\n")
            .filter(|l| !l.starts_with([' ', '\t']))
            .collect();
        assert!(fields[0].starts_with("ARC-Seal: i=1;"), "{first}");
        assert!(first.contains("cv=none"), "{first}");
        assert!(
            fields[1].starts_with("ARC-Message-Signature: i=1;"),
            "{first}"
        );
        assert!(fields[2].starts_with("ARC-Authentication-Results: i=1; mail.example.test;"));
        assert!(first.ends_with("dmarc=pass\r\n"), "{first}");
        // Our results say pass, the message claims 50 sets: no 51st.
        let full = [
            &b"Authentication-Results: mail.example.test; arc=pass\r\n"[..],
            b"ARC-Seal: i=50; a=rsa-sha256; cv=pass; d=x.test; s=s; b=AAAA\r\n",
            b"From: a@sender.test\r\n\r\nbody\r\n",
        ]
        .concat();
        assert_eq!(sealed(&key, &full), Err(NotSealed::ChainFull(50)));
        // The last hop already failed the chain.
        let failed = [
            &b"Authentication-Results: mail.example.test; arc=fail\r\n"[..],
            b"ARC-Seal: i=1; a=rsa-sha256; cv=fail; d=x.test; s=s; b=AAAA\r\n",
            b"ARC-Message-Signature: i=1; a=rsa-sha256; c=relaxed/relaxed; d=x.test; s=s; h=From; bh=AAAA; b=AAAA\r\n",
            b"ARC-Authentication-Results: i=1; x.test; spf=pass\r\n",
            b"From: a@sender.test\r\n\r\nbody\r\n",
        ]
        .concat();
        assert_eq!(sealed(&key, &failed), Err(NotSealed::AlreadyFailed));
        // A set without its seal cannot be sealed over.
        let partial = [
            &b"Authentication-Results: mail.example.test; arc=fail\r\n"[..],
            b"ARC-Authentication-Results: i=1; x.test; spf=pass\r\n",
            b"From: a@sender.test\r\n\r\nbody\r\n",
        ]
        .concat();
        assert_eq!(sealed(&key, &partial), Err(NotSealed::AlreadyFailed));
        // Unknown chain, no result, no results of ours, sets our result
        // does not mention.
        assert_eq!(
            sealed(&key, &with_arc("temperror")),
            Err(NotSealed::ChainUnknown)
        );
        assert_eq!(
            sealed(&key, b"Authentication-Results: mail.example.test; spf=pass\r\nFrom: a@b.test\r\n\r\nx\r\n"),
            Err(NotSealed::NoArcResult)
        );
        assert_eq!(
            sealed(&key, b"From: a@b.test\r\n\r\nx\r\n"),
            Err(NotSealed::NoResults)
        );
        let claims = [
            &b"Authentication-Results: mail.example.test; arc=none\r\n"[..],
            &failed[failed.iter().position(|&b| b == b'\n').unwrap() + 1..],
        ]
        .concat();
        assert_eq!(sealed(&key, &claims), Err(NotSealed::Inconsistent));
        // ARC defines rsa-sha256 only.
        let pair = mail_auth::dkim::generate::DkimKeyPair::generate_ed25519().expect("key");
        let ed = DkimKey::Ed25519(
            mail_auth::common::crypto::Ed25519Key::from_pkcs8_der(pair.private_key()).expect("ed"),
        );
        assert_eq!(sealed(&ed, OURS), Err(NotSealed::NoKey("fwd.test".into())));
    }

    /// [`OURS`] with another `arc=` result.
    fn with_arc(result: &str) -> Vec<u8> {
        String::from_utf8_lossy(OURS)
            .replace("arc=pass (ok)", &format!("arc={result}"))
            .into_bytes()
    }

    #[test]
    fn relaxed_unfolds_and_squeezes() {
        assert_eq!(
            relaxed(b" mail.example.test;\r\n\tdkim=pass  x;\r\n\tarc=none \r\n"),
            "mail.example.test; dkim=pass x; arc=none"
        );
    }
}
