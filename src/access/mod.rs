//! The permission matrix. Every handler asks `authorize(ctx, action)`; nothing else decides
//! whether a role may act.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, Result};

pub mod project;

/// Roles within one organisation. `owner ⊃ admin ⊃ manager ⊃ agent ⊃ viewer`; `requester` is a
/// customer outside that chain who sees only what they requested.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Owner,
    Admin,
    Manager,
    Agent,
    Viewer,
    Requester,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::Owner,
        Role::Admin,
        Role::Manager,
        Role::Agent,
        Role::Viewer,
        Role::Requester,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Manager => "manager",
            Role::Agent => "agent",
            Role::Viewer => "viewer",
            Role::Requester => "requester",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Position in the staff chain; a requester ranks below every staff role.
    fn rank(self) -> u8 {
        match self {
            Role::Owner => 5,
            Role::Admin => 4,
            Role::Manager => 3,
            Role::Agent => 2,
            Role::Viewer => 1,
            Role::Requester => 0,
        }
    }

    /// True when this role includes every right of `other`.
    pub fn at_least(self, other: Role) -> bool {
        self.rank() >= other.rank()
    }

    /// The stronger of the two (a requester counts below every staff role).
    pub fn max_with(self, other: Role) -> Role {
        if self.at_least(other) { self } else { other }
    }
}

/// Who is acting, in which organisation, with which role. Built only by the authentication
/// layer (from a verified token and a live session) or by a worker from an event's own org.
#[derive(Clone, Debug)]
pub struct TenantCtx {
    pub org_id: Uuid,
    pub user_id: Uuid,
    pub role: Role,
    pub session_id: Option<Uuid>,
    /// The ceiling of an API token's rights (`None`: a person signed in, bounded by the role
    /// alone).
    pub scope: Option<Scope>,
    /// Set when the caller is a signed access token whose session and role the database has
    /// still to confirm: every transaction opened for this caller does so in the statement that
    /// enters the tenant (ADR 0021).
    pub(crate) proof: Option<SessionProof>,
    /// The organisation was deleted: its owner, signed in during the grace period, may read it,
    /// restore it and manage their own account, nothing else.
    pub closed: bool,
}

/// A signed access token's claim that its session is live and its role current. The store
/// confirms it inside each transaction the request opens (`store::Db::read`/`write`), and the
/// HTTP layer refuses to answer a request whose claim no transaction confirmed.
#[derive(Clone, Debug, Default)]
pub struct SessionProof(Arc<AtomicBool>);

impl SessionProof {
    pub fn confirmed(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    pub(crate) fn confirm(&self) {
        self.0.store(true, Ordering::Release);
    }
}

impl TenantCtx {
    /// A caller whose access is already established (a worker acting for an event's
    /// organisation, an API token looked up, a test planning queries).
    pub fn authenticated(
        org_id: Uuid,
        user_id: Uuid,
        role: Role,
        session_id: Option<Uuid>,
    ) -> Self {
        Self {
            org_id,
            user_id,
            role,
            session_id,
            scope: None,
            proof: None,
            closed: false,
        }
    }

    /// The person an access token names, as it claims: session `session_id`, with `role`, in
    /// an organisation `closed` or not. The first transaction opened for them checks the
    /// session and the role; a closed organisation's sessions are those begun after it closed.
    pub(crate) fn claimed(
        org_id: Uuid,
        user_id: Uuid,
        role: Role,
        session_id: Uuid,
        closed: bool,
    ) -> Self {
        Self {
            proof: Some(SessionProof::default()),
            closed,
            ..Self::authenticated(org_id, user_id, role, Some(session_id))
        }
    }

    /// The claim still to be confirmed, if any.
    pub fn proof(&self) -> Option<&SessionProof> {
        self.proof.as_ref()
    }

    /// The owner of API token `scope` acting through it.
    pub(crate) fn through_token(org_id: Uuid, user_id: Uuid, role: Role, scope: Scope) -> Self {
        Self {
            scope: Some(scope),
            ..Self::authenticated(org_id, user_id, role, None)
        }
    }
}

/// What an API token may do at most, whatever its owner's role: `read` only reads (safe
/// methods only), `write` also changes things, `admin` also administers the organisation.
/// Each includes the ones before it.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Read,
    Write,
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        [Scope::Read, Scope::Write, Scope::Admin]
            .into_iter()
            .find(|scope| scope.as_str() == s)
    }
}

