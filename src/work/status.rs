//! The ticket state machine: which status may follow which, and what a move stamps. Every
//! status change (a PATCH, `complete`, `reopen`) goes through [`transition`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Open,
    InProgress,
    Pending,
    Resolved,
    Closed,
    Cancelled,
}

use Status::*;

/// The allowed moves. A closed or cancelled ticket only reopens; nothing jumps from `closed`
/// straight back into work.
const MOVES: [(Status, &[Status]); 6] = [
    (Open, &[InProgress, Pending, Resolved, Cancelled]),
    (InProgress, &[Open, Pending, Resolved, Cancelled]),
    (Pending, &[Open, InProgress, Resolved, Cancelled]),
    (Resolved, &[Open, InProgress, Closed]),
    (Closed, &[Open]),
    (Cancelled, &[Open]),
];

impl Status {
    pub const ALL: [Status; 6] = [Open, InProgress, Pending, Resolved, Closed, Cancelled];
    /// What counts as done in a project's and a parent's progress (the inactive statuses).
    pub const DONE: [Status; 3] = [Resolved, Closed, Cancelled];

    pub fn as_str(self) -> &'static str {
        match self {
            Open => "open",
            InProgress => "in_progress",
            Pending => "pending",
            Resolved => "resolved",
            Closed => "closed",
            Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// The statuses a ticket in this one may move to.
    pub fn next(self) -> &'static [Status] {
        MOVES
            .iter()
            .find(|(from, _)| *from == self)
            .map(|(_, to)| *to)
            .unwrap_or(&[])
    }

    /// Still being worked on (not resolved, closed or cancelled).
    pub fn is_active(self) -> bool {
        matches!(self, Open | InProgress | Pending)
    }

    /// Counted as done in progress: one of [`Status::DONE`].
    pub fn is_done(self) -> bool {
        Status::DONE.contains(&self)
    }
}

/// The timestamps the machine owns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stamps {
    pub resolved_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
}

/// Moves a ticket from `from` to `to` at `now`, or explains which moves exist. Resolving stamps
/// `resolved_at`; closing or cancelling stamps `closed_at`; going back into work clears both.
pub fn transition(from: Status, to: Status, stamps: Stamps, now: DateTime<Utc>) -> Result<Stamps> {
    if !from.next().contains(&to) {
        let allowed: Vec<&'static str> = from.next().iter().map(|s| s.as_str()).collect();
        return Err(Error::InvalidTransition {
            detail: format!(
                "a ticket cannot move from {} to {}; allowed: {}",
                from.as_str(),
                to.as_str(),
                allowed.join(", ")
            ),
            allowed,
        });
    }
    Ok(match to {
        Resolved => Stamps {
            resolved_at: Some(now),
            closed_at: None,
        },
        Closed => Stamps {
            resolved_at: stamps.resolved_at,
            closed_at: Some(now),
        },
        Cancelled => Stamps {
            resolved_at: None,
            closed_at: Some(now),
        },
        Open | InProgress | Pending => Stamps::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every pair of statuses, against the table written out independently.
    #[test]
    fn every_move_is_exactly_as_specified() {
        // from → to: open, in_progress, pending, resolved, closed, cancelled
        let expected: [(Status, [bool; 6]); 6] = [
            (Open, [false, true, true, true, false, true]),
            (InProgress, [true, false, true, true, false, true]),
            (Pending, [true, true, false, true, false, true]),
            (Resolved, [true, true, false, false, true, false]),
            (Closed, [true, false, false, false, false, false]),
            (Cancelled, [true, false, false, false, false, false]),
        ];
        let now = Utc::now();
        let earlier = now - chrono::Duration::hours(1);
        for (from, row) in expected {
            for (to, ok) in Status::ALL.into_iter().zip(row) {
                let before = Stamps {
                    resolved_at: Some(earlier),
                    closed_at: None,
                };
                match transition(from, to, before, now) {
                    Ok(after) => {
                        assert!(ok, "{from:?} -> {to:?} should be refused");
                        assert_eq!(after.resolved_at.is_some(), matches!(to, Resolved | Closed));
                        assert_eq!(
                            after.closed_at,
                            matches!(to, Closed | Cancelled).then_some(now)
                        );
                        if to == Resolved {
                            assert_eq!(after.resolved_at, Some(now));
                        }
                        if to == Closed {
                            assert_eq!(
                                after.resolved_at,
                                Some(earlier),
                                "closing keeps resolved_at"
                            );
                        }
                    }
                    Err(Error::InvalidTransition { allowed, detail }) => {
                        assert!(!ok, "{from:?} -> {to:?} should be allowed");
                        let want: Vec<&str> = from.next().iter().map(|s| s.as_str()).collect();
                        assert_eq!(allowed, want);
                        assert!(detail.contains(to.as_str()), "{detail}");
                    }
                    Err(other) => panic!("{other:?}"),
                }
            }
        }
    }

    #[test]
    fn closed_never_goes_straight_back_to_work() {
        assert!(transition(Closed, InProgress, Stamps::default(), Utc::now()).is_err());
        assert!(transition(Closed, Open, Stamps::default(), Utc::now()).is_ok());
    }

    #[test]
    fn names_round_trip() {
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(Status::parse("done"), None);
    }
}
