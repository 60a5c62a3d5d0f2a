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
//! on by default). Which database to open is the config's ([`Database`]): the store depends on
//! the config, never the other way round.

use crate::config::{Config, Database, Enforcement, Lockout};
use crate::trust::TrustError;
use std::path::{Path, PathBuf};

#[cfg(feature = "postgres")]
mod postgres;
mod sqlite;

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

/// A storage failure. Every variant means "cannot decide", never "accepted".
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database file does not exist, or the PostgreSQL database has no apppw tables
    /// (front-ends never create them).
    #[error(
        "database {} does not exist; create the first app password with `apppw create`, \
         or fix `database` in the config", .0.display()
    )]
    Missing(PathBuf),
    /// The file exists but could not be opened or read.
    #[error("database {path} cannot be used: {source}{hint}", path = path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
        /// What to do about it.
        hint: &'static str,
    },
    /// The database is not an apppw database of a version this program understands.
    #[error("database {} has schema version {found}, this program understands {SCHEMA_VERSION}{hint}", path.display(), hint = schema_hint(*found))]
    Schema {
        /// The file (or PostgreSQL URL).
        path: PathBuf,
        /// The version found.
        found: i64,
    },
    /// An SQLite query failed.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The PostgreSQL server could not be reached or refused the connection.
    #[error(
        "database {database} is not reachable: {message} (is PostgreSQL running, does it \
         accept this host and user, and is `database_password_file` right?)"
    )]
    Unavailable {
        /// The URL (never with a password).
        database: String,
        /// What went wrong.
        message: String,
    },
    /// A PostgreSQL query failed.
    #[error("database error: {0}")]
    Postgres(String),
    /// `database_password_file` cannot be used.
    #[error("database password file {} {problem}", path.display())]
    PasswordFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// The connection needs TLS, and this program was started without it
    /// ([`enable_postgres_tls`]).
    #[error(
        "database {0} needs TLS, which this program does not load (apppw-checkpassword runs \
         apppw-checkpassword-tls for it: is that installed next to it?)"
    )]
    NoTls(String),
    /// A PostgreSQL URL, but this build has no PostgreSQL support.
    #[error(
        "database {0} is PostgreSQL, but this build of apppw was made without PostgreSQL \
         support (cargo feature `postgres`)"
    )]
    NoPostgres(String),
    /// An operation this backend does not offer.
    #[error("{0}")]
    Unsupported(&'static str),
    /// `create` with a label the user already has.
    #[error(
        "user {user} already has an app password labelled {label:?}; choose another label or revoke the old one"
    )]
    DuplicateLabel {
        /// User.
        user: String,
        /// Label.
        label: String,
    },
    /// The file (or its directory) is writable by everyone: anyone could add credentials.
    /// (What the admin CLI refuses; logins refuse more, see [`StoreError::Untrusted`].)
    #[error(
        "database {} or its directory is writable by every user, so anyone could add an app \
         password; refusing to use it (fix with chmod o-w)", .0.display()
    )]
    Insecure(PathBuf),
    /// The SQLite file, a file next to it, `database_password_file` or a directory above one
    /// of them fails [`crate::trust`]: a configuration error, not a passing outage.
    #[error("not trusted: {0}")]
    Untrusted(TrustError),
    /// The file or a directory above it could not be looked at.
    #[error(
        "database {} cannot be used: {source} (this user must be able to enter every \
         directory above it and read it)", path.display()
    )]
    Check {
        /// The path that could not be looked at.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The database is read-only for this user: a failed attempt was not counted.
    #[error(
        "database {} is read-only for this user: failed attempts are not counted, so the \
         cool-down does not work (make it writable by the group apppw, mode 0660)", .0.display()
    )]
    ReadOnly(PathBuf),
    /// The random lookup tag collided with another of the user's credentials.
    #[error("lookup tag collision; try again")]
    TagCollision,
}

fn schema_hint(found: i64) -> &'static str {
    if found > SCHEMA_VERSION {
        "; upgrade apppw"
    } else if found >= 1 {
        "; run `apppw migrate` as root to upgrade it"
    } else {
        "; is it an apppw database?"
    }
}

