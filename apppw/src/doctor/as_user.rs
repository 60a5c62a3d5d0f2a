//! Tests database access as another user, for real: a forked child takes that user's uid,
//! primary group and the extra groups Dovecot would give it, then loads the config and opens
//! the database exactly as `apppw-checkpassword` does. Mode bits, ACLs, group membership,
//! `-wal`/`-shm` files and PostgreSQL peer authentication all answer as they would for
//! Dovecot; nothing has to be re-implemented from `stat` results.
//!
//! The one module of the CLI with unsafe code (libc's fork, setgroups, setgid, setuid and the
//! user database); every block says why it is sound.
#![allow(unsafe_code)]

use apppw::config::Config;
use apppw::store::{CredentialSource, Store, StoreError};
use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;

/// A child that has not answered after this long is killed (a PostgreSQL server that does
/// not answer is bounded by `connect_timeout` already).
const PROBE_SECONDS: u32 = 20;

/// Who to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    /// User name.
    pub user: String,
    /// Its uid.
    pub uid: u32,
    /// The primary group.
    pub gid: u32,
    /// Every group of the process (the primary one included), as Dovecot sets them.
    pub groups: Vec<u32>,
    /// Their names, for messages.
    pub group_names: Vec<String>,
    /// What runs as this user, for messages (e.g. "Dovecot's auth process").
    pub role: String,
}

impl Identity {
    /// `user dovecot (groups dovecot, apppw), which runs apppw-checkpassword for Dovecot`.
    pub(crate) fn describe(&self) -> String {
        format!(
            "user {} (groups {}), {}",
            self.user,
            self.group_names.join(", "),
            self.role
        )
    }
}

/// What the child found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Probe {
    /// Config and database open; `can_record`: the database is writable too.
    Usable {
        /// Last use, failure counters and the report can be written.
        can_record: bool,
    },
    /// The config could not be loaded.
    Config(String),
    /// The database could not be opened or read.
    Store(String),
    /// The test itself failed (fork, setuid, timeout).
    Failed(String),
    /// The database is missing or of another schema version, for every user alike.
    NotForThisUser,
}

/// Is this process root (needed to become another user)?
pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The uid and primary gid of `user` from the system's user database (NSS).
pub(crate) fn user_ids(user: &str) -> Option<(u32, u32)> {
    let name = CString::new(user).ok()?;
    let mut buf = vec![0u8; 16 * 1024];
    // SAFETY: a zeroed `passwd` is a valid value of this plain C struct.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; `buf` outlives it, and getpwnam_r writes
    // the strings of `pwd` into `buf` only, at most `buf.len()` bytes.
    let rc = unsafe {
        libc::getpwnam_r(
            name.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        )
    };
    (rc == 0 && !result.is_null()).then_some((pwd.pw_uid, pwd.pw_gid))
}

/// The gid of group `name`, or the number itself.
pub(crate) fn group_id(name: &str) -> Option<u32> {
    if let Ok(gid) = name.parse() {
        return Some(gid);
    }
    let cname = CString::new(name).ok()?;
    let mut buf = vec![0u8; 64 * 1024];
    // SAFETY: a zeroed `group` is a valid value of this plain C struct.
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::group = std::ptr::null_mut();
    // SAFETY: as in `user_ids`: valid pointers, `buf` outlives the call and bounds its writes.
    let rc = unsafe {
        libc::getgrnam_r(
            cname.as_ptr(),
            &mut grp,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        )
    };
    (rc == 0 && !result.is_null()).then_some(grp.gr_gid)
}

