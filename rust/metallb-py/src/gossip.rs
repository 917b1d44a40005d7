//! Python class over `metallb_gossip::Gossip`: failure detection among speakers.
//!
//! Every call that waits for the gossip thread (start, stop, join, set_peers, leave, waiting for events)
//! releases the GIL first; the thread itself never calls into Python. Reads (members, alive, isolated, stats)
//! copy the thread's latest snapshot and never wait.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::{NonZeroU8, NonZeroUsize};
use std::sync::Arc;
use std::time::{Duration, Instant};

use metallb_gossip::{
    Event, Gossip, GossipConfig, GossipError, Quorum, Takeover, TakeoverSink, Timing, WatchPlan, WatchSink, WatchTiming,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::clock::Clock;
use crate::errors::gossip_error;
use crate::l2::Responder;
use crate::repr::{py_bool, py_optional_str, py_str};
use crate::worker::Slot;

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Membership>()?;
    m.add_class::<MembershipEvent>()
}

/// Waits for events in slices this long, so that Ctrl-C (a Python signal handler) gets a chance in between.
const WAIT_SLICE: Duration = Duration::from_millis(100);

fn socket_addr(what: &str, text: &str) -> PyResult<SocketAddr> {
    text.trim().parse().map_err(|_| {
        PyValueError::new_err(format!(
            "{what} {text:?} is not an address with a port (\"192.0.2.1:7946\", \"[2001:db8::1]:7946\")"
        ))
    })
}

fn socket_addrs(what: &str, texts: &[String]) -> PyResult<Vec<SocketAddr>> {
    texts.iter().map(|t| socket_addr(what, t)).collect()
}

fn seconds(name: &str, value: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| PyValueError::new_err(format!("{name} must be a non-negative number of seconds, got {value}")))
}

fn timeout(value: Option<f64>) -> PyResult<Option<Duration>> {
    value.map(|v| seconds("timeout", v)).transpose()
}

/// One change seen by a member: `kind` is "up", "suspect", "alive", "down", "isolated" or "reconnected"
/// (SWIM's), or the watch's "held" (the member went silent and this node took its addresses over), "released"
/// (it beats again), "ready" and "unready" (what its heartbeats say), "unheard" and "heard" (this member
/// heard no peer's heartbeat for heartbeat_timeout, and its responder is muted; then one again); `name` and `address` are the member's
/// (this member's own for isolation); `at` is when it was seen, on the clock of `time.monotonic()`.
#[pyclass(module = "metallb_py._core", frozen, get_all)]
pub struct MembershipEvent {
    kind: &'static str,
    name: String,
    address: String,
    at: f64,
}

#[pymethods]
impl MembershipEvent {
    fn __repr__(&self) -> String {
        format!(
            "MembershipEvent(kind={}, name={}, address={}, at={:.6})",
            py_str(self.kind),
            py_str(&self.name),
            py_str(&self.address),
            self.at
        )
    }
}

/// The watch's hands: the responder's announce and mute. A failure (the responder stopped) leaves the
/// address to the next election round.
struct ResponderSink(Arc<metallb_l2::Responder>);

impl WatchSink for ResponderSink {
    fn take_over(&self, _owner: &str, items: &[Takeover]) {
        for item in items {
            let interfaces = (!item.interfaces.is_empty()).then_some(item.interfaces.as_slice());
            let _ = self.0.announce(item.address, interfaces);
        }
    }

    fn mute(&self, muted: bool) {
        let _ = self.0.set_muted(muted);
    }

    fn reclaim(&self) {
        let _ = self.0.reannounce_all();
    }
}

fn membership_event(clock: &Clock, event: Event) -> MembershipEvent {
    MembershipEvent {
        kind: event.kind.as_str(),
        name: event.name,
        address: event.address.to_string(),
        at: clock.at(event.at),
    }
}

#[pyclass(module = "metallb_py._core", frozen)]
pub struct Membership {
    config: GossipConfig,
    running: Slot<Gossip>,
}

impl Membership {
    fn current(&self) -> Option<Arc<Gossip>> {
        self.running.current()
    }

    fn require(&self) -> PyResult<Arc<Gossip>> {
        self.current().ok_or_else(|| gossip_error(GossipError::NotRunning))
    }
}

