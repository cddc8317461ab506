#!/usr/bin/env python3
"""Interop: Python's poplib against mailc. Usage: poplib_client.py POP3_PORT POP3S_PORT N
The mailbox alice@example.test holds N messages (Subject: msg-<i>).
Prints `ok NAME` / `FAIL NAME: detail` per check; exit 1 on any failure."""
import base64
import poplib
import ssl
import sys

pop3, pop3s, n = (int(a) for a in sys.argv[1:4])
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
failures = 0


def check(name, cond, detail=""):
    global failures
    if cond:
        print(f"ok {name}")
    else:
        failures += 1
        print(f"FAIL {name}: {detail}")


# STLS on the plain port; USER/PASS only after it.
p = poplib.POP3("127.0.0.1", pop3, timeout=30)
caps = p.capa()
check("capa has STLS", "STLS" in caps, str(caps))
check("no USER before STLS", "USER" not in caps, str(caps))
try:
    p.user("alice@example.test")
    check("USER before STLS refused", False, "accepted")
except poplib.error_proto:
    check("USER before STLS refused", True)
p.stls(context=ctx)
check("capa after STLS has USER", "USER" in p.capa())
p.user("alice@example.test")
p.pass_("secret")
count, size = p.stat()
check("stat count", count == n, str(count))
uidl1 = p.uidl()[1]
check("uidl listing", len(uidl1) == n, str(uidl1))
resp, lines, octets = p.top(1, 2)
check("top returns headers", any(l.startswith(b"Subject: msg-") for l in lines), str(lines[:5]))
resp, lines, octets = p.retr(1)
check("retr", b"".join(lines).find(b"msg-") >= 0)
p.dele(1)
p.rset()
p.dele(2)
p.quit()  # commits: message 2 deleted

# POP3S with AUTH PLAIN (raw command: poplib has no SASL helper).
p = poplib.POP3_SSL("127.0.0.1", pop3s, context=ctx, timeout=30)
token = base64.b64encode(b"\0alice@example.test\0secret").decode()
resp = p._shortcmd("AUTH PLAIN " + token)
check("AUTH PLAIN", resp.startswith(b"+OK"), str(resp))
count, size = p.stat()
check("commit on QUIT deleted one", count == n - 1, str(count))
uidl2 = p.uidl()[1]
first = {u.split()[1] for u in uidl1}
second = {u.split()[1] for u in uidl2}
check("uidls stable across sessions", second <= first and len(first - second) == 1, f"{uidl1} / {uidl2}")
p.dele(1)
# Drop the connection without QUIT: nothing is deleted.
p.sock.close()

p = poplib.POP3_SSL("127.0.0.1", pop3s, context=ctx, timeout=30)
p.user("alice@example.test")
p.pass_("secret")
check("no commit on drop", p.stat()[0] == n - 1)
try:
    p.retr(n + 5)
    check("invalid message number", False, "accepted")
except poplib.error_proto as e:
    check("invalid message number", b"no such message" in str(e).encode(), str(e))
p.quit()
sys.exit(1 if failures else 0)
