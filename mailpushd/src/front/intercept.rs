//! What the front does with a client's command, and who the client is: read from the
//! command the server accepted (`LOGIN`, `AUTHENTICATE PLAIN` and `LOGIN`), never from
//! anything the client says afterwards. Nothing here keeps a password: the octets that
//! carry one are the caller's, and are zeroized when it is done with them.

use base64::Engine as _;
use imap_syntax::{Limits, parse};
use zeroize::Zeroizing;

use crate::config::UserMap;

/// What a command is to the front.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `XAPPLEPUSHSERVICE`: answered by the front once the user is known.
    Xaps,
    /// One of the WEBPUSH family: answered by the front once the user is known.
    WebPush,
    /// `STARTTLS`: the front's own, never relayed.
    StartTls,
    /// `COMPRESS`: not carried through the front.
    Compress,
    /// `UNAUTHENTICATE` (RFC 8437): not carried either. The front reads who the
    /// session is from its one login; a second login on the same connection would
    /// leave it answering push commands for the first user.
    Unauthenticate,
    /// `LOGIN`: relayed; its user name is read when the server accepts it.
    Login,
    /// `IDLE`: relayed; until `DONE` the server reads nothing else, and the first `+`
    /// after it is its own.
    Idle,
    /// `AUTHENTICATE`: relayed; its user name is read from the exchange when the
    /// mechanism's messages carry it.
    Authenticate(Mechanism),
    /// Anything else: relayed unread.
    Other,
}

/// A SASL mechanism, as far as the front can read its user name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mechanism {
    /// RFC 4616: `[authzid] NUL authcid NUL passwd`.
    Plain,
    /// The `LOGIN` mechanism: the user name, then the password, each on its own.
    Login,
    /// Any other: the front cannot tell who logs in.
    Unreadable,
}

/// The mechanisms whose user name the front reads, as capabilities.
pub(crate) const READABLE_MECHANISMS: [&str; 2] = ["AUTH=PLAIN", "AUTH=LOGIN"];

/// What the command named `name`, followed by `rest` (its arguments), is to the front.
pub(crate) fn classify(name: &[u8], rest: &[u8]) -> Kind {
    let is = |word: &str| name.eq_ignore_ascii_case(word.as_bytes());
    if is(xaps_proto::CAPABILITY) {
        Kind::Xaps
    } else if imap_webpush_proto::is_webpush_command(name) {
        Kind::WebPush
    } else if is("STARTTLS") {
        Kind::StartTls
    } else if is("COMPRESS") {
        Kind::Compress
    } else if is("UNAUTHENTICATE") {
        Kind::Unauthenticate
    } else if is("LOGIN") {
        Kind::Login
    } else if is("IDLE") {
        Kind::Idle
    } else if is("AUTHENTICATE") {
        let mechanism = rest.strip_prefix(b" ").map_or(&b""[..], first_word);
        Kind::Authenticate(if mechanism.eq_ignore_ascii_case(b"PLAIN") {
            Mechanism::Plain
        } else if mechanism.eq_ignore_ascii_case(b"LOGIN") {
            Mechanism::Login
        } else {
            Mechanism::Unreadable
        })
    } else {
        Kind::Other
    }
}

