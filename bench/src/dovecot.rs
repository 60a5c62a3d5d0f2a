//! Throwaway Dovecot 2.3 instances (loopback only, no mail listeners) and a minimal client of
//! the auth socket (`auth-client`, the protocol the login processes speak).

use crate::Res;
use crate::stats::{Summary, summarize};
use base64ct::{Base64, Encoding};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// A running instance; stopped on drop.
pub struct Instance {
    pub conf: PathBuf,
    pub socket: PathBuf,
    pid_file: PathBuf,
}

impl Instance {
    /// Writes `dir/dovecot.conf` with `passdb` and starts Dovecot.
    pub fn start(dir: &Path, passdb: &str) -> Res<Instance> {
        let run = dir.join("run");
        let state = dir.join("state");
        std::fs::create_dir_all(&state)?;
        let conf = dir.join("dovecot.conf");
        let text = format!(
            "base_dir = {run}\nstate_dir = {state}\nlog_path = {dir}/dovecot.log\n\
             listen = 127.0.0.1\nssl = no\nprotocols = imap\ndisable_plaintext_auth = no\n\
             auth_mechanisms = plain\nauth_cache_size = 0\n\
             {passdb}\n\
             userdb {{\n  driver = static\n  args = uid=dovecot gid=dovecot home={dir}/home/%u allow_all_users=yes\n}}\n\
             service imap-login {{\n  inet_listener imap {{\n    port = 0\n  }}\n  inet_listener imaps {{\n    port = 0\n  }}\n}}\n",
            run = run.display(),
            state = state.display(),
            dir = dir.display(),
        );
        std::fs::write(&conf, text)?;
        let status = Command::new("dovecot")
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .status()?;
        if !status.success() {
            return Err(format!("dovecot -c {} failed to start", conf.display()).into());
        }
        let inst = Instance {
            socket: run.join("auth-client"),
            pid_file: run.join("master.pid"),
            conf,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !inst.socket.exists() {
            if Instant::now() > deadline {
                return Err("dovecot did not create its auth socket within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(inst)
    }

    /// The master process's pid.
    pub fn master_pid(&self) -> Option<i32> {
        std::fs::read_to_string(&self.pid_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }

    /// `doveadm auth test` wall time and exit status.
    pub fn doveadm_test(&self, user: &str, password: &str, rip: &str) -> Res<(i32, f64)> {
        crate::exec::time_command(
            Command::new("doveadm")
                .arg("-c")
                .arg(&self.conf)
                .args(["auth", "test", "-x", "service=imap", "-x"])
                .arg(format!("rip={rip}"))
                .args([user, password]),
        )
    }

    /// Error, warning and fatal lines in the instance's log: (count, first one).
    pub fn log_problems(&self) -> (usize, Option<String>) {
        let log = self.conf.with_file_name("dovecot.log");
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let bad: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("Error:") || l.contains("Warning:") || l.contains("Fatal:"))
            .collect();
        (bad.len(), bad.first().map(|l| (*l).to_owned()))
    }

    fn stop(&self) {
        let pid = std::fs::read_to_string(&self.pid_file)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok());
        let _ = Command::new("doveadm")
            .arg("-c")
            .arg(&self.conf)
            .arg("stop")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if let Some(pid) = pid {
            let deadline = Instant::now() + Duration::from_secs(5);
            while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Distinct client PIDs for the CPID handshake (Dovecot refuses a duplicate one).
static NEXT_CPID: AtomicU32 = AtomicU32::new(3_000_000);

/// One connection to `auth-client`.
pub struct AuthClient {
    writer: UnixStream,
    reader: BufReader<UnixStream>,
    next_id: u32,
}

impl AuthClient {
    pub fn connect(socket: &Path) -> Res<AuthClient> {
        let stream = UnixStream::connect(socket)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut writer = stream.try_clone()?;
        let cpid = NEXT_CPID.fetch_add(1, Ordering::Relaxed);
        writer.write_all(format!("VERSION\t1\t2\nCPID\t{cpid}\n").as_bytes())?;
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                return Err("auth socket closed during handshake".into());
            }
            if line.trim_end() == "DONE" {
                break;
            }
        }
        Ok(AuthClient {
            writer,
            reader,
            next_id: 1,
        })
    }

    /// One PLAIN authentication; returns (accepted, ms).
    pub fn auth(&mut self, user: &str, password: &str, rip: &str) -> Res<(bool, f64)> {
        let id = self.next_id;
        self.next_id += 1;
        let resp = Base64::encode_string(format!("\0{user}\0{password}").as_bytes());
        let req = format!(
            "AUTH\t{id}\tPLAIN\tservice=imap\tnologin\tsecured\tlip=127.0.0.1\trip={rip}\tresp={resp}\n"
        );
        let start = Instant::now();
        self.writer.write_all(req.as_bytes())?;
        let mut line = String::new();
        loop {
            line.clear();
            if self.reader.read_line(&mut line)? == 0 {
                return Err("auth socket closed".into());
            }
            let mut f = line.trim_end().split('\t');
            let (kind, rid) = (f.next().unwrap_or(""), f.next().unwrap_or(""));
            if rid != id.to_string() {
                continue;
            }
            let ms = start.elapsed().as_secs_f64() * 1e3;
            return match kind {
                "OK" => Ok((true, ms)),
                "FAIL" => Ok((false, ms)),
                other => Err(format!("unexpected auth reply {other}").into()),
            };
        }
    }
}

/// Result of one concurrency level.
pub struct Throughput {
    pub per_second: f64,
    pub latency: Option<Summary>,
    pub ok: usize,
    pub failed: usize,
}

/// `clients` connections, each authenticating one after another for `seconds`.
/// Client `i` logs in as `users[i % users.len()]`.
pub fn throughput(
    socket: &Path,
    users: &[(String, String)],
    clients: usize,
    seconds: f64,
    rip: &str,
) -> Res<Throughput> {
    let barrier = Arc::new(Barrier::new(clients + 1));
    let mut handles = Vec::new();
    for i in 0..clients {
        let (user, pw) = users[i % users.len()].clone();
        let socket = socket.to_path_buf();
        let barrier = Arc::clone(&barrier);
        let rip = rip.to_owned();
        handles.push(std::thread::spawn(
            move || -> Result<(Vec<f64>, usize), String> {
                let client = AuthClient::connect(&socket);
                barrier.wait();
                let mut client = client.map_err(|e| e.to_string())?;
                let deadline = Instant::now() + Duration::from_secs_f64(seconds);
                let (mut lat, mut failed) = (Vec::new(), 0);
                while Instant::now() < deadline {
                    let (ok, ms) = client.auth(&user, &pw, &rip).map_err(|e| e.to_string())?;
                    if ok {
                        lat.push(ms);
                    } else {
                        failed += 1;
                    }
                }
                Ok((lat, failed))
            },
        ));
    }
    barrier.wait();
    let start = Instant::now();
    let (mut all, mut failed) = (Vec::new(), 0);
    for h in handles {
        let (lat, f) = h.join().map_err(|_| "client thread panicked")??;
        all.extend(lat);
        failed += f;
    }
    let elapsed = start.elapsed().as_secs_f64();
    Ok(Throughput {
        per_second: all.len() as f64 / elapsed,
        latency: summarize(&all),
        ok: all.len(),
        failed,
    })
}
