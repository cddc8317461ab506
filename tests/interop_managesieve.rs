//! Interop with a real ManageSieve client: Debian's `sieve-connect` over
//! STARTTLS uploads, lists, activates, downloads, deactivates and deletes
//! a script, and shows the line of a script with a syntax error. Ignored
//! in a plain `cargo test`; `.ci/run` installs sieve-connect and runs this
//! with `--ignored`.

mod common;

use std::io::Write;
use std::process::{Output, Stdio};

use common::server::{Server, standard_domain};
use common::tool;

const GOOD: &str = "require [\"fileinto\", \"vacation\"];\n\
if header :contains \"subject\" \"[mailc-list]\" {\n\
    fileinto \"Lists\";\n\
    stop;\n\
}\n\
vacation :days 7 \"Away until Monday.\";\n";

/// A missing `;` after `fileinto "x"`: sieve-rs sees the `}` on line 5.
const BAD: &str = "require \"fileinto\";\n\nif true {\n  fileinto \"x\"\n}\n";

/// Runs sieve-connect against the server's managesieve listener as alice,
/// the password on stdin, verifying nothing of the self-signed
/// certificate (it is a test certificate) but requiring TLS.
fn sieve_connect(server: &Server, mech: &str, args: &[&str]) -> Output {
    let addr = server.addr("managesieve");
    let mut child = tool("sieve-connect")
        .args(["--server", &addr.ip().to_string()])
        .args(["--port", &addr.port().to_string()])
        .args(["--user", "alice@example.test", "--passwordfd", "0"])
        .args(["--notlsverify", "--noclearchan", "--authmech", mech])
        .args(args)
        .current_dir(server.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sieve-connect runs");
    child.stdin.take().unwrap().write_all(b"secret\n").unwrap();
    let out = child.wait_with_output().unwrap();
    eprintln!(
        "sieve-connect {args:?}: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "sieve-connect failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
#[ignore = "needs sieve-connect; run by .ci/run"]
fn sieve_connect_manages_scripts() {
    let server = Server::start(&format!(
        "listen \"managesieve\" \"127.0.0.1:0\"\n{}",
        standard_domain()
    ));
    std::fs::write(server.path().join("good.sieve"), GOOD).unwrap();
    std::fs::write(server.path().join("bad.sieve"), BAD).unwrap();
    let dir = server.state().join("sieve/example.test/alice");

    ok(&sieve_connect(
        &server,
        "PLAIN",
        &[
            "--localsieve",
            "good.sieve",
            "--remotesieve",
            "filters",
            "--upload",
        ],
    ));
    assert_eq!(
        std::fs::read_to_string(dir.join("filters.sieve")).unwrap(),
        GOOD
    );
    assert_eq!(
        ok(&sieve_connect(&server, "PLAIN", &["--list"])).trim(),
        "\"filters\""
    );
    ok(&sieve_connect(
        &server,
        "PLAIN",
        &["--remotesieve", "filters", "--activate"],
    ));
    // LOGIN as well as PLAIN.
    assert_eq!(
        ok(&sieve_connect(&server, "LOGIN", &["--list"])).trim(),
        "\"filters\" ACTIVE"
    );
    ok(&sieve_connect(
        &server,
        "PLAIN",
        &[
            "--remotesieve",
            "filters",
            "--localsieve",
            "downloaded.sieve",
            "--download",
        ],
    ));
    assert_eq!(
        std::fs::read_to_string(server.path().join("downloaded.sieve")).unwrap(),
        GOOD
    );

    // The syntax error is refused, and the user sees its line.
    let out = sieve_connect(
        &server,
        "PLAIN",
        &[
            "--localsieve",
            "bad.sieve",
            "--remotesieve",
            "bad",
            "--upload",
        ],
    );
    assert!(!out.status.success());
    let shown = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(shown.contains("line 5:"), "{shown}");
    assert!(!dir.join("bad.sieve").exists());
    let out = sieve_connect(
        &server,
        "PLAIN",
        &["--localsieve", "bad.sieve", "--checkscript"],
    );
    assert!(!out.status.success());

    // The active script cannot be deleted; deactivated, it can.
    let out = sieve_connect(&server, "PLAIN", &["--remotesieve", "filters", "--delete"]);
    assert!(!out.status.success());
    assert!(dir.join("filters.sieve").exists());
    ok(&sieve_connect(&server, "PLAIN", &["--deactivate"]));
    assert!(!dir.join(".active").exists());
    ok(&sieve_connect(
        &server,
        "PLAIN",
        &["--remotesieve", "filters", "--delete"],
    ));
    assert!(!dir.join("filters.sieve").exists());
    assert_eq!(ok(&sieve_connect(&server, "PLAIN", &["--list"])).trim(), "");
}
