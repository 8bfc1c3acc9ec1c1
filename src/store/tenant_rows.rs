//! An organisation's rows in every table, found by walking the schema (never a hand-kept list of
//! tables, which the next migration would outgrow): every table with an `org_id` column, in an
//! order where a table comes before those it references. Purging deletes in that order, in
//! small batches, each its own short transaction.

use std::collections::{BTreeMap, BTreeSet};

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};
use uuid::Uuid;

use super::{Backend, Db, column, statement};

/// Rows deleted per transaction: short enough that no lock is held for long.
pub const PURGE_BATCH: u64 = 500;

impl Db {
    /// The tenant tables (an `org_id` column), each before every table it references, so
    /// deleting in this order never trips a foreign key. `organizations` itself is not one.
    pub async fn tenant_tables(&self) -> Result<Vec<String>, DbErr> {
        self.tables_with("org_id").await
    }

    /// The tenant tables that hold rows of a ticket (a `ticket_id` column), in the same order:
    /// what a ticket's purge empties, whichever module owns them.
    pub async fn ticket_tables(&self) -> Result<Vec<String>, DbErr> {
        let mut tables = self.tables_with("ticket_id").await?;
        let tenant = self.tenant_tables().await?;
        tables.retain(|t| tenant.contains(t));
        Ok(tables)
    }

    /// The tables with a column named `column_name`, each before every table it references.
    async fn tables_with(&self, column_name: &str) -> Result<Vec<String>, DbErr> {
        debug_assert!(
            column_name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_')
        );
        let conn = self.connection();
        let (tables, references) = match self.backend {
            Backend::Postgres => {
                let tables = names(
                    conn,
                    &format!(
                        "SELECT table_name AS name FROM information_schema.columns \
                         WHERE table_schema = 'public' AND column_name = '{column_name}' \
                         ORDER BY table_name"
                    ),
                )
                .await?;
                let rows = conn
                    .query_all_raw(Statement::from_string(
                        DbBackend::Postgres,
                        "SELECT conrelid::regclass::text AS child, confrelid::regclass::text \
                         AS parent FROM pg_constraint WHERE contype = 'f'",
                    ))
                    .await?;
                let mut refs = Vec::new();
                for row in rows {
                    refs.push((column(&row, "child")?, column(&row, "parent")?));
                }
                (tables, refs)
            }
            Backend::Sqlite => {
                let tables = names(
                    conn,
                    &format!(
                        "SELECT m.name AS name FROM sqlite_master m \
                         WHERE m.type = 'table' AND EXISTS \
                           (SELECT 1 FROM pragma_table_info(m.name) c \
                            WHERE c.name = '{column_name}') \
                         ORDER BY m.name"
                    ),
                )
                .await?;
                let rows = conn
                    .query_all_raw(Statement::from_string(
                        DbBackend::Sqlite,
                        "SELECT m.name AS child, f.\"table\" AS parent FROM sqlite_master m, \
                         pragma_foreign_key_list(m.name) f WHERE m.type = 'table'",
                    ))
                    .await?;
                let mut refs = Vec::new();
                for row in rows {
                    refs.push((column(&row, "child")?, column(&row, "parent")?));
                }
                (tables, refs)
            }
        };
        Ok(referencing_first(tables, &references))
    }

