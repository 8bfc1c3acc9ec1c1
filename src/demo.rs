//! The demo and benchmark dataset (`docket admin seed-demo`): organisations of very different
//! sizes (a few large, a long tail of small ones) with people in every role, projects, and
//! tickets with assignees, labels, comments and timelines, loaded in bulk through the modules
//! that own those tables. The same seed gives the same dataset.

use std::{sync::Arc, time::Instant};

use chrono::{DateTime, TimeDelta, Utc};
use rand::{Rng, SeedableRng, rngs::StdRng, seq::IndexedRandom};
use serde::Serialize;
use tokio::{sync::Semaphore, task::JoinSet};
use uuid::Uuid;

use crate::{
    access::Role,
    identity,
    store::Db,
    tenancy,
    work::{
        self, Priority, Status,
        import::{self, ImportedComment, ImportedProject, ImportedTicket},
    },
};

pub struct Options {
    pub organizations: usize,
    pub tickets: u64,
    pub seed: u64,
    /// Every demo account's password.
    pub password: String,
    /// Organisations loaded at once (SQLite admits one writer: 1 there).
    pub jobs: usize,
}

/// What was loaded, for load generators and people trying the demo: who can sign in where.
#[derive(Debug, Serialize)]
pub struct Manifest {
    pub organizations: Vec<OrgManifest>,
    pub tickets: u64,
    pub comments: u64,
    pub timeline_entries: u64,
    pub seconds: f64,
}

#[derive(Debug, Serialize)]
pub struct OrgManifest {
    pub id: Uuid,
    pub slug: String,
    pub tickets: u64,
    pub people: Vec<Person>,
    pub projects: Vec<ProjectRef>,
}

#[derive(Debug, Serialize)]
pub struct Person {
    pub id: Uuid,
    pub email: String,
    pub role: Role,
}

#[derive(Debug, Serialize)]
pub struct ProjectRef {
    pub id: Uuid,
    pub key: String,
}

/// Tickets per transaction: large enough for multi-row inserts to pay, small enough to keep
/// the generated rows of one batch in little memory.
const BATCH: u64 = 10_000;
/// Tickets are spread over the last two years.
const HISTORY_DAYS: i64 = 730;

const FIRST: [&str; 16] = [
    "ada", "ben", "chloe", "dev", "elena", "farid", "grace", "hugo", "ines", "jon", "kemi", "liam",
    "maya", "nils", "olga", "pablo",
];
const LAST: [&str; 12] = [
    "alvarez", "brown", "chen", "dubois", "eriksen", "fischer", "garcia", "haddad", "ito",
    "jensen", "kowalski", "larsen",
];
const PROJECTS: [(&str, &str); 8] = [
    ("SUP", "Support"),
    ("WEB", "Web app"),
    ("API", "Public API"),
    ("OPS", "Operations"),
    ("MOB", "Mobile"),
    ("BIL", "Billing"),
    ("INF", "Infrastructure"),
    ("DOC", "Documentation"),
];
const SUBJECTS: [&str; 15] = [
    "Login",
    "Checkout",
    "Search",
    "CSV export",
    "Invoice PDF",
    "Dashboard",
    "Password reset",
    "Email notifications",
    "API token page",
    "Monthly report",
    "File upload",
    "Calendar sync",
    "Mobile app",
    "Billing page",
    "Onboarding flow",
];
const PROBLEMS: [&str; 12] = [
    "fails on Safari",
    "is slow for large accounts",
    "shows the wrong totals",
    "times out",
    "returns an error after saving",
    "needs a date range option",
    "loses unsaved changes",
    "ignores the time zone",
    "should support single sign-on",
    "is confusing for new users",
    "broke after the last release",
    "sends duplicate emails",
];
const REPLIES: [&str; 10] = [
    "Thanks, I can reproduce this on my side.",
    "Could you send a screenshot and the time it happened?",
    "This looks related to last week's deploy; checking the logs now.",
    "A fix is ready and will go out with the next release.",
    "Still happening for me this morning.",
    "Workaround for now: refresh the page and try again.",
    "Customer confirmed it works again.",
    "Raising the priority: three more customers reported it.",
    "Waiting on the vendor to answer.",
    "Closing this one as the behaviour is intended; docs updated.",
];
const LABELS: [&str; 15] = [
    "bug",
    "feature",
    "billing",
    "ux",
    "backend",
    "frontend",
    "security",
    "performance",
    "docs",
    "customer",
    "regression",
    "mobile",
    "api",
    "infra",
    "question",
];

