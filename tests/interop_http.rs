//! curl (Debian's, with OpenSSL) against the `https` and `http`
//! listeners, verifying the server's development certificate by name
//! (`--cacert`, `--resolve NAME:PORT:127.0.0.1`): the MTA-STS policy is the
//! one `mailc dns` prints, the autoconfiguration documents parse and name
//! the right listeners, ALPN settles on HTTP/1.1, plain HTTP redirects.
//! Ignored by default; `.ci/run` installs curl and runs them. A missing
//! curl fails the test.

mod common;

use std::net::SocketAddr;

use common::http::{
    AUTODISCOVER_CHECK, MOBILECONFIG_CHECK, THUNDERBIRD_CHECK, dns_policy, python, start,
};
use common::server::Server;
use common::tool;

struct Fetched {
    /// `%{http_code} %{http_version} %{content_type}` from `--write-out`.
    meta: String,
    body: Vec<u8>,
}

/// `curl` to `url` on the listener at `addr`, the name resolved to it and
/// the certificate verified against the server's development certificate.
fn curl(server: &Server, addr: SocketAddr, url: &str, extra: &[&str]) -> Fetched {
    let host = url
        .split("://")
        .nth(1)
        .and_then(|r| r.split(['/', ':']).next())
        .expect("host in url");
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("body");
    let out = tool("curl")
        .arg("--silent")
        .arg("--show-error")
        .arg("--max-time")
        .arg("20")
        .arg("--cacert")
        .arg(server.state().join("tls/selfsigned.pem"))
        .arg("--resolve")
        .arg(format!("{host}:{}:127.0.0.1", addr.port()))
        .arg("--output")
        .arg(&body)
        .arg("--write-out")
        .arg("%{http_code} %{http_version} %{content_type}")
        .args(extra)
        .arg(url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Fetched {
        meta: String::from_utf8(out.stdout).unwrap(),
        body: std::fs::read(&body).unwrap_or_default(),
    }
}

fn https_url(server: &Server, host: &str, target: &str) -> String {
    format!("https://{host}:{}{target}", server.addr("https").port())
}

#[test]
#[ignore = "interop: needs curl (.ci/run installs it)"]
fn curl_fetches_the_mta_sts_policy_that_mailc_dns_prints() {
    let (server, _) = start();
    let f = curl(
        &server,
        server.addr("https"),
        &https_url(&server, "mta-sts.example.test", "/.well-known/mta-sts.txt"),
        &[],
    );
    assert_eq!(f.meta, "200 1.1 text/plain; charset=utf-8");
    let served = String::from_utf8(f.body).unwrap();
    let (policy, id) = dns_policy(&server);
    assert_eq!(served, policy);
    assert_eq!(mailc::dns::mta_sts_id(&served), id);
}

#[test]
#[ignore = "interop: needs curl (.ci/run installs it)"]
fn curl_fetches_each_autoconfiguration_document() {
    let (server, ports) = start();
    let https = server.addr("https");
    for (host, target) in [
        (
            "autoconfig.example.test",
            "/mail/config-v1.1.xml?emailaddress=alice%40example.test",
        ),
        // The well-known path (Thunderbird asks the domain itself for it;
        // the bare domain is not in the certificate, its web server is
        // usually elsewhere).
        (
            "autoconfig.example.test",
            "/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=alice%40example.test",
        ),
    ] {
        let f = curl(&server, https, &https_url(&server, host, target), &[]);
        assert_eq!(f.meta, "200 1.1 application/xml; charset=utf-8", "{host}");
        assert_eq!(
            python(THUNDERBIRD_CHECK, &f.body),
            format!(
                "domains example.test\n\
                 incomingServer imap mail.example.test {} SSL %EMAILADDRESS%\n\
                 incomingServer pop3 mail.example.test {} STARTTLS %EMAILADDRESS%\n\
                 outgoingServer smtp mail.example.test {} STARTTLS %EMAILADDRESS%\n",
                ports.imaps, ports.pop3, ports.submission
            )
        );
    }
    let request = "<?xml version=\"1.0\" encoding=\"utf-8\"?><Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006\"><Request><EMailAddress>alice@example.test</EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema></Request></Autodiscover>";
    let f = curl(
        &server,
        https,
        &https_url(
            &server,
            "autodiscover.example.test",
            "/autodiscover/autodiscover.xml",
        ),
        &[
            "--header",
            "Content-Type: text/xml",
            "--data-binary",
            request,
        ],
    );
    assert_eq!(f.meta, "200 1.1 application/xml; charset=utf-8");
    assert_eq!(
        python(AUTODISCOVER_CHECK, &f.body),
        format!(
            "IMAP mail.example.test {} alice@example.test on SSL\n\
             POP3 mail.example.test {} alice@example.test on TLS\n\
             SMTP mail.example.test {} alice@example.test on TLS\n",
            ports.imaps, ports.pop3, ports.submission
        )
    );
    let f = curl(
        &server,
        https,
        &https_url(
            &server,
            "mail.example.test",
            "/apple/mail.mobileconfig?email=alice%40example.test",
        ),
        &[],
    );
    assert_eq!(f.meta, "200 1.1 application/x-apple-aspen-config");
    assert_eq!(
        python(MOBILECONFIG_CHECK, &f.body),
        format!(
            "EmailTypeIMAP alice@example.test mail.example.test {} True alice@example.test mail.example.test {} False\n",
            ports.imaps, ports.submission
        )
    );
    // Not ours: 404, with a certificate that still verifies for the name
    // curl asked (the development certificate covers it).
    let f = curl(
        &server,
        https,
        &https_url(
            &server,
            "autoconfig.example.org",
            "/mail/config-v1.1.xml?emailaddress=x%40elsewhere.example",
        ),
        &[],
    );
    assert!(f.meta.starts_with("404 "), "{}", f.meta);
}

#[test]
#[ignore = "interop: needs curl (.ci/run installs it)"]
fn curl_is_redirected_from_http_to_https() {
    let (server, _) = start();
    let url = format!(
        "http://autoconfig.example.test:{}/mail/config-v1.1.xml",
        server.addr("http").port()
    );
    let f = curl(
        &server,
        server.addr("http"),
        &url,
        // The last --write-out wins: the usual fields and the target.
        &[
            "--write-out",
            "%{http_code} %{http_version} %{content_type} %{redirect_url}",
        ],
    );
    assert_eq!(
        f.meta,
        "301 1.1 text/plain; charset=utf-8 https://autoconfig.example.test/mail/config-v1.1.xml"
    );
}
