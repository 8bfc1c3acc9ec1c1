//! Project access, beside the org matrix: who sees a project and what they may do in it. One
//! function ([`decide`]) answers "may this person do this in this project"; the store applies
//! the same rule to every query of a walled person's transaction ([`walled_viewer`],
//! [`hidden_projects_sql`]), and on PostgreSQL row-level security carries it too.

use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query, SelectStatement};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Action, Role, TenantCtx, allowed};
use crate::error::{Error, Result};

/// Who may see a project: everyone in the organisation, or only its members (and the
/// organisation's owners and admins).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    Org,
    Members,
}

impl Visibility {
    pub const ALL: [Visibility; 2] = [Visibility::Org, Visibility::Members];

    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Org => "org",
            Visibility::Members => "members",
        }
    }

    pub fn parse(s: &str) -> Option<Visibility> {
        Visibility::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// A person's role in one project: `admin` manages the project, its members and its settings;
/// `member` works its tickets as their org role allows; `viewer` only reads, whatever their org
/// role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProjectRole {
    Admin,
    Member,
    Viewer,
}

impl ProjectRole {
    pub const ALL: [ProjectRole; 3] =
        [ProjectRole::Admin, ProjectRole::Member, ProjectRole::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            ProjectRole::Admin => "admin",
            ProjectRole::Member => "member",
            ProjectRole::Viewer => "viewer",
        }
    }

    pub fn parse(s: &str) -> Option<ProjectRole> {
        ProjectRole::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// The answer for one action in one project.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// The person sees the project but may not do this (403).
    Forbidden,
    /// The project does not exist for this person (404).
    Hidden,
}

/// Staff whom project membership walls: managers, agents and viewers. Owners and admins see
/// every project; requesters see their own tickets wherever they are, and nothing else.
pub fn walled_role(role: Role) -> bool {
    matches!(role, Role::Manager | Role::Agent | Role::Viewer)
}

/// The person whose project memberships bound what a transaction for `ctx` may see, if any.
pub fn walled_viewer(ctx: &TenantCtx) -> Option<Uuid> {
    walled_role(ctx.role).then_some(ctx.user_id)
}

/// Actions about the project itself, or filing into it (as opposed to acting on one ticket).
fn about_the_project(action: Action) -> bool {
    matches!(
        action,
        Action::ProjectRead
            | Action::ProjectManage
            | Action::ProjectActivity
            | Action::TicketCreate
    )
}

/// Actions that only read.
fn reads(action: Action) -> bool {
    matches!(
        action,
        Action::ProjectRead | Action::ProjectActivity | Action::TicketRead
    )
}

/// May a person with `org_role` and `project_role` (none: not a member) do `action` in a
/// project of `visibility`?
pub fn decide(
    org_role: Role,
    visibility: Visibility,
    project_role: Option<ProjectRole>,
    action: Action,
) -> Decision {
    let by_matrix = |ok: bool| {
        if ok {
            Decision::Allowed
        } else {
            Decision::Forbidden
        }
    };
    if org_role == Role::Requester {
        // A private project is not there for customers; their own tickets in it still are.
        if visibility == Visibility::Members && about_the_project(action) {
            return Decision::Hidden;
        }
        return by_matrix(allowed(org_role, action));
    }
    if !walled_role(org_role) {
        return by_matrix(allowed(org_role, action));
    }
    match project_role {
        None if visibility == Visibility::Members => Decision::Hidden,
        Some(ProjectRole::Viewer) => by_matrix(reads(action) && allowed(org_role, action)),
        Some(ProjectRole::Admin) if action == Action::ProjectManage => Decision::Allowed,
        _ => by_matrix(allowed(org_role, action)),
    }
}

/// [`decide`] as a result: 404 `what` when hidden, 403 when forbidden.
pub fn check(
    org_role: Role,
    visibility: Visibility,
    project_role: Option<ProjectRole>,
    action: Action,
    what: &'static str,
) -> Result<()> {
    match decide(org_role, visibility, project_role, action) {
        Decision::Allowed => Ok(()),
        Decision::Hidden => Err(Error::NotFound(what)),
        Decision::Forbidden => Err(match project_role {
            Some(ProjectRole::Viewer) => Error::forbidden("project viewers only read"),
            _ => Error::forbidden(format!("your role ({}) may not do this", org_role.as_str())),
        }),
    }
}

/// The ids of the projects hidden from `viewer` in `org_id` (private projects they are not a
/// member of), for `column NOT IN (…)`, with both ids as parameters: one statement text for
/// everyone, so the database prepares and plans it once, not once per person.
pub fn hidden_projects(org_id: Uuid, viewer: Uuid) -> SelectStatement {
    let (p, m) = (Alias::new("p"), Alias::new("m"));
    let col = |table: &Alias, name: &str| Expr::col((table.clone(), Alias::new(name)));
    Query::select()
        .column((p.clone(), Alias::new("id")))
        .from_as(Alias::new("projects"), p.clone())
        .and_where(col(&p, "org_id").eq(org_id))
        .and_where(col(&p, "visibility").eq(Visibility::Members.as_str()))
        .and_where(
            Expr::exists(
                Query::select()
                    .expr(Expr::val(1))
                    .from_as(Alias::new("project_members"), m.clone())
                    .and_where(col(&m, "org_id").equals((p.clone(), Alias::new("org_id"))))
                    .and_where(col(&m, "project_id").equals((p.clone(), Alias::new("id"))))
                    .and_where(col(&m, "user_id").eq(viewer))
                    .to_owned(),
            )
            .not(),
        )
        .to_owned()
}

