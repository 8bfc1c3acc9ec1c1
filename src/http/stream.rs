//! Real time: `/stream` (Server-Sent Events) and `/ws` (WebSocket) carry the caller's feed
//! (see `events::stream`): their organisation's ticket changes they may see, and their own
//! notifications, as they commit. Both resume after an event id (`Last-Event-ID` or
//! `?last_event_id=`). The connection ends when the caller's access stops (token expired or
//! revoked, membership ended); the client reconnects with a fresh token and its last id.

use std::{
    convert::Infallible,
    time::{Duration, Instant},
};

use axum::{
    extract::{
        State, WebSocketUpgrade,
        ws::{Message, WebSocket, rejection::WebSocketUpgradeRejection},
    },
    http::{HeaderMap, StatusCode},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::{StreamExt as _, wrappers::ReceiverStream};
use utoipa::{IntoParams, ToSchema};

use super::{
    AppState,
    extract::{Auth, Query, bearer_token},
    problem::Problem,
};
use crate::{
    access::TenantCtx,
    error::Result,
    events::stream::{self, StreamEvent},
    identity,
    store::Db,
};

/// Entries read from the database at a time.
const READ_BATCH: u64 = 200;
/// How often a connection re-checks that its caller may still listen, besides at once when
/// their access changes (deactivation, removal, a role change, logout).
const RECHECK_ACCESS: Duration = Duration::from_secs(30);

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ResumeParams {
    /// Resume after this event id (for clients that cannot send `Last-Event-ID`).
    #[param(minimum = 0)]
    pub last_event_id: Option<i64>,
}

/// What a connection sends: an event of the feed, or a reset. Each message's JSON has `type`.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum StreamMessage {
    Event(StreamEvent),
    Reset(StreamReset),
}

/// Entries after the requested id were dropped by retention: reload, then keep listening.
#[derive(Serialize, ToSchema)]
pub struct StreamReset {
    #[serde(rename = "type")]
    #[schema(pattern = "^reset$", example = "reset")]
    kind: &'static str,
}

impl StreamMessage {
    fn reset() -> Self {
        StreamMessage::Reset(StreamReset { kind: "reset" })
    }

    /// The message's `type`, which SSE also sends as the event name.
    fn kind(&self) -> &str {
        match self {
            StreamMessage::Event(e) => &e.kind,
            StreamMessage::Reset(r) => r.kind,
        }
    }
}

/// A message on its way from a connection's task to its socket. Boxed: a channel allocates its
/// first block of 32 slots at once, and each of 10,000 idle connections has one.
type Queued = Box<StreamMessage>;

/// Where to start: after the id the client names, or (a new subscriber) at the current end.
async fn start_after(
    s: &AppState,
    ctx: &TenantCtx,
    headers: &HeaderMap,
    q: &ResumeParams,
) -> std::result::Result<i64, Problem> {
    let invalid = || {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_last_event_id",
            "Last-Event-ID (or last_event_id) must be an event id this stream sent",
        )
    };
    let named = match headers.get("last-event-id") {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|v| v.trim().parse::<i64>().ok())
                .ok_or_else(invalid)?,
        ),
        None => q.last_event_id,
    };
    match named {
        Some(n) if n < 0 => Err(invalid()),
        Some(n) => {
            identity::confirm(&s.db, ctx).await?;
            Ok(n)
        }
        None => Ok(stream::head(&s.db, ctx).await?),
    }
}

/// Follows the caller's feed from `after` in a task; the receiver closes when the caller may
/// no longer listen or the feed cannot be read. New entries come from the organisation's
/// shared reader (`events::stream::Feeds`); the database is read only to catch up: when the
/// shared tail is not read yet (the organisation's first connection), or the connection is
/// further behind than it holds.
fn follow(s: &AppState, mut ctx: TenantCtx, token: String, after: i64) -> mpsc::Receiver<Queued> {
    let (out, rx) = mpsc::channel(READ_BATCH as usize);
    // Subscribe before the first read, so what commits meanwhile is in the tail.
    let mut tail = s.feeds.subscribe(ctx.org_id);
    let mut access = s.db.signals().access.subscribe();
    let mut stopping = s.stopping.clone();
    // The task takes only what it uses, not a copy of the whole state: thousands are held.
    let (db, keys) = (s.db.clone(), s.keys.clone());
    tokio::spawn(async move {
        let (mut cursor, mut checked, mut access_changed) = (after, Instant::now(), false);
        // The private projects this person may not see, looked at again with their access.
        let Ok(mut hidden) = stream::hidden_projects(&db, &ctx).await else {
            return;
        };
        loop {
            if access_changed || checked.elapsed() >= RECHECK_ACCESS {
                match Box::pin(identity::authenticate_now(&db, &keys, &token)).await {
                    Ok(current) => ctx = current,
                    Err(_) => return,
                }
                hidden = match stream::hidden_projects(&db, &ctx).await {
                    Ok(hidden) => hidden,
                    Err(_) => return,
                };
                checked = Instant::now();
            }
            let held = tail.borrow_and_update().after(&ctx, &hidden, cursor);
            cursor = match held {
                Some((events, through)) => {
                    for e in events {
                        if out.send(Box::new(StreamMessage::Event(e))).await.is_err() {
                            return;
                        }
                    }
                    through
                }
                // Boxed: an idle connection's task then holds a pointer, not the database
                // read's whole state (thousands of connections wait at once).
                None => match Box::pin(read_from_database(&db, &ctx, &out, cursor)).await {
                    Some(through) => through,
                    None => return,
                },
            };
            access_changed = tokio::select! {
                changed = tail.changed() => if changed.is_ok() { false } else { return },
                changed = changed_for(&mut access, ctx.user_id) => if changed { true } else { return },
                _ = stopping.wait_for(|stop| *stop) => return,
                _ = out.closed() => return,
            };
        }
    });
    rx
}

