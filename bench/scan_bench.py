#!/usr/bin/env python3
"""Scanning throughput benchmark (not a test, issue #18): the MX with rspamd
(and separately clamd) on versus off, and Postfix with the same rspamd as a
milter (rspamd's proxy worker), in the same run on the same machine.

One realistic 10 KB ham message (headers, a text body) is sent N times over
S sessions by Postfix's smtp-source. Reported per variant and session count:
messages/s accepted, messages/s in Maildir, server CPU per message (mailc:
the server process; the scanner daemons' CPU is reported separately), and
the latency each message gained from scanning (1-session runs: 1/rate on
minus 1/rate off).

Variants: mailc (scan off), mailc+rspamd, mailc+clamd, postfix (no milter),
postfix+rspamd (smtpd_milters = inet:127.0.0.1:PROXY, as rspamd's docs
show it) and postfix+rspamd-unix (the same proxy worker on a Unix socket).

usage: bench/scan_bench.py [--messages 1000] [--size 10240] [--sessions 1,10] [--rounds 3]
       [--rspamd-workers 1]

Every variant's server runs for the whole run; each round loads them in
turn, and the table gives the median of the rounds (with the per-round
mailc+rspamd / postfix+rspamd ratios), so a disturbance of the machine
during one load does not decide the result.
Needs: root (Postfix, the daemons' users), Debian's postfix, rspamd,
clamav-daemon; a release build (cargo build --release).
"""
import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import smtp_bench as sb  # noqa: E402

RSPAMD_NORMAL, RSPAMD_PROXY, RSPAMD_CONTROLLER, CLAMD_PORT = 21333, 21332, 21334, 21310
DNS_PORT = 21353


def nxdomain_server():
    """A DNS server on loopback that answers every query at once with
    NXDOMAIN, so that rspamd's lookups (SPF, RBLs, ...) neither leave the
    machine nor wait for a timeout. Runs in a thread of this process."""
    import threading
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", DNS_PORT))

    def serve():
        while True:
            try:
                q, peer = sock.recvfrom(4096)
            except OSError:
                return
            if len(q) < 12:
                continue
            # Same id and question; QR, RD copied, RA, RCODE 3; no answers.
            flags = 0x8000 | (q[2] << 8 & 0x0100) | 0x0080 | 3
            i = 12
            while i < len(q) and q[i] != 0:
                i += q[i] + 1
            question = q[12:i + 5]
            sock.sendto(q[:2] + flags.to_bytes(2, "big") + b"\0\1\0\0\0\0\0\0" + question, peer)
    threading.Thread(target=serve, daemon=True).start()
    return sock


