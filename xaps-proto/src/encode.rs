//! Encoding the server's responses and the client's command.

use imap_syntax::{Tag, ValueError, encode};

use crate::error::EncodeError;
use crate::parse::MAX_COMMAND_LEN;
use crate::types::{
    ExtraValue, KNOWN_KEYS, MAIL_SUBTOPIC, MAX_MAILBOX_LEN, MAX_MAILBOXES, MAX_PAIRS,
    RegistrationRequest, Version, is_known_key,
};

/// `"(" [astring *(SP astring)] ")"`.
fn list<'a>(out: &mut Vec<u8>, items: impl Iterator<Item = &'a [u8]>) -> Result<(), ValueError> {
    out.push(b'(');
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        encode::astring(out, item)?;
    }
    out.push(b')');
    Ok(())
}

/// `* XAPPLEPUSHSERVICE aps-version "<v>" aps-topic "<topic>"`, the line every
/// Dovecot and Cyrus deployment sends (a v1 request is answered with `"1"`).
///
/// ```
/// use xaps_proto::{Version, registered_response};
/// let line = registered_response(Version::V2, "com.apple.mail.XServer.d19011df-561b-444d-ac59-09459e74a5e6")?;
/// assert_eq!(line, b"* XAPPLEPUSHSERVICE aps-version \"2\" aps-topic \"com.apple.mail.XServer.d19011df-561b-444d-ac59-09459e74a5e6\"\r\n");
/// # Ok::<(), imap_syntax::ValueError>(())
/// ```
pub fn registered_response(version: Version, topic: &str) -> Result<Vec<u8>, ValueError> {
    let mut out = b"* XAPPLEPUSHSERVICE aps-version ".to_vec();
    encode::string(&mut out, version.as_str().as_bytes())?;
    out.extend_from_slice(b" aps-topic ");
    encode::string(&mut out, topic.as_bytes())?;
    out.extend_from_slice(b"\r\n");
    Ok(out)
}

/// `* XAPPLEPUSHSERVICE "mailbox" "<name>"`, Cyrus's line for each listed mailbox the
/// user may read and that will get pushes.
pub fn mailbox_response(name: &[u8]) -> Result<Vec<u8>, ValueError> {
    let mut out = b"* XAPPLEPUSHSERVICE \"mailbox\" ".to_vec();
    encode::string(&mut out, name)?;
    out.extend_from_slice(b"\r\n");
    Ok(out)
}

/// `<tag> OK XAPPLEPUSHSERVICE completed.`
pub fn completed(tag: &Tag<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    encode::tag(&mut out, tag);
    out.extend_from_slice(b" OK XAPPLEPUSHSERVICE completed.\r\n");
    out
}

