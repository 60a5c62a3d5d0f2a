//! Where app passwords are stored: an SQLite file (the default) or a PostgreSQL database
//! shared by several mail servers (`database = "postgresql://..."`), behind one interface.
//!
//! - The admin CLI creates the database (SQLite: the file, mode 0660; PostgreSQL: the tables)
//!   and applies versioned migrations ([`SCHEMA_VERSION`]).
//! - Front-ends open an **existing** database only ([`Store::open_for_login`]); a missing,
//!   unreadable, unreachable, corrupt or wrong-version database is an error, which the
//!   verification turns into "temporarily unavailable", never "accepted". An SQLite file that
//!   fails [`crate::trust`] (its owner, its mode, its directories, its `-wal`/`-shm`) is a
//!   configuration error ([`StoreError::Untrusted`]), which ends the PAM stack.
//! - SQLite's `-wal` and `-shm` files are kept (no connection checkpoints and deletes them on
//!   close), so that they keep the owner of whoever created them first: the admin CLI, as root.
//!   Otherwise the first login after an idle moment would recreate them as the Dovecot user,
//!   and root's PAM module would (rightly) refuse files of another user.
//! - A login runs one indexed query on `(user, tag)`; the last-used and failure-counter
//!   updates use short lock timeouts and are skipped on failure, so they never block or fail
//!   a login.
//!
//! The backends live in `store/sqlite.rs` and `store/postgres.rs` (cargo feature `postgres`,
//! on by default); what a login asks of them in `store/login.rs`, the other rows in
//! `store/records.rs`, the errors in `store/error.rs`. Which database to open is the config's
//! ([`Database`]): the store depends on the config, never the other way round.

use crate::config::{Config, Database, Enforcement, Lockout};
use std::path::{Path, PathBuf};

mod error;
mod login;
#[cfg(feature = "postgres")]
mod postgres;
mod records;
mod sqlite;

pub use error::StoreError;
pub use login::{Candidate, CredentialSource, LazyStore, LockedOut};
pub use records::{
    Credential, CredentialFilter, DayCounts, Exemption, Imported, NewCredential, OffCampusAttempt,
    ReportOverflow, ReportRow, Stats, StoredCredential, day_of,
};

/// Schema version (`PRAGMA user_version` in SQLite, table `apppw_schema` in PostgreSQL).
pub const SCHEMA_VERSION: i64 = 3;

/// A device (client /64 or /24) that logged in with an app password this recently keeps
/// working while the user's per-user cool-down is active ("smart lockout").
pub const KNOWN_DEVICE_SECONDS: i64 = 30 * 86_400;

const MIGRATIONS_SQLITE: &[&str] = &[
    // 1: initial schema.
    "CREATE TABLE app_passwords (
        id                INTEGER PRIMARY KEY,
        user              TEXT    NOT NULL,
        label             TEXT    NOT NULL,
        tag               TEXT    NOT NULL,
        hash              TEXT    NOT NULL,
        created_at        INTEGER NOT NULL,
        expires_at        INTEGER,
        services          TEXT,
        last_used_at      INTEGER,
        last_used_ip      TEXT,
        last_used_service TEXT,
        UNIQUE (user, label),
        UNIQUE (user, tag)
    );
    -- Failed app-password attempts per (user, client address); client '*' counts all
    -- addresses. See `Lockout` in config.rs.
    CREATE TABLE failures (
        user         TEXT    NOT NULL,
        client       TEXT    NOT NULL,
        first_at     INTEGER NOT NULL,
        count        INTEGER NOT NULL,
        locked_until INTEGER,
        PRIMARY KEY (user, client)
    ) WITHOUT ROWID;",
    // 2: devices (client /24 or /64) with a successful app-password login, for the per-user
    // cool-down: they keep working while strangers are locked out. See `KNOWN_DEVICE_SECONDS`.
    "CREATE TABLE known_devices (
        user         TEXT    NOT NULL,
        device       TEXT    NOT NULL,
        last_success INTEGER NOT NULL,
        PRIMARY KEY (user, device)
    ) WITHOUT ROWID;",
    // 3: staged rollout: exemptions and the off-campus attempts behind `apppw report`.
    "-- Time-boxed exemptions from the off-campus rule (`apppw exempt`).
    CREATE TABLE exemptions (
        user       TEXT    PRIMARY KEY,
        expires_at INTEGER NOT NULL,
        reason     TEXT,
        granted_by TEXT    NOT NULL,
        granted_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    -- Off-campus normal-password attempts per UTC day (days since 1970-01-01) and user, for
    -- `apppw report`: refused ones and those passed on under report mode or an exemption.
    CREATE TABLE offcampus_attempts (
        day          INTEGER NOT NULL,
        user         TEXT    NOT NULL,
        refused      INTEGER NOT NULL,
        passed_on    INTEGER NOT NULL,
        last_at      INTEGER NOT NULL,
        last_ip      TEXT,
        last_service TEXT,
        PRIMARY KEY (day, user)
    ) WITHOUT ROWID;
    -- Per day: how many users have a row above, and the attempts of users beyond
    -- `report_max_users_per_day`, counted only in total.
    CREATE TABLE offcampus_days (
        day                INTEGER PRIMARY KEY,
        users              INTEGER NOT NULL,
        overflow_refused   INTEGER NOT NULL,
        overflow_passed_on INTEGER NOT NULL
    );",
];

