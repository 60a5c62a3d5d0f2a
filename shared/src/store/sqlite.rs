//! The SQLite backend: one file, created by the admin CLI (mode 0660: the group of the Dovecot
//! auth user records last use and failure counters; SQLite gives `-wal`/`-shm` the same mode),
//! versioned with `PRAGMA user_version`, in WAL mode so that logins read while the CLI writes.
//!
//! Every connection is opened with `SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE`, so that no connection
//! deletes `-wal` and `-shm` when it closes: they stay with the owner who created them (the
//! CLI, as root; SQLite running as root gives them the database file's owner). A login whose
//! user is neither root nor the database's owner refuses to create them itself (see
//! [`wal_files_needed`]): files it created would be refused by root's PAM module. The CLI
//! checkpoints and empties `-wal` when it is done instead, so that the main file alone is
//! complete (a copy of it is a backup).

use super::{
    ALL_CLIENTS, Candidate, Credential, CredentialFilter, DayCounts, Exemption,
    KNOWN_DEVICE_SECONDS, LockedOut, MIGRATIONS_SQLITE, NewCredential, OffCampusAttempt,
    ReportOverflow, ReportRow, SCHEMA_VERSION, Stats, StoreError, StoredCredential,
    check_permissions, day_of, split_services, world_readable_warning,
};
use crate::config::{Enforcement, Lockout};
use crate::trust::{self, CheckError, Identity, TrustError, TrustedDatabase};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod rollout;

/// How long a login waits for a lock (e.g. a WAL checkpoint) before giving up.
const LOGIN_BUSY_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a last-used update may wait: it must never hold up a login.
const RECORD_BUSY_TIMEOUT: Duration = Duration::from_millis(100);
/// Size of `-wal` past which a login's write empties it (about 64 frames of 4 KiB pages).
const LOGIN_WAL_MAX_BYTES: u64 = 64 * (4096 + 24);
/// How long the CLI waits for other writers.
const ADMIN_BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the CLI's final checkpoint waits for readers.
const CHECKPOINT_BUSY_TIMEOUT: Duration = Duration::from_secs(2);

const PERMISSION_HINT: &str = " (check that this user can read the file and write its directory: \
     SQLite in WAL mode needs the -wal and -shm files next to it)";

pub(super) struct Sqlite {
    pub(super) conn: Connection,
    path: PathBuf,
    /// What the trust check of a login connection found at open ([`Sqlite::still_trusted`]).
    checked: Option<TrustedDatabase>,
    /// Checkpoint when dropped, if anything was written (connections of the CLI).
    checkpoint_on_drop: bool,
    /// A migration was applied (DDL, which `total_changes` does not count).
    migrated: bool,
}

impl Drop for Sqlite {
    fn drop(&mut self) {
        if self.checkpoint_on_drop && (self.migrated || self.conn.total_changes() > 0) {
            // TRUNCATE: copies every page into the main file and empties -wal (the file stays,
            // with its owner), so that the main file alone is complete and no old page in -wal
            // can outlive a file put in its place. Waits a little for readers; best effort.
            let _ = self.conn.busy_timeout(CHECKPOINT_BUSY_TIMEOUT);
            let _ = self
                .conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        }
    }
}

fn open_error(path: &Path, source: rusqlite::Error) -> StoreError {
    StoreError::Open {
        path: path.to_path_buf(),
        source,
        hint: PERMISSION_HINT,
    }
}

fn check_error(path: &Path, e: CheckError) -> StoreError {
    match e {
        e if e.is_not_found() => StoreError::Missing(path.to_path_buf()),
        CheckError::Untrusted(t) => StoreError::Untrusted(t),
        CheckError::Io { path, source } => StoreError::Check { path, source },
    }
}

/// The trust check of a database before it is opened: the file, its directories, its
/// `-wal`, `-shm` and `-journal` ([`trust::check_sqlite`]), and [`wal_files_needed`].
fn check_trust(path: &Path, who: &Identity) -> Result<TrustedDatabase, StoreError> {
    let checked = trust::check_sqlite(path, who).map_err(|e| check_error(path, e))?;
    wal_files_needed(
        &checked.path,
        checked.wal,
        checked.owner,
        checked.sidecars,
        who,
    )?;
    Ok(checked)
}

