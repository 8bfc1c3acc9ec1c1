//! Business calendars as the organisation keeps them: a name, an IANA time zone, opening hours
//! per weekday (several intervals a day) and holidays (a date, or a day every year).

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use chrono_tz::Tz;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, PaginatorTrait, QueryFilter, QueryOrder,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::calendar::{Calendar, DAY_MINUTES, Interval};
use crate::{
    access::{self, Action, TenantCtx},
    audit,
    error::{Error, Result, Validator},
    store::{self, Db, TenantTx, is_unique_violation},
    text::check_line,
};

pub(crate) mod entity {
    crate::store::tenant_entity!("calendars" {
        #[sea_orm(primary_key, auto_increment = false)]
        id: Uuid,
        name: String,
        time_zone: String,
        hours: Json,
        holidays: Json,
        created_at: DateTimeUtc,
        updated_at: DateTimeUtc,
    });
}

pub const MAX_CALENDARS: u64 = 50;
pub const MAX_INTERVALS_PER_DAY: usize = 8;
pub const MAX_HOLIDAYS: usize = 500;
const MAX_NAME: usize = 100;

/// One opening interval, local time: `{"start": "09:00", "end": "12:30"}` (`end` may be
/// `24:00`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpeningHours {
    #[schema(example = "09:00")]
    pub start: String,
    #[schema(example = "17:00")]
    pub end: String,
}

/// Opening hours per weekday; a day left out or empty is closed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WeeklyHours {
    #[serde(default)]
    pub monday: Vec<OpeningHours>,
    #[serde(default)]
    pub tuesday: Vec<OpeningHours>,
    #[serde(default)]
    pub wednesday: Vec<OpeningHours>,
    #[serde(default)]
    pub thursday: Vec<OpeningHours>,
    #[serde(default)]
    pub friday: Vec<OpeningHours>,
    #[serde(default)]
    pub saturday: Vec<OpeningHours>,
    #[serde(default)]
    pub sunday: Vec<OpeningHours>,
}

