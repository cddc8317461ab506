//! The grammar of mailc's configuration language, one row per node.
//! `ROOT` is the document; everything else hangs below it.
//!
//! Defaults are NOT here: they live in `compile::defaults`, the only place.

use super::schema::{ArgSpec, Args, NodeSpec, PropSpec, Ty};

const fn arg(name: &'static str, ty: Ty, doc: &'static str) -> ArgSpec {
    ArgSpec {
        name,
        ty,
        nullable: false,
        doc,
    }
}

const fn opt(name: &'static str, ty: Ty, doc: &'static str) -> PropSpec {
    PropSpec {
        name,
        ty,
        required: false,
        doc,
    }
}

const fn req(name: &'static str, ty: Ty, doc: &'static str) -> PropSpec {
    PropSpec {
        required: true,
        ..opt(name, ty, doc)
    }
}

/// A node with one required argument and nothing else, appearing at most once.
const fn setting(name: &'static str, args: &'static [ArgSpec], doc: &'static str) -> NodeSpec {
    NodeSpec {
        name,
        doc,
        args: Args {
            fixed: args,
            required: args.len(),
            rest: None,
        },
        props: &[],
        children: &[],
        repeat: false,
        required: false,
    }
}

pub const LISTENER_KINDS: &[&str] = &[
    "smtp",
    "submission",
    "submissions",
    "imap",
    "imaps",
    "pop3",
    "pop3s",
    "lmtp",
    "managesieve",
    "http",
    "https",
];
pub const ACTIONS: &[&str] = &["accept", "junk", "reject"];
pub const DMARC_POLICIES: &[&str] = &["none", "quarantine", "reject"];
pub const ALIGNMENT: &[&str] = &["relaxed", "strict"];
pub const DKIM_ALGORITHMS: &[&str] = &["rsa", "ed25519"];
pub const SPF_ALL: &[&str] = &["fail", "softfail", "neutral"];
pub const MTA_STS_MODES: &[&str] = &["enforce", "testing", "none"];
pub const CASE_POLICIES: &[&str] = &["insensitive", "sensitive"];
pub const LOG_LEVELS: &[&str] = &["error", "warn", "info", "debug", "trace"];
pub const LOG_FORMATS: &[&str] = &["text", "json"];
pub const RELAY_TLS: &[&str] = &["starttls", "implicit"];
pub const ROUTE_TLS: &[&str] = &["opportunistic", "require", "require-verified", "implicit"];
pub const IP_VERSIONS: &[&str] = &["both", "ipv4", "ipv6"];
pub const ACME_CHALLENGES: &[&str] = &["tls-alpn-01", "http-01"];

const COUNT: Ty = Ty::Int {
    min: 1,
    max: 1_000_000,
};
const PORT_COUNT: Ty = Ty::Int {
    min: 1,
    max: 1_000_000,
};

pub static HOSTNAME: NodeSpec = NodeSpec {
    required: true,
    ..setting(
        "hostname",
        &[arg(
            "NAME",
            Ty::Str,
            "fully qualified host name of this server",
        )],
        "The server's own name: SMTP greeting, EHLO, Received headers, MX target.",
    )
};

pub static STATE: NodeSpec = setting(
    "state",
    &[arg("DIR", Ty::Path, "directory for queue, mail and keys")],
    "Where mailc keeps its state: queue/, mail/, dkim/, tls/.",
);

pub static PUBLIC_IP: NodeSpec = NodeSpec {
    name: "public-ip",
    doc: "Public addresses of this host, published as A/AAAA records and in SPF.",
    args: Args {
        fixed: &[],
        required: 0,
        rest: Some((arg("IP", Ty::Ip, "an IPv4 or IPv6 address"), 1)),
    },
    props: &[],
    children: &[],
    repeat: false,
    required: false,
};

pub static INCLUDE: NodeSpec = NodeSpec {
    name: "include",
    doc: "Read more top-level nodes from files; `*` and `?` match within one path component.",
    args: Args {
        fixed: &[arg(
            "PATTERN",
            Ty::Str,
            "path or glob, relative to this file",
        )],
        required: 1,
        rest: None,
    },
    props: &[],
    children: &[],
    repeat: true,
    required: false,
};

pub static TLS: NodeSpec = NodeSpec {
    name: "tls",
    doc: "A TLS certificate. Arguments are the SNI names that select it; a `tls` \
          without names is the default.",
    args: Args {
        fixed: &[],
        required: 0,
        rest: Some((
            arg(
                "SNI-NAME",
                Ty::Str,
                "host name (or `*.domain`) served by it",
            ),
            0,
        )),
    },
    props: &[
        opt("cert", Ty::Path, "PEM certificate chain"),
        opt(
            "key",
            Ty::Path,
            "PEM private key (a secret: read at runtime)",
        ),
        opt(
            "self-signed",
            Ty::Bool,
            "generate a development certificate into <state>/tls/",
        ),
    ],
    children: &[&TLS_ACME],
    repeat: true,
    required: false,
};

pub static TLS_ACME: NodeSpec = NodeSpec {
    name: "acme",
    doc: "Get this certificate from an ACME CA (RFC 8555) and renew it: it covers the \
          hostname, `mta-sts.DOMAIN` for every domain with `mta-sts`, `autoconfig.DOMAIN` \
          and `autodiscover.DOMAIN` for every domain, and the SNI names of the `tls` node. The CA validates by \
          TLS-ALPN-01 (an implicit-TLS listener on port 443) or HTTP-01 (an `http` \
          listener on port 80). Let's Encrypt: \
          https://acme-v02.api.letsencrypt.org/directory (production), \
          https://acme-staging-v02.api.letsencrypt.org/directory (staging).",
    args: Args {
        fixed: &[],
        required: 0,
        rest: None,
    },
    props: &[
        req("directory", Ty::Str, "https URL of the CA's ACME directory"),
        opt(
            "contact",
            Ty::Str,
            "`mailto:` address the CA writes to about expiring certificates",
        ),
        opt(
            "ca-file",
            Ty::Path,
            "PEM root certificate the directory's HTTPS is checked against, instead of the \
             system's roots (a private or test CA)",
        ),
        opt(
            "challenge",
            Ty::Choice(ACME_CHALLENGES),
            "how the CA checks the names: tls-alpn-01 (a TLS connection to port 443, \
             answered by any implicit-TLS listener there) or http-01 (a request to port 80, \
             answered by an `http` listener)",
        ),
    ],
    children: &[],
    repeat: false,
    required: false,
};

