//! A private Dovecot (Debian's `dovecot-imapd`) on loopback: its own
//! base_dir, config, passwd-file and Maildirs in a temporary directory,
//! plaintext IMAP on a free port. Needs root (Dovecot switches to its own
//! users); CI runs as root. Stopped by its master PID on drop.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const DOVECOT: &str = "/usr/sbin/dovecot";

pub struct Dovecot {
    pub dir: Option<tempfile::TempDir>,
    pub addr: SocketAddr,
    master: Option<u32>,
}

/// Folders mailc creates for every mailbox (special use, subscribed):
/// Dovecot is configured to auto-create and subscribe the same ones, so
/// both start from the same folder list.
const SPECIAL: [(&str, &str); 5] = [
    ("Sent", "\\Sent"),
    ("Drafts", "\\Drafts"),
    ("Trash", "\\Trash"),
    ("Junk", "\\Junk"),
    ("Archive", "\\Archive"),
];

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Dovecot {
    /// `users`: (login, password hash in `{SCHEME}hash` form); each gets a
    /// Maildir under the temp dir and the quota `quota_kib`.
    pub fn start(users: &[(String, String)], quota_kib: u64) -> Dovecot {
        assert!(
            Path::new(DOVECOT).exists(),
            "{DOVECOT} is missing: the differential test needs Debian's dovecot-imapd \
             (.ci/run installs it); it never skips"
        );
        let uid = Command::new("id").arg("-u").output().expect("id runs");
        assert!(
            String::from_utf8_lossy(&uid.stdout).trim() == "0",
            "the differential test starts Dovecot, which needs root (CI runs as root)"
        );
        let dir = tempfile::Builder::new()
            .prefix("mailc-imap-diff-")
            .tempdir()
            .unwrap();
        let base = dir.path();
        // Dovecot's mail processes run as the `dovecot` user: the path to the
        // Maildirs must be searchable by it.
        set_mode(base, 0o755);
        let vmail = base.join("vmail");
        let run = base.join("run");
        std::fs::create_dir_all(&vmail).unwrap();
        std::fs::create_dir_all(&run).unwrap();
        let passwd: String = users
            .iter()
            .map(|(user, hash)| format!("{user}:{hash}\n"))
            .collect();
        std::fs::write(base.join("passwd"), passwd).unwrap();
        let status = Command::new("chown")
            .args(["-R", "dovecot:dovecot"])
            .arg(&vmail)
            .status()
            .expect("chown runs");
        assert!(status.success(), "chown of the Dovecot maildirs");
        let port = free_port();
        let special: String = SPECIAL
            .iter()
            .map(|(name, use_)| {
                format!(
                    "  mailbox {name} {{\n    special_use = {use_}\n    auto = subscribe\n  }}\n"
                )
            })
            .collect();
        let conf = base.join("dovecot.conf");
        std::fs::write(
            &conf,
            format!(
                r#"protocols = imap
listen = 127.0.0.1
base_dir = {run}
log_path = {base}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
# No failure delay and no penalty for loopback: the scripts fail logins on
# purpose, and mailc is not made to wait either.
auth_failure_delay = 0
login_trusted_networks = 127.0.0.0/8
first_valid_uid = 1
mail_location = maildir:{vmail}/%n
passdb {{
  driver = passwd-file
  args = {base}/passwd
}}
userdb {{
  driver = static
  args = uid=dovecot gid=dovecot home={vmail}/%n
}}
namespace inbox {{
  inbox = yes
  separator = /
  # mailc subscribes INBOX with the special-use folders.
  mailbox INBOX {{
    auto = subscribe
  }}
{special}}}
mail_plugins = quota
protocol imap {{
  mail_plugins = $mail_plugins imap_quota
}}
plugin {{
  # Root name "": the same as mailc's (RFC 9208 lets the server name it).
  quota = maildir
  quota_rule = *:storage={quota_kib}K
}}
service imap-login {{
  inet_listener imap {{
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"#,
                run = run.display(),
                base = base.display(),
                vmail = vmail.display(),
            ),
        )
        .unwrap();
        // The master daemonises; its children would hold a pipe open, so
        // its output goes to the log file (or nowhere) and only the status
        // of the starting process is read.
        let status = Command::new(DOVECOT)
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("dovecot runs");
        assert!(
            status.success(),
            "dovecot did not start ({status}); check the config with `doveconf -c {}`:\n{}",
            conf.display(),
            std::fs::read_to_string(base.join("dovecot.log")).unwrap_or_default()
        );
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut d = Dovecot {
            dir: Some(dir),
            addr,
            master: None,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if d.master.is_none() {
                d.master = std::fs::read_to_string(run.join("master.pid"))
                    .ok()
                    .and_then(|s| s.trim().parse().ok());
            }
            if d.master.is_some() && TcpStream::connect(addr).is_ok() {
                return d;
            }
            assert!(
                Instant::now() < deadline,
                "Dovecot does not listen on {addr}:\n{}",
                d.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.as_ref().unwrap().path().to_path_buf()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path().join("dovecot.log")).unwrap_or_default()
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        if let Some(pid) = self.master.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status();
            // The master takes its children down with it; wait until it is gone.
            let deadline = Instant::now() + Duration::from_secs(10);
            while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        if std::thread::panicking()
            && let Some(dir) = self.dir.take()
        {
            eprintln!("Dovecot's directory kept at {}", dir.keep().display());
        }
    }
}
