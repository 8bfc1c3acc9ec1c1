//! An erased person's traces in the organisation's mail: their address in conversations (so
//! their threads stop matching it), in addresses held back, in the ingest log, and their bounce
//! marks.

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, sea_query::ExprTrait as _};

use super::{
    entity::{bounce, message, thread},
    ingest,
};
use crate::{
    error::Result,
    store::{self, TenantTx},
    text::Traces,
};

/// Scrubs the organisation's mail records of `traces`; answers how many records changed.
pub(crate) async fn scrub(tx: &TenantTx, traces: &Traces) -> Result<u64> {
    let mut changed = 0;
    for address in &traces.addresses {
        let pattern = format!("%{address}%");
        let conn = tx.conn();
        let cast = match conn.get_database_backend() {
            sea_orm::DbBackend::Postgres => "::text",
            _ => "",
        };
        let threads = thread::Entity::find()
            .from_raw_sql(store::statement(
                conn.get_database_backend(),
                &format!(
                    "SELECT * FROM mail_threads WHERE org_id = $1 \
                     AND lower(participants{cast}) LIKE $2"
                ),
                [tx.org_id().into(), pattern.clone().into()],
            ))
            .all(conn)
            .await?;
        for t in threads {
            let mut participants = t.participants.clone();
            if traces.scrub_json(&mut participants) {
                tx.update_many::<thread::Entity>()
                    .col_expr(thread::Column::Participants, participants.into())
                    .filter(thread::Column::TicketId.eq(t.ticket_id))
                    .exec(conn)
                    .await?;
                changed += 1;
            }
        }
        let held = message::Entity::find()
            .from_raw_sql(store::statement(
                conn.get_database_backend(),
                &format!(
                    "SELECT * FROM mail_messages WHERE org_id = $1 \
                     AND lower(held_participants{cast}) LIKE $2"
                ),
                [tx.org_id().into(), pattern.into()],
            ))
            .all(conn)
            .await?;
        for m in held {
            let mut addresses = m.held_participants.clone().unwrap_or_default();
            if traces.scrub_json(&mut addresses) {
                tx.update_many::<message::Entity>()
                    .col_expr(message::Column::HeldParticipants, addresses.into())
                    .filter(message::Column::MessageId.eq(m.message_id.clone()))
                    .exec(conn)
                    .await?;
                changed += 1;
            }
        }
    }
    changed += ingest::scrub_senders(tx, traces).await?;
    let lower = |c| {
        sea_orm::sea_query::Expr::expr(sea_orm::sea_query::Func::lower(
            sea_orm::sea_query::Expr::col(c),
        ))
    };
    let bounces = tx
        .delete_many::<bounce::Entity>()
        .filter(lower(bounce::Column::Address).is_in(traces.addresses.iter().cloned()))
        .exec(tx.conn())
        .await?;
    Ok(changed + bounces.rows_affected)
}
