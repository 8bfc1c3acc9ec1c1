//! Projects, tickets and comments. Writes go through the write path of `idempotency`: one
//! transaction per change, `If-Match` on versioned resources, `Idempotency-Key` on POSTs.

use axum::{
    extract::State,
    http::header,
    response::{IntoResponse, Response},
};
use uuid::Uuid;

use super::{
    AppState,
    extract::{Auth, Json, Path, Query},
    idempotency::{
        BodylessCommand, Command, IdempotencyKeyHeader, IfMatch, IfMatchHeader, etag, write,
    },
};
use crate::{
    error::Result,
    idempotency::Reply,
    pagination::{Page, PageParams},
    work::{
        comments::{self, Comment, CommentPatch, NewComment},
        projects::{self, NewProject, Project, ProjectFilter, ProjectPatch},
        search::{self, SearchPage, SearchParams},
        tickets::{self, Assignment, NewTicket, Ticket, TicketFilter, TicketPatch},
        timeline::{self, TimelineEntry},
        views::{self, NewSavedView, SavedView, SavedViewPatch},
    },
};

/// `GET /views`: all of them (a person keeps at most a hundred).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct SavedViewList {
    pub items: Vec<SavedView>,
}

fn ticket_location(t: &Ticket) -> String {
    format!("/api/v1/tickets/{}", t.id)
}

fn ticket_reply(t: &Ticket) -> Result<Reply> {
    Reply::ok(t, Some(t.version))
}

// ---- Projects ----

/// Projects, oldest first (archived ones only with `include_archived=true`).
#[utoipa::path(get, path = "/projects", tag = "projects", params(ProjectFilter, PageParams), security(("bearer" = [])),
    responses((status = 200, description = "A page of projects", body = Page<Project>)))]
pub async fn list_projects(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Query(filter): Query<ProjectFilter>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<Project>>> {
    Ok(Json(
        projects::list(&s.db, &ctx, filter, page.validate()?).await?,
    ))
}

/// Create a project (managers and above).
#[utoipa::path(post, path = "/projects", tag = "projects", request_body = NewProject,
    params(IdempotencyKeyHeader),
    security(("bearer" = [])), responses((status = 201, description = "Created", body = Project)))]
pub async fn create_project(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    cmd: Command<NewProject>,
) -> Result<Response> {
    write(&s.db, &ctx, cmd.key, async |tx| {
        let p = projects::create(tx, &ctx, cmd.body).await?;
        Reply::created(&p, format!("/api/v1/projects/{}", p.id), None)
    })
    .await
}

/// One project.
#[utoipa::path(get, path = "/projects/{id}", tag = "projects", params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, description = "The project", body = Project)))]
pub async fn get_project(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Path(id): Path<Uuid>,
) -> Result<Json<Project>> {
    Ok(Json(projects::get(&s.db, &ctx, id).await?))
}

/// Rename, describe, archive or restore a project (managers and above). The key is fixed.
#[utoipa::path(patch, path = "/projects/{id}", tag = "projects", params(("id" = Uuid, Path)), request_body = ProjectPatch,
    security(("bearer" = [])), responses((status = 200, description = "Updated", body = Project)))]
pub async fn update_project(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Path(id): Path<Uuid>,
    Json(patch): Json<ProjectPatch>,
) -> Result<Response> {
    write(&s.db, &ctx, None, async |tx| {
        Reply::ok(&projects::update(tx, &ctx, id, patch).await?, None)
    })
    .await
}

/// Archive a project (managers and above): its tickets stay, new ones cannot be filed.
#[utoipa::path(delete, path = "/projects/{id}", tag = "projects", params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 204, description = "Archived")))]
pub async fn archive_project(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Path(id): Path<Uuid>,
) -> Result<Response> {
    write(&s.db, &ctx, None, async |tx| {
        projects::archive(tx, &ctx, id).await?;
        Ok(Reply::no_content())
    })
    .await
}

/// What happened in the project and its tickets, newest first (not for requesters).
#[utoipa::path(get, path = "/projects/{id}/activity", tag = "projects", params(("id" = Uuid, Path), PageParams),
    security(("bearer" = [])), responses((status = 200, description = "A page of timeline entries", body = Page<TimelineEntry>)))]
