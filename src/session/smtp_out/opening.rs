//! From the greeting to a connection ready for mail: EHLO (HELO when EHLO
//! is refused), STARTTLS when offered, EHLO again over TLS, AUTH PLAIN or
//! LOGIN when asked — and only ever over TLS.

use crate::proto::smtp::client::{self, Capabilities};
use crate::proto::smtp::reply::Reply;

use super::{ConnError, Fault, ReplyInfo, Stage, TlsPolicy};

/// What the opening needs to know.
#[derive(Debug, Clone)]
pub struct OpenConfig {
    /// Our host name for EHLO/HELO.
    pub helo: String,
    pub tls: TlsPolicy,
    /// TLS is already up (implicit TLS, port 465).
    pub tls_active: bool,
    /// User and password for AUTH.
    pub auth: Option<(String, String)>,
}

/// What the driver does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenStep {
    /// Write these bytes, then read one reply (timeout of
    /// [`Opening::expecting`]).
    Send(Vec<u8>),
    /// Run the TLS handshake now, then call [`Opening::tls_started`].
    StartTls,
    /// Ready for transactions with these capabilities.
    Ready(Capabilities),
    Fail(ConnError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Greeting,
    Ehlo,
    Helo,
    StartTls,
    AuthPlain,
    /// `AUTH LOGIN` sent, waiting for the user name prompt.
    AuthLoginStart,
    AuthLoginUser,
    AuthLoginPassword,
    Done,
}

#[derive(Debug, Clone)]
pub struct Opening {
    cfg: OpenConfig,
    state: State,
    tls_active: bool,
    caps: Capabilities,
    /// Failed because TLS was required and the server did not offer
    /// STARTTLS or refused it (RFC 8460 `starttls-not-supported`).
    starttls_missing: bool,
}

impl Opening {
    /// Starts by reading the greeting.
    pub fn new(cfg: OpenConfig) -> Opening {
        Opening {
            tls_active: cfg.tls_active,
            cfg,
            state: State::Greeting,
            caps: Capabilities::default(),
            starttls_missing: false,
        }
    }

    pub fn tls_active(&self) -> bool {
        self.tls_active
    }

    /// The opening failed because TLS was required and STARTTLS was not
    /// offered or was refused.
    pub fn starttls_missing(&self) -> bool {
        self.starttls_missing
    }

    /// The stage whose reply is awaited (for its timeout).
    pub fn expecting(&self) -> Stage {
        match self.state {
            State::Greeting => Stage::Greeting,
            State::Ehlo => Stage::Ehlo,
            State::Helo => Stage::Helo,
            State::StartTls => Stage::StartTls,
            State::AuthPlain
            | State::AuthLoginStart
            | State::AuthLoginUser
            | State::AuthLoginPassword => Stage::Auth,
            State::Done => Stage::Quit,
        }
    }

    /// The read failed, timed out or produced garbage.
    pub fn fault(&mut self, fault: &Fault) -> ConnError {
        let stage = self.expecting();
        self.state = State::Done;
        ConnError::Temporary(format!("{stage}: {fault}"))
    }

    fn fail_temp(&mut self, why: String) -> OpenStep {
        self.state = State::Done;
        OpenStep::Fail(ConnError::Temporary(why))
    }

    /// 4xx: temporary; 5xx: permanent; anything else: protocol error.
    fn refused(&mut self, r: &Reply) -> OpenStep {
        let stage = self.expecting();
        let info = ReplyInfo::from_reply(r, stage);
        self.state = State::Done;
        if (500..600).contains(&r.code) {
            OpenStep::Fail(ConnError::Permanent(info))
        } else {
            OpenStep::Fail(ConnError::Temporary(format!("{stage}: {info}")))
        }
    }

    fn unexpected(&mut self, r: &Reply) -> OpenStep {
        let stage = self.expecting();
        self.fail_temp(format!(
            "{stage}: unexpected reply {} {}",
            r.code,
            r.lines.join(" ")
        ))
    }

