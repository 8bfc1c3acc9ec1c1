//! The event contract: every outbox event's body as a type. Producers build a [`Body`];
//! handlers match on it. A body is stored as the outbox row's `kind` and `payload` (the
//! envelope's fields and the body's fields side by side), with the same field names the stream
//! shows subscribers, so a misspelt field is a compile error rather than a notification that
//! silently never goes out.
//!
//! Versions: a payload without `v` is version 1, the only version so far, and the writer omits
//! it. A later incompatible change writes `v: 2` and teaches [`Body::decode`] to read both.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::{Error, Result};

/// The payload version this build writes.
pub const VERSION: u32 = 1;

/// Envelope fields the stream never shows subscribers: the request id is for the audit trail,
/// and who watches a ticket is nobody else's business.
const PRIVATE: [&str; 3] = ["org_id", "request_id", "watcher_ids"];

/// Who caused an event, and in which organisation and request. Every payload carries it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub org_id: Uuid,
    pub actor_id: Option<Uuid>,
    pub request_id: Option<String>,
    #[serde(default = "first_version", skip_serializing_if = "is_first_version")]
    pub v: u32,
}

fn first_version() -> u32 {
    1
}

fn is_first_version(v: &u32) -> bool {
    *v == 1
}

/// The ticket an event is about, as it was when the event happened.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TicketRef {
    pub ticket_id: Uuid,
    pub project_id: Uuid,
    /// `OPS-42`.
    pub key: String,
    pub requester_id: Option<Uuid>,
    pub version: i64,
}

/// A ticket change: field → `{"from", "to"}` (the timeline entry's changes).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TicketChanged {
    #[serde(flatten)]
    pub ticket: TicketRef,
    pub changes: Map<String, Value>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TicketAssigned {
    #[serde(flatten)]
    pub ticket: TicketRef,
    pub added: Vec<Uuid>,
    pub removed: Vec<Uuid>,
}

/// Who followed a ticket when something happened to it, for notifications.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Followers {
    pub assignee_ids: Vec<Uuid>,
    pub watcher_ids: Vec<Uuid>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusChanged {
    #[serde(flatten)]
    pub ticket: TicketRef,
    /// The status before and after (`open`, `in_progress`, …).
    pub from: String,
    pub to: String,
    #[serde(flatten)]
    pub followers: Followers,
}

/// A comment and the ticket it is on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CommentRef {
    pub ticket_id: Uuid,
    pub project_id: Uuid,
    pub requester_id: Option<Uuid>,
    pub comment_id: Uuid,
    pub author_id: Uuid,
    /// An internal note: never shown or told to requesters.
    pub internal: bool,
    pub body: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CommentCreated {
    #[serde(flatten)]
    pub comment: CommentRef,
    #[serde(flatten)]
    pub followers: Followers,
}

/// A file on a ticket (its bytes stay in object storage; this says what it is).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttachmentRef {
    pub ticket_id: Uuid,
    pub project_id: Uuid,
    pub requester_id: Option<Uuid>,
    pub attachment_id: Uuid,
    pub comment_id: Option<Uuid>,
    pub filename: String,
    pub content_type: String,
    pub size: i64,
    pub uploaded_by: Uuid,
    /// Staff only (a file of an internal note): never shown or told to requesters.
    pub internal: bool,
}

/// A link between two tickets, as the ticket named by `ticket` sees it (`type` from its side:
/// `blocks`, `blocked_by`, `relates`, `duplicates`, `duplicated_by`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TicketLinked {
    #[serde(flatten)]
    pub ticket: TicketRef,
    pub link_id: Uuid,
    #[serde(rename = "type")]
    pub kind: String,
    pub other_ticket_id: Uuid,
    pub other_key: String,
}

