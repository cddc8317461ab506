//! SMTP command lines → [`Command`]. The grammar of MAIL/RCPT parameters is
//! smtp-proto's (`Request::parse`); this module adds the mapping of parse
//! errors to replies and the checks smtp-proto leaves to the server.

use std::borrow::Cow;

pub use smtp_proto::{MailFrom, RcptTo, Request};

use super::reply::{Reply, r};

/// A parsed command with owned strings.
pub type Command = Request<String>;

/// Parses one command line (with its line end).
pub fn parse(line: &[u8]) -> Result<Command, Reply> {
    // smtp-proto expects the line to end in LF; make sure it does.
    let owned;
    let line = if line.ends_with(b"\n") {
        line
    } else {
        owned = [line, b"\r\n"].concat();
        &owned
    };
    match Request::parse(&mut line.iter()) {
        Ok(req) => Ok(into_owned(req)),
        Err(e) => Err(error_reply(&e, line)),
    }
}

fn into_owned(req: Request<Cow<'_, str>>) -> Command {
    req.into_owned()
}

fn error_reply(e: &smtp_proto::Error, line: &[u8]) -> Reply {
    use smtp_proto::Error as E;
    let verb = line
        .split(|b| *b == b' ' || *b == b'\r' || *b == b'\n')
        .next()
        .map(|v| String::from_utf8_lossy(v).to_ascii_uppercase())
        .unwrap_or_default();
    match e {
        E::UnknownCommand => r::unknown_command(),
        E::InvalidSenderAddress => r::bad_sender_syntax(),
        E::InvalidRecipientAddress => r::bad_recipient_syntax(),
        E::SyntaxError { syntax } => r::syntax(&format!("use {syntax}")),
        E::InvalidParameter { param } => r::syntax(&format!("invalid value of {param}")),
        E::UnsupportedParameter { param } => r::unsupported_param(param),
        E::ResponseTooLong => r::line_too_long(),
        E::NeedsMoreData { .. } => r::syntax(&format!("incomplete {verb} command")),
        E::InvalidResponse { .. } => r::unknown_command(),
    }
}

/// True when an address needs SMTPUTF8 (RFC 6531).
pub fn needs_utf8(address: &str) -> bool {
    !address.is_ascii()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_commands() {
        assert!(
            matches!(parse(b"EHLO client.example\r\n"), Ok(Request::Ehlo { host }) if host == "client.example")
        );
        match parse(b"MAIL FROM:<a@b.example> SIZE=100 BODY=8BITMIME\r\n") {
            Ok(Request::Mail { from }) => {
                assert_eq!(from.address, "a@b.example");
                assert_eq!(from.size, 100);
                assert!(from.flags & smtp_proto::MAIL_BODY_8BITMIME != 0);
            }
            other => panic!("{other:?}"),
        }
        match parse(b"RCPT TO:<@route.example:u@d.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;u@d.example\r\n") {
            Ok(Request::Rcpt { to }) => {
                assert_eq!(to.address, "u@d.example", "source route removed");
                assert!(to.flags & smtp_proto::RCPT_NOTIFY_SUCCESS != 0);
                assert_eq!(to.orcpt.as_deref(), Some("u@d.example"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse(b"BDAT 100 LAST\r\n"),
            Ok(Request::Bdat {
                chunk_size: 100,
                is_last: true
            })
        ));
        assert!(matches!(parse(b"quit"), Ok(Request::Quit)));
    }

    #[test]
    fn errors_become_replies() {
        assert_eq!(parse(b"FROB\r\n").unwrap_err().code, 500);
        assert_eq!(parse(b"MAIL FROM:<a@@b>\r\n").unwrap_err().code, 501);
        assert_eq!(
            parse(b"MAIL FROM:<a@b.example> FOO=BAR\r\n")
                .unwrap_err()
                .code,
            555
        );
        assert_eq!(parse(b"MAIL TO:<a@b.example>\r\n").unwrap_err().code, 501);
        assert_eq!(parse(b"RCPT TO:\r\n").unwrap_err().code, 501);
    }

    #[test]
    fn quoted_local_parts_keep_their_at_sign() {
        match parse(b"RCPT TO:<\"bob@evil.example\"@example.test>\r\n") {
            Ok(Request::Rcpt { to }) => {
                let (_, domain) = to.address.rsplit_once('@').expect("has @");
                assert_eq!(domain, "example.test");
            }
            other => panic!("{other:?}"),
        }
    }
}
