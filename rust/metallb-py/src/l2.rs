//! Python classes over `metallb_l2::Responder` (the ARP/NDP responder thread) and `metallb_l2::LinkWatch`
//! (link notifications).
//!
//! Every call that waits for the responder thread (start, stop, announce, withdraw, set_interfaces, stats,
//! conflicts) or
//! for link notifications releases the GIL first; the thread itself never calls into Python.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use metallb_l2::{
    GratuitousPolicy, InterfaceChange, L2Error, LinkEvent, LinkWatch as CoreLinkWatch, Responder as CoreResponder,
    ResponderConfig, Stats,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use crate::errors::l2_error;
use crate::repr::{py_bool, py_optional_str, py_str};
use crate::worker::Slot;

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Responder>()?;
    m.add_class::<LinkWatch>()
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

    /// The running responder, for another thread of ours to call (the gossip's takeover).
    pub(crate) fn running_core(&self) -> PyResult<Arc<CoreResponder>> {
        self.require()
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

    /// Serves exactly `interfaces` from now on (opens new ones, closes the others, re-opens one re-created
    /// under its name); returns {"added": [...], "removed": [...], "failed": {name: why}}. Raises ValueError
    /// for a bad list (duplicates, too many), which changes nothing.
    fn set_interfaces<'py>(&self, py: Python<'py>, interfaces: Vec<String>) -> PyResult<Bound<'py, PyDict>> {
        let responder = self.require()?;
        let change = py.detach(|| responder.set_interfaces(&interfaces)).map_err(l2_error)?;
        change_dict(py, &change)
    }

    /// Muted, it answers nothing and sends no gratuitous frame, but keeps its addresses (announce and
    /// withdraw work as usual); unmuted, it answers again and announces every address at once. The speaker's
    /// gossip mutes it while the node hears no peer. Returns whether that changed anything.
    fn set_muted(&self, py: Python<'_>, muted: bool) -> PyResult<bool> {
        let responder = self.require()?;
        py.detach(|| responder.set_muted(muted)).map_err(l2_error)
    }

    /// Announces `ip` again as if it were new (gratuitous frames at once and on a fresh schedule), to win
    /// back the neighbours another host's claim took. False when `ip` is not announced or the responder is
    /// muted.
    fn reannounce(&self, py: Python<'_>, ip: &Bound<'_, PyAny>) -> PyResult<bool> {
        let ip = extract_ip(ip)?;
        let responder = self.require()?;
        py.detach(|| responder.reannounce(ip)).map_err(l2_error)
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

    /// Counters: per address (requests_received, responses_sent, gratuitous_sent), drops per reason,
    /// socket-level figures, and conflicts (claims by other hosts seen) and conflicts_dropped.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let responder = self.require()?;
        let stats = py.detach(|| responder.stats()).map_err(l2_error)?;
        stats_dict(py, &stats)
    }

    /// (ip, mac, interface) of each other host seen claiming an address announced on that interface since the
    /// last call, which this one drains: each triple once, in the order first seen, at most 1024.
    fn conflicts(&self, py: Python<'_>) -> PyResult<Vec<(String, String, String)>> {
        let responder = self.require()?;
        let conflicts = py.detach(|| responder.conflicts()).map_err(l2_error)?;
        Ok(conflicts.into_iter().map(|c| (c.ip.to_string(), c.mac.to_string(), c.interface)).collect())
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

    /// The interfaces served now while running; else those given to the constructor (which a start opens).
    #[getter]
    fn interfaces(&self) -> Vec<String> {
        match self.current() {
            Some(r) if r.is_running() => r.interfaces().into_iter().map(|i| i.name).collect(),
            _ => self.config.interfaces.clone(),
        }
    }

    #[getter]
    fn netns(&self) -> Option<String> {
        self.config.netns.clone()
    }

    fn __repr__(&self) -> String {
        let names: Vec<String> = self.interfaces().iter().map(|n| py_str(n)).collect();
        format!(
            "Responder(interfaces=[{}], netns={}, running={})",
            names.join(", "),
            py_optional_str(self.config.netns.as_deref()),
            py_bool(self.running()),
        )
    }
}

fn change_dict<'py>(py: Python<'py>, change: &InterfaceChange) -> PyResult<Bound<'py, PyDict>> {
    let failed = PyDict::new(py);
    for (name, err) in &change.failed {
        failed.set_item(name, err.to_string())?;
    }
    let dict = PyDict::new(py);
    dict.set_item("added", change.added.iter().map(|i| i.name.clone()).collect::<Vec<_>>())?;
    dict.set_item("removed", change.removed.clone())?;
    dict.set_item("failed", failed)?;
    Ok(dict)
}

/// Link notifications (RTMGRP_LINK) of one network namespace: a speaker waits on it and rescans its
/// interfaces when a link is added, changed or deleted.
#[pyclass(module = "metallb_py._core", frozen)]
pub struct LinkWatch {
    netns: Option<String>,
    watch: Mutex<Option<CoreLinkWatch>>,
}

#[pymethods]
impl LinkWatch {
    /// Subscribes at once (inside `netns` if given). Raises NetnsError or PermissionDeniedError.
    #[new]
    #[pyo3(signature = (netns = None))]
    fn new(py: Python<'_>, netns: Option<String>) -> PyResult<Self> {
        let watch = py.detach(|| CoreLinkWatch::open(netns.as_deref())).map_err(l2_error)?;
        Ok(LinkWatch { netns, watch: Mutex::new(Some(watch)) })
    }

    /// Waits until notifications arrive or `timeout` seconds pass (None: no limit); returns every one queued,
    /// each {"kind": "changed" | "removed" | "overflow", "index", "name", "up"} ("overflow": some were lost,
    /// rescan everything). Raises ResponderError once closed.
    #[pyo3(signature = (timeout = None))]
    fn wait<'py>(&self, py: Python<'py>, timeout: Option<f64>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let timeout = timeout.map(|t| seconds("timeout", t)).transpose()?;
        let events = py
            .detach(|| {
                let mut watch = self.watch.lock().unwrap_or_else(PoisonError::into_inner);
                match watch.as_mut() {
                    Some(watch) => watch.wait(timeout),
                    None => Err(L2Error::NotRunning),
                }
            })
            .map_err(l2_error)?;
        events.iter().map(|event| link_event_dict(py, event)).collect()
    }

    /// Closes the socket (after a wait in progress ends). Idempotent.
    fn close(&self, py: Python<'_>) {
        py.detach(|| self.watch.lock().unwrap_or_else(PoisonError::into_inner).take());
    }

    #[getter]
    fn netns(&self) -> Option<String> {
        self.netns.clone()
    }

    fn __repr__(&self) -> String {
        format!("LinkWatch(netns={})", py_optional_str(self.netns.as_deref()))
    }
}

fn link_event_dict<'py>(py: Python<'py>, event: &LinkEvent) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    let (kind, index, name, up) = match event {
        LinkEvent::Changed { index, name, up } => ("changed", *index, name.as_str(), *up),
        LinkEvent::Removed { index, name } => ("removed", *index, name.as_str(), false),
        LinkEvent::Overflow => ("overflow", 0, "", false),
    };
    dict.set_item("kind", kind)?;
    dict.set_item("index", index)?;
    dict.set_item("name", name)?;
    dict.set_item("up", up)?;
    Ok(dict)
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
    dict.set_item("conflicts", stats.conflicts)?;
    dict.set_item("conflicts_dropped", stats.conflicts_dropped)?;
    Ok(dict)
}
