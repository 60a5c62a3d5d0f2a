//! The only places this program needs raw system interfaces: taking over file descriptor 3
//! (where the checkpassword protocol hands over the credentials), calling libpam for the normal
//! password on campus (the `pamauth` crate), and the deadline's immediate exit. Everything else
//! in the crate is safe Rust.
#![allow(unsafe_code)]

use libc::c_int;
use std::fs::File;
use std::os::fd::FromRawFd;
use std::sync::atomic::{AtomicBool, Ordering};

pub use pamauth::{PamOutcome, check_password};

/// The descriptor the checkpassword protocol writes `user\0password\0...` to.
const INPUT_FD: c_int = 3;

static INPUT_TAKEN: AtomicBool = AtomicBool::new(false);

/// Takes ownership of file descriptor 3. `None` if it is not open or was already taken.
pub fn take_input_fd() -> Option<File> {
    if INPUT_TAKEN.swap(true, Ordering::SeqCst) {
        return None;
    }
    // SAFETY: F_GETFD only reads the descriptor flags; it touches no memory of ours.
    if unsafe { libc::fcntl(INPUT_FD, libc::F_GETFD) } == -1 {
        return None;
    }
    // SAFETY: fd 3 is open (checked above) and belongs to us by the checkpassword protocol:
    // the caller set it up for this program alone. The flag above makes this the only
    // `File` ever made from it, so it is closed exactly once.
    Some(unsafe { File::from_raw_fd(INPUT_FD) })
}

/// Writes `message` to stderr with one `write(2)`: no lock of `std::io::stderr` is taken (the
/// stuck main thread may hold it). Best effort.
pub fn write_stderr(message: &str) {
    // SAFETY: the pointer and length describe `message`, which outlives the call; fd 2 is
    // at worst closed, and then write fails harmlessly.
    let _ = unsafe { libc::write(2, message.as_ptr().cast(), message.len()) };
}

/// Ends the process now with `code`, running no exit handlers, destructors or stdio flushes
/// (`_exit(2)`): safe to call from the deadline thread while the main thread holds locks.
pub fn exit_now(code: c_int) -> ! {
    // SAFETY: _exit has no preconditions and does not return.
    unsafe { libc::_exit(code) }
}
