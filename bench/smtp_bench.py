#!/usr/bin/env python3
"""SMTP throughput benchmark (not a test): Postfix's smtp-source sends N
messages of SIZE bytes over S sessions to mailc and to a Postfix configured on
loopback for Maildir delivery, in the same run, on the same disk.

Reports, for each server and session count: messages/s accepted (smtp-source
finished: every message got its 250), messages/s in Maildir (all files
present), peak RSS, and the ratio mailc/Postfix. Also measures the disk's
fsync rate, the ceiling for durable mail (group commit shares one flush among
many messages).

usage: bench/smtp_bench.py [--messages 2000] [--size 10240] [--sessions 1,10,50]
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


def run_load(port, messages, size, sessions, maildirs, pids_fn):
    before = count_files(maildirs)
    start = time.time()
    peak = 0
    proc = subprocess.Popen(["smtp-source", "-s", str(sessions), "-m", str(messages), "-l", str(size),
                             "-f", "sender@remote.example", "-t", "bench@bench.example", f"127.0.0.1:{port}"],
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


def start_mailc(work, port):
    state = os.path.join(work, "mailc-state")
    cfg = os.path.join(work, "mailc.kdl")
    with open(cfg, "w") as f:
        f.write(f'''hostname "mail.bench.example"
state "{state}"
tls self-signed=#true
listen "smtp" "127.0.0.1:{port}"
{NO_CHECKS}limits {{
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


def start_postfix(work, port):
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
""")
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
            except (FileNotFoundError, IndexError, ValueError):
                pass
    return pids


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--size", type=int, default=10240)
    ap.add_argument("--sessions", default="1,10,50")
    ap.add_argument("--only", choices=["mailc", "postfix"], default=None)
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
    if args.only in (None, "mailc"):
        proc, dirs = start_mailc(work, mailc_port)
        try:
            for s in sessions:
                results[("mailc", s)] = run_load(mailc_port, args.messages, args.size, s, dirs, lambda: [proc.pid])
                print(f"mailc   sessions={s:3}: accepted {results[('mailc', s)][0]:8.0f} msg/s, in Maildir {results[('mailc', s)][1]:8.0f} msg/s, peak RSS {results[('mailc', s)][2] / 1024:6.1f} MiB", flush=True)
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
    if args.only is None:
        print()
        print(f"{'sessions':>8} {'accepted ratio':>15} {'delivered ratio':>16}")
        for s in sessions:
            m, p = results[("mailc", s)], results[("postfix", s)]
            print(f"{s:>8} {m[0] / p[0]:>14.2f}x {m[1] / p[1]:>15.2f}x")
    if not os.environ.get("BENCH_KEEP"):
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
