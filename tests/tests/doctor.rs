//! `apppw doctor` against deliberately broken setups, with real files: the config, an SQLite
//! database shared with Dovecot's user as documented (tested as that user, as root), a PAM
//! directory, and Dovecot configurations read by the real `doveconf` (2.3 here; 2.4 output
//! through a stand-in that prints what 2.4's `doveconf -n` prints). Each broken setup must
//! produce its finding exactly once and nothing else; the documented setup none.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use apppw_integration_tests::dovecot::{group_id, share_with_dovecot};
use apppw_integration_tests::{TestEnv, bin, is_root, workspace};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const DOVECONF: &str = "/usr/bin/doveconf";

/// The documented installation, in temp directories.
struct Site {
    env: TestEnv,
    pam_dir: tempfile::TempDir,
    /// The Dovecot config given to `doveconf -c`.
    dovecot_conf: PathBuf,
    /// Replaces `doveconf` (for Dovecot 2.4 output).
    doveconf: Option<PathBuf>,
}

const DOCUMENTED: &str = "auth [success=done ignore=ignore default=die] pam_apppw.so";

impl Site {
    fn new() -> Site {
        let env = TestEnv::sqlite("");
        env.create("alice", "phone", &[]);
        if is_root() && group_id("dovecot").is_some() {
            share_with_dovecot(&env);
        }
        let pam_dir = tempfile::tempdir().unwrap();
        std::fs::write(
            pam_dir.path().join("other"),
            "auth required pam_deny.so\naccount required pam_deny.so\n",
        )
        .unwrap();
        let site = Site {
            dovecot_conf: env.dir.path().join("dovecot.conf"),
            env,
            pam_dir,
            doveconf: None,
        };
        site.pam(
            "imap",
            &format!(
                "{DOCUMENTED} config={}\nauth required pam_unix.so try_first_pass\n",
                site.env.config.display()
            ),
        );
        site.dovecot("");
        site
    }

    fn pam(&self, service: &str, text: &str) {
        std::fs::write(self.pam_dir.path().join(service), text).unwrap();
    }

    /// A Dovecot 2.3 config as the shipped example makes it: apppw-checkpassword as passdb,
    /// the auth process in group `apppw`; plus `extra`.
    fn dovecot(&self, extra: &str) {
        self.dovecot_with_auth_groups("apppw", extra);
    }

    /// [`Site::dovecot`] with `extra_groups` of `service auth` set to `groups` (none if empty).
    fn dovecot_with_auth_groups(&self, groups: &str, extra: &str) {
        let auth = if groups.is_empty() {
            String::new()
        } else {
            format!("service auth {{\n  extra_groups = {groups}\n}}\n")
        };
        std::fs::write(
            &self.dovecot_conf,
            format!(
                "ssl = no\nprotocols = imap\n\
                 passdb {{\n  driver = checkpassword\n  args = {} --config {}\n}}\n\
                 userdb {{\n  driver = static\n  args = uid=65534 gid=65534 home=/tmp/%u\n}}\n\
                 {auth}{extra}",
                bin("apppw-checkpassword").display(),
                self.env.config.display()
            ),
        )
        .unwrap();
    }

    /// `doveconf` replaced by a script that prints `output` (Dovecot 2.4).
    fn doveconf_prints(&mut self, output: &str) {
        let canned = self.env.dir.path().join("doveconf-output");
        std::fs::write(&canned, output).unwrap();
        let script = self.env.dir.path().join("doveconf");
        std::fs::write(&script, format!("#!/bin/sh\ncat '{}'\n", canned.display())).unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        self.doveconf = Some(script);
    }

    fn config(&self, text: &str) {
        std::fs::write(&self.env.config, text).unwrap();
    }

