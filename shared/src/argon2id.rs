//! Argon2id version 1.3 (RFC 9106) with a hand-vectorised compression function.
//!
//! [`hash_into`] gives the same output as the `argon2` crate's
//! `Argon2::new(Algorithm::Argon2id, Version::V0x13, params).hash_password_into_with_memory`
//! (no secret key, no associated data). What differs is the compression function G: on a CPU
//! with AVX2 it holds the 1 KiB block in 32 `ymm` values and runs the BlaMka rounds with
//! explicit shuffles (the technique of libsodium's `argon2-fill-block-avx2.c`), and it writes
//! its result straight into the destination block instead of returning a copy. Other CPUs get
//! a portable scalar G. Lanes are filled one after the other within each slice, which gives
//! the same result as filling them in parallel.
//!
//! The only `unsafe` code is the AVX2 compression (intrinsics, unaligned loads and stores of
//! exactly the 32-byte chunks of the blocks it was given) and the call into it, which
//! `avx2::Token` proves legal (an `avx2::Token` exists only where AVX2 was detected).
#![allow(unsafe_code)]

use argon2::{Block, Params};
use blake2::digest::block_api::{UpdateCore, VariableOutputCore};
use blake2::digest::block_buffer::LazyBuffer;
use blake2::{Blake2b512, Blake2bVarCore, Digest};
use zeroize::{Zeroize, Zeroizing};

/// The error type: the `argon2` crate's, so both implementations refuse the same inputs the
/// same way.
pub use argon2::Error;

/// Synchronisation points (slices) per pass.
const SYNC_POINTS: usize = 4;
/// 64-bit words in a block.
const WORDS: usize = Block::SIZE / 8;
/// Version 0x13 (1.3).
const VERSION: u32 = 0x13;
/// Argon2 type `y`: 2 is Argon2id.
const ARGON2ID: u32 = 2;

/// A block as an array of words.
type Words = [u64; WORDS];

/// Fills `memory` and writes the tag into `out`; identical output to the argon2 crate's
/// `Argon2::new(Algorithm::Argon2id, Version::V0x13, params).hash_password_into_with_memory`.
///
/// `memory` needs at least `argon2::Params::new(memory_kib, iterations, parallelism, _)
/// .block_count()` blocks (`4·p·⌊m / 4p⌋`, at least `8·p`); only that many are used. Its
/// contents on entry do not matter; on return it holds password-derived data, as with the
/// crate.
///
/// # Errors
/// The `argon2` crate's errors for the same inputs: bad `m`, `t`, `p`, an output shorter than
/// 4 bytes, a salt shorter than 8 bytes, over-long inputs, and
/// [`Error::MemoryTooLittle`] when `memory` is too short.
pub fn hash_into(
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
    memory: &mut [Block],
) -> Result<(), Error> {
    let cost = Cost {
        memory_kib,
        iterations,
        parallelism,
    };
    hash_with(
        Backend::detect(),
        cost,
        Inputs {
            password,
            salt,
            secret: &[],
            data: &[],
        },
        out,
        memory,
    )
}

/// The cost parameters `m`, `t`, `p`.
#[derive(Debug, Clone, Copy)]
struct Cost {
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
}

/// The byte-string inputs. `secret` and `data` are empty in the public API; the tests use them
/// to check the RFC 9106 test vector.
#[derive(Clone, Copy)]
struct Inputs<'a> {
    password: &'a [u8],
    salt: &'a [u8],
    secret: &'a [u8],
    data: &'a [u8],
}

/// Which compression function to use.
#[derive(Debug, Clone, Copy)]
enum Backend {
    /// Portable Rust.
    Scalar,
    /// AVX2 intrinsics; the token proves the CPU has AVX2.
    #[cfg(target_arch = "x86_64")]
    Avx2(avx2::Token),
}

impl Backend {
    /// The fastest backend this CPU supports.
    fn detect() -> Backend {
        #[cfg(target_arch = "x86_64")]
        if let Some(token) = avx2::Token::detect() {
            return Backend::Avx2(token);
        }
        Backend::Scalar
    }
}

/// The memory layout derived from the parameters.
#[derive(Debug, Clone, Copy)]
struct Layout {
    lanes: usize,
    segment_length: usize,
    lane_length: usize,
    block_count: usize,
    passes: usize,
}

