//! Where a service reads the time. Production reads the system clock; a
//! test sets the time and moves it (a 30-day window, a due date, an SLA),
//! instead of sleeping or back-dating its data.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use retain_domain::Timestamp;

/// A source of "now". Cheap to clone; clones share the time.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    manual: Option<Arc<AtomicI64>>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self::default()
    }

    /// A clock that reads `start` until it is [`set`](Clock::set) or
    /// [`advance`](Clock::advance)d.
    pub fn manual(start: Timestamp) -> Self {
        Self {
            manual: Some(Arc::new(AtomicI64::new(start.micros()))),
        }
    }

    /// Now.
    pub fn now(&self) -> Timestamp {
        Timestamp::from_micros(self.now_micros())
    }

    /// Now, in microseconds since the Unix epoch (the unit every table
    /// stores).
    pub fn now_micros(&self) -> i64 {
        match &self.manual {
            Some(t) => t.load(Ordering::SeqCst),
            None => retain_store::now_micros(),
        }
    }

    /// Sets a manual clock to `t`. The system clock cannot be set.
    ///
    /// # Panics
    /// On the system clock: a test bug.
    pub fn set(&self, t: Timestamp) {
        let clock = self
            .manual
            .as_ref()
            .expect("only a manual clock can be set");
        clock.store(t.micros(), Ordering::SeqCst);
    }

    /// Moves a manual clock forward by `by`.
    ///
    /// # Panics
    /// On the system clock: a test bug.
    pub fn advance(&self, by: Duration) {
        let clock = self.manual.as_ref().expect("only a manual clock can move");
        let by = i64::try_from(by.as_micros()).unwrap_or(i64::MAX);
        clock.fetch_add(by, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_is_shared_by_its_clones_and_moves_only_when_told() {
        let clock = Clock::manual(Timestamp::from_ymd(2026, 5, 1));
        let seen_by_service = clock.clone();
        assert_eq!(seen_by_service.now(), Timestamp::from_ymd(2026, 5, 1));
        clock.advance(Duration::from_secs(86_400));
        assert_eq!(seen_by_service.now(), Timestamp::from_ymd(2026, 5, 2));
        clock.set(Timestamp::from_ymd(2026, 6, 1));
        assert_eq!(seen_by_service.now(), Timestamp::from_ymd(2026, 6, 1));
        assert!(Clock::system().now_micros() > 0);
    }
}
