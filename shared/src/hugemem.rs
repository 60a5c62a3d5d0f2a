//! Argon2 working memory for the `argon2` crate: huge pages, out of core dumps, wiped.
//!
//! A verification with the OWASP parameters touches 19 MiB. With ordinary 4 KiB pages a fresh
//! mapping takes ~5000 page faults; one advised with `MADV_HUGEPAGE` needs about ten 2 MiB
//! faults instead (the kernel may refuse huge pages; the mapping then works with small ones).
//! The mapping is advised `MADV_DONTDUMP` (a core dump of the host never holds it), and
//! [`HugeBlocks::wipe`] clears what a computation wrote with `explicit_bzero`, which the
//! compiler may not drop as a dead store.
//!
//! [`HugeBlocks::release`] gives the pages back to the kernel while keeping the mapping, so a
//! process that keeps the buffer between computations holds no memory in between (see
//! [`crate::hash::Argon2Kdf`]: with the admission gate, the pages live only inside a slot).
//!
//! libsodium, the other implementation, allocates its own memory (see [`crate::sodium`]).
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
    /// Blocks at the start that may hold data from a computation (cleared by `wipe`).
    dirty: usize,
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
        // SAFETY: the whole mapping is ours. A kernel without MADV_DONTDUMP (before 3.4)
        // would fail it; the memory is then refused rather than dumpable.
        if unsafe { libc::madvise(raw, map_len, libc::MADV_DONTDUMP) } != 0 {
            // SAFETY: exactly the mapping created above, not yet shared.
            unsafe { libc::munmap(raw, map_len) };
            return None;
        }
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
            dirty: 0,
        })
    }

    /// The first `n` blocks (at most [`len`](Self::len)), to be filled by a computation: they
    /// count as holding secret-derived data until the next [`wipe`](Self::wipe).
    pub fn for_computation(&mut self, n: usize) -> &mut [Block] {
        let n = n.min(self.len);
        self.dirty = self.dirty.max(n);
        // SAFETY: `blocks` points to `len * Block::SIZE` bytes inside our live mapping, 2 MiB
        // aligned (Block needs 64); `n <= len`. Every byte pattern is a valid `Block`
        // ([u64; 128]), and `&mut self` guarantees exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.blocks.as_ptr(), n) }
    }

    /// Clears every block a computation may have written.
    pub fn wipe(&mut self) {
        if self.dirty == 0 {
            return;
        }
        // SAFETY: the first `dirty <= len` blocks lie inside our mapping (see above) and no
        // slice of them is alive (`&mut self`). explicit_bzero is glibc's and musl's memset
        // that is never optimised away.
        unsafe {
            libc::explicit_bzero(self.blocks.as_ptr().cast(), self.dirty * Block::SIZE);
        }
        self.dirty = 0;
    }

    /// Wipes what a computation wrote, then gives every page back to the kernel
    /// (`MADV_DONTNEED`): the mapping stays, reads as zeros, and the next computation faults in
    /// fresh pages (huge ones where the kernel has them).
    pub fn release(&mut self) {
        self.wipe();
        // SAFETY: exactly our mapping; no slice of it is alive (`&mut self`). On a private
        // anonymous mapping MADV_DONTNEED only drops the pages (later reads see zeros), which
        // is what every user of this memory expects after a wipe anyway. Its failure leaves
        // the pages resident, which is harmless, so the result is ignored.
        unsafe {
            libc::madvise(self.map.as_ptr(), self.map_len, libc::MADV_DONTNEED);
        }
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
        // Normally already wiped after each computation; this covers an unwinding one.
        self.wipe();
        // SAFETY: `map`/`map_len` are exactly what mmap returned; no slice borrowed from the
        // mapping is alive, and no other reference to it exists.
        unsafe {
            libc::munmap(self.map.as_ptr(), self.map_len);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn maps_aligned_zeroed_memory_and_wipes_it() {
        let mut m = HugeBlocks::new(19456).unwrap();
        assert_eq!(m.len(), 19456);
        let s = m.for_computation(19456);
        assert_eq!(s.as_ptr() as usize % HUGE_PAGE, 0);
        assert!(s.iter().all(|b| b.as_ref().iter().all(|&w| w == 0)));
        for b in s.iter_mut() {
            b.as_mut().fill(0x5a5a_5a5a_5a5a_5a5a);
        }
        m.wipe();
        let s = m.for_computation(19456);
        assert!(s.iter().all(|b| b.as_ref().iter().all(|&w| w == 0)));
    }

    /// Resident KiB of the mapping holding `addr`, from /proc/self/smaps.
    pub(crate) fn resident_kib(addr: usize) -> usize {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut in_vma = false;
        let mut total = 0;
        for line in smaps.lines() {
            let range = line.split(' ').next().and_then(|r| r.split_once('-'));
            if let Some((lo, hi)) = range {
                if let (Ok(lo), Ok(hi)) =
                    (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
                {
                    in_vma = (lo..hi).contains(&addr);
                    continue;
                }
            }
            if in_vma {
                if let Some(kb) = line.strip_prefix("Rss:") {
                    total += kb.trim().trim_end_matches(" kB").parse::<usize>().unwrap();
                }
            }
        }
        total
    }

    #[test]
    fn release_gives_the_pages_back_and_keeps_the_mapping_usable() {
        let mut m = HugeBlocks::new(4096).unwrap();
        let s = m.for_computation(4096);
        let start = s.as_ptr() as usize;
        for b in s.iter_mut() {
            b.as_mut().fill(0x5a5a_5a5a_5a5a_5a5a);
        }
        assert!(resident_kib(start) >= 4096, "{}", resident_kib(start));
        m.release();
        assert!(
            resident_kib(start) < 64,
            "{} KiB still resident",
            resident_kib(start)
        );
        let s = m.for_computation(4096);
        assert!(s.iter().all(|b| b.as_ref().iter().all(|&w| w == 0)));
        s[0].as_mut()[0] = 1;
    }

    #[test]
    fn is_advised_out_of_core_dumps() {
        let mut m = HugeBlocks::new(1024).unwrap();
        let start = m.for_computation(1024).as_ptr() as usize;
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        // The VMA holding the blocks carries the `dd` (do not dump) flag.
        let mut in_vma = false;
        let mut flags = None;
        for line in smaps.lines() {
            if let Some(f) = line.strip_prefix("VmFlags:") {
                if in_vma {
                    flags = Some(f.split_whitespace().map(str::to_owned).collect::<Vec<_>>());
                }
                continue;
            }
            let range = line.split(' ').next().and_then(|r| r.split_once('-'));
            if let Some((lo, hi)) = range {
                if let (Ok(lo), Ok(hi)) =
                    (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
                {
                    in_vma = (lo..hi).contains(&start);
                }
            }
        }
        let flags = flags.unwrap();
        assert!(flags.iter().any(|f| f == "dd"), "{flags:?}");
    }
}
