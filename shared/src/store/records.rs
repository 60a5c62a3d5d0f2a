//! What the store holds and hands out, apart from a login's lookup: app passwords as listed,
//! created, exported and imported; exemptions; the off-campus attempts behind `apppw report`;
//! the counts of `apppw stats`.

/// An app password as listed (never the password or its hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// Row id.
    pub id: i64,
    /// User.
    pub user: String,
    /// Label.
    pub label: String,
    /// Creation time (Unix seconds).
    pub created_at: i64,
    /// Expiry (Unix seconds).
    pub expires_at: Option<i64>,
    /// Allowed services; `None` = all.
    pub services: Option<Vec<String>>,
    /// Last successful login.
    pub last_used_at: Option<i64>,
    /// Client address of the last successful login.
    pub last_used_ip: Option<String>,
    /// Service of the last successful login.
    pub last_used_service: Option<String>,
}

/// A whole stored row, as copied by `apppw migrate`: the hash stays a hash.
#[derive(Clone)]
pub struct StoredCredential {
    /// Everything listed.
    pub credential: Credential,
    /// Lookup tag.
    pub tag: String,
    /// PHC string.
    pub hash: String,
}

/// What [`super::Store::import`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Imported {
    /// Rows inserted.
    pub copied: usize,
    /// Rows left out because the user already had that label (or tag).
    pub skipped: usize,
}

/// A credential to insert.
#[derive(Debug, Clone)]
pub struct NewCredential<'a> {
    /// User.
    pub user: &'a str,
    /// Label.
    pub label: &'a str,
    /// Lookup tag.
    pub tag: &'a str,
    /// PHC string.
    pub hash: &'a str,
    /// Creation time.
    pub created_at: i64,
    /// Expiry.
    pub expires_at: Option<i64>,
    /// Allowed services; `None` = all.
    pub services: Option<&'a [String]>,
}

impl NewCredential<'_> {
    pub(super) fn created(&self, id: i64) -> Credential {
        Credential {
            id,
            user: self.user.to_owned(),
            label: self.label.to_owned(),
            created_at: self.created_at,
            expires_at: self.expires_at,
            services: self.services.map(<[String]>::to_vec),
            last_used_at: None,
            last_used_ip: None,
            last_used_service: None,
        }
    }
}

/// A time-boxed exemption from the off-campus rule (`apppw exempt`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exemption {
    /// User.
    pub user: String,
    /// End of the exemption (Unix seconds); from then on it is ignored.
    pub expires_at: i64,
    /// Why it was granted (free text from the admin).
    pub reason: Option<String>,
    /// The admin who granted it.
    pub granted_by: String,
    /// When it was granted.
    pub granted_at: i64,
}

/// One off-campus attempt with a candidate that is not an app password, for `apppw report`.
#[derive(Debug, Clone, Copy)]
pub struct OffCampusAttempt<'a> {
    /// User as given.
    pub user: &'a str,
    /// When (Unix seconds); the report row is the UTC day of this.
    pub at: i64,
    /// Client address (bounded text).
    pub ip: Option<&'a str>,
    /// Service.
    pub service: Option<&'a str>,
    /// Passed on to the normal-password check (report mode or an exemption), not refused.
    pub passed_on: bool,
}

/// The UTC day (days since 1970-01-01) of a Unix time: the key of the report rows.
#[must_use]
pub fn day_of(at: i64) -> i64 {
    at.div_euclid(86_400)
}

/// One user's off-campus normal-password attempts since a day (`apppw report`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRow {
    /// User.
    pub user: String,
    /// Attempts refused.
    pub refused: i64,
    /// Attempts passed on to the normal-password check (report mode, exemption).
    pub passed_on: i64,
    /// Days with at least one attempt.
    pub days: i64,
    /// Time of the last attempt.
    pub last_at: i64,
    /// Its client address.
    pub last_ip: Option<String>,
    /// Its service.
    pub last_service: Option<String>,
    /// App passwords of the user that have not expired.
    pub app_passwords: i64,
    /// End of the user's exemption, if there is one (it may have passed).
    pub exempt_until: Option<i64>,
}

/// Attempts of users beyond `report_max_users_per_day`, counted only in total.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReportOverflow {
    /// Refused.
    pub refused: i64,
    /// Passed on.
    pub passed_on: i64,
}

/// Counts for `apppw stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// App passwords that have not expired.
    pub active: i64,
    /// App passwords that have expired (still stored until revoked or pruned).
    pub expired: i64,
    /// Users with at least one app password.
    pub users: i64,
    /// App passwords whose last use is less than 24 hours old.
    pub used_last_day: i64,
    /// Exemptions in force.
    pub exemptions_active: i64,
    /// Exemptions that have ended but were not removed.
    pub exemptions_expired: i64,
    /// Off-campus normal-password attempts of today (UTC): refused, passed on, users.
    pub today: DayCounts,
    /// The same for yesterday (UTC), a complete day.
    pub yesterday: DayCounts,
}

/// Off-campus normal-password attempts of one UTC day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DayCounts {
    /// Refused (enforce mode, no exemption).
    pub refused: i64,
    /// Passed on (report mode or an exemption), logged as `would-refuse`.
    pub passed_on: i64,
    /// Users with at least one attempt (those beyond the per-day row limit not included).
    pub users: i64,
}

/// Which app passwords `apppw list --expired/--unused-since` and `apppw prune` select.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialFilter {
    /// Expired at or before this time.
    ExpiredAt(i64),
    /// Last used before this time, or never used and created before it.
    UnusedSince(i64),
}
