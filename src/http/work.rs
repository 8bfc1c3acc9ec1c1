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
    idempotency::{self, Begun, BodylessCommand, Command, IfMatch, Reply, etag},
};
use crate::{
    error::Result,
    pagination::{Page, PageParams},
    work::{
        comments::{self, Comment, CommentPatch, NewComment},
        projects::{self, NewProject, Project, ProjectFilter, ProjectPatch},
        tickets::{self, Assignment, NewTicket, Ticket, TicketFilter, TicketPatch},
        timeline::{self, TimelineEntry},
    },
};

/// `change!(state, ctx, key, |tx| body)` runs `body` as one write, with `tx` bound to the
/// change's transaction: replays the stored answer for a repeated `Idempotency-Key`, otherwise
/// commits the change together with its answer.
macro_rules! change {
    ($s:expr, $ctx:expr, $key:expr, |$tx:ident| $body:expr) => {{
        let w = match idempotency::begin(&$s.db, &$ctx, $key).await? {
            Begun::Replay(answer) => return Ok(answer),
            Begun::Fresh(w) => w,
        };
        let outcome = async {
            let $tx = w.tx();
            $body
        }
        .await;
        w.finish(&$s.db, &$ctx, outcome).await
    }};
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
    params(("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]([ -~]{0,253}[!-~])?$", description = "Makes a retry return the first answer (1–255 printable ASCII characters)")),
    security(("bearer" = [])), responses((status = 201, description = "Created", body = Project)))]
pub async fn create_project(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    cmd: Command<NewProject>,
) -> Result<Response> {
    change!(s, ctx, cmd.key, |tx| {
        let p = projects::create(tx, &ctx, cmd.body).await?;
        Reply::created(&p, format!("/api/v1/projects/{}", p.id), None)
    })
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
    change!(s, ctx, None, |tx| Reply::ok(
        &projects::update(tx, &ctx, id, patch).await?,
        None
    ))
}

/// Archive a project (managers and above): its tickets stay, new ones cannot be filed.
#[utoipa::path(delete, path = "/projects/{id}", tag = "projects", params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 204, description = "Archived")))]
pub async fn archive_project(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Path(id): Path<Uuid>,
) -> Result<Response> {
    change!(s, ctx, None, |tx| {
        projects::archive(tx, &ctx, id).await?;
        Ok(Reply::no_content())
    })
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
    params(("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]([ -~]{0,253}[!-~])?$", description = "Makes a retry return the first answer (1–255 printable ASCII characters)")),
    security(("bearer" = [])),
    responses((status = 201, description = "Created", body = Ticket, headers(("ETag" = String), ("Location" = String)))))]
pub async fn create_ticket(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    cmd: Command<NewTicket>,
) -> Result<Response> {
    change!(s, ctx, cmd.key, |tx| {
        let t = tickets::create(tx, &ctx, cmd.body).await?;
        Reply::created(&t, ticket_location(&t), Some(t.version))
    })
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

const IF_MATCH: &str = "The ticket's current ETag";

/// Change a ticket's fields or status (agents and above).
#[utoipa::path(patch, path = "/tickets/{id}", tag = "tickets", request_body = TicketPatch,
    params(("id" = String, Path, description = "Id or key"), ("If-Match" = String, Header, pattern = "^(\\*|\"[1-9][0-9]{0,17}\"( *, *\"[1-9][0-9]{0,17}\")*)$", description = IF_MATCH)),
    security(("bearer" = [])), responses((status = 200, description = "Updated", body = Ticket, headers(("ETag" = String)))))]
pub async fn update_ticket(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    IfMatch(expected): IfMatch,
    Json(patch): Json<TicketPatch>,
) -> Result<Response> {
    change!(s, ctx, None, |tx| ticket_reply(
        &tickets::update(tx, &ctx, &id, &expected, patch).await?
    ))
}

/// Delete a ticket (managers and above). Admins can restore it.
#[utoipa::path(delete, path = "/tickets/{id}", tag = "tickets",
    params(("id" = String, Path, description = "Id or key"), ("If-Match" = String, Header, pattern = "^(\\*|\"[1-9][0-9]{0,17}\"( *, *\"[1-9][0-9]{0,17}\")*)$", description = IF_MATCH)),
    security(("bearer" = [])), responses((status = 204, description = "Deleted")))]
pub async fn delete_ticket(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    IfMatch(expected): IfMatch,
) -> Result<Response> {
    change!(s, ctx, None, |tx| {
        tickets::delete(tx, &ctx, &id, &expected).await?;
        Ok(Reply::no_content())
    })
}

/// Replace the assignees (agents and above).
#[utoipa::path(post, path = "/tickets/{id}/assign", tag = "tickets", request_body = Assignment,
    params(("id" = String, Path, description = "Id or key"), ("If-Match" = String, Header, pattern = "^(\\*|\"[1-9][0-9]{0,17}\"( *, *\"[1-9][0-9]{0,17}\")*)$", description = IF_MATCH),
        ("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]([ -~]{0,253}[!-~])?$", description = "Makes a retry return the first answer (1–255 printable ASCII characters)")),
    security(("bearer" = [])), responses((status = 200, description = "Assigned", body = Ticket, headers(("ETag" = String)))))]
