//! Password hashes: parsing (fully validated, so a bad hash is a config error
//! and not a failed login), verification, and new argon2id hashes.
//!
//! Accepted, so that Dovecot passwd-files migrate unchanged: PHC argon2
//! strings (`$argon2id$...`, also argon2i/argon2d) with or without
//! `{ARGON2ID}`/`{ARGON2I}`, SHA-crypt (`$6$`, `$5$`, `{SHA512-CRYPT}`,
//! `{SHA256-CRYPT}`), bcrypt (`$2y$`, `$2b$`, `$2a$`, `{BLF-CRYPT}`), and
//! `{CRYPT}` around any of those. Plaintext and weak schemes are refused.

use std::io::{BufRead, Read, Write};

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use sha_crypt::ShaCrypt;

/// Longest password accepted anywhere (protocol layers bound it too).
pub const MAX_PASSWORD_BYTES: usize = 4096;

/// Upper bounds on argon2 parameters, so that a hash cannot make one login
/// allocate gigabytes or burn seconds of CPU.
const ARGON2_MAX_M_KIB: u32 = 1 << 20;
const ARGON2_MAX_T: u32 = 64;
const ARGON2_MAX_P: u32 = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Argon2,
    Sha512Crypt,
    Sha256Crypt,
    Bcrypt,
}

impl Scheme {
    pub fn name(&self) -> &'static str {
        match self {
            Scheme::Argon2 => "argon2",
            Scheme::Sha512Crypt => "SHA512-CRYPT",
            Scheme::Sha256Crypt => "SHA256-CRYPT",
            Scheme::Bcrypt => "BLF-CRYPT",
        }
    }
}

/// A parsed, well-formed password hash.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash {
    scheme: Scheme,
    /// The hash without any `{SCHEME}` prefix.
    hash: String,
}

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Hashes are secrets: never in logs.
        write!(f, "PasswordHash({})", self.scheme.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    #[error("empty password hash")]
    Empty,
    #[error("the {scheme} scheme is not accepted (plaintext or too weak)")]
    Plaintext { scheme: String },
    #[error("not a password hash mailc knows (argon2, SHA512-CRYPT, SHA256-CRYPT, BLF-CRYPT)")]
    UnknownFormat,
    #[error("the prefix {prefix} does not match the hash after it")]
    PrefixMismatch { prefix: String },
    #[error("malformed {scheme} hash: {reason}")]
    Malformed {
        scheme: &'static str,
        reason: String,
    },
}

impl HashError {
    pub fn help(&self) -> &'static str {
        match self {
            HashError::Empty => "put a hash made by `mailc hash-password` here",
            HashError::Plaintext { .. } => {
                "never store plaintext or weak hashes: make an argon2id hash with `mailc hash-password`"
            }
            HashError::UnknownFormat => {
                "use a hash from `mailc hash-password` (argon2id), or Dovecot's {SHA512-CRYPT} / {BLF-CRYPT} hashes"
            }
            HashError::PrefixMismatch { .. } => {
                "the {SCHEME} prefix must name the hash that follows; drop the prefix or fix it"
            }
            HashError::Malformed { .. } => {
                "the hash is truncated or damaged: copy it again, or make a new one with `mailc hash-password`"
            }
        }
    }
}

