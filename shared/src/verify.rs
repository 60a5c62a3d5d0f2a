//! The one decision: is this login attempt an app password, may the normal password be tried,
//! or is it refused?
//!
//! ```text
//! bad input (over 1024 bytes, control characters, bad user) ........ refused
//! user name → its canonical form (lowercase unless [users] case_sensitive)
//! candidate is app-password shaped (24 letters after normalising):
//!     cool-down from this client (IPv4 address, IPv6 /64) .............. refused, no Argon2
//!     per-user cool-down, unless this device (/24, /64) logged in
//!       successfully within 30 days ("smart lockout") ................. refused, no Argon2
//!     one indexed lookup by (user, tag), then exactly one Argon2id:
//!       against the stored hash if the tag exists, else against nothing (dummy),
//!       so unknown users and unknown tags cost the same as known ones
//!     matches, not expired, service allowed ....................... ACCEPTED
//!     otherwise: campus → primary may be tried; off campus → refused
//!     database unusable: campus → primary may be tried; off campus → unavailable
//!     database not trusted (crate::trust) ............................ configuration error
//! candidate is not app-password shaped (no lookup, no Argon2):
//!     campus → primary may be tried; off campus → refused
//!
//! staged rollout — off campus, refused as a normal password (not app-password shaped, no
//! match, locked out):
//!     [enforcement] mode = "report" ........................... PASSED ON (would-refuse)
//!     the user has an exemption in force (one indexed read) ... PASSED ON (would-refuse)
//!     exemption unreadable, or none ........................... refused
//!     either way, counted per user and day for `apppw report` (one write, best effort)
//! ```
//!
//! "Primary may be tried" is what the front-ends turn into PAM_IGNORE (the next PAM module
//! checks the normal password) or, in the checkpassword backend, a PAM call to
//! `[primary] pam_service`. "Passed on" is the same for the front-ends, with
//! `result=would-refuse` and the reason enforcement gives in the log line. App passwords
//! behave as always: an expired or service-restricted one stays refused, and a database
//! that cannot be used off campus stays a temporary failure.

use crate::config::{Config, Mode};
use crate::hash::{HashError, Kdf};
use crate::input::{BadInput, check_password, check_user};
use crate::network::{Location, counter_key, device_key};
use crate::secret::AppPassword;
use crate::store::{
    CredentialSource, KNOWN_DEVICE_SECONDS, LockedOut, OffCampusAttempt, join_warnings,
};

/// One login attempt.
#[derive(Clone, Copy)]
pub struct Request<'a> {
    /// User name as given by the client.
    pub user: &'a str,
    /// Password candidate as given by the client.
    pub password: &'a [u8],
    /// Client address as given by the caller (`PAM_RHOST`, `TCPREMOTEIP`); unparsed.
    pub client: Option<&'a str>,
    /// Service (`PAM_SERVICE`, Dovecot's `SERVICE`).
    pub service: Option<&'a str>,
    /// Current time (Unix seconds).
    pub now: i64,
}

/// Why an app password did not decide the attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// The input was rejected before any lookup.
    BadInput(BadInput),
    /// The candidate cannot be an app password (so it may be a normal password).
    NotAppPassword,
    /// App-password shaped, but no stored credential matched.
    NoMatch,
    /// Too many failed app-password attempts: refused without Argon2 during the cool-down.
    LockedOut,
    /// Matched an app password that has expired.
    Expired,
    /// Matched an app password not allowed for this service.
    ServiceNotAllowed,
    /// The stored hash of the matching tag is unreadable.
    StoredHashInvalid,
    /// The database could not be used; the message says why.
    StoreUnavailable(String),
}

impl Reason {
    /// May the candidate be the user's normal password? True when it matched no app password
    /// (or could not be one, or was not tried during a cool-down); false when it matched one
    /// that is expired or restricted, and for bad input.
    #[must_use]
    pub fn may_be_normal_password(&self) -> bool {
        matches!(
            self,
            Reason::NotAppPassword | Reason::NoMatch | Reason::LockedOut
        )
    }

    /// The code used in log lines.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Reason::BadInput(b) => b.code(),
            Reason::NotAppPassword => "not-app-password",
            Reason::NoMatch => "no-match",
            Reason::LockedOut => "locked-out",
            Reason::Expired => "expired",
            Reason::ServiceNotAllowed => "service-not-allowed",
            Reason::StoredHashInvalid => "stored-hash-invalid",
            Reason::StoreUnavailable(_) => "store-unavailable",
        }
    }
}

