//! DMARC side by side with an independent implementation: every message of
//! a table of policy/alignment cases goes through `mailc explain --message`
//! and through authheaders (Debian's python3-authheaders: pyspf, dkimpy and
//! its own RFC 7489 DMARC with the Public Suffix List), both asking the same
//! DNS server on loopback. Their `dmarc=` result, `header.from` and
//! `policy.dmarc` must agree. Run by `.ci/run` with `--ignored`.
//!
//! The domains are registrable names under `.com` (served only by the
//! loopback DNS server): `.test` is not in the Public Suffix List, and
//! publicsuffix2 (authheaders' copy) makes `test` itself the organisational
//! domain of every `*.test` name, which would align all of them. They
//! have no hyphen: authheaders 0.15.2 reads the author domain with
//! `@([a-z0-9.]+)` and would cut `a@my-domain.com` to `my`.
//!
//! Where the two legitimately differ, the case is not in the table:
//! authheaders ignores `pct` (it reports `p` whatever the sample), treats a
//! `p=` it cannot read as that text, and never says `temperror`; those are
//! covered by `tests/e2e_inbound.rs` and the unit tests of
//! `mailc::inbound::dmarc`. One case is in the table with its deviation
//! named (`peer_differs`): authheaders applying `sp=` to the organisational
//! domain itself.

mod common;

use std::process::Stdio;

use common::dns_server::DnsServer;
use mail_auth::dkim::generate::DkimKeyPair;

const HELO: &str = "mx.peer.test";

/// The zones: each author domain of a case, its DMARC record(s), SPF only
/// for `bounce.<domain>`, and the DKIM key under every signing domain.
fn zones(key: &str) -> Vec<(&'static str, String)> {
    let dkim = |name: &str| format!("s1.{name} 300 IN TXT \"v=DKIM1; k=ed25519; p={key}\"\n");
    let bounce = "bounce 300 IN TXT \"v=spf1 ip4:127.0.0.1 -all\"\n";
    let dmarc = |txt: &str| format!("_dmarc 300 IN TXT \"{txt}\"\n");
    vec![
        (
            "rejectdmarctest.com.",
            format!(
                "{}{bounce}{}{}",
                dmarc("v=DMARC1; p=reject"),
                dkim("_domainkey"),
                dkim("_domainkey.mail")
            ),
        ),
        (
            "strictdmarctest.com.",
            format!(
                "{}{bounce}{}{}",
                dmarc("v=DMARC1; p=quarantine; adkim=s; aspf=s"),
                dkim("_domainkey"),
                dkim("_domainkey.mail")
            ),
        ),
        (
            "orgdmarctest.com.",
            format!("{}{bounce}", dmarc("v=DMARC1; p=reject; sp=quarantine")),
        ),
        (
            "nonedmarctest.com.",
            format!("{}{bounce}", dmarc("v=DMARC1; p=none")),
        ),
        (
            "twodmarctest.com.",
            format!(
                "{}{}",
                dmarc("v=DMARC1; p=reject"),
                dmarc("v=DMARC1; p=quarantine")
            ),
        ),
        (
            "norecorddmarctest.com.",
            format!("{bounce}{}", dkim("_domainkey")),
        ),
        (
            "co.uk.",
            format!(
                "_dmarc.example 300 IN TXT \"v=DMARC1; p=reject\"\n\
                 evil 300 IN TXT \"v=spf1 ip4:127.0.0.1 -all\"\n{}",
                dkim("_domainkey.evil")
            ),
        ),
        (
            "github.io.",
            format!(
                "_dmarc.alice 300 IN TXT \"v=DMARC1; p=reject\"\n{}",
                dkim("_domainkey.bob")
            ),
        ),
        ("otherdmarctest.com.", dkim("_domainkey")),
    ]
}

struct Case {
    name: &'static str,
    from: &'static str,
    mail_from: &'static str,
    /// The signing domain, if signed.
    d: Option<&'static str>,
    /// The body is changed after signing.
    tampered: bool,
    /// What both must say: the `dmarc=` result and `policy.dmarc`.
    want: (&'static str, Option<&'static str>),
    /// A documented deviation of authheaders: its `policy.dmarc`, and why.
    peer_differs: Option<(&'static str, &'static str)>,
}

