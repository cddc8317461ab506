//! Before and around login: CAPABILITY, ID, STARTTLS, LOGIN, AUTHENTICATE
//! (PLAIN and LOGIN, with SASL-IR), the credential check's result, and
//! ENABLE.

use super::{Account, Effect, Enabled, Env, Handled, Login, Output, Session, State, append_limit};
use crate::proto::imap::encode::string;
use crate::proto::imap::parse;
use crate::proto::imap::response::{Code, Response, r};
use crate::proto::sasl::{self, Credentials, SaslError};
use crate::session::AuthOutcome;

/// Base64 of "Username:" and "Password:", the AUTHENTICATE LOGIN prompts.
const PROMPT_USER: &[u8] = b"+ VXNlcm5hbWU6\r\n";
const PROMPT_PASS: &[u8] = b"+ UGFzc3dvcmQ6\r\n";

impl<E: Env> Session<E> {
    fn can_starttls(&self) -> bool {
        crate::session::can_starttls(&self.listener, self.tls)
    }

    fn login_allowed(&self) -> bool {
        crate::session::login_allowed(&self.listener, self.tls)
    }

    pub fn capabilities(&self) -> String {
        let mut caps = vec![
            "IMAP4rev1",
            "IMAP4rev2",
            "LITERAL+",
            "SASL-IR",
            "ID",
            "ENABLE",
            "IDLE",
        ];
        if self.state.account().is_none() {
            if self.can_starttls() {
                caps.push("STARTTLS");
            }
            if self.login_allowed() {
                caps.push("AUTH=PLAIN");
                caps.push("AUTH=LOGIN");
            } else {
                caps.push("LOGINDISABLED");
            }
            return caps.join(" ");
        }
        caps.extend([
            "NAMESPACE",
            "UIDPLUS",
            "MOVE",
            "UNSELECT",
            "CHILDREN",
            "SPECIAL-USE",
            "LIST-EXTENDED",
            "LIST-STATUS",
            "STATUS=SIZE",
            "CONDSTORE",
            "QRESYNC",
            "ESEARCH",
            "SORT",
            "SORT=DISPLAY",
            "THREAD=ORDEREDSUBJECT",
            "THREAD=REFERENCES",
            "QUOTA",
            "QUOTA=RES-STORAGE",
            "UTF8=ACCEPT",
            "MULTIAPPEND",
            "BINARY",
            "WITHIN",
        ]);
        let mut s = caps.join(" ");
        s.push_str(&format!(" APPENDLIMIT={}", append_limit(&self.tables)));
        s
    }

    pub(super) fn capability(&mut self, tag: &str) -> Output {
        let mut out = format!("* CAPABILITY {}\r\n", self.capabilities()).into_bytes();
        out.append(&mut self.finish(tag, r::completed("CAPABILITY")).bytes);
        Output::bytes(out)
    }

    pub(super) fn id(&mut self, tag: &str) -> Output {
        let mut out = b"* ID (\"name\" \"mailc\" \"version\" ".to_vec();
        string(&mut out, env!("CARGO_PKG_VERSION").as_bytes(), false);
        out.extend_from_slice(b")\r\n");
        out.append(&mut self.finish(tag, r::completed("ID")).bytes);
        Output::bytes(out)
    }

    pub(super) fn starttls(&mut self, tag: &str) -> Handled {
        if self.tls {
            return Err(Response::bad("TLS is already active").into());
        }
        if !self.can_starttls() {
            return Err(Response::bad("STARTTLS is not offered here").into());
        }
        self.state = State::NotAuthenticated(Login::WaitTls);
        Ok(Output {
            bytes: Response::ok("Begin TLS negotiation now").tagged(tag),
            effect: Some(Effect::StartTls),
            close: false,
        })
    }

    /// TLS is up after [`Effect::StartTls`].
    pub fn tls_established(&mut self) -> Output {
        self.tls = true;
        self.state = State::NotAuthenticated(Login::Ready);
        Output::default()
    }

    /// LOGIN and AUTHENTICATE where the listener does not offer login.
    fn login_refusal(&self) -> Option<Response> {
        if self.login_allowed() {
            None
        } else if self.can_starttls() {
            Some(Response::no(Code::PrivacyRequired, "Use STARTTLS first"))
        } else {
            Some(Response::no(Code::Cannot, "Login is not offered here"))
        }
    }

    pub(super) fn login(&mut self, tag: &str, user: String, pass: String) -> Handled {
        if let Some(refusal) = self.login_refusal() {
            return Err(refusal.into());
        }
        Ok(self.check_credentials(
            tag.to_string(),
            Credentials {
                username: user,
                password: pass,
            },
        ))
    }

