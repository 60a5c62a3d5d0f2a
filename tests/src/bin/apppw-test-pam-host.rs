//! A long-lived PAM host for the integration tests: one process, many logins, the way
//! Dovecot's auth worker uses PAM (`pam_start`, `pam_authenticate`, `pam_acct_mgmt`,
//! `pam_end` for every request, through `pamauth`).
//!
//! Reads one attempt per line on stdin, `SERVICE<TAB>USER<TAB>RHOST<TAB>PASSWORD` (RHOST `-`
//! for none), and answers each with one line on stdout:
//! `accepted|refused|unavailable<TAB>resident|unloaded<TAB>PAM's message`, where
//! `resident` says that `pam_apppw.so` was still mapped in this process after `pam_end`.
//! Run it under pam_wrapper (see `tests/src/pam.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use pamauth::{PamOutcome, check_password};
use std::io::{BufRead, Write};

fn main() {
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout();
    for line in stdin.lock().lines() {
        let line = line.unwrap();
        let fields: Vec<&str> = line.splitn(4, '\t').collect();
        let [service, user, rhost, password] = fields[..] else {
            panic!("bad request line: {line:?}");
        };
        let rhost = (rhost != "-").then_some(rhost);
        let (said, message) = match check_password(service, user, password.as_bytes(), rhost) {
            PamOutcome::Accepted => ("accepted", String::new()),
            PamOutcome::Refused(m) => ("refused", m),
            PamOutcome::Unavailable(m) => ("unavailable", m),
        };
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let resident = if maps.contains("libpam_apppw.so") {
            "resident"
        } else {
            "unloaded"
        };
        writeln!(stdout, "{said}\t{resident}\t{message}").unwrap();
        stdout.flush().unwrap();
    }
}
