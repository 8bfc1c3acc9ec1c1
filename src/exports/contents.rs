//! What an export holds. An organisation's: every tenant table found by walking the schema,
//! a JSON Lines file each, but the machinery (queues, caches, indexes) and the secrets (password,
//! token and webhook secrets' hashes or values, the identity provider's and mailbox's secrets),
//! its people's profiles, and its attachments' bytes. A person's: what the services show them,
//! through their own access rules (a requester's never holds internal notes or others' tickets).

use std::collections::BTreeSet;

use futures_util::StreamExt as _;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{archive::Archive, entity};
use crate::{
    access::TenantCtx,
    audit,
    error::{Error, Result},
    files::{Files, sanitize_filename},
    identity,
    notify::{self, NotificationFilter},
    pagination::PageRequest,
    store::Db,
    tenancy,
    work::{
        comments,
        tickets::{self, TicketFilter},
        views,
    },
};

/// The export format's name and version, in every manifest.
const FORMAT: &str = "docket-export";
const VERSION: u32 = 1;

/// Tables that are the server's machinery, not the organisation's records.
const MACHINERY: &[&str] = &[
    "audit_chain_heads",
    "exports",
    "idempotency_keys",
    "outbox_events",
    "refresh_tokens",
    "search_documents",
    "storage_usage",
    "stream_counters",
    "stream_events",
];

/// Columns that hold a secret (or what proves one): never exported.
const SECRETS: &[(&str, &str)] = &[
    ("api_tokens", "token_hash"),
    ("invitations", "token_hash"),
    ("mail_settings", "imap_password"),
    ("mails", "params"),
    ("org_sso", "client_secret"),
    ("webhooks", "secret"),
    ("webhooks", "previous_secret"),
];

fn head(row: &entity::Model, organization: &tenancy::Organization) -> Value {
    json!({
        "format": FORMAT,
        "version": VERSION,
        "scope": row.scope,
        "organization": {"id": organization.id, "slug": organization.slug, "name": organization.name},
        "requested_by": row.user_id,
        "created_at": crate::store::now(),
    })
}

pub(super) async fn organization(
    db: &Db,
    files: &Files,
    row: &entity::Model,
    zip: &mut Archive,
) -> Result<Value> {
    let tx = db.read_org(row.org_id).await?;
    let organization = tenancy::organization(&tx).await?;
    let members = tenancy::member_ids(&tx).await?;
    let people = identity::users_by_ids(tx.conn(), members).await?;
    tx.commit().await?;
    zip.document("organization.json", &organization)?;
    zip.start("people.jsonl", true)?;
    for person in &people {
        zip.record(person)?;
    }
    for table in db.tenant_tables().await? {
        if MACHINERY.contains(&table.as_str()) {
            continue;
        }
        zip.start(&format!("{table}.jsonl"), true)?;
        let mut after = None;
        loop {
            let page = db
                .tenant_rows_page(row.org_id, &table, after.as_deref())
                .await?;
            for mut record in page.rows {
                for (_, column) in SECRETS.iter().filter(|(t, _)| *t == table) {
                    record.remove(*column);
                }
                zip.record(&record)?;
            }
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
    }
    attachments(db, files, row.org_id, zip).await?;
    Ok(head(row, &organization))
}

/// Every attachment's bytes, as `files/<id>-<name>`.
async fn attachments(db: &Db, files: &Files, org_id: Uuid, zip: &mut Archive) -> Result<()> {
    let mut after = None;
    loop {
        let page = db
            .tenant_rows_page(org_id, "attachments", after.as_deref())
            .await?;
        for record in &page.rows {
            let (Some(id), Some(size)) = (
                record
                    .get("id")
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse::<Uuid>().ok()),
                record.get("size").and_then(Value::as_u64),
            ) else {
                continue;
            };
            let name = record
                .get("filename")
                .and_then(Value::as_str)
                .unwrap_or("file");
            zip.start(&format!("files/{id}-{}", sanitize_filename(name)), false)?;
            let mut bytes = files.read(org_id, id, size, None).await?.body;
            while let Some(chunk) = bytes.next().await {
                zip.write(&chunk?)?;
            }
        }
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(()),
        }
    }
}

/// The most tickets read per page.
const PAGE: u64 = 200;

pub(super) async fn person(db: &Db, row: &entity::Model, zip: &mut Archive) -> Result<Value> {
    let tx = db.read_org(row.org_id).await?;
    let role = tenancy::active_role(&tx, row.user_id)
        .await?
        .ok_or(Error::NotFound("membership"))?;
    let organization = tenancy::organization(&tx).await?;
    tx.commit().await?;
    // The person's own view: every read below goes through the services' access rules.
    let ctx = TenantCtx::authenticated(row.org_id, row.user_id, role, None);
    zip.document("profile.json", &identity::me(db, &ctx).await?)?;
    zip.document(
        "preferences.json",
        &notify::preferences::get(db, &ctx).await?,
    )?;
    zip.document("saved_views.json", &views::list(db, &ctx).await?)?;
    zip.document(
        "sessions.json",
        &identity::sessions_in(db, row.org_id, row.user_id).await?,
    )?;

    // Their tickets: those they asked for and those they work on.
    zip.start("tickets.jsonl", true)?;
    let mut seen = BTreeSet::new();
    for (requester, assignee) in [(Some("me"), None), (None, Some("me"))] {
        let mut cursor = None;
        loop {
            let filter = TicketFilter {
                requester: requester.map(str::to_owned),
                assignee: assignee.map(str::to_owned),
                limit: Some(PAGE),
                cursor,
                ..Default::default()
            };
            let page = tickets::list(db, &ctx, filter.validate(&ctx)?).await?;
            for ticket in page.items {
                if seen.insert(ticket.id) {
                    zip.record(&ticket)?;
                }
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
    }
    zip.start("comments.jsonl", true)?;
    for ticket in &seen {
        let mut cursor = None;
        loop {
            let page = PageRequest::largest(cursor)?;
            let found = comments::list(db, &ctx, &ticket.to_string(), page).await?;
            for comment in found.items {
                zip.record(&comment)?;
            }
            match found.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
    }
    zip.start("notifications.jsonl", true)?;
    let mut cursor = None;
    loop {
        let page = PageRequest::largest(cursor)?;
        let found = notify::list(db, &ctx, NotificationFilter::default(), page).await?;
        for notification in found.items {
            zip.record(&notification)?;
        }
        match found.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    zip.start("audit_log.jsonl", true)?;
    let mut after = None;
    loop {
        let found = audit::about(db, row.org_id, row.user_id, after).await?;
        let last = found.last().map(|e| e.id);
        for entry in found {
            zip.record(&entry)?;
        }
        match last {
            Some(id) => after = Some(id),
            None => break,
        }
    }
    Ok(head(row, &organization))
}
