//! Interop: messages signed by mailc's DKIM signer, verified by independent
//! verifiers from Debian, each fetching the published key (the records
//! `mailc dns` prints) from a real DNS server on loopback:
//!
//! - dkimpy (`python3-dkim`), with a `dnsfunc` doing a real dnspython query
//!   to the test server's port; and its `dkimverify` command;
//! - `opendkim-testmsg` (`opendkim-tools`);
//! - Mail::DKIM (`libmail-dkim-perl`, RSA), through a Net::DNS resolver
//!   given the server's address and port.
//!
//! `dkimverify` and `opendkim-testmsg` take no name server option and ask
//! the system resolver, which always uses port 53: they run in a private
//! mount namespace where `/etc/resolv.conf` names 127.0.0.N, and a relay on
//! 127.0.0.N:53 (UDP and TCP) passes the queries to the test server. This
//! needs root (CI runs as root) and `unshare` (util-linux).
//!
//! Run by `.ci/run` with `--ignored`; a missing tool is a failure.

mod common;
mod dkim_site;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use dkim_site::{Site, message, site};
use mailc::outbound::dkim::Signer;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn signed(s: &Site, from: &str) -> Vec<u8> {
    let signer = Signer::load(&s.tables).expect("keys load");
    let msg = message(from);
    let mut out = signer.sign(&msg, now()).expect("signs");
    assert!(!out.is_empty(), "{from} is signed");
    out.extend_from_slice(&msg);
    out
}

/// The same message with one body character changed.
fn tampered(msg: &[u8]) -> Vec<u8> {
    String::from_utf8(msg.to_vec())
        .unwrap()
        .replace("12 \u{20ac}", "13 \u{20ac}")
        .into_bytes()
}

