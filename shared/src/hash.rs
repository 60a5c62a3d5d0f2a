//! Argon2id hashing of app passwords, stored as PHC strings
//! (`$argon2id$v=19$m=19456,t=2,p=1$SALT$HASH`).
//!
//! [`Argon2Kdf`] keeps its Argon2 memory between calls, so a long-lived host (Dovecot's auth
//! worker, the benchmark) pays the page faults of its 19 MiB once. [`Kdf`] is the seam the
//! verification uses; tests count calls through it to prove the one-Argon2 rule.

use crate::hugemem::HugeBlocks;
use argon2::Block;
use base64ct::{Base64Unpadded, Encoding};
use zeroize::Zeroizing;

/// Salt length for new hashes (bytes).
pub const SALT_LEN: usize = 16;
/// Hash output length (bytes).
pub const OUTPUT_LEN: usize = 32;

/// Argon2id cost parameters (`[argon2]` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// Memory in KiB (`m`).
    pub memory_kib: u32,
    /// Passes (`t`).
    pub iterations: u32,
    /// Lanes (`p`).
    pub parallelism: u32,
}

impl Default for Params {
    /// The OWASP recommendation: 19 MiB, 2 passes, 1 lane.
    fn default() -> Self {
        Params {
            memory_kib: 19456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

impl Params {
    /// Checks the parameters are usable and sane for a login path.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=16).contains(&self.parallelism) {
            return Err("parallelism must be between 1 and 16".into());
        }
        if !(1..=64).contains(&self.iterations) {
            return Err("iterations must be between 1 and 64".into());
        }
        if self.memory_kib < 8 * self.parallelism.max(1) || self.memory_kib < 1024 {
            return Err("memory_kib must be at least 1024 (and 8 × parallelism)".into());
        }
        if self.memory_kib > 1 << 20 {
            return Err("memory_kib must be at most 1048576 (1 GiB)".into());
        }
        Ok(())
    }
}

/// A hashing failure (never "accepted").
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    /// The stored string is not an Argon2id PHC string this program understands.
    #[error("stored hash is not a valid Argon2id PHC string")]
    Malformed,
    /// Parameters out of range.
    #[error("Argon2 parameters out of range")]
    BadParams,
    /// Argon2 itself failed.
    #[error("Argon2 computation failed")]
    Compute,
    /// The OS random number generator failed.
    #[error("the OS random number generator failed")]
    Random,
}

/// A parsed PHC string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phc {
    /// Cost parameters.
    pub params: Params,
    /// Salt bytes.
    pub salt: Vec<u8>,
    /// Hash bytes.
    pub hash: Vec<u8>,
}

impl Phc {
    /// Parses `$argon2id$v=19$m=..,t=..,p=..$salt$hash` (unpadded standard base64).
    pub fn parse(s: &str) -> Result<Phc, HashError> {
        let mut parts = s.split('$');
        let ok = parts.next() == Some("")
            && parts.next() == Some("argon2id")
            && parts.next() == Some("v=19");
        if !ok {
            return Err(HashError::Malformed);
        }
        let (mut m, mut t, mut p) = (None, None, None);
        for kv in parts.next().ok_or(HashError::Malformed)?.split(',') {
            let (k, v) = kv.split_once('=').ok_or(HashError::Malformed)?;
            let v: u32 = v.parse().map_err(|_| HashError::Malformed)?;
            match k {
                "m" => m = Some(v),
                "t" => t = Some(v),
                "p" => p = Some(v),
                _ => return Err(HashError::Malformed),
            }
        }
        let salt = Base64Unpadded::decode_vec(parts.next().ok_or(HashError::Malformed)?)
            .map_err(|_| HashError::Malformed)?;
        let hash = Base64Unpadded::decode_vec(parts.next().ok_or(HashError::Malformed)?)
            .map_err(|_| HashError::Malformed)?;
        if parts.next().is_some() || !(8..=64).contains(&salt.len()) || hash.len() != OUTPUT_LEN {
            return Err(HashError::Malformed);
        }
        let params = Params {
            memory_kib: m.ok_or(HashError::Malformed)?,
            iterations: t.ok_or(HashError::Malformed)?,
            parallelism: p.ok_or(HashError::Malformed)?,
        };
        params.validate().map_err(|_| HashError::BadParams)?;
        Ok(Phc { params, salt, hash })
    }

    /// Formats as a PHC string.
    #[must_use]
    pub fn encode(&self) -> String {
        format!(
            "$argon2id$v=19$m={},t={},p={}${}${}",
            self.params.memory_kib,
            self.params.iterations,
            self.params.parallelism,
            Base64Unpadded::encode_string(&self.salt),
            Base64Unpadded::encode_string(&self.hash),
        )
    }
}

/// The key-derivation seam used by [`crate::verify`].
pub trait Kdf {
    /// Checks `password` against a stored PHC string. Exactly one Argon2 computation.
    fn verify(&mut self, stored: &str, password: &[u8]) -> Result<bool, HashError>;
    /// Runs one Argon2 computation with `params` whose result is discarded, so that an attempt
    /// without a stored credential (unknown user, unknown tag) costs the same as one with.
    fn dummy(&mut self, params: Params, password: &[u8]);
}

/// Argon2id with a reusable memory buffer (huge pages when the kernel allows).
#[derive(Default)]
pub struct Argon2Kdf {
    huge: Option<HugeBlocks>,
    heap: Vec<Block>,
}