impl PasswordHash {
    pub fn parse(text: &str) -> Result<PasswordHash, HashError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(HashError::Empty);
        }
        let (prefix, body) = split_prefix(text)?;
        let scheme = detect(body)?;
        if let Some(p) = &prefix {
            let ok = match p.as_str() {
                "ARGON2ID" => body.starts_with("$argon2id$"),
                "ARGON2I" => body.starts_with("$argon2i$"),
                "SHA512-CRYPT" => scheme == Scheme::Sha512Crypt,
                "SHA256-CRYPT" => scheme == Scheme::Sha256Crypt,
                "BLF-CRYPT" => scheme == Scheme::Bcrypt,
                "CRYPT" => true, // system crypt(3): any strong modular-crypt hash
                _ => false,
            };
            if !ok {
                return Err(HashError::PrefixMismatch {
                    prefix: format!("{{{p}}}"),
                });
            }
        }
        match scheme {
            Scheme::Argon2 => validate_argon2(body)?,
            Scheme::Sha512Crypt | Scheme::Sha256Crypt => validate_sha_crypt(body, scheme)?,
            Scheme::Bcrypt => validate_bcrypt(body)?,
        }
        Ok(PasswordHash {
            scheme,
            hash: body.to_string(),
        })
    }

    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    pub fn as_str(&self) -> &str {
        &self.hash
    }

    /// Checks a password. The crates compare in constant time.
    pub fn verify(&self, password: &[u8]) -> bool {
        self.verify_with(password, &mut Argon2Memory::new())
    }

    /// [`PasswordHash::verify`] with argon2's working memory taken from
    /// `memory`, which keeps it for the next check (see [`Argon2Memory`]).
    pub fn verify_with(&self, password: &[u8], memory: &mut Argon2Memory) -> bool {
        if password.len() > MAX_PASSWORD_BYTES {
            return false;
        }
        match self.scheme {
            Scheme::Argon2 => verify_argon2(&self.hash, password, memory),
            Scheme::Sha512Crypt | Scheme::Sha256Crypt => ShaCrypt::default()
                .verify_password(password, self.hash.as_str())
                .is_ok(),
            Scheme::Bcrypt => bcrypt::verify(password, &self.hash).unwrap_or(false),
        }
    }
}

/// Argon2's working memory (m KiB: 19 MiB for the hashes `mailc
/// hash-password` makes), kept between checks by the thread that runs them.
///
/// Allocating it per check is what made a login flood take the machine's
/// memory: glibc serves a freed 19 MiB block again from the arena of the
/// thread that freed it (its mmap threshold rises to the size of the
/// largest block freed), so every thread that ever checked a password kept
/// 19 MiB or more, and fragmentation kept more. One buffer per verifying
/// thread, allocated once, makes the memory fixed: threads × m.
///
/// Reuse without clearing is sound: argon2 writes every block before it
/// reads it, so nothing of the previous check reaches the next result.
#[derive(Default)]
pub struct Argon2Memory {
    blocks: Vec<argon2::Block>,
}

impl Argon2Memory {
    /// Largest buffer kept between checks. A hash asking for more gets a
    /// buffer for that check only (above 32 MiB glibc maps and unmaps it
    /// directly, so it is returned at once).
    pub const KEEP_MAX_KIB: usize = 64 * 1024;

    pub fn new() -> Argon2Memory {
        Argon2Memory::default()
    }

    /// KiB held between checks.
    pub fn kept_kib(&self) -> usize {
        self.blocks.len()
    }

    /// Runs `f` over `n` blocks of 1 KiB.
    fn run<R>(&mut self, n: usize, f: impl FnOnce(&mut [argon2::Block]) -> R) -> R {
        if n > Self::KEEP_MAX_KIB {
            let mut once = vec![argon2::Block::new(); n];
            return f(&mut once);
        }
        if self.blocks.len() < n {
            // Replace rather than grow: a resize would copy the old blocks.
            self.blocks = Vec::new();
            self.blocks = vec![argon2::Block::new(); n];
        }
        f(&mut self.blocks[..n])
    }
}

fn verify_argon2(hash: &str, password: &[u8], memory: &mut Argon2Memory) -> bool {
    let Ok(h) = argon2::PasswordHash::new(hash) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&h.salt, &h.hash) else {
        return false;
    };
    let Ok(algorithm) = argon2::Algorithm::try_from(h.algorithm.as_str()) else {
        return false;
    };
    let version = match h.version.map(argon2::Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    let Ok(params) = argon2::Params::try_from(&h) else {
        return false;
    };
    let blocks = params.block_count();
    let hasher = Argon2::new(algorithm, version, params);
    let mut out = vec![0u8; expected.len()];
    let ok = memory.run(blocks, |memory| {
        hasher
            .hash_password_into_with_memory(password, salt, &mut out, memory)
            .is_ok()
    });
    // `Output`'s equality is constant-time.
    ok && argon2::password_hash::phc::Output::new(&out).is_ok_and(|o| &o == expected)
}

