//! The record format of queue segments. A segment is an append-only file
//! of records; a record is a 24-byte header (magic, envelope length,
//! message length, checksum), the envelope as JSON, then the message.
//!
//! Only acknowledged records are guaranteed complete: a crash can leave a
//! torn record at the tail of the newest segment, which the checksum
//! catches. Scanning stops at the first record that does not check out.

use std::io::Read;

pub const MAGIC: &[u8; 4] = b"MQR1";
pub const HEADER: usize = 24;
/// Largest envelope accepted when reading (a sanity bound, not a policy).
pub const MAX_ENVELOPE: usize = 16 << 20;

/// FNV-1a, 64 bits: detects torn and zeroed tails; not a security measure.
pub fn checksum(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for &b in *p {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// Appends one record to `out`; returns the offset of the message within
/// the record.
pub fn encode(out: &mut Vec<u8>, envelope_json: &[u8], message: &[u8]) -> usize {
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(envelope_json.len() as u32).to_le_bytes());
    out.extend_from_slice(&(message.len() as u64).to_le_bytes());
    out.extend_from_slice(&checksum(&[envelope_json, message]).to_le_bytes());
    out.extend_from_slice(envelope_json);
    out.extend_from_slice(message);
    HEADER + envelope_json.len()
}

/// A record found by [`scan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub envelope_json: Vec<u8>,
    /// Offset of the message in the segment.
    pub message_offset: u64,
    pub message_len: u64,
}

/// Reads every complete, intact record of a segment. Message bytes are read
/// (for the checksum) but not kept.
pub fn scan(reader: impl Read) -> Vec<Found> {
    let mut r = std::io::BufReader::with_capacity(256 << 10, reader);
    let mut out = Vec::new();
    let mut offset: u64 = 0;
    loop {
        let mut header = [0u8; HEADER];
        if r.read_exact(&mut header).is_err() {
            break;
        }
        if &header[..4] != MAGIC {
            break;
        }
        let json_len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
        let msg_len = u64::from_le_bytes(header[8..16].try_into().unwrap_or([0; 8]));
        let sum = u64::from_le_bytes(header[16..24].try_into().unwrap_or([0; 8]));
        if json_len > MAX_ENVELOPE {
            break;
        }
        let mut json = vec![0u8; json_len];
        if r.read_exact(&mut json).is_err() {
            break;
        }
        // Checksum the message in chunks without keeping it.
        let mut h: u64 = checksum(&[&json]);
        let mut left = msg_len;
        let mut buf = vec![0u8; 64 << 10];
        let mut ok = true;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            if r.read_exact(&mut buf[..n]).is_err() {
                ok = false;
                break;
            }
            for &b in &buf[..n] {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
            left -= n as u64;
        }
        if !ok || h != sum {
            break;
        }
        out.push(Found {
            envelope_json: json,
            message_offset: offset + (HEADER + json_len) as u64,
            message_len: msg_len,
        });
        offset += (HEADER + json_len) as u64 + msg_len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_torn_tails() {
        let mut seg = Vec::new();
        let m1 = encode(&mut seg, b"{\"a\":1}", b"message one");
        let start2 = seg.len();
        encode(&mut seg, b"{\"b\":2}", b"message two, longer");
        let found = scan(&seg[..]);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].message_offset as usize, m1);
        assert_eq!(&seg[m1..m1 + 11], b"message one");
        assert_eq!(found[1].envelope_json, b"{\"b\":2}");
        // Every truncation keeps exactly the complete records.
        for cut in 0..seg.len() {
            let n = scan(&seg[..cut]).len();
            let want = if cut < start2 { 0 } else { 1 };
            assert_eq!(n, want, "cut at {cut}");
        }
        // A flipped byte in the second record drops it, not the first.
        let mut bad = seg.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(scan(&bad[..]).len(), 1);
        // Zeroes after the records (a preallocated or torn tail) stop the scan.
        let mut zeros = seg.clone();
        zeros.extend_from_slice(&[0u8; 100]);
        assert_eq!(scan(&zeros[..]).len(), 2);
    }
}
