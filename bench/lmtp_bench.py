#!/usr/bin/env python3
"""LMTP delivery benchmark (not a test): the same N messages of SIZE bytes
are delivered over LMTP (S sessions, pipelined MAIL/RCPT/DATA, one
recipient each) to mailc and to a private Dovecot LMTP on loopback, in the
same run, on the same disk, into Maildir with the fsyncs of each
(Dovecot: `mail_fsync = always`; mailc: durable spool before 250, synced
Maildir delivery). Both run the same 20-rule Sieve script before the
user's (mailc `sieve { before "..." }`, Dovecot `sieve_before`):
header, address and envelope tests filing list mail, invoices and alerts
into folders; 7 messages in 10 end in INBOX.

Reports, for each server and session count, the medians over the rounds
(the servers take turns within a round): messages/s over LMTP (every
message got its 250), messages/s in Maildir (every file present: mailc
answers once the message is in its spool and delivers right after;
Dovecot answers after delivering), server CPU per message (utime+stime
from /proc: mailc's process; Dovecot's master, its live children and the
children it reaped), and the ratios mailc/Dovecot.

--no-sieve runs both without Sieve (for a mailc without delivery-time
Sieve). The messages' folders are checked after each run when Sieve is on.

usage: bench/lmtp_bench.py [--messages 2000] [--size 10240] [--sessions 1,10]
                           [--rounds 3] [--no-sieve] [--only mailc|dovecot]
Needs: root (Dovecot), dovecot-lmtpd and dovecot-sieve, a release build.
"""
import argparse
import multiprocessing
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import smtp_bench as sb  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
DOMAIN = "bench.example"

# Ten kinds of message, taken in turn: (envelope sender, header fields,
# the folder the Sieve script files it into). Seven go to INBOX after
# passing all 20 rules.
KINDS = [
    ("alice@friends.example", "From: Alice <alice@friends.example>\r\nSubject: Lunch on Friday?\r\n", ""),
    ("bob@work.example", "From: Bob <bob@work.example>\r\nSubject: Quarterly report draft\r\n", ""),
    ("carol@family.example", "From: Carol <carol@family.example>\r\nSubject: Photos from the weekend\r\n", ""),
    ("dave@work.example", "From: Dave <dave@work.example>\r\nSubject: Re: project timeline\r\nIn-Reply-To: <timeline@work.example>\r\n", ""),
    ("erin@friends.example", "From: Erin <erin@friends.example>\r\nSubject: Book recommendation\r\n", ""),
    ("frank@clients.example", "From: Frank <frank@clients.example>\r\nSubject: Meeting notes\r\nCc: bench@bench.example\r\n", ""),
    ("grace@friends.example", "From: Grace <grace@friends.example>\r\nSubject: Concert tickets\r\n", ""),
    ("bounce-1234@lists.rust.example", "From: Someone <someone@users.rust.example>\r\nSubject: [rust-users] borrow checker question\r\nList-Id: Rust users <rust-users.lists.rust.example>\r\nList-Unsubscribe: <mailto:leave@lists.rust.example>\r\nPrecedence: list\r\n", "Lists"),
    ("billing@shop.example", "From: Shop <billing@shop.example>\r\nSubject: Your invoice 2026-1234\r\n", "Invoices"),
    ("alerts@monitoring.example", "From: Monitoring <noreply@monitoring.example>\r\nSubject: disk usage 91% on db1\r\n", "Alerts"),
]

# 20 rules; the INBOX messages are tested against every one.
SIEVE = """require ["fileinto", "mailbox", "envelope"];
# 1-4: junk
if header :contains "X-Spam-Flag" "YES" { fileinto :create "Junk"; stop; }
if header :matches "Subject" ["*[SPAM]*", "*viagra*", "*lottery*"] { fileinto :create "Junk"; stop; }
if address :domain :is "from" ["spam.example", "bulk.example"] { fileinto :create "Junk"; stop; }
if envelope :domain :is "from" ["bounces.bulk.example", "mailer.spam.example"] { fileinto :create "Junk"; stop; }
# 5-8: mailing lists
if header :contains "List-Id" "announce.lists.debian.example" { fileinto :create "Lists"; stop; }
if header :contains "List-Id" "dev.lists.postfix.example" { fileinto :create "Lists"; stop; }
if envelope :localpart :matches "from" "owner-*" { fileinto :create "Lists"; stop; }
if allof (exists "List-Id", header :contains "List-Id" "lists.rust.example") { fileinto :create "Lists"; stop; }
# 9-12: shops and banks
if address :is "from" ["orders@shop.example", "noreply@bank.example"] { fileinto :create "Invoices"; stop; }
if allof (address :domain :is "from" "shop.example", header :contains "Subject" "invoice") { fileinto :create "Invoices"; stop; }
if header :matches "Subject" "*statement for account*" { fileinto :create "Invoices"; stop; }
if address :localpart :is "from" "receipts" { fileinto :create "Invoices"; stop; }
# 13-16: machines
if header :is "X-Cron-Env" "SHELL=/bin/sh" { fileinto :create "Alerts"; stop; }
if envelope :is "from" ["alerts@monitoring.example", "nagios@monitoring.example"] { fileinto :create "Alerts"; stop; }
if header :contains "Subject" "Cron <root@" { fileinto :create "Alerts"; stop; }
if anyof (header :contains "X-Mailer" "logwatch", address :localpart :is "from" "logcheck") { fileinto :create "Alerts"; stop; }
# 17-20: people and the rest
if address :is "to" "old-address@bench.example" { fileinto :create "Old"; stop; }
if header :contains "Subject" ["newsletter", "unsubscribe", "% off"] { fileinto :create "Promotions"; stop; }
if size :over 5M { fileinto :create "Large"; stop; }
if not exists ["From", "Date"] { fileinto :create "Junk"; stop; }
"""


