//! Section 2 (and the pam_unix peer of section 3): `pam_apppw.so` per `pam_authenticate` in a
//! long-lived process — the in-process harness (`bench/pam_bench.c`) under pam_wrapper —
//! against `pam_permit.so` in the same harness and a bare Argon2 in this warm process.

use crate::setup::{self, Db, OFF_IP, PgDb};
use crate::stats::Results;
use crate::{Opts, Res, ms_since, progress};
use apppw::hash::{Argon2Kdf, Kdf};
use apppw::store::CredentialSource;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// PAM result codes the rows expect.
pub const PAM_SUCCESS: i32 = 0;
pub const PAM_AUTH_ERR: i32 = 7;

const LIB_DIRS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu",
    "/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
];

/// Finds a shared object in the usual library directories (`sub` e.g. "security").
pub fn find_lib(sub: &str, name: &str) -> Option<PathBuf> {
    LIB_DIRS
        .iter()
        .map(|d| Path::new(d).join(sub).join(name))
        .find(|p| p.exists())
}

/// A pam_wrapper service directory.
pub struct Services {
    pub dir: PathBuf,
    wrapper: PathBuf,
    harness: PathBuf,
}

impl Services {
    pub fn new(dir: &Path, harness: &Path) -> Res<Services> {
        let wrapper = find_lib("", "libpam_wrapper.so").ok_or("libpam_wrapper.so not found")?;
        std::fs::create_dir_all(dir)?;
        Ok(Services {
            dir: dir.to_path_buf(),
            wrapper,
            harness: harness.to_path_buf(),
        })
    }

    /// Writes service `name` with one `auth required MODULE ARGS` line.
    pub fn add(&self, name: &str, module: &Path, args: &str) -> Res<()> {
        std::fs::write(
            self.dir.join(name),
            format!("auth required {} {args}\n", module.display()),
        )?;
        Ok(())
    }

    /// Runs `n` authentications; returns (PAM result, ms) per iteration.
    pub fn run(
        &self,
        service: &str,
        user: &str,
        password: &str,
        rhost: &str,
        n: usize,
    ) -> Res<Vec<(i32, f64)>> {
        let out = Command::new(&self.harness)
            .args([service, user, password, rhost, &n.to_string()])
            .env("LD_PRELOAD", &self.wrapper)
            .env("PAM_WRAPPER", "1")
            .env("PAM_WRAPPER_SERVICE_DIR", &self.dir)
            .output()?;
        if !out.status.success() {
            return Err(format!(
                "pam_bench {service} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )
            .into());
        }
        let text = String::from_utf8(out.stdout)?;
        let mut v = Vec::with_capacity(n);
        for line in text.lines() {
            let mut it = line.split_whitespace();
            let rc: i32 = it.next().ok_or("pam_bench: empty line")?.parse()?;
            let ns: f64 = it.next().ok_or("pam_bench: no time")?.parse()?;
            v.push((rc, ns / 1e6));
        }
        if v.len() != n {
            return Err(format!("pam_bench {service}: {} of {n} results", v.len()).into());
        }
        Ok(v)
    }
}

/// Section 2 (and pam_unix of section 3): in-process PAM.
pub fn section(
    o: &Opts,
    n: usize,
    harness: &Path,
    db: &Db,
    pg: Option<&PgDb>,
    r: &mut Results,
) -> Res<()> {
    progress("PAM harness");
    let svc = Services::new(&o.work.join("pam.d"), harness)?;
    let permit = find_lib("security", "pam_permit.so").ok_or("pam_permit.so not found")?;
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
            PAM_SUCCESS,
        ),
        (
            "pam_ok",
            "pam_apppw.so: correct app password",
            "bench-apppw",
            "alice".into(),
            letters.clone(),
            PAM_SUCCESS,
        ),
        (
            "pam_wrong",
            "pam_apppw.so: wrong app password (known tag)",
            "bench-apppw",
            "alice".into(),
            wrong,
            PAM_AUTH_ERR,
        ),
        (
            "pam_unknown_user",
            "pam_apppw.so: unknown user, app-password shaped",
            "bench-apppw",
            "nosuchuser".into(),
            letters,
            PAM_AUTH_ERR,
        ),
        (
            "pam_normal",
            "pam_apppw.so: normal password, off campus",
            "bench-apppw",
            "alice".into(),
            "Winter2026!".into(),
            PAM_AUTH_ERR,
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
                PAM_SUCCESS,
            ),
            (
                "pam_pg_wrong",
                "pam_apppw.so, PostgreSQL TCP: wrong app password (known tag)",
                "bench-apppw-pg",
                "alice".into(),
                wrong.clone(),
                PAM_AUTH_ERR,
            ),
            (
                "pam_pgs_ok",
                "pam_apppw.so, PostgreSQL unix socket: correct app password",
                "bench-apppw-pgs",
                "alice".into(),
                app,
                PAM_SUCCESS,
            ),
            (
                "pam_pgs_wrong",
                "pam_apppw.so, PostgreSQL unix socket: wrong app password (known tag)",
                "bench-apppw-pgs",
                "alice".into(),
                wrong,
                PAM_AUTH_ERR,
            ),
        ]);
    }
    match (
        &o.unix_user,
        &o.unix_password,
        find_lib("security", "pam_unix.so"),
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
                PAM_SUCCESS,
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