/// One ticket merged into another (or the merge undone): `ticket` is the target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TicketMerged {
    #[serde(flatten)]
    pub ticket: TicketRef,
    pub merge_id: Uuid,
    pub source_id: Uuid,
    pub source_key: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProjectChanged {
    pub project_id: Uuid,
    /// Field → `{"from", "to"}`.
    pub changes: Value,
}

/// An endpoint Docket stopped delivering webhooks to (its URL stays with the webhook: it may
/// hold a credential).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WebhookDisabled {
    pub webhook_id: Uuid,
    /// The endpoint's host, to recognise it by.
    pub host: String,
    pub reason: String,
}

/// An SLA clock of a ticket reached its warning threshold or its due time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SlaAlert {
    #[serde(flatten)]
    pub ticket: TicketRef,
    /// `first_response`, `next_response` or `resolution`.
    pub clock: String,
    pub policy_id: Uuid,
    pub due_at: DateTime<Utc>,
    /// Who is told besides the ticket's assignees and the managers (an escalation rule).
    pub notify_role: Option<String>,
    pub assignee_ids: Vec<Uuid>,
}

/// Everything that can happen, by kind. The kind is stored in its own column.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum Body {
    #[serde(rename = "project.created")]
    ProjectCreated(ProjectChanged),
    #[serde(rename = "project.updated")]
    ProjectUpdated(ProjectChanged),
    #[serde(rename = "project.archived")]
    ProjectArchived(ProjectChanged),
    #[serde(rename = "project.restored")]
    ProjectRestored(ProjectChanged),
    #[serde(rename = "ticket.created")]
    TicketCreated(TicketChanged),
    /// Any edit, status and assignment changes included.
    #[serde(rename = "ticket.updated")]
    TicketUpdated(TicketChanged),
    /// Also sent, beside `ticket.updated`, when the assignees changed.
    #[serde(rename = "ticket.assigned")]
    TicketAssigned(TicketAssigned),
    /// Also sent, beside `ticket.updated`, when the status changed.
    #[serde(rename = "ticket.status_changed")]
    TicketStatusChanged(StatusChanged),
    #[serde(rename = "ticket.deleted")]
    TicketDeleted(TicketChanged),
    #[serde(rename = "ticket.restored")]
    TicketRestored(TicketChanged),
    #[serde(rename = "ticket.linked")]
    TicketLinked(TicketLinked),
    #[serde(rename = "ticket.unlinked")]
    TicketUnlinked(TicketLinked),
    #[serde(rename = "ticket.merged")]
    TicketMerged(TicketMerged),
    #[serde(rename = "ticket.unmerged")]
    TicketUnmerged(TicketMerged),
    #[serde(rename = "comment.created")]
    CommentCreated(CommentCreated),
    #[serde(rename = "comment.updated")]
    CommentUpdated(CommentRef),
    #[serde(rename = "comment.deleted")]
    CommentDeleted(CommentRef),
    #[serde(rename = "attachment.added")]
    AttachmentAdded(AttachmentRef),
    /// Its bytes are deleted from object storage when this event is handled.
    #[serde(rename = "attachment.removed")]
    AttachmentRemoved(AttachmentRef),
    /// Deliveries to an endpoint stopped: it answered 410 Gone, or failed for days.
    #[serde(rename = "webhook.disabled")]
    WebhookDisabled(WebhookDisabled),
    /// A clock passed its warning threshold (a share of its target).
    #[serde(rename = "sla.warning")]
    SlaWarning(SlaAlert),
    /// A clock passed its due time unmet.
    #[serde(rename = "sla.breached")]
    SlaBreached(SlaAlert),
}