def message(kind, n, size, rcpt):
    """Message n of a kind, about `size` bytes, CRLF, no line starting with a dot."""
    _, fields, _ = KINDS[kind]
    head = (f"{fields}To: Bench <{rcpt}>\r\nDate: Thu, 03 Dec 2026 12:00:00 +0000\r\n"
            f"Message-ID: <{n}.{kind}@bench.client>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=us-ascii\r\n\r\n")
    line = "The quick brown fox jumps over the lazy dog, message body text here. 0123\r\n"
    body = line * max(1, (size - len(head)) // len(line))
    return (head + body).encode()


def replies(f, n):
    """Reads n replies; returns their codes (the last line's)."""
    codes = []
    for _ in range(n):
        while True:
            line = f.readline()
            if not line:
                raise RuntimeError(f"connection closed by the server after {codes}")
            if line[3:4] != b"-":
                codes.append(int(line[:3]))
                break
    return codes


def session(args):
    """One LMTP connection delivering messages start, start+step, ..."""
    port, rcpt, start, step, messages, size = args
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    f = s.makefile("rb")
    replies(f, 1)
    s.sendall(b"LHLO bench.client\r\n")
    if replies(f, 1) != [250]:
        raise RuntimeError("LHLO refused")
    for n in range(start, messages, step):
        kind = n % len(KINDS)
        sender = KINDS[kind][0]
        try:
            s.sendall(f"MAIL FROM:<{sender}>\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n".encode())
            got = replies(f, 3)
            if got != [250, 250, 354]:
                raise RuntimeError(f"{got}")
            s.sendall(message(kind, n, size, rcpt) + b".\r\n")
            got = replies(f, 1)
            if got != [250]:
                raise RuntimeError(f"{got} after DATA")
        except (OSError, RuntimeError) as e:
            raise RuntimeError(f"port {port}, message {n}: {e}") from None
    s.sendall(b"QUIT\r\n")
    replies(f, 1)
    s.close()


def maildir_count(root):
    """Messages in every folder of a Maildir++ (new and cur)."""
    total = 0
    folders = [root]
    try:
        folders += [os.path.join(root, d) for d in os.listdir(root) if d.startswith(".") and os.path.isdir(os.path.join(root, d))]
    except FileNotFoundError:
        return 0
    for d in folders:
        for sub in ("new", "cur"):
            try:
                total += len(os.listdir(os.path.join(d, sub)))
            except FileNotFoundError:
                pass
    return total


def folder_counts(root):
    out = {}
    for d in [""] + sorted(x[1:] for x in os.listdir(root) if x.startswith(".") and os.path.isdir(os.path.join(root, x))):
        path = os.path.join(root, "." + d) if d else root
        n = sum(len(os.listdir(os.path.join(path, s))) for s in ("new", "cur") if os.path.isdir(os.path.join(path, s)))
        out[d or "INBOX"] = n
    return out


def cpu_of(pids, reaped_first=False):
    total = 0
    for i, pid in enumerate(pids):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
            if reaped_first and i == 0:
                total += int(fields[13]) + int(fields[14])
        except (OSError, IndexError, ValueError):
            pass
    return total / TICK


def descendants(root):
    """root and every live process below it."""
    parent = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/stat") as f:
                    parent[int(p)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    out = [root]
    frontier = [root]
    while frontier:
        nxt = [p for p, pp in parent.items() if pp in frontier]
        out += nxt
        frontier = nxt
    return out


def run(port, messages, size, sessions, maildir, cpu_fn, first):
    """Delivers messages first..first+N to the mailbox whose Maildir is
    `maildir` (a new one each run, so that every run starts from an empty
    mailbox); returns (LMTP msg/s, in-Maildir msg/s, CPU us/msg)."""
    rcpt = f"{os.path.basename(maildir)}@{DOMAIN}"
    before = maildir_count(maildir)
    jobs = [(port, rcpt, first + i, sessions, first + messages, size) for i in range(sessions)]
    with multiprocessing.Pool(sessions) as pool:
        # The client processes exist before the clock starts.
        pool.map(time.sleep, [0.01] * sessions)
        c0 = cpu_fn()
        start = time.time()
        pool.map(session, jobs, chunksize=1)
        lmtp = time.time() - start
    deadline = time.time() + 600
    while maildir_count(maildir) - before < messages:
        if time.time() > deadline:
            raise SystemExit(f"only {maildir_count(maildir) - before} of {messages} in {maildir}")
        time.sleep(0.005)
    stored = time.time() - start
    time.sleep(0.3)  # let the servers finish their bookkeeping (indexes, spool cleanup)
    used = cpu_fn() - c0
    return messages / lmtp, messages / stored, used / messages * 1e6


def start_mailc(work, port, script, boxes):
    state = os.path.join(work, "mailc-state")
    cfg = os.path.join(work, "mailc.kdl")
    sieve = f'sieve {{\n    before "{script}"\n}}\n' if script else ""
    mailboxes = "".join(f'    mailbox "{b}"\n' for b in boxes)
    with open(cfg, "w") as f:
        f.write(f'''hostname "mail.bench.example"
state "{state}"
listen "lmtp" "127.0.0.1:{port}"
limits {{
    max-connections-per-ip 200
}}
{sieve}domain "{DOMAIN}" {{
{mailboxes}}}
''')
    check = subprocess.run([sb.MAILC, "check", cfg], capture_output=True, text=True)
    if check.returncode != 0:
        hint = "\nthis mailc has no delivery-time Sieve yet: run with --no-sieve" if script and "sieve" in check.stdout + check.stderr else ""
        raise SystemExit(f"mailc check {cfg}:\n{check.stdout}{check.stderr}{hint}")
    log = open(os.path.join(work, "mailc.log"), "w")
    proc = subprocess.Popen([sb.MAILC, "serve", cfg], stdout=log, stderr=log, env={**os.environ, "RUST_LOG": "mailc=warn"})
    sb.wait_port(port)
    return proc, os.path.join(state, "mail", DOMAIN)


def start_dovecot(work, port, script):
    run_dir = os.path.join(work, "dovecot-run")
    mail = os.path.join(work, "dovecot-mail")
    os.makedirs(run_dir)
    os.makedirs(mail)
    subprocess.run(["chown", "dovecot:dovecot", mail], check=True)
    os.chmod(work, 0o755)
    plugin = ""
    if script:
        # Compiled ahead, as an admin would: the lmtp processes (user
        # dovecot) cannot write next to the script.
        subprocess.run(["sievec", script], check=True)
        plugin = f"""protocol lmtp {{
  mail_plugins = $mail_plugins sieve
}}
plugin {{
  sieve_before = {script}
  sieve = file:{work}/no-user-scripts;active={work}/no-user-script.sieve
}}
"""
    conf = os.path.join(work, "dovecot.conf")
    with open(conf, "w") as f:
        f.write(f"""protocols = lmtp
listen = 127.0.0.1
base_dir = {run_dir}
log_path = {work}/dovecot.log
ssl = no
first_valid_uid = 1
mail_location = maildir:{mail}/%d/%n
mail_fsync = always
postmaster_address = postmaster@bench.example
passdb {{
  driver = static
  args = nopassword=y
}}
userdb {{
  driver = static
  args = uid=dovecot gid=dovecot home={mail}/%d/%n allow_all_users=yes
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {port}
  }}
}}
{plugin}""")
    subprocess.run(["dovecot", "-c", conf], check=True)
    sb.wait_port(port)
    # The master writes its pid file after binding the listeners.
    pid_file = os.path.join(run_dir, "master.pid")
    for _ in range(100):
        try:
            with open(pid_file) as f:
                master = int(f.read().strip())
            break
        except (FileNotFoundError, ValueError):
            time.sleep(0.05)
    else:
        raise SystemExit(f"no {pid_file}")
    return conf, master, os.path.join(mail, DOMAIN)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--size", type=int, default=10240)
    ap.add_argument("--sessions", default="1,10")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-sieve", action="store_true", help="both servers without Sieve")
    ap.add_argument("--only", choices=["mailc", "dovecot"], default=None)
    args = ap.parse_args()
    if not os.path.exists(sb.MAILC):
        raise SystemExit("build first: cargo build --release")
    for tool in ("dovecot", "sievec"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} missing: apt-get install dovecot-lmtpd dovecot-sieve")
    work = tempfile.mkdtemp(prefix="mailc-lmtp-bench-", dir=os.environ.get("BENCH_DIR", "/var/tmp"))
    os.chmod(work, 0o755)
    print(f"work dir {work}")
    print(f"disk: {sb.fsync_rate(work):.0f} fsync(file)+fsync(dir) pairs/s (serial, 10 KiB files)")
    print(f"sieve: {'off' if args.no_sieve else 'on (20 rules, sieve before the user)'}; "
          f"{args.messages} messages of {args.size} bytes per run, {args.rounds} rounds", flush=True)
    script = None
    if not args.no_sieve:
        sdir = os.path.join(work, "sieve")
        os.makedirs(sdir)
        os.chmod(sdir, 0o755)
        script = os.path.join(sdir, "before.sieve")
        with open(script, "w") as f:
            f.write(SIEVE)
        os.chmod(script, 0o644)
    sessions = [int(s) for s in args.sessions.split(",")]
    servers = [n for n in ("mailc", "dovecot") if args.only in (None, n)]
    mailc_port, dovecot_port = 12424, 12425
    # A fresh mailbox for each run (and one for the warm-up).
    boxes = [f"bench{i}" for i in range(1 + args.rounds * len(sessions))]
    procs = {}
    try:
        if "mailc" in servers:
            mwork = os.path.join(work, "mailc")
            os.makedirs(mwork)
            proc, md = start_mailc(mwork, mailc_port, script, boxes)
            procs["mailc"] = (mailc_port, md, lambda: cpu_of([proc.pid]))
        if "dovecot" in servers:
            dwork = os.path.join(work, "dovecot")
            os.makedirs(dwork)
            conf, master, md = start_dovecot(dwork, dovecot_port, script)
            # The master's own time, the time of the children it reaped
            # (lmtp processes that exited), and its live children's.
            procs["dovecot"] = (dovecot_port, md,
                                lambda: cpu_of([master], reaped_first=True) + cpu_of(descendants(master)[1:]))
        # Warm-up (not measured): the first deliveries create the folders,
        # indexes and compiled scripts.
        first = 0
        warm = max(len(KINDS), min(200, args.messages // 10))
        for name in servers:
            port, md, cpu_fn = procs[name]
            run(port, warm, args.size, 1, os.path.join(md, boxes[0]), cpu_fn, first)
        first += warm
        box = 1
        results = {}
        for r in range(args.rounds):
            for s in sessions:
                for name in servers:
                    port, md, cpu_fn = procs[name]
                    res = run(port, args.messages, args.size, s, os.path.join(md, boxes[box]), cpu_fn, first)
                    results.setdefault((name, s), []).append(res)
                    print(f"round {r + 1} {name:8} sessions={s:3}: LMTP {res[0]:7.0f} msg/s, in Maildir {res[1]:7.0f} msg/s, "
                          f"server CPU {res[2]:6.0f} us/msg", flush=True)
                first += args.messages
                box += 1
        if script:
            for name in servers:
                counts = {}
                for b in boxes:
                    for folder, n in folder_counts(os.path.join(procs[name][1], b)).items():
                        counts[folder] = counts.get(folder, 0) + n
                print(f"{name} folders: {counts}")
                expected = {}
                for n in range(first):
                    folder = KINDS[n % len(KINDS)][2] or "INBOX"
                    expected[folder] = expected.get(folder, 0) + 1
                if counts != expected:
                    raise SystemExit(f"{name}: folders {counts}, expected {expected}")
        print()
        print(f"medians of {args.rounds} rounds")
        print(f"{'server':8} {'sessions':>8} {'LMTP msg/s':>11} {'Maildir msg/s':>14} {'CPU us/msg':>11}")
        med = {}
        for s in sessions:
            for name in servers:
                rs = results[(name, s)]
                med[(name, s)] = tuple(statistics.median(x[i] for x in rs) for i in range(3))
                m = med[(name, s)]
                print(f"{name:8} {s:>8} {m[0]:>11.0f} {m[1]:>14.0f} {m[2]:>11.0f}")
        if len(servers) == 2:
            print()
            print(f"{'sessions':>8} {'mailc/dovecot in Maildir':>25} {'dovecot/mailc CPU':>18} {'per-round Maildir ratios':>25}")
            for s in sessions:
                m, d = med[("mailc", s)], med[("dovecot", s)]
                per = " ".join(f"{a[1] / b[1]:.2f}" for a, b in zip(results[("mailc", s)], results[("dovecot", s)]))
                print(f"{s:>8} {m[1] / d[1]:>24.2f}x {d[2] / m[2]:>17.2f}x {per:>25}")
    except BaseException:
        # Keep the logs of a failed run.
        os.environ["BENCH_KEEP"] = "1"
        print(f"failed: {work} kept", file=sys.stderr)
        raise
    finally:
        if "mailc" in servers and "mailc" in procs:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
        if "dovecot" in procs:
            subprocess.run(["doveadm", "-c", conf, "stop"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
