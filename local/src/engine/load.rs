//! How busy the model thread is ([`Load`]), and the wait it means for a new request
//! ([`estimated_wait`]): what lets a local backend refuse at once, with `retry-after`, a
//! request that would wait longer than its `max_wait_ms`.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// What the model thread is doing, for estimating a new request's wait.
#[derive(Debug, Default)]
pub(super) struct Load {
    /// Jobs queued and not yet taken by the model thread.
    pub waiting: AtomicUsize,
    /// Sequences being prefilled or decoded.
    pub active: AtomicUsize,
    /// Moving average of how long a sequence held its slot (microseconds; 0: none yet).
    pub mean_us: AtomicU64,
    /// Threads of the loaded model's pool (0 until it is loaded).
    pub threads: AtomicUsize,
}

impl Load {
    /// Folds in one finished sequence's time in its slot (a moving average over about eight).
    pub fn finished(&self, held: Duration) {
        let us = held.as_micros().min(u128::from(u64::MAX)) as u64;
        let old = self.mean_us.load(Ordering::Relaxed);
        let new = if old == 0 {
            us.max(1)
        } else {
            old - old / 8 + us / 8
        };
        self.mean_us.store(new, Ordering::Relaxed);
    }
}

/// The wait for a slot of a request arriving now: slots free up at `max_batch` per `mean`, and
/// every sequence running or queued beyond the free slots is ahead of it.
pub fn estimated_wait(waiting: usize, active: usize, max_batch: usize, mean: Duration) -> Duration {
    let ahead = (waiting + active + 1).saturating_sub(max_batch.max(1));
    mean.mul_f64(ahead as f64 / max_batch.max(1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_counts_the_sequences_ahead_of_a_free_slot() {
        let mean = Duration::from_millis(800);
        // A free slot: no wait.
        assert_eq!(estimated_wait(0, 3, 4, mean), Duration::ZERO);
        // Every slot taken: one slot frees up every mean / 4.
        assert_eq!(estimated_wait(0, 4, 4, mean), Duration::from_millis(200));
        // Three more queued ahead: the fourth slot to free up.
        assert_eq!(estimated_wait(3, 4, 4, mean), Duration::from_millis(800));
        assert_eq!(estimated_wait(2, 1, 1, mean), Duration::from_millis(2400));
    }

    #[test]
    fn the_mean_starts_at_the_first_sequence_and_moves_by_an_eighth() {
        let load = Load::default();
        load.finished(Duration::from_millis(800));
        assert_eq!(load.mean_us.load(Ordering::Relaxed), 800_000);
        load.finished(Duration::from_millis(1600));
        assert_eq!(load.mean_us.load(Ordering::Relaxed), 900_000);
    }
}
