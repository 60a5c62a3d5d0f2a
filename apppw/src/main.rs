//! `apppw`: create, list and revoke application passwords; explain and test decisions;
//! stage the rollout (exemptions, report); check the installation (doctor).
//!
//! Exit status: 0 success, 1 failure (one line on stderr saying what to do), 2 usage error.
// Unsafe code only in `doctor/as_user.rs` (fork and setuid to test access as Dovecot's user).
#![deny(unsafe_code)]

use apppw_cli::cli;

use apppw::config::Config;
use apppw::hash::Argon2Kdf;
use apppw::store::{LazyStore, Store, StoreError};
use apppw::timefmt::rfc3339;
use apppw::verify::{Decision, Record, Relaxed, Request, verify};
use clap::Parser;
use cli::{Cli, Command};
use serde_json::json;
use std::io::{Read, Write};
use std::process::ExitCode;
use zeroize::Zeroizing;

/// A failure reported as `apppw: MESSAGE` with exit status 1; `None` is a closed stdout
/// (`apppw list | head`), which ends the program quietly like any Unix filter.
struct Failure(Option<String>);

macro_rules! failure_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Failure {
            fn from(e: $t) -> Self {
                Failure(Some(e.to_string()))
            }
        }
    )*};
}
failure_from!(
    String,
    apppw::issue::CreateError,
    apppw::config::ConfigError,
    StoreError,
    apppw::hash::HashError,
    apppw::secret::RandomError
);

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            Failure(None)
        } else {
            Failure(Some(e.to_string()))
        }
    }
}

/// Writes one line to stdout; a closed pipe becomes a quiet [`Failure`] instead of a panic.
macro_rules! say {
    ($($arg:tt)*) => {
        writeln!(std::io::stdout().lock(), $($arg)*)?
    };
}

type Result<T> = std::result::Result<T, Failure>;

mod credentials;
mod doctor;
mod migrate;
mod ops;
mod rollout;
mod table;

impl Failure {
    fn msg(text: impl Into<String>) -> Self {
        Failure(Some(text.into()))
    }
}

