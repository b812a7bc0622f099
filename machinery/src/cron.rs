//! Cron schedules as upstream's CronJobs read them: the grammar of `robfig/cron/v3`'s
//! standard parser (five fields: minute, hour, day of month, month, day of week; `*` and `?`,
//! ranges, steps, lists, month and weekday names; the `@yearly`, `@annually`, `@monthly`,
//! `@weekly`, `@daily`, `@midnight` and `@hourly` descriptors and `@every <duration>`; a
//! leading `TZ=` or `CRON_TZ=` zone) with its error messages, which the API server returns
//! verbatim, and its way of finding the next activation in a time zone, daylight saving
//! transitions included (a wall time skipped by a spring-forward does not run that day; one
//! repeated by a fall-back runs twice).
//!
//! Written here rather than taken from a cron crate because the API's validation messages are
//! robfig's and the schedule must agree with upstream's controller on every edge (which
//! instant a DST gap resolves to, day-of-month OR day-of-week unless one is `*`, `N/step`
//! meaning `N-max/step`). Time zones come from `jiff`'s tz database: the system's
//! `/usr/share/zoneinfo` first and, as upstream embeds Go's `time/tzdata`, a bundled copy
//! where the system has none.

use jiff::civil::{Date, DateTime};
use jiff::tz::{Offset, TimeZone};
use jiff::{Span, Timestamp};

use crate::duration::{parse_duration, DurationError};

/// Set on a field written as `*` or `?` (without a step above 1), which changes how the day
/// of month and the day of week combine.
const STAR: u64 = 1 << 63;

/// A schedule that finds no activation within this many years has none (robfig gives up
/// there and returns Go's zero time).
const YEAR_LIMIT: i16 = 5;

/// Why a schedule does not parse, in robfig's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(String);

/// A zone name that names no zone, as Go's `time.LoadLocation` says it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown time zone {0}")]
pub struct UnknownTimeZone(pub String);

/// The IANA zone `name`, as Go's `time.LoadLocation` finds it: `""` and `UTC` are UTC, and
/// names are matched exactly (jiff's lookup ignores case, Go's files do not).
pub fn load_location(name: &str) -> Result<TimeZone, UnknownTimeZone> {
    if name.is_empty() || name == "UTC" {
        return Ok(TimeZone::UTC);
    }
    let unknown = || UnknownTimeZone(name.to_string());
    let zone = TimeZone::get(name).map_err(|_| unknown())?;
    if zone.iana_name() != Some(name) {
        return Err(unknown());
    }
    Ok(zone)
}

/// A parsed schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    kind: Kind,
    /// The zone of a `TZ=`/`CRON_TZ=` prefix; without one the caller's zone applies.
    location: Option<TimeZone>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// One bit per allowed value of each field (bit 63: written as a star).
    Fields {
        second: u64,
        minute: u64,
        hour: u64,
        dom: u64,
        month: u64,
        dow: u64,
    },
    /// `@every <duration>`: whole seconds, at least one.
    Every(i64),
}

/// One field's allowed values and names.
struct Bounds {
    min: u32,
    max: u32,
    names: &'static [(&'static str, u32)],
}

const MINUTES: Bounds = Bounds {
    min: 0,
    max: 59,
    names: &[],
};
const HOURS: Bounds = Bounds {
    min: 0,
    max: 23,
    names: &[],
};
const DOM: Bounds = Bounds {
    min: 1,
    max: 31,
    names: &[],
};
const MONTHS: Bounds = Bounds {
    min: 1,
    max: 12,
    names: &[
        ("jan", 1),
        ("feb", 2),
        ("mar", 3),
        ("apr", 4),
        ("may", 5),
        ("jun", 6),
        ("jul", 7),
        ("aug", 8),
        ("sep", 9),
        ("oct", 10),
        ("nov", 11),
        ("dec", 12),
    ],
};
const DOW: Bounds = Bounds {
    min: 0,
    max: 6,
    names: &[
        ("sun", 0),
        ("mon", 1),
        ("tue", 2),
        ("wed", 3),
        ("thu", 4),
        ("fri", 5),
        ("sat", 6),
    ],
};

