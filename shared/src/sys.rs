//! The few facts about the running process that the standard library does not give: its user
//! and group ids, its supplementary groups, and user and group names through NSS (so that
//! LDAP/SSSD names work as well as `/etc/passwd`).
//!
//! Used by [`crate::trust`] (whose files may decide a login) and [`crate::audit`] (who ran an
//! admin command). The FFI calls are the only unsafe code here; each carries a `SAFETY:` note.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString};

/// The effective user id.
#[must_use]
pub fn euid() -> u32 {
    // SAFETY: geteuid takes no arguments, touches no memory of ours and cannot fail.
    unsafe { libc::geteuid() }
}

/// The real user id (who ran the program, even through a setuid wrapper).
#[must_use]
pub fn uid() -> u32 {
    // SAFETY: as for geteuid.
    unsafe { libc::getuid() }
}

/// The effective group id.
#[must_use]
pub fn egid() -> u32 {
    // SAFETY: as for geteuid.
    unsafe { libc::getegid() }
}

/// The effective group and the supplementary groups of the process (`getgroups`). On the
/// unlikely failure of `getgroups`, only the effective group: fewer groups trust less.
#[must_use]
pub fn groups() -> Vec<u32> {
    let mut groups = vec![egid()];
    // Two tries: the list may grow between asking for its size and reading it.
    for _ in 0..2 {
        // SAFETY: with size 0 getgroups writes nothing and only returns the count.
        let n = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
        let Ok(len) = usize::try_from(n) else {
            break;
        };
        let mut list: Vec<libc::gid_t> = vec![0; len];
        // SAFETY: `list` has room for exactly `n` gids, and `n` is what we pass as its size.
        let got = unsafe { libc::getgroups(n, list.as_mut_ptr()) };
        if let Ok(got) = usize::try_from(got) {
            list.truncate(got);
            groups.extend(list);
            break;
        }
    }
    groups.sort_unstable();
    groups.dedup();
    groups
}

/// Runs a `get*_r` lookup with a buffer that grows on `ERANGE`, up to 1 MiB.
fn with_buffer(mut lookup: impl FnMut(&mut [libc::c_char]) -> libc::c_int) -> bool {
    let mut size = 1024;
    while size <= 1 << 20 {
        let mut buf = vec![0 as libc::c_char; size];
        match lookup(&mut buf) {
            0 => return true,
            libc::ERANGE => size *= 4,
            _ => return false,
        }
    }
    false
}

/// The id of the group called `name`, if there is one.
#[must_use]
pub fn group_id(name: &str) -> Option<u32> {
    let name = CString::new(name).ok()?;
    let mut found = None;
    with_buffer(|buf| {
        // SAFETY: a zeroed `group` is a valid value for getgrnam_r to overwrite.
        let mut group: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call: `name` is NUL-terminated, `group` and
        // `result` are ours, and `buf` is writable for `buf.len()` bytes. The strings of
        // `group` point into `buf`, which we do not read after it is dropped.
        let rc = unsafe {
            libc::getgrnam_r(
                name.as_ptr(),
                &mut group,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        if rc == 0 && !result.is_null() {
            found = Some(group.gr_gid);
        }
        rc
    });
    found
}

/// The name of group `gid`, if it has one.
#[must_use]
pub fn group_name(gid: u32) -> Option<String> {
    let mut found = None;
    with_buffer(|buf| {
        // SAFETY: a zeroed `group` is a valid value for getgrgid_r to overwrite.
        let mut group: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = std::ptr::null_mut();
        // SAFETY: as in `group_id`.
        let rc =
            unsafe { libc::getgrgid_r(gid, &mut group, buf.as_mut_ptr(), buf.len(), &mut result) };
        if rc == 0 && !result.is_null() && !group.gr_name.is_null() {
            // SAFETY: on success gr_name points to a NUL-terminated string inside `buf`,
            // which is alive here.
            found = Some(
                unsafe { CStr::from_ptr(group.gr_name) }
                    .to_string_lossy()
                    .into_owned(),
            );
        }
        rc
    });
    found
}

/// The login name of user `uid`, if it has one.
#[must_use]
pub fn user_name(uid: u32) -> Option<String> {
    let mut found = None;
    with_buffer(|buf| {
        // SAFETY: a zeroed `passwd` is a valid value for getpwuid_r to overwrite.
        let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: as in `group_id`.
        let rc =
            unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut result) };
        if rc == 0 && !result.is_null() && !pw.pw_name.is_null() {
            // SAFETY: on success pw_name points to a NUL-terminated string inside `buf`.
            found = Some(
                unsafe { CStr::from_ptr(pw.pw_name) }
                    .to_string_lossy()
                    .into_owned(),
            );
        }
        rc
    });
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_names() {
        assert!(groups().contains(&egid()));
        assert_eq!(user_name(0).as_deref(), Some("root"));
        assert_eq!(group_name(0).as_deref(), Some("root"));
        assert_eq!(group_id("root"), Some(0));
        assert_eq!(group_id("no-such-group-for-sure"), None);
        assert_eq!(group_id("nul\0inside"), None);
        assert!(user_name(uid()).is_some() || uid() != 0);
    }
}