/// The `client` value of the per-user counter in the `failures` table.
const ALL_CLIENTS: &str = "*";

/// Lets this process connect to PostgreSQL over TLS, with the system's OpenSSL. Every program
/// that may open a PostgreSQL store calls it once before (the CLI, the web page, the PAM
/// module, `apppw-checkpassword-tls`); without it a connection that needs TLS fails with
/// [`StoreError::NoTls`], never in plaintext. A program that never calls it does not link
/// OpenSSL at all: `apppw-checkpassword`, started for every login, would otherwise pay
/// ~0.7 ms of dynamic linking (libssl and libcrypto's ~4900 symbol relocations) per start
/// (docs/PERFORMANCE.md).
pub fn enable_postgres_tls() {
    #[cfg(feature = "postgres")]
    postgres::enable_tls();
}

/// Anything that names a database: a [`Database`], or a path (an SQLite file).
pub trait AsDatabase {
    /// The database named.
    fn as_database(&self) -> Database;
}

impl AsDatabase for Database {
    fn as_database(&self) -> Database {
        self.clone()
    }
}

impl AsDatabase for Path {
    fn as_database(&self) -> Database {
        Database::Sqlite(self.to_path_buf())
    }
}

impl AsDatabase for PathBuf {
    fn as_database(&self) -> Database {
        Database::Sqlite(self.clone())
    }
}

enum Backend {
    Sqlite(sqlite::Sqlite),
    #[cfg(feature = "postgres")]
    Postgres(postgres::Postgres),
}

/// Runs the same method on whichever backend is open.
macro_rules! on_backend {
    ($backend:expr, $b:ident => $body:expr) => {
        match $backend {
            Backend::Sqlite($b) => $body,
            #[cfg(feature = "postgres")]
            Backend::Postgres($b) => $body,
        }
    };
}

/// An open database.
pub struct Store {
    backend: Backend,
    path: PathBuf,
    warning: Option<String>,
    /// The config entry it was opened from.
    database: Database,
}

/// Checks the permissions of a database file for the admin CLI: world-writable (file or
/// directory, unless the directory is sticky) is refused; world-readable is allowed with a
/// warning, since the hashes and last-used addresses are then readable by every local user.
/// (Logins check the whole [`crate::trust`] rule instead.)
pub fn check_permissions(path: &Path) -> Result<Option<String>, StoreError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).map(|m| m.permissions().mode()).ok();
    let file = mode(path).unwrap_or(0);
    let dir = path
        .parent()
        .map(|d| {
            if d.as_os_str().is_empty() {
                Path::new(".")
            } else {
                d
            }
        })
        .and_then(mode)
        .unwrap_or(0);
    if file & 0o002 != 0 || (dir & 0o002 != 0 && dir & 0o1000 == 0) {
        return Err(StoreError::Insecure(path.to_path_buf()));
    }
    Ok(world_readable_warning(path, file))
}

