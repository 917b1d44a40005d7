//! When gratuitous announcements go out: a pure schedule per address, with time passed in.
//!
//! An address newly announced here is announced at once, then every `interval` while `duration` has not
//! passed (MetalLB's default: every 1.1 s for 5 s, so five bursts), then, if `refresh` is set, every `refresh`
//! after the last burst, for switches and hosts that age out their tables. A late tick is not caught up: the
//! next one is computed from the time it actually fired, so a stalled thread never sends a storm.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

use crate::L2Error;

/// The timing of gratuitous announcements.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct GratuitousPolicy {
    interval: Duration,
    duration: Duration,
    refresh: Option<Duration>,
}

impl Default for GratuitousPolicy {
    fn default() -> Self {
        GratuitousPolicy { interval: Duration::from_millis(1100), duration: Duration::from_secs(5), refresh: None }
    }
}

/// Shortest interval accepted: below this the schedule would be a flood, not an announcement.
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);

impl GratuitousPolicy {
    /// `duration` zero means a single burst at announce time.
    pub fn new(interval: Duration, duration: Duration, refresh: Option<Duration>) -> Result<Self, L2Error> {
        if interval < MIN_INTERVAL {
            return Err(L2Error::InvalidConfig(format!(
                "gratuitous interval {interval:?} is shorter than the minimum {MIN_INTERVAL:?}"
            )));
        }
        if let Some(refresh) = refresh.filter(|r| *r < MIN_INTERVAL) {
            return Err(L2Error::InvalidConfig(format!(
                "refresh interval {refresh:?} is shorter than the minimum {MIN_INTERVAL:?}"
            )));
        }
        Ok(GratuitousPolicy { interval, duration, refresh })
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    pub fn duration(&self) -> Duration {
        self.duration
    }

    pub fn refresh(&self) -> Option<Duration> {
        self.refresh
    }
}

/// The schedule of one address.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct GratuitousSchedule {
    policy: GratuitousPolicy,
    started: Instant,
    next: Option<Instant>,
}

impl GratuitousSchedule {
    /// A schedule whose first burst is due at `now`.
    pub fn start(policy: GratuitousPolicy, now: Instant) -> Self {
        GratuitousSchedule { policy, started: now, next: Some(now) }
    }

    /// When the next burst is due; `None` once the schedule is over.
    pub fn next_due(&self) -> Option<Instant> {
        self.next
    }

    pub fn is_due(&self, now: Instant) -> bool {
        self.next.is_some_and(|next| next <= now)
    }

    /// Records a burst sent at `now` and moves the next due time past it.
    pub fn sent(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.started);
        let interval = self.policy.interval;
        // The first tick of the burst window strictly after `now`, skipping ticks missed while late.
        let ticks = elapsed.as_nanos() / interval.as_nanos() + 1;
        let offset = u32::try_from(ticks).ok().and_then(|t| interval.checked_mul(t));
        self.next = match offset.filter(|offset| *offset <= self.policy.duration) {
            Some(offset) => Some(self.started + offset),
            None => self.policy.refresh.map(|refresh| now + refresh),
        };
    }
}

/// The schedules of every announced address.
#[derive(Debug)]
pub struct Schedules<K> {
    entries: HashMap<K, GratuitousSchedule>,
}

impl<K> Default for Schedules<K> {
    fn default() -> Self {
        Schedules { entries: HashMap::new() }
    }
}

impl<K: Copy + Eq + Hash> Schedules<K> {
    /// Starts (or restarts) `key`'s schedule: its first burst is due at `now`.
    pub fn start(&mut self, key: K, policy: GratuitousPolicy, now: Instant) {
        self.entries.insert(key, GratuitousSchedule::start(policy, now));
    }

    pub fn cancel(&mut self, key: K) {
        self.entries.remove(&key);
    }

    /// Cancels every schedule whose key `matches` (an address's on every interface, or one interface's).
    pub fn cancel_where(&mut self, matches: impl Fn(&K) -> bool) {
        self.entries.retain(|key, _| !matches(key));
    }

