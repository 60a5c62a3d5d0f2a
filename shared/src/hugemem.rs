//! Argon2 working memory backed by transparent huge pages.
//!
//! A verification with the OWASP parameters touches 19 MiB. With ordinary 4 KiB pages a fresh
//! process (the checkpassword backend) or a fresh allocation (the PAM module, loaded for every
//! request) takes ~5000 page faults, which costs about as much as Argon2 itself. An anonymous
//! mapping advised with `MADV_HUGEPAGE` needs about ten 2 MiB faults instead. The kernel may
//! refuse huge pages (THP disabled); the mapping then simply works with small pages.
//!
//! This is the only module of the crate with `unsafe` code.
#![allow(unsafe_code)]

use argon2::Block;
use std::ptr::NonNull;

const HUGE_PAGE: usize = 2 << 20;

/// A zero-initialised, 2 MiB-aligned array of Argon2 blocks in its own mapping.
pub struct HugeBlocks {
    map: NonNull<libc::c_void>,
    map_len: usize,
    blocks: NonNull<Block>,
    len: usize,
}

// SAFETY: the mapping is owned exclusively by this value; nothing else aliases it.
unsafe impl Send for HugeBlocks {}

impl HugeBlocks {
    /// Maps memory for `len` blocks. `None` if the mapping fails.
    #[must_use]
    pub fn new(len: usize) -> Option<HugeBlocks> {
        let bytes = len.checked_mul(Block::SIZE)?;
        let rounded = bytes.checked_add(HUGE_PAGE - 1)? / HUGE_PAGE * HUGE_PAGE;
        // One extra huge page so the usable region can start on a 2 MiB boundary.
        let map_len = rounded.checked_add(HUGE_PAGE)?;
        // SAFETY: an anonymous private mapping with no file and no fixed address has no
        // preconditions; the result is checked against MAP_FAILED before use.
        let raw = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if raw == libc::MAP_FAILED {
            return None;
        }
        let map = NonNull::new(raw)?;
        let offset = (HUGE_PAGE - (raw as usize % HUGE_PAGE)) % HUGE_PAGE;
        // SAFETY: `offset < HUGE_PAGE` and the mapping is `rounded + HUGE_PAGE` bytes long, so
        // `raw + offset .. raw + offset + rounded` lies inside it.
        let start = unsafe { raw.cast::<u8>().add(offset) };
        // SAFETY: the range is inside our mapping; MADV_HUGEPAGE is advisory and its failure
        // (THP disabled) is harmless, so the result is ignored.
        unsafe {
            libc::madvise(start.cast(), rounded, libc::MADV_HUGEPAGE);
        }
        Some(HugeBlocks {
            map,
            map_len,
            blocks: NonNull::new(start.cast::<Block>())?,
            len,
        })
    }

    /// The blocks.
    pub fn as_mut_slice(&mut self) -> &mut [Block] {
        // SAFETY: `blocks` points to `len * Block::SIZE` bytes inside our live mapping, 2 MiB
        // aligned (Block needs 64); anonymous mappings are zero-filled and all-zero bytes are a
        // valid `Block` ([u64; 128]); `&mut self` guarantees exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.blocks.as_ptr(), self.len) }
    }

    /// Number of blocks.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if there are no blocks.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for HugeBlocks {
    fn drop(&mut self) {
        // The blocks are derived from the password. munmap hands the pages back to the kernel,
        // which clears them before any reuse; wiping 19 MiB here would cost a millisecond per
        // login for nothing.
        // SAFETY: `map`/`map_len` are exactly what mmap returned; the slice borrowed above is
        // gone, and no other reference to the mapping exists.
        unsafe {
            libc::munmap(self.map.as_ptr(), self.map_len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_aligned_zeroed_memory() {
        let mut m = HugeBlocks::new(19456).unwrap();
        assert_eq!(m.len(), 19456);
        let s = m.as_mut_slice();
        assert_eq!(s.as_ptr() as usize % HUGE_PAGE, 0);
        assert!(s.iter().all(|b| b.as_ref().iter().all(|&w| w == 0)));
        s[19455] = Block::new();
    }
}