/// Validates everything, then hashes.
fn hash_with(
    backend: Backend,
    cost: Cost,
    inputs: Inputs<'_>,
    out: &mut [u8],
    memory: &mut [Block],
) -> Result<(), Error> {
    // The crate's own validation of m, t, p and the output length (4..=2^32-1), and its block
    // count, so that the accepted parameters and the memory size cannot drift apart.
    let params = Params::new(
        cost.memory_kib,
        cost.iterations,
        cost.parallelism,
        Some(out.len()),
    )?;
    let password_len = u32::try_from(inputs.password.len()).map_err(|_| Error::PwdTooLong)?;
    if inputs.salt.len() < argon2::MIN_SALT_LEN {
        return Err(Error::SaltTooShort);
    }
    let salt_len = u32::try_from(inputs.salt.len()).map_err(|_| Error::SaltTooLong)?;
    let secret_len = u32::try_from(inputs.secret.len()).map_err(|_| Error::SecretTooLong)?;
    let data_len = u32::try_from(inputs.data.len()).map_err(|_| Error::AdTooLong)?;
    let out_len = u32::try_from(out.len()).map_err(|_| Error::OutputTooLong)?;

    let lanes = usize::try_from(cost.parallelism).map_err(|_| Error::ThreadsTooMany)?;
    let passes = usize::try_from(cost.iterations).map_err(|_| Error::MemoryTooMuch)?;
    let block_count = params.block_count();
    // block_count = 4 · lanes · segment_length with segment_length >= 2 (m >= 8p).
    let segment_length = block_count / (SYNC_POINTS * lanes);
    let layout = Layout {
        lanes,
        segment_length,
        lane_length: segment_length * SYNC_POINTS,
        block_count,
        passes,
    };
    let memory = memory
        .get_mut(..block_count)
        .ok_or(Error::MemoryTooLittle)?;

    // H0 || LE32(block index) || LE32(lane): the input of H' for the first two blocks of a lane.
    let mut seed = Zeroizing::new([0u8; 72]);
    {
        let mut h = Blake2b512::new();
        h.update(cost.parallelism.to_le_bytes());
        h.update(out_len.to_le_bytes());
        h.update(cost.memory_kib.to_le_bytes());
        h.update(cost.iterations.to_le_bytes());
        h.update(VERSION.to_le_bytes());
        h.update(ARGON2ID.to_le_bytes());
        h.update(password_len.to_le_bytes());
        h.update(inputs.password);
        h.update(salt_len.to_le_bytes());
        h.update(inputs.salt);
        h.update(secret_len.to_le_bytes());
        h.update(inputs.secret);
        h.update(data_len.to_le_bytes());
        h.update(inputs.data);
        let mut h0 = h.finalize();
        seed[..64].copy_from_slice(&h0);
        h0.as_mut_slice().zeroize();
    }

    let mut bytes = Zeroizing::new([0u8; Block::SIZE]);
    for (lane, lane_blocks) in memory.chunks_exact_mut(layout.lane_length).enumerate() {
        let lane = u32::try_from(lane).map_err(|_| Error::ThreadsTooMany)?;
        for (index, block) in (0u32..).zip(lane_blocks.iter_mut().take(2)) {
            seed[64..68].copy_from_slice(&index.to_le_bytes());
            seed[68..].copy_from_slice(&lane.to_le_bytes());
            blake2b_long(&seed[..], &mut bytes[..])?;
            load_block(block, &bytes);
        }
    }
    drop(seed);

    for pass in 0..layout.passes {
        for slice in 0..SYNC_POINTS {
            for lane in 0..layout.lanes {
                fill_segment(backend, memory, &layout, pass, slice, lane)?;
            }
        }
    }

    // Final block: XOR of the last block of every lane.
    let mut last = Zeroizing::new([0u64; WORDS]);
    for lane_blocks in memory.chunks_exact(layout.lane_length) {
        if let Some(block) = lane_blocks.last() {
            for (acc, word) in last.iter_mut().zip(block.as_ref()) {
                *acc ^= word;
            }
        }
    }
    for (chunk, word) in bytes.chunks_exact_mut(8).zip(last.iter()) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    blake2b_long(&bytes[..], out)
}

/// Loads a block from its little-endian byte form.
fn load_block(block: &mut Block, bytes: &[u8; Block::SIZE]) {
    for (word, chunk) in block.as_mut().iter_mut().zip(bytes.chunks_exact(8)) {
        let mut le = [0u8; 8];
        le.copy_from_slice(chunk);
        *word = u64::from_le_bytes(le);
    }
}

/// The variable-length hash H' (RFC 9106 section 3.3), for one input string.
fn blake2b_long(input: &[u8], out: &mut [u8]) -> Result<(), Error> {
    let len_bytes = u32::try_from(out.len())
        .map_err(|_| Error::OutputTooLong)?
        .to_le_bytes();
    if out.len() <= 64 {
        return blake2b_short(&[&len_bytes[..], input], out);
    }

    let mut h = Blake2b512::new();
    h.update(len_bytes);
    h.update(input);
    let mut v = h.finalize();
    let (first, mut rest) = out.split_at_mut(32);
    first.copy_from_slice(&v[..32]);
    while rest.len() > 64 {
        let (chunk, tail) = rest.split_at_mut(32);
        let next = Blake2b512::digest(v.as_slice());
        v.as_mut_slice().zeroize();
        v = next;
        chunk.copy_from_slice(&v[..32]);
        rest = tail;
    }
    let result = blake2b_short(&[v.as_slice()], rest);
    v.as_mut_slice().zeroize();
    result
}