    /// Deletes up to [`PURGE_BATCH`] rows of organisation `org_id` from `table` (one of
    /// [`Db::tenant_tables`]) in a transaction of the organisation; answers how many went.
    pub(crate) async fn purge_tenant_rows(&self, org_id: Uuid, table: &str) -> Result<u64, DbErr> {
        debug_assert!(table.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
        let row = match self.backend {
            Backend::Postgres => "ctid",
            Backend::Sqlite => "rowid",
        };
        let tx = self.write_org(org_id).await?;
        let sql = format!(
            "DELETE FROM {table} WHERE {row} IN \
             (SELECT {row} FROM {table} WHERE org_id = $1 LIMIT {PURGE_BATCH})"
        );
        let done = tx
            .conn()
            .execute_raw(statement(
                tx.conn().get_database_backend(),
                &sql,
                [org_id.into()],
            ))
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }
}

/// Rows read per statement when dumping a table.
const DUMP_PAGE: u64 = 1000;

/// A page of one table's rows as JSON objects, and where the next page starts.
pub struct RowPage {
    pub rows: Vec<serde_json::Map<String, serde_json::Value>>,
    pub next: Option<String>,
}

impl Db {
    /// One page of the rows of organisation `org_id` in `table`, as JSON objects (the same on
    /// both backends: uuids as strings, JSON as JSON, booleans as booleans), in storage order
    /// from `after` (the previous page's `next`). Each page is its own short transaction.
    pub async fn tenant_rows_page(
        &self,
        org_id: Uuid,
        table: &str,
        after: Option<&str>,
    ) -> Result<RowPage, DbErr> {
        let tx = self.read_org(org_id).await?;
        let page = rows_page(tx.conn(), table, "org_id", org_id, after).await?;
        tx.commit().await?;
        Ok(page)
    }

    /// The organisation's own row (`organizations`), as [`Db::tenant_rows_page`] gives rows.
    pub async fn organization_row(
        &self,
        org_id: Uuid,
    ) -> Result<serde_json::Map<String, serde_json::Value>, DbErr> {
        let tx = self.read_org(org_id).await?;
        let page = rows_page(tx.conn(), "organizations", "id", org_id, None).await?;
        tx.commit().await?;
        page.rows
            .into_iter()
            .next()
            .ok_or_else(|| DbErr::RecordNotFound("organization".into()))
    }

