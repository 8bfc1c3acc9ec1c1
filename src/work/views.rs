//! Saved views: a person's named ticket lists. A view is the query string of `GET /tickets`
//! (the same text the web app keeps in its address bar), checked against the list's own rules
//! when it is saved, so opening a saved view never fails on its filters.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, QueryFilter, QueryOrder};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{entity::saved_view, now, tickets::TicketFilter};
use crate::{
    access::TenantCtx,
    error::{Error, Result, Validator},
    store::{Db, TenantTx, is_unique_violation},
    text::{MAX_LINE, check_line},
};

/// Views one person may keep.
pub const MAX_VIEWS: u64 = 100;
/// Longest saved query string.
pub const MAX_QUERY: usize = 2000;

#[derive(Debug, Serialize, ToSchema)]
pub struct SavedView {
    pub id: Uuid,
    pub name: String,
    /// `GET /tickets` query string, without `?`, `cursor` or `limit`: `status=open&sort=-priority`.
    pub query: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<saved_view::Model> for SavedView {
    fn from(m: saved_view::Model) -> Self {
        Self {
            id: m.id,
            name: m.name,
            query: m.query,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSavedView {
    #[schema(schema_with = crate::text::line_schema)]
    pub name: String,
    /// `GET /tickets` query string (filters and sort only).
    #[schema(max_length = 2000)]
    pub query: String,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SavedViewPatch {
    #[schema(schema_with = crate::text::optional_line_schema)]
    pub name: Option<String>,
    #[schema(max_length = 2000)]
    pub query: Option<String>,
}

/// A query as stored: without the `?` a copied address carries.
fn stored_query(query: &str) -> &str {
    query.trim_start_matches('?')
}

/// The query must be one `GET /tickets` accepts, naming its filters and sort only: the keys are
/// `TicketFilter`'s own parameters, but its page (`cursor`, `limit`).
fn check_query(v: &mut Validator, ctx: &TenantCtx, query: &str) {
    if query.chars().count() > MAX_QUERY {
        v.push("query", format!("must be at most {MAX_QUERY} characters"));
        return;
    }
    let query = stored_query(query);
    let filters = TicketFilter::into_params(|| None);
    for (key, _) in form_urlencoded::parse(query.as_bytes()) {
        let is_filter = filters.iter().any(|p| p.name == key);
        if !is_filter || key == "cursor" || key == "limit" {
            v.push(
                "query",
                format!("`{key}` is not a filter or sort of the ticket list"),
            );
            return;
        }
    }
    match serde_urlencoded::from_str::<TicketFilter>(query) {
        Ok(filter) => {
            if let Err(Error::Validation(errors)) = filter.validate(ctx) {
                for e in errors {
                    v.push("query", format!("{}: {}", e.field, e.message));
                }
            }
        }
        Err(err) => v.push("query", format!("is not a ticket list query: {err}")),
    }
}

fn name_taken(err: sea_orm::DbErr) -> Error {
    if is_unique_violation(&err) {
        Error::conflict("view_name_taken", "you already have a view with this name")
    } else {
        err.into()
    }
}

/// The caller's views, by name.
pub async fn list(db: &Db, ctx: &TenantCtx) -> Result<Vec<SavedView>> {
    let tx = db.read(ctx).await?;
    let rows = tx
        .find::<saved_view::Entity>()
        .filter(saved_view::Column::UserId.eq(ctx.user_id))
        .order_by_asc(saved_view::Column::Name)
        .order_by_asc(saved_view::Column::Id)
        .all(tx.conn())
        .await?;
    tx.commit().await?;
    Ok(rows.into_iter().map(SavedView::from).collect())
}

pub async fn create(tx: &TenantTx, ctx: &TenantCtx, req: NewSavedView) -> Result<SavedView> {
    let mut v = Validator::default();
    check_line(&mut v, "name", &req.name, MAX_LINE);
    check_query(&mut v, ctx, &req.query);
    v.finish()?;
    let count = sea_orm::PaginatorTrait::count(
        tx.find::<saved_view::Entity>()
            .filter(saved_view::Column::UserId.eq(ctx.user_id)),
        tx.conn(),
    )
    .await?;
    if count >= MAX_VIEWS {
        return Err(Error::conflict(
            "too_many_views",
            format!("a person keeps at most {MAX_VIEWS} views; delete one first"),
        ));
    }
    let at = now();
    let model = saved_view::ActiveModel {
        org_id: Set(tx.org_id()),
        id: Set(Uuid::now_v7()),
        user_id: Set(ctx.user_id),
        name: Set(req.name.trim().to_owned()),
        query: Set(stored_query(&req.query).to_owned()),
        created_at: Set(at),
        updated_at: Set(at),
    }
    .insert(tx.conn())
    .await
    .map_err(name_taken)?;
    Ok(model.into())
}

/// One of the caller's own views; anybody else's is not found.
async fn own(tx: &TenantTx, ctx: &TenantCtx, id: Uuid) -> Result<saved_view::Model> {
    tx.find::<saved_view::Entity>()
        .filter(saved_view::Column::Id.eq(id))
        .filter(saved_view::Column::UserId.eq(ctx.user_id))
        .one(tx.conn())
        .await?
        .ok_or(Error::NotFound("view"))
}

pub async fn update(
    tx: &TenantTx,
    ctx: &TenantCtx,
    id: Uuid,
    patch: SavedViewPatch,
) -> Result<SavedView> {
    let mut v = Validator::default();
    if let Some(name) = &patch.name {
        check_line(&mut v, "name", name, MAX_LINE);
    }
    if let Some(query) = &patch.query {
        check_query(&mut v, ctx, query);
    }
    v.finish()?;
    let row = own(tx, ctx, id).await?;
    let mut model: saved_view::ActiveModel = row.into();
    if let Some(name) = patch.name {
        model.name = Set(name.trim().to_owned());
    }
    if let Some(query) = patch.query {
        model.query = Set(stored_query(&query).to_owned());
    }
    model.updated_at = Set(now());
    Ok(model.update(tx.conn()).await.map_err(name_taken)?.into())
}

pub async fn delete(tx: &TenantTx, ctx: &TenantCtx, id: Uuid) -> Result<()> {
    own(tx, ctx, id).await?;
    tx.delete_many::<saved_view::Entity>()
        .filter(saved_view::Column::Id.eq(id))
        .exec(tx.conn())
        .await?;
    Ok(())
}