fn error(message: impl Into<String>) -> ParseError {
    ParseError(message.into())
}

/// Parses `spec` as robfig's `ParseStandard` does (what upstream validates CronJob schedules
/// with and schedules them by).
pub fn parse_standard(spec: &str) -> Result<Schedule, ParseError> {
    if spec.is_empty() {
        return Err(error("empty spec string"));
    }
    let mut spec = spec;
    let mut location = None;
    if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
        let eq = spec.find('=').unwrap_or(0);
        // robfig slices up to the first space; with none Go panics, here the rest is the
        // zone and no fields remain.
        let end = spec.find(' ').unwrap_or(spec.len());
        let name = &spec[eq + 1..end];
        let zone =
            load_location(name).map_err(|e| error(format!("provided bad location {name}: {e}")))?;
        location = Some(zone);
        spec = spec[end..].trim();
    }
    let kind = if spec.starts_with('@') {
        descriptor(spec)?
    } else {
        let fields: Vec<&str> = spec.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(error(format!(
                "expected exactly 5 fields, found {}: [{}]",
                fields.len(),
                fields.join(" ")
            )));
        }
        Kind::Fields {
            second: 1,
            minute: field(fields[0], &MINUTES)?,
            hour: field(fields[1], &HOURS)?,
            dom: field(fields[2], &DOM)?,
            month: field(fields[3], &MONTHS)?,
            dow: field(fields[4], &DOW)?,
        }
    };
    Ok(Schedule { kind, location })
}

/// The predefined schedules; anything else starting with `@` is refused.
fn descriptor(spec: &str) -> Result<Kind, ParseError> {
    let all = |b: &Bounds| bits(b.min, b.max, 1) | STAR;
    let at = |minute: u64, hour: u64, dom: u64, month: u64, dow: u64| Kind::Fields {
        second: 1,
        minute,
        hour,
        dom,
        month,
        dow,
    };
    Ok(match spec {
        "@yearly" | "@annually" => at(1, 1, 1 << 1, 1 << 1, all(&DOW)),
        "@monthly" => at(1, 1, 1 << 1, all(&MONTHS), all(&DOW)),
        "@weekly" => at(1, 1, all(&DOM), all(&MONTHS), 1),
        "@daily" | "@midnight" => at(1, 1, all(&DOM), all(&MONTHS), all(&DOW)),
        "@hourly" => at(1, all(&HOURS), all(&DOM), all(&MONTHS), all(&DOW)),
        _ => {
            let Some(text) = spec.strip_prefix("@every ") else {
                return Err(error(format!("unrecognized descriptor: {spec}")));
            };
            // Go's durations may be negative (ours refuse them): the sign is read here, and
            // robfig raises anything under a second to one.
            let (negative, magnitude) = match text.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, text),
            };
            let parsed = parse_duration(magnitude).map_err(|e| {
                let whole = text.to_string();
                let e = match e {
                    DurationError::MissingUnit(_) => DurationError::MissingUnit(whole),
                    DurationError::UnknownUnit { unit, .. } => {
                        DurationError::UnknownUnit { unit, text: whole }
                    }
                    DurationError::Invalid(_) | DurationError::Negative(_) => {
                        DurationError::Invalid(whole)
                    }
                };
                error(format!("failed to parse duration {spec}: {e}"))
            })?;
            let seconds = if negative { 1 } else { parsed.as_secs().max(1) };
            Kind::Every(i64::try_from(seconds).unwrap_or(i64::MAX))
        }
    })
}

