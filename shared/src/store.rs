//! Where app passwords are stored: an SQLite file (the default) or a PostgreSQL database
//! shared by several mail servers (`database = "postgresql://..."`), behind one interface.
//!
//! - The admin CLI creates the database (SQLite: the file, mode 0660; PostgreSQL: the tables)
//!   and applies versioned migrations ([`SCHEMA_VERSION`]).
//! - Front-ends open an **existing** database only ([`Store::open_for_login`]); a missing,
//!   unreadable, unreachable, corrupt or wrong-version database is an error, which the
//!   verification turns into "temporarily unavailable", never "accepted".
//! - A login runs one indexed query on `(user, tag)`; the last-used and failure-counter
//!   updates use short lock timeouts and are skipped on failure, so they never block or fail
//!   a login.
//!
//! The backends live in `store/sqlite.rs` and `store/postgres.rs` (cargo feature `postgres`,
//! on by default).

use crate::config::Lockout;
use std::fmt;
use std::path::{Path, PathBuf};

#[cfg(feature = "postgres")]
mod postgres;
mod sqlite;

/// Schema version (`PRAGMA user_version` in SQLite, table `apppw_schema` in PostgreSQL).
pub const SCHEMA_VERSION: i64 = 1;

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
];

/// The `client` value of the per-user counter in the `failures` table.
const ALL_CLIENTS: &str = "*";

/// The `database` of the config: an SQLite file or a PostgreSQL URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// An SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database.
    Postgres(PgTarget),
}

/// A PostgreSQL database: `postgresql://user@host:5432/dbname?connect_timeout=2` (never with a
/// password in it) and the file holding the password, if the server asks for one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgTarget {
    /// The URL.
    pub url: String,
    /// `database_password_file`: read at each connect, refused when every user may read it.
    pub password_file: Option<PathBuf>,
}

impl Database {
    /// Is `text` a PostgreSQL URL rather than a file name?
    #[must_use]
    pub fn is_url(text: &str) -> bool {
        text.starts_with("postgresql://") || text.starts_with("postgres://")
    }

    /// What can be checked about a PostgreSQL URL without connecting (a parse error, a
    /// password in it). The message never repeats the URL.
    pub fn check_url(url: &str) -> Result<(), String> {
        #[cfg(feature = "postgres")]
        {
            postgres::check_url(url)
        }
        #[cfg(not(feature = "postgres"))]
        {
            let _ = url;
            Ok(())
        }
    }

    /// Does connecting to it need TLS (a PostgreSQL URL whose `sslmode`, or apppw's default
    /// for its host, asks for it)?
    #[must_use]
    pub fn needs_tls(&self) -> bool {
        match self {
            Database::Sqlite(_) => false,
            #[cfg(feature = "postgres")]
            Database::Postgres(t) => postgres::needs_tls(&t.url),
            #[cfg(not(feature = "postgres"))]
            Database::Postgres(_) => false,
        }
    }

    /// The SQLite file, if this is one.
    #[must_use]
    pub fn sqlite_path(&self) -> Option<&Path> {
        match self {
            Database::Sqlite(p) => Some(p),
            Database::Postgres(_) => None,
        }
    }
}

impl fmt::Display for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Database::Sqlite(p) => write!(f, "{}", p.display()),
            Database::Postgres(t) => f.write_str(&t.url),
        }
    }
}

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
    #[error("database {} has schema version {found}, this program understands {SCHEMA_VERSION}{hint}", path.display(), hint = if *found > SCHEMA_VERSION { "; upgrade apppw" } else { "; is it an apppw database?" })]
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
    #[error(
        "database {} or its directory is writable by every user, so anyone could add an app \
         password; refusing to use it (fix with chmod o-w)", .0.display()
    )]
    Insecure(PathBuf),
    /// The random lookup tag collided with another of the user's credentials.
    #[error("lookup tag collision; try again")]
    TagCollision,
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

