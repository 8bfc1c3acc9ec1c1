//! The ticket write path: validation, the state machine, one new version per change, and the
//! timeline entry and outbox events of that change, all in the caller's transaction.

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait,
    ActiveValue::{NotSet, Set},
    ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QuerySelect,
};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::{
    Assignment, MAX_ASSIGNEES, MAX_LABEL, MAX_LABELS, NewTicket, Ticket, TicketPatch, diff,
    lookup::{assigned_to, find_model, load_one},
    snapshot, to_model,
};
use crate::{
    access::{self, Action, Role, TenantCtx, project::walled_role},
    audit,
    error::{Error, Result, Validator},
    events::{
        self, Body,
        contract::{Followers, StatusChanged, TicketAssigned, TicketChanged},
    },
    store::TenantTx,
    tenancy,
    text::{MAX_LINE, MAX_TEXT, check_line, check_text},
    work::{
        Expected, Priority, Status,
        entity::{assignee, label, ticket},
        now, projects, search,
        sla::clocks::{self, TicketFacts},
        status::{Stamps, transition},
        structure::subtasks,
        timeline, to_micros, watchers,
    },
};

/// Trimmed, distinct, sorted labels, or the reasons they are not acceptable.
fn clean_labels(v: &mut Validator, labels: &[String]) -> Vec<String> {
    v.check(
        labels.len() <= MAX_LABELS,
        "labels",
        &format!("at most {MAX_LABELS} labels"),
    );
    for (i, l) in labels.iter().enumerate() {
        let field = format!("labels[{i}]");
        check_line(v, &field, l, MAX_LABEL);
        v.check(!l.contains(','), &field, "must not contain a comma");
    }
    let set: BTreeSet<String> = labels.iter().map(|l| l.trim().to_owned()).collect();
    set.into_iter().collect()
}

fn clean_assignees(v: &mut Validator, ids: &[Uuid]) -> Vec<Uuid> {
    v.check(
        ids.len() <= MAX_ASSIGNEES,
        "assignee_ids",
        &format!("at most {MAX_ASSIGNEES} assignees"),
    );
    let set: BTreeSet<Uuid> = ids.iter().copied().collect();
    set.into_iter().collect()
}

/// A project named in the body that does not exist is a field error, reported with the others.
fn no_such_project<T>(v: &mut Validator, numbered: &Result<T>) {
    if matches!(numbered, Err(Error::NotFound("project"))) {
        v.push("project_id", "no such project");
    }
}

/// Assignees must be active members who work tickets (agent or above), and see the ticket's
/// project (`private`: its members, when it is private); a requester must be an active member.
/// (The database also refuses an assignee who is not a member at all.)
async fn check_people(
    tx: &TenantTx,
    v: &mut Validator,
    assignees: &[Uuid],
    requester: Option<Uuid>,
    private: Option<&HashSet<Uuid>>,
) -> Result<()> {
    let mut ids: Vec<Uuid> = assignees.to_vec();
    ids.extend(requester);
    if ids.is_empty() {
        return Ok(());
    }
    let roles: HashMap<Uuid, Role> = tenancy::active_roles(tx, &ids).await?.into_iter().collect();
    for (i, a) in assignees.iter().enumerate() {
        let field = format!("assignee_ids[{i}]");
        match roles.get(a) {
            Some(r) if !r.at_least(Role::Agent) => v.push(
                &field,
                "is not an active member with the agent role or above",
            ),
            None => v.push(
                &field,
                "is not an active member with the agent role or above",
            ),
            Some(r) if walled_role(*r) && private.is_some_and(|m| !m.contains(a)) => v.push(
                &field,
                "does not see this private project; add them to its members first",
            ),
            Some(_) => {}
        }
    }
    if let Some(r) = requester {
        v.check(
            roles.contains_key(&r),
            "requester_id",
            "is not an active member of the organization",
        );
    }
    Ok(())
}

