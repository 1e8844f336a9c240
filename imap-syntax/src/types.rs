//! The values of the IMAP lexical layer. Parsed values borrow from the input
//! (`Cow::Borrowed`) unless unescaping forced a copy; constructed values validate.

use std::borrow::Cow;
use std::fmt;
use std::num::NonZeroU32;

use crate::LiteralMode;
use crate::chars::{is_astring_char, is_atom_char, is_tag_char};

/// A value rejected by a validating constructor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    /// The value is empty where the grammar needs at least one character.
    #[error("{what} must not be empty")]
    Empty {
        /// The kind of value.
        what: &'static str,
    },
    /// The value contains a character its grammar rule excludes.
    #[error("{what} contains the character 0x{byte:02x}, which it cannot carry")]
    Character {
        /// The kind of value.
        what: &'static str,
        /// The offending octet.
        byte: u8,
    },
    /// A sequence set without any member.
    #[error("a sequence set needs at least one member")]
    EmptySet,
}

fn check(what: &'static str, text: &str, allowed: impl Fn(u8) -> bool) -> Result<(), ValueError> {
    if text.is_empty() {
        return Err(ValueError::Empty { what });
    }
    match text.bytes().find(|&b| !allowed(b)) {
        Some(byte) => Err(ValueError::Character { what, byte }),
        None => Ok(()),
    }
}

/// A text value its grammar rule checks: the type, its checking constructor, and
/// its accessors, alike for every such rule.
macro_rules! checked_text {
    ($(#[$doc:meta])* $name:ident, $what:literal, $allowed:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash)]
        pub struct $name<'a>(Cow<'a, str>);

        impl<'a> $name<'a> {
            #[doc = concat!("Checks `text` against the ", $what, " rule.")]
            pub fn new(text: impl Into<Cow<'a, str>>) -> Result<Self, ValueError> {
                let text = text.into();
                check($what, &text, $allowed)?;
                Ok(Self(text))
            }

            /// Wraps text the parser already checked.
            pub(crate) fn unchecked(text: &'a str) -> Self {
                Self(Cow::Borrowed(text))
            }

            #[doc = concat!("The ", $what, "'s text.")]
            pub fn as_str(&self) -> &str {
                &self.0
            }

            #[doc = concat!("The ", $what, "'s text, as held: borrowed from the input or owned.")]
            pub fn into_inner(self) -> Cow<'a, str> {
                self.0
            }

            #[doc = concat!("The same ", $what, ", owning its text.")]
            pub fn into_owned(self) -> $name<'static> {
                $name(Cow::Owned(self.0.into_owned()))
            }
        }

        impl fmt::Debug for $name<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({:?})"), self.0)
            }
        }

        impl<'a> TryFrom<&'a str> for $name<'a> {
            type Error = ValueError;
            fn try_from(text: &'a str) -> Result<Self, ValueError> {
                Self::new(text)
            }
        }
    };
}

checked_text!(
    /// `atom = 1*ATOM-CHAR`.
    Atom,
    "atom",
    is_atom_char
);

checked_text!(
    /// `tag = 1*<any ASTRING-CHAR except "+">`.
    Tag,
    "tag",
    is_tag_char
);

/// `string = quoted / literal`: the content, and the form it arrived in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IString<'a> {
    /// `quoted`, unescaped. Borrowed unless it contained escapes.
    Quoted(Cow<'a, str>),
    /// `literal`: any octets but NUL.
    Literal {
        /// The octets.
        data: Cow<'a, [u8]>,
        /// `{n}` or `{n+}`.
        mode: LiteralMode,
    },
}

impl IString<'_> {
    /// The content.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            IString::Quoted(text) => text.as_bytes(),
            IString::Literal { data, .. } => data,
        }
    }

    /// The same string, owning its content.
    pub fn into_owned(self) -> IString<'static> {
        match self {
            IString::Quoted(text) => IString::Quoted(Cow::Owned(text.into_owned())),
            IString::Literal { data, mode } => IString::Literal {
                data: Cow::Owned(data.into_owned()),
                mode,
            },
        }
    }
}

checked_text!(
    /// `1*ASTRING-CHAR`: the atom form of an [`AString`], which may also contain `]`.
    ///
    /// ```
    /// use imap_syntax::AStringAtom;
    /// assert_eq!(AStringAtom::new("INBOX]")?.as_str(), "INBOX]");
    /// assert!(AStringAtom::new("").is_err());
    /// assert!(AStringAtom::new("two words").is_err());
    /// # Ok::<(), imap_syntax::ValueError>(())
    /// ```
    AStringAtom,
    "astring atom",
    is_astring_char
);

