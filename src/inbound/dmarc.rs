//! DMARC (RFC 7489) without I/O: the policy record's syntax (§6.3), the
//! organisational domain from the Public Suffix List (§3.2), identifier
//! alignment (§3.1), policy discovery (§6.6.3) and the policy to apply,
//! with `sp` and `pct` (§6.6.4). The DNS lookups run in
//! `services::inbound`, which hands [`evaluate`] what it found.
//!
//! The Public Suffix List is the one compiled into the `psl` crate: it is
//! updated with the crate (`cargo update -p psl`; the crate is republished
//! as the list changes), so a release carries the list of its build day.
//!
//! mail-auth 0.13.3 implements DMARCbis instead (a DNS tree walk up to
//! eight labels, no `pct`): it would look up records RFC 7489 never reads,
//! and a sender's `pct=` would be ignored. Only the record parser and the
//! alignment are ours; SPF and DKIM results still come from mail-auth.

/// A domain owner's requested handling of mail that fails (`p=`, `sp=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Policy {
    None,
    Quarantine,
    Reject,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::None => "none",
            Policy::Quarantine => "quarantine",
            Policy::Reject => "reject",
        }
    }

    fn parse(v: &str) -> Option<Policy> {
        match v.to_ascii_lowercase().as_str() {
            "none" => Some(Policy::None),
            "quarantine" => Some(Policy::Quarantine),
            "reject" => Some(Policy::Reject),
            _ => None,
        }
    }

    /// The next weaker policy, for mail `pct` leaves out of the sample
    /// (RFC 7489 §6.6.4: quarantine instead of reject, none instead of
    /// quarantine).
    fn weaker(self) -> Policy {
        match self {
            Policy::Reject => Policy::Quarantine,
            Policy::Quarantine | Policy::None => Policy::None,
        }
    }
}

/// `adkim=` / `aspf=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alignment {
    Relaxed,
    Strict,
}

impl Alignment {
    pub fn as_str(self) -> &'static str {
        match self {
            Alignment::Relaxed => "r",
            Alignment::Strict => "s",
        }
    }
}

/// A reporting URI of `rua=` / `ruf=` with its optional size limit
/// (`mailto:a@example.org!10m`, RFC 7489 §6.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uri {
    pub uri: String,
    /// Bytes; `None` without a limit.
    pub max_size: Option<u64>,
}

/// A parsed DMARC policy record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub p: Policy,
    /// `sp=`; `None` when absent (then `p` applies to subdomains too).
    pub sp: Option<Policy>,
    pub adkim: Alignment,
    pub aspf: Alignment,
    /// 0–100.
    pub pct: u8,
    pub rua: Vec<Uri>,
    pub ruf: Vec<Uri>,
    /// `ri=`, seconds between aggregate reports (default a day).
    pub ri: u32,
    /// `fo=` as written (default `0`).
    pub fo: String,
}

/// Why a TXT record is not a usable DMARC record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordError {
    /// Does not start with `v=DMARC1` (not a DMARC record at all).
    NotDmarc,
    /// `p=` missing or invalid and no valid `rua=` to fall back on
    /// (RFC 7489 §6.6.3 step 6: no DMARC processing).
    NoPolicy,
}

/// Upper bound of reporting URIs kept per tag: a record is at most a few
/// KiB, but nothing needs more than a handful.
const MAX_URIS: usize = 16;