/// Splits a Dovecot `{SCHEME}` prefix off. Weak and plaintext schemes are
/// refused here, with their name in the error.
fn split_prefix(text: &str) -> Result<(Option<String>, &str), HashError> {
    let Some(rest) = text.strip_prefix('{') else {
        return Ok((None, text));
    };
    let Some(end) = rest.find('}') else {
        return Err(HashError::UnknownFormat);
    };
    let scheme = rest[..end].to_ascii_uppercase();
    let body = &rest[end + 1..];
    match scheme.as_str() {
        "ARGON2ID" | "ARGON2I" | "SHA512-CRYPT" | "SHA256-CRYPT" | "BLF-CRYPT" | "CRYPT" => {
            if body.is_empty() {
                return Err(HashError::Malformed {
                    scheme: "prefixed",
                    reason: format!("nothing after {{{scheme}}}"),
                });
            }
            Ok((Some(scheme), body))
        }
        _ => Err(HashError::Plaintext {
            scheme: format!("{{{scheme}}}"),
        }),
    }
}

fn detect(body: &str) -> Result<Scheme, HashError> {
    if body.starts_with("$argon2id$")
        || body.starts_with("$argon2i$")
        || body.starts_with("$argon2d$")
    {
        Ok(Scheme::Argon2)
    } else if body.starts_with("$6$") {
        Ok(Scheme::Sha512Crypt)
    } else if body.starts_with("$5$") {
        Ok(Scheme::Sha256Crypt)
    } else if ["$2y$", "$2b$", "$2a$"].iter().any(|p| body.starts_with(p)) {
        Ok(Scheme::Bcrypt)
    } else if body.starts_with("$1$") || body.starts_with("$apr1$") {
        Err(HashError::Plaintext {
            scheme: "MD5-CRYPT".into(),
        })
    } else if body.starts_with('$') {
        Err(HashError::UnknownFormat)
    } else if body.len() == 13 && body.bytes().all(is_crypt64) {
        Err(HashError::Plaintext {
            scheme: "DES-CRYPT".into(),
        })
    } else {
        Err(HashError::UnknownFormat)
    }
}

fn malformed(scheme: Scheme, reason: impl Into<String>) -> HashError {
    HashError::Malformed {
        scheme: scheme.name(),
        reason: reason.into(),
    }
}

fn validate_argon2(body: &str) -> Result<(), HashError> {
    let h =
        argon2::PasswordHash::new(body).map_err(|e| malformed(Scheme::Argon2, e.to_string()))?;
    let params =
        argon2::Params::try_from(&h).map_err(|e| malformed(Scheme::Argon2, e.to_string()))?;
    if h.salt.is_none() || h.hash.is_none() {
        return Err(malformed(Scheme::Argon2, "salt or hash missing"));
    }
    if params.m_cost() > ARGON2_MAX_M_KIB
        || params.t_cost() > ARGON2_MAX_T
        || params.p_cost() > ARGON2_MAX_P
    {
        return Err(malformed(
            Scheme::Argon2,
            format!(
                "parameters beyond m={ARGON2_MAX_M_KIB},t={ARGON2_MAX_T},p={ARGON2_MAX_P} would make logins too costly"
            ),
        ));
    }
    Ok(())
}

