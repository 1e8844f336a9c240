//! base64url (RFC 4648 §5) as Web Push uses it: decoding accepts input with or without
//! `=` padding, encoding never pads.

use base64::DecodeSliceError;
use base64::Engine as _;
use base64::alphabet::URL_SAFE;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use zeroize::Zeroize as _;

use crate::Error;

/// Browsers hand out unpadded keys, some libraries pad them: accept both, emit neither.
const ENGINE: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Encodes `bytes` as unpadded base64url.
///
/// ```
/// assert_eq!(webpush_crypto::base64url::encode(b"\xfb\xff"), "-_8");
/// ```
pub fn encode(bytes: &[u8]) -> String {
    ENGINE.encode(bytes)
}

/// Decodes base64url with or without `=` padding; `what` names the value in the error.
///
/// ```
/// use webpush_crypto::base64url::decode;
/// assert_eq!(decode("-_8", "example").unwrap(), b"\xfb\xff");
/// assert_eq!(decode("-_8=", "example").unwrap(), b"\xfb\xff");
/// assert!(decode("+/8", "example").is_err());
/// ```
pub fn decode(text: &str, what: &'static str) -> Result<Vec<u8>, Error> {
    ENGINE
        .decode(text.as_bytes())
        .map_err(|_| Error::InvalidBase64 { what })
}

/// Decodes into a fixed-size array without allocating; `len_err` builds the error for a
/// value of the wrong decoded length. On error nothing decoded is left behind: the
/// arrays hold secrets (auth secrets, private keys) as often as public keys.
pub(crate) fn decode_array<const N: usize>(
    text: &[u8],
    what: &'static str,
    len_err: fn(usize) -> Error,
) -> Result<[u8; N], Error> {
    if let Some(out) = decode_canonical(text) {
        return Ok(out);
    }
    let mut out = [0u8; N];
    let result = match ENGINE.decode_slice(text, &mut out) {
        Ok(len) if len == N => return Ok(out),
        Ok(len) => Err(len_err(len)),
        Err(DecodeSliceError::OutputSliceTooSmall) => Err(len_err(decoded_len(text))),
        Err(DecodeSliceError::DecodeError(_)) => Err(Error::InvalidBase64 { what }),
    };
    out.zeroize();
    result
}

/// The value of each base64url character; `0xff` for every other octet.
// A u8 indexes a 256-entry table; const evaluation would fail the build otherwise.
#[allow(clippy::indexing_slicing)]
static SEXTETS: [u8; 256] = {
    let mut table = [0xff; 256];
    let mut i = 0;
    while i < 64 {
        let c = match i {
            0..=25 => b'A' + i,
            26..=51 => b'a' + (i - 26),
            52..=61 => b'0' + (i - 52),
            62 => b'-',
            _ => b'_',
        };
        table[c as usize] = i;
        i += 1;
    }
    table
};

/// The usual case of [`decode_array`]: exactly `N` octets' worth of unpadded
/// characters, all in the alphabet, with zero trailing bits. This is what browsers
/// send, and on keys this short (two in every IMAP WEBPUSH command) decoding it
/// directly saves the general engine's set-up (measured in the `webpush` bench group).
/// `None` for anything else, which goes on to the engine for the same answer or its
/// error.
#[allow(clippy::indexing_slicing)] // a u8 cannot index past 256 entries
fn decode_canonical<const N: usize>(text: &[u8]) -> Option<[u8; N]> {
    if text.len() != (N * 4).div_ceil(3) {
        return None;
    }
    let mut out = [0u8; N];
    // Any invalid character sets the high bit here; checked once, at the end (the
    // octets it garbles on the way are thrown away then).
    let mut invalid = 0u8;
    let mut sextets = |chars: &[u8]| {
        chars.iter().fold(0u32, |bits, &c| {
            let v = SEXTETS[c as usize];
            invalid |= v;
            (bits << 6) | u32::from(v)
        })
    };
    // The length check above makes the quads and the triples pair up exactly.
    let mut quads = text.chunks_exact(4);
    let mut triples = out.chunks_exact_mut(3);
    for (quad, triple) in (&mut quads).zip(&mut triples) {
        let [_, a, b, c] = sextets(quad).to_be_bytes();
        triple.copy_from_slice(&[a, b, c]);
    }
    // Two characters carry one octet and four spare bits, three carry two and two.
    let (chars, octets) = (quads.remainder(), triples.into_remainder());
    let spare = (chars.len() * 6).checked_sub(octets.len() * 8)?;
    let bits = sextets(chars);
    let canonical = bits & ((1 << spare) - 1) == 0;
    let value = (bits >> spare).to_be_bytes();
    octets.copy_from_slice(value.get(4 - octets.len()..)?);
    if invalid & 0x80 != 0 || !canonical {
        out.zeroize();
        return None;
    }
    Some(out)
}

