//! Business calendars as arithmetic: a time zone, weekly opening hours (several intervals a day)
//! and holidays, turned into the spans of UTC time during which the calendar is open.
//!
//! Local time is mapped to UTC by the IANA database (`chrono-tz`). Across a daylight-saving
//! change a local time may not exist (spring forward) or exist twice (fall back), so spans are
//! not built by converting each interval's ends: they are cut at every instant where the local
//! time equals an interval's start or end, or a day begins, and at every UTC-offset change;
//! between two cuts the calendar is either open or closed throughout, which one instant decides.

use std::collections::BTreeSet;

use chrono::{
    DateTime, Datelike, NaiveDate, NaiveTime, Offset, TimeDelta, TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;

/// Minutes in a day: an interval may end at `24:00`.
pub const DAY_MINUTES: u16 = 24 * 60;

/// How far ahead a due time is looked for (a calendar open one hour a year still answers).
pub const HORIZON_DAYS: u64 = 4 * 366;

/// One opening interval of a day, in minutes after local midnight: `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Interval {
    pub start: u16,
    pub end: u16,
}

/// A calendar ready for arithmetic. [`Calendar::around_the_clock`] is open always (UTC).
#[derive(Clone, Debug)]
pub struct Calendar {
    tz: Tz,
    /// Monday first; each day's intervals sorted and disjoint.
    week: [Vec<Interval>; 7],
    holidays: BTreeSet<NaiveDate>,
    /// (month, day) closed every year.
    yearly: BTreeSet<(u32, u32)>,
    always_open: bool,
}

/// A stretch of time `[start, end)`.
pub type Span = (DateTime<Utc>, DateTime<Utc>);

impl Calendar {
    pub fn new(
        tz: Tz,
        week: [Vec<Interval>; 7],
        holidays: impl IntoIterator<Item = NaiveDate>,
        yearly: impl IntoIterator<Item = (u32, u32)>,
    ) -> Calendar {
        let week = week.map(|mut day| {
            day.sort();
            day
        });
        Calendar {
            tz,
            week,
            holidays: holidays.into_iter().collect(),
            yearly: yearly.into_iter().collect(),
            always_open: false,
        }
    }

    pub fn around_the_clock() -> Calendar {
        Calendar {
            tz: Tz::UTC,
            week: Default::default(),
            holidays: BTreeSet::new(),
            yearly: BTreeSet::new(),
            always_open: true,
        }
    }

    fn is_holiday(&self, date: NaiveDate) -> bool {
        self.holidays.contains(&date) || self.yearly.contains(&(date.month(), date.day()))
    }

    /// Whether the calendar is open at `t`.
    pub fn is_open(&self, t: DateTime<Utc>) -> bool {
        if self.always_open {
            return true;
        }
        let local = t.with_timezone(&self.tz);
        let date = local.date_naive();
        if self.is_holiday(date) {
            return false;
        }
        let second = local.num_seconds_from_midnight();
        self.week[date.weekday().num_days_from_monday() as usize]
            .iter()
            .any(|i| u32::from(i.start) * 60 <= second && second < u32::from(i.end) * 60)
    }

