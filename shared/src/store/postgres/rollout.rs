//! The staged rollout and day-to-day operations on PostgreSQL: exemptions, the off-campus
//! attempts behind `apppw report`, `apppw stats`, and the filters of `list` and `prune`.

use super::*;

/// The `WHERE` condition of a [`CredentialFilter`] (`$1`: its time, `$2`: a user or NULL).
fn filter_condition(filter: CredentialFilter) -> (&'static str, i64) {
    match filter {
        CredentialFilter::ExpiredAt(t) => (
            r#"expires_at IS NOT NULL AND expires_at <= $1 AND ($2::text IS NULL OR "user" = $2)"#,
            t,
        ),
        CredentialFilter::UnusedSince(t) => (
            r#"coalesce(last_used_at, created_at) < $1 AND ($2::text IS NULL OR "user" = $2)"#,
            t,
        ),
    }
}

const EXEMPTION_COLUMNS: &str = r#""user", expires_at, reason, granted_by, granted_at"#;

fn exemption(r: &Row) -> Result<Exemption, postgres::Error> {
    Ok(Exemption {
        user: r.try_get(0)?,
        expires_at: r.try_get(1)?,
        reason: r.try_get(2)?,
        granted_by: r.try_get(3)?,
        granted_at: r.try_get(4)?,
    })
}

