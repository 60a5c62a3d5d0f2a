//! Argon2id from the system's libsodium (`crypto_pwhash_argon2id`, Debian's `libsodium23`).
//!
//! Linked dynamically (`-lsodium`), so the distribution's security updates reach it without a
//! rebuild; it is the Argon2 Dovecot itself uses for `{ARGON2ID}`. libsodium picks its
//! compression function at run time (AVX-512F, AVX2, SSSE3 or portable). Its `crypto_pwhash`
//! interface fixes what it computes: Argon2id version 1.3, one lane (`p = 1`), a 16-byte salt,
//! no secret and no associated data; other stored hashes go to the `argon2` crate (see
//! [`crate::hash`]).
//!
//! The binding is two functions written out here rather than a `-sys` crate: the crates that
//! exist either build their own copy of libsodium from source unless told otherwise by the
//! environment, or bind its whole API; this module needs `sodium_init` and one function, and
//! must link the system library.
//!
//! Memory: libsodium allocates its working memory itself for every call (an anonymous
//! `mmap` with `MAP_POPULATE`, 4 KiB pages) and unmaps it before returning. It does not clear
//! it first: `crypto_pwhash_argon2id` runs Argon2 with `ARGON2_DEFAULT_FLAGS` (0), so the
//! memory wipe of its `free_instance` is skipped (libsodium 1.0.18 and later); the kernel clears
//! the pages before it hands them to anyone again. docs/security.md says what follows.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_uchar, c_ulonglong};
use std::sync::OnceLock;

/// `crypto_pwhash_argon2id_ALG_ARGON2ID13`.
const ALG_ARGON2ID13: c_int = 2;
/// `crypto_pwhash_argon2id_SALTBYTES`: the only salt length `crypto_pwhash` takes.
pub const SALT_LEN: usize = 16;
/// `crypto_pwhash_argon2id_BYTES_MIN`.
const OUTPUT_MIN: usize = 16;

#[link(name = "sodium")]
unsafe extern "C" {
    fn sodium_init() -> c_int;
    fn sodium_version_string() -> *const c_char;
    fn crypto_pwhash_argon2id_saltbytes() -> usize;
    fn crypto_pwhash_argon2id(
        out: *mut c_uchar,
        outlen: c_ulonglong,
        passwd: *const c_char,
        passwdlen: c_ulonglong,
        salt: *const c_uchar,
        opslimit: c_ulonglong,
        memlimit: usize,
        alg: c_int,
    ) -> c_int;
}

/// Why libsodium cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unusable(pub String);

/// Initialises libsodium once per process (`sodium_init`, which also selects the CPU-specific
/// code) and checks that the library agrees on the salt length.
fn init() -> Result<(), Unusable> {
    static INIT: OnceLock<Result<(), Unusable>> = OnceLock::new();
    INIT.get_or_init(|| {
        // SAFETY: sodium_init takes no arguments, may be called more than once and from any
        // thread (it returns 1 when already initialised); -1 means failure.
        if unsafe { sodium_init() } < 0 {
            return Err(Unusable("sodium_init() failed".into()));
        }
        // SAFETY: a pure function of the library without arguments.
        let salt_len = unsafe { crypto_pwhash_argon2id_saltbytes() };
        if salt_len != SALT_LEN {
            return Err(Unusable(format!(
                "libsodium {} uses {salt_len}-byte Argon2id salts, not {SALT_LEN}",
                version()
            )));
        }
        Ok(())
    })
    .clone()
}

/// The version of the libsodium this process runs with, e.g. `1.0.18`.
#[must_use]
pub fn version() -> String {
    // SAFETY: sodium_version_string returns a pointer to a static NUL-terminated string of the
    // library (no initialisation needed); it is only read.
    let raw = unsafe { sodium_version_string() };
    if raw.is_null() {
        return "unknown".into();
    }
    // SAFETY: non-null, NUL-terminated and static, as above.
    unsafe { std::ffi::CStr::from_ptr(raw) }
        .to_string_lossy()
        .into_owned()
}

/// Argon2id v1.3 with one lane: `out` = the tag of `password` and `salt` with `iterations`
/// passes over `memory_kib` KiB.
pub fn argon2id(
    out: &mut [u8],
    password: &[u8],
    salt: &[u8; SALT_LEN],
    iterations: u32,
    memory_kib: u32,
) -> Result<(), Unusable> {
    init()?;
    let memlimit = usize::try_from(memory_kib)
        .ok()
        .and_then(|m| m.checked_mul(1024))
        .ok_or_else(|| Unusable("memory_kib out of range".into()))?;
    if out.len() < OUTPUT_MIN {
        return Err(Unusable("output shorter than 16 bytes".into()));
    }
    // SAFETY: `out` is writable for `out.len()` bytes, `password` readable for
    // `password.len()` and `salt` for exactly crypto_pwhash_argon2id_SALTBYTES (checked in
    // `init`) bytes; all three outlive the call, which keeps no pointer to them. The lengths
    // are those of the slices (usize fits in unsigned long long on every Linux target).
    // libsodium checks the limits itself and returns -1 for values out of range.
    let rc = unsafe {
        crypto_pwhash_argon2id(
            out.as_mut_ptr(),
            out.len() as c_ulonglong,
            password.as_ptr().cast::<c_char>(),
            password.len() as c_ulonglong,
            salt.as_ptr(),
            c_ulonglong::from(iterations),
            memlimit,
            ALG_ARGON2ID13,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(Unusable(format!(
            "crypto_pwhash_argon2id failed: {}",
            std::io::Error::last_os_error()
        )))
    }
}
