//! `apppw-bench`: times every login path of apppw and its peers on one machine, in one run,
//! with the same Argon2id parameters (OWASP: m=19456 KiB, t=2, p=1), and prints Markdown tables.
//!
//! Run it through `bench/run.sh` (as root: it starts throwaway Dovecot instances and uses a
//! throwaway system user for pam_unix). Sections:
//!
//! 1. `apppw-checkpassword` per attempt, driven like Dovecot drives it (fd 3, environment,
//!    reply program `/bin/true`);
//! 2. `pam_apppw.so` per `pam_authenticate` in a long-lived process (`pam_bench.c` under
//!    pam_wrapper), against `pam_permit.so` in the same harness;
//! 3. peers: Dovecot `passwd-file` with `{ARGON2ID}`, `pam_unix`;
//! 4. one Argon2id computation by each candidate implementation (libsodium, the `argon2`
//!    crate, rust-argon2, libargon2), warm, with fresh memory and in fresh processes;
//! 5. concurrent logins through a real Dovecot auth socket;
//! 6. scaling with app passwords per user and users per database.
//!
//! With `--pg-url` / `--pg-socket-url` (a throwaway PostgreSQL cluster that `run.sh` starts),
//! sections 1, 2 and `lib` also time the store on PostgreSQL, over TCP and the unix socket.

mod argon;
mod dovecot;
mod exec;
mod load;
mod mem;
mod pam;
mod setup;
mod stats;

