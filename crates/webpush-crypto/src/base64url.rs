//! base64url (RFC 4648 §5) as Web Push uses it: decoding accepts input with or without
//! `=` padding, encoding never pads.

use base64::Engine as _;
use base64::alphabet::URL_SAFE;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

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
/// value of the wrong decoded length.
pub(crate) fn decode_array<const N: usize>(
    text: &str,
    what: &'static str,
    len_err: fn(usize) -> Error,
) -> Result<[u8; N], Error> {
    // Large enough for a 65-octet point with a few octets to spare, so an over-long
    // input is reported by its length, not as a buffer error.
    let mut buf = zeroize::Zeroizing::new([0u8; 96]);
    let expected_max = base64::encoded_len(buf.len(), true).unwrap_or(usize::MAX);
    if text.len() > expected_max {
        return Err(len_err(text.len() / 4 * 3));
    }
    let len = ENGINE
        .decode_slice(text.as_bytes(), buf.as_mut_slice())
        .map_err(|_| Error::InvalidBase64 { what })?;
    let decoded = buf.get(..len).ok_or(Error::InvalidBase64 { what })?;
    <[u8; N]>::try_from(decoded).map_err(|_| len_err(len))
}

/// Appends the unpadded base64url form of `bytes` to `out`, without a temporary.
pub(crate) fn encode_into(bytes: &[u8], out: &mut String) {
    ENGINE.encode_string(bytes, out);
}