pub async fn project_activity(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Path(id): Path<Uuid>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<TimelineEntry>>> {
    Ok(Json(
        timeline::of_project(&s.db, &ctx, id, page.validate()?).await?,
    ))
}

// ---- Tickets ----

/// Tickets, filtered and sorted (requesters see only their own).
#[utoipa::path(get, path = "/tickets", tag = "tickets", params(TicketFilter), security(("bearer" = [])),
    responses((status = 200, description = "A page of tickets", body = Page<Ticket>)))]
pub async fn list_tickets(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Query(filter): Query<TicketFilter>,
) -> Result<Json<Page<Ticket>>> {
    let q = filter.validate(&ctx)?;
    Ok(Json(tickets::list(&s.db, &ctx, q).await?))
}

/// Search ticket titles, descriptions and comments, ranked, with highlighted snippets; any
/// ticket list filter narrows it (`sort` does not apply: results are ordered by relevance).
/// Requesters find only their own tickets and never internal notes.
#[utoipa::path(get, path = "/search", tag = "tickets", params(SearchParams, TicketFilter),
    security(("bearer" = [])),
    responses((status = 200, description = "A page of matching tickets", body = SearchPage)))]
pub async fn search(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Query(params): Query<SearchParams>,
    Query(filter): Query<TicketFilter>,
) -> Result<Json<SearchPage>> {
    Ok(Json(search::search(&s.db, &ctx, params, filter).await?))
}

/// The caller's tickets: assigned to them (for requesters: requested by them).
#[utoipa::path(get, path = "/me/tickets", tag = "tickets", params(TicketFilter), security(("bearer" = [])),
    responses((status = 200, description = "A page of tickets", body = Page<Ticket>)))]
pub async fn my_tickets(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Query(filter): Query<TicketFilter>,
) -> Result<Json<Page<Ticket>>> {
    let q = filter.validate(&ctx)?;
    Ok(Json(tickets::mine(&s.db, &ctx, q).await?))
}

/// File a ticket. It gets the project's next key (`OPS-42`).
#[utoipa::path(post, path = "/tickets", tag = "tickets", request_body = NewTicket,
    params(IdempotencyKeyHeader),
    security(("bearer" = [])),
    responses((status = 201, description = "Created", body = Ticket, headers(("ETag" = String), ("Location" = String)))))]
pub async fn create_ticket(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    cmd: Command<NewTicket>,
) -> Result<Response> {
    write(&s.db, &ctx, cmd.key, async |tx| {
        let t = tickets::create(tx, &ctx, cmd.body).await?;
        Reply::created(&t, ticket_location(&t), Some(t.version))
    })
    .await
}

/// One ticket, by id or key (`OPS-42`).
#[utoipa::path(get, path = "/tickets/{id}", tag = "tickets", params(("id" = String, Path, description = "Id or key")),
    security(("bearer" = [])), responses((status = 200, description = "The ticket", body = Ticket, headers(("ETag" = String)))))]
pub async fn get_ticket(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Path(id): Path<String>,
) -> Result<Response> {
    let t = tickets::get(&s.db, &ctx, &id).await?;
    Ok(([(header::ETAG, etag(t.version))], Json(t)).into_response())
}

/// Change a ticket's fields or status (agents and above).
#[utoipa::path(patch, path = "/tickets/{id}", tag = "tickets", request_body = TicketPatch,
    params(("id" = String, Path, description = "Id or key"), IfMatchHeader),
    security(("bearer" = [])), responses((status = 200, description = "Updated", body = Ticket, headers(("ETag" = String)))))]
pub async fn update_ticket(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    IfMatch(expected): IfMatch,
    Json(patch): Json<TicketPatch>,
) -> Result<Response> {
    write(&s.db, &ctx, None, async |tx| {
        ticket_reply(&tickets::update(tx, &ctx, &id, &expected, patch).await?)
    })
    .await
}

/// Delete a ticket (managers and above). Admins can restore it.
#[utoipa::path(delete, path = "/tickets/{id}", tag = "tickets",
    params(("id" = String, Path, description = "Id or key"), IfMatchHeader),
    security(("bearer" = [])), responses((status = 204, description = "Deleted")))]
