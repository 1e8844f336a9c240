//! RFC 9051 §9 character classes, as 256-entry tables: the lexers test one octet at a
//! time, and a table lookup costs the same for every class.

/// Class bits.
const ATOM: u8 = 1;
const ASTRING: u8 = 2;
const TAG: u8 = 4;

/// The class bits of every octet, computed at compile time from the ABNF below.
// Indices run over 0..256 on a 256-entry table, and a `u8` indexes it: never out of
// bounds, and const evaluation would fail the build if it were.
#[allow(clippy::indexing_slicing)]
static CLASSES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0usize;
    while b < 256 {
        let c = b as u8;
        let atom = c.is_ascii()
            && !is_ctl(c)
            && !matches!(
                c,
                b'(' | b')' | b'{' | b' ' | b'%' | b'*' | b'"' | b'\\' | b']'
            );
        let astring = atom || c == b']';
        let tag = astring && c != b'+';
        table[b] = ((atom as u8) * ATOM) | ((astring as u8) * ASTRING) | ((tag as u8) * TAG);
        b += 1;
    }
    table
};

#[allow(clippy::indexing_slicing)] // a u8 cannot index past 256 entries
const fn class(b: u8, bit: u8) -> bool {
    CLASSES[b as usize] & bit != 0
}

/// `CTL = %x00-1F / %x7F`.
pub const fn is_ctl(b: u8) -> bool {
    b <= 0x1f || b == 0x7f
}

/// `ATOM-CHAR = <any CHAR except atom-specials>`, where
/// `atom-specials = "(" / ")" / "{" / SP / CTL / list-wildcards / quoted-specials /
/// resp-specials`.
pub fn is_atom_char(b: u8) -> bool {
    class(b, ATOM)
}

/// `ASTRING-CHAR = ATOM-CHAR / resp-specials`.
pub fn is_astring_char(b: u8) -> bool {
    class(b, ASTRING)
}

/// Tag characters: `1*<any ASTRING-CHAR except "+">`.
pub fn is_tag_char(b: u8) -> bool {
    class(b, TAG)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_match_the_abnf() {
        for b in 0..=255u8 {
            let atom = b.is_ascii() && !is_ctl(b) && !b"(){ %*\"\\]".contains(&b);
            assert_eq!(is_atom_char(b), atom, "{b:#x}");
            assert_eq!(is_astring_char(b), atom || b == b']', "{b:#x}");
            assert_eq!(is_tag_char(b), (atom || b == b']') && b != b'+', "{b:#x}");
        }
    }
}