/// A WAL database without `-wal`/`-shm` (made by an older apppw, or after they were removed)
/// would get them created by this process, owned by its user. If that is neither root nor the
/// database's owner, root's PAM module would then refuse them: refuse now, with the fix.
fn wal_files_needed(
    path: &Path,
    wal: bool,
    owner: u32,
    sidecars: [bool; 3],
    who: &Identity,
) -> Result<(), StoreError> {
    if !wal || (sidecars[0] && sidecars[1]) || who.euid() == 0 || who.euid() == owner {
        return Ok(());
    }
    let missing = if sidecars[0] { "-shm" } else { "-wal" };
    Err(StoreError::Untrusted(TrustError {
        path: trust::with_suffix(path, missing),
        problem: format!(
            "does not exist, and this program (uid {}) would create it as its own, which a \
             login running as root then refuses",
            who.euid()
        ),
        fix: "run `apppw list` once as root: it creates the -wal and -shm files with the \
              database's owner, and they are kept from then on"
            .into(),
    }))
}

/// [`wal_files_needed`] for the CLI and the web page, which do not refuse a database that
/// fails the rest of the trust rule (they warn about it), but must not create files that make
/// logins refuse it either.
fn refuse_to_create_wal_files(path: &Path) -> Result<(), StoreError> {
    let Ok(mut file) = std::fs::File::open(path) else {
        // SQLite reports it.
        return Ok(());
    };
    let (Ok(meta), Ok(wal)) = (file.metadata(), trust::is_wal_database(&mut file)) else {
        return Ok(());
    };
    let exists = |suffix| trust::with_suffix(path, suffix).exists();
    let sidecars = [exists("-wal"), exists("-shm"), exists("-journal")];
    wal_files_needed(path, wal, meta.uid(), sidecars, &Identity::of_process())
}

const CREDENTIAL_COLUMNS: &str = "id, user, label, created_at, expires_at, services, \
     last_used_at, last_used_ip, last_used_service";

fn credential(r: &rusqlite::Row<'_>) -> rusqlite::Result<Credential> {
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
}

/// Keeps `-wal` and `-shm` when the connection closes (see the module documentation).
fn keep_wal_files(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
        true,
    )
    .map(|_| ())
    .map_err(|e| open_error(path, e))
}

/// What the admin CLI is told about a database logins would refuse.
fn login_warning(path: &Path) -> Option<String> {
    match check_trust(path, &Identity::of_process()) {
        Ok(_) | Err(StoreError::Missing(_)) => None,
        Err(e) => Some(format!("logins will refuse this database: {e}")),
    }
}

impl Sqlite {
    /// Opens an existing database for logins. Never creates anything; refuses a database
    /// that fails [`crate::trust`].
    pub(super) fn open_for_login(path: &Path) -> Result<(Sqlite, Option<String>), StoreError> {
        let who = Identity::of_process();
        let checked = check_trust(path, &who)?;
        // The checked path has no symbolic links left; NOFOLLOW makes SQLite refuse one that
        // a trusted user put in its place meanwhile. READ_WRITE without CREATE: SQLite falls
        // back to read-only when the file is not writable, which still allows logins (last-used
        // updates are then skipped).
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_NOFOLLOW;
        let conn =
            Connection::open_with_flags(&checked.path, flags).map_err(|e| open_error(path, e))?;
        conn.busy_timeout(LOGIN_BUSY_TIMEOUT)
            .map_err(|e| open_error(path, e))?;
        keep_wal_files(&conn, path)?;
        let mut store = Sqlite {
            conn,
            path: path.to_path_buf(),
            checked: None,
            checkpoint_on_drop: false,
            migrated: false,
        };
        store.check_schema()?;
        // Reading the schema opened (or, as root or the owner, created) -wal and -shm: check
        // what SQLite actually uses, and that the file is still the one judged.
        let now = check_trust(path, &who)?;
        if now.id != checked.id {
            return Err(StoreError::Untrusted(TrustError {
                path: checked.path,
                problem: "was replaced while it was being opened".into(),
                fix: "try again; if it persists, find out who replaces it".into(),
            }));
        }
        // A login only writes last-use times and failure counters. In WAL mode, NORMAL skips
        // the fsync of each commit (a power cut may lose the newest of those, never a
        // credential: the CLI keeps FULL). Set after the schema check: any statement first
        // reads the schema, and under a lock that would wait out the busy timeout a second
        // time.
        let _ = store.conn.pragma_update(None, "synchronous", "NORMAL");
        let warning = std::fs::metadata(&now.path)
            .ok()
            .and_then(|m| world_readable_warning(path, m.mode()));
        store.checked = Some(now);
        Ok((store, warning))
    }