pub async fn create(tx: &TenantTx, ctx: &TenantCtx, req: NewTicket) -> Result<Ticket> {
    access::authorize(ctx, Action::TicketCreate)?;
    if access::sees_only_own_tickets(ctx.role)
        && (!req.assignee_ids.is_empty()
            || req.requester_id.is_some_and(|r| r != ctx.user_id)
            || !req.labels.is_empty()
            || req.due_at.is_some()
            || req.parent_id.is_some())
    {
        return Err(Error::forbidden(
            "requesters file tickets for themselves with a project, title, description and priority only",
        ));
    }
    let mut v = Validator::default();
    check_line(&mut v, "title", &req.title, MAX_LINE);
    if let Some(d) = &req.description {
        check_text(&mut v, "description", d, MAX_TEXT, false);
    }
    let labels = clean_labels(&mut v, &req.labels);
    let assignee_ids = clean_assignees(&mut v, &req.assignee_ids);
    let requester_id = req.requester_id.unwrap_or(ctx.user_id);
    may_file_in(tx, ctx, &mut v, req.project_id).await?;
    if let Some(parent) = req.parent_id {
        subtasks::check_parent(tx, &mut v, None, req.project_id, parent).await?;
    }
    let (id, at, priority) = (
        Uuid::now_v7(),
        now(),
        req.priority.unwrap_or(Priority::Medium),
    );
    // The clocks are planned before the number is taken: the number's row lock is held until
    // commit, and concurrent creates in the project wait for it.
    let clocks = clocks::plan_new(
        tx,
        &TicketFacts {
            id,
            project_id: req.project_id,
            priority,
            status: Status::Open,
            created_at: at,
            resolved_at: None,
            deleted: false,
        },
        at,
    )
    .await?;
    // Numbering also finds the project; a refused create rolls the number back.
    let numbered = projects::next_ticket_number(tx, req.project_id).await;
    no_such_project(&mut v, &numbered);
    let private = match &numbered {
        Ok(n) => assignable(tx, req.project_id, n.private, &assignee_ids).await?,
        Err(_) => None,
    };
    check_people(
        tx,
        &mut v,
        &assignee_ids,
        Some(requester_id),
        private.as_ref(),
    )
    .await?;
    v.finish()?;
    let projects::Numbered { key, number, .. } = numbered?;
    let mut ticket = Ticket {
        id,
        key: format!("{key}-{number}"),
        project_id: req.project_id,
        number,
        title: req.title.trim().to_owned(),
        description: req.description,
        status: Status::Open,
        priority,
        assignee_ids,
        requester_id: Some(requester_id),
        labels,
        due_at: req.due_at.map(to_micros),
        first_response_due_at: None,
        resolution_due_at: None,
        version: 1,
        created_by: Some(ctx.user_id),
        created_at: at,
        updated_at: at,
        resolved_at: None,
        closed_at: None,
        deleted_at: None,
        sla: None,
        parent_id: req.parent_id,
        merged_into_id: None,
        subtasks: Default::default(),
    };
    show_clocks(&mut ticket, &clocks);
    to_model(tx.org_id(), &ticket)
        .into_active_model()
        .insert(tx.conn())
        .await?;
    clocks.save(tx).await?;
    search::index_ticket(tx, &ticket).await?;
    insert_children(tx, &ticket, true, true).await?;
    subtasks::recount(tx, None, &ticket).await?;
    let changes = diff(&Map::new(), &snapshot(&ticket));
    record(
        tx,
        Some(ctx.user_id),
        Change::Created,
        None,
        &ticket,
        changes,
    )
    .await?;
    Ok(ticket)
}

/// The changes that move a ticket's SLA clocks: its policy (priority, project) or whether it
/// is being worked on.
const SLA_FIELDS: [&str; 5] = [
    "status",
    "priority",
    "project_id",
    "resolved_at",
    "deleted_at",
];

fn facts_of(t: &Ticket) -> TicketFacts {
    TicketFacts {
        id: t.id,
        project_id: t.project_id,
        priority: t.priority,
        status: t.status,
        created_at: t.created_at,
        resolved_at: t.resolved_at,
        deleted: t.deleted_at.is_some(),
    }
}

