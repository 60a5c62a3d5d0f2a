//! `pam_apppw.so`: application passwords as a PAM authentication module.
//!
//! A thin adapter over [`apppw::verify`]: it collects the PAM items, asks for the one decision
//! and translates it into a PAM code for this stack:
//!
//! ```text
//! auth     [success=done ignore=ignore default=die]  pam_apppw.so config=/etc/apppw/apppw.toml
//! auth     required                                   pam_unix.so try_first_pass
//! account  required                                   pam_unix.so
//! ```
//!
//! | decision                                        | code                   | in that stack            |
//! |-------------------------------------------------|------------------------|--------------------------|
//! | app password matched                            | `PAM_SUCCESS`          | done: authenticated      |
//! | no app password, client on campus               | `PAM_IGNORE`           | `pam_unix` decides       |
//! | no app password, client off campus              | `PAM_AUTH_ERR`         | refused                  |
//! | the same under report mode or an exemption      | `PAM_IGNORE`           | `pam_unix` decides (logged `would-refuse`) |
//! | database unusable, client off campus            | `PAM_AUTHINFO_UNAVAIL` | refused                  |
//! | bad module argument, config unreadable/invalid, | `PAM_SERVICE_ERR`      | refused, normal password too |
//! | config or database not trusted (`apppw::trust`) |                        |                          |
//! | Argon2 self-test failed (`apppw::hash`)         | `PAM_SERVICE_ERR`      | refused, normal password too |
//! | no Argon2 slot within `queue_timeout_ms`        | `PAM_AUTHINFO_UNAVAIL` | refused (temporary)      |
//!
//! The config is `config=FILE`, else `/etc/apppw/apppw.toml`: never `$APPPW_CONFIG`, since the
//! caller of su or sudo chooses the environment ([`Config::load_for_pam_module`]). An accepted
//! app password belongs to the canonical user name; when the name given differs (`ALICE` for
//! `alice`), `PAM_USER` is set to the canonical one, so that the application (Dovecot reads it
//! back) continues as the user the password belongs to.
//!
//! Every decision is one `authpriv` line, e.g.
//! `pam_apppw(imap:auth): service=imap user=alice rhost=203.0.113.9 result=accepted reason=app-password label=phone`.
//!
//! The module is linked with `-z nodelete`, so a long-lived host (Dovecot's auth worker, which
//! runs `pam_start`..`pam_end` for every login) loads it once. Between two calls in the same
//! process it keeps two things ([`Kept`]): the open database connection, reused only while the
//! config still names it, for SQLite the file has not been replaced, and it has not been idle
//! longer than `database_idle_seconds` (PostgreSQL closes it by itself after that: see
//! [`apppw::store::Store::close_when_idle`]), and the KDF with its admission gate (and working
//! memory only for hashes that the `argon2` crate computes, given back to the kernel between
//! computations when the gate is on; libsodium allocates its own in every call). The config is
//! read again at every call, so edits take effect at the next login. A host that forks gets a
//! fresh state in the child.

mod ffi;