/// authheaders 0.15.2 (`dmarc_per_from`) sets its organisational domain to
/// the author domain when the record is found there, and then applies `sp`
/// to it; RFC 7489 §6.6.3 applies `sp` only to subdomains.
const SP_ON_ORG: &str = "authheaders applies sp= to the organisational domain itself";

const CASES: &[Case] = &[
    Case {
        name: "relaxed SPF alignment",
        from: "news@rejectdmarctest.com",
        mail_from: "b@bounce.rejectdmarctest.com",
        d: None,
        tampered: false,
        peer_differs: None,
        want: ("pass", Some("reject")),
    },
    Case {
        name: "DKIM of the author domain",
        from: "news@rejectdmarctest.com",
        mail_from: "x@otherdmarctest.com",
        d: Some("rejectdmarctest.com"),
        tampered: false,
        peer_differs: None,
        want: ("pass", Some("reject")),
    },
    Case {
        name: "DKIM broken in transit",
        from: "news@rejectdmarctest.com",
        mail_from: "x@otherdmarctest.com",
        d: Some("rejectdmarctest.com"),
        tampered: true,
        peer_differs: None,
        want: ("fail", Some("reject")),
    },
    Case {
        name: "relaxed DKIM of a subdomain",
        from: "news@rejectdmarctest.com",
        mail_from: "x@otherdmarctest.com",
        d: Some("mail.rejectdmarctest.com"),
        tampered: false,
        peer_differs: None,
        want: ("pass", Some("reject")),
    },
    Case {
        name: "unaligned DKIM and SPF",
        from: "news@rejectdmarctest.com",
        mail_from: "x@otherdmarctest.com",
        d: Some("otherdmarctest.com"),
        tampered: false,
        peer_differs: None,
        want: ("fail", Some("reject")),
    },
    Case {
        name: "strict: subdomain SPF and DKIM do not align",
        from: "news@strictdmarctest.com",
        mail_from: "b@bounce.strictdmarctest.com",
        d: Some("mail.strictdmarctest.com"),
        tampered: false,
        peer_differs: None,
        want: ("fail", Some("quarantine")),
    },
    Case {
        name: "strict: exact DKIM domain",
        from: "news@strictdmarctest.com",
        mail_from: "x@otherdmarctest.com",
        d: Some("strictdmarctest.com"),
        tampered: false,
        peer_differs: None,
        want: ("pass", Some("quarantine")),
    },
    Case {
        name: "subdomain author: the organisational sp",
        from: "news@news.orgdmarctest.com",
        mail_from: "x@otherdmarctest.com",
        d: None,
        tampered: false,
        peer_differs: None,
        want: ("fail", Some("quarantine")),
    },
    Case {
        name: "subdomain author, aligned SPF of the organisation",
        from: "news@news.orgdmarctest.com",
        mail_from: "b@bounce.orgdmarctest.com",
        d: None,
        tampered: false,
        peer_differs: None,
        want: ("pass", Some("quarantine")),
    },
    Case {
        name: "organisational domain: p",
        from: "ceo@orgdmarctest.com",
        mail_from: "x@otherdmarctest.com",
        d: None,
        tampered: false,
        peer_differs: Some(("quarantine", SP_ON_ORG)),
        want: ("fail", Some("reject")),
    },
    Case {
        name: "p=none",
        from: "a@nonedmarctest.com",
        mail_from: "x@otherdmarctest.com",
        d: None,
        tampered: false,
        peer_differs: None,
        want: ("fail", Some("none")),
    },
    Case {
        name: "two records: no DMARC",
        from: "a@twodmarctest.com",
        mail_from: "x@otherdmarctest.com",
        d: None,
        tampered: false,
        peer_differs: None,
        want: ("none", None),
    },
    Case {
        name: "no record",
        from: "a@norecorddmarctest.com",
        mail_from: "b@bounce.norecorddmarctest.com",
        d: Some("norecorddmarctest.com"),
        tampered: false,
        peer_differs: None,
        want: ("none", None),
    },
    Case {
        name: "public suffix: co.uk neighbours are not aligned",
        from: "ceo@example.co.uk",
        mail_from: "x@evil.co.uk",
        d: Some("evil.co.uk"),
        tampered: false,
        peer_differs: None,
        want: ("fail", Some("reject")),
    },
    Case {
        name: "private suffix: github.io sites are not aligned",
        from: "alice@alice.github.io",
        mail_from: "x@otherdmarctest.com",
        d: Some("bob.github.io"),
        tampered: false,
        peer_differs: None,
        want: ("fail", Some("reject")),
    },
];

