//! The Argon2 admission gate: at most `[argon2] max_concurrent` Argon2 computations at once on
//! this host, shared by every process that computes one (the PAM module in each Dovecot auth
//! worker, `apppw-checkpassword` processes, the self-service page, the CLI).
//!
//! Why: an Argon2id computation is 19 MiB of memory-bound work. Beyond one per core they only
//! evict each other from the caches, so a login burst on more workers than cores makes every
//! login slower and the host's logins per second fall (docs/performance.md). The gate keeps the
//! number of computations at the number of cores; the others wait their turn.
//!
//! How: one System V semaphore set per host, named by a small file ([`DEFAULT_PATH`]) that
//! holds its id. Semaphore 0 counts free slots, semaphore 1 the capacity. A computation takes a
//! slot with `semtimedop(-1, SEM_UNDO)` and gives it back with `+1`:
//!
//! - **arrival order**: Linux queues blocked `semop` callers in order and completes the first
//!   waiter's operation inside the release, so a newcomer cannot overtake a waiter;
//! - **bounded wait**: past `[argon2] queue_timeout_ms` the attempt is turned away
//!   ([`Refused::Busy`]): a temporary failure for the client, never "accepted" and never
//!   "wrong password";
//! - **no lost slots**: `SEM_UNDO` makes the kernel give back the slot of a process that dies
//!   holding it (SIGKILL, a crash of the auth worker).
//!
//! Trust. Any local user can create System V semaphores, so the set is found through the file,
//! never through a guessable key: the file lives in a directory only root and the `apppw` group
//! may write (the package creates `/run/apppw`, mode 2770 root:apppw, with tmpfiles.d), and it
//! is only used when the set's creator is the file's owner (the process that created the set
//! wrote the file). The set is mode 0660 with the directory's group. Whoever can take slots can
//! only delay or turn away logins, never accept one. If the gate cannot be used (no directory,
//! unsafe permissions, semaphores unavailable) the computation runs **without** it and the
//! caller logs why: the gate protects throughput, not access, and an unusable gate must not stop
//! every login.
#![allow(unsafe_code)]

use std::ffi::c_int;
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The gate file unless `[argon2] gate_file` names another.
pub const DEFAULT_PATH: &str = "/run/apppw/argon2-gate";
/// How long a computation waits for a slot unless `[argon2] queue_timeout_ms` says otherwise:
/// well inside checkpassword's 5 s deadline and Postfix's SASL timeout.
pub const DEFAULT_QUEUE_TIMEOUT: Duration = Duration::from_millis(3000);
/// Largest `max_concurrent`.
pub const MAX_SLOTS: u32 = 1024;
/// Largest `queue_timeout_ms`.
pub const MAX_QUEUE_TIMEOUT_MS: u32 = 60_000;
/// First word of a gate file.
const MAGIC: &str = "apppw-argon2-gate";
/// Semaphore numbers in the set.
const FREE: u16 = 0;
const CAPACITY: u16 = 1;
/// A gate file is a line; anything longer is not one.
const MAX_FILE: u64 = 256;

/// `[argon2] max_concurrent`, `queue_timeout_ms` and `gate_file`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Computations at once on this host; 0 turns the gate off.
    pub max_concurrent: u32,
    /// How long a computation waits for a slot; zero: not at all.
    pub queue_timeout: Duration,
    /// The file naming the semaphore set.
    pub path: PathBuf,
}

impl Default for Settings {
    /// One slot per online CPU, [`DEFAULT_QUEUE_TIMEOUT`], [`DEFAULT_PATH`].
    fn default() -> Self {
        Settings {
            max_concurrent: online_cpus(),
            queue_timeout: DEFAULT_QUEUE_TIMEOUT,
            path: PathBuf::from(DEFAULT_PATH),
        }
    }
}

