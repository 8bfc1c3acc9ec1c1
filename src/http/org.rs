//! The caller's organisation and its people.

use axum::{extract::State, http::StatusCode, response::IntoResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{
    AppState,
    extract::{Auth, ClientIp, Json, Path, Query, SignedIn},
};
use crate::{
    access::{self, Action},
    billing::{self, PlanView},
    conversation::settings,
    error::Result,
    lifecycle::{self, DeletionScheduled, OrgDeletion},
    pagination::{Page, PageParams},
    tenancy::{
        self, OrgPatch, Organization,
        invitations::Invitation,
        people::{self, NewPerson, Person, PersonPatch},
        retention::Retention,
    },
};

/// An organisation as its members see it; admins also see its inbound mail token.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrganizationView {
    #[serde(flatten)]
    pub organization: Organization,
    /// Admins only: the path secret of `POST /inbound/email/{inbound_email_token}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inbound_email_token: Option<String>,
}

/// The caller's organisation.
#[utoipa::path(get, path = "/org", tag = "organization", security(("bearer" = [])),
    responses((status = 200, description = "The organisation", body = OrganizationView)))]
pub async fn get_org(State(s): State<AppState>, Auth(ctx): Auth) -> Result<Json<OrganizationView>> {
    let organization = tenancy::get_org(&s.db, &ctx).await?;
    // Shown when the caller may manage mail: an admin, through a token whose scope reaches it.
    let inbound_email_token = if access::authorize(&ctx, Action::MailManage).is_ok() {
        Some(settings::get(&s.db, &s.mailroom, &ctx).await?.inbound_token)
    } else {
        None
    };
    Ok(Json(OrganizationView {
        organization,
        inbound_email_token,
    }))
}

/// Delete the organisation (the owner, confirming with their password).
///
/// It is closed at once: every session and API token stops, inbound mail is refused and
/// webhooks pause. Its owners are mailed; only they may sign in until `purge_at`
/// (`DOCKET_ORG_DELETION_GRACE_DAYS` from now, default 14), to restore it. Then every row and
/// file of it is purged.
#[utoipa::path(delete, path = "/org", tag = "organization", request_body = OrgDeletion,
    security(("session" = [])),
    responses((status = 202, description = "Closed; purged at `purge_at`", body = DeletionScheduled)))]
pub async fn delete_org(
    State(s): State<AppState>,
    SignedIn(ctx): SignedIn,
    ClientIp(ip): ClientIp,
    Json(req): Json<OrgDeletion>,
) -> Result<(StatusCode, Json<DeletionScheduled>)> {
    let org = lifecycle::delete_org(&s.db, &s.hasher, &ctx, req, ip, s.org_deletion_grace).await?;
    let purge_at = org.purge_at.unwrap_or_else(chrono::Utc::now);
    if s.org_deletion_grace.is_zero() {
        // No grace: purged now, not at the worker's next round.
        let (db, files) = (s.db.clone(), s.files.clone());
        tokio::spawn(async move {
            if let Err(err) = lifecycle::purge_due(&db, &files, chrono::Utc::now()).await {
                tracing::warn!(error = ?err, "purging a deleted organization failed; the worker will retry");
            }
        });
    }
    Ok((StatusCode::ACCEPTED, Json(DeletionScheduled { purge_at })))
}

/// Restore the deleted organisation within its grace period (owners). Everyone signs in again.
#[utoipa::path(post, path = "/org/restore", tag = "organization", security(("session" = [])),
    responses((status = 200, description = "Open again", body = Organization)))]
pub async fn restore_org(
    State(s): State<AppState>,
    SignedIn(ctx): SignedIn,
) -> Result<Json<Organization>> {
    Ok(Json(lifecycle::restore_org(&s.db, &ctx).await?))
}

/// The organisation's plan, its limits and what is used of each (every member). Without plans
/// on this server `plan` is `null` and nothing is limited.
#[utoipa::path(get, path = "/org/plan", tag = "organization", security(("bearer" = [])),
    responses((status = 200, description = "The plan, limits and usage", body = PlanView)))]
pub async fn get_plan(State(s): State<AppState>, Auth(ctx): Auth) -> Result<Json<PlanView>> {
    Ok(Json(billing::view(&s.db, &s.billing, &ctx).await?))
}

