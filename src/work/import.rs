//! Bulk import of projects and of tickets with their history, for the demo and benchmark
//! dataset (`docket admin seed-demo`). Rows go in as multi-row inserts, and each ticket gets the
//! timeline it would have had if it had been filed, worked and commented through the API:
//! replaying it yields the ticket, and every status move is one the state machine allows.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait, IntoActiveModel, Iterable};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::{
    Priority, Status,
    entity::{assignee, comment, event, label, project},
    projects::ProjectStatus,
    search,
    tickets::{Ticket, diff, move_to, snapshot, to_model},
};
use crate::{access::project::Visibility, error::Result, store::TenantTx};

pub struct ImportedProject {
    pub id: Uuid,
    pub key: String,
    pub name: String,
    /// The highest ticket number imported into it (new tickets continue from there).
    pub ticket_counter: i64,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
}

pub struct ImportedTicket {
    pub project_id: Uuid,
    pub key: String,
    pub number: i64,
    pub title: String,
    pub description: Option<String>,
    pub priority: Priority,
    pub requester_id: Uuid,
    pub assignee_ids: Vec<Uuid>,
    pub labels: Vec<String>,
    pub due_at: Option<DateTime<Utc>>,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
    /// Where the ticket's work left it; it gets there through the usual moves.
    pub status: Status,
    /// Who moved it.
    pub worked_by: Uuid,
    /// When it last changed: the last status move happens then.
    pub last_activity: DateTime<Utc>,
    /// Between `created_at` and `last_activity`.
    pub comments: Vec<ImportedComment>,
}

pub struct ImportedComment {
    pub author_id: Uuid,
    pub body: String,
    pub internal: bool,
    pub at: DateTime<Utc>,
}

/// The moves that take a new (open) ticket to `status`.
fn path_to(status: Status) -> &'static [Status] {
    use Status::*;
    match status {
        Open => &[],
        InProgress => &[InProgress],
        Pending => &[InProgress, Pending],
        Resolved => &[InProgress, Resolved],
        Closed => &[InProgress, Resolved, Closed],
        Cancelled => &[Cancelled],
    }
}

/// Statements stay under SQLite's limit of 32,766 bound values (PostgreSQL allows 65,535).
const MAX_VALUES: usize = 30_000;

/// Inserts `rows` in statements of as many rows as the bound values allow (counted from the
/// entity's columns, so a migration that adds one cannot push a statement past the limit).
async fn insert_chunked<A>(tx: &TenantTx, rows: Vec<A>) -> Result<()>
where
    A: ActiveModelTrait + Send,
{
    let columns = <<A::Entity as EntityTrait>::Column as Iterable>::iter().count();
    let per_statement = (MAX_VALUES / columns.max(1)).max(1);
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<A> = rows.by_ref().take(per_statement).collect();
        A::Entity::insert_many(chunk)
            .exec_without_returning(tx.conn())
            .await?;
    }
    Ok(())
}

pub(crate) async fn projects(tx: &TenantTx, projects: Vec<ImportedProject>) -> Result<()> {
    let rows = projects.into_iter().map(|p| project::ActiveModel {
        org_id: Set(tx.org_id()),
        id: Set(p.id),
        key: Set(p.key),
        name: Set(p.name),
        description: Set(None),
        ticket_counter: Set(p.ticket_counter),
        archived_at: Set(None),
        created_by: Set(Some(p.created_by)),
        created_at: Set(p.created_at),
        updated_at: Set(p.created_at),
        status: Set(ProjectStatus::Active.as_str().to_owned()),
        start_date: Set(None),
        target_date: Set(None),
        lead_id: Set(None),
        visibility: Set(Visibility::Org.as_str().to_owned()),
    });
    insert_chunked(tx, rows.collect()).await
}

/// The rows of a batch of tickets, kept apart per table for multi-row inserts.
struct Rows {
    org_id: Uuid,
    tickets: Vec<super::entity::ticket::ActiveModel>,
    assignees: Vec<assignee::ActiveModel>,
    labels: Vec<label::ActiveModel>,
    comments: Vec<comment::ActiveModel>,
    timeline: Vec<event::ActiveModel>,
}

impl Rows {
    fn entry(
        &mut self,
        t: &Ticket,
        actor: Uuid,
        kind: &str,
        (internal, version): (bool, Option<i64>),
        changes: Value,
        at: DateTime<Utc>,
    ) {
        self.timeline.push(event::ActiveModel {
            org_id: Set(self.org_id),
            id: Set(Uuid::now_v7()),
            project_id: Set(t.project_id),
            ticket_id: Set(Some(t.id)),
            actor_id: Set(Some(actor)),
            kind: Set(kind.to_owned()),
            internal: Set(internal),
            version: Set(version),
            changes: Set(changes),
            created_at: Set(at),
            redacted_at: Set(None),
        });
    }

