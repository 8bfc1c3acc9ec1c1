//! Tickets: what a ticket is, and what its timeline records of it. Reading and visibility live
//! in `lookup`, the write path (state machine, timeline, events) in `write`, the filtered and
//! keyset-paginated listing in `list`.

mod list;
mod lookup;
mod write;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Priority, Status, entity::ticket, sla::TicketSla};
use crate::events::contract::TicketRef;
pub(crate) use list::filtered_ids;
pub use list::{ListQuery, SortKey, TicketFilter, list, list_planning, list_statement, mine};
pub use lookup::get;
pub(crate) use lookup::load_many;
pub(crate) use lookup::{
    Summary, TicketHandle, assignees_of, current, find_for, find_visible, id_of, live, summaries,
    summary, touch,
};
pub(crate) use lookup::{load_one as load, seen_by};
pub(crate) use write::move_to;
pub(crate) use write::{Change, lock, move_requester, reassign_by_system, save, update_with};
pub use write::{assign, complete, create, delete, reopen, restore, unassign_everywhere, update};

pub const MAX_LABELS: usize = 20;
pub const MAX_LABEL: usize = 50;
pub const MAX_ASSIGNEES: usize = 20;

#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Ticket {
    pub id: Uuid,
    /// The project's key and the ticket's number in it.
    #[schema(example = "OPS-42")]
    pub key: String,
    pub project_id: Uuid,
    pub number: i64,
    pub title: String,
    pub description: Option<String>,
    pub status: Status,
    pub priority: Priority,
    pub assignee_ids: Vec<Uuid>,
    pub requester_id: Option<Uuid>,
    pub labels: Vec<String>,
    pub due_at: Option<DateTime<Utc>>,
    pub first_response_due_at: Option<DateTime<Utc>>,
    pub resolution_due_at: Option<DateTime<Utc>>,
    /// Incremented by every change; send it back in `If-Match`.
    pub version: i64,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    /// Set while the ticket is deleted (only admins see deleted tickets).
    pub deleted_at: Option<DateTime<Utc>>,
    /// The SLA clocks, under a policy: each one's state and how its due time was computed.
    pub sla: Option<TicketSla>,
    /// The ticket this one is a subtask of.
    pub parent_id: Option<Uuid>,
    /// Set when the ticket was merged into another (it is closed).
    pub merged_into_id: Option<Uuid>,
    /// Its subtasks, counted (deleted ones not at all).
    pub subtasks: Progress,
}

/// How many of a set of tickets there are, and how many are done (resolved, closed or
/// cancelled).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Progress {
    pub total: u64,
    pub done: u64,
}

/// The fields the timeline records; replaying a ticket's timeline from nothing yields them.
pub const REPLAYED_FIELDS: [&str; 16] = [
    "project_id",
    "key",
    "number",
    "title",
    "description",
    "status",
    "priority",
    "assignee_ids",
    "requester_id",
    "labels",
    "due_at",
    "resolved_at",
    "closed_at",
    "deleted_at",
    "parent_id",
    "merged_into_id",
];

impl Ticket {
    /// How events name the ticket as it is now.
    pub(crate) fn event_ref(&self) -> TicketRef {
        TicketRef {
            ticket_id: self.id,
            project_id: self.project_id,
            key: self.key.clone(),
            requester_id: self.requester_id,
            version: self.version,
        }
    }
}

pub(crate) fn snapshot(t: &Ticket) -> Map<String, Value> {
    let Value::Object(all) = serde_json::to_value(t).unwrap_or_default() else {
        return Map::new();
    };
    all.into_iter()
        .filter(|(k, _)| REPLAYED_FIELDS.contains(&k.as_str()))
        .collect()
}