/// Sends what follows `cursor` from the database, up to its current end; the position read up
/// to, or `None` when the connection should close.
async fn read_from_database(
    db: &Db,
    ctx: &TenantCtx,
    out: &mpsc::Sender<Queued>,
    mut cursor: i64,
) -> Option<i64> {
    loop {
        let batch = match stream::read(db, ctx, cursor, READ_BATCH).await {
            Ok(b) => b,
            Err(err) => {
                tracing::warn!(error = ?err, "reading the stream failed; closing it");
                return None;
            }
        };
        if batch.truncated && out.send(Box::new(StreamMessage::reset())).await.is_err() {
            return None;
        }
        for e in batch.events {
            if out.send(Box::new(StreamMessage::Event(e))).await.is_err() {
                return None;
            }
        }
        cursor = batch.through;
        if !batch.more {
            return Some(cursor);
        }
    }
}

/// Waits until the access of `user` (or of everyone) may have changed; false when the signal
/// is gone.
async fn changed_for(access: &mut broadcast::Receiver<uuid::Uuid>, user: uuid::Uuid) -> bool {
    loop {
        match access.recv().await {
            Ok(changed) if changed == user || changed.is_nil() => return true,
            Ok(_) => continue,
            Err(broadcast::error::RecvError::Lagged(_)) => return true,
            Err(broadcast::error::RecvError::Closed) => return false,
        }
    }
}

/// Server-Sent Events: each event has `id` (resume after it with `Last-Event-ID`), `event`
/// (its type) and JSON `data`. A `reset` event means entries were lost to retention (after
/// 48 h): reload, then keep listening.
#[utoipa::path(get, path = "/stream", tag = "real time", params(ResumeParams,
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id")),
    security(("bearer" = [])),
    responses((status = 200, description = "An endless event stream", content_type = "text/event-stream", body = StreamMessage)))]
pub async fn sse(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    headers: HeaderMap,
    Query(q): Query<ResumeParams>,
) -> Result<Response, Problem> {
    let after = start_after(&s, &ctx, &headers, &q).await?;
    let items = follow(
        &s,
        ctx,
        bearer_token(&headers).unwrap_or_default().to_owned(),
        after,
    );
    let events = ReceiverStream::new(items).map(|message| {
        let mut event = Event::default().event(message.kind());
        if let StreamMessage::Event(e) = &*message {
            event = event.id(e.id.clone());
        }
        Ok::<_, Infallible>(event.json_data(&message).unwrap_or_default())
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

/// WebSocket: each text message is one event as JSON (`{id, type, ticket_id, data,
/// created_at}`, or `{"type": "reset"}`). Resume with `?last_event_id=`.
#[utoipa::path(get, path = "/ws", tag = "real time", params(ResumeParams),
    security(("bearer" = [])),
    responses((status = 101, description = "Switching to the WebSocket protocol"),
        (status = 426, description = "A plain HTTP request: this endpoint speaks WebSocket only", body = Problem)))]
pub async fn ws(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    headers: HeaderMap,
    Query(q): Query<ResumeParams>,
    upgrade: std::result::Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, Problem> {
    // The request's own parameters first: a bad one is 400 whether or not it upgrades.
    let after = start_after(&s, &ctx, &headers, &q).await?;
    let upgrade = upgrade.map_err(|rej| {
        Problem::new(
            StatusCode::UPGRADE_REQUIRED,
            "websocket_required",
            format!("this endpoint speaks WebSocket only: {rej}"),
        )
    })?;
    let items = follow(
        &s,
        ctx,
        bearer_token(&headers).unwrap_or_default().to_owned(),
        after,
    );
    Ok(upgrade.on_upgrade(move |socket| pump(socket, items)))
}

/// Sends the feed to the socket until either side ends; what the client sends is ignored.
async fn pump(mut socket: WebSocket, mut items: mpsc::Receiver<Queued>) {
    loop {
        tokio::select! {
            item = items.recv() => {
                let Some(item) = item else { break };
                let text = serde_json::to_string(&item).unwrap_or_default();
                if socket.send(Message::Text(text.into())).await.is_err() {
                    return;
                }
            }
            received = socket.recv() => match received {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
    let _ = socket.send(Message::Close(None)).await;
}
