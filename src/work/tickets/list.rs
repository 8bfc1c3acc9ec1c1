//! `GET /tickets`: filters, visibility, sort orders and keyset pages.

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::{
    ColumnTrait, Condition, DbBackend, EntityTrait, Order, QueryFilter, QueryOrder, QuerySelect,
    QueryTrait, Select, Statement,
    sea_query::{Expr, NullOrdering, Query, SimpleExpr},
};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use super::{MAX_LABEL, Ticket, lookup::assemble};
use crate::{
    access::{self, Action, TenantCtx},
    error::Result,
    error::Validator,
    pagination::{self, Page},
    store::{Db, Planning},
    text::check_line,
    work::{
        Priority, Status,
        entity::{assignee, label, ticket},
    },
};

/// `GET /tickets` query parameters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TicketFilter {
    pub project_id: Option<Uuid>,
    /// One or more statuses, comma-separated: `open,in_progress`.
    #[param(
        pattern = "^(open|in_progress|pending|resolved|closed|cancelled)(,(open|in_progress|pending|resolved|closed|cancelled))*$"
    )]
    pub status: Option<String>,
    /// One or more priorities, comma-separated: `high,urgent`.
    #[param(pattern = "^(low|medium|high|urgent)(,(low|medium|high|urgent))*$")]
    pub priority: Option<String>,
    /// An assignee's id, or `me`.
    #[param(
        pattern = "^(me|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"
    )]
    pub assignee: Option<String>,
    /// A requester's id, or `me`.
    #[param(
        pattern = "^(me|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"
    )]
    pub requester: Option<String>,
    /// Tickets carrying this label.
    #[param(
        min_length = 1,
        max_length = 50,
        pattern = "^[^,\\u0000-\\u001f\\u007f-\\u009f]*[^,\\s\\u0000-\\u001f\\u007f-\\u009f][^,\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    pub label: Option<String>,
    /// Due before this instant (years 1–9999).
    #[serde(default, deserialize_with = "crate::work::instant")]
    pub due_before: Option<DateTime<Utc>>,
    /// Changed at or after this instant (years 1–9999).
    #[serde(default, deserialize_with = "crate::work::instant")]
    pub updated_since: Option<DateTime<Utc>>,
    /// `created_at`, `updated_at`, `priority` or `due_at`, with `-` for descending
    /// (default `-created_at`). Tickets without a due date come last either way.
    #[param(pattern = "^-?(created_at|updated_at|priority|due_at)$")]
    pub sort: Option<String>,
    /// Only deleted tickets (admins).
    pub deleted: Option<bool>,
    /// Only the subtasks of this ticket.
    pub parent_id: Option<Uuid>,
    /// Items per page (1–200, default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u64>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[A-Za-z0-9_-]{32}$")]
    pub cursor: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortKey {
    CreatedAt,
    UpdatedAt,
    Priority,
    DueAt,
}

/// A validated listing request.
#[derive(Clone, Debug)]
pub struct ListQuery {
    pub project_id: Option<Uuid>,
    pub statuses: Vec<Status>,
    pub priorities: Vec<Priority>,
    pub assignee: Option<Uuid>,
    pub requester: Option<Uuid>,
    pub label: Option<String>,
    pub due_before: Option<DateTime<Utc>>,
    pub updated_since: Option<DateTime<Utc>>,
    pub sort: SortKey,
    pub descending: bool,
    pub deleted: bool,
    pub parent_id: Option<Uuid>,
    pub limit: u64,
    pub after: Option<(i64, Uuid)>,
}

fn parse_list<T>(
    v: &mut Validator,
    field: &str,
    s: Option<&str>,
    parse: impl Fn(&str) -> Option<T>,
) -> Vec<T> {
    let mut out = Vec::new();
    for part in s.into_iter().flat_map(|s| s.split(',')) {
        match parse(part.trim()) {
            Some(x) => out.push(x),
            None => v.push(field, format!("unknown value {part:?}")),
        }
    }
    out
}

fn person(v: &mut Validator, ctx: &TenantCtx, field: &str, s: Option<&str>) -> Option<Uuid> {
    match s? {
        "me" => Some(ctx.user_id),
        other => Uuid::parse_str(other)
            .map_err(|_| v.push(field, "must be a person's id or `me`"))
            .ok(),
    }
}

