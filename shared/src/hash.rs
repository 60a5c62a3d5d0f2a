//! Argon2id hashing of app passwords, stored as PHC strings
//! (`$argon2id$v=19$m=19456,t=2,p=1$SALT$HASH`).
//!
//! apppw has no Argon2 code of its own. Two vetted implementations compute it:
//!
//! - **libsodium from the system** ([`crate::sodium`]) for hashes with one lane and a 16-byte
//!   salt: every hash apppw writes with the default parameters. Debian's security updates reach
//!   it, and it is the fastest candidate measured (docs/performance.md).
//! - **the `argon2` crate** (RustCrypto) for every other valid hash (`p > 1`, other salt
//!   lengths), which libsodium's interface cannot express. Its working memory is ours
//!   ([`HugeBlocks`]): huge pages, kept out of core dumps, wiped after each computation, and
//!   kept between calls so a long-lived host pays its page faults once.
//!
//! Which one runs depends only on the parameters and the salt length, so a dummy verification
//! (unknown user or tag) takes the same path, and time, as a real one with the same
//! parameters. Before its first computation each process runs a known-answer test of both
//! ([`self_test`]); if it fails, every computation in the process fails ([`HashError::SelfTest`],
//! never "accepted") and the front-ends treat it as a configuration error
//! ([`self_test_failure`]).
//!
//! [`Kdf`] is the seam the verification uses; tests count calls through it to prove the
//! one-Argon2 rule. An [`Argon2Kdf`] made with [`Argon2Kdf::with_gate`] computes only while
//! it holds a slot of the host's admission gate ([`crate::gate`]); a computation that found no
//! slot in time fails with [`HashError::Busy`], which the verification turns into a temporary
//! failure.

use crate::gate::{Gate, Refused, Slot};
use crate::hugemem::HugeBlocks;
use crate::sodium;
use argon2::{Algorithm, Argon2, Version};
use base64ct::{Base64Unpadded, Encoding};
use zeroize::Zeroizing;

mod selftest;
#[cfg(any(test, feature = "self-test-seam"))]
pub use selftest::seam;
pub use selftest::{self_test, self_test_failure, self_test_for_one_attempt};

/// Salt length for new hashes (bytes): libsodium's, so that new hashes go to libsodium.
pub const SALT_LEN: usize = 16;
const _: () = assert!(SALT_LEN == sodium::SALT_LEN);
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
    /// The known-answer test of this process failed: no Argon2 result can be trusted.
    #[error("the Argon2id self-test failed")]
    SelfTest,
    /// The host's Argon2 admission gate had no free slot within the queue timeout: nothing was
    /// computed. A temporary failure, never "accepted" and never "wrong password".
    #[error("no Argon2 slot free on this host within the queue timeout")]
    Busy,
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
    /// Whether the last [`Kdf::dummy`] was computed: `Err(HashError::Busy)` if the admission
    /// gate turned it away. The attempt must then end like a turned-away real verification
    /// (a temporary failure), or the answer would tell unknown users apart under load.
    fn dummy_outcome(&self) -> Result<(), HashError> {
        Ok(())
    }
    /// A problem worth logging that did not stop the computation (e.g. the admission gate
    /// could not be used, so it ran without), reported once.
    fn take_warning(&mut self) -> Option<String> {
        None
    }
}

/// Which implementation computes a hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Implementation {
    /// The system's libsodium (`crypto_pwhash_argon2id`): one lane, 16-byte salt.
    Libsodium,
    /// The `argon2` crate, on memory of our own.
    Argon2Crate,
}

impl Implementation {
    /// The implementation for a hash with these parameters and salt length.
    #[must_use]
    pub fn for_hash(params: Params, salt_len: usize) -> Implementation {
        if params.parallelism == 1 && salt_len == sodium::SALT_LEN {
            Implementation::Libsodium
        } else {
            Implementation::Argon2Crate
        }
    }
}

/// Argon2id as apppw computes it: through the host's admission gate if it has one, and with
/// the `argon2` crate's working memory (none is allocated unless a hash needs the crate).
///
/// That memory is mapped once and kept, but with a gate its pages are given back to the kernel
/// (after the wipe) before the slot is, so Argon2 memory on the host stays within one
/// computation per slot however many processes verify; libsodium's own memory lives only
/// during its call anyway. Without a gate the pages stay, warm, for the next computation.
#[derive(Default)]
pub struct Argon2Kdf {
    crate_memory: Option<HugeBlocks>,
    gate: Option<Gate>,
    /// Why the gate of `[argon2]` is not used (reported once through `take_warning`).
    gate_problem: Option<String>,
    warning: Option<String>,
    dummy_busy: bool,
}

impl Argon2Kdf {
    /// A KDF with no memory allocated yet and no admission gate: for tests and benchmarks,
    /// and for what must not wait (nothing in the login path).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// A KDF that computes through the admission gate `settings` describe (the config's
    /// `[argon2] max_concurrent`, `queue_timeout_ms`, `gate_file`). A gate that cannot be
    /// opened is reported by [`Kdf::take_warning`] and the KDF computes without it.
    #[must_use]
    pub fn with_gate(settings: &crate::gate::Settings) -> Self {
        let mut kdf = Self::new();
        kdf.use_gate(settings);
        kdf
    }

