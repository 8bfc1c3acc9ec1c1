//! Attachment blobs in object storage: a directory under the data directory by default, an
//! S3-compatible bucket when `DOCKET_OBJECT_STORE_URL` names one. Blobs are keyed
//! `{org_id}/{attachment_id}`; what they are, who may see them and how much an organisation
//! keeps is the `work` module's business (`work::attachments`). Here: writing a stream without
//! holding it in memory (hashing it and sniffing its type on the way), reading it back by
//! range, deleting it, and listing what is old enough to be an orphan.

mod names;

use std::{ops::Range, path::Path as FsPath, sync::Arc, time::Duration};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::{StreamExt, stream::BoxStream};
use object_store::{
    GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart,
    aws::AmazonS3Builder, local::LocalFileSystem, path::Path, prefix::PrefixStore,
};
use sha2::{Digest, Sha256};
use uuid::Uuid;

pub use names::{content_disposition, sanitize_filename, shown_inline};

use crate::{
    config::FilesConfig,
    error::{Error, Result},
};

/// S3 refuses multipart parts under 5 MiB (the last one apart).
const S3_PART_BYTES: usize = 5 * 1024 * 1024;
/// Parts of a local file: small, so a write holds little in memory.
const LOCAL_PART_BYTES: usize = 1024 * 1024;
/// Parts in flight per upload beside the one being filled.
const PARTS_IN_FLIGHT: usize = 1;
/// How much of a file's start is kept to tell its type.
const SNIFF_BYTES: usize = 8 * 1024;
/// How long a client is told to wait when the store is unreachable.
const STORE_RETRY_AFTER: Duration = Duration::from_secs(5);

/// The object store and the limits on what goes in.
#[derive(Clone, Debug)]
pub struct Files {
    store: Arc<dyn ObjectStore>,
    part_bytes: usize,
    /// Largest attachment, in bytes (`DOCKET_MAX_ATTACHMENT_BYTES`).
    pub max_bytes: u64,
    /// Bytes one organisation may keep in all; 0 = no limit.
    pub quota_bytes: u64,
    /// Where blobs go, for the start-up log line (no credentials).
    pub location: String,
}

/// A stored blob, as the writer saw it go by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blob {
    pub id: Uuid,
    pub size: u64,
    /// Lower-case hex SHA-256 of the content.
    pub sha256: String,
    /// Told from the bytes, never from what the client claimed.
    pub content_type: String,
}

/// A blob's bytes (all, or one range of them), as a stream.
pub struct Download {
    pub range: Range<u64>,
    pub size: u64,
    pub body: BoxStream<'static, Result<Bytes>>,
}

