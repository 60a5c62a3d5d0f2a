//! Section 4: one Argon2id computation (OWASP parameters) by each candidate implementation, in
//! one run, so that the choice in `apppw::hash` rests on numbers taken side by side:
//!
//! - libsodium from the system (`crypto_pwhash_argon2id`, what apppw uses for `p = 1`);
//! - the `argon2` crate (RustCrypto) on memory of ours, warm or fresh, with and without the
//!   wipe apppw adds (what apppw uses for other parameters);
//! - rust-argon2 (a second pure-Rust implementation) and the system's reference C library
//!   (libargon2, loaded with `dlopen` when installed), for comparison;
//!
//! in a warm process (the resident PAM module), in a fresh process (one checkpassword call:
//! the benchmark runs itself with `--argon-once IMPL`), and the memory costs apart: the wipe
//! and libsodium's own allocation. Every candidate's output is checked against libsodium's.
#![allow(unsafe_code)] // dlopen/dlsym of libargon2

use crate::mem::{self, SmallPages};
use crate::stats::{Results, ThroughputRow};
use crate::{Res, ms_since, progress};
use apppw::hash::{Argon2Kdf, Kdf, Params, Phc};
use apppw::hugemem::HugeBlocks;
use std::ffi::{c_int, c_void};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// The inputs of every timed computation: a 24-letter app password and a 16-byte salt.
const PASSWORD: &[u8] = b"abcdefghijklmnopqrstuvwx";
const SALT: &[u8; 16] = b"0123456789abcdef";
/// The same computation's cost as a 20-byte salt, which only the crate can take.
const SALT20: &[u8; 20] = b"0123456789abcdefghij";

fn params() -> Params {
    Params::default()
}

fn crate_argon2() -> Res<argon2::Argon2<'static>> {
    let p = params();
    Ok(argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon2::Params::new(p.memory_kib, p.iterations, p.parallelism, Some(32))
            .map_err(|e| e.to_string())?,
    ))
}

fn block_count() -> Res<usize> {
    Ok(crate_argon2()?.params().block_count())
}

/// libsodium, as `apppw::sodium` calls it (its own memory, every call).
fn libsodium(salt: &[u8; 16]) -> Res<[u8; 32]> {
    let p = params();
    let mut out = [0u8; 32];
    apppw::sodium::argon2id(&mut out, PASSWORD, salt, p.iterations, p.memory_kib)
        .map_err(|e| e.0)?;
    Ok(out)
}

