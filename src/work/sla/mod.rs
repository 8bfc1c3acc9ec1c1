//! SLAs: business calendars, policies per priority (and project), and each ticket's clocks
//! (first response, next response, resolution) counted in business time, paused while the
//! ticket waits on the customer. The clocks are planned in the ticket's own write transaction;
//! [`timers`] announces warnings and breaches from an index on the next instant to check.
//!
//! SLA lives inside `work` because its clocks change with every ticket write, in that write's
//! transaction (see docs/adr/0018-sla-clocks.md).

pub mod calendar;
pub mod calendars;
pub mod clocks;
pub mod policies;
pub mod timers;

pub use clocks::{ClockKind, ClockState, SlaClock, TicketSla};