/// Parses one TXT record (its strings already concatenated). Unknown tags
/// are ignored (§6.3: "MUST be ignored"); a known tag with an invalid value
/// falls back to its default, except `p`/`sp` which follow §6.6.3 step 6.
pub fn parse(txt: &str) -> Result<Record, RecordError> {
    let mut tags = txt.split(';').map(str::trim);
    let first = tags.next().unwrap_or_default();
    let (k, v) = first.split_once('=').ok_or(RecordError::NotDmarc)?;
    if k.trim() != "v" || v.trim() != "DMARC1" {
        return Err(RecordError::NotDmarc);
    }
    let mut p: Option<Option<Policy>> = None;
    let mut sp: Option<Option<Policy>> = None;
    let mut record = Record {
        p: Policy::None,
        sp: None,
        adkim: Alignment::Relaxed,
        aspf: Alignment::Relaxed,
        pct: 100,
        rua: Vec::new(),
        ruf: Vec::new(),
        ri: 86_400,
        fo: "0".into(),
    };
    for tag in tags {
        let Some((k, v)) = tag.split_once('=') else {
            continue;
        };
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
        match k.as_str() {
            "p" => p = Some(Policy::parse(v)),
            "sp" => sp = Some(Policy::parse(v)),
            "adkim" | "aspf" => {
                let a = match v.to_ascii_lowercase().as_str() {
                    "s" => Alignment::Strict,
                    _ => Alignment::Relaxed,
                };
                if k == "adkim" {
                    record.adkim = a;
                } else {
                    record.aspf = a;
                }
            }
            "pct" => {
                if let Ok(n) = v.parse::<u8>()
                    && n <= 100
                {
                    record.pct = n;
                }
            }
            "rua" => record.rua = uris(v),
            "ruf" => record.ruf = uris(v),
            "ri" => {
                if let Ok(n) = v.parse::<u32>() {
                    record.ri = n;
                }
            }
            "fo" => record.fo = v.to_string(),
            _ => {}
        }
    }
    match (p, sp) {
        (Some(Some(p)), None | Some(Some(_))) => {
            record.p = p;
            record.sp = sp.flatten();
        }
        // §6.6.3 step 6: without a valid `p` (or with an invalid `sp`), a
        // record with a valid `rua` counts as `p=none`; otherwise there is
        // no DMARC for the domain.
        _ if !record.rua.is_empty() => {
            record.p = Policy::None;
            record.sp = None;
        }
        _ => return Err(RecordError::NoPolicy),
    }
    Ok(record)
}

/// `mailto:` URIs of a `rua`/`ruf` list; others (`https:` and garbage)
/// are left out, as we send reports only by mail.
fn uris(v: &str) -> Vec<Uri> {
    v.split(',')
        .filter_map(|u| {
            let u = u.trim();
            let (uri, size) = match u.rsplit_once('!') {
                Some((uri, size)) => (uri, Some(size)),
                None => (u, None),
            };
            uri.get(..7).filter(|s| s.eq_ignore_ascii_case("mailto:"))?;
            let target = &uri[7..];
            let (local, domain) = target.rsplit_once('@')?;
            if local.is_empty() || domain.is_empty() || domain.contains(['/', '?', ' ']) {
                return None;
            }
            let max_size = match size {
                None => None,
                Some(s) => Some(size_of(s)?),
            };
            Some(Uri {
                uri: format!("mailto:{target}"),
                max_size,
            })
        })
        .take(MAX_URIS)
        .collect()
}

/// `10`, `10k`, `10m`, `10g`, `10t` (RFC 7489 §6.2: units of 2^10).
fn size_of(s: &str) -> Option<u64> {
    let s = s.trim();
    let (digits, shift) = match s.char_indices().last()? {
        (i, 'k' | 'K') => (&s[..i], 10),
        (i, 'm' | 'M') => (&s[..i], 20),
        (i, 'g' | 'G') => (&s[..i], 30),
        (i, 't' | 'T') => (&s[..i], 40),
        _ => (s, 0),
    };
    let n: u64 = digits.parse().ok()?;
    n.checked_mul(1u64 << shift)
}

/// The organisational domain (RFC 7489 §3.2): the public suffix of the
/// domain plus one label, from the Public Suffix List. A name that is a
/// public suffix itself, or unknown to the list's rules in a way that
/// leaves no registrable part, is its own organisational domain.
pub fn org_domain(domain: &str) -> String {
    let d = domain.trim_end_matches('.').to_ascii_lowercase();
    match psl::domain_str(&d) {
        Some(org) => org.to_string(),
        None => d,
    }
}

