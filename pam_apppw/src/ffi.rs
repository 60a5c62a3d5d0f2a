//! The one libpam call `pam-bindings` does not wrap: `pam_get_authtok(3)`.
//!
//! It gives the module the usual password semantics for free: reuse `PAM_AUTHTOK` if an
//! earlier module set it, otherwise prompt once through the application's conversation
//! (`PAM_PROMPT_ECHO_OFF`, "Password: ") and store the answer as `PAM_AUTHTOK`, so that the
//! next module (`pam_unix.so try_first_pass`) does not ask again.
#![allow(unsafe_code)]

use pam::constants::PamResultCode;
use pam::module::PamHandle;
use std::ffi::{CStr, c_char, c_int};
use zeroize::Zeroizing;

/// `PAM_AUTHTOK` from `<security/_pam_types.h>`.
const PAM_AUTHTOK: c_int = 6;

#[link(name = "pam")]
unsafe extern "C" {
    fn pam_get_authtok(
        pamh: *mut PamHandle,
        item: c_int,
        authtok: *mut *const c_char,
        prompt: *const c_char,
    ) -> c_int;
}

/// The current password: `PAM_AUTHTOK`, or the answer to one prompt (then stored there).
/// The copy is wiped when dropped.
pub fn get_authtok(pamh: &mut PamHandle) -> Result<Zeroizing<Vec<u8>>, PamResultCode> {
    let mut token: *const c_char = std::ptr::null();
    // SAFETY: `pamh` is the live handle libpam passed to this hook and stays valid for the
    // whole call; `token` is a valid out-pointer; a null prompt selects libpam's own
    // ("Password: ", translated).
    let rc = unsafe { pam_get_authtok(pamh, PAM_AUTHTOK, &raw mut token, std::ptr::null()) };
    if rc != 0 {
        return Err(PamResultCode::try_from(rc).unwrap_or(PamResultCode::PAM_SYSTEM_ERR));
    }
    if token.is_null() {
        return Err(PamResultCode::PAM_AUTHTOK_RECOVERY_ERR);
    }
    // SAFETY: on success libpam returns the NUL-terminated `PAM_AUTHTOK` item, owned by the
    // handle and unchanged until someone sets the item again; it is copied before returning.
    let bytes = unsafe { CStr::from_ptr(token) }.to_bytes();
    Ok(Zeroizing::new(bytes.to_vec()))
}
