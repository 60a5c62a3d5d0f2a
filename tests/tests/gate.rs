//! The Argon2 admission gate between real processes: at most `max_concurrent` computations at
//! once on the host, waiters served in arrival order, a slot freed by the kernel when its
//! holder is killed, and a full gate seen by clients as a temporary failure of the real
//! front-ends (checkpassword exit 111, `PAM_AUTHINFO_UNAVAIL`), never as a wrong password.
//!
//! Slots are held by `apppw-test-gate` processes (this crate's helper), each test on its own
//! gate (`[argon2] gate_file` in the test's directory).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use apppw_integration_tests::pam::{ServiceDir, apppw_line, pam_wrapper_available, primary_line};
use apppw_integration_tests::{OFF_IP, TestEnv, bin, checkpassword_command, run_with_stdin};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A process holding slots until released (or killed).
struct Holder {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Holder {
    fn start(env: &TestEnv, slots: usize) -> Holder {
        let mut child = Command::new(bin("apppw-test-gate"))
            .arg("hold")
            .arg(&env.config)
            .arg(slots.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout: ChildStdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                if tx.send(line.unwrap()).is_err() {
                    break;
                }
            }
        });
        Holder { child, lines }
    }

    /// The next line it prints, if one comes within `within`.
    fn said(&self, within: Duration) -> Option<String> {
        self.lines.recv_timeout(within).ok()
    }

    fn release(&mut self) {
        self.child
            .stdin
            .as_mut()
            .unwrap()
            .write_all(b"go\n")
            .unwrap();
        assert_eq!(
            self.said(Duration::from_secs(10)).as_deref(),
            Some("released")
        );
        self.child.wait().unwrap();
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until the gate shows `waiting` waiters (they queued in the kernel).
fn wait_for_waiters(env: &TestEnv, waiting: i32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while env.gate_status().map(|s| s.2) != Some(waiting) {
        assert!(
            Instant::now() < deadline,
            "never {waiting} waiting: {:?}",
            env.gate_status()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The largest number of processes inside the gate at once, from `cycle` logs.
fn max_inside(log: &str) -> usize {
    let mut events: Vec<(u128, i32)> = log
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let delta = if f[1] == "enter" { 1 } else { -1 };
            (f[2].parse().unwrap(), delta)
        })
        .collect();
    // A leave and an enter at the same nanosecond: the leave first.
    events.sort_unstable();
    let (mut inside, mut most) = (0, 0);
    for (_, d) in events {
        inside += d;
        most = most.max(inside);
    }
    usize::try_from(most).unwrap()
}

fn run_cycles(env: &TestEnv, log: &std::path::Path, processes: usize) {
    let _ = std::fs::remove_file(log);
    let children: Vec<Child> = (0..processes)
        .map(|_| {
            Command::new(bin("apppw-test-gate"))
                .arg("cycle")
                .arg(&env.config)
                .arg(log)
                .args(["6", "15"])
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
}

#[test]
fn the_gate_never_admits_more_than_max_concurrent_processes() {
    let env = TestEnv::new("[argon2]\nmax_concurrent = 1\nqueue_timeout_ms = 20000\n");
    let log = env.dir.path().join("cycles.log");
    run_cycles(&env, &log, 5);
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.lines().count(), 5 * 6 * 2);
    assert_eq!(max_inside(&text), 1, "{text}");

    // The same processes with two slots do run two at once: the check above can fail.
    let two = std::fs::read_to_string(&env.config)
        .unwrap()
        .replace("max_concurrent = 1", "max_concurrent = 2");
    std::fs::write(&env.config, two).unwrap();
    run_cycles(&env, &log, 5);
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(max_inside(&text), 2, "{text}");
    assert_eq!(env.gate_status(), Some((2, 2, 0)));
}

#[test]
fn waiting_processes_get_their_slot_in_arrival_order() {
    let env = TestEnv::new("[argon2]\nmax_concurrent = 1\nqueue_timeout_ms = 20000\n");
    let mut first = Holder::start(&env, 1);
    assert_eq!(first.said(Duration::from_secs(10)).as_deref(), Some("held"));
    let mut queue = Vec::new();
    for n in 1..=4 {
        queue.push(Holder::start(&env, 1));
        wait_for_waiters(&env, n);
    }
    first.release();
    for i in 0..queue.len() {
        assert_eq!(
            queue[i].said(Duration::from_secs(10)).as_deref(),
            Some("held"),
            "waiter {i}"
        );
        // Nobody behind it got in meanwhile.
        for (j, later) in queue.iter().enumerate().skip(i + 1) {
            assert_eq!(
                later.said(Duration::from_millis(20)),
                None,
                "waiter {j} overtook {i}"
            );
        }
        queue[i].release();
    }
}

/// `apppw-checkpassword --config CONFIG REPLY` with `user\0password\0`: (exit code, stderr,
/// seconds it took).
fn checkpassword(
    env: &TestEnv,
    reply: &std::path::Path,
    user: &str,
    pass: &str,
) -> (i32, String, f64) {
    let mut cmd = checkpassword_command();
    cmd.arg("--config")
        .arg(&env.config)
        .arg(reply)
        .env("SERVICE", "imap")
        .env("TCPREMOTEIP", OFF_IP);
    let t = Instant::now();
    let out = run_with_stdin(&mut cmd, format!("{user}\0{pass}\0\0").as_bytes());
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        t.elapsed().as_secs_f64(),
    )
}

#[test]
fn a_full_gate_is_a_temporary_failure_and_a_killed_holder_frees_its_slot() {
    // Cheap Argon2: the test is about waiting, not computing.
    let env = TestEnv::new(
        "[argon2]\nmemory_kib = 1024\niterations = 1\nmax_concurrent = 1\nqueue_timeout_ms = 400\n\
         [lockout]\nmax_failures_per_client = 2\n",
    );
    let phone = env.create("alice", "phone", &[]);
    let bob = env.create("bob", "laptop", &[]);
    let reply = env.dir.path().join("reply.sh");
    std::fs::write(&reply, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&reply, std::fs::Permissions::from_mode(0o755)).unwrap();
    // Put bob in his cool-down from OFF_IP while the gate is free.
    let wrong = format!("{}zzzz zzzz zzzz zzzz zzzz", &bob[..5]);
    for _ in 0..2 {
        assert_eq!(checkpassword(&env, &reply, "bob", &wrong).0, 1);
    }
    assert_eq!(checkpassword(&env, &reply, "alice", &phone).0, 0);

    let holder = Holder::start(&env, 1);
    assert_eq!(
        holder.said(Duration::from_secs(10)).as_deref(),
        Some("held")
    );

    // The correct app password, a wrong one, an unknown user: all temporary failures after the
    // queue timeout, none a refusal.
    let wrong_alice = format!("{}zzzz zzzz zzzz zzzz zzzz", &phone[..5]);
    for (user, pass) in [
        ("alice", phone.as_str()),
        ("alice", &wrong_alice),
        ("nobody", phone.as_str()),
    ] {
        let (code, stderr, took) = checkpassword(&env, &reply, user, pass);
        assert_eq!(code, 111, "{user}: {stderr}");
        assert!(
            stderr.contains("no Argon2 slot free within 400 ms"),
            "{stderr}"
        );
        assert!(
            took >= 0.35,
            "{user}: answered after {took} s, before the queue timeout"
        );
    }
    // What needs no Argon2 never waits: a normal password off campus, a locked-out client.
    for (user, pass, code) in [("alice", "Winter-2026-normal", 1), ("bob", bob.as_str(), 1)] {
        let (got, stderr, took) = checkpassword(&env, &reply, user, pass);
        assert_eq!(got, code, "{user}: {stderr}");
        assert!(
            took < 0.35,
            "{user}: waited {took} s for a slot it does not need"
        );
    }

    if pam_wrapper_available(
        "a_full_gate_is_a_temporary_failure_and_a_killed_holder_frees_its_slot",
    ) {
        let services = ServiceDir::new();
        let apppw = apppw_line(&format!("config={}", env.config.display()));
        let primary = primary_line(services.dir.path(), "Winter-2026-normal");
        services.add("imap", &[&apppw, &primary]);
        let r = services.authenticate("imap", "alice", Some(OFF_IP), &format!("{phone}\n"), &[]);
        assert_eq!(r.code(), "PAM_AUTHINFO_UNAVAIL", "{}", r.transcript());
    }

    // SIGKILL: the kernel gives the slot back (SEM_UNDO).
    let mut holder = holder;
    holder.child.kill().unwrap();
    holder.child.wait().unwrap();
    assert_eq!(env.gate_status(), Some((1, 1, 0)));
    let (code, stderr, _) = checkpassword(&env, &reply, "alice", &phone);
    assert_eq!(code, 0, "{stderr}");
}
