//! Python classes over `metallb_bgp::Speaker`: the BGP sessions of a node.
//!
//! Every call that waits for the BGP thread (construction, stop, add/remove peer, routes, waiting for events)
//! releases the GIL first; the thread itself never calls into Python. Reads (peers, peer) copy the thread's
//! latest snapshot and never wait.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use metallb_bgp::{
    community_texts, family_name, parse_prefix, parse_route, BfdSettings as Settings, BfdStatus as RustBfdStatus,
    Event, Families, PeerAsn, PeerConfig, PeerStatus, Prefix, Route, Speaker, SpeakerConfig, State,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::clock::Clock;
use crate::errors::bgp_error;
use crate::repr::{py_bool, py_optional_str, py_str};

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<BgpSpeaker>()?;
    m.add_class::<BgpRoute>()?;
    m.add_class::<BgpPeerStatus>()?;
    m.add_class::<BfdSettings>()?;
    m.add_class::<BfdStatus>()?;
    m.add_class::<BgpEvent>()
}

/// Waits for events in slices this long, so that Ctrl-C (a Python signal handler) gets a chance in between.
const WAIT_SLICE: Duration = Duration::from_millis(100);

fn seconds(name: &str, value: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| PyValueError::new_err(format!("{name} must be a non-negative number of seconds, got {value}")))
}

fn parse_addr<T: std::str::FromStr>(what: &str, text: &str, kind: &str) -> PyResult<T> {
    text.trim().parse().map_err(|_| PyValueError::new_err(format!("{what} {text:?} is not an {kind} address")))
}

fn asn(what: &str, value: i128) -> PyResult<u32> {
    u32::try_from(value)
        .map_err(|_| PyValueError::new_err(format!("{what} {value} is out of range: an ASN is from 1 to 4294967294")))
}

fn prefix(text: &str) -> PyResult<Prefix> {
    parse_prefix(text).map_err(bgp_error)
}

/// The attributes a prefix is advertised with: `local_pref` (iBGP only; 100 when None), standard
/// communities ("65000:100") and large ones ("large:65000:1:2"), in MetalLB's spelling. `communities` may
/// hold both kinds; `large_communities` only large ones (the "large:" tag optional). Kept sorted, without
/// duplicates.
#[pyclass(module = "metallb_py._core", frozen, eq, hash, from_py_object)]
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct BgpRoute(Route);

#[pymethods]
impl BgpRoute {
    #[new]
    #[pyo3(signature = (local_pref = None, communities = Vec::new(), large_communities = Vec::new()))]
    fn new(local_pref: Option<i128>, communities: Vec<String>, large_communities: Vec<String>) -> PyResult<Self> {
        let local_pref = local_pref
            .map(|v| {
                u32::try_from(v).map_err(|_| {
                    PyValueError::new_err(format!("local_pref {v} is out of range: it is from 0 to 4294967295"))
                })
            })
            .transpose()?;
        parse_route(local_pref, &communities, &large_communities).map(BgpRoute).map_err(bgp_error)
    }

    #[getter]
    fn local_pref(&self) -> Option<u32> {
        self.0.local_pref
    }

    /// Standard communities, "ASN:VALUE".
    #[getter]
    fn communities(&self) -> Vec<String> {
        community_texts(&self.0).0
    }

    /// Large communities, "large:GLOBAL:LOCAL1:LOCAL2".
    #[getter]
    fn large_communities(&self) -> Vec<String> {
        community_texts(&self.0).1
    }

    fn __repr__(&self) -> String {
        let (standard, large) = community_texts(&self.0);
        let list = |items: Vec<String>| items.iter().map(|s| py_str(s)).collect::<Vec<_>>().join(", ");
        format!(
            "BgpRoute(local_pref={}, communities=[{}], large_communities=[{}])",
            self.0.local_pref.map_or_else(|| "None".to_string(), |v| v.to_string()),
            list(standard),
            list(large)
        )
    }
}

/// A BGP peer's BFD session settings (MetalLB's BFDProfile): intervals in seconds (10 ms to 60 s),
/// `detect_multiplier` 2 to 255, `passive` (wait for the peer's first packet), `minimum_ttl` (multihop only: a
/// packet with a lower TTL is dropped). The defaults are MetalLB's: 0.3 s, 0.3 s, 3, active, 254.
#[pyclass(module = "metallb_py._core", frozen, eq, from_py_object)]
#[derive(Clone, PartialEq)]
pub struct BfdSettings(Settings);

