//! A fresh anonymous mapping with ordinary 4 KiB pages: what the default allocator hands a new
//! process for a 19 MiB buffer (glibc serves it with mmap), without `MADV_HUGEPAGE`.
#![allow(unsafe_code)] // mmap/munmap

use argon2::Block;

/// `len` zeroed blocks in their own mapping, unmapped on drop.
pub struct SmallPages {
    ptr: *mut Block,
    len: usize,
    bytes: usize,
}

impl SmallPages {
    pub fn new(len: usize) -> Option<SmallPages> {
        let bytes = len.checked_mul(Block::SIZE)?;
        // SAFETY: anonymous private mapping, no fixed address; checked against MAP_FAILED.
        let raw = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if raw == libc::MAP_FAILED {
            return None;
        }
        // SAFETY: keep the kernel from backing this range with huge pages (THP "always").
        unsafe {
            libc::madvise(raw, bytes, libc::MADV_NOHUGEPAGE);
        }
        Some(SmallPages {
            ptr: raw.cast(),
            len,
            bytes,
        })
    }

    pub fn as_mut_slice(&mut self) -> &mut [Block] {
        // SAFETY: page-aligned (Block needs 64), zero-filled (a valid Block), exclusively ours.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl Drop for SmallPages {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping created in `new`.
        unsafe {
            libc::munmap(self.ptr.cast(), self.bytes);
        }
    }
}

/// Maps `bytes` of anonymous memory with `MAP_POPULATE` (4 KiB pages, all faulted in by the
/// kernel) and unmaps it: what libsodium's Argon2 does for memory in every call.
pub fn populate_and_unmap(bytes: usize) -> Option<()> {
    // SAFETY: anonymous private mapping, no fixed address; checked against MAP_FAILED and
    // unmapped right away, never read or written here.
    unsafe {
        let raw = libc::mmap(
            std::ptr::null_mut(),
            bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
            -1,
            0,
        );
        if raw == libc::MAP_FAILED {
            return None;
        }
        libc::munmap(raw, bytes);
    }
    Some(())
}
