#!/usr/bin/env python3
"""Turns the RFC 7208 SPF test suite (YAML, as shipped by Debian's
python3-spf) into JSON for tests/spf_suite.rs: per scenario, zone-file text
for the names of its zonedata (grouped into zones by their last two labels)
and its test cases. Type SPF records count as TXT unless the name has TXT records of
its own (RFC 7208 §3.1 removed type SPF; the suite asks drivers to do so).
Bytes that are not printable ASCII are written as \\DDD escapes. Names whose
zonedata is TIMEOUT are listed: the loopback server cannot time out on one
name, so those names are left out; so are names the zone-file parser cannot
take (see `servable`). The cases that reach them are explained in
known-differences.txt.

usage: convert.py SUITE.yml.gz > suite.json
"""
import gzip
import json
import sys

import yaml


def char_string(value):
    if isinstance(value, str):
        data = value.encode("utf-8", "surrogateescape")
    else:
        data = bytes(value)
    out = []
    for b in data:
        c = chr(b)
        if c in '"\\':
            out.append("\\" + c)
        elif 0x20 <= b < 0x7F:
            out.append(c)
        else:
            out.append("\\%03d" % b)
    return '"' + "".join(out) + '"'


def txt_value(value):
    if isinstance(value, list):
        if not value:
            return None
        return " ".join(char_string(v) for v in value)
    return char_string(value)


def fqdn(name):
    return name if name.endswith(".") else name + "."


def servable(name):
    """Whether hickory's zone-file parser takes the name: the suite also has
    `foo:bar/baz.example.com` and a name with spaces and `%`, legal in DNS
    but not in an unescaped owner name (and \\DDD there is not supported)."""
    return all(c.isascii() and (c.isalnum() or c in "-_.") for c in name)


def zone_of(name):
    """The zone a name is served from: its last two labels (a CNAME cannot
    sit at a zone's apex beside the SOA), or the root for one label."""
    labels = name.rstrip(".").lower().split(".")
    return ".".join(labels[-2:]) + "." if len(labels) >= 2 else "."


def records(entries):
    """(type, rdata) pairs for one name; None when the name is TIMEOUT."""
    if any(e == "TIMEOUT" for e in entries):
        return None
    has_txt = any(isinstance(e, dict) and "TXT" in e for e in entries)
    out = []
    for e in entries:
        if not isinstance(e, dict):
            continue
        for kind, value in e.items():
            if kind == "SPF":
                if has_txt:
                    continue
                kind = "TXT"
            if kind == "TXT":
                v = txt_value(value)
                if v is not None:
                    out.append(("TXT", v))
            elif kind == "MX":
                pref, host = value
                out.append(("MX", f"{pref} {fqdn(host) if host else '.'}"))
            elif kind in ("PTR", "CNAME"):
                out.append((kind, fqdn(value)))
            elif kind in ("A", "AAAA"):
                out.append((kind, str(value)))
            else:
                raise SystemExit(f"unknown record type {kind}")
    return out


def main():
    with gzip.open(sys.argv[1], "rb") as f:
        docs = list(yaml.safe_load_all(f))
    scenarios = []
    for doc in docs:
        if not doc:
            continue
        zones, timeouts, unservable = {}, [], []
        for name, entries in (doc.get("zonedata") or {}).items():
            recs = records(entries)
            if recs is None:
                timeouts.append(name.lower())
                continue
            if not servable(name):
                unservable.append(name)
                continue
            recs = [(k, v) for k, v in recs
                    if k not in ("MX", "PTR", "CNAME") or servable(v.split()[-1])]
            zone = zone_of(name)
            text = "".join(f"{fqdn(name)} 300 IN {k} {v}\n" for k, v in recs)
            zones[zone] = zones.get(zone, "") + text
        tests = []
        for tname, t in (doc.get("tests") or {}).items():
            result = t["result"]
            tests.append({
                "name": tname,
                "spec": str(t.get("spec", "")),
                "helo": str(t.get("helo", "")),
                "host": str(t["host"]),
                "mailfrom": str(t.get("mailfrom", "")),
                "results": result if isinstance(result, list) else [result],
            })
        scenarios.append({
            "description": doc.get("description", ""),
            "zones": [[z, t] for z, t in zones.items()],
            "timeouts": timeouts,
            "unservable": unservable,
            "tests": tests,
        })
    json.dump(scenarios, sys.stdout)


if __name__ == "__main__":
    main()