pub async fn assign_ticket(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    IfMatch(expected): IfMatch,
    cmd: Command<Assignment>,
) -> Result<Response> {
    change!(s, ctx, cmd.key, |tx| ticket_reply(
        &tickets::assign(tx, &ctx, &id, &expected, cmd.body).await?
    ))
}

/// Resolve the ticket (agents and above).
#[utoipa::path(post, path = "/tickets/{id}/complete", tag = "tickets",
    params(("id" = String, Path, description = "Id or key"), ("If-Match" = String, Header, pattern = "^(\\*|\"[1-9][0-9]{0,17}\"( *, *\"[1-9][0-9]{0,17}\")*)$", description = IF_MATCH),
        ("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]([ -~]{0,253}[!-~])?$", description = "Makes a retry return the first answer (1–255 printable ASCII characters)")),
    security(("bearer" = [])), responses((status = 200, description = "Resolved", body = Ticket, headers(("ETag" = String)))))]
pub async fn complete_ticket(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    IfMatch(expected): IfMatch,
    action: BodylessCommand,
) -> Result<Response> {
    change!(s, ctx, action.key, |tx| ticket_reply(
        &tickets::complete(tx, &ctx, &id, &expected).await?
    ))
}

/// Reopen a resolved, closed or cancelled ticket (agents and above).
#[utoipa::path(post, path = "/tickets/{id}/reopen", tag = "tickets",
    params(("id" = String, Path, description = "Id or key"), ("If-Match" = String, Header, pattern = "^(\\*|\"[1-9][0-9]{0,17}\"( *, *\"[1-9][0-9]{0,17}\")*)$", description = IF_MATCH),
        ("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]([ -~]{0,253}[!-~])?$", description = "Makes a retry return the first answer (1–255 printable ASCII characters)")),
    security(("bearer" = [])), responses((status = 200, description = "Reopened", body = Ticket, headers(("ETag" = String)))))]
pub async fn reopen_ticket(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    IfMatch(expected): IfMatch,
    action: BodylessCommand,
) -> Result<Response> {
    change!(s, ctx, action.key, |tx| ticket_reply(
        &tickets::reopen(tx, &ctx, &id, &expected).await?
    ))
}

/// Bring a deleted ticket back (admins).
#[utoipa::path(post, path = "/tickets/{id}/restore", tag = "tickets",
    params(("id" = String, Path, description = "Id or key"), ("If-Match" = String, Header, pattern = "^(\\*|\"[1-9][0-9]{0,17}\"( *, *\"[1-9][0-9]{0,17}\")*)$", description = IF_MATCH),
        ("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]([ -~]{0,253}[!-~])?$", description = "Makes a retry return the first answer (1–255 printable ASCII characters)")),
    security(("bearer" = [])), responses((status = 200, description = "Restored", body = Ticket, headers(("ETag" = String)))))]
pub async fn restore_ticket(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    IfMatch(expected): IfMatch,
    action: BodylessCommand,
) -> Result<Response> {
    change!(s, ctx, action.key, |tx| ticket_reply(
        &tickets::restore(tx, &ctx, &id, &expected).await?
    ))
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
    params(("id" = String, Path, description = "Id or key"), ("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]([ -~]{0,253}[!-~])?$", description = "Makes a retry return the first answer (1–255 printable ASCII characters)")),
    security(("bearer" = [])),
    responses((status = 201, description = "Created", body = Comment, headers(("ETag" = String), ("Location" = String)))))]
pub async fn create_comment(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    cmd: Command<NewComment>,
) -> Result<Response> {
    change!(s, ctx, cmd.key, |tx| {
        let c = comments::create(tx, &ctx, &id, cmd.body).await?;
        Reply::created(&c, format!("/api/v1/comments/{}", c.id), Some(c.version))
    })
}

/// Edit a comment (its author, or an admin).
#[utoipa::path(patch, path = "/comments/{id}", tag = "comments", request_body = CommentPatch,
    params(("id" = Uuid, Path), ("If-Match" = String, Header, pattern = "^(\\*|\"[1-9][0-9]{0,17}\"( *, *\"[1-9][0-9]{0,17}\")*)$", description = "The comment's current ETag")),
    security(("bearer" = [])), responses((status = 200, description = "Updated", body = Comment, headers(("ETag" = String)))))]
pub async fn update_comment(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Path(id): Path<Uuid>,
    IfMatch(expected): IfMatch,
    Json(patch): Json<CommentPatch>,
) -> Result<Response> {
    change!(s, ctx, None, |tx| {
        let c = comments::update(tx, &ctx, id, &expected, patch).await?;
        Reply::ok(&c, Some(c.version))
    })
}

/// Delete a comment (its author, or an admin). The timeline keeps what it said.
#[utoipa::path(delete, path = "/comments/{id}", tag = "comments",
    params(("id" = Uuid, Path), ("If-Match" = String, Header, pattern = "^(\\*|\"[1-9][0-9]{0,17}\"( *, *\"[1-9][0-9]{0,17}\")*)$", description = "The comment's current ETag")),
    security(("bearer" = [])), responses((status = 204, description = "Deleted")))]
pub async fn delete_comment(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Path(id): Path<Uuid>,
    IfMatch(expected): IfMatch,
) -> Result<Response> {
    change!(s, ctx, None, |tx| {
        comments::delete(tx, &ctx, id, &expected).await?;
        Ok(Reply::no_content())
    })
}
