//! Runs a program the way Dovecot runs a checkpassword backend: input on fd 3, a small
//! environment, no PATH, reply program `/bin/true`.
#![allow(unsafe_code)] // posix_spawn with fd 3 mapped, waitpid

use crate::Res;
use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

/// One finished run.
pub struct Run {
    /// Exit status (`-1` for a signal).
    pub code: i32,
    /// Wall time from spawn to reaped exit, in milliseconds.
    pub ms: f64,
    /// stderr, when captured.
    pub stderr: String,
}

/// The fd 3 payload Dovecot 2.3 writes: `user\0password\0` and an empty timestamp field.
pub fn fd3_input(user: &str, password: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(user.len() + password.len() + 3);
    v.extend_from_slice(user.as_bytes());
    v.push(0);
    v.extend_from_slice(password);
    v.push(0);
    v.push(0);
    v
}

/// Spawns `program args...` with `input` readable on fd 3 and exactly `env`, waits for it.
///
/// Uses `posix_spawn` (a vfork-style clone in glibc), so the cost of starting the child does not
/// depend on the size of this process: it is close to what Dovecot's small auth process pays.
/// With `capture`, stderr goes through a pipe (for diagnostics; not used for timed runs).
pub fn run_fd3(
    program: &Path,
    args: &[&std::ffi::OsStr],
    input: &[u8],
    env: &[(&str, &str)],
    capture: bool,
) -> Res<Run> {
    let (reader, writer) = pipe()?;
    std::fs::File::from(writer).write_all(input)?; // < 512 bytes: fits in the pipe buffer
    // dup2(3, 3) would keep FD_CLOEXEC: make sure the source is not fd 3 already.
    let reader = if reader.as_raw_fd() == 3 {
        reader.try_clone()?
    } else {
        reader
    };
    let (err_read, err_write) = if capture {
        let (r, w) = pipe()?;
        (Some(std::fs::File::from(r)), Some(w))
    } else {
        (None, None)
    };
    let devnull = std::fs::File::options()
        .read(true)
        .write(true)
        .open("/dev/null")?;

    let c_prog = CString::new(program.as_os_str().as_bytes())?;
    let mut c_args = vec![c_prog.clone()];
    for a in args {
        c_args.push(CString::new(a.as_bytes())?);
    }
    let c_env: Vec<CString> = env
        .iter()
        .map(|(k, v)| CString::new(format!("{k}={v}")))
        .collect::<Result<_, _>>()?;
    let mut argv: Vec<*mut libc::c_char> = c_args.iter().map(|c| c.as_ptr().cast_mut()).collect();
    argv.push(std::ptr::null_mut());
    let mut envp: Vec<*mut libc::c_char> = c_env.iter().map(|c| c.as_ptr().cast_mut()).collect();
    envp.push(std::ptr::null_mut());

    let null_fd = devnull.as_raw_fd();
    let err_fd = err_write.as_ref().map_or(null_fd, AsRawFd::as_raw_fd);
    let mut pid: libc::pid_t = 0;
    let start;
    // SAFETY: the file-actions object is initialised before use and destroyed after; every
    // pointer passed (argv, envp, path) points to NUL-terminated strings owned by this frame,
    // and the argv/envp arrays are NULL-terminated. The fds named are open in this process.
    let rc = unsafe {
        let mut fa: libc::posix_spawn_file_actions_t = std::mem::zeroed();
        if libc::posix_spawn_file_actions_init(&mut fa) != 0 {
            return Err("posix_spawn_file_actions_init failed".into());
        }
        let setup = [
            libc::posix_spawn_file_actions_adddup2(&mut fa, null_fd, 0),
            libc::posix_spawn_file_actions_adddup2(&mut fa, null_fd, 1),
            libc::posix_spawn_file_actions_adddup2(&mut fa, err_fd, 2),
            libc::posix_spawn_file_actions_adddup2(&mut fa, reader.as_raw_fd(), 3),
        ];
        start = Instant::now();
        let rc = if setup.iter().all(|&r| r == 0) {
            libc::posix_spawn(
                &mut pid,
                c_prog.as_ptr(),
                &fa,
                std::ptr::null(),
                argv.as_ptr(),
                envp.as_ptr(),
            )
        } else {
            libc::EINVAL
        };
        libc::posix_spawn_file_actions_destroy(&mut fa);
        rc
    };
    if rc != 0 {
        return Err(format!(
            "posix_spawn {}: {}",
            program.display(),
            std::io::Error::from_raw_os_error(rc)
        )
        .into());
    }
    drop(err_write);
    let mut stderr = String::new();
    if let Some(mut r) = err_read {
        r.read_to_string(&mut stderr)?;
    }
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: waiting for our own child; `status` is a valid out pointer.
        let w = unsafe { libc::waitpid(pid, &mut status, 0) };
        if w == pid {
            break;
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(format!("waitpid: {e}").into());
        }
    }
    let ms = start.elapsed().as_secs_f64() * 1e3;
    drop(reader);
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    Ok(Run { code, ms, stderr })
}

/// A close-on-exec pipe: (read end, write end).
fn pipe() -> Res<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a valid array of two ints; on success both are new fds we own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    // SAFETY: freshly created, owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Wall time of a plain command (stdout/stderr discarded), in milliseconds, and its status.
pub fn time_command(cmd: &mut Command) -> Res<(i32, f64)> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let start = Instant::now();
    let status = cmd.status()?;
    Ok((
        status.code().unwrap_or(-1),
        start.elapsed().as_secs_f64() * 1e3,
    ))
}
