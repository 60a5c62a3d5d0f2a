//! Sections 1 and 6: `apppw-checkpassword` per attempt, driven as Dovecot drives it (fd 3,
//! environment, reply program `/bin/true`), against the floor of a bare fork/exec and a process
//! that only verifies; and how it scales with app passwords per user and users per database.

use crate::setup::{self, Db, OFF_IP, PgDb};
use crate::stats::Results;
use crate::{Dbs, Opts, Res, exec, progress};
use std::ffi::OsStr;
use std::path::Path;

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
pub fn section(o: &Opts, n: usize, dbs: &Dbs, pg: Option<&PgDb>, r: &mut Results) -> Res<()> {
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
