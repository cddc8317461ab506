//! Mail client autoconfiguration documents, built from the tables: the
//! Thunderbird autoconfig file (`clientConfig` 1.1, the ISPDB format),
//! the Outlook autodiscover POX response, and an unsigned Apple
//! configuration profile (`.mobileconfig`, no password in it).
//!
//! Only listeners that exist are offered, and only those where a password
//! never travels in the clear: implicit TLS is preferred over STARTTLS, and
//! a listener without TLS (`insecure-plaintext-auth` on a plain listener)
//! is never offered, even when it is the only one — a client configured
//! from these documents would send its password unencrypted. Usernames are
//! the full address.

use sha2::{Digest, Sha256};

use crate::tables::{AuthMode, ListenerKind, ListenerTable, Tables, TlsMode};

/// How a client secures a connection to an offered listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// TLS from the first byte.
    Implicit,
    /// STARTTLS / STLS, required before login.
    Starttls,
}

/// One listener as offered to clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub security: Security,
}

/// The best listener of each protocol; `None` where there is none to offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offers {
    pub imap: Option<Endpoint>,
    pub pop3: Option<Endpoint>,
    pub smtp: Option<Endpoint>,
}

impl Offers {
    pub fn from_tables(t: &Tables) -> Offers {
        Offers {
            imap: best(t, ListenerKind::Imaps, ListenerKind::Imap),
            pop3: best(t, ListenerKind::Pop3s, ListenerKind::Pop3),
            smtp: best(t, ListenerKind::Submissions, ListenerKind::Submission),
        }
    }

    /// Something to read mail with and something to send it with.
    pub fn usable(&self) -> bool {
        (self.imap.is_some() || self.pop3.is_some()) && self.smtp.is_some()
    }
}

/// The implicit-TLS listener of a protocol if there is one, else its
/// STARTTLS listener; never one that lets passwords through unencrypted.
fn best(t: &Tables, implicit: ListenerKind, starttls: ListenerKind) -> Option<Endpoint> {
    let usable = |l: &&ListenerTable| l.auth != AuthMode::None;
    let endpoint = |l: &ListenerTable, security| Endpoint {
        host: t.hostname.clone(),
        port: l.address.port(),
        security,
    };
    if let Some(l) = t
        .listeners
        .iter()
        .filter(usable)
        .find(|l| l.kind == implicit && l.tls == TlsMode::Implicit)
    {
        return Some(endpoint(l, Security::Implicit));
    }
    t.listeners
        .iter()
        .filter(usable)
        .find(|l| l.kind == starttls && l.tls == TlsMode::Starttls)
        .map(|l| endpoint(l, Security::Starttls))
}

/// Escapes text for XML element content and attribute values.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 cannot carry at all.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

/// Thunderbird's `config-v1.1.xml` for these domains (the first is the
/// provider id). `%EMAILADDRESS%` is Thunderbird's placeholder for the
/// address the user typed.
pub fn thunderbird(offers: &Offers, domains: &[&str]) -> String {
    let id = domains.first().copied().unwrap_or_default();
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    x.push_str("<clientConfig version=\"1.1\">\n");
    x.push_str(&format!("  <emailProvider id=\"{}\">\n", xml_escape(id)));
    for d in domains {
        x.push_str(&format!("    <domain>{}</domain>\n", xml_escape(d)));
    }
    x.push_str(&format!(
        "    <displayName>{}</displayName>\n    <displayShortName>{}</displayShortName>\n",
        xml_escape(id),
        xml_escape(id)
    ));
    let server = |tag: &str, kind: &str, e: &Endpoint| {
        let socket = match e.security {
            Security::Implicit => "SSL",
            Security::Starttls => "STARTTLS",
        };
        format!(
            "    <{tag} type=\"{kind}\">\n      <hostname>{}</hostname>\n      <port>{}</port>\n      <socketType>{socket}</socketType>\n      <authentication>password-cleartext</authentication>\n      <username>%EMAILADDRESS%</username>\n    </{tag}>\n",
            xml_escape(&e.host),
            e.port
        )
    };
    if let Some(e) = &offers.imap {
        x.push_str(&server("incomingServer", "imap", e));
    }
    if let Some(e) = &offers.pop3 {
        x.push_str(&server("incomingServer", "pop3", e));
    }
    if let Some(e) = &offers.smtp {
        x.push_str(&server("outgoingServer", "smtp", e));
    }
    x.push_str("  </emailProvider>\n</clientConfig>\n");
    x
}