#[pymethods]
impl BfdSettings {
    #[new]
    #[pyo3(signature = (*, receive_interval = 0.3, transmit_interval = 0.3, detect_multiplier = 3, passive = false,
        minimum_ttl = 254))]
    fn new(
        receive_interval: f64,
        transmit_interval: f64,
        detect_multiplier: i64,
        passive: bool,
        minimum_ttl: i64,
    ) -> PyResult<Self> {
        let small = |what: &str, value: i64, low: i64, high: i64| {
            u8::try_from(value)
                .ok()
                .filter(|v| (low..=high).contains(&i64::from(*v)))
                .ok_or_else(|| PyValueError::new_err(format!("{what} {value} is out of range: use {low} to {high}")))
        };
        let interval = |what: &str, value: f64| {
            let d = seconds(what, value)?;
            if d < Duration::from_millis(10) || d > Duration::from_secs(60) {
                return Err(PyValueError::new_err(format!("{what} {value} s is out of range: use 0.01 to 60 s")));
            }
            Ok(d)
        };
        Ok(BfdSettings(Settings {
            receive_interval: interval("receive_interval", receive_interval)?,
            transmit_interval: interval("transmit_interval", transmit_interval)?,
            detect_multiplier: small("detect_multiplier", detect_multiplier, 2, 255)?,
            passive,
            minimum_ttl: small("minimum_ttl", minimum_ttl, 1, 254)?,
        }))
    }

    #[getter]
    fn receive_interval(&self) -> f64 {
        self.0.receive_interval.as_secs_f64()
    }

    #[getter]
    fn transmit_interval(&self) -> f64 {
        self.0.transmit_interval.as_secs_f64()
    }

    #[getter]
    fn detect_multiplier(&self) -> u8 {
        self.0.detect_multiplier
    }

    #[getter]
    fn passive(&self) -> bool {
        self.0.passive
    }

    #[getter]
    fn minimum_ttl(&self) -> u8 {
        self.0.minimum_ttl
    }

    fn __repr__(&self) -> String {
        format!(
            "BfdSettings(receive_interval={}, transmit_interval={}, detect_multiplier={}, passive={}, minimum_ttl={})",
            self.0.receive_interval.as_secs_f64(),
            self.0.transmit_interval.as_secs_f64(),
            self.0.detect_multiplier,
            py_bool(self.0.passive),
            self.0.minimum_ttl
        )
    }
}

/// A peer's BFD session as the BFD thread last saw it. States are "AdminDown", "Down", "Init" or "Up";
/// diagnostics in words; intervals in seconds (`detection_time` None until the peer was heard); counters
/// since the session started (`dropped`: packets for it refused, for their TTL or contents).
#[pyclass(module = "metallb_py._core", frozen, get_all)]
pub struct BfdStatus {
    peer: String,
    multihop: bool,
    state: String,
    remote_state: String,
    local_diag: String,
    remote_diag: String,
    local_discriminator: u32,
    remote_discriminator: u32,
    transmit_interval: f64,
    detection_time: Option<f64>,
    control_sent: u64,
    control_received: u64,
    echo_sent: u64,
    echo_received: u64,
    up_events: u64,
    down_events: u64,
    dropped: u64,
}

#[pymethods]
impl BfdStatus {
    fn __repr__(&self) -> String {
        format!(
            "BfdStatus(peer={}, state={}, remote_state={}, local_diag={}, transmit_interval={}, detection_time={})",
            py_str(&self.peer),
            py_str(&self.state),
            py_str(&self.remote_state),
            py_str(&self.local_diag),
            self.transmit_interval,
            self.detection_time.map_or_else(|| "None".to_string(), |d| d.to_string())
        )
    }
}