/// The same as raw SQL, with the organisation and the viewer given as SQL expressions (a
/// column, a placeholder, a literal).
fn hidden_projects_with(org: &str, viewer: &str) -> String {
    format!(
        "SELECT p.id FROM projects p WHERE p.org_id = {org} AND p.visibility = 'members' \
         AND NOT EXISTS (SELECT 1 FROM project_members m WHERE m.org_id = p.org_id \
         AND m.project_id = p.id AND m.user_id = {viewer})"
    )
}

/// [`hidden_projects_with`] the ids written as literals of the backend (they come from
/// `Uuid`s, so nothing can be injected), for statements rare enough to be planned each time.
pub fn hidden_projects_sql(postgres: bool, org_id: Uuid, viewer: Uuid) -> String {
    let literal = |id: Uuid| {
        if postgres {
            format!("'{id}'::uuid")
        } else {
            format!("X'{}'", id.simple())
        }
    };
    hidden_projects_with(&literal(org_id), &literal(viewer))
}

/// ` AND column NOT IN (hidden projects)` for a walled `viewer`, or nothing.
pub fn wall_sql(postgres: bool, org_id: Uuid, viewer: Option<Uuid>, column: &str) -> String {
    match viewer {
        Some(viewer) => format!(
            " AND {column} NOT IN ({})",
            hidden_projects_sql(postgres, org_id, viewer)
        ),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every org role × project role × visibility × action, against the rule written out.
    #[test]
    fn project_access_enumerated() {
        let project_roles = [
            None,
            Some(ProjectRole::Admin),
            Some(ProjectRole::Member),
            Some(ProjectRole::Viewer),
        ];
        for role in Role::ALL {
            for visibility in Visibility::ALL {
                for project_role in project_roles {
                    for action in Action::ALL {
                        let got = decide(role, visibility, project_role, action);
                        let case = format!("{role:?} {visibility:?} {project_role:?} {action:?}");
                        let matrix = if allowed(role, action) {
                            Decision::Allowed
                        } else {
                            Decision::Forbidden
                        };
                        let expected = match role {
                            Role::Owner | Role::Admin => matrix,
                            Role::Requester
                                if visibility == Visibility::Members
                                    && about_the_project(action) =>
                            {
                                Decision::Hidden
                            }
                            Role::Requester => matrix,
                            _ if visibility == Visibility::Members && project_role.is_none() => {
                                Decision::Hidden
                            }
                            _ if project_role == Some(ProjectRole::Viewer) && !reads(action) => {
                                Decision::Forbidden
                            }
                            _ if project_role == Some(ProjectRole::Admin)
                                && action == Action::ProjectManage =>
                            {
                                Decision::Allowed
                            }
                            _ => matrix,
                        };
                        assert_eq!(got, expected, "{case}");
                    }
                }
            }
        }
        // The headline cases, spelled out.
        use Action::*;
        let d = decide;
        assert_eq!(
            d(Role::Agent, Visibility::Members, None, TicketRead),
            Decision::Hidden
        );
        assert_eq!(
            d(Role::Manager, Visibility::Members, None, ProjectRead),
            Decision::Hidden
        );
        assert_eq!(
            d(Role::Admin, Visibility::Members, None, TicketUpdate),
            Decision::Allowed
        );
        assert_eq!(
            d(
                Role::Manager,
                Visibility::Org,
                Some(ProjectRole::Viewer),
                TicketUpdate
            ),
            Decision::Forbidden
        );
        assert_eq!(
            d(
                Role::Agent,
                Visibility::Members,
                Some(ProjectRole::Admin),
                ProjectManage
            ),
            Decision::Allowed
        );
        assert_eq!(
            d(Role::Agent, Visibility::Org, None, ProjectManage),
            Decision::Forbidden
        );
        assert_eq!(
            d(Role::Requester, Visibility::Members, None, TicketRead),
            Decision::Allowed
        );
        assert_eq!(
            d(Role::Requester, Visibility::Members, None, TicketCreate),
            Decision::Hidden
        );
    }

    #[test]
    fn only_managers_agents_and_viewers_are_walled() {
        for role in Role::ALL {
            let ctx = TenantCtx::authenticated(Uuid::nil(), Uuid::max(), role, None);
            let walled = matches!(role, Role::Manager | Role::Agent | Role::Viewer);
            assert_eq!(walled_viewer(&ctx).is_some(), walled, "{role:?}");
            assert_eq!(
                wall_sql(true, ctx.org_id, walled_viewer(&ctx), "t.project_id").is_empty(),
                !walled
            );
        }
    }

    #[test]
    fn the_hidden_projects_query_is_the_same_text_for_everyone() {
        use sea_orm::sea_query::{PostgresQueryBuilder, SqliteQueryBuilder};
        let (a, b) = (
            hidden_projects(Uuid::now_v7(), Uuid::now_v7()),
            hidden_projects(Uuid::now_v7(), Uuid::now_v7()),
        );
        for (sql_a, sql_b) in [
            (
                a.build(PostgresQueryBuilder).0,
                b.build(PostgresQueryBuilder).0,
            ),
            (a.build(SqliteQueryBuilder).0, b.build(SqliteQueryBuilder).0),
        ] {
            assert_eq!(sql_a, sql_b);
            assert!(sql_a.contains("NOT EXISTS"), "{sql_a}");
        }
    }

    #[test]
    fn names_round_trip() {
        for v in Visibility::ALL {
            assert_eq!(Visibility::parse(v.as_str()), Some(v));
        }
        for r in ProjectRole::ALL {
            assert_eq!(ProjectRole::parse(r.as_str()), Some(r));
        }
    }
}
