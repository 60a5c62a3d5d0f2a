//! Under load: the resident memory of Dovecot's auth workers while the throughput rows run,
//! and a real user's login latency while many clients hammer wrong passwords.

use crate::Res;
use crate::dovecot::{self, AuthClient};
use crate::stats::Results;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Address of the hammering clients (off campus, TEST-NET-3).
pub const HAMMER_IP: &str = "203.0.113.66";
/// Address of the real user's device (off campus, TEST-NET-2).
pub const USER_IP: &str = "198.51.100.7";
/// Argon2 memory of one computation with the default parameters (MiB).
pub const ARGON2_MIB: f64 = 19.0;

/// One auth worker at one instant: (pid, resident KiB, Argon2 buffers mapped).
type Seen = (i32, u64, usize);

/// Resident memory of a Dovecot instance's auth workers, sampled every 20 ms.
pub struct MemorySampler {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Vec<Vec<Seen>>>,
}

/// What [`MemorySampler::finish`] found.
#[derive(Clone, Copy)]
pub struct MemoryUse {
    /// Most auth workers alive at once.
    pub workers: usize,
    /// Largest sum of their resident memory (MiB).
    pub resident_mib: f64,
    /// Most Argon2 working buffers mapped at once in all of them: anonymous mappings of
    /// 16–48 MiB (libsodium's 19 MiB, populated when mapped and unmapped after each
    /// computation).
    pub buffers: usize,
}

/// Is `pid` an auth worker (`dovecot/auth -w`, or titled `auth-worker`) of `master`?
fn auth_worker_of(pid: i32, master: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // "pid (comm) state ppid ...": the fields after the last ')'.
    let ppid = stat
        .rsplit(')')
        .next()
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|p| p.parse::<i32>().ok());
    if ppid != Some(master) {
        return false;
    }
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    cmdline.contains("auth-worker") || cmdline.contains("auth -w")
}

/// Anonymous mappings of 16–48 MiB in `pid`: Argon2 working memory (libsodium maps 19 MiB
/// with MAP_POPULATE for each computation and unmaps it after; glibc's thread arenas are
/// 64 MiB reservations and do not count).
fn argon2_buffers(pid: i32) -> usize {
    let Ok(maps) = std::fs::read_to_string(format!("/proc/{pid}/maps")) else {
        return 0;
    };
    maps.lines()
        .filter(|l| l.split_whitespace().nth(5).is_none())
        .filter_map(|l| {
            let (lo, hi) = l.split_whitespace().next()?.split_once('-')?;
            let size = u64::from_str_radix(hi, 16).ok()? - u64::from_str_radix(lo, 16).ok()?;
            Some(size)
        })
        .filter(|&size| (16 << 20..=48 << 20).contains(&size))
        .count()
}

fn rss_kib(pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
}

impl MemorySampler {
    pub fn start(master: i32) -> MemorySampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                let mut sample = Vec::new();
                if let Ok(dir) = std::fs::read_dir("/proc") {
                    for entry in dir.flatten() {
                        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok())
                        else {
                            continue;
                        };
                        if auth_worker_of(pid, master) {
                            if let Some(kib) = rss_kib(pid) {
                                sample.push((pid, kib, argon2_buffers(pid)));
                            }
                        }
                    }
                }
                samples.push(sample);
                std::thread::sleep(Duration::from_millis(20));
            }
            samples
        });
        MemorySampler { stop, handle }
    }

    pub fn finish(self) -> Option<MemoryUse> {
        self.stop.store(true, Ordering::Relaxed);
        let samples = self.handle.join().ok()?;
        let mut out = MemoryUse {
            workers: 0,
            resident_mib: 0.0,
            buffers: 0,
        };
        for s in &samples {
            out.workers = out.workers.max(s.len());
            let kib: u64 = s.iter().map(|x| x.1).sum();
            out.resident_mib = out.resident_mib.max(kib as f64 / 1024.0);
            out.buffers = out.buffers.max(s.iter().map(|x| x.2).sum());
        }
        (!samples.is_empty()).then_some(out)
    }
}

