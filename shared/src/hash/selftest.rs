//! The known-answer test of both Argon2id implementations, run once per process before its
//! first computation: if it fails, every computation fails and the front-ends report a
//! configuration error, never "accepted".

use super::{Implementation, OUTPUT_LEN, Params, argon2_crate, constant_time_eq};
use crate::sodium;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use zeroize::Zeroizing;

/// A known answer: Argon2id v1.3 of these inputs is `tag`.
pub(super) struct Vector {
    pub(super) name: &'static str,
    pub(super) implementation: Implementation,
    pub(super) params: Params,
    pub(super) password: &'static [u8],
    pub(super) salt: &'static [u8],
    pub(super) secret: &'static [u8],
    pub(super) data: &'static [u8],
    pub(super) tag: [u8; OUTPUT_LEN],
}

/// The known-answer tests: RFC 9106's vector through the crate, and one through libsodium
/// (with the production parameters, or small ones in a one-attempt process; see
/// [`self_test_for_one_attempt`]).
pub(super) const VECTORS: [Vector; 3] = [
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
pub(super) fn run_vector(v: &Vector) -> Result<[u8; OUTPUT_LEN], String> {
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
pub(super) fn run_vectors(vectors: &[Vector], which: &[usize]) -> Result<(), String> {
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
