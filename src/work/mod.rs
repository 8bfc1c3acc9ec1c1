//! The work core: projects, tickets (with assignees, labels and the status state machine),
//! comments, attachments, the ticket timeline and watchers.
//!
//! Writes take a [`TenantTx`](crate::store::TenantTx) opened by the caller and do not commit:
//! the caller (the HTTP write path) adds the idempotency record to the same transaction and
//! commits once, so a change, its timeline entry, its audit entry and its outbox events exist
//! together or not at all.

pub mod attachments;
pub mod comments;
mod entity;
pub mod import;
pub mod projects;
pub mod reports;
pub mod retention;
pub mod search;
pub mod sla;
pub mod status;
pub mod structure;
pub mod tickets;
pub mod timeline;
pub mod views;
pub mod watchers;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use crate::error::{Error, Result};
pub use status::Status;

pub(crate) use crate::store::{now, to_micros};

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Low,
    Medium,
    High,
    Urgent,
}

impl Priority {
    pub const ALL: [Priority; 4] = [
        Priority::Low,
        Priority::Medium,
        Priority::High,
        Priority::Urgent,
    ];

    /// Stored as its rank, so sorting by priority is sorting by the column.
    fn rank(self) -> i16 {
        match self {
            Priority::Low => 1,
            Priority::Medium => 2,
            Priority::High => 3,
            Priority::Urgent => 4,
        }
    }

    pub(crate) fn from_rank(rank: i16) -> Result<Priority> {
        Priority::ALL
            .into_iter()
            .find(|p| p.rank() == rank)
            .ok_or_else(|| Error::internal(anyhow::anyhow!("stored priority {rank} is unknown")))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Medium => "medium",
            Priority::High => "high",
            Priority::Urgent => "urgent",
        }
    }
}

/// The version a conditional change is based on (`If-Match`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expected {
    /// `If-Match: *`: whatever the current version is.
    Any,
    /// One of these versions.
    Versions(Vec<i64>),
}

impl Expected {
    pub fn check(&self, what: &'static str, current: i64) -> Result<()> {
        match self {
            Expected::Any => Ok(()),
            Expected::Versions(v) if v.contains(&current) => Ok(()),
            Expected::Versions(v) => Err(Error::VersionMismatch {
                what,
                expected: v.first().copied().unwrap_or_default(),
                current,
            }),
        }
    }
}

/// The instants a client may send: years 1–9999. Both databases store and order every one of
/// them alike (SQLite compares timestamps as text, so a five-digit year would sort before
/// 1999), and every one fits in a cursor.
fn in_range<E: serde::de::Error>(t: DateTime<Utc>) -> std::result::Result<DateTime<Utc>, E> {
    use chrono::Datelike as _;
    if (1..=9999).contains(&t.year()) {
        Ok(t)
    } else {
        Err(E::custom("must be an instant in the years 1 to 9999"))
    }
}

/// `deserialize_with` for optional dates (`#[serde(default, …)]`): years 1–9999, as for
/// instants.
pub(crate) fn date<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<chrono::NaiveDate>, D::Error> {
    use chrono::Datelike as _;
    Option::<chrono::NaiveDate>::deserialize(d)?
        .map(|day| {
            if (1..=9999).contains(&day.year()) {
                Ok(day)
            } else {
                Err(serde::de::Error::custom(
                    "must be a date in the years 1 to 9999",
                ))
            }
        })
        .transpose()
}

/// `deserialize_with` for PATCH dates where `null` clears (see [`nullable`]).
pub(crate) fn nullable_date<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Option<chrono::NaiveDate>>, D::Error> {
    date(d).map(Some)
}

/// `deserialize_with` for optional instants (`#[serde(default, …)]`).
pub(crate) fn instant<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<DateTime<Utc>>, D::Error> {
    Option::<DateTime<Utc>>::deserialize(d)?
        .map(in_range)
        .transpose()
}

/// `deserialize_with` for PATCH instants where `null` clears (see [`nullable`]).
pub(crate) fn nullable_instant<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Option<DateTime<Utc>>>, D::Error> {
    instant(d).map(Some)
}

/// For PATCH fields where `null` means "clear": absent → `None`, `null` → `Some(None)`.
pub(crate) fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> std::result::Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}