/// `astring = 1*ASTRING-CHAR / string`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AString<'a> {
    /// `1*ASTRING-CHAR`: an atom that may also contain `]`.
    Atom(AStringAtom<'a>),
    /// A quoted string or literal.
    String(IString<'a>),
}

impl<'a> AString<'a> {
    /// An astring of `text`, in the shortest form that can carry it (that form is
    /// chosen when encoding).
    pub fn new(text: &'a str) -> Self {
        if !text.is_empty() && text.bytes().all(is_astring_char) {
            AString::Atom(AStringAtom(Cow::Borrowed(text)))
        } else {
            AString::String(IString::Quoted(Cow::Borrowed(text)))
        }
    }

    /// The content, whatever the form.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            AString::Atom(atom) => atom.as_str().as_bytes(),
            AString::String(s) => s.as_bytes(),
        }
    }

    /// The content as text, if it is UTF-8.
    pub fn to_str(&self) -> Option<&str> {
        std::str::from_utf8(self.as_bytes()).ok()
    }

    /// The same astring, owning its content.
    pub fn into_owned(self) -> AString<'static> {
        match self {
            AString::Atom(atom) => AString::Atom(atom.into_owned()),
            AString::String(s) => AString::String(s.into_owned()),
        }
    }
}

/// `mailbox = "INBOX" / astring`, with INBOX in any case folded to `Inbox`
/// (RFC 9051 §5.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Mailbox<'a> {
    /// The inbox, however it was spelled.
    Inbox,
    /// Any other mailbox, by its name's octets (UTF-8 for an `UTF8=ACCEPT` session,
    /// modified UTF-7 otherwise). Made by [`Mailbox::new`] or [`Mailbox::from_bytes`]
    /// only, so it is never `INBOX` in any case.
    #[non_exhaustive]
    Other(Cow<'a, [u8]>),
}

impl<'a> Mailbox<'a> {
    /// The mailbox named `name`; `INBOX` in any case is the inbox.
    pub fn new(name: &'a str) -> Self {
        Self::from_bytes(Cow::Borrowed(name.as_bytes()))
    }

    /// The mailbox named by the octets `name`; `INBOX` in any case is the inbox.
    ///
    /// ```
    /// use imap_syntax::Mailbox;
    /// assert_eq!(Mailbox::from_bytes(b"inbox".as_slice()), Mailbox::Inbox);
    /// assert_eq!(Mailbox::from_bytes(b"Sent".to_vec()).as_bytes(), b"Sent");
    /// ```
    pub fn from_bytes(name: impl Into<Cow<'a, [u8]>>) -> Self {
        let name = name.into();
        if name.eq_ignore_ascii_case(b"INBOX") {
            Mailbox::Inbox
        } else {
            Mailbox::Other(name)
        }
    }

    /// The name's octets (`INBOX` for the inbox).
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Mailbox::Inbox => b"INBOX",
            Mailbox::Other(name) => name,
        }
    }

    /// The same mailbox, owning its name.
    pub fn into_owned(self) -> Mailbox<'static> {
        match self {
            Mailbox::Inbox => Mailbox::Inbox,
            Mailbox::Other(name) => Mailbox::Other(Cow::Owned(name.into_owned())),
        }
    }
}

/// `seq-number = nz-number / "*"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SeqNumber {
    /// A message sequence number or UID.
    Value(NonZeroU32),
    /// `*`: the largest number in use.
    Largest,
}

/// One member of a sequence set: `seq-number / seq-range`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sequence {
    /// `seq-number`.
    Single(SeqNumber),
    /// `seq-range = seq-number ":" seq-number`, in the order written.
    Range(SeqNumber, SeqNumber),
}

/// `sequence-set = (seq-number / seq-range) ["," sequence-set]`, also used for UID
/// sets. Never empty.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SequenceSet(Vec<Sequence>);

impl SequenceSet {
    /// A set of the given members, in order.
    pub fn new(members: Vec<Sequence>) -> Result<Self, ValueError> {
        if members.is_empty() {
            return Err(ValueError::EmptySet);
        }
        Ok(Self(members))
    }

    /// The members, in order.
    pub fn members(&self) -> &[Sequence] {
        &self.0
    }
}

impl TryFrom<Vec<Sequence>> for SequenceSet {
    type Error = ValueError;
    fn try_from(members: Vec<Sequence>) -> Result<Self, ValueError> {
        Self::new(members)
    }
}

/// Checks the atom charset without building a value.
pub fn is_atom(text: &[u8]) -> bool {
    !text.is_empty() && text.iter().all(|&b| is_atom_char(b))
}