/// Plans the ticket's clocks as of its `updated_at` and sets its due times and SLA view; the
/// caller saves the plan once the ticket row is written.
async fn plan_clocks(tx: &TenantTx, t: &mut Ticket) -> Result<clocks::Plan> {
    let plan = clocks::plan(tx, &facts_of(t), t.updated_at, None).await?;
    show_clocks(t, &plan);
    Ok(plan)
}

/// Shows the planned clocks on the ticket: its due instants and its SLA view.
fn show_clocks(t: &mut Ticket, plan: &clocks::Plan) {
    (t.first_response_due_at, t.resolution_due_at) = plan.ticket_due();
    t.sla = plan.view(t.updated_at);
}

/// Writes the ticket's assignee and label rows, in place of those it had.
async fn replace_children(tx: &TenantTx, t: &Ticket, assignees: bool, labels: bool) -> Result<()> {
    if assignees {
        tx.delete_many::<assignee::Entity>()
            .filter(assignee::Column::TicketId.eq(t.id))
            .exec(tx.conn())
            .await?;
    }
    if labels {
        tx.delete_many::<label::Entity>()
            .filter(label::Column::TicketId.eq(t.id))
            .exec(tx.conn())
            .await?;
    }
    insert_children(tx, t, assignees, labels).await
}

/// Writes the ticket's assignee and label rows (a new ticket has none to replace).
async fn insert_children(tx: &TenantTx, t: &Ticket, assignees: bool, labels: bool) -> Result<()> {
    let org_id = tx.org_id();
    if assignees && !t.assignee_ids.is_empty() {
        assignee::Entity::insert_many(t.assignee_ids.iter().map(|u| assignee::ActiveModel {
            org_id: Set(org_id),
            ticket_id: Set(t.id),
            user_id: Set(*u),
        }))
        .exec(tx.conn())
        .await?;
    }
    if labels && !t.labels.is_empty() {
        label::Entity::insert_many(t.labels.iter().map(|l| label::ActiveModel {
            org_id: Set(org_id),
            ticket_id: Set(t.id),
            label: Set(l.clone()),
        }))
        .exec(tx.conn())
        .await?;
    }
    Ok(())
}

/// What a write did to a ticket. Its timeline kind and its events are decided from this and
/// the changed fields, once, in [`Change::timeline_kind`] and [`Change::events`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    Created,
    /// Fields, status or assignees.
    Edited,
    Deleted,
    Restored,
    /// Merged into another ticket (closed, `merged_into_id` set), or the merge undone.
    Merged,
    Unmerged,
}

impl Change {
    /// The timeline names an edit by what it touched: only the assignees, only the status, or
    /// anything else.
    fn timeline_kind(self, changes: &Map<String, Value>) -> &'static str {
        let only = |fields: &[&str]| changes.keys().all(|k| fields.contains(&k.as_str()));
        match self {
            Change::Created => "ticket.created",
            Change::Deleted => "ticket.deleted",
            Change::Restored => "ticket.restored",
            Change::Merged => "ticket.merged",
            Change::Unmerged => "ticket.unmerged",
            Change::Edited if only(&["assignee_ids"]) => "ticket.assigned",
            Change::Edited if only(&["status", "resolved_at", "closed_at"]) => {
                "ticket.status_changed"
            }
            Change::Edited => "ticket.updated",
        }
    }

    /// The events of the change: every edit is a `ticket.updated`; assignment and status
    /// changes also get their own event for consumers that care only about those.
    fn events(
        self,
        t: &Ticket,
        before: Option<&Ticket>,
        changes: Map<String, Value>,
        watcher_ids: Vec<Uuid>,
    ) -> Vec<Body> {
        let ticket = t.event_ref();
        let changed = TicketChanged {
            ticket: ticket.clone(),
            changes,
        };
        let mut events = vec![match self {
            Change::Created => Body::TicketCreated(changed),
            Change::Edited | Change::Merged | Change::Unmerged => Body::TicketUpdated(changed),
            Change::Deleted => return vec![Body::TicketDeleted(changed)],
            Change::Restored => return vec![Body::TicketRestored(changed)],
        }];
        let assignees_before: BTreeSet<Uuid> = before
            .map(|b| b.assignee_ids.iter().copied().collect())
            .unwrap_or_default();
        let assignees_after: BTreeSet<Uuid> = t.assignee_ids.iter().copied().collect();
        let added: Vec<Uuid> = assignees_after
            .difference(&assignees_before)
            .copied()
            .collect();
        let removed: Vec<Uuid> = assignees_before
            .difference(&assignees_after)
            .copied()
            .collect();
        if !added.is_empty() || !removed.is_empty() {
            events.push(Body::TicketAssigned(TicketAssigned {
                ticket: ticket.clone(),
                added,
                removed,
            }));
        }
        if let Some(before) = before.filter(|b| b.status != t.status) {
            events.push(Body::TicketStatusChanged(StatusChanged {
                ticket,
                from: before.status.as_str().to_owned(),
                to: t.status.as_str().to_owned(),
                followers: Followers {
                    assignee_ids: t.assignee_ids.clone(),
                    watcher_ids,
                },
            }));
        }
        events
    }
}

