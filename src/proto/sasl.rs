//! SASL PLAIN (RFC 4616) and LOGIN: decoding the client's base64 messages.
//! Shared by SMTP AUTH, IMAP AUTHENTICATE and POP3 AUTH.

/// The mechanisms mailc offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    Login,
}

impl Mechanism {
    pub fn parse(name: &str) -> Option<Mechanism> {
        match name.to_ascii_uppercase().as_str() {
            "PLAIN" => Some(Mechanism::Plain),
            "LOGIN" => Some(Mechanism::Login),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
        }
    }
}

/// Credentials a client presented.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never log a password.
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslError {
    /// Not valid base64 or not the mechanism's format.
    BadEncoding,
    /// The client sent `*`.
    Cancelled,
    /// An authorization identity other than the user (proxy login).
    Authzid,
}

/// Longest decoded SASL message accepted.
pub const MAX_SASL: usize = 8192;

/// Decodes an AUTH PLAIN message: `authzid NUL authcid NUL password`.
pub fn decode_plain(b64: &str) -> Result<Credentials, SaslError> {
    let raw = decode_b64(b64)?;
    let mut parts = raw.split(|&b| b == 0);
    let (Some(authz), Some(user), Some(pass), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SaslError::BadEncoding);
    };
    let user = String::from_utf8(user.to_vec()).map_err(|_| SaslError::BadEncoding)?;
    let pass = String::from_utf8(pass.to_vec()).map_err(|_| SaslError::BadEncoding)?;
    if !authz.is_empty() && authz != user.as_bytes() {
        return Err(SaslError::Authzid);
    }
    if user.is_empty() {
        return Err(SaslError::BadEncoding);
    }
    Ok(Credentials {
        username: user,
        password: pass,
    })
}

/// Decodes one base64 line of the LOGIN exchange into text.
pub fn decode_text(b64: &str) -> Result<String, SaslError> {
    String::from_utf8(decode_b64(b64)?).map_err(|_| SaslError::BadEncoding)
}

pub fn decode_b64(text: &str) -> Result<Vec<u8>, SaslError> {
    let text = text.trim();
    if text == "*" {
        return Err(SaslError::Cancelled);
    }
    if text == "=" {
        return Ok(Vec::new());
    }
    if text.len() > MAX_SASL * 4 / 3 + 4 {
        return Err(SaslError::BadEncoding);
    }
    base64_decode(text.as_bytes()).ok_or(SaslError::BadEncoding)
}

/// Standard base64 with padding (RFC 4648 §4), strict.
pub fn base64_decode(input: &[u8]) -> Option<Vec<u8>> {
    fn val(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    if !input.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(input.len() / 4 * 3);
    for (i, chunk) in input.chunks(4).enumerate() {
        let last = i + 1 == input.len() / 4;
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n: u32 = 0;
        for &c in &chunk[..4 - pad] {
            n = (n << 6) | val(c)?;
        }
        n <<= 6 * pad as u32;
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Some(out)
}

pub fn base64_encode(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_roundtrip_and_strictness() {
        for s in [
            &b""[..],
            b"f",
            b"fo",
            b"foo",
            b"foob",
            b"fooba",
            b"foobar",
            b"\0alice\0secret",
        ] {
            assert_eq!(
                base64_decode(base64_encode(s).as_bytes()).as_deref(),
                Some(s)
            );
        }
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        assert!(base64_decode(b"Zm9").is_none());
        assert!(base64_decode(b"Zm=v").is_none());
        assert!(base64_decode(b"Z!==").is_none());
    }

    #[test]
    fn plain() {
        let c = decode_plain(&base64_encode(b"\0alice@example.test\0secret")).expect("valid PLAIN");
        assert_eq!(c.username, "alice@example.test");
        assert_eq!(c.password, "secret");
        assert!(
            decode_plain(&base64_encode(
                b"alice@example.test\0alice@example.test\0pw"
            ))
            .is_ok()
        );
        assert_eq!(
            decode_plain(&base64_encode(b"bob\0alice\0pw")),
            Err(SaslError::Authzid)
        );
        assert_eq!(
            decode_plain(&base64_encode(b"no-nuls")),
            Err(SaslError::BadEncoding)
        );
        assert_eq!(decode_plain("*"), Err(SaslError::Cancelled));
        assert!(!format!("{c:?}").contains("secret"));
    }
}