fn main() -> ExitCode {
    apppw::store::enable_postgres_tls();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(Failure(Some(msg))) => {
            eprintln!("apppw: {msg}");
            ExitCode::from(1)
        }
        Err(Failure(None)) => ExitCode::SUCCESS,
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let config = || Config::load(cli.config.as_deref());
    let json = cli.json;
    match cli.command {
        Command::Create {
            user,
            label,
            expires,
            services,
        } => credentials::create(
            &config()?,
            &user,
            &label,
            expires.as_deref(),
            services,
            json,
        ),
        Command::List {
            user,
            expired,
            unused_since,
        } => {
            let filter = ops::filter(expired, unused_since.as_deref(), apppw::now())?;
            credentials::list(&config()?, user.as_deref(), filter, json)
        }
        Command::Revoke {
            user,
            label_or_id,
            all,
        } => credentials::revoke(&config()?, &user, label_or_id.as_deref(), all, json),
        Command::Explain { ip } => explain(&config()?, &ip, json),
        Command::Verify { user, ip, service } => {
            verify_stdin(&config()?, &user, &ip, service.as_deref(), json)
        }
        Command::Migrate {
            check,
            from,
            to,
            password_file,
            force,
        } => match from {
            Some(from) => migrate::migrate(&config, &from, to, password_file, force, json),
            None if check => migrate::migrate_check(&config()?),
            None => migrate::migrate_schema(&config()?),
        },
        Command::Prune {
            user,
            expired,
            unused_since,
            dry_run,
        } => {
            let now = apppw::now();
            let filter = ops::filter(expired, unused_since.as_deref(), now)?
                .ok_or_else(|| Failure::msg("name --expired or --unused-since AGE"))?;
            ops::prune(&config()?, user.as_deref(), filter, dry_run, json)
        }
        Command::Exempt {
            user: Some(user),
            until: Some(until),
            reason,
            list: false,
        } => rollout::exempt(&config()?, &user, &until, reason.as_deref(), json),
        Command::Exempt { .. } => rollout::exemptions(&config()?, json),
        Command::Unexempt { user } => rollout::unexempt(&config()?, &user, json),
        Command::Report { since } => rollout::report(&config()?, &since, json),
        Command::Doctor => doctor::run(cli.config.as_deref(), &doctor::Paths::from_env(), json),
        Command::Stats { prometheus } => ops::stats(&config()?, prometheus, json),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            // Into a buffer first: the generator panics on a write error such as a closed pipe.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "apppw", &mut script);
            std::io::stdout().lock().write_all(&script)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `apppw explain IP`: the location and the rule.
fn explain(config: &Config, ip: &str, as_json: bool) -> Result<ExitCode> {
    let location = config.network.locate(Some(ip));
    if as_json {
        let text = location.to_string();
        let (place, rule) = text.split_once('\n').unwrap_or((&text, ""));
        say!(
            "{}",
            json!({ "address": ip, "location": place, "rule": rule })
        );
    } else {
        say!("{location}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Opens the database for writing, telling the admin about insecure permissions.
pub(crate) fn open_for_admin(config: &Config) -> Result<Store> {
    warn_about_config(config);
    let store = Store::open_for_admin(&config.database)?;
    warn_about(&store);
    Ok(store)
}

/// The CLI reads any config it is given; the PAM module and checkpassword refuse one that
/// fails the trust rule. Say so before the admin wonders why logins fail.
fn warn_about_config(config: &Config) {
    use apppw::trust::{self, CheckError, Identity, Parent};
    if let Err(CheckError::Untrusted(t)) =
        trust::open(&config.path, &Identity::of_process(), Parent::Checked)
    {
        eprintln!("apppw: warning: logins will refuse this config: {t}");
    }
}

pub(crate) fn warn_about(store: &Store) {
    if let Some(w) = store.warning() {
        eprintln!("apppw: warning: {w}");
    }
}

/// Replaces control characters so a stored label cannot mess up the terminal.
pub(crate) fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Dovecot may answer a login from its auth cache: flush the user (as the store names them),
/// so that the revocation holds at the next attempt. A failure is a warning; the app password
/// is deleted either way. With `--json` the note goes to standard error.
pub(crate) fn flush_auth_cache(config: &Config, user: &str, as_json: bool) -> Result<()> {
    flush_auth_cache_of(config, &[user], as_json)
}

/// [`flush_auth_cache`] for several users with one `doveadm` run (`apppw prune`).
pub(crate) fn flush_auth_cache_of(config: &Config, users: &[&str], as_json: bool) -> Result<()> {
    use apppw::authcache::{Outcome, flush_users};
    if users.is_empty() {
        return Ok(());
    }
    let who = users
        .iter()
        .map(|u| printable(u))
        .collect::<Vec<_>>()
        .join(" ");
    match flush_users(&config.dovecot, users) {
        Outcome::Flushed(n) => {
            let note = match n {
                Some(1) => format!("flushed {who} from Dovecot's auth cache (1 entry)"),
                Some(n) => format!("flushed {who} from Dovecot's auth cache ({n} entries)"),
                None => format!("flushed {who} from Dovecot's auth cache"),
            };
            // Standard output is the JSON document's alone.
            if as_json {
                eprintln!("apppw: {note}");
            } else {
                say!("{note}");
            }
        }
        Outcome::Disabled | Outcome::NoDoveadm => {}
        Outcome::Failed(why) => eprintln!(
            "apppw: warning: could not flush {who} from Dovecot's auth cache ({why}); a login \
             cached before the deletion may still succeed until auth_cache_ttl: run \
             `doveadm auth cache flush {who}`"
        ),
    }
    Ok(())
}

fn verify_stdin(
    config: &Config,
    user: &str,
    ip: &str,
    service: Option<&str>,
    as_json: bool,
) -> Result<ExitCode> {
    let mut input = Zeroizing::new(Vec::with_capacity(1100));
    std::io::stdin()
        .lock()
        .take(64 * 1024)
        .read_to_end(&mut input)?;
    let line_end = input
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(input.len());
    let mut password = &input[..line_end];
    if let Some(stripped) = password.strip_suffix(b"\r") {
        password = stripped;
    }
    let req = Request {
        user,
        password,
        client: Some(ip),
        service,
        now: apppw::now(),
    };
    let verdict = verify(
        config,
        &mut LazyStore::new(&config.database),
        &mut Argon2Kdf::with_gate(&config.gate),
        &req,
        Record::DryRun,
    );
    if let Some(why) = apppw::hash::self_test_failure() {
        return Err(Failure(Some(why)));
    }
    let (result, reason) = verdict.decision.audit_fields();
    let detail = match &verdict.decision {
        Decision::Accepted { id, label } => format!("app password {label:?}, id {id}"),
        Decision::TryPrimary(why) => format!(
            "app password: {}; the normal password would be checked next",
            why.code()
        ),
        Decision::Refused(_) => String::new(),
        Decision::Unavailable(why) | Decision::ConfigError(why) | Decision::Busy(why) => {
            why.clone()
        }
        Decision::PassedOn { because, .. } => format!(
            "{}: passed on, the normal password would be checked next",
            match because {
                Relaxed::ReportMode => "report mode".to_owned(),
                Relaxed::Exempt { until } => format!("exempt until {}", rfc3339(*until)),
            }
        ),
    };
    let location = verdict.location.to_string();
    let (place, rule) = location.split_once('\n').unwrap_or((&location, ""));
    if as_json {
        let label = match &verdict.decision {
            Decision::Accepted { label, .. } => Some(label.as_str()),
            _ => None,
        };
        say!(
            "{}",
            json!({
                "result": result,
                "reason": reason,
                "detail": (!detail.is_empty()).then_some(&detail),
                "label": label,
                "location": place,
                "rule": rule,
            })
        );
    } else {
        if detail.is_empty() {
            say!("{result}: {reason}");
        } else {
            say!("{result}: {reason} ({detail})");
        }
        say!("client {ip}: {place} ({rule})");
    }
    Ok(if matches!(verdict.decision, Decision::Accepted { .. }) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
