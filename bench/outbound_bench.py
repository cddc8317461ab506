#!/usr/bin/env python3
"""Outbound relay benchmark (not a test): N messages of SIZE bytes are
submitted (smtp-source, S sessions) to mailc and to Postfix, in the same run,
on the same disk; both relay them to the same `smtp-sink` on 127.0.0.2 (a
smarthost route: mailc `route "*" via=...`, Postfix `relayhost`). Both keep
their fsyncs on.

Reports, per server and session count: messages/s from the first submission
to the last arrival at the sink, the connections the sink saw, and the peak
RSS of the server (all processes for Postfix), then the ratios.

usage: bench/outbound_bench.py [--messages 2000] [--size 10240] [--sessions 1,10,50]
Needs: root, Debian's postfix package (smtp-source, smtp-sink), a release build.
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import smtp_bench as sb  # noqa: E402

SINK_HOST = "127.0.0.2"


def start_sink(work, port):
    """smtp-sink dumping every message into its own file (the arrivals we
    count) and counting connections (-c prints them at exit)."""
    dump = os.path.join(work, "sink")
    os.makedirs(dump, exist_ok=True)
    os.chmod(dump, 0o777)
    log = open(os.path.join(work, "sink.log"), "w")
    # -u: run as postfix when root; -d: one file per message (the template
    # has %M-style fields, smtp-sink appends a unique suffix); -c: counters.
    proc = subprocess.Popen(
        ["smtp-sink", "-u", "postfix", "-c", "-d", os.path.join(dump, "%Y%m%d%H/%M."),
         f"{SINK_HOST}:{port}", "1024"],
        stdout=log, stderr=log)
    for _ in range(200):
        import socket
        try:
            socket.create_connection((SINK_HOST, port), timeout=0.2).close()
            return proc, dump
        except OSError:
            time.sleep(0.05)
    raise SystemExit("smtp-sink did not start")


def count_dumped(dump):
    n = 0
    for _root, _dirs, files in os.walk(dump):
        n += len(files)
    return n


def sink_connections(work):
    """The highest connection count smtp-sink reported."""
    try:
        with open(os.path.join(work, "sink.log"), errors="replace") as f:
            text = f.read()
    except FileNotFoundError:
        return None
    # -c prints "\r<connections> <messages>"-style counters.
    best = None
    for part in text.replace("\r", "\n").splitlines():
        fields = part.split()
        if len(fields) >= 2 and fields[0].isdigit():
            best = int(fields[0])
    return best


def run_relay(port, messages, size, sessions, dump, pids_fn):
    before = count_dumped(dump)
    start = time.time()
    peak = 0
    proc = subprocess.Popen(["smtp-source", "-s", str(sessions), "-m", str(messages), "-l", str(size),
                             "-f", "sender@bench.example", "-t", "someone@far.example", f"127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    while proc.poll() is None:
        peak = max(peak, sb.rss_kib(pids_fn()))
        time.sleep(0.05)
    accepted = time.time() - start
    if proc.returncode != 0:
        raise SystemExit(f"smtp-source failed: {proc.stderr.read().decode()}")
    deadline = time.time() + 900
    while count_dumped(dump) - before < messages:
        peak = max(peak, sb.rss_kib(pids_fn()))
        if time.time() > deadline:
            raise SystemExit(f"only {count_dumped(dump) - before} of {messages} arrived")
        time.sleep(0.01)
    arrived = time.time() - start
    peak = max(peak, sb.rss_kib(pids_fn()))
    return messages / accepted, messages / arrived, peak


def start_mailc(work, port, sink_port):
    state = os.path.join(work, "mailc-state")
    cfg = os.path.join(work, "mailc.kdl")
    with open(cfg, "w") as f:
        f.write(f'''hostname "mail.bench.example"
state "{state}"
tls self-signed=#true
listen "smtp" "127.0.0.1:{port}"
trusted-networks "127.0.0.1/32"
resolver "127.0.0.1:9"
limits {{
    max-connections-per-ip 200
}}
outbound {{
    max-connections-per-destination 20
}}
route "*" via="{SINK_HOST}:{sink_port}"
domain "bench.example" {{
    dmarc policy="none"
    mailbox "bench"
    alias "postmaster" to="bench"
}}
''')
    log = open(os.path.join(work, "mailc.log"), "w")
    proc = subprocess.Popen([sb.MAILC, "serve", cfg], stdout=log, stderr=log,
                            env={**os.environ, "RUST_LOG": "mailc=warn"})
    sb.wait_port(port)
    return proc


def start_postfix(work, port, sink_port):
    etc, _ = sb.start_postfix(work, port)
    # Relay everything to the sink, as many connections as mailc may use.
    subprocess.run(["postconf", "-c", etc, "-e",
                    f"relayhost = [{SINK_HOST}]:{sink_port}",
                    "default_destination_concurrency_limit = 20",
                    "smtp_tls_security_level = may"], check=True)
    subprocess.run(["postfix", "-c", etc, "reload"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)
    return etc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--size", type=int, default=10240)
    ap.add_argument("--sessions", default="1,10,50")
    ap.add_argument("--only", choices=["mailc", "postfix"], default=None)
    args = ap.parse_args()
    if not os.path.exists(sb.MAILC):
        raise SystemExit("build first: cargo build --release")
    for tool in ("smtp-source", "smtp-sink", "postfix"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} missing: apt-get install postfix")
    work = tempfile.mkdtemp(prefix="mailc-obench-", dir=os.environ.get("BENCH_DIR", "/var/tmp"))
    os.chmod(work, 0o755)
    print(f"work dir {work}")
    print(f"disk: {sb.fsync_rate(work):.0f} fsync(file)+fsync(dir) pairs/s")
    sessions = [int(s) for s in args.sessions.split(",")]
    results = {}
    mailc_port, pf_port, sink_port = 12535, 12536, 12537
    sink, dump = start_sink(work, sink_port)
    try:
        if args.only in (None, "mailc"):
            proc = start_mailc(work, mailc_port, sink_port)
            try:
                for s in sessions:
                    r = run_relay(mailc_port, args.messages, args.size, s, dump, lambda: [proc.pid])
                    results[("mailc", s)] = r
                    print(f"mailc   sessions={s:3}: accepted {r[0]:7.0f} msg/s, at the sink {r[1]:7.0f} msg/s, peak RSS {r[2] / 1024:6.1f} MiB", flush=True)
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)
        if args.only in (None, "postfix"):
            etc = start_postfix(work, pf_port, sink_port)
            spool = os.path.join(work, "pf-spool")
            try:
                for s in sessions:
                    r = run_relay(pf_port, args.messages, args.size, s, dump, lambda: sb.postfix_pids(spool))
                    results[("postfix", s)] = r
                    print(f"postfix sessions={s:3}: accepted {r[0]:7.0f} msg/s, at the sink {r[1]:7.0f} msg/s, peak RSS {r[2] / 1024:6.1f} MiB (all processes)", flush=True)
            finally:
                subprocess.run(["postfix", "-c", etc, "stop"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    finally:
        sink.send_signal(signal.SIGTERM)
        try:
            sink.wait(timeout=10)
        except subprocess.TimeoutExpired:
            sink.kill()
    conns = sink_connections(work)
    if conns is not None:
        print(f"sink: {conns} connections in all")
    if args.only is None:
        print()
        print(f"{'sessions':>8} {'accepted ratio':>15} {'relayed ratio':>14}")
        for s in sessions:
            m, p = results[("mailc", s)], results[("postfix", s)]
            print(f"{s:>8} {m[0] / p[0]:>14.2f}x {m[1] / p[1]:>13.2f}x")
    if not os.environ.get("BENCH_KEEP"):
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
