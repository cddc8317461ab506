#!/usr/bin/env python3
"""SMTP throughput benchmark (not a test): Postfix's smtp-source sends N
messages of SIZE bytes over S sessions to mailc and to a Postfix configured on
loopback for Maildir delivery, in the same run, on the same disk.

Reports, for each server and session count: messages/s accepted (smtp-source
finished: every message got its 250), messages/s in Maildir (all files
present), peak RSS, and the ratio mailc/Postfix. Also measures the disk's
fsync rate, the ceiling for durable mail (group commit shares one flush among
many messages).

With --checks: every message is a DKIM-signed (RSA-2048) message of SIZE
bytes from bench.sender, whose SPF, DMARC (p=reject), DKIM key and PTR a DNS
server on loopback serves (`cargo build --release --example bench_dns`);
mailc runs twice, inbound checks off and on, and reports the server CPU per
message of each (the difference is the cost of the checks); Postfix gets
the same messages (without policy daemons).

usage: bench/smtp_bench.py [--messages 2000] [--size 10240] [--sessions 1,10,50] [--checks]
Needs: root (Postfix), Debian's postfix package (smtp-source), a release build.
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAILC = os.environ.get("MAILC_BIN", os.path.join(ROOT, "target", "release", "mailc"))

# The MX of the benchmark measures mail handling without the inbound checks
# (SPF/DKIM/DMARC need the senders' DNS; no query leaves the machine).
# Builds older than the `inbound { checks }` setting (2026-12-03) refuse
# these lines: MAILC_BENCH_COMPAT=1 leaves them out for such a build.
NO_CHECKS = "" if os.environ.get("MAILC_BENCH_COMPAT") else 'resolver "127.0.0.1:9"\ninbound {\n    checks #false\n}\n'


def fsync_rate(dirpath, seconds=2.0):
    n = 0
    start = time.time()
    while time.time() - start < seconds:
        p = os.path.join(dirpath, f"f{n}")
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, b"x" * 10240)
        os.fsync(fd)
        os.close(fd)
        dfd = os.open(dirpath, os.O_RDONLY)
        os.fsync(dfd)
        os.close(dfd)
        os.unlink(p)
        n += 1
    return n / (time.time() - start)


def count_files(dirs):
    total = 0
    for d in dirs:
        try:
            total += len(os.listdir(d))
        except FileNotFoundError:
            pass
    return total


def rss_kib(pids):
    """Sum of the peak RSS (VmHWM) of processes."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


# What smtp-source sends: generated payloads from remote.example, or with
# --checks the signed message file (set in main).
PAYLOAD = None


