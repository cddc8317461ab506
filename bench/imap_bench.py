#!/usr/bin/env python3
"""IMAP benchmark (not a test): mailc and Dovecot serve copies of the same
Maildir on loopback, in the same run, over plaintext IMAP (so TLS cost is
left out of both). Two measurements:

1. Operations/s and server CPU per operation: N client threads of the Rust
   load generator (bench/imap_load.rs, built as a cargo example) each loop
   over SELECT, FETCH of envelopes and flags for 20 messages, FETCH of one
   whole message, SEARCH (flag and header keys), STORE, APPEND and UID
   EXPUNGE of what it appended, for a fixed time; every command counts as
   one operation. Also the median latency of each operation (one imaplib
   client).
2. Memory per idle connection: K clients log in, SELECT INBOX and IDLE;
   mailc's RSS growth / K against the summed PSS of Dovecot's imap and
   imap-login processes / K.

usage: bench/imap_bench.py [--messages 300] [--clients 8] [--seconds 10] [--idle 1000]
Needs: root (Dovecot), dovecot-imapd, a release build with the load
generator: cargo build --release --example imap_load.
"""
import argparse
import crypt
import imaplib
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
MAILC = os.environ.get("MAILC_BIN", os.path.join(ROOT, "target", "release", "mailc"))

# The MX of the benchmark measures mail handling without the inbound checks
# (SPF/DKIM/DMARC need the senders' DNS; no query leaves the machine).
# Builds older than the `inbound { checks }` setting (2026-12-03) refuse
# these lines: MAILC_BENCH_COMPAT=1 leaves them out for such a build.
NO_CHECKS = "" if os.environ.get("MAILC_BENCH_COMPAT") else 'resolver "127.0.0.1:9"\ninbound {\n    checks #false\n}\n'
USER, PASS = "alice@example.test", "secret"


def wait_port(port):
    for _ in range(400):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


def op_times(port, rounds=40):
    """Median latency of each operation of the cycle, one client."""
    rnd = random.Random(7)
    m = imaplib.IMAP4("127.0.0.1", port)
    m.login(USER, PASS)
    times = {}

    def timed(name, f):
        t0 = time.perf_counter()
        r = f()
        times.setdefault(name, []).append(time.perf_counter() - t0)
        return r

    small = b"From: load@example.com\r\nSubject: appended\r\n\r\nsmall body\r\n"
    for _ in range(rounds):
        typ, data = timed("SELECT", lambda: m.select("INBOX"))
        n = int(data[0])
        a = rnd.randint(1, max(1, n - 20))
        timed("FETCH 20 ENVELOPE", lambda: m.fetch(f"{a}:{a + 19}", "(UID FLAGS RFC822.SIZE ENVELOPE)"))
        timed("FETCH BODY[]", lambda: m.fetch(str(rnd.randint(1, n)), "(BODY.PEEK[])"))
        timed("SEARCH UNSEEN", lambda: m.search(None, "UNSEEN"))
        timed("SEARCH SUBJECT", lambda: m.search(None, "SUBJECT", f'"bench {rnd.randint(0, 99)}"'))
        timed("STORE", lambda: m.store(str(rnd.randint(1, n)), "+FLAGS", "(\\Seen)"))
        typ, data = timed("APPEND", lambda: m.append("INBOX", None, None, small))
        uid = data[0].split(b" ")[2].rstrip(b"]").decode()
        timed("UID STORE", lambda: m.uid("STORE", uid, "+FLAGS.SILENT", "(\\Deleted)"))
        timed("UID EXPUNGE", lambda: m.uid("EXPUNGE", uid))
    m.logout()
    return {k: sorted(v)[len(v) // 2] * 1000 for k, v in times.items()}


LOAD = os.path.join(ROOT, "target", "release", "examples", "imap_load")
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids, reaped=False):
    """utime + stime of the given processes, in seconds; with `reaped`, also
    the CPU time of children they have reaped (cutime + cstime): Dovecot's
    imap processes end with their connections and are counted there."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
            if reaped:
                total += int(fields[13]) + int(fields[14])
        except (OSError, IndexError, ValueError):
            # The process ended (or its stat was empty) while being read.
            pass
    return total / TICK


def dovecot_pids(master):
    out = [master]
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/comm") as f:
                    if f.read().strip() in ("imap", "imap-login", "auth", "anvil", "log", "config", "stats") and pid != master:
                        out.append(pid)
            except OSError:
                pass
    return out


def load(port, clients, seconds, pids):
    """Runs the Rust load generator; returns (ops/s, server CPU us per op).
    `pids` gives the server's processes; the first one's reaped children
    count too."""
    def cpu():
        p = pids()
        return cpu_seconds(p[:1], reaped=True) + cpu_seconds(p[1:])
    before = cpu()
    out = subprocess.run([LOAD, str(port), str(clients), str(seconds), USER, PASS],
                         capture_output=True, check=True, text=True).stdout.split()
    ops, elapsed = int(out[1]), float(out[3])
    time.sleep(0.5)  # let Dovecot reap the imap processes of the clients
    used = cpu() - before
    return ops / elapsed, used / ops * 1e6


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
    if not os.path.exists(LOAD):
        raise SystemExit("build the load generator first: cargo build --release --example imap_load")
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
{NO_CHECKS}listen "imap" "127.0.0.1:{imap_port}" insecure-plaintext-auth=#true max-connections=5000 max-connections-per-ip=5000
limits {{
    max-connections 5000
    max-connections-per-ip 5000
}}
domain "example.test" {{
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
            with open(os.path.join(run, "master.pid")) as f:
                master = f.read().strip()
            # Warm both (first SELECT builds each server's index).
            for port in (imap_port, dovecot_port):
                m = imaplib.IMAP4("127.0.0.1", port)
                m.login(USER, PASS)
                m.select("INBOX")
                m.fetch("1:*", "(FLAGS ENVELOPE)")
                m.logout()
            lat = {name: op_times(port) for name, port in (("mailc", imap_port), ("dovecot", dovecot_port))}
            print(f"{'median ms':18} {'mailc':>8} {'dovecot':>8}")
            for op in lat["mailc"]:
                print(f"{op:18} {lat['mailc'][op]:8.3f} {lat['dovecot'][op]:8.3f}", flush=True)
            rates, cpu = {}, {}
            for name, port, pids in (("mailc", imap_port, lambda: [str(proc.pid)]),
                                     ("dovecot", dovecot_port, lambda: dovecot_pids(master))):
                rates[name], cpu[name] = load(port, args.clients, args.seconds, pids)
                print(f"{name:8} {rates[name]:8.0f} IMAP operations/s, server CPU {cpu[name]:6.1f} us/operation ({args.clients} clients, {args.seconds} s, {args.messages} messages)", flush=True)
            print(f"ratio mailc/dovecot: {rates['mailc'] / rates['dovecot']:.2f}x operations/s, {cpu['dovecot'] / cpu['mailc']:.2f}x less CPU per operation", flush=True)

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
        if not os.environ.get("BENCH_KEEP"):  # keep with BENCH_KEEP=1
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
