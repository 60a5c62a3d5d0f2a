//! Which files may decide a login: checked like sudo checks sudoers and OpenSSH's StrictModes
//! checks `authorized_keys`.
//!
//! The rule (SPEC "Trust"): the config file, the SQLite database with its `-wal`, `-shm` and
//! `-journal` files, `database_password_file`, and every directory on the way to each of them
//! from `/`, are
//!
//! - owned by root or by the effective user of this process, and
//! - writable by nobody else, except members of a group this process belongs to (its
//!   effective group and supplementary groups). A process running as root also counts the
//!   package's group [`PACKAGE_GROUP`]: the package makes `/var/lib/apppw` `root:apppw 2770`
//!   precisely so that Dovecot's checkpassword user and the web page (both members) can record
//!   logins, and root could join that group at will anyway.
//!
//! Why every directory up to `/` (as OpenSSH does, where sudo checks only the file): whoever may
//! write a directory may rename the file, or any directory below it, away and put their own in
//! its place. A directory that others may write is accepted only with the sticky bit (`/tmp`):
//! there only root and an entry's owner can rename or remove the entry, and the entry must pass
//! the owner rule itself. The directory holding the SQLite database gets no such exception
//! ([`Parent::Private`]): SQLite creates its `-wal`, `-shm` and `-journal` files there by name,
//! and in a shared directory anyone could create them first.
//!
//! Race-free by construction: the walk checks each directory before it looks up anything in
//! it, so once a directory has passed, only root and trusted users can change what its names
//! point to. Symbolic links are followed by the walk itself (a link must belong to root or to
//! this user; its target is walked the same way), so the result is a path without links, which
//! SQLite then opens with `SQLITE_OPEN_NOFOLLOW`. The file itself is opened with `O_NOFOLLOW`
//! and judged by `fstat` on the open descriptor, which is also what the config and the password
//! file are read from.
//!
//! A violation names the path and the fix; the front-ends turn it into a configuration error
//! (PAM: `PAM_SERVICE_ERR`, checkpassword: exit 111), the admin CLI into a warning.

use crate::sys;
use std::cell::OnceCell;
use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

/// The group the package creates to share the store (see the module documentation).
pub const PACKAGE_GROUP: &str = "apppw";
/// Symbolic links followed in one walk before giving up (Linux's own limit).
const MAX_LINKS: usize = 40;
/// The files SQLite keeps next to a database.
pub const SQLITE_SIDECARS: [&str; 3] = ["-wal", "-shm", "-journal"];

/// The user a check is made for: normally [`Identity::of_process`].
#[derive(Debug)]
pub struct Identity {
    euid: u32,
    groups: Vec<u32>,
    /// The id of [`PACKAGE_GROUP`], looked up (through NSS) only when a root process meets a
    /// group-writable file of a group it is not in.
    package_gid: OnceCell<Option<u32>>,
}

impl Identity {
    /// This process: effective user, effective group and supplementary groups.
    #[must_use]
    pub fn of_process() -> Identity {
        Identity {
            euid: sys::euid(),
            groups: sys::groups(),
            package_gid: OnceCell::new(),
        }
    }

    /// Someone else (tests, and explaining what another user would be told).
    #[must_use]
    pub fn new(euid: u32, groups: Vec<u32>, package_gid: Option<u32>) -> Identity {
        Identity {
            euid,
            groups,
            package_gid: OnceCell::from(package_gid),
        }
    }

    /// The effective user id.
    #[must_use]
    pub fn euid(&self) -> u32 {
        self.euid
    }

    /// Root, or this user.
    #[must_use]
    pub fn trusts_owner(&self, uid: u32) -> bool {
        uid == 0 || uid == self.euid
    }

    /// A group this process belongs to (or, for root, the package's group).
    #[must_use]
    pub fn trusts_group(&self, gid: u32) -> bool {
        self.groups.contains(&gid)
            || (self.euid == 0
                && *self
                    .package_gid
                    .get_or_init(|| sys::group_id(PACKAGE_GROUP))
                    == Some(gid))
    }