def cpu_seconds(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def run_load(port, messages, size, sessions, maildirs, pids_fn):
    before = count_files(maildirs)
    start = time.time()
    peak = 0
    payload = PAYLOAD or ["-l", str(size), "-f", "sender@remote.example"]
    proc = subprocess.Popen(["smtp-source", "-s", str(sessions), "-m", str(messages), *payload,
                             "-t", "bench@bench.example", f"127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    while proc.poll() is None:
        peak = max(peak, rss_kib(pids_fn()))
        time.sleep(0.05)
    accepted = time.time() - start
    err = proc.stderr.read().decode()
    if proc.returncode != 0:
        raise SystemExit(f"smtp-source failed: {err}")
    deadline = time.time() + 600
    while count_files(maildirs) - before < messages:
        peak = max(peak, rss_kib(pids_fn()))
        if time.time() > deadline:
            raise SystemExit(f"only {count_files(maildirs) - before} of {messages} delivered")
        time.sleep(0.01)
    delivered = time.time() - start
    peak = max(peak, rss_kib(pids_fn()))
    return messages / accepted, messages / delivered, peak


def start_mailc(work, port, inbound=None):
    state = os.path.join(work, "mailc-state")
    inbound = NO_CHECKS if inbound is None else inbound
    cfg = os.path.join(work, "mailc.kdl")
    with open(cfg, "w") as f:
        f.write(f'''hostname "mail.bench.example"
state "{state}"
tls self-signed=#true
listen "smtp" "127.0.0.1:{port}"
{inbound}limits {{
    max-connections-per-ip 200
}}
domain "bench.example" {{
    dmarc policy="none"
    mailbox "bench"
    alias "postmaster" to="bench"
}}
''')
    log = open(os.path.join(work, "mailc.log"), "w")
    proc = subprocess.Popen([MAILC, "serve", cfg], stdout=log, stderr=log, env={**os.environ, "RUST_LOG": "mailc=warn"})
    wait_port(port)
    md = os.path.join(state, "mail", "bench.example", "bench")
    return proc, [os.path.join(md, "new"), os.path.join(md, "cur")]


def wait_port(port):
    import socket
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


def start_postfix(work, port, extra=""):
    etc = os.path.join(work, "pf-etc")
    spool = os.path.join(work, "pf-spool")
    data = os.path.join(work, "pf-data")
    vmail = os.path.join(work, "pf-vmail")
    for d in (etc, spool, data, vmail):
        os.makedirs(d, exist_ok=True)
    shutil.copy("/etc/postfix/master.cf", etc)
    shutil.copytree("/etc/postfix/dynamicmaps.cf.d", os.path.join(etc, "dynamicmaps.cf.d"), dirs_exist_ok=True)
    shutil.copy("/etc/postfix/dynamicmaps.cf", etc)
    uid = int(subprocess.check_output(["id", "-u", "postfix"]).decode())
    gid = int(subprocess.check_output(["id", "-g", "postfix"]).decode())
    os.chown(vmail, uid, gid)
    os.chown(data, uid, gid)
    os.chmod(work, 0o755)
    with open(os.path.join(etc, "main.cf"), "w") as f:
        f.write(f"""compatibility_level = 3.6
queue_directory = {spool}
data_directory = {data}
myhostname = mail.bench.example
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
maillog_file = {work}/postfix.log
virtual_mailbox_domains = bench.example
virtual_mailbox_base = {vmail}
virtual_mailbox_maps = texthash:{etc}/vmailbox
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
virtual_minimum_uid = 1
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
default_process_limit = 200
message_size_limit = 26214400
alternate_config_directories = {etc}
{extra}""")
    with open(os.path.join(etc, "vmailbox"), "w") as f:
        f.write("bench@bench.example bench.example/bench/\n")
    # master.cf: smtpd on our port, the postlog service for maillog_file.
    with open(os.path.join(etc, "master.cf")) as f:
        master = f.read()
    master = master.replace("smtp      inet  n       -       y       -       -       smtpd",
                            f"127.0.0.1:{port} inet n  -       n       -       -       smtpd")
    master = master.replace("smtp      inet  n       -       n       -       -       smtpd",
                            f"127.0.0.1:{port} inet n  -       n       -       -       smtpd")
    # chroot off everywhere: the spool is elsewhere.
    lines = []
    for line in master.splitlines():
        parts = line.split()
        if len(parts) >= 8 and not line.startswith((" ", "#")) and parts[4] == "y":
            parts[4] = "n"
            line = "  ".join(parts[:8]) + (" " + " ".join(parts[8:]) if len(parts) > 8 else "")
        lines.append(line)
    with open(os.path.join(etc, "master.cf"), "w") as f:
        f.write("\n".join(lines) + "\n")
    subprocess.run(["postfix", "-c", etc, "post-install", "create-missing"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run(["postfix", "-c", etc, "set-permissions"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run(["postfix", "-c", etc, "start"], check=True)
    wait_port(port)
    md = os.path.join(vmail, "bench.example", "bench")
    return etc, [os.path.join(md, "new"), os.path.join(md, "cur")]


def postfix_pids(spool):
    pids = []
    try:
        with open(os.path.join(spool, "pid", "master.pid")) as f:
            master = int(f.read().split()[0])
    except (FileNotFoundError, ValueError):
        return pids
    pids.append(master)
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/stat") as f:
                    if int(f.read().split(")")[1].split()[1]) == master:
                        pids.append(int(p))
            except (OSError, IndexError, ValueError):
                # The process ended while being read.
                pass
    return pids


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--size", type=int, default=10240)
    ap.add_argument("--sessions", default="1,10,50")
    ap.add_argument("--only", choices=["mailc", "postfix"], default=None)
    ap.add_argument("--checks", action="store_true",
                    help="signed messages, DNS on loopback, mailc with inbound checks off and on")
    args = ap.parse_args()
    if not os.path.exists(MAILC):
        raise SystemExit("build first: cargo build --release")
    for tool in ("smtp-source", "postfix"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} missing: apt-get install postfix")
    work = tempfile.mkdtemp(prefix="mailc-bench-", dir=os.environ.get("BENCH_DIR", "/var/tmp"))
    print(f"work dir {work}")
    rate = fsync_rate(work)
    print(f"disk: {rate:.0f} fsync(file)+fsync(dir) pairs/s (serial, 10 KiB files)")
    sessions = [int(s) for s in args.sessions.split(",")]
    results = {}
    mailc_port, pf_port = 12525, 12526
    variants = [("mailc", None)]
    dns = None
    if args.checks:
        global PAYLOAD
        tool = os.path.join(ROOT, "target", "release", "examples", "bench_dns")
        if not os.path.exists(tool):
            raise SystemExit("build first: cargo build --release --example bench_dns")
        msg = os.path.join(work, "signed.eml")
        dns = subprocess.Popen([tool, msg, str(args.size)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        addr = dns.stdout.readline().decode().strip()
        PAYLOAD = ["-F", msg, "-f", "news@bench.sender", "-M", "mx.bench.sender"]
        print(f"signed message {os.path.getsize(msg)} bytes; DNS on {addr}")
        variants = [
            ("mailc-off", f'resolver "{addr}"\ninbound {{\n    checks #false\n}}\n'),
            ("mailc-on", f'resolver "{addr}"\ninbound {{\n    checks #true\n}}\n'),
        ]
    cpu = {}
    for name, inbound in (variants if args.only in (None, "mailc") else []):
        vwork = os.path.join(work, name)
        os.makedirs(vwork)
        proc, dirs = start_mailc(vwork, mailc_port, inbound)
        try:
            for s in sessions:
                c0 = cpu_seconds(proc.pid)
                results[(name, s)] = run_load(mailc_port, args.messages, args.size, s, dirs, lambda: [proc.pid])
                cpu[(name, s)] = (cpu_seconds(proc.pid) - c0) / args.messages * 1e6
                print(f"{name:9} sessions={s:3}: accepted {results[(name, s)][0]:8.0f} msg/s, in Maildir {results[(name, s)][1]:8.0f} msg/s, peak RSS {results[(name, s)][2] / 1024:6.1f} MiB, server CPU {cpu[(name, s)]:7.0f} us/msg", flush=True)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    if args.only in (None, "postfix"):
        etc, dirs = start_postfix(work, pf_port)
        spool = os.path.join(work, "pf-spool")
        try:
            for s in sessions:
                results[("postfix", s)] = run_load(pf_port, args.messages, args.size, s, dirs, lambda: postfix_pids(spool))
                print(f"postfix sessions={s:3}: accepted {results[('postfix', s)][0]:8.0f} msg/s, in Maildir {results[('postfix', s)][1]:8.0f} msg/s, peak RSS {results[('postfix', s)][2] / 1024:6.1f} MiB (all processes)", flush=True)
        finally:
            subprocess.run(["postfix", "-c", etc, "stop"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if dns is not None:
        dns.stdin.close()
        dns.wait(timeout=10)
    if args.only is None:
        for name, _ in variants:
            print()
            print(f"{name}/postfix {'sessions':>8} {'accepted ratio':>15} {'delivered ratio':>16}")
            for s in sessions:
                m, p = results[(name, s)], results[("postfix", s)]
                print(f"{'':14} {s:>8} {m[0] / p[0]:>14.2f}x {m[1] / p[1]:>15.2f}x")
    if args.checks and args.only in (None, "mailc"):
        print()
        for s in sessions:
            on, off = results[("mailc-on", s)], results[("mailc-off", s)]
            print(f"checks on/off, sessions={s}: accepted {on[0] / off[0]:.2f}x, "
                  f"CPU per message +{cpu[('mailc-on', s)] - cpu[('mailc-off', s)]:.0f} us")
    if not os.environ.get("BENCH_KEEP"):
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
