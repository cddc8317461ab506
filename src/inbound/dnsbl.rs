//! DNS blocklists, the part without I/O: the name to look up for a client
//! ([`query_name`]), what a zone's answer means ([`classify`]: listed, not
//! listed, or an error code that must never count as a listing), the score
//! of a client over all zones ([`Listing::from_answers`]) and the reply
//! that refuses it. The lookups run in `services::dnsbl`.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};

use crate::proto::smtp::reply::{Reply, r};
use crate::tables::{DnsblTable, DnsblZone};

/// `<reversed client address>.<zone>.`: the four octets of an IPv4
/// address in reverse order, or the 32 nibbles of an IPv6 address in
/// reverse order (RFC 5782 §2.1, §2.4). An IPv4-mapped IPv6 address (a
/// dual-stack listener's view of an IPv4 client) is looked up as IPv4.
pub fn query_name(ip: IpAddr, zone: &str) -> String {
    let mut name = String::with_capacity(80);
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            let _ = write!(name, "{d}.{c}.{b}.{a}.");
        }
        IpAddr::V6(v6) => {
            for byte in v6.octets().iter().rev() {
                let _ = write!(name, "{:x}.{:x}.", byte & 0xf, byte >> 4);
            }
        }
    }
    name.push_str(zone.trim_end_matches('.'));
    name.push('.');
    name
}

/// 127.255.255.252-255: Spamhaus's (and others') answers that say the
/// query was not served — typo in the zone (.252), query through a public
/// or open resolver (.254), too many queries (.255) — never a listing.
pub fn is_error_code(a: Ipv4Addr) -> bool {
    let [x, y, z, w] = a.octets();
    x == 127 && y == 255 && z == 255 && w >= 252
}

/// What one zone's A records say about a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// NXDOMAIN or no A record, or only answers the zone's `answer=`
    /// list does not name.
    NotListed,
    /// Listed, with the first answer that counts (e.g. 127.0.0.2).
    Listed(Ipv4Addr),
    /// An error code, or an address outside 127.0.0.0/8 (a resolver that
    /// rewrites NXDOMAIN into an advertising address, a zone gone
    /// wildcard): no answer, to be warned about, never a listing.
    Refused(Ipv4Addr),
    /// The lookup failed or timed out: not listed (fail open).
    Failed,
}

/// The meaning of the A records `addrs` found for a client in `zone`. One
/// refusal code anywhere in the answer makes the whole answer a refusal.
pub fn classify(zone: &DnsblZone, addrs: &[Ipv4Addr]) -> Answer {
    if let Some(bad) = addrs
        .iter()
        .find(|a| is_error_code(**a) || a.octets()[0] != 127)
    {
        return Answer::Refused(*bad);
    }
    let counts =
        |a: &Ipv4Addr| zone.answers.is_empty() || zone.answers.iter().any(|r| r.contains(*a));
    match addrs.iter().find(|a| counts(a)) {
        Some(a) => Answer::Listed(*a),
        None => Answer::NotListed,
    }
}

/// A client whose listings reached the threshold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// The zones with a positive weight that list it, in config order, with
    /// the answer each gave.
    pub zones: Vec<(String, Ipv4Addr)>,
    /// The sum of the weights of every zone that lists it.
    pub score: i32,
    /// The reason a zone gives in its TXT record, when short and printable
    /// (see [`reason_text`]).
    pub reason: Option<String>,
}

impl Listing {
    /// The score of `answers` (one per zone of `table`, same order);
    /// `Some` when it reaches the threshold.
    pub fn from_answers(table: &DnsblTable, answers: &[Answer]) -> Option<Listing> {
        let mut score = 0;
        let mut zones = Vec::new();
        for (zone, answer) in table.zones.iter().zip(answers) {
            if let Answer::Listed(code) = answer {
                score += zone.weight;
                if zone.weight > 0 {
                    zones.push((zone.name.clone(), *code));
                }
            }
        }
        (score >= table.threshold && !zones.is_empty()).then_some(Listing {
            zones,
            score,
            reason: None,
        })
    }

    /// `554 5.7.1 Service unavailable; client [192.0.2.1] blocked using
    /// zen.example (reason)`, Postfix's wording, which admins of listed
    /// servers search for.
    pub fn reply(&self, ip: IpAddr) -> Reply {
        let names: Vec<&str> = self.zones.iter().map(|(z, _)| z.as_str()).collect();
        r::dnsbl_listed(ip.to_canonical(), &names.join(", "), self.reason.as_deref())
    }
}

/// Longest TXT reason put into the reply; longer ones are left out (the
/// reply names the zone, whose web site explains).
pub const MAX_REASON: usize = 200;