use apppw::hash::{Argon2Kdf, Kdf, Params};
use apppw::store::{CredentialSource, LazyStore, Store};
use apppw::verify::{Decision, Record, Request};
use clap::Parser;
use setup::{Db, OFF_IP, PgDb};
use stats::{Results, ThroughputRow};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

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
        library(n, &dbs.one, &mut r)?;
        match &pg {
            Some(pg) => library_pg(n, pg, &mut r)?,
            None => r.skip("lib", "store work on PostgreSQL", &pg_skip),
        }
    }
    if o.wants("cp") {
        checkpassword(o, n, &dbs, pg.as_ref(), &mut r)?;
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
                pam_rows(o, n, h, &dbs.one, pg.as_ref(), &mut r)?;
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
        dovecot_rows(o, n, &dbs.one, &mut r)?;
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
        write_csv(path, &r)?;
    }
    for note in &r.notes {
        println!("Note: {note}\n");
    }
    println!("## Targets\n");
    println!("{}", targets(&r));
    if pg.is_some() {
        println!("## PostgreSQL against SQLite\n");
        println!("{}", pg_comparison(&r));
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

/// The store work of one successful and one failed login, each on a new connection:
/// open, lockout check, lookup, then `record_use` or `record_failure`, close. In ms.
fn store_work(cfg: &apppw::Config, user: &str, tag: &str, id: i64) -> Res<(f64, f64)> {
    let t = Instant::now();
    let mut s = Store::open_for_login(&cfg.database)?;
    s.locked_out(user, OFF_IP, apppw::now())?;
    s.lookup(user, tag)?;
    s.record_use(id, apppw::now(), Some(OFF_IP), Some("imap"))?;
    drop(s);
    let success = ms_since(t);
    let t = Instant::now();
    let mut s = Store::open_for_login(&cfg.database)?;
    s.locked_out(user, OFF_IP, apppw::now())?;
    s.lookup(user, tag)?;
    s.record_failure(user, OFF_IP, apppw::now(), &cfg.lockout)?;
    drop(s);
    Ok((success, ms_since(t)))
}

/// Where the time of one checkpassword process goes, measured in-process with the library.
fn library(n: usize, db: &Db, r: &mut Results) -> Res<()> {
    progress("library breakdown");
    let user = "alice";
    let letters = setup::letters(&db.password);
    let tag = &letters[..4];
    let (mut t_cfg, mut t_open) = (Vec::new(), Vec::new());
    let mut id = None;
    for i in 0..n + 2 {
        let t = Instant::now();
        let cfg = apppw::Config::load(Some(&db.config)).map_err(|e| e.to_string())?;
        let c = ms_since(t);
        let t = Instant::now();
        let mut store = Store::open_for_login(&cfg.database)?;
        let found = store.lookup(user, tag)?;
        let o = ms_since(t);
        id = found.map(|c| c.id);
        if i >= 2 {
            t_cfg.push(c);
            t_open.push(o);
        }
    }
    let id = id.ok_or("alice's app password not found by lookup")?;
    r.add(
        "lib",
        "lib_config",
        "Config::load (read + parse TOML)",
        &t_cfg,
        "in-process",
    );
    r.add(
        "lib",
        "lib_open_lookup",
        "Store::open_for_login + one lookup",
        &t_open,
        "in-process, new connection each time",
    );

    let cfg = apppw::Config::load(Some(&db.config)).map_err(|e| e.to_string())?;
    let (mut t_use, mut t_fail) = (Vec::new(), Vec::new());
    for i in 0..n + 2 {
        let (u, f) = store_work(&cfg, user, tag, id)?;
        if i >= 2 {
            t_use.push(u);
            t_fail.push(f);
        }
    }
    r.add(
        "lib",
        "lib_store_ok",
        "store work of a success: open, lockout check, lookup, record_use, close",
        &t_use,
        "in-process, new connection",
    );
    r.add(
        "lib",
        "lib_store_fail",
        "store work of a failure: open, lockout check, lookup, record_failure, close",
        &t_fail,
        "in-process, new connection",
    );

    // The disk: one 4 KiB write + fsync next to the database (SQLite in WAL mode with
    // synchronous=FULL does a few of these per write transaction and checkpoint).
    let probe = db.path.with_extension("fsync-probe");
    let mut t_sync = Vec::new();
    {
        use std::io::Write as _;
        let mut f = std::fs::File::create(&probe)?;
        for i in 0..n + 2 {
            let t = Instant::now();
            f.write_all(&[0u8; 4096])?;
            f.sync_all()?;
            if i >= 2 {
                t_sync.push(ms_since(t));
            }
        }
    }
    std::fs::remove_file(&probe)?;
    r.add(
        "lib",
        "disk_fsync",
        "disk: 4 KiB write + fsync in the database directory",
        &t_sync,
        "file system of the scratch directory",
    );

    let mut store = Store::open_for_login(&db.path)?;
    let mut t_rec = Vec::new();
    for i in 0..n + 2 {
        let t = Instant::now();
        store.record_use(id, apppw::now(), Some(OFF_IP), Some("imap"))?;
        if i >= 2 {
            t_rec.push(ms_since(t));
        }
    }
    drop(store);
    r.add(
        "lib",
        "lib_record_use",
        "record_use (last-used UPDATE, as shipped)",
        &t_rec,
        "one write transaction",
    );
    for (key, what, mode) in [
        (
            "sql_update_full",
            "same UPDATE, PRAGMA synchronous=FULL",
            "FULL",
        ),
        (
            "sql_update_normal",
            "same UPDATE, PRAGMA synchronous=NORMAL",
            "NORMAL",
        ),
    ] {
        let conn = rusqlite::Connection::open(&db.path)?;
        conn.pragma_update(None, "synchronous", mode)?;
        let mut v = Vec::new();
        for i in 0..n + 2 {
            let t = Instant::now();
            conn.execute(
                "UPDATE app_passwords SET last_used_at = ?2, last_used_ip = ?3, \
                 last_used_service = ?4 WHERE id = ?1",
                rusqlite::params![id, apppw::now(), OFF_IP, "imap"],
            )?;
            if i >= 2 {
                v.push(ms_since(t));
            }
        }
        r.add("lib", key, what, &v, "rusqlite directly, WAL file");
    }

    let wrong = setup::wrong_same_tag(&db.password);
    let cases: [(&str, &str, &[u8], bool); 3] = [
        (
            "lib_verify_ok",
            "verify(): correct app password",
            letters.as_bytes(),
            true,
        ),
        (
            "lib_verify_wrong",
            "verify(): wrong app password, known tag",
            wrong.as_bytes(),
            false,
        ),
        (
            "lib_verify_normal",
            "verify(): normal password, off campus",
            b"Winter2026!",
            false,
        ),
    ];
    let mut samples = vec![Vec::new(); cases.len()];
    for i in 0..n + 2 {
        for (k, (_, _, pw, accept)) in cases.iter().enumerate() {
            let req = Request {
                user,
                password: pw,
                client: Some(OFF_IP),
                service: Some("imap"),
                now: apppw::now(),
            };
            let t = Instant::now();
            // Fresh store and KDF memory: what one checkpassword process does.
            let v = apppw::verify::verify(
                &cfg,
                &mut LazyStore::new(&cfg.database),
                &mut Argon2Kdf::new(),
                &req,
                Record::LastUse,
            );
            let ms = ms_since(t);
            if matches!(v.decision, Decision::Accepted { .. }) != *accept {
                return Err(format!("in-process verify: unexpected {:?}", v.decision).into());
            }
            if i >= 2 {
                samples[k].push(ms);
            }
        }
    }
    for ((key, what, _, _), v) in cases.iter().zip(&samples) {
        r.add("lib", key, what, v, "in-process, fresh store and KDF");
    }

    // What the resident PAM module does: the store and the Argon2 memory of the previous
    // attempt, interleaved with a bare verification on the same memory.
    let stored = Store::open_for_login(&db.path)?
        .lookup(user, &letters[..4])?
        .ok_or("the timed credential is missing")?
        .hash;
    let mut kdf = Argon2Kdf::new();
    let mut kept = None;
    let (mut t_bare, mut t_kept) = (Vec::new(), Vec::new());
    for i in 0..n + 2 {
        let t = Instant::now();
        let ok = kdf
            .verify(&stored, letters.as_bytes())
            .map_err(|e| e.to_string())?;
        let bare = ms_since(t);
        let req = Request {
            user,
            password: letters.as_bytes(),
            client: Some(OFF_IP),
            service: Some("imap"),
            now: apppw::now(),
        };
        let t = Instant::now();
        let mut store = LazyStore::resume(&cfg.database, kept.take());
        let v = apppw::verify::verify(&cfg, &mut store, &mut kdf, &req, Record::LastUse);
        kept = store.into_kept();
        let ms = ms_since(t);
        if !ok || !matches!(v.decision, Decision::Accepted { .. }) {
            return Err(format!("in-process verify (kept): unexpected {:?}", v.decision).into());
        }
        if i >= 2 {
            t_bare.push(bare);
            t_kept.push(ms);
        }
    }
    r.add(
        "lib",
        "lib_bare_interleaved",
        "bare Argon2id verify, warm process, interleaved with the row below",
        &t_bare,
        "in-process",
    );
    r.add(
        "lib",
        "lib_verify_ok_kept",
        "verify(): correct app password, kept store and KDF",
        &t_kept,
        "in-process, as the resident PAM module",
    );
    offcampus_normal_password(n, &cfg, r)
}

/// What an off-campus normal password costs since exemptions and the report: under enforce
/// one exemption read and one report write, in report mode the write only; on a kept
/// connection, as the resident PAM module has it.
fn offcampus_normal_password(n: usize, cfg: &apppw::Config, r: &mut Results) -> Res<()> {
    let mut report = cfg.clone();
    report.enforcement.mode = apppw::config::Mode::Report;
    let mut kdf = Argon2Kdf::new();
    let mut kept = None;
    let (mut t_store, mut t_enforce, mut t_report) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n + 2 {
        // Users of their own, so that both a new row of the day and updates are measured.
        let user = format!("offcampus{}", i % 4);
        let t = Instant::now();
        let mut s = LazyStore::resume(&cfg.database, kept.take());
        s.exempt_until(&user, apppw::now())?;
        s.record_offcampus(
            &apppw::store::OffCampusAttempt {
                user: &user,
                at: apppw::now(),
                ip: Some(OFF_IP),
                service: Some("imap"),
                passed_on: false,
            },
            &cfg.enforcement,
        )?;
        kept = s.into_kept();
        let store = ms_since(t);
        let mut timed = |config: &apppw::Config, want: fn(&Decision) -> bool| -> Res<f64> {
            let req = Request {
                user: &user,
                password: b"Winter2026!",
                client: Some(OFF_IP),
                service: Some("imap"),
                now: apppw::now(),
            };
            let t = Instant::now();
            let mut s = LazyStore::resume(&config.database, kept.take());
            let v = apppw::verify::verify(config, &mut s, &mut kdf, &req, Record::LastUse);
            kept = s.into_kept();
            let ms = ms_since(t);
            if !want(&v.decision) || v.warning.is_some() {
                return Err(format!(
                    "off-campus normal password: {:?} {:?}",
                    v.decision, v.warning
                )
                .into());
            }
            Ok(ms)
        };
        let enforce = timed(cfg, |d| matches!(d, Decision::Refused(_)))?;
        let passed = timed(&report, |d| matches!(d, Decision::PassedOn { .. }))?;
        if i >= 2 {
            t_store.push(store);
            t_enforce.push(enforce);
            t_report.push(passed);
        }
    }
    let note = "in-process, kept store, as the resident PAM module";
    r.add(
        "lib",
        "lib_offcampus_store",
        "store work of an off-campus normal password: exemption read + report write",
        &t_store,
        note,
    );
    r.add(
        "lib",
        "lib_offcampus_enforce",
        "verify(): normal password off campus, enforce (exemption read + report write)",
        &t_enforce,
        note,
    );
    r.add(
        "lib",
        "lib_offcampus_report",
        "verify(): normal password off campus, report mode (report write only)",
        &t_report,
        note,
    );
    Ok(())
}

/// The store work of one login on PostgreSQL, in-process: a new connection each time (as every
/// checkpassword process and every PAM call opens one), over TCP and over the unix socket.
fn library_pg(n: usize, pg: &PgDb, r: &mut Results) -> Res<()> {
    progress("library breakdown, PostgreSQL");
    let user = "alice";
    let letters = setup::letters(&pg.password);
    let tag = &letters[..4];
    let variants: [(&Path, [&'static str; 3], &str); 2] = [
        (
            &pg.tcp_config,
            ["lib_pg_open_lookup", "lib_pg_store_ok", "lib_pg_store_fail"],
            "PostgreSQL TCP",
        ),
        (
            &pg.socket_config,
            [
                "lib_pgs_open_lookup",
                "lib_pgs_store_ok",
                "lib_pgs_store_fail",
            ],
            "PostgreSQL unix socket",
        ),
    ];
    for (config, keys, name) in variants {
        let cfg = apppw::Config::load(Some(config)).map_err(|e| e.to_string())?;
        let (mut t_open, mut t_use, mut t_fail) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..n + 2 {
            let t = Instant::now();
            let mut s = Store::open_for_login(&cfg.database)?;
            let id = s
                .lookup(user, tag)?
                .ok_or("alice's app password not found by lookup")?
                .id;
            drop(s);
            let o = ms_since(t);
            let (u, f) = store_work(&cfg, user, tag, id)?;
            if i >= 2 {
                t_open.push(o);
                t_use.push(u);
                t_fail.push(f);
            }
        }
        let note = "in-process, new connection each time";
        r.add(
            "lib",
            keys[0],
            &format!("{name}: Store::open_for_login + one lookup + close"),
            &t_open,
            note,
        );
        r.add(
            "lib",
            keys[1],
            &format!("{name}: store work of a success (as for SQLite above)"),
            &t_use,
            note,
        );
        r.add(
            "lib",
            keys[2],
            &format!("{name}: store work of a failure (as for SQLite above)"),
            &t_fail,
            note,
        );
    }
    Ok(())
}

struct CpCase<'a> {
    key: &'static str,
    section: &'static str,
    what: &'static str,
    config: Option<&'a Path>,
    user: &'a str,
    password: Vec<u8>,
    expect: i32,
}

fn case<'a>(
    key: &'static str,
    section: &'static str,
    what: &'static str,
    config: &'a Path,
    user: &'a str,
    password: Vec<u8>,
    expect: i32,
) -> CpCase<'a> {
    CpCase {
        key,
        section,
        what,
        config: Some(config),
        user,
        password,
        expect,
    }
}

