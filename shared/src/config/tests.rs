//! Tests of the config: every key, its defaults and its errors (file, line and key), and
//! which file each program loads.

use super::*;

const FULL: &str = r#"
database = "/var/lib/apppw/apppw.db"

[network]
campus = ["192.0.2.0/24", "2001:db8::/48"]
except = ["192.0.2.128/25"]

[primary]
pam_service = "apppw-primary"

[argon2]
memory_kib = 19456
iterations = 2
parallelism = 1
"#;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(Path::new("/etc/apppw/apppw.toml"), text)
}

fn err(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

#[test]
fn parses_the_documented_example() {
    let c = parse(FULL).unwrap();
    assert_eq!(
        c.database,
        Database::Sqlite(PathBuf::from("/var/lib/apppw/apppw.db"))
    );
    assert_eq!(c.primary_pam_service.as_deref(), Some("apppw-primary"));
    assert_eq!(c.network.campus().len(), 2);
    assert_eq!(c.argon2, Params::default());
    assert_eq!(c.lockout, Lockout::default());
    assert!(c.network.locate(Some("192.0.2.1")).is_campus());
    assert!(!c.network.locate(Some("192.0.2.129")).is_campus());
}

#[test]
fn empty_file_means_no_campus_and_defaults() {
    let c = parse("").unwrap();
    assert_eq!(
        c.database,
        Database::Sqlite(PathBuf::from(DEFAULT_DATABASE))
    );
    assert!(!c.network.locate(Some("192.0.2.1")).is_campus());
    assert_eq!(c.primary_pam_service, None);
}

#[test]
fn relative_database_is_relative_to_the_config() {
    let c = Config::parse(Path::new("/srv/x/apppw.toml"), "database = \"a.db\"").unwrap();
    assert_eq!(c.database, Database::Sqlite(PathBuf::from("/srv/x/a.db")));
}

#[test]
fn postgresql_database_and_password_file() {
    let c = Config::parse(
        Path::new("/etc/apppw/apppw.toml"),
        "database = \"postgresql://apppw@db.example.org:5432/apppw?connect_timeout=2\"\n\
             database_password_file = \"db-password\"\n",
    )
    .unwrap();
    assert_eq!(
        c.database,
        Database::Postgres(PgTarget {
            url: "postgresql://apppw@db.example.org:5432/apppw?connect_timeout=2".into(),
            password_file: Some(PathBuf::from("/etc/apppw/db-password")),
        })
    );
    let c = parse("database = \"postgres:///apppw?host=/var/run/postgresql\"\n").unwrap();
    assert!(matches!(
        c.database,
        Database::Postgres(PgTarget {
            password_file: None,
            ..
        })
    ));
}

#[test]
fn postgresql_mistakes_are_located() {
    let e = err("database = \"/x.db\"\ndatabase_password_file = \"/etc/apppw/pw\"\n");
    assert!(
        e.contains("line 2") && e.contains("database_password_file"),
        "{e}"
    );
    let e = err("\ndatabase = \"postgresql://apppw:s3cret@db/apppw\"\n");
    assert!(e.contains("line 2") && e.contains("key `database`"), "{e}");
    assert!(e.contains("database_password_file"), "{e}");
    assert!(!e.contains("s3cret"), "{e}");
    #[cfg(feature = "postgres")]
    {
        let e = err("database = \"postgresql://db/apppw?connect_timeout=soon\"\n");
        assert!(
            e.contains("line 1") && e.contains("not a valid PostgreSQL URL"),
            "{e}"
        );
    }
}

#[test]
fn unknown_key_names_file_line_and_key() {
    let e = err("database = \"/x.db\"\n[network]\ncampus = []\ncampsu = [\"10.0.0.0/8\"]\n");
    assert!(e.contains("/etc/apppw/apppw.toml line 4"), "{e}");
    assert!(e.contains("campsu"), "{e}");
    let e = err("databse = \"/x.db\"\n");
    assert!(e.contains("line 1"), "{e}");
    assert!(e.contains("databse"), "{e}");
}

#[test]
fn malformed_cidr_names_line_and_key() {
    let e = err("[network]\ncampus = [\n  \"192.0.2.0/24\",\n  \"10.0.0/8\",\n]\n");
    assert!(e.contains("line 4"), "{e}");
    assert!(e.contains("network.campus"), "{e}");
    assert!(e.contains("10.0.0/8"), "{e}");
    let e = err("[network]\ncampus = [\"192.0.2.1/24\"]\n");
    assert!(e.contains("host bits"), "{e}");
}

#[test]
fn except_outside_campus_is_an_error() {
    let e = err("[network]\ncampus = [\"192.0.2.0/24\"]\nexcept = [\"198.51.100.0/24\"]\n");
    assert!(e.contains("line 3"), "{e}");
    assert!(e.contains("network.except"), "{e}");
    // Larger than the campus network it starts in.
    let e = err("[network]\ncampus = [\"192.0.2.0/24\"]\nexcept = [\"192.0.0.0/16\"]\n");
    assert!(e.contains("network.except"), "{e}");
}

#[test]
fn wrong_types_and_syntax_are_located() {
    let e = err("[argon2]\nmemory_kib = \"lots\"\n");
    assert!(e.contains("line 2"), "{e}");
    assert!(e.contains("argon2.memory_kib"), "{e}");
    let e = err("[network\ncampus = []\n");
    assert!(e.contains("line 1"), "{e}");
    let e = err("[argon2]\nmemory_kib = 4\n");
    assert!(e.contains("argon2"), "{e}");
    let e = err("[primary]\npam_service = \"../../etc/shadow\"\n");
    assert!(e.contains("primary.pam_service"), "{e}");
}

#[test]
fn lockout_settings() {
    let c = parse("[lockout]\nmax_failures_per_client = 0\ncooldown_seconds = 60\n").unwrap();
    assert_eq!(c.lockout.per_client, 0);
    assert_eq!(c.lockout.per_user, 100);
    assert_eq!(c.lockout.cooldown_seconds, 60);
    let e = err("[lockout]\nwindow_seconds = 0\n");
    assert!(
        e.contains("line 2") && e.contains("lockout.window_seconds"),
        "{e}"
    );
}

#[test]
fn dovecot_settings() {
    let c = parse("").unwrap();
    assert_eq!(c.dovecot, crate::authcache::Settings::default());
    let c = parse(
        "[dovecot]\nflush_auth_cache = false\ndoveadm = \"/opt/dovecot/bin/doveadm\"\n\
             auth_master_socket = \"/run/dovecot2/auth-master\"\n",
    )
    .unwrap();
    assert_eq!(c.dovecot.flush_auth_cache, Some(false));
    assert_eq!(
        c.dovecot.doveadm.as_deref(),
        Some(Path::new("/opt/dovecot/bin/doveadm"))
    );
    let e = err("[dovecot]\ndoveadm = \"doveadm\"\n");
    assert!(e.contains("line 2") && e.contains("dovecot.doveadm"), "{e}");
    let e = err("[dovecot]\nflush_cache = true\n");
    assert!(e.contains("line 2") && e.contains("flush_cache"), "{e}");
}

#[test]
fn enforcement_settings() {
    let c = parse("").unwrap();
    assert_eq!(c.enforcement, Enforcement::default());
    assert_eq!(c.enforcement.mode, Mode::Enforce);
    let c = parse("[enforcement]\nmode = \"report\"\nreport_retention_days = 30\n").unwrap();
    assert_eq!(c.enforcement.mode, Mode::Report);
    assert_eq!(c.enforcement.report_retention_days, 30);
    let e = err("[enforcement]\nmode = \"watch\"\n");
    assert!(
        e.contains("line 2") && e.contains("enforcement.mode"),
        "{e}"
    );
    let e = err("[enforcement]\nreport_retention_days = 0\n");
    assert!(e.contains("enforcement.report_retention_days"), "{e}");
}

#[test]
fn database_idle_seconds() {
    assert_eq!(parse("").unwrap().database_idle, DEFAULT_DATABASE_IDLE);
    let c = parse("database_idle_seconds = 0\n").unwrap();
    assert!(c.database_idle.is_zero());
    let e = err("\ndatabase_idle_seconds = 100000\n");
    assert!(
        e.contains("line 2") && e.contains("database_idle_seconds"),
        "{e}"
    );
}

#[test]
fn argon2_gate_settings() {
    let c = parse("").unwrap();
    assert_eq!(c.gate, crate::gate::Settings::default());
    let c =
        parse("[argon2]\nmax_concurrent = 0\nqueue_timeout_ms = 500\ngate_file = \"/run/x/g\"\n")
            .unwrap();
    assert_eq!(c.gate.max_concurrent, 0);
    assert_eq!(c.gate.queue_timeout, std::time::Duration::from_millis(500));
    assert_eq!(c.gate.path, PathBuf::from("/run/x/g"));
    let e = err("[argon2]\nmax_concurrent = 100000\n");
    assert!(
        e.contains("line 2") && e.contains("argon2.max_concurrent"),
        "{e}"
    );
    let e = err("[argon2]\n\ngate_file = \"gate\"\n");
    assert!(
        e.contains("line 3") && e.contains("argon2.gate_file"),
        "{e}"
    );
}

#[test]
fn missing_file_says_what_to_do() {
    let e = Config::load_file(Path::new("/nonexistent/apppw.toml")).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("/nonexistent/apppw.toml"), "{msg}");
    assert!(msg.contains("--config"), "{msg}");
}

