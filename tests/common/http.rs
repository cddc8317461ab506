//! What the HTTP(S) tests share: a server with https, http and mail
//! listeners (the mail ones on fixed free ports, since the autoconfig
//! documents name the configured ports), the MTA-STS policy as `mailc dns`
//! prints it, and python3 checks of the autoconfig documents (xml.etree,
//! plistlib) that print a summary to compare.
#![allow(dead_code)]

use std::io::Write;
use std::net::TcpListener;
use std::process::{Command, Stdio};

use super::server::{ALICE_HASH, Server};

/// A port nothing listens on now (the autoconfig documents name the
/// configured ports, so those listeners cannot use port 0).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Ports {
    pub imaps: u16,
    pub pop3: u16,
    pub submission: u16,
}

pub fn start() -> (Server, Ports) {
    let ports = Ports {
        imaps: free_port(),
        pop3: free_port(),
        submission: free_port(),
    };
    let body = format!(
        "listen \"https\" \"127.0.0.1:0\"\nlisten \"http\" \"127.0.0.1:0\"\n\
         listen \"imaps\" \"127.0.0.1:{}\"\nlisten \"pop3\" \"127.0.0.1:{}\"\n\
         listen \"submission\" \"127.0.0.1:{}\"\n\
         timeouts {{\n    http \"2s\"\n}}\n\
         domain \"example.test\" {{\n    dmarc policy=\"none\"\n    mta-sts mode=\"enforce\" max-age=\"1d\"\n    \
         mailbox \"alice\" password=\"{ALICE_HASH}\"\n}}\n\
         domain \"example.org\" {{\n    dmarc policy=\"none\"\n}}\n",
        ports.imaps, ports.pop3, ports.submission
    );
    (Server::start(&body), ports)
}

/// Runs a python3 check over `input`, returning what it prints.
pub fn python(script: &str, input: &[u8]) -> String {
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python3 check failed: {}\non:\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(input)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The policy text and id as `mailc dns` prints them for example.test.
pub fn dns_policy(server: &Server) -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mailc"))
        .arg("dns")
        .arg(&server.config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let id = text
        .lines()
        .skip_while(|l| *l != "$ORIGIN example.test.")
        .find(|l| l.starts_with("_mta-sts "))
        .and_then(|l| l.split("id=").nth(1))
        .map(|v| v.trim_end_matches('"').to_string())
        .unwrap_or_else(|| panic!("no _mta-sts record:\n{text}"));
    let mut policy = String::new();
    let mut lines = text
        .lines()
        .skip_while(|l| *l != "; https://mta-sts.example.test/.well-known/mta-sts.txt:")
        .skip(1);
    for l in lines.by_ref() {
        let Some(line) = l.strip_prefix(";   ") else {
            break;
        };
        policy.push_str(line);
        policy.push('\n');
    }
    assert!(!policy.is_empty(), "no policy in:\n{text}");
    (policy, id)
}

pub const THUNDERBIRD_CHECK: &str = r#"
import sys, xml.etree.ElementTree as ET
root = ET.fromstring(sys.stdin.buffer.read())
assert root.tag == "clientConfig" and root.get("version") == "1.1", root.tag
providers = root.findall("emailProvider")
assert len(providers) == 1
p = providers[0]
assert p.get("id")
assert p.find("displayName").text and p.find("displayShortName").text
print("domains", " ".join(d.text for d in p.findall("domain")))
for tag in ("incomingServer", "outgoingServer"):
    for s in p.findall(tag):
        kids = {c.tag: c.text for c in s}
        assert set(kids) == {"hostname", "port", "socketType", "authentication", "username"}, kids
        assert kids["socketType"] in ("plain", "SSL", "STARTTLS"), kids
        assert kids["authentication"] == "password-cleartext", kids
        int(kids["port"])
        print(tag, s.get("type"), kids["hostname"], kids["port"], kids["socketType"], kids["username"])
"#;

pub const AUTODISCOVER_CHECK: &str = r#"
import sys, xml.etree.ElementTree as ET
R = "{http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006}"
A = "{http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a}"
root = ET.fromstring(sys.stdin.buffer.read())
assert root.tag == R + "Autodiscover", root.tag
acct = root.find(A + "Response/" + A + "Account")
assert acct.find(A + "AccountType").text == "email"
assert acct.find(A + "Action").text == "settings"
for p in acct.findall(A + "Protocol"):
    g = lambda t: p.find(A + t).text
    print(g("Type"), g("Server"), g("Port"), g("LoginName"), g("SSL"), g("Encryption"))
"#;

pub const MOBILECONFIG_CHECK: &str = r#"
import sys, plistlib
p = plistlib.loads(sys.stdin.buffer.read())
assert p["PayloadType"] == "Configuration" and p["PayloadVersion"] == 1
assert len(p["PayloadUUID"]) == 36
[acct] = p["PayloadContent"]
assert acct["PayloadType"] == "com.apple.mail.managed"
assert not any("Password" in k and k not in ("OutgoingPasswordSameAsIncomingPassword",) and not k.endswith("Authentication") for k in acct), acct
print(acct["EmailAccountType"], acct["EmailAddress"], acct["IncomingMailServerHostName"],
      acct["IncomingMailServerPortNumber"], acct["IncomingMailServerUseSSL"],
      acct["IncomingMailServerUsername"], acct["OutgoingMailServerHostName"],
      acct["OutgoingMailServerPortNumber"], acct["OutgoingMailServerUseSSL"])
"#;
