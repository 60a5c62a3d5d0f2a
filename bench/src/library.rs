//! Section `lib`: where the time of one login goes inside the library — loading the config,
//! opening the store, the store work of a success and of a failure, the disk's fsync, each
//! `verify()` outcome with a fresh or a kept store, and an off-campus normal password — on
//! SQLite and, when given, on PostgreSQL over TCP and the unix socket.

use crate::setup::{self, Db, OFF_IP, PgDb};
use crate::stats::Results;
use crate::{Res, ms_since, progress};
use apppw::hash::{Argon2Kdf, Kdf};
use apppw::store::{CredentialSource, LazyStore, Store};
use apppw::verify::{Decision, Record, Request};
use std::path::Path;
use std::time::Instant;

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
pub fn section(n: usize, db: &Db, r: &mut Results) -> Res<()> {
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
pub fn section_pg(n: usize, pg: &PgDb, r: &mut Results) -> Res<()> {
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