    fn describe(&self) -> String {
        match sys::user_name(self.euid) {
            Some(name) => format!("{name} (uid {})", self.euid),
            None => format!("uid {}", self.euid),
        }
    }
}

/// A file or directory that must not decide a login, with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} {problem}; fix: {fix}", path.display())]
pub struct TrustError {
    /// The offending file or directory.
    pub path: PathBuf,
    /// What is wrong with it.
    pub problem: String,
    /// A command that fixes it.
    pub fix: String,
}

/// Why a file could not be judged trustworthy.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// It, or a directory on the way to it, breaks the rule.
    #[error(transparent)]
    Untrusted(#[from] TrustError),
    /// It could not be looked at (missing, permission denied, ...).
    #[error("{}: {source}", path.display())]
    Io {
        /// The path being looked at.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

impl CheckError {
    /// The file (or a directory on the way) does not exist.
    #[must_use]
    pub fn is_not_found(&self) -> bool {
        matches!(self, CheckError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }

    /// The OS error, if that is what it was.
    #[must_use]
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            CheckError::Io { source, .. } => Some(source.kind()),
            CheckError::Untrusted(_) => None,
        }
    }
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> CheckError + '_ {
    move |source| CheckError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Directory,
    File,
    Link,
}

/// How the directory directly holding a file is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parent {
    /// Like every other directory: writable by others only with the sticky bit.
    Checked,
    /// Writable by nobody untrusted, sticky or not (the SQLite database: see the module
    /// documentation).
    Private,
}

fn who_owns(uid: u32) -> String {
    match sys::user_name(uid) {
        Some(name) => format!("{name} (uid {uid})"),
        None => format!("uid {uid}"),
    }
}

fn group_called(gid: u32) -> String {
    match sys::group_name(gid) {
        Some(name) => format!("{name} (gid {gid})"),
        None => format!("gid {gid}"),
    }
}

/// The rule for one file, directory or link, from its owner and mode.
fn judge(
    path: &Path,
    kind: Kind,
    meta: &Metadata,
    who: &Identity,
    sticky_allowed: bool,
) -> Result<(), TrustError> {
    judge_fields(
        path,
        kind,
        (meta.uid(), meta.gid(), meta.mode()),
        who,
        sticky_allowed,
    )
}

fn judge_fields(
    path: &Path,
    kind: Kind,
    (uid, gid, mode): (u32, u32, u32),
    who: &Identity,
    sticky_allowed: bool,
) -> Result<(), TrustError> {
    let what = match kind {
        Kind::Directory => "directory",
        Kind::File => "file",
        Kind::Link => "symbolic link",
    };
    let shown = path.display();
    if !who.trusts_owner(uid) {
        return Err(TrustError {
            path: path.to_path_buf(),
            problem: format!(
                "is a {what} owned by {}, not by root or by {} that this program runs as: \
                 a file of another user never decides a login",
                who_owns(uid),
                who.describe()
            ),
            fix: format!("chown root {shown}"),
        });
    }
    // The mode bits of a symbolic link mean nothing; its directory was checked.
    if kind == Kind::Link {
        return Ok(());
    }
    let world = mode & 0o002 != 0;
    let group = mode & 0o020 != 0 && !who.trusts_group(gid);
    if !world && !group {
        return Ok(());
    }
    if kind == Kind::Directory && sticky_allowed && mode & 0o1000 != 0 {
        return Ok(());
    }
    let (problem, fix) = if world {
        let fix = if kind == Kind::Directory && !sticky_allowed {
            format!(
                "chmod o-w {shown} (the database needs a directory of its own, such as \
                 /var/lib/apppw: SQLite creates files next to it)"
            )
        } else {
            format!("chmod o-w {shown}")
        };
        (format!("is a {what} every user may write"), fix)
    } else {
        (
            format!(
                "is a {what} writable by group {}, which this program is not a member of",
                group_called(gid)
            ),
            format!(
                "chmod g-w {shown}, or chgrp {PACKAGE_GROUP} {shown} if that group's members \
                 are meant to write it (and this program's user is one of them)"
            ),
        )
    };
    Err(TrustError {
        path: path.to_path_buf(),
        problem,
        fix,
    })
}