impl WeeklyHours {
    const DAYS: [&'static str; 7] = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];

    fn days(&self) -> [&Vec<OpeningHours>; 7] {
        [
            &self.monday,
            &self.tuesday,
            &self.wednesday,
            &self.thursday,
            &self.friday,
            &self.saturday,
            &self.sunday,
        ]
    }
}

/// A closed day: once, or every year on its month and day.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Holiday {
    pub date: NaiveDate,
    #[serde(default)]
    pub name: String,
    /// Closed on this month and day every year.
    #[serde(default)]
    pub recurring: bool,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct CalendarView {
    pub id: Uuid,
    pub name: String,
    /// IANA name, e.g. `Europe/Berlin`.
    pub time_zone: String,
    pub hours: WeeklyHours,
    pub holidays: Vec<Holiday>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCalendar {
    pub name: String,
    #[schema(example = "Europe/Berlin")]
    pub time_zone: String,
    pub hours: WeeklyHours,
    #[serde(default)]
    #[schema(max_items = 500)]
    pub holidays: Vec<Holiday>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CalendarPatch {
    pub name: Option<String>,
    pub time_zone: Option<String>,
    /// Replaces the opening hours.
    pub hours: Option<WeeklyHours>,
    /// Replaces the holidays.
    #[schema(max_items = 500)]
    pub holidays: Option<Vec<Holiday>>,
}

/// `HH:MM`, `00:00`–`24:00`, as minutes after midnight.
fn parse_time(s: &str) -> Option<u16> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 || !h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    let minutes = h * 60 + m;
    (m < 60 && minutes <= DAY_MINUTES).then_some(minutes)
}

fn check_zone(v: &mut Validator, zone: &str) -> Option<Tz> {
    let tz = zone.parse::<Tz>().ok();
    if tz.is_none() {
        v.push(
            "time_zone",
            "is not an IANA time zone name (such as Europe/Berlin)",
        );
    }
    tz
}

/// The week as intervals, or the reasons it is not acceptable.
fn check_hours(v: &mut Validator, hours: &WeeklyHours) -> [Vec<Interval>; 7] {
    let mut week: [Vec<Interval>; 7] = Default::default();
    for (d, (name, day)) in WeeklyHours::DAYS.iter().zip(hours.days()).enumerate() {
        if day.len() > MAX_INTERVALS_PER_DAY {
            v.push(
                &format!("hours.{name}"),
                format!("at most {MAX_INTERVALS_PER_DAY} intervals a day"),
            );
            continue;
        }
        for (i, h) in day.iter().enumerate() {
            let field = format!("hours.{name}[{i}]");
            match (parse_time(&h.start), parse_time(&h.end)) {
                (Some(start), Some(end)) if start < end && start < DAY_MINUTES => {
                    week[d].push(Interval { start, end });
                }
                (Some(_), Some(_)) => v.push(&field, "must end after it starts"),
                _ => v.push(&field, "start and end are times HH:MM from 00:00 to 24:00"),
            }
        }
        week[d].sort();
        if week[d].windows(2).any(|w| w[1].start < w[0].end) {
            v.push(&format!("hours.{name}"), "intervals must not overlap");
        }
    }
    if week.iter().all(Vec::is_empty) {
        v.push(
            "hours",
            "the calendar must be open at some time of the week",
        );
    }
    week
}

fn check_holidays(v: &mut Validator, holidays: &[Holiday]) {
    v.check(
        holidays.len() <= MAX_HOLIDAYS,
        "holidays",
        &format!("at most {MAX_HOLIDAYS} holidays"),
    );
    for (i, h) in holidays.iter().enumerate().take(MAX_HOLIDAYS) {
        if !h.name.is_empty() {
            check_line(v, &format!("holidays[{i}].name"), &h.name, MAX_NAME);
        }
    }
}

/// The calendar as arithmetic. Stored calendars were checked when saved.
pub fn to_calendar(m: &entity::Model) -> Result<Calendar> {
    let broken = |what: &str| Error::internal(anyhow::anyhow!("stored calendar {}: {what}", m.id));
    let tz: Tz = m.time_zone.parse().map_err(|_| broken("time zone"))?;
    let hours: WeeklyHours =
        serde_json::from_value(m.hours.clone()).map_err(|_| broken("hours"))?;
    let holidays: Vec<Holiday> =
        serde_json::from_value(m.holidays.clone()).map_err(|_| broken("holidays"))?;
    let mut v = Validator::default();
    let week = check_hours(&mut v, &hours);
    let (yearly, once): (Vec<&Holiday>, Vec<&Holiday>) = holidays.iter().partition(|h| h.recurring);
    Ok(Calendar::new(
        tz,
        week,
        once.into_iter().map(|h| h.date),
        yearly.into_iter().map(|h| (h.date.month(), h.date.day())),
    ))
}

impl From<entity::Model> for CalendarView {
    fn from(m: entity::Model) -> Self {
        CalendarView {
            id: m.id,
            name: m.name,
            time_zone: m.time_zone,
            hours: serde_json::from_value(m.hours).unwrap_or_default(),
            holidays: serde_json::from_value(m.holidays).unwrap_or_default(),
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

fn name_taken(err: sea_orm::DbErr) -> Error {
    if is_unique_violation(&err) {
        Error::conflict("calendar_name_taken", "another calendar has this name")
    } else {
        err.into()
    }
}

pub(crate) async fn find(tx: &TenantTx, id: Uuid) -> Result<entity::Model> {
    tx.find::<entity::Entity>()
        .filter(entity::Column::Id.eq(id))
        .one(tx.conn())
        .await?
        .ok_or(Error::NotFound("calendar"))
}

pub async fn create(db: &Db, ctx: &TenantCtx, req: NewCalendar) -> Result<CalendarView> {
    access::authorize(ctx, Action::SlaManage)?;
    let mut v = Validator::default();
    check_line(&mut v, "name", &req.name, MAX_NAME);
    check_zone(&mut v, &req.time_zone);
    check_hours(&mut v, &req.hours);
    check_holidays(&mut v, &req.holidays);
    v.finish()?;
    let tx = db.write(ctx).await?;
    if tx.find::<entity::Entity>().count(tx.conn()).await? >= MAX_CALENDARS {
        return Err(Error::conflict(
            "too_many_calendars",
            format!("an organisation may keep at most {MAX_CALENDARS} calendars"),
        ));
    }
    let now = store::now();
    let row = entity::ActiveModel {
        org_id: Set(ctx.org_id),
        id: Set(Uuid::now_v7()),
        name: Set(req.name.trim().to_owned()),
        time_zone: Set(req.time_zone),
        hours: Set(json!(req.hours)),
        holidays: Set(json!(req.holidays)),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(tx.conn())
    .await
    .map_err(name_taken)?;
    audit::record(
        &tx,
        Some(ctx.user_id),
        "calendar.created",
        "calendar",
        Some(row.id),
        json!({"name": row.name}),
    )
    .await?;
    tx.commit().await?;
    Ok(row.into())
}

pub async fn list(db: &Db, ctx: &TenantCtx) -> Result<Vec<CalendarView>> {
    access::authorize(ctx, Action::SlaRead)?;
    let tx = db.read(ctx).await?;
    let rows = tx
        .find::<entity::Entity>()
        .order_by_asc(entity::Column::Name)
        .all(tx.conn())
        .await?;
    tx.commit().await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

pub async fn get(db: &Db, ctx: &TenantCtx, id: Uuid) -> Result<CalendarView> {
    access::authorize(ctx, Action::SlaRead)?;
    let tx = db.read(ctx).await?;
    let row = find(&tx, id).await?;
    tx.commit().await?;
    Ok(row.into())
}

/// Changes a calendar; the open clocks that count on it are computed again in the same
/// transaction.
pub async fn update(
    db: &Db,
    ctx: &TenantCtx,
    id: Uuid,
    patch: CalendarPatch,
) -> Result<CalendarView> {
    access::authorize(ctx, Action::SlaManage)?;
    let mut v = Validator::default();
    if let Some(n) = &patch.name {
        check_line(&mut v, "name", n, MAX_NAME);
    }
    if let Some(z) = &patch.time_zone {
        check_zone(&mut v, z);
    }
    if let Some(h) = &patch.hours {
        check_hours(&mut v, h);
    }
    if let Some(h) = &patch.holidays {
        check_holidays(&mut v, h);
    }
    v.finish()?;
    let tx = db.write(ctx).await?;
    let current = tx
        .find_for_update::<entity::Entity>()
        .filter(entity::Column::Id.eq(id))
        .one(tx.conn())
        .await?
        .ok_or(Error::NotFound("calendar"))?;
    let mut row: entity::ActiveModel = current.into();
    if let Some(n) = patch.name {
        row.name = Set(n.trim().to_owned());
    }
    if let Some(z) = patch.time_zone {
        row.time_zone = Set(z);
    }
    if let Some(h) = patch.hours {
        row.hours = Set(json!(h));
    }
    if let Some(h) = patch.holidays {
        row.holidays = Set(json!(h));
    }
    row.updated_at = Set(store::now());
    let row = row.update(tx.conn()).await.map_err(name_taken)?;
    super::clocks::recompute_open(&tx, Some(id)).await?;
    audit::record(
        &tx,
        Some(ctx.user_id),
        "calendar.updated",
        "calendar",
        Some(id),
        json!({"name": row.name}),
    )
    .await?;
    tx.commit().await?;
    Ok(row.into())
}

/// Deletes a calendar no policy uses (409 `calendar_in_use` otherwise).
pub async fn delete(db: &Db, ctx: &TenantCtx, id: Uuid) -> Result<()> {
    access::authorize(ctx, Action::SlaManage)?;
    let tx = db.write(ctx).await?;
    let row = find(&tx, id).await?;
    if super::policies::calendar_in_use(&tx, id).await? {
        return Err(Error::conflict(
            "calendar_in_use",
            "an SLA policy uses this calendar: change the policy first",
        ));
    }
    tx.delete_many::<entity::Entity>()
        .filter(entity::Column::Id.eq(id))
        .exec(tx.conn())
        .await?;
    audit::record(
        &tx,
        Some(ctx.user_id),
        "calendar.deleted",
        "calendar",
        Some(id),
        json!({"name": row.name}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_hours_and_minutes_up_to_midnight() {
        assert_eq!(parse_time("09:30"), Some(570));
        assert_eq!(parse_time("24:00"), Some(1440));
        for bad in [
            "24:01",
            "9:30",
            "09:60",
            "0930",
            "+9:30",
            "09:3a",
            "",
            "１０:00",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn overlapping_and_backwards_intervals_are_refused() {
        let h = |s: &str, e: &str| OpeningHours {
            start: s.into(),
            end: e.into(),
        };
        let mut v = Validator::default();
        let hours = WeeklyHours {
            monday: vec![h("09:00", "12:00"), h("11:00", "13:00")],
            tuesday: vec![h("17:00", "09:00")],
            ..Default::default()
        };
        check_hours(&mut v, &hours);
        let Err(Error::Validation(errors)) = v.finish() else {
            panic!("accepted")
        };
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["hours.monday", "hours.tuesday[0]"]);
        let mut v = Validator::default();
        check_hours(&mut v, &WeeklyHours::default());
        assert!(v.finish().is_err(), "a week without hours is refused");
    }
}