/// What the organisation keeps and for how long (every member may read it).
#[utoipa::path(get, path = "/org/retention", tag = "organization", security(("bearer" = [])),
    responses((status = 200, description = "The retention settings", body = Retention)))]
pub async fn get_retention(State(s): State<AppState>, Auth(ctx): Auth) -> Result<Json<Retention>> {
    Ok(Json(lifecycle::retention::settings(&s.db, &ctx).await?))
}

/// Set what the organisation keeps (admins): tickets closed or cancelled `closed_ticket_days`
/// ago are purged with everything on them, and the text of mail received `mail_body_days` ago
/// is replaced by a notice; `null` keeps them. The worker applies it daily and writes what it
/// removed in the audit log (`retention.applied`).
#[utoipa::path(put, path = "/org/retention", tag = "organization", request_body = Retention,
    security(("bearer" = [])),
    responses((status = 200, description = "The new settings", body = Retention)))]
pub async fn set_retention(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Json(to): Json<Retention>,
) -> Result<Json<Retention>> {
    Ok(Json(lifecycle::retention::change(&s.db, &ctx, to).await?))
}

/// Rename the organisation or change its slug (admins).
#[utoipa::path(patch, path = "/org", tag = "organization", request_body = OrgPatch, security(("bearer" = [])),
    responses((status = 200, description = "Updated", body = Organization)))]
pub async fn update_org(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Json(patch): Json<OrgPatch>,
) -> Result<Json<Organization>> {
    Ok(Json(tenancy::update_org(&s.db, &ctx, patch).await?))
}

/// People of the organisation, in the order they joined.
#[utoipa::path(get, path = "/users", tag = "people", params(PageParams), security(("bearer" = [])),
    responses((status = 200, description = "A page of people", body = Page<Person>)))]
pub async fn list_users(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<Person>>> {
    Ok(Json(people::list(&s.db, &ctx, page.validate()?).await?))
}

/// Invite a person (admins): the same as `POST /invitations`. The person chooses their own
/// password when they accept; the answer is the same whether or not the address has an account.
#[utoipa::path(post, path = "/users", tag = "people", request_body = NewPerson, security(("bearer" = [])),
    responses((status = 201, description = "Invited", body = Invitation)))]
pub async fn create_user(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Json(req): Json<NewPerson>,
) -> Result<impl IntoResponse> {
    Ok((
        StatusCode::CREATED,
        Json(people::create(&s.db, &ctx, req, s.rate_limits.invitations()).await?),
    ))
}

/// One person of the organisation.
#[utoipa::path(get, path = "/users/{id}", tag = "people", params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, description = "The person", body = Person)))]
pub async fn get_user(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Path(id): Path<Uuid>,
) -> Result<Json<Person>> {
    Ok(Json(people::get(&s.db, &ctx, id).await?))
}

/// Change a person's role or activation (admins), or your own name.
#[utoipa::path(patch, path = "/users/{id}", tag = "people", params(("id" = Uuid, Path)), request_body = PersonPatch,
    security(("bearer" = [])), responses((status = 200, description = "Updated", body = Person)))]
pub async fn update_user(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Path(id): Path<Uuid>,
    Json(patch): Json<PersonPatch>,
) -> Result<Json<Person>> {
    Ok(Json(people::update(&s.db, &ctx, id, patch).await?))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RemoveParams {
    /// Erase the person: scrub every trace of them in the organisation (mail addresses,
    /// logs, notifications, audit details: a tombstone instead), and anonymise the account when
    /// it belongs to no other organisation.
    #[serde(default)]
    pub erase: bool,
}

/// Remove a person from the organisation (admins).
#[utoipa::path(delete, path = "/users/{id}", tag = "people", params(("id" = Uuid, Path), RemoveParams),
    security(("bearer" = [])), responses((status = 204, description = "Removed")))]
pub async fn remove_user(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Path(id): Path<Uuid>,
    Query(q): Query<RemoveParams>,
) -> Result<StatusCode> {
    lifecycle::remove_person(&s.db, &ctx, id, q.erase).await?;
    Ok(StatusCode::NO_CONTENT)
}