impl TicketFilter {
    pub fn validate(self, ctx: &TenantCtx) -> Result<ListQuery> {
        let mut v = Validator::default();
        let statuses = parse_list(&mut v, "status", self.status.as_deref(), Status::parse);
        let priorities = parse_list(&mut v, "priority", self.priority.as_deref(), |p| {
            Priority::ALL.into_iter().find(|x| x.as_str() == p)
        });
        let assignee = person(&mut v, ctx, "assignee", self.assignee.as_deref());
        let requester = person(&mut v, ctx, "requester", self.requester.as_deref());
        if let Some(l) = &self.label {
            check_line(&mut v, "label", l, MAX_LABEL);
        }
        let sort = self.sort.as_deref().unwrap_or("-created_at");
        let (descending, name) = match sort.strip_prefix('-') {
            Some(name) => (true, name),
            None => (false, sort),
        };
        let sort = match name {
            "created_at" => SortKey::CreatedAt,
            "updated_at" => SortKey::UpdatedAt,
            "priority" => SortKey::Priority,
            "due_at" => SortKey::DueAt,
            _ => {
                v.push("sort", "must be created_at, updated_at, priority or due_at, optionally with a leading -");
                SortKey::CreatedAt
            }
        };
        let limit = pagination::check_limit(&mut v, self.limit);
        let after = pagination::check_keyed_cursor(&mut v, self.cursor.as_deref());
        let deleted = self.deleted.unwrap_or(false);
        v.finish()?;
        if deleted {
            access::authorize(ctx, Action::TicketRestore)?;
        }
        Ok(ListQuery {
            project_id: self.project_id,
            statuses,
            priorities,
            assignee,
            requester,
            label: self.label.map(|l| l.trim().to_owned()),
            due_before: self.due_before,
            updated_since: self.updated_since,
            sort,
            descending,
            deleted,
            parent_id: self.parent_id,
            limit,
            after,
        })
    }
}

/// Timestamps in cursors are microseconds; anything outside years 1–9999 is clamped into
/// them, so every cursor the documented pattern allows can be queried on both databases.
fn micros_to_time(v: i64) -> DateTime<Utc> {
    let min = NaiveDate::from_ymd_opt(1, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc());
    let max = NaiveDate::from_ymd_opt(9999, 12, 31)
        .and_then(|d| d.and_hms_opt(23, 59, 59))
        .map(|d| d.and_utc());
    let (min, max) = (min.unwrap_or_default(), max.unwrap_or_default());
    DateTime::from_timestamp_micros(v)
        .unwrap_or(if v < 0 { min } else { max })
        .clamp(min, max)
}

/// `due_at` of a ticket without one, in cursors.
const NO_DATE: i64 = i64::MIN;

fn sort_value(sort: SortKey, t: &Ticket) -> i64 {
    match sort {
        SortKey::CreatedAt => t.created_at.timestamp_micros(),
        SortKey::UpdatedAt => t.updated_at.timestamp_micros(),
        SortKey::Priority => i64::from(t.priority.rank()),
        SortKey::DueAt => t.due_at.map_or(NO_DATE, |d| d.timestamp_micros()),
    }
}

/// Puts assembled tickets back in the page's order: by the sort value then the id, undated
/// tickets last either way (as [`list_select`] orders them).
fn sort_page(tickets: &mut [Ticket], q: &ListQuery) {
    tickets.sort_by(|a, b| {
        let undated = |t: &Ticket| q.sort == SortKey::DueAt && t.due_at.is_none();
        let key = |t: &Ticket| (sort_value(q.sort, t), t.id);
        let order = if q.descending {
            key(b).cmp(&key(a))
        } else {
            key(a).cmp(&key(b))
        };
        undated(a).cmp(&undated(b)).then(order)
    });
}