pub static LISTEN: NodeSpec = NodeSpec {
    name: "listen",
    doc: "A listening socket. Its kind decides the protocol and the TLS mode: \
          smtp/submission/imap/pop3/managesieve offer STARTTLS, submissions/imaps/pop3s \
          are implicit TLS, lmtp is plain. managesieve (RFC 5804, port 4190) lets users \
          upload and activate their Sieve scripts. https serves the MTA-STS policy and mail \
          client autoconfiguration; http answers ACME HTTP-01 challenges and redirects \
          everything else to https.",
    args: Args {
        fixed: &[
            arg("KIND", Ty::Choice(LISTENER_KINDS), "protocol"),
            arg("ADDRESS", Ty::SocketAddr, "IP:PORT to bind"),
        ],
        required: 2,
        rest: None,
    },
    props: &[
        opt(
            "max-connections",
            PORT_COUNT,
            "connections on this listener at once",
        ),
        opt(
            "max-connections-per-ip",
            PORT_COUNT,
            "connections from one client IP at once",
        ),
        opt(
            "starttls",
            Ty::Bool,
            "offer STARTTLS (smtp, submission, imap, pop3, managesieve)",
        ),
        opt(
            "auth",
            Ty::Bool,
            "offer AUTH on an smtp (port 25) listener, after STARTTLS",
        ),
        opt(
            "insecure-plaintext-auth",
            Ty::Bool,
            "allow passwords over unencrypted connections (never on a network)",
        ),
    ],
    children: &[],
    repeat: true,
    required: false,
};

pub static MX: NodeSpec = NodeSpec {
    name: "mx",
    doc: "An MX host for the domain (default: the server hostname, priority 10).",
    args: Args {
        fixed: &[arg("HOST", Ty::Str, "host name")],
        required: 1,
        rest: None,
    },
    props: &[opt(
        "priority",
        Ty::Int { min: 0, max: 65535 },
        "MX preference (lower is tried first)",
    )],
    children: &[],
    repeat: true,
    required: false,
};

pub static CATCH_ALL: NodeSpec = setting(
    "catch-all",
    &[arg(
        "TARGET",
        Ty::Str,
        "local part or address that gets mail for unknown local parts",
    )],
    "Deliver mail for every unknown local part of this domain to one target.",
);

pub static PLUS_SEPARATOR: NodeSpec = NodeSpec {
    name: "plus-separator",
    doc: "Separator of plus addresses (`alice+news@`); #null turns plus addressing off.",
    args: Args {
        fixed: &[ArgSpec {
            nullable: true,
            ..arg("SEP", Ty::Str, "one character, or #null")
        }],
        required: 1,
        rest: None,
    },
    props: &[],
    children: &[],
    repeat: false,
    required: false,
};

pub static LOCAL_PART_CASE: NodeSpec = setting(
    "local-part-case",
    &[arg("POLICY", Ty::Choice(CASE_POLICIES), "case policy")],
    "Whether `Alice@` and `alice@` are the same recipient.",
);

pub static DKIM: NodeSpec = NodeSpec {
    name: "dkim",
    doc: "A DKIM signing key of the domain; several selectors sign with each.",
    args: Args::NONE,
    props: &[
        req(
            "selector",
            Ty::Str,
            "DNS label of the key (`<selector>._domainkey`)",
        ),
        opt("algorithm", Ty::Choice(DKIM_ALGORITHMS), "key algorithm"),
        opt(
            "key",
            Ty::Path,
            "private key file (default <state>/dkim/<domain>/<selector>.key)",
        ),
        opt(
            "generate",
            Ty::Bool,
            "create the key at startup when its file is missing (then publish `mailc dns`); \
             without it a missing key stops `mailc serve`",
        ),
    ],
    children: &[],
    repeat: true,
    required: false,
};

pub static SPF: NodeSpec = NodeSpec {
    name: "spf",
    doc: "The SPF record the domain publishes: mechanisms such as `mx`, \
          `ip4:192.0.2.1`, `include:_spf.example.net`.",
    args: Args {
        fixed: &[],
        required: 0,
        rest: Some((arg("TERM", Ty::Str, "SPF mechanism or modifier"), 0)),
    },
    props: &[opt(
        "all",
        Ty::Choice(SPF_ALL),
        "result for everything else",
    )],
    children: &[],
    repeat: false,
    required: false,
};

pub static DMARC: NodeSpec = NodeSpec {
    name: "dmarc",
    doc: "The DMARC policy the domain publishes at `_dmarc`.",
    args: Args::NONE,
    props: &[
        req("policy", Ty::Choice(DMARC_POLICIES), "p="),
        opt("subdomain-policy", Ty::Choice(DMARC_POLICIES), "sp="),
        opt("rua", Ty::Str, "aggregate report address"),
        opt("ruf", Ty::Str, "failure report address"),
        opt(
            "pct",
            Ty::Int { min: 0, max: 100 },
            "percentage the policy applies to",
        ),
        opt("adkim", Ty::Choice(ALIGNMENT), "DKIM alignment"),
        opt("aspf", Ty::Choice(ALIGNMENT), "SPF alignment"),
    ],
    children: &[],
    repeat: false,
    required: false,
};