pub async fn delete_ticket(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    IfMatch(expected): IfMatch,
) -> Result<Response> {
    write(&s.db, &ctx, None, async |tx| {
        tickets::delete(tx, &ctx, &id, &expected).await?;
        Ok(Reply::no_content())
    })
    .await
}

/// Replace the assignees (agents and above).
#[utoipa::path(post, path = "/tickets/{id}/assign", tag = "tickets", request_body = Assignment,
    params(("id" = String, Path, description = "Id or key"), IfMatchHeader,
        IdempotencyKeyHeader),
    security(("bearer" = [])), responses((status = 200, description = "Assigned", body = Ticket, headers(("ETag" = String)))))]
pub async fn assign_ticket(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    IfMatch(expected): IfMatch,
    cmd: Command<Assignment>,
) -> Result<Response> {
    write(&s.db, &ctx, cmd.key, async |tx| {
        ticket_reply(&tickets::assign(tx, &ctx, &id, &expected, cmd.body).await?)
    })
    .await
}

/// Resolve the ticket (agents and above).
#[utoipa::path(post, path = "/tickets/{id}/complete", tag = "tickets",
    params(("id" = String, Path, description = "Id or key"), IfMatchHeader,
        IdempotencyKeyHeader),
    security(("bearer" = [])), responses((status = 200, description = "Resolved", body = Ticket, headers(("ETag" = String)))))]
pub async fn complete_ticket(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    IfMatch(expected): IfMatch,
    action: BodylessCommand,
) -> Result<Response> {
    write(&s.db, &ctx, action.key, async |tx| {
        ticket_reply(&tickets::complete(tx, &ctx, &id, &expected).await?)
    })
    .await
}

/// Reopen a resolved, closed or cancelled ticket (agents and above).
#[utoipa::path(post, path = "/tickets/{id}/reopen", tag = "tickets",
    params(("id" = String, Path, description = "Id or key"), IfMatchHeader,
        IdempotencyKeyHeader),
    security(("bearer" = [])), responses((status = 200, description = "Reopened", body = Ticket, headers(("ETag" = String)))))]
pub async fn reopen_ticket(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    IfMatch(expected): IfMatch,
    action: BodylessCommand,
) -> Result<Response> {
    write(&s.db, &ctx, action.key, async |tx| {
        ticket_reply(&tickets::reopen(tx, &ctx, &id, &expected).await?)
    })
    .await
}

/// Bring a deleted ticket back (admins).
#[utoipa::path(post, path = "/tickets/{id}/restore", tag = "tickets",
    params(("id" = String, Path, description = "Id or key"), IfMatchHeader,
        IdempotencyKeyHeader),
    security(("bearer" = [])), responses((status = 200, description = "Restored", body = Ticket, headers(("ETag" = String)))))]
pub async fn restore_ticket(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    IfMatch(expected): IfMatch,
    action: BodylessCommand,
) -> Result<Response> {
    write(&s.db, &ctx, action.key, async |tx| {
        ticket_reply(&tickets::restore(tx, &ctx, &id, &expected).await?)
    })
    .await
}

/// The ticket's timeline, oldest first: who changed what, when.
#[utoipa::path(get, path = "/tickets/{id}/timeline", tag = "tickets", params(("id" = String, Path, description = "Id or key"), PageParams),
    security(("bearer" = [])), responses((status = 200, description = "A page of timeline entries", body = Page<TimelineEntry>)))]
pub async fn ticket_timeline(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<TimelineEntry>>> {
    Ok(Json(
        timeline::of_ticket(&s.db, &ctx, &id, page.validate()?).await?,
    ))
}

// ---- Comments ----

/// The ticket's comments, oldest first (requesters do not see internal notes).
#[utoipa::path(get, path = "/tickets/{id}/comments", tag = "comments", params(("id" = String, Path, description = "Id or key"), PageParams),
    security(("bearer" = [])), responses((status = 200, description = "A page of comments", body = Page<Comment>)))]
