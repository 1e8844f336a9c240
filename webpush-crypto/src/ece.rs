//! RFC 8188 `aes128gcm` content coding, for any input keying material, key id, record
//! size and number of records.
//!
//! ```text
//! header = salt:16 rs:uint32 idlen:uint8 keyid:idlen
//! body   = header 1*record
//! record = AES-128-GCM(CEK, NONCE ^ seq, data ‖ delimiter ‖ *0x00)   ; at most rs octets
//! delimiter = 0x01 (every record but the last) / 0x02 (the last)
//! ```
//!
//! Web Push ([`crate::message`]) is this coding with a single record and the sender's
//! public key as key id. Use this module directly for other uses of the coding.
//!
//! ```
//! use webpush_crypto::ece::{self, RecordSize};
//! use webpush_crypto::{Provider, Salt};
//!
//! let ikm = [7u8; 16];
//! let rs = RecordSize::new(25)?;
//! let body = ece::encrypt(Provider::default(), &ikm, &Salt([1; 16]), b"a1", rs, b"I am the walrus", 0)?;
//! let (header, plaintext) = ece::decrypt(Provider::default(), &ikm, &body)?;
//! assert_eq!(header.keyid, b"a1");
//! assert_eq!(plaintext, b"I am the walrus");
//! # Ok::<(), webpush_crypto::Error>(())
//! ```

use crate::provider::{Provider, TAG_LEN};
use crate::{Error, Salt};

/// `info` for the content-encryption key (RFC 8188 §2.2).
pub(crate) const CEK_INFO: &[u8] = b"Content-Encoding: aes128gcm\0";
/// `info` for the nonce (RFC 8188 §2.3).
pub(crate) const NONCE_INFO: &[u8] = b"Content-Encoding: nonce\0";

/// Octets of the fixed part of the header: salt, rs and idlen.
pub const HEADER_FIXED_LEN: usize = 21;
/// A record's overhead: one delimiter octet and a 16-octet tag.
pub const RECORD_OVERHEAD: usize = 1 + TAG_LEN;

const DELIMITER: u8 = 0x01;
const LAST_DELIMITER: u8 = 0x02;

/// A record size: the most octets one encrypted record may take, at least 18
/// (RFC 8188 §2: one octet of content, the delimiter and the tag).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordSize(u32);

impl RecordSize {
    /// The smallest record size RFC 8188 permits.
    pub const MIN: u32 = 18;
    /// 4096, the size Web Push implementations use and every push service accepts.
    pub const DEFAULT: RecordSize = RecordSize(4096);

    /// Validates `rs >= 18`.
    pub const fn new(rs: u32) -> Result<Self, Error> {
        if rs < Self::MIN {
            return Err(Error::RecordSizeTooSmall { rs, min: Self::MIN });
        }
        Ok(Self(rs))
    }

    /// The record size in octets.
    pub const fn get(self) -> u32 {
        self.0
    }

    /// `rs` as a `usize`, saturating on 16-bit targets.
    pub(crate) fn as_usize(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }

    /// Octets of data plus padding one record carries.
    pub(crate) fn content_capacity(self) -> usize {
        self.as_usize() - RECORD_OVERHEAD
    }
}

impl Default for RecordSize {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl TryFrom<u32> for RecordSize {
    type Error = Error;
    fn try_from(rs: u32) -> Result<Self, Error> {
        Self::new(rs)
    }
}

/// A parsed `aes128gcm` header, borrowing its key id from the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    /// The salt.
    pub salt: Salt,
    /// The record size.
    pub rs: RecordSize,
    /// The key id (0 to 255 octets).
    pub keyid: &'a [u8],
}