/// Splits `total` by `weights`, exactly (the rounding remainder goes to the first ones).
fn split(total: u64, weights: &[f64]) -> Vec<u64> {
    let sum: f64 = weights.iter().sum();
    let mut parts: Vec<u64> = weights
        .iter()
        .map(|w| (total as f64 * w / sum).floor() as u64)
        .collect();
    let short = total - parts.iter().sum::<u64>();
    for p in parts.iter_mut().take(short as usize) {
        *p += 1;
    }
    parts
}

/// Picks an index with probability proportional to what is left of each, so every count is
/// used up exactly when the last one is.
fn draw(rng: &mut StdRng, left: &mut [u64]) -> usize {
    let total: u64 = left.iter().sum();
    let mut at = rng.random_range(0..total);
    for (i, l) in left.iter_mut().enumerate() {
        if at < *l {
            *l -= 1;
            return i;
        }
        at -= *l;
    }
    unreachable!("draw from an empty pool")
}

/// The role of the `k`-th of `n` people: one owner, admin and manager, one viewer, and the
/// rest agents and requesters in turn.
fn role_of(k: usize, n: usize) -> Role {
    match k {
        0 => Role::Owner,
        1 => Role::Admin,
        2 => Role::Manager,
        _ if k == n - 1 => Role::Viewer,
        _ if k % 2 == 1 => Role::Agent,
        _ => Role::Requester,
    }
}

fn pick_status(rng: &mut StdRng, recent: bool) -> Status {
    use Status::*;
    let table: &[(Status, u32)] = if recent {
        &[
            (Open, 40),
            (InProgress, 25),
            (Pending, 10),
            (Resolved, 15),
            (Closed, 5),
            (Cancelled, 5),
        ]
    } else {
        &[
            (Open, 5),
            (InProgress, 4),
            (Pending, 3),
            (Resolved, 25),
            (Closed, 55),
            (Cancelled, 8),
        ]
    };
    weighted(rng, table)
}

fn weighted<T: Copy>(rng: &mut StdRng, table: &[(T, u32)]) -> T {
    let total: u32 = table.iter().map(|(_, w)| w).sum();
    let mut at = rng.random_range(0..total);
    for (x, w) in table {
        if at < *w {
            return *x;
        }
        at -= w;
    }
    table[0].0
}

/// Loads the dataset, `opts.jobs` organisations at a time. Refuses a database that already
/// holds it (the slugs are taken).
pub async fn seed(db: &Db, opts: &Options) -> anyhow::Result<Manifest> {
    anyhow::ensure!(
        opts.organizations >= 1 && opts.tickets >= opts.organizations as u64,
        "need at least one organisation and one ticket per organisation"
    );
    let started = Instant::now();
    let hash: Arc<str> = identity::Hasher::start().hash(&opts.password).await?.into();
    // Zipf-like sizes: the largest organisation gets about 1/H(n) of all tickets (17% of them
    // with 200 organisations).
    let weights: Vec<f64> = (0..opts.organizations)
        .map(|i| 1.0 / (i as f64 + 1.0))
        .collect();
    let sizes = split(opts.tickets, &weights);
    let now = work::now();
    let slots = Arc::new(Semaphore::new(opts.jobs.max(1)));
    let mut tasks = JoinSet::new();
    for (index, tickets) in sizes.into_iter().enumerate() {
        let org = OrgPlan {
            index,
            tickets,
            share: weights[index] / weights[0],
            // Each organisation draws from its own generator, so the dataset does not depend
            // on how many are loaded at once.
            seed: opts.seed.wrapping_mul(1_000_003).wrapping_add(index as u64),
        };
        let (db, hash, slots) = (db.clone(), hash.clone(), slots.clone());
        tasks.spawn(async move {
            let _slot = slots.acquire_owned().await?;
            let loaded = seed_org(&db, org, &hash, now).await?;
            tracing::info!(
                org = %loaded.org.slug,
                tickets = loaded.org.tickets,
                people = loaded.org.people.len(),
                elapsed_s = started.elapsed().as_secs(),
                "organisation loaded"
            );
            anyhow::Ok((index, loaded))
        });
    }
    let mut loaded = Vec::new();
    while let Some(done) = tasks.join_next().await {
        loaded.push(done??);
    }
    loaded.sort_by_key(|(index, _)| *index);
    let mut manifest = Manifest {
        organizations: Vec::new(),
        tickets: 0,
        comments: 0,
        timeline_entries: 0,
        seconds: started.elapsed().as_secs_f64(),
    };
    for (_, l) in loaded {
        manifest.tickets += l.org.tickets;
        manifest.comments += l.comments;
        manifest.timeline_entries += l.timeline_entries;
        manifest.organizations.push(l.org);
    }
    Ok(manifest)
}

