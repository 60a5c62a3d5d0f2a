//! Argon2id hashing of app passwords, stored as PHC strings
//! (`$argon2id$v=19$m=19456,t=2,p=1$SALT$HASH`).
//!
//! apppw has no Argon2 code of its own. Two vetted implementations compute it:
//!
//! - **libsodium from the system** ([`crate::sodium`]) for hashes with one lane and a 16-byte
//!   salt: every hash apppw writes with the default parameters. Debian's security updates reach
//!   it, and it is the fastest candidate measured (docs/PERFORMANCE.md).
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
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use zeroize::Zeroizing;

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

/// A known answer: Argon2id v1.3 of these inputs is `tag`.
struct Vector {
    name: &'static str,
    implementation: Implementation,
    params: Params,
    password: &'static [u8],
    salt: &'static [u8],
    secret: &'static [u8],
    data: &'static [u8],
    tag: [u8; OUTPUT_LEN],
}

/// The known-answer tests: RFC 9106's vector through the crate, and one through libsodium
/// (with the production parameters, or small ones in a one-attempt process; see
/// [`self_test_for_one_attempt`]).
const VECTORS: [Vector; 3] = [
    // RFC 9106 section 5.3 (with its secret and associated data, so only the crate can run it;
    // four lanes, as the crate runs them in production).
    Vector {
        name: "RFC 9106 5.3 (argon2 crate)",
        implementation: Implementation::Argon2Crate,
        params: Params {
            memory_kib: 32,
            iterations: 3,
            parallelism: 4,
        },
        password: &[1; 32],
        salt: &[2; 16],
        secret: &[3; 8],
        data: &[4; 12],
        tag: [
            0x0d, 0x64, 0x0d, 0xf5, 0x8d, 0x78, 0x76, 0x6c, 0x08, 0xc0, 0x37, 0xa3, 0x4a, 0x8b,
            0x53, 0xc9, 0xd0, 0x1e, 0xf0, 0x45, 0x2d, 0x75, 0xb6, 0x5e, 0xb5, 0x25, 0x20, 0xe9,
            0x6b, 0x01, 0xe6, 0x59,
        ],
    },
    // The production parameters (m=19456, t=2, p=1) through libsodium. The tag was computed by
    // the reference C implementation (libargon2, `argon2id_hash_raw`) and by libsodium, which
    // agreed; the unit tests check the crate gives it too.
    Vector {
        name: "m=19456,t=2,p=1 (libsodium)",
        implementation: Implementation::Libsodium,
        params: Params {
            memory_kib: 19456,
            iterations: 2,
            parallelism: 1,
        },
        password: b"apppw known-answer test",
        salt: b"apppw-kat-salt16",
        secret: &[],
        data: &[],
        tag: [
            0x30, 0xb6, 0x45, 0x3c, 0xcc, 0x19, 0xcc, 0x52, 0x37, 0xcb, 0x4f, 0x62, 0x64, 0x93,
            0xf3, 0xba, 0x49, 0x33, 0x19, 0x37, 0x7e, 0xff, 0x84, 0xea, 0x5f, 0x03, 0x5a, 0xfc,
            0x5b, 0xfa, 0x38, 0x01,
        ],
    },
    // The same inputs with m=1024 KiB through the same libsodium function, for processes that
    // make one attempt (checkpassword): the smallest memory at which every part of the
    // production computation still runs (two passes, the second XORing into the first; four
    // slices per pass; two address blocks per data-independent segment; data-dependent
    // references across the whole lane), at a twentieth of the work. Tag computed by libargon2
    // and by libsodium, which agreed; the unit tests check the crate gives it too.
    Vector {
        name: "m=1024,t=2,p=1 (libsodium)",
        implementation: Implementation::Libsodium,
        params: Params {
            memory_kib: 1024,
            iterations: 2,
            parallelism: 1,
        },
        password: b"apppw known-answer test",
        salt: b"apppw-kat-salt16",
        secret: &[],
        data: &[],
        tag: [
            0xd8, 0x06, 0xeb, 0xa9, 0xb3, 0xbb, 0x73, 0x23, 0x00, 0xb9, 0x0a, 0xef, 0xdf, 0x6e,
            0xfb, 0x49, 0x2e, 0xf8, 0x79, 0x4c, 0xed, 0x73, 0xdf, 0x71, 0x1b, 0xc3, 0xe5, 0xe9,
            0x66, 0xa8, 0x3b, 0xb9,
        ],
    },
];

/// Which vectors a process checks: RFC 9106 (crate) plus the production-parameter libsodium
/// vector, or in a one-attempt process the small libsodium one.
fn profile() -> [usize; 2] {
    if ONE_ATTEMPT.load(Ordering::Relaxed) {
        [0, 2]
    } else {
        [0, 1]
    }
}

