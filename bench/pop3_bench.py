#!/usr/bin/env python3
"""POP3 download benchmark (not a test): the same N messages are served by
mailc and by Dovecot (configured on loopback over a copy of the same
Maildir, both over POP3S), and downloaded with Python's poplib and with
fetchmail, in the same run. Prints the time each download took.

usage: bench/pop3_bench.py [--messages 1000] [--size 10240]
Needs: root (Dovecot), dovecot-pop3d, fetchmail, a release build.
"""
import argparse
import os
import poplib
import shutil
import signal
import smtplib
import ssl
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAILC = os.path.join(ROOT, "target", "release", "mailc")

# The MX of the benchmark measures mail handling without the inbound checks
# (SPF/DKIM/DMARC need the senders' DNS; no query leaves the machine).
# Builds older than the `inbound { checks }` setting (2026-12-03) refuse
# these lines: MAILC_BENCH_COMPAT=1 leaves them out for such a build.
NO_CHECKS = "" if os.environ.get("MAILC_BENCH_COMPAT") else 'resolver "127.0.0.1:9"\ninbound {\n    checks #false\n}\n'
CTX = ssl.create_default_context()
CTX.check_hostname = False
CTX.verify_mode = ssl.CERT_NONE


def wait_port(port):
    import socket
    for _ in range(400):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


def poplib_download(port, n):
    start = time.time()
    p = poplib.POP3_SSL("127.0.0.1", port, context=CTX, timeout=60)
    p.user("alice@example.test")
    p.pass_("secret")
    count, _ = p.stat()
    assert count == n, f"{count} messages, expected {n}"
    total = 0
    for i in range(1, count + 1):
        _, lines, octets = p.retr(i)
        total += octets
    p.quit()
    return time.time() - start, total


def fetchmail_download(work, port, n, tag):
    out = os.path.join(work, f"fetched-{tag}")
    os.makedirs(out, exist_ok=True)
    rc = os.path.join(work, f"fetchmailrc-{tag}")
    with open(rc, "w") as f:
        f.write(f'poll 127.0.0.1 port {port} protocol POP3 user "alice@example.test" password "secret" ssl no sslcertck keep\n')
    os.chmod(rc, 0o600)
    start = time.time()
    subprocess.run(["fetchmail", "-f", rc, "--nodetach", "--all", "--silent", "--pidfile", os.path.join(work, "fm.pid"),
                    "--mda", f"/bin/sh -c 'cat > {out}/m$$'"],
                   env={**os.environ, "FETCHMAILHOME": work}, check=True)
    took = time.time() - start
    got = len(os.listdir(out))
    assert got == n, f"fetchmail saved {got} of {n}"
    shutil.rmtree(out)
    return took


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=1000)
    ap.add_argument("--size", type=int, default=10240)
    args = ap.parse_args()
    for tool in ("dovecot", "fetchmail"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} missing: apt-get install dovecot-pop3d fetchmail")
    work = tempfile.mkdtemp(prefix="mailc-pop3-bench-", dir="/var/tmp")
    os.chmod(work, 0o755)
    state = os.path.join(work, "state")
    smtp_port, pop3s_port, dovecot_port = 12725, 12995, 12996
    cfg = os.path.join(work, "mailc.kdl")
    hash_ = subprocess.run([MAILC, "hash-password"], input=b"secret\n", capture_output=True, check=True).stdout.decode().strip()
    with open(cfg, "w") as f:
        f.write(f'''hostname "mail.example.test"
state "{state}"
tls self-signed=#true
listen "smtp" "127.0.0.1:{smtp_port}"
{NO_CHECKS}listen "pop3s" "127.0.0.1:{pop3s_port}"
domain "example.test" {{
    dkim selector="s1" generate=#true
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
        body = ("x" * 76 + "\r\n") * max(1, args.size // 78)
        s = smtplib.SMTP("127.0.0.1", smtp_port)
        for i in range(args.messages):
            s.sendmail("b@remote.example", ["alice@example.test"], f"Subject: bench {i}\r\n\r\n{body}".encode())
        s.quit()
        maildir = os.path.join(state, "mail", "example.test", "alice")
        while len(os.listdir(os.path.join(maildir, "new"))) < args.messages:
            time.sleep(0.05)

        # Dovecot over a copy of the same Maildir.
        vmail = os.path.join(work, "vmail", "alice")
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(vmail, sub))
        for name in os.listdir(os.path.join(maildir, "new")):
            shutil.copy(os.path.join(maildir, "new", name), os.path.join(vmail, "new", name))
        subprocess.run(["chown", "-R", "dovecot:dovecot", os.path.join(work, "vmail")], check=True)
        with open(os.path.join(work, "passwd"), "w") as f:
            f.write("alice@example.test:{PLAIN}secret\n")
        dconf = os.path.join(work, "dovecot.conf")
        run = os.path.join(work, "run")
        os.makedirs(run)
        with open(dconf, "w") as f:
            f.write(f"""protocols = pop3
listen = 127.0.0.1
base_dir = {run}
log_path = {work}/dovecot.log
ssl = required
ssl_cert = <{state}/tls/selfsigned.pem
ssl_key = <{state}/tls/selfsigned.key
disable_plaintext_auth = yes
auth_mechanisms = plain login
first_valid_uid = 1
mail_location = maildir:{work}/vmail/alice
passdb {{
  driver = passwd-file
  args = {work}/passwd
}}
userdb {{
  driver = static
  args = uid=dovecot gid=dovecot home={work}/vmail/alice
}}
service pop3-login {{
  inet_listener pop3 {{
    port = 0
  }}
  inet_listener pop3s {{
    port = {dovecot_port}
    ssl = yes
  }}
}}
pop3_uidl_format = %08Xv%08Xu
""")
        subprocess.run(["dovecot", "-c", dconf], check=True)
        try:
            wait_port(dovecot_port)
            # Warm both (first login builds Dovecot's index, mailc's index).
            poplib_download(pop3s_port, args.messages)
            poplib_download(dovecot_port, args.messages)
            results = {}
            for name, port in (("mailc", pop3s_port), ("dovecot", dovecot_port)):
                t, octets = poplib_download(port, args.messages)
                tf = fetchmail_download(work, port, args.messages, name)
                results[name] = (t, tf, octets)
                print(f"{name:8} poplib {t:6.2f} s ({args.messages / t:7.0f} msg/s, {octets / t / 1e6:6.1f} MB/s)   fetchmail {tf:6.2f} s ({args.messages / tf:7.0f} msg/s)", flush=True)
            m, d = results["mailc"], results["dovecot"]
            print(f"ratio (dovecot time / mailc time): poplib {d[0] / m[0]:.2f}x, fetchmail {d[1] / m[1]:.2f}x")
        finally:
            subprocess.run(["doveadm", "-c", dconf, "stop"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
