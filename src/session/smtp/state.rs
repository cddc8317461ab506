//! What a session is in: the state enum, whose variants hold only what is
//! valid in that state, and the mail transaction it carries.

use crate::envelope::{Recipient, Ret};
use crate::proto::smtp::data::{BdatReceiver, DataReceiver, NewlineCheck};

#[derive(Debug, Clone)]
pub(super) struct MailParams {
    pub(super) sender: String,
    pub(super) body_8bit: bool,
    pub(super) smtputf8: bool,
    pub(super) ret: Option<Ret>,
    pub(super) envid: Option<String>,
}

#[derive(Debug, Clone)]
pub(super) struct Transaction {
    pub(super) mail: MailParams,
    pub(super) rcpts: Vec<Recipient>,
    pub(super) envelope_deliveries: Vec<crate::envelope::Delivery>,
}

#[derive(Debug)]
pub(super) enum Body {
    Data(DataReceiver),
    Bdat {
        receiver: BdatReceiver,
        /// This chunk's announced size.
        size: usize,
        last: bool,
        check: NewlineCheck,
        /// Set when the chunk cannot be accepted but must still be read and
        /// dropped, or its bytes would be taken as commands.
        discard: Option<Discard>,
    },
}

#[derive(Debug)]
pub(super) enum Discard {
    /// MAIL was given but no recipient accepted.
    NoRecipients,
    /// No transaction at all; the state to return to.
    NoTransaction(Box<State>),
}

impl Transaction {
    pub(super) fn empty() -> Transaction {
        Transaction {
            mail: MailParams {
                sender: String::new(),
                body_8bit: false,
                smtputf8: false,
                ret: None,
                envid: None,
            },
            rcpts: Vec::new(),
            envelope_deliveries: Vec::new(),
        }
    }
}

#[derive(Debug)]
pub(super) enum State {
    /// Before EHLO/HELO/LHLO (also right after STARTTLS).
    Start,
    Ready,
    Mail(Box<Transaction>),
    Receiving {
        tx: Box<Transaction>,
        body: Body,
        message: Vec<u8>,
    },
    /// Between BDAT chunks.
    Chunking {
        tx: Box<Transaction>,
        message: Vec<u8>,
        check: NewlineCheck,
    },
    AuthPlain,
    AuthLoginUser,
    AuthLoginPass {
        user: String,
    },
    WaitAuth,
    WaitQueue {
        /// LMTP answers once per recipient, naming it (RFC 2033 §4.2);
        /// empty for SMTP.
        lmtp_rcpts: Vec<String>,
    },
    WaitTls,
    Closed,
}
