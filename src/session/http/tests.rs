//! The router over compiled tables: each site and path, methods, hosts
//! that are not ours, the redirect on plain HTTP, and malformed queries
//! and autodiscover bodies (answered with 400/404, never a panic).

use std::sync::LazyLock;

use super::*;
use crate::compile::{Options, compile_str};

fn tables(listen: &str) -> Tables {
    let text = format!(
        "hostname \"mail.example.test\"\nstate \"/nonexistent-mailc-test\"\ntls self-signed=#true\n{listen}\n\
         domain \"example.test\" {{\n dkim selector=\"s\"\n dmarc policy=\"none\"\n mta-sts mode=\"enforce\" max-age=\"1d\"\n mailbox \"alice\"\n}}\n\
         domain \"example.org\" {{\n dkim selector=\"s\"\n dmarc policy=\"none\"\n}}\n"
    );
    let out = compile_str(
        "t.kdl",
        std::path::Path::new("/nonexistent-mailc-test"),
        &text,
        Options { offline: true },
    );
    out.compiled.expect("test config compiles").tables
}

static FULL: LazyLock<Tables> = LazyLock::new(|| {
    tables(
        "listen \"https\" \"127.0.0.1:8443\"\nlisten \"http\" \"127.0.0.1:8080\"\n\
         listen \"imap\" \"127.0.0.1:143\"\nlisten \"imaps\" \"127.0.0.1:993\"\n\
         listen \"pop3\" \"127.0.0.1:110\"\nlisten \"submission\" \"127.0.0.1:587\"",
    )
});
static HTTP_ONLY: LazyLock<Tables> = LazyLock::new(|| {
    tables(
        "listen \"http\" \"127.0.0.1:80\"\nlisten \"imaps\" \"127.0.0.1:993\"\nlisten \"submissions\" \"127.0.0.1:465\"",
    )
});
static PLAINTEXT_ONLY: LazyLock<Tables> = LazyLock::new(|| {
    tables(
        "listen \"https\" \"127.0.0.1:443\"\n\
         listen \"imap\" \"127.0.0.1:143\" starttls=#false insecure-plaintext-auth=#true\n\
         listen \"submission\" \"127.0.0.1:587\" starttls=#false insecure-plaintext-auth=#true",
    )
});

fn get<'a>(host: &'a str, path: &'a str, query: Option<&'a str>) -> Request<'a> {
    Request {
        method: Method::Get,
        host: Some(host),
        path,
        query,
        body: b"",
        secure: true,
    }
}

fn respond(t: &Tables, r: &Request<'_>) -> Response {
    match route(t, r) {
        Outcome::Respond(r) => r,
        other => panic!("expected a response, got {other:?}"),
    }
}

fn text(r: &Response) -> &str {
    std::str::from_utf8(&r.body).expect("utf-8")
}

#[test]
fn mta_sts_policy_is_what_mailc_dns_prints() {
    let r = respond(&FULL, &get("mta-sts.example.test", MTA_STS_PATH, None));
    assert_eq!(r.status, 200);
    assert_eq!(r.content_type, "text/plain; charset=utf-8");
    let wanted = crate::dns::mta_sts_policy(&FULL.domains["example.test"]).expect("policy");
    assert_eq!(text(&r), wanted);
    assert!(text(&r).starts_with("version: STSv1\nmode: enforce\n"));
    // Host names are case-insensitive, may carry a port and a final dot.
    let r = respond(&FULL, &get("MTA-STS.Example.Test.:443", MTA_STS_PATH, None));
    assert_eq!(r.status, 200);
    // A domain without a policy has no mta-sts site.
    let r = respond(&FULL, &get("mta-sts.example.org", MTA_STS_PATH, None));
    assert_eq!(r.status, 404);
    // Other paths and methods on the policy host.
    assert_eq!(
        respond(&FULL, &get("mta-sts.example.test", "/", None)).status,
        404
    );
    let mut post = get("mta-sts.example.test", MTA_STS_PATH, None);
    post.method = Method::Post;
    let r = respond(&FULL, &post);
    assert_eq!(r.status, 405);
    assert_eq!(r.headers, vec![("allow", "GET, HEAD".to_string())]);
}

#[test]
fn unknown_hosts_and_paths_are_404() {
    for host in [
        "evil.example",
        "mta-sts.evil.example",
        "autoconfig.evil.example",
        "",
    ] {
        let r = respond(&FULL, &get(host, MTA_STS_PATH, None));
        assert_eq!(r.status, 404, "{host}");
        let r = respond(&FULL, &get(host, "/mail/config-v1.1.xml", None));
        assert_eq!(r.status, 404, "{host}");
    }
    let mut no_host = get("x", "/mail/config-v1.1.xml", None);
    no_host.host = None;
    assert_eq!(respond(&FULL, &no_host).status, 404);
    for path in ["/", "/mail/", "/../etc/passwd", "/mail/config-v1.1.xml/x"] {
        assert_eq!(
            respond(&FULL, &get("autoconfig.example.test", path, None)).status,
            404,
            "{path}"
        );
    }
}

