#!/usr/bin/python3
"""Authenticates the message on stdin with authheaders (Debian
python3-authheaders: dkimpy for DKIM, pyspf for SPF, its own RFC 7489 DMARC
with the Public Suffix List), every DNS query going to the server at
127.0.0.1:PORT. Usage: authheaders_check.py PORT CLIENT_IP HELO MAIL_FROM.
Prints the Authentication-Results field it builds, on one line."""
import sys

import dns.resolver

port, ip, helo, mail_from = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
resolver = dns.resolver.Resolver(configure=False)
resolver.nameservers = ["127.0.0.1"]
resolver.port = int(port)
resolver.lifetime = 5
dns.resolver.default_resolver = resolver

import authheaders  # noqa: E402  (after the resolver is in place)

message = sys.stdin.buffer.read()
field = authheaders.authenticate_message(
    message,
    "peer.test",
    spf=True,
    dkim=True,
    dmarc=True,
    ip=ip,
    mail_from=mail_from,
    helo=helo,
)
print(" ".join(str(field).split()))