/// BLAKE2b with an output length of 1..=64 bytes (`out.len()`), over the concatenated inputs.
fn blake2b_short(inputs: &[&[u8]], out: &mut [u8]) -> Result<(), Error> {
    let mut core = Blake2bVarCore::new(out.len()).map_err(|_| Error::OutputTooShort)?;
    let mut buffer = LazyBuffer::default();
    for input in inputs {
        buffer.digest_blocks(input, |blocks| core.update_blocks(blocks));
    }
    let mut full = Default::default();
    core.finalize_variable_core(&mut buffer, &mut full);
    let result = match full.get(..out.len()) {
        Some(tag) => {
            out.copy_from_slice(tag);
            Ok(())
        }
        None => Err(Error::OutputTooLong),
    };
    full.as_mut_slice().zeroize();
    result
}

/// Fills one segment (the blocks of `lane` in `slice`) during `pass`.
fn fill_segment(
    backend: Backend,
    memory: &mut [Block],
    layout: &Layout,
    pass: usize,
    slice: usize,
    lane: usize,
) -> Result<(), Error> {
    let seg = layout.segment_length;
    let data_independent = pass == 0 && slice < SYNC_POINTS / 2;
    // The first two blocks of each lane were set from H0.
    let first = if pass == 0 && slice == 0 { 2 } else { 0 };

    let mut addresses = Addresses::new(pass, lane, slice, layout);
    let start = lane * layout.lane_length + slice * seg + first;
    // The previous block; the first block of a lane follows the last one.
    let mut prev = if slice == 0 && first == 0 {
        start + layout.lane_length - 1
    } else {
        start - 1
    };

    for (index, cur) in (first..seg).zip(start..) {
        let rand = if data_independent {
            addresses.get(backend, index)?
        } else {
            memory
                .get(prev)
                .and_then(|b| b.as_ref().first())
                .copied()
                .ok_or(Error::MemoryTooLittle)?
        };
        let ref_index = reference_index(rand, layout, pass, slice, lane, index);
        let (dst, prev_block, ref_block) =
            three_blocks(memory, cur, prev, ref_index).ok_or(Error::MemoryTooLittle)?;
        compress(backend, prev_block, ref_block, dst, pass > 0)?;
        prev = cur;
    }
    Ok(())
}

/// The index (into the whole memory) of the block that block `index` of the segment references
/// (RFC 9106 section 3.4.1.2). `rand` is J1 in the low and J2 in the high 32 bits.
fn reference_index(
    rand: u64,
    layout: &Layout,
    pass: usize,
    slice: usize,
    lane: usize,
    index: usize,
) -> usize {
    let seg = layout.segment_length;
    let ref_lane = if pass == 0 && slice == 0 {
        lane
    } else {
        // J2 mod p; J2 < 2^32 fits any usize this code runs on.
        (rand >> 32) as usize % layout.lanes
    };
    let same_lane = ref_lane == lane;
    // The number of blocks that may be referenced: every finished block of the reference lane
    // (the last three slices on later passes), minus the previous block when that lies in
    // the reference area. Always >= 1: seg >= 2 and index >= 2 in the first slice.
    let area = match (pass, same_lane) {
        (0, true) => slice * seg + index - 1,
        (0, false) => slice * seg - usize::from(index == 0),
        (_, true) => layout.lane_length - seg + index - 1,
        (_, false) => layout.lane_length - seg - usize::from(index == 0),
    };
    let j1 = rand & 0xFFFF_FFFF;
    let x = (j1 * j1) >> 32;
    // (area · x) >> 32 < area since x < 2^32, so this neither underflows nor truncates.
    let relative = area - 1 - ((area as u64 * x) >> 32) as usize;
    let start = if pass != 0 && slice != SYNC_POINTS - 1 {
        (slice + 1) * seg
    } else {
        0
    };
    ref_lane * layout.lane_length + (start + relative) % layout.lane_length
}

/// The destination block mutably and two other blocks shared; `None` if an index is out of
/// range or either source is the destination.
fn three_blocks(
    memory: &mut [Block],
    dst: usize,
    a: usize,
    b: usize,
) -> Option<(&mut Block, &Block, &Block)> {
    let (before, rest) = memory.split_at_mut_checked(dst)?;
    let (dst_block, after) = rest.split_first_mut()?;
    let (before, after): (&[Block], &[Block]) = (before, after);
    let get = move |i: usize| {
        if i < dst {
            before.get(i)
        } else {
            after.get(i.checked_sub(dst + 1)?)
        }
    };
    Some((dst_block, get(a)?, get(b)?))
}

