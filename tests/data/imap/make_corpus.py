#!/usr/bin/python3
"""Writes the IMAP content corpus (tests/data/imap/*.eml, CRLF) and README.md."""
import os, sys
out = sys.argv[1]
msgs = []
def m(name, about, text, raw=False):
    if not raw:
        text = text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")
    msgs.append((name, about, text))

m("multipart-b64-qp.eml", "multipart/mixed: QP text part (soft breaks, =3D, UTF-8), base64 UTF-8 text part (CRLF line ends, canonical form), multi-line base64 binary attachment; BINARY.PEEK[n], BINARY.SIZE[n], BODYSTRUCTURE", """\
From: Bob Sender <bob@example.com>
To: Alice <alice@example.test>
Subject: parts in three encodings
Date: Mon, 30 Nov 2026 08:00:00 +0000
Message-ID: <mixed-1@example.com>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="=_outer_1"

This is the preamble.
--=_outer_1
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Caf=C3=A9 cr=C3=A8me, a long line that is folded by a soft line break he=
re, and an equals sign =3D in the middle.
Trailing space is encoded=20
--=_outer_1
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: base64

w7xiZXIgYWxsZXMgLSBncsO2w59lcmUgVGV4dGUNCg==
--=_outer_1
Content-Type: application/octet-stream; name="blob.bin"
Content-Disposition: attachment; filename="blob.bin"
Content-Transfer-Encoding: base64

AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4
OTo7PD0+P0BBQkNERUZHSElKS0xNTk9QUVJTVFVWV1hZWltcXV5fYGFiY2RlZmdoaWprbG1ub3Bx
cnN0dXZ3eHl6e3x9fn+AgYKDhIWGh4iJiouMjY6PkJGSk5SVlpeYmZqbnJ2en6ChoqOkpaanqKmq
q6ytrq+wsbKztLW2t7i5uru8vb6/wMHCw8TFxsfIycrLzM3Oz9DR0tPU1dbX2Nna29zd3t/g4eLj
5OXm5+jp6uvs7e7v8PHy8/T19vf4+fr7/P3+/w==
--=_outer_1--
This is the epilogue.
""")

m("multipart-nested-encoded.eml", "multipart/mixed whose part 1 is multipart/alternative with a QP and a base64 part: BINARY[1] of a multipart part (its parts decoded), BINARY[1.1], BINARY[1.2]", """\
From: a@example.com
To: alice@example.test
Subject: nested encodings
Date: Wed, 2 Dec 2026 17:00:00 +0000
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="o"

--o
Content-Type: multipart/alternative; boundary="a"

--a
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

caf=C3=A9
--a
Content-Type: text/html
Content-Transfer-Encoding: base64

PGI+eDwvYj4=
--a--
--o
Content-Type: text/plain

end
--o--
""")

m("single-base64.eml", "single-part text/plain in base64: BINARY.PEEK[], BINARY.PEEK[1], BINARY.SIZE[1] of a non-multipart message", """\
From: bob@example.com
To: alice@example.test
Subject: one base64 body
Date: Tue, 1 Dec 2026 10:00:00 +0100
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: base64

SGVsbG8sIHfDtnJsZCENClNlY29uZCBsaW5lLg0K
""")

m("single-qp.eml", "single-part text/plain in quoted-printable: BINARY.PEEK[1], BINARY.SIZE[1], lowercase hex and a bad escape (=ZZ kept literally)", """\
From: bob@example.com
To: alice@example.test
Subject: one qp body
Date: Tue, 1 Dec 2026 10:05:00 +0100
MIME-Version: 1.0
Content-Type: text/plain; charset=iso-8859-1
Content-Transfer-Encoding: Quoted-Printable

Gr=fc=DFe aus K=F6ln =ZZ stays, soft=
break.
""")

m("rfc822-part1.eml", "multipart/mixed whose part 1 is message/rfc822 (single-part inner): BODY[1], BODY[1.1], BODY[1.HEADER], BODY[1.TEXT], BODY[1.MIME], BODYSTRUCTURE", """\
From: Forwarder <fwd@example.com>
To: alice@example.test
Subject: Fwd: the original
Date: Wed, 2 Dec 2026 09:00:00 +0000
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="b1"

--b1
Content-Type: message/rfc822
Content-Description: forwarded message

From: Original Author <orig@example.org>
To: fwd@example.com
Subject: the original
Date: Tue, 1 Dec 2026 08:00:00 -0500
Content-Type: text/plain; charset=us-ascii

Original body line one.
Original body line two.
--b1
Content-Type: text/plain

My comment after the forwarded message.
--b1--
""")

