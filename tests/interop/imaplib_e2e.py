#!/usr/bin/env python3
"""IMAP end to end with Python's imaplib against the real server.

Usage: imaplib_e2e.py SMTP_PORT IMAP_PORT IMAPS_PORT MAILDIR

Mail goes in over SMTP (smtplib), is read back over IMAPS and IMAP with
STARTTLS. Checks: nested multipart BODYSTRUCTURE, partial fetch, a 1 MB
message byte-exact against the Maildir file, SEARCH keys, CONDSTORE and
QRESYNC flows, two sessions seeing each other's changes and deliveries,
IDLE latency. Exits non-zero with a message on the first failure; prints
measurements on stdout.
"""

import glob
import imaplib
import os
import re
import smtplib
import socket
import ssl
import sys
import time

SMTP, IMAP, IMAPS, MAILDIR = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
USER, PASS = "alice@example.test", "secret"
CTX = ssl.create_default_context()
CTX.check_hostname = False
CTX.verify_mode = ssl.CERT_NONE


def check(cond, what):
    if not cond:
        print("FAIL: " + what, file=sys.stderr)
        sys.exit(1)


def send(body, rcpt=USER):
    s = smtplib.SMTP("127.0.0.1", SMTP)
    s.sendmail("sender@remote.example", [rcpt], body)
    s.quit()