/// Everything a caller can ask to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    OrgRead,
    OrgUpdate,
    UserList,
    UserRead,
    UserCreate,
    UserUpdate,
    UserDelete,
    AuditRead,
    /// Delete the organisation (closed at once, purged after the grace period).
    OrgDelete,
    /// Bring a deleted organisation back within its grace period.
    OrgRestore,
    /// Export everything the organisation holds (no secrets).
    OrgExport,
    /// Pay for a plan: Stripe checkout and the billing portal.
    BillingManage,
    /// List and read projects (everyone: requesters file tickets into them).
    ProjectRead,
    /// Create, rename and archive projects.
    ProjectManage,
    /// A project's activity feed.
    ProjectActivity,
    /// Read tickets, their comments and timelines (requesters: only their own tickets, and
    /// never internal notes).
    TicketRead,
    /// File a ticket (requesters: for themselves, with title, description and priority only).
    TicketCreate,
    /// Change a ticket's fields, status and assignees.
    TicketUpdate,
    /// Soft-delete a ticket.
    TicketDelete,
    /// Bring a deleted ticket back, and see deleted tickets.
    TicketRestore,
    /// Comment on a ticket (requesters: on their own tickets).
    CommentCreate,
    /// Write internal notes and read them.
    CommentInternal,
    /// Edit or delete other people's comments.
    CommentModerate,
    /// See the organisation's outbox events and requeue dead ones.
    EventsManage,
    /// The organisation's mail settings (inbound address, IMAP mailbox, acknowledgement) and
    /// its mail and ingest logs.
    MailManage,
    /// The organisation's webhooks, their secrets and delivery logs.
    WebhooksManage,
    /// Read business calendars and SLA policies (staff: they work to them).
    SlaRead,
    /// Create and change business calendars and SLA policies.
    SlaManage,
    /// Reports on open work, throughput and SLA attainment (managers and above).
    ReportRead,
    /// The caller's own account and sessions: switching organisation, signing out (everywhere),
    /// the password, second factors, API tokens, joining by invitation. Everyone's, but only as
    /// a person signed in: no API token reaches it, whatever its scope.
    AccountManage,
}

impl Action {
    pub const ALL: [Action; 30] = [
        Action::OrgRead,
        Action::OrgUpdate,
        Action::UserList,
        Action::UserRead,
        Action::UserCreate,
        Action::UserUpdate,
        Action::UserDelete,
        Action::AuditRead,
        Action::OrgDelete,
        Action::OrgRestore,
        Action::OrgExport,
        Action::BillingManage,
        Action::ProjectRead,
        Action::ProjectManage,
        Action::ProjectActivity,
        Action::TicketRead,
        Action::TicketCreate,
        Action::TicketUpdate,
        Action::TicketDelete,
        Action::TicketRestore,
        Action::CommentCreate,
        Action::CommentInternal,
        Action::CommentModerate,
        Action::EventsManage,
        Action::MailManage,
        Action::WebhooksManage,
        Action::SlaRead,
        Action::SlaManage,
        Action::ReportRead,
        Action::AccountManage,
    ];
}

impl Action {
    /// The token scope an action needs: reading, changing, or administering; `None` when no API
    /// token may do it at all (a token that could reach the account would become a session that
    /// outlives its revocation).
    pub fn scope(self) -> Option<Scope> {
        use Action::*;
        match self {
            OrgRead | UserList | UserRead | ProjectRead | ProjectActivity | TicketRead
            | SlaRead | ReportRead => Some(Scope::Read),
            ProjectManage | TicketCreate | TicketUpdate | TicketDelete | CommentCreate
            | CommentInternal => Some(Scope::Write),
            OrgUpdate | UserCreate | UserUpdate | UserDelete | AuditRead | TicketRestore
            | CommentModerate | EventsManage | MailManage | WebhooksManage | SlaManage => {
                Some(Scope::Admin)
            }
            AccountManage | OrgDelete | OrgRestore | OrgExport | BillingManage => None,
        }
    }
}