    fn add(&mut self, src: ImportedTicket) -> Result<()> {
        let org_id = self.org_id;
        let mut t = Ticket {
            id: Uuid::now_v7(),
            key: src.key,
            project_id: src.project_id,
            number: src.number,
            title: src.title,
            description: src.description,
            status: Status::Open,
            priority: src.priority,
            assignee_ids: src.assignee_ids,
            requester_id: Some(src.requester_id),
            labels: src.labels,
            due_at: src.due_at,
            first_response_due_at: None,
            resolution_due_at: None,
            version: 1,
            created_by: Some(src.created_by),
            created_at: src.created_at,
            updated_at: src.created_at,
            resolved_at: None,
            closed_at: None,
            deleted_at: None,
            sla: None,
            parent_id: None,
            merged_into_id: None,
            subtasks: Default::default(),
        };
        let created = diff(&Map::new(), &snapshot(&t));
        self.entry(
            &t,
            src.created_by,
            "ticket.created",
            (false, Some(1)),
            Value::Object(created),
            t.created_at,
        );

        // The moves are spread evenly up to the last activity; comments fall in between.
        let moves = path_to(src.status);
        let span = src.last_activity - src.created_at;
        let mut history: Vec<(DateTime<Utc>, Option<Status>, Option<ImportedComment>)> = moves
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let at = src.created_at + span * (i as i32 + 1) / moves.len() as i32;
                (super::to_micros(at), Some(*s), None)
            })
            .collect();
        history.extend(src.comments.into_iter().map(|c| (c.at, None, Some(c))));
        history.sort_by_key(|(at, ..)| *at);
        for (at, to, comment) in history {
            if let Some(to) = to {
                let before = snapshot(&t);
                move_to(&mut t, to, at)?;
                t.version += 1;
                let changes = diff(&before, &snapshot(&t));
                self.entry(
                    &t,
                    src.worked_by,
                    "ticket.status_changed",
                    (false, Some(t.version)),
                    Value::Object(changes),
                    at,
                );
            }
            if let Some(c) = comment {
                let id = Uuid::now_v7();
                let changes = json!({"comment_id": id, "body": {"from": null, "to": c.body}});
                self.entry(
                    &t,
                    c.author_id,
                    "comment.created",
                    (c.internal, None),
                    changes,
                    c.at,
                );
                self.comments.push(comment::ActiveModel {
                    org_id: Set(org_id),
                    id: Set(id),
                    ticket_id: Set(t.id),
                    author_id: Set(c.author_id),
                    body: Set(c.body),
                    internal: Set(c.internal),
                    version: Set(1),
                    created_at: Set(c.at),
                    updated_at: Set(c.at),
                });
            }
            t.updated_at = t.updated_at.max(at);
        }

        self.assignees
            .extend(t.assignee_ids.iter().map(|u| assignee::ActiveModel {
                org_id: Set(org_id),
                ticket_id: Set(t.id),
                user_id: Set(*u),
            }));
        self.labels
            .extend(t.labels.iter().map(|l| label::ActiveModel {
                org_id: Set(org_id),
                ticket_id: Set(t.id),
                label: Set(l.clone()),
            }));
        self.tickets
            .push(to_model(org_id, &t).into_active_model().reset_all());
        Ok(())
    }
}

/// What an import of tickets wrote besides the tickets.
pub struct Imported {
    pub comments: u64,
    pub timeline_entries: u64,
}

/// Imports tickets with their assignees, labels, comments and timelines. The projects must
/// exist, and their counters must already cover the imported numbers.
pub(crate) async fn tickets(tx: &TenantTx, tickets: Vec<ImportedTicket>) -> Result<Imported> {
    let mut rows = Rows {
        org_id: tx.org_id(),
        tickets: Vec::with_capacity(tickets.len()),
        assignees: Vec::new(),
        labels: Vec::new(),
        comments: Vec::new(),
        timeline: Vec::new(),
    };
    for t in tickets {
        rows.add(t)?;
    }
    let imported = Imported {
        comments: rows.comments.len() as u64,
        timeline_entries: rows.timeline.len() as u64,
    };
    let ticket_docs = rows.tickets.iter().map(|t| search::Document {
        doc_id: *t.id.as_ref(),
        ticket_id: *t.id.as_ref(),
        internal: false,
        title: t.title.as_ref().clone(),
        body: t.description.as_ref().clone().unwrap_or_default(),
    });
    let comment_docs = rows.comments.iter().map(|c| search::Document {
        doc_id: *c.id.as_ref(),
        ticket_id: *c.ticket_id.as_ref(),
        internal: *c.internal.as_ref(),
        title: String::new(),
        body: c.body.as_ref().clone(),
    });
    let docs: Vec<search::Document> = ticket_docs.chain(comment_docs).collect();
    insert_chunked(tx, rows.tickets).await?;
    insert_chunked(tx, rows.assignees).await?;
    insert_chunked(tx, rows.labels).await?;
    insert_chunked(tx, rows.comments).await?;
    insert_chunked(tx, rows.timeline).await?;
    search::index_many(tx, docs).await?;
    Ok(imported)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_is_reached_by_allowed_moves() {
        for target in Status::ALL {
            let mut at = Status::Open;
            for next in path_to(target) {
                assert!(at.next().contains(next), "{at:?} -> {next:?}");
                at = *next;
            }
            assert_eq!(at, target);
        }
    }
}