/// Field → `{"from", "to"}` for every recorded field that differs.
pub(crate) fn diff(before: &Map<String, Value>, after: &Map<String, Value>) -> Map<String, Value> {
    REPLAYED_FIELDS
        .iter()
        .filter_map(|f| {
            let (from, to) = (
                before.get(*f).unwrap_or(&Value::Null),
                after.get(*f).unwrap_or(&Value::Null),
            );
            (from != to).then(|| (f.to_string(), json!({"from": from, "to": to})))
        })
        .collect()
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTicket {
    pub project_id: Uuid,
    #[schema(schema_with = crate::text::line_schema)]
    pub title: String,
    #[schema(schema_with = crate::text::optional_text_schema)]
    pub description: Option<String>,
    /// Default `medium`.
    pub priority: Option<Priority>,
    /// Members with an agent role or above (at most 20).
    #[serde(default)]
    #[schema(max_items = 20)]
    pub assignee_ids: Vec<Uuid>,
    /// Default: the person filing the ticket.
    pub requester_id: Option<Uuid>,
    #[serde(default)]
    #[schema(max_items = 20)]
    pub labels: Vec<String>,
    /// Years 1–9999.
    #[serde(default, deserialize_with = "super::instant")]
    pub due_at: Option<DateTime<Utc>>,
    /// Makes the new ticket a subtask of this one.
    pub parent_id: Option<Uuid>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketPatch {
    /// Moves the ticket to another project: it gets that project's next number and key.
    pub project_id: Option<Uuid>,
    #[schema(schema_with = crate::text::optional_line_schema)]
    pub title: Option<String>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "super::nullable")]
    #[schema(schema_with = crate::text::optional_text_schema)]
    pub description: Option<Option<String>>,
    pub priority: Option<Priority>,
    /// Replaces the assignees.
    #[schema(max_items = 20)]
    pub assignee_ids: Option<Vec<Uuid>>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "super::nullable")]
    #[schema(value_type = Option<Uuid>)]
    pub requester_id: Option<Option<Uuid>>,
    /// Replaces the labels.
    #[schema(max_items = 20)]
    pub labels: Option<Vec<String>>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "super::nullable_instant")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub due_at: Option<Option<DateTime<Utc>>>,
    /// Goes through the state machine; a move it does not allow is 409 `invalid_transition`.
    pub status: Option<Status>,
    /// Makes the ticket a subtask of another; `null` makes it a top-level ticket again.
    #[serde(default, deserialize_with = "super::nullable")]
    #[schema(value_type = Option<Uuid>)]
    pub parent_id: Option<Option<Uuid>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Assignment {
    /// The new assignees (replacing the current ones); `[]` unassigns everyone.
    #[schema(max_items = 20)]
    pub assignee_ids: Vec<Uuid>,
}

pub(crate) fn to_model(org_id: Uuid, t: &Ticket) -> ticket::Model {
    ticket::Model {
        org_id,
        id: t.id,
        project_id: t.project_id,
        number: t.number,
        title: t.title.clone(),
        description: t.description.clone(),
        status: t.status.as_str().to_owned(),
        priority: t.priority.rank(),
        requester_id: t.requester_id,
        due_at: t.due_at,
        first_response_due_at: t.first_response_due_at,
        resolution_due_at: t.resolution_due_at,
        version: t.version,
        created_by: t.created_by,
        created_at: t.created_at,
        updated_at: t.updated_at,
        resolved_at: t.resolved_at,
        closed_at: t.closed_at,
        deleted_at: t.deleted_at,
        parent_id: t.parent_id,
        merged_into_id: t.merged_into_id,
        subtasks_total: i64::try_from(t.subtasks.total).unwrap_or(i64::MAX),
        subtasks_done: i64::try_from(t.subtasks.done).unwrap_or(i64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_names_only_changed_recorded_fields() {
        let a: Map<String, Value> = json!({"title": "a", "status": "open"})
            .as_object()
            .cloned()
            .unwrap();
        let b: Map<String, Value> = json!({"title": "a", "status": "pending", "version": 3})
            .as_object()
            .cloned()
            .unwrap();
        let d = diff(&a, &b);
        assert_eq!(
            Value::Object(d),
            json!({"status": {"from": "open", "to": "pending"}})
        );
    }
}