/// A located config error: span, dotted key, message.
pub type RawError = (std::ops::Range<usize>, &'static str, String);

impl Settings {
    /// The settings from the `[argon2]` keys as written (absent: the default).
    pub fn from_raw(
        max_concurrent: Option<toml::Spanned<u32>>,
        queue_timeout_ms: Option<toml::Spanned<u32>>,
        gate_file: Option<toml::Spanned<String>>,
    ) -> Result<Settings, RawError> {
        let mut s = Settings::default();
        if let Some(v) = max_concurrent {
            if *v.get_ref() > MAX_SLOTS {
                return Err((
                    v.span(),
                    "argon2.max_concurrent",
                    format!("must be between 0 (no gate) and {MAX_SLOTS}"),
                ));
            }
            s.max_concurrent = *v.get_ref();
        }
        if let Some(v) = queue_timeout_ms {
            if *v.get_ref() > MAX_QUEUE_TIMEOUT_MS {
                return Err((
                    v.span(),
                    "argon2.queue_timeout_ms",
                    format!("must be between 0 and {MAX_QUEUE_TIMEOUT_MS}"),
                ));
            }
            s.queue_timeout = Duration::from_millis(u64::from(*v.get_ref()));
        }
        if let Some(v) = gate_file {
            let p = v.get_ref();
            if !p.starts_with('/') || p.contains('\0') || p.ends_with('/') {
                return Err((
                    v.span(),
                    "argon2.gate_file",
                    "must be an absolute file name".into(),
                ));
            }
            s.path = PathBuf::from(p);
        }
        Ok(s)
    }
}

/// The number of online CPUs (at least 1): the default number of slots. Host-wide on purpose
/// (not this process's CPU affinity or cgroup quota), so that every process sizes the gate
/// alike.
#[must_use]
pub fn online_cpus() -> u32 {
    // SAFETY: sysconf only reads a system value.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    u32::try_from(n).unwrap_or(1).clamp(1, MAX_SLOTS)
}

/// Why a computation did not get a slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Every slot stayed taken for the whole queue timeout.
    Busy,
    /// The gate stopped working (its set was removed, the kernel refused the operation): the
    /// computation may run without it; the message says why.
    Broken(String),
}

/// An open gate: the semaphore set of this host.
#[derive(Debug)]
pub struct Gate {
    semid: c_int,
    settings: Settings,
}

/// A slot held: given back when dropped (or by the kernel, if the process dies first).
#[derive(Debug)]
#[must_use = "the slot is given back when this is dropped"]
pub struct Slot {
    semid: c_int,
}

impl Drop for Slot {
    fn drop(&mut self) {
        // An increment never blocks. If the set was removed meanwhile there is nothing to give
        // back; the error is of no use to anyone.
        let _ = sys::semop(self.semid, &mut [op(FREE, 1, libc::SEM_UNDO)], None);
    }
}

/// A snapshot of a gate, for tests and diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// Free slots.
    pub free: i32,
    /// Slots in all.
    pub capacity: i32,
    /// Computations waiting for one.
    pub waiting: i32,
}

fn op(num: u16, delta: i16, flags: c_int) -> libc::sembuf {
    libc::sembuf {
        sem_num: num,
        sem_op: delta,
        // The flags fit: SEM_UNDO and IPC_NOWAIT are 0x1000 and 0x800.
        sem_flg: i16::try_from(flags).unwrap_or(0),
    }
}

