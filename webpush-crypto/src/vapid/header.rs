//! The `Authorization: vapid t=…, k=…` credentials (RFC 8292 §3, RFC 9110 §11.4).

use crate::Error;

/// The longest `Authorization` value parsed. A VAPID credential is about 300 octets;
/// a push service should not scan a megabyte for one.
pub const MAX_AUTHORIZATION_LEN: usize = 8 * 1024;

/// The two parameters of a `vapid` credential, borrowed from the header value and not
/// yet checked: use [`VapidVerifier`](super::VapidVerifier) to verify them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VapidCredentials<'a> {
    /// `t`: the JWT.
    pub token: &'a str,
    /// `k`: the signer's public key, base64url.
    pub key: &'a str,
}

impl<'a> VapidCredentials<'a> {
    /// Parses an `Authorization` header value.
    ///
    /// ```text
    /// credentials = auth-scheme 1*SP auth-param *( OWS "," OWS auth-param )
    /// auth-scheme = "vapid"                      ; case-insensitive
    /// auth-param  = token BWS "=" BWS ( value / quoted-string )
    /// value       = 1*( any VCHAR except "," )   ; liberal: token68 with "=" padding
    /// ```
    ///
    /// Parameters other than `t` and `k` are ignored, as RFC 8292 §3 requires; a
    /// repeated `t` or `k` is an error, since either copy could be the forged one.
    ///
    /// ```
    /// use webpush_crypto::VapidCredentials;
    /// let c = VapidCredentials::parse("vapid t=eyJ.eyJ.sig,k=BA1H, x=\"ignored, too\"")?;
    /// assert_eq!((c.token, c.key), ("eyJ.eyJ.sig", "BA1H"));
    /// # Ok::<(), webpush_crypto::Error>(())
    /// ```
    pub fn parse(value: &'a str) -> Result<Self, Error> {
        let malformed = |reason| Error::MalformedAuthorization { reason };
        if value.len() > MAX_AUTHORIZATION_LEN {
            return Err(malformed("longer than 8 KiB"));
        }
        let value = value.trim_matches(is_ows);
        let (scheme, params) = value
            .split_once(is_ows)
            .ok_or(malformed("expected `vapid t=<jwt>, k=<key>`"))?;
        if !scheme.eq_ignore_ascii_case("vapid") {
            return Err(malformed("authentication scheme is not vapid"));
        }
        let mut token = None;
        let mut key = None;
        let mut rest = params;
        loop {
            rest = rest.trim_start_matches(|c| is_ows(c) || c == ',');
            if rest.is_empty() {
                break;
            }
            let name_end = rest.find(|c: char| !is_tchar(c)).unwrap_or(rest.len());
            let (name, after) = rest.split_at(name_end);
            if name.is_empty() {
                return Err(malformed("expected a parameter name"));
            }
            let after = after.trim_start_matches(is_ows);
            let after = after
                .strip_prefix('=')
                .ok_or(malformed("parameter without `=`"))?
                .trim_start_matches(is_ows);
            let (param, after) = if let Some(quoted) = after.strip_prefix('"') {
                let unterminated = || malformed("unterminated quoted string");
                let (inner, after) = quoted_end(quoted)
                    .and_then(|end| quoted.split_at_checked(end))
                    .ok_or_else(unterminated)?;
                (inner, after.strip_prefix('"').ok_or_else(unterminated)?)
            } else {
                let end = after.find(|c| is_ows(c) || c == ',').unwrap_or(after.len());
                after.split_at(end)
            };
            let after = after.trim_start_matches(is_ows);
            if !(after.is_empty() || after.starts_with(',')) {
                return Err(malformed("expected `,` between parameters"));
            }
            rest = after;
            let slot = if name.eq_ignore_ascii_case("t") {
                &mut token
            } else if name.eq_ignore_ascii_case("k") {
                &mut key
            } else {
                continue;
            };
            if slot.is_some() {
                return Err(malformed("parameter t or k appears twice"));
            }
            if param.is_empty() || param.contains('\\') {
                return Err(malformed("parameter t or k has an empty or escaped value"));
            }
            *slot = Some(param);
        }
        Ok(Self {
            token: token.ok_or(malformed("no t parameter (the JWT)"))?,
            key: key.ok_or(malformed("no k parameter (the public key)"))?,
        })
    }
}

/// `OWS = *( SP / HTAB )`.
fn is_ows(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// `tchar` (RFC 9110 §5.6.2).
fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// The index of the closing quote of a quoted string whose opening quote was consumed,
/// skipping `\`-escaped characters.
fn quoted_end(text: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return Some(i),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(value: &str) -> (&str, &str) {
        let c = VapidCredentials::parse(value).unwrap();
        (c.token, c.key)
    }

    fn reason(value: &str) -> &'static str {
        match VapidCredentials::parse(value) {
            Err(Error::MalformedAuthorization { reason }) => reason,
            other => panic!("{value:?}: {other:?}"),
        }
    }

    #[test]
    fn accepted_forms() {
        assert_eq!(ok("vapid t=a.b.c, k=K"), ("a.b.c", "K"));
        assert_eq!(ok("VAPID t=a.b.c,k=K"), ("a.b.c", "K"));
        assert_eq!(ok("  vapid   k = K ,\t t=\"a.b.c\"  "), ("a.b.c", "K"));
        assert_eq!(
            ok("vapid t=a.b.c, k=K==, extra=\"x, \\\" y\""),
            ("a.b.c", "K==")
        );
        assert_eq!(ok("vapid ,, t=a.b.c,, k=K,"), ("a.b.c", "K"));
    }

    #[test]
    fn refused_forms() {
        assert_eq!(reason("vapid"), "expected `vapid t=<jwt>, k=<key>`");
        assert_eq!(
            reason("WebPush t=a.b.c"),
            "authentication scheme is not vapid"
        );
        assert_eq!(reason("Bearer abc"), "authentication scheme is not vapid");
        assert_eq!(reason("vapid t=a.b.c"), "no k parameter (the public key)");
        assert_eq!(reason("vapid k=K"), "no t parameter (the JWT)");
        assert_eq!(
            reason("vapid t=a, t=b, k=K"),
            "parameter t or k appears twice"
        );
        assert_eq!(
            reason("vapid t=\"a\\.b\", k=K"),
            "parameter t or k has an empty or escaped value"
        );
        assert_eq!(
            reason("vapid t=, k=K"),
            "parameter t or k has an empty or escaped value"
        );
        assert_eq!(reason("vapid t"), "parameter without `=`");
        assert_eq!(reason("vapid =x"), "expected a parameter name");
        assert_eq!(reason("vapid t=\"abc"), "unterminated quoted string");
        assert_eq!(
            reason("vapid t=a b, k=K"),
            "expected `,` between parameters"
        );
        assert_eq!(
            reason(&format!("vapid t={}", "a".repeat(MAX_AUTHORIZATION_LEN))),
            "longer than 8 KiB"
        );
    }
}