fn bfd_status(s: RustBfdStatus) -> BfdStatus {
    BfdStatus {
        peer: s.peer.to_string(),
        multihop: s.multihop,
        state: s.state.to_string(),
        remote_state: s.remote_state.to_string(),
        local_diag: s.local_diag.to_string(),
        remote_diag: s.remote_diag.to_string(),
        local_discriminator: s.local_discriminator,
        remote_discriminator: s.remote_discriminator,
        transmit_interval: s.transmit_interval.as_secs_f64(),
        detection_time: s.detection_time.map(|d| d.as_secs_f64()),
        control_sent: s.control_sent,
        control_received: s.control_received,
        echo_sent: s.echo_sent,
        echo_received: s.echo_received,
        up_events: s.up_events,
        down_events: s.down_events,
        dropped: s.dropped,
    }
}

fn bgp_event(clock: &Clock, event: Event) -> BgpEvent {
    BgpEvent {
        peer: event.peer,
        kind: event.kind.as_str(),
        reason: event.reason,
        code: event.notification.map(|n| n.0),
        subcode: event.notification.map(|n| n.1),
        at: clock.at(event.at),
    }
}

fn peer_status(clock: &Clock, py: Python<'_>, s: PeerStatus) -> PyResult<BgpPeerStatus> {
    let counters = PyDict::new(py);
    for (name, value) in s.counters.named() {
        counters.set_item(name, value)?;
    }
    let negotiated = s.negotiated.as_ref();
    Ok(BgpPeerStatus {
        name: s.name,
        address: s.address.ip().to_string(),
        port: s.address.port(),
        state: state_name(s.state),
        established_at: s.established_since.map(|t| clock.at(t)),
        uptime: s.established_since.map(|t| clock.since(t)),
        peer_asn: negotiated.map(|n| n.peer_asn),
        peer_router_id: negotiated.map(|n| n.peer_router_id.to_string()),
        hold_time: negotiated.map(|n| f64::from(n.hold_time)),
        keepalive_time: negotiated.map(|n| f64::from(n.keepalive)),
        families: negotiated.map_or_else(Vec::new, |n| n.families.iter().map(|f| family_name(f.0)).collect()),
        ibgp: negotiated.map(|n| n.ibgp),
        local_address: s.local_address.map(|a| a.ip().to_string()),
        next_hop_v4: s.next_hops.v4.map(|a| a.to_string()),
        next_hop_v6: s.next_hops.v6.map(|a| a.to_string()),
        last_error: s.last_error,
        unsendable: s.unsendable,
        prefixes_configured: s.prefixes_configured,
        prefixes_advertised: s.prefixes_advertised,
        prefixes_pending: s.prefixes_pending,
        counters: counters.unbind(),
        bfd: s.bfd.map(|b| Py::new(py, bfd_status(b))).transpose()?,
        held_by_bfd: s.held_by_bfd,
    })
}

fn state_name(state: State) -> &'static str {
    match state {
        State::Idle => "idle",
        State::Connect => "connect",
        State::OpenSent => "opensent",
        State::OpenConfirm => "openconfirm",
        State::Established => "established",
    }
}

/// One session as the speaker's thread last saw it. `established_at` is on the clock of `time.monotonic()`;
/// the negotiated fields (`peer_asn` ... `ibgp`) are None until the OPENs are exchanged. `counters` count
/// since the peer was added, across session resets. `bfd` is the peer's BFD session (None without one);
/// `held_by_bfd` while BFD keeps the session down after a path failure.
#[pyclass(module = "metallb_py._core", frozen, get_all)]
pub struct BgpPeerStatus {
    name: String,
    address: String,
    port: u16,
    state: &'static str,
    established_at: Option<f64>,
    uptime: Option<f64>,
    peer_asn: Option<u32>,
    peer_router_id: Option<String>,
    hold_time: Option<f64>,
    keepalive_time: Option<f64>,
    families: Vec<&'static str>,
    ibgp: Option<bool>,
    local_address: Option<String>,
    next_hop_v4: Option<String>,
    next_hop_v6: Option<String>,
    last_error: Option<String>,
    unsendable: Option<String>,
    prefixes_configured: usize,
    prefixes_advertised: usize,
    prefixes_pending: usize,
    counters: Py<PyDict>,
    bfd: Option<Py<BfdStatus>>,
    held_by_bfd: bool,
}