impl Gate {
    /// Opens this host's gate as `settings` say, creating it if it does not exist yet (or no
    /// longer does). `Ok(None)`: the gate is off (`max_concurrent = 0`). `Err`: it cannot be
    /// used; the message says why and what to do.
    pub fn open(settings: &Settings) -> Result<Option<Gate>, String> {
        if settings.max_concurrent == 0 {
            return Ok(None);
        }
        let path = &settings.path;
        let fail = |why: String| {
            format!(
                "Argon2 admission gate {}: {why}; Argon2 runs without the gate",
                path.display()
            )
        };
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .ok_or_else(|| fail("not in a directory".into()))?;
        let dir_meta = std::fs::metadata(dir).map_err(|e| {
            fail(match e.kind() {
                io::ErrorKind::NotFound => format!(
                    "directory {} does not exist (the package creates /run/apppw with \
                     tmpfiles.d: `systemd-tmpfiles --create apppw.conf`; else mkdir it, \
                     mode 2770, group apppw)",
                    dir.display()
                ),
                _ => format!("directory {}: {e}", dir.display()),
            })
        })?;
        if dir_meta.mode() & 0o002 != 0 {
            return Err(fail(format!(
                "directory {} is writable by every user (it must be root's and the apppw \
                 group's only: mode 2770)",
                dir.display()
            )));
        }
        let mut gate = Gate {
            semid: -1,
            settings: settings.clone(),
        };
        // Twice: a second round follows a lost race with another process creating or
        // replacing the set.
        for _ in 0..2 {
            match read_file(path).map_err(&fail)? {
                Some(found) => match check_set(found) {
                    Ok(()) => {
                        gate.semid = found.semid;
                        gate.fit_capacity();
                        return Ok(Some(gate));
                    }
                    // Gone (a reboot would have emptied /run too; an admin's ipcrm) or not
                    // the set this file's writer made: make a new one in its place.
                    Err(_) => match create(path, dir_meta.gid(), settings, Publish::Replace) {
                        Ok(Some(id)) => {
                            gate.semid = id;
                            return Ok(Some(gate));
                        }
                        Ok(None) => {}
                        Err(e) => return Err(fail(e)),
                    },
                },
                None => match create(path, dir_meta.gid(), settings, Publish::New) {
                    Ok(Some(id)) => {
                        gate.semid = id;
                        return Ok(Some(gate));
                    }
                    Ok(None) => {}
                    Err(e) => return Err(fail(e)),
                },
            }
        }
        Err(fail(
            "another process keeps replacing it; check for two apppw versions".into(),
        ))
    }

    /// The settings it was opened with.
    #[must_use]
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Waits in line for a slot, at most the queue timeout.
    pub fn enter(&self) -> Result<Slot, Refused> {
        let timeout = self.settings.queue_timeout;
        let nowait = if timeout.is_zero() {
            libc::IPC_NOWAIT
        } else {
            0
        };
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let wait = (!timeout.is_zero()).then_some(left);
            match sys::semop(
                self.semid,
                &mut [op(FREE, -1, libc::SEM_UNDO | nowait)],
                wait,
            ) {
                Ok(()) => {
                    return Ok(Slot { semid: self.semid });
                }
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => return Err(Refused::Busy),
                // A signal (the host's): wait on for the rest of the time.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    if !left.is_zero() {
                        continue;
                    }
                    return Err(Refused::Busy);
                }
                Err(e) => {
                    return Err(Refused::Broken(format!(
                        "Argon2 admission gate {}: taking a slot failed: {e}; Argon2 runs \
                         without the gate",
                        self.settings.path.display()
                    )));
                }
            }
        }
    }

    /// Free slots, capacity and waiting computations right now.
    pub fn status(&self) -> io::Result<Status> {
        Ok(Status {
            free: sys::getval(self.semid, FREE, libc::GETVAL)?,
            capacity: sys::getval(self.semid, CAPACITY, libc::GETVAL)?,
            waiting: sys::getval(self.semid, FREE, libc::GETNCNT)?,
        })
    }

    /// Brings the capacity to `max_concurrent` if the set was made with another one (the
    /// config changed). Shrinking takes free slots only; if too few are free now, a later
    /// opening does it.
    fn fit_capacity(&self) {
        let Ok(capacity) = sys::getval(self.semid, CAPACITY, libc::GETVAL) else {
            return;
        };
        let want = i32::try_from(self.settings.max_concurrent).unwrap_or(1);
        let Ok(delta) = i16::try_from(want - capacity) else {
            return;
        };
        if delta != 0 {
            let _ = sys::semop(
                self.semid,
                &mut [
                    op(FREE, delta, libc::IPC_NOWAIT),
                    op(CAPACITY, delta, libc::IPC_NOWAIT),
                ],
                None,
            );
        }
    }
}