/// The Outlook autodiscover POX response ("outlook/responseschema/2006a")
/// for `address`, or without `LoginName` when the request named none.
pub fn autodiscover(offers: &Offers, address: Option<&str>) -> String {
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    x.push_str(
        "<Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006\">\n",
    );
    x.push_str(
        "  <Response xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a\">\n",
    );
    x.push_str(
        "    <Account>\n      <AccountType>email</AccountType>\n      <Action>settings</Action>\n",
    );
    let protocol = |kind: &str, e: &Endpoint| {
        let mut p = format!(
            "      <Protocol>\n        <Type>{kind}</Type>\n        <Server>{}</Server>\n        <Port>{}</Port>\n        <DomainRequired>off</DomainRequired>\n",
            xml_escape(&e.host),
            e.port
        );
        if let Some(a) = address {
            p.push_str(&format!(
                "        <LoginName>{}</LoginName>\n",
                xml_escape(a)
            ));
        }
        // `Encryption` (when present it overrides `SSL`): "SSL" is TLS from
        // the first byte, "TLS" is STARTTLS.
        let encryption = match e.security {
            Security::Implicit => "SSL",
            Security::Starttls => "TLS",
        };
        p.push_str(&format!(
            "        <SPA>off</SPA>\n        <SSL>on</SSL>\n        <Encryption>{encryption}</Encryption>\n        <AuthRequired>on</AuthRequired>\n      </Protocol>\n"
        ));
        p
    };
    if let Some(e) = &offers.imap {
        x.push_str(&protocol("IMAP", e));
    }
    if let Some(e) = &offers.pop3 {
        x.push_str(&protocol("POP3", e));
    }
    if let Some(e) = &offers.smtp {
        x.push_str(&protocol("SMTP", e));
    }
    x.push_str("    </Account>\n  </Response>\n</Autodiscover>\n");
    x
}