    /// Does the database a login connection was opened on still pass [`crate::trust`], and is
    /// it still the same file (not replaced by a restored backup, say)?
    pub(super) fn still_trusted(&self) -> bool {
        let Some(checked) = &self.checked else {
            return false;
        };
        check_trust(&self.path, &Identity::of_process())
            .is_ok_and(|now| now.id == checked.id && now.path == checked.path)
    }

    /// Opens the database for the admin CLI, creating it (mode 0660) and migrating as needed.
    pub(super) fn open_for_admin(path: &Path) -> Result<(Sqlite, Option<String>), StoreError> {
        if !path.exists() {
            create_private_file(path).map_err(|e| StoreError::Open {
                path: path.to_path_buf(),
                source: rusqlite::Error::InvalidPath(PathBuf::from(e.to_string())),
                hint: " (does the directory exist and is it writable by this user?)",
            })?;
        } else {
            refuse_to_create_wal_files(path)?;
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| open_error(path, e))?;
        conn.busy_timeout(ADMIN_BUSY_TIMEOUT)
            .map_err(|e| open_error(path, e))?;
        keep_wal_files(&conn, path)?;
        let warning = check_permissions(path)?;
        let mut store = Sqlite {
            conn,
            path: path.to_path_buf(),
            checked: None,
            checkpoint_on_drop: true,
            migrated: false,
        };
        store.migrate()?;
        // The first read in WAL mode creates -wal and -shm; kept from now on.
        store.user_version()?;
        Ok((store, super::join_warnings(warning, login_warning(path))))
    }