/// Removes the gate `path` names: its semaphore set (only if it is the file writer's) and the
/// file. For tests and for a package's purge; a running system simply makes a new one.
pub fn remove(path: &Path) -> Result<(), String> {
    if let Some(found) = read_file(path)? {
        if check_set(found).is_ok() {
            sys::remove(found.semid);
        }
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(format!("cannot remove it: {e}")),
        _ => Ok(()),
    }
}

/// What a gate file says.
#[derive(Debug, Clone, Copy)]
struct Found {
    semid: c_int,
    /// The file's owner: the creator of the set it names.
    owner: u32,
}

/// Reads the gate file: `None` if there is none.
fn read_file(path: &Path) -> Result<Option<Found>, String> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot be read: {e}")),
    };
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot be read: {e}"))?;
    if !meta.is_file() || meta.mode() & 0o002 != 0 {
        return Err("is not a regular file writable only by its owner and group".into());
    }
    let mut text = String::new();
    file.take(MAX_FILE)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot be read: {e}"))?;
    let semid = text
        .trim_end()
        .strip_prefix(MAGIC)
        .and_then(|rest| rest.trim().strip_prefix("1 semid="))
        .and_then(|id| id.parse::<c_int>().ok())
        .filter(|id| *id >= 0)
        // A file being written by its creator is never seen: it is linked or renamed into
        // place complete. Anything else is not a gate file.
        .ok_or_else(|| "is not an apppw gate file (remove it; it is made again)".to_owned())?;
    Ok(Some(Found {
        semid,
        owner: meta.uid(),
    }))
}

/// Is `found.semid` the set the file's writer made?
fn check_set(found: Found) -> Result<(), ()> {
    let ds = sys::stat(found.semid).map_err(|_| ())?;
    if ds.sem_nsems == 2 && ds.sem_perm.cuid == found.owner {
        Ok(())
    } else {
        Err(())
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Publish {
    /// There is no gate file: link ours into place unless another process was faster.
    New,
    /// The gate file names no usable set: rename ours over it.
    Replace,
}

/// Makes a new set of `max_concurrent` slots and publishes it in `path`. `Ok(None)`: another
/// process published one first; read the file again.
fn create(
    path: &Path,
    gid: u32,
    settings: &Settings,
    how: Publish,
) -> Result<Option<c_int>, String> {
    let semid = sys::semget_private().map_err(|e| format!("cannot create semaphores: {e}"))?;
    let made = publish(semid, path, gid, settings, how);
    match made {
        Ok(true) => Ok(Some(semid)),
        Ok(false) => {
            sys::remove(semid);
            Ok(None)
        }
        Err(e) => {
            sys::remove(semid);
            Err(e)
        }
    }
}

fn publish(
    semid: c_int,
    path: &Path,
    gid: u32,
    settings: &Settings,
    how: Publish,
) -> Result<bool, String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    // Group members may take slots; the creator keeps the set.
    sys::set_perm(semid, uid, gid, 0o660)
        .map_err(|e| format!("cannot set semaphore permissions: {e}"))?;
    let n = i16::try_from(settings.max_concurrent).unwrap_or(1);
    sys::semop(semid, &mut [op(FREE, n, 0), op(CAPACITY, n, 0)], None)
        .map_err(|e| format!("cannot initialise semaphores: {e}"))?;

    let dir = path.parent().unwrap_or(Path::new("/"));
    let mut nonce = [0u8; 8];
    getrandom::fill(&mut nonce).map_err(|e| format!("no random numbers: {e}"))?;
    let tmp = dir.join(format!(
        ".argon2-gate.{}.{:016x}",
        std::process::id(),
        u64::from_ne_bytes(nonce)
    ));
    let written = (|| -> io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o640)
            .open(&tmp)?;
        // The directory's group (usually already so, the directory being setgid); failing
        // to set it leaves the creator's own group, which is the admin's to fix.
        let _ = std::os::unix::fs::fchown(&f, None, Some(gid));
        f.write_all(format!("{MAGIC} 1 semid={semid}\n").as_bytes())?;
        Ok(())
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(match e.kind() {
            io::ErrorKind::PermissionDenied => format!(
                "cannot create it ({e}): this user may not write {} (it must be in the group \
                 that owns it, apppw)",
                dir.display()
            ),
            _ => format!("cannot create it: {e}"),
        });
    }
    let placed = match how {
        Publish::New => match std::fs::hard_link(&tmp, path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(format!("cannot create it: {e}")),
        },
        Publish::Replace => std::fs::rename(&tmp, path)
            .map(|()| true)
            .map_err(|e| format!("cannot replace it: {e}")),
    };
    let _ = std::fs::remove_file(&tmp);
    if placed == Ok(true) && how == Publish::Replace {
        // Two processes may have replaced a stale file at once: the last rename won. The loser
        // gives up its set and uses the winner's.
        if let Ok(Some(found)) = read_file(path) {
            if found.semid != semid {
                return Ok(false);
            }
        }
    }
    placed
}