    /// `apppw doctor --json`: exit status and the parsed output.
    fn doctor(&self) -> (i32, Value) {
        let mut cmd = Command::new(bin("apppw"));
        cmd.arg("--config")
            .arg(&self.env.config)
            .args(["doctor", "--json"])
            .env("APPPW_DOCTOR_PAM_DIR", self.pam_dir.path())
            .env("APPPW_DOCTOR_DOVECOT_CONFIG", &self.dovecot_conf);
        if let Some(script) = &self.doveconf {
            cmd.env("APPPW_DOCTOR_DOVECONF", script);
        } else {
            cmd.env("APPPW_DOCTOR_DOVECONF", DOVECONF);
        }
        let out = cmd.output().unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{e}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code().unwrap_or(-1), v)
    }

    /// Exactly one finding, `id`, with a fix; exit status 1. Returns it.
    #[track_caller]
    fn finds_only(&self, id: &str) -> Value {
        let (code, v) = self.doctor();
        assert_eq!(ids(&v), [id], "{v:#}");
        let findings = v["findings"].as_array().unwrap();
        assert_eq!(code, 1);
        assert_eq!(v["ok"], false);
        let f = findings[0].clone();
        assert!(!f["fix"].as_str().unwrap().is_empty(), "{f}");
        f
    }

    #[track_caller]
    fn is_clean(&self) -> Value {
        let (code, v) = self.doctor();
        assert_eq!(v["findings"], serde_json::json!([]), "{v:#}");
        assert_eq!((code, &v["ok"]), (0, &Value::Bool(true)));
        v
    }
}

/// The ids of the findings, in order.
fn ids(v: &Value) -> Vec<&str> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect()
}

fn dovecot_installed(test: &str) -> bool {
    if Path::new(DOVECONF).exists() {
        return true;
    }
    eprintln!("SKIP {test}: {DOVECONF} is not installed");
    false
}

fn campus_config(env: &TestEnv, campus: &str) -> String {
    format!(
        "database = \"{}\"\n[network]\ncampus = [{campus}]\n",
        env.db.display()
    )
}

#[test]
fn the_documented_setup_is_clean_and_the_text_output_reads_well() {
    if !dovecot_installed("the_documented_setup_is_clean_and_the_text_output_reads_well") {
        return;
    }
    let site = Site::new();
    let v = site.is_clean();
    if !is_root() {
        let notes = v["notes"].to_string();
        assert!(notes.contains("not running as root"), "{notes}");
    }
    // People get the same findings as text, each with its fix.
    site.pam(
        "smtp",
        &format!(
            "auth sufficient pam_apppw.so config={}\n",
            site.env.config.display()
        ),
    );
    let out = Command::new(bin("apppw"))
        .arg("--config")
        .arg(&site.env.config)
        .arg("doctor")
        .env("APPPW_DOCTOR_PAM_DIR", site.pam_dir.path())
        .env("APPPW_DOCTOR_DOVECOT_CONFIG", &site.dovecot_conf)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text.starts_with("1 finding:\n\n[pam-refusal-ignored] "),
        "{text}"
    );
    assert!(text.contains("/smtp line 1"), "{text}");
    assert!(
        text.contains("  fix:     write the line as documented"),
        "{text}"
    );
}

#[test]
fn pam_stacks_with_the_wrong_flags_or_arguments() {
    let site = Site::new();
    let config = format!("config={}", site.env.config.display());
    let cases = [
        (
            format!("auth sufficient pam_apppw.so {config}"),
            "pam-refusal-ignored",
        ),
        (
            format!("auth [success=done ignore=ignore] pam_apppw.so {config}"),
            "pam-default-die",
        ),
        (
            format!("auth requisite pam_apppw.so {config}"),
            "pam-success-done",
        ),
        (
            format!("auth [success=done default=die] pam_apppw.so {config}"),
            "pam-ignore",
        ),
        (DOCUMENTED.to_string(), "pam-config-missing"),
        (
            format!("{DOCUMENTED} config=/nonexistent/apppw.toml"),
            "pam-config-invalid",
        ),
        (format!("{DOCUMENTED} {config} debug"), "pam-argument"),
        (format!("auth include pam_apppw.so {config}"), "pam-control"),
    ];
    // No Dovecot in these: the PAM checks alone.
    let mut site = site;
    site.doveconf = Some(PathBuf::from("/nonexistent/doveconf"));
    for (line, id) in cases {
        site.pam(
            "imap",
            &format!("# a comment\n{line}\nauth required pam_unix.so\n"),
        );
        let f = site.finds_only(id);
        assert!(
            f["place"].as_str().unwrap().ends_with("/imap line 2"),
            "{line}: {f}"
        );
    }
    // `required` and `optional` are two mistakes at once.
    for (control, first) in [
        ("required", "pam-default-die"),
        ("optional", "pam-refusal-ignored"),
    ] {
        site.pam("imap", &format!("auth {control} pam_apppw.so {config}\n"));
        let (_, v) = site.doctor();
        assert_eq!(ids(&v), [first, "pam-success-done"], "{v:#}");
    }
    site.pam("imap", &format!("{DOCUMENTED} {config}\n"));
    site.is_clean();
}

