//! When a CronJob's Jobs are due, as upstream's v2 controller works it out: from the last
//! scheduled time (or the CronJob's creation), optionally no further back than
//! `startingDeadlineSeconds`, the most recent activation that has passed, how many were
//! missed, and when to look again.

use std::time::Duration;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use machinery::cron::Schedule;

/// Upstream wakes this long after an activation, so a clock a little behind still sees it
/// as due.
const NEXT_SCHEDULE_DELTA: SignedDuration = SignedDuration::from_millis(100);

/// More missed activations than this get a warning (upstream's arbitrary "more than 80
/// hourly runs over a long weekend, but less than lots").
const TOO_MANY_MISSED: i64 = 100;

/// How many activations passed unmet since the earliest time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missed {
    None,
    Few,
    Many,
}

/// What a CronJob's schedule says at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recent {
    /// The last scheduled time, else the creation time (later, if the deadline says so).
    pub earliest: Timestamp,
    /// The latest activation after `earliest` and not after now.
    pub most_recent: Option<Timestamp>,
    pub missed: Missed,
}

/// A schedule whose activations are not at least a second apart: grammatically fine but
/// never due (`59 23 31 2 *`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("time difference between two schedules is less than 1 second")]
pub struct NeverDue;

/// The CronJob's facts the schedule is read against.
pub struct Clock<'a> {
    pub schedule: &'a Schedule,
    pub zone: &'a TimeZone,
    pub created: Timestamp,
    pub last_scheduled: Option<Timestamp>,
    pub starting_deadline_seconds: Option<i64>,
}

impl Clock<'_> {
    fn next(&self, after: Timestamp) -> Option<Timestamp> {
        self.schedule.next(after, self.zone)
    }

    /// Upstream's `mostRecentScheduleTime`. Missed activations are counted from the gap
    /// between the first two, so a long outage costs a few steps, not one per activation.
    pub fn most_recent(&self, now: Timestamp, with_deadline: bool) -> Result<Recent, NeverDue> {
        let mut earliest = self.last_scheduled.unwrap_or(self.created);
        if let Some(deadline) = self.starting_deadline_seconds.filter(|_| with_deadline) {
            let cutoff = now - SignedDuration::from_secs(deadline);
            earliest = earliest.max(cutoff);
        }
        let recent = |most_recent, missed| Recent {
            earliest,
            most_recent,
            missed,
        };
        let first = self.next(earliest).ok_or(NeverDue)?;
        if now < first {
            return Ok(recent(None, Missed::None));
        }
        let second = self.next(first).ok_or(NeverDue)?;
        if now < second {
            return Ok(recent(Some(first), Missed::None));
        }
        let between = second.as_second() - first.as_second();
        if between < 1 {
            return Err(NeverDue);
        }
        let elapsed = now.duration_since(first).as_secs();
        let missed = elapsed / between + 1;
        // Start one step early and let the schedule itself find the latest activation, as
        // uneven schedules (`30 6-16/4 * * 1-5`) are not a fixed step apart.
        let mut cursor =
            Some(first + SignedDuration::from_secs((missed - 2).saturating_mul(between)));
        let mut most_recent = None;
        while let Some(at) = cursor.and_then(|c| self.next(c)).filter(|at| *at <= now) {
            most_recent = Some(at);
            cursor = Some(at);
        }
        let missed = if missed > TOO_MANY_MISSED {
            Missed::Many
        } else {
            Missed::Few
        };
        Ok(recent(most_recent, missed))
    }

    /// Upstream's `nextScheduleTimeDuration`: how long until the activation after the most
    /// recent one (or after now, when some were missed or the schedule is unusable), plus a
    /// little; `None` when the schedule has no next activation.
    pub fn requeue_after(&self, now: Timestamp) -> Option<Duration> {
        let from = match self.most_recent(now, false) {
            Err(NeverDue) => now,
            Ok(Recent {
                most_recent: Some(at),
                ..
            }) => at,
            Ok(Recent {
                earliest,
                missed: Missed::None,
                ..
            }) => earliest,
            Ok(_) => now,
        };
        let at = self.next(from)? + NEXT_SCHEDULE_DELTA;
        Some(Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO))
    }

    /// Upstream's `nextScheduleTime`: the activation to run now, if one is due.
    pub fn due(&self, now: Timestamp) -> Result<(Option<Timestamp>, Missed), NeverDue> {
        let recent = self.most_recent(now, true)?;
        Ok((recent.most_recent.filter(|at| *at <= now), recent.missed))
    }
}

/// The Job's name: the CronJob's and the scheduled time in minutes since the epoch, the same
/// for every attempt at one activation so a Job is never made twice for it.
pub fn job_name(cron_job: &str, scheduled: Timestamp) -> String {
    format!("{cron_job}-{}", scheduled.as_second().div_euclid(60))
}

