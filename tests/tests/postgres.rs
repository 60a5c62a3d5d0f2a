//! PostgreSQL as the store: several mail servers sharing one database, the database going
//! away and coming back, `apppw migrate` from SQLite, the password file, and TLS.
//!
//! Each test starts its own throwaway cluster (`initdb` + `pg_ctl` in a temp directory, trust
//! authentication on loopback), stopped and removed on drop. Needs the `postgresql` package;
//! the Dovecot test needs root and Dovecot as well. Prints a SKIP line otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use apppw_integration_tests::dovecot::{self, Dovecot, Userdb};
use apppw_integration_tests::pam::{
    Host, ServiceDir, apppw_line, pam_wrapper_available, primary_line,
};
use apppw_integration_tests::postgres::{self as pg, Cluster, Options, psql};
use apppw_integration_tests::{CAMPUS_IP, OFF_IP, TestEnv, checkpassword_command, run_with_stdin};
use std::os::unix::fs::PermissionsExt;
use std::process::Output;
use std::time::{Duration, Instant};

const NORMAL: &str = "Winter-2026-normal";

macro_rules! require_postgres {
    ($name:literal) => {
        if !pg::available($name) {
            return;
        }
    };
}

/// `apppw-checkpassword --config CONFIG /bin/true` for one login from `ip`, as Dovecot runs
/// it; returns the exit status and how long it took.
fn checkpassword(env: &TestEnv, user: &str, pass: &str, ip: &str) -> (Option<i32>, Duration) {
    let (code, took, _) = checkpassword_says(env, user, pass, ip);
    (code, took)
}

/// Like [`checkpassword`], also returning what it said on stderr (Dovecot logs it).
fn checkpassword_says(
    env: &TestEnv,
    user: &str,
    pass: &str,
    ip: &str,
) -> (Option<i32>, Duration, String) {
    let mut cmd = checkpassword_command();
    cmd.arg("--config")
        .arg(&env.config)
        .arg("/bin/true")
        .env("SERVICE", "imap")
        .env("TCPREMOTEIP", ip);
    let start = Instant::now();
    let out = run_with_stdin(&mut cmd, format!("{user}\0{pass}\0\0").as_bytes());
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains(pass), "password on stderr: {stderr}");
    (out.status.code(), start.elapsed(), stderr)
}

fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn list_json(env: &TestEnv) -> Vec<serde_json::Value> {
    let out = ok(&env.apppw(&["list", "--json"], ""), "list");
    serde_json::from_str::<serde_json::Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn two_mail_servers_share_one_database() {
    require_postgres!("two_mail_servers_share_one_database");
    if !dovecot::available("two_mail_servers_share_one_database") {
        return;
    }
    let cluster = Cluster::start();
    let url = cluster.url(&cluster.create_database());
    // Two servers, each with its own config naming the same database.
    let one = TestEnv::with_postgres(&url, "", "");
    let two = TestEnv::with_postgres(&url, "", "");
    for env in [&one, &two] {
        dovecot::share_with_dovecot(env);
    }
    let pw = one.create("alice", "phone", &[]);
    let d1 = Dovecot::start(&one.config, Userdb::Static);
    let d2 = Dovecot::start(&two.config, Userdb::Static);

    assert!(d2.accepts(OFF_IP, "alice", &pw), "{}", d2.log());
    assert!(d1.accepts(OFF_IP, "alice", &pw), "{}", d1.log());
    assert!(!d2.accepts(OFF_IP, "alice", "Winter2026!"));
    assert!(!d2.accepts(OFF_IP, "bob", &pw));
    assert_eq!(
        d2.imap_login(Some(OFF_IP), "alice", &pw),
        dovecot::Imap::LoggedIn
    );
    // The last use was recorded by the other server's checkpassword (as the dovecot user).
    let listed = list_json(&two);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["last_used_ip"], OFF_IP, "{listed:?}");

    // Revoked through the second server's config: refused by the first at once.
    ok(&two.apppw(&["revoke", "alice", "phone"], ""), "revoke");
    assert!(!d1.accepts(OFF_IP, "alice", &pw), "{}", d1.log());
    assert!(!d2.accepts(OFF_IP, "alice", &pw));
}