fn message(case: &Case, key: &DkimKeyPair) -> String {
    let msg = format!(
        "From: Sender <{}>\r\nTo: alice@example.test\r\nSubject: {}\r\nDate: Thu, 03 Dec 2026 10:00:00 +0000\r\nMessage-ID: <{}@peer.test>\r\n\r\nBody of the case.\r\n",
        case.from,
        case.name,
        case.name.replace(' ', "-").replace([':', ','], "")
    );
    let Some(d) = case.d else {
        return msg;
    };
    let signed = common::inbound::sign_ed25519(key, d, &msg);
    if case.tampered {
        signed.replace("Body of the case.", "Body of the case, changed.")
    } else {
        signed
    }
}

/// `(result, header.from, policy.dmarc)` of the `dmarc=` part of a field.
fn dmarc_part(field: &str) -> (String, String, Option<String>) {
    let start = field
        .find("dmarc=")
        .unwrap_or_else(|| panic!("no dmarc= in {field}"));
    let part = field[start..].split(';').next().unwrap_or_default();
    let result = part["dmarc=".len()..]
        .split(|c: char| c.is_whitespace() || c == '(')
        .next()
        .unwrap_or_default()
        .to_string();
    let prop = |name: &str| {
        part.split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .map(str::to_string)
    };
    (
        result,
        prop("header.from=").unwrap_or_default(),
        prop("policy.dmarc="),
    )
}

#[test]
#[ignore = "needs python3-authheaders (installed by .ci/run)"]
fn dmarc_agrees_with_authheaders() {
    let key = DkimKeyPair::generate_ed25519().expect("key");
    let dns = DnsServer::start(&zones(&key.encoded_public_key()));
    let dir = tempfile::tempdir().expect("tempdir");
    let config =
        common::inbound::explain_config(dir.path(), &dns.addr.to_string(), "    checks #true");
    let script = common::root().join("tests/interop/authheaders_check.py");
    let mut disagreements = Vec::new();
    for case in CASES {
        let msg = message(case, &key);
        let file = dir.path().join("message.eml");
        std::fs::write(&file, &msg).expect("message");
        let mailc = std::process::Command::new(env!("CARGO_BIN_EXE_mailc"))
            .arg("explain")
            .arg(&config)
            .arg("--message")
            .arg(&file)
            .args(["--client-ip", "127.0.0.1", "--helo", HELO])
            .args(["--mail-from", case.mail_from])
            .output()
            .expect("mailc runs");
        let mailc = String::from_utf8_lossy(&mailc.stdout).into_owned();
        let peer = common::tool("/usr/bin/python3")
            .arg(&script)
            .arg(dns.addr.port().to_string())
            .args(["127.0.0.1", HELO, case.mail_from])
            .stdin(std::fs::File::open(&file).expect("message"))
            .stderr(Stdio::inherit())
            .output()
            .expect("authheaders runs");
        assert!(peer.status.success(), "{}: authheaders failed", case.name);
        let peer = String::from_utf8_lossy(&peer.stdout).into_owned();
        let ours = dmarc_part(&mailc);
        let theirs = dmarc_part(&peer);
        let want = (case.want.0.to_string(), case.want.1.map(str::to_string));
        let domain = case
            .from
            .rsplit_once('@')
            .map(|(_, d)| d)
            .unwrap_or_default();
        // authheaders leaves header.from out of `none`; mailc names it.
        assert_eq!(
            (&ours.0, &ours.2),
            (&want.0, &want.1),
            "{}: mailc says {mailc}",
            case.name
        );
        assert_eq!(ours.1, domain, "{}: {mailc}", case.name);
        let expected_peer = match case.peer_differs {
            Some((policy, _why)) => (ours.0.clone(), Some(policy.to_string())),
            None => (ours.0.clone(), ours.2.clone()),
        };
        if (&theirs.0, &theirs.2) != (&expected_peer.0, &expected_peer.1) {
            disagreements.push(format!(
                "{}:\n  mailc       {mailc}\n  authheaders {peer}",
                case.name
            ));
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} of {} cases disagree:\n{}",
        disagreements.len(),
        CASES.len(),
        disagreements.join("\n")
    );
}
