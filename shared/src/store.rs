//! The SQLite database of app passwords.
//!
//! - The admin CLI creates the file on first write (mode 0660: the group of the Dovecot auth
//!   user records last use and failure counters; SQLite gives `-wal`/`-shm` the same mode) and applies versioned migrations (`PRAGMA user_version`), in WAL mode so that logins
//!   read while the CLI writes.
//! - Front-ends open an **existing** database only ([`Store::open_for_login`]); a missing,
//!   unreadable, corrupt or wrong-version database is an error, which the verification turns
//!   into "temporarily unavailable", never "accepted".
//! - A login runs one indexed query on `(user, tag)`; the last-used update after a success uses
//!   a short busy timeout and is skipped on failure, so it never blocks or fails a login.

use crate::config::Lockout;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Schema version written to `PRAGMA user_version`.
pub const SCHEMA_VERSION: i64 = 1;

/// How long a login waits for a lock (e.g. a WAL checkpoint) before giving up.
const LOGIN_BUSY_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a last-used update may wait: it must never hold up a login.
const RECORD_BUSY_TIMEOUT: Duration = Duration::from_millis(100);
/// How long the CLI waits for other writers.
const ADMIN_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

const MIGRATIONS: &[&str] = &[
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

/// A storage failure. Every variant means "cannot decide", never "accepted".
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database file does not exist (front-ends never create it).
    #[error(
        "database {0} does not exist; create the first app password with `apppw create`, \
         or fix `database` in the config"
    )]
    Missing(PathBuf),
    /// The file exists but could not be opened or read.
    #[error("database {path} cannot be used: {source}{hint}")]
    Open {
        /// The file.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
        /// What to do about it.
        hint: &'static str,
    },
    /// The file is not an apppw database of a version this program understands.
    #[error("database {path} has schema version {found}, this program understands {SCHEMA_VERSION}{hint}", hint = if *found > SCHEMA_VERSION { "; upgrade apppw" } else { "; is it an apppw database?" })]
    Schema {
        /// The file.
        path: PathBuf,
        /// `PRAGMA user_version` of the file.
        found: i64,
    },
    /// A query failed.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
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
        "database {0} or its directory is writable by every user, so anyone could add an app \
         password; refusing to use it (fix with chmod o-w)"
    )]
    Insecure(PathBuf),
    /// The random lookup tag collided with another of the user's credentials.
    #[error("lookup tag collision; try again")]
    TagCollision,
}

const PERMISSION_HINT: &str = " (check that this user can read the file and write its directory: \
     SQLite in WAL mode needs the -wal and -shm files next to it)";

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

/// An open database.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    warning: Option<String>,
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

fn open_error(path: &Path, source: rusqlite::Error) -> StoreError {
    StoreError::Open {
        path: path.to_path_buf(),
        source,
        hint: PERMISSION_HINT,
    }
}

impl Store {
    /// Opens an existing database for logins. Never creates anything.
    pub fn open_for_login(path: &Path) -> Result<Store, StoreError> {
        if !path.exists() {
            return Err(StoreError::Missing(path.to_path_buf()));
        }
        // READ_WRITE without CREATE: SQLite falls back to read-only when the file is not
        // writable, which still allows logins (last-used updates are then skipped).
        let warning = check_permissions(path)?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(|e| open_error(path, e))?;
        conn.busy_timeout(LOGIN_BUSY_TIMEOUT)
            .map_err(|e| open_error(path, e))?;
        let store = Store {
            conn,
            path: path.to_path_buf(),
            warning,
        };
        store.check_schema()?;
        Ok(store)
    }

    /// Opens the database for the admin CLI, creating it (mode 0660) and migrating as needed.
    pub fn open_for_admin(path: &Path) -> Result<Store, StoreError> {
        if !path.exists() {
            create_private_file(path).map_err(|e| StoreError::Open {
                path: path.to_path_buf(),
                source: rusqlite::Error::InvalidPath(PathBuf::from(e.to_string())),
                hint: " (does the directory exist and is it writable by this user?)",
            })?;
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| open_error(path, e))?;
        conn.busy_timeout(ADMIN_BUSY_TIMEOUT)
            .map_err(|e| open_error(path, e))?;
        let mut store = Store {
            conn,
            path: path.to_path_buf(),
            warning: check_permissions(path)?,
        };
        store.migrate()?;
        Ok(store)
    }

