//! Why the store could not answer: every variant means "cannot decide", never "accepted", and
//! its message tells the admin what to do.

use super::SCHEMA_VERSION;
use crate::trust::TrustError;
use std::path::PathBuf;

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
    /// ([`super::enable_postgres_tls`]).
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