#[pymethods]
impl BgpPeerStatus {
    fn __repr__(&self) -> String {
        format!(
            "BgpPeerStatus(name={}, address={}, port={}, state={}, prefixes_advertised={}, last_error={})",
            py_str(&self.name),
            py_str(&self.address),
            self.port,
            py_str(self.state),
            self.prefixes_advertised,
            py_optional_str(self.last_error.as_deref()),
        )
    }
}

/// One event of one session: `kind` is "up", "down", "connect_failed", "notification_received" (the peer
/// refused us or ended the session), "notification_sent", "bfd_up" or "bfd_down"; `code`/`subcode` are the NOTIFICATION's when one
/// was involved, `reason` says it in words; `at` is on the clock of `time.monotonic()`.
#[pyclass(module = "metallb_py._core", frozen, get_all)]
pub struct BgpEvent {
    peer: String,
    kind: &'static str,
    reason: String,
    code: Option<u8>,
    subcode: Option<u8>,
    at: f64,
}

#[pymethods]
impl BgpEvent {
    fn __repr__(&self) -> String {
        let optional = |v: Option<u8>| v.map_or_else(|| "None".to_string(), |v| v.to_string());
        format!(
            "BgpEvent(peer={}, kind={}, reason={}, code={}, subcode={}, at={:.6})",
            py_str(&self.peer),
            py_str(self.kind),
            py_str(&self.reason),
            optional(self.code),
            optional(self.subcode),
            self.at
        )
    }
}

/// The BGP sessions of a node, on one Rust thread (inside `netns` if given: needs CAP_SYS_ADMIN), started at
/// construction. Bad arguments raise ValueError (unknown peers KeyError) and change nothing.
#[pyclass(module = "metallb_py._core", frozen)]
pub struct BgpSpeaker {
    speaker: Arc<Speaker>,
}

impl Drop for BgpSpeaker {
    /// A speaker nobody stopped stops here, sending its Ceases and waiting (up to a second) for the peers to
    /// close: without the GIL, like stop(). While the interpreter shuts down there is no GIL to release.
    fn drop(&mut self) {
        let speaker = &self.speaker;
        if Python::try_attach(|py| py.detach(|| speaker.stop())).is_none() {
            speaker.stop();
        }
    }
}

#[pymethods]
impl BgpSpeaker {
    #[new]
    #[pyo3(signature = (*, netns = None))]
    fn new(py: Python<'_>, netns: Option<String>) -> PyResult<Self> {
        let config = SpeakerConfig { netns };
        let speaker = py.detach(|| Speaker::start(config)).map_err(bgp_error)?;
        Ok(BgpSpeaker { speaker: Arc::new(speaker) })
    }