/// `$6$[rounds=N$]salt$hash` with the hash in crypt base64.
fn validate_sha_crypt(body: &str, scheme: Scheme) -> Result<(), HashError> {
    let parts: Vec<&str> = body.split('$').collect();
    let (rounds, salt, hash) = match parts.as_slice() {
        ["", _, r, s, h] if r.starts_with("rounds=") => (Some(&r[7..]), *s, *h),
        ["", _, s, h] => (None, *s, *h),
        _ => return Err(malformed(scheme, "expected $id$[rounds=N$]salt$hash")),
    };
    if let Some(r) = rounds {
        let n: u32 = r
            .parse()
            .map_err(|_| malformed(scheme, format!("rounds `{r}` is not a number")))?;
        if !(1000..=10_000_000).contains(&n) {
            return Err(malformed(
                scheme,
                format!("rounds={n} is outside 1000..=10000000"),
            ));
        }
    }
    if salt.is_empty() || salt.len() > 16 || salt.contains(['\n', ':']) {
        return Err(malformed(scheme, "salt must be 1 to 16 characters"));
    }
    let want = if scheme == Scheme::Sha512Crypt {
        86
    } else {
        43
    };
    if hash.len() != want || !hash.bytes().all(is_crypt64) {
        return Err(malformed(
            scheme,
            format!("hash part must be {want} characters of crypt base64"),
        ));
    }
    Ok(())
}

/// `$2y$NN$` + 22 characters of salt + 31 of hash.
fn validate_bcrypt(body: &str) -> Result<(), HashError> {
    let b = body.as_bytes();
    if b.len() != 60 || b[3] != b'$' || b[6] != b'$' {
        return Err(malformed(
            Scheme::Bcrypt,
            "expected $2y$NN$ followed by 53 characters",
        ));
    }
    let cost: u32 = body[4..6]
        .parse()
        .map_err(|_| malformed(Scheme::Bcrypt, "cost is not a number"))?;
    if !(4..=31).contains(&cost) {
        return Err(malformed(
            Scheme::Bcrypt,
            format!("cost {cost} is outside 4..=31"),
        ));
    }
    if !b[7..]
        .iter()
        .all(|&c| c.is_ascii_alphanumeric() || c == b'.' || c == b'/')
    {
        return Err(malformed(
            Scheme::Bcrypt,
            "salt and hash must be bcrypt base64",
        ));
    }
    Ok(())
}

fn is_crypt64(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'.' || c == b'/'
}

/// A new argon2id hash: m=19456 KiB, t=2, p=1 (the OWASP recommendation), a
/// random 16-byte salt from the OS.
pub fn hash_argon2id(password: &[u8]) -> String {
    let params = argon2::Params::new(19456, 2, 1, None).unwrap_or_default();
    let hasher = Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    match hasher.hash_password(password) {
        Ok(h) => h.to_string(),
        // Only an OS random number failure gets here; there is no sane
        // fallback for a salt, so say so rather than emit a weak hash.
        Err(e) => format!("error: cannot hash password: {e}"),
    }
}

/// Reads a new password: from the terminal without echo, asked twice, when
/// stdin is a terminal; otherwise one line of stdin.
pub fn read_password_interactive() -> std::io::Result<String> {
    let stdin = std::io::stdin();
    if rustix::termios::isatty(&stdin) {
        let tty = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/tty")?;
        let first = prompt_no_echo(&tty, "Password: ")?;
        let second = prompt_no_echo(&tty, "Repeat password: ")?;
        if first != second {
            return Err(std::io::Error::other("the passwords differ"));
        }
        check_new(first)
    } else {
        let mut line = String::new();
        stdin
            .lock()
            .take(MAX_PASSWORD_BYTES as u64 + 2)
            .read_line(&mut line)?;
        let line = line.strip_suffix('\n').unwrap_or(&line);
        let line = line.strip_suffix('\r').unwrap_or(line);
        check_new(line.to_string())
    }
}