impl Postgres {
    pub(in crate::store) fn exempt_until(
        &mut self,
        user: &str,
        now: i64,
    ) -> Result<Option<i64>, StoreError> {
        let row = self.client()?.query_typed_opt(
            r#"SELECT expires_at FROM exemptions WHERE "user" = $1 AND expires_at > $2"#,
            &[(&user, Type::TEXT), (&now, Type::INT8)],
        )?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// As in SQLite: one short transaction on primary keys; see `Sqlite::record_offcampus`.
    pub(in crate::store) fn record_offcampus(
        &mut self,
        a: &OffCampusAttempt<'_>,
        policy: &Enforcement,
    ) -> Result<(), StoreError> {
        let day = day_of(a.at);
        let (refused, passed_on): (i64, i64) = if a.passed_on { (0, 1) } else { (1, 0) };
        let oldest_kept = day - i64::from(policy.report_retention_days) + 1;
        let cap = i64::from(policy.report_max_users_per_day);
        self.quickly(|tx| {
            let updated = tx.execute(
                r#"UPDATE offcampus_attempts
                   SET refused = refused + $3, passed_on = passed_on + $4,
                       last_at = $5, last_ip = $6, last_service = $7
                   WHERE day = $1 AND "user" = $2"#,
                &[
                    &day, &a.user, &refused, &passed_on, &a.at, &a.ip, &a.service,
                ],
            )?;
            if updated > 0 {
                return Ok(());
            }
            tx.execute(
                "DELETE FROM offcampus_attempts WHERE day < $1",
                &[&oldest_kept],
            )?;
            tx.execute("DELETE FROM offcampus_days WHERE day < $1", &[&oldest_kept])?;
            tx.execute(
                "INSERT INTO offcampus_days (day, users, overflow_refused, overflow_passed_on)
                 VALUES ($1, 0, 0, 0) ON CONFLICT (day) DO NOTHING",
                &[&day],
            )?;
            let room = tx.execute(
                "UPDATE offcampus_days SET users = users + 1 WHERE day = $1 AND users < $2",
                &[&day, &cap],
            )?;
            if room == 1 {
                // Another login may have added the row meanwhile: then add to it.
                tx.execute(
                    r#"INSERT INTO offcampus_attempts AS o
                         (day, "user", refused, passed_on, last_at, last_ip, last_service)
                       VALUES ($1, $2, $3, $4, $5, $6, $7)
                       ON CONFLICT (day, "user") DO UPDATE SET
                         refused = o.refused + excluded.refused,
                         passed_on = o.passed_on + excluded.passed_on,
                         last_at = excluded.last_at, last_ip = excluded.last_ip,
                         last_service = excluded.last_service"#,
                    &[
                        &day, &a.user, &refused, &passed_on, &a.at, &a.ip, &a.service,
                    ],
                )?;
            } else {
                tx.execute(
                    "UPDATE offcampus_days SET overflow_refused = overflow_refused + $2,
                       overflow_passed_on = overflow_passed_on + $3
                     WHERE day = $1",
                    &[&day, &refused, &passed_on],
                )?;
            }
            Ok(())
        })
    }

    pub(in crate::store) fn exempt(
        &mut self,
        e: &Exemption,
    ) -> Result<Option<Exemption>, StoreError> {
        let mut client = self.client()?;
        let mut tx = client.transaction()?;
        let previous = tx
            .query_opt(
                &format!(
                    r#"SELECT {EXEMPTION_COLUMNS} FROM exemptions WHERE "user" = $1 FOR UPDATE"#
                ),
                &[&e.user],
            )?
            .map(|r| exemption(&r))
            .transpose()?;
        tx.execute(
            r#"INSERT INTO exemptions ("user", expires_at, reason, granted_by, granted_at)
               VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT ("user") DO UPDATE SET expires_at = excluded.expires_at,
                 reason = excluded.reason, granted_by = excluded.granted_by,
                 granted_at = excluded.granted_at"#,
            &[
                &e.user,
                &e.expires_at,
                &e.reason,
                &e.granted_by,
                &e.granted_at,
            ],
        )?;
        tx.commit()?;
        Ok(previous)
    }

    pub(in crate::store) fn unexempt(
        &mut self,
        user: &str,
    ) -> Result<Option<Exemption>, StoreError> {
        let row = self.client()?.query_opt(
            &format!(r#"DELETE FROM exemptions WHERE "user" = $1 RETURNING {EXEMPTION_COLUMNS}"#),
            &[&user],
        )?;
        Ok(row.map(|r| exemption(&r)).transpose()?)
    }

    pub(in crate::store) fn exemptions(&self) -> Result<Vec<Exemption>, StoreError> {
        let rows = self.client()?.query(
            &format!(r#"SELECT {EXEMPTION_COLUMNS} FROM exemptions ORDER BY "user""#),
            &[],
        )?;
        Ok(rows.iter().map(exemption).collect::<Result<_, _>>()?)
    }

    pub(in crate::store) fn report(
        &self,
        since_day: i64,
        now: i64,
    ) -> Result<(Vec<ReportRow>, ReportOverflow), StoreError> {
        let mut client = self.client()?;
        let rows = client.query(
            r#"SELECT a."user", a.refused, a.passed_on, a.days, o.last_at, o.last_ip,
                      o.last_service,
                      (SELECT count(*) FROM app_passwords c
                       WHERE c."user" = a."user" AND (c.expires_at IS NULL OR c.expires_at > $2)),
                      (SELECT e.expires_at FROM exemptions e WHERE e."user" = a."user")
               FROM (SELECT "user", sum(refused)::bigint AS refused,
                            sum(passed_on)::bigint AS passed_on,
                            count(*) AS days, max(day) AS last_day
                     FROM offcampus_attempts WHERE day >= $1 GROUP BY "user") a
               JOIN offcampus_attempts o ON o.day = a.last_day AND o."user" = a."user"
               ORDER BY a.refused + a.passed_on DESC, a."user""#,
            &[&since_day, &now],
        )?;
        let rows = rows
            .iter()
            .map(|r| {
                Ok(ReportRow {
                    user: r.try_get(0)?,
                    refused: r.try_get(1)?,
                    passed_on: r.try_get(2)?,
                    days: r.try_get(3)?,
                    last_at: r.try_get(4)?,
                    last_ip: r.try_get(5)?,
                    last_service: r.try_get(6)?,
                    app_passwords: r.try_get(7)?,
                    exempt_until: r.try_get(8)?,
                })
            })
            .collect::<Result<Vec<_>, postgres::Error>>()?;
        let o = client.query_one(
            "SELECT coalesce(sum(overflow_refused), 0)::bigint,
                    coalesce(sum(overflow_passed_on), 0)::bigint
             FROM offcampus_days WHERE day >= $1",
            &[&since_day],
        )?;
        Ok((
            rows,
            ReportOverflow {
                refused: o.try_get(0)?,
                passed_on: o.try_get(1)?,
            },
        ))
    }

    pub(in crate::store) fn stats(&self, now: i64) -> Result<Stats, StoreError> {
        let mut client = self.client()?;
        let c = client.query_one(
            r#"SELECT count(*) FILTER (WHERE expires_at IS NULL OR expires_at > $1),
                      count(*) FILTER (WHERE expires_at IS NOT NULL AND expires_at <= $1),
                      count(DISTINCT "user"),
                      count(*) FILTER (WHERE last_used_at > $1 - 86400)
               FROM app_passwords"#,
            &[&now],
        )?;
        let e = client.query_one(
            "SELECT count(*) FILTER (WHERE expires_at > $1),
                    count(*) FILTER (WHERE expires_at <= $1)
             FROM exemptions",
            &[&now],
        )?;
        let mut day = |d: i64| -> Result<DayCounts, postgres::Error> {
            let r = client.query_one(
                "SELECT coalesce(sum(refused), 0)::bigint
                          + (SELECT coalesce(sum(overflow_refused), 0)::bigint
                             FROM offcampus_days WHERE day = $1),
                        coalesce(sum(passed_on), 0)::bigint
                          + (SELECT coalesce(sum(overflow_passed_on), 0)::bigint
                             FROM offcampus_days WHERE day = $1),
                        count(*)
                 FROM offcampus_attempts WHERE day = $1",
                &[&d],
            )?;
            Ok(DayCounts {
                refused: r.try_get(0)?,
                passed_on: r.try_get(1)?,
                users: r.try_get(2)?,
            })
        };
        let today = day_of(now);
        let (today, yesterday) = (day(today)?, day(today - 1)?);
        Ok(Stats {
            active: c.try_get(0)?,
            expired: c.try_get(1)?,
            users: c.try_get(2)?,
            used_last_day: c.try_get(3)?,
            exemptions_active: e.try_get(0)?,
            exemptions_expired: e.try_get(1)?,
            today,
            yesterday,
        })
    }

    pub(in crate::store) fn matching(
        &self,
        filter: CredentialFilter,
        user: Option<&str>,
    ) -> Result<Vec<Credential>, StoreError> {
        let (condition, at) = filter_condition(filter);
        let rows = self.client()?.query(
            &format!(
                r#"SELECT {CREDENTIAL_COLUMNS} FROM app_passwords WHERE {condition}
                   ORDER BY "user", created_at, id"#
            ),
            &[&at, &user],
        )?;
        credentials(&rows)
    }

    pub(in crate::store) fn prune(
        &mut self,
        filter: CredentialFilter,
        user: Option<&str>,
    ) -> Result<Vec<Credential>, StoreError> {
        let (condition, at) = filter_condition(filter);
        let rows = self.client()?.query(
            &format!("DELETE FROM app_passwords WHERE {condition} RETURNING {CREDENTIAL_COLUMNS}"),
            &[&at, &user],
        )?;
        let mut removed = credentials(&rows)?;
        removed.sort_by(|a, b| (&a.user, a.created_at, a.id).cmp(&(&b.user, b.created_at, b.id)));
        Ok(removed)
    }

    /// Whether this role may write what a login writes (the grants of docs/postgresql.md).
    pub(in crate::store) fn can_record(&mut self) -> Result<bool, StoreError> {
        let row = self.client()?.query_one(
            // A list of privileges asks for any one of them: name each.
            "SELECT has_column_privilege('app_passwords', 'last_used_at', 'UPDATE')
                AND has_table_privilege('failures', 'INSERT')
                AND has_table_privilege('failures', 'UPDATE')
                AND has_table_privilege('failures', 'DELETE')
                AND has_table_privilege('offcampus_attempts', 'INSERT')
                AND has_table_privilege('offcampus_attempts', 'UPDATE')
                AND has_table_privilege('offcampus_attempts', 'DELETE')
                AND has_table_privilege('offcampus_days', 'INSERT')
                AND has_table_privilege('offcampus_days', 'UPDATE')
                AND has_table_privilege('offcampus_days', 'DELETE')
                AND has_table_privilege('known_devices', 'INSERT')
                AND has_table_privilege('known_devices', 'UPDATE')
                AND has_table_privilege('known_devices', 'DELETE')
                AND NOT pg_is_in_recovery()",
            &[],
        )?;
        Ok(row.try_get(0)?)
    }
}