impl<'a> Header<'a> {
    /// Parses the header at the start of `body`, returning it and the records after it.
    ///
    /// ```text
    /// header = salt:16 rs:uint32 idlen:uint8 keyid:idlen    ; RFC 8188 §2.1
    /// ```
    pub fn parse(body: &'a [u8]) -> Result<(Self, &'a [u8]), Error> {
        let (fixed, rest) = body
            .split_first_chunk::<HEADER_FIXED_LEN>()
            .ok_or(Error::HeaderTruncated { len: body.len() })?;
        // salt:16 rs:4 idlen:1, as the array's length requires.
        let [salt @ .., rs0, rs1, rs2, rs3, idlen] = fixed;
        let rs = RecordSize::new(u32::from_be_bytes([*rs0, *rs1, *rs2, *rs3]))?;
        let idlen = usize::from(*idlen);
        let (keyid, records) = rest.split_at_checked(idlen).ok_or(Error::KeyIdTruncated {
            idlen,
            available: rest.len(),
        })?;
        Ok((
            Header {
                salt: Salt(*salt),
                rs,
                keyid,
            },
            records,
        ))
    }

    /// The header's encoded length.
    pub fn encoded_len(&self) -> usize {
        HEADER_FIXED_LEN + self.keyid.len()
    }

    /// Appends the encoded header to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        let idlen = u8::try_from(self.keyid.len()).map_err(|_| Error::KeyIdTooLong {
            len: self.keyid.len(),
        })?;
        out.extend_from_slice(&self.salt.0);
        out.extend_from_slice(&self.rs.get().to_be_bytes());
        out.push(idlen);
        out.extend_from_slice(self.keyid);
        Ok(())
    }
}

/// The nonce of record `seq`: the base nonce XOR the big-endian sequence number
/// (RFC 8188 §2.3).
fn record_nonce(base: &[u8; 12], seq: u64) -> [u8; 12] {
    let mut nonce = *base;
    let (_, low) = nonce.split_at_mut(4);
    for (n, s) in low.iter_mut().zip(seq.to_be_bytes()) {
        *n ^= s;
    }
    nonce
}

/// Length of the body that [`encrypt`] produces, or `None` on arithmetic overflow.
pub fn encrypted_len(
    keyid_len: usize,
    rs: RecordSize,
    plaintext_len: usize,
    padding: usize,
) -> Option<usize> {
    let content = plaintext_len.checked_add(padding)?;
    let capacity = rs.content_capacity();
    let records = content.div_ceil(capacity).max(1);
    HEADER_FIXED_LEN
        .checked_add(keyid_len)?
        .checked_add(content)?
        .checked_add(records.checked_mul(RECORD_OVERHEAD)?)
}

/// Encrypts `plaintext` with `padding` zero octets under `ikm`.
///
/// Records are filled to capacity; the padding goes into the earliest records, as the
/// reference implementations (`http_ece`) place it, so RFC 8188 §3.2 is reproduced with
/// `padding = 1`. The output is allocated once, at its exact size.
pub fn encrypt(
    provider: Provider,
    ikm: &[u8],
    salt: &Salt,
    keyid: &[u8],
    rs: RecordSize,
    plaintext: &[u8],
    padding: usize,
) -> Result<Vec<u8>, Error> {
    let (cek, nonce) = provider.cek_and_nonce(&salt.0, ikm);
    let header = Header {
        salt: *salt,
        rs,
        keyid,
    };
    seal_body(provider, &cek, &nonce, &header, plaintext, padding)
}

/// Writes `header` and the records of `plaintext` with `padding`, under a derived key.
pub(crate) fn seal_body(
    provider: Provider,
    cek: &[u8; 16],
    base_nonce: &[u8; 12],
    header: &Header<'_>,
    plaintext: &[u8],
    padding: usize,
) -> Result<Vec<u8>, Error> {
    let total = encrypted_len(header.keyid.len(), header.rs, plaintext.len(), padding).ok_or(
        Error::PlaintextTooLong {
            len: plaintext.len(),
            limit: usize::MAX - padding,
        },
    )?;
    let mut out = Vec::with_capacity(total);
    header.encode(&mut out)?;
    let aead = provider.aead(cek)?;
    let capacity = header.rs.content_capacity();
    let mut data = plaintext;
    let mut pad_left = padding;
    let mut seq: u64 = 0;
    loop {
        let pad_here = pad_left.min(capacity);
        let (chunk, rest) = data.split_at(data.len().min(capacity - pad_here));
        data = rest;
        pad_left -= pad_here;
        let last = data.is_empty() && pad_left == 0;
        let start = out.len();
        out.extend_from_slice(chunk);
        out.push(if last { LAST_DELIMITER } else { DELIMITER });
        out.resize(out.len() + pad_here, 0);
        // `start` is the length before this record was appended: in bounds.
        let (_, record) = out.split_at_mut(start);
        let tag = aead.seal(&record_nonce(base_nonce, seq), record)?;
        out.extend_from_slice(&tag);
        if last {
            return Ok(out);
        }
        seq += 1;
    }
}