    pub fn on_reply(&mut self, r: &Reply) -> OpenStep {
        let class = r.code / 100;
        match self.state {
            State::Greeting => match class {
                2 => {
                    self.state = State::Ehlo;
                    OpenStep::Send(client::ehlo(&self.cfg.helo))
                }
                4 | 5 => self.refused(r),
                _ => self.unexpected(r),
            },
            State::Ehlo => match class {
                2 => {
                    self.caps = Capabilities::from_ehlo(r);
                    self.after_hello()
                }
                // RFC 5321 §3.2: a server that does not know EHLO answers
                // 500/502; fall back to HELO, but never after STARTTLS (the
                // server spoke EHLO before).
                5 if !self.tls_active || self.cfg.tls_active => {
                    self.state = State::Helo;
                    OpenStep::Send(client::helo(&self.cfg.helo))
                }
                4 | 5 => {
                    let info = ReplyInfo::from_reply(r, Stage::Ehlo);
                    self.fail_temp(format!("EHLO: {info}"))
                }
                _ => self.unexpected(r),
            },
            State::Helo => match class {
                2 => {
                    self.caps = Capabilities::helo();
                    self.after_hello()
                }
                4 | 5 => self.refused(r),
                _ => self.unexpected(r),
            },
            State::StartTls => match class {
                2 => {
                    self.state = State::Done;
                    OpenStep::StartTls
                }
                4 | 5 if self.cfg.tls == TlsPolicy::Opportunistic => {
                    // Opportunistic: carry on in plain text.
                    self.after_tls_decision()
                }
                4 | 5 => {
                    let info = ReplyInfo::from_reply(r, Stage::StartTls);
                    self.starttls_missing = true;
                    self.fail_temp(format!("TLS is required, but STARTTLS failed: {info}"))
                }
                _ => self.unexpected(r),
            },
            State::AuthPlain | State::AuthLoginPassword => match class {
                2 => self.ready(),
                // Like Postfix's smtp_sasl_auth_soft_bounce: a wrong
                // password is our configuration error; defer, do not bounce.
                4 | 5 => {
                    let info = ReplyInfo::from_reply(r, Stage::Auth);
                    self.fail_temp(format!("authentication failed: {info}"))
                }
                _ => self.unexpected(r),
            },
            State::AuthLoginStart | State::AuthLoginUser if r.code == 334 => {
                let (user, password) = self.cfg.auth.clone().unwrap_or_default();
                if self.state == State::AuthLoginStart {
                    self.state = State::AuthLoginUser;
                    OpenStep::Send(client::auth_login_line(&user))
                } else {
                    self.state = State::AuthLoginPassword;
                    OpenStep::Send(client::auth_login_line(&password))
                }
            }
            State::AuthLoginStart | State::AuthLoginUser => match class {
                4 | 5 => {
                    let info = ReplyInfo::from_reply(r, Stage::Auth);
                    self.fail_temp(format!("authentication failed: {info}"))
                }
                _ => self.unexpected(r),
            },
            State::Done => self.unexpected(r),
        }
    }

    /// The TLS handshake finished: say EHLO again (RFC 3207 §4.2, the
    /// capabilities from before TLS are forgotten).
    pub fn tls_started(&mut self) -> OpenStep {
        self.tls_active = true;
        self.caps = Capabilities::default();
        self.state = State::Ehlo;
        OpenStep::Send(client::ehlo(&self.cfg.helo))
    }

    fn after_hello(&mut self) -> OpenStep {
        if !self.tls_active && self.caps.starttls {
            self.state = State::StartTls;
            return OpenStep::Send(client::STARTTLS.to_vec());
        }
        self.after_tls_decision()
    }

    fn after_tls_decision(&mut self) -> OpenStep {
        if !self.tls_active && self.cfg.tls != TlsPolicy::Opportunistic {
            self.starttls_missing = true;
            return self
                .fail_temp("TLS is required, but the server does not offer STARTTLS".into());
        }
        if self.cfg.auth.is_none() {
            return self.ready();
        }
        if !self.tls_active {
            return self.fail_temp("will not send credentials without TLS".into());
        }
        let (user, password) = self.cfg.auth.clone().unwrap_or_default();
        if self.caps.auth_plain {
            self.state = State::AuthPlain;
            OpenStep::Send(client::auth_plain(&user, &password))
        } else if self.caps.auth_login {
            self.state = State::AuthLoginStart;
            OpenStep::Send(client::AUTH_LOGIN.to_vec())
        } else {
            self.fail_temp("the server offers neither AUTH PLAIN nor AUTH LOGIN".into())
        }
    }