/// The system calls, each with its safety argument.
mod sys {
    use std::ffi::c_int;
    use std::io;
    use std::time::Duration;

    unsafe extern "C" {
        // In glibc and musl, not in the `libc` crate.
        fn semtimedop(
            semid: c_int,
            sops: *mut libc::sembuf,
            nsops: libc::size_t,
            timeout: *const libc::timespec,
        ) -> c_int;
    }

    fn check(rc: c_int) -> io::Result<c_int> {
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(rc)
        }
    }

    /// A new set of two semaphores, mode 0600 until [`set_perm`].
    pub(super) fn semget_private() -> io::Result<c_int> {
        // SAFETY: semget takes no pointers.
        check(unsafe { libc::semget(libc::IPC_PRIVATE, 2, libc::IPC_CREAT | 0o600) })
    }

    pub(super) fn stat(semid: c_int) -> io::Result<libc::semid_ds> {
        // SAFETY: semid_ds is plain data (integers); all-zero is a valid value.
        let mut ds: libc::semid_ds = unsafe { std::mem::zeroed() };
        // SAFETY: IPC_STAT writes one semid_ds to the pointer passed as the fourth argument
        // (the `buf` member of union semun, which is passed like a pointer); `ds` is one.
        check(unsafe { libc::semctl(semid, 0, libc::IPC_STAT, &raw mut ds) })?;
        Ok(ds)
    }

    pub(super) fn set_perm(semid: c_int, uid: u32, gid: u32, mode: u16) -> io::Result<()> {
        let mut ds = stat(semid)?;
        ds.sem_perm.uid = uid;
        ds.sem_perm.gid = gid;
        ds.sem_perm.mode = mode;
        // SAFETY: IPC_SET reads one semid_ds (its uid, gid and mode) from the fourth argument,
        // which points to `ds`.
        check(unsafe { libc::semctl(semid, 0, libc::IPC_SET, &raw mut ds) })?;
        Ok(())
    }

    pub(super) fn getval(semid: c_int, num: u16, cmd: c_int) -> io::Result<i32> {
        // SAFETY: GETVAL and GETNCNT take no fourth argument.
        check(unsafe { libc::semctl(semid, c_int::from(num), cmd) })
    }

    pub(super) fn remove(semid: c_int) {
        // SAFETY: IPC_RMID takes no fourth argument.
        unsafe { libc::semctl(semid, 0, libc::IPC_RMID) };
    }

    /// The operations, atomically; blocking at most `timeout` (`None`: no limit, or not at
    /// all with IPC_NOWAIT).
    pub(super) fn semop(
        semid: c_int,
        ops: &mut [libc::sembuf],
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        let ts = timeout.map(|t| libc::timespec {
            tv_sec: libc::time_t::try_from(t.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_nsec: libc::c_long::from(t.subsec_nanos()),
        });
        let ts_ptr = ts.as_ref().map_or(std::ptr::null(), std::ptr::from_ref);
        // SAFETY: `ops` is a valid array of `ops.len()` sembufs for the duration of the call;
        // `ts_ptr` is null or points to a timespec that outlives the call.
        check(unsafe { semtimedop(semid, ops.as_mut_ptr(), ops.len(), ts_ptr) })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