/// Set by [`self_test_for_one_attempt`].
static ONE_ATTEMPT: AtomicBool = AtomicBool::new(false);

/// Makes this process's known-answer test use the small libsodium vector (m=1024, t=2)
/// instead of the production-parameter one. For a process that makes one login attempt and
/// exits (`apppw-checkpassword`): there the production vector would double the attempt's
/// Argon2 work, against the rule that an attempt costs at most one verification. Long-lived
/// processes (the PAM module in an auth worker, the web page, the CLI) keep the full vector,
/// paid once. Returns false if the test has already run (then nothing changes).
pub fn self_test_for_one_attempt() -> bool {
    ONE_ATTEMPT.store(true, Ordering::Relaxed);
    SELF_TEST.get().is_none()
}

/// Computes one vector with its implementation (not through [`Argon2Kdf`], which waits for
/// this test).
fn run_vector(v: &Vector) -> Result<[u8; OUTPUT_LEN], String> {
    let mut out = [0u8; OUTPUT_LEN];
    match v.implementation {
        Implementation::Libsodium => {
            let salt: &[u8; sodium::SALT_LEN] = v
                .salt
                .try_into()
                .map_err(|_| "the libsodium vector needs a 16-byte salt".to_owned())?;
            sodium::argon2id(
                &mut out,
                v.password,
                salt,
                v.params.iterations,
                v.params.memory_kib,
            )
            .map_err(|e| e.0)?;
        }
        Implementation::Argon2Crate => {
            let secret = (!v.secret.is_empty()).then_some(v.secret);
            let argon2 =
                argon2_crate(v.params, OUTPUT_LEN, secret, v.data).map_err(|e| e.to_string())?;
            let mut memory =
                Zeroizing::new(vec![argon2::Block::new(); argon2.params().block_count()]);
            argon2
                .hash_password_into_with_memory(v.password, v.salt, &mut out, memory.as_mut_slice())
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(out)
}

/// Runs the vectors at `which`; the first mismatch or error, in words.
fn run_vectors(vectors: &[Vector], which: &[usize]) -> Result<(), String> {
    for v in which.iter().filter_map(|&i| vectors.get(i)) {
        let got = run_vector(v).map_err(|e| format!("{}: {e}", v.name))?;
        if !constant_time_eq(&got, &v.tag) {
            return Err(format!("{}: wrong result", v.name));
        }
    }
    Ok(())
}

/// The outcome of this process's known-answer test.
static SELF_TEST: OnceLock<Result<(), String>> = OnceLock::new();

/// The known-answer test of both implementations, run once per process (by the first
/// computation, or by a call here). An error says which vector failed and how.
pub fn self_test() -> Result<(), String> {
    #[cfg(any(test, feature = "self-test-seam"))]
    if let Some(result) = seam::result() {
        return result;
    }
    SELF_TEST
        .get_or_init(|| {
            run_vectors(&VECTORS, &profile()).map_err(|e| {
                format!(
                    "Argon2id self-test failed ({e}; libsodium {}): the Argon2 implementation \
                     gives wrong results, so no password can be checked",
                    sodium::version()
                )
            })
        })
        .clone()
}

/// Why this process's Argon2 self-test failed, if it ran and failed. Front-ends check it after
/// a verification: the attempt was not accepted, and it is a configuration error (PAM:
/// `PAM_SERVICE_ERR`, checkpassword: exit 111).
#[must_use]
pub fn self_test_failure() -> Option<String> {
    #[cfg(any(test, feature = "self-test-seam"))]
    if let Some(result) = seam::result() {
        return result.err();
    }
    SELF_TEST.get().and_then(|r| r.clone().err())
}

/// A test seam (feature `self-test-seam`, never in a release build): in the calling thread
/// only, the self-test expects a wrong tag, so its failure path can be tested for real.
#[cfg(any(test, feature = "self-test-seam"))]
pub mod seam {
    use std::cell::RefCell;

    thread_local! {
        static BROKEN: RefCell<Option<Result<(), String>>> = const { RefCell::new(None) };
    }

    /// From now on, in this thread, the known-answer test runs with the last byte of the
    /// libsodium vectors' expected tags flipped (and so fails).
    pub fn break_self_test_in_this_thread() {
        let mut vectors = super::VECTORS;
        vectors[1].tag[super::OUTPUT_LEN - 1] ^= 1;
        vectors[2].tag[super::OUTPUT_LEN - 1] ^= 1;
        let result = super::run_vectors(&vectors, &super::profile())
            .map_err(|e| format!("Argon2id self-test failed ({e}) [test seam]"));
        BROKEN.with(|b| *b.borrow_mut() = Some(result));
    }

    pub(super) fn result() -> Option<Result<(), String>> {
        BROKEN.with(|b| b.borrow().clone())
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