/// A stable UUID (RFC 9562 version 8 layout) from a name: the same
/// address always gets the same profile identifiers, so installing the
/// profile again replaces the old one.
fn uuid_for(name: &str) -> String {
    let d = Sha256::digest(name.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02X}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Reverses a host name for payload identifiers (`test.example.mail`).
fn reverse_dns(host: &str) -> String {
    host.split('.').rev().collect::<Vec<_>>().join(".")
}

/// An unsigned Apple configuration profile with one mail account for
/// `address` (IMAP if offered, else POP3). No password: the device asks.
/// `None` when there is nothing to configure.
pub fn mobileconfig(offers: &Offers, hostname: &str, address: &str) -> Option<String> {
    let smtp = offers.smtp.as_ref()?;
    let (account_type, incoming) = match (&offers.imap, &offers.pop3) {
        (Some(e), _) => ("EmailTypeIMAP", e),
        (None, Some(e)) => ("EmailTypePOP", e),
        (None, None) => return None,
    };
    let a = xml_escape(address);
    let ident = format!("{}.mailc.{}", reverse_dns(hostname), xml_escape(address));
    let s = |v: &str| format!("<string>{v}</string>");
    let b = |v: bool| if v { "<true/>" } else { "<false/>" };
    let mut p = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n<plist version=\"1.0\">\n<dict>\n",
    );
    let kv = |p: &mut String, indent: &str, k: &str, v: &str| {
        p.push_str(&format!("{indent}<key>{k}</key>\n{indent}{v}\n"));
    };
    kv(&mut p, "  ", "PayloadContent", "<array>");
    p.push_str("    <dict>\n");
    let i = "      ";
    kv(&mut p, i, "EmailAccountDescription", &s(&a));
    kv(&mut p, i, "EmailAccountName", &s(&a));
    kv(&mut p, i, "EmailAccountType", &s(account_type));
    kv(&mut p, i, "EmailAddress", &s(&a));
    kv(
        &mut p,
        i,
        "IncomingMailServerAuthentication",
        &s("EmailAuthPassword"),
    );
    kv(
        &mut p,
        i,
        "IncomingMailServerHostName",
        &s(&xml_escape(&incoming.host)),
    );
    kv(
        &mut p,
        i,
        "IncomingMailServerPortNumber",
        &format!("<integer>{}</integer>", incoming.port),
    );
    // iOS negotiates STARTTLS by itself on a non-SSL connection; `UseSSL`
    // is TLS from the first byte.
    kv(
        &mut p,
        i,
        "IncomingMailServerUseSSL",
        b(incoming.security == Security::Implicit),
    );
    kv(&mut p, i, "IncomingMailServerUsername", &s(&a));
    kv(
        &mut p,
        i,
        "OutgoingMailServerAuthentication",
        &s("EmailAuthPassword"),
    );
    kv(
        &mut p,
        i,
        "OutgoingMailServerHostName",
        &s(&xml_escape(&smtp.host)),
    );
    kv(
        &mut p,
        i,
        "OutgoingMailServerPortNumber",
        &format!("<integer>{}</integer>", smtp.port),
    );
    kv(
        &mut p,
        i,
        "OutgoingMailServerUseSSL",
        b(smtp.security == Security::Implicit),
    );
    kv(&mut p, i, "OutgoingMailServerUsername", &s(&a));
    kv(&mut p, i, "OutgoingPasswordSameAsIncomingPassword", b(true));
    kv(&mut p, i, "PayloadDescription", &s("Mail account"));
    kv(&mut p, i, "PayloadDisplayName", &s(&a));
    kv(
        &mut p,
        i,
        "PayloadIdentifier",
        &s(&format!("{ident}.account")),
    );
    kv(&mut p, i, "PayloadType", &s("com.apple.mail.managed"));
    kv(
        &mut p,
        i,
        "PayloadUUID",
        &s(&uuid_for(&format!("account:{hostname}:{address}"))),
    );
    kv(&mut p, i, "PayloadVersion", "<integer>1</integer>");
    p.push_str("    </dict>\n  </array>\n");
    let i = "  ";
    kv(
        &mut p,
        i,
        "PayloadDescription",
        &s(&format!("Mail settings for {a}")),
    );
    kv(&mut p, i, "PayloadDisplayName", &s(&format!("Mail ({a})")));
    kv(&mut p, i, "PayloadIdentifier", &s(&ident));
    kv(&mut p, i, "PayloadRemovalDisallowed", b(false));
    kv(&mut p, i, "PayloadType", &s("Configuration"));
    kv(
        &mut p,
        i,
        "PayloadUUID",
        &s(&uuid_for(&format!("profile:{hostname}:{address}"))),
    );
    kv(&mut p, i, "PayloadVersion", "<integer>1</integer>");
    p.push_str("</dict>\n</plist>\n");
    Some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(port: u16, security: Security) -> Endpoint {
        Endpoint {
            host: "mail.example.test".into(),
            port,
            security,
        }
    }

    #[test]
    fn escaping_covers_markup_and_drops_control_characters() {
        assert_eq!(xml_escape("a<b>&\"c'\u{1}"), "a&lt;b&gt;&amp;&quot;c&apos;");
    }

    #[test]
    fn thunderbird_lists_what_is_offered_in_order() {
        let offers = Offers {
            imap: Some(endpoint(993, Security::Implicit)),
            pop3: None,
            smtp: Some(endpoint(587, Security::Starttls)),
        };
        let x = thunderbird(&offers, &["example.test", "example.org"]);
        assert!(x.contains("<emailProvider id=\"example.test\">"));
        assert!(x.contains("<domain>example.org</domain>"));
        let imap = x.find("<incomingServer type=\"imap\">").expect("imap");
        let smtp = x.find("<outgoingServer type=\"smtp\">").expect("smtp");
        assert!(imap < smtp);
        assert!(x.contains("<port>993</port>\n      <socketType>SSL</socketType>"));
        assert!(x.contains("<port>587</port>\n      <socketType>STARTTLS</socketType>"));
        assert!(!x.contains("pop3"));
    }

    #[test]
    fn autodiscover_escapes_the_login_name() {
        let offers = Offers {
            imap: None,
            pop3: Some(endpoint(995, Security::Implicit)),
            smtp: Some(endpoint(465, Security::Implicit)),
        };
        let x = autodiscover(&offers, Some("a&b@example.test"));
        assert!(x.contains("<LoginName>a&amp;b@example.test</LoginName>"));
        assert!(x.contains("<Type>POP3</Type>"));
        assert!(!x.contains("<Type>IMAP</Type>"));
        assert!(!autodiscover(&offers, None).contains("LoginName"));
    }

    #[test]
    fn mobileconfig_needs_a_way_in_and_out() {
        let none = Offers {
            imap: None,
            pop3: None,
            smtp: Some(endpoint(465, Security::Implicit)),
        };
        assert_eq!(
            mobileconfig(&none, "mail.example.test", "a@example.test"),
            None
        );
        let some = Offers {
            imap: Some(endpoint(143, Security::Starttls)),
            ..none
        };
        let p = mobileconfig(&some, "mail.example.test", "a@example.test").expect("profile");
        assert!(p.contains("<string>EmailTypeIMAP</string>"));
        assert!(!p.contains("<key>IncomingPassword</key>"));
        assert!(!p.contains("<key>OutgoingPassword</key>"));
        // The same address gets the same identifiers.
        assert_eq!(
            Some(p),
            mobileconfig(&some, "mail.example.test", "a@example.test")
        );
        assert_eq!(uuid_for("x").len(), 36);
    }
}
