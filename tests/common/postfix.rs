//! A private Postfix instance on loopback for the interop tests: its own
//! configuration, queue and log in a temporary directory under /var/tmp,
//! nothing chrooted, smtpd on the address the test chooses, stopped on
//! drop. Needs root and Debian's `postfix` (installed by `.ci/run`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub struct Postfix {
    pub etc: PathBuf,
    /// Base of `virtual_mailbox_base` (owned by the postfix user).
    pub vmail: PathBuf,
    /// The instance's directory: `postfix.log` is there.
    pub dir: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = Command::new("postfix")
            .arg("-c")
            .arg(&self.etc)
            .arg("stop")
            .output();
        if std::thread::panicking() {
            eprintln!("--- postfix log ---\n{}", self.log());
        }
    }
}

fn id(flag: &str) -> u32 {
    let out = Command::new("id").args([flag, "postfix"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

impl Postfix {
    /// Starts Postfix with smtpd on `ip:port`. `main_cf` is appended to a
    /// base `main.cf` (queue, data directory, log file, loopback only,
    /// `mynetworks` 127.0.0.0/8); in it `{ETC}`, `{VMAIL}`, `{UID}` and
    /// `{GID}` stand for the configuration directory, the virtual mailbox
    /// base and the postfix user's ids. `files` are written to the
    /// configuration directory (maps named in `main_cf`).
    pub fn start(ip: &str, port: u16, main_cf: &str, files: &[(&str, &str)]) -> Postfix {
        let dir = tempfile::Builder::new()
            .prefix("mailc-postfix-")
            .tempdir_in("/var/tmp")
            .unwrap();
        let w = dir.path();
        let (etc, spool, data, vmail) = (
            w.join("etc"),
            w.join("spool"),
            w.join("data"),
            w.join("vmail"),
        );
        for d in [&etc, &spool, &data, &vmail] {
            std::fs::create_dir_all(d).unwrap();
        }
        let (uid, gid) = (id("-u"), id("-g"));
        for d in [&vmail, &data] {
            std::os::unix::fs::chown(d, Some(uid), Some(gid)).unwrap();
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(w, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::copy("/etc/postfix/dynamicmaps.cf", etc.join("dynamicmaps.cf")).unwrap();
        let _ = Command::new("cp")
            .arg("-r")
            .arg("/etc/postfix/dynamicmaps.cf.d")
            .arg(&etc)
            .status();
        let extra = main_cf
            .replace("{ETC}", &etc.display().to_string())
            .replace("{VMAIL}", &vmail.display().to_string())
            .replace("{UID}", &uid.to_string())
            .replace("{GID}", &gid.to_string());
        std::fs::write(
            etc.join("main.cf"),
            format!(
                "compatibility_level = 3.6\nqueue_directory = {spool}\ndata_directory = {data}\nmydestination =\ninet_interfaces = loopback-only\ninet_protocols = ipv4\nmynetworks = 127.0.0.0/8\nsmtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination\nmaillog_file = {w}/postfix.log\nalternate_config_directories = {etc}\n{extra}",
                spool = spool.display(),
                data = data.display(),
                w = w.display(),
                etc = etc.display(),
            ),
        )
        .unwrap();
        for (name, text) in files {
            std::fs::write(etc.join(name), text).unwrap();
        }
        // master.cf: smtpd on ip:port, nothing chrooted.
        let master = std::fs::read_to_string("/etc/postfix/master.cf").unwrap();
        let mut lines = Vec::new();
        for line in master.lines() {
            let parts: Vec<&str> = line.split_whitespace().collect();
            if parts.len() >= 8 && !line.starts_with([' ', '#', '\t']) {
                let mut p: Vec<String> = parts.iter().map(|s| s.to_string()).collect();
                if p[0] == "smtp" && p[1] == "inet" {
                    p[0] = format!("{ip}:{port}");
                }
                if p[4] == "y" {
                    p[4] = "n".into();
                }
                lines.push(p.join(" "));
            } else {
                lines.push(line.to_string());
            }
        }
        std::fs::write(etc.join("master.cf"), lines.join("\n") + "\n").unwrap();
        for args in [
            vec!["post-install", "create-missing"],
            vec!["set-permissions"],
        ] {
            let _ = Command::new("postfix")
                .arg("-c")
                .arg(&etc)
                .args(args)
                .output();
        }
        let out = Command::new("postfix")
            .arg("-c")
            .arg(&etc)
            .arg("start")
            .output()
            .expect("postfix runs (apt-get install postfix)");
        if !out.status.success() {
            let check = Command::new("postfix")
                .arg("-c")
                .arg(&etc)
                .arg("check")
                .output();
            panic!(
                "postfix start: {out:?}\ncheck: {check:?}\nlog: {}",
                std::fs::read_to_string(w.join("postfix.log")).unwrap_or_default()
            );
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect((ip, port)).is_err() {
            assert!(Instant::now() < deadline, "postfix does not listen");
            std::thread::sleep(Duration::from_millis(100));
        }
        Postfix {
            etc,
            vmail,
            dir: w.to_path_buf(),
            _dir: dir,
        }
    }

    /// Postfix's log so far (`maillog_file`).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("postfix.log")).unwrap_or_default()
    }

    /// Waits until a log line contains every one of `needles`; returns it.
    pub fn wait_log(&self, needles: &[&str], timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self
                .log()
                .lines()
                .find(|l| needles.iter().all(|n| l.contains(n)))
            {
                return Some(line.to_string());
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `postqueue -p`: the messages Postfix still holds, with the reason
    /// of each deferred recipient.
    pub fn queue(&self) -> String {
        let out = Command::new("postqueue")
            .arg("-c")
            .arg(&self.etc)
            .arg("-p")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Files delivered by Postfix's virtual(8) under `relative` (e.g.
    /// `remote.test/carol`), in `new/` and `cur/`.
    pub fn maildir(&self, relative: &str) -> Vec<PathBuf> {
        maildir_files(&self.vmail.join(relative))
    }
}

/// Files in a Maildir folder's `new/` and `cur/`, sorted.
pub fn maildir_files(folder: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for sub in ["new", "cur"] {
        if let Ok(rd) = std::fs::read_dir(folder.join(sub)) {
            out.extend(rd.flatten().map(|e| e.path()));
        }
    }
    out.sort();
    out
}