impl Argon2Kdf {
    /// A KDF with no memory allocated yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn compute(
        &mut self,
        params: Params,
        password: &[u8],
        salt: &[u8],
        out: &mut [u8],
    ) -> Result<(), HashError> {
        let blocks = argon2::Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            Some(OUTPUT_LEN),
        )
        .map_err(|_| HashError::BadParams)?
        .block_count();
        let memory = self.memory(blocks);
        // The vectorised implementation; the `argon2` crate stays the reference it is tested
        // against (same output for every parameter set, see `argon2id`'s tests).
        crate::argon2id::hash_into(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            password,
            salt,
            out,
            memory,
        )
        .map_err(|_| HashError::Compute)
    }

    /// Exactly `blocks` blocks of working memory: the huge-page mapping if it can be had, else
    /// the heap.
    fn memory(&mut self, blocks: usize) -> &mut [Block] {
        if self.huge.as_ref().is_none_or(|h| h.len() < blocks) {
            self.huge = HugeBlocks::new(blocks);
        }
        match &mut self.huge {
            Some(huge) => &mut huge.as_mut_slice()[..blocks],
            None => {
                if self.heap.len() < blocks {
                    self.heap.resize(blocks, Block::new());
                }
                &mut self.heap[..blocks]
            }
        }
    }

    /// Hashes a new password with a fresh random salt.
    pub fn hash_new(&mut self, params: Params, password: &[u8]) -> Result<String, HashError> {
        let mut salt = [0u8; SALT_LEN];
        getrandom::fill(&mut salt).map_err(|_| HashError::Random)?;
        let mut out = Zeroizing::new([0u8; OUTPUT_LEN]);
        self.compute(params, password, &salt, &mut out[..])?;
        Ok(Phc {
            params,
            salt: salt.to_vec(),
            hash: out.to_vec(),
        }
        .encode())
    }
}

impl Kdf for Argon2Kdf {
    fn verify(&mut self, stored: &str, password: &[u8]) -> Result<bool, HashError> {
        let phc = Phc::parse(stored)?;
        let mut out = Zeroizing::new([0u8; OUTPUT_LEN]);
        self.compute(phc.params, password, &phc.salt, &mut out[..])?;
        Ok(constant_time_eq(&out[..], &phc.hash))
    }

    fn dummy(&mut self, params: Params, password: &[u8]) {
        let mut out = Zeroizing::new([0u8; OUTPUT_LEN]);
        let _ = self.compute(params, password, b"apppw-dummy-salt", &mut out[..]);
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cheap parameters for unit tests; real ones are exercised by the integration tests.
    pub(crate) const FAST: Params = Params {
        memory_kib: 1024,
        iterations: 1,
        parallelism: 1,
    };

    #[test]
    fn hash_then_verify() {
        let mut kdf = Argon2Kdf::new();
        let h = kdf.hash_new(FAST, b"abcdefghijklmnopqrstuvwx").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{h}");
        assert!(kdf.verify(&h, b"abcdefghijklmnopqrstuvwx").unwrap());
        assert!(!kdf.verify(&h, b"abcdefghijklmnopqrstuvwy").unwrap());
        let h2 = kdf.hash_new(FAST, b"abcdefghijklmnopqrstuvwx").unwrap();
        assert_ne!(h, h2, "salts must differ");
    }

    #[test]
    fn matches_the_reference_implementation() {
        // Produced by the reference C implementation:
        // echo -n password | argon2 somesalt -id -t 2 -m 10 -p 1 -l 32 -e
        let reference = "$argon2id$v=19$m=1024,t=2,p=1$c29tZXNhbHQ$\
                         7FfsnA6vUe7qLpL/3Kqc3uR48ZJyFbUVt7jWZlf0Htk";
        assert_eq!(Phc::parse(reference).unwrap().encode(), reference);
        let mut kdf = Argon2Kdf::new();
        assert!(kdf.verify(reference, b"password").unwrap());
        assert!(!kdf.verify(reference, b"Password").unwrap());
    }

    #[test]
    fn rejects_malformed_phc() {
        for bad in [
            "",
            "$argon2i$v=19$m=1024,t=1,p=1$c29tZXNhbHQ$AAAA",
            "$argon2id$v=16$m=1024,t=1,p=1$c29tZXNhbHQ$AAAA",
            "$argon2id$v=19$m=1024,t=1$c29tZXNhbHQ$AAAA",
            "$argon2id$v=19$m=1024,t=1,p=1$!!!$AAAA",
            "$argon2id$v=19$m=1024,t=1,p=1$c29tZXNhbHQ$AAAA",
            "$argon2id$v=19$m=8,t=1,p=1$c29tZXNhbHQ$7FfsnA6vUe7qLpL/3Kqc3uR48ZJyFbUVt7jWZlf0Htk",
        ] {
            assert!(Phc::parse(bad).is_err(), "{bad}");
        }
        let mut kdf = Argon2Kdf::new();
        assert_eq!(kdf.verify("garbage", b"x"), Err(HashError::Malformed));
    }

    #[test]
    fn params_validation() {
        assert!(Params::default().validate().is_ok());
        assert!(FAST.validate().is_ok());
        assert!(
            Params {
                memory_kib: 512,
                ..FAST
            }
            .validate()
            .is_err()
        );
        assert!(
            Params {
                iterations: 0,
                ..FAST
            }
            .validate()
            .is_err()
        );
        assert!(
            Params {
                parallelism: 0,
                ..FAST
            }
            .validate()
            .is_err()
        );
    }
}