/// Whether `id` is aligned with the author domain `from` (§3.1.1, §3.1.2).
pub fn aligned(id: &str, from: &str, mode: Alignment) -> bool {
    let id = id.trim_end_matches('.');
    let from = from.trim_end_matches('.');
    match mode {
        Alignment::Strict => id.eq_ignore_ascii_case(from),
        Alignment::Relaxed => id.eq_ignore_ascii_case(from) || org_domain(id) == org_domain(from),
    }
}

/// What a TXT lookup of `_dmarc.<domain>` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The TXT records (strings of each concatenated), possibly none.
    Found(Vec<String>),
    /// A temporary DNS failure (SERVFAIL, timeout).
    Error(String),
}

/// The outcome of policy discovery for one author domain (§6.6.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Discovery {
    /// One valid record, published at `domain` (the author domain or its
    /// organisational domain).
    Record { domain: String, record: Record },
    /// No record, several records, or none usable: no DMARC.
    Nothing,
    /// The lookup failed: the policy is unknown.
    TempError(String),
}

/// Step 1–5 of §6.6.3 for one set of TXT records at `domain`: exactly one
/// record starting with `v=DMARC1` counts; none or several means none.
pub fn pick(domain: &str, lookup: Lookup) -> Option<Discovery> {
    let txts = match lookup {
        Lookup::Error(e) => return Some(Discovery::TempError(e)),
        Lookup::Found(txts) => txts,
    };
    let dmarc: Vec<&String> = txts
        .iter()
        .filter(|t| !matches!(parse(t), Err(RecordError::NotDmarc)))
        .collect();
    match dmarc[..] {
        // None here: the caller looks further (the organisational domain).
        [] => None,
        [one] => Some(match parse(one) {
            Ok(record) => Discovery::Record {
                domain: domain.to_ascii_lowercase(),
                record,
            },
            Err(_) => Discovery::Nothing,
        }),
        // §6.6.3 step 5: several records, DMARC is not applied.
        _ => Some(Discovery::Nothing),
    }
}

/// An authenticated identifier: a DKIM signature's `d=` or the SPF
/// (MAIL FROM, or HELO for the null sender) domain, with its result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identifier {
    pub domain: String,
    pub result: Outcome,
}

/// The result of SPF or one DKIM signature, as DMARC needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    /// A lookup failed: the result might have been a pass.
    TempError,
    /// Anything else (fail, softfail, neutral, none, permerror, policy).
    Other,
}

/// The DMARC result (RFC 7489 §11.2; RFC 8601 `dmarc=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Fail,
    /// No policy record.
    None,
    /// DNS failed, for the policy record or for an aligned identifier that
    /// did not pass.
    TempError,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::None => "none",
            Verdict::TempError => "temperror",
        }
    }
}

/// What DMARC concluded for a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    pub verdict: Verdict,
    /// The author (RFC 5322.From) domain.
    pub from_domain: String,
    /// Where the record was found (author or organisational domain).
    pub policy_domain: String,
    pub record: Option<Record>,
    /// `p` or `sp`, whichever applies to the author domain.
    pub requested: Policy,
    /// The policy to apply: `requested` for a failing message in the
    /// `pct` sample, one step weaker outside it, `none` when not failing.
    pub disposition: Policy,
    pub dkim_aligned: bool,
    pub spf_aligned: bool,
}

impl Evaluation {
    fn nothing(from_domain: &str, verdict: Verdict) -> Evaluation {
        Evaluation {
            verdict,
            from_domain: from_domain.to_string(),
            policy_domain: String::new(),
            record: None,
            requested: Policy::None,
            disposition: Policy::None,
            dkim_aligned: false,
            spf_aligned: false,
        }
    }
}