pub static MTA_STS: NodeSpec = NodeSpec {
    name: "mta-sts",
    doc: "The MTA-STS policy (RFC 8461) the domain publishes.",
    args: Args::NONE,
    props: &[
        opt("mode", Ty::Choice(MTA_STS_MODES), "policy mode"),
        opt("max-age", Ty::Duration, "how long senders cache the policy"),
    ],
    children: &[],
    repeat: false,
    required: false,
};

pub static TLS_RPT: NodeSpec = NodeSpec {
    name: "tls-rpt",
    doc: "Where TLS reports (RFC 8460) for the domain go: `mailto:` or `https:` URIs.",
    args: Args {
        fixed: &[],
        required: 0,
        rest: Some((arg("URI", Ty::Str, "report URI"), 1)),
    },
    props: &[],
    children: &[],
    repeat: false,
    required: false,
};

pub static MAILBOX_ALIAS: NodeSpec = NodeSpec {
    name: "alias",
    doc: "More addresses that deliver to this mailbox (local parts or addresses in \
          local domains). The mailbox may also send as them.",
    args: Args {
        fixed: &[],
        required: 0,
        rest: Some((arg("ADDRESS", Ty::Str, "local part or address"), 1)),
    },
    props: &[],
    children: &[],
    repeat: true,
    required: false,
};

pub static SEND_AS: NodeSpec = NodeSpec {
    name: "send-as",
    doc: "Further sender addresses this mailbox may use (`*@domain` for a whole domain).",
    args: Args {
        fixed: &[],
        required: 0,
        rest: Some((arg("ADDRESS", Ty::Str, "address or *@domain"), 1)),
    },
    props: &[],
    children: &[],
    repeat: true,
    required: false,
};

pub static MAILBOX: NodeSpec = NodeSpec {
    name: "mailbox",
    doc: "A mailbox: a login and a Maildir.",
    args: Args {
        fixed: &[arg("LOCAL-PART", Ty::Str, "the part before @")],
        required: 1,
        rest: None,
    },
    props: &[
        opt(
            "password",
            Ty::Str,
            "password hash (argon2id, {SHA512-CRYPT}, {BLF-CRYPT}), never plaintext",
        ),
        opt(
            "password-file",
            Ty::Path,
            "file holding the password hash (a secret: read at runtime)",
        ),
        opt("quota", Ty::Size, "storage quota"),
        opt("disabled", Ty::Bool, "refuse mail and logins"),
        opt(
            "sieve",
            Ty::Path,
            "the mailbox's own Sieve script (instead of one uploaded with ManageSieve)",
        ),
    ],
    children: &[&MAILBOX_ALIAS, &SEND_AS],
    repeat: true,
    required: false,
};

pub static ALIAS_TO: NodeSpec = NodeSpec {
    name: "to",
    doc: "Targets of the alias: local parts of this domain or full addresses.",
    args: Args {
        fixed: &[],
        required: 0,
        rest: Some((arg("TARGET", Ty::Str, "local part or address"), 1)),
    },
    props: &[],
    children: &[],
    repeat: true,
    required: false,
};

pub static ALIAS: NodeSpec = NodeSpec {
    name: "alias",
    doc: "An address that forwards to other addresses, local or remote.",
    args: Args {
        fixed: &[arg("LOCAL-PART", Ty::Str, "the part before @")],
        required: 1,
        rest: None,
    },
    props: &[opt(
        "to",
        Ty::Str,
        "a single target (local part or address)",
    )],
    children: &[&ALIAS_TO],
    repeat: true,
    required: false,
};

pub static DOMAIN: NodeSpec = NodeSpec {
    name: "domain",
    doc: "A domain this server receives mail for.",
    args: Args {
        fixed: &[arg("NAME", Ty::Str, "domain name (IDNA allowed)")],
        required: 1,
        rest: None,
    },
    props: &[],
    children: &[
        &MX,
        &CATCH_ALL,
        &PLUS_SEPARATOR,
        &LOCAL_PART_CASE,
        &DKIM,
        &SPF,
        &DMARC,
        &MTA_STS,
        &TLS_RPT,
        &MAILBOX,
        &ALIAS,
        &DOMAIN_SIEVE,
        &DOMAIN_SCAN,
    ],
    repeat: true,
    required: false,
};

pub static TRUSTED_NETWORKS: NodeSpec = NodeSpec {
    name: "trusted-networks",
    doc: "Clients in these networks may relay without authentication. Nothing, \
          not even 127.0.0.1, is trusted unless listed.",
    args: Args {
        fixed: &[],
        required: 0,
        rest: Some((arg("NETWORK", Ty::Network, "IP or IP/PREFIX"), 1)),
    },
    props: &[],
    children: &[],
    repeat: false,
    required: false,
};

pub static DANE: NodeSpec = setting(
    "dane",
    &[arg("ENABLE", Ty::Bool, "#true to publish TLSA records")],
    "DANE for mail to us (RFC 7672): `mailc dns` adds `_25._tcp.<hostname>` TLSA 3 1 1 \
     records for the key of the certificate served on port 25 and for the next key \
     (kept in <state>/tls/, pre-published for the rollover); `mailc plan` checks them \
     and shows the rollover's state. Useful only in a DNSSEC-signed zone.",
);

pub static INSECURE_OPEN_RELAY: NodeSpec = setting(
    "insecure-open-relay",
    &[arg("ENABLE", Ty::Bool, "#true to accept the risk")],
    "Accept a configuration that lets unauthenticated strangers relay. Almost \
     certainly a mistake: spammers find open relays within hours.",
);

macro_rules! value_node {
    ($ident:ident, $name:literal, $ty:expr, $doc:literal) => {
        pub static $ident: NodeSpec = setting($name, &[arg("VALUE", $ty, $doc)], $doc);
    };
}

