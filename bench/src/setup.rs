//! Configs and databases for the run.
//!
//! Every database is created by the real CLI (`apppw create`, so the schema and migrations are
//! whatever this build ships); the filler rows of the scaling databases are then inserted
//! directly with one precomputed Argon2id hash, which is all a lookup ever reads of them.

use crate::Res;
use apppw::hash::{Argon2Kdf, Params};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Off campus (TEST-NET-3).
pub const OFF_IP: &str = "203.0.113.9";
/// Campus network of every config.
pub const CAMPUS: &str = "192.0.2.0/24";

/// One database with its config and the user whose logins are timed.
pub struct Db {
    pub config: PathBuf,
    pub path: PathBuf,
    /// The app password of `alice` as printed by `apppw create` (grouped).
    pub password: String,
}

/// Writes a config naming `db`. With `lockout`, the failure counters stay on (they are part of
/// a failed attempt's cost) but with limits no benchmark reaches.
pub fn write_config(config: &Path, db: &Path, lockout: bool) -> Res<()> {
    write_config_for(config, &db.display().to_string(), lockout)
}

/// [`write_config`] with `database` as written in the config (a file or a PostgreSQL URL).
/// The Argon2 admission gate is on with its defaults (one slot per CPU), its file in
/// [`gate_dir`] next to the config.
pub fn write_config_for(config: &Path, database: &str, lockout: bool) -> Res<()> {
    let p = Params::default();
    let gate = gate_dir(config)?.join("argon2-gate");
    let mut text = format!(
        "database = \"{database}\"\n\n[network]\ncampus = [\"{CAMPUS}\"]\nexcept = [\"192.0.2.128/25\"]\n\n\
         [argon2]\nmemory_kib = {}\niterations = {}\nparallelism = {}\ngate_file = \"{}\"\n",
        p.memory_kib,
        p.iterations,
        p.parallelism,
        gate.display()
    );
    if let Ok(mut gates) = GATES.lock() {
        gates.push(gate);
    }
    if lockout {
        text.push_str(
            "\n[lockout]\nmax_failures_per_client = 1000000\nmax_failures_per_user = 1000000\n",
        );
    }
    std::fs::write(config, text)?;
    Ok(())
}

/// Every gate file a config of this run names (removed at the end: System V semaphores
/// outlive processes).
pub static GATES: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// Removes the run's gates.
pub fn remove_gates() {
    if let Ok(gates) = GATES.lock() {
        for g in gates.iter() {
            let _ = apppw::gate::remove(g);
        }
    }
}

/// `dir/gate` next to `config`, made as the package makes `/run/apppw`: root and the group of
/// Dovecot's auth process (which runs checkpassword), mode 2770.
pub fn gate_dir(config: &Path) -> Res<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let dir = config.parent().unwrap_or(Path::new("/")).join("gate");
    std::fs::create_dir_all(&dir)?;
    let st = Command::new("chown")
        .arg("root:dovecot")
        .arg(&dir)
        .status()?;
    if !st.success() {
        return Err(format!("chown root:dovecot {} failed", dir.display()).into());
    }
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o2770))?;
    Ok(dir)
}