/// The matrix: may `role` perform `action`?
pub fn allowed(role: Role, action: Action) -> bool {
    use Action::*;
    match action {
        OrgRead | ProjectRead | TicketRead | AccountManage => true,
        TicketCreate | CommentCreate => role == Role::Requester || role.at_least(Role::Agent),
        UserList | UserRead | ProjectActivity | SlaRead => role.at_least(Role::Viewer),
        TicketUpdate | CommentInternal => role.at_least(Role::Agent),
        ProjectManage | TicketDelete | ReportRead => role.at_least(Role::Manager),
        OrgUpdate | UserCreate | UserUpdate | UserDelete | AuditRead | TicketRestore
        | CommentModerate | EventsManage | MailManage | WebhooksManage | SlaManage | OrgExport => {
            role.at_least(Role::Admin)
        }
        OrgDelete | OrgRestore | BillingManage => role == Role::Owner,
    }
}

/// Internal notes are for staff: every role but requester reads them (writing them is
/// `CommentInternal`).
pub fn sees_internal_notes(role: Role) -> bool {
    role.at_least(Role::Viewer)
}

/// Requesters see only the tickets they requested; staff see every ticket of the organisation.
pub fn sees_only_own_tickets(role: Role) -> bool {
    role == Role::Requester
}

pub fn authorize(ctx: &TenantCtx, action: Action) -> Result<()> {
    authorize_scope(ctx, action)?;
    if allowed(ctx.role, action) {
        Ok(())
    } else {
        Err(Error::forbidden(format!(
            "your role ({}) may not do this",
            ctx.role.as_str()
        )))
    }
}

/// An API token's scope is enough for `action` (a person signed in has no scope to check), and
/// the organisation is open for it.
/// The role is judged apart: by the matrix, or in a project by `project::decide`.
pub fn authorize_scope(ctx: &TenantCtx, action: Action) -> Result<()> {
    if ctx.closed
        && !matches!(
            action,
            Action::OrgRead | Action::OrgRestore | Action::AccountManage
        )
    {
        return Err(Error::Forbidden {
            code: "organization_deleted",
            detail: "this organization was deleted; an owner may restore it, nothing else".into(),
        });
    }
    if let Some(scope) = ctx.scope {
        match action.scope() {
            None => return Err(api_token_not_allowed()),
            Some(needed) if scope < needed => return Err(insufficient_scope(needed)),
            Some(_) => {}
        }
    }
    Ok(())
}

/// The 403 for an API token whose scopes do not reach what it asked for.
pub fn insufficient_scope(needed: Scope) -> Error {
    Error::Forbidden {
        code: "insufficient_scope",
        detail: format!(
            "this API token's scopes do not include `{}`",
            needed.as_str()
        ),
    }
}

/// The 403 for an API token on an account or session endpoint.
pub fn api_token_not_allowed() -> Error {
    Error::Forbidden {
        code: "api_token_not_allowed",
        detail: "API tokens cannot reach account and session endpoints (switching organisation, \
                 signing out, passwords, second factors, API tokens, invitations); sign in as a \
                 person"
            .into(),
    }
}

/// A change of someone's role or membership, as the role rules see it.
#[derive(Clone, Copy, Debug)]
pub struct RoleChange {
    pub actor: Role,
    pub actor_is_target: bool,
    pub current: Role,
    /// `None` removes or deactivates the member.
    pub new: Option<Role>,
}

/// Rules for changing roles, beyond the matrix: nobody raises their own role, only owners make
/// or touch owners, and an admin cannot hand out more than they have. (That the last owner
/// stays is checked against the database by the caller.)
pub fn check_role_change(change: RoleChange) -> Result<()> {
    let RoleChange {
        actor,
        actor_is_target,
        current,
        new,
    } = change;
    if !allowed(actor, Action::UserUpdate) {
        return Err(Error::forbidden(
            "only admins and owners change people's roles",
        ));
    }
    if let Some(new) = new {
        if actor_is_target && new.rank() > current.rank() {
            return Err(Error::forbidden("nobody can raise their own role"));
        }
        check_grant(actor, new)?;
    }
    if current == Role::Owner && actor != Role::Owner {
        return Err(Error::forbidden(
            "only owners can change or remove an owner",
        ));
    }
    Ok(())
}