use apppw::audit::{self, Event};
use apppw::config::Config;
use apppw::hash::Argon2Kdf;
use apppw::store::{LazyStore, Store};
use apppw::verify::{Decision, Reason, Record, Request, verify};
use pam::constants::{PamFlag, PamResultCode};
use pam::items::{RHost, Service, User};
use pam::module::{PamHandle, PamHooks};
use std::ffi::{CStr, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use zeroize::Zeroizing;

/// What the module needs from PAM: implemented over the real handle, and by a double in tests.
pub trait Pam {
    /// `PAM_USER` (`pam_get_user`: may ask through the conversation).
    fn user(&mut self) -> Result<String, PamResultCode>;
    /// The password with `pam_get_authtok` semantics.
    fn authtok(&mut self) -> Result<Zeroizing<Vec<u8>>, PamResultCode>;
    /// `PAM_RHOST`, if set.
    fn rhost(&self) -> Option<String>;
    /// `PAM_SERVICE`, if set.
    fn service(&self) -> Option<String>;
    /// Sets `PAM_USER`.
    fn set_user(&mut self, user: &str) -> Result<(), PamResultCode>;
    /// Writes the decision line.
    fn log(&mut self, prefix: &str, event: &Event<'_>) {
        audit::log(prefix, event);
    }
    /// Writes a configuration or operational problem.
    fn warn(&mut self, prefix: &str, message: &str) {
        audit::warn(prefix, message);
    }
}

/// One `pam_sm_authenticate` call.
pub fn authenticate(pam: &mut impl Pam, args: &[&CStr]) -> PamResultCode {
    // The module may talk to PostgreSQL over TLS (a no-op after the first call).
    apppw::store::enable_postgres_tls();
    let service = pam.service();
    let prefix = format!(
        "pam_apppw({}:auth)",
        audit::escape(service.as_deref().unwrap_or(""))
    );

    // Without the config nobody knows where campus is: end the stack, normal password included.
    let explicit = match config_argument(args) {
        Ok(path) => path,
        Err(message) => {
            pam.warn(&prefix, &message);
            return PamResultCode::PAM_SERVICE_ERR;
        }
    };
    let config = match Config::load_for_pam_module(explicit.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            pam.warn(
                &prefix,
                &format!("{e}; every password is refused until the config is fixed"),
            );
            return PamResultCode::PAM_SERVICE_ERR;
        }
    };

    let user = match pam.user() {
        Ok(user) => user,
        Err(code) => {
            pam.warn(&prefix, &format!("cannot get the user name: {code:?}"));
            return fail_closed(code);
        }
    };
    let password = match pam.authtok() {
        Ok(password) => password,
        Err(code) => {
            pam.warn(&prefix, &format!("cannot get the password: {code:?}"));
            return fail_closed(code);
        }
    };
    let rhost = pam.rhost();

    let request = Request {
        user: &user,
        password: &password,
        client: rhost.as_deref(),
        service: service.as_deref(),
        now: apppw::now(),
    };
    let kept = Kept::take(config.database_idle);
    let mut store = LazyStore::resume(&config.database, kept.store);
    let mut kdf = kept.kdf;
    kdf.use_gate(&config.gate);
    let verdict = verify(&config, &mut store, &mut kdf, &request, Record::LastUse);
    drop(password);
    let opened_here = store.opened_here();
    let mut keep = store.into_kept();
    if let (Some(store), true) = (&mut keep, opened_here) {
        store.close_when_idle(config.database_idle);
    }
    Kept::put_back(Kept {
        pid: kept.pid,
        kdf,
        store: keep,
        at: std::time::Instant::now(),
    });
    // The Argon2 known-answer test failed in this process: no Argon2 result can be trusted
    // (the attempt was not accepted), and the normal password must not be tried either.
    if let Some(why) = apppw::hash::self_test_failure() {
        pam.warn(
            &prefix,
            &format!("{why}; every password is refused until the library is fixed"),
        );
        return PamResultCode::PAM_SERVICE_ERR;
    }

    let (result, reason) = verdict.decision.audit_fields();
    let relaxed;
    let (label, detail) = match &verdict.decision {
        Decision::Accepted { label, .. } => (Some(label.as_str()), None),
        Decision::TryPrimary(why) => (None, Some(why.code())),
        Decision::PassedOn { because, .. } => {
            relaxed = because.detail();
            (None, Some(relaxed.as_str()))
        }
        Decision::Refused(_)
        | Decision::Unavailable(_)
        | Decision::ConfigError(_)
        | Decision::Busy(_) => (None, None),
    };
    pam.log(
        &prefix,
        &Event {
            service: service.as_deref(),
            user: &user,
            rhost: rhost.as_deref(),
            result,
            reason,
            label,
            detail,
        },
    );
    // The database problem in words an admin can act on (the decision line only has codes).
    match &verdict.decision {
        Decision::Unavailable(why)
        | Decision::Busy(why)
        | Decision::TryPrimary(Reason::StoreUnavailable(why)) => {
            pam.warn(&prefix, why);
        }
        Decision::ConfigError(why) => pam.warn(
            &prefix,
            &format!("{why}; every password is refused until it is fixed"),
        ),
        _ => {}
    }
    if let Some(warning) = &verdict.warning {
        pam.warn(&prefix, warning);
    }
    if let Decision::Accepted { .. } = &verdict.decision {
        let canonical = config.canonical_user(&user);
        if canonical != user {
            if let Err(code) = pam.set_user(&canonical) {
                pam.warn(
                    &prefix,
                    &format!("cannot set PAM_USER to the canonical name: {code:?}"),
                );
                return PamResultCode::PAM_SERVICE_ERR;
            }
        }
    }
    pam_code(&verdict.decision)
}

/// What one call leaves for the next one in the same process.
struct Kept {
    /// The process that made it: a forked child must not use its parent's connection.
    pid: u32,
    /// The KDF (the `argon2` crate's working memory, if a hash needed it, wiped but kept).
    kdf: Argon2Kdf,
    /// The database connection of the last attempt, if it ended without a store error.
    store: Option<Store>,
    /// When the last attempt ended.
    at: std::time::Instant,
}

/// Empty between calls only while a call runs (or in a host that never made one).
static KEPT: Mutex<Option<Kept>> = Mutex::new(None);

impl Kept {
    /// Takes what the last call left, or a fresh state if there is none (first call, another
    /// thread is using it, or it was made by the parent of this forked process). A connection
    /// idle for longer than `idle` (if not zero) is closed rather than reused: the server may
    /// have closed it already (see [`Store::close_when_idle`]).
    fn take(idle: std::time::Duration) -> Kept {
        let pid = std::process::id();
        let now = std::time::Instant::now();
        let previous = KEPT.lock().unwrap_or_else(PoisonError::into_inner).take();
        match previous {
            Some(mut kept) if kept.pid == pid => {
                if !idle.is_zero() && now.duration_since(kept.at) > idle {
                    kept.store = None;
                }
                kept
            }
            Some(inherited) => {
                // The parent's connection: closing it here could disturb the parent's use
                // of the same socket or SQLite locks. Leave it as it is; the memory is ours.
                std::mem::forget(inherited.store);
                Kept {
                    pid,
                    kdf: inherited.kdf,
                    store: None,
                    at: now,
                }
            }
            None => Kept {
                pid,
                kdf: Argon2Kdf::new(),
                store: None,
                at: now,
            },
        }
    }