def wait_files(n, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        files = glob.glob(os.path.join(MAILDIR, "new", "*")) + glob.glob(os.path.join(MAILDIR, "cur", "*"))
        if len(files) >= n:
            return files
        time.sleep(0.05)
    check(False, "mail was not delivered")


def login_ssl():
    m = imaplib.IMAP4_SSL("127.0.0.1", IMAPS, ssl_context=CTX)
    typ, _ = m.login(USER, PASS)
    check(typ == "OK", "login over IMAPS")
    return m


def ok(resp, what):
    typ, data = resp
    check(typ == "OK", "%s: %r %r" % (what, typ, data))
    return data


NESTED = (
    b"From: Bob <bob@example.com>\r\nTo: alice@example.test\r\nSubject: nested parts\r\n"
    b"Date: Mon, 30 Nov 2026 07:00:00 +0000\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="o"\r\n\r\n'
    b"--o\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nouter text\r\n"
    b"--o\r\nContent-Type: message/rfc822\r\n\r\n"
    b"From: In <in@example.com>\r\nSubject: inner\r\nContent-Type: multipart/alternative; boundary=a\r\n\r\n"
    b"--a\r\nContent-Type: text/plain\r\n\r\ninner plain\r\n--a\r\nContent-Type: text/html\r\n\r\n<b>inner</b>\r\n--a--\r\n"
    b"\r\n--o\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n--o--\r\n"
)


def main():
    # --- mail in ---
    send(NESTED)
    big_line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.,;:-_+*/=()[]{}<>?!\r\n"
    big = b"From: big@example.com\r\nSubject: one megabyte\r\n\r\n" + big_line * (1024 * 1024 // len(big_line) + 1)
    send(big)
    senders = ["carol@example.net", "dave@example.org", "eve@example.com"]
    for i in range(10):
        send(
            (
                "From: %s\r\nTo: alice@example.test\r\nSubject: batch %d %s\r\n"
                "Date: %s Nov 2026 10:00:00 +0000\r\nMessage-ID: <b%d@example>\r\n\r\n"
                "body of message %d %s\r\n"
                % (senders[i % 3], i, "urgent" if i % 4 == 0 else "", 10 + i, i, i, "kiwi" if i == 7 else "")
            ).encode()
        )
    wait_files(12)

    m = login_ssl()
    typ, data = m.select("INBOX")
    check(typ == "OK" and int(data[0]) == 12, "SELECT INBOX: 12 messages, got %r" % data)

    # --- nested BODYSTRUCTURE ---
    uid = ok(m.uid("SEARCH", None, "SUBJECT", '"nested parts"'), "search nested")[0].split()
    check(len(uid) == 1, "one nested message")
    bs = ok(m.uid("FETCH", uid[0], "(BODYSTRUCTURE)"), "fetch bodystructure")[0].decode()
    for want in ['"MESSAGE" "RFC822"', '"ALTERNATIVE"', '"IMAGE" "PNG"', '"MIXED" ("BOUNDARY" "o")', '"TEXT" "HTML"']:
        check(want in bs, "BODYSTRUCTURE has %s: %s" % (want, bs))
    part = ok(m.uid("FETCH", uid[0], "(BODY.PEEK[2.2])"), "fetch 2.2")
    check(part[0][1] == b"<b>inner</b>", "BODY[2.2] is the inner html: %r" % (part,))
    hdr = ok(m.uid("FETCH", uid[0], "(BODY.PEEK[2.HEADER.FIELDS (Subject)])"), "fetch 2.HEADER.FIELDS")
    check(hdr[0][1] == b"Subject: inner\r\n\r\n", "inner header fields: %r" % (hdr,))
    binary = ok(m.uid("FETCH", uid[0], "(BINARY.PEEK[3])"), "binary")
    check(binary[0][1] == b"\x89PNG\r\n\x1a\n", "BINARY[3] decodes base64: %r" % (binary,))

    # --- 1 MB byte-exact, partial fetch ---
    big_uid = ok(m.uid("SEARCH", None, "SUBJECT", '"one megabyte"'), "search big")[0].split()[0]
    on_disk = [open(f, "rb").read() for f in wait_files(12) if b"one megabyte" in open(f, "rb").read()]
    check(len(on_disk) == 1, "big message on disk")
    t0 = time.time()
    got = ok(m.uid("FETCH", big_uid, "(BODY.PEEK[])"), "fetch big")[0][1]
    fetch_ms = (time.time() - t0) * 1000
    check(got == on_disk[0], "1 MB message byte-exact (%d vs %d bytes)" % (len(got), len(on_disk[0])))
    check(len(got) > 1024 * 1024, "message is over 1 MB")
    part = ok(m.uid("FETCH", big_uid, "(BODY.PEEK[]<1000.500>)"), "partial")
    check(part[0][1] == on_disk[0][1000:1500], "partial fetch <1000.500>")
    check(b"BODY[]<1000>" in part[0][0], "partial fetch origin echoed: %r" % part[0][0])
    size = ok(m.uid("FETCH", big_uid, "(RFC822.SIZE)"), "size")[0].decode()
    check("RFC822.SIZE %d" % len(on_disk[0]) in size, "RFC822.SIZE matches: %s" % size)

    # --- SEARCH keys ---
    def search(*keys):
        return sorted(int(x) for x in ok(m.search(None, *keys), "search %r" % (keys,))[0].split())

    m.store("3", "+FLAGS", "(\\Flagged $Important)")
    m.store("4", "+FLAGS", "(\\Seen)")
    cases = {
        ("FROM", "carol"): 4,
        ("TO", "alice"): 11,  # the big message has no To
        ("SUBJECT", "urgent"): 3,
        ("BODY", "kiwi"): 1,
        ("TEXT", "dave@example.org"): 3,
        ("SINCE", "15-Nov-2026"): 12,  # INTERNALDATE is arrival: all today
        ("BEFORE", "1-Jan-2000"): 0,
        # 5 with a Date before the 15th, and the big one, which has no Date:
        # its sent date is the epoch, as in Dovecot 2.3 (RFC 3501 does not say).
        ("SENTBEFORE", "15-Nov-2026"): 6,
        ("LARGER", "1000000"): 1,
        ("SMALLER", "1000"): 11,  # all but the big one
        ("FLAGGED",): 1,
        ("KEYWORD", "$Important"): 1,
        ("UNSEEN",): 11,
        ("SEEN",): 1,
        ("HEADER", "Message-ID", "b3@"): 1,
        ("OR", "FROM", "eve", "FROM", "dave"): 6,
        ("NOT", "FROM", "carol"): 8,
        ("UID", "1:3"): 3,
        ("1:5", "UNFLAGGED"): 4,
    }
    for keys, n in cases.items():
        got_n = len(search(*keys))
        check(got_n == n, "SEARCH %s: expected %d, got %d" % (" ".join(keys), n, got_n))
    print("search keys checked: %d" % len(cases))

    # --- CONDSTORE / QRESYNC with a second session ---
    ok(m.close(), "close before ENABLE")
    ok(m.enable("QRESYNC"), "enable qresync")
    m.state = "AUTH"
    typ, data = m._simple_command("SELECT", "INBOX")
    m.state = "SELECTED"
    check(typ == "OK", "reselect")
    hms = m.untagged_responses.get("OK", [])
    modseq = max(int(x) for x in re.findall(rb"HIGHESTMODSEQ (\d+)", b" ".join(hms)))
    validity = int(re.search(rb"UIDVALIDITY (\d+)", b" ".join(hms)).group(1))
    m.untagged_responses.clear()

    other = imaplib.IMAP4("127.0.0.1", IMAP)
    other.starttls(ssl_context=CTX)
    other.login(USER, PASS)
    other.select("INBOX")
    ok(other.store("5", "+FLAGS", "(\\Answered)"), "other store")
    ok(other.store("6", "+FLAGS", "(\\Deleted)"), "other delete")
    uid6 = int(re.search(rb"UID (\d+)", other.fetch("6", "(UID)")[1][0]).group(1))
    ok(other.expunge(), "other expunge")

    # The first session sees both changes on NOOP: VANISHED and FETCH.
    m.untagged_responses.clear()
    typ, _ = m._simple_command("NOOP")
    check(typ == "OK", "noop")
    vanished = m.untagged_responses.get("VANISHED", [])
    check(any(str(uid6).encode() in v for v in vanished), "VANISHED %d after the other session's expunge: %r" % (uid6, m.untagged_responses))
    fetches = b" ".join(x if isinstance(x, bytes) else x[0] for x in m.untagged_responses.get("FETCH", []))
    check(b"\\Answered" in fetches and b"MODSEQ" in fetches, "flag change seen with MODSEQ: %r" % fetches)
    ok(m.close(), "close")

    # QRESYNC reselect with the old MODSEQ: the same changes again.
    m.untagged_responses.clear()
    typ, _ = m._simple_command("SELECT", "INBOX", "(QRESYNC (%d %d))" % (validity, modseq))
    m.state = "SELECTED"
    check(typ == "OK", "qresync select")
    vanished = m.untagged_responses.get("VANISHED", [])
    check(any(b"EARLIER" in v and str(uid6).encode() in v for v in vanished), "VANISHED (EARLIER) on QRESYNC select: %r" % vanished)
    fetches = b" ".join(x if isinstance(x, bytes) else x[0] for x in m.untagged_responses.get("FETCH", []))
    check(b"\\Answered" in fetches, "changed flags on QRESYNC select: %r" % fetches)
    # CHANGEDSINCE and UNCHANGEDSINCE.
    typ, data = m._simple_command("UID", "FETCH", "1:*", "(FLAGS)", "(CHANGEDSINCE %d)" % modseq)
    check(typ == "OK", "changedsince")
    typ, data = m._simple_command("STORE", "1", "(UNCHANGEDSINCE 1)", "+FLAGS", "(\\Flagged)")
    check(typ == "OK" and b"MODIFIED" in b" ".join(d for d in data if d), "UNCHANGEDSINCE 1 fails with MODIFIED: %r" % data)

    # --- two sessions: a delivery in between, seen by both ---
    before = int(ok(other.select("INBOX"), "other select")[0])
    send(b"Subject: while open\r\n\r\nhello\r\n")
    deadline = time.time() + 10
    seen = False
    while time.time() < deadline and not seen:
        other.untagged_responses.clear()
        other.noop()
        exists = other.untagged_responses.get("EXISTS", [])
        seen = any(int(e) == before + 1 for e in exists)
        time.sleep(0.05)
    check(seen, "the other session sees the delivery as EXISTS")

    # --- IDLE latency: deliver while idling ---
    latencies = []
    for i in range(5):
        tag = other._new_tag()
        other.send(tag + b" IDLE\r\n")
        line = other.readline()
        check(line.startswith(b"+"), "IDLE continuation: %r" % line)
        t0 = time.time()
        send(("Subject: idle %d\r\n\r\nping\r\n" % i).encode())
        other.sock.settimeout(5)
        line = other.readline()
        latency = time.time() - t0
        check(b"EXISTS" in line, "IDLE reports EXISTS: %r" % line)
        latencies.append(latency)
        other.send(b"DONE\r\n")
        while True:
            line = other.readline()
            if line.startswith(tag):
                check(b"OK" in line, "IDLE done: %r" % line)
                break
        other.sock.settimeout(None)
    worst = max(latencies)
    check(worst < 1.0, "IDLE told within 1 s of delivery (SMTP submission included): worst %.3f s" % worst)
    print("idle latency ms (SMTP send to EXISTS): " + " ".join("%.1f" % (x * 1000) for x in latencies))
    print("1MB fetch ms: %.1f" % fetch_ms)
    other.logout()
    m.logout()
    print("OK")


main()