#[test]
fn config_and_campus_networks() {
    let mut site = Site::new();
    site.doveconf = Some(PathBuf::from("/nonexistent/doveconf"));
    site.config(&campus_config(&site.env, "\"0.0.0.0/0\""));
    site.finds_only("campus-everything");
    site.config(&campus_config(&site.env, "\"192.0.2.0/24\", \"::/0\""));
    site.finds_only("campus-everything");
    site.config(&campus_config(
        &site.env,
        "\"192.0.2.0/24\", \"127.0.0.0/8\"",
    ));
    let f = site.finds_only("campus-loopback");
    assert!(f["problem"].as_str().unwrap().contains("127.0.0.1"), "{f}");
    site.config("[network]\ncampsu = []\n");
    let f = site.finds_only("config");
    assert!(f["problem"].as_str().unwrap().contains("line 2"), "{f}");
    // The same function the front-ends use: a world-writable config is refused.
    site.config(&campus_config(&site.env, "\"192.0.2.0/24\""));
    site.is_clean();
    std::fs::set_permissions(&site.env.config, std::fs::Permissions::from_mode(0o666)).unwrap();
    site.finds_only("config");
}

#[test]
fn database_missing_and_access_as_the_dovecot_user() {
    if !dovecot_installed("database_missing_and_access_as_the_dovecot_user") {
        return;
    }
    let site = Site::new();
    std::fs::remove_file(&site.env.db).unwrap();
    let f = site.finds_only("database-missing");
    assert!(f["fix"].as_str().unwrap().contains("apppw create"), "{f}");
    if !is_root() || group_id("dovecot").is_none() {
        eprintln!("SKIP database access as dovecot: needs root and a dovecot group");
        return;
    }

    // The package's layout (docs/install.md, "Files, owners, modes") without the group for
    // Dovecot's auth process: it cannot even read the config.
    let site = Site::new();
    site.dovecot_with_auth_groups("", "");
    let f = site.finds_only("config-access");
    assert!(
        f["problem"]
            .as_str()
            .unwrap()
            .contains("user dovecot (groups dovecot)"),
        "{f}"
    );
    assert!(
        f["fix"].as_str().unwrap().contains("extra_groups = apppw"),
        "{f}"
    );
    // Through `extra_groups`, as Dovecot gives groups (they are not in /etc/group).
    site.dovecot("");
    site.is_clean();

    // The database root's alone: not readable by dovecot.
    std::os::unix::fs::chown(&site.env.db, Some(0), Some(0)).unwrap();
    let f = site.finds_only("database-access");
    assert!(
        f["problem"]
            .as_str()
            .unwrap()
            .contains("user dovecot (groups"),
        "{f}"
    );
    // Back to the package's layout (the database and the -wal/-shm files SQLite keeps).
    share_with_dovecot(&site.env);
    site.is_clean();

    // Readable, not writable.
    std::fs::set_permissions(&site.env.db, std::fs::Permissions::from_mode(0o640)).unwrap();
    let f = site.finds_only("database-read-only");
    assert!(
        f["problem"].as_str().unwrap().contains("not recorded"),
        "{f}"
    );
    std::fs::set_permissions(&site.env.db, std::fs::Permissions::from_mode(0o660)).unwrap();

    // The config itself unreadable for dovecot.
    std::fs::set_permissions(&site.env.config, std::fs::Permissions::from_mode(0o600)).unwrap();
    site.finds_only("config-access");

    // extra_groups naming a group that does not exist (Dovecot would not start its auth).
    let site = Site::new();
    site.dovecot_with_auth_groups("apppw apppwnosuchgroup", "");
    let f = site.finds_only("dovecot-group");
    assert!(
        f["problem"].as_str().unwrap().contains("apppwnosuchgroup"),
        "{f}"
    );
}