    /// Adds a peer and starts its session, or reconfigures the peer of that name. Returns True if it
    /// (re)started a session: a new peer, or changed session parameters (the old session gets a Cease "other
    /// configuration change" first). Same parameters: nothing happens. Only next hops changed: the routes are
    /// sent again with them, the session stays up. Routes of a family dropped from `families` are forgotten.
    /// `graceful_restart` offers RFC 4724 graceful restart: stop() then closes the session without a Cease,
    /// and the peer keeps our routes until a restarted speaker sends them again. `bfd` runs a BFD session
    /// to the peer (multihop with `ebgp_multihop`): BFD down ends the BGP session at once and holds it until
    /// BFD is up again. BFD settings and turning BFD on or off never reset the BGP session.
    #[pyo3(signature = (name, address, *, my_asn, peer_asn = None, dynamic_asn = None, router_id, port = 179,
        source_address = None, hold_time = 90.0, keepalive_time = None, connect_time = 10.0, password = None,
        ebgp_multihop = false, families = vec!["ipv4".to_string(), "ipv6".to_string()], next_hop_v4 = None,
        next_hop_v6 = None, graceful_restart = false, bfd = None))]
    #[allow(clippy::too_many_arguments)] // Python keyword arguments, one per option.
    fn add_peer(
        &self,
        py: Python<'_>,
        name: String,
        address: &str,
        my_asn: i128,
        peer_asn: Option<i128>,
        dynamic_asn: Option<&str>,
        router_id: &str,
        port: i64,
        source_address: Option<&str>,
        hold_time: f64,
        keepalive_time: Option<f64>,
        connect_time: f64,
        password: Option<String>,
        ebgp_multihop: bool,
        families: Vec<String>,
        next_hop_v4: Option<&str>,
        next_hop_v6: Option<&str>,
        graceful_restart: bool,
        bfd: Option<BfdSettings>,
    ) -> PyResult<bool> {
        let peer_asn = match (peer_asn, dynamic_asn) {
            (Some(asn_value), None) => PeerAsn::Fixed(asn("peer_asn", asn_value)?),
            (None, Some("internal")) => PeerAsn::Internal,
            (None, Some("external")) => PeerAsn::External,
            (None, Some(other)) => {
                return Err(PyValueError::new_err(format!(
                    "dynamic_asn must be \"internal\" or \"external\", got {other:?}"
                )))
            }
            (Some(_), Some(_)) => {
                return Err(PyValueError::new_err("give peer_asn or dynamic_asn, not both"));
            }
            (None, None) => {
                return Err(PyValueError::new_err(
                    "give peer_asn (the peer's ASN) or dynamic_asn (\"internal\" or \"external\")",
                ));
            }
        };
        let mut wanted = Families { ipv4: false, ipv6: false };
        for family in &families {
            match family.as_str() {
                "ipv4" => wanted.ipv4 = true,
                "ipv6" => wanted.ipv6 = true,
                other => return Err(PyValueError::new_err(format!("families: {other:?} is not \"ipv4\" or \"ipv6\""))),
            }
        }
        let port =
            u16::try_from(port).map_err(|_| PyValueError::new_err(format!("port {port} is out of range 1-65535")))?;
        let mut config = PeerConfig::new(
            &name,
            parse_addr::<IpAddr>("address", address, "IP")?,
            asn("my_asn", my_asn)?,
            peer_asn,
            parse_addr::<Ipv4Addr>("router_id", router_id, "IPv4")?,
        );
        config.port = port;
        config.source_address = source_address.map(|a| parse_addr::<IpAddr>("source_address", a, "IP")).transpose()?;
        config.hold_time = seconds("hold_time", hold_time)?;
        config.keepalive_time = keepalive_time.map(|k| seconds("keepalive_time", k)).transpose()?;
        config.connect_time = seconds("connect_time", connect_time)?;
        config.password = password;
        config.ebgp_multihop = ebgp_multihop;
        config.families = wanted;
        config.next_hop_v4 = next_hop_v4.map(|a| parse_addr::<Ipv4Addr>("next_hop_v4", a, "IPv4")).transpose()?;
        config.next_hop_v6 = next_hop_v6.map(|a| parse_addr::<Ipv6Addr>("next_hop_v6", a, "IPv6")).transpose()?;
        config.graceful_restart = graceful_restart;
        config.bfd = bfd.map(|b| b.0);
        let speaker = &self.speaker;
        let outcome = py.detach(|| speaker.add_peer(config)).map_err(bgp_error)?;
        Ok(outcome.started_session())
    }

    /// Ends the peer's session with a Cease "peer de-configured" and forgets the peer and its routes.
    /// Returns whether there was such a peer.
    fn remove_peer(&self, py: Python<'_>, name: &str) -> PyResult<bool> {
        let speaker = &self.speaker;
        py.detach(|| speaker.remove_peer(name)).map_err(bgp_error)
    }

    /// Makes `routes` (prefix text -> BgpRoute) the whole set the peer should hold: new and changed prefixes
    /// are announced, missing ones withdrawn. A bare address stands for its host route. Never resets the
    /// session. Raises KeyError for an unknown peer, ValueError for a bad prefix or one of a family the peer
    /// does not carry; then nothing changes.
    fn set_routes(&self, py: Python<'_>, peer: &str, routes: BTreeMap<String, BgpRoute>) -> PyResult<()> {
        // Two spellings of one prefix ("198.51.100.10" and "198.51.100.10/32") would silently keep one route.
        let mut parsed: BTreeMap<Prefix, (String, Route)> = BTreeMap::new();
        for (text, route) in routes {
            let key = prefix(&text)?;
            if let Some((first, _)) = parsed.get(&key) {
                return Err(PyValueError::new_err(format!(
                    "prefix {key} is given twice: {first:?} and {text:?}; give each prefix once"
                )));
            }
            parsed.insert(key, (text, route.0));
        }
        let routes = parsed.into_iter().map(|(p, (_, r))| (p, r)).collect();
        let speaker = &self.speaker;
        py.detach(|| speaker.set_routes(peer, routes)).map_err(bgp_error)
    }

    /// Announces one prefix with these attributes (or changes them), leaving the peer's other prefixes as
    /// they are.
    #[pyo3(signature = (peer, prefix, *, local_pref = None, communities = Vec::new(), large_communities = Vec::new()))]
    fn advertise(
        &self,
        py: Python<'_>,
        peer: &str,
        prefix: &str,
        local_pref: Option<i128>,
        communities: Vec<String>,
        large_communities: Vec<String>,
    ) -> PyResult<()> {
        let prefix = self::prefix(prefix)?;
        let route = BgpRoute::new(local_pref, communities, large_communities)?.0;
        let speaker = &self.speaker;
        py.detach(|| speaker.advertise(peer, prefix, route)).map_err(bgp_error)
    }

    /// Withdraws one prefix from the peer. Returns whether it was set for that peer.
    fn withdraw(&self, py: Python<'_>, peer: &str, prefix: &str) -> PyResult<bool> {
        let prefix = self::prefix(prefix)?;
        let speaker = &self.speaker;
        py.detach(|| speaker.withdraw(peer, prefix)).map_err(bgp_error)
    }

    /// Every peer's status, sorted by name (empty once stopped).
    fn peers(&self, py: Python<'_>) -> PyResult<Vec<BgpPeerStatus>> {
        let clock = Clock::now(py)?;
        self.speaker.peers().into_iter().map(|s| peer_status(&clock, py, s)).collect()
    }

    /// One peer's status, or None if there is no such peer.
    fn peer(&self, py: Python<'_>, name: &str) -> PyResult<Option<BgpPeerStatus>> {
        let clock = Clock::now(py)?;
        self.speaker.peer(name).map(|s| peer_status(&clock, py, s)).transpose()
    }

    /// The next event, waiting up to `timeout` seconds (None: until one comes or the speaker stops); None if
    /// there was none.
    #[pyo3(signature = (timeout = None))]
    fn next_event(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<BgpEvent>> {
        let deadline = timeout.map(|t| seconds("timeout", t)).transpose()?.map(|t| Instant::now() + t);
        let speaker = &self.speaker;
        loop {
            let slice = match deadline {
                None => WAIT_SLICE,
                Some(deadline) => deadline.saturating_duration_since(Instant::now()).min(WAIT_SLICE),
            };
            if let Some(event) = py.detach(|| speaker.next_event(Some(slice))) {
                return Ok(Some(bgp_event(&Clock::now(py)?, event)));
            }
            py.check_signals()?;
            let expired = deadline.is_some_and(|d| Instant::now() >= d);
            if expired || !speaker.is_running() {
                return Ok(None);
            }
        }
    }

    /// Every pending event, without waiting.
    fn events(&self, py: Python<'_>) -> PyResult<Vec<BgpEvent>> {
        let clock = Clock::now(py)?;
        Ok(self.speaker.take_events().into_iter().map(|e| bgp_event(&clock, e)).collect())
    }

    /// Events dropped because nobody read them (the queue keeps the latest 65,536).
    #[getter]
    fn events_dropped(&self) -> u64 {
        self.speaker.events_dropped()
    }

    /// Sends a Cease "administrative shutdown" to every peer with a session, closes the connections (waiting
    /// at most a second for the peers to take the Cease and close their side) and ends the thread.
    /// Idempotent.
    fn stop(&self, py: Python<'_>) {
        let speaker = &self.speaker;
        py.detach(|| speaker.stop())
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
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

    #[getter]
    fn running(&self) -> bool {
        self.speaker.is_running()
    }

    #[getter]
    fn netns(&self) -> Option<String> {
        self.speaker.netns().map(str::to_string)
    }

    fn __repr__(&self) -> String {
        format!(
            "BgpSpeaker(netns={}, running={}, peers={})",
            py_optional_str(self.speaker.netns()),
            py_bool(self.running()),
            self.speaker.peers().len()
        )
    }
}