/// Sections 1 and 6: apppw-checkpassword per attempt.
fn checkpassword(o: &Opts, n: usize, dbs: &Dbs, pg: Option<&PgDb>, r: &mut Results) -> Res<()> {
    progress("apppw-checkpassword per attempt");
    let bin = o.bin_dir.join("apppw-checkpassword");
    let app = |db: &Db| setup::letters(&db.password).into_bytes();
    let one = &dbs.one;
    let cases = vec![
        CpCase {
            key: "cp_floor",
            section: "1",
            what: "floor: fork/exec of /bin/true with fd 3",
            config: None,
            user: "alice",
            password: b"x".to_vec(),
            expect: 0,
        },
        CpCase {
            key: "cp_bare_process",
            section: "1",
            what: "a process that only verifies: libsodium Argon2id of fd 3's input, then exit (bench/bare_verify.c)",
            config: None,
            user: "alice",
            password: b"x".to_vec(),
            expect: 0,
        },
        CpCase {
            key: "cp_startup",
            section: "1",
            what: "checkpassword: start-up and exit only (`--version`)",
            config: None,
            user: "alice",
            password: b"x".to_vec(),
            expect: 0,
        },
        case(
            "cp_ok",
            "1",
            "checkpassword: correct app password",
            &one.config,
            "alice",
            dbs.one.password.clone().into_bytes(),
            0,
        ),
        case(
            "cp_wrong",
            "1",
            "checkpassword: wrong app password (known tag)",
            &one.config,
            "alice",
            setup::wrong_same_tag(&one.password).into_bytes(),
            1,
        ),
        case(
            "cp_wrong_tag",
            "1",
            "checkpassword: wrong app password (unknown tag)",
            &one.config,
            "alice",
            setup::wrong_other_tag(&one.password).into_bytes(),
            1,
        ),
        case(
            "cp_unknown_user",
            "1",
            "checkpassword: unknown user, app-password shaped",
            &one.config,
            "nosuchuser",
            app(one),
            1,
        ),
        case(
            "cp_normal",
            "1",
            "checkpassword: normal password, off campus",
            &one.config,
            "alice",
            b"Winter2026!".to_vec(),
            1,
        ),
        case(
            "cp_bad",
            "1",
            "checkpassword: unknown format (control character)",
            &one.config,
            "alice",
            b"abc\x01def".to_vec(),
            1,
        ),
        case(
            "cp_10",
            "6",
            "checkpassword: correct, user has 10 app passwords",
            &dbs.ten.config,
            "alice",
            app(&dbs.ten),
            0,
        ),
        case(
            "cp_100",
            "6",
            "checkpassword: correct, user has 100 app passwords",
            &dbs.hundred.config,
            "alice",
            app(&dbs.hundred),
            0,
        ),
        case(
            "cp_1k",
            "6",
            "checkpassword: correct, database of 1000 users",
            &dbs.users_1k.config,
            "alice",
            app(&dbs.users_1k),
            0,
        ),
        case(
            "cp_big",
            "6",
            "checkpassword: correct, database of the large user count",
            &dbs.users_big.config,
            "alice",
            app(&dbs.users_big),
            0,
        ),
    ];
    // The same attempts with the store on PostgreSQL, next to the SQLite rows (section 1).
    let mut cases = cases;
    cases.retain(|c| c.key != "cp_bare_process" || o.bare_verify.is_some());
    if let Some(pg) = pg {
        let at = cases
            .iter()
            .position(|c| c.section == "6")
            .unwrap_or(cases.len());
        let app = setup::letters(&pg.password).into_bytes();
        let wrong = setup::wrong_same_tag(&pg.password).into_bytes();
        let normal = b"Winter2026!".to_vec();
        let tcp = pg.tcp_config.as_path();
        let socket = pg.socket_config.as_path();
        let more = [
            (
                "cp_pg_ok",
                "checkpassword, PostgreSQL TCP: correct app password",
                tcp,
                app.clone(),
                0,
            ),
            (
                "cp_pg_wrong",
                "checkpassword, PostgreSQL TCP: wrong app password (known tag)",
                tcp,
                wrong.clone(),
                1,
            ),
            (
                "cp_pg_normal",
                "checkpassword, PostgreSQL TCP: normal password, off campus",
                tcp,
                normal.clone(),
                1,
            ),
            (
                "cp_pgs_ok",
                "checkpassword, PostgreSQL unix socket: correct app password",
                socket,
                app,
                0,
            ),
            (
                "cp_pgs_wrong",
                "checkpassword, PostgreSQL unix socket: wrong app password (known tag)",
                socket,
                wrong,
                1,
            ),
            (
                "cp_pgs_normal",
                "checkpassword, PostgreSQL unix socket: normal password, off campus",
                socket,
                normal,
                1,
            ),
        ];
        for (k, (key, what, config, password, expect)) in more.into_iter().enumerate() {
            cases.insert(
                at + k,
                case(key, "1", what, config, "alice", password, expect),
            );
        }
    }
    let env = [
        ("SERVICE", "imap"),
        ("TCPREMOTEIP", OFF_IP),
        ("REMOTE_IP", OFF_IP),
        ("TCPLOCALIP", "127.0.0.1"),
        ("ORIG_UID", "0"),
    ];
    let attempt = |c: &CpCase, capture: bool| -> Res<exec::Run> {
        let input = exec::fd3_input(c.user, &c.password);
        match c.config {
            None if c.key == "cp_startup" => {
                exec::run_fd3(&bin, &[OsStr::new("--version")], &input, &env, capture)
            }
            None if c.key == "cp_bare_process" => match &o.bare_verify {
                Some(bare) => exec::run_fd3(bare, &[], &input, &env, capture),
                None => Err("no --bare-verify".into()),
            },
            None => exec::run_fd3(Path::new("/bin/true"), &[], &input, &env, capture),
            Some(cfg) => exec::run_fd3(
                &bin,
                &[
                    OsStr::new("--config"),
                    cfg.as_os_str(),
                    OsStr::new("/bin/true"),
                ],
                &input,
                &env,
                capture,
            ),
        }
    };
    // One checked run per case: a case that does not behave as specified is not timed.
    let mut live = Vec::new();
    let mut notes = Vec::new();
    for c in &cases {
        let run = attempt(c, true)?;
        if run.code == c.expect {
            live.push(true);
            notes.push(format!("exit {}", run.code));
        } else {
            live.push(false);
            let why = format!(
                "exit {} (expected {}): {}",
                run.code,
                c.expect,
                run.stderr.lines().next().unwrap_or("").trim()
            );
            progress(&format!("{}: {why}", c.what));
            notes.push(why);
        }
    }
    let mut samples = vec![Vec::new(); cases.len()];
    for i in 0..n + 2 {
        // A new order every round: an attempt's time depends on what the process before it
        // left behind (in a run with a fixed order the attempt right after the correct one,
        // whose process had exec'd the reply program, was 3 ms faster than the others).
        for k in shuffled(cases.len(), i as u64) {
            let c = &cases[k];
            if !live[k] {
                continue;
            }
            let run = attempt(c, false)?;
            if run.code != c.expect {
                return Err(format!("{}: exit {} mid-run", c.what, run.code).into());
            }
            if i >= 2 {
                samples[k].push(run.ms);
            }
        }
    }
    for (k, c) in cases.iter().enumerate() {
        if live[k] {
            r.add(c.section, c.key, c.what, &samples[k], &notes[k]);
        } else {
            r.skip(c.section, c.what, &notes[k]);
        }
    }
    Ok(())
}