    /// The open spans from `from` on, in order, merged, the first one starting no earlier than
    /// `from`; the stream ends at the horizon ([`HORIZON_DAYS`]).
    pub fn open_spans(&self, from: DateTime<Utc>) -> impl Iterator<Item = Span> + '_ {
        let horizon = from + TimeDelta::days(HORIZON_DAYS as i64);
        let always = self.always_open.then_some((from, horizon)).into_iter();
        let first_day = from.date_naive().and_time(NaiveTime::MIN).and_utc();
        let days = (!self.always_open)
            .then(|| (0..=HORIZON_DAYS).map(move |n| first_day + TimeDelta::days(n as i64)))
            .into_iter()
            .flatten();
        let mut pending: Option<Span> = None;
        let mut spans = always.chain(
            days.flat_map(move |day| self.spans_of_utc_day(day))
                .filter_map(move |(a, b)| {
                    let a = a.max(from);
                    (a < b).then_some((a, b))
                }),
        );
        // Merge spans that touch (a span across UTC midnight comes in two parts).
        std::iter::from_fn(move || {
            loop {
                match (pending, spans.next()) {
                    (None, None) => return None,
                    (Some(p), None) => {
                        pending = None;
                        return Some(p);
                    }
                    (None, Some(s)) => pending = Some(s),
                    (Some(p), Some(s)) if p.1 == s.0 => pending = Some((p.0, s.1)),
                    (Some(p), Some(s)) => {
                        pending = Some(s);
                        return Some(p);
                    }
                }
            }
        })
    }

    /// The open spans within the UTC day starting at `start`.
    fn spans_of_utc_day(&self, start: DateTime<Utc>) -> Vec<Span> {
        let end = start + TimeDelta::days(1);
        let mut cuts = vec![start, end];
        let local_date = start.with_timezone(&self.tz).date_naive();
        for date in [
            local_date.pred_opt(),
            Some(local_date),
            local_date.succ_opt(),
        ]
        .into_iter()
        .flatten()
        {
            let midnight = date.and_time(NaiveTime::MIN);
            let bounds = self.week[date.weekday().num_days_from_monday() as usize]
                .iter()
                .flat_map(|i| [i.start, i.end])
                .chain([0]);
            for minute in bounds {
                let local = midnight + TimeDelta::minutes(i64::from(minute));
                for at in self
                    .tz
                    .from_local_datetime(&local)
                    .earliest()
                    .into_iter()
                    .chain(self.tz.from_local_datetime(&local).latest())
                {
                    let at = at.with_timezone(&Utc);
                    if start < at && at < end {
                        cuts.push(at);
                    }
                }
            }
        }
        cuts.extend(self.offset_change(start, end));
        cuts.sort();
        cuts.dedup();
        cuts.windows(2)
            .filter(|w| self.is_open(w[0]))
            .map(|w| (w[0], w[1]))
            .collect()
    }

    /// The instant in `(start, end)` at which the UTC offset changes, if it does (at most one a
    /// day in the IANA database's zones).
    fn offset_change(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let offset = |t: DateTime<Utc>| self.tz.offset_from_utc_datetime(&t.naive_utc()).fix();
        let before = offset(start);
        if offset(end) == before {
            return None;
        }
        // Offsets change on whole seconds: bisect to the first second with the new offset.
        let (mut lo, mut hi) = (start.timestamp(), end.timestamp());
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            let t = DateTime::from_timestamp(mid, 0).unwrap_or(start);
            if offset(t) == before {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        DateTime::from_timestamp(hi, 0)
    }
}

/// A stretch during which a clock does not run (the ticket waits on the customer); an open
/// pause has no end yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pause {
    pub from: DateTime<Utc>,
    pub to: Option<DateTime<Utc>>,
}

/// The spans in which a clock started at `start` runs: the calendar's open spans minus the
/// pauses (sorted by start, not overlapping); the stream ends at an open pause.
pub fn running_spans<'a>(
    cal: &'a Calendar,
    start: DateTime<Utc>,
    pauses: &'a [Pause],
) -> impl Iterator<Item = Span> + 'a {
    let mut stopped = false;
    cal.open_spans(start)
        .map_while(move |(a, b)| {
            if stopped {
                return None;
            }
            let mut pieces = Vec::new();
            let mut cursor = a;
            for p in pauses {
                if p.from >= b || p.to.is_some_and(|to| to <= cursor) {
                    continue;
                }
                if p.from > cursor {
                    pieces.push((cursor, p.from));
                }
                match p.to {
                    Some(to) => cursor = cursor.max(to),
                    None => {
                        stopped = true;
                        cursor = b;
                        break;
                    }
                }
            }
            if cursor < b {
                pieces.push((cursor, b));
            }
            Some(pieces)
        })
        .flatten()
}

/// Running time between `start` and `until`.
pub fn elapsed(
    cal: &Calendar,
    start: DateTime<Utc>,
    until: DateTime<Utc>,
    pauses: &[Pause],
) -> TimeDelta {
    running_spans(cal, start, pauses)
        .take_while(|(a, _)| *a < until)
        .map(|(a, b)| b.min(until) - a)
        .sum()
}