/// May `actor` hand `role` to someone (a new member or an existing one)?
pub fn check_grant(actor: Role, role: Role) -> Result<()> {
    if role == Role::Owner && actor != Role::Owner {
        return Err(Error::forbidden("only owners can make someone an owner"));
    }
    if !actor.at_least(role) {
        return Err(Error::forbidden("you cannot grant a role above your own"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole matrix written out, so any change to it shows up here.
    #[test]
    fn matrix_is_exactly_as_specified() {
        use Action::*;
        // owner, admin, manager, agent, viewer, requester
        let expected: [(Action, [bool; 6]); 30] = [
            (OrgRead, [true, true, true, true, true, true]),
            (OrgUpdate, [true, true, false, false, false, false]),
            (UserList, [true, true, true, true, true, false]),
            (UserRead, [true, true, true, true, true, false]),
            (UserCreate, [true, true, false, false, false, false]),
            (UserUpdate, [true, true, false, false, false, false]),
            (UserDelete, [true, true, false, false, false, false]),
            (AuditRead, [true, true, false, false, false, false]),
            (OrgDelete, [true, false, false, false, false, false]),
            (OrgRestore, [true, false, false, false, false, false]),
            (OrgExport, [true, true, false, false, false, false]),
            (BillingManage, [true, false, false, false, false, false]),
            (ProjectRead, [true, true, true, true, true, true]),
            (ProjectManage, [true, true, true, false, false, false]),
            (ProjectActivity, [true, true, true, true, true, false]),
            (TicketRead, [true, true, true, true, true, true]),
            (TicketCreate, [true, true, true, true, false, true]),
            (TicketUpdate, [true, true, true, true, false, false]),
            (TicketDelete, [true, true, true, false, false, false]),
            (TicketRestore, [true, true, false, false, false, false]),
            (CommentCreate, [true, true, true, true, false, true]),
            (CommentInternal, [true, true, true, true, false, false]),
            (CommentModerate, [true, true, false, false, false, false]),
            (EventsManage, [true, true, false, false, false, false]),
            (MailManage, [true, true, false, false, false, false]),
            (WebhooksManage, [true, true, false, false, false, false]),
            (SlaRead, [true, true, true, true, true, false]),
            (SlaManage, [true, true, false, false, false, false]),
            (ReportRead, [true, true, true, false, false, false]),
            (AccountManage, [true, true, true, true, true, true]),
        ];
        assert_eq!(expected.len(), Action::ALL.len());
        for (action, row) in expected {
            for (role, want) in Role::ALL.into_iter().zip(row) {
                assert_eq!(allowed(role, action), want, "{role:?} × {action:?}");
            }
        }
    }

    /// In a deleted organisation its owner may read it, restore it and manage their account.
    #[test]
    fn a_closed_organization_allows_restoring_only() {
        let ctx = TenantCtx::claimed(Uuid::nil(), Uuid::nil(), Role::Owner, Uuid::nil(), true);
        for action in Action::ALL {
            let open = matches!(
                action,
                Action::OrgRead | Action::OrgRestore | Action::AccountManage
            );
            assert_eq!(authorize(&ctx, action).is_ok(), open, "{action:?}");
        }
    }

    /// Which scope each action needs, written out; a token's scope caps even an owner's role.
    #[test]
    fn token_scopes_cap_the_role() {
        use Action::*;
        let reads = [
            OrgRead,
            UserList,
            UserRead,
            ProjectRead,
            ProjectActivity,
            TicketRead,
            SlaRead,
            ReportRead,
        ];
        let admin = [
            OrgUpdate,
            UserCreate,
            UserUpdate,
            UserDelete,
            AuditRead,
            TicketRestore,
            CommentModerate,
            EventsManage,
            MailManage,
            WebhooksManage,
            SlaManage,
        ];
        // No token reaches the account, whatever its scope.
        let sessions_only = [
            AccountManage,
            OrgDelete,
            OrgRestore,
            OrgExport,
            BillingManage,
        ];
        for action in Action::ALL {
            let needed = if sessions_only.contains(&action) {
                None
            } else if reads.contains(&action) {
                Some(Scope::Read)
            } else if admin.contains(&action) {
                Some(Scope::Admin)
            } else {
                Some(Scope::Write)
            };
            assert_eq!(action.scope(), needed, "{action:?}");
            for scope in [Scope::Read, Scope::Write, Scope::Admin] {
                let within = needed.is_some_and(|needed| scope >= needed);
                let owner = TenantCtx::through_token(Uuid::nil(), Uuid::nil(), Role::Owner, scope);
                let answer = authorize(&owner, action);
                assert_eq!(answer.is_ok(), within, "{action:?} {scope:?}");
                if needed.is_none() {
                    assert!(
                        matches!(
                            answer,
                            Err(Error::Forbidden {
                                code: "api_token_not_allowed",
                                ..
                            })
                        ),
                        "{action:?} {scope:?}"
                    );
                }
                // The role still applies below the scope.
                let viewer =
                    TenantCtx::through_token(Uuid::nil(), Uuid::nil(), Role::Viewer, scope);
                assert_eq!(
                    authorize(&viewer, action).is_ok(),
                    within && allowed(Role::Viewer, action),
                    "viewer {action:?} {scope:?}"
                );
            }
            // A person signed in is bounded by the role alone.
            let person = TenantCtx::authenticated(Uuid::nil(), Uuid::nil(), Role::Viewer, None);
            assert_eq!(
                authorize(&person, action).is_ok(),
                allowed(Role::Viewer, action),
                "{action:?}"
            );
        }
        for scope in [Scope::Read, Scope::Write, Scope::Admin] {
            assert_eq!(Scope::parse(scope.as_str()), Some(scope));
        }
    }

    #[test]
    fn staff_chain_is_ordered() {
        for pair in Role::ALL[..5].windows(2) {
            assert!(pair[0].at_least(pair[1]) && !pair[1].at_least(pair[0]));
        }
        assert!(!Role::Requester.at_least(Role::Viewer));
    }

    #[test]
    fn role_names_round_trip() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("root"), None);
    }

    fn change(actor: Role, self_: bool, current: Role, new: Option<Role>) -> bool {
        check_role_change(RoleChange {
            actor,
            actor_is_target: self_,
            current,
            new,
        })
        .is_ok()
    }

    fn combinations() -> impl Iterator<Item = (Role, bool, Role, Option<Role>)> {
        Role::ALL.into_iter().flat_map(|actor| {
            Role::ALL.into_iter().flat_map(move |current| {
                Role::ALL
                    .map(Some)
                    .into_iter()
                    .chain([None])
                    .flat_map(move |new| {
                        [false, true]
                            .into_iter()
                            .filter(move |self_| !*self_ || actor == current)
                            .map(move |self_| (actor, self_, current, new))
                    })
            })
        })
    }

    #[test]
    fn role_change_rules_enumerated() {
        for (actor, self_, current, new) in combinations() {
            let ok = change(actor, self_, current, new);
            let case = format!("{actor:?} self={self_} {current:?} -> {new:?}");
            // What is never allowed.
            if !actor.at_least(Role::Admin) {
                assert!(!ok, "only admins and owners change roles: {case}");
            }
            if self_ && new.is_some_and(|n| n.rank() > current.rank()) {
                assert!(!ok, "nobody raises their own role: {case}");
            }
            if (new == Some(Role::Owner) || current == Role::Owner) && actor != Role::Owner {
                assert!(!ok, "only owners make or touch owners: {case}");
            }
            if new.is_some_and(|n| !actor.at_least(n)) {
                assert!(!ok, "nobody grants above their own role: {case}");
            }
            // What is always allowed.
            if actor == Role::Owner && !self_ {
                assert!(ok, "owners manage everyone else: {case}");
            }
            if actor == Role::Admin && current != Role::Owner && new != Some(Role::Owner) && !self_
            {
                assert!(ok, "admins manage non-owners: {case}");
            }
            if actor.at_least(Role::Admin)
                && self_
                && new.is_none_or(|n| n.rank() <= current.rank())
            {
                assert!(ok, "admins and owners may step down: {case}");
            }
        }
        // The headline cases, spelled out.
        assert!(!change(Role::Admin, true, Role::Admin, Some(Role::Owner)));
        assert!(!change(Role::Admin, false, Role::Agent, Some(Role::Owner)));
        assert!(change(Role::Owner, false, Role::Agent, Some(Role::Owner)));
        assert!(!change(Role::Admin, false, Role::Owner, None));
        assert!(change(Role::Admin, false, Role::Agent, Some(Role::Manager)));
        assert!(!change(
            Role::Manager,
            false,
            Role::Agent,
            Some(Role::Viewer)
        ));
    }
}
