//! One row per ManageSieve command (RFC 5804 §2): in which state it is
//! allowed and whether the listener's login rule applies. `Session`
//! consults the table before any handler runs; handlers do not repeat
//! these checks.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Capability,
    Logout,
    Noop,
    StartTls,
    Authenticate,
    Unauthenticate,
    HaveSpace,
    PutScript,
    CheckScript,
    ListScripts,
    GetScript,
    SetActive,
    DeleteScript,
    RenameScript,
}

/// Properties of a command.
#[derive(Debug, Clone, Copy)]
pub struct Row {
    pub verb: Verb,
    pub name: &'static str,
    /// Allowed before login.
    pub before: bool,
    /// Allowed after login.
    pub after: bool,
    /// A login command: refused where the listener does not offer login
    /// (or only after STARTTLS).
    pub login: bool,
}

const fn row(verb: Verb, name: &'static str, before: bool, after: bool, login: bool) -> Row {
    Row {
        verb,
        name,
        before,
        after,
        login,
    }
}

pub const TABLE: &[Row] = &[
    //   verb                   name              before after  login
    row(Verb::Capability, "CAPABILITY", true, true, false),
    row(Verb::Logout, "LOGOUT", true, true, false),
    row(Verb::Noop, "NOOP", true, true, false),
    row(Verb::StartTls, "STARTTLS", true, false, false),
    row(Verb::Authenticate, "AUTHENTICATE", true, false, true),
    row(Verb::Unauthenticate, "UNAUTHENTICATE", false, true, false),
    row(Verb::HaveSpace, "HAVESPACE", false, true, false),
    row(Verb::PutScript, "PUTSCRIPT", false, true, false),
    row(Verb::CheckScript, "CHECKSCRIPT", false, true, false),
    row(Verb::ListScripts, "LISTSCRIPTS", false, true, false),
    row(Verb::GetScript, "GETSCRIPT", false, true, false),
    row(Verb::SetActive, "SETACTIVE", false, true, false),
    row(Verb::DeleteScript, "DELETESCRIPT", false, true, false),
    row(Verb::RenameScript, "RENAMESCRIPT", false, true, false),
];

/// The row of a command name (any case); `None` for unknown commands.
pub fn row_of(name: &str) -> Option<&'static Row> {
    TABLE.iter().find(|r| r.name.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_verb_has_one_row() {
        for r in TABLE {
            assert_eq!(TABLE.iter().filter(|x| x.verb == r.verb).count(), 1);
            assert_eq!(row_of(r.name).map(|x| x.verb), Some(r.verb));
            assert!(r.before || r.after, "{}", r.name);
        }
        assert_eq!(TABLE.len(), 14);
        assert_eq!(row_of("putScript").map(|r| r.verb), Some(Verb::PutScript));
        assert!(row_of("LOGIN").is_none());
    }
}
