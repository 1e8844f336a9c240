//! PEM (RFC 7468) as Apple's files need it: the first block with a given label, after
//! whatever text precedes it (`openssl pkcs12` writes bag attributes there) and before
//! whatever follows it (the rest of a certificate chain). `pem-rfc7468` decodes the
//! block.

use zeroize::Zeroizing;

/// The DER inside the first `-----BEGIN <label>-----` … `-----END <label>-----` block
/// of `text`, wiped when dropped (the blocks read here include private keys). The error
/// says what is wrong.
pub(crate) fn decode(text: &[u8], label: &str) -> Result<Zeroizing<Vec<u8>>, &'static str> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = find(text, begin.as_bytes()).ok_or("no PEM BEGIN line")?;
    let block = text.get(start..).ok_or("no PEM BEGIN line")?;
    let stop = find(block, end.as_bytes()).ok_or("no PEM END line")? + end.len();
    let block = block.get(..stop).ok_or("no PEM END line")?;
    let not_base64 = |_| "PEM body is not base64";
    let mut decoder = pem_rfc7468::Decoder::new(block).map_err(not_base64)?;
    // Sized once, so no copy of a key is left behind by a growing buffer.
    let mut der = Zeroizing::new(vec![0; decoder.remaining_len()]);
    let len = decoder.decode(&mut der).map_err(not_base64)?.len();
    der.truncate(len);
    Ok(der)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks() {
        let text = b"Bag Attributes\n    friendlyName: x\n-----BEGIN CERTIFICATE-----\nAQIDBA==\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nBQ==\n-----END CERTIFICATE-----\n";
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
        assert_eq!(decode(b"\xff", "X"), Err("no PEM BEGIN line"));
    }
}