/// The tickets the caller may see that match the filters (no order, no page): of the tenant,
/// outside the projects hidden from the caller, their own for a requester.
fn filtered(ctx: &TenantCtx, q: &ListQuery) -> Select<ticket::Entity> {
    let mut s = ticket::Entity::find().filter(ticket::Column::OrgId.eq(ctx.org_id));
    if let Some(viewer) = access::project::walled_viewer(ctx) {
        let hidden = access::project::hidden_projects(ctx.org_id, viewer);
        s = s.filter(ticket::Column::ProjectId.not_in_subquery(hidden));
    }
    if let Some(p) = q.parent_id {
        s = s.filter(ticket::Column::ParentId.eq(p));
    }
    s = if q.deleted {
        s.filter(ticket::Column::DeletedAt.is_not_null())
    } else {
        s.filter(ticket::Column::DeletedAt.is_null())
    };
    if access::sees_only_own_tickets(ctx.role) {
        s = s.filter(ticket::Column::RequesterId.eq(ctx.user_id));
    }
    if let Some(p) = q.project_id {
        s = s.filter(ticket::Column::ProjectId.eq(p));
    }
    if !q.statuses.is_empty() {
        s = s.filter(ticket::Column::Status.is_in(q.statuses.iter().map(|st| st.as_str())));
    }
    if !q.priorities.is_empty() {
        s = s.filter(ticket::Column::Priority.is_in(q.priorities.iter().map(|p| p.rank())));
    }
    if let Some(r) = q.requester {
        s = s.filter(ticket::Column::RequesterId.eq(r));
    }
    if let Some(a) = q.assignee {
        s = s.filter(
            ticket::Column::Id.in_subquery(
                Query::select()
                    .column(assignee::Column::TicketId)
                    .from(assignee::Entity)
                    .and_where(assignee::Column::OrgId.eq(ctx.org_id))
                    .and_where(assignee::Column::UserId.eq(a))
                    .to_owned(),
            ),
        );
    }
    if let Some(l) = &q.label {
        s = s.filter(
            ticket::Column::Id.in_subquery(
                Query::select()
                    .column(label::Column::TicketId)
                    .from(label::Entity)
                    .and_where(label::Column::OrgId.eq(ctx.org_id))
                    .and_where(label::Column::Label.eq(l.as_str()))
                    .to_owned(),
            ),
        );
    }
    if let Some(d) = q.due_before {
        s = s.filter(ticket::Column::DueAt.lt(d));
    }
    if let Some(d) = q.updated_since {
        s = s.filter(ticket::Column::UpdatedAt.gte(d));
    }
    s
}

/// `SELECT id` of the tickets [`filtered`] finds, for a search to rank within.
pub(crate) fn filtered_ids(ctx: &TenantCtx, q: &ListQuery, backend: DbBackend) -> Statement {
    filtered(ctx, q)
        .select_only()
        .column(ticket::Column::Id)
        .build(backend)
}

/// The query of one page: filters, visibility, order and keyset position (no offset).
fn list_select(ctx: &TenantCtx, q: &ListQuery) -> Select<ticket::Entity> {
    use sea_orm::sea_query::ExprTrait as _;
    let mut s = filtered(ctx, q);
    let col = match q.sort {
        SortKey::CreatedAt => ticket::Column::CreatedAt,
        SortKey::UpdatedAt => ticket::Column::UpdatedAt,
        SortKey::Priority => ticket::Column::Priority,
        SortKey::DueAt => ticket::Column::DueAt,
    };
    if let Some((value, id)) = q.after {
        let value: SimpleExpr = match q.sort {
            SortKey::Priority => Expr::value(i16::try_from(value).unwrap_or(if value < 0 {
                i16::MIN
            } else {
                i16::MAX
            })),
            _ => Expr::value(micros_to_time(value)),
        };
        let key = Expr::tuple([
            Expr::col((ticket::Entity, col)),
            Expr::col((ticket::Entity, ticket::Column::Id)),
        ]);
        let cursor = Expr::tuple([value.clone(), Expr::value(id)]);
        let beyond = if q.descending {
            key.lt(cursor)
        } else {
            key.gt(cursor)
        };
        s =
            s.filter(match (q.sort, q.after.map(|a| a.0) == Some(NO_DATE)) {
                // Undated tickets come last: after a dated one come later dates, then all undated.
                (SortKey::DueAt, false) => Condition::any()
                    .add(beyond)
                    .add(ticket::Column::DueAt.is_null()),
                (SortKey::DueAt, true) => Condition::all()
                    .add(ticket::Column::DueAt.is_null())
                    .add(if q.descending {
                        ticket::Column::Id.lt(id)
                    } else {
                        ticket::Column::Id.gt(id)
                    }),
                _ => Condition::all().add(beyond),
            });
    }
    let order = if q.descending {
        Order::Desc
    } else {
        Order::Asc
    };
    s = if q.sort == SortKey::DueAt {
        s.order_by_with_nulls(col, order.clone(), NullOrdering::Last)
    } else {
        s.order_by(col, order.clone())
    };
    s.order_by(ticket::Column::Id, order).limit(q.limit + 1)
}

/// The SQL of a list page as the server runs it, for checking its plan (see the README).
pub fn list_statement(ctx: &TenantCtx, q: &ListQuery, backend: DbBackend) -> Statement {
    list_select(ctx, q).build(backend)
}

