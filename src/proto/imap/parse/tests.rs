use super::*;

fn ok(s: &str) -> Body {
    command(s.as_bytes())
        .unwrap_or_else(|e| panic!("{s}: {e:?}"))
        .body
}

#[test]
fn commands() {
    assert_eq!(
        ok("a LOGIN \"bob\" {3}\r\npwd\r\n"),
        Body::Login {
            user: "bob".into(),
            pass: "pwd".into()
        }
    );
    assert!(matches!(
        ok(
            "a UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (From To)]<0.100>) (CHANGEDSINCE 5 VANISHED)\r\n"
        ),
        Body::Fetch {
            uid: true,
            changedsince: Some(5),
            vanished: true,
            ..
        }
    ));
    assert!(matches!(
        ok(
            "a SEARCH RETURN (MIN COUNT) CHARSET UTF-8 OR FROM x (SINCE 1-Jan-2020 NOT SEEN) 1:5\r\n"
        ),
        Body::Search { ret: Some(_), .. }
    ));
    assert!(matches!(
        ok("a APPEND Sent (\\Seen) \"01-Jan-2020 00:00:00 +0000\" {3+}\r\nabc {2+}\r\nde\r\n"),
        Body::Append { messages, .. } if messages.len() == 2
    ));
    assert!(matches!(
        ok("a SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541 (1,3 5,7)))\r\n"),
        Body::Select {
            qresync: Some(QresyncParams {
                known_uids: Some(_),
                seq_match: Some(_),
                ..
            }),
            ..
        }
    ));
    assert!(matches!(
        ok("a LIST (SUBSCRIBED) \"\" (\"*\" \"%\") RETURN (CHILDREN STATUS (MESSAGES))\r\n"),
        Body::List {
            options: ListOptions {
                subscribed: true,
                ret_children: true,
                ret_status: Some(_),
                ..
            },
            ..
        }
    ));
    assert!(matches!(
        ok("a UID STORE 1 (UNCHANGEDSINCE 3) +FLAGS.SILENT (\\Seen $Junk)\r\n"),
        Body::Store {
            uid: true,
            silent: true,
            unchangedsince: Some(3),
            mode: StoreMode::Add,
            ..
        }
    ));
    assert!(matches!(
        ok("a SORT (REVERSE DATE SUBJECT) UTF-8 ALL\r\n"),
        Body::Sort { .. }
    ));
    for bad in [
        "a FETCH\r\n",
        "a FETCH 0 FLAGS\r\n",
        "a SEARCH NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT ALL\r\n",
        "a LOGIN x\r\n",
        "a FROB\r\n",
        "a SELECT INBOX extra\r\n",
        "a APPEND x {5}\r\nab\r\n",
    ] {
        let e = command(bad.as_bytes()).expect_err(bad);
        assert_eq!(e.tag.as_deref(), Some("a"), "{bad}");
    }
    assert_eq!(command(b"\r\n").expect_err("empty").tag, None);
}

#[test]
fn setquota_is_checked_against_rfc9208_syntax() {
    assert_eq!(ok("a SETQUOTA \"\" (STORAGE 10)\r\n"), Body::SetQuota);
    assert_eq!(ok("a SETQUOTA \"\" ()\r\n"), Body::SetQuota);
    assert_eq!(
        ok("a SETQUOTA user (STORAGE 10 MESSAGE 5)\r\n"),
        Body::SetQuota
    );
    for bad in [
        "a SETQUOTA \"\" (STORAGE 10\r\n",
        "a SETQUOTA \"\" (STORAGE)\r\n",
        "a SETQUOTA \"\" (STORAGE x)\r\n",
        "a SETQUOTA \"\"\r\n",
        "a SETQUOTA\r\n",
        "a SETQUOTA \"\" (STORAGE 10) junk\r\n",
    ] {
        assert!(command(bad.as_bytes()).is_err(), "{bad}");
    }
}
