//! The user a registration or an event belongs to.

use std::fmt;

/// The longest user name accepted, in octets (an e-mail address is at most 254).
pub const MAX_USER_NAME_LEN: usize = 256;

/// A user name as the mail server authenticated it: 1 to [`MAX_USER_NAME_LEN`] octets,
/// no control characters. Names are compared without regard to ASCII case, as
/// Dovecot's default `auth_username_format = %Lu` folds them: the value is kept with
/// ASCII letters in lower case, so equal names are equal values.
///
/// A name with a letter outside ASCII that has a lower case of its own (`Ä`, the
/// Kelvin sign `K`) is refused: servers fold such letters differently or not at all,
/// so that two accounts a server keeps apart (`Kim` written with the Kelvin sign, and
/// `kim`) could otherwise be taken for one, each seeing the other's push
/// subscriptions. xapsd folded them with Unicode's rules; a name it kept is in lower
/// case already, and reads as it was.
///
/// ```
/// use xaps_proto::{UserName, UserNameError};
/// let user = UserName::new("Alice@Example.org")?;
/// assert_eq!(user.as_str(), "alice@example.org");
/// assert_eq!(user, UserName::new("alice@example.org")?);
/// assert_eq!(UserName::new("älice")?.as_str(), "älice");
/// assert_eq!(UserName::new("\u{212A}im"), Err(UserNameError::CaseOutsideAscii));
/// assert!(UserName::new("").is_err());
/// assert!(UserName::new("alice\r\nbob").is_err());
/// # Ok::<(), xaps_proto::UserNameError>(())
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserName(String);

/// A user name that is not one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UserNameError {
    /// Empty.
    #[error("the user name is empty")]
    Empty,
    /// Longer than [`MAX_USER_NAME_LEN`].
    #[error("the user name is longer than {MAX_USER_NAME_LEN} octets")]
    TooLong,
    /// A line break, NUL or other control character: no mail server authenticates
    /// such a name, and it would break the lines it is logged in.
    #[error("the user name holds a control character")]
    Control,
    /// A letter outside ASCII with a lower case of its own (`Ä`, `ǅ`, the Kelvin
    /// sign): which names a mail server takes for one account then depends on how it
    /// folds case, which the daemon cannot know.
    #[error("the user name holds a capital letter outside ASCII")]
    CaseOutsideAscii,
}

impl UserName {
    /// Validates `name` and puts it in lower case.
    pub fn new(name: &str) -> Result<Self, UserNameError> {
        if name.is_empty() {
            return Err(UserNameError::Empty);
        }
        if name.len() > MAX_USER_NAME_LEN {
            return Err(UserNameError::TooLong);
        }
        if name.chars().any(char::is_control) {
            return Err(UserNameError::Control);
        }
        // Not only upper case letters change: title case ones (`ᾈ`, `ǅ`) do too.
        if name
            .chars()
            .any(|c| !c.is_ascii() && c.to_lowercase().ne([c]))
        {
            return Err(UserNameError::CaseOutsideAscii);
        }
        // ASCII lower case keeps the length.
        Ok(Self(name.to_ascii_lowercase()))
    }

    /// The name, in lower case.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for UserName {
    type Error = UserNameError;
    fn try_from(name: String) -> Result<Self, UserNameError> {
        Self::new(&name)
    }
}

impl From<UserName> for String {
    fn from(name: UserName) -> String {
        name.0
    }
}

impl AsRef<str> for UserName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// The name quoted and escaped as Rust writes a string literal: a client chose it, so
/// a log line shows it this way (`user = ?name`), never as raw text that could pass
/// for more fields or turn the line around (spaces, `=`, quotes, U+2028, bidi
/// controls).
///
/// ```
/// use xaps_proto::UserName;
/// let name = UserName::new("bob reason=ok\u{202e}")?;
/// assert_eq!(format!("{name:?}"), r#""bob reason=ok\u{202e}""#);
/// # Ok::<(), xaps_proto::UserNameError>(())
/// ```
impl fmt::Debug for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// The name as it is: for protocol text and the command line, not for logs.
impl fmt::Display for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_accepted_and_refused() {
        for (input, expected) in [
            ("alice", Ok("alice")),
            ("Alice", Ok("alice")),
            ("ALICE@example.org", Ok("alice@example.org")),
            ("älice@example.org", Ok("älice@example.org")),
            ("ÄLICE@example.org", Err(UserNameError::CaseOutsideAscii)),
            ("\u{212A}im", Err(UserNameError::CaseOutsideAscii)),
            ("ǅ", Err(UserNameError::CaseOutsideAscii)),
            ("straße", Ok("straße")),
            ("a b", Ok("a b")),
            ("", Err(UserNameError::Empty)),
            ("a\nb", Err(UserNameError::Control)),
            ("a\0", Err(UserNameError::Control)),
            ("a\u{1b}[31m", Err(UserNameError::Control)),
        ] {
            assert_eq!(
                UserName::new(input).as_ref().map(UserName::as_str),
                expected.as_ref().map(|s| *s),
                "{input:?}"
            );
        }
        assert_eq!(
            UserName::new(&"a".repeat(MAX_USER_NAME_LEN + 1)),
            Err(UserNameError::TooLong)
        );
        assert!(UserName::new(&"a".repeat(MAX_USER_NAME_LEN)).is_ok());
        // A name as xapsd kept it (Unicode's lower case) reads as it was.
        let kept = "İ".to_lowercase();
        let name = UserName::new(&kept).unwrap();
        assert_eq!(name.as_str(), kept);
        assert_eq!(UserName::new(name.as_str()), Ok(name));
    }
}