value_node!(
    MAX_MESSAGE_SIZE,
    "max-message-size",
    Ty::Size,
    "Largest message accepted (SIZE)."
);
value_node!(
    MAX_RECIPIENTS,
    "max-recipients",
    COUNT,
    "Most recipients per message."
);

pub const DNS_ERROR_ACTIONS: &[&str] = &["tempfail", "accept"];

value_node!(
    INBOUND_DNS_ERROR,
    "dns-error",
    Ty::Choice(DNS_ERROR_ACTIONS),
    "When the From: domain's DMARC policy cannot be looked up for now: tempfail (451, the sender retries; default) or accept."
);

value_node!(
    INBOUND_CHECKS,
    "checks",
    Ty::Bool,
    "Check SPF, DKIM, DMARC, ARC and iprev of mail from other servers and add Authentication-Results (default #true; turn off only behind a gateway that checks)."
);

pub static INBOUND_SPF: NodeSpec = NodeSpec {
    name: "spf",
    doc: "What to do with mail whose SPF check fails.",
    args: Args::NONE,
    props: &[
        opt("fail", Ty::Choice(ACTIONS), "on SPF fail"),
        opt("softfail", Ty::Choice(ACTIONS), "on SPF softfail"),
    ],
    children: &[],
    repeat: false,
    required: false,
};

pub static INBOUND_DKIM: NodeSpec = NodeSpec {
    name: "dkim",
    doc: "What to do with mail whose DKIM signature fails.",
    args: Args::NONE,
    props: &[opt("fail", Ty::Choice(ACTIONS), "on DKIM fail")],
    children: &[],
    repeat: false,
    required: false,
};

pub static INBOUND_DMARC_REPORTS: NodeSpec = NodeSpec {
    name: "reports",
    doc: "Send DMARC aggregate reports (RFC 7489 §7.2) about the mail received to the `rua` of each sending domain that asks (off unless present).",
    args: Args::NONE,
    props: &[
        req(
            "from",
            Ty::Str,
            "sender of the reports, an address in one of our domains (DKIM-signed with its key)",
        ),
        opt(
            "interval",
            Ty::Duration,
            "reporting period, aligned to multiples of it since the epoch (a day: UTC midnight)",
        ),
        opt(
            "max-size",
            Ty::Size,
            "largest report mail sent; larger ones are dropped and logged",
        ),
        opt(
            "org-name",
            Ty::Str,
            "`org_name` in the reports (default: the domain of `from`)",
        ),
    ],
    children: &[],
    repeat: false,
    required: false,
};

pub static INBOUND_DMARC: NodeSpec = NodeSpec {
    name: "dmarc",
    doc: "What to do when the sender's DMARC policy says reject or quarantine; `reports` below sends aggregate reports.",
    args: Args::NONE,
    props: &[
        opt("reject", Ty::Choice(ACTIONS), "when p=reject fails"),
        opt("quarantine", Ty::Choice(ACTIONS), "when p=quarantine fails"),
        opt(
            "own",
            Ty::Choice(ACTIONS),
            "when mail from one of our own domains fails DMARC, whatever policy it publishes",
        ),
    ],
    children: &[&INBOUND_DMARC_REPORTS],
    repeat: false,
    required: false,
};

pub static DNSBL_ZONE: NodeSpec = NodeSpec {
    name: "zone",
    doc: "A DNS blocklist zone: `<reversed client IP>.<zone>` is looked up (A, then TXT for the reason).",
    args: Args {
        fixed: &[arg(
            "ZONE",
            Ty::Str,
            "DNS zone of the list, e.g. \"zen.spamhaus.org\"",
        )],
        required: 1,
        rest: None,
    },
    props: &[
        opt(
            "weight",
            Ty::Int {
                min: -100,
                max: 100,
            },
            "points a listing here counts toward the threshold (default 1; negative for allow lists)",
        ),
        opt(
            "answer",
            Ty::Str,
            "answers that mean listed: addresses or last-octet ranges, comma-separated (\"127.0.0.2,127.0.0.4-11\"); default any 127.0.0.0/8 answer but the error codes",
        ),
    ],
    children: &[],
    repeat: true,
    required: false,
};

pub static INBOUND_DNSBL: NodeSpec = NodeSpec {
    name: "dnsbl",
    doc: "DNS blocklists asked about each client of an MX listener at connect (off unless given). \
          A client whose listing zones' weights reach the threshold gets 554 5.7.1 at RCPT \
          (postmaster@ our domains still accepted); lookups that fail or time out count as not listed.",
    args: Args::NONE,
    props: &[
        opt(
            "threshold",
            Ty::Int { min: 1, max: 1000 },
            "points that make a client listed (default 1)",
        ),
        opt(
            "timeout",
            Ty::Duration,
            "bound on all lookups of one connection (default 5s)",
        ),
    ],
    children: &[&DNSBL_ZONE],
    repeat: false,
    required: false,
};

pub static INBOUND_GREYLIST: NodeSpec = NodeSpec {
    name: "greylist",
    doc: "Greylisting at RCPT (off unless given): the first attempt of an unknown (client /24 or /64, \
          sender, recipient) triplet gets 451 4.7.1; a retry between `delay` and `expire` later is \
          accepted and the triplet remembered for `keep`. State is kept in <state>/greylist/.",
    args: Args::NONE,
    props: &[
        opt(
            "delay",
            Ty::Duration,
            "how long a retry must wait (default 5m)",
        ),
        opt(
            "expire",
            Ty::Duration,
            "how long after the first attempt a retry is still accepted (default 1d)",
        ),
        opt(
            "keep",
            Ty::Duration,
            "how long a passed triplet stays accepted after its last use (default 36d)",
        ),
        opt(
            "max-entries",
            COUNT,
            "triplets remembered at most (default 100000); the oldest go first",
        ),
        opt(
            "whitelist-after",
            Ty::Int {
                min: 0,
                max: 1_000_000,
            },
            "a client network with this many passed triplets is not greylisted any more (default 5; 0 never)",
        ),
    ],
    children: &[],
    repeat: false,
    required: false,
};

