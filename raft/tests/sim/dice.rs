//! [`Dice`]: the simulation's one source of randomness. Every choice a run
//! makes is drawn from here, in a fixed order, so a seed replays exactly.

use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A seeded random generator with the few draws the simulator needs.
pub struct Dice(ChaCha8Rng);

impl Dice {
    pub fn new(seed: u64) -> Self {
        Self(ChaCha8Rng::seed_from_u64(seed))
    }

    /// A number in `low..=high`.
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        self.0.random_range(low..=high)
    }

    /// True with probability `permille / 1000`. Draws nothing when the
    /// probability is 0 or 1000.
    pub fn chance(&mut self, permille: u32) -> bool {
        match permille {
            0 => false,
            1000.. => true,
            p => self.0.random_range(0..1000) < p,
        }
    }

    /// One of `items`, or `None` if there are none.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> Option<T> {
        if items.is_empty() {
            return None;
        }
        Some(items[self.0.random_range(0..items.len())])
    }

    /// An index into `weights`, drawn in proportion to the weights.
    /// All-zero weights pick index 0.
    pub fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
        if total == 0 {
            return 0;
        }
        let mut roll = self.0.random_range(0..total);
        for (i, w) in weights.iter().enumerate() {
            let w = u64::from(*w);
            if roll < w {
                return i;
            }
            roll -= w;
        }
        weights.len() - 1
    }

    /// Shuffles `items` in place (Fisher–Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.0.random_range(0..=i);
            items.swap(i, j);
        }
    }

    /// A fresh 64-bit number (e.g. a node's own seed).
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
}
