#!/usr/bin/env python3
"""IMAP benchmark (not a test): mailc and Dovecot serve copies of the same
Maildir on loopback, in the same run, over plaintext IMAP (so TLS cost is
left out of both). Two measurements:

1. Operations/s: N client processes each loop over SELECT, FETCH of
   envelopes and flags for 20 messages, FETCH of one whole message, SEARCH
   (flag and header keys), STORE, APPEND and UID EXPUNGE of what it
   appended, for a fixed time; every command counts as one operation.
2. Memory per idle connection: K clients log in, SELECT INBOX and IDLE;
   mailc's RSS growth / K against the summed PSS of Dovecot's imap and
   imap-login processes / K.

usage: bench/imap_bench.py [--messages 300] [--clients 8] [--seconds 10] [--idle 1000]
Needs: root (Dovecot), dovecot-imapd, a release build.
"""
import argparse
import crypt
import imaplib
import multiprocessing
import os
import random
import resource
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAILC = os.path.join(ROOT, "target", "release", "mailc")
USER, PASS = "alice@example.test", "secret"


def wait_port(port):
    for _ in range(400):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


def worker(port, seconds, seed, out):
    rnd = random.Random(seed)
    m = imaplib.IMAP4("127.0.0.1", port)
    m.login(USER, PASS)
    ops = 0
    deadline = time.time() + seconds
    small = b"From: load@example.com\r\nSubject: appended\r\n\r\nsmall body\r\n"
    while time.time() < deadline:
        typ, data = m.select("INBOX")
        n = int(data[0])
        ops += 1
        a = rnd.randint(1, max(1, n - 20))
        m.fetch(f"{a}:{a + 19}", "(UID FLAGS RFC822.SIZE ENVELOPE)")
        m.fetch(str(rnd.randint(1, n)), "(BODY.PEEK[])")
        m.search(None, "UNSEEN")
        m.search(None, "SUBJECT", f'"bench {rnd.randint(0, 99)}"')
        m.store(str(rnd.randint(1, n)), "+FLAGS", "(\\Seen)")
        typ, data = m.append("INBOX", None, None, small)
        ops += 6
        uid = data[0].split(b" ")[2].rstrip(b"]").decode() if b"APPENDUID" in data[0] else None
        if uid:
            m.uid("STORE", uid, "+FLAGS.SILENT", "(\\Deleted)")
            m.uid("EXPUNGE", uid)
            ops += 2
    m.logout()
    out.put(ops)


def load(port, clients, seconds):
    q = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=worker, args=(port, seconds, i, q)) for i in range(clients)]
    start = time.time()
    for p in procs:
        p.start()
    total = sum(q.get() for _ in procs)
    for p in procs:
        p.join()
    return total / (time.time() - start)


