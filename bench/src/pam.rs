//! The in-process PAM harness (`bench/pam_bench.c`) run under pam_wrapper.

use crate::Res;
use std::path::{Path, PathBuf};
use std::process::Command;

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