    /// How many rows of organisation `org_id` `table` holds.
    pub(crate) async fn count_tenant_rows(&self, org_id: Uuid, table: &str) -> Result<i64, DbErr> {
        debug_assert!(table.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
        let tx = self.read_org(org_id).await?;
        let row = tx
            .conn()
            .query_one_raw(statement(
                tx.conn().get_database_backend(),
                &format!("SELECT count(*) AS n FROM {table} WHERE org_id = $1"),
                [org_id.into()],
            ))
            .await?;
        tx.commit().await?;
        match row {
            Some(row) => column(&row, "n"),
            None => Ok(0),
        }
    }

    /// Like [`Db::tenant_rows_page`], for a global table's rows whose `column` is `id` (an
    /// account's factors, say).
    pub async fn global_rows_page(
        &self,
        table: &str,
        column: &str,
        id: Uuid,
        after: Option<&str>,
    ) -> Result<RowPage, DbErr> {
        let tx = self.global(false).await?;
        let page = rows_page(tx.conn(), table, column, id, after).await?;
        tx.commit().await?;
        Ok(page)
    }
}

async fn rows_page(
    conn: &impl ConnectionTrait,
    table: &str,
    column_name: &str,
    id: Uuid,
    after: Option<&str>,
) -> Result<RowPage, DbErr> {
    debug_assert!(
        [table, column_name]
            .iter()
            .all(|n| n.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
    );
    match conn.get_database_backend() {
        DbBackend::Postgres => heap_page(conn, table, column_name, id, after).await,
        _ => rowid_page(conn, table, column_name, id, after).await,
    }
}

/// Heap blocks read per PostgreSQL page: a few thousand rows at most.
const DUMP_BLOCKS: i64 = 512;

/// PostgreSQL: the rows of the next stretch of [`DUMP_BLOCKS`] heap blocks with any (a TID
/// range scan). Walking the heap costs one pass over the table whatever the organisation's
/// size; paging by `ctid` in order through the `org_id` index would sort all of the
/// organisation's rows for every page.
async fn heap_page(
    conn: &impl ConnectionTrait,
    table: &str,
    column_name: &str,
    id: Uuid,
    after: Option<&str>,
) -> Result<RowPage, DbErr> {
    let backend = conn.get_database_backend();
    let size = conn
        .query_one_raw(statement(
            backend,
            "SELECT pg_relation_size($1::regclass) / current_setting('block_size')::bigint AS n",
            [table.into()],
        ))
        .await?;
    let blocks: i64 = size.map(|r| column(&r, "n")).transpose()?.unwrap_or(0);
    let mut start: i64 = after.and_then(|a| a.parse().ok()).unwrap_or(0);
    while start < blocks {
        let end = start + DUMP_BLOCKS;
        let found = conn
            .query_all_raw(statement(
                backend,
                &format!(
                    "SELECT row_to_json(t)::text AS j FROM {table} t \
                     WHERE t.ctid >= '({start},0)'::tid AND t.ctid < '({end},0)'::tid \
                       AND t.{column_name} = $1"
                ),
                [id.into()],
            ))
            .await?;
        if !found.is_empty() {
            return Ok(RowPage {
                rows: json_rows(table, &found)?,
                next: (end < blocks).then(|| end.to_string()),
            });
        }
        start = end;
    }
    Ok(RowPage {
        rows: Vec::new(),
        next: None,
    })
}

/// SQLite: the next [`DUMP_PAGE`] rows in `rowid` order (the table's own b-tree).
async fn rowid_page(
    conn: &impl ConnectionTrait,
    table: &str,
    column_name: &str,
    id: Uuid,
    after: Option<&str>,
) -> Result<RowPage, DbErr> {
    let mut fields = Vec::new();
    for (name, kind) in declared_columns(conn, table).await? {
        fields.push(format!("'{name}', {}", sqlite_json(&name, &kind)));
    }
    let sql = format!(
        "SELECT json_object({}) AS j, CAST(rowid AS TEXT) AS at FROM {table} \
         WHERE {column_name} = $1 AND rowid > CAST($2 AS INTEGER) ORDER BY rowid \
         LIMIT {DUMP_PAGE}",
        fields.join(", ")
    );
    let position = after.unwrap_or("0").to_owned();
    let found = conn
        .query_all_raw(statement(
            DbBackend::Sqlite,
            &sql,
            [id.into(), position.into()],
        ))
        .await?;
    let next = match found.last() {
        Some(row) if found.len() as u64 == DUMP_PAGE => Some(column::<String>(row, "at")?),
        _ => None,
    };
    Ok(RowPage {
        rows: json_rows(table, &found)?,
        next,
    })
}

fn json_rows(
    table: &str,
    found: &[sea_orm::QueryResult],
) -> Result<Vec<serde_json::Map<String, serde_json::Value>>, DbErr> {
    found
        .iter()
        .map(|row| {
            let text: String = column(row, "j")?;
            match serde_json::from_str(&text) {
                Ok(serde_json::Value::Object(map)) => Ok(map),
                _ => Err(DbErr::Type(format!("{table}: a row did not read as JSON"))),
            }
        })
        .collect()
}

/// SQLite's columns of `table` and their declared types (lowercase).
async fn declared_columns(
    conn: &impl ConnectionTrait,
    table: &str,
) -> Result<Vec<(String, String)>, DbErr> {
    let rows = conn
        .query_all_raw(statement(
            DbBackend::Sqlite,
            "SELECT name, lower(type) AS type FROM pragma_table_info($1)",
            [table.into()],
        ))
        .await?;
    rows.iter()
        .map(|c| Ok((column(c, "name")?, column(c, "type")?)))
        .collect()
}

/// How a column's value is bound when rows are written back (`insert_rows`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Uuid,
    Text,
    SmallInt,
    Int,
    BigInt,
    Bool,
    Timestamp,
    Date,
    Json,
    Blob,
}

impl Kind {
    fn of(declared: &str) -> Kind {
        let t = declared.to_ascii_lowercase();
        match () {
            _ if t.contains("uuid") => Kind::Uuid,
            _ if t.contains("timestamp") => Kind::Timestamp,
            _ if t.starts_with("date") => Kind::Date,
            _ if t.contains("json") => Kind::Json,
            _ if t == "boolean" => Kind::Bool,
            _ if t == "smallint" => Kind::SmallInt,
            _ if t == "bigint" => Kind::BigInt,
            _ if t == "integer" => Kind::Int,
            _ if t == "blob" || t == "bytea" => Kind::Blob,
            _ => Kind::Text,
        }
    }

