//! Finding a ticket the caller may see, and assembling tickets from their rows.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, FromQueryResult, IdenStatic, Iterable, QueryFilter,
    QueryOrder, QueryResult, QuerySelect, QueryTrait, Select, Statement, sea_query::Expr,
};
use uuid::Uuid;

use super::{Progress, Ticket};
use crate::{
    access::{self, Action, TenantCtx},
    error::{Error, Result},
    store::{Db, TenantTx, column},
    work::{
        Priority, Status,
        entity::{assignee, ticket},
        projects,
        sla::{
            TicketSla,
            clocks::{TicketFacts, entity as clock},
        },
    },
};

/// Which ticket a path names: its id, or its key (`OPS-42`).
enum TicketRef {
    Id(Uuid),
    Key(String, i64),
}

fn parse_ref(s: &str) -> Option<TicketRef> {
    if let Ok(id) = Uuid::parse_str(s) {
        return Some(TicketRef::Id(id));
    }
    let (key, number) = s.rsplit_once('-')?;
    let number: i64 = number.parse().ok().filter(|n| *n > 0)?;
    projects::is_key(key).then(|| TicketRef::Key(key.to_owned(), number))
}

/// The query for the ticket `s` names (an id, or a key such as `OPS-42`), locked for a change
/// when `lock` is set.
async fn ref_query(tx: &TenantTx, s: &str, lock: bool) -> Result<Select<ticket::Entity>> {
    let query = if lock {
        tx.find_for_update::<ticket::Entity>()
    } else {
        tx.find::<ticket::Entity>()
    };
    Ok(match parse_ref(s).ok_or(Error::NotFound("ticket"))? {
        TicketRef::Id(id) => query.filter(ticket::Column::Id.eq(id)),
        TicketRef::Key(key, number) => {
            let project = projects::find_by_key(tx, &key)
                .await?
                .ok_or(Error::NotFound("ticket"))?;
            query
                .filter(ticket::Column::ProjectId.eq(project.id))
                .filter(ticket::Column::Number.eq(number))
        }
    })
}

/// True when the caller may not see a ticket: someone else's for a requester, or deleted
/// unless the caller may restore it.
fn hidden(ctx: &TenantCtx, requester_id: Option<Uuid>, deleted: bool) -> bool {
    (access::sees_only_own_tickets(ctx.role) && requester_id != Some(ctx.user_id))
        || (deleted && !access::allowed(ctx.role, Action::TicketRestore))
}

/// Finds a ticket the caller may see: not another tenant's, not someone else's for a
/// requester, not deleted unless the caller may restore it. Otherwise: not found.
pub(super) async fn find_model(
    tx: &TenantTx,
    ctx: &TenantCtx,
    s: &str,
    lock: bool,
) -> Result<ticket::Model> {
    let m = ref_query(tx, s, lock)
        .await?
        .one(tx.conn())
        .await?
        .ok_or(Error::NotFound("ticket"))?;
    if hidden(ctx, m.requester_id, m.deleted_at.is_some()) {
        return Err(Error::NotFound("ticket"));
    }
    Ok(m)
}

/// A ticket the caller may see (for comments and the timeline).
pub(crate) async fn find_visible(tx: &TenantTx, ctx: &TenantCtx, s: &str) -> Result<TicketHandle> {
    let m = find_model(tx, ctx, s, false).await?;
    Ok(TicketHandle {
        id: m.id,
        project_id: m.project_id,
        requester_id: m.requester_id,
        deleted: m.deleted_at.is_some(),
        facts: TicketFacts::try_from(&m)?,
    })
}

/// A ticket the caller may see and act on by `action` in its project (in a project where they
/// only read, a change is 403).
pub(crate) async fn find_for(
    tx: &TenantTx,
    ctx: &TenantCtx,
    s: &str,
    action: Action,
) -> Result<TicketHandle> {
    let t = find_visible(tx, ctx, s).await?;
    projects::authorize_on_ticket(tx, ctx, t.project_id, action).await?;
    Ok(t)
}

/// What other parts of work need to know about a ticket.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TicketHandle {
    pub id: Uuid,
    pub project_id: Uuid,
    pub requester_id: Option<Uuid>,
    pub deleted: bool,
    /// What its SLA clocks depend on.
    pub facts: TicketFacts,
}

/// How a notification names a ticket, and whether it still exists (for the workers).
#[derive(Clone, Debug)]
pub(crate) struct Summary {
    pub key: String,
    pub title: String,
    pub requester_id: Option<Uuid>,
    pub deleted: bool,
    /// The ticket it was merged into, if it was.
    pub merged_into_id: Option<Uuid>,
}

/// The ticket as it is now; `None` if it is gone.
pub(crate) async fn summary(tx: &TenantTx, id: Uuid) -> Result<Option<Summary>> {
    Ok(summaries(tx, vec![id]).await?.remove(&id))
}

