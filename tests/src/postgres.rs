//! A throwaway PostgreSQL cluster for one test (binary): `initdb` into a temp directory,
//! `pg_ctl start` on a free loopback port with trust authentication, stopped and removed on
//! drop. As root the server runs as the `postgres` user (PostgreSQL refuses to run as root).
//! [`Cluster::start_with`] can turn TLS on, with a test CA made by `scripts/pg-cluster.sh
//! certs`.
//!
//! [`TestEnv`](crate::TestEnv) uses an already running cluster when `APPPW_TEST_STORE=postgres`
//! and `APPPW_TEST_PG_URL` (a URL of a database the tests may `CREATE DATABASE` from) are set;
//! `scripts/test.sh` starts one with `scripts/pg-cluster.sh` for the PostgreSQL round.

use crate::dovecot::free_port;
use crate::is_root;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

/// The newest `/usr/lib/postgresql/N/bin` that has `initdb` and `pg_ctl`.
pub fn bin_dir() -> Option<PathBuf> {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            (bin.join("initdb").exists() && bin.join("pg_ctl").exists()).then_some((version, bin))
        })
        .collect();
    dirs.sort();
    dirs.pop().map(|(_, b)| b)
}

/// Whether a throwaway cluster can be started here. Prints a SKIP line naming the test if not.
pub fn available(test: &str) -> bool {
    if bin_dir().is_none() {
        eprintln!("SKIP {test}: PostgreSQL server not installed (apt-get install postgresql)");
        return false;
    }
    if is_root() && crate::dovecot::user_id("postgres").is_none() {
        eprintln!("SKIP {test}: no `postgres` user to run the server as");
        return false;
    }
    true
}

/// A running throwaway cluster.
pub struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// TCP port on 127.0.0.1 (the unix socket is in [`Cluster::socket_dir`] with the same port).
    pub port: u16,
    /// The test certificates, if TLS is on.
    pub certs: Option<Certs>,
    /// Another address the server listens on.
    pub also_listen: Option<IpAddr>,
}

/// How [`Cluster::start_with`] sets the server up.
#[derive(Default)]
pub struct Options {
    /// `ssl = on` with the certificates of [`Certs`]; plaintext TCP connections from
    /// 127.0.0.1 are refused (`hostnossl ... reject`), so whatever works went through TLS. The
    /// role `apppw_cert` must log in with its client certificate.
    pub tls: bool,
    /// Listen on this address too, trusting connections from it.
    pub also_listen: Option<IpAddr>,
}

/// Test certificates made by `scripts/pg-cluster.sh certs DIR` (EC P-256, valid two days).
pub struct Certs {
    /// The CA that signed the others.
    pub ca: PathBuf,
    /// A CA that signed none of them.
    pub other_ca: PathBuf,
    /// The server's, for `localhost` and 127.0.0.1 (key: `server.key`, owned by the server).
    pub server: PathBuf,
    /// The client certificate of the role `apppw_cert`, and its key (mode 0600).
    pub client: (PathBuf, PathBuf),
}

impl Certs {
    /// Makes them in `dir`.
    pub fn make(dir: &Path) -> Certs {
        let out = Command::new(crate::workspace().join("scripts/pg-cluster.sh"))
            .arg("certs")
            .arg(dir)
            .output()
            .unwrap();
        check("pg-cluster.sh certs", &out);
        Certs {
            ca: dir.join("ca.pem"),
            other_ca: dir.join("other-ca.pem"),
            server: dir.join("server.pem"),
            client: (dir.join("client.pem"), dir.join("client.key")),
        }
    }
}