#[test]
fn thunderbird_offers_implicit_tls_first_and_only_existing_listeners() {
    for (host, path) in [
        ("autoconfig.example.test", THUNDERBIRD_PATHS[0]),
        ("example.test", THUNDERBIRD_PATHS[1]),
    ] {
        let r = respond(
            &FULL,
            &get(host, path, Some("emailaddress=alice%40example.test")),
        );
        assert_eq!(r.status, 200);
        assert_eq!(r.content_type, "application/xml; charset=utf-8");
        let x = text(&r);
        assert!(x.contains("<domain>example.test</domain>"), "{x}");
        assert!(!x.contains("example.org"), "{x}");
        // imaps beats imap; pop3 only has STARTTLS; submission (587).
        assert!(x.contains("<incomingServer type=\"imap\">\n      <hostname>mail.example.test</hostname>\n      <port>993</port>\n      <socketType>SSL</socketType>"), "{x}");
        assert!(x.contains("<incomingServer type=\"pop3\">\n      <hostname>mail.example.test</hostname>\n      <port>110</port>\n      <socketType>STARTTLS</socketType>"), "{x}");
        assert!(x.contains("<outgoingServer type=\"smtp\">\n      <hostname>mail.example.test</hostname>\n      <port>587</port>\n      <socketType>STARTTLS</socketType>"), "{x}");
        assert!(!x.contains("<port>143</port>"));
    }
    // The server's own name without an address: every domain.
    let r = respond(&FULL, &get("mail.example.test", THUNDERBIRD_PATHS[0], None));
    assert!(text(&r).contains("<domain>example.org</domain>"));
    assert!(text(&r).contains("<domain>example.test</domain>"));
    // An address of another domain, or a malformed one.
    let r = respond(
        &FULL,
        &get(
            "autoconfig.example.test",
            THUNDERBIRD_PATHS[0],
            Some("emailaddress=bob@elsewhere.example"),
        ),
    );
    assert_eq!(r.status, 404);
    for q in [
        "emailaddress=%zz",
        "emailaddress=%ff%fe",
        "emailaddress=nobody",
        "emailaddress=a@b@",
    ] {
        let r = respond(
            &FULL,
            &get("autoconfig.example.test", THUNDERBIRD_PATHS[0], Some(q)),
        );
        assert_eq!(r.status, 400, "{q}");
    }
}

#[test]
fn plaintext_listeners_are_never_offered() {
    let r = respond(
        &PLAINTEXT_ONLY,
        &get("autoconfig.example.test", THUNDERBIRD_PATHS[0], None),
    );
    assert_eq!(r.status, 404);
    assert!(text(&r).contains("no mail listener to offer"));
}

#[test]
fn autodiscover_reads_the_pox_address() {
    let body = b"<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n<Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006\"><Request><EMailAddress>Alice@Example.Test</EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema></Request></Autodiscover>";
    let req = Request {
        method: Method::Post,
        host: Some("autodiscover.example.test"),
        path: "/Autodiscover/Autodiscover.xml",
        query: None,
        body,
        secure: true,
    };
    let r = respond(&FULL, &req);
    assert_eq!(r.status, 200);
    let x = text(&r);
    assert!(
        x.contains("<LoginName>Alice@example.test</LoginName>"),
        "{x}"
    );
    assert!(x.contains(
        "<Type>IMAP</Type>\n        <Server>mail.example.test</Server>\n        <Port>993</Port>"
    ));
    assert!(x.contains("<Encryption>SSL</Encryption>"));
    assert!(x.contains(
        "<Type>SMTP</Type>\n        <Server>mail.example.test</Server>\n        <Port>587</Port>"
    ));
    assert!(x.contains("<Encryption>TLS</Encryption>"));
    for bad in [
        &b"<Autodiscover/>"[..],
        b"<EMailAddress>no-at-sign</EMailAddress>",
        b"\xff\xfe<EMailAddress>",
        b"<EMailAddress>alice@example.test",
    ] {
        let r = respond(
            &FULL,
            &Request {
                body: bad,
                ..req.clone()
            },
        );
        assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(bad));
    }
    let foreign = b"<EMailAddress>x@elsewhere.example</EMailAddress>";
    assert_eq!(
        respond(
            &FULL,
            &Request {
                body: foreign,
                ..req.clone()
            }
        )
        .status,
        404
    );
    let put = Request {
        method: Method::Other,
        ..req.clone()
    };
    assert_eq!(respond(&FULL, &put).status, 405);
    let get = Request {
        method: Method::Get,
        query: Some("email=alice@example.test"),
        ..req
    };
    assert!(text(&respond(&FULL, &get)).contains("<LoginName>alice@example.test</LoginName>"));
}