/// The summaries of the tickets with these ids that exist, by id: two statements however
/// many (for handlers that take a batch of events).
pub(crate) async fn summaries(tx: &TenantTx, ids: Vec<Uuid>) -> Result<HashMap<Uuid, Summary>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = tx
        .find::<ticket::Entity>()
        .filter(ticket::Column::Id.is_in(ids))
        .all(tx.conn())
        .await?;
    let project_ids: HashSet<Uuid> = rows.iter().map(|m| m.project_id).collect();
    let keys: HashMap<Uuid, String> = projects::keys_of(tx, project_ids.into_iter().collect())
        .await?
        .into_iter()
        .collect();
    Ok(rows
        .into_iter()
        .map(|m| {
            let key = keys.get(&m.project_id).map_or("", String::as_str);
            let summary = Summary {
                key: format!("{key}-{}", m.number),
                title: m.title,
                requester_id: m.requester_id,
                deleted: m.deleted_at.is_some(),
                merged_into_id: m.merged_into_id,
            };
            (m.id, summary)
        })
        .collect())
}

/// Where mail about ticket `id` goes now: the ticket it was merged into (following a few
/// merges), or itself; `None` when that ticket is deleted or gone.
pub(crate) async fn live(tx: &TenantTx, id: Uuid) -> Result<Option<Uuid>> {
    const MAX_HOPS: usize = 8;
    let mut id = id;
    for _ in 0..MAX_HOPS {
        match summary(tx, id).await? {
            Some(t) if t.deleted => return Ok(None),
            Some(Summary {
                merged_into_id: Some(next),
                ..
            }) => id = next,
            Some(_) => return Ok(Some(id)),
            None => return Ok(None),
        }
    }
    Ok(None)
}

/// The id of the ticket a key (`OPS-42`) or id names, whoever may see it (for inbound mail,
/// which applies its own rules).
pub(crate) async fn id_of(tx: &TenantTx, s: &str) -> Result<Option<Uuid>> {
    let owner = TenantCtx::authenticated(tx.org_id(), Uuid::nil(), access::Role::Owner, None);
    match find_model(tx, &owner, s, false).await {
        Ok(m) => Ok(Some(m.id)),
        Err(Error::NotFound(_)) => Ok(None),
        Err(err) => Err(err),
    }
}

/// The ticket's assignees.
pub(crate) async fn assignees_of(tx: &TenantTx, id: Uuid) -> Result<Vec<Uuid>> {
    assignments(tx, assignee::Column::UserId, assignee::Column::TicketId, id).await
}

/// The tickets `user_id` is assigned to.
pub(super) async fn assigned_to(tx: &TenantTx, user_id: Uuid) -> Result<Vec<Uuid>> {
    assignments(
        tx,
        assignee::Column::TicketId,
        assignee::Column::UserId,
        user_id,
    )
    .await
}

/// One side (`wanted`) of the assignments whose other side (`by`) is `id`, in order.
async fn assignments(
    tx: &TenantTx,
    wanted: assignee::Column,
    by: assignee::Column,
    id: Uuid,
) -> Result<Vec<Uuid>> {
    Ok(tx
        .find::<assignee::Entity>()
        .select_only()
        .column(wanted)
        .filter(by.eq(id))
        .order_by_asc(wanted)
        .into_tuple()
        .all(tx.conn())
        .await?)
}

/// Marks the ticket as touched (a comment) without a new version.
pub(crate) async fn touch(tx: &TenantTx, id: Uuid, at: DateTime<Utc>) -> Result<()> {
    tx.update_many::<ticket::Entity>()
        .col_expr(ticket::Column::UpdatedAt, Expr::value(at))
        .filter(ticket::Column::Id.eq(id))
        .exec(tx.conn())
        .await?;
    Ok(())
}

