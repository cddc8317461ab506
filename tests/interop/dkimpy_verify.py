#!/usr/bin/python3
"""Verifies every DKIM signature of the message on stdin with dkimpy
(Debian python3-dkim), looking keys up with a real DNS query (dnspython) to
the server at 127.0.0.1:PORT. Prints one line per signature:
`<selector> <domain> pass|fail`; exits 0 when all pass, 1 otherwise.
With `--arc` after PORT: verifies the ARC chain instead and prints
`arc pass|fail|none`; exits 0 on pass."""
import sys

import dkim
import dns.flags
import dns.message
import dns.query
import dns.rdatatype

port = int(sys.argv[1])


def txt(name, timeout=5):
    # name is bytes like b"s1._domainkey.example.com."
    query = dns.message.make_query(name.decode("ascii"), dns.rdatatype.TXT)
    response = dns.query.udp(query, "127.0.0.1", port=port, timeout=timeout)
    if response.flags & dns.flags.TC:
        response = dns.query.tcp(query, "127.0.0.1", port=port, timeout=timeout)
    for rrset in response.answer:
        if rrset.rdtype == dns.rdatatype.TXT:
            return b"".join(list(rrset.items)[0].strings)
    return None


message = sys.stdin.buffer.read()
if sys.argv[2:3] == ["--arc"]:
    cv, _results, reason = dkim.arc_verify(message, dnsfunc=txt)
    verdict = cv.decode() if isinstance(cv, bytes) else str(cv)
    print(f"arc {verdict.lower()}")
    if verdict.lower() != "pass":
        print(reason, file=sys.stderr)
    sys.exit(0 if verdict.lower() == "pass" else 1)
d = dkim.DKIM(message, minkey=1024)
count = sum(
    1 for name, _ in d.headers if name.lower() == b"dkim-signature"
)
if count == 0:
    print("no signature")
    sys.exit(1)
ok = True
for idx in range(count):
    d = dkim.DKIM(message, minkey=1024)
    try:
        passed = d.verify(idx=idx, dnsfunc=txt)
    except dkim.DKIMException as e:
        print(f"error: {e}", file=sys.stderr)
        passed = False
    sig = d.signature_fields if hasattr(d, "signature_fields") else {}
    selector = sig.get(b"s", b"?").decode()
    domain = sig.get(b"d", b"?").decode()
    print(f"{selector} {domain} {'pass' if passed else 'fail'}")
    ok = ok and passed
sys.exit(0 if ok else 1)
