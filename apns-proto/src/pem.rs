//! PEM (RFC 7468) as far as Apple's files need it: the first block with a given label,
//! after whatever text precedes it (`openssl pkcs12` writes bag attributes there).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

/// The DER inside the first `-----BEGIN <label>-----` … `-----END <label>-----` block
/// of `text`, wiped when dropped (the blocks read here include private keys). The error
/// says what is missing.
pub(crate) fn decode(text: &[u8], label: &str) -> Result<Zeroizing<Vec<u8>>, &'static str> {
    let text = std::str::from_utf8(text).map_err(|_| "PEM text is not UTF-8")?;
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin).ok_or("no PEM BEGIN line")? + begin.len();
    let body = text.get(start..).unwrap_or_default();
    let body = body
        .get(..body.find(&end).ok_or("no PEM END line")?)
        .unwrap_or_default();
    let base64: Zeroizing<String> =
        Zeroizing::new(body.chars().filter(|c| !c.is_ascii_whitespace()).collect());
    STANDARD
        .decode(base64.as_bytes())
        .map(Zeroizing::new)
        .map_err(|_| "PEM body is not base64")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn blocks() {
        let text = b"Bag Attributes\n    friendlyName: x\n-----BEGIN CERTIFICATE-----\nAQID\nBA==\n-----END CERTIFICATE-----\n";
        assert_eq!(
            decode(text, "CERTIFICATE").unwrap().as_slice(),
            [1, 2, 3, 4]
        );
        assert_eq!(decode(text, "PRIVATE KEY"), Err("no PEM BEGIN line"));
        assert_eq!(
            decode(b"-----BEGIN CERTIFICATE-----\nAQID\n", "CERTIFICATE"),
            Err("no PEM END line")
        );
        assert_eq!(
            decode(b"-----BEGIN X-----\n*\n-----END X-----", "X"),
            Err("PEM body is not base64")
        );
        assert_eq!(decode(b"\xff", "X"), Err("PEM text is not UTF-8"));
    }
}