pub static INBOUND: NodeSpec = NodeSpec {
    name: "inbound",
    doc: "Policy for mail arriving from other servers (MX).",
    args: Args::NONE,
    props: &[],
    children: &[
        &MAX_MESSAGE_SIZE,
        &MAX_RECIPIENTS,
        &INBOUND_CHECKS,
        &INBOUND_DNS_ERROR,
        &INBOUND_SPF,
        &INBOUND_DKIM,
        &INBOUND_DMARC,
        &INBOUND_DNSBL,
        &INBOUND_GREYLIST,
    ],
    repeat: false,
    required: false,
};

pub const SCAN_FAILURE: &[&str] = &["tempfail", "accept"];

value_node!(
    SCAN_SPAMD,
    "spamd",
    Ty::Str,
    "SpamAssassin's spamd: \"IP:PORT\" or the path of its Unix socket."
);
value_node!(
    SCAN_RSPAMD,
    "rspamd",
    Ty::Str,
    "rspamd's normal worker: \"http://IP:PORT\" (or \"IP:PORT\") or the path of its Unix socket."
);
value_node!(
    SCAN_CLAMD,
    "clamd",
    Ty::Str,
    "ClamAV's clamd: \"IP:PORT\" or the path of its Unix socket (LocalSocket, e.g. /run/clamav/clamd.ctl)."
);
value_node!(
    SCAN_TIMEOUT,
    "timeout",
    Ty::Duration,
    "Bound on scanning one message, all scanners together (default 30s); then `on-failure` applies."
);
value_node!(
    SCAN_MAX_SIZE,
    "max-size",
    Ty::Size,
    "Larger messages are not scanned; they get `X-Spam-Scanned: skipped` (default 10MiB)."
);
value_node!(
    SCAN_ON_FAILURE,
    "on-failure",
    Ty::Choice(SCAN_FAILURE),
    "A scanner that is down, slow or answers garbage: tempfail (451, the sender retries; default) or accept (delivered, marked unscanned)."
);
value_node!(
    SCAN_SUBMISSION,
    "submission",
    Ty::Bool,
    "Scan mail from logged-in users and trusted networks too (outbound spam from a stolen account; default #false)."
);

value_node!(
    SCAN_DELIVER,
    "deliver",
    Ty::Bool,
    "Scan messages that enter through `mailc deliver` (the MDA behind another MTA or fetchmail; default #true): \
     a refusal is exit code 77 with the reason for the MTA's bounce, a failure under on-failure \"tempfail\" exit 75."
);

pub static SCAN_SPAM: NodeSpec = NodeSpec {
    name: "spam",
    doc: "What spamd's score means (rspamd's own action is used for rspamd: reject → 550, \
          soft reject and greylist → 451, add header → Junk, rewrite subject → Junk with rspamd's Subject).",
    args: Args::NONE,
    props: &[
        opt(
            "junk",
            Ty::Score,
            "from this score on, the message goes to the Junk folder and is flagged X-Spam-Flag: YES (default 5)",
        ),
        opt(
            "reject",
            Ty::Score,
            "from this score on, 550 5.7.1 at the end of DATA (default 15)",
        ),
    ],
    children: &[],
    repeat: false,
    required: false,
};

pub const VIRUS_ACTIONS: &[&str] = &["reject", "discard", "junk", "accept"];

value_node!(
    SCAN_VIRUS,
    "virus",
    Ty::Choice(VIRUS_ACTIONS),
    "A message clamd finds infected: reject (554 5.7.1; default), discard (accepted and dropped, logged), junk (quarantined in the Junk folder), or accept (delivered with X-Virus-Status: Infected)."
);

value_node!(
    SCAN_REJECT_SPAM,
    "reject-spam",
    Ty::Bool,
    "Spam at the reject level (spamd's score over reject=, rspamd's reject and soft reject actions) is refused with 550 5.7.1 (#true, default) or delivered to the Junk folder (#false)."
);

pub static DOMAIN_SCAN: NodeSpec = NodeSpec {
    name: "scan",
    doc: "This domain's own scanning policy, replacing the server's `scan` policy for its \
          recipients (the scanners are the server's). When one message has recipients whose \
          policies disagree, it is refused only if every recipient's policy refuses it; \
          the others' copies go to Junk.",
    args: Args::NONE,
    props: &[],
    children: &[&SCAN_SPAM, &SCAN_REJECT_SPAM, &SCAN_VIRUS],
    repeat: false,
    required: false,
};

pub static SCAN_LEARN: NodeSpec = NodeSpec {
    name: "learn",
    doc: "Learning from users: a message moved into the Junk folder over IMAP (COPY, MOVE, APPEND) \
          is sent to spamd (`TELL`, spamd needs --allow-tell) and rspamd (its controller's `/learnspam`) \
          as spam, one moved out of Junk (except to Trash) as ham; in the background, never \
          delaying the IMAP command (default #true when spamd or rspamd is configured).",
    args: Args {
        fixed: &[arg("ON", Ty::Bool, "#false turns learning off")],
        required: 1,
        rest: None,
    },
    props: &[
        opt(
            "rspamd-controller",
            Ty::Str,
            "rspamd's controller worker: \"http://IP:PORT\" or a Unix socket path (default: rspamd's address with port 11334)",
        ),
        opt(
            "password-file",
            Ty::Path,
            "file holding the controller's password (not needed from a `secure_ip` such as 127.0.0.1)",
        ),
        opt(
            "spamd-per-user",
            Ty::Bool,
            "tell spamd the mailbox address as its user (per-user Bayes with --virtual-config-dir; default #false)",
        ),
    ],
    children: &[],
    repeat: false,
    required: false,
};

