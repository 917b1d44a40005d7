//! Instants of the Rust threads as Python's `time.monotonic()` values, for the events and statuses the
//! bindings hand out.

use std::time::Instant;

use pyo3::prelude::*;

/// `time.monotonic()` and `Instant` read the same clock (CLOCK_MONOTONIC); pair them once per conversion.
pub struct Clock {
    monotonic: f64,
    instant: Instant,
}

impl Clock {
    pub fn now(py: Python<'_>) -> PyResult<Self> {
        let monotonic = py.import("time")?.getattr("monotonic")?.call0()?.extract::<f64>()?;
        Ok(Clock { monotonic, instant: Instant::now() })
    }

    /// `instant` on the `time.monotonic()` clock.
    pub fn at(&self, instant: Instant) -> f64 {
        self.monotonic - self.since(instant)
    }

    /// Seconds from `instant` to now (0 for an instant after now).
    pub fn since(&self, instant: Instant) -> f64 {
        self.instant.saturating_duration_since(instant).as_secs_f64()
    }
}