    /// Opens an existing database read-only for the CLI's read commands (list, verify).
    pub(super) fn open_read_only(path: &Path) -> Result<(Sqlite, Option<String>), StoreError> {
        if !path.exists() {
            return Err(StoreError::Missing(path.to_path_buf()));
        }
        refuse_to_create_wal_files(path)?;
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| open_error(path, e))?;
        conn.busy_timeout(LOGIN_BUSY_TIMEOUT)
            .map_err(|e| open_error(path, e))?;
        keep_wal_files(&conn, path)?;
        let warning = check_permissions(path)?;
        let store = Sqlite {
            conn,
            path: path.to_path_buf(),
            checked: None,
            checkpoint_on_drop: false,
            migrated: false,
        };
        store.check_schema()?;
        Ok((store, super::join_warnings(warning, login_warning(path))))
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
        let latest = i64::try_from(MIGRATIONS_SQLITE.len()).unwrap_or(i64::MAX);
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
        for (i, sql) in MIGRATIONS_SQLITE
            .iter()
            .enumerate()
            .skip(usize::try_from(found).unwrap_or(0))
        {
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", i64::try_from(i + 1).unwrap_or(0))?;
        }
        tx.commit()?;
        self.migrated = true;
        Ok(())
    }

    pub(super) fn users(&self) -> Result<Vec<(String, usize)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT user, count(*) FROM app_passwords GROUP BY user ORDER BY user")?;
        let rows = stmt.query_map([], |r| {
            let n: i64 = r.get(1)?;
            Ok((r.get(0)?, usize::try_from(n).unwrap_or(0)))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub(super) fn user_exists(&self, user: &str) -> Result<bool, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT 1 FROM app_passwords WHERE user = ?1 LIMIT 1")?;
        Ok(stmt.exists(params![user])?)
    }

    pub(super) fn create(&mut self, new: &NewCredential<'_>) -> Result<Credential, StoreError> {
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
        Ok(new.created(id))
    }

    pub(super) fn list(&self, user: Option<&str>) -> Result<Vec<Credential>, StoreError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {CREDENTIAL_COLUMNS} FROM app_passwords
             WHERE ?1 IS NULL OR user = ?1
             ORDER BY user, created_at, id"
        ))?;
        let rows = stmt.query_map(params![user], credential)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub(super) fn export(&self) -> Result<Vec<StoredCredential>, StoreError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {CREDENTIAL_COLUMNS}, tag, hash FROM app_passwords ORDER BY id"
        ))?;
        let rows = stmt.query_map([], |r| {
            Ok(StoredCredential {
                credential: credential(r)?,
                tag: r.get(9)?,
                hash: r.get(10)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub(super) fn revoke(
        &mut self,
        user: &str,
        label_or_id: &str,
    ) -> Result<Vec<Credential>, StoreError> {
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

    pub(super) fn revoke_all(&mut self, user: &str) -> Result<Vec<Credential>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let removed = delete_where(&tx, "user = ?1", params![user])?;
        tx.commit()?;
        Ok(removed)
    }

    pub(super) fn locked_out(
        &mut self,
        user: &str,
        client: &str,
        now: i64,
    ) -> Result<LockedOut, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT client FROM failures
             WHERE user = ?1 AND client IN (?2, '*') AND locked_until > ?3",
        )?;
        let clients = stmt
            .query_map(params![user, client, now], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(LockedOut::from_clients(&clients))
    }

    pub(super) fn known_device(
        &mut self,
        user: &str,
        device: &str,
        since: i64,
    ) -> Result<bool, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT 1 FROM known_devices WHERE user = ?1 AND device = ?2 AND last_success >= ?3",
        )?;
        Ok(stmt.exists(params![user, device, since])?)
    }

    /// Empties `-wal` once it has grown past [`LOGIN_WAL_MAX_BYTES`]; called after a login's
    /// write, with the short busy timeout of those writes still set.
    ///
    /// Why: a process that opens the database while no other has it open rebuilds SQLite's WAL
    /// index by reading all of `-wal` (about 0.1 ms per 100 frames), and that rebuild also
    /// forgets how far earlier checkpoints got, so SQLite's own automatic checkpoint never
    /// restarts the file: with a process per login (checkpassword), `-wal` grew by a frame per
    /// writing login until the next admin command, and every login read all of it. A
    /// `TRUNCATE` checkpoint copies the frames into the main file and empties `-wal` (the file
    /// stays, with its owner). Best effort: if readers keep it busy, a later login does it.
    pub(in crate::store) fn keep_wal_short(&self) {
        let Some(checked) = &self.checked else {
            return;
        };
        let mut wal = checked.path.clone().into_os_string();
        wal.push("-wal");
        if std::fs::metadata(&wal).is_ok_and(|m| m.len() > LOGIN_WAL_MAX_BYTES) {
            let _ = self
                .conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        }
    }

    pub(super) fn record_failure(
        &mut self,
        user: &str,
        client: &str,
        now: i64,
        policy: &Lockout,
    ) -> Result<(), StoreError> {
        if self.conn.is_readonly(rusqlite::MAIN_DB).unwrap_or(true) {
            return Err(StoreError::ReadOnly(self.path.clone()));
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
            if super::sweep_now() {
                tx.execute(
                    "DELETE FROM failures
                     WHERE first_at <= ?1 AND coalesce(locked_until, 0) <= ?2",
                    params![now - policy.window_seconds, now],
                )?;
            }
            tx.commit()
        })();
        if result.is_ok() {
            self.keep_wal_short();
        }
        let _ = self.conn.busy_timeout(LOGIN_BUSY_TIMEOUT);
        Ok(result?)
    }

    pub(super) fn lookup(
        &mut self,
        user: &str,
        tag: &str,
    ) -> Result<Option<Candidate>, StoreError> {
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

    pub(super) fn record_use(
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
        let device = crate::network::device_key(ip);
        let result = (|| -> Result<(), rusqlite::Error> {
            let tx = self.conn.unchecked_transaction()?;
            tx.prepare_cached(
                "UPDATE app_passwords
                 SET last_used_at = ?2, last_used_ip = ?3, last_used_service = ?4
                 WHERE id = ?1",
            )?
            .execute(params![id, at, ip, service])?;
            if let Some(device) = &device {
                tx.prepare_cached(
                    "INSERT INTO known_devices (user, device, last_success)
                     SELECT user, ?2, ?3 FROM app_passwords WHERE id = ?1
                     ON CONFLICT (user, device) DO UPDATE SET last_success = excluded.last_success",
                )?
                .execute(params![id, device, at])?;
            }
            // Forget devices not seen for the whole window now and then.
            if super::sweep_now() {
                tx.execute(
                    "DELETE FROM known_devices WHERE last_success < ?1",
                    params![at - KNOWN_DEVICE_SECONDS],
                )?;
            }
            tx.commit()
        })();
        if result.is_ok() {
            self.keep_wal_short();
        }
        let _ = self.conn.busy_timeout(LOGIN_BUSY_TIMEOUT);
        Ok(result?)
    }
}

fn delete_where(
    tx: &rusqlite::Transaction<'_>,
    cond: &str,
    args: &[&dyn rusqlite::ToSql],
) -> Result<Vec<Credential>, StoreError> {
    let mut stmt = tx.prepare(&format!(
        "DELETE FROM app_passwords WHERE {cond} RETURNING {CREDENTIAL_COLUMNS}"
    ))?;
    let rows = stmt.query_map(args, credential)?;
    Ok(rows.collect::<Result<_, _>>()?)
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
