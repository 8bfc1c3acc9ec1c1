//! Invitations: how a person joins an organisation. An admin invites an address; the mail
//! links to `/invite/<token>`; accepting (identity's `accept_invitation`) adds the membership.
//! Tokens are single use, last 7 days and are stored hashed; an invitation's answer is the same
//! whether or not the address already has an account anywhere.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, PaginatorTrait, QueryFilter};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{entity::membership, organization};
use crate::{
    access::{self, Action, Role, TenantCtx},
    audit,
    error::{Error, Result, Validator},
    identity::{self, tokens::OrgToken},
    mail::{self, Outgoing},
    pagination::{Page, PageRequest},
    store::{Db, TenantTx},
    text,
};

const LIFETIME: Duration = Duration::days(7);
/// An organisation this young sends a fifth of the daily invitations (a new organisation
/// named like a phishing lure cannot mail many strangers).
const NEW_ORGANIZATION: Duration = Duration::days(7);
/// One address is invited again at most this often, and at most [`PER_ADDRESS_PER_DAY`] times
/// a day.
const RESEND_EVERY: Duration = Duration::minutes(10);
const PER_ADDRESS_PER_DAY: u64 = 3;

/// How many invitation mails an organisation may send.
#[derive(Clone, Copy, Debug)]
pub struct InvitationLimits {
    /// Per organisation per day (`DOCKET_INVITATIONS_PER_DAY`; 0: no limits at all, the
    /// per-address ones included).
    pub per_day: u32,
}