/// An address of this machine that is not loopback (the source address of its default
/// route), if it has one.
pub fn local_address() -> Option<IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    // TEST-NET-2: nothing is sent, connecting a UDP socket only picks the route.
    socket.connect("198.51.100.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

/// Runs `cmd` as the `postgres` user when we are root.
fn as_server_user(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn check(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Cluster {
    /// `initdb` + `pg_ctl start`. Panics with the server log if it does not come up.
    pub fn start() -> Cluster {
        Self::start_with(Options::default())
    }

    /// Like [`Cluster::start`], set up as `options` say.
    pub fn start_with(options: Options) -> Cluster {
        let bin = bin_dir().expect("PostgreSQL server installed");
        let dir = tempfile::Builder::new()
            .prefix("apppw-pg.")
            .tempdir()
            .unwrap();
        // The server user owns everything in here; others (dovecot) may reach the socket.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        if is_root() {
            let uid = crate::dovecot::user_id("postgres").unwrap();
            let gid = crate::dovecot::group_id("postgres").unwrap_or(uid);
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        }
        let out = as_server_user(&bin.join("initdb"))
            .arg("-D")
            .arg(dir.path().join("data"))
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ])
            .output()
            .unwrap();
        check("initdb", &out);
        let mut rules = String::new();
        let certs = options.tls.then(|| {
            rules.push_str(
                "hostssl all apppw_cert 127.0.0.1/32 cert\nhostnossl all all 127.0.0.1/32 reject\n",
            );
            Certs::make(&dir.path().join("tls"))
        });
        if let Some(ip) = options.also_listen {
            rules.push_str(&format!("host all all {ip}/32 trust\n"));
        }
        let hba = dir.path().join("data/pg_hba.conf");
        let old = std::fs::read_to_string(&hba).unwrap();
        std::fs::write(&hba, format!("{rules}{old}")).unwrap();
        let cluster = Cluster {
            dir,
            bin,
            port: free_port(),
            certs,
            also_listen: options.also_listen,
        };
        cluster.start_again();
        cluster
    }

    /// Starts the (stopped) server again on the same port.
    pub fn start_again(&self) {
        let mut listen = "127.0.0.1".to_owned();
        if let Some(ip) = self.also_listen {
            listen.push_str(&format!(",{ip}"));
        }
        let mut options = format!(
            "-p {} -k {} -c listen_addresses={listen} -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        if let Some(certs) = &self.certs {
            let tls = certs.server.parent().unwrap().display();
            options.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={tls}/server.pem -c ssl_key_file={tls}/server.key \
                 -c ssl_ca_file={tls}/ca.pem"
            ));
        }
        let out = as_server_user(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .arg("-l")
            .arg(self.dir.path().join("server.log"))
            .args(["-w", "-t", "30", "-o", &options, "start"])
            .output()
            .unwrap();
        if !out.status.success() {
            panic!(
                "pg_ctl start failed: {}{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                self.log()
            );
        }
    }

    /// Stops the server (fast shutdown: sessions are ended).
    pub fn stop(&self) {
        let out = as_server_user(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-w", "-m", "fast", "stop"])
            .output()
            .unwrap();
        check("pg_ctl stop", &out);
    }

    /// The server log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// The directory of the unix socket.
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// `postgresql://postgres@127.0.0.1:PORT/DB?connect_timeout=2`.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgresql://postgres@127.0.0.1:{}/{db}?connect_timeout=2",
            self.port
        )
    }

    /// The same database over the unix socket.
    pub fn socket_url(&self, db: &str) -> String {
        format!(
            "postgresql://postgres@/{db}?host={}&port={}&connect_timeout=2",
            self.socket_dir().display(),
            self.port
        )
    }

    /// A new, empty database with a unique name; returns its name.
    pub fn create_database(&self) -> String {
        create_database(&self.url("postgres"))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = as_server_user(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-w", "-m", "immediate", "stop"])
            .output();
    }
}

/// A PgBouncer in transaction pooling mode in front of a cluster, as docs/postgresql.md
/// describes it for sites with several mail servers: stopped on drop.
pub struct Bouncer {
    dir: tempfile::TempDir,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
}

/// The `pgbouncer` program, if installed.
pub fn pgbouncer() -> Option<PathBuf> {
    let p = PathBuf::from("/usr/sbin/pgbouncer");
    p.exists().then_some(p)
}

impl Bouncer {
    /// Starts PgBouncer for database `db` of `cluster`, at most `pool` server connections.
    pub fn start(cluster: &Cluster, db: &str, pool: u32) -> Bouncer {
        let program = pgbouncer().expect("pgbouncer installed");
        let dir = tempfile::Builder::new()
            .prefix("apppw-pgbouncer.")
            .tempdir()
            .unwrap();
        if is_root() {
            let uid = crate::dovecot::user_id("postgres").unwrap();
            std::os::unix::fs::chown(dir.path(), Some(uid), None).unwrap();
        }
        let port = free_port();
        let d = dir.path().display();
        std::fs::write(dir.path().join("users.txt"), "\"postgres\" \"\"\n").unwrap();
        std::fs::write(
            dir.path().join("pgbouncer.ini"),
            format!(
                "[databases]\n{db} = host=127.0.0.1 port={cport} dbname={db}\n\
                 [pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\n\
                 unix_socket_dir =\nauth_type = trust\nauth_file = {d}/users.txt\n\
                 pool_mode = transaction\ndefault_pool_size = {pool}\nmax_client_conn = 500\n\
                 ignore_startup_parameters = options\n\
                 logfile = {d}/pgbouncer.log\npidfile = {d}/pgbouncer.pid\n",
                cport = cluster.port,
            ),
        )
        .unwrap();
        let out = as_server_user(&program)
            .arg("-d")
            .arg(dir.path().join("pgbouncer.ini"))
            .output()
            .unwrap();
        check("pgbouncer -d", &out);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "pgbouncer did not listen"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Bouncer { dir, port }
    }

    /// `postgresql://postgres@127.0.0.1:PORT/DB?sslmode=disable` (PgBouncer on loopback).
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgresql://postgres@127.0.0.1:{}/{db}?sslmode=disable&connect_timeout=2",
            self.port
        )
    }
}

impl Drop for Bouncer {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.path().join("pgbouncer.pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
    }
}

/// Creates a uniquely named database through `admin_url` (a database of a cluster with
/// trust authentication) and returns its name.
pub fn create_database(admin_url: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "apppw_{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    psql(admin_url, &format!("CREATE DATABASE {name}"));
    name
}

/// Runs one SQL command with `psql`, panicking on failure; returns its unaligned output.
pub fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ])
        .output()
        .unwrap();
    check(&format!("psql {sql:?}"), &out);
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Replaces the database name of a URL (`postgresql://u@h:p/NAME?query`).
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let slash = base.find("://").map_or(0, |i| i + 3);
    let base = match base[slash..].find('/') {
        Some(i) => &base[..slash + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}
