#!/usr/bin/env python3
"""Generates a large mailc config: N domains x M mailboxes, each mailbox with an
inline argon2id hash and two extra addresses, each domain with aliases (one
fanning out to every mailbox, one forwarding remotely), DKIM and DMARC.

usage: gen_config.py DOMAINS MAILBOXES > big.kdl
"""
import sys

HASH = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$14ukWqiThj4Xz77NYv01V28GbBZHY9AaZwsFswQFO0U"

def main():
    domains = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    boxes = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    out = sys.stdout
    out.write('hostname "mail.bench.example"\n')
    out.write('state "/var/lib/mailc"\n')
    out.write('tls self-signed=#true\n')
    for kind, port in [("smtp", 25), ("submission", 587), ("submissions", 465), ("imaps", 993), ("pop3s", 995)]:
        out.write(f'listen "{kind}" "127.0.0.1:{10000 + port}"\n')
    for d in range(domains):
        name = f"d{d:05}.bench.example"
        out.write(f'domain "{name}" {{\n')
        out.write('    dkim selector="s1"\n')
        out.write(f'    dmarc policy="quarantine" rua="postmaster@{name}"\n')
        for m in range(boxes):
            out.write(f'    mailbox "user{m}" password="{HASH}" quota="1GiB" {{\n')
            out.write(f'        alias "u{m}.alias" "u{m}.other"\n')
            out.write('    }\n')
        targets = " ".join(f'"user{m}"' for m in range(boxes))
        out.write(f'    alias "everyone" {{\n        to {targets}\n    }}\n')
        out.write('    alias "postmaster" to="user0"\n')
        out.write('    alias "ext" to="someone@remote.example"\n')
        out.write('}\n')

if __name__ == "__main__":
    main()