fn run(mut cmd: Command, stdin: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the verifier starts");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn describe(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Debian's python3 (the module lives there, not in a pyenv or venv python).
fn debian_python() -> Command {
    assert!(
        Path::new("/usr/bin/python3").exists(),
        "/usr/bin/python3 is missing: .ci/run installs python3-dkim"
    );
    let probe = Command::new("/usr/bin/python3")
        .args(["-c", "import dkim, dns.query"])
        .output()
        .unwrap();
    assert!(
        probe.status.success(),
        "python3-dkim / python3-dnspython are not installed: .ci/run installs them; \
         the interop tests never skip\n{}",
        describe(&probe)
    );
    Command::new("/usr/bin/python3")
}

#[test]
#[ignore = "needs python3-dkim and python3-dnspython; run by .ci/run"]
fn dkimpy_verifies_rsa_and_ed25519() {
    let s = site();
    let script = common::root().join("tests/interop/dkimpy_verify.py");
    let port = s.dns.addr.port().to_string();
    for (from, expected) in [
        ("alice@both.example", 2),
        ("rob@rsa.example", 1),
        ("eve@ed.example", 1),
        ("jörg@bücher.example", 1),
    ] {
        let msg = signed(&s, from);
        let mut cmd = debian_python();
        cmd.arg(&script).arg(&port);
        let out = run(cmd, &msg);
        assert!(out.status.success(), "{from}: {}", describe(&out));
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(text.matches(" pass").count(), expected, "{from}: {text}");

        let mut cmd = debian_python();
        cmd.arg(&script).arg(&port);
        let out = run(cmd, &tampered(&msg));
        assert!(!out.status.success(), "{from} tampered: {}", describe(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("body hash mismatch"),
            "{}",
            describe(&out)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout)
                .matches(" fail")
                .count(),
            expected,
            "{}",
            describe(&out)
        );
    }
}

#[test]
#[ignore = "needs libmail-dkim-perl; run by .ci/run"]
fn mail_dkim_verifies_rsa() {
    let s = site();
    let probe = common::tool("perl")
        .args(["-MMail::DKIM::Verifier", "-MNet::DNS", "-e", "1"])
        .output()
        .unwrap();
    assert!(
        probe.status.success(),
        "libmail-dkim-perl is not installed: .ci/run installs it; the interop tests never skip\n{}",
        describe(&probe)
    );
    let script = common::root().join("tests/interop/mail_dkim_verify.pl");
    let port = s.dns.addr.port().to_string();
    for from in ["rob@rsa.example", "alice@both.example"] {
        let msg = signed(&s, from);
        let mut cmd = Command::new("perl");
        cmd.arg(&script).arg(&port);
        let out = run(cmd, &msg);
        assert!(out.status.success(), "{from}: {}", describe(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("rsa-sha256 pass"),
            "{}",
            describe(&out)
        );
        let mut cmd = Command::new("perl");
        cmd.arg(&script).arg(&port);
        let out = run(cmd, &tampered(&msg));
        assert!(!out.status.success(), "{from} tampered: {}", describe(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("rsa-sha256 fail"),
            "{}",
            describe(&out)
        );
    }
}

#[test]
#[ignore = "needs opendkim-tools, root and unshare; run by .ci/run"]
fn opendkim_testmsg_verifies_rsa_and_ed25519() {
    let s = site();
    common::tool("opendkim-testmsg");
    let relay = Relay::start("127.0.0.153", s.dns.addr);
    for from in ["rob@rsa.example", "eve@ed.example", "alice@both.example"] {
        let msg = signed(&s, from);
        let out = run(relay.command("opendkim-testmsg", &[]), &msg);
        assert!(
            out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
            "{from}: {}",
            describe(&out)
        );
        let out = run(relay.command("opendkim-testmsg", &[]), &tampered(&msg));
        assert!(
            !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("Bad signature"),
            "{from} tampered: {}",
            describe(&out)
        );
    }
}

#[test]
#[ignore = "needs python3-dkim, root and unshare; run by .ci/run"]
fn dkimverify_command_verifies_rsa_and_ed25519() {
    let s = site();
    common::tool("dkimverify");
    let relay = Relay::start("127.0.0.154", s.dns.addr);
    for from in ["rob@rsa.example", "eve@ed.example"] {
        let msg = signed(&s, from);
        let out = run(relay.command("dkimverify", &[]), &msg);
        assert!(out.status.success(), "{from}: {}", describe(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("signature ok"),
            "{}",
            describe(&out)
        );
        let out = run(relay.command("dkimverify", &[]), &tampered(&msg));
        // dkimverify reports the failure as an uncaught ValidationError.
        assert!(
            !out.status.success()
                && String::from_utf8_lossy(&out.stderr).contains("body hash mismatch"),
            "{from} tampered: {}",
            describe(&out)
        );
    }
}

/// UDP and TCP relay from `listen`:53 to the test DNS server, plus a
/// resolv.conf naming it, for tools that only use the system resolver.
struct Relay {
    stop: Arc<AtomicBool>,
    resolv_conf: tempfile::NamedTempFile,
}

impl Relay {
    fn start(listen: &str, upstream: SocketAddr) -> Relay {
        common::tool("unshare");
        let addr: SocketAddr = format!("{listen}:53").parse().unwrap();
        let udp = UdpSocket::bind(addr)
            .unwrap_or_else(|e| panic!("cannot bind {addr} (the relay needs root, as in CI): {e}"));
        udp.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let tcp = TcpListener::bind(addr).expect("TCP relay socket");
        tcp.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !flag.load(Ordering::Relaxed) {
                let Ok((n, client)) = udp.recv_from(&mut buf) else {
                    continue;
                };
                let up = UdpSocket::bind("127.0.0.1:0").unwrap();
                up.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
                up.send_to(&buf[..n], upstream).unwrap();
                let mut answer = [0u8; 4096];
                if let Ok((m, _)) = up.recv_from(&mut answer) {
                    let _ = udp.send_to(&answer[..m], client);
                }
            }
        });
        let flag = stop.clone();
        std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match tcp.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        std::thread::spawn(move || tcp_pipe(client, upstream));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        });
        let mut resolv_conf = tempfile::NamedTempFile::new().unwrap();
        writeln!(
            resolv_conf,
            "nameserver {listen}\noptions timeout:2 attempts:2"
        )
        .unwrap();
        Relay { stop, resolv_conf }
    }

    /// `program` in a private mount namespace whose /etc/resolv.conf
    /// points at the relay.
    fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(r#"mount --bind "$0" /etc/resolv.conf && exec "$@""#)
            .arg(self.resolv_conf.path())
            .arg(program)
            .args(args);
        cmd
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn tcp_pipe(mut client: TcpStream, upstream: SocketAddr) {
    let Ok(mut up) = TcpStream::connect(upstream) else {
        return;
    };
    let timeout = Some(Duration::from_secs(5));
    let _ = client.set_read_timeout(timeout);
    let _ = up.set_read_timeout(timeout);
    let (Ok(mut client2), Ok(mut up2)) = (client.try_clone(), up.try_clone()) else {
        return;
    };
    let t = std::thread::spawn(move || {
        let _ = std::io::copy(&mut client2, &mut up2);
        let _ = up2.shutdown(std::net::Shutdown::Write);
    });
    let mut buf = [0u8; 4096];
    loop {
        let n = match up.read(&mut buf) {
            Ok(n) => n,
            // A stop and continue ends a read with a timeout with EINTR.
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        if n == 0 || client.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = t.join();
}