impl Body {
    /// The event's kind, e.g. `ticket.created`.
    pub fn kind(&self) -> &'static str {
        match self {
            Body::ProjectCreated(_) => "project.created",
            Body::ProjectUpdated(_) => "project.updated",
            Body::ProjectArchived(_) => "project.archived",
            Body::ProjectRestored(_) => "project.restored",
            Body::TicketCreated(_) => "ticket.created",
            Body::TicketUpdated(_) => "ticket.updated",
            Body::TicketAssigned(_) => "ticket.assigned",
            Body::TicketStatusChanged(_) => "ticket.status_changed",
            Body::TicketDeleted(_) => "ticket.deleted",
            Body::TicketRestored(_) => "ticket.restored",
            Body::TicketLinked(_) => "ticket.linked",
            Body::TicketUnlinked(_) => "ticket.unlinked",
            Body::TicketMerged(_) => "ticket.merged",
            Body::TicketUnmerged(_) => "ticket.unmerged",
            Body::CommentCreated(_) => "comment.created",
            Body::CommentUpdated(_) => "comment.updated",
            Body::CommentDeleted(_) => "comment.deleted",
            Body::AttachmentAdded(_) => "attachment.added",
            Body::AttachmentRemoved(_) => "attachment.removed",
            Body::WebhookDisabled(_) => "webhook.disabled",
            Body::SlaWarning(_) => "sla.warning",
            Body::SlaBreached(_) => "sla.breached",
        }
    }

    /// The ticket the event is about, if any.
    pub fn ticket_id(&self) -> Option<Uuid> {
        self.ticket().map(|(ticket_id, _, _)| ticket_id)
    }

    /// Who requested the event's ticket: the one requester who may hear of it.
    pub fn requester_id(&self) -> Option<Uuid> {
        self.ticket().and_then(|(_, requester_id, _)| requester_id)
    }

    /// The event's ticket and its requester, for events about a ticket.
    /// The project the event happens in (none: the organisation's business).
    pub fn project_id(&self) -> Option<Uuid> {
        match self {
            Body::ProjectCreated(p)
            | Body::ProjectUpdated(p)
            | Body::ProjectArchived(p)
            | Body::ProjectRestored(p) => Some(p.project_id),
            Body::WebhookDisabled(_) => None,
            _ => self.ticket().map(|(_, _, project_id)| project_id),
        }
    }

    fn ticket(&self) -> Option<(Uuid, Option<Uuid>, Uuid)> {
        let of = |t: &TicketRef| (t.ticket_id, t.requester_id, t.project_id);
        let of_comment = |c: &CommentRef| (c.ticket_id, c.requester_id, c.project_id);
        match self {
            Body::ProjectCreated(_)
            | Body::ProjectUpdated(_)
            | Body::ProjectArchived(_)
            | Body::ProjectRestored(_)
            | Body::WebhookDisabled(_) => None,
            Body::TicketCreated(c)
            | Body::TicketUpdated(c)
            | Body::TicketDeleted(c)
            | Body::TicketRestored(c) => Some(of(&c.ticket)),
            Body::TicketAssigned(a) => Some(of(&a.ticket)),
            Body::TicketStatusChanged(s) => Some(of(&s.ticket)),
            Body::TicketLinked(l) | Body::TicketUnlinked(l) => Some(of(&l.ticket)),
            Body::TicketMerged(m) | Body::TicketUnmerged(m) => Some(of(&m.ticket)),
            Body::SlaWarning(a) | Body::SlaBreached(a) => Some(of(&a.ticket)),
            Body::CommentCreated(c) => Some(of_comment(&c.comment)),
            Body::CommentUpdated(c) | Body::CommentDeleted(c) => Some(of_comment(c)),
            Body::AttachmentAdded(a) | Body::AttachmentRemoved(a) => {
                Some((a.ticket_id, a.requester_id, a.project_id))
            }
        }
    }

    /// About an internal note: requesters never hear of it.
    pub fn internal(&self) -> bool {
        match self {
            Body::CommentCreated(c) => c.comment.internal,
            Body::CommentUpdated(c) | Body::CommentDeleted(c) => c.internal,
            Body::AttachmentAdded(a) | Body::AttachmentRemoved(a) => a.internal,
            // The organisation's integrations and its service targets are staff business.
            Body::WebhookDisabled(_) | Body::SlaWarning(_) | Body::SlaBreached(_) => true,
            _ => false,
        }
    }

    /// The stored form: the envelope's and the body's fields in one object (the kind apart).
    pub fn encode(&self, envelope: &Envelope) -> Result<Value> {
        let mut fields = object(serde_json::to_value(self).map_err(Error::internal)?)?;
        fields.remove("kind");
        fields.extend(object(
            serde_json::to_value(envelope).map_err(Error::internal)?,
        )?);
        Ok(Value::Object(fields))
    }

    /// Reads a stored event back.
    pub fn decode(kind: &str, payload: Value) -> Result<(Envelope, Body)> {
        let envelope = Envelope::deserialize(&payload).map_err(undecodable)?;
        if envelope.v > VERSION {
            return Err(Error::internal(anyhow::anyhow!(
                "event payload version {} is newer than this build reads ({VERSION})",
                envelope.v
            )));
        }
        let mut fields = object(payload)?;
        fields.insert("kind".into(), Value::String(kind.to_owned()));
        let body = serde_json::from_value(Value::Object(fields)).map_err(undecodable)?;
        Ok((envelope, body))
    }

    /// What stream subscribers receive of the event: the stored payload without what is
    /// private to the organisation's own records.
    pub fn public_data(&self, envelope: &Envelope) -> Result<Value> {
        let mut fields = object(self.encode(envelope)?)?;
        for private in PRIVATE {
            fields.remove(private);
        }
        Ok(Value::Object(fields))
    }
}

