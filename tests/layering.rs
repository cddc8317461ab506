//! The layering rule of DESIGN.md, enforced on the source text: the
//! compiler layers never open sockets or start an async runtime; the
//! protocol layers (`proto`, `session`) never touch sockets, files or
//! tokio, nor reach up into the drivers, storage or spool; `auth` never
//! imports `compile` (the dependency goes one way) and `store` knows no
//! protocol.

mod common;

use std::path::Path;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Sockets, in any spelling. Address *values* (`std::net::SocketAddr`,
/// `IpAddr`) are plain data and allowed everywhere.
const SOCKETS: &[&str] = &[
    "std::net::Tcp",
    "std::net::Udp",
    "TcpStream",
    "TcpListener",
    "UdpSocket",
    "UnixStream",
    "UnixListener",
];

/// An async runtime.
const ASYNC: &[&str] = &["tokio"];

/// Files and directories.
const FILES: &[&str] = &["std::fs", "File::", "OpenOptions", "read_dir", "rustix::fs"];

/// The layers above the protocol code: drivers, sockets, storage, spool,
/// wiring.
const ABOVE_PROTOCOL: &[&str] = &[
    "crate::services",
    "crate::net",
    "crate::store",
    "crate::queue",
    "crate::runtime",
    "crate::cli",
];

/// (module path under src/, groups of forbidden substrings). A row whose
/// module does not exist fails the test: the table must follow the code.
const RULES: &[(&str, &[&[&str]])] = &[
    // The compiler layers: no sockets, no async runtime.
    ("spec", &[ASYNC, SOCKETS]),
    ("compile", &[ASYNC, SOCKETS]),
    ("tables", &[ASYNC, SOCKETS, &["std::fs", "File::"]]),
    ("diag.rs", &[ASYNC, SOCKETS, &["std::fs"]]),
    ("addr.rs", &[ASYNC, SOCKETS, &["std::fs"]]),
    ("ipnet.rs", &[ASYNC, SOCKETS, &["std::fs"]]),
    // `compile` uses `auth` (password-hash formats, the `Secrets` type);
    // never the other way round.
    (
        "auth",
        &[ASYNC, SOCKETS, &["crate::compile", "crate::session"]],
    ),
    // Wire formats: pure functions over bytes, below the sessions.
    (
        "proto",
        &[ASYNC, SOCKETS, FILES, ABOVE_PROTOCOL, &["crate::session"]],
    ),
    // Sessions: sans-I/O state machines; storage is reached through traits
    // the session declares, implemented above it in `services`.
    ("session", &[ASYNC, SOCKETS, FILES, ABOVE_PROTOCOL]),
    // Inbound authentication's decisions: pure over the checks' results.
    ("inbound", &[ASYNC, SOCKETS, FILES, ABOVE_PROTOCOL]),
    // Sieve: pure over a message; includes, folders and vacation state
    // come through the `Host` trait the caller implements.
    ("filter", &[ASYNC, SOCKETS, FILES, ABOVE_PROTOCOL]),
    // Outbound delivery's pure parts (DSN, DKIM signing, SRS): no sockets
    // and no async runtime; files only to load keys. The scheduler and the
    // SMTP client that use them live in `services`.
    (
        "outbound",
        &[
            ASYNC,
            SOCKETS,
            &[
                "crate::services",
                "crate::net",
                "crate::runtime",
                "crate::queue",
            ],
        ],
    ),
    // The Maildir store: files only; it knows nothing of protocols.
    (
        "store",
        &[
            ASYNC,
            SOCKETS,
            &["crate::session", "crate::services", "crate::proto"],
        ],
    ),
];

/// Lines of `text` (1-based) that use a forbidden substring outside a
/// `//` comment, with the substring.
fn violations<'a>(text: &str, forbidden: &[&'a [&'a str]]) -> Vec<(usize, &'a str)> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        for bad in forbidden.iter().flat_map(|g| g.iter()) {
            if code.contains(bad) {
                out.push((n + 1, *bad));
            }
        }
    }
    out
}

#[test]
fn layers_do_not_reach_down() {
    let src = common::root().join("src");
    for (module, forbidden) in RULES {
        let path = src.join(module);
        assert!(
            path.exists(),
            "layering rule names src/{module}, which does not exist"
        );
        let mut files = Vec::new();
        if path.is_dir() {
            rust_files(&path, &mut files);
        } else {
            files.push(path);
        }
        assert!(!files.is_empty(), "src/{module} holds no Rust file");
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            let found = violations(&text, forbidden);
            assert!(
                found.is_empty(),
                "{}: {found:?} not allowed in src/{module} (layering rule: line, substring)",
                f.display()
            );
        }
    }
}

/// The checker itself finds what it must and ignores comments.
#[test]
fn the_checker_sees_a_violation() {
    let session_rule = RULES.iter().find(|(m, _)| *m == "session").unwrap().1;
    let text = "use std::net::SocketAddr;\n// tokio in a comment is fine\nlet f = std::fs::read(p);\nuse crate::compile::Secrets;\n";
    assert_eq!(violations(text, session_rule), vec![(3, "std::fs")]);
    let auth_rule = RULES.iter().find(|(m, _)| *m == "auth").unwrap().1;
    assert_eq!(violations(text, auth_rule), vec![(4, "crate::compile")]);
    let proto_rule = RULES.iter().find(|(m, _)| *m == "proto").unwrap().1;
    assert_eq!(
        violations("let s = tokio::net::TcpStream::connect(a);", proto_rule),
        vec![(1, "tokio"), (1, "TcpStream")]
    );
}
