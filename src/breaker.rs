//! A circuit breaker for calls to a shared service that may fail (Redis, for the cache
//! tier and the rate limiter): after [`FAILURES_TO_OPEN`] failures in a row the breaker
//! opens and callers skip the service for a while, using their fallback at once instead
//! of waiting out a timeout on every request. When that time is up, one caller is let
//! through (half-open): its success closes the breaker, its failure opens it again.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Failures in a row that open the breaker.
pub const FAILURES_TO_OPEN: u32 = 3;

pub struct Breaker {
    /// How long the breaker stays open before it lets one caller try.
    open_for: Duration,
    failures: AtomicU32,
    /// When open: until when callers skip the service.
    open_until: Mutex<Option<Instant>>,
}

impl Breaker {
    pub fn new(open_for: Duration) -> Self {
        Self {
            open_for,
            failures: AtomicU32::new(0),
            open_until: Mutex::new(None),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.open_until.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a call may go to the service now: the breaker is closed, or it has been open
    /// long enough that this caller may try (half-open; the others keep falling back until
    /// its verdict).
    pub fn allowed(&self) -> bool {
        let mut open = self.state();
        match *open {
            Some(until) if Instant::now() < until => false,
            Some(_) => {
                *open = Some(Instant::now() + self.open_for);
                true
            }
            None => true,
        }
    }

    /// Records a success; true when it closed an open breaker.
    pub fn succeeded(&self) -> bool {
        self.failures.store(0, Ordering::Relaxed);
        self.state().take().is_some()
    }

    /// Records a failure; true when it opened a closed breaker (a failed half-open try
    /// keeps it open and returns false).
    pub fn failed(&self) -> bool {
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        let mut open = self.state();
        if n >= FAILURES_TO_OPEN || open.is_some() {
            let opened = open.is_none();
            *open = Some(Instant::now() + self.open_for);
            opened
        } else {
            false
        }
    }

    /// Closed: the service answered last time.
    pub fn is_closed(&self) -> bool {
        self.state().is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_three_failures_in_a_row_and_a_success_resets_the_count() {
        let b = Breaker::new(Duration::from_secs(60));
        assert!(!b.failed());
        assert!(!b.failed());
        assert!(!b.succeeded());
        assert!(!b.failed());
        assert!(!b.failed());
        assert!(b.allowed() && b.is_closed());
        assert!(b.failed(), "the third failure in a row opens it");
        assert!(!b.allowed() && !b.is_closed());
        assert!(!b.failed(), "already open");
    }

    #[test]
    fn half_open_lets_one_caller_try_and_its_verdict_decides() {
        let b = Breaker::new(Duration::from_millis(20));
        for _ in 0..3 {
            b.failed();
        }
        assert!(!b.allowed());
        std::thread::sleep(Duration::from_millis(30));
        assert!(b.allowed(), "one caller tries");
        assert!(!b.allowed(), "the others wait for its verdict");
        assert!(!b.failed(), "a failed try keeps it open");
        std::thread::sleep(Duration::from_millis(30));
        assert!(b.allowed());
        assert!(b.succeeded(), "a successful try closes it");
        assert!(b.allowed() && b.is_closed());
    }
}