    pub(super) fn authenticate(
        &mut self,
        tag: &str,
        mechanism: &str,
        initial: Option<String>,
    ) -> Handled {
        if let Some(refusal) = self.login_refusal() {
            return Err(refusal.into());
        }
        let tag = tag.to_string();
        match (mechanism, initial) {
            ("PLAIN", Some(i)) if i == "=" => Ok(self.sasl_plain(tag, "")),
            ("PLAIN", Some(i)) => Ok(self.sasl_plain(tag, &i)),
            ("PLAIN", None) => {
                self.state = State::NotAuthenticated(Login::AuthPlain { tag });
                Ok(Output::bytes(b"+ \r\n".to_vec()))
            }
            ("LOGIN", Some(i)) => {
                let user = sasl::decode_text(&i).map_err(|_| r::invalid_base64())?;
                self.state = State::NotAuthenticated(Login::AuthLoginPass { tag, user });
                Ok(Output::bytes(PROMPT_PASS.to_vec()))
            }
            ("LOGIN", None) => {
                self.state = State::NotAuthenticated(Login::AuthLoginUser { tag });
                Ok(Output::bytes(PROMPT_USER.to_vec()))
            }
            _ => Err(Response::no(Code::Cannot, "Unsupported mechanism").into()),
        }
    }

    /// A line answering an AUTHENTICATE prompt (or IDLE's DONE).
    pub(super) fn raw_line(&mut self, line: &[u8]) -> Output {
        if self.is_idle() {
            return self.idle_line(line);
        }
        let State::NotAuthenticated(login) = std::mem::replace(&mut self.state, State::Logout)
        else {
            return Output::default();
        };
        self.state = State::NotAuthenticated(Login::Ready);
        let tag = match &login {
            Login::AuthPlain { tag }
            | Login::AuthLoginUser { tag }
            | Login::AuthLoginPass { tag, .. } => tag.clone(),
            _ => {
                self.state = State::NotAuthenticated(login);
                return Output::default();
            }
        };
        if parse::is_cancel(line) {
            return self.error_output(&tag, r::auth_cancelled());
        }
        let text = String::from_utf8_lossy(line);
        match login {
            Login::AuthPlain { .. } => self.sasl_plain(tag, &text),
            Login::AuthLoginUser { .. } => match sasl::decode_text(&text) {
                Ok(user) => {
                    self.state = State::NotAuthenticated(Login::AuthLoginPass { tag, user });
                    Output::bytes(PROMPT_PASS.to_vec())
                }
                Err(_) => self.error_output(&tag, r::invalid_base64()),
            },
            Login::AuthLoginPass { user, .. } => match sasl::decode_text(&text) {
                Ok(password) => self.check_credentials(
                    tag,
                    Credentials {
                        username: user,
                        password,
                    },
                ),
                Err(_) => self.error_output(&tag, r::invalid_base64()),
            },
            _ => Output::default(),
        }
    }

    fn sasl_plain(&mut self, tag: String, b64: &str) -> Output {
        match sasl::decode_plain(b64) {
            Ok(c) => self.check_credentials(tag, c),
            Err(SaslError::Authzid) => self.error_output(
                &tag,
                Response::no(Code::AuthorizationFailed, "Proxy login is not allowed"),
            ),
            Err(_) => self.error_output(&tag, Response::bad("Invalid SASL PLAIN message")),
        }
    }

    /// Hands the credentials to the driver.
    fn check_credentials(&mut self, tag: String, credentials: Credentials) -> Output {
        self.state = State::NotAuthenticated(Login::WaitAuth { tag });
        Output {
            bytes: Vec::new(),
            effect: Some(Effect::Authenticate { credentials }),
            close: false,
        }
    }

    /// The result of the credential check asked for by
    /// [`Effect::Authenticate`].
    pub fn auth_result(&mut self, outcome: AuthOutcome) -> Output {
        let State::NotAuthenticated(Login::WaitAuth { tag }) =
            std::mem::replace(&mut self.state, State::NotAuthenticated(Login::Ready))
        else {
            return Output::default();
        };
        let refusal = match outcome {
            AuthOutcome::Ok(user) => match self.env.open(&user) {
                Ok(store) => {
                    self.state = State::Authenticated(Account {
                        user,
                        store,
                        ext: Enabled::default(),
                        idle: None,
                    });
                    self.errors = 0;
                    let caps = Code::Capability(self.capabilities());
                    return Output::bytes(Response::ok_code(caps, "Logged in").tagged(&tag));
                }
                Err(e) => Response::no(Code::Unavailable, format!("Mailbox unavailable: {e}")),
            },
            AuthOutcome::Failed => r::authentication_failed(),
            AuthOutcome::Locked => {
                Response::no(Code::Unavailable, "Too many failed logins, try again later")
            }
            AuthOutcome::TempFail => {
                Response::no(Code::Unavailable, "Authentication temporarily unavailable")
            }
        };
        self.error_output(&tag, refusal)
    }
}

impl Account {
    pub(super) fn enable(&mut self, tag: &str, caps: Vec<String>) -> Output {
        let mut out = b"* ENABLED".to_vec();
        for c in caps {
            let name = match c.as_str() {
                "CONDSTORE" => {
                    self.ext.condstore = true;
                    "CONDSTORE"
                }
                "QRESYNC" => {
                    self.ext.condstore = true;
                    self.ext.qresync = true;
                    "QRESYNC"
                }
                "UTF8=ACCEPT" => {
                    self.ext.utf8 = true;
                    "UTF8=ACCEPT"
                }
                "IMAP4REV2" => {
                    self.ext.rev2 = true;
                    self.ext.utf8 = true;
                    "IMAP4rev2"
                }
                _ => continue,
            };
            out.push(b' ');
            out.extend_from_slice(name.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        r::completed("ENABLE").write_tagged(&mut out, tag);
        Output::bytes(out)
    }
}