/// The octets `text` decodes to, for a length error: three per four characters once
/// any `=` padding is dropped.
fn decoded_len(text: &[u8]) -> usize {
    let unpadded = text.iter().rposition(|&b| b != b'=').map_or(0, |i| i + 1);
    unpadded / 4 * 3 + (unpadded % 4).saturating_sub(1)
}

/// Appends the unpadded base64url form of `bytes` to `out`, without a temporary.
pub(crate) fn encode_into(bytes: &[u8], out: &mut String) {
    ENGINE.encode_string(bytes, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What the general engine makes of `text`, as `decode_array` would without the
    /// direct path.
    fn engine<const N: usize>(text: &[u8]) -> Option<[u8; N]> {
        ENGINE.decode(text).ok()?.try_into().ok()
    }

    fn agrees<const N: usize>(text: &[u8]) -> Result<(), TestCaseError> {
        let direct = decode_canonical::<N>(text);
        if direct.is_some() {
            prop_assert_eq!(direct, engine::<N>(text));
        }
        let full = decode_array::<N>(text, "test", |_| Error::InvalidBase64 { what: "len" });
        prop_assert_eq!(full.ok(), engine::<N>(text));
        Ok(())
    }

    #[test]
    fn known_cases() {
        let auth = *b"\x05\x30\x59\x32\xa1\xc7\xea\xbe\x13\xb6\xce\xc9\xfd\xa4\x88\x82";
        assert_eq!(decode_canonical(b"BTBZMqHH6r4Tts7J_aSIgg"), Some(auth));
        // Padded, and with spare bits set: left to the engine, which takes the one and
        // refuses the other.
        assert_eq!(decode_canonical::<16>(b"BTBZMqHH6r4Tts7J_aSIgg=="), None);
        assert_eq!(
            decode_array(b"BTBZMqHH6r4Tts7J_aSIgg==", "auth", |_| Error::Rng).ok(),
            Some(auth)
        );
        assert_eq!(decode_canonical::<16>(b"BTBZMqHH6r4Tts7J_aSIgh"), None);
        assert!(decode_array::<16>(b"BTBZMqHH6r4Tts7J_aSIgh", "auth", |_| Error::Rng).is_err());
        assert_eq!(decode_canonical::<16>(b"BTBZMqHH6r4Tts7J+aSIgg"), None);
    }

    #[test]
    fn alphabet() {
        for (i, c) in URL_SAFE.as_str().bytes().enumerate() {
            assert_eq!(usize::from(SEXTETS[usize::from(c)]), i);
        }
        assert_eq!(SEXTETS.iter().filter(|&&v| v != 0xff).count(), 64);
    }

    proptest! {
        #[test]
        fn direct_path_round_trips(key in any::<[u8; 65]>(), auth in any::<[u8; 16]>(), scalar in any::<[u8; 32]>()) {
            prop_assert_eq!(decode_canonical(encode(&key).as_bytes()), Some(key));
            prop_assert_eq!(decode_canonical(encode(&auth).as_bytes()), Some(auth));
            prop_assert_eq!(decode_canonical(encode(&scalar).as_bytes()), Some(scalar));
        }

        /// Near-valid text (mostly the alphabet, the odd `=` or stray octet, at and
        /// around the lengths of the keys): the direct path never disagrees with the
        /// engine.
        #[test]
        fn direct_path_agrees_with_the_engine(
            text in proptest::sample::select(vec![21usize, 22, 23, 24, 42, 43, 44, 86, 87, 88])
                .prop_flat_map(|len| proptest::collection::vec(
                    prop_oneof![
                        200 => proptest::sample::select(URL_SAFE.as_str().as_bytes().to_vec()),
                        1 => Just(b'='),
                        1 => any::<u8>(),
                    ],
                    len,
                )),
            flip in any::<u8>(),
        ) {
            agrees::<16>(&text)?;
            agrees::<32>(&text)?;
            agrees::<65>(&text)?;
            // A last character with spare bits set is not canonical.
            let mut last = text.clone();
            if let Some(c) = last.last_mut() {
                *c = URL_SAFE.as_str().as_bytes()[usize::from(flip % 64)];
            }
            agrees::<16>(&last)?;
            agrees::<65>(&last)?;
        }
    }
}