pub async fn list_comments(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<Comment>>> {
    Ok(Json(
        comments::list(&s.db, &ctx, &id, page.validate()?).await?,
    ))
}

/// Comment on a ticket; `internal: true` for a staff-only note.
#[utoipa::path(post, path = "/tickets/{id}/comments", tag = "comments", request_body = NewComment,
    params(("id" = String, Path, description = "Id or key"), IdempotencyKeyHeader),
    security(("bearer" = [])),
    responses((status = 201, description = "Created", body = Comment, headers(("ETag" = String), ("Location" = String)))))]
pub async fn create_comment(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    cmd: Command<NewComment>,
) -> Result<Response> {
    write(&s.db, &ctx, cmd.key, async |tx| {
        let c = comments::create(tx, &ctx, &id, cmd.body).await?;
        Reply::created(&c, format!("/api/v1/comments/{}", c.id), Some(c.version))
    })
    .await
}

/// Edit a comment (its author, or an admin).
#[utoipa::path(patch, path = "/comments/{id}", tag = "comments", request_body = CommentPatch,
    params(("id" = Uuid, Path), IfMatchHeader),
    security(("bearer" = [])), responses((status = 200, description = "Updated", body = Comment, headers(("ETag" = String)))))]
pub async fn update_comment(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Path(id): Path<Uuid>,
    IfMatch(expected): IfMatch,
    Json(patch): Json<CommentPatch>,
) -> Result<Response> {
    write(&s.db, &ctx, None, async |tx| {
        let c = comments::update(tx, &ctx, id, &expected, patch).await?;
        Reply::ok(&c, Some(c.version))
    })
    .await
}

/// Delete a comment (its author, or an admin). The timeline keeps what it said.
#[utoipa::path(delete, path = "/comments/{id}", tag = "comments",
    params(("id" = Uuid, Path), IfMatchHeader),
    security(("bearer" = [])), responses((status = 204, description = "Deleted")))]
pub async fn delete_comment(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Path(id): Path<Uuid>,
    IfMatch(expected): IfMatch,
) -> Result<Response> {
    write(&s.db, &ctx, None, async |tx| {
        comments::delete(tx, &ctx, id, &expected).await?;
        Ok(Reply::no_content())
    })
    .await
}

// ---- Saved views ----

/// The caller's saved ticket list views, by name.
#[utoipa::path(get, path = "/views", tag = "views", security(("bearer" = [])),
    responses((status = 200, description = "The caller's views", body = SavedViewList)))]
pub async fn list_views(State(s): State<AppState>, Auth(ctx): Auth) -> Result<Json<SavedViewList>> {
    Ok(Json(SavedViewList {
        items: views::list(&s.db, &ctx).await?,
    }))
}

/// Save a ticket list view for the caller.
#[utoipa::path(post, path = "/views", tag = "views", request_body = NewSavedView,
    params(IdempotencyKeyHeader),
    security(("bearer" = [])), responses((status = 201, description = "Saved", body = SavedView)))]
pub async fn create_view(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    cmd: Command<NewSavedView>,
) -> Result<Response> {
    write(&s.db, &ctx, cmd.key, async |tx| {
        let view = views::create(tx, &ctx, cmd.body).await?;
        Reply::created(&view, format!("/api/v1/views/{}", view.id), None)
    })
    .await
}

/// Rename a view or change its query.
#[utoipa::path(patch, path = "/views/{id}", tag = "views", params(("id" = Uuid, Path)), request_body = SavedViewPatch,
    security(("bearer" = [])), responses((status = 200, description = "Updated", body = SavedView)))]
pub async fn update_view(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Path(id): Path<Uuid>,
    Json(patch): Json<SavedViewPatch>,
) -> Result<Response> {
    write(&s.db, &ctx, None, async |tx| {
        Reply::ok(&views::update(tx, &ctx, id, patch).await?, None)
    })
    .await
}

/// Delete one of the caller's views.
#[utoipa::path(delete, path = "/views/{id}", tag = "views", params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 204, description = "Deleted")))]
pub async fn delete_view(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Path(id): Path<Uuid>,
) -> Result<Response> {
    write(&s.db, &ctx, None, async |tx| {
        views::delete(tx, &ctx, id).await?;
        Ok(Reply::no_content())
    })
    .await
}
