//! Links between two tickets of one organisation: `blocks`, `relates`, `duplicates`. Each link
//! is stored once (source → target) and shown from both sides, the target's with the inverse
//! type (`blocked_by`, `relates`, `duplicated_by`); a ticket the viewer may not see is not
//! shown to them. Linking and unlinking are on both tickets' timelines.

use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    access::{self, Action, TenantCtx},
    error::{Error, Result, Validator},
    events::{self, Body, contract::TicketLinked},
    store::{Db, TenantTx, is_unique_violation},
    work::{
        Expected, Status,
        entity::link,
        now,
        tickets::{self, Ticket},
        timeline,
    },
};

/// At most this many links on one ticket.
pub const MAX_LINKS: u64 = 200;

/// A link's type as one side sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LinkType {
    Blocks,
    BlockedBy,
    Relates,
    Duplicates,
    DuplicatedBy,
}

impl LinkType {
    const ALL: [LinkType; 5] = [
        LinkType::Blocks,
        LinkType::BlockedBy,
        LinkType::Relates,
        LinkType::Duplicates,
        LinkType::DuplicatedBy,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LinkType::Blocks => "blocks",
            LinkType::BlockedBy => "blocked_by",
            LinkType::Relates => "relates",
            LinkType::Duplicates => "duplicates",
            LinkType::DuplicatedBy => "duplicated_by",
        }
    }

    fn parse(s: &str) -> Option<LinkType> {
        LinkType::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The same link seen from the other ticket.
    pub fn inverse(self) -> LinkType {
        match self {
            LinkType::Blocks => LinkType::BlockedBy,
            LinkType::BlockedBy => LinkType::Blocks,
            LinkType::Relates => LinkType::Relates,
            LinkType::Duplicates => LinkType::DuplicatedBy,
            LinkType::DuplicatedBy => LinkType::Duplicates,
        }
    }

    /// Whether this is how links are stored (source → target), not an inverse.
    fn stored(self) -> bool {
        matches!(
            self,
            LinkType::Blocks | LinkType::Relates | LinkType::Duplicates
        )
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewLink {
    /// From this ticket's side; `blocked_by` and `duplicated_by` are stored the other way
    /// round.
    #[serde(rename = "type")]
    pub kind: LinkType,
    /// The other ticket: its id or key.
    #[schema(example = "OPS-7")]
    pub ticket_id: String,
}

/// The other ticket of a link, as a list shows it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct LinkedTicket {
    pub id: Uuid,
    pub key: String,
    pub title: String,
    pub status: Status,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Link {
    pub id: Uuid,
    /// From the side of the ticket the link was asked for.
    #[serde(rename = "type")]
    pub kind: LinkType,
    pub ticket: LinkedTicket,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LinkList {
    pub items: Vec<Link>,
}

fn linked(t: &Ticket) -> LinkedTicket {
    LinkedTicket {
        id: t.id,
        key: t.key.clone(),
        title: t.title.clone(),
        status: t.status,
    }
}

/// The links of ticket `id` (either side), oldest first.
async fn rows_of(tx: &TenantTx, id: Uuid) -> Result<Vec<link::Model>> {
    Ok(tx
        .find::<link::Entity>()
        .filter(
            Condition::any()
                .add(link::Column::SourceId.eq(id))
                .add(link::Column::TargetId.eq(id)),
        )
        .order_by_asc(link::Column::Id)
        .all(tx.conn())
        .await?)
}

/// `row` as ticket `id` sees it: the other ticket's id and the type from `id`'s side.
fn side(row: &link::Model, id: Uuid) -> Result<(Uuid, LinkType)> {
    let stored = LinkType::parse(&row.kind)
        .ok_or_else(|| Error::internal(anyhow::anyhow!("stored link type {}", row.kind)))?;
    Ok(if row.source_id == id {
        (row.target_id, stored)
    } else {
        (row.source_id, stored.inverse())
    })
}

pub async fn list(db: &Db, ctx: &TenantCtx, ticket: &str) -> Result<LinkList> {
    access::authorize(ctx, Action::TicketRead)?;
    let tx = db.read(ctx).await?;
    let this = tickets::find_visible(&tx, ctx, ticket).await?;
    let rows = rows_of(&tx, this.id).await?;
    let sides: Vec<(Uuid, LinkType, &link::Model)> = rows
        .iter()
        .map(|row| side(row, this.id).map(|(other, kind)| (other, kind, row)))
        .collect::<Result<_>>()?;
    let others: Vec<Uuid> = sides.iter().map(|(other, _, _)| *other).collect();
    // Loaded through the transaction's wall, then judged as a lookup would judge them.
    let seen = tickets::seen_by(&tx, ctx, &others).await?;
    tx.commit().await?;
    let items = sides
        .into_iter()
        .filter_map(|(other, kind, row)| {
            seen.iter().find(|t| t.id == other).map(|t| Link {
                id: row.id,
                kind,
                ticket: linked(t),
                created_at: row.created_at,
            })
        })
        .collect();
    Ok(LinkList { items })
}

/// The timeline entries and events of a link made or removed, on both tickets.
async fn record(
    tx: &TenantTx,
    ctx: &TenantCtx,
    this: &Ticket,
    other: &Ticket,
    row: &link::Model,
    kind: LinkType,
    added: bool,
) -> Result<()> {
    let at = now();
    for (a, b, kind) in [(this, other, kind), (other, this, kind.inverse())] {
        let shown = json!({"type": kind.as_str(), "ticket_id": b.id, "key": b.key});
        let (from, to) = if added {
            (json!(null), shown)
        } else {
            (shown, json!(null))
        };
        let event = if added {
            "ticket.linked"
        } else {
            "ticket.unlinked"
        };
        timeline::record(
            tx,
            ctx,
            timeline::Entry {
                project_id: a.project_id,
                ticket_id: Some(a.id),
                kind: event,
                internal: false,
                version: None,
                changes: json!({"link": {"from": from, "to": to}}),
                at,
            },
        )
        .await?;
        let body = TicketLinked {
            ticket: a.event_ref(),
            link_id: row.id,
            kind: kind.as_str().to_owned(),
            other_ticket_id: b.id,
            other_key: b.key.clone(),
        };
        let body = if added {
            Body::TicketLinked(body)
        } else {
            Body::TicketUnlinked(body)
        };
        events::emit(tx, Some(ctx.user_id), body, at).await?;
    }
    Ok(())
}

/// Links two tickets the caller may change and see. A link between the two already (of any
/// type, either way) is 409 `link_exists`.
pub async fn create(tx: &TenantTx, ctx: &TenantCtx, ticket: &str, req: NewLink) -> Result<Link> {
    access::authorize(ctx, Action::TicketUpdate)?;
    let this = tickets::lock(tx, ctx, ticket, &Expected::Any, Action::TicketUpdate).await?;
    let mut v = Validator::default();
    let other = match tickets::find_visible(tx, ctx, &req.ticket_id).await {
        Ok(other) if other.deleted => None,
        Ok(other) => Some(other.id),
        Err(Error::NotFound(_)) => None,
        Err(err) => return Err(err),
    };
    match other {
        None => v.push("ticket_id", "no such ticket"),
        Some(id) if id == this.id => v.push("ticket_id", "a ticket cannot be linked to itself"),
        Some(_) => {}
    }
    v.finish()?;
    let other = tickets::load(tx, other.ok_or(Error::NotFound("ticket"))?).await?;
    let existing = rows_of(tx, this.id).await?;
    if existing
        .iter()
        .any(|r| r.source_id == other.id || r.target_id == other.id)
    {
        return Err(Error::conflict(
            "link_exists",
            format!("{} and {} are linked already", this.key, other.key),
        ));
    }
    if existing.len() as u64 >= MAX_LINKS {
        return Err(Error::conflict(
            "too_many_links",
            format!("a ticket has at most {MAX_LINKS} links"),
        ));
    }
    let row = link_by(tx, ctx, &this, &other, req.kind).await?;
    Ok(Link {
        id: row.id,
        kind: req.kind,
        ticket: linked(&other),
        created_at: row.created_at,
    })
}

/// Links `a` to `b` as `kind` (from `a`'s side), for other structure changes (a split links
/// the new ticket to the old one).
pub(crate) async fn link_by(
    tx: &TenantTx,
    ctx: &TenantCtx,
    a: &Ticket,
    b: &Ticket,
    kind: LinkType,
) -> Result<link::Model> {
    let (source, target, stored) = if kind.stored() {
        (a.id, b.id, kind)
    } else {
        (b.id, a.id, kind.inverse())
    };
    let row = link::Model {
        org_id: tx.org_id(),
        id: Uuid::now_v7(),
        kind: stored.as_str().to_owned(),
        source_id: source,
        target_id: target,
        created_by: Some(ctx.user_id),
        created_at: now(),
    };
    link::Entity::insert(link::ActiveModel::from(row.clone()))
        .exec_without_returning(tx.conn())
        .await
        .map_err(|err| {
            if is_unique_violation(&err) {
                Error::conflict("link_exists", "the tickets are linked already")
            } else {
                err.into()
            }
        })?;
    record(tx, ctx, a, b, &row, kind, true).await?;
    Ok(row)
}

/// Removes a link of the ticket (the caller may change the ticket).
pub async fn delete(tx: &TenantTx, ctx: &TenantCtx, ticket: &str, link_id: Uuid) -> Result<()> {
    access::authorize(ctx, Action::TicketUpdate)?;
    let this = tickets::lock(tx, ctx, ticket, &Expected::Any, Action::TicketUpdate).await?;
    let row = rows_of(tx, this.id)
        .await?
        .into_iter()
        .find(|r| r.id == link_id)
        .ok_or(Error::NotFound("link"))?;
    let (other_id, kind) = side(&row, this.id)?;
    let other = tickets::load(tx, other_id).await?;
    tx.delete_many::<link::Entity>()
        .filter(link::Column::Id.eq(row.id))
        .exec(tx.conn())
        .await?;
    record(tx, ctx, &this, &other, &row, kind, false).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_type_has_its_inverse_and_is_stored_one_way() {
        for t in LinkType::ALL {
            assert_eq!(t.inverse().inverse(), t);
            assert_eq!(LinkType::parse(t.as_str()), Some(t));
            // Exactly one of a type and its inverse is stored, but for `relates`.
            if t != LinkType::Relates {
                assert_ne!(t.stored(), t.inverse().stored(), "{t:?}");
            } else {
                assert!(t.stored());
            }
        }
    }
}
