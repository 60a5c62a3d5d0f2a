//! `apppw-checkpassword`: the Dovecot 2.3 checkpassword backend for apppw.
//!
//! ```text
//! apppw-checkpassword [--config FILE] REPLY-PROGRAM [ARGS...]
//! ```
//!
//! Reads `user\0password\0...` (at most 512 bytes) from fd 3, asks `apppw::verify` and, on
//! success, execs REPLY-PROGRAM with `USER` set. Exit statuses: 1 refused, 2 called wrongly,
//! 3 unknown user (lookup mode), 111 temporary failure. Unsafe code is confined to `sys`.
//!
//! Two programs run this library: `apppw-checkpassword` (`main.rs`) does not load OpenSSL (a
//! process per login would pay ~0.7 ms for linking it), and when the config names a
//! PostgreSQL database that needs TLS it execs `apppw-checkpassword-tls`
//! (`bin/apppw-checkpassword-tls.rs`), the same program with TLS, from its own directory,
//! before reading anything.
#![deny(unsafe_code)]

mod decide;
#[cfg(test)]
mod proptests;
mod protocol;
mod sys;

use decide::{Outcome, PROG};
use protocol::{Args, CallEnv, Exit, InputError, USAGE};
use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// A stuck database or PAM call must become a temporary failure, not a hang: Dovecot does not
/// time checkpassword out, and Postfix gives up on SASL after about 10 s.
const DEADLINE: Duration = Duration::from_secs(5);

/// The TLS program's file name, next to `apppw-checkpassword`.
const TLS_PROGRAM: &str = "apppw-checkpassword-tls";

/// The whole program. `with_tls`: the caller has enabled TLS to PostgreSQL
/// (`apppw::store::enable_postgres_tls`); without it a database that needs TLS is handed to
/// `apppw-checkpassword-tls`.
pub fn program(with_tls: bool) -> ! {
    // One attempt per process: the Argon2 known-answer test with small parameters, so that
    // the attempt costs one verification's work, not two (docs/security.md).
    apppw::hash::self_test_for_one_attempt();
    start_watchdog();
    let exit = run(with_tls);
    std::process::exit(exit.code());
}

fn start_watchdog() {
    let spawned = std::thread::Builder::new()
        .name("deadline".into())
        .spawn(|| {
            std::thread::sleep(DEADLINE);
            // No syslog here: it could block too, and this must exit. `_exit`, not
            // `process::exit`: the main thread may hold libpam's, SQLite's or stdio's locks,
            // which exit handlers and destructors would wait for.
            sys::write_stderr(&format!(
                "{PROG}: no decision within {} s (database locked or PAM service hanging?); \
                 temporary failure\n",
                DEADLINE.as_secs()
            ));
            sys::exit_now(Exit::TempFail.code())
        });
    if spawned.is_err() {
        eprintln!("{PROG}: cannot start the deadline thread; temporary failure");
        std::process::exit(Exit::TempFail.code());
    }
}

/// Returns only on failure; success execs the reply program.
fn run(with_tls: bool) -> Exit {
    let (config, reply, reply_args) = match protocol::parse_args(std::env::args_os().skip(1)) {
        Ok(Args::Run {
            config,
            reply,
            reply_args,
        }) => (config, reply, reply_args),
        Ok(Args::Help) => {
            println!(
                "{USAGE}\n\nDovecot checkpassword backend for apppw application passwords.\n\
                 Reads user and password from fd 3; config: --config, $APPPW_CONFIG, or {}\n\
                 (it, and the database, must belong to root or to this user: see pam_apppw(8)).",
                apppw::config::DEFAULT_PATH
            );
            std::process::exit(0);
        }
        Ok(Args::Version) => {
            println!("{PROG} {}", env!("CARGO_PKG_VERSION"));
            std::process::exit(0);
        }
        Err(e) => {
            eprintln!("{PROG}: {e}\n{USAGE}");
            return Exit::Usage;
        }
    };
    let loaded = apppw::Config::load_trusted(config.as_deref());
    if let Ok(c) = &loaded {
        if !with_tls && c.database.needs_tls() {
            return exec_tls_program();
        }
    }
    match decide_call(loaded) {
        Outcome::Exit(exit, message) => {
            if let Some(m) = message {
                eprintln!("{PROG}: {m}");
            }
            exit
        }
        Outcome::Reply { user, lookup } => exec_reply(&reply, &reply_args, &user, lookup),
    }
}

/// Runs `apppw-checkpassword-tls` from this program's directory in its place, with the same
/// arguments, environment and file descriptors (fd 3 unread). Returns only if that failed.
fn exec_tls_program() -> Exit {
    let program = match std::env::current_exe() {
        Ok(me) => me.with_file_name(TLS_PROGRAM),
        Err(e) => {
            eprintln!("{PROG}: cannot find my own directory for {TLS_PROGRAM}: {e}");
            return Exit::TempFail;
        }
    };
    let err = Command::new(&program)
        .args(std::env::args_os().skip(1))
        .exec();
    let msg = format!(
        "the database needs TLS, and {} cannot be run: {err}; temporary failure",
        program.display()
    );
    apppw::audit::warn(PROG, &msg);
    eprintln!("{PROG}: {msg}");
    Exit::TempFail
}

/// Reads fd 3 and decides with the config `loaded`. The buffer holding the password is wiped
/// when this returns.
fn decide_call(loaded: Result<apppw::Config, apppw::config::ConfigError>) -> Outcome {
    let usage = |e: InputError| Outcome::Exit(Exit::Usage, Some(e.to_string()));
    let Some(fd3) = sys::take_input_fd() else {
        return usage(InputError::NotOpen);
    };
    let buf = match protocol::read_input(fd3) {
        Ok(buf) => buf,
        Err(e) => return usage(e),
    };
    let creds = match protocol::parse_input(&buf) {
        Ok(c) => c,
        Err(e) => return usage(e),
    };
    let env = CallEnv::from_process();
    if env.lookup && !creds.password.is_empty() {
        return Outcome::Exit(
            Exit::Usage,
            Some("AUTHORIZED=1 (lookup mode) but a password was given".into()),
        );
    }
    let config = match loaded {
        Ok(c) => c,
        Err(e) => {
            let msg = e.to_string();
            apppw::audit::warn(PROG, &msg);
            return Outcome::Exit(Exit::TempFail, Some(msg));
        }
    };
    if env.lookup {
        decide::lookup(&config, creds.user, &env)
    } else {
        decide::authenticate(&config, creds, &env, &mut decide::Pam, apppw::now())
    }
}

/// Execs the reply program with Dovecot's environment plus `USER` (and `AUTHORIZED=2` for a
/// lookup). Returns only if the exec failed.
fn exec_reply(reply: &OsString, args: &[OsString], user: &str, lookup: bool) -> Exit {
    let mut cmd = Command::new(reply);
    cmd.args(args).env("USER", user);
    if lookup {
        cmd.env("AUTHORIZED", "2");
    }
    let err = cmd.exec();
    eprintln!(
        "{PROG}: cannot run reply program {}: {err}",
        Path::new(reply).display()
    );
    Exit::TempFail
}