fn lstat(path: &Path) -> Result<Metadata, CheckError> {
    std::fs::symlink_metadata(path).map_err(io_error(path))
}

/// The components of `path` that matter to a walk: names and `..`.
fn components(path: &Path) -> impl DoubleEndedIterator<Item = OsString> + '_ {
    path.components().filter_map(|c| match c {
        Component::Normal(name) => Some(name.to_os_string()),
        Component::ParentDir => Some(OsString::from("..")),
        Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
    })
}

/// Resolves `path` to a path without symbolic links, checking `/`, every directory on the way
/// and every symbolic link met, each before anything inside it is looked up. Returns the
/// resolved path and the `lstat` of its last component, which is not judged here.
fn walk(path: &Path, who: &Identity) -> Result<(PathBuf, Metadata), CheckError> {
    if path.as_os_str().is_empty() {
        return Err(CheckError::Io {
            path: path.to_path_buf(),
            source: io::Error::new(io::ErrorKind::NotFound, "empty path"),
        });
    }
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().map_err(io_error(path))?.join(path)
    };
    let mut pending: VecDeque<OsString> = components(&absolute).collect();
    let mut here = PathBuf::from("/");
    let mut meta = lstat(&here)?;
    judge(&here, Kind::Directory, &meta, who, true)?;
    let mut links = 0;
    while let Some(name) = pending.pop_front() {
        if name == ".." {
            // The parent was checked on the way down.
            here.pop();
            meta = lstat(&here)?;
            continue;
        }
        if !meta.is_dir() {
            return Err(CheckError::Io {
                path: here,
                source: io::Error::from_raw_os_error(libc::ENOTDIR),
            });
        }
        let next = here.join(&name);
        let next_meta = lstat(&next)?;
        let kind = next_meta.file_type();
        if kind.is_symlink() {
            judge(&next, Kind::Link, &next_meta, who, true)?;
            links += 1;
            if links > MAX_LINKS {
                return Err(CheckError::Io {
                    path: next,
                    source: io::Error::from_raw_os_error(libc::ELOOP),
                });
            }
            let target = std::fs::read_link(&next).map_err(io_error(&next))?;
            if target.is_absolute() {
                here = PathBuf::from("/");
                meta = lstat(&here)?;
            }
            for c in components(&target).rev() {
                pending.push_front(c);
            }
            continue;
        }
        if kind.is_dir() {
            judge(&next, Kind::Directory, &next_meta, who, true)?;
        }
        here = next;
        meta = next_meta;
    }
    Ok((here, meta))
}

/// A file that passed, open for reading.
#[derive(Debug)]
pub struct TrustedFile {
    /// Open with `O_NOFOLLOW`; the file that was judged.
    pub file: File,
    /// The path without symbolic links.
    pub path: PathBuf,
    /// `fstat` of `file`.
    pub meta: Metadata,
}

impl TrustedFile {
    /// (device, inode): to notice later that the path names another file.
    #[must_use]
    pub fn id(&self) -> (u64, u64) {
        (self.meta.dev(), self.meta.ino())
    }
}

/// Checks `path` and every directory above it for `who`, and opens the file for reading.
pub fn open(path: &Path, who: &Identity, parent: Parent) -> Result<TrustedFile, CheckError> {
    let (resolved, lmeta) = walk(path, who)?;
    if !lmeta.is_file() {
        return Err(TrustError {
            path: resolved.clone(),
            problem: "is not a regular file".into(),
            fix: format!("name a file, not {}", resolved.display()),
        }
        .into());
    }
    if parent == Parent::Private {
        if let Some(dir) = resolved.parent() {
            judge(dir, Kind::Directory, &lstat(dir)?, who, false)?;
        }
    }
    // O_NONBLOCK: a FIFO put in place by a trusted user must not hang a login.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(&resolved)
        .map_err(io_error(&resolved))?;
    let meta = file.metadata().map_err(io_error(&resolved))?;
    if !meta.is_file() || (meta.dev(), meta.ino()) != (lmeta.dev(), lmeta.ino()) {
        return Err(TrustError {
            path: resolved,
            problem: "was replaced while it was being checked".into(),
            fix: "try again; if it persists, find out who replaces it".into(),
        }
        .into());
    }
    judge(&resolved, Kind::File, &meta, who, false)?;
    Ok(TrustedFile {
        file,
        path: resolved,
        meta,
    })
}

