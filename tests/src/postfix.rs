//! A throwaway Postfix for one test: own config, queue and data directories, one smtpd on a
//! loopback port, SMTP AUTH handed to a Dovecot SASL socket (2.3 on the host, or 2.4 in a
//! [`crate::trixie::Jail`] through its shared directory); `swaks` as the client.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Whether Postfix and swaks are installed; prints a SKIP line naming the test if not.
pub fn available(test: &str) -> bool {
    for tool in [
        "/usr/sbin/postfix",
        "/usr/bin/swaks",
        "/etc/postfix/master.cf",
    ] {
        if !Path::new(tool).exists() {
            eprintln!("SKIP {test}: {tool} is missing (apt-get install postfix swaks)");
            return false;
        }
    }
    true
}

/// A Postfix instance in a temp directory (own config, queue and data directories, one smtpd on
/// a loopback port) using Dovecot SASL; stopped on drop.
pub struct Postfix {
    conf: PathBuf,
    log: PathBuf,
    port: u16,
}

impl Postfix {
    /// Starts it in `dir` with `sasl_socket` as Dovecot's auth socket.
    pub fn start(dir: &Path, sasl_socket: &Path) -> Postfix {
        let conf = dir.join("postfix");
        let queue = dir.join("postfix-queue");
        let data = dir.join("postfix-data");
        for d in [&conf, &queue, &data] {
            std::fs::create_dir_all(d).unwrap();
        }
        // master.lock lives in the data directory, which must belong to the mail owner.
        let status = Command::new("chown")
            .arg("postfix")
            .arg(&data)
            .status()
            .unwrap();
        assert!(status.success());
        let log = dir.join("postfix.log");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        std::fs::write(
            conf.join("main.cf"),
            format!(
                "compatibility_level = 3.6\n\
                 queue_directory = {queue}\n\
                 data_directory = {data}\n\
                 maillog_file_prefixes = {dir}\n\
                 maillog_file = {log}\n\
                 inet_interfaces = 127.0.0.1\n\
                 inet_protocols = ipv4\n\
                 myhostname = apppw-test.localdomain\n\
                 mydestination =\n\
                 mynetworks = 127.0.0.0/8\n\
                 smtpd_tls_security_level = none\n\
                 smtpd_sasl_auth_enable = yes\n\
                 smtpd_sasl_type = dovecot\n\
                 smtpd_sasl_path = {sasl}\n\
                 smtpd_relay_restrictions = permit_sasl_authenticated, reject\n\
                 # The test client announces campus addresses with XCLIENT.\n\
                 smtpd_authorized_xclient_hosts = 127.0.0.1\n",
                queue = queue.display(),
                data = data.display(),
                dir = dir.display(),
                log = log.display(),
                sasl = sasl_socket.display(),
            ),
        )
        .unwrap();
        // The packaged master.cf without its listeners and without chroot (the chroot would need
        // copies of system files in the queue directory), plus one smtpd on our port.
        let system = std::fs::read_to_string("/etc/postfix/master.cf").unwrap();
        let mut master = String::new();
        for line in system.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if line.starts_with(['#', ' ', '\t']) || fields.len() < 8 {
                continue;
            }
            if fields[1] == "inet" || fields[7] == "pipe" {
                continue;
            }
            let mut fields = fields;
            fields[4] = "n";
            master.push_str(&fields.join(" "));
            master.push('\n');
        }
        master.push_str(&format!("127.0.0.1:{port} inet n - n - - smtpd\n"));
        std::fs::write(conf.join("master.cf"), master).unwrap();

        let postfix = Postfix { conf, log, port };
        let out = postfix.command("start");
        assert!(
            out.status.success(),
            "postfix start failed:\n{}",
            postfix.log_text()
        );
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "postfix did not listen:\n{}",
                postfix.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        postfix
    }

    /// `postfix -c CONF VERB`.
    pub fn command(&self, verb: &str) -> std::process::Output {
        Command::new("postfix")
            .arg("-c")
            .arg(&self.conf)
            .arg(verb)
            .output()
            .unwrap()
    }

    /// Postfix's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `swaks --auth PLAIN`, the client address announced with XCLIENT if given. Returns the
    /// exit code (0 authenticated, 28 refused) and the server's replies only: the client side
    /// would show the credentials.
    pub fn auth_plain(
        &self,
        xclient_addr: Option<&str>,
        user: &str,
        password: &str,
    ) -> (i32, String) {
        let mut cmd = Command::new("swaks");
        cmd.args(["--server", &format!("127.0.0.1:{}", self.port)])
            .args([
                "--auth",
                "PLAIN",
                "--auth-user",
                user,
                "--auth-password",
                password,
            ])
            .args([
                "--quit-after",
                "AUTH",
                "--hide-send",
                "--hide-informational",
            ]);
        if let Some(addr) = xclient_addr {
            cmd.args(["--xclient-addr", addr]);
        }
        let out = cmd.output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = self.command("stop");
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.command("status").status.success() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
