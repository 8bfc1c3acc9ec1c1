//! Search over ticket titles, descriptions and comments. Every write of that text updates its
//! search document in the same transaction, so a search right after a commit finds it; a
//! deleted ticket leaves the results at once (results are tickets the caller may list).
//!
//! PostgreSQL ranks a weighted `tsvector` (GIN index) against `websearch_to_tsquery`; SQLite
//! ranks its FTS5 index with BM25, the same query language translated ([`fts5_query`]).
//! Requesters match only what they may read: their own tickets, never internal notes.

use sea_orm::{ConnectionTrait, DbBackend, FromQueryResult, Statement, Value};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::tickets::{self, ListQuery, Ticket, TicketFilter};
use crate::{
    access::{self, Action, TenantCtx},
    error::{Result, Validator},
    pagination,
    store::{Db, TenantTx},
};

/// Longest query accepted.
pub const MAX_QUERY: usize = 200;
/// Most terms a query may have.
pub const MAX_TERMS: usize = 20;

/// Marks a match in a snippet before it is escaped (never in stored text the API accepts:
/// control characters are refused).
const MATCH_START: char = '\u{2}';
const MATCH_END: char = '\u{3}';

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// Words to find. `"a phrase"` in quotes, `-word` to exclude, `or` between alternatives.
    #[param(min_length = 1, max_length = 200)]
    pub q: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SearchHit {
    pub ticket: Ticket,
    /// The best-matching passage as HTML: text escaped, matches in `<mark>`.
    pub snippet: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SearchPage {
    pub items: Vec<SearchHit>,
    /// Pass as `cursor` with the same query for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// One term of a query as the user wrote it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Term {
    Word(String),
    Phrase(String),
    Or,
    Not(Box<Term>),
}

/// Reads a query the way `websearch_to_tsquery` does: words, `"phrases"`, `-exclusions` and
/// `or` between alternatives.
fn terms(q: &str) -> Vec<Term> {
    let mut out = Vec::new();
    let mut chars = q.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let negated = c == '-';
        if negated {
            chars.next();
        }
        let term = if chars.peek() == Some(&'"') {
            chars.next();
            let phrase: String = chars.by_ref().take_while(|&c| c != '"').collect();
            Term::Phrase(phrase)
        } else {
            let word: String =
                std::iter::from_fn(|| chars.next_if(|c| !c.is_whitespace() && *c != '"')).collect();
            if !negated && word.eq_ignore_ascii_case("or") {
                Term::Or
            } else {
                Term::Word(word)
            }
        };
        let empty = matches!(&term, Term::Word(w) | Term::Phrase(w) if !w.chars().any(char::is_alphanumeric));
        if empty {
            continue;
        }
        out.push(if negated {
            Term::Not(Box::new(term))
        } else {
            term
        });
    }
    out
}

