//! The SLA timer: reads the clocks whose `next_check_at` has come (an index, never a scan of
//! tickets) and announces each warning and breach once. The announcement (`sla.warning` or
//! `sla.breached` event, the timeline entry, an escalation's reassignment) and the clock's new
//! stage commit together, under the ticket's and the clock's row locks: a second worker, or
//! this one after a crash, finds the stage already moved on and announces nothing twice.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde_json::json;
use tokio::sync::watch;
use uuid::Uuid;

use super::{
    clocks::{Stage, entity as clock, next_check},
    policies::{self, EscalationTrigger},
};
use crate::{
    error::Result,
    events::{
        self, Body,
        contract::{SlaAlert, TicketRef},
    },
    store::{self, Db},
    work::{tickets, timeline},
};

/// Clocks looked at per round.
const BATCH: u64 = 200;
/// The longest a warning or breach waits to be announced.
const POLL: Duration = Duration::from_secs(2);

/// Announces until `stop` turns true.
pub async fn run(db: Db, mut stop: watch::Receiver<bool>) {
    loop {
        if *stop.borrow() {
            break;
        }
        let wait = match fire_due(&db, store::now()).await {
            Ok(n) if n as u64 >= BATCH => Duration::ZERO,
            Ok(_) => POLL,
            Err(err) => {
                tracing::warn!(error = ?err, "announcing SLA warnings and breaches failed; will retry");
                POLL
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => break,
        }
    }
}

/// Looks at every clock due for a check at `now`; returns how many it looked at.
pub async fn fire_due(db: &Db, now: DateTime<Utc>) -> Result<usize> {
    let tx = db.maintenance().await?;
    let due: Vec<(Uuid, Uuid, String)> = clock::Entity::find()
        .select_only()
        .columns([
            clock::Column::OrgId,
            clock::Column::TicketId,
            clock::Column::Kind,
        ])
        .filter(clock::Column::NextCheckAt.lte(now))
        .order_by_asc(clock::Column::NextCheckAt)
        .limit(BATCH)
        .into_tuple()
        .all(tx.conn())
        .await?;
    tx.commit().await?;
    for (org_id, ticket_id, kind) in &due {
        fire(db, *org_id, *ticket_id, kind, now).await?;
    }
    Ok(due.len())
}

/// Moves one clock to the stage it has reached, announcing it if that is further than before.
async fn fire(
    db: &Db,
    org_id: Uuid,
    ticket_id: Uuid,
    kind: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    let tx = db.write_org(org_id).await?;
    // The ticket first, then its clock: the order the ticket write path locks them in.
    let ticket = tickets::current(&tx, ticket_id).await?;
    let Some(c) = tx
        .find_for_update::<clock::Entity>()
        .filter(clock::Column::TicketId.eq(ticket_id))
        .filter(clock::Column::Kind.eq(kind))
        .one(tx.conn())
        .await?
    else {
        return Ok(tx.rollback().await?);
    };
    if c.next_check_at.is_none_or(|at| at > now) {
        // Another worker, or a ticket change, got here first.
        return Ok(tx.rollback().await?);
    }
    let stage = Stage::from_db(c.stage);
    let reached = if c.met_at.is_some() {
        stage
    } else {
        Stage::reached(now, c.warn_at, c.due_at).max(stage)
    };
    tx.update_many::<clock::Entity>()
        .col_expr(clock::Column::Stage, (reached as i16).into())
        .col_expr(
            clock::Column::NextCheckAt,
            next_check(reached, c.warn_at, c.due_at).into(),
        )
        .filter(clock::Column::TicketId.eq(ticket_id))
        .filter(clock::Column::Kind.eq(kind))
        .exec(tx.conn())
        .await?;
    let (Some(ticket), Some(due_at)) = (ticket.filter(|t| t.deleted_at.is_none()), c.due_at) else {
        return Ok(tx.commit().await?);
    };
    if reached > stage {
        // Decided as of `now`; recorded when it happens.
        let at = store::now();
        let trigger = if reached == Stage::Breached {
            EscalationTrigger::Breach
        } else {
            EscalationTrigger::Warning
        };
        let rules: Vec<_> = policies::find(&tx, c.policy_id)
            .await?
            .map(|p| p.escalations())
            .unwrap_or_default()
            .into_iter()
            .filter(|e| e.on == trigger)
            .collect();
        let event_kind = match trigger {
            EscalationTrigger::Breach => "sla.breached",
            EscalationTrigger::Warning => "sla.warning",
        };
        timeline::record_as(
            &tx,
            None,
            timeline::Entry {
                project_id: ticket.project_id,
                ticket_id: Some(ticket.id),
                kind: event_kind,
                // Service targets are staff business.
                internal: true,
                version: None,
                changes: json!({"clock": kind, "due_at": due_at, "policy_id": c.policy_id}),
                at,
            },
        )
        .await?;
        let alert = SlaAlert {
            ticket: TicketRef {
                ticket_id: ticket.id,
                project_id: ticket.project_id,
                key: ticket.key.clone(),
                requester_id: ticket.requester_id,
                version: ticket.version,
            },
            clock: kind.to_owned(),
            policy_id: c.policy_id,
            due_at,
            notify_role: rules
                .iter()
                .find_map(|r| r.notify_role)
                .map(|r| r.as_str().to_owned()),
            assignee_ids: ticket.assignee_ids.clone(),
        };
        let body = match trigger {
            EscalationTrigger::Breach => Body::SlaBreached(alert),
            EscalationTrigger::Warning => Body::SlaWarning(alert),
        };
        events::emit(&tx, None, body, at).await?;
        if let Some(to) = rules.iter().find_map(|r| r.reassign_to) {
            tickets::reassign_by_system(&tx, ticket.id, to).await?;
        }
    }
    tx.commit().await?;
    Ok(())
}