/// Appends the timeline entry and the outbox events of one change.
async fn record(
    tx: &TenantTx,
    actor: Option<Uuid>,
    change: Change,
    before: Option<&Ticket>,
    t: &Ticket,
    changes: Map<String, Value>,
) -> Result<()> {
    timeline::record_as(
        tx,
        actor,
        timeline::Entry {
            project_id: t.project_id,
            ticket_id: Some(t.id),
            kind: change.timeline_kind(&changes),
            internal: false,
            version: Some(t.version),
            changes: Value::Object(changes.clone()),
            at: t.updated_at,
        },
    )
    .await?;
    // Who watched the ticket when its status changed, for notifications.
    let status_changed = before.is_some_and(|b| b.status != t.status);
    let watcher_ids = if status_changed {
        watchers::of(tx, t.id).await?
    } else {
        Vec::new()
    };
    for body in change.events(t, before, changes, watcher_ids) {
        events::emit(tx, actor, body, t.updated_at).await?;
    }
    Ok(())
}

/// Who may be assigned tickets of a private project (its members; owners and admins anyway),
/// looked up only when someone is to be assigned there.
async fn assignable(
    tx: &TenantTx,
    project_id: Uuid,
    private: bool,
    assignees: &[Uuid],
) -> Result<Option<HashSet<Uuid>>> {
    if !private || assignees.is_empty() {
        return Ok(None);
    }
    Ok(projects::private_members(tx, &[project_id])
        .await?
        .remove(&project_id))
}

/// May `ctx` file tickets into the project? A project they cannot see, or one that does not
/// exist, is a field error; a project where they only read is 403.
async fn may_file_in(
    tx: &TenantTx,
    ctx: &TenantCtx,
    v: &mut Validator,
    project_id: Uuid,
) -> Result<()> {
    if walled_role(ctx.role) || ctx.role == Role::Requester {
        match projects::authorize_in(tx, ctx, project_id, Action::TicketCreate).await {
            Err(Error::NotFound(_)) => v.push("project_id", "no such project"),
            Err(err) => return Err(err),
            Ok(_) => {}
        }
    }
    Ok(())
}

/// Locks the ticket for a change by `action` and checks the caller's `If-Match` against it.
/// In a project where the caller only reads, the change is 403.
pub(crate) async fn lock(
    tx: &TenantTx,
    ctx: &TenantCtx,
    id: &str,
    expected: &Expected,
    action: Action,
) -> Result<Ticket> {
    let m = find_model(tx, ctx, id, true).await?;
    projects::authorize_on_ticket(tx, ctx, m.project_id, action).await?;
    expected.check("ticket", m.version)?;
    load_one(tx, m.id).await
}

