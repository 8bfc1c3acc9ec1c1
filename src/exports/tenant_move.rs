//! Moving an organisation to another database (`docket admin export-org` / `import-org`): all
//! of its rows with their ids, keys, numbering and password hashes, its people's accounts and
//! second factors, and its files, so people sign in on the new server as before. SQLite to
//! PostgreSQL is the road of a growing organisation; PostgreSQL to PostgreSQL moves a big one to
//! a server of its own.
//!
//! The file is a zip like an export's, with every column (secrets too: guard it like a
//! backup). The import checks every entry against the manifest first, refuses an organisation
//! (or an account address) that already exists, copies the files, then writes every row in one
//! transaction, and counts what it wrote against the manifest. Queued mails and webhook
//! deliveries arrive as failed: moving never sends anything a second time.

use std::{
    collections::{BTreeMap, BTreeSet},
    io::Read,
    path::Path,
};

use futures_util::StreamExt as _;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::archive::Archive;
use crate::{
    error::{Error, Result},
    files::Files,
    identity,
    store::{self, Db},
    tenancy,
};

const FORMAT: &str = "docket-tenant";
/// The bytes of a file copied to the object store at a time.
const UPLOAD_CHUNK: usize = 1024 * 1024;
const VERSION: u64 = 1;

/// The server's machinery, rebuilt or meaningless elsewhere.
const NOT_MOVED: &[&str] = &[
    "exports",
    "idempotency_keys",
    "outbox_events",
    "stream_counters",
    "stream_events",
];

/// Sign-in state, moved only when asked (`--with-sessions`).
const SESSIONS: &[&str] = &["refresh_tokens", "sessions"];

/// An account's own tables, and the column naming the account.
const ACCOUNT_TABLES: &[(&str, &str)] = &[
    ("totp_factors", "user_id"),
    ("recovery_codes", "user_id"),
    ("passkeys", "user_id"),
    ("sso_identities", "user_id"),
];

fn bad_file(why: impl std::fmt::Display) -> Error {
    Error::internal(anyhow::anyhow!("the tenant file does not hold: {why}"))
}