m("rfc822-nested2.eml", "message/rfc822 nested twice: part 1 is message/rfc822 whose body is multipart with message/rfc822 as its part 1; BODY[1.1], BODY[1.1.HEADER], BODY[1.1.1], BODY[1.2], BODYSTRUCTURE", """\
From: Outer <outer@example.com>
To: alice@example.test
Subject: Fwd: Fwd: deep
Date: Wed, 2 Dec 2026 09:30:00 +0000
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="L0"

--L0
Content-Type: message/rfc822

From: Middle <middle@example.net>
To: outer@example.com
Subject: Fwd: deep
Date: Tue, 1 Dec 2026 12:00:00 +0000
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="L1"

--L1
Content-Type: message/rfc822

From: Inner <inner@example.org>
To: middle@example.net
Subject: deep
Date: Mon, 30 Nov 2026 12:00:00 +0000
Content-Type: text/plain

The innermost body.
--L1
Content-Type: text/plain

Middle note.
--L1--
--L0
Content-Type: text/plain

Outer note.
--L0--
""")

m("rfc822-toplevel.eml", "the whole message is message/rfc822 (not multipart): BODY[1] is the encapsulated message, BODY[1.HEADER], BODY[1.1], BODYSTRUCTURE", """\
From: Gateway <gw@example.com>
To: alice@example.test
Subject: wrapped
Date: Wed, 2 Dec 2026 10:00:00 +0000
MIME-Version: 1.0
Content-Type: message/rfc822

From: Wrapped <wrapped@example.org>
Subject: inside
Content-Type: text/plain

Inside text.
""")

m("group-undisclosed.eml", "To: undisclosed-recipients:; (empty group): ENVELOPE group markers, SEARCH TO, SORT DISPLAYTO", """\
From: bob@example.com
To: undisclosed-recipients:;
Subject: group without members
Date: Wed, 2 Dec 2026 11:00:00 +0000

body
""")

m("group-team.eml", "To: Team: a@x.test, b@y.test; plus a plain address after the group; Cc: group with display names; ENVELOPE group syntax, SEARCH TO/CC, SORT CC", """\
From: bob@example.com
To: Team: a@x.test, "Bee" <b@y.test>;, carol@z.test
Cc: Friends: Dan <dan@w.test>;
Subject: group with members
Date: Wed, 2 Dec 2026 11:05:00 +0000

body
""")

m("missing-headers.eml", "no From, To, Cc, Date, Message-ID: ENVELOPE NIL fields (sender/reply-to NIL too), SEARCH SENT* without a Date header, SORT with empty keys", """\
Subject: nothing else

A message with only a subject.
""")

m("odd-addresses.eml", "odd address headers: comment display name, quoted local part, route address (obsolete), address without domain, empty Reply-To, duplicate To, Sender differing from From", """\
From: bob@example.com (Bob Comment)
Sender: "Secretary, The" <sec@example.com>
Reply-To:
To: "odd local"@example.test, <@route.example:alice@example.test>, root
To: second-to@example.test
Cc: "Last, First" <first.last@example.com>, undisclosed:;
Subject: odd addresses
Date: Wed, 2 Dec 2026 12:00:00 +0000

body
""")

m("date-plus1400.eml", "Date with +1400 zone (Dec 3 local is Dec 2 UTC): SEARCH SENTON/SENTBEFORE/SENTSINCE use the date as written, not UTC", """\
From: kiribati@example.com
To: alice@example.test
Subject: far east
Date: Thu, 3 Dec 2026 01:00:00 +1400

body
""")

m("date-minus1200.eml", "Date with -1200 zone (Dec 1 local is Dec 2 UTC)", """\
From: baker@example.com
To: alice@example.test
Subject: far west
Date: Tue, 1 Dec 2026 23:00:00 -1200

body
""")

m("date-obsolete-zone.eml", "obsolete zone name EST, no day of week, seconds missing", """\
From: est@example.com
To: alice@example.test
Subject: obsolete zone
Date: 1 Dec 2026 21:30 EST

body
""")

m("date-two-digit-year.eml", "two-digit year (98 means 1998, RFC 5322 4.3), GMT zone followed by a comment", """\
From: y2k@example.com
To: alice@example.test
Subject: old year
Date: Fri, 13 Nov 98 23:59:59 GMT (Greenwich)

body
""")

