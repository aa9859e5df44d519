//! The one wall clock of every expiry decision: token `exp`/`nbf`/`iat`, the verified-token
//! cache, logouts and their records, session lifetimes and the refresh margin.
//!
//! It reads the system clock. A clock made by `Clock::adjustable` reads the system clock plus
//! an offset that only its `ClockHand` moves forward, so a test can let a token or a session
//! expire without sleeping (tokens minted by moto keep their real times).
//!
//! What it does not drive: timeouts and budgets measured on the monotonic clock (tokio's
//! timers, rate-limit windows, JWKS cooldowns), and the idle timeout of sessions, which is
//! the time-to-idle of the store holding them (moka on the task, the key's TTL in Redis).
//!
//! Imports nothing of the crate.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since the epoch, as every expiry decision reads them; cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    /// Seconds added to the system clock (`None`: the system clock as it is).
    ahead: Option<Arc<AtomicU64>>,
}

/// Moves an adjustable clock forward (and every clone of it).
#[derive(Clone, Debug)]
pub struct ClockHand(Arc<AtomicU64>);

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock { ahead: None }
    }

    /// The system clock plus an offset that the returned hand moves forward.
    pub fn adjustable() -> (Clock, ClockHand) {
        let ahead = Arc::new(AtomicU64::new(0));
        (
            Clock {
                ahead: Some(Arc::clone(&ahead)),
            },
            ClockHand(ahead),
        )
    }

    /// Seconds since the epoch (a system clock before 1970 reads as 0).
    pub fn now_secs(&self) -> u64 {
        let system = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        match &self.ahead {
            None => system,
            Some(a) => system.saturating_add(a.load(Ordering::Relaxed)),
        }
    }

    /// Milliseconds since the epoch.
    pub fn now_millis(&self) -> u64 {
        let system = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        match &self.ahead {
            None => system,
            Some(a) => system.saturating_add(a.load(Ordering::Relaxed).saturating_mul(1000)),
        }
    }
}

impl ClockHand {
    /// Moves the clock forward by `by` (whole seconds; a fraction is dropped).
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_secs(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_adjustable_clock_moves_only_forward_and_only_by_its_hand() {
        let system = Clock::system();
        let (clock, hand) = Clock::adjustable();
        let copy = clock.clone();
        let before = clock.now_secs();
        assert!(before.abs_diff(system.now_secs()) <= 1);
        hand.advance(Duration::from_secs(3600));
        assert!(copy.now_secs() >= before + 3600, "clones follow the hand");
        assert!(copy.now_secs() <= system.now_secs() + 3601);
        assert!(copy.now_millis() >= (before + 3600) * 1000);
        hand.advance(Duration::from_millis(999));
        assert!(
            copy.now_secs() <= system.now_secs() + 3601,
            "fractions dropped"
        );
        assert!(Clock::default().now_secs().abs_diff(system.now_secs()) <= 1);
    }
}
