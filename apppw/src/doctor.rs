//! `apppw doctor`: finds the mistakes that docs/troubleshooting.md describes, each
//! with its fix. Reads only; changes nothing.
//!
//! 1. The config loads (through `Config::load_trusted`, as checkpassword and the web page load it:
//!    the trust rule included), and its
//!    campus networks are not the whole Internet or the loopback address.
//! 2. The database opens, and — when Dovecot runs `apppw-checkpassword` — it opens and is
//!    writable *as Dovecot's auth user*, with the groups Dovecot gives that process: tested
//!    for real in a forked child that switches to that user (`as_user.rs`).
//! 3. Every `/etc/pam.d` stack with `pam_apppw.so` uses the documented control flags and a
//!    `config=` argument that loads (`pam.rs`).
//! 4. `doveconf -n` (when Dovecot is installed): a passdb reaches apppw and none bypasses
//!    it, the auth cache key holds service and client address, and no trusted network lets
//!    clients claim any address (`dovecot.rs`).
//!
//! Exit status 0 when nothing was found, 1 with findings. Notes (report mode, exemptions,
//! checks that could not run) never change the status.

mod as_user;
mod dovecot;
mod pam;

use crate::{Result, rollout::MAX_EXEMPTION_DAYS};
use apppw::config::{Config, Database, Mode};
use apppw::store::{Store, StoreError};
use serde_json::json;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// What the checks look at. Tests point them at deliberately broken setups through the
/// environment (`APPPW_DOCTOR_PAM_DIR`, `APPPW_DOCTOR_DOVECONF`, `APPPW_DOCTOR_DOVECOT_CONFIG`),
/// which keeps them out of `--help`, the man page and the shell completions. Only this
/// read-only command reads them; nothing that decides a login does.
pub(crate) struct Paths {
    /// The PAM configuration directory (`/etc/pam.d`).
    pub pam_dir: PathBuf,
    /// The `doveconf` program.
    pub doveconf: PathBuf,
    /// A Dovecot config file for `doveconf -c`.
    pub dovecot_config: Option<PathBuf>,
}

impl Paths {
    pub(crate) fn from_env() -> Paths {
        let var = |name| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        Paths {
            pam_dir: var("APPPW_DOCTOR_PAM_DIR").unwrap_or_else(|| PathBuf::from("/etc/pam.d")),
            doveconf: var("APPPW_DOCTOR_DOVECONF").unwrap_or_else(|| PathBuf::from("doveconf")),
            dovecot_config: var("APPPW_DOCTOR_DOVECOT_CONFIG"),
        }
    }
}

/// One mistake and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finding {
    /// Stable identifier (`pam-sufficient`, `database-access`, ...), for scripts and tests.
    pub id: &'static str,
    /// Where: a file and line, a setting, a user.
    pub place: String,
    /// What is wrong and what it causes.
    pub problem: String,
    /// What to do.
    pub fix: String,
}

/// Findings and notes collected by the checks.
#[derive(Default)]
pub(crate) struct Doctor {
    findings: Vec<Finding>,
    notes: Vec<String>,
}

impl Doctor {
    pub(crate) fn find(
        &mut self,
        id: &'static str,
        place: impl Into<String>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.findings.push(Finding {
            id,
            place: place.into(),
            problem: problem.into(),
            fix: fix.into(),
        });
    }

    pub(crate) fn note(&mut self, text: impl Into<String>) {
        self.notes.push(text.into());
    }
}

/// `apppw doctor`.
pub(crate) fn run(explicit: Option<&Path>, paths: &Paths, as_json: bool) -> Result<ExitCode> {
    let mut d = Doctor::default();
    let config_path = Config::locate(explicit);
    let config = match Config::load_trusted(explicit) {
        Ok(config) => Some(config),
        Err(e) => {
            d.find(
                "config",
                config_path.display().to_string(),
                format!("{e}"),
                "fix the file as the message says; until then every login is refused, the \
                 normal password included",
            );
            None
        }
    };
    let dovecot = dovecot::inspect(&mut d, paths);
    if let Some(config) = &config {
        network(&mut d, config, dovecot.as_ref());
        database(&mut d, config, dovecot.as_ref());
        rollout_notes(&mut d, config);
    }
    pam::check_dir(&mut d, &paths.pam_dir, &config_path);
    print(&d, as_json)?;
    Ok(if d.findings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Campus networks that make the rule meaningless.
fn network(d: &mut Doctor, config: &Config, dovecot: Option<&dovecot::Dovecot>) {
    let place = format!("{} [network] campus", config.path.display());
    for net in config.network.campus() {
        if net.prefix_len() == 0 {
            d.find(
                "campus-everything",
                &place,
                format!(
                    "campus network {net} contains every address: the normal password is \
                     accepted from the whole Internet"
                ),
                "list only the university's own networks in [network] campus",
            );
            continue;
        }
        for lo in [
            IpAddr::from([127, 0, 0, 1]),
            IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]),
        ] {
            if net.contains(&lo) {
                d.find(
                    "campus-loopback",
                    &place,
                    format!(
                        "campus network {net} contains the loopback address {lo}: a webmail or \
                         proxy on this host that logs in without passing on the client address \
                         makes every login look like one from campus"
                    ),
                    "remove the loopback networks from campus; local webmail and proxies must \
                     forward the client address (Dovecot: login_trusted_networks with IMAP ID \
                     or XCLIENT)",
                );
            }
        }
    }
    if let Some(dovecot) = dovecot {
        dovecot.check_trusted_networks(d, config);
    }
}