fn world_readable_warning(path: &Path, mode: u32) -> Option<String> {
    (mode & 0o004 != 0).then(|| {
        format!(
            "database {} is readable by every user (mode {:o}); run chmod o-r on it",
            path.display(),
            mode & 0o777
        )
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Login,
    Admin,
    ReadOnly,
}

impl Store {
    fn open(db: &Database, purpose: Purpose) -> Result<Store, StoreError> {
        match db {
            Database::Sqlite(path) => {
                let (conn, warning) = match purpose {
                    Purpose::Login => sqlite::Sqlite::open_for_login(path)?,
                    Purpose::Admin => sqlite::Sqlite::open_for_admin(path)?,
                    Purpose::ReadOnly => sqlite::Sqlite::open_read_only(path)?,
                };
                Ok(Store {
                    backend: Backend::Sqlite(conn),
                    path: path.clone(),
                    warning,
                    database: db.clone(),
                })
            }
            #[cfg(feature = "postgres")]
            Database::Postgres(target) => {
                let client = match purpose {
                    Purpose::Login => postgres::Postgres::open_for_login(target)?,
                    Purpose::Admin => postgres::Postgres::open_for_admin(target)?,
                    Purpose::ReadOnly => postgres::Postgres::open_read_only(target)?,
                };
                Ok(Store {
                    path: PathBuf::from(client.name()),
                    backend: Backend::Postgres(client),
                    warning: None,
                    database: db.clone(),
                })
            }
            #[cfg(not(feature = "postgres"))]
            Database::Postgres(target) => Err(StoreError::NoPostgres(target.url.clone())),
        }
    }

    /// Opens an existing database for logins. Never creates anything. An SQLite file must
    /// pass [`crate::trust`] with its `-wal`, `-shm` and directories.
    pub fn open_for_login(db: &(impl AsDatabase + ?Sized)) -> Result<Store, StoreError> {
        Self::open(&db.as_database(), Purpose::Login)
    }

    /// Opens the database for the admin CLI, creating it (an SQLite file: mode 0660, with its
    /// `-wal` and `-shm`) and migrating as needed. What logins would refuse is a warning.
    pub fn open_for_admin(db: &(impl AsDatabase + ?Sized)) -> Result<Store, StoreError> {
        Self::open(&db.as_database(), Purpose::Admin)
    }

    /// Opens an existing database read-only for the CLI's read commands (list, verify).
    pub fn open_read_only(db: &(impl AsDatabase + ?Sized)) -> Result<Store, StoreError> {
        Self::open(&db.as_database(), Purpose::ReadOnly)
    }

    /// May this store, opened for an earlier attempt, serve another one for `db`? Only if
    /// the config still names it, and an SQLite file has not been replaced (a restored backup,
    /// a new file moved into place) and still passes [`crate::trust`] with its `-wal`, `-shm`
    /// and directories; a PostgreSQL connection only while it is not known to be closed.
    #[must_use]
    pub fn still_current(&self, db: &Database) -> bool {
        if self.database != *db {
            return false;
        }
        match &self.backend {
            Backend::Sqlite(b) => b.still_trusted(),
            #[cfg(feature = "postgres")]
            Backend::Postgres(b) => !b.is_closed(),
        }
    }

    /// Has the connection been closed under us (a PostgreSQL server restart or idle
    /// timeout)? An SQLite file cannot be.
    fn is_closed(&self) -> bool {
        match &self.backend {
            Backend::Sqlite(_) => false,
            #[cfg(feature = "postgres")]
            Backend::Postgres(b) => b.is_closed(),
        }
    }

    /// For a connection a long-lived process keeps between logins: asks PostgreSQL to close
    /// it once it has been idle for `idle` (`idle_session_timeout`, PostgreSQL 14 and later;
    /// older servers ignore the request). Without this every auth worker would hold a
    /// connection for its whole life. One round trip, once per connection; errors are
    /// ignored (the connection then simply stays). Nothing to do for SQLite, or for zero.
    pub fn close_when_idle(&mut self, idle: std::time::Duration) {
        if idle.is_zero() {
            return;
        }
        match &mut self.backend {
            Backend::Sqlite(_) => {}
            #[cfg(feature = "postgres")]
            Backend::Postgres(b) => b.close_when_idle(idle),
        }
    }

    /// A problem worth telling the admin about (e.g. a world-readable file), found at open.
    #[must_use]
    pub fn warning(&self) -> Option<&str> {
        self.warning.as_deref()
    }

    /// The database file, or for PostgreSQL its URL (without a password): for messages.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Does `user` have at least one app password (for checkpassword's lookup mode)?
    pub fn user_exists(&self, user: &str) -> Result<bool, StoreError> {
        on_backend!(&self.backend, b => b.user_exists(user))
    }

    /// Every user name stored, with how many app passwords it has, ordered by name.
    pub fn users(&self) -> Result<Vec<(String, usize)>, StoreError> {
        on_backend!(&self.backend, b => b.users())
    }

    /// The stored user names that are not in the canonical form of `config`
    /// ([`Config::canonical_user`], e.g. `Alice` while names are lowercased), with their number
    /// of app passwords. Lookups use the canonical name, so these app passwords no longer log
    /// anyone in; they are reported (`apppw migrate --check`), never merged silently.
    pub fn noncanonical_users(&self, config: &Config) -> Result<Vec<(String, usize)>, StoreError> {
        Ok(self
            .users()?
            .into_iter()
            .filter(|(user, _)| config.canonical_user(user) != *user)
            .collect())
    }

    /// The stored user names whose canonical form is `canonical`: the exact name, and
    /// non-canonical variants of it (`Alice` for `alice`), so that `list` and `revoke` find
    /// those too.
    pub fn names_of(&self, config: &Config, canonical: &str) -> Result<Vec<String>, StoreError> {
        Ok(self
            .users()?
            .into_iter()
            .map(|(user, _)| user)
            .filter(|user| user == canonical || config.canonical_user(user) == canonical)
            .collect())
    }

    /// Inserts a credential in one transaction.
    pub fn create(&mut self, new: &NewCredential<'_>) -> Result<Credential, StoreError> {
        on_backend!(&mut self.backend, b => b.create(new))
    }

    /// Lists credentials of one user, or of everyone, ordered by user and creation.
    pub fn list(&self, user: Option<&str>) -> Result<Vec<Credential>, StoreError> {
        on_backend!(&self.backend, b => b.list(user))
    }

    /// Deletes the credential of `user` with this label, or else with this id. Returns what
    /// was deleted (empty if nothing matched).
    pub fn revoke(&mut self, user: &str, label_or_id: &str) -> Result<Vec<Credential>, StoreError> {
        on_backend!(&mut self.backend, b => b.revoke(user, label_or_id))
    }

    /// Deletes every credential of `user`. Returns what was deleted.
    pub fn revoke_all(&mut self, user: &str) -> Result<Vec<Credential>, StoreError> {
        on_backend!(&mut self.backend, b => b.revoke_all(user))
    }

    /// Every stored row with its tag and hash, for `apppw migrate`.
    pub fn export(&self) -> Result<Vec<StoredCredential>, StoreError> {
        on_backend!(&self.backend, b => b.export())
    }

    /// How many app passwords are stored.
    pub fn count(&self) -> Result<usize, StoreError> {
        match &self.backend {
            Backend::Sqlite(b) => Ok(b.export()?.len()),
            #[cfg(feature = "postgres")]
            Backend::Postgres(b) => Ok(usize::try_from(b.count()?).unwrap_or(usize::MAX)),
        }
    }

    /// Grants or replaces `user`'s exemption; returns the one it replaced.
    pub fn exempt(&mut self, exemption: &Exemption) -> Result<Option<Exemption>, StoreError> {
        on_backend!(&mut self.backend, b => b.exempt(exemption))
    }

    /// Ends `user`'s exemption; returns it (`None` if there was none).
    pub fn unexempt(&mut self, user: &str) -> Result<Option<Exemption>, StoreError> {
        on_backend!(&mut self.backend, b => b.unexempt(user))
    }

    /// Every exemption, expired ones included, ordered by user.
    pub fn exemptions(&self) -> Result<Vec<Exemption>, StoreError> {
        on_backend!(&self.backend, b => b.exemptions())
    }

    /// Off-campus normal-password attempts per user from UTC day `since_day` on, most
    /// attempts first, and the attempts of users beyond the per-day row limit.
    pub fn report(
        &self,
        since_day: i64,
        now: i64,
    ) -> Result<(Vec<ReportRow>, ReportOverflow), StoreError> {
        on_backend!(&self.backend, b => b.report(since_day, now))
    }

    /// Counts for `apppw stats`.
    pub fn stats(&self, now: i64) -> Result<Stats, StoreError> {
        on_backend!(&self.backend, b => b.stats(now))
    }

    /// The app passwords (of `user`, or of everyone) that `filter` selects.
    pub fn matching(
        &self,
        filter: CredentialFilter,
        user: Option<&str>,
    ) -> Result<Vec<Credential>, StoreError> {
        on_backend!(&self.backend, b => b.matching(filter, user))
    }

    /// Deletes the app passwords (of `user`, or of everyone) that `filter` selects, in one
    /// statement, so that one used meanwhile is not deleted as unused. Returns them.
    pub fn prune(
        &mut self,
        filter: CredentialFilter,
        user: Option<&str>,
    ) -> Result<Vec<Credential>, StoreError> {
        on_backend!(&mut self.backend, b => b.prune(filter, user))
    }

    /// Can a login through this connection record last use, failure counters and the
    /// report? `Ok(false)`: the database is read-only to it (logins still work).
    pub fn can_record(&mut self) -> Result<bool, StoreError> {
        on_backend!(&mut self.backend, b => b.can_record())
    }

    /// Copies rows exported from another store, in one transaction (PostgreSQL only). Into
    /// an empty store the ids are kept; otherwise rows whose user already has the label are
    /// skipped and the others get new ids.
    pub fn import(&mut self, rows: &[StoredCredential]) -> Result<Imported, StoreError> {
        match &mut self.backend {
            Backend::Sqlite(_) => Err(StoreError::Unsupported(
                "copying app passwords into an SQLite database is not supported; \
                 the target must be PostgreSQL",
            )),
            #[cfg(feature = "postgres")]
            Backend::Postgres(b) => b.import(rows),
        }
    }
}

/// One failure record in 64 also sweeps expired counters.
fn sweep_now() -> bool {
    let mut dice = [0u8; 1];
    getrandom::fill(&mut dice).is_ok() && dice[0] < 4
}

fn split_services(raw: Option<String>) -> Option<Vec<String>> {
    raw.map(|s| {
        s.split(',')
            .filter(|x| !x.is_empty())
            .map(str::to_owned)
            .collect()
    })
}

impl CredentialSource for Store {
    fn take_warning(&mut self) -> Option<String> {
        self.warning.take()
    }

    fn locked_out(&mut self, user: &str, client: &str, now: i64) -> Result<LockedOut, StoreError> {
        on_backend!(&mut self.backend, b => b.locked_out(user, client, now))
    }

    fn known_device(&mut self, user: &str, device: &str, since: i64) -> Result<bool, StoreError> {
        on_backend!(&mut self.backend, b => b.known_device(user, device, since))
    }

    fn record_failure(
        &mut self,
        user: &str,
        client: &str,
        now: i64,
        policy: &Lockout,
    ) -> Result<(), StoreError> {
        on_backend!(&mut self.backend, b => b.record_failure(user, client, now, policy))
    }

    fn exempt_until(&mut self, user: &str, now: i64) -> Result<Option<i64>, StoreError> {
        on_backend!(&mut self.backend, b => b.exempt_until(user, now))
    }

    fn record_offcampus(
        &mut self,
        attempt: &OffCampusAttempt<'_>,
        policy: &Enforcement,
    ) -> Result<(), StoreError> {
        on_backend!(&mut self.backend, b => b.record_offcampus(attempt, policy))
    }

    fn lookup(&mut self, user: &str, tag: &str) -> Result<Option<Candidate>, StoreError> {
        on_backend!(&mut self.backend, b => b.lookup(user, tag))
    }

    fn record_use(
        &mut self,
        id: i64,
        at: i64,
        ip: Option<&str>,
        service: Option<&str>,
    ) -> Result<(), StoreError> {
        on_backend!(&mut self.backend, b => b.record_use(id, at, ip, service))
    }
}

/// Two non-fatal problems as one log text, `a; b`.
pub(crate) fn join_warnings(a: Option<String>, b: Option<String>) -> Option<String> {
    match (a, b) {
        (Some(a), Some(b)) => Some(format!("{a}; {b}")),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests;
