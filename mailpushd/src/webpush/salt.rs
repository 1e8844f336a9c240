//! The salts of a worker's pushes: RFC 8291 §3.4's 16 random octets a message, sent in
//! the clear, drawn from a ChaCha20 generator that the worker seeds once from the
//! operating system, rather than a system call for each push. Nothing secret comes
//! from it: it is used only beside a key made ahead (`deliver`), and every ephemeral
//! key is made from the operating system's generator, in the key pool or in line.

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// A worker's salt generator, seeded at its first push.
#[derive(Default)]
pub(super) struct Salts(Option<ChaCha20Rng>);

impl Salts {
    /// The generator, seeded from the operating system's the first time.
    pub(super) fn rng(&mut self) -> Result<&mut ChaCha20Rng, webpush_crypto::Error> {
        match &mut self.0 {
            Some(rng) => Ok(rng),
            empty => {
                let seeded = ChaCha20Rng::from_rng(rand_core::OsRng)
                    .map_err(|_| webpush_crypto::Error::Rng)?;
                Ok(empty.insert(seeded))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::RngCore;

    #[test]
    fn each_worker_draws_its_own_salts() {
        let (mut a, mut b) = (Salts::default(), Salts::default());
        let salt = |s: &mut Salts| {
            let mut out = [0_u8; 16];
            s.rng().unwrap().fill_bytes(&mut out);
            out
        };
        let first = salt(&mut a);
        assert_ne!(first, salt(&mut a), "one worker's salts differ");
        assert_ne!(first, salt(&mut b), "two workers are seeded apart");
    }
}