#[test]
fn database_of_an_older_schema() {
    let mut site = Site::new();
    site.doveconf = Some(PathBuf::from("/nonexistent/doveconf"));
    // As an upgrade leaves it: the tables of version 1 only.
    for table in [
        "known_devices",
        "exemptions",
        "offcampus_attempts",
        "offcampus_days",
    ] {
        site.env.sql(&format!("DROP TABLE {table}"));
    }
    site.env.sql("PRAGMA user_version = 1");
    let f = site.finds_only("database-schema");
    assert!(f["fix"].as_str().unwrap().contains("exempt"), "{f}");
    // Any command that changes the database migrates it.
    let out = site.env.apppw(&["exempt", "alice", "--until", "1d"], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    site.is_clean();
}

#[test]
fn dovecot_passdbs_cache_and_trusted_networks_on_2_3() {
    if !dovecot_installed("dovecot_passdbs_cache_and_trusted_networks_on_2_3") {
        return;
    }
    let site = Site::new();
    // A second passdb whose PAM service does not run pam_apppw.so.
    site.pam("mail", "auth required pam_unix.so\n");
    site.dovecot("passdb {\n  driver = pam\n  args = mail\n}\n");
    let f = site.finds_only("dovecot-passdb-bypass");
    assert!(f["problem"].as_str().unwrap().contains("mail"), "{f}");
    // The documented chain: limited to campus with allow_nets.
    site.dovecot(
        "passdb {\n  driver = pam\n  args = mail\n  override_fields = allow_nets=192.0.2.0/25\n}\n",
    );
    site.is_clean();
    // A passdb of another kind, not limited.
    site.dovecot("passdb {\n  driver = passwd-file\n  args = /etc/dovecot/users\n}\n");
    site.finds_only("dovecot-passdb-bypass");
    // Master passdbs are Dovecot's own business.
    site.dovecot(
        "auth_master_user_separator = *\n\
         passdb {\n  driver = passwd-file\n  args = /etc/dovecot/masters\n  master = yes\n}\n",
    );
    site.is_clean();

    // passdb pam through the documented stack, with the auth cache.
    std::fs::write(
        &site.dovecot_conf,
        "ssl = no\nprotocols = imap\nauth_cache_size = 10M\n\
         passdb {\n  driver = pam\n  args = cache_key=%u%s %s\n}\n\
         userdb {\n  driver = static\n  args = uid=65534 gid=65534 home=/tmp/%u\n}\n",
    )
    .unwrap();
    let f = site.finds_only("dovecot-cache-key");
    assert!(
        f["problem"].as_str().unwrap().contains("client address"),
        "{f}"
    );
    std::fs::write(
        &site.dovecot_conf,
        std::fs::read_to_string(&site.dovecot_conf)
            .unwrap()
            .replace("%u%s", "%u%r%s"),
    )
    .unwrap();
    site.is_clean();

    // Postfix SMTP AUTH through Dovecot uses the PAM service "smtp". Without its file,
    // Linux-PAM uses `other`: a deny-all `other` is harmless, Debian's (common-auth) is not.
    let conf = std::fs::read_to_string(&site.dovecot_conf).unwrap();
    std::fs::write(
        &site.dovecot_conf,
        format!(
            "{conf}service auth {{\n  unix_listener /var/spool/postfix/private/auth {{\n    \
             mode = 0660\n  }}\n}}\n"
        ),
    )
    .unwrap();
    site.is_clean();
    site.pam("other", "@include common-auth\n");
    site.pam(
        "common-auth",
        "auth [success=1 default=ignore] pam_unix.so nullok\n",
    );
    let f = site.finds_only("dovecot-passdb-bypass");
    assert!(
        f["problem"].as_str().unwrap().contains("PAM service smtp "),
        "{f}"
    );
    site.pam("other", "auth required pam_deny.so\n");

    // No passdb reaches apppw.
    site.pam("imap", "auth required pam_unix.so\n");
    std::fs::write(
        &site.dovecot_conf,
        "ssl = no\nprotocols = imap\n\
         passdb {\n  driver = pam\n  args = %s\n  override_fields = allow_nets=192.0.2.0/25\n}\n\
         userdb {\n  driver = static\n  args = uid=65534 gid=65534 home=/tmp/%u\n}\n",
    )
    .unwrap();
    site.finds_only("dovecot-no-passdb");

    // Trusted networks.
    let site = Site::new();
    site.dovecot("login_trusted_networks = 127.0.0.0/8 0.0.0.0/0\n");
    site.finds_only("dovecot-trusted-everything");
    site.dovecot("login_trusted_networks = 127.0.0.0/8 192.0.2.192/26\n");
    let f = site.finds_only("dovecot-trusted-except");
    assert!(
        f["problem"].as_str().unwrap().contains("192.0.2.128/25"),
        "{f}"
    );
    site.dovecot("login_trusted_networks = 127.0.0.0/8 ::1\n");
    site.is_clean();

    // A configuration Dovecot itself rejects.
    site.dovecot("passdb {\n");
    site.finds_only("dovecot-config");
}

#[test]
fn dovecot_2_4_passdb_pam_and_its_cache() {
    let mut site = Site::new();
    let header = "# 2.4.1-4 (7d8c0e5759): /etc/dovecot/dovecot.conf\n\
                  dovecot_config_version = 2.4.1\ndovecot_storage_version = 2.4.1\n\
                  protocols = imap\n";
    // 2.4 caches passdb pam by default, keyed by user and PAM service only.
    site.doveconf_prints(&format!(
        "{header}auth_cache_size = 10M\npassdb pam {{\n  service_name = %{{protocol}}\n}}\n"
    ));
    let f = site.finds_only("dovecot-cache-key");
    assert!(f["fix"].as_str().unwrap().contains("use_cache = no"), "{f}");
    site.doveconf_prints(&format!(
        "{header}auth_cache_size = 10M\npassdb pam {{\n  service_name = %{{protocol}}\n  \
         use_cache = no\n}}\n"
    ));
    site.is_clean();
    // The default service name "dovecot": no file, a deny-all `other`: nothing reaches
    // apppw, nothing gets around it either.
    site.doveconf_prints(&format!("{header}passdb pam {{\n}}\n"));
    site.finds_only("dovecot-no-passdb");
    // Debian's /etc/pam.d/dovecot (common-auth) gets around it.
    site.pam("dovecot", "@include common-auth\n");
    site.pam("common-auth", "auth required pam_unix.so\n");
    let (_, v) = site.doctor();
    assert_eq!(
        ids(&v),
        ["dovecot-passdb-bypass", "dovecot-no-passdb"],
        "{v:#}"
    );
}

#[test]
fn postgresql_role_without_the_documented_write_grants() {
    use apppw_integration_tests::postgres::{self as pg, Cluster, psql};
    if !pg::available("postgresql_role_without_the_documented_write_grants") {
        return;
    }
    let cluster = Cluster::start();
    let name = cluster.create_database();
    let admin = cluster.url(&name);
    let env = TestEnv::with_postgres(&admin, "", "");
    env.create("alice", "phone", &[]);
    // The mail servers' role with the documented read grants only.
    let (read, write) = documented_grants("mailrole");
    psql(&admin, "CREATE ROLE mailrole LOGIN");
    for grant in &read {
        psql(&admin, grant);
    }
    let site = Site {
        dovecot_conf: env.dir.path().join("dovecot.conf"),
        pam_dir: tempfile::tempdir().unwrap(),
        doveconf: Some(PathBuf::from("/nonexistent/doveconf")),
        env,
    };
    let mail_url = admin.replace("postgres@", "mailrole@");
    site.config(&format!(
        "database = \"{mail_url}\"\n[network]\ncampus = [\"192.0.2.0/24\"]\n"
    ));
    let f = site.finds_only("database-read-only");
    assert!(
        f["fix"].as_str().unwrap().contains("Database and roles"),
        "{f}"
    );
    // The documented write grants, exactly as written there.
    for grant in &write {
        psql(&admin, grant);
    }
    site.is_clean();
}

/// The `GRANT` lines of docs/postgresql.md, "Database and roles", for `role` instead of the
/// mail servers' `apppw`: (the read grants, the write grants).
fn documented_grants(role: &str) -> (Vec<String>, Vec<String>) {
    let page = std::fs::read_to_string(workspace().join("docs/postgresql.md")).unwrap();
    let start = page
        .find("```sql")
        .expect("the roles block of docs/postgresql.md");
    let block = &page[start..];
    let block = &block[..3 + block[3..].find("```").unwrap()];
    let grants: Vec<String> = block
        .lines()
        .filter(|l| l.starts_with("GRANT "))
        .map(|l| {
            l.strip_suffix(" TO apppw;")
                .map(|g| format!("{g} TO {role}"))
                .expect("a grant to the role apppw")
        })
        .collect();
    assert_eq!(grants.len(), 3, "{block}");
    grants
        .into_iter()
        .partition(|g| g.starts_with("GRANT SELECT ON"))
}
