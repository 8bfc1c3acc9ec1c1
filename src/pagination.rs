//! Keyset pagination: `?limit=&cursor=` in, `{items, next_cursor}` out. The cursor is an opaque
//! encoding of the last key the client saw, so pages stay stable under concurrent inserts.

use base64::{
    Engine, alphabet,
    engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::error::{Error, Result, Validator};

pub const DEFAULT_LIMIT: u64 = 50;
pub const MAX_LIMIT: u64 = 200;

/// Cursors are 16 bytes in unpadded base64url; any 22 such characters decode (trailing bits are
/// ignored), so every cursor the documented pattern allows is one the server can read.
const CURSOR: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(true),
);

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Items per page (1–200, default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u64>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[A-Za-z0-9_-]{22}$")]
    pub cursor: Option<String>,
}

#[derive(Clone, Debug)]
pub struct PageRequest {
    pub limit: u64,
    cursor: Option<String>,
}

const NOT_A_CURSOR: &str = "is not a cursor this server issued";

/// `?limit=` of any list: 1–200, default 50.
pub fn check_limit(v: &mut Validator, limit: Option<u64>) -> u64 {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    v.check(
        (1..=MAX_LIMIT).contains(&limit),
        "limit",
        "must be between 1 and 200",
    );
    limit
}

/// `?cursor=` of a list sorted by another value than the id (see `encode_keyed`).
pub fn check_keyed_cursor(v: &mut Validator, cursor: Option<&str>) -> Option<(i64, Uuid)> {
    let decoded = cursor.map(decode_keyed);
    v.check(decoded != Some(None), "cursor", NOT_A_CURSOR);
    decoded.flatten()
}

impl PageParams {
    pub fn validate(self) -> Result<PageRequest> {
        let mut v = Validator::default();
        let limit = check_limit(&mut v, self.limit);
        if let Some(c) = &self.cursor {
            v.check(decode(c).is_some(), "cursor", NOT_A_CURSOR);
        }
        v.finish()?;
        Ok(PageRequest {
            limit,
            cursor: self.cursor,
        })
    }
}

impl PageRequest {
    /// The largest page from `cursor` (a cursor this server gave): for what walks a whole list
    /// itself (downloads, exports).
    pub fn largest(cursor: Option<String>) -> Result<PageRequest> {
        PageParams {
            limit: Some(MAX_LIMIT),
            cursor,
        }
        .validate()
    }

    /// The id the page starts after, for lists keyed by a UUIDv7 id.
    pub fn after_id(&self) -> Result<Option<Uuid>> {
        self.cursor
            .as_deref()
            .map(|c| decode(c).ok_or_else(|| Error::invalid("cursor", NOT_A_CURSOR)))
            .transpose()
    }
}

fn decode(cursor: &str) -> Option<Uuid> {
    let bytes = CURSOR.decode(cursor).ok()?;
    Uuid::from_slice(&bytes).ok()
}

fn encode(id: Uuid) -> String {
    CURSOR.encode(id.as_bytes())
}

/// A cursor for lists sorted by another value than the id: the last row's sort value (as an
/// integer) and its id, 24 bytes in 32 base64url characters. Any such 32 characters decode.
pub fn encode_keyed(value: i64, id: Uuid) -> String {
    let mut bytes = [0u8; 24];
    bytes[..8].copy_from_slice(&value.to_be_bytes());
    bytes[8..].copy_from_slice(id.as_bytes());
    CURSOR.encode(bytes)
}

pub fn decode_keyed(cursor: &str) -> Option<(i64, Uuid)> {
    let bytes = CURSOR.decode(cursor).ok()?;
    let value = i64::from_be_bytes(bytes.get(..8)?.try_into().ok()?);
    let id = Uuid::from_slice(bytes.get(8..)?).ok()?;
    Some((value, id))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows (the extra one only tells that more exist).
    pub fn from_rows<R>(
        rows: Vec<R>,
        limit: u64,
        key: impl Fn(&R) -> Uuid,
        map: impl FnMut(R) -> T,
    ) -> Self {
        Self::with_cursor(rows, limit, |r| encode(key(r)), map)
    }

    /// Like `from_rows`, for rows whose conversion can fail (a stored value the code does not
    /// know is an internal error, not a row to skip).
    pub fn try_from_rows<R>(
        rows: Vec<R>,
        limit: u64,
        key: impl Fn(&R) -> Uuid,
        map: impl FnMut(R) -> Result<T>,
    ) -> Result<Self> {
        let page = Page::from_rows(rows, limit, key, map);
        Ok(Page {
            items: page.items.into_iter().collect::<Result<_>>()?,
            next_cursor: page.next_cursor,
        })
    }

    /// Like `from_rows`, with the cursor made by `cursor` from the page's last row.
    pub fn with_cursor<R>(
        mut rows: Vec<R>,
        limit: u64,
        cursor: impl Fn(&R) -> String,
        map: impl FnMut(R) -> T,
    ) -> Self {
        let more = rows.len() as u64 > limit;
        rows.truncate(limit as usize);
        let next_cursor = if more { rows.last().map(cursor) } else { None };
        Self {
            items: rows.into_iter().map(map).collect(),
            next_cursor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_cursors_are_validated() {
        let ok = |limit, cursor: Option<&str>| {
            PageParams {
                limit,
                cursor: cursor.map(str::to_owned),
            }
            .validate()
            .is_ok()
        };
        assert!(ok(None, None));
        assert!(ok(Some(1), None) && ok(Some(200), None));
        assert!(!ok(Some(0), None) && !ok(Some(201), None));
        assert!(!ok(None, Some("garbage!")));
        assert!(ok(None, Some(&encode(Uuid::now_v7()))));
        assert!(
            ok(None, Some("zzzzzzzzzzzzzzzzzzzzzz")),
            "any 22 base64url characters"
        );
    }

    #[test]
    fn keyed_cursors_round_trip_and_any_32_characters_decode() {
        let id = Uuid::now_v7();
        for value in [i64::MIN, -1, 0, 42, i64::MAX] {
            let c = encode_keyed(value, id);
            assert_eq!(c.len(), 32);
            assert_eq!(decode_keyed(&c), Some((value, id)));
        }
        assert!(decode_keyed(&"_".repeat(32)).is_some());
        assert!(decode_keyed(&"A".repeat(22)).is_none());
    }

    #[test]
    fn page_reports_more_only_when_there_is_more() {
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        let full = Page::<String>::from_rows(ids.clone(), 2, |id| *id, |id| id.to_string());
        assert_eq!(full.items.len(), 2);
        assert_eq!(decode(full.next_cursor.as_deref().unwrap()), Some(ids[1]));
        let last = Page::<String>::from_rows(ids, 3, |id| *id, |id| id.to_string());
        assert!(last.next_cursor.is_none());
    }
}
