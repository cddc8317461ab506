//! What one outbound TLS attempt tells TLS-RPT (RFC 8460): the policy that
//! applied to the recipient domain and how the session with one MX host
//! went. The SMTP client produces a [`TlsAttempt`] for every connection it
//! tries (success or failure) and hands it to a [`TlsRptSink`]; the report
//! service aggregates them per recipient domain and UTC day and sends the
//! reports. Pure types: no sockets, no files.

use std::net::IpAddr;

/// RFC 8460 §4.4 `policy-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PolicyType {
    /// DANE (RFC 7672): the MX host had usable TLSA records.
    Tlsa,
    /// MTA-STS (RFC 8461), `enforce` or `testing`.
    Sts,
    /// Neither applied.
    NoPolicyFound,
}

impl PolicyType {
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyType::Tlsa => "tlsa",
            PolicyType::Sts => "sts",
            PolicyType::NoPolicyFound => "no-policy-found",
        }
    }
}

/// RFC 8460 §4.3 result types (the failures; success is [`Outcome::Success`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FailureType {
    // §4.3.1 negotiation failures
    StarttlsNotSupported,
    CertificateHostMismatch,
    CertificateExpired,
    CertificateNotTrusted,
    ValidationFailure,
    // §4.3.2 policy failures: DANE
    TlsaInvalid,
    DnssecInvalid,
    DaneRequired,
    // §4.3.2 policy failures: MTA-STS
    StsPolicyFetchError,
    StsPolicyInvalid,
    StsWebpkiInvalid,
}

impl FailureType {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureType::StarttlsNotSupported => "starttls-not-supported",
            FailureType::CertificateHostMismatch => "certificate-host-mismatch",
            FailureType::CertificateExpired => "certificate-expired",
            FailureType::CertificateNotTrusted => "certificate-not-trusted",
            FailureType::ValidationFailure => "validation-failure",
            FailureType::TlsaInvalid => "tlsa-invalid",
            FailureType::DnssecInvalid => "dnssec-invalid",
            FailureType::DaneRequired => "dane-required",
            FailureType::StsPolicyFetchError => "sts-policy-fetch-error",
            FailureType::StsPolicyInvalid => "sts-policy-invalid",
            FailureType::StsWebpkiInvalid => "sts-webpki-invalid",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Outcome {
    Success,
    Failure {
        kind: FailureType,
        /// `additional-information` / `failure-reason-code`: a short
        /// human-readable reason (the verifier's error, say).
        reason: Option<String>,
    },
}

/// One connection attempt (or one policy failure that stopped the attempt
/// before a connection) for mail to `domain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsAttempt {
    /// The recipient (policy) domain, lower-case A-labels.
    pub domain: String,
    pub policy: PolicyType,
    /// RFC 8460 `policy-string`: the MTA-STS policy lines or the TLSA
    /// records in presentation format; empty for `no-policy-found`.
    pub policy_strings: Vec<String>,
    /// MX host names of an MTA-STS policy (`mx-host` patterns).
    pub mx_patterns: Vec<String>,
    /// The MX host tried; `None` when the policy failed before any host.
    pub mx_host: Option<String>,
    pub sending_ip: Option<IpAddr>,
    pub receiving_ip: Option<IpAddr>,
    pub outcome: Outcome,
}

/// Where the SMTP client puts its attempts. Implementations must not block
/// (an in-memory append, flushed elsewhere).
pub trait TlsRptSink: Send + Sync {
    fn record(&self, attempt: TlsAttempt);
}

/// A sink that drops everything (no TLS-RPT configured, and tests).
#[derive(Debug, Default, Clone, Copy)]
pub struct Discard;

impl TlsRptSink for Discard {
    fn record(&self, _attempt: TlsAttempt) {}
}