/// The crate on `memory`.
fn with_crate(memory: &mut [argon2::Block], salt: &[u8]) -> Res<[u8; 32]> {
    let mut out = [0u8; 32];
    crate_argon2()?
        .hash_password_into_with_memory(PASSWORD, salt, &mut out, memory)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

/// rust-argon2 (allocates its own memory, a `Vec`, every call).
fn rust_argon2() -> Res<[u8; 32]> {
    let p = params();
    let config = rust_argon2::Config {
        variant: rust_argon2::Variant::Argon2id,
        version: rust_argon2::Version::Version13,
        mem_cost: p.memory_kib,
        time_cost: p.iterations,
        lanes: p.parallelism,
        hash_length: 32,
        ..rust_argon2::Config::default()
    };
    let v = rust_argon2::hash_raw(PASSWORD, SALT, &config).map_err(|e| e.to_string())?;
    v.as_slice()
        .try_into()
        .map_err(|_| "rust-argon2: wrong output length".into())
}

/// `argon2id_hash_raw` of the system's reference implementation (libargon2), if installed.
type HashRaw = unsafe extern "C" fn(
    t_cost: u32,
    m_cost: u32,
    parallelism: u32,
    pwd: *const c_void,
    pwdlen: usize,
    salt: *const c_void,
    saltlen: usize,
    hash: *mut c_void,
    hashlen: usize,
) -> c_int;

fn libargon2_load() -> Result<HashRaw, String> {
    let name = c"libargon2.so.1";
    // SAFETY: dlopen with a NUL-terminated name; the handle is never closed, so symbols from
    // it stay valid for the life of the process.
    let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if handle.is_null() {
        return Err("libargon2.so.1 not installed (package libargon2-1)".into());
    }
    // SAFETY: a valid handle and a NUL-terminated symbol name.
    let sym = unsafe { libc::dlsym(handle, c"argon2id_hash_raw".as_ptr()) };
    if sym.is_null() {
        return Err("argon2id_hash_raw not found in libargon2.so.1".into());
    }
    // SAFETY: argon2id_hash_raw has exactly this signature in argon2.h (all its releases).
    Ok(unsafe { std::mem::transmute::<*mut c_void, HashRaw>(sym) })
}

fn libargon2(f: HashRaw) -> Res<[u8; 32]> {
    let p = params();
    let mut out = [0u8; 32];
    // SAFETY: the pointers and lengths are those of live slices; the library writes exactly
    // `hashlen` bytes into `out` and keeps no pointer after returning.
    let rc = unsafe {
        f(
            p.iterations,
            p.memory_kib,
            p.parallelism,
            PASSWORD.as_ptr().cast(),
            PASSWORD.len(),
            SALT.as_ptr().cast(),
            SALT.len(),
            out.as_mut_ptr().cast(),
            out.len(),
        )
    };
    if rc != 0 {
        return Err(format!("argon2id_hash_raw returned {rc}").into());
    }
    Ok(out)
}

/// `--argon-once IMPL [STORED]`: one computation in this fresh process; prints the
/// milliseconds it took (for `apppw`: the self-test, then the verification of `STORED`).
pub fn once(which: &str, stored: Option<&str>) -> Res<()> {
    let t = Instant::now();
    let out = match which {
        "libsodium" => libsodium(SALT)?,
        "crate-huge" => {
            let mut m = HugeBlocks::new(block_count()?).ok_or("mmap failed")?;
            let n = m.len();
            let out = with_crate(m.for_computation(n), SALT)?;
            m.wipe();
            out
        }
        "crate-heap" => with_crate(&mut vec![argon2::Block::new(); block_count()?], SALT)?,
        "apppw" | "apppw-one" => {
            if which == "apppw-one" {
                // As apppw-checkpassword does.
                apppw::hash::self_test_for_one_attempt();
            }
            apppw::hash::self_test()?;
            let self_test = ms_since(t);
            let stored = stored.ok_or("--argon-once apppw needs the stored hash")?;
            let t = Instant::now();
            if Argon2Kdf::new().verify(stored, PASSWORD) != Ok(true) {
                return Err("apppw: verification failed".into());
            }
            println!("{self_test} {}", ms_since(t));
            return Ok(());
        }
        other => return Err(format!("unknown implementation {other}").into()),
    };
    let ms = ms_since(t);
    println!("{ms} {}", hex(&out));
    Ok(())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The PHC string of PASSWORD with `salt` (computed by the crate, checked by libsodium).
fn stored_hash(salt: &[u8]) -> Res<String> {
    let mut memory = vec![argon2::Block::new(); block_count()?];
    let hash = with_crate(&mut memory, salt)?;
    Ok(Phc {
        params: params(),
        salt: salt.to_vec(),
        hash: hash.to_vec(),
    }
    .encode())
}

/// Runs `--argon-once which [stored]` `n` times in fresh processes; the printed numbers per run.
fn fresh_processes(
    which: &str,
    stored: Option<&str>,
    n: usize,
    expect: &[u8; 32],
) -> Res<Vec<Vec<f64>>> {
    let exe = std::env::current_exe()?;
    let mut runs = Vec::new();
    for i in 0..n + 1 {
        let out = Command::new(&exe)
            .args(["--argon-once", which])
            .args(stored)
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(format!(
                "--argon-once {which}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )
            .into());
        }
        let fields: Vec<&str> = text.split_whitespace().collect();
        let mut numbers = Vec::new();
        for f in &fields {
            match f.parse::<f64>() {
                Ok(v) if f.len() < 40 => numbers.push(v),
                _ if *f == hex(expect) => {}
                _ => return Err(format!("--argon-once {which}: wrong output {f}").into()),
            }
        }
        if i >= 1 {
            runs.push(numbers);
        }
    }
    Ok(runs)
}

/// Section 4.
pub fn section(
    n: usize,
    seconds: f64,
    clients: &[usize],
    work: &std::path::Path,
    r: &mut Results,
) -> Res<()> {
    progress("Argon2id candidates");
    // apppw's KDF through an admission gate of its own (uncontended here): what the gate's
    // semaphore operations cost, and the crate path giving its pages back after each use.
    let gate_dir = work.join("argon-gate");
    std::fs::create_dir_all(&gate_dir)?;
    let gate = apppw::gate::Settings {
        path: gate_dir.join("argon2-gate"),
        ..apppw::gate::Settings::default()
    };
    if let Ok(mut gates) = crate::setup::GATES.lock() {
        gates.push(gate.path.clone());
    }
    let mut kdf_gated = Argon2Kdf::new();
    kdf_gated.use_gate(&gate);
    let mut kdf20_gated = Argon2Kdf::new();
    kdf20_gated.use_gate(&gate);
    if !(kdf_gated.is_gated() && kdf20_gated.is_gated()) {
        return Err(format!("cannot open a gate in {}", gate_dir.display()).into());
    }
    let expect = libsodium(SALT)?;
    let stored = stored_hash(SALT)?;
    let stored20 = stored_hash(SALT20)?;
    let blocks = block_count()?;

    // Warm process, interleaved round by round so that the machine's noise hits all alike.
    let argon2lib = libargon2_load();
    let mut kdf = Argon2Kdf::new();
    let mut kdf20 = Argon2Kdf::new();
    let mut warm = HugeBlocks::new(blocks).ok_or("mmap failed")?;
    let names = [
        "libsodium",
        "apppw",
        "apppw-gated",
        "apppw-crate",
        "apppw-crate-gated",
        "crate-warm",
        "wipe",
        "sodium-mem",
        "rust-argon2",
        "libargon2",
    ];
    let mut t: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    for i in 0..n + 2 {
        let mut row = Vec::new();
        // libsodium direct.
        let s = Clock::start();
        let out = libsodium(SALT)?;
        row.push(s.stop());
        check("libsodium", &out, &expect)?;
        // apppw: Argon2Kdf::verify on a p=1, 16-byte-salt hash (libsodium).
        let s = Clock::start();
        let ok = kdf.verify(&stored, PASSWORD).map_err(|e| e.to_string())?;
        row.push(s.stop());
        if !ok {
            return Err("apppw: verification failed".into());
        }
        // The same through an admission gate (right after, so that both find the memory the
        // same way).
        let s = Clock::start();
        let ok = kdf_gated
            .verify(&stored, PASSWORD)
            .map_err(|e| e.to_string())?;
        row.push(s.stop());
        if !ok {
            return Err("apppw (gated): verification failed".into());
        }
        // apppw's crate path (20-byte salt): warm memory, wiped after.
        let s = Clock::start();
        let ok = kdf20
            .verify(&stored20, PASSWORD)
            .map_err(|e| e.to_string())?;
        row.push(s.stop());
        if !ok {
            return Err("apppw (crate path): verification failed".into());
        }
        // The crate path through the gate: its pages given back after each computation.
        let s = Clock::start();
        let ok = kdf20_gated
            .verify(&stored20, PASSWORD)
            .map_err(|e| e.to_string())?;
        row.push(s.stop());
        if !ok {
            return Err("apppw (crate path, gated): verification failed".into());
        }
        // The crate on warm huge-page memory, no wipe; then the wipe alone.
        let s = Clock::start();
        let out = with_crate(warm.for_computation(blocks), SALT)?;
        row.push(s.stop());
        check("argon2 crate", &out, &expect)?;
        let s = Clock::start();
        warm.wipe();
        row.push(s.stop());
        // What libsodium does for memory in every call, alone.
        let s = Clock::start();
        mem::populate_and_unmap(blocks * argon2::Block::SIZE).ok_or("mmap failed")?;
        row.push(s.stop());
        // rust-argon2.
        let s = Clock::start();
        let out = rust_argon2()?;
        row.push(s.stop());
        check("rust-argon2", &out, &expect)?;
        // libargon2.
        if let Ok(f) = &argon2lib {
            let s = Clock::start();
            let out = libargon2(*f)?;
            row.push(s.stop());
            check("libargon2", &out, &expect)?;
        }
        if i >= 2 {
            for (k, (wall, thread)) in row.into_iter().enumerate() {
                t[k].push(wall);
                cpu[k].push(thread);
            }
        }
    }
    drop(warm);
    drop(kdf20);
    let sodium = apppw::sodium::version();
    let rows: [(&'static str, String, &str); 10] = [
        (
            "argon_sodium",
            format!("libsodium {sodium} `crypto_pwhash_argon2id`, warm process"),
            "allocates, populates and unmaps its 19 MiB (4 KiB pages) in every call; no wipe",
        ),
        (
            "argon_warm",
            "apppw `Argon2Kdf::verify`, p=1 hash (libsodium), warm process".into(),
            "PHC parse + libsodium + compare: the physical limit per attempt",
        ),
        (
            "argon_gated",
            "apppw `Argon2Kdf::verify`, p=1 hash (libsodium), through an admission gate".into(),
            "one free slot taken and given back (semtimedop) around the computation",
        ),
        (
            "argon_apppw_crate",
            "apppw `Argon2Kdf::verify`, 20-byte-salt hash (argon2 crate), warm".into(),
            "warm huge-page memory, wiped after each verification",
        ),
        (
            "argon_apppw_crate_gated",
            "apppw `Argon2Kdf::verify`, 20-byte-salt hash (argon2 crate), through an admission gate"
                .into(),
            "pages given back to the kernel after each computation (MADV_DONTNEED), faulted in again",
        ),
        (
            "argon_crate_warm",
            "argon2 0.6 crate, warm huge-page memory, no wipe".into(),
            "RustCrypto",
        ),
        (
            "argon_wipe",
            "wipe of the crate's 19 MiB (explicit_bzero), warm".into(),
            "what the wipe adds to each crate verification",
        ),
        (
            "argon_sodium_mem",
            "mmap(MAP_POPULATE) + munmap of 19 MiB, 4 KiB pages".into(),
            "libsodium's own memory handling, alone",
        ),
        (
            "argon_rust_argon2",
            "rust-argon2 3.0, warm process".into(),
            "allocates its memory (a Vec) in every call",
        ),
        (
            "argon_libargon2",
            "libargon2 (reference C, system library), warm process".into(),
            "allocates and wipes its memory in every call",
        ),
    ];
    for (k, (key, what, note)) in rows.into_iter().enumerate() {
        if key == "argon_libargon2" {
            if let Err(why) = &argon2lib {
                r.skip("4", &what, why);
                continue;
            }
        }
        r.add("4", key, &what, &t[k], note);
    }
    // The same rows in CPU time of the measuring thread (user + system, so libsodium's page
    // faults count): on a machine shared with other work, wall time also counts the time the
    // thread waited for a core.
    let cpu_rows: [(&'static str, &str); 10] = [
        ("cpu_sodium", "libsodium, warm process"),
        ("cpu_warm", "apppw `Argon2Kdf::verify`, libsodium path"),
        (
            "cpu_gated",
            "apppw `Argon2Kdf::verify`, libsodium path, through a gate",
        ),
        (
            "cpu_apppw_crate",
            "apppw `Argon2Kdf::verify`, argon2 crate path (wiped)",
        ),
        (
            "cpu_apppw_crate_gated",
            "apppw `Argon2Kdf::verify`, argon2 crate path, through a gate (pages released)",
        ),
        (
            "cpu_crate_warm",
            "argon2 crate, warm huge-page memory, no wipe",
        ),
        ("cpu_wipe", "wipe of 19 MiB (explicit_bzero)"),
        ("cpu_sodium_mem", "mmap(MAP_POPULATE) + munmap of 19 MiB"),
        ("cpu_rust_argon2", "rust-argon2 3.0"),
        ("cpu_libargon2", "libargon2 (reference C)"),
    ];
    for (k, (key, what)) in cpu_rows.into_iter().enumerate() {
        if !cpu[k].is_empty() {
            r.add(
                "4",
                key,
                &format!("CPU time: {what}"),
                &cpu[k],
                "thread CPU time, same iterations",
            );
        }
    }

    // Fresh memory in a warm process, one block per variant (not interleaved: unmapping 4 KiB
    // pages between huge-page runs fragments free memory and makes the next huge-page faults
    // compact it).
    let mut fresh_huge = Vec::new();
    let mut fresh_small = Vec::new();
    for i in 0..n + 2 {
        let s = Instant::now();
        let mut m = HugeBlocks::new(blocks).ok_or("mmap failed")?;
        let out = with_crate(m.for_computation(blocks), SALT)?;
        m.wipe();
        drop(m);
        if i >= 2 {
            fresh_huge.push(ms_since(s));
        }
        check("argon2 crate", &out, &expect)?;
    }
    for i in 0..n + 2 {
        let s = Instant::now();
        let mut m = SmallPages::new(blocks).ok_or("mmap failed")?;
        let out = with_crate(m.as_mut_slice(), SALT)?;
        drop(m);
        if i >= 2 {
            fresh_small.push(ms_since(s));
        }
        check("argon2 crate", &out, &expect)?;
    }
    r.add(
        "4",
        "argon_crate_fresh_huge",
        "argon2 crate, fresh huge-page mapping per call, wiped",
        &fresh_huge,
        "as apppw's crate path in a new process",
    );
    r.add(
        "4",
        "argon_crate_fresh_small",
        "argon2 crate, fresh 4 KiB-page mapping per call",
        &fresh_small,
        "for comparison: the default allocator",
    );

    // Fresh processes: what one checkpassword call pays.
    progress("Argon2id in fresh processes");
    let procs = n.min(20);
    let first = |runs: Vec<Vec<f64>>, k: usize| -> Vec<f64> {
        runs.iter().filter_map(|v| v.get(k).copied()).collect()
    };
    let apppw_runs = fresh_processes("apppw", Some(&stored), procs, &expect)?;
    r.add(
        "4",
        "argon_selftest",
        "apppw self-test (RFC 9106 vector + m=19456,t=2,p=1 vector), fresh process",
        &first(apppw_runs.clone(), 0),
        "once per long-lived process (auth worker, web page, CLI), at the first Argon2 use",
    );
    let one_runs = fresh_processes("apppw-one", Some(&stored), procs, &expect)?;
    r.add(
        "4",
        "argon_selftest_one",
        "apppw self-test, one-attempt profile (RFC 9106 vector + m=1024,t=2,p=1 vector), fresh process",
        &first(one_runs.clone(), 0),
        "what apppw-checkpassword checks; includes sodium_init",
    );
    r.add(
        "4",
        "argon_fresh",
        "apppw `Argon2Kdf::verify` after the one-attempt self-test, fresh process",
        &first(one_runs, 1),
        "libsodium; what one checkpassword attempt pays besides the self-test",
    );
    for (which, key, what, note) in [
        (
            "libsodium",
            "argon_sodium_proc",
            "libsodium, first call in a fresh process",
            "includes sodium_init (CPU feature detection)",
        ),
        (
            "crate-huge",
            "argon_crate_proc",
            "argon2 crate, huge-page mapping, fresh process",
            "mapping, faults, computation and wipe",
        ),
        (
            "crate-heap",
            "argon_crate_heap_proc",
            "argon2 crate, default allocator, fresh process",
            "for comparison",
        ),
    ] {
        let runs = fresh_processes(which, None, procs, &expect)?;
        r.add("4", key, what, &first(runs, 0), note);
    }

    // Throughput of bare verifications, one warm KDF per thread.
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    r.values.insert("cores", cores as f64);
    let mut levels = vec![cores];
    levels.extend(clients.iter().copied().filter(|&c| c > 0 && c != cores));
    for threads in levels {
        let (total, rate) = parallel(&stored, threads, seconds);
        if threads == cores {
            r.values.insert("argon_parallel_rate", rate);
        }
        r.throughput.push(ThroughputRow {
            what: "(bare Argon2id in-process, apppw (libsodium), one KDF per thread)",
            clients: threads,
            per_second: rate,
            latency: None,
            ok: total,
            failed: 0,
        });
    }
    let (total, rate) = parallel(&stored20, cores, seconds);
    r.throughput.push(ThroughputRow {
        what: "(bare Argon2id in-process, apppw's argon2 crate path, warm memory per thread)",
        clients: cores,
        per_second: rate,
        latency: None,
        ok: total,
        failed: 0,
    });
    Ok(())
}

/// Wall time and the calling thread's CPU time (CLOCK_THREAD_CPUTIME_ID) of one measurement.
struct Clock {
    wall: Instant,
    cpu: f64,
}

impl Clock {
    fn start() -> Clock {
        Clock {
            wall: Instant::now(),
            cpu: thread_cpu_ms(),
        }
    }

    /// (wall ms, CPU ms) since `start`.
    fn stop(self) -> (f64, f64) {
        (ms_since(self.wall), thread_cpu_ms() - self.cpu)
    }
}

fn thread_cpu_ms() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the valid, exclusive `ts`.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 * 1e3 + ts.tv_nsec as f64 / 1e6
}

fn check(name: &str, got: &[u8; 32], expect: &[u8; 32]) -> Res<()> {
    if got == expect {
        Ok(())
    } else {
        Err(format!("{name} computed a different Argon2id than libsodium").into())
    }
}

/// `threads` threads verifying `stored` for `seconds`, each with its own KDF: (count, per second).
pub fn parallel(stored: &str, threads: usize, seconds: f64) -> (usize, f64) {
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let stored = stored.to_owned();
            std::thread::spawn(move || {
                let mut kdf = Argon2Kdf::new();
                let mut count = 0usize;
                while start.elapsed().as_secs_f64() < seconds {
                    if kdf.verify(&stored, PASSWORD) == Ok(true) {
                        count += 1;
                    }
                }
                count
            })
        })
        .collect();
    let total: usize = handles.into_iter().map(|h| h.join().unwrap_or(0)).sum();
    (total, total as f64 / start.elapsed().as_secs_f64())
}

/// Whether `path` names an ELF file that links libsodium dynamically (`ldd`), for the notes.
pub fn links_libsodium(path: &Path) -> Option<bool> {
    let out = Command::new("ldd").arg(path).output().ok()?;
    Some(String::from_utf8_lossy(&out.stdout).contains("libsodium.so"))
}