struct OrgPlan {
    index: usize,
    tickets: u64,
    /// Its size relative to the largest organisation.
    share: f64,
    seed: u64,
}

struct LoadedOrg {
    org: OrgManifest,
    comments: u64,
    timeline_entries: u64,
}

async fn seed_org(
    db: &Db,
    plan: OrgPlan,
    hash: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<LoadedOrg> {
    let OrgPlan {
        index,
        tickets,
        share,
        seed,
    } = plan;
    let rng = &mut StdRng::seed_from_u64(seed);
    let org_id = Uuid::now_v7();
    let slug = format!("demo-{:03}", index + 1);
    // 5–30 people, more in larger organisations; at least six, for one of every role.
    let size = (5 + (25.0 * share.sqrt()).round() as usize).max(6);
    let people: Vec<Person> = (0..size)
        .map(|k| {
            let (first, last) = (FIRST[k % FIRST.len()], LAST[(k + index) % LAST.len()]);
            Person {
                id: Uuid::now_v7(),
                email: format!("{first}.{last}{k}@{slug}.example.com"),
                role: role_of(k, size),
            }
        })
        .collect();
    let project_count = (1 + tickets / 25_000).min(PROJECTS.len() as u64) as usize;
    let per_project = split(tickets, &vec![1.0; project_count]);
    let projects: Vec<ProjectRef> = PROJECTS[..project_count]
        .iter()
        .map(|(key, _)| ProjectRef {
            id: Uuid::now_v7(),
            key: (*key).to_owned(),
        })
        .collect();
    let owner = people[0].id;
    let history_start = now - TimeDelta::days(HISTORY_DAYS);

    let tx = db.write_org(org_id).await?;
    let accounts: Vec<(Uuid, String, String)> = people
        .iter()
        .map(|p| {
            let name = p
                .email
                .split('@')
                .next()
                .unwrap_or_default()
                .replace('.', " ");
            (p.id, p.email.clone(), name)
        })
        .collect();
    // The organisation first: on a database that holds the dataset already, its slug is what
    // is refused, with a clear message.
    tenancy::create_organization(&tx, &format!("Demo {:03}", index + 1), &slug).await?;
    identity::import_users(tx.conn(), &accounts, hash).await?;
    let members: Vec<(Uuid, Role)> = people.iter().map(|p| (p.id, p.role)).collect();
    tenancy::import_members(&tx, &members).await?;
    import::projects(
        &tx,
        projects
            .iter()
            .zip(&per_project)
            .zip(PROJECTS)
            .map(|((p, count), (_, name))| ImportedProject {
                id: p.id,
                key: p.key.clone(),
                name: name.to_owned(),
                ticket_counter: *count as i64,
                created_by: owner,
                created_at: history_start,
            })
            .collect(),
    )
    .await?;
    tx.commit().await?;

    let agents: Vec<Uuid> = people
        .iter()
        .filter(|p| p.role.at_least(Role::Agent))
        .map(|p| p.id)
        .collect();
    let requesters: Vec<Uuid> = people
        .iter()
        .filter(|p| p.role == Role::Requester)
        .map(|p| p.id)
        .collect();
    let mut left = per_project.clone();
    let mut numbers = vec![0i64; project_count];
    let (mut done, mut comments, mut timeline_entries) = (0u64, 0u64, 0u64);
    while done < tickets {
        let batch = BATCH.min(tickets - done);
        let mut rows = Vec::with_capacity(batch as usize);
        for i in done..done + batch {
            let p = draw(rng, &mut left);
            numbers[p] += 1;
            let fraction = (i as f64 + rng.random::<f64>()) / tickets as f64;
            let created_at = work::to_micros(
                history_start
                    + TimeDelta::seconds((fraction * HISTORY_DAYS as f64 * 86_400.0) as i64),
            );
            let ticket = generate_ticket(
                rng,
                (&projects[p], numbers[p]),
                created_at,
                now,
                &agents,
                &requesters,
            );
            rows.push(ticket);
        }
        let tx = db.write_org(org_id).await?;
        let imported = import::tickets(&tx, rows).await?;
        tx.commit().await?;
        comments += imported.comments;
        timeline_entries += imported.timeline_entries;
        done += batch;
    }
    Ok(LoadedOrg {
        org: OrgManifest {
            id: org_id,
            slug,
            tickets,
            people,
            projects,
        },
        comments,
        timeline_entries,
    })
}

fn generate_ticket(
    rng: &mut StdRng,
    (project, number): (&ProjectRef, i64),
    created_at: DateTime<Utc>,
    now: DateTime<Utc>,
    agents: &[Uuid],
    requesters: &[Uuid],
) -> ImportedTicket {
    let recent = now - created_at < TimeDelta::days(HISTORY_DAYS / 10);
    let status = pick_status(rng, recent);
    let worked_for = (now - created_at).min(TimeDelta::days(30));
    let last_activity = work::to_micros(
        created_at + TimeDelta::seconds(rng.random_range(60..=worked_for.num_seconds().max(61))),
    )
    .min(now);
    let subject = SUBJECTS.choose(rng).copied().unwrap_or("Login");
    let problem = PROBLEMS.choose(rng).copied().unwrap_or("times out");
    let assignees = weighted(rng, &[(0usize, 15), (1, 75), (2, 10)]);
    let mut assignee_ids: Vec<Uuid> = agents.choose_multiple(rng, assignees).copied().collect();
    assignee_ids.sort();
    let label_count = weighted(rng, &[(0usize, 30), (1, 40), (2, 20), (3, 10)]);
    let mut labels: Vec<String> = LABELS
        .choose_multiple(rng, label_count)
        .map(|l| (*l).to_owned())
        .collect();
    labels.sort();
    let requester_id = *requesters
        .choose(rng)
        .or(agents.first())
        .unwrap_or(&Uuid::nil());
    let worked_by = assignee_ids
        .first()
        .or(agents.choose(rng))
        .copied()
        .unwrap_or(requester_id);
    let comment_count = weighted(
        rng,
        &[
            (0usize, 35),
            (1, 25),
            (2, 20),
            (3, 12),
            (4, 4),
            (5, 2),
            (6, 2),
        ],
    );
    let mut comments: Vec<ImportedComment> = (0..comment_count)
        .map(|_| {
            let by_agent = rng.random_bool(0.6);
            let author_id = if by_agent { worked_by } else { requester_id };
            let at = created_at + (last_activity - created_at) * rng.random_range(1..=100) / 100;
            ImportedComment {
                author_id,
                body: REPLIES.choose(rng).copied().unwrap_or("Thanks.").to_owned(),
                internal: by_agent && rng.random_bool(0.25),
                at: work::to_micros(at),
            }
        })
        .collect();
    comments.sort_by_key(|c| c.at);
    ImportedTicket {
        project_id: project.id,
        key: format!("{}-{number}", project.key),
        number,
        title: format!("{subject} {problem}"),
        description: rng.random_bool(0.7).then(|| {
            format!(
                "Reported by a customer: {} {problem}. It started after they changed their \
                 settings; details and steps to reproduce are in the first comment.",
                subject.to_lowercase()
            )
        }),
        priority: weighted(
            rng,
            &[
                (Priority::Low, 20),
                (Priority::Medium, 50),
                (Priority::High, 22),
                (Priority::Urgent, 8),
            ],
        ),
        requester_id,
        assignee_ids,
        labels,
        due_at: rng
            .random_bool(0.25)
            .then(|| work::to_micros(created_at + TimeDelta::days(rng.random_range(1..30)))),
        created_by: requester_id,
        created_at,
        status,
        worked_by,
        last_activity,
        comments,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_are_exact_and_skewed() {
        let weights: Vec<f64> = (0..200).map(|i| 1.0 / (i as f64 + 1.0)).collect();
        let parts = split(1_000_000, &weights);
        assert_eq!(parts.iter().sum::<u64>(), 1_000_000);
        assert!(parts[0] >= 150_000, "largest {}", parts[0]);
        assert!(parts.windows(2).all(|w| w[0] >= w[1]));
    }

    #[test]
    fn draws_use_up_every_count() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut left = vec![3, 0, 5];
        let mut seen = [0; 3];
        for _ in 0..8 {
            seen[draw(&mut rng, &mut left)] += 1;
        }
        assert_eq!(seen, [3, 0, 5]);
        assert_eq!(left, vec![0, 0, 0]);
    }

    #[test]
    fn every_organisation_has_each_kind_of_role() {
        for n in 6..=30 {
            let roles: Vec<Role> = (0..n).map(|k| role_of(k, n)).collect();
            for r in [Role::Owner, Role::Agent, Role::Requester, Role::Viewer] {
                assert!(roles.contains(&r), "{n} people: no {r:?}");
            }
        }
    }
}