/// The pseudo-random numbers of data-independent addressing: block `i` of the segment uses
/// word `i % 128` of the address block, regenerated every 128 blocks (RFC 9106 section 3.4.2).
struct Addresses {
    input: Block,
    block: Block,
    /// Which group of 128 blocks `block` belongs to, once generated.
    group: Option<usize>,
}

impl Addresses {
    fn new(pass: usize, lane: usize, slice: usize, layout: &Layout) -> Addresses {
        let mut input = Block::new();
        let words = [
            pass as u64,
            lane as u64,
            slice as u64,
            layout.block_count as u64,
            layout.passes as u64,
            u64::from(ARGON2ID),
        ];
        for (w, v) in input.as_mut().iter_mut().zip(words) {
            *w = v;
        }
        Addresses {
            input,
            block: Block::new(),
            group: None,
        }
    }

    /// The address word for block `index` of the segment.
    fn get(&mut self, backend: Backend, index: usize) -> Result<u64, Error> {
        let group = index / WORDS;
        if self.group != Some(group) {
            // The counter (word 6) counts address blocks from 1: group + 1.
            if let Some(counter) = self.input.as_mut().get_mut(6) {
                *counter = group as u64 + 1;
            }
            let zero = Block::new();
            let mut tmp = Block::new();
            compress(backend, &zero, &self.input, &mut tmp, false)?;
            compress(backend, &zero, &tmp, &mut self.block, false)?;
            self.group = Some(group);
        }
        self.block
            .as_ref()
            .get(index % WORDS)
            .copied()
            .ok_or(Error::MemoryTooLittle)
    }
}

/// G: `dst = P(x ^ y) ^ x ^ y`, or `dst ^= P(x ^ y) ^ x ^ y` when `xor` (passes after the
/// first, version 1.3).
fn compress(
    backend: Backend,
    x: &Block,
    y: &Block,
    dst: &mut Block,
    xor: bool,
) -> Result<(), Error> {
    let (Ok(x), Ok(y), Ok(dst)) = (
        <&Words>::try_from(x.as_ref()),
        <&Words>::try_from(y.as_ref()),
        <&mut Words>::try_from(dst.as_mut()),
    ) else {
        return Err(Error::MemoryTooLittle);
    };
    match backend {
        Backend::Scalar => scalar::compress(x, y, dst, xor),
        #[cfg(target_arch = "x86_64")]
        Backend::Avx2(token) => avx2::compress(token, x, y, dst, xor),
    }
    Ok(())
}

/// The portable compression function.
mod scalar {
    use super::{WORDS, Words};

    /// `a + b + 2 · lo32(a) · lo32(b)` (wrapping), BlaMka's multiply-add.
    #[inline(always)]
    fn fbla(a: u64, b: u64) -> u64 {
        let m = (a & 0xFFFF_FFFF) * (b & 0xFFFF_FFFF);
        a.wrapping_add(b).wrapping_add(m.wrapping_add(m))
    }

    /// The quarter-round GB on words `a, b, c, d` of `v`.
    #[inline(always)]
    fn gb(v: &mut [u64; 16], a: usize, b: usize, c: usize, d: usize) {
        v[a] = fbla(v[a], v[b]);
        v[d] = (v[d] ^ v[a]).rotate_right(32);
        v[c] = fbla(v[c], v[d]);
        v[b] = (v[b] ^ v[c]).rotate_right(24);
        v[a] = fbla(v[a], v[b]);
        v[d] = (v[d] ^ v[a]).rotate_right(16);
        v[c] = fbla(v[c], v[d]);
        v[b] = (v[b] ^ v[c]).rotate_right(63);
    }

    /// The permutation P on the 16 words of `q` at `index(k)`, k = 0..16.
    #[inline(always)]
    fn permute(q: &mut Words, index: impl Fn(usize) -> usize) {
        let mut v = [0u64; 16];
        for (k, x) in v.iter_mut().enumerate() {
            *x = q[index(k)];
        }
        gb(&mut v, 0, 4, 8, 12);
        gb(&mut v, 1, 5, 9, 13);
        gb(&mut v, 2, 6, 10, 14);
        gb(&mut v, 3, 7, 11, 15);
        gb(&mut v, 0, 5, 10, 15);
        gb(&mut v, 1, 6, 11, 12);
        gb(&mut v, 2, 7, 8, 13);
        gb(&mut v, 3, 4, 9, 14);
        for (k, x) in v.iter().enumerate() {
            q[index(k)] = *x;
        }
    }

