//! Structure between tickets: subtasks (a parent and its children), links (`blocks`,
//! `relates`, `duplicates`), merging one ticket into another (and undoing it), splitting
//! comments off into a new ticket, and changing many tickets at once. Each change goes through
//! the ticket write path (`work::tickets`), so it gets its version, timeline entry and events.

pub mod bulk;
pub mod links;
pub mod merge;
pub mod split;
pub mod subtasks;