/// §6.6.2 steps 3–6 for an author domain, once policy discovery is done.
/// `sample` (0–99, uniformly random) decides whether a failing message is
/// in the `pct` sample (`sample < pct`).
pub fn evaluate(
    from_domain: &str,
    discovery: Discovery,
    spf: &Identifier,
    dkim: &[Identifier],
    sample: u8,
) -> Evaluation {
    let from = from_domain.trim_end_matches('.').to_ascii_lowercase();
    let (policy_domain, record) = match discovery {
        Discovery::Nothing => return Evaluation::nothing(&from, Verdict::None),
        Discovery::TempError(_) => return Evaluation::nothing(&from, Verdict::TempError),
        Discovery::Record { domain, record } => (domain, record),
    };
    let dkim_in_line: Vec<&Identifier> = dkim
        .iter()
        .filter(|d| aligned(&d.domain, &from, record.adkim))
        .collect();
    let dkim_aligned = dkim_in_line.iter().any(|d| d.result == Outcome::Pass);
    let spf_in_line = aligned(&spf.domain, &from, record.aspf);
    let spf_aligned = spf_in_line && spf.result == Outcome::Pass;
    let verdict = if dkim_aligned || spf_aligned {
        Verdict::Pass
    } else if dkim_in_line.iter().any(|d| d.result == Outcome::TempError)
        || (spf_in_line && spf.result == Outcome::TempError)
    {
        Verdict::TempError
    } else {
        Verdict::Fail
    };
    // §6.6.3 step 1/3: `sp` applies when the record is the organisational
    // domain's and the author domain is a subdomain of it.
    let requested = if policy_domain == from {
        record.p
    } else {
        record.sp.unwrap_or(record.p)
    };
    let disposition = match verdict {
        Verdict::Fail if sample < record.pct => requested,
        Verdict::Fail => requested.weaker(),
        _ => Policy::None,
    };
    Evaluation {
        verdict,
        from_domain: from,
        policy_domain,
        record: Some(record),
        requested,
        disposition,
        dkim_aligned,
        spf_aligned,
    }
}