/// How an `AUTHENTICATE` line reads, from `rest`, what follows the command name up to
/// and with the line's end: `Some(None)` without an initial response, `Some(Some(r))`
/// with one (RFC 4959; base64, or `=` for an empty one), and `None` when the line has
/// any other form, which the front refuses rather than relay.
///
/// ```text
/// authenticate = "AUTHENTICATE" SP auth-type [SP (base64 / "=")] CRLF
/// auth-type    = 1*(ALPHA / DIGIT / "-" / "_")        ; a SASL mechanism's name
/// ```
///
/// Only this form reads alike in the front and in a server. Dovecot takes everything
/// after the mechanism's space to the line's end as the response, and its base64
/// decoder skips blanks: `LOGIN  bWFsbG9yeQ==` (two spaces), `LOGIN\rbWFs…` or
/// `LOGIN Ym9i Ynk=` carry a response (`mallory`, `bobby`) that a reader of one word
/// would miss or cut short, and would then take the password's line, or part of the
/// name, for the user name.
pub(crate) fn authenticate_line(rest: &[u8]) -> Option<Option<&[u8]>> {
    let rest = rest.strip_suffix(b"\n")?;
    let rest = rest.strip_suffix(b"\r").unwrap_or(rest);
    let rest = rest.strip_prefix(b" ")?;
    let (mechanism, response) = match rest.iter().position(|&b| b == b' ') {
        Some(at) => {
            let (mechanism, response) = rest.split_at(at);
            (mechanism, Some(response.get(1..)?))
        }
        None => (rest, None),
    };
    let sasl_name = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_');
    if mechanism.is_empty() || !mechanism.iter().all(sasl_name) {
        return None;
    }
    match response {
        None => Some(None),
        // Canonical base64 only: no blank, no padding out of place.
        Some(response) if !response.is_empty() && decode(response).is_some() => {
            Some(Some(response))
        }
        Some(_) => None,
    }
}

/// The octets of `text` up to a space or the line's end.
fn first_word(text: &[u8]) -> &[u8] {
    let len = text
        .iter()
        .take_while(|&&b| !matches!(b, b' ' | b'\r' | b'\n'))
        .count();
    // A count of the slice's own octets: within it.
    text.split_at(len).0
}

/// The user name of a whole `LOGIN` command (its literals included), mapped; none
/// unless the name is all of the first argument and a password follows it, so that
/// the name read is the one a server reads. The password is not read: a server may
/// take one this grammar does not (8-bit octets in a quoted string), and refuses the
/// command if it does not.
///
/// ```text
/// login    = "LOGIN" SP userid SP password CRLF
/// userid   = astring
/// password = astring
/// ```
pub(crate) fn login_user(command: &[u8], map: &UserMap) -> Option<xaps_proto::UserName> {
    let (_, _, rest) = imap_syntax::relay::command(command)?;
    let rest = rest.strip_prefix(b" ")?;
    let limits = Limits::SERVER;
    let (rest, user) = parse::astring_bytes(rest, &limits).ok()?;
    let password = rest.strip_prefix(b" ")?;
    let password = password.strip_suffix(b"\n")?;
    let password = password.strip_suffix(b"\r").unwrap_or(password);
    if password.is_empty() {
        return None;
    }
    map.apply(std::str::from_utf8(&user).ok()?)
}

/// Whether `prefix`, a `LOGIN` command up to and with a literal's announcement (its
/// earlier literals included), announces that literal where the grammar takes one: as
/// the user name or as the password. A server reads a literal there too; anywhere else
/// (inside a quoted string, after an atom) it may read the line's end instead, and
/// take what the client sends as the literal for commands of its own.
///
/// ```text
/// login    = tag SP "LOGIN" SP userid SP password CRLF
/// userid   = astring
/// password = astring
/// literal  = "{" number ["+"] "}" CRLF *CHAR8
/// ```
pub(crate) fn login_literal_allowed(prefix: &[u8]) -> bool {
    let Some((_, name, rest)) = imap_syntax::relay::command(prefix) else {
        return false;
    };
    let Some(rest) = rest.strip_prefix(b" ") else {
        return false;
    };
    if !name.eq_ignore_ascii_case(b"LOGIN") {
        return false;
    }
    let announced = |text: &[u8]| imap_syntax::framing::announced(text).is_some();
    if announced(rest) {
        return true;
    }
    match parse::astring_bytes(rest, &Limits::SERVER) {
        Ok((after, _)) => after.strip_prefix(b" ").is_some_and(announced),
        Err(_) => false,
    }
}

/// The user name in an `AUTHENTICATE PLAIN` message (base64, one line): the
/// authorization identity if there is one, else the authentication identity, mapped.
pub(crate) fn plain_user(line: &[u8], map: &UserMap) -> Option<xaps_proto::UserName> {
    let message = decode(line)?;
    let mut parts = message.split(|&b| b == 0);
    let (authzid, authcid, _password) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let name = if authzid.is_empty() { authcid } else { authzid };
    map.apply(std::str::from_utf8(name).ok()?)
}

