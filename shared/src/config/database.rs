//! Which database the config names (`database`, `database_password_file`): an SQLite file or
//! a PostgreSQL URL, and what can be known about it without opening it. The store opens it
//! (`store.rs`); the URL's rules are in `pgurl.rs`.

use std::fmt;
use std::path::{Path, PathBuf};

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
            crate::pgurl::check(url)
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
            Database::Postgres(t) => crate::pgurl::needs_tls(&t.url),
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