    /// Leaves `kept` for the next call (if another thread left its own first, ours is dropped).
    fn put_back(kept: Kept) {
        let mut slot = KEPT.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(kept);
        }
    }
}

/// The PAM code for a decision. Only an accepted app password is `PAM_SUCCESS`.
#[must_use]
pub fn pam_code(decision: &Decision) -> PamResultCode {
    match decision {
        Decision::Accepted { .. } => PamResultCode::PAM_SUCCESS,
        Decision::TryPrimary(_) | Decision::PassedOn { .. } => PamResultCode::PAM_IGNORE,
        Decision::Refused(_) => PamResultCode::PAM_AUTH_ERR,
        Decision::Unavailable(_) | Decision::Busy(_) => PamResultCode::PAM_AUTHINFO_UNAVAIL,
        Decision::ConfigError(_) => PamResultCode::PAM_SERVICE_ERR,
    }
}

/// The `config=FILE` argument, if given. Anything else is refused rather than ignored: a typo
/// such as `conifg=` would otherwise silently select another file.
fn config_argument(args: &[&CStr]) -> Result<Option<PathBuf>, String> {
    let mut config = None;
    for arg in args {
        let bytes = arg.to_bytes();
        match bytes.strip_prefix(b"config=") {
            Some([]) => return Err("module argument `config=` needs a file name".into()),
            Some(_) if config.is_some() => {
                return Err("module argument `config=` given twice".into());
            }
            Some(path) => config = Some(PathBuf::from(OsStr::from_bytes(path))),
            None => {
                return Err(format!(
                    "unknown module argument `{}` (the only argument is config=FILE); \
                     every password is refused until the PAM configuration is fixed",
                    audit::escape(&arg.to_string_lossy())
                ));
            }
        }
    }
    Ok(config)
}

/// A failure while talking to PAM never lets the stack continue as if nothing happened.
fn fail_closed(code: PamResultCode) -> PamResultCode {
    match code {
        PamResultCode::PAM_SUCCESS | PamResultCode::PAM_IGNORE => PamResultCode::PAM_AUTH_ERR,
        // The application may call again once it has the answer (Linux-PAM convention).
        PamResultCode::PAM_CONV_AGAIN => PamResultCode::PAM_INCOMPLETE,
        other => other,
    }
}

/// The real PAM handle.
struct Handle<'a>(&'a mut PamHandle);

impl Pam for Handle<'_> {
    fn user(&mut self) -> Result<String, PamResultCode> {
        self.0.get_user(None)
    }

    fn authtok(&mut self) -> Result<Zeroizing<Vec<u8>>, PamResultCode> {
        ffi::get_authtok(self.0)
    }

    fn rhost(&self) -> Option<String> {
        // Not UTF-8 cannot be a numeric address: lossy text keeps it off campus.
        let item = self.0.get_item::<RHost<'_>>().ok().flatten()?;
        Some(item.0.to_string_lossy().into_owned())
    }

    fn service(&self) -> Option<String> {
        let item = self.0.get_item::<Service<'_>>().ok().flatten()?;
        Some(item.0.to_string_lossy().into_owned())
    }

    fn set_user(&mut self, user: &str) -> Result<(), PamResultCode> {
        let user = std::ffi::CString::new(user).map_err(|_| PamResultCode::PAM_BUF_ERR)?;
        self.0.set_item_str(User(&user))
    }
}

/// The module's entry points (`pam_hooks!` also catches panics: they become `PAM_ABORT`).
struct PamApppw;
pam::pam_hooks!(PamApppw);

impl PamHooks for PamApppw {
    fn sm_authenticate(pamh: &mut PamHandle, args: Vec<&CStr>, _: PamFlag) -> PamResultCode {
        authenticate(&mut Handle(pamh), &args)
    }

    /// Nothing to establish, but `PAM_IGNORE` here would fail `pam_setcred` in stacks where
    /// this is the only auth module that succeeded.
    fn sm_setcred(_: &mut PamHandle, _: Vec<&CStr>, _: PamFlag) -> PamResultCode {
        PamResultCode::PAM_SUCCESS
    }

    /// Account checks belong to the account stack (`pam_unix`): an app password does not
    /// make an expired or locked account usable.
    fn acct_mgmt(_: &mut PamHandle, _: Vec<&CStr>, _: PamFlag) -> PamResultCode {
        PamResultCode::PAM_IGNORE
    }
}

#[cfg(test)]
mod tests;