fn check_new(pw: String) -> std::io::Result<String> {
    if pw.is_empty() {
        return Err(std::io::Error::other("empty password"));
    }
    if pw.len() > MAX_PASSWORD_BYTES {
        return Err(std::io::Error::other(format!(
            "password longer than {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    Ok(pw)
}

fn prompt_no_echo(tty: &std::fs::File, prompt: &str) -> std::io::Result<String> {
    use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
    let mut out = tty;
    out.write_all(prompt.as_bytes())?;
    out.flush()?;
    let saved = tcgetattr(tty)?;
    let mut quiet = saved.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    tcsetattr(tty, OptionalActions::Now, &quiet)?;
    let mut line = String::new();
    let read = std::io::BufReader::new(tty)
        .take(MAX_PASSWORD_BYTES as u64 + 2)
        .read_line(&mut line);
    // Restore the terminal whatever happened while reading.
    let restored = tcsetattr(tty, OptionalActions::Now, &saved);
    let _ = out.write_all(b"\n");
    read?;
    restored?;
    let line = line.strip_suffix('\n').unwrap_or(&line);
    Ok(line.strip_suffix('\r').unwrap_or(line).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Vectors from independent implementations: libargon2 (via argon2-cffi)
    // and glibc/libxcrypt crypt(3) (via Python's crypt module); all for "secret".
    const ARGON2ID: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$14ukWqiThj4Xz77NYv01V28GbBZHY9AaZwsFswQFO0U";
    const ARGON2I: &str = "$argon2i$v=19$m=4096,t=3,p=1$c29tZXNhbHRzb21lc2FsdA$GR6qAyHe5RRCMRGQCEF+7gWpAWyrb5rsLebwPRlY/go";
    const SHA512: &str = "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1";
    const SHA512_ROUNDS: &str = "$6$rounds=10000$saltsalt$WowrPBpEDVlCoruBosYlrZycTCx3//TyDHYqEhX9DUHHt0XTztUqzQDDUuvUGRA8aUe9p55hcAxeGcu58sm3u.";
    const SHA256: &str = "$5$saltsalt$0IyaXrmV7.sGNS6tirgqHLqX/G.FBvgkYA.lpPdS5sA";
    const BCRYPT_2B: &str = "$2b$04$abcdefghijklmnopqrstuu2r9OfJnfCsdneAXAGHnS4UpFFP8WIrW";
    const BCRYPT_2Y: &str = "$2y$05$0123456789abcdefghijkebF.t51ZMQH79oSTz0w4T0A27Fx3IAyO";

    #[test]
    fn independent_vectors_verify() {
        for (hash, scheme) in [
            (ARGON2ID, Scheme::Argon2),
            (ARGON2I, Scheme::Argon2),
            (SHA512, Scheme::Sha512Crypt),
            (SHA512_ROUNDS, Scheme::Sha512Crypt),
            (SHA256, Scheme::Sha256Crypt),
            (BCRYPT_2B, Scheme::Bcrypt),
            (BCRYPT_2Y, Scheme::Bcrypt),
        ] {
            let h = PasswordHash::parse(hash).unwrap_or_else(|e| panic!("{hash}: {e}"));
            assert_eq!(h.scheme(), scheme);
            assert!(h.verify(b"secret"), "{hash}");
            assert!(!h.verify(b"Secret"), "{hash}");
            assert!(!h.verify(b""), "{hash}");
        }
    }

    #[test]
    fn argon2_memory_is_kept_and_reused_correctly() {
        let mut memory = Argon2Memory::new();
        let id = PasswordHash::parse(ARGON2ID).unwrap();
        let i = PasswordHash::parse(ARGON2I).unwrap();
        assert!(id.verify_with(b"secret", &mut memory));
        assert_eq!(memory.kept_kib(), 19456);
        // What the previous check left in the buffer changes nothing: right
        // and wrong passwords, a smaller hash in the same buffer, and back.
        assert!(!id.verify_with(b"Secret", &mut memory));
        assert!(i.verify_with(b"secret", &mut memory));
        assert!(!i.verify_with(b"secret!", &mut memory));
        assert_eq!(
            memory.kept_kib(),
            19456,
            "a smaller hash does not shrink it"
        );
        assert!(id.verify_with(b"secret", &mut memory));
        // A hash asking for more than is kept gets its memory for one check.
        let big = hash_with(b"pw", Argon2Memory::KEEP_MAX_KIB as u32 + 1024);
        let big = PasswordHash::parse(&big).unwrap();
        assert!(big.verify_with(b"pw", &mut memory));
        assert!(!big.verify_with(b"pW", &mut memory));
        assert_eq!(memory.kept_kib(), 19456);
    }

    fn hash_with(password: &[u8], m_kib: u32) -> String {
        let params = argon2::Params::new(m_kib, 1, 1, None).unwrap();
        Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
            .hash_password(password)
            .unwrap()
            .to_string()
    }

    #[test]
    fn dovecot_prefixes() {
        for text in [
            format!("{{ARGON2ID}}{ARGON2ID}"),
            format!("{{ARGON2I}}{ARGON2I}"),
            format!("{{SHA512-CRYPT}}{SHA512}"),
            format!("{{SHA256-CRYPT}}{SHA256}"),
            format!("{{BLF-CRYPT}}{BCRYPT_2Y}"),
            format!("{{CRYPT}}{SHA512}"),
            format!("  {{sha512-crypt}}{SHA512}\n"),
        ] {
            let h = PasswordHash::parse(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert!(h.verify(b"secret"));
            assert!(!h.as_str().starts_with('{'));
        }
        for text in [
            format!("{{BLF-CRYPT}}{SHA512}"),
            format!("{{ARGON2ID}}{ARGON2I}"),
            format!("{{SHA256-CRYPT}}{SHA512}"),
        ] {
            assert!(
                matches!(
                    PasswordHash::parse(&text),
                    Err(HashError::PrefixMismatch { .. })
                ),
                "{text}"
            );
        }
    }

    #[test]
    fn weak_schemes_are_refused() {
        for text in [
            "{PLAIN}secret",
            "{CLEARTEXT}secret",
            "{MD5}x",
            "{SSHA}x",
            "{PLAIN-MD5}x",
            "$1$abc$iCQ2D3nhptRYi27fDYv2s1",
            "{CRYPT}abJnggxhB/yWI",
        ] {
            assert!(
                matches!(PasswordHash::parse(text), Err(HashError::Plaintext { .. })),
                "{text}"
            );
        }
    }

    #[test]
    fn malformed_hashes_are_caught_at_parse() {
        let truncated_sha = &SHA512[..SHA512.len() - 3];
        let truncated_bcrypt = &BCRYPT_2Y[..50];
        for text in [
            "$6$",
            "$6$salt$",
            truncated_sha,
            "$6$rounds=5$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1",
            "$argon2id$v=19$",
            "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA",
            "$argon2id$v=19$m=99999999,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$14ukWqiThj4Xz77NYv01V28GbBZHY9AaZwsFswQFO0U",
            "$2y$10$short",
            truncated_bcrypt,
            "$2y$99$0123456789abcdefghijkebF.t51ZMQH79oSTz0w4T0A27Fx3IAyO",
            "{ARGON2ID}",
        ] {
            assert!(
                matches!(PasswordHash::parse(text), Err(HashError::Malformed { .. })),
                "{text}: {:?}",
                PasswordHash::parse(text)
            );
        }
        assert_eq!(PasswordHash::parse(""), Err(HashError::Empty));
        assert_eq!(PasswordHash::parse("  \n"), Err(HashError::Empty));
        assert_eq!(
            PasswordHash::parse("hunter2"),
            Err(HashError::UnknownFormat)
        );
        assert_eq!(PasswordHash::parse("$7$x"), Err(HashError::UnknownFormat));
    }

    #[test]
    fn new_hashes_are_argon2id_and_verify() {
        let h = hash_argon2id(b"correct horse");
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        let p = PasswordHash::parse(&h).unwrap();
        assert!(p.verify(b"correct horse"));
        assert!(!p.verify(b"correct horsE"));
        assert_ne!(h, hash_argon2id(b"correct horse"), "salts differ");
    }

    #[test]
    fn random_input_never_panics() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let alphabet = b"$26by5{}ARGON2IDSHA512-CRYPTBLFrounds=v19m,tp./abcXYZ0189 \n";
        let sha = PasswordHash::parse(SHA512).unwrap();
        for _ in 0..500 {
            let len = (next() % 90) as usize;
            let s: String = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize] as char)
                .collect();
            let _ = PasswordHash::parse(&s);
            let pw: Vec<u8> = (0..(next() % 40)).map(|_| next() as u8).collect();
            assert!(!sha.verify(&pw) || pw == b"secret");
        }
    }
}