pub static SCAN: NodeSpec = NodeSpec {
    name: "scan",
    doc: "Spam and virus scanners asked at the end of DATA, before the 250 (off unless given): \
          mail from other servers, and submissions with `submission #true`.",
    args: Args::NONE,
    props: &[],
    children: &[
        &SCAN_SPAMD,
        &SCAN_RSPAMD,
        &SCAN_CLAMD,
        &SCAN_TIMEOUT,
        &SCAN_MAX_SIZE,
        &SCAN_ON_FAILURE,
        &SCAN_SUBMISSION,
        &SCAN_DELIVER,
        &SCAN_SPAM,
        &SCAN_REJECT_SPAM,
        &SCAN_VIRUS,
        &SCAN_LEARN,
    ],
    repeat: false,
    required: false,
};

value_node!(
    AUTH_REQUIRED,
    "auth-required",
    Ty::Bool,
    "Submission needs AUTH (turning it off makes an open relay)."
);
value_node!(
    SENDER_MUST_OWN,
    "sender-must-own",
    Ty::Bool,
    "Envelope and From: addresses must belong to the logged-in mailbox."
);
value_node!(
    STRIP_CLIENT_IP,
    "strip-client-ip",
    Ty::Bool,
    "Privacy: leave the client's IP and user agent out of submitted mail."
);

pub static SUBMISSION: NodeSpec = NodeSpec {
    name: "submission",
    doc: "Policy for mail submitted by users (ports 587 and 465).",
    args: Args::NONE,
    props: &[],
    children: &[
        &AUTH_REQUIRED,
        &SENDER_MUST_OWN,
        &STRIP_CLIENT_IP,
        &MAX_MESSAGE_SIZE,
        &MAX_RECIPIENTS,
    ],
    repeat: false,
    required: false,
};

value_node!(
    LIMIT_MAX_CONNECTIONS,
    "max-connections",
    PORT_COUNT,
    "Connections at once, all listeners together."
);
value_node!(
    LIMIT_MAX_CONNECTIONS_PER_IP,
    "max-connections-per-ip",
    PORT_COUNT,
    "Connections at once from one client IP."
);
value_node!(
    LIMIT_MAX_ERRORS,
    "max-errors",
    COUNT,
    "Protocol errors before a session is closed."
);
value_node!(
    LIMIT_AUTH_FAILURES,
    "auth-failures",
    COUNT,
    "Failed logins per client IP (and per user) before logins are refused for a while."
);
value_node!(
    LIMIT_AUTH_LOCKOUT,
    "auth-lockout",
    Ty::Duration,
    "How long logins stay refused after too many failures."
);

pub static LIMITS: NodeSpec = NodeSpec {
    name: "limits",
    doc: "Connection and abuse limits.",
    args: Args::NONE,
    props: &[],
    children: &[
        &LIMIT_MAX_CONNECTIONS,
        &LIMIT_MAX_CONNECTIONS_PER_IP,
        &LIMIT_MAX_ERRORS,
        &LIMIT_AUTH_FAILURES,
        &LIMIT_AUTH_LOCKOUT,
    ],
    repeat: false,
    required: false,
};

value_node!(
    T_SMTP_COMMAND,
    "smtp-command",
    Ty::Duration,
    "Waiting for the next SMTP command (RFC 5321 §4.5.3.2: at least 5m)."
);
value_node!(
    T_SMTP_DATA,
    "smtp-data",
    Ty::Duration,
    "Waiting for the next block of message data (RFC 5321: at least 3m)."
);
value_node!(
    T_IMAP,
    "imap",
    Ty::Duration,
    "An IMAP session without activity (RFC 9051: at least 30m)."
);
value_node!(
    T_IMAP_IDLE,
    "imap-idle",
    Ty::Duration,
    "An IMAP session in IDLE (clients re-issue IDLE every 29m)."
);
value_node!(
    T_POP3,
    "pop3",
    Ty::Duration,
    "A POP3 session without activity (RFC 1939: at least 10m)."
);
value_node!(
    T_MANAGESIEVE,
    "managesieve",
    Ty::Duration,
    "A ManageSieve session without activity."
);
value_node!(
    T_HTTP,
    "http",
    Ty::Duration,
    "An HTTP(S) client's time to send one request, idle time between requests included."
);
value_node!(
    T_SHUTDOWN,
    "shutdown-grace",
    Ty::Duration,
    "How long sessions may finish after SIGTERM."
);

pub static TIMEOUTS: NodeSpec = NodeSpec {
    name: "timeouts",
    doc: "Inactivity timeouts.",
    args: Args::NONE,
    props: &[],
    children: &[
        &T_SMTP_COMMAND,
        &T_SMTP_DATA,
        &T_IMAP,
        &T_IMAP_IDLE,
        &T_POP3,
        &T_MANAGESIEVE,
        &T_HTTP,
        &T_SHUTDOWN,
    ],
    repeat: false,
    required: false,
};

pub static RELAY_HOST: NodeSpec = NodeSpec {
    name: "relay-host",
    doc: "Send all outgoing mail through this smarthost instead of MX lookups.",
    args: Args {
        fixed: &[arg("HOST:PORT", Ty::Str, "smarthost name and port")],
        required: 1,
        rest: None,
    },
    props: &[
        opt("tls", Ty::Choice(RELAY_TLS), "how to secure the connection"),
        opt("user", Ty::Str, "login at the smarthost"),
        opt(
            "password-file",
            Ty::Path,
            "file with the smarthost password (a secret: read at runtime)",
        ),
    ],
    children: &[],
    repeat: false,
    required: false,
};