    pub(super) fn compress(x: &Words, y: &Words, dst: &mut Words, xor: bool) {
        let mut r = [0u64; WORDS];
        for ((r, x), y) in r.iter_mut().zip(x).zip(y) {
            *r = x ^ y;
        }
        let mut q = r;
        // Rows: the 16 consecutive words 16i..16i+16 (i < 8, so < 128).
        for i in 0..8 {
            permute(&mut q, |k| 16 * i + k);
        }
        // Columns: words 2i + 16·(k/2) + k%2 (i < 8, k < 16, so at most 127).
        for i in 0..8 {
            permute(&mut q, |k| 2 * i + 16 * (k / 2) + k % 2);
        }
        for ((d, q), r) in dst.iter_mut().zip(&q).zip(&r) {
            *d = if xor { *d ^ q ^ r } else { q ^ r };
        }
    }
}

/// The AVX2 compression function.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::Words;
    use core::arch::x86_64::{
        __m256i, _mm256_add_epi64, _mm256_blend_epi32, _mm256_loadu_si256, _mm256_mul_epu32,
        _mm256_permute4x64_epi64, _mm256_setr_epi8, _mm256_setzero_si256, _mm256_shuffle_epi8,
        _mm256_shuffle_epi32, _mm256_srli_epi64, _mm256_storeu_si256, _mm256_xor_si256,
    };

    /// Proof that the CPU supports AVX2: only [`Token::detect`] makes one.
    #[derive(Debug, Clone, Copy)]
    pub(super) struct Token(());

    impl Token {
        pub(super) fn detect() -> Option<Token> {
            std::is_x86_feature_detected!("avx2").then_some(Token(()))
        }
    }

    pub(super) fn compress(_: Token, x: &Words, y: &Words, dst: &mut Words, xor: bool) {
        // SAFETY: a `Token` exists only when the CPU supports AVX2, the one precondition.
        unsafe { compress_avx2(x, y, dst, xor) }
    }

    // The macros below expand inside `compress_avx2`, so every intrinsic runs with AVX2
    // enabled and is inlined there. Each 256-bit value holds four consecutive words.

    /// `a + b + 2 · lo32(a) · lo32(b)` on four lanes.
    macro_rules! fbla {
        ($a:expr, $b:expr) => {{
            let m = _mm256_mul_epu32($a, $b);
            _mm256_add_epi64(_mm256_add_epi64($a, $b), _mm256_add_epi64(m, m))
        }};
    }

    /// GB on four columns at once, `a`..`d` holding one word of each.
    macro_rules! gb {
        ($a:ident, $b:ident, $c:ident, $d:ident, $r24:ident, $r16:ident) => {
            $a = fbla!($a, $b);
            $d = _mm256_xor_si256($d, $a);
            $d = _mm256_shuffle_epi32::<0b10_11_00_01>($d); // rotate right 32
            $c = fbla!($c, $d);
            $b = _mm256_xor_si256($b, $c);
            $b = _mm256_shuffle_epi8($b, $r24);
            $a = fbla!($a, $b);
            $d = _mm256_xor_si256($d, $a);
            $d = _mm256_shuffle_epi8($d, $r16);
            $c = fbla!($c, $d);
            $b = _mm256_xor_si256($b, $c);
            // rotate right 63 = left 1
            $b = _mm256_xor_si256(_mm256_srli_epi64::<63>($b), _mm256_add_epi64($b, $b));
        };
    }

    /// Swaps the two words of each 128-bit half.
    macro_rules! swap_halves {
        ($x:expr) => {
            _mm256_shuffle_epi32::<0b01_00_11_10>($x)
        };
    }

    /// P on two rows of 16 words: `$s[$i..$i + 4]` and `$s[$i + 4..$i + 8]`. Row words
    /// `v0..v15` sit as a = v0..3, b = v4..7, c = v8..11, d = v12..15, so the column step is
    /// lane-wise and the diagonal step rotates b, c, d by one, two, three lanes.
    macro_rules! rows {
        ($s:ident, $i:expr, $r24:ident, $r16:ident) => {{
            let (mut a0, mut b0, mut c0, mut d0) = ($s[$i], $s[$i + 1], $s[$i + 2], $s[$i + 3]);
            let (mut a1, mut b1, mut c1, mut d1) = ($s[$i + 4], $s[$i + 5], $s[$i + 6], $s[$i + 7]);
            gb!(a0, b0, c0, d0, $r24, $r16);
            gb!(a1, b1, c1, d1, $r24, $r16);
            b0 = _mm256_permute4x64_epi64::<0b00_11_10_01>(b0);
            c0 = _mm256_permute4x64_epi64::<0b01_00_11_10>(c0);
            d0 = _mm256_permute4x64_epi64::<0b10_01_00_11>(d0);
            b1 = _mm256_permute4x64_epi64::<0b00_11_10_01>(b1);
            c1 = _mm256_permute4x64_epi64::<0b01_00_11_10>(c1);
            d1 = _mm256_permute4x64_epi64::<0b10_01_00_11>(d1);
            gb!(a0, b0, c0, d0, $r24, $r16);
            gb!(a1, b1, c1, d1, $r24, $r16);
            b0 = _mm256_permute4x64_epi64::<0b10_01_00_11>(b0);
            c0 = _mm256_permute4x64_epi64::<0b01_00_11_10>(c0);
            d0 = _mm256_permute4x64_epi64::<0b00_11_10_01>(d0);
            b1 = _mm256_permute4x64_epi64::<0b10_01_00_11>(b1);
            c1 = _mm256_permute4x64_epi64::<0b01_00_11_10>(c1);
            d1 = _mm256_permute4x64_epi64::<0b00_11_10_01>(d1);
            ($s[$i], $s[$i + 1], $s[$i + 2], $s[$i + 3]) = (a0, b0, c0, d0);
            ($s[$i + 4], $s[$i + 5], $s[$i + 6], $s[$i + 7]) = (a1, b1, c1, d1);
        }};
    }

    /// P on two columns, `2i, 2i + 1` and `2i + 2, 2i + 3` for `$i` = i in 0..4: value
    /// `$s[$i + 4k]` holds words `v2k, v2k+1` of the first column and then of the second. So
    /// a0 = (v0, v1), a1 = (v2, v3), b0 = (v4, v5), ... d1 = (v14, v15) in each half; the
    /// column step is again lane-wise, and the diagonal step regroups b and d across a0/a1
    /// with blends and in-half swaps and exchanges c0 and c1.
    macro_rules! columns {
        ($s:ident, $i:expr, $r24:ident, $r16:ident) => {{
            let (mut a0, mut a1, mut b0, mut b1) = ($s[$i], $s[$i + 4], $s[$i + 8], $s[$i + 12]);
            let (mut c0, mut c1, mut d0, mut d1) =
                ($s[$i + 16], $s[$i + 20], $s[$i + 24], $s[$i + 28]);
            gb!(a0, b0, c0, d0, $r24, $r16);
            gb!(a1, b1, c1, d1, $r24, $r16);
            // b0 = (v5, v6), b1 = (v7, v4), d0 = (v15, v12), d1 = (v13, v14); c0 <-> c1.
            let (t0, t1) = (
                _mm256_blend_epi32::<0x33>(b0, b1),
                _mm256_blend_epi32::<0xCC>(b0, b1),
            );
            b0 = swap_halves!(t0);
            b1 = swap_halves!(t1);
            let (t0, t1) = (
                _mm256_blend_epi32::<0xCC>(d0, d1),
                _mm256_blend_epi32::<0x33>(d0, d1),
            );
            d0 = swap_halves!(t0);
            d1 = swap_halves!(t1);
            gb!(a0, b0, c1, d0, $r24, $r16);
            gb!(a1, b1, c0, d1, $r24, $r16);
            let (t0, t1) = (
                _mm256_blend_epi32::<0xCC>(b0, b1),
                _mm256_blend_epi32::<0x33>(b0, b1),
            );
            b0 = swap_halves!(t0);
            b1 = swap_halves!(t1);
            let (t0, t1) = (
                _mm256_blend_epi32::<0x33>(d0, d1),
                _mm256_blend_epi32::<0xCC>(d0, d1),
            );
            d0 = swap_halves!(t0);
            d1 = swap_halves!(t1);
            ($s[$i], $s[$i + 4], $s[$i + 8], $s[$i + 12]) = (a0, a1, b0, b1);
            ($s[$i + 16], $s[$i + 20], $s[$i + 24], $s[$i + 28]) = (c0, c1, d0, d1);
        }};
    }

    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    unsafe fn compress_avx2(x: &Words, y: &Words, dst: &mut Words, xor: bool) {
        // SAFETY: the caller guarantees AVX2. Every load reads exactly one `chunks_exact(4)`
        // chunk (four `u64`, 32 bytes) of `x`, `y` or `dst`, every store writes exactly one
        // chunk of `dst`; the unaligned forms have no alignment requirement. All other
        // intrinsics are register-only.
        unsafe {
            let r24 = _mm256_setr_epi8(
                3, 4, 5, 6, 7, 0, 1, 2, 11, 12, 13, 14, 15, 8, 9, 10, //
                3, 4, 5, 6, 7, 0, 1, 2, 11, 12, 13, 14, 15, 8, 9, 10,
            );
            let r16 = _mm256_setr_epi8(
                2, 3, 4, 5, 6, 7, 0, 1, 10, 11, 12, 13, 14, 15, 8, 9, //
                2, 3, 4, 5, 6, 7, 0, 1, 10, 11, 12, 13, 14, 15, 8, 9,
            );
            let mut r = [_mm256_setzero_si256(); 32];
            for ((r, x), y) in r.iter_mut().zip(x.chunks_exact(4)).zip(y.chunks_exact(4)) {
                *r = _mm256_xor_si256(
                    _mm256_loadu_si256(x.as_ptr().cast::<__m256i>()),
                    _mm256_loadu_si256(y.as_ptr().cast::<__m256i>()),
                );
            }
            let mut s = r;
            rows!(s, 0, r24, r16);
            rows!(s, 8, r24, r16);
            rows!(s, 16, r24, r16);
            rows!(s, 24, r24, r16);
            columns!(s, 0, r24, r16);
            columns!(s, 1, r24, r16);
            columns!(s, 2, r24, r16);
            columns!(s, 3, r24, r16);
            for ((d, s), r) in dst.chunks_exact_mut(4).zip(&s).zip(&r) {
                let mut v = _mm256_xor_si256(*s, *r);
                if xor {
                    v = _mm256_xor_si256(v, _mm256_loadu_si256(d.as_ptr().cast::<__m256i>()));
                }
                _mm256_storeu_si256(d.as_mut_ptr().cast::<__m256i>(), v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::{Algorithm, Argon2, Version};
    use proptest::prelude::*;

    fn crate_hash(m: u32, t: u32, p: u32, password: &[u8], salt: &[u8], len: usize) -> Vec<u8> {
        let params = Params::new(m, t, p, Some(len)).unwrap();
        let mut out = vec![0u8; len];
        let mut memory = vec![Block::new(); params.block_count()];
        // `hash_password_into` needs the crate's `alloc` feature, which the workspace leaves off.
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_into_with_memory(password, salt, &mut out, &mut memory)
            .unwrap();
        out
    }

    fn blocks_for(m: u32, t: u32, p: u32) -> Vec<Block> {
        vec![Block::new(); Params::new(m, t, p, None).unwrap().block_count()]
    }

    /// Every backend this CPU supports, the scalar one first.
    fn backends() -> Vec<Backend> {
        let mut all = vec![Backend::Scalar];
        #[cfg(target_arch = "x86_64")]
        if let Some(token) = avx2::Token::detect() {
            all.push(Backend::Avx2(token));
        }
        all
    }

    fn ours(
        backend: Backend,
        (m, t, p): (u32, u32, u32),
        password: &[u8],
        salt: &[u8],
        len: usize,
    ) -> Vec<u8> {
        let mut out = vec![0u8; len];
        let mut memory = blocks_for(m, t, p);
        // Garbage in the memory must not matter.
        for (i, b) in memory.iter_mut().enumerate() {
            b.as_mut().fill(i as u64 ^ 0xA5A5_5A5A_0F0F_F0F0);
        }
        let cost = Cost {
            memory_kib: m,
            iterations: t,
            parallelism: p,
        };
        let inputs = Inputs {
            password,
            salt,
            secret: &[],
            data: &[],
        };
        hash_with(backend, cost, inputs, &mut out, &mut memory).unwrap();
        out
    }

    #[test]
    fn argon2id_rfc9106_vector() {
        // RFC 9106 section 5.3, with its secret and associated data (internal path only).
        let expected: [u8; 32] = [
            0x0d, 0x64, 0x0d, 0xf5, 0x8d, 0x78, 0x76, 0x6c, 0x08, 0xc0, 0x37, 0xa3, 0x4a, 0x8b,
            0x53, 0xc9, 0xd0, 0x1e, 0xf0, 0x45, 0x2d, 0x75, 0xb6, 0x5e, 0xb5, 0x25, 0x20, 0xe9,
            0x6b, 0x01, 0xe6, 0x59,
        ];
        for backend in backends() {
            let mut out = [0u8; 32];
            let mut memory = blocks_for(32, 3, 4);
            let cost = Cost {
                memory_kib: 32,
                iterations: 3,
                parallelism: 4,
            };
            let inputs = Inputs {
                password: &[1; 32],
                salt: &[2; 16],
                secret: &[3; 8],
                data: &[4; 12],
            };
            hash_with(backend, cost, inputs, &mut out, &mut memory).unwrap();
            assert_eq!(out, expected, "{backend:?}");
        }
        // The same parameters without secret and data, through the public API.
        let mut out = [0u8; 32];
        let mut memory = blocks_for(32, 3, 4);
        hash_into(32, 3, 4, &[1; 32], &[2; 16], &mut out, &mut memory).unwrap();
        assert_eq!(out.to_vec(), crate_hash(32, 3, 4, &[1; 32], &[2; 16], 32));
    }

    #[test]
    fn argon2id_reference_cli_vector() {
        // `echo -n password | argon2 somesalt -id -t 2 -m 10 -p 1 -l 32` (reference C code).
        use base64ct::{Base64Unpadded, Encoding};
        let expected =
            Base64Unpadded::decode_vec("7FfsnA6vUe7qLpL/3Kqc3uR48ZJyFbUVt7jWZlf0Htk").unwrap();
        for backend in backends() {
            assert_eq!(
                ours(backend, (1024, 2, 1), b"password", b"somesalt", 32),
                expected
            );
        }
    }

    #[test]
    fn argon2id_owasp_matches_crate() {
        let (m, t, p) = (19456, 2, 1);
        let expected = crate_hash(
            m,
            t,
            p,
            b"abcdefghijklmnopqrstuvwx",
            b"0123456789abcdef",
            32,
        );
        for backend in backends() {
            let got = ours(
                backend,
                (m, t, p),
                b"abcdefghijklmnopqrstuvwx",
                b"0123456789abcdef",
                32,
            );
            assert_eq!(got, expected, "{backend:?}");
        }
        let mut out = [0u8; 32];
        let mut memory = blocks_for(m, t, p);
        hash_into(
            m,
            t,
            p,
            b"abcdefghijklmnopqrstuvwx",
            b"0123456789abcdef",
            &mut out,
            &mut memory,
        )
        .unwrap();
        assert_eq!(out.to_vec(), expected);
    }

    #[test]
    fn argon2id_long_outputs_and_non_multiple_memory() {
        // H' beyond 64 bytes, and m not a multiple of 4p (the crate rounds down).
        for (m, p, len) in [(37, 2, 65), (100, 3, 96), (64, 4, 200), (9, 1, 1024)] {
            let expected = crate_hash(m, 2, p, b"pw", b"saltsalt", len);
            for backend in backends() {
                assert_eq!(ours(backend, (m, 2, p), b"pw", b"saltsalt", len), expected);
            }
        }
    }

    #[test]
    fn argon2id_avx2_is_detected_here() {
        // Not a requirement, but the benchmark numbers assume it on x86-64 test machines.
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            assert!(matches!(Backend::detect(), Backend::Avx2(_)));
        }
    }

    #[test]
    fn argon2id_bad_parameters_are_errors() {
        let mut memory = blocks_for(64, 1, 1);
        let mut out = [0u8; 32];
        let salt = b"saltsalt";
        let mut run = |m: u32, t: u32, p: u32, salt: &[u8], out: &mut [u8], blocks: usize| {
            hash_into(m, t, p, b"pw", salt, out, &mut memory[..blocks])
        };
        assert_eq!(
            run(7, 1, 1, salt, &mut out, 64),
            Err(Error::MemoryTooLittle)
        );
        assert_eq!(
            run(15, 1, 2, salt, &mut out, 64),
            Err(Error::MemoryTooLittle)
        );
        assert_eq!(
            run(0, 1, 1, salt, &mut out, 64),
            Err(Error::MemoryTooLittle)
        );
        assert_eq!(run(64, 0, 1, salt, &mut out, 64), Err(Error::TimeTooSmall));
        assert_eq!(run(64, 1, 0, salt, &mut out, 64), Err(Error::ThreadsTooFew));
        assert_eq!(
            run(u32::MAX, 1, 1 << 24, salt, &mut out, 64),
            Err(Error::ThreadsTooMany)
        );
        assert_eq!(
            run(64, 1, 1, b"1234567", &mut out, 64),
            Err(Error::SaltTooShort)
        );
        assert_eq!(run(64, 1, 1, b"", &mut out, 64), Err(Error::SaltTooShort));
        assert_eq!(
            run(64, 1, 1, salt, &mut out[..3], 64),
            Err(Error::OutputTooShort)
        );
        assert_eq!(run(64, 1, 1, salt, &mut [], 64), Err(Error::OutputTooShort));
        assert_eq!(
            run(64, 1, 1, salt, &mut out, 63),
            Err(Error::MemoryTooLittle)
        );
        assert_eq!(
            run(64, 1, 1, salt, &mut out, 0),
            Err(Error::MemoryTooLittle)
        );
        // A huge m with a small buffer is refused before anything is touched.
        assert_eq!(
            run(u32::MAX, 1, 1, salt, &mut out, 64),
            Err(Error::MemoryTooLittle)
        );
        // The boundary cases are accepted, and a longer buffer is fine.
        assert_eq!(run(8, 1, 1, salt, &mut out, 8), Ok(()));
        assert_eq!(run(16, 1, 2, salt, &mut out[..4], 16), Ok(()));
        assert_eq!(run(15, 1, 1, salt, &mut out, 64), Ok(()));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn argon2id_matches_crate(
            (p, m) in (1u32..=4).prop_flat_map(|p| (Just(p), 8 * p..=256)),
            t in 1u32..=4,
            password in proptest::collection::vec(any::<u8>(), 0..64),
            salt in proptest::collection::vec(any::<u8>(), 8..32),
            len in 4usize..=64,
        ) {
            let expected = crate_hash(m, t, p, &password, &salt, len);
            for backend in backends() {
                prop_assert_eq!(ours(backend, (m, t, p), &password, &salt, len), expected.clone());
            }
            let mut out = vec![0u8; len];
            let mut memory = blocks_for(m, t, p);
            hash_into(m, t, p, &password, &salt, &mut out, &mut memory).unwrap();
            prop_assert_eq!(out, expected);
        }
    }
}
