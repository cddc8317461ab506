//! Outbound delivery in the tables: the retry schedule, connection limits,
//! the DNS servers, and the routes that say how mail for a domain leaves.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How an outgoing connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum OutboundTls {
    /// STARTTLS whenever offered; a certificate that does not verify still
    /// encrypts; a server without STARTTLS gets the mail in the clear.
    Opportunistic,
    /// STARTTLS must succeed (any certificate).
    Require,
    /// STARTTLS must succeed with a certificate that verifies for the host.
    RequireVerified,
    /// TLS from the first byte (port 465), certificate verified.
    Implicit,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RouteTable {
    /// `*` (every domain), `*.example.org` (its subdomains) or `example.org`.
    pub domain: String,
    /// Relay host name (or IP literal) and port; `None`: the domain's MX hosts.
    pub via: Option<(String, u16)>,
    pub tls: OutboundTls,
    pub user: Option<String>,
    pub password_file: Option<PathBuf>,
    pub source: Option<IpAddr>,
}

impl RouteTable {
    /// Whether this route serves `domain` (lower-case ASCII).
    pub fn matches(&self, domain: &str) -> bool {
        if self.domain == "*" {
            return true;
        }
        if let Some(parent) = self.domain.strip_prefix("*.") {
            return domain.len() > parent.len() + 1
                && domain.ends_with(parent)
                && domain.as_bytes()[domain.len() - parent.len() - 1] == b'.';
        }
        self.domain == domain
    }

    /// How specific the pattern is: exact domains beat `*.parent`, longer
    /// parents beat shorter ones, `*` comes last.
    pub fn specificity(&self) -> (u8, usize) {
        if self.domain == "*" {
            (0, 0)
        } else if let Some(parent) = self.domain.strip_prefix("*.") {
            (1, parent.len())
        } else {
            (2, self.domain.len())
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct OutboundTable {
    /// Waits between attempts, in seconds; the last one repeats.
    pub retry_secs: Vec<u64>,
    /// A message still undelivered this long after it arrived is bounced.
    pub expire_secs: u64,
    /// When the sender hears that a message is delayed; `None`: never.
    pub delay_warning_secs: Option<u64>,
    /// Port of MX hosts.
    pub port: u16,
    pub ipv4: bool,
    pub ipv6: bool,
    pub max_connections: u32,
    pub max_connections_per_destination: u32,
    pub max_messages_per_connection: u32,
    /// MX hosts and addresses tried in one attempt.
    pub max_mx_hosts: u32,
    pub max_addresses: u32,
    /// Trust anchors besides the system's.
    pub ca_files: Vec<PathBuf>,
    /// Most specific first (see [`RouteTable::specificity`]).
    pub routes: Vec<RouteTable>,
    /// TLS reports (RFC 8460) we send about our outbound sessions
    /// (`outbound { tls-reports }`); `None`: off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_reports: Option<TlsReportsTable>,
    /// DANE for outbound mail (RFC 7672): TLSA lookups of the MX hosts
    /// of recipient domains whose MX RRset is DNSSEC-secure.
    pub dane: bool,
    /// MTA-STS for outbound mail (RFC 8461): fetch and honour policies.
    pub mta_sts: bool,
}

/// Sending TLS reports (RFC 8460) to the recipient domains that ask.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TlsReportsTable {
    /// From: and envelope sender of the reports, in one of our domains.
    pub from: String,
    /// `organization-name` of the reports.
    pub org_name: String,
    /// Length of a reporting period; periods start at multiples of it
    /// since the epoch (a day: UTC midnight).
    pub interval_secs: u64,
    /// Largest report sent (the mail, or the gzip'd body of an https POST).
    pub max_size: u64,
}

impl OutboundTable {
    /// The route for a recipient domain, if any matches.
    pub fn route(&self, domain: &str) -> Option<&RouteTable> {
        self.routes.iter().find(|r| r.matches(domain))
    }

    /// Seconds to wait after the `attempts`-th failed attempt (1-based),
    /// before jitter.
    pub fn retry_after(&self, attempts: u32) -> u64 {
        let i = (attempts.max(1) as usize - 1).min(self.retry_secs.len().saturating_sub(1));
        self.retry_secs.get(i).copied().unwrap_or(3600)
    }

    /// The wait with a deterministic jitter of up to ±10% taken from `seed`
    /// (the queue id), so retries of many messages deferred at once spread
    /// out instead of hitting the destination together.
    pub fn retry_after_jittered(&self, attempts: u32, seed: &str) -> u64 {
        let base = self.retry_after(attempts);
        let spread = base / 10;
        if spread == 0 {
            return base;
        }
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in seed.bytes().chain(attempts.to_le_bytes()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        base - spread + h % (2 * spread + 1)
    }
}

/// The DNS servers every lookup uses; empty: the system's.
pub type Resolvers = Vec<SocketAddr>;

#[cfg(test)]
mod tests {
    use super::*;

    fn route(d: &str) -> RouteTable {
        RouteTable {
            domain: d.into(),
            via: None,
            tls: OutboundTls::Opportunistic,
            user: None,
            password_file: None,
            source: None,
        }
    }

    #[test]
    fn route_patterns() {
        assert!(route("*").matches("example.org"));
        assert!(route("example.org").matches("example.org"));
        assert!(!route("example.org").matches("sub.example.org"));
        assert!(route("*.example.org").matches("sub.example.org"));
        assert!(route("*.example.org").matches("a.b.example.org"));
        assert!(!route("*.example.org").matches("example.org"));
        assert!(!route("*.example.org").matches("badexample.org"));
    }

    #[test]
    fn retry_schedule_repeats_the_last_wait_and_jitters_within_ten_percent() {
        let t = OutboundTable {
            retry_secs: vec![300, 900, 3600],
            expire_secs: 5 * 86400,
            delay_warning_secs: Some(4 * 3600),
            port: 25,
            ipv4: true,
            ipv6: true,
            max_connections: 10,
            max_connections_per_destination: 2,
            max_messages_per_connection: 10,
            max_mx_hosts: 5,
            max_addresses: 10,
            ca_files: vec![],
            routes: vec![],
            tls_reports: None,
            dane: true,
            mta_sts: true,
        };
        assert_eq!(t.retry_after(1), 300);
        assert_eq!(t.retry_after(2), 900);
        assert_eq!(t.retry_after(3), 3600);
        assert_eq!(t.retry_after(40), 3600);
        let mut seen = std::collections::HashSet::new();
        for id in 0..200 {
            let j = t.retry_after_jittered(1, &format!("ID{id}"));
            assert!((270..=330).contains(&j), "{j}");
            seen.insert(j);
        }
        assert!(seen.len() > 20, "jitter spreads the retries");
        assert_eq!(
            t.retry_after_jittered(2, "SAME"),
            t.retry_after_jittered(2, "SAME")
        );
    }
}