impl StoreError {
    /// A configuration error (the database must not be used as it is), rather than an
    /// outage: the PAM module ends the stack, checkpassword exits 111, on campus too.
    #[must_use]
    pub fn is_configuration(&self) -> bool {
        matches!(self, StoreError::Untrusted(_))
    }
}

/// Which cool-down an attempt meets ([`CredentialSource::locked_out`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockedOut {
    /// None.
    No,
    /// The per-client limit was reached from this client.
    FromClient,
    /// The per-user limit was reached from all clients together.
    Everywhere,
}

impl LockedOut {
    /// From the `client` values of the user's running cool-downs for this client and for
    /// everyone ([`ALL_CLIENTS`]): the client's own one wins.
    fn from_clients(clients: &[String]) -> LockedOut {
        if clients.iter().any(|c| c != ALL_CLIENTS) {
            LockedOut::FromClient
        } else if clients.is_empty() {
            LockedOut::No
        } else {
            LockedOut::Everywhere
        }
    }
}

/// What a login needs about one stored credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Row id.
    pub id: i64,
    /// Label.
    pub label: String,
    /// PHC string.
    pub hash: String,
    /// Expiry (Unix seconds).
    pub expires_at: Option<i64>,
    /// Allowed services; `None` = all.
    pub services: Option<Vec<String>>,
}

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

