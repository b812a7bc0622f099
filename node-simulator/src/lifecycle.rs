//! One container's runs as kubelet drives them: started, exited with a code (from its
//! [`Program`] or the exit-code annotation), and restarted, at once the first time and then
//! after kubelet's crash back-off (10 s doubling to 300 s, `CrashLoopBackOff` meanwhile),
//! which is forgotten once a container has gone ten minutes without a restart.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use crate::program::Program;

/// kubelet's crash back-off (`MaxContainerBackOff` and its initial period).
const BACKOFF_INITIAL: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// How a container run ended: its `terminated` state, or `lastState` after a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Termination {
    pub exit_code: i32,
    pub started: Timestamp,
    pub finished: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Not started yet: the pod is being created or an earlier init container runs.
    Waiting,
    Running {
        since: Timestamp,
    },
    /// Exited and not restarted.
    Terminated(Termination),
    /// Exited and waiting out the crash back-off (`CrashLoopBackOff`) until `until`.
    BackOff {
        until: Timestamp,
        delay: Duration,
    },
}

/// kubelet's back-off entry for a container: the current period and when it was set.
#[derive(Debug, Clone, Copy)]
struct Backoff {
    delay: Duration,
    updated: Timestamp,
}

/// A container's runs.
#[derive(Debug, Clone)]
pub struct Lifecycle {
    pub program: Program,
    pub state: State,
    pub restarts: i32,
    /// The run before the current one.
    pub last: Option<Termination>,
    backoff: Option<Backoff>,
}

fn plus(at: Timestamp, duration: Duration) -> Timestamp {
    at.checked_add(SignedDuration::try_from(duration).unwrap_or(SignedDuration::MAX))
        .unwrap_or(Timestamp::MAX)
}

impl Lifecycle {
    pub fn new(program: Program) -> Lifecycle {
        Lifecycle {
            program,
            state: State::Waiting,
            restarts: 0,
            last: None,
            backoff: None,
        }
    }

    pub fn start(&mut self, at: Timestamp) {
        self.state = State::Running { since: at };
    }

    /// When the running process ends by itself.
    pub fn exits_at(&self) -> Option<Timestamp> {
        match (self.state, self.program) {
            (State::Running { since }, Program::Exits { after, .. }) => Some(plus(since, after)),
            _ => None,
        }
    }

    /// The exit code the running process ends with by itself.
    pub fn exit_code(&self) -> Option<i32> {
        match self.program {
            Program::Exits { code, .. } => Some(code),
            Program::Forever => None,
        }
    }

    /// When kubelet next acts on the container by itself: its exit or the back-off's end.
    pub fn due(&self) -> Option<Timestamp> {
        match self.state {
            State::BackOff { until, .. } => Some(until),
            _ => self.exits_at(),
        }
    }

    /// The running process ended at `at` with `code`; kubelet restarts it if `restart`.
    /// Returns the back-off it now waits out, if any (kubelet's `BackOff` event).
    pub fn exit(&mut self, code: i32, at: Timestamp, restart: bool) -> Option<Duration> {
        let State::Running { since } = self.state else {
            return None;
        };
        let ended = Termination {
            exit_code: code,
            started: since,
            finished: at,
        };
        if !restart {
            self.state = State::Terminated(ended);
            return None;
        }
        self.last = Some(ended);
        let fresh = self.backoff.is_none_or(|b| {
            at.duration_since(b.updated) > SignedDuration::try_from(BACKOFF_MAX * 2).unwrap()
        });
        if fresh {
            // Nothing to wait for: kubelet restarts the container at once and keeps the
            // initial period for the next crash.
            self.backoff = Some(Backoff {
                delay: BACKOFF_INITIAL,
                updated: at,
            });
            self.restarts += 1;
            self.state = State::Running { since: at };
            return None;
        }
        let delay = self.backoff.map_or(BACKOFF_INITIAL, |b| b.delay);
        self.state = State::BackOff {
            until: plus(at, delay),
            delay,
        };
        Some(delay)
    }

    /// The back-off is over at `at`: the container starts again and the next period doubles.
    pub fn resume(&mut self, at: Timestamp) {
        if !matches!(self.state, State::BackOff { .. }) {
            return;
        }
        let delay = self
            .backoff
            .map_or(BACKOFF_INITIAL, |b| (b.delay * 2).min(BACKOFF_MAX));
        self.backoff = Some(Backoff { delay, updated: at });
        self.restarts += 1;
        self.state = State::Running { since: at };
    }

    /// kubelet stops the container at `at` (the pod finished or was deleted): a running one
    /// ends with 0, one in back-off keeps the run it last ended.
    pub fn stop(&mut self, at: Timestamp) {
        match self.state {
            State::Running { since } => {
                self.state = State::Terminated(Termination {
                    exit_code: 0,
                    started: since,
                    finished: at,
                })
            }
            State::BackOff { .. } => {
                if let Some(last) = self.last.take() {
                    self.state = State::Terminated(last);
                }
            }
            State::Waiting | State::Terminated(_) => {}
        }
    }

    /// Whether it ever ran.
    pub fn has_run(&self) -> bool {
        !matches!(self.state, State::Waiting) || self.last.is_some()
    }

    /// Whether it ended for good with this code.
    pub fn terminated(&self) -> Option<i32> {
        match self.state {
            State::Terminated(t) => Some(t.exit_code),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + seconds).unwrap()
    }

    fn crashing() -> Lifecycle {
        Lifecycle::new(Program::Exits {
            after: Duration::ZERO,
            code: 1,
        })
    }

    #[test]
    fn restarts_at_once_then_backs_off_doubling_to_five_minutes() {
        let mut run = crashing();
        run.start(at(0));
        assert_eq!(run.exit(1, at(0), true), None, "first restart is immediate");
        assert_eq!(run.restarts, 1);
        assert_eq!(run.state, State::Running { since: at(0) });
        let mut now = 0;
        let mut delays = Vec::new();
        for _ in 0..7 {
            let delay = run.exit(1, at(now), true).unwrap();
            delays.push(delay.as_secs());
            now += delay.as_secs() as i64;
            assert_eq!(run.due(), Some(at(now)));
            run.resume(at(now));
        }
        assert_eq!(delays, [10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(run.restarts, 8);
        assert_eq!(run.last.unwrap().exit_code, 1);
    }

    #[test]
    fn back_off_is_forgotten_after_ten_quiet_minutes() {
        let mut run = crashing();
        run.start(at(0));
        run.exit(1, at(0), true);
        assert!(run.exit(1, at(5), true).is_some());
        run.resume(at(15));
        assert_eq!(run.exit(1, at(15 + 601), true), None);
    }

    #[test]
    fn not_restarted_stays_terminated_and_stop_ends_running_with_zero() {
        let mut run = crashing();
        run.start(at(0));
        run.exit(3, at(2), false);
        assert_eq!(run.terminated(), Some(3));
        let mut forever = Lifecycle::new(Program::Forever);
        forever.start(at(0));
        assert_eq!(forever.due(), None);
        forever.stop(at(9));
        assert_eq!(forever.terminated(), Some(0));
    }
}