#[test]
fn database_down_is_a_temporary_failure_and_recovers() {
    require_postgres!("database_down_is_a_temporary_failure_and_recovers");
    let cluster = Cluster::start();
    let url = cluster.url(&cluster.create_database());
    let env = TestEnv::with_postgres(&url, "", "");
    let pw = env.create("alice", "phone", &[]);
    assert_eq!(checkpassword(&env, "alice", &pw, OFF_IP).0, Some(0));

    let pam = pam_services(
        &env,
        "database_down_is_a_temporary_failure_and_recovers (PAM part)",
    );
    let pam_login = |rhost: &str, pass: &str| {
        pam.as_ref()
            .map(|s| s.authenticate("imap", "alice", Some(rhost), &format!("{pass}\n"), &[]))
    };
    if let Some(r) = pam_login(OFF_IP, &pw) {
        assert_eq!(r.code(), "PAM_SUCCESS", "{}", r.transcript());
    }

    cluster.stop();
    let (code, took) = checkpassword(&env, "alice", &pw, OFF_IP);
    assert_eq!(code, Some(111), "database down must be a temporary failure");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    // A password that cannot be an app password needs no database: refused off campus.
    assert_eq!(checkpassword(&env, "alice", NORMAL, OFF_IP).0, Some(1));
    if let Some(r) = pam_login(OFF_IP, &pw) {
        assert_eq!(r.code(), "PAM_AUTHINFO_UNAVAIL", "{}", r.transcript());
    }
    // On campus the normal password still goes to the next module.
    if let Some(r) = pam_login(CAMPUS_IP, NORMAL) {
        assert_eq!(r.code(), "PAM_SUCCESS", "{}", r.transcript());
    }
    let out = env.apppw(&["list"], "");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not reachable"), "{stderr}");

    // An address that never answers: bounded by connect_timeout (2 s), still a temporary
    // failure. 192.0.2.1 is TEST-NET-1: packets to it go nowhere.
    let blackhole = TestEnv::with_postgres(
        "postgresql://postgres@192.0.2.1:5432/apppw?connect_timeout=2",
        "",
        "",
    );
    let (code, took) = checkpassword(&blackhole, "alice", &pw, OFF_IP);
    assert_eq!(code, Some(111));
    assert!(took < Duration::from_secs(5), "took {took:?}");

    cluster.start_again();
    assert_eq!(checkpassword(&env, "alice", &pw, OFF_IP).0, Some(0));
    if let Some(r) = pam_login(OFF_IP, &pw) {
        assert_eq!(r.code(), "PAM_SUCCESS", "{}", r.transcript());
    }
}

/// A long-lived PAM host with the `imap` stack of `env` (the caller keeps the service files).
fn pam_host(env: &TestEnv) -> (Host, ServiceDir) {
    let services = ServiceDir::new();
    let apppw = apppw_line(&format!("config={}", env.config.display()));
    let primary = primary_line(services.dir.path(), NORMAL);
    services.add("imap", &[&apppw, &primary]);
    (Host::start(&services), services)
}

/// apppw's sessions on the database of `url`, as PostgreSQL counts them.
fn apppw_sessions(url: &str) -> String {
    psql(
        url,
        "SELECT count(*) FROM pg_stat_activity \
         WHERE application_name = 'apppw' AND datname = current_database()",
    )
}

/// A long-lived PAM host (as Dovecot's auth worker) keeps one connection for all its logins,
/// and a server restart costs no login: the closed connection is replaced at the next one.
#[test]
fn a_long_lived_pam_host_keeps_one_connection_and_survives_a_restart() {
    require_postgres!("a_long_lived_pam_host_keeps_one_connection_and_survives_a_restart");
    if !pam_wrapper_available("a_long_lived_pam_host_keeps_one_connection_and_survives_a_restart") {
        return;
    }
    let cluster = Cluster::start();
    let url = cluster.url(&cluster.create_database());
    let env = TestEnv::with_postgres(&url, "", "");
    let pw = env.create("alice", "phone", &[]);
    let (mut host, _services) = pam_host(&env);
    let sessions = || apppw_sessions(&url);

    for round in 0..5 {
        let answer = host.login("imap", "alice", Some(OFF_IP), &pw);
        assert_eq!(answer.said, "accepted", "round {round}: {answer:?}");
    }
    assert_eq!(sessions(), "1", "one kept connection for five logins");

    cluster.stop();
    cluster.start_again();
    let answer = host.login("imap", "alice", Some(OFF_IP), &pw);
    assert_eq!(
        answer.said, "accepted",
        "first login after the restart: {answer:?}"
    );

    cluster.stop();
    let answer = host.login("imap", "alice", Some(OFF_IP), &pw);
    assert_eq!(answer.said, "unavailable", "server down: {answer:?}");
    cluster.start_again();
    let answer = host.login("imap", "alice", Some(OFF_IP), &pw);
    assert_eq!(answer.said, "accepted", "server back: {answer:?}");
    assert_eq!(sessions(), "1");
}

