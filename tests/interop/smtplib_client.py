#!/usr/bin/env python3
"""Interop: Python's smtplib against mailc. Usage:
    smtplib_client.py MX_PORT SUBMISSION_PORT SUBMISSIONS_PORT
Prints one line per check: `ok NAME` or `FAIL NAME: detail`; exit 1 on any failure."""
import smtplib
import ssl
import sys

mx, sub, subs = (int(p) for p in sys.argv[1:4])
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


# MX with STARTTLS, two local recipients, one unknown.
s = smtplib.SMTP("127.0.0.1", mx, timeout=30)
code, _ = s.ehlo("smtplib.example")
check("mx ehlo", code == 250)
check("mx advertises starttls", s.has_extn("starttls"))
check("mx does not advertise auth before tls", not s.has_extn("auth"))
s.starttls(context=ctx)
s.ehlo("smtplib.example")
check("mx after starttls: no auth on port 25", not s.has_extn("auth"))
refused = s.sendmail("sender@remote.example", ["alice@example.test", "bob@example.test", "nobody@example.test"],
                     b"From: sender@remote.example\r\nSubject: smtplib mx\r\n\r\nhello over starttls\r\n")
check("unknown recipient refused with 550", refused.get("nobody@example.test", (0,))[0] == 550, str(refused))
try:
    s.sendmail("spammer@remote.example", ["victim@elsewhere.example"], b"Subject: relay\r\n\r\nx\r\n")
    check("relay attempt refused", False, "accepted")
except smtplib.SMTPRecipientsRefused as e:
    check("relay attempt refused", e.recipients["victim@elsewhere.example"][0] == 554, str(e.recipients))
s.quit()

# Submission 587: AUTH only after STARTTLS, LOGIN mechanism.
s = smtplib.SMTP("127.0.0.1", sub, timeout=30)
s.ehlo("laptop")
check("587 no auth before tls", not s.has_extn("auth"))
try:
    s.login("alice@example.test", "secret")
    check("587 login before tls refused", False, "accepted")
except smtplib.SMTPException:
    check("587 login before tls refused", True)
s = smtplib.SMTP("127.0.0.1", sub, timeout=30)
s.starttls(context=ctx)
s.ehlo("laptop")
check("587 auth after tls", "LOGIN" in s.esmtp_features.get("auth", ""))
s.user, s.password = "alice@example.test", "secret"
code, _ = s.auth("LOGIN", s.auth_login)
check("587 AUTH LOGIN", code == 235)
s.sendmail("alice@example.test", ["bob@example.test"], b"From: alice@example.test\r\nSubject: smtplib 587\r\n\r\nvia submission\r\n")
try:
    s.sendmail("bob@example.test", ["alice@example.test"], b"Subject: forged\r\n\r\nx\r\n")
    check("587 foreign sender refused", False, "accepted")
except smtplib.SMTPSenderRefused as e:
    check("587 foreign sender refused", e.smtp_code == 553, str(e))
s.quit()

# Submissions 465: implicit TLS, AUTH PLAIN, SIZE announced and enforced.
s = smtplib.SMTP_SSL("127.0.0.1", subs, context=ctx, timeout=30)
s.ehlo("laptop")
size = int(s.esmtp_features.get("size", "0"))
check("465 SIZE advertised", size > 0, s.esmtp_features.get("size"))
s.user, s.password = "bob@example.test", "secret"
code, _ = s.auth("PLAIN", s.auth_plain)
check("465 AUTH PLAIN", code == 235)
try:
    s.login("bob@example.test", "wrong")
except smtplib.SMTPException:
    pass
s.sendmail("bob@example.test", ["alice@example.test", "friend@remote.example"],
           b"From: bob@example.test\r\nSubject: smtplib 465\r\n\r\nvia submissions\r\n")
try:
    s.sendmail("bob@example.test", ["alice@example.test"], b"Subject: big\r\n\r\n" + b"x" * (size + 10))
    check("465 oversize refused", False, "accepted")
except smtplib.SMTPException as e:
    check("465 oversize refused", "552" in str(e) or getattr(e, "smtp_code", 0) == 552, str(e))
s.quit()

sys.exit(1 if failures else 0)
