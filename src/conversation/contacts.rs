//! Contacts: customers who wrote in by mail are their organisation's own contacts (made by
//! `ingest`), named as their mail names them, with no account: mail from an address never
//! touches an account of another organisation. The person behind an address joins their
//! contacts to an account only by a step of their own, proven by a mailed link:
//!
//! - **Link** (`POST /me/contact-links`, then `…/confirm`): someone signed in asks; if
//!   organisations have contacts with their account's address, a link goes to that address;
//!   following it (signed in as the same account) links them.
//! - **Claim** (the forgot-password form, then `POST /auth/claim`): an address with no account
//!   but with contacts gets a link that sets a password, making the account and linking them.
//!
//! Linking, in each organisation whose contact of that address is active: the account becomes a
//! requester there (if it is not a member already), the contact's tickets become the account's
//! (each through the ticket write path), and the contact's membership ends. Both steps answer
//! the same whether or not the address has contacts.

use chrono::{Duration, Utc};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    access::{self, Action, Role, TenantCtx},
    audit,
    error::{Error, Result, Validator},
    identity::{
        self, AuthResponse, Hasher, password,
        throttle::{self, Key},
        tokens::{TokenKeys, link_hash, link_token},
    },
    mail::{self, Outgoing, SYSTEM_ORG},
    store::{Db, use_once},
    tenancy::{self, Organization},
    text,
    work::tickets,
};

/// A link or claim works this long.
const LINK_WITHIN: Duration = Duration::hours(24);

mod entity {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "contact_links")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub token_hash: String,
        pub address: String,
        /// The account that asked (a link); none for a claim.
        pub user_id: Option<Uuid>,
        /// `link` or `claim`.
        pub purpose: String,
        pub created_at: DateTimeUtc,
        pub expires_at: DateTimeUtc,
        pub used_at: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

