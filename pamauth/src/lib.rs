//! A minimal libpam client: checks a user's normal password with a PAM service
//! (`pam_authenticate`, then `pam_acct_mgmt`), with `PAM_RHOST` set to the client address and a
//! conversation that answers hidden prompts with the password.
//!
//! Used by `apppw-checkpassword` (the normal password on campus) and by `apppw-web` (signing in
//! to the self-service page). The FFI is the only unsafe code of both programs; every block
//! carries a `SAFETY:` comment.
#![allow(unsafe_code)]

use libc::{c_char, c_int, c_void};
use std::ffi::{CStr, CString};
use zeroize::{Zeroize, Zeroizing};

// Linux-PAM constants (<security/_pam_types.h>).
const PAM_SUCCESS: c_int = 0;
const PAM_SYSTEM_ERR: c_int = 4;
const PAM_BUF_ERR: c_int = 5;
const PAM_AUTHINFO_UNAVAIL: c_int = 9;
const PAM_CONV_ERR: c_int = 19;
const PAM_ABORT: c_int = 26;
const PAM_USER: c_int = 2;
const PAM_RHOST: c_int = 4;
const PAM_SILENT: c_int = 0x8000;
const PAM_DISALLOW_NULL_AUTHTOK: c_int = 0x0001;
const PAM_PROMPT_ECHO_OFF: c_int = 1;
const PAM_PROMPT_ECHO_ON: c_int = 2;
const PAM_ERROR_MSG: c_int = 3;
const PAM_TEXT_INFO: c_int = 4;
const PAM_MAX_NUM_MSG: c_int = 32;

#[repr(C)]
struct PamHandle {
    _opaque: [u8; 0],
}

#[repr(C)]
struct PamMessage {
    msg_style: c_int,
    msg: *const c_char,
}

#[repr(C)]
struct PamResponse {
    resp: *mut c_char,
    resp_retcode: c_int,
}

type ConvFn = unsafe extern "C" fn(
    c_int,
    *mut *const PamMessage,
    *mut *mut PamResponse,
    *mut c_void,
) -> c_int;

#[repr(C)]
struct PamConv {
    conv: ConvFn,
    appdata_ptr: *mut c_void,
}

#[link(name = "pam")]
unsafe extern "C" {
    fn pam_start(
        service_name: *const c_char,
        user: *const c_char,
        pam_conversation: *const PamConv,
        pamh: *mut *mut PamHandle,
    ) -> c_int;
    fn pam_end(pamh: *mut PamHandle, pam_status: c_int) -> c_int;
    fn pam_set_item(pamh: *mut PamHandle, item_type: c_int, item: *const c_void) -> c_int;
    fn pam_get_item(pamh: *const PamHandle, item_type: c_int, item: *mut *const c_void) -> c_int;
    fn pam_authenticate(pamh: *mut PamHandle, flags: c_int) -> c_int;
    fn pam_acct_mgmt(pamh: *mut PamHandle, flags: c_int) -> c_int;
    fn pam_strerror(pamh: *mut PamHandle, errnum: c_int) -> *const c_char;
}

/// What the PAM service said about the normal password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PamOutcome {
    /// `pam_authenticate` and `pam_acct_mgmt` succeeded.
    Accepted,
    /// Wrong password, unknown user, locked or expired account, ...: `.0` is PAM's message.
    Refused(String),
    /// PAM could not decide (service broken, directory unreachable): `.0` says why.
    Unavailable(String),
}

/// The conversation's answers. Lives on the caller's stack until `pam_end` has returned.
struct Answers {
    user: CString,
    /// NUL-terminated.
    password: Zeroizing<Vec<u8>>,
}

/// Frees the first `n` responses (wiping them first: they may hold the password) and the array.
///
/// # Safety
/// `replies` must come from `calloc` with room for at least `n` responses, each `resp` either
/// NULL or a NUL-terminated string from `malloc`.
unsafe fn free_replies(replies: *mut PamResponse, n: usize) {
    for i in 0..n {
        // SAFETY: i < n, within the allocation (caller's contract).
        let r = unsafe { &mut *replies.add(i) };
        if !r.resp.is_null() {
            // SAFETY: resp is a NUL-terminated malloc'd string (caller's contract).
            let len = unsafe { libc::strlen(r.resp) };
            // SAFETY: `len` bytes at resp are ours to write; then freed exactly once.
            unsafe {
                std::slice::from_raw_parts_mut(r.resp.cast::<u8>(), len).zeroize();
                libc::free(r.resp.cast());
            }
            r.resp = std::ptr::null_mut();
        }
    }
    // SAFETY: the array came from calloc (caller's contract) and is freed once.
    unsafe { libc::free(replies.cast()) };
}

