//! FETCH: data items, body sections, partial ranges.

use super::*;

impl P<'_> {
    pub(super) fn partial(&mut self) -> R<Option<(u32, u32)>> {
        if !self.eat(b'<') {
            return Ok(None);
        }
        let start = self.number()?;
        self.expect(b'.')?;
        let len = self.nz_number()?;
        self.expect(b'>')?;
        Ok(Some((start, len)))
    }

    pub(super) fn part_path(&mut self) -> R<Vec<u32>> {
        let mut part = Vec::new();
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            part.push(self.nz_number()?);
            if part.len() > 64 {
                return Err("section path too deep".into());
            }
            if !self.eat(b'.') {
                break;
            }
        }
        Ok(part)
    }

    pub(super) fn section(&mut self) -> R<Section> {
        self.expect(b'[')?;
        let part = self.part_path()?;
        let text = if self.peek() == Some(b']') {
            None
        } else {
            let name = self.take_while(|b| b.is_ascii_alphabetic() || b == b'.');
            let name = String::from_utf8_lossy(name).to_ascii_uppercase();
            let fields = |p: &mut Self| -> R<Vec<String>> {
                p.sp()?;
                p.paren_list(|p| p.astring_text())
            };
            Some(match name.as_str() {
                "HEADER" => SectionText::Header,
                "HEADER.FIELDS" => SectionText::HeaderFields(fields(self)?),
                "HEADER.FIELDS.NOT" => SectionText::HeaderFieldsNot(fields(self)?),
                "TEXT" => SectionText::Text,
                "MIME" if !part.is_empty() => SectionText::Mime,
                _ => return Err(format!("invalid section {name}")),
            })
        };
        self.expect(b']')?;
        Ok(Section { part, text })
    }

    pub(super) fn fetch_att(&mut self) -> R<Vec<FetchAtt>> {
        let name = self.take_while(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        let name = String::from_utf8_lossy(name).to_ascii_uppercase();
        Ok(vec![match name.as_str() {
            "ALL" => {
                return Ok(vec![
                    FetchAtt::Flags,
                    FetchAtt::InternalDate,
                    FetchAtt::Rfc822Size,
                    FetchAtt::Envelope,
                ]);
            }
            "FAST" => {
                return Ok(vec![
                    FetchAtt::Flags,
                    FetchAtt::InternalDate,
                    FetchAtt::Rfc822Size,
                ]);
            }
            "FULL" => {
                return Ok(vec![
                    FetchAtt::Flags,
                    FetchAtt::InternalDate,
                    FetchAtt::Rfc822Size,
                    FetchAtt::Envelope,
                    FetchAtt::Body,
                ]);
            }
            "ENVELOPE" => FetchAtt::Envelope,
            "FLAGS" => FetchAtt::Flags,
            "INTERNALDATE" => FetchAtt::InternalDate,
            "RFC822.SIZE" => FetchAtt::Rfc822Size,
            "RFC822" => FetchAtt::Rfc822,
            "RFC822.HEADER" => FetchAtt::Rfc822Header,
            "RFC822.TEXT" => FetchAtt::Rfc822Text,
            "BODYSTRUCTURE" => FetchAtt::BodyStructure,
            "UID" => FetchAtt::Uid,
            "MODSEQ" => FetchAtt::ModSeq,
            "BODY" | "BODY.PEEK" if self.peek() == Some(b'[') => {
                let section = self.section()?;
                let partial = self.partial()?;
                FetchAtt::BodySection {
                    peek: name == "BODY.PEEK",
                    section,
                    partial,
                }
            }
            "BODY" => FetchAtt::Body,
            "BINARY" | "BINARY.PEEK" | "BINARY.SIZE" => {
                self.expect(b'[')?;
                let part = self.part_path()?;
                self.expect(b']')?;
                if name == "BINARY.SIZE" {
                    FetchAtt::BinarySize(part)
                } else {
                    FetchAtt::Binary {
                        peek: name == "BINARY.PEEK",
                        part,
                        partial: self.partial()?,
                    }
                }
            }
            "" => return Err("expected a fetch item".into()),
            _ => return Err(format!("unknown fetch item {name}")),
        }])
    }

    pub(super) fn fetch_items(&mut self) -> R<Vec<FetchAtt>> {
        if self.peek() == Some(b'(') {
            let lists = self.paren_list(|p| p.fetch_att())?;
            if lists.is_empty() {
                return Err("empty fetch item list".into());
            }
            Ok(lists.into_iter().flatten().collect())
        } else {
            self.fetch_att()
        }
    }

    pub(super) fn fetch(&mut self, uid: bool) -> R<Body> {
        let set = self.seq_set()?;
        self.sp()?;
        let items = self.fetch_items()?;
        let mut changedsince = None;
        let mut vanished = false;
        if self.eat(b' ') {
            self.expect(b'(')?;
            loop {
                let k = self.keyword()?;
                match k.as_str() {
                    "CHANGEDSINCE" => {
                        self.sp()?;
                        changedsince = Some(self.number64()?);
                    }
                    "VANISHED" if uid => vanished = true,
                    _ => return Err(format!("unknown fetch modifier {k}")),
                }
                if self.eat(b')') {
                    break;
                }
                self.sp()?;
            }
            if vanished && changedsince.is_none() {
                return Err("VANISHED needs CHANGEDSINCE".into());
            }
        }
        Ok(Body::Fetch {
            uid,
            set,
            items,
            changedsince,
            vanished,
        })
    }
}