const LINK: &str = "link";
const CLAIM: &str = "claim";

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmLink {
    /// The token of the mailed link (`/link-contacts/<token>`).
    #[schema(min_length = 1, max_length = 100)]
    pub token: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimContacts {
    /// The token of the mailed link (`/claim/<token>`).
    #[schema(min_length = 1, max_length = 100)]
    pub token: String,
    /// The new account's password.
    #[schema(min_length = 10, max_length = 1024)]
    pub password: String,
    /// The new account's name (defaults to the name of the first mail).
    #[schema(schema_with = crate::text::optional_line_schema)]
    pub name: Option<String>,
}

/// The organisations whose contacts were linked to the account.
#[derive(Debug, Serialize, ToSchema)]
pub struct LinkedContacts {
    pub organizations: Vec<Organization>,
}

/// The names of the organisations that have contacts with `address`.
async fn organizations_with_contacts(db: &Db, address: &str) -> Result<Vec<(Uuid, String)>> {
    let found = identity::contacts_with_address(db.global(false).await?.conn(), address).await?;
    let mut names = Vec::new();
    for (org_id, _) in found {
        let tx = db.read_org(org_id).await?;
        names.push((org_id, tenancy::organization(&tx).await?.name));
        tx.commit().await?;
    }
    Ok(names)
}

/// Stores a link of `purpose` for `address` and mails it, unless the address has had its
/// share of such mails (said to nobody).
async fn offer(
    db: &Db,
    address: &str,
    user_id: Option<Uuid>,
    purpose: &str,
    organizations: Vec<String>,
) -> Result<()> {
    if throttle::reserve(db, &[Key::contact_links_for(address)])
        .await
        .is_err()
    {
        return Ok(());
    }
    let token = link_token("cl");
    let now = Utc::now();
    let tx = db.global(true).await?;
    entity::ActiveModel {
        token_hash: Set(link_hash(&token)),
        address: Set(address.to_owned()),
        user_id: Set(user_id),
        purpose: Set(purpose.to_owned()),
        created_at: Set(now),
        expires_at: Set(now + LINK_WITHIN),
        used_at: Set(None),
    }
    .insert(tx.conn())
    .await?;
    tx.commit().await?;
    let path = match purpose {
        CLAIM => format!("/claim/{token}"),
        _ => format!("/link-contacts/{token}"),
    };
    let tx = db.write_org(SYSTEM_ORG).await?;
    mail::enqueue(
        &tx,
        Outgoing {
            kind: mail::Kind::ContactLink,
            to: address.to_owned(),
            to_user_id: user_id,
            params: serde_json::json!({
                "path": path,
                "claim": purpose == CLAIM,
                "organizations": organizations,
            }),
            automatic: false,
            thread: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Someone signed in asks to link the tickets their address sent by mail: a link goes to that
/// address when some organisation has contacts with it. The same answer either way.
pub async fn request_link(db: &Db, ctx: &TenantCtx) -> Result<()> {
    access::authorize(ctx, Action::AccountManage)?;
    identity::confirm(db, ctx).await?;
    let Some(account) = identity::users_by_ids(db.global(false).await?.conn(), vec![ctx.user_id])
        .await?
        .pop()
    else {
        return Err(Error::NotFound("user"));
    };
    let organizations = organizations_with_contacts(db, &account.email).await?;
    if organizations.is_empty() {
        return Ok(());
    }
    let names = organizations.into_iter().map(|(_, name)| name).collect();
    offer(db, &account.email, Some(account.id), LINK, names).await
}

/// An address with no account that asked for a password (`recovery::forgot` says which): when
/// organisations have contacts with it, a link that claims them (sets a password) goes to it.
/// Silent either way.
pub async fn offer_claim(db: &Db, address: &str) -> Result<()> {
    let organizations = organizations_with_contacts(db, address).await?;
    if organizations.is_empty() {
        return Ok(());
    }
    let names = organizations.into_iter().map(|(_, name)| name).collect();
    offer(db, address, None, CLAIM, names).await
}

/// Spends a link of `purpose` (for a link: asked for by account `owner`): its row, once; 422 on
/// the token for anything else, and then nothing is spent.
async fn spend(db: &Db, token: &str, purpose: &str, owner: Option<Uuid>) -> Result<entity::Model> {
    let bad = || {
        Error::invalid(
            "token",
            "this link is invalid, used, expired, or for another account",
        )
    };
    if !token.starts_with("cl_") || token.len() > 100 {
        return Err(bad());
    }
    let hash = link_hash(token);
    let tx = db.global(true).await?;
    let row = entity::Entity::find_by_id(hash.clone())
        .filter(entity::Column::Purpose.eq(purpose))
        .filter(entity::Column::UsedAt.is_null())
        .filter(entity::Column::ExpiresAt.gt(Utc::now()))
        .one(tx.conn())
        .await?
        .filter(|row| row.user_id == owner)
        .ok_or_else(bad)?;
    let spent = use_once::<entity::Entity>(
        tx.conn(),
        entity::Column::TokenHash,
        entity::Column::UsedAt,
        &hash,
    );
    if !spent.await? {
        return Err(bad());
    }
    tx.commit().await?;
    Ok(row)
}

/// Follows a mailed link, signed in as the account that asked for it: links that address's
/// contacts to it.
pub async fn confirm_link(db: &Db, ctx: &TenantCtx, req: ConfirmLink) -> Result<LinkedContacts> {
    access::authorize(ctx, Action::AccountManage)?;
    identity::confirm(db, ctx).await?;
    // Only the account that asked follows it: anyone else's try spends nothing.
    let row = spend(db, &req.token, LINK, Some(ctx.user_id)).await?;
    let organizations = link_all(db, ctx.user_id, &row.address).await?;
    Ok(LinkedContacts { organizations })
}

/// Follows a mailed claim link: makes the account (with this password), links the address's
/// contacts to it, and signs in to the first organisation.
pub async fn claim(
    db: &Db,
    keys: &TokenKeys,
    hasher: &Hasher,
    req: ClaimContacts,
) -> Result<AuthResponse> {
    let mut v = Validator::default();
    if let Some(name) = &req.name {
        text::check_line(&mut v, "name", name, text::MAX_LINE);
    }
    v.finish()?;
    // Looked up before it is spent, so a weak password does not cost the person their link.
    let pending = {
        let tx = db.global(false).await?;
        let row = entity::Entity::find_by_id(link_hash(&req.token))
            .filter(entity::Column::Purpose.eq(CLAIM))
            .one(tx.conn())
            .await?;
        tx.commit().await?;
        row
    };
    if let Some(row) = &pending {
        password::validate(&req.password, &[&row.address])?;
    }
    let hash = hasher.hash(&req.password).await?;
    let row = spend(db, &req.token, CLAIM, None).await?;
    let contacts =
        identity::contacts_with_address(db.global(false).await?.conn(), &row.address).await?;
    let name = match req.name.map(|n| n.trim().to_owned()) {
        Some(name) => name,
        None => match contacts.first() {
            Some((_, id)) => identity::users_by_ids(db.global(false).await?.conn(), vec![*id])
                .await?
                .pop()
                .map(|u| u.name)
                .unwrap_or_default(),
            None => row.address.split('@').next().unwrap_or_default().to_owned(),
        },
    };
    let account = {
        let tx = db.global(true).await?;
        let made = identity::create_user(tx.conn(), &row.address, &name, hash).await?;
        tx.commit().await?;
        made
    };
    let organizations = link_all(db, account.id, &row.address).await?;
    let Some(first) = organizations.into_iter().next() else {
        return Err(Error::invalid(
            "token",
            "nothing is left to claim with this link: every conversation was closed meanwhile",
        ));
    };
    identity::sign_in_to(db, keys, account, first, Role::Requester).await
}

/// Links every active contact with `address` to account `account_id`, one organisation at a
/// time; returns the organisations linked.
async fn link_all(db: &Db, account_id: Uuid, address: &str) -> Result<Vec<Organization>> {
    let contacts = identity::contacts_with_address(db.global(false).await?.conn(), address).await?;
    let mut linked = Vec::new();
    for (org_id, contact_id) in contacts {
        let tx = db.write_org(org_id).await?;
        let contact_active = matches!(
            tenancy::membership_of(&tx, contact_id).await?,
            Some((_, true))
        );
        let account = tenancy::membership_of(&tx, account_id).await?;
        // A contact an admin deactivated, or an account deactivated here, stays as it is.
        if !contact_active || matches!(account, Some((_, false))) {
            tx.commit().await?;
            continue;
        }
        if account.is_none() {
            tenancy::add_member(&tx, account_id, Role::Requester).await?;
        }
        let moved = tickets::move_requester(&tx, contact_id, account_id).await?;
        tenancy::end_membership(&tx, contact_id).await?;
        audit::record(
            &tx,
            Some(account_id),
            "contact.linked",
            "user",
            Some(contact_id),
            serde_json::json!({"account_id": account_id, "tickets": moved}),
        )
        .await?;
        let organization = tenancy::organization(&tx).await?;
        tx.commit().await?;
        linked.push(organization);
    }
    Ok(linked)
}

/// Drops links a day after they expired.
pub async fn purge_expired(db: &Db) -> Result<u64> {
    Ok(db
        .purge::<entity::Entity>(
            sea_orm::Condition::all()
                .add(entity::Column::ExpiresAt.lt(Utc::now() - Duration::days(1))),
        )
        .await?)
}
