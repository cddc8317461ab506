//! One row per IMAP command: the states it is allowed in and whether it
//! takes the `UID` prefix. Handlers do not repeat these checks; the
//! session's dispatch consults the table first.

use crate::proto::imap::Body;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Capability,
    Noop,
    Logout,
    Id,
    StartTls,
    Login,
    Authenticate,
    Enable,
    Select,
    Examine,
    Create,
    Delete,
    Rename,
    Subscribe,
    Unsubscribe,
    List,
    Lsub,
    Namespace,
    Status,
    Append,
    Idle,
    GetQuotaRoot,
    GetQuota,
    SetQuota,
    Check,
    Close,
    Unselect,
    Expunge,
    Search,
    Fetch,
    Store,
    Copy,
    Move,
    Sort,
    Thread,
}

/// Properties of a command.
#[derive(Debug, Clone, Copy)]
pub struct Row {
    pub verb: Verb,
    pub name: &'static str,
    /// Allowed in the not-authenticated state.
    pub before_login: bool,
    /// Allowed once logged in (authenticated or selected state).
    pub after_login: bool,
    /// Needs a selected mailbox.
    pub needs_selected: bool,
    /// Takes the `UID` prefix (RFC 9051 §6.4.9, UIDPLUS, MOVE, SORT).
    pub uid: bool,
}

const fn row(
    verb: Verb,
    name: &'static str,
    before_login: bool,
    after_login: bool,
    needs_selected: bool,
    uid: bool,
) -> Row {
    Row {
        verb,
        name,
        before_login,
        after_login,
        needs_selected,
        uid,
    }
}

pub const TABLE: &[Row] = &[
    //   verb                 name            before after  select uid
    row(Verb::Capability, "CAPABILITY", true, true, false, false),
    row(Verb::Noop, "NOOP", true, true, false, false),
    row(Verb::Logout, "LOGOUT", true, true, false, false),
    row(Verb::Id, "ID", true, true, false, false),
    row(Verb::StartTls, "STARTTLS", true, false, false, false),
    row(Verb::Login, "LOGIN", true, false, false, false),
    row(
        Verb::Authenticate,
        "AUTHENTICATE",
        true,
        false,
        false,
        false,
    ),
    row(Verb::Enable, "ENABLE", false, true, false, false),
    row(Verb::Select, "SELECT", false, true, false, false),
    row(Verb::Examine, "EXAMINE", false, true, false, false),
    row(Verb::Create, "CREATE", false, true, false, false),
    row(Verb::Delete, "DELETE", false, true, false, false),
    row(Verb::Rename, "RENAME", false, true, false, false),
    row(Verb::Subscribe, "SUBSCRIBE", false, true, false, false),
    row(Verb::Unsubscribe, "UNSUBSCRIBE", false, true, false, false),
    row(Verb::List, "LIST", false, true, false, false),
    row(Verb::Lsub, "LSUB", false, true, false, false),
    row(Verb::Namespace, "NAMESPACE", false, true, false, false),
    row(Verb::Status, "STATUS", false, true, false, false),
    row(Verb::Append, "APPEND", false, true, false, false),
    row(Verb::Idle, "IDLE", false, true, false, false),
    row(
        Verb::GetQuotaRoot,
        "GETQUOTAROOT",
        false,
        true,
        false,
        false,
    ),
    row(Verb::GetQuota, "GETQUOTA", false, true, false, false),
    row(Verb::SetQuota, "SETQUOTA", false, true, false, false),
    row(Verb::Check, "CHECK", false, true, true, false),
    row(Verb::Close, "CLOSE", false, true, true, false),
    row(Verb::Unselect, "UNSELECT", false, true, true, false),
    row(Verb::Expunge, "EXPUNGE", false, true, true, true),
    row(Verb::Search, "SEARCH", false, true, true, true),
    row(Verb::Fetch, "FETCH", false, true, true, true),
    row(Verb::Store, "STORE", false, true, true, true),
    row(Verb::Copy, "COPY", false, true, true, true),
    row(Verb::Move, "MOVE", false, true, true, true),
    row(Verb::Sort, "SORT", false, true, true, true),
    row(Verb::Thread, "THREAD", false, true, true, true),
];