    /// Switches to the gate `settings` describe, unless it is the one in use (a long-lived
    /// host calls this with each attempt's config, so an edit takes effect at the next login).
    pub fn use_gate(&mut self, settings: &crate::gate::Settings) {
        let same = match &self.gate {
            Some(g) => g.settings() == settings,
            None => settings.max_concurrent == 0 && self.gate_problem.is_none(),
        };
        if same {
            return;
        }
        self.gate = None;
        self.gate_problem = None;
        match Gate::open(settings) {
            Ok(gate) => self.gate = gate,
            Err(why) => {
                self.warning = Some(why.clone());
                self.gate_problem = Some(why);
            }
        }
    }

    /// Whether computations go through an admission gate.
    #[must_use]
    pub fn is_gated(&self) -> bool {
        self.gate.is_some()
    }

    /// A slot of the gate, if there is one; waits in line for it.
    fn admit(&mut self) -> Result<Option<Slot>, HashError> {
        let Some(gate) = &self.gate else {
            return Ok(None);
        };
        match gate.enter() {
            Ok(slot) => Ok(Some(slot)),
            Err(Refused::Busy) => Err(HashError::Busy),
            Err(Refused::Broken(why)) => {
                // Not a reason to refuse a login: compute without the gate, say so, and try
                // to open it afresh next time.
                let settings = gate.settings().clone();
                self.gate = None;
                self.use_gate(&settings);
                self.warning = Some(why);
                Ok(None)
            }
        }
    }

    fn compute(
        &mut self,
        params: Params,
        password: &[u8],
        salt: &[u8],
        out: &mut [u8],
    ) -> Result<(), HashError> {
        params.validate().map_err(|_| HashError::BadParams)?;
        let slot = self.admit()?;
        let result = self.compute_admitted(params, password, salt, out);
        if slot.is_some() {
            if let Some(memory) = &mut self.crate_memory {
                memory.release();
            }
        }
        drop(slot);
        result
    }

    fn compute_admitted(
        &mut self,
        params: Params,
        password: &[u8],
        salt: &[u8],
        out: &mut [u8],
    ) -> Result<(), HashError> {
        if self_test().is_err() {
            return Err(HashError::SelfTest);
        }
        match Implementation::for_hash(params, salt.len()) {
            Implementation::Libsodium => {
                let salt: &[u8; sodium::SALT_LEN] =
                    salt.try_into().map_err(|_| HashError::Compute)?;
                sodium::argon2id(out, password, salt, params.iterations, params.memory_kib)
                    .map_err(|_| HashError::Compute)
            }
            Implementation::Argon2Crate => self.with_crate(params, password, salt, out),
        }
    }

    /// The `argon2` crate on our memory, wiped before returning.
    fn with_crate(
        &mut self,
        params: Params,
        password: &[u8],
        salt: &[u8],
        out: &mut [u8],
    ) -> Result<(), HashError> {
        let argon2 = argon2_crate(params, out.len(), None, &[])?;
        let blocks = argon2.params().block_count();
        if self.crate_memory.as_ref().is_none_or(|m| m.len() < blocks) {
            self.crate_memory = None;
            self.crate_memory = Some(HugeBlocks::new(blocks).ok_or(HashError::Compute)?);
        }
        let memory = self.crate_memory.as_mut().ok_or(HashError::Compute)?;
        let result = argon2.hash_password_into_with_memory(
            password,
            salt,
            out,
            memory.for_computation(blocks),
        );
        memory.wipe();
        result.map_err(|_| HashError::Compute)
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
        // 16 bytes, like the salt of every hash apppw writes: the same implementation runs.
        let result = self.compute(params, password, b"apppw-dummy-salt", &mut out[..]);
        self.dummy_busy = result == Err(HashError::Busy);
    }

    fn dummy_outcome(&self) -> Result<(), HashError> {
        if self.dummy_busy {
            Err(HashError::Busy)
        } else {
            Ok(())
        }
    }

    fn take_warning(&mut self) -> Option<String> {
        self.warning.take()
    }
}

/// The `argon2` crate's Argon2id v1.3 for `params`, with an optional secret and associated data.
fn argon2_crate<'k>(
    params: Params,
    output_len: usize,
    secret: Option<&'k [u8]>,
    data: &[u8],
) -> Result<Argon2<'k>, HashError> {
    let crate_params = argon2::ParamsBuilder::new()
        .m_cost(params.memory_kib)
        .t_cost(params.iterations)
        .p_cost(params.parallelism)
        .output_len(output_len)
        .data(argon2::AssociatedData::new(data).map_err(|_| HashError::BadParams)?)
        .build()
        .map_err(|_| HashError::BadParams)?;
    match secret {
        None => Ok(Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            crate_params,
        )),
        Some(secret) => {
            Argon2::new_with_secret(secret, Algorithm::Argon2id, Version::V0x13, crate_params)
                .map_err(|_| HashError::BadParams)
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests;
