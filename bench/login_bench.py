#!/usr/bin/env python3
"""Login benchmark (not a test): mailc and Dovecot check the same argon2id
hash (m=19 MiB, t=2, p=1, made by `mailc hash-password`) for IMAP logins on
loopback, in the same run, over plaintext IMAP. Each server runs twice: with
its verified-credentials cache off and on (mailc `auth-cache`, Dovecot
`auth_cache_size`).

1. Stress, 10 and 50 clients: "reconnecting" clients connect, LOGIN, LOGOUT
   in a loop (one operation = one login); "persistent" clients log in once
   and loop NOOP (one operation = one NOOP). Operations/s, errors, server
   CPU per operation.
2. Login flood: 50 reconnecting clients for --flood seconds against each
   server with its cache off (every login a full argon2id check); server
   memory sampled every second during the flood and for 10 s after (mailc:
   RSS; Dovecot: summed PSS of its processes).
3. Idle: --idle clients (10,000 by default) log in, SELECT INBOX and IDLE on
   mailc, from source addresses spread over 127.0.0.2-127.0.0.41 (so the
   per-IP limit is not what caps it); RSS growth per connection. Dovecot
   gets --dovecot-idle of them (a process each).

usage: bench/login_bench.py [--seconds 10] [--flood 60] [--idle 10000] [--dovecot-idle 1000]
Needs: root (Dovecot), dovecot-imapd, a release build: cargo build --release.
"""
import argparse
import asyncio
import os
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAILC = os.environ.get("MAILC_BIN", os.path.join(ROOT, "target", "release", "mailc"))
USER, PASS = "alice@example.test", "secret"
TICK = os.sysconf("SC_CLK_TCK")
DOVECOT_COMMS = ("dovecot", "imap", "imap-login", "auth", "anvil", "log", "config", "stats")


def wait_port(port):
    for _ in range(400):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


def proc_stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def cpu_seconds(pids, reaped=False):
    total = 0
    for pid in pids:
        try:
            fields = proc_stat(pid)
            total += int(fields[11]) + int(fields[12])
            if reaped:
                total += int(fields[13]) + int(fields[14])
        except OSError:
            pass
    return total / TICK


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def children_of(master):
    """Dovecot's processes: the master and everything whose parent chain
    reaches it."""
    parent = {}
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                parent[pid] = proc_stat(pid)[1]
            except OSError:
                pass
    out = [master]
    changed = True
    while changed:
        changed = False
        for pid, pp in parent.items():
            if pp in out and pid not in out:
                out.append(pid)
                changed = True
    return out