/// Saves `after` over `before` (one new version), or nothing when nothing differs.
pub(crate) async fn save(
    tx: &TenantTx,
    actor: Option<Uuid>,
    before: &Ticket,
    mut after: Ticket,
    change: Change,
) -> Result<Ticket> {
    let changes = diff(&snapshot(before), &snapshot(&after));
    if changes.is_empty() {
        return Ok(before.clone());
    }
    after.version = before.version + 1;
    after.updated_at = now();
    let clocks = if changes.keys().any(|k| SLA_FIELDS.contains(&k.as_str())) {
        Some(plan_clocks(tx, &mut after).await?)
    } else {
        None
    };
    let mut row = to_model(tx.org_id(), &after)
        .into_active_model()
        .reset_all();
    row.org_id = NotSet;
    row.id = NotSet;
    // Kept by the subtasks' own changes, never by the ticket's.
    row.subtasks_total = NotSet;
    row.subtasks_done = NotSet;
    let updated = tx
        .update_many::<ticket::Entity>()
        .set(row)
        .filter(ticket::Column::Id.eq(before.id))
        .filter(ticket::Column::Version.eq(before.version))
        .exec(tx.conn())
        .await?;
    if updated.rows_affected != 1 {
        // The row is locked by this transaction: only a bug gets here.
        return Err(Error::internal(anyhow::anyhow!(
            "ticket {} changed under its row lock",
            before.id
        )));
    }
    if let Some(clocks) = clocks {
        clocks.save(tx).await?;
    }
    if changes.contains_key("title") || changes.contains_key("description") {
        search::index_ticket(tx, &after).await?;
    }
    replace_children(
        tx,
        &after,
        changes.contains_key("assignee_ids"),
        changes.contains_key("labels"),
    )
    .await?;
    subtasks::recount(tx, Some(before), &after).await?;
    record(tx, actor, change, Some(before), &after, changes).await?;
    Ok(after)
}

/// Moves `t` to `to` through the state machine.
pub(crate) fn move_to(t: &mut Ticket, to: Status, at: DateTime<Utc>) -> Result<()> {
    let stamps = transition(
        t.status,
        to,
        Stamps {
            resolved_at: t.resolved_at,
            closed_at: t.closed_at,
        },
        at,
    )?;
    t.status = to;
    t.resolved_at = stamps.resolved_at;
    t.closed_at = stamps.closed_at;
    Ok(())
}

/// The patch's own fields checked; its labels and assignees cleaned.
type Cleaned = (Option<Vec<String>>, Option<Vec<Uuid>>);

fn check_patch(patch: &TicketPatch) -> Result<Cleaned> {
    let mut v = Validator::default();
    if let Some(t) = &patch.title {
        check_line(&mut v, "title", t, MAX_LINE);
    }
    if let Some(Some(d)) = &patch.description {
        check_text(&mut v, "description", d, MAX_TEXT, false);
    }
    let labels = patch.labels.as_deref().map(|l| clean_labels(&mut v, l));
    let assignees = patch
        .assignee_ids
        .as_deref()
        .map(|a| clean_assignees(&mut v, a));
    v.finish()?;
    Ok((labels, assignees))
}

pub async fn update(
    tx: &TenantTx,
    ctx: &TenantCtx,
    id: &str,
    expected: &Expected,
    patch: TicketPatch,
) -> Result<Ticket> {
    access::authorize(ctx, Action::TicketUpdate)?;
    let cleaned = check_patch(&patch)?;
    let before = lock(tx, ctx, id, expected, Action::TicketUpdate).await?;
    apply(tx, ctx, before, patch, cleaned).await
}

/// Like [`update`], with the patch made from the ticket as it is once locked (a bulk change
/// adding labels to those it has).
pub(crate) async fn update_with(
    tx: &TenantTx,
    ctx: &TenantCtx,
    id: &str,
    patch: impl FnOnce(&Ticket) -> TicketPatch,
) -> Result<Ticket> {
    access::authorize(ctx, Action::TicketUpdate)?;
    let before = lock(tx, ctx, id, &Expected::Any, Action::TicketUpdate).await?;
    let patch = patch(&before);
    let cleaned = check_patch(&patch)?;
    apply(tx, ctx, before, patch, cleaned).await
}

