//! Subtasks: a ticket may have a parent, in a chain at most [`MAX_DEPTH`] tickets below a
//! top-level one; never itself, never its own descendant, never across projects that different
//! people can see.

use std::collections::HashSet;

use sea_orm::{ColumnTrait, QueryFilter, QuerySelect};
use uuid::Uuid;

use crate::{
    error::{Result, Validator},
    store::TenantTx,
    work::{entity::ticket, projects},
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
        if a.visibility != b.visibility {
            v.push(
                FIELD,
                "is in a project of another visibility (its subtasks would be seen by other people)",
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