/// The name of group `gid`, or the number as text.
pub(crate) fn group_name(gid: u32) -> String {
    let mut buf = vec![0u8; 64 * 1024];
    // SAFETY: a zeroed `group` is a valid value of this plain C struct.
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::group = std::ptr::null_mut();
    // SAFETY: as in `user_ids`.
    let rc = unsafe {
        libc::getgrgid_r(
            gid,
            &mut grp,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() || grp.gr_name.is_null() {
        return gid.to_string();
    }
    // SAFETY: getgrgid_r succeeded, so gr_name points to a NUL-terminated string in `buf`.
    unsafe { std::ffi::CStr::from_ptr(grp.gr_name) }
        .to_string_lossy()
        .into_owned()
}

/// Loads the config at `config_path` and opens its database as `who`, in a forked child.
pub(crate) fn probe(who: &Identity, config_path: &Path) -> Probe {
    let mut fds = [0i32; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Probe::Failed(format!("pipe: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: pipe2 returned two new descriptors that nothing else owns.
    let (reader, writer) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: the CLI has started no threads (no thread pools, no PostgreSQL connection is
    // open yet), so the child is a complete copy of a single-threaded process and may run
    // ordinary code; it leaves through `_exit`, never returning into the caller's frames.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Probe::Failed(format!("fork: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        drop(reader);
        // SAFETY: alarm has no preconditions; SIGALRM's default action ends this child.
        unsafe { libc::alarm(PROBE_SECONDS) };
        let answer = child(who, config_path);
        let _ = std::fs::File::from(writer).write_all(answer.as_bytes());
        // SAFETY: ends the child at once, without running the parent's exit handlers or
        // destructors (which would flush or close what the parent still owns).
        unsafe { libc::_exit(0) };
    }
    drop(writer);
    let mut answer = String::new();
    let read = std::fs::File::from(reader).read_to_string(&mut answer);
    let mut status = 0;
    // SAFETY: `pid` is our child; `status` is a valid place for its exit status.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    if read.is_err() || !libc::WIFEXITED(status) {
        return Probe::Failed(format!(
            "the test process did not finish within {PROBE_SECONDS} s"
        ));
    }
    parse_answer(&answer)
}

/// In the child: become `who`, then do what a checkpassword login does.
fn child(who: &Identity, config_path: &Path) -> String {
    // SAFETY: `groups` is a valid array of `len` gids; setgroups, setgid and setuid have no
    // memory preconditions. Order matters: groups and gid while still root, uid last.
    let dropped = unsafe {
        libc::setgroups(who.groups.len(), who.groups.as_ptr()) == 0
            && libc::setgid(who.gid) == 0
            && libc::setuid(who.uid) == 0
    };
    // SAFETY: getuid and geteuid have no preconditions.
    if !dropped || unsafe { libc::getuid() != who.uid || libc::geteuid() != who.uid } {
        return format!(
            "F cannot switch to user {}: {}",
            who.user,
            std::io::Error::last_os_error()
        );
    }
    // As checkpassword loads it, trust rule included, as this user.
    let config = match Config::load_trusted(Some(config_path)) {
        Ok(c) => c,
        Err(e) => return format!("C {e}"),
    };
    let opened = Store::open_for_login(&config.database).and_then(|mut store| {
        store.lookup("apppw-doctor", "aaaa")?;
        store.can_record()
    });
    match opened {
        Ok(true) => "OK rw".into(),
        Ok(false) => "OK ro".into(),
        // The same for every user: reported by the check as root.
        Err(StoreError::Missing(_) | StoreError::Schema { .. }) => "N -".into(),
        Err(e) => format!("S {e}"),
    }
}

fn parse_answer(answer: &str) -> Probe {
    match answer.split_once(' ') {
        Some(("OK", "rw")) => Probe::Usable { can_record: true },
        Some(("OK", _)) => Probe::Usable { can_record: false },
        Some(("C", e)) => Probe::Config(e.to_owned()),
        Some(("S", e)) => Probe::Store(e.to_owned()),
        Some(("F", e)) => Probe::Failed(e.to_owned()),
        Some(("N", _)) => Probe::NotForThisUser,
        _ => Probe::Failed("the test process gave no answer".into()),
    }
}