/// How a page's statement is planned on PostgreSQL (ADR 0029). A generic plan only where the
/// best plan is the same for every organisation and every value: a walk of the organisation's
/// index for the sort, or of its status index in creation order, stopped at the page's end.
/// Another filter (a person, a label, a project, a priority, a date) can be rare in one
/// organisation and everywhere in another, and its best plan depends on which.
pub fn list_planning(ctx: &TenantCtx, q: &ListQuery) -> Planning {
    // Every field named, so a new filter cannot join without a decision here.
    let ListQuery {
        project_id,
        statuses,
        priorities,
        assignee,
        requester,
        label,
        due_before,
        updated_since,
        sort,
        descending: _,
        deleted: _,
        parent_id,
        limit: _,
        after: _,
    } = q;
    let by_sort_or_status = statuses.is_empty() || *sort == SortKey::CreatedAt;
    // (A walled viewer's list also leaves out the projects hidden from them, a subquery whose
    // plan is the same for everyone.)
    let other_filters = project_id.is_some()
        || parent_id.is_some()
        || !priorities.is_empty()
        || assignee.is_some()
        || requester.is_some()
        || access::sees_only_own_tickets(ctx.role)
        || label.is_some()
        || due_before.is_some()
        || updated_since.is_some();
    if by_sort_or_status && !other_filters {
        Planning::Generic
    } else {
        Planning::PerRequest
    }
}

pub async fn list(db: &Db, ctx: &TenantCtx, q: ListQuery) -> Result<Page<Ticket>> {
    access::authorize(ctx, Action::TicketRead)?;
    let tx = db.read_planned(ctx, list_planning(ctx, &q)).await?;
    let mut tickets = assemble(&tx, list_select(ctx, &q)).await?;
    tx.commit().await?;
    sort_page(&mut tickets, &q);
    Ok(Page::with_cursor(
        tickets,
        q.limit,
        |t| pagination::encode_keyed(sort_value(q.sort, t), t.id),
        |t| t,
    ))
}

/// `GET /me/tickets`: what is assigned to the caller (for a requester: what they requested).
pub async fn mine(db: &Db, ctx: &TenantCtx, mut q: ListQuery) -> Result<Page<Ticket>> {
    if access::sees_only_own_tickets(ctx.role) {
        q.requester = Some(ctx.user_id);
    } else {
        q.assignee = Some(ctx.user_id);
    }
    list(db, ctx, q).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::Role;

    #[test]
    fn only_pages_walked_in_an_index_order_get_a_generic_plan() {
        let org = Uuid::now_v7();
        let staff = TenantCtx::authenticated(org, Uuid::now_v7(), Role::Admin, None);
        let requester = TenantCtx::authenticated(org, Uuid::now_v7(), Role::Requester, None);
        let planning =
            |ctx: &TenantCtx, f: TicketFilter| list_planning(ctx, &f.validate(ctx).unwrap());
        let generic = [
            TicketFilter::default(),
            TicketFilter {
                status: Some("open,pending".into()),
                ..Default::default()
            },
            TicketFilter {
                sort: Some("-updated_at".into()),
                cursor: Some(pagination::encode_keyed(0, Uuid::nil())),
                ..Default::default()
            },
            TicketFilter {
                sort: Some("due_at".into()),
                deleted: Some(true),
                ..Default::default()
            },
        ];
        let per_request = [
            TicketFilter {
                status: Some("open".into()),
                sort: Some("-updated_at".into()),
                ..Default::default()
            },
            TicketFilter {
                project_id: Some(Uuid::now_v7()),
                ..Default::default()
            },
            TicketFilter {
                priority: Some("high".into()),
                ..Default::default()
            },
            TicketFilter {
                assignee: Some("me".into()),
                ..Default::default()
            },
            TicketFilter {
                requester: Some("me".into()),
                ..Default::default()
            },
            TicketFilter {
                label: Some("vip".into()),
                ..Default::default()
            },
            TicketFilter {
                due_before: Some(Utc::now()),
                ..Default::default()
            },
            TicketFilter {
                updated_since: Some(Utc::now()),
                ..Default::default()
            },
        ];
        let cases = (generic.map(|f| (f, Planning::Generic)).into_iter())
            .chain(per_request.map(|f| (f, Planning::PerRequest)));
        for (f, expected) in cases {
            let shown = format!("{f:?}");
            assert_eq!(planning(&staff, f), expected, "{shown}");
        }
        // A requester's list is filtered to their own tickets.
        assert_eq!(
            planning(&requester, TicketFilter::default()),
            Planning::PerRequest
        );
    }

    #[test]
    fn cursor_times_are_clamped_to_what_databases_store() {
        assert_eq!(micros_to_time(0).timestamp(), 0);
        assert_eq!(micros_to_time(i64::MAX).format("%Y").to_string(), "9999");
        assert_eq!(micros_to_time(i64::MIN).format("%Y").to_string(), "0001");
    }
}
