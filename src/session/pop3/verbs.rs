//! One row per POP3 verb: in which state it is allowed and whether the
//! listener's login rule applies. `Session::line` consults the table before
//! any handler runs; handlers do not repeat these checks.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Capa,
    Quit,
    Noop,
    Stls,
    User,
    Pass,
    Auth,
    Apop,
    Stat,
    List,
    Uidl,
    Retr,
    Top,
    Dele,
    Rset,
}

/// Properties of a verb.
#[derive(Debug, Clone, Copy)]
pub struct Row {
    pub verb: Verb,
    pub name: &'static str,
    /// Allowed in the AUTHORIZATION state (before login).
    pub authorization: bool,
    /// Allowed in the TRANSACTION state (after login).
    pub transaction: bool,
    /// A login command: refused where the listener does not offer login
    /// (or only after STLS).
    pub login: bool,
}

const fn row(
    verb: Verb,
    name: &'static str,
    authorization: bool,
    transaction: bool,
    login: bool,
) -> Row {
    Row {
        verb,
        name,
        authorization,
        transaction,
        login,
    }
}

pub const TABLE: &[Row] = &[
    //   verb         name    auth   trans  login
    row(Verb::Capa, "CAPA", true, true, false),
    row(Verb::Quit, "QUIT", true, true, false),
    row(Verb::Noop, "NOOP", true, true, false),
    row(Verb::Stls, "STLS", true, false, false),
    row(Verb::User, "USER", true, false, true),
    row(Verb::Pass, "PASS", true, false, true),
    row(Verb::Auth, "AUTH", true, false, true),
    // Recognised so that it gets a helpful refusal.
    row(Verb::Apop, "APOP", true, false, false),
    row(Verb::Stat, "STAT", false, true, false),
    row(Verb::List, "LIST", false, true, false),
    row(Verb::Uidl, "UIDL", false, true, false),
    row(Verb::Retr, "RETR", false, true, false),
    row(Verb::Top, "TOP", false, true, false),
    row(Verb::Dele, "DELE", false, true, false),
    row(Verb::Rset, "RSET", false, true, false),
];

/// The row of an upper-cased verb name; `None` for unknown commands.
pub fn row_of(name: &str) -> Option<&'static Row> {
    TABLE.iter().find(|r| r.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_verb_has_one_row() {
        for r in TABLE {
            assert_eq!(TABLE.iter().filter(|x| x.verb == r.verb).count(), 1);
            assert_eq!(row_of(r.name).map(|x| x.verb), Some(r.verb));
            // Every verb is allowed somewhere.
            assert!(r.authorization || r.transaction, "{}", r.name);
        }
        assert_eq!(TABLE.len(), 15);
        assert!(row_of("XTND").is_none());
    }
}