    fn ready(&mut self) -> OpenStep {
        self.state = State::Done;
        OpenStep::Ready(self.caps.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::smtp::client::{Parsed, parse_reply};

    fn reply(s: &str) -> Reply {
        match parse_reply(s.as_bytes()) {
            Ok(Parsed::Reply { reply, .. }) => reply,
            other => panic!("{other:?}"),
        }
    }

    fn cfg(tls: TlsPolicy, auth: bool) -> OpenConfig {
        OpenConfig {
            helo: "out.example".into(),
            tls,
            tls_active: false,
            auth: auth.then(|| ("u".to_string(), "p".to_string())),
        }
    }

    fn sent(step: OpenStep) -> String {
        match step {
            OpenStep::Send(b) => String::from_utf8(b).unwrap(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn starttls_then_ehlo_again_then_auth() {
        let mut o = Opening::new(cfg(TlsPolicy::Opportunistic, true));
        assert_eq!(o.expecting(), Stage::Greeting);
        assert_eq!(
            sent(o.on_reply(&reply("220 mx\r\n"))),
            "EHLO out.example\r\n"
        );
        let ehlo = "250-mx\r\n250-STARTTLS\r\n250 AUTH LOGIN\r\n";
        assert_eq!(sent(o.on_reply(&reply(ehlo))), "STARTTLS\r\n");
        assert_eq!(o.on_reply(&reply("220 go\r\n")), OpenStep::StartTls);
        assert_eq!(sent(o.tls_started()), "EHLO out.example\r\n");
        assert_eq!(
            sent(o.on_reply(&reply("250-mx\r\n250 AUTH PLAIN LOGIN\r\n"))),
            "AUTH PLAIN AHUAcA==\r\n"
        );
        assert!(matches!(o.on_reply(&reply("235 ok\r\n")), OpenStep::Ready(c) if c.auth_plain));
    }

    #[test]
    fn auth_login_exchange() {
        let mut o = Opening::new(OpenConfig {
            tls_active: true,
            ..cfg(TlsPolicy::Require, true)
        });
        o.on_reply(&reply("220 mx\r\n"));
        assert_eq!(
            sent(o.on_reply(&reply("250-mx\r\n250 AUTH LOGIN\r\n"))),
            "AUTH LOGIN\r\n"
        );
        assert_eq!(sent(o.on_reply(&reply("334 VXNlcm5hbWU6\r\n"))), "dQ==\r\n");
        assert_eq!(sent(o.on_reply(&reply("334 UGFzc3dvcmQ6\r\n"))), "cA==\r\n");
        let step = o.on_reply(&reply("535 5.7.8 no\r\n"));
        assert!(matches!(step, OpenStep::Fail(ConnError::Temporary(t)) if t.contains("535 5.7.8")));
    }

    #[test]
    fn helo_fallback_and_policies() {
        let mut o = Opening::new(cfg(TlsPolicy::Opportunistic, false));
        o.on_reply(&reply("220 mx\r\n"));
        assert_eq!(
            sent(o.on_reply(&reply("502 no\r\n"))),
            "HELO out.example\r\n"
        );
        assert!(
            matches!(o.on_reply(&reply("250 hi\r\n")), OpenStep::Ready(c) if !c.extended && !c.pipelining)
        );

        let mut o = Opening::new(cfg(TlsPolicy::Require, false));
        o.on_reply(&reply("220 mx\r\n"));
        assert!(matches!(
            o.on_reply(&reply("250 mx\r\n")),
            OpenStep::Fail(ConnError::Temporary(t)) if t.contains("does not offer STARTTLS")
        ));

        // no credentials over plain text, even when the server offers AUTH
        let mut o = Opening::new(cfg(TlsPolicy::Opportunistic, true));
        o.on_reply(&reply("220 mx\r\n"));
        assert!(matches!(
            o.on_reply(&reply("250-mx\r\n250 AUTH PLAIN\r\n")),
            OpenStep::Fail(ConnError::Temporary(t)) if t.contains("without TLS")
        ));

        // opportunistic: a refused STARTTLS goes on in plain text
        let mut o = Opening::new(cfg(TlsPolicy::Opportunistic, false));
        o.on_reply(&reply("220 mx\r\n"));
        o.on_reply(&reply("250-mx\r\n250 STARTTLS\r\n"));
        assert!(matches!(
            o.on_reply(&reply("454 4.7.0 no\r\n")),
            OpenStep::Ready(_)
        ));
    }

    #[test]
    fn greeting_refusals() {
        let mut o = Opening::new(cfg(TlsPolicy::Opportunistic, false));
        match o.on_reply(&reply("554 5.7.1 go away\r\n")) {
            OpenStep::Fail(ConnError::Permanent(i)) => {
                assert_eq!((i.code, i.stage), (554, Stage::Greeting));
                assert_eq!(i.to_string(), "554 5.7.1 go away");
            }
            other => panic!("{other:?}"),
        }
        let mut o = Opening::new(cfg(TlsPolicy::Opportunistic, false));
        assert!(matches!(
            o.on_reply(&reply("421 busy\r\n")),
            OpenStep::Fail(ConnError::Temporary(_))
        ));
        let mut o = Opening::new(cfg(TlsPolicy::Opportunistic, false));
        assert!(matches!(
            o.on_reply(&reply("354 what\r\n")),
            OpenStep::Fail(ConnError::Temporary(_))
        ));
    }
}
