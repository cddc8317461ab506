//! IP networks (`192.0.2.0/24`, `2001:db8::/32`): parsing, containment and the
//! "is this public address space" test behind the open-relay check. A leaf
//! module used by the config compiler and by the runtime.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An IP network: an address and a prefix length, host bits zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

/// Why a network did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkError {
    Syntax(String),
    /// Bits are set after the prefix; carries the network that was probably meant.
    HostBits(Network),
}

impl Network {
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Network> {
        let max = max_prefix(addr);
        if prefix > max {
            return None;
        }
        Some(Network {
            addr: mask(addr, prefix),
            prefix,
        })
    }

    pub fn host(addr: IpAddr) -> Network {
        Network {
            addr,
            prefix: max_prefix(addr),
        }
    }

    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {
                mask(ip, self.prefix) == self.addr
            }
            _ => false,
        }
    }

    /// Parses `IP/PREFIX` or a bare IP (a single host).
    pub fn parse(text: &str) -> Result<Network, NetworkError> {
        let (ip_text, prefix) = match text.split_once('/') {
            Some((ip, p)) => {
                let p: u8 = p
                    .parse()
                    .map_err(|_| NetworkError::Syntax(format!("prefix `{p}` is not a number")))?;
                (ip, Some(p))
            }
            None => (text, None),
        };
        let addr = IpAddr::from_str(ip_text)
            .map_err(|_| NetworkError::Syntax(format!("`{ip_text}` is not an IP address")))?;
        let prefix = prefix.unwrap_or(max_prefix(addr));
        let net = Network::new(addr, prefix).ok_or_else(|| {
            NetworkError::Syntax(format!(
                "prefix /{prefix} is longer than the address (at most /{})",
                max_prefix(addr)
            ))
        })?;
        if net.addr != addr {
            return Err(NetworkError::HostBits(net));
        }
        Ok(net)
    }

    /// True when the network contains globally routable addresses and is wider
    /// than a small block one organisation plausibly runs (/24 for IPv4, /48
    /// for IPv6). Trusting such a network for relaying makes an open relay.
    pub fn is_broad_public(&self) -> bool {
        match self.addr {
            IpAddr::V4(_) => {
                if self.prefix >= 24 {
                    return false;
                }
                !PRIVATE_V4.iter().any(|p| parse_static(p).covers(self))
            }
            IpAddr::V6(_) => {
                if self.prefix >= 48 {
                    return false;
                }
                !PRIVATE_V6.iter().any(|p| parse_static(p).covers(self))
            }
        }
    }

    /// True when every address of `other` is inside `self`.
    pub fn covers(&self, other: &Network) -> bool {
        self.prefix <= other.prefix && self.contains(other.addr)
    }
}

// Ranges that are not reachable from the public internet (RFC 1918, loopback,
// CGNAT, link-local, ULA).
const PRIVATE_V4: &[&str] = &[
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "127.0.0.0/8",
    "100.64.0.0/10",
    "169.254.0.0/16",
];
const PRIVATE_V6: &[&str] = &["::1/128", "fc00::/7", "fe80::/10"];

fn parse_static(text: &str) -> Network {
    // The constants above are valid networks; a typo there is caught by the unit
    // test `private_ranges_parse`, and falls back to a network that covers nothing.
    Network::parse(text).unwrap_or(Network {
        addr: IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        prefix: 128,
    })
}

fn max_prefix(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:192.0.2.1`) are compared as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let m = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - prefix)
            };
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let m = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - prefix)
            };
            IpAddr::V6((bits & m).into())
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Serialize for Network {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Network {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Network::parse(&text).map_err(|e| match e {
            NetworkError::Syntax(m) => serde::de::Error::custom(m),
            NetworkError::HostBits(n) => {
                serde::de::Error::custom(format!("host bits set; did you mean {n}?"))
            }
        })
    }
}

impl JsonSchema for Network {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Network".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "An IP network in CIDR notation, e.g. `192.0.2.0/24`."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_ranges_parse() {
        for p in PRIVATE_V4.iter().chain(PRIVATE_V6) {
            assert!(Network::parse(p).is_ok(), "{p}");
        }
    }

    #[test]
    fn parse_and_contains() {
        let n = Network::parse("192.0.2.0/24").unwrap();
        assert!(n.contains("192.0.2.77".parse().unwrap()));
        assert!(!n.contains("192.0.3.1".parse().unwrap()));
        assert!(n.contains("::ffff:192.0.2.1".parse().unwrap()));
        let h = Network::parse("2001:db8::1").unwrap();
        assert_eq!(h.prefix(), 128);
        assert!(h.contains("2001:db8::1".parse().unwrap()));
        assert!(!h.contains("2001:db8::2".parse().unwrap()));
        assert_eq!(
            Network::parse("192.0.2.1/24"),
            Err(NetworkError::HostBits(
                Network::parse("192.0.2.0/24").unwrap()
            ))
        );
        assert!(matches!(
            Network::parse("10.0.0.0/33"),
            Err(NetworkError::Syntax(_))
        ));
        assert!(matches!(
            Network::parse("nope"),
            Err(NetworkError::Syntax(_))
        ));
    }

    #[test]
    fn broad_public() {
        for (net, broad) in [
            ("0.0.0.0/0", true),
            ("::/0", true),
            ("192.0.2.0/24", false),
            ("198.51.0.0/16", true),
            ("10.0.0.0/8", false),
            ("172.16.0.0/12", false),
            ("192.168.1.0/24", false),
            ("2001:db8::/32", true),
            ("2001:db8:1::/48", false),
            ("fd00::/8", false),
            ("127.0.0.1", false),
        ] {
            assert_eq!(
                Network::parse(net).unwrap().is_broad_public(),
                broad,
                "{net}"
            );
        }
    }
}
