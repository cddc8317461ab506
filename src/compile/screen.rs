//! `inbound { dnsbl }` and `inbound { greylist }`: zone names checked and
//! normalised, answer ranges parsed, weights against the threshold, the
//! greylisting times against each other. Defaults from [`def`].

use std::net::Ipv4Addr;

use super::{Cx, defaults as def};
use crate::addr;
use crate::diag::{Code, Diag};
use crate::spec::ast::{Dnsbl, Greylist};
use crate::tables::{AnswerRange, DnsblTable, DnsblZone, GreylistTable};

/// The compiled blocklists; `None` when absent or broken (diagnosed).
pub(super) fn dnsbl(d: Option<&Dnsbl>, cx: &mut Cx<'_>) -> Option<DnsblTable> {
    let d = d?;
    let before = cx.diags.error_count();
    let mut zones: Vec<DnsblZone> = Vec::new();
    if d.zones.is_empty() {
        cx.diags.push(
            Diag::error(Code::DnsblZone, "`dnsbl` names no zone")
                .label(d.span, "no `zone` inside")
                .help("add the lists to ask, e.g. `zone \"zen.spamhaus.org\"`, or remove `dnsbl`"),
        );
    }
    for z in &d.zones {
        let name = match addr::normalize_domain(&z.name.value) {
            Ok(n) if addr::is_fqdn(&n.ascii) => n.ascii,
            _ => {
                cx.diags.push(
                    Diag::error(
                        Code::DnsblZone,
                        format!("`{}` is not a DNS zone", z.name.value),
                    )
                    .label(z.name.span, "not a domain name")
                    .help("a blocklist zone is a domain such as \"zen.spamhaus.org\""),
                );
                continue;
            }
        };
        if zones.iter().any(|seen| seen.name == name) {
            cx.diags.push(
                Diag::error(Code::DnsblZone, format!("zone `{name}` is listed twice"))
                    .label(z.name.span, "again here")
                    .help("keep one `zone` line per list; give it the weight it should count"),
            );
            continue;
        }
        let answers = match &z.answer {
            None => Vec::new(),
            Some(a) => match parse_answers(&a.value) {
                Ok(ranges) => ranges,
                Err(why) => {
                    cx.diags.push(
                        Diag::error(Code::DnsblZone, format!("answer `{}`: {why}", a.value))
                            .label(a.span, "not an answer list")
                            .help(
                                "addresses in 127.0.0.0/8 or last-octet ranges, comma-separated: \
                                 \"127.0.0.2,127.0.0.4-11\"",
                            ),
                    );
                    continue;
                }
            },
        };
        zones.push(DnsblZone {
            name,
            weight: z.weight.as_ref().map_or(def::DNSBL_WEIGHT, |w| w.value),
            answers,
        });
    }
    let threshold = d
        .threshold
        .as_ref()
        .map_or(def::DNSBL_THRESHOLD, |t| t.value);
    let reachable: i32 = zones.iter().map(|z| z.weight.max(0)).sum();
    if !zones.is_empty() && reachable < threshold {
        let mut diag = Diag::error(
            Code::DnsblThreshold,
            format!(
                "no client can be refused: the zones' positive weights add up to {reachable}, \
                 the threshold is {threshold}"
            ),
        );
        diag = match &d.threshold {
            Some(t) => diag.label(t.span, "never reached"),
            None => diag.label(d.span, "threshold 1 (the default) never reached"),
        };
        cx.diags
            .push(diag.help("lower `threshold=` or raise the weights of the blocklists"));
    }
    let timeout = d
        .timeout
        .as_ref()
        .map_or(def::DNSBL_TIMEOUT_SECS, |t| t.value);
    if let Some(t) = &d.timeout
        && !(1..=def::DNSBL_TIMEOUT_MAX_SECS).contains(&t.value)
    {
        cx.diags.push(
            Diag::error(
                Code::ValueRange,
                "`dnsbl timeout=` must be between 1s and 60s",
            )
            .label(t.span, "the client waits this long for the greeting")
            .help(format!(
                "the default is {}s; a blocklist slower than that is taken as not listing the client",
                def::DNSBL_TIMEOUT_SECS
            )),
        );
    }
    (cx.diags.error_count() == before).then_some(DnsblTable {
        zones,
        threshold,
        timeout_ms: timeout * 1000,
    })
}