/// Where a login looks up credentials. Implemented by [`Store`] and by test doubles.
///
/// The failure-counter methods have do-nothing defaults so that a source without them never
/// locks anyone out.
pub trait CredentialSource {
    /// A non-fatal problem found while opening the source, reported once.
    fn take_warning(&mut self) -> Option<String> {
        None
    }
    /// Is `user` in a cool-down, from `client` or from everywhere?
    fn locked_out(&mut self, _user: &str, _client: &str, _now: i64) -> Result<bool, StoreError> {
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

    /// The one credential of `user` with lookup tag `tag`, if any.
    fn lookup(&mut self, user: &str, tag: &str) -> Result<Option<Candidate>, StoreError>;
    /// Records a successful use. Best effort: errors are reported, never fatal to the login.
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
    /// An SQLite file's (device, inode), taken just before it was opened.
    file_id: Option<(u64, u64)>,
}

/// The (device, inode) of a file, if it can be read.
fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Checks the permissions of a database file: world-writable (file or directory, unless the
/// directory is sticky) is refused; world-readable is allowed with a warning, since the hashes
/// and last-used addresses are then readable by every local user.
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
    Ok((file & 0o004 != 0).then(|| {
        format!(
            "database {} is readable by every user (mode {:o}); run chmod o-r on it",
            path.display(),
            file & 0o777
        )
    }))
}

#[derive(Clone, Copy)]
enum Purpose {
    Login,
    Admin,
    ReadOnly,
}

impl Store {
    fn open(db: &Database, purpose: Purpose) -> Result<Store, StoreError> {
        match db {
            Database::Sqlite(path) => {
                // Before the open: if the file is replaced in between, the next
                // `still_current` sees a different file and opens again.
                let file_id = file_id(path);
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
                    file_id,
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
                    file_id: None,
                })
            }
            #[cfg(not(feature = "postgres"))]
            Database::Postgres(target) => Err(StoreError::NoPostgres(target.url.clone())),
        }
    }

    /// Opens an existing database for logins. Never creates anything.
    pub fn open_for_login(db: &(impl AsDatabase + ?Sized)) -> Result<Store, StoreError> {
        Self::open(&db.as_database(), Purpose::Login)
    }

    /// Opens the database for the admin CLI, creating it (an SQLite file: mode 0660) and
    /// migrating as needed.
    pub fn open_for_admin(db: &(impl AsDatabase + ?Sized)) -> Result<Store, StoreError> {
        Self::open(&db.as_database(), Purpose::Admin)
    }

    /// Opens an existing database read-only for the CLI's read commands (list, verify).
    pub fn open_read_only(db: &(impl AsDatabase + ?Sized)) -> Result<Store, StoreError> {
        Self::open(&db.as_database(), Purpose::ReadOnly)
    }

    /// May this store, opened for an earlier attempt, serve another one for `db`? Only if
    /// the config still names it, and an SQLite file has neither been replaced (a restored
    /// backup, a new file moved into place) nor become world-writable since; a PostgreSQL
    /// connection only while it is not known to be closed.
    #[must_use]
    pub fn still_current(&self, db: &Database) -> bool {
        if self.database != *db {
            return false;
        }
        match &self.backend {
            Backend::Sqlite(_) => {
                self.file_id.is_some()
                    && file_id(&self.path) == self.file_id
                    && check_permissions(&self.path).is_ok()
            }
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

    fn locked_out(&mut self, user: &str, client: &str, now: i64) -> Result<bool, StoreError> {
        on_backend!(&mut self.backend, b => b.locked_out(user, client, now))
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
    fn locked_out(&mut self, user: &str, client: &str, now: i64) -> Result<bool, StoreError> {
        self.run(|s| s.locked_out(user, client, now))
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
mod tests {
    use super::*;
    use rusqlite::Connection;

    fn new_cred<'a>(user: &'a str, label: &'a str, tag: &'a str) -> NewCredential<'a> {
        NewCredential {
            user,
            label,
            tag,
            hash: "$argon2id$fake",
            created_at: 1_700_000_000,
            expires_at: None,
            services: None,
        }
    }

    #[test]
    fn create_lookup_list_revoke() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        let mut s = Store::open_for_admin(&path).unwrap();
        let services = vec!["imap".to_owned(), "smtp".to_owned()];
        let c = s
            .create(&NewCredential {
                services: Some(&services),
                expires_at: Some(1_800_000_000),
                ..new_cred("alice", "phone", "abcd")
            })
            .unwrap();
        s.create(&new_cred("alice", "laptop", "efgh")).unwrap();
        s.create(&new_cred("bob", "phone", "abcd")).unwrap();

        let mut login = Store::open_for_login(&path).unwrap();
        let cand = login.lookup("alice", "abcd").unwrap().unwrap();
        assert_eq!(cand.id, c.id);
        assert_eq!(cand.services, Some(services));
        assert_eq!(cand.expires_at, Some(1_800_000_000));
        assert!(login.lookup("alice", "zzzz").unwrap().is_none());
        assert!(login.lookup("carol", "abcd").unwrap().is_none());
        login
            .record_use(c.id, 1_700_000_100, Some("192.0.2.1"), Some("imap"))
            .unwrap();

        let all = s.list(None).unwrap();
        assert_eq!(all.len(), 3);
        let alice = s.list(Some("alice")).unwrap();
        assert_eq!(alice.len(), 2);
        assert_eq!(alice[0].last_used_ip.as_deref(), Some("192.0.2.1"));
        assert_eq!(alice[0].last_used_at, Some(1_700_000_100));

        assert!(matches!(
            s.create(&new_cred("alice", "phone", "wxyz")),
            Err(StoreError::DuplicateLabel { .. })
        ));
        assert!(matches!(
            s.create(&new_cred("alice", "tablet", "efgh")),
            Err(StoreError::TagCollision)
        ));

        assert_eq!(s.revoke("alice", "nope").unwrap().len(), 0);
        // Another user's id is not revocable through this user.
        let bob_id = s.list(Some("bob")).unwrap()[0].id;
        assert_eq!(s.revoke("alice", &bob_id.to_string()).unwrap().len(), 0);
        assert_eq!(s.revoke("alice", "phone").unwrap()[0].id, c.id);
        assert!(login.lookup("alice", "abcd").unwrap().is_none());
        let laptop = s.list(Some("alice")).unwrap()[0].id;
        assert_eq!(s.revoke("alice", &laptop.to_string()).unwrap().len(), 1);
        assert_eq!(s.revoke_all("bob").unwrap().len(), 1);
        assert!(s.list(None).unwrap().is_empty());
    }

    #[test]
    fn login_never_creates_and_rejects_foreign_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing.db");
        assert!(matches!(
            Store::open_for_login(&path),
            Err(StoreError::Missing(_))
        ));
        assert!(!path.exists());

        let junk = dir.path().join("junk.db");
        std::fs::write(&junk, b"this is not a database at all, not even close....").unwrap();
        assert!(Store::open_for_login(&junk).is_err());

        let other = dir.path().join("other.db");
        Connection::open(&other)
            .unwrap()
            .execute_batch("CREATE TABLE t(x);")
            .unwrap();
        assert!(matches!(
            Store::open_for_login(&other),
            Err(StoreError::Schema { found: 0, .. })
        ));
    }

    #[test]
    fn new_database_is_private_and_in_wal_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        let s = Store::open_for_admin(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o660, "mode {mode:o}");
        let Backend::Sqlite(b) = &s.backend else {
            panic!("not sqlite")
        };
        let jm: String = b
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(jm, "wal");
        drop(s);
        // Re-opening is idempotent.
        Store::open_for_admin(&path).unwrap();
    }

    #[test]
    fn failures_start_and_end_a_cooldown() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        Store::open_for_admin(&path).unwrap();
        let mut s = Store::open_for_login(&path).unwrap();
        let policy = Lockout {
            per_client: 3,
            per_user: 5,
            window_seconds: 100,
            cooldown_seconds: 50,
        };
        for t in 0..2 {
            s.record_failure("alice", "203.0.113.9", 1000 + t, &policy)
                .unwrap();
        }
        assert!(!s.locked_out("alice", "203.0.113.9", 1002).unwrap());
        s.record_failure("alice", "203.0.113.9", 1002, &policy)
            .unwrap();
        assert!(s.locked_out("alice", "203.0.113.9", 1003).unwrap());
        assert!(!s.locked_out("alice", "198.51.100.1", 1003).unwrap());
        assert!(!s.locked_out("bob", "203.0.113.9", 1003).unwrap());
        assert!(!s.locked_out("alice", "203.0.113.9", 1052).unwrap());
        // Two more from elsewhere reach the per-user limit of 5: every address is locked.
        s.record_failure("alice", "198.51.100.1", 1010, &policy)
            .unwrap();
        s.record_failure("alice", "198.51.100.2", 1011, &policy)
            .unwrap();
        assert!(s.locked_out("alice", "192.0.2.77", 1012).unwrap());
        // Failures spread beyond the window never lock.
        for t in 0..10 {
            s.record_failure("carol", "203.0.113.9", 2000 + t * 60, &policy)
                .unwrap();
        }
        assert!(!s.locked_out("carol", "203.0.113.9", 2600).unwrap());
    }

    #[test]
    fn world_writable_is_refused_world_readable_warned() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        Store::open_for_admin(&path).unwrap();
        let set = |p: &Path, m: u32| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
        };
        assert!(Store::open_for_login(&path).unwrap().warning().is_none());
        set(&path, 0o664);
        let w = Store::open_for_login(&path)
            .unwrap()
            .warning()
            .map(str::to_owned);
        assert!(w.unwrap().contains("readable by every user"));
        set(&path, 0o666);
        assert!(matches!(
            Store::open_for_login(&path),
            Err(StoreError::Insecure(_))
        ));
        set(&path, 0o660);
        set(dir.path(), 0o777);
        assert!(matches!(
            Store::open_for_login(&path),
            Err(StoreError::Insecure(_))
        ));
        set(dir.path(), 0o1777);
        assert!(Store::open_for_login(&path).is_ok());
        set(dir.path(), 0o700);
    }

    #[test]
    fn lazy_store_opens_only_on_use() {
        let dir = tempfile::tempdir().unwrap();
        let mut lazy = LazyStore::new(&dir.path().join("none.db"));
        assert!(matches!(
            lazy.lookup("a", "abcd"),
            Err(StoreError::Missing(_))
        ));
    }
}
