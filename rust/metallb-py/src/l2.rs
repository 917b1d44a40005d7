//! Python class over `metallb_l2::Responder`: the ARP/NDP responder thread.
//!
//! Every call that waits for the responder thread (start, stop, announce, withdraw, stats) releases the GIL
//! first; the thread itself never calls into Python.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use metallb_l2::{GratuitousPolicy, L2Error, Responder as CoreResponder, ResponderConfig, Stats};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use crate::errors::l2_error;
use crate::repr::{py_bool, py_optional_str, py_str};
use crate::worker::Slot;

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Responder>()
}

/// Accepts `"192.0.2.1"` or an `ipaddress` object.
fn extract_ip(value: &Bound<'_, PyAny>) -> PyResult<IpAddr> {
    if let Ok(text) = value.cast::<PyString>() {
        let text = text.to_str()?;
        return text.trim().parse().map_err(|_| PyValueError::new_err(format!("{text:?} is not an IP address")));
    }
    value.extract::<IpAddr>().map_err(|_| PyValueError::new_err(format!("{value} is not an IP address")))
}

fn seconds(name: &str, value: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| PyValueError::new_err(format!("{name} must be a non-negative number of seconds, got {value}")))
}

#[pyclass(module = "metallb_py._core", frozen)]
pub struct Responder {
    config: ResponderConfig,
    running: Slot<CoreResponder>,
}

impl Responder {
    fn current(&self) -> Option<Arc<CoreResponder>> {
        self.running.current()
    }

    fn require(&self) -> PyResult<Arc<CoreResponder>> {
        self.current().ok_or_else(|| l2_error(L2Error::NotRunning))
    }
}

#[pymethods]
impl Responder {
    #[new]
    #[pyo3(signature = (interfaces, netns = None, *, gratuitous_interval = 1.1, gratuitous_duration = 5.0,
        refresh_interval = None, socket_buffer = 4 << 20, busy_poll = 0.0, cpu = None))]
    #[allow(clippy::too_many_arguments)] // Python keyword arguments, one per option.
    fn new(
        interfaces: Vec<String>,
        netns: Option<String>,
        gratuitous_interval: f64,
        gratuitous_duration: f64,
        refresh_interval: Option<f64>,
        socket_buffer: usize,
        busy_poll: f64,
        cpu: Option<usize>,
    ) -> PyResult<Self> {
        let gratuitous = GratuitousPolicy::new(
            seconds("gratuitous_interval", gratuitous_interval)?,
            seconds("gratuitous_duration", gratuitous_duration)?,
            refresh_interval.map(|r| seconds("refresh_interval", r)).transpose()?,
        )
        .map_err(l2_error)?;
        let busy_poll = seconds("busy_poll", busy_poll)?;
        let config = ResponderConfig { interfaces, netns, gratuitous, socket_buffer, busy_poll, cpu };
        config.validate().map_err(l2_error)?;
        Ok(Responder { config, running: Slot::new() })
    }

    /// Opens the sockets (inside `netns` if given) and starts answering. Raises InterfaceNotFoundError,
    /// PermissionDeniedError, NoMacAddressError or NetnsError.
    fn start(&self, py: Python<'_>) -> PyResult<()> {
        self.running.start(py, &self.config, L2Error::AlreadyRunning).map_err(l2_error)
    }

    /// Stops answering and closes the sockets; returns within milliseconds. Does nothing if not running.
    fn stop(&self, py: Python<'_>) {
        self.running.stop(py)
    }

    fn __enter__(slf: Bound<'_, Self>) -> PyResult<Bound<'_, Self>> {
        slf.get().start(slf.py())?;
        Ok(slf)
    }

    #[pyo3(signature = (_exc_type = None, _exc = None, _traceback = None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: Option<Bound<'_, PyAny>>,
        _exc: Option<Bound<'_, PyAny>>,
        _traceback: Option<Bound<'_, PyAny>>,
    ) -> bool {
        self.stop(py);
        false
    }

    /// Answers for `ip` on `interfaces` (default: all of the responder's) and announces it with gratuitous
    /// ARP / unsolicited NA at once and on the schedule. Returns False if it was already announced there.
    #[pyo3(signature = (ip, interfaces = None))]
    fn announce(&self, py: Python<'_>, ip: &Bound<'_, PyAny>, interfaces: Option<Vec<String>>) -> PyResult<bool> {
        let ip = extract_ip(ip)?;
        let responder = self.require()?;
        py.detach(|| responder.announce(ip, interfaces.as_deref())).map_err(l2_error)
    }

    /// Stops answering for `ip` before returning. Returns whether it was announced.
    fn withdraw(&self, py: Python<'_>, ip: &Bound<'_, PyAny>) -> PyResult<bool> {
        let ip = extract_ip(ip)?;
        let responder = self.require()?;
        py.detach(|| responder.withdraw(ip)).map_err(l2_error)
    }

    /// The announced addresses, each with the interfaces it is answered on (empty when not running).
    fn announced(&self) -> BTreeMap<IpAddr, Vec<String>> {
        self.current().map(|r| r.announced()).unwrap_or_default()
    }

    /// Counters: per address (requests_received, responses_sent, gratuitous_sent), drops per reason, and
    /// socket-level figures.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let responder = self.require()?;
        let stats = py.detach(|| responder.stats()).map_err(l2_error)?;
        stats_dict(py, &stats)
    }

    /// Interface name -> MAC address ("aa:bb:cc:dd:ee:ff") of the running responder.
    fn macs(&self) -> PyResult<BTreeMap<String, String>> {
        let responder = self.require()?;
        Ok(responder.interfaces().iter().map(|i| (i.name.clone(), i.mac.to_string())).collect())
    }

    #[getter]
    fn running(&self) -> bool {
        self.current().is_some_and(|r| r.is_running())
    }

    #[getter]
    fn interfaces(&self) -> Vec<String> {
        self.config.interfaces.clone()
    }

    #[getter]
    fn netns(&self) -> Option<String> {
        self.config.netns.clone()
    }

    fn __repr__(&self) -> String {
        let names: Vec<String> = self.config.interfaces.iter().map(|n| py_str(n)).collect();
        format!(
            "Responder(interfaces=[{}], netns={}, running={})",
            names.join(", "),
            py_optional_str(self.config.netns.as_deref()),
            py_bool(self.running()),
        )
    }
}

fn stats_dict<'py>(py: Python<'py>, stats: &Stats) -> PyResult<Bound<'py, PyDict>> {
    let ips = PyDict::new(py);
    for (ip, c) in &stats.ips {
        let counters = PyDict::new(py);
        counters.set_item("requests_received", c.requests_received)?;
        counters.set_item("responses_sent", c.responses_sent)?;
        counters.set_item("gratuitous_sent", c.gratuitous_sent)?;
        ips.set_item(ip.to_string(), counters)?;
    }
    let drops = PyDict::new(py);
    for (label, count) in &stats.drops {
        drops.set_item(*label, *count)?;
    }
    let dict = PyDict::new(py);
    dict.set_item("ips", ips)?;
    dict.set_item("drops", drops)?;
    dict.set_item("frames_received", stats.frames_received)?;
    dict.set_item("kernel_drops", stats.kernel_drops)?;
    dict.set_item("send_errors", stats.send_errors)?;
    dict.set_item("socket_errors", stats.socket_errors)?;
    dict.set_item("link_down", stats.link_down)?;
    dict.set_item("group_fallbacks", stats.group_fallbacks)?;
    Ok(dict)
}
