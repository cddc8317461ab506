//! Private instances of the Debian scanners for the interop tests: spamd
//! (SpamAssassin's rules as installed, `--local`, no sa-update, its own
//! site config and Bayes database), rspamd (Debian's config with its
//! workers, logs and database moved into a temp dir by `override.d`, DNS
//! pointed at a loopback port where nothing answers) and clamd (a database
//! directory with one EICAR signature, a Unix socket). Each waits until it
//! answers its protocol's ping and is killed on drop (TERM, then KILL).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::tool;

/// The EICAR test file (built from parts so this source is not itself
/// flagged by a virus scanner).
pub fn eicar() -> String {
    format!(
        "X5O!P%@AP[4\\PZX54(P^)7CC)7}}${}-{}-{}-{}-{}!$H+H*",
        "EICAR", "STANDARD", "ANTIVIRUS", "TEST", "FILE"
    )
}

/// SpamAssassin's GTUBE line (in parts, likewise).
pub fn gtube() -> String {
    format!(
        "XJS*C4JDBQADN1.NSBN3*2IDNEN*{}-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X",
        "GTUBE"
    )
}

/// Standard base64 (RFC 4648 with padding), for MIME attachments.
pub fn base64(b: &[u8]) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            out.push(if i <= c.len() {
                T[(n >> (18 - 6 * i) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}

/// Now, as a Date: field value (SpamAssassin scores dates far from its
/// clock, so test messages carry the current one).
pub fn date_now() -> String {
    let out = Command::new("date")
        .args(["-u", "-R"])
        .output()
        .expect("date runs");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Gives `dir` (recursively) to `user` when running as root: the daemons
/// drop to their own users and must write there.
fn give(dir: &Path, user: &str) {
    if is_root() {
        let st = Command::new("chown")
            .args(["-R", &format!("{user}:{user}")])
            .arg(dir)
            .status()
            .expect("chown runs");
        assert!(st.success(), "chown -R {user} {}", dir.display());
    }
}

/// A running daemon, killed on drop.
pub struct Daemon {
    pub name: &'static str,
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub log: PathBuf,
    pub started_in: Duration,
}

impl Daemon {
    fn spawn(name: &'static str, cmd: &mut Command, dir: tempfile::TempDir) -> Daemon {
        let log = dir.path().join(format!("{name}.out"));
        let out = std::fs::File::create(&log).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("{name} starts: {e}"));
        Daemon {
            name,
            child: Some(child),
            dir,
            log,
            started_in: Duration::ZERO,
        }
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `ready` says yes, or panics with the daemon's output.
    fn wait(&mut self, limit: Duration, ready: impl Fn() -> bool) {
        let t = Instant::now();
        while t.elapsed() < limit {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                panic!("{} exited ({status}):\n{}", self.name, self.output());
            }
            if ready() {
                self.started_in = t.elapsed();
                eprintln!("{} ready in {:?}", self.name, self.started_in);
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "{} not ready within {limit:?}:\n{}",
            self.name,
            self.output()
        );
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.id())
    }

    /// Stops it now (TERM, then KILL), e.g. to test a scanner that is down.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("--- {} output ---\n{}", self.name, self.output());
        }
    }
}

/// One request on a fresh TCP connection; the whole reply (until EOF, at
/// most 5 s).
pub fn ask(addr: &str, request: &[u8]) -> Option<Vec<u8>> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(request).ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).ok()?;
    Some(out)
}

pub struct Spamd {
    pub daemon: Daemon,
    pub addr: String,
}

