//! The RFC 7208 SPF test suite (openspf.org, release 2014.04, as shipped by
//! Debian's python3-spf in `/usr/share/doc/python3-spf/rfc7208-tests.yml.gz`)
//! run case by case through mailc's SPF evaluation
//! (`services::inbound::spf_mail_from`, the function the MX uses), each
//! scenario's zone data served by a real DNS server on loopback.
//!
//! Every case must give one of the results the suite accepts, or be listed
//! in `tests/spf_suite/known-differences.txt` with the reason; a listed case
//! that passes now fails the test too (the list only shrinks). The pass count
//! is printed. Run by `.ci/run` with `--ignored`.

mod common;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use common::dns_server::DnsServer;
use common::{root, tool};
use mail_auth::SpfResult;

const SUITE: &str = "/usr/share/doc/python3-spf/rfc7208-tests.yml.gz";

fn result_name(r: SpfResult) -> &'static str {
    match r {
        SpfResult::Pass => "pass",
        SpfResult::Fail => "fail",
        SpfResult::SoftFail => "softfail",
        SpfResult::Neutral => "neutral",
        SpfResult::TempError => "temperror",
        SpfResult::PermError => "permerror",
        SpfResult::None => "none",
    }
}

/// `name  expected  got  # reason` lines: the cases mailc answers
/// differently, each with why.
fn known() -> BTreeMap<String, (String, String)> {
    let text = std::fs::read_to_string(root().join("tests/spf_suite/known-differences.txt"))
        .expect("known-differences.txt");
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (case, reason) = line.split_once('#').expect("every entry has a # reason");
        assert!(!reason.trim().is_empty(), "no reason given: {line}");
        let f: Vec<&str> = case.split_whitespace().collect();
        assert_eq!(f.len(), 3, "name expected got: {line}");
        out.insert(f[0].to_string(), (f[1].to_string(), f[2].to_string()));
    }
    out
}

#[test]
#[ignore = "needs python3-spf and python3-yaml (installed by .ci/run)"]
fn rfc7208_test_suite() {
    assert!(
        std::path::Path::new(SUITE).exists(),
        "{SUITE} missing: .ci/run installs python3-spf; this test never skips"
    );
    let out = tool("python3")
        .arg(root().join("tests/spf_suite/convert.py"))
        .arg(SUITE)
        .output()
        .expect("converter runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let scenarios: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut total = 0;
    let mut passed = 0;
    let mut differ: BTreeMap<String, (String, String)> = BTreeMap::new();
    for sc in scenarios.as_array().expect("scenarios") {
        let zones: Vec<(String, String)> = sc["zones"]
            .as_array()
            .expect("zones")
            .iter()
            .map(|z| {
                (
                    z[0].as_str().expect("origin").to_string(),
                    z[1].as_str().expect("text").to_string(),
                )
            })
            .collect();
        let zones: Vec<(&str, String)> =
            zones.iter().map(|(o, t)| (o.as_str(), t.clone())).collect();
        let dns = DnsServer::start(&zones);
        let resolver =
            mailc::dns::resolver::build(&[dns.addr], Duration::from_secs(2)).expect("resolver");
        for t in sc["tests"].as_array().expect("tests") {
            let name = t["name"].as_str().expect("name").to_string();
            let ip: IpAddr = t["host"].as_str().expect("host").parse().expect("ip");
            let helo = t["helo"].as_str().unwrap_or_default();
            let mailfrom = t["mailfrom"].as_str().unwrap_or_default();
            let expected: Vec<String> = t["results"]
                .as_array()
                .expect("results")
                .iter()
                .map(|r| r.as_str().unwrap_or_default().to_ascii_lowercase())
                .collect();
            let spf = rt.block_on(mailc::services::inbound::spf_mail_from(
                &resolver, ip, helo, mailfrom,
            ));
            let got = result_name(spf.result());
            total += 1;
            if expected.iter().any(|e| e == got) {
                passed += 1;
            } else {
                differ.insert(name, (expected.join(","), got.to_string()));
            }
        }
    }
    println!("RFC 7208 test suite: {passed} of {total} cases pass");
    let known = known();
    let mut problems = Vec::new();
    for (name, (expected, got)) in &differ {
        match known.get(name) {
            Some((e, g)) if e == expected && g == got => {}
            _ => problems.push(format!(
                "{name}  {expected}  {got}  (not listed, or listed otherwise)"
            )),
        }
    }
    for name in known.keys() {
        if !differ.contains_key(name) {
            problems.push(format!(
                "{name}: listed in known-differences.txt but passes now: remove it"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
