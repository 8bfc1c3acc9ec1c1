//! Subtasks: a ticket may have a parent, in a chain at most [`MAX_DEPTH`] tickets below a
//! top-level one; never itself, never its own descendant, and in another project only where
//! both are open to the whole organisation (so whoever sees a parent sees its subtasks). A
//! parent keeps its subtasks counted (`recount`), so a page of tickets shows them for free.

use std::collections::HashSet;

use sea_orm::{ColumnTrait, ConnectionTrait, QueryFilter, QuerySelect};
use uuid::Uuid;

use crate::{
    access::project::Visibility,
    error::{Result, Validator},
    store::{self, TenantTx},
    work::{entity::ticket, projects, tickets::Ticket},
};

/// How many ancestors a ticket may have.
pub const MAX_DEPTH: usize = 5;

/// The parent of `id`, if it has one and the transaction may see it.
async fn parent_of(tx: &TenantTx, id: Uuid) -> Result<Option<ticket::Model>> {
    Ok(tx
        .find::<ticket::Entity>()
        .filter(ticket::Column::Id.eq(id))
        .filter(ticket::Column::DeletedAt.is_null())
        .one(tx.conn())
        .await?)
}

/// How many levels of subtasks hang below `id` (0: none), looked at down to `limit` levels.
async fn height(tx: &TenantTx, id: Uuid, limit: usize) -> Result<usize> {
    let mut level = vec![id];
    let mut height = 0;
    while !level.is_empty() && height <= limit {
        level = tx
            .find::<ticket::Entity>()
            .select_only()
            .column(ticket::Column::Id)
            .filter(ticket::Column::ParentId.is_in(level))
            .filter(ticket::Column::DeletedAt.is_null())
            .into_tuple()
            .all(tx.conn())
            .await?;
        if !level.is_empty() {
            height += 1;
        }
    }
    Ok(height)
}

/// Checks that `parent_id` may be the parent of the ticket `child` (`None`: a ticket not
/// created yet) in project `project_id`; reasons go to `parent_id` in `v`.
pub(crate) async fn check_parent(
    tx: &TenantTx,
    v: &mut Validator,
    child: Option<Uuid>,
    project_id: Uuid,
    parent_id: Uuid,
) -> Result<()> {
    const FIELD: &str = "parent_id";
    if Some(parent_id) == child {
        v.push(FIELD, "a ticket cannot be its own parent");
        return Ok(());
    }
    let Some(parent) = parent_of(tx, parent_id).await? else {
        v.push(FIELD, "no such ticket");
        return Ok(());
    };
    if parent.merged_into_id.is_some() {
        v.push(FIELD, "is merged into another ticket");
        return Ok(());
    }
    if parent.project_id != project_id {
        let (a, b) = (
            projects::find(tx, parent.project_id).await?,
            projects::find(tx, project_id).await?,
        );
        let open = Visibility::Org.as_str();
        if a.visibility != open || b.visibility != open {
            v.push(
                FIELD,
                "is in another project that not everyone sees (its subtasks would be seen by other people)",
            );
            return Ok(());
        }
    }
    // Walk up from the parent: the child must not be there (a cycle), and the chain is short.
    let mut ancestors = 1;
    let mut seen = HashSet::from([parent.id]);
    let mut up = parent.parent_id;
    while let Some(id) = up {
        if Some(id) == child {
            v.push(
                FIELD,
                "would make a cycle (the ticket is above its new parent)",
            );
            return Ok(());
        }
        if !seen.insert(id) || ancestors > MAX_DEPTH {
            break;
        }
        ancestors += 1;
        up = parent_of(tx, id).await?.and_then(|t| t.parent_id);
    }
    let below = match child {
        Some(child) => height(tx, child, MAX_DEPTH).await?,
        None => 0,
    };
    if ancestors + below > MAX_DEPTH {
        v.push(
            FIELD,
            format!("subtasks nest at most {MAX_DEPTH} levels below a top-level ticket"),
        );
    }
    Ok(())
}

/// Keeps the parents' subtask counts as a ticket changes from `before` (none: it is new) to
/// `after`: a subtask counts while it is not deleted, as done when resolved, closed or
/// cancelled.
pub(crate) async fn recount(tx: &TenantTx, before: Option<&Ticket>, after: &Ticket) -> Result<()> {
    let counted = |t: &Ticket| {
        t.parent_id
            .filter(|_| t.deleted_at.is_none())
            .map(|parent| (parent, t.status.is_done()))
    };
    let (was, is) = (before.and_then(counted), counted(after));
    if was == is {
        return Ok(());
    }
    if let Some((parent, done)) = was {
        adjust(tx, parent, -1, -i64::from(done)).await?;
    }
    if let Some((parent, done)) = is {
        adjust(tx, parent, 1, i64::from(done)).await?;
    }
    Ok(())
}

/// Moves a parent's counts (not its version: they are derived from its subtasks).
pub(super) async fn adjust(tx: &TenantTx, parent: Uuid, total: i64, done: i64) -> Result<()> {
    let backend = tx.conn().get_database_backend();
    tx.conn()
        .execute_raw(store::statement(
            backend,
            "UPDATE tickets SET subtasks_total = subtasks_total + $3, \
               subtasks_done = subtasks_done + $4 WHERE org_id = $1 AND id = $2",
            [tx.org_id().into(), parent.into(), total.into(), done.into()],
        ))
        .await?;
    Ok(())
}