#[test]
fn world_writable_config_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("apppw.toml");
    std::fs::write(&path, "").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(Config::load_file(&path).is_ok());
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let e = Config::load_file(&path).unwrap_err().to_string();
    assert!(e.contains("writable by every user"), "{e}");
}

#[test]
fn user_names_are_lowercased_unless_case_sensitive() {
    let c = parse("").unwrap();
    assert_eq!(c.canonical_user("ALICE"), "alice");
    assert_eq!(c.canonical_user("Alice@Example.ORG"), "alice@example.org");
    assert_eq!(c.canonical_user("ÄLICE"), "älice");
    assert_eq!(c.canonical_user("alice"), "alice");
    let c = parse("[users]\ncase_sensitive = true\n").unwrap();
    assert_eq!(c.canonical_user("ALICE"), "ALICE");
    let e = err("[users]\ncase_insensitive = true\n");
    assert!(
        e.contains("line 2") && e.contains("case_insensitive"),
        "{e}"
    );
}

/// Without `config=`, the PAM module's file is the default one. (That `APPPW_CONFIG` is
/// ignored is shown end to end in tests/tests/pam.rs: changing the environment here would
/// race with the other tests' threads.)
#[test]
fn the_pam_module_without_argument_uses_the_default() {
    match Config::load_for_pam_module(None) {
        Ok(c) => assert_eq!(c.path, Path::new(DEFAULT_PATH)),
        Err(e) => assert!(e.to_string().contains(DEFAULT_PATH), "{e}"),
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("apppw.toml");
    std::fs::write(&path, "").unwrap();
    assert_eq!(Config::load_for_pam_module(Some(&path)).unwrap().path, path);
}

#[test]
fn trusted_load_refuses_what_others_may_change() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("apppw.toml");
    std::fs::write(&path, "").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(Config::load_trusted(Some(&path)).is_ok());
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let e = Config::load_for_pam_module(Some(&path))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("every user may write") && e.contains("chmod o-w"),
        "{e}"
    );
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let e = Config::load_for_pam_module(Some(&dir.path().join("none.toml")))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("config=FILE") && e.contains("never reads"),
        "{e}"
    );
}

#[test]
fn explicit_path_wins() {
    assert_eq!(
        Config::locate(Some(Path::new("/a/b.toml"))),
        PathBuf::from("/a/b.toml")
    );
}