/// Writes organisation `org_id`, its accounts and files to `out`; answers the manifest.
pub async fn export_org(
    db: &Db,
    files: &Files,
    org_id: Uuid,
    out: &Path,
    with_sessions: bool,
) -> Result<Value> {
    let mut zip = Archive::new()?;
    let organization = db.organization_row(org_id).await?;
    zip.start("rows/organizations.jsonl", true)?;
    zip.record(&organization)?;
    let mut people = BTreeSet::new();
    for table in db.tenant_tables().await? {
        if NOT_MOVED.contains(&table.as_str())
            || (!with_sessions && SESSIONS.contains(&table.as_str()))
        {
            continue;
        }
        zip.start(&format!("rows/{table}.jsonl"), true)?;
        let mut after = None;
        loop {
            let page = db
                .tenant_rows_page(org_id, &table, after.as_deref())
                .await?;
            for row in &page.rows {
                if table == "memberships"
                    && let Some(id) = row.get("user_id").and_then(Value::as_str)
                {
                    people.insert(id.to_owned());
                }
                zip.record(row)?;
            }
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
    }
    for (table, column) in [("users", "id")].iter().chain(ACCOUNT_TABLES) {
        zip.start(&format!("accounts/{table}.jsonl"), true)?;
        for person in &people {
            let id: Uuid = person.parse().map_err(bad_file)?;
            let mut after = None;
            loop {
                let page = db
                    .global_rows_page(table, column, id, after.as_deref())
                    .await?;
                for row in &page.rows {
                    zip.record(row)?;
                }
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
        }
    }
    for (name, size) in files.objects_of(org_id).await? {
        zip.start(&format!("files/{name}"), false)?;
        let mut body = files.read_object(org_id, &name, size).await?.body;
        while let Some(chunk) = body.next().await {
            zip.write(&chunk?)?;
        }
    }
    let head = json!({
        "format": FORMAT,
        "version": VERSION,
        "organization": {
            "id": org_id,
            "slug": organization.get("slug"),
            "name": organization.get("name"),
        },
        "source": format!("{:?}", db.backend()).to_lowercase(),
        "with_sessions": with_sessions,
        "exported_at": store::now(),
    });
    let (mut file, _, manifest) = zip.finish(head)?;
    let mut target = std::fs::File::create(out).map_err(Error::internal)?;
    std::io::copy(&mut file, &mut target).map_err(Error::internal)?;
    Ok(manifest)
}

type TenantZip = zip::ZipArchive<std::fs::File>;

fn manifest(zip: &mut TenantZip) -> Result<Value> {
    let mut text = String::new();
    zip.by_name("manifest.json")
        .map_err(bad_file)?
        .read_to_string(&mut text)
        .map_err(bad_file)?;
    serde_json::from_str(&text).map_err(bad_file)
}

/// What verifying an entry saw of it, as it streamed past.
#[derive(Default)]
struct Seen {
    sha: Sha256,
    lines: u64,
}

impl std::io::Write for Seen {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.sha.update(buf);
        self.lines += buf.iter().filter(|b| **b == b'\n').count() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every entry the manifest lists, with its checksum and record count checked (each entry is
/// streamed through, never held whole).
fn verified_entries(zip: &mut TenantZip, head: &Value) -> Result<BTreeMap<String, Option<u64>>> {
    let mut entries = BTreeMap::new();
    for file in head["files"]
        .as_array()
        .ok_or_else(|| bad_file("no file list"))?
    {
        let name = file["name"]
            .as_str()
            .ok_or_else(|| bad_file("an unnamed entry"))?;
        let mut seen = Seen::default();
        let mut entry = zip
            .by_name(name)
            .map_err(|_| bad_file(format!("{name} is missing")))?;
        std::io::copy(&mut entry, &mut seen).map_err(bad_file)?;
        if file["sha256"].as_str() != Some(hex::encode(seen.sha.finalize()).as_str()) {
            return Err(bad_file(format!("{name} does not match its checksum")));
        }
        let records = file["records"].as_u64();
        if let Some(records) = records
            && seen.lines != records
        {
            return Err(bad_file(format!(
                "{name} has {} records, not {records}",
                seen.lines
            )));
        }
        entries.insert(name.to_owned(), records);
    }
    let listed = entries.len() + 1;
    if zip.len() != listed {
        return Err(bad_file("it holds entries its manifest does not list"));
    }
    Ok(entries)
}

fn rows_of(zip: &mut TenantZip, name: &str) -> Result<Vec<Map<String, Value>>> {
    let mut text = String::new();
    zip.by_name(name)
        .map_err(bad_file)?
        .read_to_string(&mut text)
        .map_err(bad_file)?;
    text.lines()
        .map(|line| match serde_json::from_str(line) {
            Ok(Value::Object(row)) => Ok(row),
            _ => Err(bad_file(format!("{name} holds a line that is no record"))),
        })
        .collect()
}

/// What moving never does again on the new server: send queued mail, deliver webhooks.
fn settle_for_the_move(table: &str, row: &mut Map<String, Value>) {
    let status = row
        .get("status")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let note = json!("not sent again after the organization moved to another server");
    match table {
        "mails" if matches!(status, "queued" | "sending") => {
            row.insert("status".into(), json!("failed"));
            row.insert("last_response".into(), note);
        }
        "webhook_deliveries" if matches!(status, "pending" | "delivering") => {
            row.insert("status".into(), json!("failed"));
            row.insert("last_error".into(), note);
        }
        _ => {}
    }
}

/// Imports the organisation of the file at `input` into `db` and `files`; answers what it
/// wrote (rows per table, accounts, files).
pub async fn import_org(db: &Db, files: &Files, input: &Path) -> Result<Value> {
    let mut zip = zip::ZipArchive::new(std::fs::File::open(input).map_err(Error::internal)?)
        .map_err(bad_file)?;
    let head = manifest(&mut zip)?;
    if head["format"] != FORMAT || head["version"].as_u64() != Some(VERSION) {
        return Err(bad_file("it is not a tenant file of this version"));
    }
    let entries = verified_entries(&mut zip, &head)?;
    let org_id: Uuid = head["organization"]["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad_file("no organization id"))?;
    let slug = head["organization"]["slug"].as_str().unwrap_or_default();
    if tenancy::organization_exists(db, org_id, slug).await? {
        return Err(Error::conflict(
            "organization_exists",
            format!("an organization with this id or the slug {slug:?} is already here"),
        ));
    }
    // Accounts already here (the same person, by id) are kept as they are; an address taken by
    // another account is a conflict the operator resolves first.
    let users = rows_of(&mut zip, "accounts/users.jsonl")?;
    let mut new_accounts = BTreeSet::new();
    for user in &users {
        let id = user["id"].as_str().unwrap_or_default();
        let email = user["email"].as_str().unwrap_or_default();
        match identity::account_id_by_email(db, email).await? {
            Some(existing) if existing.to_string() == id => {}
            Some(_) => {
                return Err(Error::conflict(
                    "account_exists",
                    format!("the address {email} belongs to another account here"),
                ));
            }
            None => {
                new_accounts.insert(id.to_owned());
            }
        }
    }

    let mut counts = BTreeMap::new();
    let objects: Vec<String> = entries
        .keys()
        .filter_map(|n| n.strip_prefix("files/").map(str::to_owned))
        .collect();
    for name in &objects {
        let mut upload = files.object_writer(org_id, name);
        let mut entry = zip.by_name(&format!("files/{name}")).map_err(bad_file)?;
        let mut chunk = vec![0; UPLOAD_CHUNK];
        loop {
            let n = entry.read(&mut chunk).map_err(bad_file)?;
            if n == 0 {
                break;
            }
            if upload.write(chunk[..n].to_vec().into()).await.is_err() {
                upload.abort().await;
                return Err(Error::internal(anyhow::anyhow!("copying {name} failed")));
            }
        }
        drop(entry);
        upload.finish().await?;
    }
    counts.insert("files".to_owned(), objects.len() as u64);

    let tx = db.write_org(org_id).await?;
    let conn = tx.conn();
    store::insert_rows(
        conn,
        "organizations",
        &rows_of(&mut zip, "rows/organizations.jsonl")?,
    )
    .await?;
    let accounts: Vec<_> = users
        .into_iter()
        .filter(|u| new_accounts.contains(u["id"].as_str().unwrap_or_default()))
        .collect();
    store::insert_rows(conn, "users", &accounts).await?;
    counts.insert("accounts".to_owned(), accounts.len() as u64);
    for (table, column) in ACCOUNT_TABLES {
        let rows: Vec<_> = rows_of(&mut zip, &format!("accounts/{table}.jsonl"))?
            .into_iter()
            .filter(|r| new_accounts.contains(r[*column].as_str().unwrap_or_default()))
            .collect();
        store::insert_rows(conn, table, &rows).await?;
    }
    // Parents first: the reverse of the order a purge empties them in.
    let mut tables = db.tenant_tables().await?;
    tables.reverse();
    for table in tables {
        let name = format!("rows/{table}.jsonl");
        if !entries.contains_key(&name) {
            continue;
        }
        let mut rows = rows_of(&mut zip, &name)?;
        for row in &mut rows {
            settle_for_the_move(&table, row);
        }
        store::insert_rows(conn, &table, &rows).await?;
        counts.insert(table, rows.len() as u64);
    }
    if let Some(extra) = entries
        .keys()
        .filter(|n| n.starts_with("rows/") && n.as_str() != "rows/organizations.jsonl")
        .find(|n| !counts.contains_key(n.trim_start_matches("rows/").trim_end_matches(".jsonl")))
    {
        return Err(bad_file(format!(
            "{extra} has no table here (an older server?)"
        )));
    }
    tx.commit().await?;

    for (table, wrote) in &counts {
        let Some(Some(listed)) = entries.get(&format!("rows/{table}.jsonl")) else {
            continue;
        };
        let here = db.count_tenant_rows(org_id, table).await? as u64;
        if here != *listed || here != *wrote {
            return Err(Error::internal(anyhow::anyhow!(
                "{table}: the file lists {listed} rows, {here} are here"
            )));
        }
    }
    Ok(json!({"organization": head["organization"], "imported": counts}))
}
