//! How long a test waits before it calls something stuck.
//!
//! Every deadline in these tests is a base figure — what an idle machine of
//! the CI kind (2 cores, debug build) needs, with a wide margin — times a
//! factor that grows with how slow this machine is right now. The factor is
//! measured once per test binary by timing a fixed piece of CPU work
//! against the time it takes on an idle CI machine, so a cold, busy or
//! slower machine waits longer instead of failing, and a fast one still
//! finds a stuck process quickly. `RAFTCFG_TEST_PATIENCE=<factor>` sets
//! the factor instead (it must be at least 1).

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The calibration work's time on an idle CI machine (debug build).
const IDLE_CALIBRATION: Duration = Duration::from_millis(45);
/// No machine gets less than the base figures or more than this many times
/// them (a calibration taken during a burst of load must not make a stuck
/// test wait for an hour).
const MAX_FACTOR: f64 = 8.0;

/// `base`, scaled for this machine.
pub fn patience(base: Duration) -> Duration {
    base.mul_f64(factor())
}

/// The factor every base deadline is multiplied by.
pub fn factor() -> f64 {
    static FACTOR: OnceLock<f64> = OnceLock::new();
    *FACTOR.get_or_init(|| {
        let factor = match std::env::var("RAFTCFG_TEST_PATIENCE") {
            Ok(text) => text
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite() && *f >= 1.0)
                .unwrap_or_else(|| {
                    panic!("RAFTCFG_TEST_PATIENCE must be a number ≥ 1, got '{text}'")
                }),
            Err(_) => measured_factor(),
        };
        eprintln!("test patience: deadlines ×{factor:.2}");
        factor
    })
}

/// The slowest of three timings of the calibration work against the idle
/// figure, between 1 and [`MAX_FACTOR`].
fn measured_factor() -> f64 {
    let slowest = (0..3).map(|_| time_calibration_work()).max().unwrap();
    (slowest.as_secs_f64() / IDLE_CALIBRATION.as_secs_f64()).clamp(1.0, MAX_FACTOR)
}

/// A fixed amount of integer work the optimizer cannot remove.
fn time_calibration_work() -> Duration {
    let started = Instant::now();
    let mut x = std::hint::black_box(0x9E37_79B9_7F4A_7C15_u64);
    for _ in 0..std::hint::black_box(4_000_000) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    std::hint::black_box(x);
    started.elapsed()
}
