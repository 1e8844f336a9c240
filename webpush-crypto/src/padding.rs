//! Padding policies for Web Push messages, and the plaintext limit they imply.
//!
//! Padding hides a message's length from the push service and from anyone watching the
//! network, at the cost of bytes on constrained links. Some push services reject bodies
//! well below the 4096 octets RFC 8030 promises, so the default is no padding.

use core::num::NonZeroUsize;

use crate::Error;
use crate::ece::{HEADER_FIXED_LEN, RECORD_OVERHEAD, RecordSize};
use crate::keys::PUBLIC_KEY_LEN;

/// How much zero padding to add after a message's plaintext.
///
/// ```
/// use core::num::NonZeroUsize;
/// use webpush_crypto::Padding;
/// let bucket = Padding::Bucket(NonZeroUsize::new(256).unwrap());
/// assert_eq!(bucket.padded_len(1, 3993), Ok(256));
/// assert_eq!(bucket.padded_len(3900, 3993), Ok(3993)); // never beyond what fits
/// assert_eq!(Padding::Exact(1000).padded_len(10, 3993), Ok(1000));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Padding {
    /// No padding: the body reveals the plaintext's exact length.
    #[default]
    None,
    /// Round the plaintext up to a multiple of this many octets, capped at what fits in
    /// the record: lengths leak only to within a bucket.
    Bucket(NonZeroUsize),
    /// Pad every message to exactly this many octets of plaintext plus padding: every
    /// body has the same length. Longer plaintexts are refused.
    Exact(usize),
}

impl Padding {
    /// The largest plaintext this policy accepts when at most `capacity` octets of
    /// plaintext and padding fit.
    pub fn plaintext_limit(self, capacity: usize) -> usize {
        match self {
            Padding::None | Padding::Bucket(_) => capacity,
            Padding::Exact(target) => target.min(capacity),
        }
    }

    /// The length of plaintext plus padding for a plaintext of `len` octets, when at most
    /// `capacity` fit; an error when the plaintext or the policy's target does not fit.
    pub fn padded_len(self, len: usize, capacity: usize) -> Result<usize, Error> {
        let limit = self.plaintext_limit(capacity);
        if let Padding::Exact(target) = self
            && target > capacity
        {
            return Err(Error::PaddingTooLarge { target, capacity });
        }
        if len > limit {
            return Err(Error::PlaintextTooLong { len, limit });
        }
        Ok(match self {
            Padding::None => len,
            Padding::Bucket(bucket) => len
                .div_ceil(bucket.get())
                .checked_mul(bucket.get())
                .map_or(capacity, |rounded| rounded.min(capacity))
                .max(len),
            Padding::Exact(target) => target,
        })
    }
}

/// Octets of a Web Push header: fixed part plus the sender's public key as key id.
pub(crate) const WEBPUSH_HEADER_LEN: usize = HEADER_FIXED_LEN + PUBLIC_KEY_LEN;

/// The smallest record size that can carry a Web Push message (an empty one).
pub const MIN_WEBPUSH_RECORD_SIZE: u32 = 103;

/// Octets of plaintext plus padding one Web Push message can carry with record size
/// `rs`: the whole body (86-octet header and the single record) stays within `rs`, so
/// with the default 4096 a push service honouring RFC 8030 §7.2 must accept it.
///
/// ```
/// use webpush_crypto::{ece::RecordSize, padding::webpush_capacity};
/// assert_eq!(webpush_capacity(RecordSize::DEFAULT), 3993);
/// ```
pub fn webpush_capacity(rs: RecordSize) -> usize {
    rs.as_usize()
        .saturating_sub(WEBPUSH_HEADER_LEN + RECORD_OVERHEAD)
}
