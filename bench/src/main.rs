//! `apppw-bench`: times every login path of apppw and its peers on one machine, in one run,
//! with the same Argon2id parameters (OWASP: m=19456 KiB, t=2, p=1), and prints Markdown tables.
//!
//! Run it through `bench/run.sh` (as root: it starts throwaway Dovecot instances and uses a
//! throwaway system user for pam_unix). Sections, each in its own file:
//!
//! 1. `apppw-checkpassword` per attempt, driven like Dovecot drives it (fd 3, environment,
//!    reply program `/bin/true`): `checkpassword.rs`;
//! 2. `pam_apppw.so` per `pam_authenticate` in a long-lived process (`pam_bench.c` under
//!    pam_wrapper), against `pam_permit.so` in the same harness: `pam.rs`;
//! 3. peers: Dovecot `passwd-file` with `{ARGON2ID}` (`concurrency.rs`), `pam_unix` (`pam.rs`);
//! 4. one Argon2id computation by each candidate implementation (libsodium, the `argon2`
//!    crate, rust-argon2, libargon2), warm, with fresh memory and in fresh processes:
//!    `argon.rs`;
//! 5. concurrent logins through a real Dovecot auth socket: `concurrency.rs` (the memory
//!    sampler and the hammering clients in `load.rs`);
//! 6. scaling with app passwords per user and users per database: `checkpassword.rs`;
//!
//! and `lib`, where the time goes inside the library: `library.rs`. The tables, the targets
//! and the CSV: `stats.rs`, `report.rs`. The throwaway databases and configs: `setup.rs`; the
//! Dovecot instances and auth client: `dovecot.rs`; spawning as Dovecot does: `exec.rs`.
//!
//! With `--pg-url` / `--pg-socket-url` (a throwaway PostgreSQL cluster that `run.sh` starts),
//! sections 1, 2 and `lib` also time the store on PostgreSQL, over TCP and the unix socket.

mod argon;
mod checkpassword;
mod concurrency;
mod dovecot;
mod exec;
mod library;
mod load;
mod mem;
mod pam;
mod report;
mod setup;
mod stats;

use apppw::hash::Params;
use clap::Parser;
use setup::Db;
use stats::Results;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

pub type Res<T> = Result<T, Box<dyn std::error::Error>>;

#[derive(Parser)]
#[command(about = "Benchmark of apppw login paths (run through bench/run.sh)")]
struct Opts {
    /// Timed attempts per latency row.
    #[arg(long, default_value_t = 40)]
    n: usize,
    /// Seconds per concurrency level (and for the parallel bare-Argon2 rate).
    #[arg(long, default_value_t = 4.0)]
    seconds: f64,
    /// Concurrency levels.
    #[arg(long, default_value = "1,2,8,32", value_delimiter = ',')]
    clients: Vec<usize>,
    /// Users in the large database.
    #[arg(long, default_value_t = 100_000)]
    big_users: usize,
    /// Directory holding apppw, apppw-checkpassword and libpam_apppw.so.
    #[arg(long)]
    bin_dir: PathBuf,
    /// Empty scratch directory, traversable by the `dovecot` user.
    #[arg(long)]
    work: PathBuf,
    /// The compiled `pam_bench` harness (PAM rows are skipped without it).
    #[arg(long)]
    pam_harness: Option<PathBuf>,
    /// The compiled `bare_verify` (bench/bare_verify.c): one libsodium Argon2id in a process.
    #[arg(long)]
    bare_verify: Option<PathBuf>,
    /// Throwaway system user for the pam_unix row.
    #[arg(long)]
    unix_user: Option<String>,
    /// Its password.
    #[arg(long, env = "APPPW_BENCH_UNIX_PASSWORD", hide_env_values = true)]
    unix_password: Option<String>,
    /// Skip the Dovecot rows.
    #[arg(long)]
    no_dovecot: bool,
    /// URL (TCP) of an empty PostgreSQL database for the PostgreSQL rows.
    #[arg(long, requires = "pg_socket_url")]
    pg_url: Option<String>,
    /// The same database over its unix socket.
    #[arg(long, requires = "pg_url")]
    pg_socket_url: Option<String>,
    /// Why there are no PostgreSQL rows (printed in their place).
    #[arg(long)]
    pg_skip: Option<String>,
    /// Also write the throughput rows to this CSV file (for `bench/plot.py`).
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Sections to run: argon, lib, cp, pam, dovecot.
    #[arg(
        long,
        default_value = "argon,lib,cp,pam,dovecot",
        value_delimiter = ','
    )]
    only: Vec<String>,
}

impl Opts {
    fn wants(&self, section: &str) -> bool {
        self.only.iter().any(|s| s == section)
    }
}