/// A zone's TXT text fit for an SMTP reply: printable ASCII only (CR, LF
/// and control characters would corrupt the reply), at most
/// [`MAX_REASON`] characters, else nothing.
pub fn reason_text(txt: &str) -> Option<String> {
    let t = txt.trim();
    if t.is_empty() || t.len() > MAX_REASON || !t.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return None;
    }
    Some(t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::AnswerRange;

    fn zone(name: &str, weight: i32, answers: &[(u8, u8)]) -> DnsblZone {
        DnsblZone {
            name: name.into(),
            weight,
            answers: answers
                .iter()
                .map(|(a, b)| AnswerRange {
                    first: Ipv4Addr::new(127, 0, 0, *a),
                    last: Ipv4Addr::new(127, 0, 0, *b),
                })
                .collect(),
        }
    }

    #[test]
    fn ipv4_names_reverse_the_octets() {
        assert_eq!(
            query_name("192.0.2.99".parse().unwrap(), "zen.example"),
            "99.2.0.192.zen.example."
        );
        // A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d.
        assert_eq!(
            query_name("::ffff:192.0.2.99".parse().unwrap(), "zen.example."),
            "99.2.0.192.zen.example."
        );
    }

    #[test]
    fn ipv6_names_reverse_the_nibbles() {
        // RFC 5782 §2.4's example.
        assert_eq!(
            query_name(
                "2001:db8:1:2:3:4:567:89ab".parse().unwrap(),
                "ugly.example.com"
            ),
            "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ugly.example.com."
        );
        assert_eq!(
            query_name("::1".parse().unwrap(), "bl.example"),
            format!("1.{}bl.example.", "0.".repeat(31))
        );
    }

    #[test]
    fn error_codes_and_foreign_addresses_are_never_listings() {
        let z = zone("zen.example", 1, &[]);
        for code in [252, 253, 254, 255] {
            let a = Ipv4Addr::new(127, 255, 255, code);
            assert_eq!(classify(&z, &[a]), Answer::Refused(a));
            // Even beside a listing code.
            assert_eq!(
                classify(&z, &[Ipv4Addr::new(127, 0, 0, 2), a]),
                Answer::Refused(a)
            );
        }
        let ad = Ipv4Addr::new(198, 51, 100, 7);
        assert_eq!(classify(&z, &[ad]), Answer::Refused(ad));
        assert!(!is_error_code(Ipv4Addr::new(127, 255, 255, 251)));
        assert_eq!(classify(&z, &[]), Answer::NotListed);
        assert_eq!(
            classify(&z, &[Ipv4Addr::new(127, 0, 0, 10)]),
            Answer::Listed(Ipv4Addr::new(127, 0, 0, 10))
        );
    }

    #[test]
    fn answer_lists_select_the_codes_that_count() {
        let z = zone("zen.example", 1, &[(2, 3), (9, 9)]);
        let a = |w| Ipv4Addr::new(127, 0, 0, w);
        assert_eq!(classify(&z, &[a(4)]), Answer::NotListed);
        assert_eq!(classify(&z, &[a(4), a(3)]), Answer::Listed(a(3)));
        assert_eq!(classify(&z, &[a(9)]), Answer::Listed(a(9)));
    }

    #[test]
    fn weights_add_up_to_the_threshold() {
        let table = DnsblTable {
            zones: vec![
                zone("a.example", 2, &[]),
                zone("b.example", 1, &[]),
                zone("allow.example", -5, &[]),
            ],
            threshold: 3,
            timeout_ms: 1000,
        };
        let listed = Answer::Listed(Ipv4Addr::new(127, 0, 0, 2));
        let no = Answer::NotListed;
        assert_eq!(
            Listing::from_answers(&table, &[listed.clone(), no.clone(), no.clone()]),
            None
        );
        let both = Listing::from_answers(&table, &[listed.clone(), listed.clone(), no.clone()])
            .expect("listed");
        assert_eq!(both.score, 3);
        assert_eq!(
            both.zones
                .iter()
                .map(|(z, _)| z.as_str())
                .collect::<Vec<_>>(),
            ["a.example", "b.example"]
        );
        // An allow list outweighs both.
        assert_eq!(
            Listing::from_answers(&table, &[listed.clone(), listed.clone(), listed.clone()]),
            None
        );
        // Failures and refusals count nothing.
        let refused = Answer::Refused(Ipv4Addr::new(127, 255, 255, 254));
        assert_eq!(
            Listing::from_answers(&table, &[refused, Answer::Failed, no]),
            None
        );
    }

    #[test]
    fn the_reply_names_the_zone_and_a_short_reason() {
        let l = Listing {
            zones: vec![("zen.example".into(), Ipv4Addr::new(127, 0, 0, 2))],
            score: 1,
            reason: reason_text("Listed for spam, see https://zen.example/q?ip=192.0.2.1"),
        };
        let text = String::from_utf8(l.reply("192.0.2.1".parse().unwrap()).to_bytes()).unwrap();
        assert_eq!(
            text,
            "554 5.7.1 Service unavailable; client [192.0.2.1] blocked using zen.example; \
             Listed for spam, see https://zen.example/q?ip=192.0.2.1\r\n"
        );
        assert_eq!(reason_text("evil\r\n250 ok"), None);
        assert_eq!(reason_text(&"x".repeat(MAX_REASON + 1)), None);
        assert_eq!(reason_text("  "), None);
    }
}