/// What [`Store::import`] did.
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
    fn created(&self, id: i64) -> Credential {
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

/// Where a login looks up credentials. Implemented by [`Store`] and by test doubles.
///
/// The failure-counter methods have do-nothing defaults so that a source without them never
/// locks anyone out.
pub trait CredentialSource {
    /// A non-fatal problem found while opening the source, reported once.
    fn take_warning(&mut self) -> Option<String> {
        None
    }
    /// Is `user` in a cool-down, from `client` (its counter key) or from everywhere?
    fn locked_out(
        &mut self,
        _user: &str,
        _client: &str,
        _now: i64,
    ) -> Result<LockedOut, StoreError> {
        Ok(LockedOut::No)
    }
    /// Has `user` logged in with an app password from `device` (its device key) since
    /// `since`? (Recorded by [`CredentialSource::record_use`].)
    fn known_device(
        &mut self,
        _user: &str,
        _device: &str,
        _since: i64,
    ) -> Result<bool, StoreError> {
        Ok(false)
    }
    /// Counts one failed app-password attempt; starts a cool-down when a limit is reached.
    /// Best effort, like [`CredentialSource::record_use`].
    fn record_failure(
        &mut self,
        _user: &str,
        _client: &str,
        _now: i64,
        _policy: &Lockout,
    ) -> Result<(), StoreError> {
        Ok(())
    }

    /// The end of `user`'s exemption from the off-campus rule, if one is in force at `now`.
    /// A source without exemptions exempts nobody.
    fn exempt_until(&mut self, _user: &str, _now: i64) -> Result<Option<i64>, StoreError> {
        Ok(None)
    }
    /// Counts an off-campus normal-password attempt for `apppw report`. Best effort, like
    /// [`CredentialSource::record_use`]: never blocks or fails a login.
    fn record_offcampus(
        &mut self,
        _attempt: &OffCampusAttempt<'_>,
        _policy: &Enforcement,
    ) -> Result<(), StoreError> {
        Ok(())
    }

    /// The one credential of `user` with lookup tag `tag`, if any.
    fn lookup(&mut self, user: &str, tag: &str) -> Result<Option<Candidate>, StoreError>;
    /// Records a successful use, and the client's device key as a known device of the
    /// credential's user. Best effort: errors are reported, never fatal to the login.
    fn record_use(
        &mut self,
        id: i64,
        at: i64,
        ip: Option<&str>,
        service: Option<&str>,
    ) -> Result<(), StoreError>;
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

/// A [`CredentialSource`] that opens the database only when a lookup is needed, so that a
/// candidate that cannot be an app password costs no I/O (and no connection) at all.
///
/// A host that keeps the PAM module loaded can hand in the store of its previous attempt
/// ([`LazyStore::resume`]) and take it back afterwards ([`LazyStore::into_kept`]), so that one
/// connection serves many logins. A kept connection is used only while
/// [`Store::still_current`] holds; if the server closed it in the meantime, the operation is
/// made once more on a new connection.
pub struct LazyStore {
    database: Database,
    store: Option<Store>,
    /// `store` was kept from an earlier attempt, not opened by this one.
    kept: bool,
    /// An operation failed: the store is not worth keeping.
    failed: bool,
}

impl LazyStore {
    /// Will open `db` with [`Store::open_for_login`] on first use.
    #[must_use]
    pub fn new(db: &(impl AsDatabase + ?Sized)) -> Self {
        Self::resume(db, None)
    }

    /// Like [`LazyStore::new`], starting from `kept`, a store opened by an earlier attempt in
    /// this process, if it is still current for `db` (else it is closed).
    #[must_use]
    pub fn resume(db: &(impl AsDatabase + ?Sized), kept: Option<Store>) -> Self {
        let database = db.as_database();
        let store = kept.filter(|s| s.still_current(&database));
        LazyStore {
            kept: store.is_some(),
            database,
            store,
            failed: false,
        }
    }

    /// Whether the store was opened by this attempt (not kept from an earlier one).
    #[must_use]
    pub fn opened_here(&self) -> bool {
        self.store.is_some() && !self.kept
    }

    /// The store to keep for the next attempt: `None` if none was opened or an operation on
    /// it failed.
    #[must_use]
    pub fn into_kept(self) -> Option<Store> {
        if self.failed { None } else { self.store }
    }

    /// The open store, opening it if needed.
    pub fn get(&mut self) -> Result<&mut Store, StoreError> {
        if self.store.is_none() {
            self.kept = false;
            match Store::open(&self.database, Purpose::Login) {
                Ok(store) => self.store = Some(store),
                Err(e) => {
                    self.failed = true;
                    return Err(e);
                }
            }
        }
        self.store
            .as_mut()
            .ok_or_else(|| StoreError::Missing(PathBuf::from(self.database.to_string())))
    }

    /// Runs `op` on the store; once more on a new connection if a kept one turns out closed.
    fn run<T>(
        &mut self,
        mut op: impl FnMut(&mut Store) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut result = op(self.get()?);
        if result.is_err() && self.kept && self.store.as_ref().is_some_and(Store::is_closed) {
            self.store = None;
            result = op(self.get()?);
        }
        if result.is_err() {
            self.failed = true;
        }
        result
    }
}

impl CredentialSource for LazyStore {
    fn take_warning(&mut self) -> Option<String> {
        self.store.as_mut().and_then(Store::take_warning)
    }
    fn locked_out(&mut self, user: &str, client: &str, now: i64) -> Result<LockedOut, StoreError> {
        self.run(|s| s.locked_out(user, client, now))
    }
    fn known_device(&mut self, user: &str, device: &str, since: i64) -> Result<bool, StoreError> {
        self.run(|s| s.known_device(user, device, since))
    }
    fn record_failure(
        &mut self,
        user: &str,
        client: &str,
        now: i64,
        policy: &Lockout,
    ) -> Result<(), StoreError> {
        self.run(|s| s.record_failure(user, client, now, policy))
    }
    fn exempt_until(&mut self, user: &str, now: i64) -> Result<Option<i64>, StoreError> {
        self.run(|s| s.exempt_until(user, now))
    }
    fn record_offcampus(
        &mut self,
        attempt: &OffCampusAttempt<'_>,
        policy: &Enforcement,
    ) -> Result<(), StoreError> {
        self.run(|s| s.record_offcampus(attempt, policy))
    }
    fn lookup(&mut self, user: &str, tag: &str) -> Result<Option<Candidate>, StoreError> {
        self.run(|s| s.lookup(user, tag))
    }
    fn record_use(
        &mut self,
        id: i64,
        at: i64,
        ip: Option<&str>,
        service: Option<&str>,
    ) -> Result<(), StoreError> {
        self.run(|s| s.record_use(id, at, ip, service))
    }
}

#[cfg(test)]
mod tests;