/// A comma-separated list of ranges (empty items are skipped, as Go's `FieldsFunc` does).
fn field(text: &str, bounds: &Bounds) -> Result<u64, ParseError> {
    text.split(',')
        .filter(|item| !item.is_empty())
        .try_fold(0, |acc, item| Ok(acc | range(item, bounds)?))
}

/// `*`, `?`, `N`, `N-M`, each optionally `/step` (`N/step` meaning `N-max/step`).
fn range(expr: &str, bounds: &Bounds) -> Result<u64, ParseError> {
    let range_and_step: Vec<&str> = expr.split('/').collect();
    let low_and_high: Vec<&str> = range_and_step[0].split('-').collect();
    let single = low_and_high.len() == 1;
    let (start, mut end, mut extra) = if low_and_high[0] == "*" || low_and_high[0] == "?" {
        (bounds.min, bounds.max, STAR)
    } else {
        let start = int_or_name(low_and_high[0], bounds)?;
        let end = match low_and_high.len() {
            1 => start,
            2 => int_or_name(low_and_high[1], bounds)?,
            _ => return Err(error(format!("too many hyphens: {expr}"))),
        };
        (start, end, 0)
    };
    let step = match range_and_step.len() {
        1 => 1,
        2 => {
            let step = int(range_and_step[1])?;
            if single {
                end = bounds.max;
            }
            if step > 1 {
                extra = 0;
            }
            step
        }
        _ => return Err(error(format!("too many slashes: {expr}"))),
    };
    if start < bounds.min {
        return Err(error(format!(
            "beginning of range ({start}) below minimum ({}): {expr}",
            bounds.min
        )));
    }
    if end > bounds.max {
        return Err(error(format!(
            "end of range ({end}) above maximum ({}): {expr}",
            bounds.max
        )));
    }
    if start > end {
        return Err(error(format!(
            "beginning of range ({start}) beyond end of range ({end}): {expr}"
        )));
    }
    if step == 0 {
        return Err(error(format!(
            "step of range should be a positive number: {expr}"
        )));
    }
    Ok(bits(start, end, step) | extra)
}

fn int_or_name(expr: &str, bounds: &Bounds) -> Result<u32, ParseError> {
    let lower = expr.to_lowercase();
    match bounds.names.iter().find(|(name, _)| *name == lower) {
        Some((_, value)) => Ok(*value),
        None => int(expr),
    }
}

/// A non-negative decimal as Go's `strconv.Atoi` reads it (an optional sign, digits only).
fn int(expr: &str) -> Result<u32, ParseError> {
    let failed = |why: &str| {
        error(format!(
            "failed to parse int from {expr}: strconv.Atoi: parsing {expr:?}: {why}"
        ))
    };
    let digits = expr
        .strip_prefix('-')
        .or_else(|| expr.strip_prefix('+'))
        .unwrap_or(expr);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(failed("invalid syntax"));
    }
    let value: i64 = expr.parse().map_err(|_| failed("value out of range"))?;
    if value < 0 {
        return Err(error(format!(
            "negative number ({value}) not allowed: {expr}"
        )));
    }
    // Anything this large is above every field's maximum; saturate to keep that message.
    Ok(u32::try_from(value).unwrap_or(u32::MAX))
}

/// The bits `start..=end` every `step`.
fn bits(start: u32, end: u32, step: u32) -> u64 {
    (start..=end)
        .step_by(step as usize)
        .fold(0, |acc, i| acc | 1 << i)
}

fn has(bits: u64, value: impl Into<i64>) -> bool {
    u32::try_from(value.into()).is_ok_and(|v| v < 64 && bits & (1 << v) != 0)
}

/// A wall-clock instant in a zone, moved the ways Go's `time.Time` moves in robfig's search:
/// by absolute seconds, or to a wall time resolved as Go's `time.Date` resolves it.
#[derive(Clone)]
struct Cursor<'z> {
    zone: &'z TimeZone,
    second: i64,
    wall: DateTime,
}