    /// `json` bound as this kind (a typed `NULL` for null: PostgreSQL wants to know).
    fn bind(self, json: &serde_json::Value) -> Result<sea_orm::Value, String> {
        use sea_orm::Value as V;
        use serde_json::Value as J;
        let text = json.as_str();
        Ok(match (self, json) {
            (Kind::Uuid, J::Null) => V::Uuid(None),
            (Kind::Uuid, _) => {
                V::Uuid(Some(text.and_then(|t| t.parse().ok()).ok_or("not a uuid")?))
            }
            (Kind::Text, J::Null) => V::String(None),
            (Kind::Text, _) => V::String(Some(text.ok_or("not text")?.to_owned())),
            (Kind::SmallInt, J::Null) => V::SmallInt(None),
            (Kind::SmallInt, J::Number(n)) => V::SmallInt(Some(
                n.as_i64()
                    .and_then(|n| n.try_into().ok())
                    .ok_or("not a small integer")?,
            )),
            (Kind::Int, J::Null) => V::Int(None),
            (Kind::Int, J::Number(n)) => V::Int(Some(
                n.as_i64()
                    .and_then(|n| n.try_into().ok())
                    .ok_or("not an integer")?,
            )),
            (Kind::BigInt, J::Null) => V::BigInt(None),
            (Kind::BigInt, J::Number(n)) => V::BigInt(Some(n.as_i64().ok_or("not an integer")?)),
            (Kind::Bool, J::Null) => V::Bool(None),
            (Kind::Bool, J::Bool(b)) => V::Bool(Some(*b)),
            (Kind::Bool, J::Number(n)) => V::Bool(Some(n.as_i64() != Some(0))),
            (Kind::Timestamp, J::Null) => V::ChronoDateTimeUtc(None),
            (Kind::Timestamp, _) => {
                V::ChronoDateTimeUtc(Some(text.and_then(parse_instant).ok_or("not a timestamp")?))
            }
            (Kind::Date, J::Null) => V::ChronoDate(None),
            (Kind::Date, _) => V::ChronoDate(Some(
                text.and_then(|t| t.get(..10))
                    .and_then(|t| chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d").ok())
                    .ok_or("not a date")?,
            )),
            (Kind::Json, J::Null) => V::Json(None),
            (Kind::Json, other) => V::Json(Some(Box::new(other.clone()))),
            (Kind::Blob, J::Null) => V::Bytes(None),
            (Kind::Blob, _) => V::Bytes(Some(
                text.and_then(|t| hex::decode(t.trim_start_matches("\\x")).ok())
                    .ok_or("not hex bytes")?,
            )),
            (_, other) => return Err(format!("unexpected {other}")),
        })
    }
}

/// An instant as either database writes it out (`2026-12-07T10:00:00.123456+00:00`,
/// `2026-12-07 10:00:00.123456 +00:00`, with or without fractions).
fn parse_instant(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(t.to_utc());
    }
    [
        "%Y-%m-%d %H:%M:%S%.f %:z",
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%d %H:%M:%S%.f%#z",
    ]
    .iter()
    .find_map(|f| chrono::DateTime::parse_from_str(text, f).ok())
    .map(|t| t.to_utc())
}

/// The columns of `table` a row is written back into, with how each is bound: generated and
/// identity columns (PostgreSQL) and SQLite's rowid aliases are left to the database.
async fn insertable_columns(
    conn: &impl ConnectionTrait,
    table: &str,
) -> Result<Vec<(String, Kind)>, DbErr> {
    let backend = conn.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            "SELECT column_name AS name, data_type AS type FROM information_schema.columns \
             WHERE table_schema = 'public' AND table_name = $1 AND is_generated = 'NEVER' \
             AND is_identity = 'NO' ORDER BY ordinal_position"
        }
        _ => {
            "SELECT name, type FROM pragma_table_info($1) \
             WHERE NOT (pk = 1 AND lower(type) = 'integer') ORDER BY cid"
        }
    };
    let rows = conn
        .query_all_raw(statement(backend, sql, [table.into()]))
        .await?;
    rows.iter()
        .map(|c| Ok((column(c, "name")?, Kind::of(&column::<String>(c, "type")?))))
        .collect()
}