pub static RESOLVER: NodeSpec = NodeSpec {
    name: "resolver",
    doc: "A DNS server for every lookup mailc makes (MX, TXT, TLSA, PTR). Several may be \
          given; without any, the system's resolvers (/etc/resolv.conf) are used.",
    args: Args {
        fixed: &[arg(
            "IP:PORT",
            Ty::SocketAddr,
            "address of a recursive DNS server",
        )],
        required: 1,
        rest: None,
    },
    props: &[],
    children: &[],
    repeat: true,
    required: false,
};

pub static OUTBOUND_RETRY: NodeSpec = NodeSpec {
    name: "retry",
    doc: "Waits between delivery attempts of a deferred message; the last one repeats.",
    args: Args {
        fixed: &[],
        required: 0,
        rest: Some((arg("WAIT", Ty::Duration, "time until the next attempt"), 1)),
    },
    props: &[],
    children: &[],
    repeat: false,
    required: false,
};

value_node!(
    OUTBOUND_EXPIRE,
    "expire",
    Ty::Duration,
    "How long a message is retried before it is bounced."
);

pub static OUTBOUND_DELAY_WARNING: NodeSpec = NodeSpec {
    name: "delay-warning",
    doc: "When the sender is told that a message is still not delivered (`#null`: never).",
    args: Args {
        fixed: &[ArgSpec {
            nullable: true,
            ..arg("AFTER", Ty::Duration, "time since the message arrived")
        }],
        required: 1,
        rest: None,
    },
    props: &[],
    children: &[],
    repeat: false,
    required: false,
};

value_node!(
    OUTBOUND_PORT,
    "port",
    Ty::Int { min: 1, max: 65535 },
    "Port of remote MX hosts (25; another value only for tests and private networks)."
);
value_node!(
    OUTBOUND_IP_VERSION,
    "ip-version",
    Ty::Choice(IP_VERSIONS),
    "Which address families outgoing connections use."
);
value_node!(
    OUTBOUND_MAX_CONNECTIONS,
    "max-connections",
    COUNT,
    "Most outgoing SMTP connections at once."
);
value_node!(
    OUTBOUND_MAX_PER_DESTINATION,
    "max-connections-per-destination",
    COUNT,
    "Most outgoing connections at once to one destination (domain or route)."
);
value_node!(
    OUTBOUND_MAX_MESSAGES,
    "max-messages-per-connection",
    COUNT,
    "Most messages sent over one outgoing connection before it is closed."
);

value_node!(
    OUTBOUND_DANE,
    "dane",
    Ty::Bool,
    "Look up TLSA records of recipients' MX hosts and require the TLS they pin (RFC 7672; default #true). Turn off only on a host without a local validating resolver, where the lookups would only add latency."
);
value_node!(
    OUTBOUND_MTA_STS,
    "mta-sts",
    Ty::Bool,
    "Fetch and honour recipients' MTA-STS policies (RFC 8461; default #true)."
);

pub static OUTBOUND_CA_FILE: NodeSpec = NodeSpec {
    name: "ca-file",
    doc: "Extra trust anchors (PEM) for verifying remote servers, besides the system's.",
    args: Args {
        fixed: &[arg("PATH", Ty::Path, "PEM file of CA certificates")],
        required: 1,
        rest: None,
    },
    props: &[],
    children: &[],
    repeat: true,
    required: false,
};

pub static OUTBOUND_TLS_REPORTS: NodeSpec = NodeSpec {
    name: "tls-reports",
    doc: "Send TLS reports (RFC 8460) about our outbound TLS sessions to the `rua` each recipient domain publishes at `_smtp._tls.<domain>` (off unless present).",
    args: Args::NONE,
    props: &[
        req(
            "from",
            Ty::Str,
            "sender of the reports, an address in one of our domains (DKIM-signed with its key)",
        ),
        opt(
            "interval",
            Ty::Duration,
            "reporting period, aligned to multiples of it since the epoch (a day: UTC midnight)",
        ),
        opt(
            "max-size",
            Ty::Size,
            "largest report sent; larger ones are dropped and logged",
        ),
        opt(
            "org-name",
            Ty::Str,
            "`organization-name` in the reports (default: the domain of `from`)",
        ),
    ],
    children: &[],
    repeat: false,
    required: false,
};

pub static OUTBOUND: NodeSpec = NodeSpec {
    name: "outbound",
    doc: "Delivery of mail to other servers: retries, bounces, connection limits.",
    args: Args::NONE,
    props: &[],
    children: &[
        &OUTBOUND_RETRY,
        &OUTBOUND_EXPIRE,
        &OUTBOUND_DELAY_WARNING,
        &OUTBOUND_PORT,
        &OUTBOUND_IP_VERSION,
        &OUTBOUND_MAX_CONNECTIONS,
        &OUTBOUND_MAX_PER_DESTINATION,
        &OUTBOUND_MAX_MESSAGES,
        &OUTBOUND_CA_FILE,
        &OUTBOUND_TLS_REPORTS,
        &OUTBOUND_DANE,
        &OUTBOUND_MTA_STS,
    ],
    repeat: false,
    required: false,
};

pub static ROUTE: NodeSpec = NodeSpec {
    name: "route",
    doc: "How mail for some domains leaves: through a relay host (`via`), or by MX with a \
          TLS policy. `\"*\"` is the default route, `\"*.example.org\"` covers subdomains.",
    args: Args {
        fixed: &[arg(
            "DOMAIN",
            Ty::Str,
            "recipient domain, `*.domain` for its subdomains, or `*` for every domain",
        )],
        required: 1,
        rest: None,
    },
    props: &[
        opt(
            "via",
            Ty::Str,
            "HOST:PORT to hand the mail to instead of the MX hosts",
        ),
        opt("tls", Ty::Choice(ROUTE_TLS), "TLS policy of the connection"),
        opt("user", Ty::Str, "login at the relay host"),
        opt(
            "password-file",
            Ty::Path,
            "file with the relay host password (a secret: read at runtime)",
        ),
        opt(
            "source",
            Ty::Ip,
            "local address outgoing connections of this route use",
        ),
    ],
    children: &[],
    repeat: true,
    required: false,
};