impl<'z> Cursor<'z> {
    fn at(zone: &'z TimeZone, second: i64) -> Option<Cursor<'z>> {
        let wall = zone.to_datetime(Timestamp::from_second(second).ok()?);
        Some(Cursor { zone, second, wall })
    }

    fn add_seconds(&self, seconds: i64) -> Option<Cursor<'z>> {
        Cursor::at(self.zone, self.second.checked_add(seconds)?)
    }

    /// Go's `time.Date(year, month, day, hour, minute, second, 0, zone)`: the month and day
    /// may overflow into the next ones, and a wall time that does not exist or exists twice
    /// takes the offset in force at that wall time read as UTC, corrected once if that
    /// offset does not hold at the instant it gives.
    fn date(&self, year: i16, month: i8, day: i32, hour: i8, minute: i8) -> Option<Cursor<'z>> {
        let months = i32::from(year) * 12 + i32::from(month) - 1;
        let first = Date::new(
            i16::try_from(months.div_euclid(12)).ok()?,
            i8::try_from(months.rem_euclid(12) + 1).ok()?,
            1,
        )
        .ok()?;
        let date = first.checked_add(Span::new().days(day - 1)).ok()?;
        let wall = date.at(hour, minute, 0, 0);
        let unix = Offset::UTC.to_timestamp(wall).ok()?.as_second();
        let offset = |second: i64| {
            Timestamp::from_second(second)
                .ok()
                .map(|t| i64::from(self.zone.to_offset(t).seconds()))
        };
        let guess = offset(unix)?;
        let actual = offset(unix - guess)?;
        let second = if actual == guess {
            unix - guess
        } else {
            unix - actual
        };
        Cursor::at(self.zone, second)
    }

    fn year(&self) -> i16 {
        self.wall.year()
    }
    fn month(&self) -> i8 {
        self.wall.month()
    }
    fn day(&self) -> i8 {
        self.wall.day()
    }
    fn hour(&self) -> i8 {
        self.wall.hour()
    }
    fn minute(&self) -> i8 {
        self.wall.minute()
    }
    fn weekday(&self) -> i8 {
        self.wall.weekday().to_sunday_zero_offset()
    }
}