/// The tickets `query` selects (its filters, order and limit kept), each with its assignees
/// and labels aggregated, its project's key and its SLA clocks, in one statement: the query
/// becomes a common table expression the rest is joined to. The order of the answer is not
/// the query's; callers that need one sort it.
pub(super) async fn assemble(tx: &TenantTx, query: Select<ticket::Entity>) -> Result<Vec<Ticket>> {
    let backend = tx.conn().get_database_backend();
    let page = query.build(backend);
    let (assignees, labels) = match backend {
        DbBackend::Postgres => ("json_agg(a.user_id)::text", "json_agg(l.label)::text"),
        // SQLite keeps ids as 16-byte blobs: aggregated as hex, which `Uuid` reads back.
        _ => (
            "json_group_array(hex(a.user_id))",
            "json_group_array(l.label)",
        ),
    };
    let clock_columns: Vec<String> = clock::Column::iter()
        .map(|c| format!("c.{0} AS {CLOCK}{0}", c.as_str()))
        .collect();
    let sql = format!(
        "WITH page AS ({inner}) \
         SELECT page.*, p.key AS {KEY}, \
           (SELECT {assignees} FROM ticket_assignees a \
             WHERE a.org_id = page.org_id AND a.ticket_id = page.id) AS {ASSIGNEES}, \
           (SELECT {labels} FROM ticket_labels l \
             WHERE l.org_id = page.org_id AND l.ticket_id = page.id) AS {LABELS}, \
           CASE WHEN c.ticket_id IS NULL THEN 0 ELSE 1 END AS {HAS_CLOCK}, {clocks} \
         FROM page \
         JOIN projects p ON p.org_id = page.org_id AND p.id = page.project_id \
         LEFT JOIN sla_clocks c ON c.org_id = page.org_id AND c.ticket_id = page.id",
        inner = page.sql,
        clocks = clock_columns.join(", "),
    );
    let rows = tx
        .conn()
        .query_all_raw(Statement {
            sql,
            values: page.values,
            db_backend: backend,
        })
        .await?;
    // A ticket comes once per SLA clock (at least once): gathered in order of appearance.
    let mut parts: Vec<(ticket::Model, String, Vec<Uuid>, Vec<String>)> = Vec::new();
    let mut clocks: HashMap<Uuid, Vec<clock::Model>> = HashMap::new();
    let mut seen: HashSet<Uuid> = HashSet::new();
    for row in &rows {
        // The ticket is decoded once (it repeats for each of its clocks), and a clock only
        // where there is one: decoding a NULL costs the ORM a formatted error per column.
        let id: Uuid = row.try_get("", "id")?;
        if row.try_get::<i32>("", HAS_CLOCK)? == 1 {
            clocks
                .entry(id)
                .or_default()
                .push(clock::Model::from_query_result(row, CLOCK)?);
        }
        if !seen.insert(id) {
            continue;
        }
        let m = ticket_columns(row)?;
        let key: String = row.try_get("", KEY)?;
        let mut assignee_ids: Vec<Uuid> = json_list::<String>(row, ASSIGNEES)?
            .iter()
            .map(|s| Uuid::parse_str(s).map_err(|e| Error::internal(anyhow::anyhow!(e))))
            .collect::<Result<_>>()?;
        assignee_ids.sort_unstable();
        let mut labels: Vec<String> = json_list(row, LABELS)?;
        labels.sort_unstable();
        parts.push((m, key, assignee_ids, labels));
    }
    let now = crate::store::now();
    parts
        .into_iter()
        .map(|(m, key, assignee_ids, labels)| {
            Ok(Ticket {
                key: format!("{key}-{}", m.number),
                assignee_ids,
                labels,
                status: Status::parse(&m.status).ok_or_else(|| {
                    Error::internal(anyhow::anyhow!("stored status {} is unknown", m.status))
                })?,
                priority: Priority::from_rank(m.priority)?,
                sla: TicketSla::from_rows(clocks.remove(&m.id).unwrap_or_default(), now),
                id: m.id,
                project_id: m.project_id,
                number: m.number,
                title: m.title,
                description: m.description,
                requester_id: m.requester_id,
                due_at: m.due_at,
                first_response_due_at: m.first_response_due_at,
                resolution_due_at: m.resolution_due_at,
                version: m.version,
                created_by: m.created_by,
                created_at: m.created_at,
                updated_at: m.updated_at,
                resolved_at: m.resolved_at,
                closed_at: m.closed_at,
                deleted_at: m.deleted_at,
                parent_id: m.parent_id,
                merged_into_id: m.merged_into_id,
                subtasks: Progress {
                    total: u64::try_from(m.subtasks_total).unwrap_or_default(),
                    done: u64::try_from(m.subtasks_done).unwrap_or_default(),
                },
            })
        })
        .collect()
}

/// Column names of what [`assemble`] adds to a ticket's row.
const KEY: &str = "assembled_project_key";
const ASSIGNEES: &str = "assembled_assignees";
const LABELS: &str = "assembled_labels";
const CLOCK: &str = "clock_";
const HAS_CLOCK: &str = "assembled_has_clock";

