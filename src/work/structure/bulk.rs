//! Changing many tickets at once. Each ticket is judged and changed on its own (the caller's
//! role, the project's rules, the state machine), with its own version, timeline entry and
//! events; one that fails is left as it was and says why, the others go through.

use std::collections::{BTreeSet, HashSet};

use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    access::{self, Action, TenantCtx},
    error::{Error, Result, Validator},
    store::TenantTx,
    work::{
        Priority, Status,
        tickets::{self, Ticket, TicketPatch},
    },
};

/// At most this many tickets in one call.
pub const MAX_IDS: usize = 500;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkRequest {
    /// Ticket ids or keys (1 to 500, each once).
    #[schema(min_items = 1, max_items = 500)]
    pub ids: Vec<String>,
    pub set: BulkSet,
}

/// What to change on every ticket (at least one field).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkSet {
    /// Through each ticket's state machine.
    pub status: Option<Status>,
    pub priority: Option<Priority>,
    /// Replaces the assignees.
    #[schema(max_items = 20)]
    pub assignee_ids: Option<Vec<Uuid>>,
    /// Added to the labels each ticket has.
    #[serde(default)]
    #[schema(max_items = 20)]
    pub add_labels: Vec<String>,
    /// Taken off the labels each ticket has.
    #[serde(default)]
    #[schema(max_items = 20)]
    pub remove_labels: Vec<String>,
}

impl BulkSet {
    fn is_empty(&self) -> bool {
        self.status.is_none()
            && self.priority.is_none()
            && self.assignee_ids.is_none()
            && self.add_labels.is_empty()
            && self.remove_labels.is_empty()
    }

    /// The patch for one ticket as it is now.
    fn patch(&self, t: &Ticket) -> TicketPatch {
        let labels = (!self.add_labels.is_empty() || !self.remove_labels.is_empty()).then(|| {
            let remove: HashSet<&str> = self.remove_labels.iter().map(|l| l.trim()).collect();
            let labels: BTreeSet<String> = t
                .labels
                .iter()
                .cloned()
                .chain(self.add_labels.iter().map(|l| l.trim().to_owned()))
                .filter(|l| !remove.contains(l.as_str()))
                .collect();
            labels.into_iter().collect()
        });
        TicketPatch {
            status: self.status.filter(|s| *s != t.status),
            priority: self.priority,
            assignee_ids: self.assignee_ids.clone(),
            labels,
            ..Default::default()
        }
    }
}

/// `POST /tickets/bulk`: one outcome per id, in the order asked.
pub async fn bulk(
    tx: &TenantTx,
    ctx: &TenantCtx,
    req: BulkRequest,
) -> Result<Vec<(String, Result<Ticket>)>> {
    access::authorize(ctx, Action::TicketUpdate)?;
    let mut v = Validator::default();
    v.check(!req.ids.is_empty(), "ids", "name at least one ticket");
    v.check(
        req.ids.len() <= MAX_IDS,
        "ids",
        &format!("at most {MAX_IDS} tickets"),
    );
    v.check(!req.set.is_empty(), "set", "name at least one change");
    let mut seen = HashSet::new();
    for (i, id) in req.ids.iter().enumerate() {
        if !seen.insert(id.as_str()) {
            v.push(&format!("ids[{i}]"), "is listed twice");
        }
    }
    v.finish()?;
    let mut outcomes = Vec::with_capacity(req.ids.len());
    for id in req.ids {
        let done = tx
            .attempt(tickets::update_with(tx, ctx, &id, |t| req.set.patch(t)))
            .await;
        match done {
            // A failure of the database itself is the call's, not one ticket's.
            Err(err @ (Error::Internal(_) | Error::Unavailable { .. })) => return Err(err),
            done => outcomes.push((id, done)),
        }
    }
    Ok(outcomes)
}