/// The database: as this process, then as the user Dovecot runs `apppw-checkpassword` as.
fn database(d: &mut Doctor, config: &Config, dovecot: Option<&dovecot::Dovecot>) {
    let place = format!("database {}", config.database);
    // As the Dovecot user first: a forked child must not inherit open connections.
    let mut probed = false;
    match dovecot.and_then(|v| v.checkpassword_identity(d)) {
        Some(identity) if as_user::is_root() => {
            probed = true;
            use as_user::Probe;
            let who = identity.describe();
            match as_user::probe(&identity, &config.path) {
                Probe::Usable { can_record: true } | Probe::NotForThisUser => {}
                Probe::Usable { can_record: false } => d.find(
                    "database-read-only",
                    &place,
                    format!(
                        "{who} can read the database but not write it: last use, failure \
                         counters and the report of off-campus attempts are not recorded"
                    ),
                    "make the file and its directory group-writable for that group (the \
                     package: root:apppw 0660, directory root:apppw 2770)",
                ),
                Probe::Config(e) => d.find(
                    "config-access",
                    config.path.display().to_string(),
                    format!("{who} cannot load the config: {e}"),
                    "make it readable by that group (root:apppw 0640) and give Dovecot's auth \
                     process the group: service auth { extra_groups = apppw }",
                ),
                Probe::Store(e) => d.find(
                    "database-access",
                    &place,
                    format!("{who} cannot use the database: {e}"),
                    "give the group read and write access to the file and its directory \
                     (root:apppw 0660, directory root:apppw 2770; SQLite creates -wal and -shm \
                     files there) and Dovecot's auth process the group: service auth { \
                     extra_groups = apppw }",
                ),
                Probe::Failed(e) => d.note(format!("could not test the database as {who}: {e}")),
            }
        }
        Some(identity) => d.note(format!(
            "not running as root: database access as {} not tested",
            identity.describe()
        )),
        None => {}
    }
    // A PostgreSQL role is the same for every OS user: its grants are checked from here.
    let opened = if matches!(config.database, Database::Postgres(_)) && !probed {
        Store::open_for_login(&config.database).and_then(|mut s| s.can_record())
    } else {
        Store::open_read_only(&config.database).map(|_| true)
    };
    match opened {
        Ok(true) => {}
        Ok(false) => d.find(
            "database-read-only",
            &place,
            "the database role may read but not write what a login records (last use, failure \
             counters, the report of off-campus attempts), or the server is a read-only standby",
            "grant what docs/postgresql.md, \"Database and roles\", lists, or point the URL at the \
             primary",
        ),
        Err(StoreError::Missing(_)) => d.find(
            "database-missing",
            &place,
            "the database does not exist yet: app-password logins fail temporarily and \
             off-campus attempts are not counted for `apppw report`",
            "create it: the first `apppw create USER LABEL` (or `apppw exempt`) makes it, \
             mode 0660, group apppw in the package's /var/lib/apppw",
        ),
        Err(e @ StoreError::Schema { .. }) => d.find(
            "database-schema",
            &place,
            format!("{e}: logins cannot use it"),
            "upgrade it: any apppw command that changes the database (create, revoke, \
             exempt, unexempt, prune) applies the missing migrations",
        ),
        Err(e) => d.find(
            "database",
            &place,
            e.to_string(),
            "the message says what failed: the path in `database`, the file's permissions, or the \
             PostgreSQL server and its URL",
        ),
    }
}

/// What an admin in the middle of a rollout wants to be reminded of.
fn rollout_notes(d: &mut Doctor, config: &Config) {
    if config.enforcement.mode == Mode::Report {
        d.note(format!(
            "[enforcement] mode is \"report\" in {}: off campus the normal password still \
             works (logged as would-refuse); see `apppw report`, then set mode = \"enforce\"",
            config.path.display()
        ));
    }
    let Ok(store) = Store::open_read_only(&config.database) else {
        return;
    };
    let now = apppw::now();
    if let Ok(list) = store.exemptions() {
        let active: Vec<&str> = list
            .iter()
            .filter(|e| e.expires_at > now)
            .map(|e| e.user.as_str())
            .collect();
        if !active.is_empty() {
            d.note(format!(
                "users exempt from the off-campus rule (at most {MAX_EXEMPTION_DAYS} days each): \
                 {}; see `apppw exempt --list`",
                active.join(", ")
            ));
        }
    }
}

fn print(d: &Doctor, as_json: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if as_json {
        let findings: Vec<_> = d
            .findings
            .iter()
            .map(|f| json!({ "id": f.id, "place": f.place, "problem": f.problem, "fix": f.fix }))
            .collect();
        let v = json!({ "ok": d.findings.is_empty(), "findings": findings, "notes": d.notes });
        writeln!(out, "{v}")?;
        return Ok(());
    }
    match d.findings.len() {
        0 => writeln!(out, "no findings")?,
        1 => writeln!(out, "1 finding:")?,
        n => writeln!(out, "{n} findings:")?,
    }
    for f in &d.findings {
        writeln!(out, "\n[{}] {}", f.id, f.place)?;
        writeln!(out, "  problem: {}", f.problem)?;
        writeln!(out, "  fix:     {}", f.fix)?;
    }
    if !d.notes.is_empty() {
        writeln!(out, "\nnotes:")?;
        for n in &d.notes {
            writeln!(out, "  - {n}")?;
        }
    }
    Ok(())
}
