//! Inbound authentication against independent signers: messages signed by
//! dkimpy's `dkimsign` (RSA and Ed25519, keys made by its `dknewkey`), by
//! Perl's Mail::DKIM (relaxed and simple canonicalization) and sealed by
//! dkimpy's `arcsign` reach mailc's MX, whose verdicts in
//! `Authentication-Results` must be pass for the intact ones and fail for
//! the ones changed after signing — and must agree, message for message,
//! with dkimpy's own verifier (`dkim.verify`, `dkim.arc_verify`) run on the
//! same bytes against the same DNS server. Keys are served by a real DNS server on
//! loopback. Run by `.ci/run` with `--ignored` (Debian's python3-dkim and
//! python3-authres).

mod common;

use std::path::Path;
use std::process::Stdio;

use common::dns_server::DnsServer;
use common::inbound::{message, results_field, send, server, wait_for};
use common::tool;

/// `v=DKIM1; ...` as the zone-file strings of one TXT record (each string
/// at most 255 octets).
fn txt(record: &str) -> String {
    let record: String = record.split_whitespace().collect::<Vec<_>>().join(" ");
    record
        .as_bytes()
        .chunks(200)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn newkey(dir: &Path, name: &str, ktype: &str) -> String {
    let status = tool("dknewkey")
        .args(["--ktype", ktype, name])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("dknewkey runs");
    assert!(status.success());
    std::fs::read_to_string(dir.join(format!("{name}.dns"))).expect("record")
}

/// Starts `cmd` with `input` written to its stdin (then closed).
fn spawn_with(cmd: &mut std::process::Command, input: &str, out: Stdio) -> std::process::Child {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(out)
        .stderr(Stdio::piped())
        .spawn()
        .expect("tool runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write");
    child
}

/// Runs a dkimpy tool with the message on stdin; its stdout.
fn pipe(cmd: &mut std::process::Command, input: &str) -> String {
    let out = spawn_with(cmd, input, Stdio::piped())
        .wait_with_output()
        .expect("tool ends");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Runs a verifier with the message on stdin; whether it exited 0.
fn pipe_status(cmd: &mut std::process::Command, input: &str) -> bool {
    spawn_with(cmd, input, Stdio::null())
        .wait_with_output()
        .expect("verifier ends")
        .status
        .success()
}

fn dkimsign(dir: &Path, selector: &str, key: &str, alg: &str, msg: &str) -> String {
    pipe(
        tool("dkimsign")
            .args(["--signalg", alg, selector, "sender.test", key])
            .current_dir(dir),
        msg,
    )
}

#[test]
#[ignore = "needs python3-dkim and python3-authres (installed by .ci/run)"]
fn dkimpy_signatures_and_arc_seals_verify() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rsa = newkey(dir.path(), "rsa", "rsa");
    let ed = newkey(dir.path(), "ed", "ed25519");
    let dns = DnsServer::start(&[
        (
            "sender.test.",
            format!(
                "@ 300 IN TXT \"v=spf1 ip4:127.0.0.1 -all\"\n\
                 _dmarc 300 IN TXT \"v=DMARC1; p=reject\"\n\
                 rsa._domainkey 300 IN TXT {}\n\
                 ed._domainkey 300 IN TXT {}\n\
                 mx 300 IN A 127.0.0.1\n",
                txt(&rsa),
                txt(&ed)
            ),
        ),
        (
            "forwarder.test.",
            format!("arc._domainkey 300 IN TXT {}\n", txt(&rsa)),
        ),
        (
            "127.in-addr.arpa.",
            "1.0.0 300 IN PTR mx.sender.test.\n".into(),
        ),
    ]);
    let server = server(&dns.addr.to_string());
    let cases: Vec<(&str, String, &str)> = {
        let plain = |s: &str| message("news@sender.test", s);
        let rsa_msg = dkimsign(dir.path(), "rsa", "rsa.key", "rsa-sha256", &plain("rsa"));
        let ed_msg = dkimsign(
            dir.path(),
            "ed",
            "ed.key",
            "ed25519-sha256",
            &plain("ed25519"),
        );
        // Changed after signing: the body, then a signed header.
        let body_changed = dkimsign(dir.path(), "rsa", "rsa.key", "rsa-sha256", &plain("body"))
            .replace("Hello.", "Hello, changed.");
        let subject_changed = dkimsign(
            dir.path(),
            "ed",
            "ed.key",
            "ed25519-sha256",
            &plain("subject"),
        )
        .replace("Subject: subject", "Subject: subject changed");
        // A forwarder's ARC set over a DKIM-signed message: arcsign seals
        // what the forwarder's own Authentication-Results said (the DKIM
        // signature still verifies: dkimpy and mailc are compared on both).
        let signed = dkimsign(dir.path(), "rsa", "rsa.key", "rsa-sha256", &plain("arc"));
        let with_results = format!(
            "Authentication-Results: forwarder.test; dkim=pass header.d=sender.test\r\n{signed}"
        );
        let seal = pipe(
            tool("arcsign")
                .args(["arc", "forwarder.test", "rsa.key", "forwarder.test"])
                .current_dir(dir.path()),
            &with_results,
        );
        // arcsign prints the whole message with the ARC set on top.
        assert!(seal.starts_with("ARC-Seal:"), "{seal}");
        assert!(seal.contains("Subject: arc"), "{seal}");
        let sealed = seal;
        // A third signer: Perl's Mail::DKIM, both canonicalizations.
        let mail_dkim = |method: &str, subject: &str| {
            pipe(
                tool("perl")
                    .arg(common::root().join("tests/interop/mail_dkim_sign.pl"))
                    .args(["rsa.key", "rsa", "sender.test", method])
                    .current_dir(dir.path()),
                &plain(subject),
            )
        };
        let perl_relaxed = mail_dkim("relaxed/relaxed", "mail-dkim relaxed");
        let perl_simple = mail_dkim("simple/simple", "mail-dkim simple");
        let perl_changed =
            mail_dkim("simple/simple", "mail-dkim changed").replace("Hello.", "Hello, changed.");
        vec![
            (
                "mail-dkim relaxed",
                perl_relaxed,
                "dkim=pass header.d=sender.test header.s=rsa",
            ),
            (
                "mail-dkim simple",
                perl_simple,
                "dkim=pass header.d=sender.test header.s=rsa",
            ),
            ("mail-dkim changed", perl_changed, "dkim=fail"),
            (
                "rsa",
                rsa_msg,
                "dkim=pass header.i=@sender.test header.s=rsa",
            ),
            (
                "ed25519",
                ed_msg,
                "dkim=pass header.i=@sender.test header.s=ed",
            ),
            ("body", body_changed, "dkim=fail"),
            ("subject changed", subject_changed, "dkim=fail"),
            ("arc", sealed, "arc=pass"),
        ]
    };
    for (i, (subject, body, expected)) in cases.iter().enumerate() {
        let (code, text) = send(&server, "news@sender.test", body);
        // SPF passes and aligns, so DMARC passes even where DKIM fails.
        assert_eq!(code, 250, "{subject}: {text}");
        let inbox = wait_for(&server, "", i + 1);
        let got = inbox
            .iter()
            .find(|m| m.contains(&format!("Subject: {subject}\r\n")))
            .unwrap_or_else(|| panic!("{subject} not delivered\n{}", server.log_text()));
        let field = results_field(got);
        assert!(field.contains(expected), "{subject}: {field}");
        assert!(field.contains("dmarc=pass"), "{subject}: {field}");
        // Side by side: dkimpy's verdicts on the same bytes, DKIM always,
        // the ARC chain where there is one.
        let script = common::root().join("tests/interop/dkimpy_verify.py");
        let port = dns.addr.port().to_string();
        let mut checks = vec![("dkim=pass", vec![port.clone()])];
        if expected.starts_with("arc=") {
            checks.push(("arc=pass", vec![port.clone(), "--arc".into()]));
        }
        for (pass, args) in checks {
            let dkimpy = pipe_status(tool("/usr/bin/python3").arg(&script).args(&args), body);
            assert_eq!(
                dkimpy,
                field.contains(pass),
                "{subject}: dkimpy {} for {pass}, mailc says {field}",
                if dkimpy { "passes" } else { "fails" }
            );
        }
    }
}

/// Sends `body` from mx.sender.test (127.0.0.1) to `rcpt` at `server`'s MX;
/// the final reply code.
fn forward_via(server: &common::server::Server, rcpt: &str, body: &str) -> u16 {
    let mut c = common::server::Raw::connect(server.addr("smtp"));
    assert_eq!(c.reply().expect("greeting").0, 220);
    assert_eq!(c.cmd("EHLO mx.sender.test").expect("ehlo").0, 250);
    c.send_mail("news@sender.test", &[rcpt], body)
        .expect("transaction")
}

/// mailc's ARC seal on forwarded mail, checked by dkimpy (`dkim.arc_verify`
/// with the keys on the loopback DNS server): a DKIM-signed message
/// forwarded through an alias of fwd.test reaches the next MX with a set
/// `i=1`, `cv=none` that dkimpy validates; a message that already carries
/// an ARC set from dkimpy's `arcsign` (forwarder.test) gets `i=2`,
/// `cv=pass`, and dkimpy validates the whole chain.
#[test]
#[ignore = "needs python3-dkim and python3-authres (installed by .ci/run)"]
fn dkimpy_validates_mailc_arc_seals() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rsa = newkey(dir.path(), "rsa", "rsa");
    let fwd = newkey(dir.path(), "fwd", "rsa");
    let dns = DnsServer::start(&[
        (
            "sender.test.",
            format!(
                "@ 300 IN TXT \"v=spf1 ip4:127.0.0.1 -all\"\n\
                 _dmarc 300 IN TXT \"v=DMARC1; p=reject\"\n\
                 rsa._domainkey 300 IN TXT {}\n",
                txt(&rsa)
            ),
        ),
        (
            "forwarder.test.",
            format!("arc._domainkey 300 IN TXT {}\n", txt(&rsa)),
        ),
        (
            "fwd.test.",
            format!("fwd._domainkey 300 IN TXT {}\n", txt(&fwd)),
        ),
        (
            "remote.test.",
            "@ 300 IN MX 10 mx.remote.test.\nmx 300 IN A 127.0.0.2\n".into(),
        ),
        (
            "127.in-addr.arpa.",
            "1.0.0 300 IN PTR mx.sender.test.\n".into(),
        ),
    ]);
    let (remote, local) =
        common::inbound::forwarding_pair(&dns.addr.to_string(), "fwd", &dir.path().join("fwd.key"));
    let plain = |subject: &str| {
        message("news@sender.test", subject).replace("To: alice@example.test", "To: carol@fwd.test")
    };
    // First hop: mailc seals a plain signed message.
    let first = dkimsign(dir.path(), "rsa", "rsa.key", "rsa-sha256", &plain("hop1"));
    // Second hop: forwarder.test sealed it before (dkimpy), mailc adds i=2.
    let signed = dkimsign(dir.path(), "rsa", "rsa.key", "rsa-sha256", &plain("hop2"));
    let second = pipe(
        tool("arcsign")
            .args(["arc", "forwarder.test", "rsa.key", "forwarder.test"])
            .current_dir(dir.path()),
        &format!(
            "Authentication-Results: forwarder.test; dkim=pass header.d=sender.test\r\n{signed}"
        ),
    );
    assert!(second.starts_with("ARC-Seal:"), "{second}");
    let script = common::root().join("tests/interop/dkimpy_verify.py");
    let port_arg = dns.addr.port().to_string();
    for (n, (subject, body, i, cv)) in [
        ("hop1", first, "i=1", "cv=none"),
        ("hop2", second, "i=2", "cv=pass"),
    ]
    .into_iter()
    .enumerate()
    {
        assert_eq!(forward_via(&local, "carol@fwd.test", &body), 250);
        let carol = remote.wait_for_mail(
            "remote.test",
            "carol",
            n + 1,
            std::time::Duration::from_secs(20),
        );
        let got = carol
            .iter()
            .map(|f| std::fs::read_to_string(f).expect("read"))
            .find(|t| t.contains(&format!("Subject: {subject}\r\n")))
            .unwrap_or_else(|| panic!("{subject} not forwarded\n{}", local.log_text()));
        let unfolded = got.replace("\r\n\t", " ").replace("\r\n ", " ");
        let seal = unfolded
            .lines()
            .find(|l| l.starts_with("ARC-Seal:") && l.contains("d=fwd.test"))
            .unwrap_or_else(|| panic!("{subject}: no seal of fwd.test\n{got}"));
        assert!(
            seal.contains(&format!("{i};")) && seal.contains(cv),
            "{subject}: {seal}"
        );
        assert_eq!(
            unfolded.matches("ARC-Seal:").count(),
            n + 1,
            "{subject}: {got}"
        );
        // dkimpy validates the chain on the bytes the next MX stored.
        assert!(
            pipe_status(
                tool("/usr/bin/python3")
                    .arg(&script)
                    .args([port_arg.as_str(), "--arc"]),
                &got
            ),
            "{subject}: dkimpy does not validate the chain\n{got}"
        );
        // And the original DKIM signature still verifies.
        assert!(
            pipe_status(tool("/usr/bin/python3").arg(&script).arg(&port_arg), &got),
            "{subject}: DKIM broken by the forward\n{got}"
        );
    }
}
