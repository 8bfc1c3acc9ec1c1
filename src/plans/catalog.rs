//! The operator's plans file (`DOCKET_PLANS_FILE`, TOML): each plan's limits, and its Stripe
//! price when it can be bought. Read and checked once at start; a mistake stops the server with
//! the file's line.

use std::{collections::BTreeMap, path::Path};

use anyhow::{Context, bail};
use serde::Deserialize;

use super::Limits;

/// One plan: its limits (a limit not named is not limited) and how it is bought.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Shown in the app; the plan's key when absent.
    pub label: Option<String>,
    pub seats: Option<u64>,
    pub projects: Option<u64>,
    pub storage_bytes: Option<u64>,
    pub api_requests_per_minute: Option<u64>,
    pub webhooks: Option<u64>,
    /// The Stripe price of its subscription; a plan without one is not for sale.
    pub stripe_price_id: Option<String>,
}

impl Plan {
    pub fn limits(&self) -> Limits {
        Limits {
            seats: self.seats,
            projects: self.projects,
            storage_bytes: self.storage_bytes,
            api_requests_per_minute: self.api_requests_per_minute,
            webhooks: self.webhooks,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    plans: BTreeMap<String, Plan>,
}

/// Every plan, by key, and the one new organisations get.
#[derive(Clone, Debug)]
pub struct Catalog {
    pub plans: BTreeMap<String, Plan>,
    pub default: String,
}

impl Catalog {
    /// Reads the plans file at `path`; `default` names the plan of new organisations (the first
    /// plan by key when none is named).
    pub fn load(path: &Path, default: Option<&str>) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the plans file {}", path.display()))?;
        Self::parse(&text, default).with_context(|| format!("in the plans file {}", path.display()))
    }

    /// The catalog the settings name (`DOCKET_PLANS_FILE`, `DOCKET_DEFAULT_PLAN`), read and
    /// checked; `None` without a plans file.
    pub fn configured(cfg: &crate::config::PlansConfig) -> anyhow::Result<Option<Self>> {
        cfg.plans_file
            .as_deref()
            .map(|path| Self::load(path, cfg.default_plan.as_deref()))
            .transpose()
    }

    /// Parses a plans file's text (`toml`'s errors name the line and column).
    pub fn parse(text: &str, default: Option<&str>) -> anyhow::Result<Self> {
        let file: File = toml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        if file.plans.is_empty() {
            bail!("it names no plan: add a [plans.NAME] table");
        }
        for key in file.plans.keys() {
            let ok = !key.is_empty()
                && key.len() <= 64
                && key.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                });
            if !ok {
                bail!("plan {key:?}: a plan's key is 1–64 lowercase letters, digits, '-' or '_'");
            }
        }
        let default = match default {
            Some(name) if file.plans.contains_key(name) => name.to_owned(),
            Some(name) => bail!(
                "DOCKET_DEFAULT_PLAN names {name:?}, which is not a plan here (plans: {})",
                file.plans.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
            None => file.plans.keys().next().cloned().unwrap_or_default(),
        };
        Ok(Self {
            plans: file.plans,
            default,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[plans.free]
seats = 3
projects = 2
storage_bytes = 104857600

[plans.team]
label = "Team"
seats = 25
stripe_price_id = "price_team"
"#;

    #[test]
    fn a_plan_without_a_limit_has_none_of_it() {
        let catalog = Catalog::parse(FILE, Some("free")).unwrap();
        let free = catalog.plans["free"].limits();
        assert_eq!(free.seats, Some(3));
        assert_eq!(free.projects, Some(2));
        assert_eq!(free.webhooks, None);
        let team = &catalog.plans["team"];
        assert_eq!(team.limits().projects, None);
        assert_eq!(team.stripe_price_id.as_deref(), Some("price_team"));
        assert_eq!(catalog.default, "free");
        assert_eq!(Catalog::parse(FILE, None).unwrap().default, "free");
    }

    #[test]
    fn mistakes_are_named_with_their_line() {
        let typo = FILE.replace("projects = 2", "projets = 2");
        let err = format!("{:#}", Catalog::parse(&typo, None).unwrap_err());
        assert!(err.contains("line 4") && err.contains("projets"), "{err}");
        let negative = FILE.replace("seats = 3", "seats = -3");
        let err = format!("{:#}", Catalog::parse(&negative, None).unwrap_err());
        assert!(err.contains("line 3"), "{err}");
        let err = format!("{:#}", Catalog::parse(FILE, Some("gold")).unwrap_err());
        assert!(
            err.contains("\"gold\"") && err.contains("free, team"),
            "{err}"
        );
        assert!(Catalog::parse("", None).is_err());
        assert!(Catalog::parse("[plans.\"Big Plan\"]\nseats = 1\n", None).is_err());
    }
}