#[test]
fn mobileconfig_needs_one_of_our_addresses() {
    let path = MOBILECONFIG_PATH;
    let r = respond(
        &FULL,
        &get("example.test", path, Some("email=alice%40example.test")),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.content_type, "application/x-apple-aspen-config");
    assert!(text(&r).contains("<string>alice@example.test</string>"));
    assert!(
        text(&r).contains("<key>IncomingMailServerPortNumber</key>\n      <integer>993</integer>")
    );
    assert_eq!(respond(&FULL, &get("example.test", path, None)).status, 400);
    assert_eq!(
        respond(
            &FULL,
            &get("example.test", path, Some("email=a@elsewhere.example"))
        )
        .status,
        404
    );
    // Markup in the local part is refused before it reaches the document.
    assert_eq!(
        respond(
            &FULL,
            &get("example.test", path, Some("email=%3Cx%3E@example.test"))
        )
        .status,
        400
    );
}

#[test]
fn plain_http_redirects_our_names_and_answers_challenges() {
    let mut req = get(
        "autoconfig.example.test",
        "/mail/config-v1.1.xml",
        Some("emailaddress=a%40example.test"),
    );
    req.secure = false;
    let r = respond(&FULL, &req);
    assert_eq!(r.status, 301);
    assert_eq!(
        r.headers,
        vec![(
            "location",
            "https://autoconfig.example.test:8443/mail/config-v1.1.xml?emailaddress=a%40example.test"
                .to_string()
        )]
    );
    // Not ours: no redirect.
    req.host = Some("evil.example");
    assert_eq!(respond(&FULL, &req).status, 404);
    // No https listener: nothing to redirect to.
    req.host = Some("example.test");
    assert_eq!(respond(&HTTP_ONLY, &req).status, 404);
    // ACME challenges on any host, GET or HEAD only.
    let mut c = get(
        "whatever.example",
        "/.well-known/acme-challenge/tok_en-1",
        None,
    );
    c.secure = false;
    assert_eq!(
        route(&HTTP_ONLY, &c),
        Outcome::AcmeChallenge("tok_en-1".into())
    );
    c.method = Method::Post;
    assert!(matches!(route(&HTTP_ONLY, &c), Outcome::Respond(r) if r.status == 405));
}

#[test]
fn certificate_names_cover_the_served_sites() {
    assert_eq!(
        FULL.certificate_names(),
        vec![
            "autoconfig.example.org",
            "autoconfig.example.test",
            "autodiscover.example.org",
            "autodiscover.example.test",
            "mail.example.test",
            "mta-sts.example.test",
        ]
    );
    // Without an https listener only the hostname is needed.
    assert_eq!(HTTP_ONLY.certificate_names(), vec!["mail.example.test"]);
}

#[test]
fn form_decoding_is_strict() {
    assert_eq!(form_decode("a%40b+c").as_deref(), Some("a@b c"));
    assert_eq!(form_decode("%4"), None);
    assert_eq!(form_decode("%g0"), None);
    assert_eq!(form_decode("%c3"), None);
    assert_eq!(form_decode("%C3%A9").as_deref(), Some("é"));
}

proptest::proptest! {
    /// Whatever arrives, the router answers with one of its statuses,
    /// and a redirect only ever points at one of our names.
    #[test]
    fn any_request_gets_a_bounded_answer(
        method in 0u8..4,
        host in proptest::option::of("[a-zA-Z0-9.:\\[\\]-]{0,40}|(mta-sts|autoconfig|autodiscover)\\.example\\.(test|org)"),
        path in "/[ -~]{0,60}|/mail/config-v1\\.1\\.xml|/autodiscover/autodiscover\\.xml|/apple/mail\\.mobileconfig|/\\.well-known/[a-z-]{0,20}",
        query in proptest::option::of("[ -~]{0,60}|(email|emailaddress)=[ -~%]{0,40}"),
        body in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
        secure in proptest::bool::ANY,
    ) {
        let method = [Method::Get, Method::Head, Method::Post, Method::Other][method as usize];
        let req = Request {
            method,
            host: host.as_deref(),
            path: &path,
            query: query.as_deref(),
            body: &body,
            secure,
        };
        match route(&FULL, &req) {
            Outcome::AcmeChallenge(token) => {
                proptest::prop_assert!(path.starts_with(ACME_CHALLENGE_PREFIX));
                proptest::prop_assert_eq!(token.as_str(), &path[ACME_CHALLENGE_PREFIX.len()..]);
            }
            Outcome::Respond(r) => {
                proptest::prop_assert!([200, 301, 400, 404, 405].contains(&r.status), "{}", r.status);
                if r.status == 301 {
                    let location = &r.headers[0].1;
                    let target = location
                        .strip_prefix("https://")
                        .and_then(|l| l.split([':', '/']).next())
                        .unwrap_or_default();
                    proptest::prop_assert!(site(&FULL, target).is_some(), "{location}");
                }
            }
        }
    }
}