/// The user name the `LOGIN` mechanism's first response carries (base64), mapped.
pub(crate) fn login_mechanism_user(line: &[u8], map: &UserMap) -> Option<xaps_proto::UserName> {
    let name = decode(line)?;
    map.apply(std::str::from_utf8(&name).ok()?)
}

/// A base64 line, its CRLF aside; kept zeroized, since a PLAIN message holds a password.
fn decode(line: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line == b"=" {
        return Some(Zeroizing::new(Vec::new()));
    }
    base64::engine::general_purpose::STANDARD
        .decode(line)
        .ok()
        .map(Zeroizing::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> Option<xaps_proto::UserName> {
        xaps_proto::UserName::new(name).ok()
    }

    #[test]
    fn commands_are_told_apart_in_any_case() {
        assert_eq!(
            classify(b"xapplepushservice", b" aps-version 2"),
            Kind::Xaps
        );
        assert_eq!(classify(b"WebPush", b" s1 NIL"), Kind::WebPush);
        assert_eq!(classify(b"GETVAPID", b""), Kind::WebPush);
        assert_eq!(classify(b"StartTLS", b"\r\n"), Kind::StartTls);
        assert_eq!(classify(b"COMPRESS", b" DEFLATE\r\n"), Kind::Compress);
        assert_eq!(classify(b"unauthenticate", b"\r\n"), Kind::Unauthenticate);
        assert_eq!(
            classify(b"AUTHENTICATE", b" plain AGFsaWNlAHNlY3JldA==\r\n"),
            Kind::Authenticate(Mechanism::Plain)
        );
        assert_eq!(
            classify(b"authenticate", b" LOGIN\r\n"),
            Kind::Authenticate(Mechanism::Login)
        );
        assert_eq!(
            classify(b"AUTHENTICATE", b" SCRAM-SHA-256\r\n"),
            Kind::Authenticate(Mechanism::Unreadable)
        );
        assert_eq!(classify(b"idle", b"\r\n"), Kind::Idle);
        assert_eq!(classify(b"SELECT", b" INBOX\r\n"), Kind::Other);
    }

    #[test]
    fn the_user_a_login_names() {
        let map = UserMap::AsIs;
        assert_eq!(
            login_user(b"a1 LOGIN alice secret\r\n", &map),
            user("alice")
        );
        assert_eq!(
            login_user(b"a1 login \"Bob Smith\" \"pa ss\"\r\n", &map),
            user("bob smith")
        );
        assert_eq!(
            login_user(b"a1 LOGIN {5}\r\ncarol {6}\r\nsecret\r\n", &map),
            user("carol")
        );
        assert_eq!(login_user(b"a1 LOGIN\r\n", &map), None);
        // Whatever a server could read otherwise is no name: the name must be all of
        // the first argument, and a password must follow.
        for odd in [
            &b"a1 LOGIN alice%x secret\r\n"[..],
            b"a1 LOGIN alice\xff secret\r\n",
            b"a1 LOGIN alice\r\n",
            b"a1 LOGIN alice \r\n",
            b"a1 LOGIN alice secret",
        ] {
            assert_eq!(login_user(odd, &map), None, "{}", odd.escape_ascii());
        }
        // A password this grammar would not take (Latin-1 in a quoted string) is the
        // server's to judge.
        assert_eq!(
            login_user(b"a1 LOGIN alice \"p\xe4ss\"\r\n", &map),
            user("alice")
        );
        let map = UserMap::AddDomain("example.org".into());
        assert_eq!(
            login_user(b"a1 LOGIN alice x\r\n", &map),
            user("alice@example.org")
        );
        assert_eq!(
            login_user(b"a1 LOGIN alice@other.example x\r\n", &map),
            user("alice@other.example")
        );
        let map = UserMap::LocalPart;
        assert_eq!(
            login_user(b"a1 LOGIN alice@example.org x\r\n", &map),
            user("alice")
        );
    }

    #[test]
    fn a_login_announces_literals_only_where_the_grammar_takes_one() {
        for (prefix, allowed) in [
            (&b"a LOGIN {5}\r\n"[..], true),
            (b"a login {5+}\n", true),
            (b"a LOGIN alice {7}\r\n", true),
            (b"a LOGIN \"al ice\" {7+}\r\n", true),
            (b"a LOGIN {5}\r\nalice {7}\r\n", true),
            // No digits: an empty literal, as a server reads it.
            (b"a LOGIN alice {}\r\n", true),
            (b"a LOGIN {00005+}\r\n", true),
            // In a quoted string, which a server ends at the CRLF.
            (b"a LOGIN bob \"{46+}\r\n", false),
            (b"a LOGIN \"{5}\r\n", false),
            // After an atom, in no argument's place, or not one at all.
            (b"a LOGIN bob{5}\r\n", false),
            (b"a LOGIN alice secret {5}\r\n", false),
            (b"a LOGIN alice ~{5}\r\n", false),
            (b"a LOGIN alice {5}x\r\n", false),
            (b"a AUTHENTICATE PLAIN {5}\r\n", false),
            (b"a LOGIN  {5}\r\n", false),
        ] {
            assert_eq!(
                login_literal_allowed(prefix),
                allowed,
                "{}",
                prefix.escape_ascii()
            );
        }
    }

    #[test]
    fn the_user_a_sasl_exchange_names() {
        let map = UserMap::AsIs;
        let b64 = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
        let plain = format!("{}\r\n", b64(b"\0alice\0secret"));
        assert_eq!(plain_user(plain.as_bytes(), &map), user("alice"));
        // An authorization identity is who the session acts as.
        let plain = b64(b"admin-for-bob\0admin\0secret");
        assert_eq!(plain_user(plain.as_bytes(), &map), user("admin-for-bob"));
        assert_eq!(plain_user(b"not base64!", &map), None);
        assert_eq!(plain_user(b64(b"no-nul").as_bytes(), &map), None);
        assert_eq!(
            login_mechanism_user(b64(b"dave").as_bytes(), &map),
            user("dave")
        );
        // No name maps to no user, a domain added or not.
        let domain = UserMap::AddDomain("example.org".into());
        assert_eq!(login_mechanism_user(b"=", &domain), None);
        assert_eq!(
            login_mechanism_user(b64(b"dave").as_bytes(), &domain),
            user("dave@example.org")
        );
    }

    /// An AUTHENTICATE line reads only in the one form a server reads alike.
    #[test]
    fn an_authenticate_line_reads_in_one_form_only() {
        assert_eq!(
            authenticate_line(b" PLAIN AGFsaWNlAHNlY3JldA==\r\n"),
            Some(Some(&b"AGFsaWNlAHNlY3JldA=="[..]))
        );
        assert_eq!(authenticate_line(b" PLAIN\r\n"), Some(None));
        assert_eq!(authenticate_line(b" X-OAUTH_2\n"), Some(None));
        assert_eq!(authenticate_line(b" LOGIN =\r\n"), Some(Some(&b"="[..])));
        for line in [
            // Dovecot reads a response in each, which one word does not hold whole.
            &b" LOGIN  bWFsbG9yeQ==\r\n"[..],
            b" LOGIN\rbWFsbG9yeQ==\r\n",
            b" LOGIN Ym9i Ynk=\r\n",
            b" LOGIN Ym9i\tYnk=\r\n",
            b" LOGIN bWFsbG9yeQ== \r\n",
            b" LOGIN \r\n",
            // Not base64 as written, a literal, no mechanism, no line end.
            b" LOGIN bWFsbG9yeQ\r\n",
            b" PLAIN {5}\r\n",
            b" \r\n",
            b"\r\n",
            b" PLAIN",
        ] {
            assert_eq!(authenticate_line(line), None, "{}", line.escape_ascii());
        }
    }
}
