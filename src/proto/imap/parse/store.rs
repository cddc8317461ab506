//! STORE: flag changes with UNCHANGEDSINCE.

use super::*;

impl P<'_> {
    pub(super) fn store(&mut self, uid: bool) -> R<Body> {
        let set = self.seq_set()?;
        self.sp()?;
        let mut unchangedsince = None;
        if self.eat(b'(') {
            let k = self.keyword()?;
            if k != "UNCHANGEDSINCE" {
                return Err(format!("unknown store modifier {k}"));
            }
            self.sp()?;
            unchangedsince = Some(self.number64()?);
            self.expect(b')')?;
            self.sp()?;
        }
        let name =
            self.take_while(|b| b.is_ascii_alphabetic() || b == b'.' || b == b'+' || b == b'-');
        let name = String::from_utf8_lossy(name).to_ascii_uppercase();
        let (mode, rest) = match name.as_bytes().first() {
            Some(b'+') => (StoreMode::Add, &name[1..]),
            Some(b'-') => (StoreMode::Remove, &name[1..]),
            _ => (StoreMode::Replace, name.as_str()),
        };
        let silent = match rest {
            "FLAGS" => false,
            "FLAGS.SILENT" => true,
            _ => return Err(format!("unknown store item {name}")),
        };
        self.sp()?;
        let flags = if self.peek() == Some(b'(') {
            self.flag_list()?
        } else {
            let mut f = vec![self.flag()?];
            while self.eat(b' ') {
                f.push(self.flag()?);
            }
            f
        };
        Ok(Body::Store {
            uid,
            set,
            mode,
            silent,
            flags,
            unchangedsince,
        })
    }
}