fn main() -> ExitCode {
    apppw::store::enable_postgres_tls();
    // `--argon-once IMPL [STORED]`: one Argon2 computation in a fresh process (section 4).
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--argon-once") {
        let which = args.get(2).map_or("", String::as_str);
        return match argon::once(which, args.get(3).map(String::as_str)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("apppw-bench --argon-once: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let opts = Opts::parse();
    let result = run(&opts);
    setup::remove_gates();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("apppw-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn progress(msg: &str) {
    eprintln!("apppw-bench: {msg}");
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

struct Dbs {
    one: Db,
    ten: Db,
    hundred: Db,
    users_1k: Db,
    users_big: Db,
}

fn run(o: &Opts) -> Res<()> {
    let n = o.n.max(3);
    let apppw_bin = o.bin_dir.join("apppw");
    let dbdir = o.work.join("db");
    std::fs::create_dir_all(&dbdir)?;
    progress("building databases");
    let lockout = setup::lockout_supported(&apppw_bin, &dbdir)?;
    let filler = setup::hash(b"fillerfillerfillerfiller")?;
    let t = Instant::now();
    let mk = |name, extra, users| {
        setup::make_db(&apppw_bin, &dbdir, name, lockout, extra, users, &filler)
    };
    let dbs = Dbs {
        one: mk("one", 0, 1)?,
        ten: mk("ten", 9, 1)?,
        hundred: mk("hundred", 99, 1)?,
        users_1k: mk("users-1k", 0, 1000)?,
        users_big: mk("users-big", 0, o.big_users)?,
    };
    let pg = match (&o.pg_url, &o.pg_socket_url) {
        (Some(tcp), Some(socket)) => {
            Some(setup::make_pg(&apppw_bin, &dbdir, tcp, socket, lockout)?)
        }
        _ => None,
    };
    let pg_skip = o
        .pg_skip
        .clone()
        .unwrap_or_else(|| "no PostgreSQL database given (--pg-url)".into());
    progress(&format!("databases ready in {:.1} s", ms_since(t) / 1e3));

    let mut r = Results::default();
    if o.wants("argon") {
        argon::section(n, o.seconds, &o.clients, &o.work, &mut r)?;
        for bin in ["libpam_apppw.so", "apppw-checkpassword"] {
            let verdict = match argon::links_libsodium(&o.bin_dir.join(bin)) {
                Some(true) => "links libsodium dynamically (ldd)",
                Some(false) => "does **not** link libsodium dynamically (ldd)",
                None => "could not be checked with ldd",
            };
            r.notes.push(format!("{bin} {verdict}."));
        }
    }
    if o.wants("lib") {
        library::section(n, &dbs.one, &mut r)?;
        match &pg {
            Some(pg) => library::section_pg(n, pg, &mut r)?,
            None => r.skip("lib", "store work on PostgreSQL", &pg_skip),
        }
    }
    if o.wants("cp") {
        checkpassword::section(o, n, &dbs, pg.as_ref(), &mut r)?;
        if pg.is_none() {
            r.skip(
                "1",
                "checkpassword with PostgreSQL (TCP, unix socket)",
                &pg_skip,
            );
        }
    }
    if o.wants("pam") {
        match &o.pam_harness {
            Some(h) => {
                pam::section(o, n, h, &dbs.one, pg.as_ref(), &mut r)?;
                if pg.is_none() {
                    r.skip("2", "pam_apppw.so with PostgreSQL", &pg_skip);
                }
            }
            None => r.skip("2", "PAM harness", "no --pam-harness given"),
        }
    }
    if o.no_dovecot || !o.wants("dovecot") {
        r.skip("3", "Dovecot", "not requested");
    } else {
        concurrency::section(o, n, &dbs.one, &mut r)?;
    }

    println!("## Latency per attempt\n");
    println!("{}", r.latency_table());
    println!("## Concurrent logins through a Dovecot auth socket\n");
    println!("{}", r.throughput_table());
    if !r.memory.is_empty() {
        println!("## Auth worker memory during the passdb pam rows\n");
        println!("{}", load::memory_table(&r.memory));
    }
    if let Some(path) = &o.csv {
        report::write_csv(path, &r)?;
    }
    for note in &r.notes {
        println!("Note: {note}\n");
    }
    println!("## Targets\n");
    println!("{}", report::targets(&r));
    if pg.is_some() {
        println!("## PostgreSQL against SQLite\n");
        println!("{}", report::pg_comparison(&r));
    }
    println!(
        "Argon2id parameters: m={} KiB, t={}, p={}; N={n} per row; {} s per concurrency level; \
         failure counters {}.",
        Params::default().memory_kib,
        Params::default().iterations,
        Params::default().parallelism,
        o.seconds,
        if lockout {
            "on (limits set out of reach)"
        } else {
            "not supported by this build"
        }
    );
    Ok(())
}