def pss_kib(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


class Server:
    def __init__(self, name, port, pids, memory):
        self.name, self.port, self.pids, self.memory = name, port, pids, memory

    def cpu(self):
        p = self.pids()
        return cpu_seconds(p[:1], reaped=True) + cpu_seconds(p[1:])


async def read_tagged(r, tag):
    while True:
        line = await r.readline()
        if not line:
            raise ConnectionError("closed")
        if line.startswith(tag + b" "):
            return line


async def login_once(port, src):
    r, w = await asyncio.open_connection("127.0.0.1", port, local_addr=(src, 0))
    try:
        await r.readline()
        w.write(f'a LOGIN {USER} "{PASS}"\r\n'.encode())
        line = await read_tagged(r, b"a")
        if not line.startswith(b"a OK"):
            raise RuntimeError(line)
        w.write(b"b LOGOUT\r\n")
        await read_tagged(r, b"b")
    finally:
        w.close()


async def reconnecting(port, clients, seconds):
    deadline = time.monotonic() + seconds
    ok = err = 0

    async def one(i):
        nonlocal ok, err
        # Spread over source addresses: thousands of short connections a
        # second would otherwise run out of ports on one (TIME_WAIT).
        src = f"127.0.0.{2 + i % 40}"
        while time.monotonic() < deadline:
            try:
                await asyncio.wait_for(login_once(port, src), 30)
                ok += 1
            except Exception:
                err += 1
                await asyncio.sleep(0.05)

    await asyncio.gather(*(one(i) for i in range(clients)))
    return ok, err


async def persistent(port, clients, seconds):
    deadline = time.monotonic() + seconds
    ok = err = 0

    async def one(i):
        nonlocal ok, err
        r, w = await asyncio.open_connection("127.0.0.1", port)
        await r.readline()
        w.write(f'a LOGIN {USER} "{PASS}"\r\n'.encode())
        if not (await read_tagged(r, b"a")).startswith(b"a OK"):
            err += 1
            return
        n = 0
        while time.monotonic() < deadline:
            n += 1
            tag = f"n{n}".encode()
            w.write(tag + b" NOOP\r\n")
            line = await read_tagged(r, tag)
            if line.startswith(tag + b" OK"):
                ok += 1
            else:
                err += 1
        w.write(b"z LOGOUT\r\n")
        await read_tagged(r, b"z")
        w.close()

    await asyncio.gather(*(one(i) for i in range(clients)))
    return ok, err


def stress(server, kind, clients, seconds):
    before = server.cpu()
    t0 = time.monotonic()
    f = reconnecting if kind == "reconnecting" else persistent
    ok, err = asyncio.run(f(server.port, clients, seconds))
    elapsed = time.monotonic() - t0
    time.sleep(0.5)  # Dovecot reaps its imap processes
    used = server.cpu() - before
    rate = ok / elapsed
    per_op = used / max(ok, 1) * 1e6
    print(f"{server.name:16} {kind:12} {clients:3} clients: {rate:9.1f} ops/s, {err} errors, "
          f"server CPU {per_op:9.1f} us/op", flush=True)
    return rate, err


def flood(server, clients, seconds):
    samples = []
    stop = threading.Event()

    def sample():
        t0 = time.monotonic()
        while not stop.is_set():
            samples.append((time.monotonic() - t0, server.memory()))
            stop.wait(1.0)

    before = server.memory()
    th = threading.Thread(target=sample)
    th.start()
    ok, err = asyncio.run(reconnecting(server.port, clients, seconds))
    during = max(m for _, m in samples)
    time.sleep(10)
    after = server.memory()
    stop.set()
    th.join()
    trace = " ".join(f"{m // 1024}" for _, m in samples[:: max(1, len(samples) // 15)])
    print(f"{server.name:16} flood {clients} clients {seconds} s: {ok} logins ({ok / seconds:.1f}/s), "
          f"{err} errors; memory before {before / 1024:.1f} MiB, peak during {during / 1024:.1f} MiB, "
          f"10 s after {after / 1024:.1f} MiB", flush=True)
    print(f"{'':16} memory over time (MiB, every ~{max(1, len(samples) // 15)} s): {trace}", flush=True)
    return err


async def open_idle(port, k, sources):
    conns = []
    sem = asyncio.Semaphore(200)

    async def one(i):
        async with sem:
            src = sources[i % len(sources)]
            r, w = await asyncio.open_connection("127.0.0.1", port, local_addr=(src, 0))
            await r.readline()
            w.write(f'a LOGIN {USER} "{PASS}"\r\n'.encode())
            line = await read_tagged(r, b"a")
            if not line.startswith(b"a OK"):
                raise SystemExit(f"idle {i}: {line!r}")
            w.write(b"b SELECT INBOX\r\n")
            line = await read_tagged(r, b"b")
            if not line.startswith(b"b OK"):
                raise SystemExit(f"idle {i}: {line!r}")
            w.write(b"c IDLE\r\n")
            line = await r.readline()
            if not line.startswith(b"+"):
                raise SystemExit(f"idle {i}: IDLE refused {line!r}")
            conns.append(w)

    await asyncio.gather(*(one(i) for i in range(k)))
    return conns


def idle(server, k):
    sources = [f"127.0.0.{i}" for i in range(2, 42)]
    loop = asyncio.new_event_loop()
    before = server.memory()
    conns = loop.run_until_complete(open_idle(server.port, k, sources))
    time.sleep(2)
    after = server.memory()
    print(f"{server.name:16} {k} idle IDLE connections from {len(sources)} addresses: memory "
          f"+{(after - before) / 1024:.1f} MiB = {(after - before) / k:.1f} KiB per connection", flush=True)
    for w in conns:
        w.close()
    loop.run_until_complete(asyncio.sleep(0.5))
    loop.close()


def mailc_config(work, name, port, cache):
    state = os.path.join(work, name)
    cfg = os.path.join(work, f"{name}.kdl")
    with open(cfg, "w") as f:
        f.write(f'''hostname "mail.example.test"
state "{state}"
tls self-signed=#true
listen "imap" "127.0.0.1:{port}" insecure-plaintext-auth=#true max-connections=20000 max-connections-per-ip=20000
limits {{
    max-connections 20000
    max-connections-per-ip 20000
}}
auth-cache enabled={"#true" if cache else "#false"}
domain "example.test" {{
    dkim selector="s1" generate=#true
    dmarc policy="none"
    mailbox "alice" password-file="{work}/alice.hash" {{
        alias "postmaster"
    }}
}}
''')
    return cfg


def dovecot_config(work, name, port, cache):
    base = os.path.join(work, name)
    os.makedirs(os.path.join(base, "run"))
    conf = os.path.join(base, "dovecot.conf")
    with open(conf, "w") as f:
        f.write(f"""protocols = imap
listen = 127.0.0.1
base_dir = {base}/run
log_path = {base}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 1
mail_location = maildir:{work}/vmail/alice
mail_max_userip_connections = 15000
default_process_limit = 15000
default_client_limit = 15000
default_vsz_limit = 0
auth_cache_size = {"10M" if cache else "0"}
auth_cache_ttl = 5 mins
passdb {{
  driver = passwd-file
  args = {work}/passwd
}}
userdb {{
  driver = static
  args = uid=dovecot gid=dovecot home={work}/vmail/alice
}}
service auth {{
  client_limit = 16000
}}
service anvil {{
  client_limit = 16000
}}
service imap-urlauth-login {{
  process_limit = 1
}}
service imap-login {{
  inet_listener imap {{
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
""")
    return conf, base


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--flood", type=int, default=60)
    ap.add_argument("--idle", type=int, default=10000)
    ap.add_argument("--dovecot-idle", type=int, default=1000)
    args = ap.parse_args()
    if not os.path.exists(MAILC):
        raise SystemExit("build first: cargo build --release")
    if not shutil.which("dovecot"):
        raise SystemExit("dovecot missing: apt-get install dovecot-imapd")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    work = tempfile.mkdtemp(prefix="mailc-login-bench-", dir="/var/tmp")
    os.chmod(work, 0o755)
    hash_ = subprocess.run([MAILC, "hash-password"], input=PASS + "\n", capture_output=True,
                           text=True, check=True).stdout.strip()
    assert hash_.startswith("$argon2id$v=19$m=19456,t=2,p=1$"), hash_
    with open(os.path.join(work, "alice.hash"), "w") as f:
        f.write(hash_ + "\n")
    os.chmod(os.path.join(work, "alice.hash"), 0o600)
    with open(os.path.join(work, "passwd"), "w") as f:
        f.write(f"{USER}:{{ARGON2ID}}{hash_}\n")
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(work, "vmail", "alice", sub))
    subprocess.run(["chown", "-R", "dovecot:dovecot", os.path.join(work, "vmail")], check=True)
    print(f"hash: {hash_[:31]}... (same file content for both servers)", flush=True)

    procs, dovecots, servers = [], [], {}
    errors = 0
    try:
        for name, port, cache in (("mailc-cache", 12443, True), ("mailc-nocache", 12444, False)):
            log = open(os.path.join(work, f"{name}.log"), "w")
            p = subprocess.Popen([MAILC, "serve", mailc_config(work, name, port, cache)],
                                 stdout=log, stderr=log, env={**os.environ, "RUST_LOG": "mailc=warn"})
            procs.append(p)
            wait_port(port)
            servers[name] = Server(name, port, (lambda p=p: [str(p.pid)]),
                                   (lambda p=p: rss_kib(p.pid)))
        for name, port, cache in (("dovecot-cache", 12445, True), ("dovecot-nocache", 12446, False)):
            conf, base = dovecot_config(work, name, port, cache)
            subprocess.run(["dovecot", "-c", conf], check=True)
            dovecots.append(conf)
            wait_port(port)
            pidfile = os.path.join(base, "run", "master.pid")
            for _ in range(200):  # written just after the listeners open
                if os.path.exists(pidfile):
                    break
                time.sleep(0.05)
            with open(pidfile) as f:
                master = f.read().strip()
            servers[name] = Server(name, port, (lambda m=master: children_of(m)),
                                   (lambda m=master: pss_kib(children_of(m))))
        # First login creates mailc's folders; warm both.
        for s in servers.values():
            asyncio.run(login_once(s.port, "127.0.0.1"))

        rates = {}
        for kind in ("reconnecting", "persistent"):
            for clients in (10, 50):
                for name in ("mailc-nocache", "mailc-cache", "dovecot-nocache", "dovecot-cache"):
                    rate, err = stress(servers[name], kind, clients, args.seconds)
                    rates[(name, kind, clients)] = rate
                    errors += err
        for clients in (10, 50):
            m = rates[("mailc-cache", "reconnecting", clients)] / rates[("mailc-nocache", "reconnecting", clients)]
            d = rates[("dovecot-cache", "reconnecting", clients)] / rates[("dovecot-nocache", "reconnecting", clients)]
            print(f"logins/s with the cache / without, {clients} clients: mailc {m:.1f}x, dovecot {d:.1f}x", flush=True)

        for name in ("mailc-nocache", "dovecot-nocache", "mailc-cache"):
            errors += flood(servers[name], 50, args.flood)

        idle(servers["mailc-cache"], args.idle)
        idle(servers["dovecot-cache"], args.dovecot_idle)
        print(f"errors in all runs: {errors}", flush=True)
    finally:
        for conf in dovecots:
            subprocess.run(["doveadm", "-c", conf, "stop"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for p in procs:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
        if not os.environ.get("BENCH_KEEP"):  # keep with BENCH_KEEP=1
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