/// The ticket's own columns of an assembled row, named by the entity and read with [`column`]:
/// most of a ticket's dates are `NULL`, which the ORM's own decoding makes costly.
fn ticket_columns(row: &QueryResult) -> Result<ticket::Model> {
    Ok(ticket::Model {
        org_id: column(row, ticket::Column::OrgId.as_str())?,
        id: column(row, ticket::Column::Id.as_str())?,
        project_id: column(row, ticket::Column::ProjectId.as_str())?,
        number: column(row, ticket::Column::Number.as_str())?,
        title: column(row, ticket::Column::Title.as_str())?,
        description: column(row, ticket::Column::Description.as_str())?,
        status: column(row, ticket::Column::Status.as_str())?,
        priority: column(row, ticket::Column::Priority.as_str())?,
        requester_id: column(row, ticket::Column::RequesterId.as_str())?,
        due_at: column(row, ticket::Column::DueAt.as_str())?,
        first_response_due_at: column(row, ticket::Column::FirstResponseDueAt.as_str())?,
        resolution_due_at: column(row, ticket::Column::ResolutionDueAt.as_str())?,
        version: column(row, ticket::Column::Version.as_str())?,
        created_by: column(row, ticket::Column::CreatedBy.as_str())?,
        created_at: column(row, ticket::Column::CreatedAt.as_str())?,
        updated_at: column(row, ticket::Column::UpdatedAt.as_str())?,
        resolved_at: column(row, ticket::Column::ResolvedAt.as_str())?,
        closed_at: column(row, ticket::Column::ClosedAt.as_str())?,
        deleted_at: column(row, ticket::Column::DeletedAt.as_str())?,
        parent_id: column(row, ticket::Column::ParentId.as_str())?,
        merged_into_id: column(row, ticket::Column::MergedIntoId.as_str())?,
        subtasks_total: column(row, ticket::Column::SubtasksTotal.as_str())?,
        subtasks_done: column(row, ticket::Column::SubtasksDone.as_str())?,
    })
}

/// A JSON array column (`NULL` when the aggregate had no rows).
fn json_list<T: serde::de::DeserializeOwned>(row: &QueryResult, name: &str) -> Result<Vec<T>> {
    let text: Option<String> = column(row, name)?;
    match text {
        None => Ok(Vec::new()),
        Some(text) => {
            serde_json::from_str(&text).map_err(|e| Error::internal(anyhow::anyhow!("{name}: {e}")))
        }
    }
}

/// The ticket as it is now, deleted or not, locked for a change (for workers acting on it).
pub(crate) async fn current(tx: &TenantTx, id: Uuid) -> Result<Option<Ticket>> {
    match tx
        .find_for_update::<ticket::Entity>()
        .filter(ticket::Column::Id.eq(id))
        .one(tx.conn())
        .await?
    {
        Some(m) => load_one(tx, m.id).await.map(Some),
        None => Ok(None),
    }
}

/// The tickets with these ids, assembled, in that order (those that are gone left out).
pub(crate) async fn load_many(tx: &TenantTx, ids: &[Uuid]) -> Result<Vec<Ticket>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let by_id = tx
        .find::<ticket::Entity>()
        .filter(ticket::Column::Id.is_in(ids.iter().copied()));
    let mut tickets: HashMap<Uuid, Ticket> = assemble(tx, by_id)
        .await?
        .into_iter()
        .map(|t| (t.id, t))
        .collect();
    Ok(ids.iter().filter_map(|id| tickets.remove(id)).collect())
}

/// The tickets with these ids that `ctx` may see (through the transaction's wall, then as a
/// lookup judges them), assembled, in no particular order.
pub(crate) async fn seen_by(tx: &TenantTx, ctx: &TenantCtx, ids: &[Uuid]) -> Result<Vec<Ticket>> {
    Ok(load_many(tx, ids)
        .await?
        .into_iter()
        .filter(|t| !hidden(ctx, t.requester_id, t.deleted_at.is_some()))
        .collect())
}

/// One ticket by id, assembled.
pub(crate) async fn load_one(tx: &TenantTx, id: Uuid) -> Result<Ticket> {
    load_many(tx, &[id])
        .await?
        .pop()
        .ok_or(Error::NotFound("ticket"))
}

pub async fn get(db: &Db, ctx: &TenantCtx, id: &str) -> Result<Ticket> {
    access::authorize(ctx, Action::TicketRead)?;
    let tx = db.read(ctx).await?;
    let query = ref_query(&tx, id, false).await?;
    let t = assemble(&tx, query)
        .await?
        .pop()
        .ok_or(Error::NotFound("ticket"))?;
    tx.commit().await?;
    if hidden(ctx, t.requester_id, t.deleted_at.is_some()) {
        return Err(Error::NotFound("ticket"));
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticket_refs_are_ids_or_keys() {
        assert!(matches!(
            parse_ref(&Uuid::now_v7().to_string()),
            Some(TicketRef::Id(_))
        ));
        assert!(matches!(parse_ref("OPS-42"), Some(TicketRef::Key(k, 42)) if k == "OPS"));
        for bad in [
            "ops-1",
            "OPS-0",
            "OPS--1",
            "O-1",
            "OPS-",
            "-1",
            "OPS-1x",
            "ABCDEFGHIJK-1",
            "",
        ] {
            assert!(parse_ref(bad).is_none(), "{bad}");
        }
    }
}