/// Decrypts a whole `aes128gcm` body under `ikm`, returning its header and plaintext.
///
/// Strict, as RFC 8188 §2 asks: `rs` below 18, a truncated header, key id or record,
/// a failed tag, a record without delimiter, a delimiter other than 0x01 before the
/// last record or other than 0x02 in the last one, are each an error. The output is
/// sized from the body actually received, never from `rs`.
pub fn decrypt<'a>(
    provider: Provider,
    ikm: &[u8],
    body: &'a [u8],
) -> Result<(Header<'a>, Vec<u8>), Error> {
    let (header, records) = Header::parse(body)?;
    let (cek, nonce) = provider.cek_and_nonce(&header.salt.0, ikm);
    let plaintext = open_records(provider, &cek, &nonce, header.rs, records)?;
    Ok((header, plaintext))
}

/// Decrypts the records that follow a header, strictly.
pub(crate) fn open_records(
    provider: Provider,
    cek: &[u8; 16],
    base_nonce: &[u8; 12],
    rs: RecordSize,
    mut records: &[u8],
) -> Result<Vec<u8>, Error> {
    if records.is_empty() {
        return Err(Error::NoRecords);
    }
    let aead = provider.aead(cek)?;
    let mut out = Vec::with_capacity(records.len());
    let mut seq: u64 = 0;
    while !records.is_empty() {
        let (record, rest) = records.split_at(records.len().min(rs.as_usize()));
        records = rest;
        let last = records.is_empty();
        if record.len() < RECORD_OVERHEAD {
            return Err(Error::RecordTruncated {
                index: seq,
                len: record.len(),
            });
        }
        let start = out.len();
        out.extend_from_slice(record);
        // `start` is the length before this record was appended: in bounds.
        let (_, opened) = out.split_at_mut(start);
        aead.open(&record_nonce(base_nonce, seq), opened)
            .map_err(|_| Error::Authentication { index: seq })?;
        // The record is at least RECORD_OVERHEAD long, so it holds a tag.
        let (content, _tag) = opened.split_at(opened.len() - TAG_LEN);
        let (end, &found) = content
            .iter()
            .enumerate()
            .rev()
            .find(|&(_, &b)| b != 0)
            .ok_or(Error::MissingDelimiter { index: seq })?;
        let expected = if last { LAST_DELIMITER } else { DELIMITER };
        if found != expected {
            return Err(Error::BadDelimiter {
                index: seq,
                found,
                expected,
            });
        }
        out.truncate(start + end);
        seq += 1;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_xor_touches_only_the_low_octets() {
        let base = [0xffu8; 12];
        let n = record_nonce(&base, 1);
        assert_eq!(&n[..11], &[0xff; 11]);
        assert_eq!(n[11], 0xfe);
        assert_eq!(record_nonce(&base, 0), base);
    }

    #[test]
    fn encrypted_len_counts_records() {
        let rs = RecordSize::new(25).unwrap(); // 8 octets of content per record
        assert_eq!(encrypted_len(0, rs, 0, 0), Some(21 + 17));
        assert_eq!(encrypted_len(0, rs, 8, 0), Some(21 + 8 + 17));
        assert_eq!(encrypted_len(0, rs, 9, 0), Some(21 + 9 + 34));
        assert_eq!(encrypted_len(2, rs, 15, 1), Some(73));
        assert_eq!(encrypted_len(0, rs, usize::MAX, 1), None);
    }
}
