//! Events: the transactional outbox. Every write records its side effects here, in its own
//! transaction, so an effect exists exactly when the change does; workers consume them later.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ActiveValue::Set};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{error::Result, request_id, store::TenantTx, tenancy::TenantCtx};

mod entity {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "outbox_events")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub org_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub kind: String,
        pub ticket_id: Option<Uuid>,
        pub payload: Json,
        pub status: String,
        pub attempts: i32,
        pub available_at: DateTimeUtc,
        pub locked_until: Option<DateTimeUtc>,
        pub last_error: Option<String>,
        pub created_at: DateTimeUtc,
        pub handled_at: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `base` with the fields of the object `extra` added (or replaced).
pub(crate) fn merged(mut base: Value, extra: Value) -> Value {
    if let (Some(b), Value::Object(e)) = (base.as_object_mut(), extra) {
        b.extend(e);
    }
    base
}

/// Records that `kind` happened (e.g. `ticket.created`), for the workers. The payload always
/// names its organisation and actor, so a handler never has to guess whose event it is.
pub(crate) async fn emit(
    tx: &TenantTx,
    ctx: &TenantCtx,
    kind: &str,
    ticket_id: Option<Uuid>,
    at: DateTime<Utc>,
    data: Value,
) -> Result<()> {
    let payload = merged(
        json!({
            "org_id": tx.org_id(),
            "actor_id": ctx.user_id,
            "request_id": request_id::current(),
        }),
        data,
    );
    entity::ActiveModel {
        org_id: Set(tx.org_id()),
        id: Set(Uuid::now_v7()),
        kind: Set(kind.to_owned()),
        ticket_id: Set(ticket_id),
        payload: Set(payload),
        status: Set("pending".to_owned()),
        attempts: Set(0),
        available_at: Set(at),
        locked_until: Set(None),
        last_error: Set(None),
        created_at: Set(at),
        handled_at: Set(None),
    }
    .insert(tx.conn())
    .await?;
    Ok(())
}
