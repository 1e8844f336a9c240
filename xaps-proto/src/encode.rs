//! Encoding the server's responses and the client's command.

use imap_syntax::{Tag, ValueError, encode};

use crate::types::{ExtraValue, MAIL_SUBTOPIC, RegistrationRequest, Version};

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
    /// with every key and value quoted, as iOS does.
    pub fn encode(&self, tag: &Tag<'_>, out: &mut Vec<u8>) -> Result<(), ValueError> {
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