async fn apply(
    tx: &TenantTx,
    ctx: &TenantCtx,
    before: Ticket,
    patch: TicketPatch,
    (labels, assignees): Cleaned,
) -> Result<Ticket> {
    let mut v = Validator::default();
    let target_project = patch.project_id.filter(|p| *p != before.project_id);
    if let Some(p) = target_project {
        may_file_in(tx, ctx, &mut v, p).await?;
    }
    let new_parent = patch.parent_id.filter(|p| *p != before.parent_id);
    if let Some(Some(parent)) = new_parent {
        let project = target_project.unwrap_or(before.project_id);
        subtasks::check_parent(tx, &mut v, Some(before.id), project, parent).await?;
    }
    let numbered = match target_project {
        Some(p) => Some(projects::next_ticket_number(tx, p).await),
        None => None,
    };
    if let Some(n) = &numbered {
        no_such_project(&mut v, n);
    }
    // Who is assigned must see the project the ticket will be in: new assignees, or those it
    // has when it moves.
    let assigned: &[Uuid] = match (&assignees, target_project) {
        (Some(a), _) => a,
        (None, Some(_)) => &before.assignee_ids,
        (None, None) => &[],
    };
    let private = match (&numbered, target_project) {
        (Some(Ok(n)), Some(p)) => assignable(tx, p, n.private, assigned).await?,
        (None, _) if !assigned.is_empty() => projects::private_members(tx, &[before.project_id])
            .await?
            .remove(&before.project_id),
        _ => None,
    };
    let requester = patch.requester_id.flatten();
    check_people(tx, &mut v, assigned, requester, private.as_ref()).await?;
    v.finish()?;

    let mut after = before.clone();
    if let (Some(p), Some(numbered)) = (target_project, numbered) {
        let projects::Numbered { key, number, .. } = numbered?;
        after.project_id = p;
        after.number = number;
        after.key = format!("{key}-{number}");
    }
    if let Some(t) = patch.title {
        after.title = t.trim().to_owned();
    }
    if let Some(d) = patch.description {
        after.description = d;
    }
    if let Some(p) = patch.priority {
        after.priority = p;
    }
    if let Some(a) = assignees {
        after.assignee_ids = a;
    }
    if let Some(r) = patch.requester_id {
        after.requester_id = r;
    }
    if let Some(l) = labels {
        after.labels = l;
    }
    if let Some(d) = patch.due_at {
        after.due_at = d.map(to_micros);
    }
    if let Some(p) = new_parent {
        after.parent_id = p;
    }
    if let Some(s) = patch.status.filter(|s| *s != before.status) {
        move_to(&mut after, s, now())?;
    }
    save(tx, Some(ctx.user_id), &before, after, Change::Edited).await
}

pub async fn assign(
    tx: &TenantTx,
    ctx: &TenantCtx,
    id: &str,
    expected: &Expected,
    req: Assignment,
) -> Result<Ticket> {
    let patch = TicketPatch {
        assignee_ids: Some(req.assignee_ids),
        ..Default::default()
    };
    update(tx, ctx, id, expected, patch).await
}

/// Resolves the ticket (from open, in progress or pending).
pub async fn complete(
    tx: &TenantTx,
    ctx: &TenantCtx,
    id: &str,
    expected: &Expected,
) -> Result<Ticket> {
    move_by_action(tx, ctx, id, expected, Status::Resolved).await
}

/// Brings a resolved, closed or cancelled ticket back to open.
pub async fn reopen(
    tx: &TenantTx,
    ctx: &TenantCtx,
    id: &str,
    expected: &Expected,
) -> Result<Ticket> {
    move_by_action(tx, ctx, id, expected, Status::Open).await
}

async fn move_by_action(
    tx: &TenantTx,
    ctx: &TenantCtx,
    id: &str,
    expected: &Expected,
    to: Status,
) -> Result<Ticket> {
    access::authorize(ctx, Action::TicketUpdate)?;
    let before = lock(tx, ctx, id, expected, Action::TicketUpdate).await?;
    let mut after = before.clone();
    // Unlike a PATCH naming the current status, an action that changes nothing is refused.
    move_to(&mut after, to, now())?;
    save(tx, Some(ctx.user_id), &before, after, Change::Edited).await
}

