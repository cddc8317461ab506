//! The layering rule of DESIGN.md, enforced on the source text: the
//! compiler layers never open sockets or start an async runtime, and the
//! protocol layers (`proto`, `session`) never touch sockets, files or tokio.

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

/// (module path under src/, forbidden substrings). A row whose module does
/// not exist fails the test: the table must follow the code.
const RULES: &[(&str, &[&str])] = &[
    (
        "spec",
        &[
            "tokio",
            "std::net::Tcp",
            "std::net::Udp",
            "TcpStream",
            "TcpListener",
        ],
    ),
    (
        "compile",
        &[
            "tokio",
            "std::net::Tcp",
            "std::net::Udp",
            "TcpStream",
            "TcpListener",
        ],
    ),
    (
        "tables",
        &["tokio", "std::fs", "std::net::Tcp", "TcpStream", "File::"],
    ),
    (
        "diag.rs",
        &["tokio", "std::fs", "std::net::Tcp", "TcpStream"],
    ),
    (
        "addr.rs",
        &["tokio", "std::fs", "std::net::Tcp", "TcpStream"],
    ),
    (
        "ipnet.rs",
        &["tokio", "std::fs", "std::net::Tcp", "TcpStream"],
    ),
    (
        "proto",
        &[
            "tokio",
            "std::fs",
            "std::net::Tcp",
            "std::net::Udp",
            "TcpStream",
            "File::",
        ],
    ),
    (
        "session",
        &[
            "tokio",
            "std::fs",
            "std::net::Tcp",
            "std::net::Udp",
            "TcpStream",
            "File::",
        ],
    ),
];

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
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                for bad in *forbidden {
                    assert!(
                        !code.contains(bad),
                        "{}:{}: `{bad}` is not allowed in src/{module} (layering rule)",
                        f.display(),
                        n + 1
                    );
                }
            }
        }
    }
}