def idle_connections(port, k):
    socks = []
    for i in range(k):
        s = socket.create_connection(("127.0.0.1", port))
        f = s.makefile("rb")
        f.readline()
        for tag, cmd in (("a", f"LOGIN {USER} {PASS}"), ("b", "SELECT INBOX")):
            s.sendall(f"{tag} {cmd}\r\n".encode())
            while True:
                line = f.readline()
                if not line:
                    raise SystemExit(f"connection {i} closed: {cmd}")
                if line.startswith(tag.encode() + b" "):
                    if b" OK" not in line:
                        raise SystemExit(f"connection {i}: {line!r}")
                    break
        s.sendall(b"c IDLE\r\n")
        if not f.readline().startswith(b"+"):
            raise SystemExit(f"connection {i}: IDLE refused")
        socks.append((s, f))
    return socks


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def dovecot_pss_kib():
    total = 0
    count = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/comm") as f:
                comm = f.read().strip()
            if comm not in ("imap", "imap-login"):
                continue
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        count += 1
        except OSError:
            pass
    return total, count


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=300)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--idle", type=int, default=1000)
    args = ap.parse_args()
    if not shutil.which("dovecot"):
        raise SystemExit("dovecot missing: apt-get install dovecot-imapd")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    work = tempfile.mkdtemp(prefix="mailc-imap-bench-", dir="/var/tmp")
    os.chmod(work, 0o755)
    state = os.path.join(work, "state")
    smtp_port, imap_port, dovecot_port = 12825, 12143, 12144
    cfg = os.path.join(work, "mailc.kdl")
    # SHA512-CRYPT: cheap enough for a thousand logins in a benchmark.
    hash_ = crypt.crypt(PASS, crypt.mksalt(crypt.METHOD_SHA512))
    with open(cfg, "w") as f:
        f.write(f'''hostname "mail.example.test"
state "{state}"
tls self-signed=#true
listen "smtp" "127.0.0.1:{smtp_port}"
listen "imap" "127.0.0.1:{imap_port}" insecure-plaintext-auth=#true max-connections=5000 max-connections-per-ip=5000
limits {{
    max-connections 5000
    max-connections-per-ip 5000
}}
domain "example.test" {{
    dkim selector="s1"
    dmarc policy="none"
    mailbox "alice" password="{hash_}" {{
        alias "postmaster"
    }}
}}
''')
    log = open(os.path.join(work, "mailc.log"), "w")
    proc = subprocess.Popen([MAILC, "serve", cfg], stdout=log, stderr=log, env={**os.environ, "RUST_LOG": "mailc=warn"})
    try:
        wait_port(smtp_port)
        rnd = random.Random(1)
        s = smtplib.SMTP("127.0.0.1", smtp_port)
        for i in range(args.messages):
            body = ("lorem ipsum dolor sit amet " * rnd.randint(10, 300)) + "\r\n"
            s.sendmail("b@remote.example", [USER],
                       f"From: Sender {i % 17} <s{i % 17}@remote.example>\r\nTo: {USER}\r\nSubject: bench {i % 100}\r\n"
                       f"Date: Mon, 30 Nov 2026 10:00:00 +0000\r\nMessage-ID: <b{i}@remote>\r\n\r\n{body}".encode())
        s.quit()
        maildir = os.path.join(state, "mail", "example.test", "alice")
        while len(os.listdir(os.path.join(maildir, "new"))) < args.messages:
            time.sleep(0.05)
        vmail = os.path.join(work, "vmail", "alice")
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(vmail, sub))
        for name in os.listdir(os.path.join(maildir, "new")):
            shutil.copy(os.path.join(maildir, "new", name), os.path.join(vmail, "new", name))
        subprocess.run(["chown", "-R", "dovecot:dovecot", os.path.join(work, "vmail")], check=True)
        with open(os.path.join(work, "passwd"), "w") as f:
            f.write(f"{USER}:{{PLAIN}}{PASS}\n")
        dconf = os.path.join(work, "dovecot.conf")
        run = os.path.join(work, "run")
        os.makedirs(run)
        with open(dconf, "w") as f:
            f.write(f"""protocols = imap
listen = 127.0.0.1
base_dir = {run}
log_path = {work}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 1
mail_location = maildir:{work}/vmail/alice
mail_max_userip_connections = 5000
default_process_limit = 5000
default_client_limit = 10000
passdb {{
  driver = passwd-file
  args = {work}/passwd
}}
userdb {{
  driver = static
  args = uid=dovecot gid=dovecot home={work}/vmail/alice
}}
service imap-login {{
  inet_listener imap {{
    port = {dovecot_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
""")
        subprocess.run(["dovecot", "-c", dconf], check=True)
        try:
            wait_port(dovecot_port)
            # Warm both (first SELECT builds each server's index).
            for port in (imap_port, dovecot_port):
                m = imaplib.IMAP4("127.0.0.1", port)
                m.login(USER, PASS)
                m.select("INBOX")
                m.fetch("1:*", "(FLAGS ENVELOPE)")
                m.logout()
            rates = {}
            for name, port in (("mailc", imap_port), ("dovecot", dovecot_port)):
                rates[name] = load(port, args.clients, args.seconds)
                print(f"{name:8} {rates[name]:8.0f} IMAP operations/s ({args.clients} clients, {args.seconds} s, {args.messages} messages)", flush=True)
            print(f"ratio mailc/dovecot: {rates['mailc'] / rates['dovecot']:.2f}x", flush=True)

            before = rss_kib(proc.pid)
            socks = idle_connections(imap_port, args.idle)
            time.sleep(1)
            after = rss_kib(proc.pid)
            print(f"mailc    {args.idle} idle connections: RSS +{after - before} KiB = {(after - before) / args.idle:.1f} KiB per connection", flush=True)
            for s, _ in socks:
                s.close()
            base, _ = dovecot_pss_kib()
            socks = idle_connections(dovecot_port, args.idle)
            time.sleep(1)
            total, procs = dovecot_pss_kib()
            print(f"dovecot  {args.idle} idle connections: PSS +{total - base} KiB in {procs} processes = {(total - base) / args.idle:.1f} KiB per connection", flush=True)
            for s, _ in socks:
                s.close()
        finally:
            subprocess.run(["doveadm", "-c", dconf, "stop"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
