//! The staged rollout and day-to-day operations on SQLite: exemptions, the off-campus attempts
//! behind `apppw report`, `apppw stats`, and the filters of `list` and `prune`.

use super::*;

/// The `WHERE` condition of a [`CredentialFilter`] (`?1`: its time, `?2`: a user or NULL).
fn filter_condition(filter: CredentialFilter) -> (&'static str, i64) {
    match filter {
        CredentialFilter::ExpiredAt(t) => (
            "expires_at IS NOT NULL AND expires_at <= ?1 AND (?2 IS NULL OR user = ?2)",
            t,
        ),
        CredentialFilter::UnusedSince(t) => (
            "coalesce(last_used_at, created_at) < ?1 AND (?2 IS NULL OR user = ?2)",
            t,
        ),
    }
}

fn exemption(r: &rusqlite::Row<'_>) -> rusqlite::Result<Exemption> {
    Ok(Exemption {
        user: r.get(0)?,
        expires_at: r.get(1)?,
        reason: r.get(2)?,
        granted_by: r.get(3)?,
        granted_at: r.get(4)?,
    })
}

const EXEMPTION_COLUMNS: &str = "user, expires_at, reason, granted_by, granted_at";

impl Sqlite {
    pub(in crate::store) fn exempt_until(
        &mut self,
        user: &str,
        now: i64,
    ) -> Result<Option<i64>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT expires_at FROM exemptions WHERE user = ?1 AND expires_at > ?2",
        )?;
        Ok(stmt
            .query_row(params![user, now], |r| r.get(0))
            .optional()?)
    }

    /// One write transaction: add the attempt to the user's row of the day (a new row only
    /// while the day has fewer than `report_max_users_per_day`; beyond that, to the day's
    /// overflow totals), and when a row is added, delete the rows past the retention. All
    /// statements use the primary keys, so the cost does not grow with the table.
    pub(in crate::store) fn record_offcampus(
        &mut self,
        a: &OffCampusAttempt<'_>,
        policy: &Enforcement,
    ) -> Result<(), StoreError> {
        if self.conn.is_readonly(rusqlite::MAIN_DB).unwrap_or(true) {
            return Ok(());
        }
        self.conn.busy_timeout(RECORD_BUSY_TIMEOUT)?;
        let day = day_of(a.at);
        let (refused, passed_on) = if a.passed_on { (0, 1) } else { (1, 0) };
        let result = (|| -> Result<(), rusqlite::Error> {
            let tx = self.conn.unchecked_transaction()?;
            let updated = tx
                .prepare_cached(
                    "UPDATE offcampus_attempts
                     SET refused = refused + ?3, passed_on = passed_on + ?4,
                         last_at = ?5, last_ip = ?6, last_service = ?7
                     WHERE day = ?1 AND user = ?2",
                )?
                .execute(params![
                    day, a.user, refused, passed_on, a.at, a.ip, a.service
                ])?;
            if updated == 0 {
                let oldest_kept = day - i64::from(policy.report_retention_days) + 1;
                tx.prepare_cached("DELETE FROM offcampus_attempts WHERE day < ?1")?
                    .execute(params![oldest_kept])?;
                tx.prepare_cached("DELETE FROM offcampus_days WHERE day < ?1")?
                    .execute(params![oldest_kept])?;
                tx.prepare_cached(
                    "INSERT INTO offcampus_days (day, users, overflow_refused, overflow_passed_on)
                     VALUES (?1, 0, 0, 0) ON CONFLICT (day) DO NOTHING",
                )?
                .execute(params![day])?;
                let room = tx
                    .prepare_cached(
                        "UPDATE offcampus_days SET users = users + 1
                         WHERE day = ?1 AND users < ?2",
                    )?
                    .execute(params![day, policy.report_max_users_per_day])?;
                if room == 1 {
                    tx.prepare_cached(
                        "INSERT INTO offcampus_attempts
                           (day, user, refused, passed_on, last_at, last_ip, last_service)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    )?
                    .execute(params![
                        day, a.user, refused, passed_on, a.at, a.ip, a.service
                    ])?;
                } else {
                    tx.prepare_cached(
                        "UPDATE offcampus_days SET overflow_refused = overflow_refused + ?2,
                           overflow_passed_on = overflow_passed_on + ?3
                         WHERE day = ?1",
                    )?
                    .execute(params![day, refused, passed_on])?;
                }
            }
            tx.commit()
        })();
        if result.is_ok() {
            self.keep_wal_short();
        }
        let _ = self.conn.busy_timeout(LOGIN_BUSY_TIMEOUT);
        Ok(result?)
    }

    pub(in crate::store) fn exempt(
        &mut self,
        e: &Exemption,
    ) -> Result<Option<Exemption>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let previous = tx
            .query_row(
                &format!("SELECT {EXEMPTION_COLUMNS} FROM exemptions WHERE user = ?1"),
                params![e.user],
                exemption,
            )
            .optional()?;
        tx.execute(
            "INSERT INTO exemptions (user, expires_at, reason, granted_by, granted_at)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (user) DO UPDATE SET expires_at = excluded.expires_at,
               reason = excluded.reason, granted_by = excluded.granted_by,
               granted_at = excluded.granted_at",
            params![e.user, e.expires_at, e.reason, e.granted_by, e.granted_at],
        )?;
        tx.commit()?;
        Ok(previous)
    }

    pub(in crate::store) fn unexempt(
        &mut self,
        user: &str,
    ) -> Result<Option<Exemption>, StoreError> {
        Ok(self
            .conn
            .query_row(
                &format!("DELETE FROM exemptions WHERE user = ?1 RETURNING {EXEMPTION_COLUMNS}"),
                params![user],
                exemption,
            )
            .optional()?)
    }

    pub(in crate::store) fn exemptions(&self) -> Result<Vec<Exemption>, StoreError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {EXEMPTION_COLUMNS} FROM exemptions ORDER BY user"
        ))?;
        let rows = stmt.query_map([], exemption)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub(in crate::store) fn report(
        &self,
        since_day: i64,
        now: i64,
    ) -> Result<(Vec<ReportRow>, ReportOverflow), StoreError> {
        // The last attempt is in the row of the user's latest day: one primary-key join.
        let mut stmt = self.conn.prepare(
            "SELECT a.user, a.refused, a.passed_on, a.days, o.last_at, o.last_ip, o.last_service,
                    (SELECT count(*) FROM app_passwords c
                     WHERE c.user = a.user AND (c.expires_at IS NULL OR c.expires_at > ?2)),
                    (SELECT e.expires_at FROM exemptions e WHERE e.user = a.user)
             FROM (SELECT user, sum(refused) AS refused, sum(passed_on) AS passed_on,
                          count(*) AS days, max(day) AS last_day
                   FROM offcampus_attempts WHERE day >= ?1 GROUP BY user) a
             JOIN offcampus_attempts o ON o.day = a.last_day AND o.user = a.user
             ORDER BY a.refused + a.passed_on DESC, a.user",
        )?;
        let rows = stmt.query_map(params![since_day, now], |r| {
            Ok(ReportRow {
                user: r.get(0)?,
                refused: r.get(1)?,
                passed_on: r.get(2)?,
                days: r.get(3)?,
                last_at: r.get(4)?,
                last_ip: r.get(5)?,
                last_service: r.get(6)?,
                app_passwords: r.get(7)?,
                exempt_until: r.get(8)?,
            })
        })?;
        let rows = rows.collect::<Result<_, _>>()?;
        let overflow = self.conn.query_row(
            "SELECT coalesce(sum(overflow_refused), 0), coalesce(sum(overflow_passed_on), 0)
             FROM offcampus_days WHERE day >= ?1",
            params![since_day],
            |r| {
                Ok(ReportOverflow {
                    refused: r.get(0)?,
                    passed_on: r.get(1)?,
                })
            },
        )?;
        Ok((rows, overflow))
    }

    pub(in crate::store) fn stats(&self, now: i64) -> Result<Stats, StoreError> {
        let (active, expired, users, used_last_day) = self.conn.query_row(
            "SELECT coalesce(sum(expires_at IS NULL OR expires_at > ?1), 0),
                    coalesce(sum(expires_at IS NOT NULL AND expires_at <= ?1), 0),
                    count(DISTINCT user),
                    coalesce(sum(last_used_at > ?1 - 86400), 0)
             FROM app_passwords",
            params![now],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )?;
        let (exemptions_active, exemptions_expired) = self.conn.query_row(
            "SELECT coalesce(sum(expires_at > ?1), 0), coalesce(sum(expires_at <= ?1), 0)
             FROM exemptions",
            params![now],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let day = |d: i64| -> Result<DayCounts, rusqlite::Error> {
            self.conn.query_row(
                "SELECT coalesce(sum(refused), 0)
                          + (SELECT coalesce(sum(overflow_refused), 0) FROM offcampus_days
                             WHERE day = ?1),
                        coalesce(sum(passed_on), 0)
                          + (SELECT coalesce(sum(overflow_passed_on), 0) FROM offcampus_days
                             WHERE day = ?1),
                        count(*)
                 FROM offcampus_attempts WHERE day = ?1",
                params![d],
                |r| {
                    Ok(DayCounts {
                        refused: r.get(0)?,
                        passed_on: r.get(1)?,
                        users: r.get(2)?,
                    })
                },
            )
        };
        let today = day_of(now);
        Ok(Stats {
            active,
            expired,
            users,
            used_last_day,
            exemptions_active,
            exemptions_expired,
            today: day(today)?,
            yesterday: day(today - 1)?,
        })
    }

    pub(in crate::store) fn matching(
        &self,
        filter: CredentialFilter,
        user: Option<&str>,
    ) -> Result<Vec<Credential>, StoreError> {
        let (condition, at) = filter_condition(filter);
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {CREDENTIAL_COLUMNS} FROM app_passwords WHERE {condition}
             ORDER BY user, created_at, id"
        ))?;
        let rows = stmt.query_map(params![at, user], credential)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub(in crate::store) fn prune(
        &mut self,
        filter: CredentialFilter,
        user: Option<&str>,
    ) -> Result<Vec<Credential>, StoreError> {
        let (condition, at) = filter_condition(filter);
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut removed = delete_where(&tx, condition, params![at, user])?;
        tx.commit()?;
        removed.sort_by(|a, b| (&a.user, a.created_at, a.id).cmp(&(&b.user, b.created_at, b.id)));
        Ok(removed)
    }

    /// Takes the write lock and gives it back without writing: proves that this connection
    /// could record (file and directory writable, `-wal`/`-shm` usable).
    pub(in crate::store) fn can_record(&mut self) -> Result<bool, StoreError> {
        if self.conn.is_readonly(rusqlite::MAIN_DB).unwrap_or(true) {
            return Ok(false);
        }
        self.conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK;")?;
        Ok(true)
    }
}