/// The outcome of [`verify`]. Front-ends map it to their protocol; nothing else grants access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// An app password matched: authenticated.
    Accepted {
        /// Credential id.
        id: i64,
        /// Credential label.
        label: String,
    },
    /// The client is on campus and no app password matched: the normal password may be
    /// checked by the next mechanism. `.0` says why the app password did not decide.
    TryPrimary(Reason),
    /// Not authenticated.
    Refused(Reason),
    /// Off campus and the database is unusable: temporary failure.
    Unavailable(String),
    /// The database must not be used as it is (it fails [`crate::trust`]): a configuration
    /// error, on campus too. The message names the file and the fix.
    ConfigError(String),
    /// Off campus, refused as a normal password under `enforce` — but report mode or an
    /// exemption passes it on to the normal-password check, like [`Decision::TryPrimary`].
    PassedOn {
        /// Why enforcement refuses it.
        would_refuse: Reason,
        /// Why it is passed on instead.
        because: Relaxed,
    },
    /// The host's Argon2 admission gate had no slot within the queue timeout (on campus too:
    /// an app password is never handed to the normal-password check as if it were wrong).
    /// Temporary failure; the message says why.
    Busy(String),
}

/// Why an off-campus normal password is passed on rather than refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relaxed {
    /// `[enforcement] mode = "report"`.
    ReportMode,
    /// The user's exemption (`apppw exempt`), in force until this time.
    Exempt {
        /// End of the exemption (Unix seconds).
        until: i64,
    },
}

impl Relaxed {
    /// The `detail` of the log line: `report-mode` or `exempt-until-2027-01-31T23:59:59Z`.
    #[must_use]
    pub fn detail(&self) -> String {
        match self {
            Relaxed::ReportMode => "report-mode".into(),
            Relaxed::Exempt { until } => {
                format!("exempt-until-{}", crate::timefmt::rfc3339(*until))
            }
        }
    }
}

impl Decision {
    /// `(result, reason)` for the audit line.
    #[must_use]
    pub fn audit_fields(&self) -> (&'static str, &'static str) {
        match self {
            Decision::Accepted { .. } => ("accepted", "app-password"),
            Decision::TryPrimary(_) => ("continue", "primary-on-campus"),
            Decision::Refused(r) => ("refused", refusal_code(r)),
            Decision::Unavailable(_) => ("tempfail", "store-unavailable"),
            Decision::ConfigError(_) => ("error", "untrusted-file"),
            Decision::PassedOn { would_refuse, .. } => ("would-refuse", refusal_code(would_refuse)),
            Decision::Busy(_) => ("tempfail", "argon2-busy"),
        }
    }
}

/// The `reason` of a refusal's log line.
fn refusal_code(reason: &Reason) -> &'static str {
    match reason {
        Reason::NotAppPassword => "primary-off-campus-refused",
        r => r.code(),
    }
}

/// The decision with its context, for logging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// What to do.
    pub decision: Decision,
    /// Where the client is.
    pub location: Location,
    /// A non-fatal problem worth logging (e.g. the last-used update failed).
    pub warning: Option<String>,
}

/// Whether a successful attempt is recorded as the credential's last use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    /// Real logins.
    LastUse,
    /// `apppw verify`: decide only.
    DryRun,
}

/// Decides one login attempt. Costs at most one Argon2 computation, and none when the
/// candidate cannot be an app password.
pub fn verify(
    config: &Config,
    store: &mut dyn CredentialSource,
    kdf: &mut dyn Kdf,
    req: &Request<'_>,
    record: Record,
) -> Verdict {
    let mut verdict = decide(config, store, kdf, req, record);
    if let Decision::Refused(reason) = &verdict.decision {
        if reason.may_be_normal_password() {
            let (decision, warning) =
                off_campus_normal_password(config, store, req, record, reason.clone());
            verdict.decision = decision;
            verdict.warning = join_warnings(verdict.warning.take(), warning);
        }
    }
    verdict.warning = join_warnings(kdf.take_warning(), verdict.warning.take());
    verdict.warning = join_warnings(store.take_warning(), verdict.warning.take());
    verdict
}