/// Copies `bytes` (which end in NUL) into memory PAM may `free`.
fn c_copy(bytes: &[u8]) -> *mut c_char {
    // SAFETY: plain allocation; the result is checked for NULL before use.
    let p = unsafe { libc::malloc(bytes.len()) }.cast::<u8>();
    if !p.is_null() {
        // SAFETY: p has room for bytes.len() bytes and does not overlap `bytes`.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len()) };
    }
    p.cast()
}

/// The PAM conversation: the password for hidden prompts, the user name for visible ones,
/// messages ignored. The response memory is handed to PAM, which frees it.
unsafe extern "C" fn converse(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata: *mut c_void,
) -> c_int {
    if num_msg <= 0 || num_msg > PAM_MAX_NUM_MSG || msg.is_null() || resp.is_null() {
        return PAM_CONV_ERR;
    }
    if appdata.is_null() {
        return PAM_CONV_ERR;
    }
    let n = usize::try_from(num_msg).unwrap_or(0);
    // SAFETY: appdata_ptr is the `Answers` that `check_password` passed to pam_start; it
    // outlives the PAM transaction and is only read here.
    let answers = unsafe { &*appdata.cast::<Answers>() };
    // SAFETY: plain zeroed allocation of n responses; checked for NULL.
    let replies =
        unsafe { libc::calloc(n, std::mem::size_of::<PamResponse>()) }.cast::<PamResponse>();
    if replies.is_null() {
        return PAM_BUF_ERR;
    }
    for i in 0..n {
        // SAFETY: Linux-PAM passes an array of `num_msg` message pointers.
        let m = unsafe { *msg.add(i) };
        if m.is_null() {
            // SAFETY: replies is our calloc'd array; entries 0..i are filled or NULL.
            unsafe { free_replies(replies, i) };
            return PAM_CONV_ERR;
        }
        // SAFETY: m points to a valid pam_message for the duration of this call.
        let style = unsafe { (*m).msg_style };
        let answer: Option<&[u8]> = match style {
            PAM_PROMPT_ECHO_OFF => Some(&answers.password),
            PAM_PROMPT_ECHO_ON => Some(answers.user.as_bytes_with_nul()),
            PAM_ERROR_MSG | PAM_TEXT_INFO => None,
            _ => {
                // SAFETY: as above.
                unsafe { free_replies(replies, i) };
                return PAM_CONV_ERR;
            }
        };
        if let Some(bytes) = answer {
            let copy = c_copy(bytes);
            if copy.is_null() {
                // SAFETY: as above.
                unsafe { free_replies(replies, i) };
                return PAM_BUF_ERR;
            }
            // SAFETY: i < n, within the calloc'd array.
            unsafe { (*replies.add(i)).resp = copy };
        }
    }
    // SAFETY: resp is a valid out-pointer supplied by PAM; PAM now owns the replies.
    unsafe { *resp = replies };
    PAM_SUCCESS
}

/// An open PAM transaction, ended on drop.
struct Transaction {
    handle: *mut PamHandle,
    status: c_int,
}

