//! Which TLS policy applies to one MX host of a recipient domain (RFC 7672
//! §2.2, RFC 8461 §2, §4–5): pure over what the DNSSEC and MTA-STS lookups
//! found.
//!
//! Precedence: a route with its own relay (`via`) is outside both (the
//! route's `tls` applies; decided by the caller). For MX delivery: DANE
//! when the MX RRset is DNSSEC-secure and the host's TLSA lookup is secure
//! (usable records → authenticated; only unusable records → encrypt-only;
//! a failed lookup in a signed zone → defer, never fall back); else an
//! MTA-STS policy (`enforce`: the host must match the policy's `mx`
//! patterns and its certificate verify via WebPKI; `testing`: only
//! reported); else the route's mode (opportunistic by default).

use super::dane::{self, Tlsa};
use super::mta_sts::{Mode, Policy};
use super::tlsrpt::{FailureType, PolicyType};

/// What the TLSA lookup of `_25._tcp.<host>` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DaneLookup {
    /// DANE does not apply: the MX RRset (or the TLSA answer) is not
    /// DNSSEC-secure, or there are no TLSA records.
    NotApplicable,
    /// Secure TLSA records (all of them, usable or not).
    Records(Vec<Tlsa>),
    /// The lookup failed (SERVFAIL from the validating resolver: bogus, or
    /// unreachable servers of a signed zone).
    Failed(String),
}

/// How to connect to one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPolicy {
    /// DANE with usable records: STARTTLS required, the chain must match.
    Dane(Vec<Tlsa>),
    /// DANE with only unusable records: STARTTLS required, any certificate
    /// (RFC 7672 §2.2 "encrypt-only").
    DaneEncryptOnly(Vec<Tlsa>),
    /// MTA-STS enforce: STARTTLS with a WebPKI-verified certificate for the
    /// host name.
    StsEnforce,
    /// MTA-STS testing: as without policy, failures reported.
    StsTesting,
    /// Neither: the route's mode.
    None,
    /// Do not connect to this host now (temporary failure).
    Skip {
        kind: FailureType,
        policy: PolicyType,
        reason: String,
    },
}

impl HostPolicy {
    /// The TLS-RPT policy type of connections under this policy.
    pub fn policy_type(&self) -> PolicyType {
        match self {
            HostPolicy::Dane(_) | HostPolicy::DaneEncryptOnly(_) => PolicyType::Tlsa,
            HostPolicy::StsEnforce | HostPolicy::StsTesting => PolicyType::Sts,
            HostPolicy::None => PolicyType::NoPolicyFound,
            HostPolicy::Skip { policy, .. } => *policy,
        }
    }
}

/// The policy for MX host `host` of a domain whose MTA-STS policy (if any)
/// is `sts`, given its TLSA lookup.
pub fn decide(host: &str, dane_lookup: &DaneLookup, sts: Option<&Policy>) -> HostPolicy {
    match dane_lookup {
        DaneLookup::Failed(why) => {
            return HostPolicy::Skip {
                kind: FailureType::DnssecInvalid,
                policy: PolicyType::Tlsa,
                reason: format!("TLSA lookup for {host} failed in a signed zone: {why}"),
            };
        }
        DaneLookup::Records(records) if !records.is_empty() => {
            let usable = dane::usable(records);
            return if usable.is_empty() {
                HostPolicy::DaneEncryptOnly(records.clone())
            } else {
                HostPolicy::Dane(usable)
            };
        }
        _ => {}
    }
    match sts.map(|p| (p.mode, p)) {
        Some((Mode::Enforce, p)) if !p.matches_mx(host) => HostPolicy::Skip {
            kind: FailureType::ValidationFailure,
            policy: PolicyType::Sts,
            reason: format!("MX host {host} does not match the domain's MTA-STS policy"),
        },
        Some((Mode::Enforce, _)) => HostPolicy::StsEnforce,
        Some((Mode::Testing, _)) => HostPolicy::StsTesting,
        _ => HostPolicy::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sts(mode: Mode) -> Policy {
        Policy {
            mode,
            mx: vec!["*.example.org".into()],
            max_age: 86400,
        }
    }

    fn tlsa(usage: u8) -> Tlsa {
        Tlsa {
            usage,
            selector: 1,
            matching: 1,
            data: vec![7; 32],
        }
    }

    #[test]
    fn dane_beats_mta_sts() {
        let p = sts(Mode::Enforce);
        assert_eq!(
            decide(
                "mx.other.net",
                &DaneLookup::Records(vec![tlsa(3)]),
                Some(&p)
            ),
            HostPolicy::Dane(vec![tlsa(3)])
        );
        assert_eq!(
            decide(
                "mx.other.net",
                &DaneLookup::Records(vec![tlsa(1)]),
                Some(&p)
            ),
            HostPolicy::DaneEncryptOnly(vec![tlsa(1)])
        );
        assert_eq!(
            decide(
                "mx.example.org",
                &DaneLookup::Records(vec![tlsa(1), tlsa(2)]),
                None
            ),
            HostPolicy::Dane(vec![tlsa(2)])
        );
    }

    #[test]
    fn a_failed_tlsa_lookup_defers_and_never_falls_back() {
        let d = decide(
            "mx.example.org",
            &DaneLookup::Failed("SERVFAIL".into()),
            Some(&sts(Mode::Testing)),
        );
        assert!(matches!(
            d,
            HostPolicy::Skip {
                kind: FailureType::DnssecInvalid,
                policy: PolicyType::Tlsa,
                ..
            }
        ));
    }

    #[test]
    fn mta_sts_modes() {
        let none = DaneLookup::NotApplicable;
        assert_eq!(
            decide("mx1.example.org", &none, Some(&sts(Mode::Enforce))),
            HostPolicy::StsEnforce
        );
        assert!(matches!(
            decide("mx.evil.net", &none, Some(&sts(Mode::Enforce))),
            HostPolicy::Skip {
                policy: PolicyType::Sts,
                ..
            }
        ));
        assert_eq!(
            decide("mx.evil.net", &none, Some(&sts(Mode::Testing))),
            HostPolicy::StsTesting
        );
        assert_eq!(
            decide("mx.evil.net", &none, Some(&sts(Mode::None))),
            HostPolicy::None
        );
        assert_eq!(decide("mx.evil.net", &none, None), HostPolicy::None);
        assert_eq!(
            decide("mx.evil.net", &DaneLookup::Records(vec![]), None),
            HostPolicy::None
        );
        assert_eq!(HostPolicy::StsTesting.policy_type(), PolicyType::Sts);
        assert_eq!(HostPolicy::None.policy_type(), PolicyType::NoPolicyFound);
    }
}