fn quoted(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

fn fts5_term(t: &Term) -> Option<String> {
    match t {
        Term::Word(w) | Term::Phrase(w) => Some(quoted(w)),
        _ => None,
    }
}

/// The FTS5 query for `q`: alternatives joined by `OR` grouped, groups joined by `AND`,
/// exclusions as `NOT`; every word quoted, so nothing the user types is FTS5 syntax. `None`
/// when nothing is left to look for.
pub(crate) fn fts5_query(q: &str) -> Option<String> {
    let mut groups: Vec<Vec<String>> = Vec::new();
    let mut excluded = Vec::new();
    let mut join_next = false;
    for t in terms(q) {
        match &t {
            Term::Or => join_next = !groups.is_empty(),
            Term::Not(inner) => {
                excluded.extend(fts5_term(inner));
                join_next = false;
            }
            _ => {
                let term = fts5_term(&t)?;
                match groups.last_mut() {
                    Some(group) if join_next => group.push(term),
                    _ => groups.push(vec![term]),
                }
                join_next = false;
            }
        }
    }
    if groups.is_empty() {
        return None;
    }
    let mut query = groups
        .into_iter()
        .map(|g| {
            if g.len() == 1 {
                g.join("")
            } else {
                format!("({})", g.join(" OR "))
            }
        })
        .collect::<Vec<_>>()
        .join(" AND ");
    for e in excluded {
        query = format!("({query}) NOT {e}");
    }
    Some(query)
}

/// The snippet as HTML: everything escaped, the marked matches in `<mark>`.
fn snippet_html(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len() + 16);
    for c in raw.chars() {
        match c {
            MATCH_START => out.push_str("<mark>"),
            MATCH_END => out.push_str("</mark>"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

async fn upsert(
    tx: &TenantTx,
    doc_id: Uuid,
    ticket_id: Uuid,
    internal: bool,
    title: &str,
    body: &str,
) -> Result<()> {
    let conn = tx.conn();
    conn.execute_raw(crate::store::statement(
        conn.get_database_backend(),
        "INSERT INTO search_documents (org_id, doc_id, ticket_id, internal, title, body) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (org_id, doc_id) DO UPDATE SET ticket_id = excluded.ticket_id, \
           internal = excluded.internal, title = excluded.title, body = excluded.body",
        [
            tx.org_id().into(),
            doc_id.into(),
            ticket_id.into(),
            internal.into(),
            title.into(),
            body.into(),
        ],
    ))
    .await?;
    Ok(())
}

/// Indexes a ticket's title and description (in the caller's transaction).
pub(crate) async fn index_ticket(tx: &TenantTx, t: &Ticket) -> Result<()> {
    upsert(
        tx,
        t.id,
        t.id,
        false,
        &t.title,
        t.description.as_deref().unwrap_or_default(),
    )
    .await
}

/// Indexes a comment (an internal note is found by staff only).
pub(crate) async fn index_comment(
    tx: &TenantTx,
    ticket_id: Uuid,
    comment_id: Uuid,
    internal: bool,
    body: &str,
) -> Result<()> {
    upsert(tx, comment_id, ticket_id, internal, "", body).await
}

/// Drops a comment's document.
pub(crate) async fn unindex(tx: &TenantTx, doc_id: Uuid) -> Result<()> {
    let conn = tx.conn();
    conn.execute_raw(crate::store::statement(
        conn.get_database_backend(),
        "DELETE FROM search_documents WHERE org_id = $1 AND doc_id = $2",
        [tx.org_id().into(), doc_id.into()],
    ))
    .await?;
    Ok(())
}

/// Files the documents `doc_ids` (comments moved by a merge or a split) under ticket `to`.
pub(crate) async fn move_documents(tx: &TenantTx, doc_ids: &[Uuid], to: Uuid) -> Result<()> {
    if doc_ids.is_empty() {
        return Ok(());
    }
    let conn = tx.conn();
    let placeholders: Vec<String> = (0..doc_ids.len()).map(|i| format!("${}", i + 3)).collect();
    let mut values: Vec<Value> = vec![tx.org_id().into(), to.into()];
    values.extend(doc_ids.iter().map(|id| Value::from(*id)));
    conn.execute_raw(crate::store::statement(
        conn.get_database_backend(),
        &format!(
            "UPDATE search_documents SET ticket_id = $2 WHERE org_id = $1 AND doc_id IN ({})",
            placeholders.join(", ")
        ),
        values,
    ))
    .await?;
    Ok(())
}

/// A document to index in bulk (imports).
pub(crate) struct Document {
    pub doc_id: Uuid,
    pub ticket_id: Uuid,
    pub internal: bool,
    pub title: String,
    pub body: String,
}

/// Indexes many documents with a few statements (imported tickets and comments).
pub(crate) async fn index_many(tx: &TenantTx, docs: Vec<Document>) -> Result<()> {
    const PER_STATEMENT: usize = 4_000;
    let conn = tx.conn();
    for chunk in docs.chunks(PER_STATEMENT) {
        let mut sql = String::from(
            "INSERT INTO search_documents (org_id, doc_id, ticket_id, internal, title, body) VALUES ",
        );
        let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 6);
        for (i, d) in chunk.iter().enumerate() {
            let n = i * 6;
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!(
                "(${}, ${}, ${}, ${}, ${}, ${})",
                n + 1,
                n + 2,
                n + 3,
                n + 4,
                n + 5,
                n + 6
            ));
            values.extend([
                tx.org_id().into(),
                d.doc_id.into(),
                d.ticket_id.into(),
                d.internal.into(),
                d.title.as_str().into(),
                d.body.as_str().into(),
            ]);
        }
        conn.execute_raw(crate::store::statement(
            conn.get_database_backend(),
            &sql,
            values,
        ))
        .await?;
    }
    Ok(())
}

#[derive(Debug, FromQueryResult)]
struct Ranked {
    ticket_id: Uuid,
    rank: f64,
}

#[derive(Debug, FromQueryResult)]
struct Snippet {
    ticket_id: Uuid,
    snippet: String,
    rank: f64,
}

/// `filtered`'s SQL and values, its placeholders renumbered to follow `before` of ours:
/// PostgreSQL's `$1` become `$(1 + before)`; SQLite's bare `?` are numbered explicitly (sqlx
/// counts bare `?` from the first argument, whatever numbered ones come before).
fn embed(filtered: Statement, before: usize) -> (String, Vec<Value>) {
    let values = filtered.values.map(|v| v.0).unwrap_or_default();
    let (mark, numbered) = match filtered.db_backend {
        DbBackend::Postgres => ('$', true),
        _ => ('?', false),
    };
    let mut out = String::with_capacity(filtered.sql.len() + 16);
    let mut rest = filtered.sql.as_str();
    let mut bare = 0;
    while let Some(at) = rest.find(mark) {
        out.push_str(&rest[..at]);
        let digits: String = rest[at + 1..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        let n = if numbered {
            digits.parse().unwrap_or(0)
        } else {
            bare += 1;
            bare
        };
        out.push_str(&format!("{mark}{}", n + before));
        rest = &rest[at + 1 + digits.len()..];
    }
    out.push_str(rest);
    (out, values)
}

/// A placeholder of ours, numbered `n`.
fn p(backend: DbBackend, n: usize) -> String {
    match backend {
        DbBackend::Postgres => format!("${n}"),
        _ => format!("?{n}"),
    }
}

pub async fn search(
    db: &Db,
    ctx: &TenantCtx,
    params: SearchParams,
    filter: TicketFilter,
) -> Result<SearchPage> {
    access::authorize(ctx, Action::TicketRead)?;
    let mut v = Validator::default();
    let text = params.q.unwrap_or_default();
    let text = text.trim();
    v.check(!text.is_empty(), "q", "give the words to look for");
    v.check(
        text.chars().count() <= MAX_QUERY,
        "q",
        "at most 200 characters",
    );
    v.check(
        text.chars().all(|c| !c.is_control()),
        "q",
        "must not contain control characters",
    );
    let found = terms(text);
    v.check(
        found.len() <= MAX_TERMS,
        "q",
        "at most 20 words, phrases and operators",
    );
    v.check(
        filter.sort.is_none(),
        "sort",
        "search results are ordered by relevance",
    );
    let fts = fts5_query(text);
    if !text.is_empty() {
        v.check(
            fts.is_some(),
            "q",
            "give at least one word to look for (not only exclusions)",
        );
    }
    v.finish()?;
    let q: ListQuery = filter.validate(ctx)?;
    let tx = db.read(ctx).await?;
    let backend = tx.conn().get_database_backend();
    let staff = access::sees_internal_notes(ctx.role);
    let (query_value, matches, rank) = match backend {
        DbBackend::Postgres => (
            text.to_owned(),
            "d.tsv @@ websearch_to_tsquery('english', $1)",
            "ts_rank_cd(d.tsv, websearch_to_tsquery('english', $1))::float8",
        ),
        _ => (
            fts.unwrap_or_default(),
            "search_fts MATCH ?1",
            "-bm25(search_fts, 4.0, 1.0)",
        ),
    };
    // FTS5 ranks only where it matches, never inside an aggregate: the documents are ranked
    // first (kept apart from the grouping), then each ticket takes its best document's rank.
    let materialized = match backend {
        DbBackend::Postgres => "",
        _ => "MATERIALIZED",
    };
    let from = match backend {
        DbBackend::Postgres => "search_documents d",
        // CROSS JOIN fixes SQLite's join order: the full-text match first, then each match's
        // document by key (the other order runs the match once per document of the tenant).
        _ => "search_fts CROSS JOIN search_documents d ON d.seq = search_fts.rowid",
    };
    let (ids_sql, ids_values) = embed(tickets::filtered_ids(ctx, &q, backend), 3);
    let after = 3 + ids_values.len();
    let (cursor_rank, cursor_id) = match q.after {
        Some((bits, id)) => (Some(f64::from_bits(bits as u64)), Some(id)),
        None => (None, None),
    };
    let sql = format!(
        "WITH matched AS {materialized} (SELECT d.ticket_id AS ticket_id, {rank} AS rank \
           FROM {from} WHERE {matches} AND d.org_id = {org} AND ({staff} OR NOT d.internal) \
             AND d.ticket_id IN ({ids_sql})), \
         hits AS (SELECT ticket_id, max(rank) AS rank FROM matched GROUP BY ticket_id) \
         SELECT ticket_id, rank FROM hits \
         WHERE {cr} IS NULL OR rank < {cr} OR (rank = {cr} AND ticket_id < {ci}) \
         ORDER BY rank DESC, ticket_id DESC LIMIT {limit}",
        org = p(backend, 2),
        staff = p(backend, 3),
        cr = match backend {
            DbBackend::Postgres => format!("CAST({} AS float8)", p(backend, after + 1)),
            _ => p(backend, after + 1),
        },
        ci = p(backend, after + 2),
        limit = p(backend, after + 3),
    );
    let mut values: Vec<Value> = vec![query_value.clone().into(), ctx.org_id.into(), staff.into()];
    values.extend(ids_values);
    values.extend([
        cursor_rank.into(),
        cursor_id.into(),
        ((q.limit + 1) as i64).into(),
    ]);
    let ranked = Ranked::find_by_statement(Statement::from_sql_and_values(backend, sql, values))
        .all(tx.conn())
        .await?;
    let more = ranked.len() as u64 > q.limit;
    let ranked: Vec<Ranked> = ranked.into_iter().take(q.limit as usize).collect();
    let next_cursor = more
        .then(|| ranked.last())
        .flatten()
        .map(|r| pagination::encode_keyed(r.rank.to_bits() as i64, r.ticket_id));
    let ids: Vec<Uuid> = ranked.iter().map(|r| r.ticket_id).collect();
    let snippets = snippets(&tx, backend, &query_value, staff, &ids).await?;
    let items = tickets::load_many(&tx, &ids)
        .await?
        .into_iter()
        .map(|ticket| {
            let snippet = snippets
                .iter()
                .filter(|s| s.ticket_id == ticket.id)
                .max_by(|a, b| a.rank.total_cmp(&b.rank))
                .map(|s| snippet_html(&s.snippet))
                .unwrap_or_default();
            SearchHit { ticket, snippet }
        })
        .collect();
    tx.commit().await?;
    Ok(SearchPage { items, next_cursor })
}

/// Each matching document of the page's tickets with its highlighted passage and rank.
async fn snippets(
    tx: &TenantTx,
    backend: DbBackend,
    query: &str,
    staff: bool,
    ids: &[Uuid],
) -> Result<Vec<Snippet>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let marks = format!("{MATCH_START}");
    let end = format!("{MATCH_END}");
    let list: Vec<String> = (0..ids.len()).map(|i| p(backend, i + 6)).collect();
    let sql = match backend {
        DbBackend::Postgres => format!(
            "SELECT d.ticket_id, \
               ts_headline('english', translate(trim(d.title || ' ' || d.body), '<>', '  '), \
               websearch_to_tsquery('english', $1), \
               'StartSel=' || $4 || ', StopSel=' || $5 || ', MaxWords=30, MinWords=12, MaxFragments=2, FragmentDelimiter=\" … \"') AS snippet, \
               ts_rank_cd(d.tsv, websearch_to_tsquery('english', $1))::float8 AS rank \
             FROM search_documents d \
             WHERE d.tsv @@ websearch_to_tsquery('english', $1) AND d.org_id = $2 \
               AND ($3 OR NOT d.internal) AND d.ticket_id IN ({})",
            list.join(", ")
        ),
        _ => format!(
            "SELECT d.ticket_id AS ticket_id, snippet(search_fts, -1, ?4, ?5, ' … ', 24) AS snippet, \
               -bm25(search_fts, 4.0, 1.0) AS rank \
             FROM search_fts CROSS JOIN search_documents d ON d.seq = search_fts.rowid \
             WHERE search_fts MATCH ?1 AND d.org_id = ?2 AND (?3 OR NOT d.internal) \
               AND d.ticket_id IN ({})",
            list.join(", ")
        ),
    };
    let mut values: Vec<Value> = vec![
        query.into(),
        tx.org_id().into(),
        staff.into(),
        marks.into(),
        end.into(),
    ];
    values.extend(ids.iter().map(|id| Value::from(*id)));
    Ok(
        Snippet::find_by_statement(Statement::from_sql_and_values(backend, sql, values))
            .all(tx.conn())
            .await?,
    )
}

/// Replaces the body of document `doc_id` (a text retention removed).
pub(crate) async fn replace_body(tx: &TenantTx, doc_id: Uuid, body: &str) -> Result<()> {
    let conn = tx.conn();
    conn.execute_raw(crate::store::statement(
        conn.get_database_backend(),
        "UPDATE search_documents SET body = $3 WHERE org_id = $1 AND doc_id = $2",
        [tx.org_id().into(), doc_id.into(), body.into()],
    ))
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_translate_to_quoted_fts5() {
        assert_eq!(
            fts5_query("printer fire").as_deref(),
            Some(r#""printer" AND "fire""#)
        );
        assert_eq!(
            fts5_query(r#""paper jam" or toner -laser"#).as_deref(),
            Some(r#"(("paper jam" OR "toner")) NOT "laser""#)
        );
        assert_eq!(
            fts5_query("a OR b c").as_deref(),
            Some(r#"("a" OR "b") AND "c""#)
        );
        // FTS5 syntax typed by the user is only text.
        assert_eq!(
            fts5_query(r#"title:x* NEAR(a b) "un"closed"#).as_deref(),
            Some(r#""title:x*" AND "NEAR(a" AND "b)" AND "un" AND "closed""#)
        );
        assert_eq!(fts5_query("-only -exclusions"), None);
        assert_eq!(fts5_query("or"), None);
        assert_eq!(fts5_query("  \"\"  - "), None);
    }

    #[test]
    fn snippets_are_escaped_around_their_marks() {
        assert_eq!(
            snippet_html("a <b>\u{2}fire\u{3}</b> & 'x'"),
            "a &lt;b&gt;<mark>fire</mark>&lt;/b&gt; &amp; &#39;x&#39;"
        );
    }
}