/// Checks a file that may not exist, in a directory that already passed (SQLite's `-wal` and
/// `-shm` next to the database): `None` if it does not exist. It must not be a symbolic link.
pub fn check_sibling(path: &Path, who: &Identity) -> Result<Option<Metadata>, CheckError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(path)(e)),
    };
    if !meta.is_file() {
        return Err(TrustError {
            path: path.to_path_buf(),
            problem: "is not a regular file (a symbolic link or something else)".into(),
            fix: format!(
                "rm {} while no login runs (SQLite creates it again)",
                path.display()
            ),
        }
        .into());
    }
    judge(path, Kind::File, &meta, who, false)?;
    Ok(Some(meta))
}

/// `PATH` + `suffix` (`apppw.db` + `-wal`).
#[must_use]
pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// An SQLite database that passed, with its `-wal`, `-shm` and `-journal`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedDatabase {
    /// The path without symbolic links, for SQLite to open with `SQLITE_OPEN_NOFOLLOW`.
    pub path: PathBuf,
    /// (device, inode) of the file that was judged.
    pub id: (u64, u64),
    /// Owner of the database file.
    pub owner: u32,
    /// The header says WAL mode (as `apppw` creates it).
    pub wal: bool,
    /// Which of [`SQLITE_SIDECARS`] exist.
    pub sidecars: [bool; 3],
}

impl TrustedDatabase {
    /// Both `-wal` and `-shm` exist.
    #[must_use]
    pub fn has_wal_files(&self) -> bool {
        self.sidecars[0] && self.sidecars[1]
    }
}

/// Checks an SQLite database, the directories above it, its own directory (writable by
/// nobody untrusted, sticky or not) and the files SQLite keeps next to it.
pub fn check_sqlite(path: &Path, who: &Identity) -> Result<TrustedDatabase, CheckError> {
    let mut file = open(path, who, Parent::Private)?;
    let wal = is_wal_database(&mut file.file).map_err(io_error(&file.path))?;
    let db = TrustedDatabase {
        id: file.id(),
        owner: file.meta.uid(),
        wal,
        sidecars: check_sidecars(&file.path, who)?,
        path: file.path,
    };
    Ok(db)
}

/// Does this SQLite file say it is in WAL mode? Bytes 18 and 19 of the header (file format
/// write and read version) are 2 in WAL mode. Reads the first 20 bytes of `file`.
pub fn is_wal_database(file: &mut impl Read) -> io::Result<bool> {
    let mut header = [0u8; 20];
    let mut read = 0;
    while read < header.len() {
        match file.read(&mut header[read..]) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(read == header.len()
        && header.starts_with(b"SQLite format 3\0")
        && header[18] == 2
        && header[19] == 2)
}

/// Checks `-wal`, `-shm` and `-journal` next to `db`; which exist.
pub fn check_sidecars(db: &Path, who: &Identity) -> Result<[bool; 3], CheckError> {
    let mut found = [false; 3];
    for (suffix, exists) in SQLITE_SIDECARS.iter().zip(&mut found) {
        *exists = check_sibling(&with_suffix(db, suffix), who)?.is_some();
    }
    Ok(found)
}

/// Reads a small trusted file (config, password file) into a string: at most `limit` bytes,
/// `None` if it is longer.
pub fn read_to_string(file: &mut TrustedFile, limit: u64) -> Result<Option<String>, CheckError> {
    let mut text = String::new();
    (&mut file.file)
        .take(limit + 1)
        .read_to_string(&mut text)
        .map_err(io_error(&file.path))?;
    Ok((text.len() as u64 <= limit).then_some(text))
}

#[cfg(test)]
mod tests;
