//! One row per SMTP verb: where it is allowed. Handlers do not repeat these
//! checks; `Session::command` consults the table first.

use crate::proto::smtp::command::Command;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Ehlo,
    Helo,
    Lhlo,
    Mail,
    Rcpt,
    Data,
    Bdat,
    Rset,
    Noop,
    Quit,
    Vrfy,
    Expn,
    Help,
    StartTls,
    Auth,
    Etrn,
    Atrn,
    Burl,
}

/// Properties of a verb.
#[derive(Debug, Clone, Copy)]
pub struct Row {
    pub verb: Verb,
    pub name: &'static str,
    /// Needs EHLO/HELO/LHLO first.
    pub needs_greeting: bool,
    /// Allowed on SMTP listeners.
    pub smtp: bool,
    /// Allowed on LMTP listeners.
    pub lmtp: bool,
    /// Implemented at all (otherwise 502).
    pub implemented: bool,
}

const fn row(
    verb: Verb,
    name: &'static str,
    needs_greeting: bool,
    smtp: bool,
    lmtp: bool,
    implemented: bool,
) -> Row {
    Row {
        verb,
        name,
        needs_greeting,
        smtp,
        lmtp,
        implemented,
    }
}

pub const TABLE: &[Row] = &[
    //   verb              name        greet  smtp   lmtp   impl
    row(Verb::Ehlo, "EHLO", false, true, false, true),
    row(Verb::Helo, "HELO", false, true, false, true),
    row(Verb::Lhlo, "LHLO", false, false, true, true),
    row(Verb::Mail, "MAIL", true, true, true, true),
    row(Verb::Rcpt, "RCPT", true, true, true, true),
    row(Verb::Data, "DATA", true, true, true, true),
    row(Verb::Bdat, "BDAT", true, true, true, true),
    row(Verb::Rset, "RSET", false, true, true, true),
    row(Verb::Noop, "NOOP", false, true, true, true),
    row(Verb::Quit, "QUIT", false, true, true, true),
    row(Verb::Vrfy, "VRFY", false, true, true, true),
    row(Verb::Expn, "EXPN", false, true, true, false),
    row(Verb::Help, "HELP", false, true, true, true),
    row(Verb::StartTls, "STARTTLS", true, true, false, true),
    row(Verb::Auth, "AUTH", true, true, false, true),
    row(Verb::Etrn, "ETRN", true, true, false, false),
    row(Verb::Atrn, "ATRN", true, true, false, false),
    row(Verb::Burl, "BURL", true, true, false, false),
];

pub fn verb_of(cmd: &Command) -> Verb {
    use crate::proto::smtp::command::Request as R;
    match cmd {
        R::Ehlo { .. } => Verb::Ehlo,
        R::Helo { .. } => Verb::Helo,
        R::Lhlo { .. } => Verb::Lhlo,
        R::Mail { .. } => Verb::Mail,
        R::Rcpt { .. } => Verb::Rcpt,
        R::Data => Verb::Data,
        R::Bdat { .. } => Verb::Bdat,
        R::Rset => Verb::Rset,
        R::Noop { .. } => Verb::Noop,
        R::Quit => Verb::Quit,
        R::Vrfy { .. } => Verb::Vrfy,
        R::Expn { .. } => Verb::Expn,
        R::Help { .. } => Verb::Help,
        R::StartTls => Verb::StartTls,
        R::Auth { .. } => Verb::Auth,
        R::Etrn { .. } => Verb::Etrn,
        R::Atrn { .. } => Verb::Atrn,
        R::Burl { .. } => Verb::Burl,
    }
}

pub fn row_of(verb: Verb) -> &'static Row {
    TABLE.iter().find(|r| r.verb == verb).unwrap_or(&TABLE[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_verb_has_one_row() {
        for r in TABLE {
            assert_eq!(
                TABLE.iter().filter(|x| x.verb == r.verb).count(),
                1,
                "{}",
                r.name
            );
            assert_eq!(row_of(r.verb).name, r.name);
        }
        assert_eq!(TABLE.len(), 18);
    }
}