/// Takes `user_id` off every ticket they are assigned to, each as a change of its own (a new
/// version, a timeline entry and events), for a member who is leaving the organisation.
pub async fn unassign_everywhere(tx: &TenantTx, ctx: &TenantCtx, user_id: Uuid) -> Result<()> {
    access::authorize(ctx, Action::TicketUpdate)?;
    for id in assigned_to(tx, user_id).await? {
        let before = lock(
            tx,
            ctx,
            &id.to_string(),
            &Expected::Any,
            Action::TicketUpdate,
        )
        .await?;
        let mut after = before.clone();
        after.assignee_ids.retain(|a| *a != user_id);
        save(tx, Some(ctx.user_id), &before, after, Change::Edited).await?;
    }
    Ok(())
}

/// Soft delete: the ticket leaves every list and lookup; admins can restore it.
pub async fn delete(tx: &TenantTx, ctx: &TenantCtx, id: &str, expected: &Expected) -> Result<()> {
    access::authorize(ctx, Action::TicketDelete)?;
    let before = lock(tx, ctx, id, expected, Action::TicketDelete).await?;
    if before.deleted_at.is_some() {
        return Err(Error::NotFound("ticket"));
    }
    let mut after = before.clone();
    after.deleted_at = Some(now());
    let t = save(tx, Some(ctx.user_id), &before, after, Change::Deleted).await?;
    audit::record(
        tx,
        Some(ctx.user_id),
        "ticket.deleted",
        "ticket",
        Some(t.id),
        json!({"key": t.key}),
    )
    .await
}

pub async fn restore(
    tx: &TenantTx,
    ctx: &TenantCtx,
    id: &str,
    expected: &Expected,
) -> Result<Ticket> {
    access::authorize(ctx, Action::TicketRestore)?;
    let before = lock(tx, ctx, id, expected, Action::TicketRestore).await?;
    if before.deleted_at.is_none() {
        return Err(Error::conflict(
            "ticket_not_deleted",
            "the ticket is not deleted",
        ));
    }
    let mut after = before.clone();
    after.deleted_at = None;
    let t = save(tx, Some(ctx.user_id), &before, after, Change::Restored).await?;
    audit::record(
        tx,
        Some(ctx.user_id),
        "ticket.restored",
        "ticket",
        Some(t.id),
        json!({"key": t.key}),
    )
    .await?;
    Ok(t)
}

/// Makes `to` the requester of every ticket `from` requested (a contact linked to the account
/// of the same person): each a change by the system, through the write path (version,
/// timeline, events). Returns how many tickets moved.
pub(crate) async fn move_requester(tx: &TenantTx, from: Uuid, to: Uuid) -> Result<usize> {
    let ids: Vec<Uuid> = tx
        .find::<ticket::Entity>()
        .select_only()
        .column(ticket::Column::Id)
        .filter(ticket::Column::RequesterId.eq(from))
        .into_tuple()
        .all(tx.conn())
        .await?;
    for id in &ids {
        if let Some(before) = super::current(tx, *id).await? {
            let mut after = before.clone();
            after.requester_id = Some(to);
            save(tx, None, &before, after, Change::Edited).await?;
        }
    }
    Ok(ids.len())
}

/// Hands a ticket to `user_id` (an SLA escalation): a change by the system, with no actor.
/// Nothing happens to a deleted ticket, or when `user_id` no longer works tickets here.
pub(crate) async fn reassign_by_system(tx: &TenantTx, id: Uuid, user_id: Uuid) -> Result<()> {
    let Some(before) = super::current(tx, id).await? else {
        return Ok(());
    };
    let works_here = tenancy::active_roles(tx, &[user_id])
        .await?
        .into_iter()
        .any(|(_, role)| role.at_least(Role::Agent));
    if before.deleted_at.is_some() || !works_here {
        return Ok(());
    }
    let mut after = before.clone();
    after.assignee_ids = vec![user_id];
    save(tx, None, &before, after, Change::Edited).await?;
    Ok(())
}