/// Go's RFC 3339 form of `at` in `zone` (`Z` for a zero offset), as the
/// `batch.kubernetes.io/cronjob-scheduled-timestamp` annotation carries it.
pub fn rfc3339_in(at: Timestamp, zone: &TimeZone) -> String {
    let zoned = at.to_zoned(zone.clone());
    if zoned.offset().seconds() == 0 {
        zoned.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        zoned.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use machinery::cron::{load_location, parse_standard};

    fn ts(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    struct Case {
        schedule: Schedule,
        zone: TimeZone,
        created: Timestamp,
        last: Option<Timestamp>,
        deadline: Option<i64>,
    }

    impl Case {
        fn new(spec: &str, created: &str) -> Case {
            Case {
                schedule: parse_standard(spec).unwrap(),
                zone: TimeZone::UTC,
                created: ts(created),
                last: None,
                deadline: None,
            }
        }

        fn clock(&self) -> Clock<'_> {
            Clock {
                schedule: &self.schedule,
                zone: &self.zone,
                created: self.created,
                last_scheduled: self.last,
                starting_deadline_seconds: self.deadline,
            }
        }
    }

    #[test]
    fn a_new_cron_job_waits_for_its_first_activation() {
        let case = Case::new("*/1 * * * *", "2025-01-01T10:00:20Z");
        let clock = case.clock();
        assert_eq!(
            clock.due(ts("2025-01-01T10:00:50Z")).unwrap(),
            (None, Missed::None)
        );
        assert_eq!(
            clock.requeue_after(ts("2025-01-01T10:00:50Z")),
            Some(Duration::from_millis(10_100))
        );
        assert_eq!(
            clock.due(ts("2025-01-01T10:01:00.2Z")).unwrap(),
            (Some(ts("2025-01-01T10:01:00Z")), Missed::None)
        );
    }

    #[test]
    fn after_an_outage_only_the_latest_missed_activation_runs() {
        let mut case = Case::new("0 * * * *", "2025-01-01T00:00:00Z");
        case.last = Some(ts("2025-01-01T03:00:00Z"));
        let now = ts("2025-01-01T09:30:00Z");
        assert_eq!(
            case.clock().due(now).unwrap(),
            (Some(ts("2025-01-01T09:00:00Z")), Missed::Few)
        );
        // Uneven schedules find the latest one too.
        let mut uneven = Case::new("30 6-16/4 * * 1-5", "2025-01-01T00:00:00Z");
        uneven.last = Some(ts("2025-01-02T06:30:00Z"));
        assert_eq!(
            uneven.clock().due(ts("2025-01-06T12:00:00Z")).unwrap(),
            (Some(ts("2025-01-06T10:30:00Z")), Missed::Few)
        );
        // Once it ran, the next wake-up is the following activation.
        case.last = Some(ts("2025-01-01T09:00:00Z"));
        assert_eq!(
            case.clock().requeue_after(now),
            Some(Duration::from_millis(30 * 60 * 1000 + 100))
        );
    }

    #[test]
    fn many_missed_activations_are_flagged() {
        let mut case = Case::new("* * * * *", "2025-01-01T00:00:00Z");
        case.last = Some(ts("2025-01-01T00:00:00Z"));
        let (due, missed) = case.clock().due(ts("2025-01-01T05:00:30Z")).unwrap();
        assert_eq!(due, Some(ts("2025-01-01T05:00:00Z")));
        assert_eq!(missed, Missed::Many);
        // A starting deadline bounds how far back the controller looks.
        case.deadline = Some(200);
        let (due, missed) = case.clock().due(ts("2025-01-01T05:00:30Z")).unwrap();
        assert_eq!(due, Some(ts("2025-01-01T05:00:00Z")));
        assert_eq!(missed, Missed::Few);
    }

    #[test]
    fn a_starting_deadline_can_make_a_run_too_late() {
        // Created at 10:00:20, deadline 10 s: the 10:01 run is due until 10:01:10.
        let mut case = Case::new("*/1 * * * *", "2025-01-01T10:00:20Z");
        case.deadline = Some(10);
        let clock = case.clock();
        assert_eq!(
            clock.due(ts("2025-01-01T10:01:05Z")).unwrap().0,
            Some(ts("2025-01-01T10:01:00Z"))
        );
        // Past the deadline nothing is due: the run is skipped. (Upstream's MissSchedule
        // check after this can therefore never fire, and is left out.)
        assert_eq!(clock.due(ts("2025-01-01T10:01:30Z")).unwrap().0, None);
    }

    #[test]
    fn impossible_dates_are_never_due() {
        let case = Case::new("59 23 31 2 *", "2025-01-01T00:00:00Z");
        assert_eq!(case.clock().due(ts("2025-03-01T00:00:00Z")), Err(NeverDue));
        assert_eq!(case.clock().requeue_after(ts("2025-03-01T00:00:00Z")), None);
    }

    #[test]
    fn time_zones_shift_the_activations() {
        let mut case = Case::new("0 9 * * *", "2025-05-31T23:00:00Z");
        case.zone = load_location("Asia/Tokyo").unwrap();
        assert_eq!(
            case.clock().due(ts("2025-06-01T00:30:00Z")).unwrap().0,
            Some(ts("2025-06-01T00:00:00Z"))
        );
        case.zone = load_location("America/New_York").unwrap();
        assert_eq!(
            case.clock().requeue_after(ts("2025-06-01T00:30:00Z")),
            Some(Duration::from_millis(
                12 * 3600 * 1000 + 30 * 60 * 1000 + 100
            ))
        );
    }

    #[test]
    fn names_and_annotations() {
        let at = ts("2025-01-01T10:01:00Z");
        assert_eq!(job_name("hello", at), "hello-28928761");
        assert_eq!(rfc3339_in(at, &TimeZone::UTC), "2025-01-01T10:01:00Z");
        assert_eq!(
            rfc3339_in(at, &load_location("Asia/Kolkata").unwrap()),
            "2025-01-01T15:31:00+05:30"
        );
    }
}