/// The instant at which a clock started at `start` has run for `target`; `None` while it is
/// paused before that, or when the calendar is not open long enough within the horizon.
pub fn due(
    cal: &Calendar,
    start: DateTime<Utc>,
    target: TimeDelta,
    pauses: &[Pause],
) -> Option<DateTime<Utc>> {
    let mut left = target;
    if left <= TimeDelta::zero() {
        return Some(start);
    }
    for (a, b) in running_spans(cal, start, pauses) {
        let length = b - a;
        if length >= left {
            return Some(a + left);
        }
        left -= length;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Days;
    use proptest::prelude::*;

    const ZONES: [Tz; 8] = [
        Tz::Europe__Berlin,
        Tz::America__New_York,
        Tz::Australia__Lord_Howe,
        Tz::Asia__Kolkata,
        Tz::UTC,
        Tz::America__Sao_Paulo,
        Tz::Pacific__Chatham,
        Tz::Europe__London,
    ];

    /// Days around daylight-saving changes in those zones (2026).
    const CHANGES: [(u32, u32); 6] = [(3, 8), (3, 29), (4, 5), (10, 4), (10, 25), (11, 1)];

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn weekdays_nine_to_five(tz: Tz) -> Calendar {
        let day = vec![Interval {
            start: 9 * 60,
            end: 17 * 60,
        }];
        let week = [
            day.clone(),
            day.clone(),
            day.clone(),
            day.clone(),
            day,
            vec![],
            vec![],
        ];
        Calendar::new(tz, week, [], [])
    }

    /// The reference: walk minute by minute, counting the minutes in which the clock runs.
    fn minute_walk(
        cal: &Calendar,
        start: DateTime<Utc>,
        pauses: &[Pause],
        mut stop: impl FnMut(DateTime<Utc>, i64) -> bool,
        limit: i64,
    ) -> Option<(DateTime<Utc>, i64)> {
        let paused = |t: DateTime<Utc>| {
            pauses
                .iter()
                .any(|p| p.from <= t && p.to.is_none_or(|to| t < to))
        };
        let mut counted = 0;
        for m in 0..limit {
            let t = start + TimeDelta::minutes(m);
            if stop(t, counted) {
                return Some((t, counted));
            }
            if cal.is_open(t) && !paused(t) {
                counted += 1;
            }
        }
        None
    }

    #[test]
    fn friday_afternoon_to_monday_morning_in_business_hours() {
        let cal = weekdays_nine_to_five(Tz::Europe__Berlin);
        // Friday 2026-11-27 16:00 Berlin (15:00 UTC) plus 2 h: Monday 10:00 Berlin.
        let due = due(&cal, at("2026-11-27T15:00:00Z"), TimeDelta::hours(2), &[]);
        assert_eq!(due, Some(at("2026-11-30T09:00:00Z")));
    }

    #[test]
    fn an_open_pause_stops_the_clock_and_a_closed_one_shifts_it() {
        let cal = Calendar::around_the_clock();
        let start = at("2026-01-01T00:00:00Z");
        let open = [Pause {
            from: at("2026-01-01T00:30:00Z"),
            to: None,
        }];
        assert_eq!(due(&cal, start, TimeDelta::hours(1), &open), None);
        let closed = [Pause {
            from: at("2026-01-01T00:30:00Z"),
            to: Some(at("2026-01-01T02:00:00Z")),
        }];
        assert_eq!(
            due(&cal, start, TimeDelta::hours(1), &closed),
            Some(at("2026-01-01T02:30:00Z"))
        );
        assert_eq!(
            elapsed(&cal, start, at("2026-01-01T03:00:00Z"), &closed),
            TimeDelta::minutes(90)
        );
    }

    #[test]
    fn spring_forward_shortens_a_night_shift_and_fall_back_lengthens_it() {
        // 00:00–06:00 every day in Berlin: 5 hours on 29 March 2026, 7 on 25 October.
        let night = vec![Interval {
            start: 0,
            end: 6 * 60,
        }];
        let cal = Calendar::new(
            Tz::Europe__Berlin,
            std::array::from_fn(|_| night.clone()),
            [],
            [],
        );
        let open_on = |from: &str, to: &str| elapsed(&cal, at(from), at(to), &[]);
        assert_eq!(
            open_on("2026-03-28T22:00:00Z", "2026-03-29T12:00:00Z"),
            TimeDelta::hours(5)
        );
        assert_eq!(
            open_on("2026-10-24T21:00:00Z", "2026-10-25T12:00:00Z"),
            TimeDelta::hours(7)
        );
    }

    #[test]
    fn holidays_and_yearly_holidays_are_closed() {
        let mut cal = weekdays_nine_to_five(Tz::UTC);
        cal.holidays
            .insert(NaiveDate::from_ymd_opt(2026, 12, 24).unwrap());
        cal.yearly.insert((12, 25));
        // Thursday 24th and Friday 25th closed: Wednesday 16:00 + 2 h is Monday 10:00.
        let due = due(&cal, at("2026-12-23T16:00:00Z"), TimeDelta::hours(2), &[]);
        assert_eq!(due, Some(at("2026-12-28T10:00:00Z")));
    }

    #[test]
    fn a_calendar_never_open_has_no_due_time() {
        let cal = Calendar::new(Tz::UTC, Default::default(), [], []);
        assert_eq!(
            due(&cal, at("2026-01-01T00:00:00Z"), TimeDelta::minutes(1), &[]),
            None
        );
    }

    fn calendars() -> impl Strategy<Value = Calendar> {
        let day = proptest::collection::btree_set(0u16..=48, 0..=4).prop_map(|cuts| {
            let cuts: Vec<u16> = cuts.into_iter().map(|c| c * 30).collect();
            cuts.chunks_exact(2)
                .map(|c| Interval {
                    start: c[0],
                    end: c[1],
                })
                .collect::<Vec<_>>()
        });
        (
            0..ZONES.len(),
            proptest::array::uniform7(day),
            proptest::collection::vec((0u32..CHANGES.len() as u32, 0u64..4), 0..3),
            proptest::collection::vec((1u32..=12, 1u32..=28), 0..2),
        )
            .prop_map(|(zone, mut week, holidays, yearly)| {
                // Open at least an hour on Mondays, so every clock ends within the walk.
                if week[0].is_empty() {
                    week[0].push(Interval {
                        start: 10 * 60,
                        end: 11 * 60,
                    });
                }
                let holidays = holidays.into_iter().map(|(c, back)| {
                    let (m, d) = CHANGES[c as usize];
                    NaiveDate::from_ymd_opt(2026, m, d).unwrap() - Days::new(back)
                });
                Calendar::new(ZONES[zone], week, holidays, yearly)
            })
    }

    fn starts() -> impl Strategy<Value = DateTime<Utc>> {
        (0..CHANGES.len(), 0i64..4 * 24 * 60).prop_map(|(c, minutes)| {
            let (m, d) = CHANGES[c];
            NaiveDate::from_ymd_opt(2026, m, d)
                .unwrap()
                .and_time(NaiveTime::MIN)
                .and_utc()
                - TimeDelta::days(3)
                + TimeDelta::minutes(minutes)
        })
    }

    fn pauses() -> impl Strategy<Value = Vec<(i64, i64, bool)>> {
        proptest::collection::vec(
            (
                0i64..3 * 24 * 60,
                1i64..2 * 24 * 60,
                proptest::bool::weighted(0.2),
            ),
            0..3,
        )
    }

    /// Sorted, disjoint pauses after `start` (only the last may be open).
    fn to_pauses(start: DateTime<Utc>, raw: Vec<(i64, i64, bool)>) -> Vec<Pause> {
        let mut raw = raw;
        raw.sort();
        let mut out: Vec<Pause> = Vec::new();
        let mut free_from = 0;
        for (offset, length, open) in raw {
            let from = offset.max(free_from);
            out.push(Pause {
                from: start + TimeDelta::minutes(from),
                to: (!open).then(|| start + TimeDelta::minutes(from + length)),
            });
            if open {
                break;
            }
            free_from = from + length + 1;
        }
        out
    }

    const WALK: i64 = 60 * 24 * 60;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn due_matches_a_minute_by_minute_walk(
            cal in calendars(),
            start in starts(),
            raw in pauses(),
            target in 1i64..3000,
        ) {
            let pauses = to_pauses(start, raw);
            let walked = minute_walk(&cal, start, &pauses, |_, counted| counted == target, WALK);
            let computed = due(&cal, start, TimeDelta::minutes(target), &pauses);
            match walked {
                Some((t, _)) => prop_assert_eq!(computed, Some(t)),
                // Not reached in the walk: paused for good, or further out than it goes.
                None => prop_assert!(computed.is_none_or(|d| d >= start + TimeDelta::minutes(WALK))),
            }
        }

        #[test]
        fn elapsed_matches_a_minute_by_minute_walk(
            cal in calendars(),
            start in starts(),
            raw in pauses(),
            length in 0i64..20 * 24 * 60,
        ) {
            let pauses = to_pauses(start, raw);
            let until = start + TimeDelta::minutes(length);
            let (_, counted) = minute_walk(&cal, start, &pauses, |t, _| t == until, length + 1).unwrap();
            prop_assert_eq!(elapsed(&cal, start, until, &pauses), TimeDelta::minutes(counted));
        }
    }
}
