//! Screening of clients at the MX in the tables: DNS blocklists looked up
//! at connect (`inbound { dnsbl }`) and greylisting at RCPT
//! (`inbound { greylist }`). Both are off unless configured.

use std::net::Ipv4Addr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `inbound { dnsbl }`: the zones asked about every client of an MX
/// listener, and how many points make a client listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct DnsblTable {
    /// In config order; all are asked at once.
    pub zones: Vec<DnsblZone>,
    /// A client whose listing zones' weights add up to this is refused.
    pub threshold: i32,
    /// The bound on the lookups of one connection (all zones in parallel).
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct DnsblZone {
    /// Lower-case ASCII, no trailing dot.
    pub name: String,
    /// Points a listing in this zone counts (negative for allow lists).
    pub weight: i32,
    /// The answers that mean "listed"; empty: any address in 127.0.0.0/8
    /// other than the error codes 127.255.255.252-255.
    pub answers: Vec<AnswerRange>,
}

/// An inclusive range of A-record answers (`127.0.0.2` or `127.0.0.2-11`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct AnswerRange {
    pub first: Ipv4Addr,
    pub last: Ipv4Addr,
}

impl AnswerRange {
    pub fn contains(&self, a: Ipv4Addr) -> bool {
        self.first <= a && a <= self.last
    }
}

/// `inbound { greylist }`: a first attempt from an unknown (client
/// network, sender, recipient) triplet is deferred at RCPT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct GreylistTable {
    /// A retry is accepted this long after the first attempt, not sooner.
    pub delay_secs: u64,
    /// ... and not later than this after the first attempt (else the
    /// triplet starts again).
    pub expire_secs: u64,
    /// A triplet that passed stays accepted this long after its last use.
    pub keep_secs: u64,
    /// Triplets (and client networks) remembered at most.
    pub max_entries: u32,
    /// A client network with this many passed triplets is not greylisted
    /// any more (while it keeps sending within `keep`); 0: never.
    pub whitelist_after: u32,
}
