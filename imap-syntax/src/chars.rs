//! RFC 9051 §9 character classes. One definition, as comparisons that
//! the lexers' runs test sixteen octets at a time; a 256-entry table made from it at
//! compile time answers for single octets.

/// Class bits.
pub(crate) const ATOM: u8 = 1;
pub(crate) const ASTRING: u8 = 2;
pub(crate) const TAG: u8 = 4;

/// The class bits of every octet, computed at compile time from [`in_class`].
// Indices run over 0..256 on a 256-entry table, and a `u8` indexes it: never out of
// bounds, and const evaluation would fail the build if it were.
#[allow(clippy::indexing_slicing)]
static CLASSES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0usize;
    while b < 256 {
        let c = b as u8;
        table[b] = (in_class::<ATOM>(c) as u8 * ATOM)
            | (in_class::<ASTRING>(c) as u8 * ASTRING)
            | (in_class::<TAG>(c) as u8 * TAG);
        b += 1;
    }
    table
};

#[allow(clippy::indexing_slicing)] // a u8 cannot index past 256 entries
const fn class(b: u8, bit: u8) -> bool {
    CLASSES[b as usize] & bit != 0
}

/// Whether `b` is in the class `BIT` (one of the class bits): comparisons rather than
/// a table lookup, so that a run of octets can be tested in SIMD lanes. The tests
/// check it against the ABNF.
#[inline(always)]
const fn in_class<const BIT: u8>(b: u8) -> bool {
    // Every class is printable ASCII (0x21..=0x7e) less some specials.
    let printable = b.wrapping_sub(0x21) < 0x5e;
    let special = (b == b'(')
        | (b == b')')
        | (b == b'{')
        | (b == b'%')
        | (b == b'*')
        | (b == b'"')
        | (b == b'\\')
        | ((b == b']') & (BIT == ATOM))
        | ((b == b'+') & (BIT == TAG));
    printable & !special
}

/// How many leading octets of `input` are in the class `BIT`; `None` when all of them
/// are, so the run may go on in input not yet received.
pub(crate) fn run_length<const BIT: u8>(input: &[u8]) -> Option<usize> {
    // Tokens (ids, endpoints, keys) run to tens of octets: test sixteen at a time, as
    // a lane-wise map and an AND (which the compiler turns into SIMD compares), then
    // find the end one octet at a time in the chunk that has it.
    let mut tail = input;
    while let Some((lanes, after)) = tail.split_first_chunk::<16>() {
        let flags = lanes.map(|b| u8::from(in_class::<BIT>(b)));
        if flags.iter().fold(1, |all, &f| all & f) == 0 {
            break;
        }
        tail = after;
    }
    let done = input.len() - tail.len();
    tail.iter().position(|&b| !class(b, BIT)).map(|n| done + n)
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
            assert_eq!(in_class::<ATOM>(b), atom, "{b:#x}");
            assert_eq!(in_class::<ASTRING>(b), atom || b == b']', "{b:#x}");
            assert_eq!(
                in_class::<TAG>(b),
                (atom || b == b']') && b != b'+',
                "{b:#x}"
            );
        }
    }

    proptest::proptest! {
        /// The chunked scan finds the same end as a scan one octet at a time.
        #[test]
        fn run_length_matches_a_plain_scan(
            input in proptest::collection::vec(
                proptest::prop_oneof![4 => b'!'..=b'~', 1 => proptest::num::u8::ANY],
                0..80,
            ),
        ) {
            let plain = |bit| input.iter().position(|&b| !class(b, bit));
            proptest::prop_assert_eq!(run_length::<ATOM>(&input), plain(ATOM));
            proptest::prop_assert_eq!(run_length::<ASTRING>(&input), plain(ASTRING));
            proptest::prop_assert_eq!(run_length::<TAG>(&input), plain(TAG));
        }
    }
}