/// One line of the memory table.
pub struct MemoryRow {
    pub what: &'static str,
    pub clients: usize,
    pub gate: Option<u32>,
    pub usage: MemoryUse,
}

/// The memory table in Markdown.
pub fn memory_table(rows: &[MemoryRow]) -> String {
    let mut out = String::from(
        "| passdb | concurrent clients | auth workers (most at once) | their resident memory, most at once, MiB | Argon2 buffers mapped at once, most (× 19 MiB) | limit: gate + 1 |\n\
         |---|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let limit = match r.gate {
            Some(g) => (g + 1).to_string(),
            None => "– (no gate)".into(),
        };
        out.push_str(&format!(
            "| {} | {} | {} | {:.1} | {} ({:.0} MiB) | {limit} |\n",
            r.what,
            r.clients,
            r.usage.workers,
            r.usage.resident_mib,
            r.usage.buffers,
            r.usage.buffers as f64 * ARGON2_MIB
        ));
    }
    out
}

/// What the hammer scenario measured.
pub struct Hammered {
    pub idle: Vec<f64>,
    pub hammered: Vec<f64>,
    /// Hammer attempts per second during the measurement.
    pub rate: f64,
}

/// `n` correct logins of `user` from [`USER_IP`], first idle, then while `clients`
/// connections send wrong app passwords for `target` from [`HAMMER_IP`] (after `warm_up`, so
/// that the cool-down has started).
#[allow(clippy::too_many_arguments)]
pub fn hammer(
    inst: &dovecot::Instance,
    user: &str,
    password: &str,
    target: &str,
    wrong: &str,
    clients: usize,
    n: usize,
    warm_up: Duration,
) -> Res<Hammered> {
    let timed = |client: &mut AuthClient| -> Res<Vec<f64>> {
        let mut times = Vec::new();
        for i in 0..n + 2 {
            let (ok, ms) = client.auth(user, password, USER_IP)?;
            if !ok {
                return Err(format!("{user}'s correct app password was refused").into());
            }
            if i >= 2 {
                times.push(ms);
            }
        }
        Ok(times)
    };
    let mut client = AuthClient::connect(&inst.socket)?;
    let idle = timed(&mut client)?;

    let stop = Arc::new(AtomicBool::new(false));
    let attempts = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for _ in 0..clients {
        let socket = inst.socket.clone();
        let (stop, attempts) = (Arc::clone(&stop), Arc::clone(&attempts));
        let (target, wrong) = (target.to_owned(), wrong.to_owned());
        handles.push(std::thread::spawn(move || -> Result<(), String> {
            let mut c = AuthClient::connect(&socket).map_err(|e| e.to_string())?;
            while !stop.load(Ordering::Relaxed) {
                let (ok, _) = c
                    .auth(&target, &wrong, HAMMER_IP)
                    .map_err(|e| e.to_string())?;
                if ok {
                    return Err("a wrong app password was accepted".into());
                }
                attempts.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        }));
    }
    let t = Instant::now();
    std::thread::sleep(warm_up);
    let hammered = timed(&mut client);
    let rate = attempts.load(Ordering::Relaxed) as f64 / t.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().map_err(|_| "hammer thread panicked")??;
    }
    Ok(Hammered {
        idle,
        hammered: hammered?,
        rate,
    })
}

/// Adds the two latency rows of a hammer run.
pub fn add_hammer_rows(
    r: &mut Results,
    keys: (&'static str, &'static str),
    what: &str,
    clients: usize,
    h: &Hammered,
) {
    r.add(
        "5",
        keys.0,
        &format!("{what}: a real user's login, idle"),
        &h.idle,
        "correct app password, off campus",
    );
    r.add(
        "5",
        keys.1,
        &format!(
            "{what}: the same while {clients} clients hammer wrong app passwords for that user \
             from one address"
        ),
        &h.hammered,
        &format!(
            "cool-down on ([lockout] defaults), Dovecot's auth_failure_delay = 0; {:.0} hammer attempts/s",
            h.rate
        ),
    );
}