/// Rewrites `config` so that its processes run Argon2 without the admission gate.
pub fn without_gate(config: &Path) -> Res<()> {
    let text = std::fs::read_to_string(config)?;
    let out: String = text
        .lines()
        .map(|l| {
            if l.starts_with("gate_file = ") {
                "max_concurrent = 0".to_owned()
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(config, out + "\n")?;
    Ok(())
}

/// Whether this build's config understands `[lockout]`.
pub fn lockout_supported(apppw: &Path, dir: &Path) -> Res<bool> {
    let cfg = dir.join("probe.toml");
    write_config(&cfg, &dir.join("probe.db"), true)?;
    let ok = Command::new(apppw)
        .arg("--config")
        .arg(&cfg)
        .args(["explain", OFF_IP])
        .output()?
        .status
        .success();
    std::fs::remove_file(&cfg)?;
    Ok(ok)
}

/// `apppw create USER LABEL --json` → the printed password.
pub fn create(apppw: &Path, config: &Path, user: &str, label: &str) -> Res<String> {
    let out = Command::new(apppw)
        .arg("--config")
        .arg(config)
        .args(["create", user, label, "--json"])
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "apppw create {user} {label} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into());
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    Ok(v["password"]
        .as_str()
        .ok_or("apppw create --json printed no password")?
        .to_owned())
}

/// A database with `alice` (one real app password), then `extra` more app passwords for
/// alice and `users - 1` other users with one app password each (filler rows).
pub fn make_db(
    apppw: &Path,
    dir: &Path,
    name: &str,
    lockout: bool,
    extra: usize,
    users: usize,
    filler_hash: &str,
) -> Res<Db> {
    let path = dir.join(format!("{name}.db"));
    let config = dir.join(format!("{name}.toml"));
    write_config(&config, &path, lockout)?;
    let password = create(apppw, &config, "alice", "phone")?;
    fill(&path, extra, users.saturating_sub(1), filler_hash)?;
    Ok(Db {
        config,
        path,
        password,
    })
}

/// The PostgreSQL database of the run, reached over TCP on loopback and over the unix socket:
/// one config each, `alice` with one app password created by `apppw create` (which also
/// creates the schema).
pub struct PgDb {
    pub tcp_config: PathBuf,
    pub socket_config: PathBuf,
    /// The app password of `alice` as printed by `apppw create` (grouped).
    pub password: String,
}

/// Writes the two configs for the PostgreSQL database at `tcp_url` / `socket_url` and creates
/// `alice`'s app password through the TCP one.
pub fn make_pg(
    apppw: &Path,
    dir: &Path,
    tcp_url: &str,
    socket_url: &str,
    lockout: bool,
) -> Res<PgDb> {
    let tcp_config = dir.join("pg-tcp.toml");
    let socket_config = dir.join("pg-socket.toml");
    write_config_for(&tcp_config, tcp_url, lockout)?;
    write_config_for(&socket_config, socket_url, lockout)?;
    let password = create(apppw, &tcp_config, "alice", "phone")?;
    Ok(PgDb {
        tcp_config,
        socket_config,
        password,
    })
}

fn random_tag() -> Res<String> {
    Ok(apppw::secret::generate()
        .map_err(|e| format!("getrandom: {e}"))?
        .tag()
        .to_owned())
}

fn fill(path: &Path, extra: usize, users: usize, hash: &str) -> Res<()> {
    if extra == 0 && users == 0 {
        return Ok(());
    }
    let mut conn = rusqlite::Connection::open(path)?;
    let tx = conn.transaction()?;
    {
        let mut taken: HashSet<String> = HashSet::new();
        {
            let mut q = tx.prepare("SELECT tag FROM app_passwords WHERE user = 'alice'")?;
            for t in q.query_map([], |r| r.get::<_, String>(0))? {
                taken.insert(t?);
            }
        }
        let mut ins = tx.prepare(
            "INSERT INTO app_passwords (user, label, tag, hash, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        let now = apppw::now();
        let mut added = 0;
        while added < extra {
            let tag = random_tag()?;
            if taken.insert(tag.clone()) {
                added += 1;
                ins.execute(rusqlite::params![
                    "alice",
                    format!("device-{added}"),
                    tag,
                    hash,
                    now
                ])?;
            }
        }
        for i in 0..users {
            ins.execute(rusqlite::params![
                format!("user{i:06}"),
                "phone",
                random_tag()?,
                hash,
                now
            ])?;
        }
    }
    tx.commit()?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(())
}

/// One Argon2id PHC string with the benchmark parameters, for filler rows and passwd-file.
pub fn hash(password: &[u8]) -> Res<String> {
    Ok(Argon2Kdf::new()
        .hash_new(Params::default(), password)
        .map_err(|e| e.to_string())?)
}

/// The 24 letters of a grouped app password.
pub fn letters(grouped: &str) -> String {
    grouped.chars().filter(char::is_ascii_alphabetic).collect()
}

/// A wrong candidate with the same lookup tag as `grouped` (so the stored hash is verified).
pub fn wrong_same_tag(grouped: &str) -> String {
    let l = letters(grouped);
    let flipped: String = l[4..]
        .chars()
        .map(|c| if c == 'z' { 'a' } else { 'z' })
        .collect();
    format!("{}{}", &l[..4], flipped)
}

/// A wrong candidate whose tag no stored credential of `grouped`'s owner has (dummy Argon2).
pub fn wrong_other_tag(grouped: &str) -> String {
    let l = letters(grouped);
    let tag: String = l[..4]
        .chars()
        .map(|c| if c == 'q' { 'r' } else { 'q' })
        .collect();
    format!("{tag}{}", &l[4..])
}

/// Makes `path` (recursively) owned by `user` (for Dovecot's unprivileged auth process).
pub fn chown_to(path: &Path, user: &str) -> Res<()> {
    let st = Command::new("chown")
        .arg("-R")
        .arg(format!("{user}:{user}"))
        .arg(path)
        .status()?;
    if !st.success() {
        return Err(format!("chown {user} {} failed", path.display()).into());
    }
    Ok(())
}