def wait(check, what, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{what} did not start within {timeout} s")


def start_rspamd(work, workers=1):
    """rspamd with the Debian rules, its workers on loopback ports (`workers`
    normal and proxy processes each), DNS to a loopback server answering
    NXDOMAIN (no query leaves the machine), no Redis (Bayes and the
    Redis-backed modules are off, as on a fresh install)."""
    conf = os.path.join(work, "rspamd")
    for d in ("local.d", "override.d", "run", "db", "log"):
        os.makedirs(os.path.join(conf, d), exist_ok=True)
    files = {
        "override.d/worker-normal.inc": f'bind_socket = "127.0.0.1:{RSPAMD_NORMAL}";\ncount = {workers};\n',
        "override.d/worker-proxy.inc": f'bind_socket = "127.0.0.1:{RSPAMD_PROXY}";\n'
        f'bind_socket = "{conf}/run/proxy.sock mode=0666";\nmilter = yes;\n'
        'timeout = 120s;\nupstream "local" {\n  default = yes;\n  self_scan = yes;\n}\n'
        f'count = {workers};\n',
        "override.d/worker-controller.inc": f'bind_socket = "127.0.0.1:{RSPAMD_CONTROLLER}";\ncount = 1;\n',
        "override.d/worker-fuzzy.inc": "count = 0;\n",
        "local.d/options.inc": f'dns {{\n  nameserver = ["127.0.0.1:{DNS_PORT}"];\n  timeout = 0.5s;\n  retransmits = 1;\n}}\n',
        "override.d/logging.inc": 'type = "console";\nlevel = "error";\n',
    }
    for name, text in files.items():
        with open(os.path.join(conf, name), "w") as f:
            f.write(text)
    subprocess.run(["chmod", "-R", "a+rwX", conf], check=True)
    log = open(os.path.join(work, "rspamd.log"), "w")
    proc = subprocess.Popen(
        ["rspamd", "-f", "-u", "_rspamd", "-g", "_rspamd", "-c", "/etc/rspamd/rspamd.conf",
         "--var", f"LOCAL_CONFDIR={conf}", "--var", f"RUNDIR={conf}/run",
         "--var", f"DBDIR={conf}/db", "--var", f"LOGDIR={conf}/log"],
        stdout=log, stderr=log, start_new_session=True)

    def ping():
        s = socket.create_connection(("127.0.0.1", RSPAMD_NORMAL), timeout=1)
        s.sendall(b"GET /ping HTTP/1.0\r\n\r\n")
        ok = b"pong" in s.recv(4096)
        s.close()
        return ok
    wait(ping, "rspamd")
    wait(lambda: socket.create_connection(("127.0.0.1", RSPAMD_PROXY), timeout=1).close() or True, "rspamd proxy")
    return proc


def start_clamd(work):
    """clamd on a one-signature database (a fragment of EICAR), no
    freshclam."""
    d = os.path.join(work, "clamd")
    os.makedirs(os.path.join(d, "db"), exist_ok=True)
    with open(os.path.join(d, "db", "bench.ndb"), "w") as f:
        f.write("Mailc-Bench-Eicar:0:*:45494341522d5354414e444152442d414e544956495255532d544553542d46494c45\n")
    conf = os.path.join(d, "clamd.conf")
    with open(conf, "w") as f:
        f.write(f"DatabaseDirectory {d}/db\nTCPSocket {CLAMD_PORT}\nTCPAddr 127.0.0.1\n"
                f"Foreground yes\nLogFile {d}/clamd.log\nStreamMaxLength 25M\nUser root\n")
    proc = subprocess.Popen(["clamd", "-c", conf], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)

    def ping():
        s = socket.create_connection(("127.0.0.1", CLAMD_PORT), timeout=1)
        s.sendall(b"zPING\0")
        ok = s.recv(16).startswith(b"PONG")
        s.close()
        return ok
    wait(ping, "clamd")
    return proc


def ham(path, size):
    """A plain ham message of about `size` bytes, the same for every run."""
    words = ("the meeting notes from tuesday are attached below please review "
             "the budget figures and the schedule for the next release before "
             "friday so that we can agree on the plan with the whole team ").split()
    lines, n, i = [], 0, 0
    while n < size - 600:
        line = " ".join(words[(i + k) % len(words)] for k in range(12))
        lines.append(line)
        n += len(line) + 2
        i += 7
    # LF line ends: smtp-source sends each line with CRLF.
    head = ("From: Alice Example <alice@remote.example>\n"
            "To: Bench <bench@bench.example>\n"
            "Subject: Notes from the Tuesday meeting\n"
            "Date: Thu, 03 Dec 2026 10:00:00 +0000\n"
            "Message-ID: <notes-1@remote.example>\n"
            "MIME-Version: 1.0\n"
            "Content-Type: text/plain; charset=us-ascii\n\n")
    with open(path, "w", newline="") as f:
        f.write(head + "\n".join(lines) + "\n")


def scan_verdict(path):
    """rspamd's and clamd's opinion of the ham (it must pass both)."""
    data = open(path, "rb").read()
    s = socket.create_connection(("127.0.0.1", RSPAMD_NORMAL))
    s.sendall(b"POST /checkv2 HTTP/1.0\r\nIP: 127.0.0.1\r\nContent-Length: %d\r\n\r\n" % len(data) + data)
    reply = b""
    while chunk := s.recv(65536):
        reply += chunk
    return reply.split(b"\r\n\r\n", 1)[-1][:200].decode(errors="replace")


def daemon_cpu(proc):
    """CPU seconds of a daemon and its children (rspamd forks workers)."""
    total = sb.cpu_seconds(proc.pid)
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == proc.pid:
                        total += sb.cpu_seconds(int(p))
            except (OSError, IndexError, ValueError):
                pass
    return total


def mailc_scan_block(rspamd=False, clamd=False):
    """The `scan` block of mailc's config for a variant."""
    if not (rspamd or clamd):
        return ""
    lines = ["scan {"]
    if rspamd:
        lines.append(f'    rspamd "http://127.0.0.1:{RSPAMD_NORMAL}"')
    if clamd:
        lines.append(f'    clamd "127.0.0.1:{CLAMD_PORT}"')
    lines.append("}")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=1000)
    ap.add_argument("--size", type=int, default=10240)
    ap.add_argument("--sessions", default="1,10")
    ap.add_argument("--only", choices=["mailc", "postfix"], default=None)
    ap.add_argument("--rounds", type=int, default=3, help="repeat every load; medians are reported")
    ap.add_argument("--rspamd-workers", type=int, default=1,
                    help="rspamd's normal and proxy (milter) worker processes")
    args = ap.parse_args()
    if args.only != "postfix" and not os.path.exists(sb.MAILC):
        raise SystemExit("build first: cargo build --release")
    for tool in ("smtp-source", "postfix", "rspamd", "clamd"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} missing: apt-get install postfix rspamd clamav-daemon")
    work = tempfile.mkdtemp(prefix="mailc-scanbench-", dir=os.environ.get("BENCH_DIR", "/var/tmp"))
    os.chmod(work, 0o755)
    print(f"work dir {work}")
    msg = os.path.join(work, "ham.eml")
    ham(msg, args.size)
    sb.PAYLOAD = ["-F", msg, "-f", "alice@remote.example"]
    sessions = [int(s) for s in args.sessions.split(",")]
    dns = nxdomain_server()
    rspamd = start_rspamd(work, args.rspamd_workers)
    clamd = start_clamd(work)
    results, cpu, dcpu = {}, {}, {}
    rounds = {}
    servers = []  # (name, pids(), daemon, stop())
    port = 12527
    try:
        print(f"ham: {os.path.getsize(msg)} bytes; rspamd says {scan_verdict(msg)}")
        # Every variant's server runs for the whole benchmark (an idle one
        # costs nothing); the rounds go through the variants in turn, so
        # that a disturbance of the machine hits them alike.
        variants = [("mailc", "", None), ("mailc+rspamd", mailc_scan_block(rspamd=True), rspamd),
                    ("mailc+clamd", mailc_scan_block(clamd=True), clamd)]
        for name, block, daemon in (variants if args.only != "postfix" else []):
            vwork = os.path.join(work, name)
            os.makedirs(vwork)
            proc, dirs = sb.start_mailc(vwork, port, sb.NO_CHECKS + block)

            def stop(proc=proc):
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)
            servers.append((name, port, dirs, (lambda proc=proc: [proc.pid]), daemon, stop))
            port += 1
        for name, extra, daemon in [] if args.only == "mailc" else [
            ("postfix", "", None),
            ("postfix+rspamd", f"smtpd_milters = inet:127.0.0.1:{RSPAMD_PROXY}\n"
                               "milter_default_action = tempfail\nmilter_protocol = 6\n", rspamd),
            # The same milter over a Unix socket: no TCP Nagle/delayed-ACK
            # interaction between Postfix's milter client and rspamd.
            ("postfix+rspamd-unix", f"smtpd_milters = unix:{work}/rspamd/run/proxy.sock\n"
                                    "milter_default_action = tempfail\nmilter_protocol = 6\n", rspamd),
        ]:
            pwork = os.path.join(work, name)
            os.makedirs(pwork)
            os.chmod(pwork, 0o755)
            etc, dirs = sb.start_postfix(pwork, port, extra)
            spool = os.path.join(pwork, "pf-spool")

            def stop(etc=etc):
                subprocess.run(["postfix", "-c", etc, "stop"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            # smtpd processes come and go: their CPU is undercounted.
            servers.append((name, port, dirs, (lambda spool=spool: sb.postfix_pids(spool)), daemon, stop))
            port += 1
        for r in range(args.rounds):
            if args.rounds > 1:
                print(f"-- round {r + 1} of {args.rounds}", flush=True)
            for name, p, dirs, pids, daemon, _ in servers:
                for s in sessions:
                    c0 = sum(sb.cpu_seconds(x) for x in pids())
                    d0 = daemon_cpu(daemon) if daemon else 0.0
                    results[(name, s)] = sb.run_load(p, args.messages, args.size, s, dirs, pids)
                    cpu[(name, s)] = (sum(sb.cpu_seconds(x) for x in pids()) - c0) / args.messages * 1e6
                    dcpu[(name, s)] = ((daemon_cpu(daemon) - d0) / args.messages * 1e6) if daemon else 0.0
                    rounds.setdefault((name, s), []).append(results[(name, s)])
                    report(name, s, results, cpu, dcpu)
    finally:
        for *_, stop in servers:
            try:
                stop()
            except Exception as e:  # noqa: BLE001 - keep stopping the others
                print(f"stopping: {e}")
        for d in (rspamd, clamd):
            try:
                os.killpg(d.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            d.wait(timeout=30)
    # Per variant: the median over the rounds.
    for key, rs in rounds.items():
        results[key] = tuple(sorted(x[i] for x in rs)[len(rs) // 2] for i in range(3))
    print()
    print(f"{'':16} {'sessions':>8} {'accepted msg/s':>15} {'delivered msg/s':>16} {'added ms/msg (1 session)':>25}")
    for name in ("mailc", "mailc+rspamd", "mailc+clamd", "postfix", "postfix+rspamd", "postfix+rspamd-unix"):
        if (name, sessions[0]) not in results:
            continue
        base = "mailc" if name.startswith("mailc") else "postfix"
        for s in sessions:
            r = results[(name, s)]
            added = ""
            if s == 1 and name != base and (base, 1) in results:
                added = f"{(1 / results[(name, 1)][0] - 1 / results[(base, 1)][0]) * 1000:+.2f}"
            print(f"{name:16} {s:>8} {r[0]:>15.0f} {r[1]:>16.0f} {added:>25}")
    print()
    for s in sessions if args.only is None else []:
        m, p = results[("mailc+rspamd", s)], results[("postfix+rspamd", s)]
        per_round = sorted(a[0] / b[0] for a, b in zip(rounds[("mailc+rspamd", s)], rounds[("postfix+rspamd", s)]))
        print(f"mailc+rspamd / postfix+rspamd, sessions={s}: accepted {m[0] / p[0]:.2f}x, delivered {m[1] / p[1]:.2f}x"
              f" (medians of {len(per_round)} rounds; per-round ratios {', '.join(f'{x:.2f}' for x in per_round)})")
        u = results[("postfix+rspamd-unix", s)]
        print(f"mailc+rspamd / postfix+rspamd-unix, sessions={s}: accepted {m[0] / u[0]:.2f}x, delivered {m[1] / u[1]:.2f}x")
    if not os.environ.get("BENCH_KEEP"):
        shutil.rmtree(work, ignore_errors=True)


def report(name, s, results, cpu, dcpu):
    r = results[(name, s)]
    print(f"{name:15} sessions={s:3}: accepted {r[0]:7.0f} msg/s, in Maildir {r[1]:7.0f} msg/s, "
          f"peak RSS {r[2] / 1024:6.1f} MiB, server CPU {cpu[(name, s)]:6.0f} us/msg, "
          f"scanner CPU {dcpu[(name, s)]:6.0f} us/msg", flush=True)


if __name__ == "__main__":
    main()