impl Files {
    pub fn new(cfg: &FilesConfig, data_dir: &FsPath) -> anyhow::Result<Self> {
        let (store, part_bytes, location): (Arc<dyn ObjectStore>, _, _) =
            match cfg.object_store_url.as_deref().filter(|u| !u.is_empty()) {
                None => {
                    let dir = data_dir.join("attachments");
                    std::fs::create_dir_all(&dir)?;
                    let local =
                        LocalFileSystem::new_with_prefix(&dir)?.with_automatic_cleanup(true);
                    (Arc::new(local), LOCAL_PART_BYTES, dir.display().to_string())
                }
                Some(url) => {
                    let rest = url.strip_prefix("s3://").ok_or_else(|| {
                        anyhow::anyhow!("DOCKET_OBJECT_STORE_URL must be s3://bucket/prefix")
                    })?;
                    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                    anyhow::ensure!(
                        !bucket.is_empty(),
                        "DOCKET_OBJECT_STORE_URL names no bucket"
                    );
                    let s3 = AmazonS3Builder::from_env()
                        .with_bucket_name(bucket)
                        .build()?;
                    let prefix = prefix.trim_matches('/');
                    let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
                        Arc::new(s3)
                    } else {
                        Arc::new(PrefixStore::new(s3, prefix))
                    };
                    (store, S3_PART_BYTES, format!("s3://{bucket}/{prefix}"))
                }
            };
        Ok(Self {
            store,
            part_bytes,
            max_bytes: cfg.max_attachment_bytes,
            quota_bytes: cfg.org_storage_quota_bytes,
            location,
        })
    }

    /// Writes, reads back and deletes a small object (`docket admin doctor`).
    pub async fn probe(&self) -> anyhow::Result<()> {
        use anyhow::Context as _;
        let path = Path::from(format!("{}/doctor-probe", Uuid::nil()));
        let payload = Bytes::from_static(b"docket doctor probe");
        self.store
            .put(&path, payload.clone().into())
            .await
            .context("writing a probe object")?;
        let read = self
            .store
            .get(&path)
            .await
            .context("reading the probe object")?
            .bytes()
            .await?;
        self.store
            .delete(&path)
            .await
            .context("deleting the probe object")?;
        anyhow::ensure!(read == payload, "the probe object came back different");
        Ok(())
    }

    /// Starts writing a new blob of organisation `org_id`, refusing more than `limit` bytes.
    pub fn writer(&self, org_id: Uuid, limit: u64) -> BlobWriter {
        let id = Uuid::now_v7();
        self.writer_at(key(org_id, id), id, limit)
    }

    /// Starts writing export `id` of organisation `org_id` (kept apart from attachments, so
    /// the orphan sweep, which knows attachments only, leaves it alone).
    pub fn export_writer(&self, org_id: Uuid, id: Uuid) -> BlobWriter {
        self.writer_at(export_key(org_id, id), id, u64::MAX)
    }

    fn writer_at(&self, path: Path, id: Uuid, limit: u64) -> BlobWriter {
        BlobWriter {
            store: self.store.clone(),
            path,
            id,
            part_bytes: self.part_bytes,
            limit,
            pending: Vec::new(),
            pending_bytes: 0,
            upload: None,
            hasher: Sha256::new(),
            size: 0,
            head: Vec::new(),
        }
    }

    /// Reads blob `id` of `org_id`, all of it or `range` (already checked against `size`).
    pub async fn read(
        &self,
        org_id: Uuid,
        id: Uuid,
        size: u64,
        range: Option<Range<u64>>,
    ) -> Result<Download> {
        self.read_at(&key(org_id, id), size, range).await
    }

    /// Reads export `id` of `org_id` (its `size` bytes).
    pub async fn read_export(&self, org_id: Uuid, id: Uuid, size: u64) -> Result<Download> {
        self.read_at(&export_key(org_id, id), size, None).await
    }

    async fn read_at(&self, path: &Path, size: u64, range: Option<Range<u64>>) -> Result<Download> {
        let range = range.unwrap_or(0..size);
        if range.is_empty() {
            // An empty file (or an empty answer): nothing to fetch.
            return Ok(Download {
                range,
                size,
                body: futures_util::stream::empty().boxed(),
            });
        }
        let opts = GetOptions {
            range: Some(GetRange::Bounded(range.clone())),
            ..Default::default()
        };
        let got = self.store.get_opts(path, opts).await.map_err(unavailable)?;
        Ok(Download {
            range,
            size,
            body: got.into_stream().map(|r| r.map_err(unavailable)).boxed(),
        })
    }

    /// Deletes blob `id` of `org_id`; one that is already gone is fine.
    pub async fn delete(&self, org_id: Uuid, id: Uuid) -> Result<()> {
        self.delete_at(&key(org_id, id)).await
    }

    /// Deletes export `id` of `org_id`; one that is already gone is fine.
    pub async fn delete_export(&self, org_id: Uuid, id: Uuid) -> Result<()> {
        self.delete_at(&export_key(org_id, id)).await
    }

    async fn delete_at(&self, path: &Path) -> Result<()> {
        match self.store.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(err) => Err(unavailable(err)),
        }
    }

    /// Deletes every object of organisation `org_id` (its organisation was purged); answers
    /// how many there were.
    pub async fn delete_all_of(&self, org_id: Uuid) -> Result<u64> {
        let prefix = Path::from(org_id.to_string());
        let mut listing = self.store.list(Some(&prefix));
        let mut gone = 0;
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(unavailable)?;
            match self.store.delete(&meta.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => gone += 1,
                Err(err) => return Err(unavailable(err)),
            }
        }
        Ok(gone)
    }

    /// Every object of organisation `org_id` but its exports, as (its name below the
    /// organisation, size): what moving the organisation to another store copies.
    pub async fn objects_of(&self, org_id: Uuid) -> Result<Vec<(String, u64)>> {
        let prefix = Path::from(org_id.to_string());
        let mut listing = self.store.list(Some(&prefix));
        let mut found = Vec::new();
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(unavailable)?;
            let rest: Vec<String> = meta
                .location
                .parts()
                .skip(1)
                .map(|p| p.as_ref().to_owned())
                .collect();
            if rest.first().is_some_and(|p| p == "exports") {
                continue;
            }
            found.push((rest.join("/"), meta.size));
        }
        Ok(found)
    }

    /// Reads object `name` (as [`Files::objects_of`] names it) of `org_id`.
    pub async fn read_object(&self, org_id: Uuid, name: &str, size: u64) -> Result<Download> {
        self.read_at(&object_key(org_id, name), size, None).await
    }

    /// Writes object `name` of `org_id` (moving an organisation in).
    pub fn object_writer(&self, org_id: Uuid, name: &str) -> BlobWriter {
        self.writer_at(object_key(org_id, name), Uuid::nil(), u64::MAX)
    }

    /// Every blob last written before `cutoff`, as `(org_id, attachment_id)`. Objects that are
    /// not Docket's (other names under the prefix) are left out.
    pub async fn written_before(&self, cutoff: DateTime<Utc>) -> Result<Vec<(Uuid, Uuid)>> {
        let mut listing = self.store.list(None);
        let mut found = Vec::new();
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(unavailable)?;
            if meta.last_modified >= cutoff {
                continue;
            }
            let mut parts = meta.location.parts();
            let (Some(org), Some(id), None) = (parts.next(), parts.next(), parts.next()) else {
                continue;
            };
            if let (Ok(org), Ok(id)) = (org.as_ref().parse(), id.as_ref().parse()) {
                found.push((org, id));
            }
        }
        Ok(found)
    }
}

