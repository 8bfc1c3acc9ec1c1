//! Events: the transactional outbox. Every write records its side effects here, in its own
//! transaction, so an effect exists exactly when the change does. The dispatcher (`dispatch`)
//! hands each committed event to its handlers off the request path; `stream` is the
//! per-organisation feed that real-time clients read; `ops` lets admins see and requeue dead
//! events. `contract` is the typed body of every event, for producers and handlers alike;
//! handlers plug in through [`Handler`] and know nothing of each other.

pub mod contract;
pub mod dispatch;
pub mod ops;
pub mod stream;

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ActiveValue::Set};
use tokio::sync::watch;
use uuid::Uuid;

use crate::{
    error::Result,
    request_id,
    store::{Backend, Db, TenantTx},
};
pub use contract::{Body, Envelope, Event};
pub use dispatch::{Handler, Handlers, WriteHandler};

pub(crate) mod entity {
    crate::store::tenant_entity!("outbox_events" {
        #[sea_orm(primary_key, auto_increment = false)]
        id: Uuid,
        kind: String,
        ticket_id: Option<Uuid>,
        payload: Json,
        status: String,
        attempts: i32,
        available_at: DateTimeUtc,
        /// While `processing`: when the claiming worker's lease ends.
        locked_until: Option<DateTimeUtc>,
        last_error: Option<String>,
        created_at: DateTimeUtc,
        handled_at: Option<DateTimeUtc>,
    });
}

/// Records that something happened, for the handlers: in the caller's transaction, so the
/// event exists exactly when the change does. `actor_id` is who caused it.
pub(crate) async fn emit(
    tx: &TenantTx,
    actor_id: Option<Uuid>,
    body: Body,
    at: DateTime<Utc>,
) -> Result<()> {
    let envelope = Envelope {
        org_id: tx.org_id(),
        actor_id,
        request_id: request_id::current(),
        v: contract::VERSION,
    };
    entity::ActiveModel {
        org_id: Set(tx.org_id()),
        id: Set(Uuid::now_v7()),
        kind: Set(body.kind().to_owned()),
        ticket_id: Set(body.ticket_id()),
        payload: Set(body.encode(&envelope)?),
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
    tx.wrote_outbox();
    Ok(())
}

/// PostgreSQL: turns commits made by any process (their `NOTIFY`) into this process's
/// wake-ups, so dispatchers and stream connections react at once. A lost connection is
/// re-established, and everything is woken in case a notification was missed meanwhile.
/// On SQLite (one process) commits signal in-process and this returns at once.
pub async fn listen(db: Db, mut stop: watch::Receiver<bool>) {
    use sea_orm::sqlx::postgres::PgListener;

    if db.backend() != Backend::Postgres {
        return;
    }
    let wake_all = || {
        db.signals().outbox.notify_one();
        let _ = db.signals().stream.send(Uuid::nil());
        let _ = db.signals().access.send(Uuid::nil());
    };
    loop {
        let pool = db.connection().get_postgres_connection_pool();
        let listener = async {
            let mut l = PgListener::connect_with(pool).await?;
            l.listen_all(["docket_outbox", "docket_stream", "docket_access"])
                .await?;
            Ok::<_, sea_orm::sqlx::Error>(l)
        };
        let mut listener = tokio::select! {
            l = listener => match l {
                Ok(l) => l,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot listen for commits; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => continue,
                        _ = stop.changed() => return,
                    }
                }
            },
            _ = stop.changed() => return,
        };
        wake_all();
        loop {
            tokio::select! {
                received = listener.try_recv() => match received {
                    Ok(Some(n)) if n.channel() == "docket_outbox" => db.signals().outbox.notify_one(),
                    Ok(Some(n)) if n.channel() == "docket_access" => {
                        if let Ok(user) = n.payload().parse() {
                            let _ = db.signals().access.send(user);
                        }
                    }
                    Ok(Some(n)) => {
                        if let Ok(org) = n.payload().parse() {
                            let _ = db.signals().stream.send(org);
                        }
                    }
                    // Reconnects on the next call; notifications sent meanwhile are lost.
                    Ok(None) => wake_all(),
                    Err(err) => {
                        tracing::warn!(error = %err, "lost the commit listener; reconnecting");
                        break;
                    }
                },
                _ = stop.changed() => return,
            }
        }
    }
}