/// `database_idle_seconds`: the connection a long-lived host keeps is closed by PostgreSQL
/// once it has been idle that long (idle_session_timeout, asked for by apppw), and the next
/// login simply connects again.
#[test]
fn an_idle_kept_connection_is_closed() {
    require_postgres!("an_idle_kept_connection_is_closed");
    if !pam_wrapper_available("an_idle_kept_connection_is_closed") {
        return;
    }
    let cluster = Cluster::start();
    let url = cluster.url(&cluster.create_database());
    let env = TestEnv::with_postgres(&url, "database_idle_seconds = 1\n", "");
    let pw = env.create("alice", "phone", &[]);
    let (mut host, _services) = pam_host(&env);
    let sessions = || apppw_sessions(&url);
    for round in 0..3 {
        let answer = host.login("imap", "alice", Some(OFF_IP), &pw);
        assert_eq!(answer.said, "accepted", "round {round}: {answer:?}");
    }
    assert_eq!(sessions(), "1", "kept while in use");
    // Idle for 1 s (+ 1 s of grace on the server's side): closed by the server.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while sessions() != "0" {
        assert!(
            std::time::Instant::now() < deadline,
            "the idle connection was never closed"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let answer = host.login("imap", "alice", Some(OFF_IP), &pw);
    assert_eq!(answer.said, "accepted", "after the close: {answer:?}");
    assert_eq!(sessions(), "1");
}

/// Behind PgBouncer in transaction pooling mode (docs/postgresql.md, "PgBouncer"):
/// create, logins through checkpassword and a long-lived PAM host, failure counters and the
/// cool-down, while the server sees no more connections than PgBouncer's pool.
#[test]
fn works_behind_pgbouncer_in_transaction_mode() {
    require_postgres!("works_behind_pgbouncer_in_transaction_mode");
    if pg::pgbouncer().is_none() {
        eprintln!("SKIP works_behind_pgbouncer_in_transaction_mode: pgbouncer not installed");
        return;
    }
    let cluster = Cluster::start();
    let db = cluster.create_database();
    let bouncer = pg::Bouncer::start(&cluster, &db, 2);
    let env = TestEnv::with_postgres(
        &bouncer.url(&db),
        "",
        "[lockout]\nmax_failures_per_client = 2\n",
    );
    let pw = env.create("alice", "phone", &[]);
    let wrong = format!("{}zzzz zzzz zzzz zzzz zzzz", &pw[..5]);
    let mut host =
        pam_wrapper_available("works_behind_pgbouncer (PAM part)").then(|| pam_host(&env));
    // Several checkpassword processes at once, each with its own client connection.
    std::thread::scope(|s| {
        let runs: Vec<_> = (0..6)
            .map(|_| s.spawn(|| checkpassword(&env, "alice", &pw, OFF_IP).0))
            .collect();
        for r in runs {
            assert_eq!(r.join().unwrap(), Some(0));
        }
    });
    if let Some((host, _)) = &mut host {
        for _ in 0..3 {
            let answer = host.login("imap", "alice", Some(OFF_IP), &pw);
            assert_eq!(answer.said, "accepted", "{answer:?}");
        }
    }
    // Counters and the cool-down work through the pooler's transactions.
    for _ in 0..2 {
        assert_eq!(
            checkpassword(&env, "alice", &wrong, "198.51.100.9").0,
            Some(1)
        );
    }
    assert_eq!(checkpassword(&env, "alice", &pw, "198.51.100.9").0, Some(1));
    assert_eq!(checkpassword(&env, "alice", &pw, OFF_IP).0, Some(0));
    let server_side = psql(
        &cluster.url(&db),
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
         AND application_name <> 'psql'",
    );
    assert!(
        server_side.parse::<u32>().unwrap() <= 2,
        "{server_side} server connections behind a pool of 2"
    );
}

#[test]
fn migrate_copies_every_credential_from_sqlite() {
    require_postgres!("migrate_copies_every_credential_from_sqlite");
    let cluster = Cluster::start();
    let url = cluster.url(&cluster.create_database());
    let old = TestEnv::sqlite("");
    let phone = old.create("alice", "phone", &[]);
    let laptop = old.create("alice", "laptop", &["--services", "imap,smtp"]);
    let bob = old.create("bob", "tablet", &["--expires", "30d"]);
    // One recorded use, which must be copied too.
    assert_eq!(checkpassword(&old, "alice", &phone, OFF_IP).0, Some(0));
    let before = list_json(&old);

    let new = TestEnv::with_postgres(&url, "", "");
    let db = old.db.to_str().unwrap();
    let out = ok(&new.apppw(&["migrate", "--from", db], ""), "migrate");
    assert!(out.contains("copied 3 of 3"), "{out}");
    assert_eq!(list_json(&new), before, "same ids, metadata and last use");

    // Hashes stay hashes: no password appears in the database.
    let dump = psql(
        &url,
        "SELECT string_agg(hash || ' ' || tag, ' ') FROM app_passwords",
    );
    for pw in [&phone, &laptop, &bob] {
        assert!(!dump.contains(pw.as_str()));
        assert!(!dump.contains(&pw.replace(' ', "")));
    }
    assert!(dump.starts_with("$argon2id$"), "{dump}");

    // Logins work against PostgreSQL, with the same restrictions.
    for (user, pw) in [("alice", &phone), ("alice", &laptop), ("bob", &bob)] {
        assert_eq!(checkpassword(&new, user, pw, OFF_IP).0, Some(0), "{user}");
    }
    let verify = new.apppw(
        &["verify", "alice", "--ip", OFF_IP, "--service", "pop3"],
        &format!("{laptop}\n"),
    );
    assert_eq!(verify.status.code(), Some(1), "service restriction copied");

    // Again: refused, nothing changes; with --force nothing is added twice.
    let again = new.apppw(&["migrate", "--from", db, "--to", &url], "");
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    let forced = ok(
        &new.apppw(&["migrate", "--from", db, "--force"], ""),
        "migrate --force",
    );
    assert!(
        forced.contains("copied 0 of 3") && forced.contains("skipped 3"),
        "{forced}"
    );
    assert_eq!(list_json(&new).len(), 3);

    // New app passwords continue after the copied ids.
    new.create("carol", "phone", &[]);
    let max_old = before
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .max()
        .unwrap();
    let carol = list_json(&new)
        .into_iter()
        .find(|c| c["user"] == "carol")
        .unwrap();
    assert!(carol["id"].as_i64().unwrap() > max_old);

    // Not into an SQLite config, and never a URL with a password in it.
    let out = old.apppw(&["migrate", "--from", db], "");
    assert_eq!(out.status.code(), Some(1));
    let out = old.apppw(
        &[
            "migrate",
            "--from",
            db,
            "--to",
            "postgresql://u:s3cret@127.0.0.1/x",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("s3cret"));
}

#[test]
fn password_file_is_read_at_connect_and_must_be_private() {
    require_postgres!("password_file_is_read_at_connect_and_must_be_private");
    let cluster = Cluster::start();
    let name = cluster.create_database();
    let admin = cluster.url(&name);
    // A role that must give a password over TCP (the cluster trusts everyone else).
    psql(&admin, "CREATE ROLE apppw LOGIN PASSWORD 'Correct-Horse-7'");
    psql(&admin, &format!("ALTER DATABASE {name} OWNER TO apppw"));
    psql(&admin, "ALTER SCHEMA public OWNER TO apppw");
    let hba = std::path::Path::new(&psql(&admin, "SHOW hba_file")).to_path_buf();
    let rules = std::fs::read_to_string(&hba).unwrap();
    std::fs::write(
        &hba,
        format!("host all apppw 127.0.0.1/32 scram-sha-256\n{rules}"),
    )
    .unwrap();
    psql(&admin, "SELECT pg_reload_conf()");

    let url = format!(
        "postgresql://apppw@127.0.0.1:{}/{name}?connect_timeout=2",
        cluster.port
    );
    let env = TestEnv::with_postgres(&url, "database_password_file = \"db-password\"\n", "");
    let secret = env.dir.path().join("db-password");
    std::fs::write(&secret, "Correct-Horse-7\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o640)).unwrap();
    let pw = env.create("alice", "phone", &[]);
    assert_eq!(checkpassword(&env, "alice", &pw, OFF_IP).0, Some(0));

    // Every user could read it: refused, a temporary failure for logins.
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = env.apppw(&["list"], "");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("readable or writable by every user"),
        "{stderr}"
    );
    assert!(!stderr.contains("Correct-Horse-7"));
    assert_eq!(checkpassword(&env, "alice", &pw, OFF_IP).0, Some(111));

    // A wrong password: a temporary failure, and the password never shows.
    std::fs::write(&secret, "Wrong-Horse-8\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = env.apppw(&["list"], "");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("password authentication failed"),
        "{stderr}"
    );
    assert!(!stderr.contains("Wrong-Horse-8"), "{stderr}");
    assert_eq!(checkpassword(&env, "alice", &pw, OFF_IP).0, Some(111));

    // Read at each connect: fixing the file fixes the next login.
    std::fs::write(&secret, "Correct-Horse-7").unwrap();
    assert_eq!(checkpassword(&env, "alice", &pw, OFF_IP).0, Some(0));
}

#[test]
fn lockout_and_last_use_are_shared() {
    require_postgres!("lockout_and_last_use_are_shared");
    let cluster = Cluster::start();
    let url = cluster.url(&cluster.create_database());
    let env = TestEnv::with_postgres(&url, "", "[lockout]\nmax_failures_per_client = 3\n");
    let pw = env.create("alice", "phone", &[]);
    let wrong = "abcd efgh ijkl mnop qrst uvwx";
    for _ in 0..3 {
        assert_eq!(checkpassword(&env, "alice", wrong, OFF_IP).0, Some(1));
    }
    // Cooling down from that address, also for the right password; not from another.
    assert_eq!(checkpassword(&env, "alice", &pw, OFF_IP).0, Some(1));
    assert_eq!(checkpassword(&env, "alice", &pw, "198.51.100.7").0, Some(0));
    let listed = list_json(&env);
    assert_eq!(listed[0]["last_used_ip"], "198.51.100.7");
    assert_eq!(listed[0]["last_used_service"], "imap");
}

#[test]
fn per_attempt_cost_tcp_socket_and_sqlite() {
    require_postgres!("per_attempt_cost_tcp_socket_and_sqlite");
    let cluster = Cluster::start();
    let name = cluster.create_database();
    // No cool-down: the unknown-user attempts must all take the full path.
    let no_lockout = "[lockout]\nmax_failures_per_client = 0\nmax_failures_per_user = 0\n";
    let tcp = TestEnv::with_postgres(&cluster.url(&name), "", no_lockout);
    let socket = TestEnv::with_postgres(&cluster.socket_url(&name), "", no_lockout);
    let sqlite = TestEnv::sqlite(no_lockout);
    let pw = tcp.create("alice", "phone", &[]);
    let pw_sqlite = sqlite.create("alice", "phone", &[]);
    let wrong = "abcd efgh ijkl mnop qrst uvwx";
    const N: u32 = 7;
    let mut report = Vec::new();
    for (what, env, pw) in [
        ("sqlite", &sqlite, &pw_sqlite),
        ("postgres tcp", &tcp, &pw),
        ("postgres socket", &socket, &pw),
    ] {
        let (mut right, mut unknown) = (Vec::new(), Vec::new());
        for _ in 0..N {
            let (code, t) = checkpassword(env, "alice", pw, OFF_IP);
            assert_eq!(code, Some(0), "{what}");
            right.push(t);
            // Unknown tag: connect + lookup + dummy verify + failure record.
            let (code, t) = checkpassword(env, "bob", wrong, OFF_IP);
            assert_eq!(code, Some(1), "{what}");
            unknown.push(t);
        }
        right.sort();
        unknown.sort();
        report.push(format!(
            "{what}: app password {:?}, unknown {:?}",
            right[right.len() / 2],
            unknown[unknown.len() / 2]
        ));
    }
    eprintln!(
        "checkpassword per attempt (median of {N}): {}",
        report.join("; ")
    );
}

/// `apppw verify USER --ip OFF_IP` with `pw`: its first line ("accepted: ...", "tempfail: ...").
fn verify_says(env: &TestEnv, user: &str, pw: &str) -> String {
    let out = env.apppw(&["verify", user, "--ip", OFF_IP], &format!("{pw}\n"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains(pw));
    stdout.lines().next().unwrap_or_default().to_owned()
}

/// PAM (pam_wrapper + pamtester) with the apppw line for `env` and a normal-password line.
fn pam_services(env: &TestEnv, test: &str) -> Option<ServiceDir> {
    pam_wrapper_available(test).then(|| {
        let services = ServiceDir::new();
        let apppw = apppw_line(&format!("config={}", env.config.display()));
        let primary = primary_line(services.dir.path(), NORMAL);
        services.add("imap", &[&apppw, &primary]);
        services
    })
}

#[test]
fn tls_verify_full_accepts_and_bad_certificates_fail_closed() {
    require_postgres!("tls_verify_full_accepts_and_bad_certificates_fail_closed");
    let cluster = Cluster::start_with(Options {
        tls: true,
        ..Options::default()
    });
    let certs = cluster.certs.as_ref().unwrap();
    let name = cluster.create_database();
    let url = |host: &str, query: &str| {
        format!(
            "postgresql://postgres@{host}:{}/{name}?connect_timeout=2&{query}",
            cluster.port
        )
    };
    let full = format!("sslmode=verify-full&sslrootcert={}", certs.ca.display());

    // The server refuses plaintext TCP, so everything that works here went through TLS.
    let good = TestEnv::with_postgres(&url("localhost", &full), "", "");
    let pw = good.create("alice", "phone", &[]);
    assert_eq!(checkpassword(&good, "alice", &pw, OFF_IP).0, Some(0));
    let said = verify_says(&good, "alice", &pw);
    assert!(said.starts_with("accepted"), "{said}");
    let by_address = TestEnv::with_postgres(&url("127.0.0.1", &full), "", "");
    assert_eq!(checkpassword(&by_address, "alice", &pw, OFF_IP).0, Some(0));
    let pam = pam_services(&good, "tls_verify_full_accepts... (PAM part)");
    if let Some(pam) = &pam {
        let r = pam.authenticate("imap", "alice", Some(OFF_IP), &format!("{pw}\n"), &[]);
        assert_eq!(r.code(), "PAM_SUCCESS", "{}", r.transcript());
    }

    // A wrong CA, a name the certificate is not for, the system's CAs (which do not know the
    // test CA), require with a root certificate (= verify-ca): temporary failures, never
    // accepted, and the message says what is wrong.
    let other = certs.other_ca.display();
    let refused = [
        (
            url(
                "localhost",
                &format!("sslmode=verify-full&sslrootcert={other}"),
            ),
            "server certificate verify failed",
        ),
        (
            url("db.invalid", &format!("{full}&hostaddr=127.0.0.1")),
            "host name mismatch",
        ),
        (
            url("localhost", "sslmode=verify-full"),
            "server certificate verify failed",
        ),
        (
            url("127.0.0.1", &format!("sslmode=require&sslrootcert={other}")),
            "server certificate verify failed",
        ),
    ];
    for (bad, why) in &refused {
        let env = TestEnv::with_postgres(bad, "", "");
        let (code, _, stderr) = checkpassword_says(&env, "alice", &pw, OFF_IP);
        assert_eq!(code, Some(111), "{bad}: {stderr}");
        assert!(stderr.contains(why), "{bad}: {stderr}");
        let said = verify_says(&env, "alice", &pw);
        assert!(said.starts_with("tempfail") && said.contains(why), "{said}");
        // On campus the normal password still goes to the next module; off campus the app
        // password cannot be checked: PAM_AUTHINFO_UNAVAIL.
        if let Some(pam) = pam_services(&env, "tls_verify_full_accepts... (PAM part)") {
            let r = pam.authenticate("imap", "alice", Some(OFF_IP), &format!("{pw}\n"), &[]);
            assert_eq!(
                r.code(),
                "PAM_AUTHINFO_UNAVAIL",
                "{bad}: {}",
                r.transcript()
            );
            let r = pam.authenticate(
                "imap",
                "alice",
                Some(CAMPUS_IP),
                &format!("{NORMAL}\n"),
                &[],
            );
            assert_eq!(r.code(), "PAM_SUCCESS", "{bad}: {}", r.transcript());
        }
    }

    // Without the name check (verify-ca) the wrong name is accepted; without a root
    // certificate require only encrypts.
    for weaker in [
        url(
            "db.invalid",
            &format!(
                "sslmode=verify-ca&sslrootcert={}&hostaddr=127.0.0.1",
                certs.ca.display()
            ),
        ),
        url("127.0.0.1", "sslmode=require"),
    ] {
        let env = TestEnv::with_postgres(&weaker, "", "");
        assert_eq!(
            checkpassword(&env, "alice", &pw, OFF_IP).0,
            Some(0),
            "{weaker}"
        );
    }

    // A client certificate instead of a password (the server's `cert` authentication).
    psql(&cluster.url(&name), "CREATE ROLE apppw_cert LOGIN");
    psql(
        &cluster.url(&name),
        "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO apppw_cert",
    );
    let (cert, key) = &certs.client;
    let with_cert = format!(
        "postgresql://apppw_cert@localhost:{}/{name}?connect_timeout=2&{full}&sslcert={}&sslkey={}",
        cluster.port,
        cert.display(),
        key.display()
    );
    let env = TestEnv::with_postgres(&with_cert, "", "");
    assert_eq!(checkpassword(&env, "alice", &pw, OFF_IP).0, Some(0));
    let without = with_cert.split("&sslcert").next().unwrap();
    let (code, _, stderr) = checkpassword_says(
        &TestEnv::with_postgres(without, "", ""),
        "alice",
        &pw,
        OFF_IP,
    );
    assert_eq!(code, Some(111));
    assert!(stderr.contains("certificate"), "{stderr}");
    // A key every user may read is refused, like `database_password_file`.
    std::fs::set_permissions(key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, _, stderr) = checkpassword_says(&env, "alice", &pw, OFF_IP);
    assert_eq!(code, Some(111));
    assert!(
        stderr.contains("readable or writable by every user"),
        "{stderr}"
    );
}

#[test]
fn plaintext_is_refused_where_tls_is_required() {
    require_postgres!("plaintext_is_refused_where_tls_is_required");
    let remote = pg::local_address();
    let cluster = Cluster::start_with(Options {
        tls: false,
        also_listen: remote,
    });
    let name = cluster.create_database();
    let url = |host: &str, query: &str| {
        format!(
            "postgresql://postgres@{host}:{}/{name}?connect_timeout=2{query}",
            cluster.port
        )
    };
    // Over loopback the default (prefer) takes plaintext from a server without TLS.
    let loopback = TestEnv::with_postgres(&url("127.0.0.1", ""), "", "");
    let pw = loopback.create("alice", "phone", &[]);
    assert_eq!(checkpassword(&loopback, "alice", &pw, OFF_IP).0, Some(0));

    for mode in ["require", "verify-ca", "verify-full"] {
        let env = TestEnv::with_postgres(&url("localhost", &format!("&sslmode={mode}")), "", "");
        let (code, _, stderr) = checkpassword_says(&env, "alice", &pw, OFF_IP);
        assert_eq!(code, Some(111), "{mode}: {stderr}");
        assert!(
            stderr.contains("server does not support TLS"),
            "{mode}: {stderr}"
        );
        if mode == "require" {
            if let Some(pam) = pam_services(&env, "plaintext_is_refused... (PAM part)") {
                let r = pam.authenticate("imap", "alice", Some(OFF_IP), &format!("{pw}\n"), &[]);
                assert_eq!(r.code(), "PAM_AUTHINFO_UNAVAIL", "{}", r.transcript());
            }
        }
    }

    // A host that is not loopback: TLS unless the URL says sslmode=disable.
    match remote {
        None => eprintln!("SKIP the non-loopback part: this machine has no other address"),
        Some(ip) => {
            for query in ["", "&sslmode=prefer"] {
                let env = TestEnv::with_postgres(&url(&ip.to_string(), query), "", "");
                let (code, _, stderr) = checkpassword_says(&env, "alice", &pw, OFF_IP);
                assert_eq!(code, Some(111), "{query}: {stderr}");
                assert!(
                    stderr.contains("server does not support TLS")
                        && stderr.contains("sslmode=disable"),
                    "{query}: {stderr}"
                );
            }
            let env = TestEnv::with_postgres(&url(&ip.to_string(), "&sslmode=disable"), "", "");
            assert_eq!(checkpassword(&env, "alice", &pw, OFF_IP).0, Some(0));
        }
    }

    // An sslmode apppw does not know is a config error naming the file, line and key.
    let env = TestEnv::with_postgres(&url("127.0.0.1", "&sslmode=verify_full"), "", "");
    let out = env.apppw(&["list"], "");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let located = format!("{} line 1 key `database`", env.config.display());
    assert!(
        stderr.contains(&located) && stderr.contains("verify_full"),
        "{stderr}"
    );
    assert_eq!(checkpassword(&env, "alice", &pw, OFF_IP).0, Some(111));
}