#[pymethods]
impl Membership {
    #[new]
    #[pyo3(signature = (name, bind, secret, *, advertise = None, netns = None, seeds = Vec::new(),
        probe_interval = 0.1, probe_timeout = 0.04, suspect_timeout = 0.25, indirect_probes = 3,
        isolation_timeout = 0.4, quorum = "any", announce_interval = 1.0, retransmits = 6,
        heartbeat_interval = 0.01, heartbeat_timeout = 0.03))]
    #[allow(clippy::too_many_arguments)] // Python keyword arguments, one per option.
    fn new(
        name: String,
        bind: &str,
        secret: &[u8],
        advertise: Option<&str>,
        netns: Option<String>,
        seeds: Vec<String>,
        probe_interval: f64,
        probe_timeout: f64,
        suspect_timeout: f64,
        indirect_probes: usize,
        isolation_timeout: f64,
        quorum: &str,
        announce_interval: f64,
        retransmits: u8,
        heartbeat_interval: f64,
        heartbeat_timeout: f64,
    ) -> PyResult<Self> {
        let quorum = match quorum {
            "any" => Quorum::AnyPeer,
            "majority" => Quorum::Majority,
            other => {
                return Err(PyValueError::new_err(format!("quorum must be \"any\" or \"majority\", got {other:?}")))
            }
        };
        let timing = Timing {
            probe_interval: seconds("probe_interval", probe_interval)?,
            probe_timeout: seconds("probe_timeout", probe_timeout)?,
            indirect_probes: NonZeroUsize::new(indirect_probes)
                .ok_or_else(|| PyValueError::new_err("indirect_probes must be at least 1"))?,
            suspect_timeout: seconds("suspect_timeout", suspect_timeout)?,
            isolation_timeout: seconds("isolation_timeout", isolation_timeout)?,
            announce_interval: seconds("announce_interval", announce_interval)?,
            retransmits: NonZeroU8::new(retransmits)
                .ok_or_else(|| PyValueError::new_err("retransmits must be at least 1"))?,
            ..Timing::default()
        };
        let mut config = GossipConfig::new(&name, socket_addr("bind", bind)?, secret);
        config.advertise = advertise.map(|a| socket_addr("advertise", a)).transpose()?;
        config.netns = netns;
        config.seeds = socket_addrs("seed", &seeds)?;
        config.timing = timing;
        config.quorum = quorum;
        config.watch = WatchTiming {
            interval: seconds("heartbeat_interval", heartbeat_interval)?,
            timeout: seconds("heartbeat_timeout", heartbeat_timeout)?,
        };
        config.validate().map_err(gossip_error)?;
        Ok(Membership { config, running: Slot::new() })
    }

    /// Binds the socket (inside `netns` if given), announces to the seeds and starts the gossip thread.
    /// Raises GossipBindError, GossipNetnsError, GossipPermissionError.
    fn start(&self, py: Python<'_>) -> PyResult<()> {
        self.running.start(py, &self.config, GossipError::AlreadyRunning).map_err(gossip_error)
    }

    /// Stops the thread and closes the socket at once, telling nobody: peers detect it as a failure. Call
    /// leave() first for a graceful handover. Does nothing if not running.
    fn stop(&self, py: Python<'_>) {
        self.running.stop(py)
    }

    fn __enter__(slf: Bound<'_, Self>) -> PyResult<Bound<'_, Self>> {
        slf.get().start(slf.py())?;
        Ok(slf)
    }

    /// Leaves gracefully (peers learn at once), then stops.
    #[pyo3(signature = (_exc_type = None, _exc = None, _traceback = None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: Option<Bound<'_, PyAny>>,
        _exc: Option<Bound<'_, PyAny>>,
        _traceback: Option<Bound<'_, PyAny>>,
    ) -> bool {
        if let Some(gossip) = self.current() {
            let _ = py.detach(|| gossip.leave());
        }
        self.stop(py);
        false
    }

    /// Adds peers ("ip:port") and announces to them at once.
    fn join(&self, py: Python<'_>, addresses: Vec<String>) -> PyResult<()> {
        let addrs = socket_addrs("peer", &addresses)?;
        let gossip = self.require()?;
        py.detach(|| gossip.join(addrs)).map_err(gossip_error)
    }

    /// Replaces the peers this member expects (the full list of gossip addresses, one per member, this
    /// member's own may be in it) and announces to the new ones. Members are never removed by this: liveness
    /// is gossip's call. This member's own address listed more than once means other members have it too
    /// (an address local to every node): they can never be heard, so this member becomes isolated.
    fn set_peers(&self, py: Python<'_>, addresses: Vec<String>) -> PyResult<()> {
        let addrs = socket_addrs("peer", &addresses)?;
        let gossip = self.require()?;
        py.detach(|| gossip.set_peers(addrs)).map_err(gossip_error)
    }

    /// Replaces the watch's plan (fast takeover): `targets` {node: "ip:port"} get this member's heartbeats
    /// every heartbeat_interval; `takeovers` {owner: [(address, [interface, ...]), ...]} is what this node
    /// announces, at once and on the gossip thread, when that owner has been silent for heartbeat_timeout and
    /// another peer misses it too (through the responder given to attach_responder); `ready` says this node
    /// is settled and announces what it wins. Raises ValueError for a bad address, changing nothing.
    fn set_watch(
        &self,
        py: Python<'_>,
        targets: BTreeMap<String, String>,
        takeovers: BTreeMap<String, Vec<(String, Vec<String>)>>,
        ready: bool,
    ) -> PyResult<()> {
        let targets = targets
            .into_iter()
            .map(|(name, addr)| Ok((name, socket_addr("heartbeat target", &addr)?)))
            .collect::<PyResult<BTreeMap<_, _>>>()?;
        let takeovers = takeovers
            .into_iter()
            .map(|(owner, items)| {
                let items = items
                    .into_iter()
                    .map(|(address, interfaces)| {
                        let address = address.trim().parse().map_err(|_| {
                            PyValueError::new_err(format!("takeover address {address:?} is not an IP address"))
                        })?;
                        Ok(Takeover { address, interfaces })
                    })
                    .collect::<PyResult<Vec<_>>>()?;
                Ok((owner, items))
            })
            .collect::<PyResult<BTreeMap<_, _>>>()?;
        let gossip = self.require()?;
        py.detach(|| gossip.set_watch(WatchPlan { targets, takeovers, ready })).map_err(gossip_error)
    }

    /// Takeovers announce through `responder` (a running Responder; None: through nothing, the "held" event
    /// still comes), and it is muted while this node hears no peer. The gossip thread calls it directly,
    /// without Python.
    fn attach_responder(&self, responder: Option<PyRef<'_, Responder>>) -> PyResult<()> {
        let gossip = self.require()?;
        let sink: Option<TakeoverSink> = match responder {
            None => None,
            Some(responder) => Some(Arc::new(ResponderSink(responder.running_core()?))),
        };
        gossip.set_takeover_sink(sink);
        Ok(())
    }

    /// Owners this member's watch holds down (took over; silent since), sorted.
    fn held(&self) -> Vec<String> {
        self.current().map(|g| g.held()).unwrap_or_default()
    }

    /// Peers whose heartbeats say they are not ready (settling), sorted.
    fn unready(&self) -> Vec<String> {
        self.current().map(|g| g.unready()).unwrap_or_default()
    }

    /// Tells every member that this one leaves, so its addresses move without waiting for detection.
    fn leave(&self, py: Python<'_>) -> PyResult<()> {
        let gossip = self.require()?;
        py.detach(|| gossip.leave()).map_err(gossip_error)
    }

    /// Every known member (this one included) by name: {"address": "ip:port", "state": "alive"|"suspect"|
    /// "down", "incarnation": int, "generation": int}. Empty when not running.
    fn members<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        for member in self.current().map(|g| g.members()).unwrap_or_default() {
            let entry = PyDict::new(py);
            entry.set_item("address", member.address.to_string())?;
            entry.set_item("state", member.state.as_str())?;
            entry.set_item("incarnation", member.incarnation)?;
            entry.set_item("generation", member.generation)?;
            dict.set_item(member.name, entry)?;
        }
        Ok(dict)
    }

    /// Names of the members counted alive (alive or suspect), this one included, sorted. Empty when not
    /// running.
    fn alive(&self) -> Vec<String> {
        self.current().map(|g| g.alive()).unwrap_or_default()
    }

    /// Whether this member is cut off from its peers and should stop announcing. False when not running.
    fn isolated(&self) -> bool {
        self.current().is_some_and(|g| g.isolated())
    }

    /// The peers this member expects, as given by seeds, join() and set_peers().
    fn peers(&self) -> Vec<String> {
        self.current().map(|g| g.peers()).unwrap_or_default().iter().map(ToString::to_string).collect()
    }

    /// The next event, waiting up to `timeout` seconds (None: until one comes or the member stops); None if
    /// there was none.
    #[pyo3(signature = (timeout = None))]
    fn next_event(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<MembershipEvent>> {
        let gossip = self.require()?;
        let deadline = self::timeout(timeout)?.map(|t| Instant::now() + t);
        loop {
            let slice = match deadline {
                None => WAIT_SLICE,
                Some(deadline) => deadline.saturating_duration_since(Instant::now()).min(WAIT_SLICE),
            };
            if let Some(event) = py.detach(|| gossip.next_event(Some(slice))) {
                return Ok(Some(membership_event(&Clock::now(py)?, event)));
            }
            py.check_signals()?;
            let expired = deadline.is_some_and(|d| Instant::now() >= d);
            if expired || !gossip.is_running() {
                return Ok(None);
            }
        }
    }

    /// Every pending event; if there is none, waits up to `timeout` seconds (None: without limit) for one.
    #[pyo3(signature = (timeout = 0.0))]
    fn events(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Vec<MembershipEvent>> {
        let gossip = self.require()?;
        let pending = gossip.take_events();
        let mut events = Vec::with_capacity(pending.len());
        if pending.is_empty() && timeout != Some(0.0) {
            match self.next_event(py, timeout)? {
                Some(first) => events.push(first),
                None => return Ok(events),
            }
        }
        let clock = Clock::now(py)?;
        events.extend(pending.into_iter().chain(gossip.take_events()).map(|e| membership_event(&clock, e)));
        Ok(events)
    }

    /// Counters since start: datagrams and bytes sent and received; datagrams dropped, by reason: bad_tag
    /// (another secret, corruption, forgery), replayed (already accepted, or too old), stale_life (from an
    /// older life of its sender, answered with the newest generation), malformed (truncated, not gossip, or
    /// undecodable), self (sent by this member itself, or by a member with its name or address),
    /// protocol_errors, send_errors; probes, suspicions, members_down, refutations (this member was suspected
    /// and refuted), rejoins (it was declared down while running), generations_raised (the cluster held its
    /// name at a newer generation, from a life with a later wall clock), isolations, events_dropped; the watch's
    /// heartbeats_sent, heartbeats_received, takeovers, takeovers_unconfirmed (an owner went silent but no
    /// witness confirmed), releases and watch_stalls (the thread ran late, and decided nothing for a moment).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let gossip = self.require()?;
        let (s, events_dropped) = gossip.stats();
        let dict = PyDict::new(py);
        for (key, value) in [
            ("datagrams_sent", s.datagrams_sent),
            ("datagrams_received", s.datagrams_received),
            ("bytes_sent", s.bytes_sent),
            ("bytes_received", s.bytes_received),
            ("bad_tag", s.bad_tag),
            ("replayed", s.replayed),
            ("stale_life", s.stale_life),
            ("malformed", s.malformed),
            ("self", s.from_self),
            ("protocol_errors", s.protocol_errors),
            ("send_errors", s.send_errors),
            ("probes_sent", s.probes_sent),
            ("indirect_probes_sent", s.indirect_probes_sent),
            ("suspicions", s.suspicions),
            ("members_down", s.members_down),
            ("refutations", s.refutations),
            ("rejoins", s.rejoins),
            ("generations_raised", s.generations_raised),
            ("isolations", s.isolations),
            ("stale_down_notices", s.stale_down_notices),
            ("heartbeats_sent", s.heartbeats_sent),
            ("heartbeats_received", s.heartbeats_received),
            ("takeovers", s.takeovers),
            ("takeovers_unconfirmed", s.takeovers_unconfirmed),
            ("releases", s.releases),
            ("watch_stalls", s.watch_stalls),
            ("unheard", s.unheard),
            ("reclaims", s.reclaims),
            ("events_dropped", events_dropped),
        ] {
            dict.set_item(key, value)?;
        }
        Ok(dict)
    }

    #[getter]
    fn name(&self) -> String {
        self.config.name.clone()
    }

    /// The address peers send to: the advertised one, with the port actually bound while running.
    #[getter]
    fn address(&self) -> String {
        match self.current() {
            Some(gossip) => gossip.address().to_string(),
            None => self.config.advertise.unwrap_or(self.config.bind).to_string(),
        }
    }

    #[getter]
    fn netns(&self) -> Option<String> {
        self.config.netns.clone()
    }

    #[getter]
    fn running(&self) -> bool {
        self.current().is_some_and(|g| g.is_running())
    }

    /// The identity generation: raised each time this member rejoins after being declared down.
    #[getter]
    fn generation(&self) -> Option<u64> {
        self.current().map(|g| g.generation())
    }

    fn __repr__(&self) -> String {
        format!(
            "Membership(name={}, address={}, netns={}, running={})",
            py_str(&self.config.name),
            py_str(&self.address()),
            py_optional_str(self.config.netns.as_deref()),
            py_bool(self.running()),
        )
    }
}
