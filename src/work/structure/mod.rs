//! Structure between tickets: subtasks (a parent and its children), links (`blocks`,
//! `relates`, `duplicates`), merging one ticket into another (and undoing it), splitting
//! comments off into a new ticket, and changing many tickets at once. Each change goes through
//! the ticket write path (`work::tickets`), so it gets its version, timeline entry and events.

pub mod bulk;
pub mod links;
pub mod merge;
pub mod split;
pub mod subtasks;

/// Unties tickets `ids` (being purged) from the rest: their links and merge records go, their
/// subtasks become top-level tickets, tickets merged into them keep no pointer, and the parents
/// they were subtasks of stop counting them.
pub(crate) async fn forget_tickets(
    tx: &crate::store::TenantTx,
    ids: &[uuid::Uuid],
) -> crate::error::Result<()> {
    use sea_orm::{ColumnTrait, Condition, QueryFilter, sea_query::Expr};

    use super::entity::{link, merge, ticket};

    tx.delete_many::<link::Entity>()
        .filter(
            Condition::any()
                .add(link::Column::SourceId.is_in(ids.iter().copied()))
                .add(link::Column::TargetId.is_in(ids.iter().copied())),
        )
        .exec(tx.conn())
        .await?;
    tx.delete_many::<merge::Entity>()
        .filter(
            Condition::any()
                .add(merge::Column::SourceId.is_in(ids.iter().copied()))
                .add(merge::Column::TargetId.is_in(ids.iter().copied())),
        )
        .exec(tx.conn())
        .await?;
    let purged = tx
        .find::<ticket::Entity>()
        .filter(ticket::Column::Id.is_in(ids.iter().copied()))
        .all(tx.conn())
        .await?;
    for t in purged.iter().filter(|t| t.deleted_at.is_none()) {
        if let Some(parent) = t.parent_id.filter(|p| !ids.contains(p)) {
            let done = super::Status::parse(&t.status).is_some_and(super::Status::is_done);
            subtasks::adjust(tx, parent, -1, -i64::from(done)).await?;
        }
    }
    for column in [ticket::Column::ParentId, ticket::Column::MergedIntoId] {
        tx.update_many::<ticket::Entity>()
            .col_expr(column, Expr::value(Option::<uuid::Uuid>::None))
            .filter(column.is_in(ids.iter().copied()))
            .filter(ticket::Column::Id.is_not_in(ids.iter().copied()))
            .exec(tx.conn())
            .await?;
    }
    Ok(())
}
