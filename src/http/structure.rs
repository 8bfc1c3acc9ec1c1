//! Project members, and structure between tickets: links, merge and its undo, split, and bulk
//! changes. Each write is one transaction through the write path of `idempotency`.

use axum::{extract::State, response::Response};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{
    AppState,
    extract::{Auth, Json, Path},
    idempotency::{BodylessCommand, Command, IdempotencyKeyHeader, write},
    problem::Problem,
};
use crate::{
    error::Result,
    idempotency::Reply,
    work::{
        projects::{self, MemberList, Members},
        structure::{
            bulk::{self, BulkRequest},
            links::{self, Link, LinkList, NewLink},
            merge::{self, MergeRequest},
            split::{self, SplitRequest},
        },
        tickets::Ticket,
    },
};

fn ticket_reply(t: &Ticket) -> Result<Reply> {
    Reply::ok(t, Some(t.version))
}

// ---- Project members ----

/// The project's members and their project roles (staff).
#[utoipa::path(get, path = "/projects/{id}/members", tag = "projects", params(("id" = Uuid, Path)),
    security(("bearer" = [])), responses((status = 200, description = "The members", body = MemberList)))]
pub async fn list_project_members(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Path(id): Path<Uuid>,
) -> Result<Json<MemberList>> {
    Ok(Json(projects::list_members(&s.db, &ctx, id).await?))
}

/// Replace the project's members (managers and above, or the project's admins). In a
/// `members` project only they (and the organisation's owners and admins) see it.
#[utoipa::path(put, path = "/projects/{id}/members", tag = "projects", params(("id" = Uuid, Path)),
    request_body = Members, security(("bearer" = [])),
    responses((status = 200, description = "The members now", body = MemberList)))]
pub async fn set_project_members(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Path(id): Path<Uuid>,
    Json(req): Json<Members>,
) -> Result<Response> {
    write(&s.db, &ctx, None, async |tx| {
        Reply::ok(&projects::set_members(tx, &ctx, id, req).await?, None)
    })
    .await
}

// ---- Links ----

/// The ticket's links, each from this ticket's side (`blocked_by` is the other side of
/// `blocks`); links to tickets the caller may not see are left out.
#[utoipa::path(get, path = "/tickets/{id}/links", tag = "tickets",
    params(("id" = String, Path, description = "Id or key")), security(("bearer" = [])),
    responses((status = 200, description = "The links", body = LinkList)))]
pub async fn list_links(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Path(id): Path<String>,
) -> Result<Json<LinkList>> {
    Ok(Json(links::list(&s.db, &ctx, &id).await?))
}

/// Link the ticket to another of the organisation (agents and above).
#[utoipa::path(post, path = "/tickets/{id}/links", tag = "tickets", request_body = NewLink,
    params(("id" = String, Path, description = "Id or key"), IdempotencyKeyHeader),
    security(("bearer" = [])), responses((status = 201, description = "Linked", body = Link)))]
pub async fn create_link(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    cmd: Command<NewLink>,
) -> Result<Response> {
    write(&s.db, &ctx, cmd.key, async |tx| {
        let link = links::create(tx, &ctx, &id, cmd.body).await?;
        let location = format!("/api/v1/tickets/{id}/links/{}", link.id);
        Reply::created(&link, location, None)
    })
    .await
}

/// Remove a link (agents and above).
#[utoipa::path(delete, path = "/tickets/{id}/links/{link_id}", tag = "tickets",
    params(("id" = String, Path, description = "Id or key"), ("link_id" = Uuid, Path)),
    security(("bearer" = [])), responses((status = 204, description = "Unlinked")))]
pub async fn delete_link(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Path((id, link_id)): Path<(String, Uuid)>,
) -> Result<Response> {
    write(&s.db, &ctx, None, async |tx| {
        links::delete(tx, &ctx, &id, link_id).await?;
        Ok(Reply::no_content())
    })
    .await
}

// ---- Merge and split ----

/// Merge the ticket into another: its comments, files and watchers move there, it is closed
/// with `merged_into_id`, and mail replying to it lands on the target. Returns the target.
#[utoipa::path(post, path = "/tickets/{id}/merge", tag = "tickets", request_body = MergeRequest,
    params(("id" = String, Path, description = "Id or key"), IdempotencyKeyHeader),
    security(("bearer" = [])), responses((status = 200, description = "The target", body = Ticket)))]
pub async fn merge_ticket(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    cmd: Command<MergeRequest>,
) -> Result<Response> {
    write(&s.db, &ctx, cmd.key, async |tx| {
        ticket_reply(&merge::merge(tx, &ctx, &id, cmd.body).await?)
    })
    .await
}

/// Undo the ticket's merge, within 10 minutes and while nothing was added to the target since.
/// Returns the ticket as it was before the merge.
#[utoipa::path(post, path = "/tickets/{id}/unmerge", tag = "tickets",
    params(("id" = String, Path, description = "Id or key"), IdempotencyKeyHeader),
    security(("bearer" = [])), responses((status = 200, description = "Unmerged", body = Ticket)))]
pub async fn unmerge_ticket(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    action: BodylessCommand,
) -> Result<Response> {
    write(&s.db, &ctx, action.key, async |tx| {
        ticket_reply(&merge::unmerge(tx, &ctx, &id).await?)
    })
    .await
}

/// Move chosen comments (and their files) into a new ticket of the same project and requester,
/// linked `relates` to this one.
#[utoipa::path(post, path = "/tickets/{id}/split", tag = "tickets", request_body = SplitRequest,
    params(("id" = String, Path, description = "Id or key"), IdempotencyKeyHeader),
    security(("bearer" = [])), responses((status = 201, description = "The new ticket", body = Ticket)))]
pub async fn split_ticket(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    cmd: Command<SplitRequest>,
) -> Result<Response> {
    write(&s.db, &ctx, cmd.key, async |tx| {
        let t = split::split(tx, &ctx, &id, cmd.body).await?;
        Reply::created(&t, format!("/api/v1/tickets/{}", t.id), Some(t.version))
    })
    .await
}

// ---- Bulk ----

/// One ticket's outcome in a bulk change.
#[derive(Serialize, ToSchema)]
pub struct BulkResult {
    /// The id or key as asked.
    pub id: String,
    /// 200, or the status the change alone would have had.
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket: Option<Ticket>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<Problem>,
}

#[derive(Serialize, ToSchema)]
pub struct BulkResults {
    pub results: Vec<BulkResult>,
}

/// Change up to 500 tickets at once. Each is judged and changed on its own (role, project,
/// state machine) with its own timeline entry and events; one that fails is left as it was.
#[utoipa::path(post, path = "/tickets/bulk", tag = "tickets", request_body = BulkRequest,
    params(IdempotencyKeyHeader), security(("bearer" = [])),
    responses((status = 200, description = "One result per id, in order", body = BulkResults)))]
pub async fn bulk_update(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    cmd: Command<BulkRequest>,
) -> Result<Response> {
    write(&s.db, &ctx, cmd.key, async |tx| {
        let results = bulk::bulk(tx, &ctx, cmd.body)
            .await?
            .into_iter()
            .map(|(id, done)| match done {
                Ok(t) => BulkResult {
                    id,
                    status: 200,
                    ticket: Some(t),
                    problem: None,
                },
                Err(err) => {
                    let problem = Problem::from(err);
                    BulkResult {
                        id,
                        status: problem.status,
                        ticket: None,
                        problem: Some(problem),
                    }
                }
            })
            .collect();
        Reply::ok(&BulkResults { results }, None)
    })
    .await
}