fn decide(
    config: &Config,
    store: &mut dyn CredentialSource,
    kdf: &mut dyn Kdf,
    req: &Request<'_>,
    record: Record,
) -> Verdict {
    let location = config.network.locate(req.client);
    let campus = location.is_campus();
    let verdict = |decision, warning| Verdict {
        decision,
        location: location.clone(),
        warning,
    };
    let not_decided = |reason: Reason| {
        if campus {
            Decision::TryPrimary(reason)
        } else {
            Decision::Refused(reason)
        }
    };

    if let Err(bad) = check_user(req.user).and_then(|()| check_password(req.password)) {
        return verdict(Decision::Refused(Reason::BadInput(bad)), None);
    }
    let Some(candidate) = AppPassword::parse(req.password) else {
        return verdict(not_decided(Reason::NotAppPassword), None);
    };

    // Every lookup and counter uses the one canonical name (SPEC "Trust").
    let user = config.canonical_user(req.user);
    let client = counter_key(req.client);
    let looked_up = store
        .locked_out(&user, &client, req.now)
        .and_then(|locked| {
            let open = match locked {
                LockedOut::No => true,
                LockedOut::FromClient => false,
                // Smart lockout: a stranger guessing cannot lock the user's own devices out.
                LockedOut::Everywhere => match device_key(req.client) {
                    Some(device) => {
                        store.known_device(&user, &device, req.now - KNOWN_DEVICE_SECONDS)?
                    }
                    None => false,
                },
            };
            if open {
                store.lookup(&user, candidate.tag()).map(Some)
            } else {
                Ok(None)
            }
        });
    let stored = match looked_up {
        Ok(Some(stored)) => stored,
        Ok(None) => return verdict(not_decided(Reason::LockedOut), None),
        Err(e) if e.is_configuration() => {
            return verdict(Decision::ConfigError(e.to_string()), None);
        }
        Err(e) => {
            let why = e.to_string();
            let decision = if campus {
                Decision::TryPrimary(Reason::StoreUnavailable(why))
            } else {
                Decision::Unavailable(why)
            };
            return verdict(decision, None);
        }
    };
    let no_match = |store: &mut dyn CredentialSource| {
        let warning = match record {
            Record::LastUse => store
                .record_failure(&user, &client, req.now, &config.lockout)
                .err()
                .map(|e| format!("failure counter not updated: {e}")),
            Record::DryRun => None,
        };
        verdict(not_decided(Reason::NoMatch), warning)
    };
    let busy = || {
        Decision::Busy(format!(
            "no Argon2 slot free within {} ms ({} at once on this host, [argon2] \
             max_concurrent); temporary failure",
            config.gate.queue_timeout.as_millis(),
            config.gate.max_concurrent
        ))
    };
    let Some(stored) = stored else {
        kdf.dummy(config.argon2, candidate.as_bytes());
        if kdf.dummy_outcome() == Err(HashError::Busy) {
            return verdict(busy(), None);
        }
        return no_match(store);
    };
    match kdf.verify(&stored.hash, candidate.as_bytes()) {
        Ok(true) => {}
        Ok(false) => return no_match(store),
        Err(HashError::Busy) => return verdict(busy(), None),
        Err(_) => return verdict(not_decided(Reason::StoredHashInvalid), None),
    }
    drop(candidate);

    if stored.expires_at.is_some_and(|t| t <= req.now) {
        return verdict(not_decided(Reason::Expired), None);
    }
    if let Some(allowed) = &stored.services {
        let service = req.service.unwrap_or("");
        if !allowed.iter().any(|s| s.eq_ignore_ascii_case(service)) {
            return verdict(not_decided(Reason::ServiceNotAllowed), None);
        }
    }
    let warning = match record {
        Record::LastUse => store
            .record_use(
                stored.id,
                req.now,
                client_for_record(req.client),
                req.service,
            )
            .err()
            .map(|e| format!("last-used update skipped: {e}")),
        Record::DryRun => None,
    };
    verdict(
        Decision::Accepted {
            id: stored.id,
            label: stored.label,
        },
        warning,
    )
}

/// Off campus, a candidate that may be the normal password is refused — unless report mode
/// or an exemption in force passes it on. Either way the attempt is counted for
/// `apppw report`. Costs one indexed read (the exemption; none in report mode) and one
/// best-effort write; an exemption that cannot be read is not granted.
fn off_campus_normal_password(
    config: &Config,
    store: &mut dyn CredentialSource,
    req: &Request<'_>,
    record: Record,
    would_refuse: Reason,
) -> (Decision, Option<String>) {
    // Exemptions and report rows belong to the one canonical name, as app passwords do.
    let user = config.canonical_user(req.user);
    let relaxed = match config.enforcement.mode {
        Mode::Report => Ok(Some(Relaxed::ReportMode)),
        Mode::Enforce => store
            .exempt_until(&user, req.now)
            .map(|until| until.map(|until| Relaxed::Exempt { until })),
    };
    let (relaxed, warning) = match relaxed {
        Ok(relaxed) => {
            let warning = match record {
                Record::LastUse => store
                    .record_offcampus(
                        &OffCampusAttempt {
                            user: &user,
                            at: req.now,
                            ip: client_for_record(req.client),
                            service: req.service,
                            passed_on: relaxed.is_some(),
                        },
                        &config.enforcement,
                    )
                    .err()
                    .map(|e| format!("attempt not counted for `apppw report`: {e}")),
                Record::DryRun => None,
            };
            (relaxed, warning)
        }
        // The database is unusable: refused as under enforce, and nothing left to count with.
        Err(e) => (
            None,
            Some(format!("exemption not checked, so none applied: {e}")),
        ),
    };
    let decision = match relaxed {
        Some(because) => Decision::PassedOn {
            would_refuse,
            because,
        },
        None => Decision::Refused(would_refuse),
    };
    (decision, warning)
}

/// The client address as stored for "last used": canonical when numeric, else bounded text.
fn client_for_record(raw: Option<&str>) -> Option<&str> {
    raw.map(str::trim)
        .filter(|s| !s.is_empty() && s.len() <= 64)
}

#[cfg(test)]
mod tests;
