//! RFC 9051 §9 character classes.

/// `CTL = %x00-1F / %x7F`.
pub const fn is_ctl(b: u8) -> bool {
    b <= 0x1f || b == 0x7f
}

/// `ATOM-CHAR = <any CHAR except atom-specials>`, where
/// `atom-specials = "(" / ")" / "{" / SP / CTL / list-wildcards / quoted-specials /
/// resp-specials`.
pub const fn is_atom_char(b: u8) -> bool {
    b.is_ascii()
        && !is_ctl(b)
        && !matches!(
            b,
            b'(' | b')' | b'{' | b' ' | b'%' | b'*' | b'"' | b'\\' | b']'
        )
}

/// `ASTRING-CHAR = ATOM-CHAR / resp-specials`.
pub const fn is_astring_char(b: u8) -> bool {
    is_atom_char(b) || b == b']'
}

/// Tag characters: `1*<any ASTRING-CHAR except "+">`.
pub const fn is_tag_char(b: u8) -> bool {
    is_astring_char(b) && b != b'+'
}

/// Octets a quoted string may carry unescaped: `TEXT-CHAR` except `quoted-specials`,
/// plus UTF-8 (checked separately). NUL, CR and LF never.
pub const fn is_quoted_plain(b: u8) -> bool {
    b != 0 && b != b'\r' && b != b'\n' && b != b'"' && b != b'\\'
}