fn object(value: Value) -> Result<Map<String, Value>> {
    match value {
        Value::Object(fields) => Ok(fields),
        other => Err(Error::internal(anyhow::anyhow!(
            "an event payload must be an object, not {other}"
        ))),
    }
}

fn undecodable(err: serde_json::Error) -> Error {
    Error::internal(anyhow::anyhow!("undecodable event payload: {err}"))
}

/// A committed event, as handlers see it.
#[derive(Clone, Debug)]
pub struct Event {
    pub id: Uuid,
    /// Its organisation, actor and request.
    pub envelope: Envelope,
    pub body: Body,
    /// How many times it has been claimed, this time included.
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
}

impl Event {
    pub fn org_id(&self) -> Uuid {
        self.envelope.org_id
    }

    /// Who caused it (`None` for the system).
    pub fn actor_id(&self) -> Option<Uuid> {
        self.envelope.actor_id
    }

    pub fn kind(&self) -> &'static str {
        self.body.kind()
    }

    pub fn ticket_id(&self) -> Option<Uuid> {
        self.body.ticket_id()
    }

    /// What stream subscribers receive of it.
    pub fn public_data(&self) -> Result<Value> {
        self.body.public_data(&self.envelope)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn envelope() -> Envelope {
        Envelope {
            org_id: Uuid::now_v7(),
            actor_id: Some(Uuid::now_v7()),
            request_id: Some("req-1".into()),
            v: VERSION,
        }
    }

    fn ticket() -> TicketRef {
        TicketRef {
            ticket_id: Uuid::now_v7(),
            project_id: Uuid::now_v7(),
            key: "OPS-1".into(),
            requester_id: None,
            version: 2,
        }
    }

    #[test]
    fn payloads_keep_the_field_names_stored_before_the_contract() {
        let env = envelope();
        let t = ticket();
        let watcher = Uuid::now_v7();
        let body = Body::TicketStatusChanged(StatusChanged {
            ticket: t.clone(),
            from: "open".into(),
            to: "pending".into(),
            followers: Followers {
                assignee_ids: vec![],
                watcher_ids: vec![watcher],
            },
        });
        let stored = body.encode(&env).unwrap();
        assert_eq!(
            stored,
            json!({"org_id": env.org_id, "actor_id": env.actor_id, "request_id": "req-1",
                "ticket_id": t.ticket_id, "project_id": t.project_id, "key": "OPS-1",
                "requester_id": null, "version": 2, "from": "open", "to": "pending",
                "assignee_ids": [], "watcher_ids": [watcher]})
        );
        let (read_env, read) = Body::decode("ticket.status_changed", stored).unwrap();
        assert_eq!((read_env, read), (env.clone(), body.clone()));
        let public = body.public_data(&env).unwrap();
        for private in PRIVATE {
            assert!(public.get(private).is_none(), "{private} in {public}");
        }
        assert_eq!(public["actor_id"], json!(env.actor_id));
    }

    #[test]
    fn every_kind_round_trips_under_its_own_name() {
        let env = envelope();
        let comment = CommentRef {
            ticket_id: Uuid::now_v7(),
            project_id: Uuid::now_v7(),
            requester_id: Some(Uuid::now_v7()),
            comment_id: Uuid::now_v7(),
            author_id: Uuid::now_v7(),
            internal: true,
            body: "hi".into(),
        };
        let changed = TicketChanged {
            ticket: ticket(),
            changes: Map::new(),
        };
        let project = ProjectChanged {
            project_id: Uuid::now_v7(),
            changes: json!({}),
        };
        let attachment = AttachmentRef {
            ticket_id: Uuid::now_v7(),
            project_id: Uuid::now_v7(),
            requester_id: None,
            attachment_id: Uuid::now_v7(),
            comment_id: Some(Uuid::now_v7()),
            filename: "log.txt".into(),
            content_type: "text/plain; charset=utf-8".into(),
            size: 12,
            uploaded_by: Uuid::now_v7(),
            internal: true,
        };
        let all = [
            Body::ProjectCreated(project.clone()),
            Body::ProjectUpdated(project.clone()),
            Body::ProjectArchived(project.clone()),
            Body::ProjectRestored(project),
            Body::TicketCreated(changed.clone()),
            Body::TicketUpdated(changed.clone()),
            Body::TicketDeleted(changed.clone()),
            Body::TicketRestored(changed.clone()),
            Body::TicketAssigned(TicketAssigned {
                ticket: ticket(),
                added: vec![Uuid::now_v7()],
                removed: vec![],
            }),
            Body::CommentCreated(CommentCreated {
                comment: comment.clone(),
                followers: Followers::default(),
            }),
            Body::CommentUpdated(comment.clone()),
            Body::CommentDeleted(comment),
            Body::AttachmentAdded(attachment.clone()),
            Body::AttachmentRemoved(attachment),
            Body::WebhookDisabled(WebhookDisabled {
                webhook_id: Uuid::now_v7(),
                host: "hooks.example.com".into(),
                reason: "410 Gone".into(),
            }),
        ];
        for body in all {
            let stored = body.encode(&env).unwrap();
            assert!(stored.get("kind").is_none());
            let (_, read) = Body::decode(body.kind(), stored).unwrap();
            assert_eq!(read, body);
        }
    }

    #[test]
    fn a_payload_without_a_version_is_version_one_and_newer_ones_are_refused() {
        let env = envelope();
        let body = Body::CommentDeleted(CommentRef {
            ticket_id: Uuid::now_v7(),
            project_id: Uuid::now_v7(),
            requester_id: None,
            comment_id: Uuid::now_v7(),
            author_id: Uuid::now_v7(),
            internal: false,
            body: "gone".into(),
        });
        let mut stored = body.encode(&env).unwrap();
        assert!(stored.get("v").is_none());
        assert_eq!(
            Body::decode("comment.deleted", stored.clone()).unwrap().0.v,
            1
        );
        stored["v"] = json!(VERSION + 1);
        assert!(Body::decode("comment.deleted", stored).is_err());
        assert!(Body::decode("comment.exploded", body.encode(&env).unwrap()).is_err());
    }
}