/// `0..n` in an order that depends only on `seed` (Fisher-Yates with a 64-bit LCG).
fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for i in (1..n).rev() {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let j = ((x >> 33) % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order
}

/// Section 2 (and pam_unix of section 3): in-process PAM.
fn pam_rows(
    o: &Opts,
    n: usize,
    harness: &Path,
    db: &Db,
    pg: Option<&PgDb>,
    r: &mut Results,
) -> Res<()> {
    progress("PAM harness");
    let svc = pam::Services::new(&o.work.join("pam.d"), harness)?;
    let permit = pam::find_lib("security", "pam_permit.so").ok_or("pam_permit.so not found")?;
    svc.add("bench-permit", &permit, "")?;
    let module = o.bin_dir.join("libpam_apppw.so");
    svc.add(
        "bench-apppw",
        &module,
        &format!("config={}", db.config.display()),
    )?;
    let letters = setup::letters(&db.password);
    let wrong = setup::wrong_same_tag(&db.password);
    let mut cases: Vec<(
        &'static str,
        &'static str,
        &'static str,
        String,
        String,
        i32,
    )> = vec![
        (
            "pam_permit",
            "pam_permit.so (harness floor: pam_start..pam_end)",
            "bench-permit",
            "alice".into(),
            "x".into(),
            pam::PAM_SUCCESS,
        ),
        (
            "pam_ok",
            "pam_apppw.so: correct app password",
            "bench-apppw",
            "alice".into(),
            letters.clone(),
            pam::PAM_SUCCESS,
        ),
        (
            "pam_wrong",
            "pam_apppw.so: wrong app password (known tag)",
            "bench-apppw",
            "alice".into(),
            wrong,
            pam::PAM_AUTH_ERR,
        ),
        (
            "pam_unknown_user",
            "pam_apppw.so: unknown user, app-password shaped",
            "bench-apppw",
            "nosuchuser".into(),
            letters,
            pam::PAM_AUTH_ERR,
        ),
        (
            "pam_normal",
            "pam_apppw.so: normal password, off campus",
            "bench-apppw",
            "alice".into(),
            "Winter2026!".into(),
            pam::PAM_AUTH_ERR,
        ),
    ];
    if let Some(pg) = pg {
        svc.add(
            "bench-apppw-pg",
            &module,
            &format!("config={}", pg.tcp_config.display()),
        )?;
        svc.add(
            "bench-apppw-pgs",
            &module,
            &format!("config={}", pg.socket_config.display()),
        )?;
        let app = setup::letters(&pg.password);
        let wrong = setup::wrong_same_tag(&pg.password);
        cases.extend([
            (
                "pam_pg_ok",
                "pam_apppw.so, PostgreSQL TCP: correct app password",
                "bench-apppw-pg",
                "alice".into(),
                app.clone(),
                pam::PAM_SUCCESS,
            ),
            (
                "pam_pg_wrong",
                "pam_apppw.so, PostgreSQL TCP: wrong app password (known tag)",
                "bench-apppw-pg",
                "alice".into(),
                wrong.clone(),
                pam::PAM_AUTH_ERR,
            ),
            (
                "pam_pgs_ok",
                "pam_apppw.so, PostgreSQL unix socket: correct app password",
                "bench-apppw-pgs",
                "alice".into(),
                app,
                pam::PAM_SUCCESS,
            ),
            (
                "pam_pgs_wrong",
                "pam_apppw.so, PostgreSQL unix socket: wrong app password (known tag)",
                "bench-apppw-pgs",
                "alice".into(),
                wrong,
                pam::PAM_AUTH_ERR,
            ),
        ]);
    }
    match (
        &o.unix_user,
        &o.unix_password,
        pam::find_lib("security", "pam_unix.so"),
    ) {
        (Some(u), Some(p), Some(unix)) => {
            svc.add("bench-unix", &unix, "")?;
            let scheme = shadow_scheme(u);
            cases.push((
                "pam_unix",
                if scheme.as_deref() == Some("yescrypt") {
                    "peer: pam_unix.so, yescrypt hash"
                } else {
                    "peer: pam_unix.so (system default hash)"
                },
                "bench-unix",
                u.clone(),
                p.clone(),
                pam::PAM_SUCCESS,
            ));
        }
        _ => r.skip(
            "3",
            "peer: pam_unix.so",
            "no throwaway user (run bench/run.sh as root)",
        ),
    }
    // Several harness processes per case, interleaved; the first iteration of each (libpam
    // start-up) is dropped.
    let chunks = 4.min(n);
    let per = n.div_ceil(chunks);
    let mut samples = vec![Vec::new(); cases.len()];
    let mut broken: Vec<Option<String>> = vec![None; cases.len()];
    // Bare verifications in this warm process between the chunks, so the overhead of the PAM
    // module is taken against an Argon2 timed under the same conditions.
    let app = setup::letters(&db.password);
    let stored = apppw::store::Store::open_for_login(&db.path)?
        .lookup("alice", &app[..4])?
        .ok_or("the timed credential is missing")?
        .hash;
    let mut kdf = Argon2Kdf::new();
    kdf.verify(&stored, app.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut t_bare = Vec::new();
    for _ in 0..chunks {
        for _ in 0..per {
            let t = Instant::now();
            let ok = kdf
                .verify(&stored, app.as_bytes())
                .map_err(|e| e.to_string())?;
            t_bare.push(ms_since(t));
            if !ok {
                return Err("bare Argon2 verification did not match".into());
            }
        }
        for (k, (_, _, service, user, pw, expect)) in cases.iter().enumerate() {
            if broken[k].is_some() {
                continue;
            }
            let res = svc.run(service, user, pw, OFF_IP, per + 1)?;
            if let Some((rc, _)) = res.iter().find(|(rc, _)| rc != expect) {
                broken[k] = Some(format!("PAM result {rc}, expected {expect}"));
                continue;
            }
            samples[k].extend(res.iter().skip(1).map(|(_, ms)| *ms));
        }
    }
    drop(kdf);
    r.add(
        "2",
        "pam_bare",
        "bare Argon2id verify, warm process, interleaved with the PAM rows",
        &t_bare,
        "in-process, the harness's reference",
    );
    for (k, (key, what, ..)) in cases.iter().enumerate() {
        let section = if *key == "pam_unix" { "3" } else { "2" };
        match &broken[k] {
            Some(why) => r.skip(section, what, why),
            None => r.add(
                section,
                key,
                what,
                &samples[k],
                "in-process harness under pam_wrapper",
            ),
        }
    }
    Ok(())
}

fn shadow_scheme(user: &str) -> Option<String> {
    let shadow = std::fs::read_to_string("/etc/shadow").ok()?;
    let line = shadow.lines().find(|l| l.split(':').next() == Some(user))?;
    let hash = line.split(':').nth(1)?;
    Some(
        match hash.split('$').nth(1)? {
            "y" => "yescrypt",
            "6" => "sha512crypt",
            "5" => "sha256crypt",
            other => other,
        }
        .to_owned(),
    )
}

/// Sections 3 (Dovecot passwd-file) and 5 (concurrency), plus Dovecot's own overhead.
fn dovecot_rows(o: &Opts, n: usize, one: &Db, r: &mut Results) -> Res<()> {
    let doveadm_n = n.min(20);
    let levels: Vec<usize> = o.clients.iter().copied().filter(|&c| c > 0).collect();

    // passwd-file with an {ARGON2ID} hash (same parameters) and a {PLAIN} user.
    progress("Dovecot passwd-file {ARGON2ID}");
    let dir = o.work.join("dovecot-passwd-file");
    std::fs::create_dir_all(&dir)?;
    let pw = setup::letters(&one.password);
    let users = dir.join("users");
    std::fs::write(
        &users,
        format!(
            "alice:{{ARGON2ID}}{}\nplain:{{PLAIN}}plainsecret\n",
            setup::hash(pw.as_bytes())?
        ),
    )?;
    let inst = dovecot::Instance::start(
        &dir,
        &format!(
            "passdb {{\n  driver = passwd-file\n  args = {}\n}}",
            users.display()
        ),
    )?;
    let mut client = dovecot::AuthClient::connect(&inst.socket)?;
    let (mut t_argon, mut t_plain) = (Vec::new(), Vec::new());
    for i in 0..n + 2 {
        let (ok1, a) = client.auth("alice", &pw, OFF_IP)?;
        let (ok2, p) = client.auth("plain", "plainsecret", OFF_IP)?;
        if !(ok1 && ok2) {
            return Err("Dovecot passwd-file refused a correct password".into());
        }
        if i >= 2 {
            t_argon.push(a);
            t_plain.push(p);
        }
    }
    drop(client);
    r.add(
        "3",
        "dc_file_argon",
        "peer: Dovecot passwd-file {ARGON2ID}, at the auth socket",
        &t_argon,
        "auth process, serialised",
    );
    r.add(
        "3",
        "dc_file_plain",
        "Dovecot passwd-file {PLAIN}, at the auth socket",
        &t_plain,
        "Dovecot's own overhead",
    );
    let (mut d_argon, mut d_plain) = (Vec::new(), Vec::new());
    for _ in 0..doveadm_n {
        let (c1, a) = inst.doveadm_test("alice", &pw, OFF_IP)?;
        let (c2, p) = inst.doveadm_test("plain", "plainsecret", OFF_IP)?;
        if c1 != 0 || c2 != 0 {
            return Err(format!("doveadm auth test exit {c1}/{c2}").into());
        }
        d_argon.push(a);
        d_plain.push(p);
    }
    r.add(
        "3",
        "dc_file_doveadm",
        "peer: `doveadm auth test`, passwd-file {ARGON2ID}",
        &d_argon,
        "includes doveadm start-up",
    );
    r.add(
        "3",
        "dc_file_doveadm_plain",
        "`doveadm auth test`, passwd-file {PLAIN}",
        &d_plain,
        "doveadm start-up + Dovecot overhead",
    );
    let argon_users = vec![("alice".to_owned(), pw.clone())];
    throughput_rows(
        &inst,
        &argon_users,
        &levels,
        o.seconds,
        "passwd-file",
        "passwd-file {ARGON2ID}",
        r,
    )?;
    note_log_problems(&inst, "passwd-file", r);
    drop(inst);

    // checkpassword with apppw-checkpassword.
    progress("Dovecot checkpassword + apppw-checkpassword");
    let dir = o.work.join("dovecot-checkpassword");
    let (config, cp_users) = client_users(o, &dir, &levels)?;
    let dbdir = dir.join("db");
    let cp = dir.join("apppw-checkpassword");
    std::fs::copy(o.bin_dir.join("apppw-checkpassword"), &cp)?;
    setup::chown_to(&dbdir, "dovecot")?;
    let inst = dovecot::Instance::start(
        &dir,
        &format!(
            "passdb {{\n  driver = checkpassword\n  args = {} --config {}\n}}",
            cp.display(),
            config.display()
        ),
    )?;
    let (user, pw) = cp_users[0].clone();
    let Some(t_cp) = socket_logins(&inst, &user, &pw, n)? else {
        r.skip("5", "Dovecot checkpassword", REFUSED_AT_SOCKET);
        return Ok(());
    };
    r.add(
        "5",
        "dc_cp",
        "Dovecot checkpassword + apppw-checkpassword, at the auth socket",
        &t_cp,
        "correct app password",
    );
    let mut d_cp = Vec::new();
    for _ in 0..doveadm_n {
        let (c, ms) = inst.doveadm_test(&user, &pw, OFF_IP)?;
        if c != 0 {
            return Err(format!("doveadm auth test (checkpassword) exit {c}").into());
        }
        d_cp.push(ms);
    }
    r.add(
        "5",
        "dc_cp_doveadm",
        "`doveadm auth test`, checkpassword + apppw-checkpassword",
        &d_cp,
        "includes doveadm start-up",
    );
    throughput_rows(
        &inst,
        &cp_users,
        &levels,
        o.seconds,
        "checkpassword",
        "checkpassword + apppw-checkpassword",
        r,
    )?;
    // The same with one long-lived connection holding the database open, so that no
    // checkpassword process is the first to open it (WAL recovery) or the last to close it
    // (checkpoint + WAL removal).
    let holder = rusqlite::Connection::open(dbdir.join("apppw.db"))?;
    holder.query_row("SELECT count(*) FROM app_passwords", [], |_| Ok(()))?;
    setup::chown_to(&dbdir, "dovecot")?;
    throughput_rows(
        &inst,
        &cp_users,
        &levels,
        o.seconds,
        "checkpassword, database held open",
        "checkpassword + apppw-checkpassword, database held open",
        r,
    )?;
    drop(holder);
    note_log_problems(&inst, "checkpassword", r);
    drop(inst);
    hammer_rows(o, n, Passdb::Checkpassword, r)?;
    dovecot_pam_rows(o, n, &levels, r)
}

/// Throughput rows of a `passdb pam` instance, each level with the auth workers' memory.
fn pam_throughput_with_memory(
    inst: &dovecot::Instance,
    users: &[(String, String)],
    levels: &[usize],
    seconds: f64,
    (name, what): (&str, &'static str),
    gate: Option<u32>,
    r: &mut Results,
) -> Res<()> {
    let master = inst.master_pid().ok_or("no Dovecot master pid")?;
    for &c in levels {
        let sampler = load::MemorySampler::start(master);
        throughput_rows(inst, users, &[c], seconds, name, what, r)?;
        if let Some(usage) = sampler.finish() {
            r.memory.push(load::MemoryRow {
                what,
                clients: c,
                gate,
                usage,
            });
        }
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Passdb {
    Pam,
    Checkpassword,
}

/// Clients hammering wrong passwords for the real user from one address.
const HAMMER_CLIENTS: usize = 32;

/// A real user's login latency, idle and while [`HAMMER_CLIENTS`] clients hammer wrong app
/// passwords for that user from one address, with the cool-down on (`[lockout]` defaults:
/// ten failures per user and address): its own Dovecot instance and config.
fn hammer_rows(o: &Opts, n: usize, passdb: Passdb, r: &mut Results) -> Res<()> {
    let (name, keys, what) = match passdb {
        Passdb::Pam => (
            "pam",
            ("dc_pam_idle", "dc_pam_hammer"),
            "Dovecot passdb pam + pam_apppw.so",
        ),
        Passdb::Checkpassword => (
            "checkpassword",
            ("dc_cp_idle", "dc_cp_hammer"),
            "Dovecot checkpassword + apppw-checkpassword",
        ),
    };
    progress(&format!(
        "Dovecot {name}: a real user's logins while {HAMMER_CLIENTS} clients hammer"
    ));
    let dir = o.work.join(format!("dovecot-{name}-hammer"));
    let dbdir = dir.join("db");
    std::fs::create_dir_all(&dbdir)?;
    let config = dir.join("apppw.toml");
    // No [lockout] section: the defaults, cool-down on.
    setup::write_config(&config, &dbdir.join("apppw.db"), false)?;
    let password = setup::create(&o.bin_dir.join("apppw"), &config, "alice", "phone")?;
    let wrong = setup::wrong_same_tag(&password);
    let mut _pam_guard = None;
    let passdb_text = match passdb {
        Passdb::Pam => {
            let service = format!("apppw-bench-hammer-{}", std::process::id());
            let pam_file = Path::new("/etc/pam.d").join(&service);
            std::fs::write(
                &pam_file,
                format!(
                    "auth [success=done ignore=ignore default=die] {} config={}\n\
                     auth required pam_deny.so\naccount required pam_permit.so\n",
                    o.bin_dir.join("libpam_apppw.so").display(),
                    config.display()
                ),
            )?;
            _pam_guard = Some(SystemPamService(pam_file));
            format!("passdb {{\n  driver = pam\n  args = {service}\n}}")
        }
        Passdb::Checkpassword => {
            let cp = dir.join("apppw-checkpassword");
            std::fs::copy(o.bin_dir.join("apppw-checkpassword"), &cp)?;
            setup::chown_to(&dbdir, "dovecot")?;
            format!(
                "passdb {{\n  driver = checkpassword\n  args = {} --config {}\n}}",
                cp.display(),
                config.display()
            )
        }
    };
    // No failure delay: the hammering clients send as fast as they get answers.
    let inst = dovecot::Instance::start(&dir, &format!("auth_failure_delay = 0\n{passdb_text}"))?;
    let h = load::hammer(
        &inst,
        "alice",
        &password,
        "alice",
        &wrong,
        HAMMER_CLIENTS,
        n,
        Duration::from_secs(2),
    )?;
    load::add_hammer_rows(r, keys, what, HAMMER_CLIENTS, &h);
    note_log_problems(&inst, &format!("{name} hammer"), r);
    Ok(())
}

/// A database in `dir/db` with its config `dir/apppw.toml`, and one user with an app password
/// per client of the largest concurrency level: (config, users).
fn client_users(o: &Opts, dir: &Path, levels: &[usize]) -> Res<(PathBuf, Vec<(String, String)>)> {
    let dbdir = dir.join("db");
    std::fs::create_dir_all(&dbdir)?;
    let config = dir.join("apppw.toml");
    let apppw_bin = o.bin_dir.join("apppw");
    let lockout = setup::lockout_supported(&apppw_bin, &dbdir)?;
    setup::write_config(&config, &dbdir.join("apppw.db"), lockout)?;
    let mut users = Vec::new();
    for i in 0..levels.iter().copied().max().unwrap_or(1).max(1) {
        let user = format!("u{i:02}");
        let pw = setup::create(&apppw_bin, &config, &user, "phone")?;
        users.push((user, pw));
    }
    Ok((config, users))
}

const REFUSED_AT_SOCKET: &str = "a correct app password was refused (see the Dovecot log)";

/// `n` timed logins (after two untimed ones) of `user` at `inst`'s auth socket, one after
/// another on one connection; `None` if one was refused.
fn socket_logins(
    inst: &dovecot::Instance,
    user: &str,
    pw: &str,
    n: usize,
) -> Res<Option<Vec<f64>>> {
    let mut client = dovecot::AuthClient::connect(&inst.socket)?;
    let mut times = Vec::new();
    for i in 0..n + 2 {
        let (ok, ms) = client.auth(user, pw, OFF_IP)?;
        if !ok {
            return Ok(None);
        }
        if i >= 2 {
            times.push(ms);
        }
    }
    Ok(Some(times))
}

/// One throughput row named `what` per concurrency level against `inst`.
fn throughput_rows(
    inst: &dovecot::Instance,
    users: &[(String, String)],
    levels: &[usize],
    seconds: f64,
    name: &str,
    what: &'static str,
    r: &mut Results,
) -> Res<()> {
    for &c in levels {
        progress(&format!("  {name}, {c} concurrent clients"));
        let t = dovecot::throughput(&inst.socket, users, c, seconds, OFF_IP)?;
        r.throughput.push(ThroughputRow {
            what,
            clients: c,
            per_second: t.per_second,
            latency: t.latency,
            ok: t.ok,
            failed: t.failed,
        });
    }
    Ok(())
}

/// Errors and warnings in the Dovecot log of `inst`, as a note under the tables.
fn note_log_problems(inst: &dovecot::Instance, name: &str, r: &mut Results) {
    let (count, first) = inst.log_problems();
    if count > 0 {
        r.notes.push(format!(
            "Dovecot ({name} instance) logged {count} error/warning lines; first: `{}`",
            first.unwrap_or_default()
        ));
    }
}

/// A PAM service file in `/etc/pam.d`, removed on drop.
struct SystemPamService(PathBuf);

impl Drop for SystemPamService {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Dovecot `passdb pam` with `pam_apppw.so` (what Dovecot 2.4 users run): auth workers are
/// long-lived processes, so the module stays loaded with warm Argon2 memory and an open
/// database between logins.
fn dovecot_pam_rows(o: &Opts, n: usize, levels: &[usize], r: &mut Results) -> Res<()> {
    progress("Dovecot passdb pam + pam_apppw.so");
    let service = format!("apppw-bench-{}", std::process::id());
    let pam_file = Path::new("/etc/pam.d").join(&service);
    let dir = o.work.join("dovecot-pam");
    let (config, users) = client_users(o, &dir, levels)?;
    let module = o.bin_dir.join("libpam_apppw.so");
    let stack = format!(
        "auth [success=done ignore=ignore default=die] {} config={}\n\
         auth required pam_deny.so\naccount required pam_permit.so\n",
        module.display(),
        config.display()
    );
    if let Err(e) = std::fs::write(&pam_file, stack) {
        r.skip(
            "5",
            "Dovecot passdb pam",
            &format!("cannot write {}: {e}", pam_file.display()),
        );
        return Ok(());
    }
    let _guard = SystemPamService(pam_file);
    // The auth workers run as root in Dovecot 2.3; `max_requests` is Dovecot's default (100
    // logins per worker process, then a new one).
    let inst = dovecot::Instance::start(
        &dir,
        &format!("passdb {{\n  driver = pam\n  args = {service}\n}}"),
    )?;
    let (user, pw) = users[0].clone();
    let Some(t) = socket_logins(&inst, &user, &pw, n)? else {
        r.skip("5", "Dovecot passdb pam", REFUSED_AT_SOCKET);
        return Ok(());
    };
    r.add(
        "5",
        "dc_pam",
        "Dovecot passdb pam + pam_apppw.so, at the auth socket",
        &t,
        "correct app password; the module stays loaded in the auth worker",
    );
    let gate = apppw::gate::online_cpus();
    pam_throughput_with_memory(
        &inst,
        &users,
        levels,
        o.seconds,
        ("passdb pam", "passdb pam + pam_apppw.so"),
        Some(gate),
        r,
    )?;
    // The same without the admission gate: every auth worker computes at once.
    setup::without_gate(&config)?;
    pam_throughput_with_memory(
        &inst,
        &users,
        levels,
        o.seconds,
        (
            "passdb pam, no gate",
            "passdb pam + pam_apppw.so, no gate (max_concurrent = 0)",
        ),
        None,
        r,
    )?;
    note_log_problems(&inst, "passdb pam", r);
    drop(inst);
    hammer_rows(o, n, Passdb::Pam, r)?;

    // The same Dovecot set-up with `pam_permit.so` alone: what Dovecot and libpam cost per
    // login without apppw (and without Argon2).
    progress("Dovecot passdb pam + pam_permit.so");
    let floor = format!("apppw-bench-permit-{}", std::process::id());
    let floor_file = Path::new("/etc/pam.d").join(&floor);
    std::fs::write(
        &floor_file,
        "auth required pam_permit.so\naccount required pam_permit.so\n",
    )?;
    let _floor_guard = SystemPamService(floor_file);
    let dir = o.work.join("dovecot-pam-permit");
    std::fs::create_dir_all(&dir)?;
    let inst = dovecot::Instance::start(
        &dir,
        &format!("passdb {{\n  driver = pam\n  args = {floor}\n}}"),
    )?;
    let Some(t) = socket_logins(&inst, &user, "anything", n)? else {
        r.skip("5", "Dovecot passdb pam + pam_permit.so", REFUSED_AT_SOCKET);
        return Ok(());
    };
    r.add(
        "5",
        "dc_pam_permit",
        "Dovecot passdb pam + pam_permit.so, at the auth socket",
        &t,
        "Dovecot's and libpam's own cost per login",
    );
    throughput_rows(
        &inst,
        &users,
        levels,
        o.seconds,
        "passdb pam, pam_permit.so only",
        "(passdb pam + pam_permit.so only: Dovecot's own limit)",
        r,
    )?;
    note_log_problems(&inst, "passdb pam + pam_permit", r);
    Ok(())
}

/// Each PostgreSQL row against the same row on SQLite: ratio and difference of the medians.
fn pg_comparison(r: &Results) -> String {
    let mut out = String::from(
        "| attempt | SQLite ms | PostgreSQL TCP ms | TCP / SQLite | PostgreSQL socket ms | socket / SQLite |\n\
         |---|---:|---:|---:|---:|---:|\n",
    );
    let rows = [
        (
            "checkpassword: correct app password",
            "cp_ok",
            "cp_pg_ok",
            "cp_pgs_ok",
        ),
        (
            "checkpassword: wrong app password (known tag)",
            "cp_wrong",
            "cp_pg_wrong",
            "cp_pgs_wrong",
        ),
        (
            "checkpassword: normal password, off campus",
            "cp_normal",
            "cp_pg_normal",
            "cp_pgs_normal",
        ),
        (
            "PAM module: correct app password",
            "pam_ok",
            "pam_pg_ok",
            "pam_pgs_ok",
        ),
        (
            "PAM module: wrong app password (known tag)",
            "pam_wrong",
            "pam_pg_wrong",
            "pam_pgs_wrong",
        ),
        (
            "store work of a success (lib)",
            "lib_store_ok",
            "lib_pg_store_ok",
            "lib_pgs_store_ok",
        ),
        (
            "store work of a failure (lib)",
            "lib_store_fail",
            "lib_pg_store_fail",
            "lib_pgs_store_fail",
        ),
    ];
    let cell = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{v:.2}"));
    for (what, sqlite, tcp, socket) in rows {
        let (s, t, u) = (r.median(sqlite), r.median(tcp), r.median(socket));
        if t.is_none() && u.is_none() {
            continue;
        }
        let ratio = |pg: Option<f64>| match (pg, s) {
            (Some(p), Some(s)) => format!("{:.2}× ({:+.2} ms)", p / s, p - s),
            _ => "–".to_owned(),
        };
        out.push_str(&format!(
            "| {what} | {} | {} | {} | {} | {} |\n",
            cell(s),
            cell(t),
            ratio(t),
            cell(u),
            ratio(u)
        ));
    }
    out
}

/// The throughput rows as CSV (`what,clients,logins_per_second,median_ms,p90_ms`), plus the
/// ideal `cores × 1/(warm verify)` as the row `ideal`.
fn write_csv(path: &Path, r: &Results) -> Res<()> {
    let mut out = String::from("what,clients,logins_per_second,median_ms,p90_ms\n");
    for t in &r.throughput {
        let (m, p) = t.latency.map_or((String::new(), String::new()), |s| {
            (s.median.to_string(), s.p90.to_string())
        });
        out.push_str(&format!(
            "\"{}\",{},{},{m},{p}\n",
            t.what.replace('"', "'"),
            t.clients,
            t.per_second
        ));
    }
    if let (Some(c), Some(w)) = (r.values.get("cores"), r.median("argon_warm")) {
        out.push_str(&format!("\"ideal\",0,{},,\n", c * 1000.0 / w));
    }
    std::fs::write(path, out)?;
    Ok(())
}

/// The targets, with the measured values.
fn targets(r: &Results) -> String {
    let m = |k| r.median(k);
    let mut out = String::from("| target | measured | limit | met |\n|---|---:|---:|---|\n");
    let mut line =
        |what: &str, v: Option<f64>, limit: f64, unit: &str, fmt: &dyn Fn(f64) -> String| {
            let (val, met) = match v {
                Some(v) => (
                    format!("{}{unit}", fmt(v)),
                    if v <= limit { "yes" } else { "**no**" },
                ),
                None => ("–".into(), "not measured"),
            };
            out.push_str(&format!(
                "| {what} | {val} | ≤ {}{unit} | {met} |\n",
                fmt(limit)
            ));
        };
    let ms2 = |v: f64| format!("{v:.2}");
    let x2 = |v: f64| format!("{v:.2}");
    let sub = |a: Option<f64>, b: Option<f64>| Some(a? - b?);
    let div = |a: Option<f64>, b: Option<f64>| Some(a? / b?);
    line(
        "checkpassword overhead beyond a process that only verifies (correct − bare verification process)",
        sub(m("cp_ok"), m("cp_bare_process")),
        2.0,
        " ms",
        &ms2,
    );
    line(
        "checkpassword overhead beyond one bare Argon2 (correct − warm verify)",
        sub(m("cp_ok"), m("argon_warm")),
        2.0,
        " ms",
        &ms2,
    );
    line(
        "checkpassword overhead beyond one bare Argon2 (correct − fresh-process verify)",
        sub(m("cp_ok"), m("argon_fresh")),
        2.0,
        " ms",
        &ms2,
    );
    line(
        "checkpassword overhead beyond its self-test and one Argon2 (correct − fresh-process one-attempt self-test − fresh-process verify)",
        sub(sub(m("cp_ok"), m("argon_selftest_one")), m("argon_fresh")),
        2.0,
        " ms",
        &ms2,
    );
    line(
        "PAM module overhead, no Argon2 (normal password off campus − pam_permit)",
        sub(m("pam_normal"), m("pam_permit")),
        0.3,
        " ms",
        &ms2,
    );
    line(
        "PAM module overhead beyond one fresh Argon2 (correct − pam_permit − fresh verify)",
        sub(sub(m("pam_ok"), m("pam_permit")), m("argon_fresh")),
        0.3,
        " ms",
        &ms2,
    );
    line(
        "PAM module overhead beyond one warm Argon2 (correct − pam_permit − interleaved warm verify)",
        sub(sub(m("pam_ok"), m("pam_permit")), m("pam_bare")),
        0.3,
        " ms",
        &ms2,
    );
    line(
        "wrong app password (known tag) / correct, checkpassword",
        div(m("cp_wrong"), m("cp_ok")),
        1.1,
        "×",
        &x2,
    );
    line(
        "wrong app password (unknown tag) / correct, checkpassword",
        div(m("cp_wrong_tag"), m("cp_ok")),
        1.1,
        "×",
        &x2,
    );
    line(
        "unknown user / correct, checkpassword",
        div(m("cp_unknown_user"), m("cp_ok")),
        1.1,
        "×",
        &x2,
    );
    line(
        "wrong app password / correct, PAM module",
        div(m("pam_wrong"), m("pam_ok")),
        1.1,
        "×",
        &x2,
    );
    for (what, wrong, ok) in [
        (
            "wrong app password / correct, checkpassword, PostgreSQL TCP",
            "cp_pg_wrong",
            "cp_pg_ok",
        ),
        (
            "wrong app password / correct, checkpassword, PostgreSQL unix socket",
            "cp_pgs_wrong",
            "cp_pgs_ok",
        ),
        (
            "wrong app password / correct, PAM module, PostgreSQL TCP",
            "pam_pg_wrong",
            "pam_pg_ok",
        ),
        (
            "wrong app password / correct, PAM module, PostgreSQL unix socket",
            "pam_pgs_wrong",
            "pam_pgs_ok",
        ),
    ] {
        if r.by_key.contains_key(ok) {
            line(what, div(m(wrong), m(ok)), 1.1, "×", &x2);
        }
    }
    line(
        "normal password off campus, checkpassword total",
        m("cp_normal"),
        2.0,
        " ms",
        &ms2,
    );
    line(
        "normal password off campus, kept store: exemption read + report write",
        m("lib_offcampus_enforce"),
        0.3,
        " ms",
        &ms2,
    );
    line(
        "unknown-format input, checkpassword total",
        m("cp_bad"),
        2.0,
        " ms",
        &ms2,
    );
    line(
        "100 app passwords / 1 app password",
        div(m("cp_100"), m("cp_ok")),
        1.1,
        "×",
        &x2,
    );
    line(
        "large database / 1000 users",
        div(m("cp_big"), m("cp_1k")),
        1.1,
        "×",
        &x2,
    );

    // Dovecot's passwd-file verifies {ARGON2ID} with the same libsodium in its auth process:
    // the PAM path's time beyond it is apppw's, Dovecot's auth-worker hop and libpam's.
    line(
        "passdb pam + pam_apppw.so / passwd-file {ARGON2ID} (same libsodium), median at the auth socket",
        div(m("dc_pam"), m("dc_file_argon")),
        1.05,
        "×",
        &x2,
    );
    let rate = |what: &str, clients: usize| {
        r.throughput
            .iter()
            .find(|t| t.what == what && t.clients == clients)
            .map(|t| t.per_second)
    };
    for clients in [2, 8] {
        let (pam, file) = (
            rate("passdb pam + pam_apppw.so", clients),
            rate("passwd-file {ARGON2ID}", clients),
        );
        let (val, met) = match div(pam, file) {
            Some(v) => (
                format!(
                    "{v:.2}× ({:.1}/s vs {:.1}/s)",
                    pam.unwrap_or(0.0),
                    file.unwrap_or(0.0)
                ),
                if v >= 1.8 { "yes" } else { "**no**" },
            ),
            None => ("–".into(), "not measured"),
        };
        out.push_str(&format!(
            "| throughput, passdb pam + pam_apppw.so / passwd-file {{ARGON2ID}}, {clients} concurrent clients | {val} | ≥ 1.80× | {met} |\n"
        ));
    }

    let cores = r.values.get("cores").copied();
    let ideal = match (cores, m("argon_warm")) {
        (Some(c), Some(w)) => Some(c * 1000.0 / w),
        _ => None,
    };
    let measured_bare = r.values.get("argon_parallel_rate").copied();
    let mut at_least = |what: String, v: Option<f64>, limit: f64, shown: String| {
        let (val, met) = match v {
            Some(v) => (
                format!("{:.0}% ({shown})", v * 100.0),
                if v >= limit { "yes" } else { "**no**" },
            ),
            None => ("–".into(), "not measured"),
        };
        out.push_str(&format!(
            "| {what} | {val} | ≥ {:.0}% | {met} |\n",
            limit * 100.0
        ));
    };
    for (what, limit) in [
        ("passdb pam + pam_apppw.so", 0.9),
        ("checkpassword + apppw-checkpassword", 0.8),
    ] {
        let two = rate(what, 2);
        at_least(
            format!("throughput, {what}, 2 concurrent clients, vs cores × 1/(warm verify)"),
            div(two, ideal),
            limit,
            format!(
                "{:.1}/s of {:.1}/s",
                two.unwrap_or(0.0),
                ideal.unwrap_or(0.0)
            ),
        );
    }
    for what in [
        "passdb pam + pam_apppw.so",
        "checkpassword + apppw-checkpassword",
        "passdb pam + pam_apppw.so, no gate (max_concurrent = 0)",
    ] {
        for clients in [8, 32] {
            let (many, two) = (rate(what, clients), rate(what, 2));
            at_least(
                format!("throughput, {what}, {clients} concurrent clients vs 2"),
                div(many, two),
                0.9,
                format!(
                    "{:.1}/s vs {:.1}/s",
                    many.unwrap_or(0.0),
                    two.unwrap_or(0.0)
                ),
            );
        }
    }
    for (what, idle, hammered) in [
        ("passdb pam + pam_apppw.so", "dc_pam_idle", "dc_pam_hammer"),
        (
            "checkpassword + apppw-checkpassword",
            "dc_cp_idle",
            "dc_cp_hammer",
        ),
    ] {
        let p90 = |k: &str| r.by_key.get(k).map(|s| s.p90);
        let v = div(p90(hammered), p90(idle));
        let (val, met) = match v {
            Some(v) => (
                format!(
                    "{v:.2}× ({:.1} ms vs {:.1} ms)",
                    p90(hammered).unwrap_or(0.0),
                    p90(idle).unwrap_or(0.0)
                ),
                if v <= 2.0 { "yes" } else { "**no**" },
            ),
            None => ("–".into(), "not measured"),
        };
        out.push_str(&format!(
            "| p90 of a real user's login while {HAMMER_CLIENTS} clients hammer wrong app passwords from one address (cool-down on) / idle p90, {what} | {val} | ≤ 2.00× | {met} |\n"
        ));
    }
    for m in r.memory.iter().filter(|m| m.gate.is_some()) {
        let limit = m.gate.unwrap_or(0) as usize + 1;
        let v = m.usage.buffers;
        out.push_str(&format!(
            "| Argon2 memory in the auth workers at once, {}, {} clients ({} workers) | {v} × 19 MiB | ≤ {limit} × 19 MiB | {} |\n",
            m.what,
            m.clients,
            m.usage.workers,
            if v <= limit { "yes" } else { "**no**" }
        ));
    }
    if let Some(b) = measured_bare {
        out.push_str(&format!(
            "\nMeasured in-process bare Argon2id rate with one thread per core: {b:.1}/s.\n"
        ));
    }
    out
}