/// Writes `rows` (as [`Db::tenant_rows_page`] reads them) into `table`, in the caller's
/// transaction; a column the target lacks or a value of the wrong kind is an error naming them.
/// Rows of a table that refer to each other (a subtask to its parent) may come in any order: a
/// row whose reference is not there yet waits for the next round.
pub(crate) async fn insert_rows(
    conn: &impl ConnectionTrait,
    table: &str,
    rows: &[serde_json::Map<String, serde_json::Value>],
) -> Result<(), DbErr> {
    let columns = insertable_columns(conn, table).await?;
    if columns.is_empty() {
        return Err(DbErr::Custom(format!("no table {table} here")));
    }
    let backend = conn.get_database_backend();
    let mut waiting: Vec<Statement> = Vec::with_capacity(rows.len());
    for row in rows {
        if let Some(unknown) = row
            .keys()
            .find(|k| !columns.iter().any(|(c, _)| c == *k) && !is_left_to_the_database(k))
        {
            return Err(DbErr::Custom(format!(
                "{table}.{unknown}: no such column here"
            )));
        }
        let mut names = Vec::new();
        let mut values = Vec::new();
        for (name, kind) in &columns {
            let Some(json) = row.get(name) else { continue };
            let value = kind
                .bind(json)
                .map_err(|e| DbErr::Custom(format!("{table}.{name}: {e}")))?;
            names.push(format!("\"{name}\""));
            values.push(value);
        }
        let marks: Vec<String> = (1..=values.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "INSERT INTO {table} ({}) VALUES ({})",
            names.join(", "),
            marks.join(", ")
        );
        waiting.push(statement(backend, &sql, values));
    }
    while !waiting.is_empty() {
        let before = waiting.len();
        let mut later = Vec::new();
        let mut last_err = None;
        for insert in waiting {
            conn.execute_unprepared("SAVEPOINT moved_row").await?;
            match conn.execute_raw(insert.clone()).await {
                Ok(_) => {
                    conn.execute_unprepared("RELEASE SAVEPOINT moved_row")
                        .await?;
                }
                Err(err)
                    if matches!(
                        err.sql_err(),
                        Some(sea_orm::SqlErr::ForeignKeyConstraintViolation(_))
                    ) =>
                {
                    conn.execute_unprepared("ROLLBACK TO SAVEPOINT moved_row")
                        .await?;
                    conn.execute_unprepared("RELEASE SAVEPOINT moved_row")
                        .await?;
                    later.push(insert);
                    last_err = Some(err);
                }
                Err(err) => return Err(err),
            }
        }
        if later.len() == before {
            return Err(last_err.unwrap_or_else(|| DbErr::Custom(format!("{table}: stuck"))));
        }
        waiting = later;
    }
    Ok(())
}

/// Columns one database writes out that the other computes itself.
fn is_left_to_the_database(column: &str) -> bool {
    matches!(column, "seq" | "tsv")
}