/// `127.0.0.2,127.0.0.4-11`: addresses, or a first address and the last
/// octet of the range's end; all inside 127.0.0.0/8 and never the error
/// codes 127.255.255.252-255.
fn parse_answers(text: &str) -> Result<Vec<AnswerRange>, String> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim) {
        let (first, last) = match part.split_once('-') {
            None => {
                let a: Ipv4Addr = part
                    .parse()
                    .map_err(|_| format!("`{part}` is not an IPv4 address"))?;
                (a, a)
            }
            Some((a, end)) => {
                let a: Ipv4Addr = a
                    .trim()
                    .parse()
                    .map_err(|_| format!("`{a}` is not an IPv4 address"))?;
                let end: u8 = end
                    .trim()
                    .parse()
                    .map_err(|_| format!("`{end}` is not a last octet (0-255)"))?;
                let [x, y, z, w] = a.octets();
                if end < w {
                    return Err(format!("the range `{part}` ends before it starts"));
                }
                (a, Ipv4Addr::new(x, y, z, end))
            }
        };
        for a in [first, last] {
            if a.octets()[0] != 127 {
                return Err(format!("{a} is outside 127.0.0.0/8, where lists answer"));
            }
            if crate::inbound::dnsbl::is_error_code(a) {
                return Err(format!(
                    "{a} is an error code (127.255.255.252-255), never a listing"
                ));
            }
        }
        out.push(AnswerRange { first, last });
    }
    Ok(out)
}

/// The compiled greylisting; `None` when absent or broken (diagnosed).
pub(super) fn greylist(g: Option<&Greylist>, cx: &mut Cx<'_>) -> Option<GreylistTable> {
    let g = g?;
    let t = GreylistTable {
        delay_secs: g
            .delay
            .as_ref()
            .map_or(def::GREYLIST_DELAY_SECS, |v| v.value),
        expire_secs: g
            .expire
            .as_ref()
            .map_or(def::GREYLIST_EXPIRE_SECS, |v| v.value),
        keep_secs: g.keep.as_ref().map_or(def::GREYLIST_KEEP_SECS, |v| v.value),
        max_entries: g
            .max_entries
            .as_ref()
            .map_or(def::GREYLIST_MAX_ENTRIES, |v| v.value),
        whitelist_after: g
            .whitelist_after
            .as_ref()
            .map_or(def::GREYLIST_WHITELIST_AFTER, |v| v.value),
    };
    let span =
        |v: &Option<crate::spec::source::Spanned<u64>>| v.as_ref().map_or(g.span, |s| s.span);
    if t.delay_secs >= t.expire_secs {
        cx.diags.push(
            Diag::error(
                Code::GreylistTimes,
                "no retry can pass: `expire` is not later than `delay`",
            )
            .label(span(&g.expire), "the retry window closes here")
            .label(span(&g.delay), "before it opens here")
            .help("`expire` is counted from the first attempt, like `delay`: make it hours longer"),
        );
        return None;
    }
    if t.keep_secs < t.expire_secs {
        cx.diags.push(
            Diag::error(
                Code::GreylistTimes,
                "a passed triplet would be forgotten before an unpassed one",
            )
            .label(span(&g.keep), "shorter than `expire`")
            .help("`keep` is usually weeks (default 36d), `expire` hours or a day"),
        );
        return None;
    }
    if t.expire_secs - t.delay_secs < def::GREYLIST_MIN_WINDOW_SECS {
        cx.diags.push(
            Diag::warning(
                Code::GreylistTimes,
                "the retry window is shorter than 30 minutes",
            )
            .label(span(&g.expire), "the window closes here")
            .help(
                "RFC 5321 §4.5.4.1 has senders wait at least 30 minutes between attempts: \
                 such a sender would be greylisted at every retry",
            ),
        );
    }
    Some(t)
}