impl Schedule {
    /// The first activation strictly after `after`, reading the schedule in its `TZ=` zone
    /// or else in `zone`; `None` when there is none within five years (`0 0 30 2 *`).
    pub fn next(&self, after: Timestamp, zone: &TimeZone) -> Option<Timestamp> {
        let zone = self.location.as_ref().unwrap_or(zone);
        let (second, minute, hour, dom, month, dow) = match self.kind {
            Kind::Every(delay) => {
                return Timestamp::from_second(after.as_second().checked_add(delay)?).ok()
            }
            Kind::Fields {
                second,
                minute,
                hour,
                dom,
                month,
                dow,
            } => (second, minute, hour, dom, month, dow),
        };
        let day_matches = |t: &Cursor| {
            let dom_match = has(dom, t.day());
            let dow_match = has(dow, t.weekday());
            if dom & STAR != 0 || dow & STAR != 0 {
                dom_match && dow_match
            } else {
                dom_match || dow_match
            }
        };
        // The earliest candidate is the next whole second.
        let mut t = Cursor::at(zone, after.as_second().checked_add(1)?)?;
        let mut added = false;
        let limit = t.year().checked_add(YEAR_LIMIT)?;
        'wrap: loop {
            if t.year() > limit {
                return None;
            }
            while !has(month, t.month()) {
                if !added {
                    added = true;
                    t = t.date(t.year(), t.month(), 1, 0, 0)?;
                }
                t = t.date(
                    t.year(),
                    t.month() + 1,
                    i32::from(t.day()),
                    t.hour(),
                    t.minute(),
                )?;
                if t.month() == 1 {
                    continue 'wrap;
                }
            }
            while !day_matches(&t) {
                if !added {
                    added = true;
                    t = t.date(t.year(), t.month(), i32::from(t.day()), 0, 0)?;
                }
                t = t.date(
                    t.year(),
                    t.month(),
                    i32::from(t.day()) + 1,
                    t.hour(),
                    t.minute(),
                )?;
                // A midnight that DST skipped or repeated lands on another hour: back to
                // the day's start.
                let h = i64::from(t.hour());
                if h != 0 {
                    t = t.add_seconds(if h > 12 { (24 - h) * 3600 } else { -h * 3600 })?;
                }
                if t.day() == 1 {
                    continue 'wrap;
                }
            }
            while !has(hour, t.hour()) {
                if !added {
                    added = true;
                    t = t.date(t.year(), t.month(), i32::from(t.day()), t.hour(), 0)?;
                }
                t = t.add_seconds(3600)?;
                if t.hour() == 0 {
                    continue 'wrap;
                }
            }
            while !has(minute, t.minute()) {
                if !added {
                    added = true;
                    t = t.add_seconds(-t.second.rem_euclid(60))?;
                }
                t = t.add_seconds(60)?;
                if t.minute() == 0 {
                    continue 'wrap;
                }
            }
            while !has(second, t.wall.second()) {
                added = true;
                t = t.add_seconds(1)?;
                if t.wall.second() == 0 {
                    continue 'wrap;
                }
            }
            return Timestamp::from_second(t.second).ok();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn next_in(spec: &str, after: &str, zone: &str) -> String {
        let zone = load_location(zone).unwrap();
        let next = parse_standard(spec)
            .unwrap()
            .next(ts(after), &zone)
            .unwrap();
        next.to_zoned(zone)
            .strftime("%Y-%m-%dT%H:%M:%S%:z")
            .to_string()
    }

    fn next(spec: &str, after: &str) -> String {
        next_in(spec, after, "UTC")
    }

    fn parse_error(spec: &str) -> String {
        parse_standard(spec).unwrap_err().to_string()
    }

    #[test]
    fn standard_fields() {
        let after = "2024-05-15T10:07:30Z";
        assert_eq!(next("* * * * *", after), "2024-05-15T10:08:00+00:00");
        assert_eq!(next("*/1 * * * *", after), "2024-05-15T10:08:00+00:00");
        assert_eq!(next("*/15 * * * *", after), "2024-05-15T10:15:00+00:00");
        assert_eq!(next("5 * * * *", after), "2024-05-15T11:05:00+00:00");
        assert_eq!(next("7 10 * * *", after), "2024-05-16T10:07:00+00:00");
        assert_eq!(next("0 9-17/4 * * *", after), "2024-05-15T13:00:00+00:00");
        assert_eq!(
            next("30 6-16/4 * * 1-5", after),
            "2024-05-15T10:30:00+00:00"
        );
        assert_eq!(next("0,30 22 * * *", after), "2024-05-15T22:00:00+00:00");
        assert_eq!(next("10/20 * * * *", after), "2024-05-15T10:10:00+00:00");
        assert_eq!(next("0 0 1 JAN *", after), "2025-01-01T00:00:00+00:00");
        assert_eq!(next("0 12 * * sun", after), "2024-05-19T12:00:00+00:00");
        assert_eq!(next("0 12 ? * MON-WED", after), "2024-05-15T12:00:00+00:00");
        // 2024-02-29 exists; the next 29th of February after it is four years on.
        assert_eq!(next("0 0 29 2 *", after), "2028-02-29T00:00:00+00:00");
        // A day of month and a day of week both restricted: either matches.
        assert_eq!(next("0 0 20 * 5", after), "2024-05-17T00:00:00+00:00");
        // One of them a star: both must.
        assert_eq!(next("0 0 * * 5", after), "2024-05-17T00:00:00+00:00");
        assert_eq!(next("0 0 20 * *", after), "2024-05-20T00:00:00+00:00");
        assert_eq!(next("59 23 31 12 *", after), "2024-12-31T23:59:00+00:00");
        // An activation is strictly after the instant given.
        assert_eq!(
            next("8 10 * * *", "2024-05-15T10:08:00Z"),
            "2024-05-16T10:08:00+00:00"
        );
        assert!(parse_standard("0 0 30 2 *")
            .unwrap()
            .next(ts(after), &TimeZone::UTC)
            .is_none());
    }

    #[test]
    fn descriptors() {
        let after = "2024-05-15T10:07:30Z";
        assert_eq!(next("@hourly", after), "2024-05-15T11:00:00+00:00");
        assert_eq!(next("@daily", after), "2024-05-16T00:00:00+00:00");
        assert_eq!(next("@midnight", after), "2024-05-16T00:00:00+00:00");
        assert_eq!(next("@weekly", after), "2024-05-19T00:00:00+00:00");
        assert_eq!(next("@monthly", after), "2024-06-01T00:00:00+00:00");
        assert_eq!(next("@yearly", after), "2025-01-01T00:00:00+00:00");
        assert_eq!(next("@annually", after), "2025-01-01T00:00:00+00:00");
        assert_eq!(next("@every 90s", after), "2024-05-15T10:09:00+00:00");
        assert_eq!(next("@every 1h30m", after), "2024-05-15T11:37:30+00:00");
        assert_eq!(next("@every 10ms", after), "2024-05-15T10:07:31+00:00");
    }

    #[test]
    fn time_zones() {
        let after = "2024-05-15T10:07:30Z";
        assert_eq!(
            next_in("0 9 * * *", after, "Asia/Tokyo"),
            "2024-05-16T09:00:00+09:00"
        );
        assert_eq!(
            next_in("0 9 * * *", after, "America/New_York"),
            "2024-05-15T09:00:00-04:00"
        );
        assert_eq!(
            next_in("0 * * * *", after, "Asia/Kolkata"),
            "2024-05-15T16:00:00+05:30"
        );
        // The schedule's own zone wins over the caller's.
        let schedule = parse_standard("CRON_TZ=Asia/Tokyo 0 9 * * *").unwrap();
        assert_eq!(
            schedule.next(ts(after), &TimeZone::UTC),
            Some(ts("2024-05-16T00:00:00Z"))
        );
        let schedule = parse_standard("TZ=UTC @hourly").unwrap();
        assert_eq!(
            schedule.next(ts(after), &load_location("Asia/Kolkata").unwrap()),
            Some(ts("2024-05-15T11:00:00Z"))
        );
    }

    #[test]
    fn daylight_saving_transitions() {
        // New York springs forward at 02:00 on 2024-03-10: 02:30 does not exist that day.
        assert_eq!(
            next_in("30 2 * * *", "2024-03-09T12:00:00Z", "America/New_York"),
            "2024-03-11T02:30:00-04:00"
        );
        // Hourly runs skip the missing hour.
        assert_eq!(
            next_in("0 * * * *", "2024-03-10T06:30:00Z", "America/New_York"),
            "2024-03-10T03:00:00-04:00"
        );
        // It falls back at 02:00 on 2024-11-03: 01:30 happens twice, and runs twice.
        assert_eq!(
            next_in("30 1 * * *", "2024-11-03T04:00:00Z", "America/New_York"),
            "2024-11-03T01:30:00-04:00"
        );
        assert_eq!(
            next_in("30 1 * * *", "2024-11-03T05:30:00Z", "America/New_York"),
            "2024-11-03T01:30:00-05:00"
        );
        assert_eq!(
            next_in("30 1 * * *", "2024-11-03T06:30:00Z", "America/New_York"),
            "2024-11-04T01:30:00-05:00"
        );
        // Europe's transitions are at 01:00 UTC: 02:30 is skipped in March...
        assert_eq!(
            next_in("30 2 * * *", "2024-03-30T12:00:00Z", "Europe/Berlin"),
            "2024-04-01T02:30:00+02:00"
        );
        // ...and repeated in October.
        assert_eq!(
            next_in("30 2 * * *", "2024-10-26T12:00:00Z", "Europe/Berlin"),
            "2024-10-27T02:30:00+02:00"
        );
        assert_eq!(
            next_in("30 2 * * *", "2024-10-27T00:30:00Z", "Europe/Berlin"),
            "2024-10-27T02:30:00+01:00"
        );
        // Where midnight itself is skipped (Chile springs forward at 24:00 on 2024-09-07),
        // a midnight run skips that day as robfig's hour search does...
        assert_eq!(
            next_in("0 0 * * *", "2024-09-07T12:00:00Z", "America/Santiago"),
            "2024-09-09T00:00:00-03:00"
        );
        // ...and so does a weekly one: the day search lands on 01:00 that Sunday, which the
        // hour search then leaves for the following week.
        assert_eq!(
            next_in("0 0 * * 0", "2024-09-05T12:00:00Z", "America/Santiago"),
            "2024-09-15T00:00:00-03:00"
        );
    }

    #[test]
    fn errors_as_robfig_words_them() {
        assert_eq!(parse_error(""), "empty spec string");
        assert_eq!(
            parse_error("foo"),
            "expected exactly 5 fields, found 1: [foo]"
        );
        assert_eq!(
            parse_error("* * * * * *"),
            "expected exactly 5 fields, found 6: [* * * * * *]"
        );
        assert_eq!(
            parse_error("60 * * * *"),
            "end of range (60) above maximum (59): 60"
        );
        assert_eq!(
            parse_error("* * 0 * *"),
            "beginning of range (0) below minimum (1): 0"
        );
        assert_eq!(
            parse_error("5-1 * * * *"),
            "beginning of range (5) beyond end of range (1): 5-1"
        );
        assert_eq!(
            parse_error("*/0 * * * *"),
            "step of range should be a positive number: */0"
        );
        assert_eq!(parse_error("1-2-3 * * * *"), "too many hyphens: 1-2-3");
        assert_eq!(parse_error("1/2/3 * * * *"), "too many slashes: 1/2/3");
        assert_eq!(
            parse_error("x * * * *"),
            r#"failed to parse int from x: strconv.Atoi: parsing "x": invalid syntax"#
        );
        assert_eq!(
            parse_error("* * * FOO *"),
            r#"failed to parse int from FOO: strconv.Atoi: parsing "FOO": invalid syntax"#
        );
        assert_eq!(
            parse_error("-5 * * * *"),
            r#"failed to parse int from : strconv.Atoi: parsing "": invalid syntax"#
        );
        assert_eq!(
            parse_error("* * * * 7"),
            "end of range (7) above maximum (6): 7"
        );
        assert_eq!(
            parse_error("@fortnightly"),
            "unrecognized descriptor: @fortnightly"
        );
        assert_eq!(
            parse_error("@every x"),
            r#"failed to parse duration @every x: time: invalid duration "x""#
        );
        assert_eq!(
            parse_error("TZ=Mars/Olympus * * * * *"),
            "provided bad location Mars/Olympus: unknown time zone Mars/Olympus"
        );
        // Names are case-insensitive; empty list items are skipped as Go's FieldsFunc does.
        assert!(parse_standard("0 0 * jan,Feb,MAR sUn").is_ok());
        assert!(parse_standard("0,,5 * * * *").is_ok());
        assert!(parse_standard("TZ=Europe/Berlin 0 0 * * *").is_ok());
    }

    #[test]
    fn zones_load_like_go() {
        assert!(load_location("Europe/Berlin").is_ok());
        assert!(load_location("").is_ok_and(|z| z == TimeZone::UTC));
        assert_eq!(
            load_location("europe/berlin").unwrap_err().to_string(),
            "unknown time zone europe/berlin"
        );
        assert!(load_location("Nowhere/Special").is_err());
    }
}