    /// The earliest due time of all, for the poll timeout.
    pub fn next_due(&self) -> Option<Instant> {
        self.entries.values().filter_map(GratuitousSchedule::next_due).min()
    }

    /// The keys due at `now`; each is marked as sent, and finished schedules are removed.
    pub fn take_due(&mut self, now: Instant) -> Vec<K> {
        let mut due = Vec::new();
        self.entries.retain(|key, schedule| {
            if schedule.is_due(now) {
                due.push(*key);
                schedule.sent(now);
            }
            schedule.next_due().is_some()
        });
        due
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// The offsets (from start) at which bursts fire when the caller wakes exactly on time, up to `until`.
    fn fire_times(policy: GratuitousPolicy, until: Duration) -> Vec<Duration> {
        let t0 = Instant::now();
        let mut schedule = GratuitousSchedule::start(policy, t0);
        let mut times = Vec::new();
        while let Some(next) = schedule.next_due() {
            if next - t0 > until {
                break;
            }
            times.push(next - t0);
            schedule.sent(next);
        }
        times
    }

    #[test]
    fn default_is_five_bursts_over_five_seconds_then_nothing() {
        let policy = GratuitousPolicy::default();
        assert_eq!(fire_times(policy, Duration::from_secs(60)), vec![ms(0), ms(1100), ms(2200), ms(3300), ms(4400)]);
    }

    #[test]
    fn refresh_repeats_after_the_burst_window() {
        let policy = GratuitousPolicy::new(ms(1000), ms(2000), Some(ms(30_000))).unwrap();
        assert_eq!(fire_times(policy, ms(70_000)), vec![ms(0), ms(1000), ms(2000), ms(32_000), ms(62_000)]);
    }

    #[test]
    fn zero_duration_sends_one_burst() {
        let policy = GratuitousPolicy::new(ms(1000), Duration::ZERO, None).unwrap();
        assert_eq!(fire_times(policy, ms(10_000)), vec![ms(0)]);
    }

    #[test]
    fn late_ticks_are_skipped_not_caught_up() {
        let t0 = Instant::now();
        let mut schedule = GratuitousSchedule::start(GratuitousPolicy::default(), t0);
        schedule.sent(t0);
        // The thread wakes 2.5 s late for the 1.1 s tick: one burst, and the next is the 3.3 s tick.
        assert!(schedule.is_due(t0 + ms(2500)));
        schedule.sent(t0 + ms(2500));
        assert_eq!(schedule.next_due(), Some(t0 + ms(3300)));
        assert!(!schedule.is_due(t0 + ms(3299)));
    }

    #[test]
    fn policy_refuses_floods() {
        assert!(GratuitousPolicy::new(ms(1), ms(1000), None).is_err());
        assert!(GratuitousPolicy::new(ms(100), ms(1000), Some(ms(0))).is_err());
    }

    #[test]
    fn schedules_report_due_keys_and_drop_finished_ones() {
        let t0 = Instant::now();
        let policy = GratuitousPolicy::new(ms(100), ms(100), None).unwrap();
        let mut schedules = Schedules::default();
        schedules.start('a', policy, t0);
        schedules.start('b', policy, t0 + ms(50));
        assert_eq!(schedules.next_due(), Some(t0));
        assert_eq!(schedules.take_due(t0), vec!['a']);
        assert_eq!(schedules.next_due(), Some(t0 + ms(50)));
        let mut due = schedules.take_due(t0 + ms(100));
        due.sort();
        assert_eq!(due, vec!['a', 'b']);
        assert_eq!(schedules.len(), 1, "a's window is over; b has its 150 ms tick left");
        schedules.cancel('b');
        assert!(schedules.is_empty() && schedules.next_due().is_none());
        for key in ['a', 'b', 'c'] {
            schedules.start(key, policy, t0);
        }
        schedules.cancel_where(|key| *key != 'b');
        assert_eq!(schedules.take_due(t0), vec!['b']);
    }
}