/// The `dmarc=` part of `Authentication-Results` (RFC 7489 §11.2: the
/// `header.from` and `policy.dmarc` properties, the latter the policy
/// evaluated with `sp` and, for a failing message, `pct`), without the
/// leading `;`.
pub fn auth_result(e: &Evaluation) -> String {
    let mut out = format!("dmarc={}", e.verdict.as_str());
    if let Some(r) = &e.record {
        out.push_str(&format!(
            " (p={} sp={} pct={} dis={})",
            r.p.as_str(),
            r.sp.unwrap_or(r.p).as_str(),
            r.pct,
            e.disposition.as_str(),
        ));
    }
    if !e.from_domain.is_empty() {
        out.push_str(" header.from=");
        out.push_str(&e.from_domain);
    }
    if e.record.is_some() {
        out.push_str(" policy.dmarc=");
        out.push_str(match e.verdict {
            Verdict::Fail => e.disposition.as_str(),
            _ => e.requested.as_str(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(txt: &str) -> Record {
        parse(txt).unwrap()
    }

    #[test]
    fn records_parse_with_defaults_and_tolerate_unknown_tags() {
        let r = rec("v=DMARC1; p=reject");
        assert_eq!(r.p, Policy::Reject);
        assert_eq!(r.sp, None);
        assert_eq!((r.adkim, r.aspf), (Alignment::Relaxed, Alignment::Relaxed));
        assert_eq!((r.pct, r.ri), (100, 86_400));
        let r = rec("v=DMARC1;p=quarantine; sp=none ;adkim=s; aspf=s; pct=20; \
             rua=mailto:a@example.org!10m, mailto:b@rua.example, https://x.example/r; \
             ruf=mailto:f@example.org; fo=1; ri=3600; future=whatever");
        assert_eq!(r.p, Policy::Quarantine);
        assert_eq!(r.sp, Some(Policy::None));
        assert_eq!((r.adkim, r.aspf), (Alignment::Strict, Alignment::Strict));
        assert_eq!((r.pct, r.ri, r.fo.as_str()), (20, 3600, "1"));
        assert_eq!(
            r.rua,
            vec![
                Uri {
                    uri: "mailto:a@example.org".into(),
                    max_size: Some(10 << 20)
                },
                Uri {
                    uri: "mailto:b@rua.example".into(),
                    max_size: None
                },
            ]
        );
        assert_eq!(r.ruf.len(), 1);
    }

    #[test]
    fn records_that_are_not_dmarc_or_lack_a_policy() {
        assert_eq!(parse("v=spf1 -all"), Err(RecordError::NotDmarc));
        assert_eq!(parse("p=reject; v=DMARC1"), Err(RecordError::NotDmarc));
        assert_eq!(parse("v=DMARC2; p=reject"), Err(RecordError::NotDmarc));
        assert_eq!(parse(""), Err(RecordError::NotDmarc));
        assert_eq!(parse("v=DMARC1"), Err(RecordError::NoPolicy));
        assert_eq!(parse("v=DMARC1; p=bogus"), Err(RecordError::NoPolicy));
        // §6.6.3 step 6: an invalid p with a valid rua is p=none.
        let r = rec("v=DMARC1; p=bogus; rua=mailto:r@example.org");
        assert_eq!(r.p, Policy::None);
        let r = rec("v=DMARC1; p=reject; sp=bogus; rua=mailto:r@example.org");
        assert_eq!((r.p, r.sp), (Policy::None, None));
        // Out-of-range pct keeps the default.
        assert_eq!(rec("v=DMARC1; p=none; pct=101").pct, 100);
        assert_eq!(rec("v=DMARC1; p=none; pct=-1").pct, 100);
    }

    #[test]
    fn sizes_and_uris_are_bounded() {
        assert_eq!(size_of("10"), Some(10));
        assert_eq!(size_of("2k"), Some(2048));
        assert_eq!(size_of("1t"), Some(1 << 40));
        assert_eq!(size_of("99999999999999t"), None);
        assert_eq!(size_of("m"), None);
        let many = (0..100)
            .map(|i| format!("mailto:r{i}@example.org"))
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(uris(&many).len(), MAX_URIS);
        assert!(uris("mailto:@example.org,mailto:x@,mailto:nodomain").is_empty());
    }

    #[test]
    fn organisational_domains_come_from_the_public_suffix_list() {
        assert_eq!(org_domain("mail.example.com"), "example.com");
        assert_eq!(org_domain("a.b.example.co.uk"), "example.co.uk");
        assert_eq!(org_domain("Example.CO.UK."), "example.co.uk");
        // Private-domain section: github.io sites are separate owners.
        assert_eq!(org_domain("alice.github.io"), "alice.github.io");
        assert_eq!(org_domain("co.uk"), "co.uk");
        assert!(aligned(
            "mail.example.co.uk",
            "news.example.co.uk",
            Alignment::Relaxed
        ));
        assert!(!aligned(
            "alice.github.io",
            "bob.github.io",
            Alignment::Relaxed
        ));
        assert!(!aligned(
            "mail.example.com",
            "example.com",
            Alignment::Strict
        ));
        assert!(aligned("EXAMPLE.com.", "example.com", Alignment::Strict));
        assert!(!aligned(
            "example.com.evil.example",
            "example.com",
            Alignment::Relaxed
        ));
    }

    #[test]
    fn discovery_takes_exactly_one_dmarc_record() {
        let found = |v: &[&str]| Lookup::Found(v.iter().map(|s| s.to_string()).collect());
        assert_eq!(pick("example.org", found(&[])), None);
        assert_eq!(pick("example.org", found(&["v=spf1 -all"])), None);
        assert!(matches!(
            pick("Example.org", found(&["v=spf1 -all", "v=DMARC1; p=reject"])),
            Some(Discovery::Record { domain, .. }) if domain == "example.org"
        ));
        assert_eq!(
            pick(
                "example.org",
                found(&["v=DMARC1; p=reject", "v=DMARC1; p=none"])
            ),
            Some(Discovery::Nothing)
        );
        assert_eq!(
            pick("example.org", found(&["v=DMARC1; p=nonsense"])),
            Some(Discovery::Nothing)
        );
        assert_eq!(
            pick("example.org", Lookup::Error("SERVFAIL".into())),
            Some(Discovery::TempError("SERVFAIL".into()))
        );
    }

    fn id(domain: &str, result: Outcome) -> Identifier {
        Identifier {
            domain: domain.into(),
            result,
        }
    }

    fn at(domain: &str, txt: &str) -> Discovery {
        Discovery::Record {
            domain: domain.into(),
            record: rec(txt),
        }
    }

    #[test]
    fn every_alignment_and_policy_combination() {
        use Outcome::*;
        // (record domain, record, From domain, SPF id, DKIM ids, sample,
        //  verdict, requested, disposition)
        type Case<'a> = (
            &'a str,
            &'a str,
            &'a str,
            (&'a str, Outcome),
            &'a [(&'a str, Outcome)],
            u8,
            Verdict,
            Policy,
            Policy,
        );
        let cases: &[Case] = &[
            // Relaxed: a subdomain's DKIM or SPF passes for the parent.
            (
                "example.com",
                "v=DMARC1; p=reject",
                "example.com",
                ("bounce.example.com", Pass),
                &[],
                0,
                Verdict::Pass,
                Policy::Reject,
                Policy::None,
            ),
            (
                "example.com",
                "v=DMARC1; p=reject",
                "example.com",
                ("other.example", Pass),
                &[("mail.example.com", Pass)],
                0,
                Verdict::Pass,
                Policy::Reject,
                Policy::None,
            ),
            // Strict: the same identifiers do not align.
            (
                "example.com",
                "v=DMARC1; p=reject; aspf=s",
                "example.com",
                ("bounce.example.com", Pass),
                &[],
                0,
                Verdict::Fail,
                Policy::Reject,
                Policy::Reject,
            ),
            (
                "example.com",
                "v=DMARC1; p=reject; adkim=s",
                "example.com",
                ("other.example", Pass),
                &[("mail.example.com", Pass)],
                0,
                Verdict::Fail,
                Policy::Reject,
                Policy::Reject,
            ),
            // Strict DKIM, relaxed SPF: SPF saves it.
            (
                "example.com",
                "v=DMARC1; p=reject; adkim=s",
                "example.com",
                ("bounce.example.com", Pass),
                &[("mail.example.com", Pass)],
                0,
                Verdict::Pass,
                Policy::Reject,
                Policy::None,
            ),
            // A passing but unaligned signature, an aligned but failing one.
            (
                "example.com",
                "v=DMARC1; p=quarantine",
                "example.com",
                ("other.example", Pass),
                &[("other.example", Pass), ("example.com", Other)],
                0,
                Verdict::Fail,
                Policy::Quarantine,
                Policy::Quarantine,
            ),
            // SPF pass for a domain that merely shares a suffix.
            (
                "example.co.uk",
                "v=DMARC1; p=reject",
                "example.co.uk",
                ("evil.co.uk", Pass),
                &[],
                0,
                Verdict::Fail,
                Policy::Reject,
                Policy::Reject,
            ),
            // Subdomain policy: the organisational record's sp applies to
            // a subdomain author, p to the domain itself.
            (
                "example.com",
                "v=DMARC1; p=reject; sp=quarantine",
                "news.example.com",
                ("x.example", Other),
                &[],
                0,
                Verdict::Fail,
                Policy::Quarantine,
                Policy::Quarantine,
            ),
            (
                "example.com",
                "v=DMARC1; p=reject",
                "news.example.com",
                ("x.example", Other),
                &[],
                0,
                Verdict::Fail,
                Policy::Reject,
                Policy::Reject,
            ),
            (
                "news.example.com",
                "v=DMARC1; p=none; sp=reject",
                "news.example.com",
                ("x.example", Other),
                &[],
                0,
                Verdict::Fail,
                Policy::None,
                Policy::None,
            ),
            // pct: inside the sample the policy, outside one step weaker.
            (
                "example.com",
                "v=DMARC1; p=reject; pct=30",
                "example.com",
                ("x.example", Other),
                &[],
                29,
                Verdict::Fail,
                Policy::Reject,
                Policy::Reject,
            ),
            (
                "example.com",
                "v=DMARC1; p=reject; pct=30",
                "example.com",
                ("x.example", Other),
                &[],
                30,
                Verdict::Fail,
                Policy::Reject,
                Policy::Quarantine,
            ),
            (
                "example.com",
                "v=DMARC1; p=quarantine; pct=0",
                "example.com",
                ("x.example", Other),
                &[],
                0,
                Verdict::Fail,
                Policy::Quarantine,
                Policy::None,
            ),
            (
                "example.com",
                "v=DMARC1; p=reject; pct=100",
                "example.com",
                ("x.example", Other),
                &[],
                99,
                Verdict::Fail,
                Policy::Reject,
                Policy::Reject,
            ),
            // p=none: fails, nothing happens.
            (
                "example.com",
                "v=DMARC1; p=none",
                "example.com",
                ("x.example", Other),
                &[],
                0,
                Verdict::Fail,
                Policy::None,
                Policy::None,
            ),
            // An aligned identifier whose lookup failed: temperror.
            (
                "example.com",
                "v=DMARC1; p=reject",
                "example.com",
                ("example.com", TempError),
                &[],
                0,
                Verdict::TempError,
                Policy::Reject,
                Policy::None,
            ),
            (
                "example.com",
                "v=DMARC1; p=reject",
                "example.com",
                ("x.example", Other),
                &[("example.com", TempError)],
                0,
                Verdict::TempError,
                Policy::Reject,
                Policy::None,
            ),
            // ...but not when another aligned identifier passed.
            (
                "example.com",
                "v=DMARC1; p=reject",
                "example.com",
                ("example.com", TempError),
                &[("example.com", Pass)],
                0,
                Verdict::Pass,
                Policy::Reject,
                Policy::None,
            ),
            // An unaligned temperror does not matter.
            (
                "example.com",
                "v=DMARC1; p=reject",
                "example.com",
                ("x.example", TempError),
                &[],
                0,
                Verdict::Fail,
                Policy::Reject,
                Policy::Reject,
            ),
        ];
        for (i, (pd, txt, from, spf, dkim, sample, verdict, requested, dis)) in
            cases.iter().enumerate()
        {
            let dkim: Vec<Identifier> = dkim.iter().map(|(d, r)| id(d, *r)).collect();
            let e = evaluate(from, at(pd, txt), &id(spf.0, spf.1), &dkim, *sample);
            assert_eq!(
                (e.verdict, e.requested, e.disposition),
                (*verdict, *requested, *dis),
                "case {i}: {txt} for {from}"
            );
            assert_eq!(e.policy_domain, *pd);
        }
    }

    #[test]
    fn without_a_record_or_with_a_dns_error() {
        let spf = id("example.com", Outcome::Pass);
        let e = evaluate("example.com", Discovery::Nothing, &spf, &[], 0);
        assert_eq!((e.verdict, e.disposition), (Verdict::None, Policy::None));
        assert_eq!(auth_result(&e), "dmarc=none header.from=example.com");
        let e = evaluate(
            "example.com",
            Discovery::TempError("timeout".into()),
            &spf,
            &[],
            0,
        );
        assert_eq!(e.verdict, Verdict::TempError);
    }

    #[test]
    fn the_authentication_results_part() {
        let e = evaluate(
            "news.example.com",
            at("example.com", "v=DMARC1; p=reject; sp=quarantine; pct=50"),
            &id("x.example", Outcome::Other),
            &[],
            70,
        );
        assert_eq!(
            auth_result(&e),
            "dmarc=fail (p=reject sp=quarantine pct=50 dis=none) \
             header.from=news.example.com policy.dmarc=none"
        );
    }

    proptest::proptest! {
        #[test]
        fn any_record_text_parses_or_errs_without_panic(s in ".{0,300}") {
            let _ = parse(&s);
            let _ = uris(&s);
            let _ = org_domain(&s);
        }
    }
}