mod entity {
    crate::store::tenant_entity!("invitations" {
        #[sea_orm(primary_key, auto_increment = false)]
        id: Uuid,
        email: String,
        name: Option<String>,
        role: String,
        token_hash: String,
        invited_by: Uuid,
        created_at: DateTimeUtc,
        expires_at: DateTimeUtc,
        accepted_at: Option<DateTimeUtc>,
        accepted_by: Option<Uuid>,
    });
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewInvitation {
    #[schema(format = "email")]
    pub email: String,
    pub role: Role,
    /// How the mail greets them (they choose their own name when they accept).
    #[schema(schema_with = crate::text::optional_line_schema)]
    pub name: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InvitationStatus {
    Pending,
    Expired,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Invitation {
    pub id: Uuid,
    pub email: String,
    pub name: Option<String>,
    pub role: Role,
    pub status: InvitationStatus,
    pub invited_by: Uuid,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl TryFrom<entity::Model> for Invitation {
    type Error = Error;
    fn try_from(m: entity::Model) -> Result<Self> {
        Ok(Self {
            id: m.id,
            role: super::parse_role(&m.role)?,
            status: if m.expires_at > Utc::now() {
                InvitationStatus::Pending
            } else {
                InvitationStatus::Expired
            },
            email: m.email,
            name: m.name,
            invited_by: m.invited_by,
            created_at: m.created_at,
            expires_at: m.expires_at,
        })
    }
}

/// Refuses (429) an invitation past the organisation's daily allowance, or to an address
/// invited moments ago or too often today.
async fn check_allowance(
    tx: &TenantTx,
    email: &str,
    org_created: DateTime<Utc>,
    limits: InvitationLimits,
) -> Result<()> {
    if limits.per_day == 0 {
        return Ok(());
    }
    let now = Utc::now();
    let day = now - Duration::days(1);
    let too_many = |detail: String, wait: Duration| Error::TooManyRequests {
        detail,
        retry_after: wait.to_std().unwrap_or(std::time::Duration::from_secs(60)),
    };
    if mail::queued_since(tx, mail::Kind::Invitation, Some(email), now - RESEND_EVERY).await? > 0 {
        return Err(too_many(
            "this address was invited moments ago; wait before inviting it again".into(),
            RESEND_EVERY,
        ));
    }
    if mail::queued_since(tx, mail::Kind::Invitation, Some(email), day).await?
        >= PER_ADDRESS_PER_DAY
    {
        return Err(too_many(
            format!("this address was invited {PER_ADDRESS_PER_DAY} times today"),
            Duration::hours(1),
        ));
    }
    let allowance = if now - org_created < NEW_ORGANIZATION {
        (limits.per_day / 5).max(1)
    } else {
        limits.per_day
    };
    if mail::queued_since(tx, mail::Kind::Invitation, None, day).await? >= u64::from(allowance) {
        return Err(too_many(
            format!("this organization has sent its {allowance} invitations for today"),
            Duration::hours(1),
        ));
    }
    Ok(())
}

/// Invites `req.email` and mails them the link (admins), within the organisation's allowance.
pub async fn invite(
    db: &Db,
    ctx: &TenantCtx,
    req: NewInvitation,
    limits: InvitationLimits,
) -> Result<Invitation> {
    access::authorize(ctx, Action::UserCreate)?;
    let mut v = Validator::default();
    let email = identity::normalize_email(&mut v, "email", &req.email);
    if let Some(name) = &req.name {
        text::check_line(&mut v, "name", name, text::MAX_LINE);
    }
    v.finish()?;
    access::check_grant(ctx.role, req.role)?;
    let tx = db.write(ctx).await?;
    super::ensure_still_acting(&tx, ctx).await?;
    // Someone who is already a member is in the admin's own list: saying so tells nothing new.
    if let Some(user_id) = identity::user_ids_by_emails(tx.conn(), vec![email.clone()])
        .await?
        .first()
        && tx
            .find::<membership::Entity>()
            .filter(membership::Column::UserId.eq(*user_id))
            .one(tx.conn())
            .await?
            .is_some()
    {
        return Err(Error::conflict(
            "user_exists",
            "this person is already a member of the organization",
        ));
    }
    let org = organization(&tx).await?;
    check_allowance(&tx, &email, org.created_at, limits).await?;
    // A new invitation replaces any earlier one to the same address.
    tx.delete_many::<entity::Entity>()
        .filter(entity::Column::Email.eq(&email))
        .filter(entity::Column::AcceptedAt.is_null())
        .exec(tx.conn())
        .await?;
    if req.role != Role::Requester {
        super::ensure_new_seat(&tx).await?;
    }
    let token = OrgToken::generate(OrgToken::INVITATION, tx.org_id());
    let now = Utc::now();
    let name = req
        .name
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty());
    let row = entity::ActiveModel {
        org_id: Set(tx.org_id()),
        id: Set(Uuid::now_v7()),
        email: Set(email.clone()),
        name: Set(name.clone()),
        role: Set(req.role.as_str().to_owned()),
        token_hash: Set(token.hash()),
        invited_by: Set(ctx.user_id),
        created_at: Set(now),
        expires_at: Set(now + LIFETIME),
        accepted_at: Set(None),
        accepted_by: Set(None),
    }
    .insert(tx.conn())
    .await?;
    let inviter = identity::users_by_ids(tx.conn(), vec![ctx.user_id])
        .await?
        .pop()
        .map(|u| u.name)
        .unwrap_or_default();
    mail::enqueue(
        &tx,
        Outgoing {
            kind: mail::Kind::Invitation,
            to: email,
            to_user_id: None,
            params: serde_json::json!({
                "path": format!("/invite/{}", token.token),
                "organization": org.name,
                "inviter": inviter,
                "role": req.role.as_str(),
                "name": name,
            }),
            automatic: false,
            thread: None,
        },
    )
    .await?;
    audit::record(
        &tx,
        Some(ctx.user_id),
        "invitation.created",
        "invitation",
        Some(row.id),
        serde_json::json!({"role": req.role}),
    )
    .await?;
    tx.commit().await?;
    Invitation::try_from(row)
}

/// Staff invitations neither accepted nor expired: each holds a seat.
pub(crate) async fn pending_staff(tx: &TenantTx) -> Result<u64> {
    Ok(tx
        .find::<entity::Entity>()
        .filter(entity::Column::AcceptedAt.is_null())
        .filter(entity::Column::ExpiresAt.gt(Utc::now()))
        .filter(entity::Column::Role.ne(Role::Requester.as_str()))
        .count(tx.conn())
        .await?)
}

/// The invitations not yet accepted (expired ones included, to resend), newest first.
pub async fn list(db: &Db, ctx: &TenantCtx, page: PageRequest) -> Result<Page<Invitation>> {
    access::authorize(ctx, Action::UserCreate)?;
    let tx = db.read(ctx).await?;
    let rows = tx
        .newest_first::<entity::Entity>(entity::Column::Id, &page)?
        .filter(entity::Column::AcceptedAt.is_null())
        .all(tx.conn())
        .await?;
    tx.commit().await?;
    Page::try_from_rows(rows, page.limit, |m| m.id, Invitation::try_from)
}

/// Withdraws an invitation: its link stops working.
pub async fn revoke(db: &Db, ctx: &TenantCtx, id: Uuid) -> Result<()> {
    access::authorize(ctx, Action::UserCreate)?;
    let tx = db.write(ctx).await?;
    let gone = tx
        .delete_many::<entity::Entity>()
        .filter(entity::Column::Id.eq(id))
        .filter(entity::Column::AcceptedAt.is_null())
        .exec(tx.conn())
        .await?;
    if gone.rows_affected == 0 {
        return Err(Error::NotFound("invitation"));
    }
    audit::record(
        &tx,
        Some(ctx.user_id),
        "invitation.revoked",
        "invitation",
        Some(id),
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// What an invitation offers, once its token checked out.
pub(crate) struct Offer {
    pub id: Uuid,
    pub email: String,
    pub role: Role,
}

fn invalid() -> Error {
    Error::NotFound("invitation")
}

/// The live invitation of `token`, locked for this transaction (accepting it twice at once
/// admits one).
pub(crate) async fn open(tx: &TenantTx, token: &OrgToken) -> Result<Offer> {
    let row = tx
        .find_for_update::<entity::Entity>()
        .filter(entity::Column::TokenHash.eq(token.hash()))
        .filter(entity::Column::AcceptedAt.is_null())
        .filter(entity::Column::ExpiresAt.gt(Utc::now()))
        .one(tx.conn())
        .await?
        .ok_or_else(invalid)?;
    Ok(Offer {
        id: row.id,
        email: row.email,
        role: super::parse_role(&row.role)?,
    })
}

/// Marks the invitation used by `user_id` and adds the membership.
pub(crate) async fn accepted(tx: &TenantTx, offer: &Offer, user_id: Uuid) -> Result<()> {
    let used = tx
        .update_many::<entity::Entity>()
        .col_expr(
            entity::Column::AcceptedAt,
            sea_orm::sea_query::Expr::value(Utc::now()),
        )
        .col_expr(
            entity::Column::AcceptedBy,
            sea_orm::sea_query::Expr::value(user_id),
        )
        .filter(entity::Column::Id.eq(offer.id))
        .filter(entity::Column::AcceptedAt.is_null())
        .exec(tx.conn())
        .await?;
    if used.rows_affected != 1 {
        return Err(invalid());
    }
    super::add_member(tx, user_id, offer.role).await?;
    audit::record(
        tx,
        Some(user_id),
        "invitation.accepted",
        "invitation",
        Some(offer.id),
        serde_json::json!({"role": offer.role}),
    )
    .await
}

/// Purges invitations that expired a month ago.
pub async fn purge_expired(db: &Db) -> Result<u64> {
    Ok(db
        .purge::<entity::Entity>(
            sea_orm::Condition::all()
                .add(entity::Column::ExpiresAt.lt(Utc::now() - Duration::days(30))),
        )
        .await?)
}

/// Removes the organisation's invitations to an erased person's addresses.
pub(crate) async fn forget(tx: &TenantTx, traces: &crate::text::Traces) -> Result<u64> {
    let gone = tx
        .delete_many::<entity::Entity>()
        .filter(entity::Column::Email.is_in(traces.addresses.iter().cloned()))
        .exec(tx.conn())
        .await?;
    Ok(gone.rows_affected)
}