pub static LOG: NodeSpec = NodeSpec {
    name: "log",
    doc: "Logging of `mailc serve`.",
    args: Args::NONE,
    props: &[
        opt("level", Ty::Choice(LOG_LEVELS), "least severe level logged"),
        opt("format", Ty::Choice(LOG_FORMATS), "text or JSON lines"),
    ],
    children: &[],
    repeat: false,
    required: false,
};

pub static AUTH_CACHE: NodeSpec = NodeSpec {
    name: "auth-cache",
    doc: "Remember verified logins for a short while, so that clients logging in for every \
          request (webmail) do not pay a password hash each time. Keyed by a keyed hash of \
          user and password (the password is never stored); failed logins are never cached; \
          emptied on every reload and ignored once a password file changes. On by default.",
    args: Args::NONE,
    props: &[
        opt("enabled", Ty::Bool, "#false turns the cache off"),
        opt(
            "ttl",
            Ty::Duration,
            "how long a verified login is remembered (1s to 1h)",
        ),
        opt("size", COUNT, "most logins remembered at once"),
    ],
    children: &[],
    repeat: false,
    required: false,
};

pub static MANAGESIEVE: NodeSpec = NodeSpec {
    name: "managesieve",
    doc: "Quotas on users' Sieve scripts, as uploaded through a `managesieve` listener \
          (RFC 5804). A script is compiled as delivery compiles it before it is stored: \
          one with an error is refused with its line number, one larger than \
          `sieve { max-script-size }` with (QUOTA/MAXSIZE).",
    args: Args::NONE,
    props: &[opt("max-scripts", COUNT, "scripts one user may store (32)")],
    children: &[],
    repeat: false,
    required: false,
};

/// The document itself.
pub static SIEVE_BEFORE: NodeSpec = NodeSpec {
    name: "before",
    doc: "A Sieve script run before the user's own (repeatable; run in order). \
          Compiled by `mailc check`: an error points into the script.",
    args: Args {
        fixed: &[arg("PATH", Ty::Path, "the script file")],
        required: 1,
        rest: None,
    },
    props: &[],
    children: &[],
    repeat: true,
    required: false,
};

pub static SIEVE_AFTER: NodeSpec = NodeSpec {
    name: "after",
    doc: "A Sieve script run after the user's own while the message is still \
          kept (repeatable; run in order).",
    args: Args {
        fixed: &[arg("PATH", Ty::Path, "the script file")],
        required: 1,
        rest: None,
    },
    props: &[],
    children: &[],
    repeat: true,
    required: false,
};

value_node!(
    SIEVE_GLOBAL_DIR,
    "global-dir",
    Ty::Path,
    "Directory of the scripts `include :global \"NAME\"` reads (NAME.sieve)."
);
value_node!(
    SIEVE_USER_SCRIPTS,
    "user-scripts",
    Ty::Bool,
    "Run the script each user activated with ManageSieve (default true)."
);
value_node!(
    SIEVE_CPU_LIMIT,
    "cpu-limit",
    COUNT,
    "Instructions one script may execute per message before it is stopped and the message kept (default 100000)."
);
value_node!(
    SIEVE_MAX_REDIRECTS,
    "max-redirects",
    Ty::Int { min: 0, max: 64 },
    "`redirect`s one message may cause (default 4)."
);
value_node!(
    SIEVE_MAX_SCRIPT_SIZE,
    "max-script-size",
    Ty::Size,
    "Largest script, in the config or uploaded (default 256KiB)."
);
value_node!(
    SIEVE_VACATION_MIN,
    "vacation-min-period",
    Ty::Duration,
    "Shortest period between two vacation replies to one sender a script may ask for (default 1d)."
);

pub static SIEVE: NodeSpec = NodeSpec {
    name: "sieve",
    doc: "Sieve filtering at local delivery (RFC 5228): the admin's scripts around \
          each user's, and the interpreter's limits.",
    args: Args::NONE,
    props: &[],
    children: &[
        &SIEVE_BEFORE,
        &SIEVE_AFTER,
        &SIEVE_GLOBAL_DIR,
        &SIEVE_USER_SCRIPTS,
        &SIEVE_CPU_LIMIT,
        &SIEVE_MAX_REDIRECTS,
        &SIEVE_MAX_SCRIPT_SIZE,
        &SIEVE_VACATION_MIN,
    ],
    repeat: false,
    required: false,
};

pub static DOMAIN_SIEVE: NodeSpec = NodeSpec {
    name: "sieve",
    doc: "Sieve scripts for this domain's mailboxes: `before` ones run after the \
          server's `before` scripts, `after` ones before the server's `after` scripts.",
    args: Args::NONE,
    props: &[],
    children: &[&SIEVE_BEFORE, &SIEVE_AFTER],
    repeat: false,
    required: false,
};

pub static ROOT: NodeSpec = NodeSpec {
    name: "(document)",
    doc: "A mailc configuration.",
    args: Args::NONE,
    props: &[],
    children: &[
        &HOSTNAME,
        &STATE,
        &PUBLIC_IP,
        &INCLUDE,
        &LOG,
        &TLS,
        &DANE,
        &LISTEN,
        &DOMAIN,
        &TRUSTED_NETWORKS,
        &INSECURE_OPEN_RELAY,
        &INBOUND,
        &SCAN,
        &SUBMISSION,
        &LIMITS,
        &AUTH_CACHE,
        &MANAGESIEVE,
        &TIMEOUTS,
        &RELAY_HOST,
        &RESOLVER,
        &OUTBOUND,
        &ROUTE,
        &SIEVE,
    ],
    repeat: false,
    required: true,
};
