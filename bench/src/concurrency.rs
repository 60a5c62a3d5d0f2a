//! Sections 3 and 5: logins at the auth socket of a real Dovecot — the passwd-file
//! `{ARGON2ID}` peer, `passdb checkpassword` with `apppw-checkpassword`, `passdb pam` with
//! `pam_apppw.so` (with and without the admission gate, with the auth workers' memory) and
//! `pam_permit.so` alone — one after another and at each concurrency level, and a real user's
//! logins while many clients hammer wrong passwords.

use crate::setup::{self, Db, OFF_IP};
use crate::stats::{Results, ThroughputRow};
use crate::{Opts, Res, dovecot, load, progress};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Sections 3 (Dovecot passwd-file) and 5 (concurrency), plus Dovecot's own overhead.
pub fn section(o: &Opts, n: usize, one: &Db, r: &mut Results) -> Res<()> {
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
pub const HAMMER_CLIENTS: usize = 32;

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