impl Spamd {
    pub fn start() -> Spamd {
        let dir = tempfile::tempdir().unwrap();
        let site = dir.path().join("site");
        let home = dir.path().join("home");
        std::fs::create_dir_all(&site).unwrap();
        std::fs::create_dir_all(&home).unwrap();
        // The plugin loaders (v320.pre loads the Check plugin spamd needs).
        for e in std::fs::read_dir("/etc/spamassassin").expect("spamassassin is installed") {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "pre") {
                std::fs::copy(&p, site.join(p.file_name().unwrap())).unwrap();
            }
        }
        std::fs::write(
            site.join("local.cf"),
            format!(
                "use_bayes 1\nbayes_auto_learn 0\nbayes_path {}/bayes\nskip_rbl_checks 1\n",
                home.display()
            ),
        )
        .unwrap();
        give(&home, "debian-spamd");
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let mut cmd = tool("spamd");
        cmd.arg("--local")
            .arg(format!("--helper-home-dir={}", home.display()))
            .arg(format!("--siteconfigpath={}", site.display()))
            .args([
                "-i",
                "127.0.0.1",
                "-A",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .args(["--allow-tell", "--max-children", "2", "-x", "-s", "stderr"]);
        if is_root() {
            cmd.args(["-u", "debian-spamd"]);
        }
        let mut daemon = Daemon::spawn("spamd", &mut cmd, dir);
        let a = addr.clone();
        daemon.wait(Duration::from_secs(120), move || {
            ask(&a, b"PING SPAMC/1.5\r\n\r\n").is_some_and(|r| r.windows(4).any(|w| w == b"PONG"))
        });
        Spamd { daemon, addr }
    }

    /// How many spam and ham messages its Bayes database learned
    /// (`sa-learn --dump magic`).
    pub fn learned(&self) -> (u64, u64) {
        let home = self.daemon.dir.path().join("home");
        let out = tool("sa-learn")
            .arg(format!("--dbpath={}", home.display()))
            .args(["--dump", "magic"])
            .output()
            .expect("sa-learn runs");
        let text = String::from_utf8_lossy(&out.stdout);
        let count = |what: &str| {
            text.lines()
                .find(|l| l.contains(what))
                .and_then(|l| l.split_whitespace().nth(2))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        (count("nspam"), count("nham"))
    }
}

pub struct Rspamd {
    pub daemon: Daemon,
    /// The normal worker (`/checkv2`).
    pub addr: String,
    /// The controller (`/learnspam`, `/learnham`, `/stat`).
    pub controller: String,
    /// rspamd's only DNS server.
    pub dns: NxDomain,
}

impl Rspamd {
    pub fn start() -> Rspamd {
        Rspamd::start_with(None)
    }

    /// rspamd whose Bayes classifier keeps its statistics in the Redis at
    /// `redis` (rspamd learns only with a Redis backend).
    pub fn start_with_redis(redis: &Redis) -> Rspamd {
        Rspamd::start_with(Some(&redis.addr))
    }

    /// rspamd without its `greylist` action (`actions { greylist = null }`):
    /// every message gets an action mailc delivers under a lenient policy,
    /// for tests that read what was delivered; from score 3 to its `add
    /// header` the action is `rewrite subject` (`***SPAM*** %s`).
    pub fn start_without_greylist() -> Rspamd {
        Rspamd::start_with_local(
            None,
            &[(
                "actions.conf",
                "greylist = null;\nrewrite_subject = 3;\nsubject = \"***SPAM*** %s\";\n",
            )],
        )
    }

    /// How many messages its classifier learned (`learned` of the
    /// controller's `/stat`).
    pub fn learned(&self) -> u64 {
        let reply = ask(
            &self.controller,
            b"GET /stat HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .expect("rspamd's controller answers /stat");
        let text = String::from_utf8_lossy(&reply);
        let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
        let json: serde_json::Value = serde_json::from_str(body)
            .unwrap_or_else(|e| panic!("rspamd /stat is JSON ({e}): {text}"));
        json["learned"].as_u64().expect("/stat has `learned`")
    }

    fn start_with(redis: Option<&str>) -> Rspamd {
        Rspamd::start_with_local(redis, &[])
    }

    /// `local`: files written into `local.d` (name, content).
    fn start_with_local(redis: Option<&str>, local: &[(&str, &str)]) -> Rspamd {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for d in ["conf/override.d", "conf/local.d", "db", "run", "log"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        for (name, content) in local {
            std::fs::write(root.join("conf/local.d").join(name), content).unwrap();
        }
        if let Some(addr) = redis {
            std::fs::write(
                root.join("conf/local.d/redis.conf"),
                format!("servers = \"{addr}\";\n"),
            )
            .unwrap();
        }
        let normal = free_port();
        let controller = free_port();
        let o = root.join("conf/override.d");
        std::fs::write(
            o.join("worker-normal.inc"),
            format!("bind_socket = \"127.0.0.1:{normal}\";\ncount = 1;\n"),
        )
        .unwrap();
        std::fs::write(
            o.join("worker-controller.inc"),
            format!(
                "bind_socket = \"127.0.0.1:{controller}\";\ncount = 1;\nsecure_ip = \"127.0.0.1\";\n"
            ),
        )
        .unwrap();
        // No milter proxy, no fuzzy storage: only what mailc talks to.
        std::fs::write(o.join("worker-proxy.inc"), "enabled = false;\ncount = 0;\n").unwrap();
        std::fs::write(o.join("worker-fuzzy.inc"), "enabled = false;\ncount = 0;\n").unwrap();
        // DNS to a loopback server that answers NXDOMAIN at once: no
        // lookup leaves the machine, and each has the same answer in every
        // run (a closed port gave errors or timeouts, and rspamd's symbols
        // varied with them).
        let dns = NxDomain::start();
        std::fs::write(
            o.join("options.inc"),
            format!(
                "dns {{\n  nameserver = [\"{}\"];\n  timeout = 1s;\n  retransmits = 2;\n}}\n",
                dns.addr
            ),
        )
        .unwrap();
        std::fs::write(
            o.join("logging.inc"),
            format!(
                "type = \"file\";\nfilename = \"{}/log/rspamd.log\";\nlevel = \"info\";\n",
                root.display()
            ),
        )
        .unwrap();
        give(root, "_rspamd");
        let mut cmd = tool("rspamd");
        cmd.args(["-f", "-c", "/etc/rspamd/rspamd.conf"])
            .arg("--var")
            .arg(format!("LOCAL_CONFDIR={}/conf", root.display()))
            .arg("--var")
            .arg(format!("DBDIR={}/db", root.display()))
            .arg("--var")
            .arg(format!("RUNDIR={}/run", root.display()))
            .arg("--var")
            .arg(format!("LOGDIR={}/log", root.display()));
        if is_root() {
            cmd.args(["-u", "_rspamd", "-g", "_rspamd"]);
        }
        let mut daemon = Daemon::spawn("rspamd", &mut cmd, dir);
        let addr = format!("127.0.0.1:{normal}");
        let a = addr.clone();
        // Its first start compiles regexps and the TLD list: 7-40 s here.
        daemon.wait(Duration::from_secs(180), move || {
            ask(
                &a,
                b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            )
            .is_some_and(|r| r.windows(4).any(|w| w == b"pong"))
        });
        Rspamd {
            daemon,
            addr,
            controller: format!("127.0.0.1:{controller}"),
            dns,
        }
    }
}

/// A DNS server on loopback answering every query with NXDOMAIN (same id
/// and question, no records), in a thread that ends with the value.
pub struct NxDomain {
    pub addr: std::net::SocketAddr,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Queries answered.
    pub answered: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl NxDomain {
    pub fn start() -> NxDomain {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let answered = std::sync::Arc::new(AtomicUsize::new(0));
        let (s, a) = (stop.clone(), answered.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !s.load(Ordering::Relaxed) {
                let Ok((n, peer)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                if let Some(answer) = nxdomain(&buf[..n]) {
                    let _ = socket.send_to(&answer, peer);
                    a.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        NxDomain {
            addr,
            stop,
            answered,
        }
    }
}

impl Drop for NxDomain {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The NXDOMAIN answer to a query with one question (RFC 1035 §4.1): its id
/// and question, QR, RD copied, RA, RCODE 3; None for what is not such a
/// query.
fn nxdomain(query: &[u8]) -> Option<Vec<u8>> {
    if query.len() < 12 || query[2] & 0x80 != 0 || query[4..6] != [0, 1] {
        return None;
    }
    let mut i = 12;
    while *query.get(i)? != 0 {
        if query[i] & 0xc0 != 0 {
            return None;
        }
        i += usize::from(query[i]) + 1;
    }
    let end = i + 5;
    let question = query.get(12..end)?;
    let flags: u16 = 0x8000 | (u16::from(query[2] & 0x01) << 8) | 0x0080 | 3;
    let mut answer = query[..2].to_vec();
    answer.extend_from_slice(&flags.to_be_bytes());
    answer.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    answer.extend_from_slice(question);
    Some(answer)
}

/// A private Redis (no persistence) for rspamd's statistics.
pub struct Redis {
    pub daemon: Daemon,
    pub addr: String,
}

impl Redis {
    pub fn start() -> Redis {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let mut cmd = tool("redis-server");
        cmd.args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(dir.path());
        let mut daemon = Daemon::spawn("redis", &mut cmd, dir);
        let a = addr.clone();
        daemon.wait(Duration::from_secs(30), move || {
            ask_until(&a, b"PING\r\n", b"+PONG")
        });
        Redis { daemon, addr }
    }
}

/// Whether a request on a fresh connection gets a reply starting with
/// `expect` (for servers that keep the connection open).
fn ask_until(addr: &str, request: &[u8], expect: &[u8]) -> bool {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(request).is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    matches!(s.read(&mut buf), Ok(n) if buf[..n].starts_with(expect))
}

pub struct Clamd {
    pub daemon: Daemon,
    pub socket: PathBuf,
}

impl Clamd {
    /// `max_stream`: clamd's StreamMaxLength.
    pub fn start(max_stream: &str) -> Clamd {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        std::fs::create_dir_all(&db).unwrap();
        let hex: String = eicar().bytes().map(|b| format!("{b:02x}")).collect();
        std::fs::write(
            db.join("eicar.ndb"),
            format!("Eicar-Test-Signature:0:*:{hex}\n"),
        )
        .unwrap();
        let socket = dir.path().join("clamd.sock");
        let conf = dir.path().join("clamd.conf");
        std::fs::write(
            &conf,
            format!(
                "Foreground yes\nDatabaseDirectory {}\nLocalSocket {}\nPidFile {}/clamd.pid\n\
                 StreamMaxLength {max_stream}\nScanMail yes\nLogFile {}/clamd.log\n",
                db.display(),
                socket.display(),
                dir.path().display(),
                dir.path().display()
            ),
        )
        .unwrap();
        let mut cmd = tool("clamd");
        cmd.arg("-c").arg(&conf);
        let mut daemon = Daemon::spawn("clamd", &mut cmd, dir);
        let s = socket.clone();
        daemon.wait(Duration::from_secs(60), move || {
            let Ok(mut c) = std::os::unix::net::UnixStream::connect(&s) else {
                return false;
            };
            let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
            let mut out = Vec::new();
            c.write_all(b"zVERSION\0").is_ok()
                && c.read_to_end(&mut out).is_ok()
                && out.starts_with(b"ClamAV")
        });
        Clamd { daemon, socket }
    }
}
