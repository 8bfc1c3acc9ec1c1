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
        let conn = self.connection();
        let (tables, references) = match self.backend {
            Backend::Postgres => {
                let tables = names(
                    conn,
                    "SELECT table_name AS name FROM information_schema.columns \
                     WHERE table_schema = 'public' AND column_name = 'org_id' \
                     ORDER BY table_name",
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
                    "SELECT m.name AS name FROM sqlite_master m \
                     WHERE m.type = 'table' AND EXISTS \
                       (SELECT 1 FROM pragma_table_info(m.name) c WHERE c.name = 'org_id') \
                     ORDER BY m.name",
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
        debug_assert!(table.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
        let tx = self.read_org(org_id).await?;
        let conn = tx.conn();
        let (sql, position) = match self.backend {
            Backend::Postgres => (
                format!(
                    "SELECT row_to_json(t)::text AS j, t.ctid::text AS at FROM {table} t \
                     WHERE t.org_id = $1 AND t.ctid > $2::tid ORDER BY t.ctid LIMIT {DUMP_PAGE}"
                ),
                after.unwrap_or("(0,0)").to_owned(),
            ),
            Backend::Sqlite => {
                let columns = conn
                    .query_all_raw(statement(
                        DbBackend::Sqlite,
                        "SELECT name, lower(type) AS type FROM pragma_table_info($1)",
                        [table.into()],
                    ))
                    .await?;
                let mut fields = Vec::new();
                for c in columns {
                    let name: String = column(&c, "name")?;
                    let kind: String = column(&c, "type")?;
                    fields.push(format!("'{name}', {}", sqlite_json(&name, &kind)));
                }
                (
                    format!(
                        "SELECT json_object({}) AS j, CAST(rowid AS TEXT) AS at FROM {table} \
                         WHERE org_id = $1 AND rowid > CAST($2 AS INTEGER) ORDER BY rowid \
                         LIMIT {DUMP_PAGE}",
                        fields.join(", ")
                    ),
                    after.unwrap_or("0").to_owned(),
                )
            }
        };
        let found = conn
            .query_all_raw(statement(
                conn.get_database_backend(),
                &sql,
                [org_id.into(), position.into()],
            ))
            .await?;
        tx.commit().await?;
        let mut rows = Vec::with_capacity(found.len());
        let mut last = None;
        for row in &found {
            let text: String = column(row, "j")?;
            match serde_json::from_str(&text) {
                Ok(serde_json::Value::Object(map)) => rows.push(map),
                _ => return Err(DbErr::Type(format!("{table}: a row did not read as JSON"))),
            }
            last = Some(column::<String>(row, "at")?);
        }
        let next = last.filter(|_| found.len() as u64 == DUMP_PAGE);
        Ok(RowPage { rows, next })
    }
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