    /// Opens an existing database read-only for the CLI's read commands (list, verify).
    pub fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        if !path.exists() {
            return Err(StoreError::Missing(path.to_path_buf()));
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| open_error(path, e))?;
        conn.busy_timeout(LOGIN_BUSY_TIMEOUT)
            .map_err(|e| open_error(path, e))?;
        let store = Store {
            conn,
            path: path.to_path_buf(),
            warning: check_permissions(path)?,
        };
        store.check_schema()?;
        Ok(store)
    }

    /// A problem worth telling the admin about (e.g. a world-readable file), found at open.
    #[must_use]
    pub fn warning(&self) -> Option<&str> {
        self.warning.as_deref()
    }

    /// The database file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn user_version(&self) -> Result<i64, StoreError> {
        self.conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| open_error(&self.path, e))
    }

    fn check_schema(&self) -> Result<(), StoreError> {
        let found = self.user_version()?;
        if found != SCHEMA_VERSION {
            return Err(StoreError::Schema {
                path: self.path.clone(),
                found,
            });
        }
        Ok(())
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let found = self.user_version()?;
        let latest = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
        if found > latest {
            return Err(StoreError::Schema {
                path: self.path.clone(),
                found,
            });
        }
        if found == latest {
            return Ok(());
        }
        // WAL lets logins read while the CLI writes; it is a property of the file.
        self.conn
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| open_error(&self.path, e))?;
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // Re-read inside the write lock: another CLI may have migrated meanwhile.
        let found: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        for (i, sql) in MIGRATIONS
            .iter()
            .enumerate()
            .skip(usize::try_from(found).unwrap_or(0))
        {
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", i64::try_from(i + 1).unwrap_or(0))?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Does `user` have at least one app password (for checkpassword's lookup mode)?
    pub fn user_exists(&self, user: &str) -> Result<bool, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT 1 FROM app_passwords WHERE user = ?1 LIMIT 1")?;
        Ok(stmt.exists(params![user])?)
    }

    /// Inserts a credential in one transaction.
    pub fn create(&mut self, new: &NewCredential<'_>) -> Result<Credential, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let exists: bool = tx
            .prepare("SELECT 1 FROM app_passwords WHERE user = ?1 AND label = ?2")?
            .exists(params![new.user, new.label])?;
        if exists {
            return Err(StoreError::DuplicateLabel {
                user: new.user.to_owned(),
                label: new.label.to_owned(),
            });
        }
        let tag_taken: bool = tx
            .prepare("SELECT 1 FROM app_passwords WHERE user = ?1 AND tag = ?2")?
            .exists(params![new.user, new.tag])?;
        if tag_taken {
            return Err(StoreError::TagCollision);
        }
        let services = new.services.map(|s| s.join(","));
        tx.execute(
            "INSERT INTO app_passwords (user, label, tag, hash, created_at, expires_at, services)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                new.user,
                new.label,
                new.tag,
                new.hash,
                new.created_at,
                new.expires_at,
                services
            ],
        )?;
        let id = tx.last_insert_rowid();
        tx.commit()?;
        Ok(Credential {
            id,
            user: new.user.to_owned(),
            label: new.label.to_owned(),
            created_at: new.created_at,
            expires_at: new.expires_at,
            services: new.services.map(<[String]>::to_vec),
            last_used_at: None,
            last_used_ip: None,
            last_used_service: None,
        })
    }

    /// Lists credentials of one user, or of everyone, ordered by user and creation.
    pub fn list(&self, user: Option<&str>) -> Result<Vec<Credential>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, user, label, created_at, expires_at, services,
                    last_used_at, last_used_ip, last_used_service
             FROM app_passwords
             WHERE ?1 IS NULL OR user = ?1
             ORDER BY user, created_at, id",
        )?;
        let rows = stmt.query_map(params![user], |r| {
            Ok(Credential {
                id: r.get(0)?,
                user: r.get(1)?,
                label: r.get(2)?,
                created_at: r.get(3)?,
                expires_at: r.get(4)?,
                services: split_services(r.get(5)?),
                last_used_at: r.get(6)?,
                last_used_ip: r.get(7)?,
                last_used_service: r.get(8)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Deletes the credential of `user` with this label, or else with this id. Returns what
    /// was deleted (empty if nothing matched).
    pub fn revoke(&mut self, user: &str, label_or_id: &str) -> Result<Vec<Credential>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let by_label: Option<i64> = tx
            .query_row(
                "SELECT id FROM app_passwords WHERE user = ?1 AND label = ?2",
                params![user, label_or_id],
                |r| r.get(0),
            )
            .optional()?;
        let id = match by_label {
            Some(id) => Some(id),
            None => match label_or_id.parse::<i64>() {
                Ok(id) => tx
                    .query_row(
                        "SELECT id FROM app_passwords WHERE user = ?1 AND id = ?2",
                        params![user, id],
                        |r| r.get(0),
                    )
                    .optional()?,
                Err(_) => None,
            },
        };
        let removed = match id {
            Some(id) => delete_where(&tx, "id = ?1", params![id])?,
            None => Vec::new(),
        };
        tx.commit()?;
        Ok(removed)
    }

    /// Deletes every credential of `user`. Returns what was deleted.
    pub fn revoke_all(&mut self, user: &str) -> Result<Vec<Credential>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let removed = delete_where(&tx, "user = ?1", params![user])?;
        tx.commit()?;
        Ok(removed)
    }
}

fn delete_where(
    tx: &rusqlite::Transaction<'_>,
    cond: &str,
    args: &[&dyn rusqlite::ToSql],
) -> Result<Vec<Credential>, StoreError> {
    let mut stmt = tx.prepare(&format!(
        "DELETE FROM app_passwords WHERE {cond}
         RETURNING id, user, label, created_at, expires_at, services,
                   last_used_at, last_used_ip, last_used_service"
    ))?;
    let rows = stmt.query_map(args, |r| {
        Ok(Credential {
            id: r.get(0)?,
            user: r.get(1)?,
            label: r.get(2)?,
            created_at: r.get(3)?,
            expires_at: r.get(4)?,
            services: split_services(r.get(5)?),
            last_used_at: r.get(6)?,
            last_used_ip: r.get(7)?,
            last_used_service: r.get(8)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
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
        let mut stmt = self.conn.prepare_cached(
            "SELECT 1 FROM failures
             WHERE user = ?1 AND client IN (?2, '*') AND locked_until > ?3",
        )?;
        Ok(stmt.exists(params![user, client, now])?)
    }

    fn record_failure(
        &mut self,
        user: &str,
        client: &str,
        now: i64,
        policy: &Lockout,
    ) -> Result<(), StoreError> {
        if self.conn.is_readonly(rusqlite::MAIN_DB).unwrap_or(true) {
            return Ok(());
        }
        self.conn.busy_timeout(RECORD_BUSY_TIMEOUT)?;
        let result = (|| -> Result<(), rusqlite::Error> {
            let tx = self.conn.unchecked_transaction()?;
            for (who, limit) in [(client, policy.per_client), (ALL_CLIENTS, policy.per_user)] {
                if limit == 0 {
                    continue;
                }
                // A window that has passed starts again at 1; reaching the limit starts the
                // cool-down.
                tx.prepare_cached(
                    "INSERT INTO failures (user, client, first_at, count) VALUES (?1, ?2, ?3, 1)
                     ON CONFLICT (user, client) DO UPDATE SET
                       count = CASE WHEN first_at <= ?3 - ?4 THEN 1 ELSE count + 1 END,
                       first_at = CASE WHEN first_at <= ?3 - ?4 THEN ?3 ELSE first_at END",
                )?
                .execute(params![user, who, now, policy.window_seconds])?;
                tx.prepare_cached(
                    "UPDATE failures SET locked_until = ?3 + ?5, count = 0, first_at = ?3
                     WHERE user = ?1 AND client = ?2 AND count >= ?4",
                )?
                .execute(params![
                    user,
                    who,
                    now,
                    limit,
                    policy.cooldown_seconds
                ])?;
            }
            // Forget old counters now and then, so sprayed user names do not pile up.
            let mut dice = [0u8; 1];
            if getrandom::fill(&mut dice).is_ok() && dice[0] < 4 {
                tx.execute(
                    "DELETE FROM failures
                     WHERE first_at <= ?1 AND coalesce(locked_until, 0) <= ?2",
                    params![now - policy.window_seconds, now],
                )?;
            }
            tx.commit()
        })();
        let _ = self.conn.busy_timeout(LOGIN_BUSY_TIMEOUT);
        Ok(result?)
    }

    fn lookup(&mut self, user: &str, tag: &str) -> Result<Option<Candidate>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, label, hash, expires_at, services
             FROM app_passwords WHERE user = ?1 AND tag = ?2",
        )?;
        Ok(stmt
            .query_row(params![user, tag], |r| {
                Ok(Candidate {
                    id: r.get(0)?,
                    label: r.get(1)?,
                    hash: r.get(2)?,
                    expires_at: r.get(3)?,
                    services: split_services(r.get(4)?),
                })
            })
            .optional()?)
    }

    fn record_use(
        &mut self,
        id: i64,
        at: i64,
        ip: Option<&str>,
        service: Option<&str>,
    ) -> Result<(), StoreError> {
        if self.conn.is_readonly(rusqlite::MAIN_DB).unwrap_or(true) {
            return Ok(());
        }
        self.conn.busy_timeout(RECORD_BUSY_TIMEOUT)?;
        let result = self.conn.execute(
            "UPDATE app_passwords
             SET last_used_at = ?2, last_used_ip = ?3, last_used_service = ?4
             WHERE id = ?1",
            params![id, at, ip, service],
        );
        let _ = self.conn.busy_timeout(LOGIN_BUSY_TIMEOUT);
        result?;
        Ok(())
    }
}

/// A [`CredentialSource`] that opens the database only when a lookup is needed, so that a
/// candidate that cannot be an app password costs no I/O at all.
pub struct LazyStore {
    path: PathBuf,
    store: Option<Store>,
}

impl LazyStore {
    /// Will open `path` with [`Store::open_for_login`] on first use.
    #[must_use]
    pub fn new(path: &Path) -> Self {
        LazyStore {
            path: path.to_path_buf(),
            store: None,
        }
    }

    /// The open store, opening it if needed.
    pub fn get(&mut self) -> Result<&mut Store, StoreError> {
        if self.store.is_none() {
            self.store = Some(Store::open_for_login(&self.path)?);
        }
        self.store
            .as_mut()
            .ok_or_else(|| StoreError::Missing(self.path.clone()))
    }
}

impl CredentialSource for LazyStore {
    fn take_warning(&mut self) -> Option<String> {
        self.store.as_mut().and_then(Store::take_warning)
    }
    fn locked_out(&mut self, user: &str, client: &str, now: i64) -> Result<bool, StoreError> {
        self.get()?.locked_out(user, client, now)
    }
    fn record_failure(
        &mut self,
        user: &str,
        client: &str,
        now: i64,
        policy: &Lockout,
    ) -> Result<(), StoreError> {
        self.get()?.record_failure(user, client, now, policy)
    }
    fn lookup(&mut self, user: &str, tag: &str) -> Result<Option<Candidate>, StoreError> {
        self.get()?.lookup(user, tag)
    }
    fn record_use(
        &mut self,
        id: i64,
        at: i64,
        ip: Option<&str>,
        service: Option<&str>,
    ) -> Result<(), StoreError> {
        self.get()?.record_use(id, at, ip, service)
    }
}

fn create_private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::fs::PermissionsExt;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    // Set explicitly: the umask (often 022) would otherwise take the group's write bit.
    file.set_permissions(std::fs::Permissions::from_mode(0o660))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let jm: String = s
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
