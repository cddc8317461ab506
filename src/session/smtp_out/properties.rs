//! Property tests: any bytes from a server and any sequence of replies
//! leave the client in a decided state — no panic, one outcome per
//! recipient, and "delivered" only after a 2xx to the final dot.

use proptest::prelude::*;

use super::{Fault, OutMessage, OutRcpt, RcptOutcome, Stage, Transaction, TxStep};
use crate::proto::smtp::client::{Capabilities, Parsed, parse_reply};
use crate::proto::smtp::reply::Reply;

const CODES: &[u16] = &[
    220, 221, 235, 250, 251, 252, 334, 354, 421, 450, 451, 452, 500, 501, 503, 550, 552, 553, 554,
    199,
];

fn reply(code: u16) -> Reply {
    Reply::plain(code, "text")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_bytes_parse_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        match parse_reply(&bytes) {
            Ok(Parsed::Reply { reply, len }) => {
                prop_assert!(len <= bytes.len());
                prop_assert!((100..600).contains(&reply.code));
            }
            Ok(Parsed::NeedMore) | Err(_) => {}
        }
    }

    #[test]
    fn valid_replies_need_more_until_complete(
        code in 200u16..600,
        lines in proptest::collection::vec("[ -~]{0,80}", 1..6),
    ) {
        let mut wire = Vec::new();
        for (i, l) in lines.iter().enumerate() {
            let sep = if i + 1 == lines.len() { ' ' } else { '-' };
            wire.extend_from_slice(format!("{code}{sep}{l}\r\n").as_bytes());
        }
        for cut in 0..wire.len() {
            prop_assert_eq!(parse_reply(&wire[..cut]), Ok(Parsed::NeedMore));
        }
        match parse_reply(&wire) {
            Ok(Parsed::Reply { reply, len }) => {
                prop_assert_eq!(len, wire.len());
                prop_assert_eq!(reply.code, code);
                prop_assert_eq!(reply.lines.len(), lines.len());
            }
            other => prop_assert!(false, "{:?}", other),
        }
    }

    #[test]
    fn transactions_always_decide_every_recipient(
        pipelining in any::<bool>(),
        n in 1usize..5,
        codes in proptest::collection::vec(proptest::sample::select(CODES), 0..14),
        fault_at in proptest::option::of(0usize..14),
    ) {
        let rcpts: Vec<OutRcpt> = (0..n)
            .map(|i| OutRcpt { address: format!("r{i}@d.example"), notify: None, orcpt: None })
            .collect();
        let m = OutMessage {
            sender: "s@a.example",
            recipients: &rcpts,
            body: b"x\r\n",
            body_8bit: false,
            smtputf8: false,
            ret: None,
            envid: None,
        };
        let caps = Capabilities { pipelining, extended: true, ..Capabilities::default() };
        let (mut tx, mut step) = Transaction::start(&m, &caps);
        let mut body_sent = false;
        let mut faulted = false;
        let mut codes = codes.iter().enumerate();
        let result = loop {
            match step {
                TxStep::Done(r) => break r,
                TxStep::SendBody => {
                    body_sent = true;
                    tx.body_sent();
                }
                TxStep::Send(_) => {}
            }
            let Some((i, code)) = codes.next() else {
                faulted = true;
                break tx.fault(&Fault::Io("closed".into()));
            };
            if fault_at == Some(i) {
                faulted = true;
                break tx.fault(&Fault::Timeout);
            }
            step = tx.on_reply(&reply(*code));
        };
        prop_assert_eq!(result.outcomes.len(), n);
        for o in &result.outcomes {
            if let RcptOutcome::Delivered(info) = o {
                prop_assert!(body_sent, "delivered without a body: {:?}", o);
                prop_assert_eq!(info.stage, Stage::DataEnd);
                prop_assert!((200..300).contains(&info.code));
            }
        }
        if faulted {
            prop_assert!(!result.reusable);
        }
    }
}