/// How SQLite gives a column of declared type `kind` as JSON, alike PostgreSQL's `row_to_json`.
fn sqlite_json(name: &str, kind: &str) -> String {
    let c = format!("\"{name}\"");
    if kind.contains("uuid") {
        format!(
            "CASE WHEN typeof({c}) = 'blob' THEN lower(substr(hex({c}), 1, 8) || '-' || \
             substr(hex({c}), 9, 4) || '-' || substr(hex({c}), 13, 4) || '-' || \
             substr(hex({c}), 17, 4) || '-' || substr(hex({c}), 21)) ELSE {c} END"
        )
    } else if kind.contains("json") {
        format!("json({c})")
    } else if kind == "boolean" {
        format!("CASE WHEN {c} IS NULL THEN NULL WHEN {c} THEN json('true') ELSE json('false') END")
    } else if kind == "blob" {
        format!("hex({c})")
    } else {
        c
    }
}

async fn names(conn: &impl ConnectionTrait, sql: &str) -> Result<Vec<String>, DbErr> {
    let rows = conn
        .query_all_raw(Statement::from_string(conn.get_database_backend(), sql))
        .await?;
    rows.iter().map(|row| column(row, "name")).collect()
}

/// `tables` ordered so that each comes before every table it references (`(child, parent)`
/// pairs); references to itself or to other tables do not count. Ties keep name order.
fn referencing_first(tables: Vec<String>, references: &[(String, String)]) -> Vec<String> {
    let set: BTreeSet<&str> = tables.iter().map(String::as_str).collect();
    // parent -> children that must go first
    let mut children: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (child, parent) in references {
        if child != parent && set.contains(child.as_str()) && set.contains(parent.as_str()) {
            children
                .entry(parent.as_str())
                .or_default()
                .insert(child.as_str());
        }
    }
    let mut ordered: Vec<String> = Vec::with_capacity(tables.len());
    let mut placed: BTreeSet<&str> = BTreeSet::new();
    while placed.len() < set.len() {
        let ready: Vec<&str> = set
            .iter()
            .copied()
            .filter(|t| !placed.contains(t))
            .filter(|t| {
                children
                    .get(t)
                    .is_none_or(|c| c.iter().all(|c| placed.contains(c)))
            })
            .collect();
        // A cycle of references (none today) would leave tables unplaced: take them as named.
        let next = if ready.is_empty() {
            set.iter()
                .copied()
                .filter(|t| !placed.contains(t))
                .collect()
        } else {
            ready
        };
        for t in next {
            placed.insert(t);
            ordered.push(t.to_owned());
        }
    }
    ordered
}

impl super::TenantTx {
    /// Deletes the rows of tickets `ids` from `table` (one of [`Db::ticket_tables`]); answers
    /// how many went.
    pub(crate) async fn delete_ticket_rows(&self, table: &str, ids: &[Uuid]) -> Result<u64, DbErr> {
        debug_assert!(table.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
        if ids.is_empty() {
            return Ok(0);
        }
        let marks: Vec<String> = (0..ids.len()).map(|i| format!("${}", i + 2)).collect();
        let sql = format!(
            "DELETE FROM {table} WHERE org_id = $1 AND ticket_id IN ({})",
            marks.join(", ")
        );
        let values = std::iter::once(self.org_id().into()).chain(ids.iter().map(|id| (*id).into()));
        let done = self
            .conn()
            .execute_raw(statement(self.conn().get_database_backend(), &sql, values))
            .await?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn referencing_tables_come_first() {
        let tables = ["comments", "projects", "tickets", "labels"]
            .map(String::from)
            .to_vec();
        let refs = [
            ("tickets", "projects"),
            ("comments", "tickets"),
            ("comments", "comments"),
            ("tickets", "organizations"),
        ]
        .map(|(c, p)| (c.to_owned(), p.to_owned()));
        let order = referencing_first(tables, &refs);
        let at = |t: &str| order.iter().position(|o| o == t).unwrap();
        assert_eq!(order.len(), 4);
        assert!(at("comments") < at("tickets"));
        assert!(at("tickets") < at("projects"));
    }
}