impl RegistrationRequest {
    /// The command line a device sends: version 2 with atoms where they fit, version 1
    /// with every key and value quoted, as iOS does. A registration a server would
    /// refuse, or read back as another (see [`EncodeError`]), is refused, and nothing
    /// is appended to `out`; every one [`Command::decode`](crate::Command::decode)
    /// returns encodes.
    ///
    /// ```
    /// use imap_syntax::Tag;
    /// use xaps_proto::{AccountId, DeviceToken, EncodeError, ExtraValue, RegistrationRequest, Version};
    /// let mut request = RegistrationRequest {
    ///     version: Version::V2,
    ///     account_id: AccountId::new("0715A26B-CA09-4730-A419-793000CA982E")?,
    ///     device_token: DeviceToken::new("2918390218931890821908309283098109381029309829018310983092892829")?,
    ///     mailboxes: vec!["INBOX".into(), "Notes".into()],
    ///     unknown: vec![],
    /// };
    /// let mut out = Vec::new();
    /// request.encode(&Tag::new("a2")?, &mut out)?;
    /// assert!(out.ends_with(b" mailboxes (INBOX Notes)\r\n"));
    /// // A key the request writes itself cannot come again.
    /// request.unknown.push((b"APS-VERSION".to_vec(), ExtraValue::Text(b"3".to_vec())));
    /// let mut out = Vec::new();
    /// assert!(matches!(request.encode(&Tag::new("a3")?, &mut out), Err(EncodeError::RepeatedKey { .. })));
    /// assert!(out.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn encode(&self, tag: &Tag<'_>, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        self.check()?;
        let start = out.len();
        let written = self
            .write(tag, out)
            .map_err(EncodeError::from)
            .and_then(|()| {
                // Each item is bounded by `check`; the whole line only once written.
                let length = out.len() - start;
                if length > MAX_COMMAND_LEN {
                    return Err(EncodeError::CommandTooLong {
                        length,
                        max: MAX_COMMAND_LEN,
                    });
                }
                Ok(())
            });
        if written.is_err() {
            out.truncate(start);
        }
        written
    }

    /// What a server would refuse, or read back as another registration.
    fn check(&self) -> Result<(), EncodeError> {
        for (i, (key, _)) in self.unknown.iter().enumerate() {
            let mut earlier = self.unknown.iter().take(i);
            if is_known_key(key) || earlier.any(|(k, _)| k.eq_ignore_ascii_case(key)) {
                return Err(EncodeError::RepeatedKey {
                    key: String::from_utf8_lossy(key).into_owned(),
                });
            }
        }
        // The known keys, less `mailboxes` for version 1, and the unknown ones.
        let known = KNOWN_KEYS.len() - usize::from(self.version == Version::V1);
        let pairs = known + self.unknown.len();
        if pairs > MAX_PAIRS {
            return Err(EncodeError::TooManyPairs {
                pairs,
                max: MAX_PAIRS,
            });
        }
        let within = |length: usize| {
            if length > MAX_MAILBOX_LEN {
                return Err(EncodeError::TooLong {
                    length,
                    max: MAX_MAILBOX_LEN,
                });
            }
            Ok(())
        };
        for (key, value) in &self.unknown {
            within(key.len())?;
            match value {
                ExtraValue::Text(text) => within(text.len())?,
                ExtraValue::List(items) => items.iter().try_for_each(|i| within(i.len()))?,
            }
        }
        self.mailboxes.iter().try_for_each(|m| within(m.len()))?;
        let fits = match self.version {
            Version::V1 => self.mailboxes == ["INBOX"],
            Version::V2 => (1..=MAX_MAILBOXES).contains(&self.mailboxes.len()),
        };
        if !fits {
            return Err(EncodeError::Mailboxes {
                version: self.version.as_str(),
                count: self.mailboxes.len(),
                max: MAX_MAILBOXES,
            });
        }
        Ok(())
    }

    fn write(&self, tag: &Tag<'_>, out: &mut Vec<u8>) -> Result<(), ValueError> {
        encode::tag(out, tag);
        out.extend_from_slice(b" XAPPLEPUSHSERVICE");
        let pairs = [
            ("aps-version", self.version.as_str()),
            ("aps-account-id", self.account_id.as_str()),
            ("aps-device-token", self.device_token.as_str()),
            ("aps-subtopic", MAIL_SUBTOPIC),
        ];
        for (key, value) in pairs {
            out.push(b' ');
            match self.version {
                Version::V1 => {
                    encode::string(out, key.as_bytes())?;
                    out.push(b' ');
                    encode::string(out, value.as_bytes())?;
                }
                Version::V2 => {
                    out.extend_from_slice(key.as_bytes());
                    out.push(b' ');
                    encode::astring(out, value.as_bytes())?;
                }
            }
        }
        for (key, value) in &self.unknown {
            out.push(b' ');
            encode::astring(out, key)?;
            out.push(b' ');
            match value {
                ExtraValue::Text(text) => encode::astring(out, text)?,
                ExtraValue::List(items) => list(out, items.iter().map(Vec::as_slice))?,
            }
        }
        if self.version == Version::V2 {
            out.extend_from_slice(b" mailboxes ");
            list(out, self.mailboxes.iter().map(String::as_bytes))?;
        }
        out.extend_from_slice(b"\r\n");
        Ok(())
    }
}