pub fn verb_of(body: &Body) -> Verb {
    match body {
        Body::Capability => Verb::Capability,
        Body::Noop => Verb::Noop,
        Body::Logout => Verb::Logout,
        Body::Id(_) => Verb::Id,
        Body::StartTls => Verb::StartTls,
        Body::Login { .. } => Verb::Login,
        Body::Authenticate { .. } => Verb::Authenticate,
        Body::Enable(_) => Verb::Enable,
        Body::Select {
            read_only: false, ..
        } => Verb::Select,
        Body::Select { .. } => Verb::Examine,
        Body::Create(_) => Verb::Create,
        Body::Delete(_) => Verb::Delete,
        Body::Rename(..) => Verb::Rename,
        Body::Subscribe(_) => Verb::Subscribe,
        Body::Unsubscribe(_) => Verb::Unsubscribe,
        Body::List { .. } => Verb::List,
        Body::Lsub { .. } => Verb::Lsub,
        Body::Namespace => Verb::Namespace,
        Body::Status { .. } => Verb::Status,
        Body::Append { .. } => Verb::Append,
        Body::Idle => Verb::Idle,
        Body::GetQuotaRoot(_) => Verb::GetQuotaRoot,
        Body::GetQuota(_) => Verb::GetQuota,
        Body::SetQuota => Verb::SetQuota,
        Body::Check => Verb::Check,
        Body::Close => Verb::Close,
        Body::Unselect => Verb::Unselect,
        Body::Expunge(_) => Verb::Expunge,
        Body::Search { .. } => Verb::Search,
        Body::Fetch { .. } => Verb::Fetch,
        Body::Store { .. } => Verb::Store,
        Body::Copy { is_move: false, .. } => Verb::Copy,
        Body::Copy { .. } => Verb::Move,
        Body::Sort { .. } => Verb::Sort,
        Body::Thread { .. } => Verb::Thread,
    }
}

pub fn row_of(verb: Verb) -> &'static Row {
    TABLE.iter().find(|r| r.verb == verb).unwrap_or(&TABLE[0])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::imap::parse;

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
            assert!(r.before_login || r.after_login, "{}", r.name);
            assert!(!r.needs_selected || r.after_login, "{}", r.name);
        }
        assert_eq!(TABLE.len(), 35);
    }

    /// The table and the grammar agree: each command parses to its own row,
    /// and the `UID` prefix is accepted exactly for rows marked `uid`.
    #[test]
    fn table_matches_the_grammar() {
        let args = |name: &str| match name {
            "LOGIN" => " u p",
            "AUTHENTICATE" => " PLAIN",
            "ENABLE" => " CONDSTORE",
            "SELECT" | "EXAMINE" | "CREATE" | "DELETE" | "SUBSCRIBE" | "UNSUBSCRIBE"
            | "GETQUOTAROOT" => " INBOX",
            "RENAME" => " a b",
            "LIST" | "LSUB" => " \"\" *",
            "STATUS" => " INBOX (MESSAGES)",
            "APPEND" => " INBOX {1+}\r\nx",
            "GETQUOTA" => " \"\"",
            "SETQUOTA" => " \"\" (STORAGE 1)",
            "ID" => " NIL",
            "SEARCH" => " ALL",
            "FETCH" => " 1 FLAGS",
            "STORE" => " 1 +FLAGS (\\Seen)",
            "COPY" | "MOVE" => " 1 Trash",
            "SORT" => " (DATE) UTF-8 ALL",
            "THREAD" => " REFERENCES UTF-8 ALL",
            _ => "",
        };
        for r in TABLE {
            let line = format!("a {}{}\r\n", r.name, args(r.name));
            let cmd = parse::command(line.as_bytes()).unwrap_or_else(|e| panic!("{line}: {e:?}"));
            assert_eq!(verb_of(&cmd.body), r.verb, "{line}");
            let args = if r.verb == Verb::Expunge {
                " 1"
            } else {
                args(r.name)
            };
            let uid_line = format!("a UID {}{}\r\n", r.name, args);
            assert_eq!(
                parse::command(uid_line.as_bytes()).is_ok(),
                r.uid,
                "{uid_line}"
            );
        }
    }
}
