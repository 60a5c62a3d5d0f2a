//! What a login needs from the store: the one credential with a user's lookup tag, the
//! cool-downs and known devices, the exemption, and best-effort records of use, failure and
//! off-campus attempts ([`CredentialSource`]); and [`LazyStore`], which opens the database only
//! when a lookup is needed and lets a long-lived host keep one connection between logins.

use super::{ALL_CLIENTS, AsDatabase, OffCampusAttempt, Purpose, Store, StoreError};
use crate::config::{Database, Enforcement, Lockout};
use std::path::PathBuf;

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
    pub(super) fn from_clients(clients: &[String]) -> LockedOut {
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
