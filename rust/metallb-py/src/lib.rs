//! `metallb_py._core`: thin PyO3 wrappers over `metallb-core`. Each method converts its arguments, makes one
//! core call and maps the error (in `errors.rs`, the only place that knows the Python exception classes).

mod alloc;
mod bgp;
mod clock;
mod errors;
mod gossip;
mod l2;
mod repr;
mod worker;

use pyo3::prelude::*;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    alloc::register(m)?;
    l2::register(m)?;
    gossip::register(m)?;
    bgp::register(m)?;
    Ok(())
}