fn key(org_id: Uuid, id: Uuid) -> Path {
    Path::from(format!("{org_id}/{id}"))
}

fn object_key(org_id: Uuid, name: &str) -> Path {
    Path::from(format!("{org_id}/{name}"))
}

fn export_key(org_id: Uuid, id: Uuid) -> Path {
    Path::from(format!("{org_id}/exports/{id}.zip"))
}

/// The store failed (unreachable, refused): logged, and answered 503 so the client retries.
fn unavailable(err: object_store::Error) -> Error {
    tracing::warn!(error = %err, "object store request failed");
    Error::Unavailable {
        detail: "file storage is unavailable; retry shortly".into(),
        retry_after: STORE_RETRY_AFTER,
    }
}

/// Why a write stopped.
#[derive(Debug)]
pub enum WriteError {
    /// The content went past the writer's limit.
    TooLarge,
    Store(Error),
}

/// Writes one blob as it arrives. Small blobs go up in one request when they end; larger ones
/// as a multipart upload, a part at a time, so memory holds at most two parts however large
/// the file. A writer that is dropped or aborted leaves nothing behind (the local store removes
/// its staging file, an S3 upload is aborted).
pub struct BlobWriter {
    store: Arc<dyn ObjectStore>,
    path: Path,
    id: Uuid,
    part_bytes: usize,
    limit: u64,
    pending: Vec<Bytes>,
    pending_bytes: usize,
    upload: Option<WriteMultipart>,
    hasher: Sha256,
    size: u64,
    head: Vec<u8>,
}

impl BlobWriter {
    pub async fn write(&mut self, chunk: Bytes) -> Result<(), WriteError> {
        self.size += chunk.len() as u64;
        if self.size > self.limit {
            return Err(WriteError::TooLarge);
        }
        self.hasher.update(&chunk);
        if self.head.len() < SNIFF_BYTES {
            let take = (SNIFF_BYTES - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
        }
        self.pending_bytes += chunk.len();
        self.pending.push(chunk);
        if self.pending_bytes >= self.part_bytes {
            self.flush().await.map_err(WriteError::Store)?;
        }
        Ok(())
    }

    /// Hands what is buffered to the multipart upload (started on first use), after waiting for
    /// room so a fast sender cannot pile parts up in memory.
    async fn flush(&mut self) -> Result<()> {
        if self.upload.is_none() {
            let upload = self
                .store
                .put_multipart(&self.path)
                .await
                .map_err(unavailable)?;
            self.upload = Some(WriteMultipart::new_with_chunk_size(upload, self.part_bytes));
        }
        let upload = self.upload.as_mut().expect("started above");
        upload
            .wait_for_capacity(PARTS_IN_FLIGHT)
            .await
            .map_err(unavailable)?;
        for chunk in self.pending.drain(..) {
            upload.put(chunk);
        }
        self.pending_bytes = 0;
        Ok(())
    }

    /// Completes the blob and says what it was.
    pub async fn finish(mut self) -> Result<Blob> {
        match self.upload.take() {
            Some(mut upload) => {
                for chunk in self.pending.drain(..) {
                    upload.put(chunk);
                }
                upload.finish().await.map_err(unavailable)?;
            }
            None => {
                let payload = PutPayload::from_iter(self.pending.drain(..));
                self.store
                    .put(&self.path, payload)
                    .await
                    .map_err(unavailable)?;
            }
        }
        Ok(Blob {
            id: self.id,
            size: self.size,
            sha256: hex::encode(self.hasher.finalize_reset()),
            content_type: names::sniff(&self.head),
        })
    }

    /// Gives up: whatever was uploaded so far is removed.
    pub async fn abort(mut self) {
        if let Some(upload) = self.upload.take()
            && let Err(err) = upload.abort().await
        {
            tracing::warn!(error = %err, "aborting an upload failed; the orphan sweep will remove it");
        }
    }
}
