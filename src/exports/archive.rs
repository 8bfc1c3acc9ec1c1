//! The export file: a zip written to a temporary file a record at a time (never the whole
//! export in memory), one entry per kind of record (JSON Lines) and per attachment, and last
//! `manifest.json` with each entry's record count, size and SHA-256.

use std::io::{Read, Seek, SeekFrom, Write};

use serde::Serialize;
use sha2::{Digest, Sha256};
use zip::{CompressionMethod, ZipWriter, write::SimpleFileOptions};

use crate::error::{Error, Result};

/// What the manifest says of one entry.
#[derive(Debug, Serialize)]
pub struct EntrySummary {
    pub name: String,
    /// Lines of a JSON Lines entry (absent for a file).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub records: Option<u64>,
    pub bytes: u64,
    pub sha256: String,
}

struct Open {
    name: String,
    records: Option<u64>,
    bytes: u64,
    sha: Sha256,
}

pub struct Archive {
    zip: ZipWriter<std::fs::File>,
    open: Option<Open>,
    done: Vec<EntrySummary>,
}

fn io(err: impl std::fmt::Display) -> Error {
    Error::internal(anyhow::anyhow!("writing the export: {err}"))
}

impl Archive {
    pub fn new() -> Result<Self> {
        Ok(Self {
            zip: ZipWriter::new(tempfile::tempfile().map_err(io)?),
            open: None,
            done: Vec::new(),
        })
    }

    /// Starts entry `name`: JSON Lines when `lines`, else a file's bytes.
    pub fn start(&mut self, name: &str, lines: bool) -> Result<()> {
        self.close()?;
        let compression = if lines {
            CompressionMethod::Deflated
        } else {
            // Attachments are mostly compressed already (images, PDFs, archives).
            CompressionMethod::Stored
        };
        let options = SimpleFileOptions::default()
            .compression_method(compression)
            .large_file(true);
        self.zip.start_file(name, options).map_err(io)?;
        self.open = Some(Open {
            name: name.to_owned(),
            records: lines.then_some(0),
            bytes: 0,
            sha: Sha256::new(),
        });
        Ok(())
    }

    /// Appends `bytes` to the open entry.
    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        let open = self.open.as_mut().ok_or_else(|| io("no entry is open"))?;
        open.sha.update(bytes);
        open.bytes += bytes.len() as u64;
        self.zip.write_all(bytes).map_err(io)
    }

    /// Appends one record to the open JSON Lines entry.
    pub fn record(&mut self, value: &impl Serialize) -> Result<()> {
        let mut line = serde_json::to_vec(value).map_err(io)?;
        line.push(b'\n');
        self.write(&line)?;
        if let Some(records) = self.open.as_mut().and_then(|o| o.records.as_mut()) {
            *records += 1;
        }
        Ok(())
    }

    /// Writes `value` as the whole of entry `name` (one JSON document).
    pub fn document(&mut self, name: &str, value: &impl Serialize) -> Result<()> {
        self.start(name, false)?;
        self.write(&serde_json::to_vec_pretty(value).map_err(io)?)
    }

    fn close(&mut self) -> Result<()> {
        if let Some(open) = self.open.take() {
            self.done.push(EntrySummary {
                name: open.name,
                records: open.records,
                bytes: open.bytes,
                sha256: hex::encode(open.sha.finalize()),
            });
        }
        Ok(())
    }

    /// Ends the archive with `manifest.json` (`head`, plus `files`: every entry's summary) and
    /// gives the file back, rewound, with its size and the manifest.
    pub fn finish(
        mut self,
        mut head: serde_json::Value,
    ) -> Result<(std::fs::File, u64, serde_json::Value)> {
        self.close()?;
        if let Some(fields) = head.as_object_mut() {
            fields.insert(
                "files".into(),
                serde_json::to_value(&self.done).map_err(io)?,
            );
        }
        let options = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
        self.zip.start_file("manifest.json", options).map_err(io)?;
        self.zip
            .write_all(&serde_json::to_vec_pretty(&head).map_err(io)?)
            .map_err(io)?;
        let mut file = self.zip.finish().map_err(io)?;
        let size = file.seek(SeekFrom::End(0)).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        Ok((file, size, head))
    }
}

/// Reads `file` in chunks of `chunk` bytes, for uploading.
pub fn chunks(mut file: std::fs::File, chunk: usize) -> impl Iterator<Item = Result<Vec<u8>>> {
    std::iter::from_fn(move || {
        let mut buf = vec![0; chunk];
        match file.read(&mut buf) {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some(Ok(buf))
            }
            Err(err) => Some(Err(io(err))),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_sums_up_every_entry() {
        let mut archive = Archive::new().unwrap();
        archive.start("tickets.jsonl", true).unwrap();
        archive.record(&serde_json::json!({"id": 1})).unwrap();
        archive.record(&serde_json::json!({"id": 2})).unwrap();
        archive.start("files/a.txt", false).unwrap();
        archive.write(b"hello").unwrap();
        let (file, size, _) = archive
            .finish(serde_json::json!({"format": "docket-export"}))
            .unwrap();
        assert!(size > 0);
        let mut zip = zip::ZipArchive::new(file).unwrap();
        let mut manifest = String::new();
        zip.by_name("manifest.json")
            .unwrap()
            .read_to_string(&mut manifest)
            .unwrap();
        let manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
        assert_eq!(manifest["files"][0]["records"], 2);
        assert_eq!(
            manifest["files"][1]["sha256"],
            hex::encode(Sha256::digest(b"hello"))
        );
        let mut lines = String::new();
        zip.by_name("tickets.jsonl")
            .unwrap()
            .read_to_string(&mut lines)
            .unwrap();
        assert_eq!(lines, "{\"id\":1}\n{\"id\":2}\n");
    }
}