impl Transaction {
    fn message(&self, code: c_int) -> String {
        // SAFETY: handle is live; pam_strerror returns a static string (or NULL).
        let p = unsafe { pam_strerror(self.handle, code) };
        if p.is_null() {
            return format!("PAM error {code}");
        }
        // SAFETY: non-NULL results of pam_strerror are NUL-terminated static strings.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}

impl Transaction {
    /// `PAM_USER` as UTF-8 text, if set.
    fn user(&self) -> Option<String> {
        let mut item: *const c_void = std::ptr::null();
        // SAFETY: live handle; PAM stores a pointer to its own copy of the user name in
        // `item` (or NULL), valid until the item is changed or the handle ended.
        let rc = unsafe { pam_get_item(self.handle, PAM_USER, &mut item) };
        if rc != PAM_SUCCESS || item.is_null() {
            return None;
        }
        // SAFETY: PAM_USER is a NUL-terminated string owned by the live handle; copied here
        // before anything could change it.
        let name = unsafe { CStr::from_ptr(item.cast::<c_char>()) };
        name.to_str().ok().map(str::to_owned)
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        // SAFETY: handle came from a successful pam_start and is ended exactly once.
        unsafe { pam_end(self.handle, self.status) };
    }
}

/// Checks `user`'s normal password with PAM service `service` (auth, then account), with
/// `PAM_RHOST` set to the client address.
pub fn check_password(
    service: &str,
    user: &str,
    password: &[u8],
    rhost: Option<&str>,
) -> PamOutcome {
    authenticate(service, user, password, rhost).0
}

/// Like [`check_password`], and on success also the user name PAM ends with (`PAM_USER`
/// after `pam_authenticate` and `pam_acct_mgmt`): modules may change it (e.g. map
/// `Alice@EXAMPLE.ORG` to `alice`), and that name, not the typed one, is who signed in.
/// `None` with `Accepted` if PAM has no user name that is UTF-8 text (the caller refuses).
pub fn authenticate(
    service: &str,
    user: &str,
    password: &[u8],
    rhost: Option<&str>,
) -> (PamOutcome, Option<String>) {
    let Ok(c_service) = CString::new(service) else {
        return (
            PamOutcome::Unavailable("PAM service name contains NUL".into()),
            None,
        );
    };
    let (Ok(c_user), false) = (CString::new(user), password.contains(&0)) else {
        return (
            PamOutcome::Refused("NUL in user name or password".into()),
            None,
        );
    };
    let mut secret = Zeroizing::new(Vec::with_capacity(password.len() + 1));
    secret.extend_from_slice(password);
    secret.push(0);
    let answers = Answers {
        user: c_user,
        password: secret,
    };
    let conv = PamConv {
        conv: converse,
        appdata_ptr: std::ptr::from_ref(&answers).cast_mut().cast(),
    };
    let mut handle: *mut PamHandle = std::ptr::null_mut();
    // SAFETY: service and user are NUL-terminated and live for the call; Linux-PAM copies
    // them and the conv struct. `answers` outlives the transaction (it is dropped after
    // `tx` below).
    let rc = unsafe {
        pam_start(
            c_service.as_ptr(),
            answers.user.as_ptr(),
            &conv,
            &mut handle,
        )
    };
    if rc != PAM_SUCCESS || handle.is_null() {
        return (
            PamOutcome::Unavailable(format!("pam_start({service}) failed with code {rc}")),
            None,
        );
    }
    let mut tx = Transaction {
        handle,
        status: PAM_SUCCESS,
    };

    if let Some(rhost) = rhost.and_then(|r| CString::new(r).ok()) {
        // SAFETY: live handle; Linux-PAM copies the string.
        let rc = unsafe { pam_set_item(tx.handle, PAM_RHOST, rhost.as_ptr().cast()) };
        if rc != PAM_SUCCESS {
            tx.status = rc;
            return (
                PamOutcome::Unavailable(format!("pam_set_item(PAM_RHOST): {}", tx.message(rc))),
                None,
            );
        }
    }
    // SAFETY: live handle; the conversation reads `answers`, which is alive.
    let mut rc = unsafe { pam_authenticate(tx.handle, PAM_SILENT | PAM_DISALLOW_NULL_AUTHTOK) };
    if rc == PAM_SUCCESS {
        // SAFETY: as above.
        rc = unsafe { pam_acct_mgmt(tx.handle, PAM_SILENT) };
    }
    tx.status = rc;
    let final_user = if rc == PAM_SUCCESS { tx.user() } else { None };
    let outcome = match rc {
        PAM_SUCCESS => PamOutcome::Accepted,
        PAM_AUTHINFO_UNAVAIL | PAM_SYSTEM_ERR | PAM_BUF_ERR | PAM_ABORT | PAM_CONV_ERR => {
            PamOutcome::Unavailable(tx.message(rc))
        }
        _ => PamOutcome::Refused(tx.message(rc)),
    };
    drop(tx);
    drop(answers);
    (outcome, final_user)
}