m("date-garbage.eml", "unparsable Date header: what SEARCH SENT* and SORT (DATE) do without a usable sent date", """\
From: junk@example.com
To: alice@example.test
Subject: bad date
Date: yesterday at noon

body
""")

m("encoded-words.eml", "RFC 2047 encoded words: B and Q in Subject, adjacent encoded words (whitespace between them dropped), encoded display names in From/To/Cc; SEARCH SUBJECT/FROM on decoded text, SORT DISPLAYFROM", """\
From: =?ISO-8859-1?Q?Andr=E9?= Pirard <pirard@example.org>
To: =?UTF-8?B?w4ltaWxl?= <emile@example.test>
Cc: =?utf-8?q?Zo=C3=AB_Smith?= <zoe@example.test>
Subject: =?UTF-8?B?UmU6IENhZsOp?= =?UTF-8?Q?_cr=C3=A8me?= and plain
Date: Wed, 2 Dec 2026 13:00:00 +0000

body
""")

subjects = [
    ("subject-re-tag-fwd.eml", "Re: [tag] Fwd: x (fwd)", "base subject is x (RFC 5256 2.1: leader, blob, Fwd:, trailer)"),
    ("subject-re-re.eml", "RE: re: Re[2]: x", "base subject x: repeated reply prefixes, Re[2]: with a blob count"),
    ("subject-fwd-brackets.eml", "[Fwd: x]", "base subject x: the [Fwd: ...] wrapper"),
    ("subject-tags-only.eml", "[a] [b]", "a subject that is only blobs keeps the last one: base subject [b]"),
    ("subject-plain-a.eml", "a plain subject", "control: base subject is the subject itself"),
    ("subject-encoded-re.eml", "=?UTF-8?Q?Re=3A_=C3=A9t=C3=A9?=", "encoded word hiding a Re: prefix: decoded before extracting the base subject (été)"),
    ("subject-whitespace.eml", "  Fwd:   x   (fwd) (FWD)  ", "leading/trailing and repeated whitespace, two (fwd) trailers: base subject x"),
]
for i, (name, subj, about) in enumerate(subjects):
    m(name, f"SORT (SUBJECT) / THREAD ORDEREDSUBJECT: Subject: {subj!r}; {about}", f"""\
From: sorter{i}@example.com
To: Person{i} <p{i}@example.test>
Cc: cc{6 - i}@example.test
Subject: {subj}
Date: Wed, 2 Dec 2026 14:{i:02d}:00 +0000

body {i}
""")

m("sort-display.eml", "SORT (DISPLAYTO)/(CC): To with display name sorting before addresses without; Cc local-part ordering; case-insensitive display names", """\
From: zed@example.com
To: "aaron first" <zzz@example.test>
Cc: Mary <AAA@example.test>
Subject: display sort
Date: Wed, 2 Dec 2026 15:00:00 +0000

body
""")

m("body-8bit.eml", "8-bit UTF-8 text body with Content-Transfer-Encoding: 8bit; BODYSTRUCTURE encoding 8BIT, BINARY.SIZE equals the raw size", """\
From: bob@example.com
To: alice@example.test
Subject: 8bit body
Date: Wed, 2 Dec 2026 16:00:00 +0000
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Grüße, naïve café — 8-bit text.
""")

hdr = ("From: bob@example.com\r\nTo: alice@example.test\r\nSubject: binary body\r\n"
       "Date: Wed, 2 Dec 2026 16:30:00 +0000\r\nMIME-Version: 1.0\r\n"
       "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n").encode()
m("body-binary.eml", "binary body with NUL and bare bytes (Content-Transfer-Encoding: binary): APPEND with literal8 ~{n}, FETCH BINARY[] answers ~{n}, BODY[] of it", hdr + bytes(range(0, 256)) + b"\r\n", raw=True)

os.makedirs(out, exist_ok=True)
for name, about, data in msgs:
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
with open(os.path.join(out, "README.md"), "w") as f:
    f.write("# IMAP content corpus\n\nMessages (CRLF line ends, as they arrive over IMAP APPEND) for the content\n"
            "answers: FETCH BODY/BINARY/BODYSTRUCTURE/ENVELOPE, SEARCH, SORT. Each line says\n"
            "what a file exercises. Used by tests/dialogs/imap/*.txt and the differential\n"
            "test against Dovecot (tests/imap_diff.rs). Made by `/usr/bin/python3 tests/data/imap/make_corpus.py tests/data/imap` (edit it, not the files).\n\n")
    for name, about, _ in msgs:
        f.write(f"- `{name}`: {about}\n")
print(len(msgs), "messages")
