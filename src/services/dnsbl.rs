//! DNS blocklist lookups at connect (`inbound { dnsbl }`): every zone is
//! asked at once through the server's resolver (whose cache keeps answers
//! within their TTL, negative ones too), all within the configured bound,
//! while the client waits for the greeting. What the answers mean is
//! `inbound::dnsbl`; the session refuses a listed client at RCPT.
//!
//! Failing open: a zone that times out, answers SERVFAIL or cannot be
//! reached counts as "not listed" (a blocklist outage must not stop mail).
//! An answer that is an error code (127.255.255.252-255, e.g. "queries
//! through a public resolver are refused") or outside 127.0.0.0/8 counts
//! as no answer too, and is warned about once per zone per
//! [`WARN_EVERY`], not per connection.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hickory_resolver::proto::rr::{RData, RecordType};

use crate::dns::resolver::Resolver;
use crate::inbound::dnsbl::{Answer, Listing, classify, query_name, reason_text};
use crate::tables::DnsblTable;

/// A zone's refusals are warned about at most this often.
pub const WARN_EVERY: Duration = Duration::from_secs(3600);

/// When each zone was last warned about, and how many refusals were not
/// logged since. Bounded by the number of configured zones (an entry per
/// zone name ever configured while running).
#[derive(Default)]
pub struct Warnings {
    zones: Mutex<HashMap<String, (Instant, u64)>>,
}

impl Warnings {
    /// Logs the refusal unless this zone was warned about within
    /// [`WARN_EVERY`].
    fn refused(&self, zone: &str, code: Ipv4Addr) {
        let mut zones = self.zones.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        match zones.get_mut(zone) {
            Some((last, suppressed)) if now.duration_since(*last) < WARN_EVERY => {
                *suppressed += 1;
            }
            Some((last, suppressed)) => {
                warn(zone, code, *suppressed);
                *last = now;
                *suppressed = 0;
            }
            None => {
                if zones.len() < 1000 {
                    warn(zone, code, 0);
                    zones.insert(zone.to_string(), (now, 0));
                }
            }
        }
    }
}

fn warn(zone: &str, code: Ipv4Addr, suppressed: u64) {
    let meaning = match code.octets() {
        [127, 255, 255, 252] => "typo in the zone name (Spamhaus)",
        [127, 255, 255, 254] => "queries through public or open resolvers are refused",
        [127, 255, 255, 255] => "too many queries from this resolver",
        [127, 255, 255, _] => "an error code",
        _ => "not a blocklist answer (outside 127.0.0.0/8: a resolver rewriting NXDOMAIN?)",
    };
    tracing::warn!(
        zone,
        answer = %code,
        meaning,
        unlogged_since_last_warning = suppressed,
        "DNS blocklist gives no usable answer; its listings are ignored (use a resolver of your own, or a registered zone)"
    );
}

/// The listing of `ip` over the zones of `table`, or `None` (not listed,
/// or no usable answer in time).
pub async fn lookup(
    resolver: &Resolver,
    table: &DnsblTable,
    ip: IpAddr,
    warnings: &Warnings,
) -> Option<Listing> {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(table.timeout_ms);
    let mut set = tokio::task::JoinSet::new();
    for (i, zone) in table.zones.iter().enumerate() {
        let name = query_name(ip, &zone.name);
        let r = resolver.clone();
        set.spawn(async move {
            let found = tokio::time::timeout_at(deadline, a_records(&r, &name)).await;
            (i, name, found)
        });
    }
    let mut answers = vec![Answer::Failed; table.zones.len()];
    while let Some(joined) = set.join_next().await {
        let Ok((i, name, found)) = joined else {
            continue;
        };
        let zone = &table.zones[i];
        answers[i] = match found {
            Ok(Ok(addrs)) => classify(zone, &addrs),
            Ok(Err(e)) => {
                tracing::debug!(%name, error = %e, "DNS blocklist lookup failed; not listed");
                Answer::Failed
            }
            Err(_) => {
                tracing::debug!(%name, timeout_ms = table.timeout_ms, "DNS blocklist lookup timed out; not listed");
                Answer::Failed
            }
        };
        if let Answer::Refused(code) = answers[i] {
            warnings.refused(&zone.name, code);
        }
    }
    let mut listing = Listing::from_answers(table, &answers)?;
    // The reason the first listing zone gives, if it says one in time.
    if let Some((zone, _)) = listing.zones.first() {
        let name = query_name(ip, zone);
        if let Ok(Some(text)) = tokio::time::timeout_at(deadline, txt_record(resolver, &name)).await
        {
            listing.reason = reason_text(&text);
        }
    }
    Some(listing)
}

/// The A records of `name`; none for NXDOMAIN or NODATA.
async fn a_records(r: &Resolver, name: &str) -> Result<Vec<Ipv4Addr>, String> {
    match r.hickory().lookup(name, RecordType::A).await {
        Ok(l) => Ok(l
            .answers()
            .iter()
            .filter_map(|rec| match &rec.data {
                RData::A(a) => Some(a.0),
                _ => None,
            })
            .collect()),
        Err(e) if is_no_records(&e) => Ok(Vec::new()),
        Err(e) => Err(e.to_string()),
    }
}

/// The first TXT record of `name`, its strings joined.
async fn txt_record(r: &Resolver, name: &str) -> Option<String> {
    let l = r.hickory().lookup(name, RecordType::TXT).await.ok()?;
    l.answers().iter().find_map(|rec| match &rec.data {
        RData::TXT(txt) => Some(
            txt.txt_data
                .iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect::<String>(),
        ),
        _ => None,
    })
}

fn is_no_records(e: &hickory_resolver::net::NetError) -> bool {
    use hickory_resolver::net::{DnsError, NetError};
    use hickory_resolver::proto::op::ResponseCode;
    matches!(
        e,
        NetError::Dns(DnsError::NoRecordsFound(no))
            if matches!(no.response_code, ResponseCode::NXDomain | ResponseCode::NoError)
    )
}
