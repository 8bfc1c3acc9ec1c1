//! The audit log's hash chain: the canonical form of an entry and how each link is hashed
//! (`hash = sha256(prev_hash || canonical entry)`). Pure, so the migration that chained the
//! entries written before the chain existed and the log that extends and verifies it agree.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// One audit entry as the chain sees it. Its details enter by digest: erasing a person may
/// pseudonymise what the details say about them, and the chain still holds (the entry then
/// records when it was redacted, and verification checks the digest of unredacted entries only).
pub struct Link<'a> {
    pub org_id: Uuid,
    pub seq: i64,
    pub id: Uuid,
    pub actor_id: Option<Uuid>,
    pub action: &'a str,
    pub target_type: &'a str,
    pub target_id: Option<Uuid>,
    pub details_digest: &'a str,
    pub request_id: Option<&'a str>,
    pub created_at: DateTime<Utc>,
}

impl Link<'_> {
    /// The link's hash: SHA-256 (hex) of the previous hash (empty for the first entry), a
    /// newline, and the entry as a JSON array in a fixed order.
    pub fn hash(&self, prev_hash: Option<&str>) -> String {
        let entry = serde_json::json!([
            self.org_id,
            self.seq,
            self.id,
            self.actor_id,
            self.action,
            self.target_type,
            self.target_id,
            self.details_digest,
            self.request_id,
            self.created_at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        ]);
        let mut sha = Sha256::new();
        sha.update(prev_hash.unwrap_or_default());
        sha.update(b"\n");
        sha.update(entry.to_string());
        hex::encode(sha.finalize())
    }
}

/// SHA-256 (hex) of `details` in canonical JSON: object keys sorted at every depth, no spaces.
/// PostgreSQL's `jsonb` gives keys back in its own order, so the order written is not kept.
pub fn digest(details: &Value) -> String {
    let mut text = String::new();
    canonical(details, &mut text);
    hex::encode(Sha256::digest(text))
}

fn canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<_> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(details_digest: &str) -> Link<'_> {
        Link {
            org_id: Uuid::nil(),
            seq: 1,
            id: Uuid::from_u128(7),
            actor_id: None,
            action: "org.updated",
            target_type: "organization",
            target_id: None,
            details_digest,
            request_id: Some("req-1"),
            created_at: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
        }
    }

    #[test]
    fn key_order_does_not_change_the_digest() {
        let a: Value =
            serde_json::from_str(r#"{"b":1,"a":{"y":[1,{"q":2,"p":3}],"x":null}}"#).unwrap();
        let b: Value =
            serde_json::from_str(r#"{"a":{"x":null,"y":[1,{"p":3,"q":2}]},"b":1}"#).unwrap();
        assert_eq!(digest(&a), digest(&b));
        assert_ne!(digest(&a), digest(&serde_json::json!({"b": 2})));
    }

    #[test]
    fn every_field_and_the_previous_hash_count() {
        let d = digest(&serde_json::json!({}));
        let first = link(&d).hash(None);
        assert_eq!(first.len(), 64);
        assert_ne!(first, link(&d).hash(Some("00")));
        let mut other = link(&d);
        other.action = "org.deleted";
        assert_ne!(first, other.hash(None));
        let mut later = link(&d);
        later.seq = 2;
        assert_ne!(first, later.hash(None));
        assert_ne!(first, link("ab").hash(None));
        assert_eq!(first, link(&d).hash(None));
    }
}
