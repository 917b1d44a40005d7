//! The allocator: which address each service gets, following MetalLB's rules, deterministically.
//!
//! Cost model: every operation is O(log n) in the number of allocations (plus the number of addresses
//! carrying the same sharing key, when sharing), and never depends on pool size; memory is
//! O(allocations + ranges). A released address is the first one handed out again (lowest free first).

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use foldhash::fast::RandomState;
use std::fmt;
use std::net::IpAddr;

use super::addr::to_int;
use super::free::FreeRuns;
use super::{validate_pools, AllocError, ConfigError, Family, Pool};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// Kubernetes spelling: `TCP`, `UDP`, `SCTP`.
    pub fn parse(name: &str) -> Option<Protocol> {
        match name {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }
}

/// A service port as the sharing rules see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Port {
    pub port: u16,
    pub protocol: Protocol,
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.port, self.protocol.as_str())
    }
}

/// Kubernetes' `spec.ipFamilyPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FamilyPolicy {
    #[default]
    SingleStack,
    PreferDualStack,
    RequireDualStack,
}

impl FamilyPolicy {
    pub fn parse(name: &str) -> Option<FamilyPolicy> {
        match name {
            "SingleStack" => Some(FamilyPolicy::SingleStack),
            "PreferDualStack" => Some(FamilyPolicy::PreferDualStack),
            "RequireDualStack" => Some(FamilyPolicy::RequireDualStack),
            _ => None,
        }
    }
}

/// What a service asks for. The key's namespace (the part before `/`) is used for pool selection.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// An explicitly named pool (`metallb.io/address-pool`).
    pub pool: Option<String>,
    /// Requested addresses, at most one per family (`metallb.io/loadBalancerIPs`, `spec.loadBalancerIP`).
    pub requested: Vec<IpAddr>,
    pub ports: Vec<Port>,
    /// `metallb.io/allow-shared-ip`; `None` (or empty) means the service shares with nobody.
    pub sharing_key: Option<String>,
    /// Services sharing an address must have the same backend key (MetalLB: "" for
    /// externalTrafficPolicy Cluster, the pod selector for Local).
    pub backend_key: String,
    /// `spec.ipFamilies` in order: the families the Service gets addresses of (MetalLB aligns them with the
    /// cluster IPs, so PreferDualStack with one family gets one address). Empty means unknown: the families
    /// of the requested addresses, else both for RequireDualStack and PreferDualStack, else IPv4. Requested
    /// addresses must be one of each of these families, as MetalLB's controller requires.
    pub ip_families: Vec<Family>,
    pub family_policy: FamilyPolicy,
    pub labels: HashMap<String, String>,
    pub namespace_labels: HashMap<String, String>,
}

/// Who a Service is, for a pool's serviceAllocation: its labels and its namespace's labels (the namespace's
/// name is the part of the key before `/`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceLabels {
    pub service: HashMap<String, String>,
    pub namespace: HashMap<String, String>,
}

/// Address counts of one pool, per family (index with `Family::index`). A pool that is not configured (any
/// more) has all counts zero, as in MetalLB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    /// Addresses the pool may hand out (buggy ones excluded when avoided). Saturates only for a pool holding
    /// the whole IPv6 space, which has 2^128 addresses.
    pub total: [u128; 2],
    /// Distinct addresses held by at least one service.
    pub in_use: [u64; 2],
    /// MetalLB's capacity, in its int64 PoolCounters (IPAddressPool status, metrics): `total`, except that a
    /// range holding an aligned block of 2^62 addresses counts as `i64::MAX` (MetalLB: "will never run out"),
    /// and that sums saturate at `i64::MAX`.
    pub capacity: [i64; 2],
}

impl Counters {
    /// MetalLB's `Assigned*`: distinct addresses in use.
    pub fn assigned(&self, family: Family) -> i64 {
        i64::try_from(self.in_use[family.index()]).unwrap_or(i64::MAX)
    }

    /// MetalLB's `Available*`: capacity minus assigned.
    pub fn available(&self, family: Family) -> i64 {
        self.capacity[family.index()].saturating_sub(self.assigned(family))
    }
}

/// MetalLB counts a CIDR of 2^62 addresses or more as int64's maximum.
const METALLB_HUGE_BITS: u32 = 62;

#[derive(Debug, Clone)]
struct Holding {
    pool: usize,
    ips: Vec<IpAddr>,
    ports: Vec<Port>,
    sharing_key: Option<String>,
    backend_key: String,
}

/// Who holds one address and under which sharing terms.
#[derive(Debug)]
struct IpUse {
    range: usize,
    holders: Vec<String>,
    sharing_key: Option<String>,
    backend_key: String,
    ports: Vec<Port>,
}

#[derive(Debug)]
struct PoolState {
    pool: Pool,
    free: Vec<FreeRuns>,
    /// Per family, the indices of ranges that still have a free address, so the lowest is found in O(log).
    nonfull: [BTreeSet<usize>; 2],
    /// Per sharing key, the addresses of this pool carrying it, in allocation order (range, address).
    shared: HashMap<String, BTreeSet<(usize, u128)>>,
    counters: Counters,
}

impl PoolState {
    fn new(pool: Pool) -> Self {
        let mut free = Vec::with_capacity(pool.ranges.len());
        let mut nonfull = [BTreeSet::new(), BTreeSet::new()];
        let mut counters = Counters::default();
        for (i, range) in pool.ranges.iter().enumerate() {
            let runs = FreeRuns::new(range, pool.avoid_buggy_ips);
            if !runs.is_empty() {
                nonfull[range.family.index()].insert(i);
            }
            free.push(runs);
            let buggy = if pool.avoid_buggy_ips { range.buggy_count() } else { 0 };
            // span + 1 overflows only for ::/0, which has no buggy addresses.
            let size = range.span().checked_add(1).map_or(u128::MAX, |n| n - buggy);
            let total = &mut counters.total[range.family.index()];
            *total = total.saturating_add(size);
            let capacity = &mut counters.capacity[range.family.index()];
            *capacity = if range.holds_aligned_block(METALLB_HUGE_BITS) {
                i64::MAX
            } else {
                capacity.saturating_add(i64::try_from(size).unwrap_or(i64::MAX))
            };
        }
        PoolState { pool, free, nonfull, shared: HashMap::new(), counters }
    }

    fn lowest_free(&self, family: Family) -> Option<(usize, u128)> {
        let range = *self.nonfull[family.index()].first()?;
        Some((range, self.free[range].first()?))
    }
}

/// MetalLB's IP allocator. Errors leave the state exactly as it was.
#[derive(Debug, Default)]
pub struct Allocator {
    pools: Vec<PoolState>,
    by_name: HashMap<String, usize>,
    /// Every range of every pool by (family, start) -> (pool, range index, end), for address lookups.
    ranges: BTreeMap<(Family, u128), (usize, usize, u128)>,
    holdings: HashMap<String, Holding, RandomState>,
    ips: HashMap<IpAddr, IpUse, RandomState>,
}

impl Allocator {
    pub fn new(pools: Vec<Pool>) -> Result<Allocator, ConfigError> {
        let mut allocator = Allocator::default();
        allocator.set_pools(pools)?;
        Ok(allocator)
    }

    /// Applies a new set of pools. Every allocation whose addresses still lie in one pool (and are allowed
    /// there) is kept, possibly under a renamed pool; the others are released and their keys returned, sorted,
    /// for the caller to allocate again. An invalid set of pools changes nothing.
    pub fn set_pools(&mut self, pools: Vec<Pool>) -> Result<Vec<String>, ConfigError> {
        validate_pools(&pools)?;
        let mut old: Vec<(String, Holding)> = std::mem::take(&mut self.holdings).into_iter().collect();
        old.sort_by(|a, b| a.0.cmp(&b.0));
        self.ips.clear();
        self.ranges.clear();
        self.by_name = pools.iter().enumerate().map(|(i, p)| (p.name.clone(), i)).collect();
        for (p, pool) in pools.iter().enumerate() {
            for (r, range) in pool.ranges.iter().enumerate() {
                self.ranges.insert((range.family, range.start), (p, r, range.end));
            }
        }
        self.pools = pools.into_iter().map(PoolState::new).collect();
        let mut evicted = Vec::new();
        for (key, holding) in old {
            // The holders of an address were compatible before, so only pool membership can fail here.
            if self.assign(&key, &holding.ips, &holding.ports, holding.sharing_key, &holding.backend_key).is_err() {
                evicted.push(key);
            }
        }
        Ok(evicted)
    }

    pub fn pools(&self) -> impl Iterator<Item = &Pool> {
        self.pools.iter().map(|p| &p.pool)
    }

    /// Allocates addresses for `key`. A key that already holds addresses which still satisfy the request keeps
    /// them (with the new ports and sharing terms); otherwise it gets new ones, and on failure keeps the old.
    ///
    /// Pools are tried in tiers, as MetalLB does: first the pools whose serviceAllocation selects the service
    /// (by priority, then name), then the auto-assign pools open to all (by name; MetalLB's order among them
    /// is Go's random map order). A PreferDualStack service with two families takes, within a tier, the first
    /// pool that gives both, else the first that gives its primary family, else the first that gives the
    /// other. A PreferDualStack service holding one family keeps it and gains the other from the same pool
    /// when it can (MetalLB's controller: AllocateFromPoolForAdditionalFamily).
    pub fn allocate(&mut self, key: &str, request: &Request) -> Result<Vec<IpAddr>, AllocError> {
        let families = check_families(request)?;
        let previous = self.holdings.remove(key);
        if let Some(prev) = &previous {
            self.untake(key, prev);
        }
        let result = self.allocate_fresh(key, request, &families, previous.as_ref());
        if result.is_err() {
            if let Some(prev) = previous {
                self.commit(key, prev);
            }
        }
        result
    }

    fn allocate_fresh(
        &mut self,
        key: &str,
        request: &Request,
        families: &[Family],
        previous: Option<&Holding>,
    ) -> Result<Vec<IpAddr>, AllocError> {
        let tiers = self.candidate_pools(key, request)?;
        let sharing_key = request.sharing_key.clone().filter(|k| !k.is_empty());
        let terms = Terms {
            key,
            ports: &request.ports,
            sharing_key: sharing_key.as_deref(),
            backend_key: &request.backend_key,
        };
        let prefer = request.family_policy == FamilyPolicy::PreferDualStack;

        if let Some(prev) = previous {
            if let Some(ips) = self.keep(prev, request, families, &tiers, &terms) {
                self.commit(key, self.holding(prev.pool, ips.clone(), &terms));
                return Ok(ips);
            }
        }

        if !request.requested.is_empty() {
            let pool = tiers[0][0];
            for ip in &request.requested {
                self.check_ip(pool, *ip, &terms)?;
            }
            self.commit(key, self.holding(pool, request.requested.clone(), &terms));
            return Ok(request.requested.clone());
        }

        // An address the key held in this pool is taken again before any other (its family changed, say).
        let reuse = |pool: usize, family: Family| {
            previous.filter(|p| p.pool == pool).and_then(|p| p.ips.iter().copied().find(|ip| Family::of(*ip) == family))
        };
        let mut exhausted: Option<AllocError> = None;
        for tier in &tiers {
            // PreferDualStack: the first pool giving only the primary family, and only the secondary one.
            let mut partial: [Option<(usize, Vec<IpAddr>)>; 2] = [None, None];
            for &pool in tier {
                let offered: Vec<Family> =
                    families.iter().copied().filter(|f| self.pools[pool].pool.has_family(*f)).collect();
                if offered.is_empty() || (!prefer && offered.len() < families.len()) {
                    continue;
                }
                let mut ips = Vec::with_capacity(offered.len());
                for family in offered {
                    match self.pick(pool, family, &terms, reuse(pool, family)) {
                        Ok(ip) => ips.push(ip),
                        Err(e) => exhausted = exhausted.or(Some(e)),
                    }
                }
                if ips.len() == families.len() {
                    self.commit(key, self.holding(pool, ips.clone(), &terms));
                    return Ok(ips);
                }
                if prefer && ips.len() == 1 {
                    let slot = usize::from(Family::of(ips[0]) != families[0]);
                    partial[slot].get_or_insert((pool, ips));
                }
            }
            if let Some((pool, ips)) = partial.into_iter().flatten().next() {
                self.commit(key, self.holding(pool, ips.clone(), &terms));
                return Ok(ips);
            }
        }
        Err(exhausted.unwrap_or_else(|| AllocError::NoPool {
            key: key.to_string(),
            reason: format!("no candidate pool has {} addresses", join(families)),
        }))
    }

    /// What `prev` (just released) keeps under the new request, if it still fits: the pool asked for, or
    /// with none a pool that serves the service (auto-assign or not: MetalLB's Allocate keeps an existing
    /// allocation when its Assign succeeds), the addresses asked for (if any), the right families, and every
    /// address still allowed on the new terms.
    fn keep(
        &self,
        prev: &Holding,
        request: &Request,
        families: &[Family],
        tiers: &[Vec<usize>],
        terms: &Terms<'_>,
    ) -> Option<Vec<IpAddr>> {
        let candidate = if request.pool.is_some() || !request.requested.is_empty() {
            tiers.iter().flatten().any(|&p| p == prev.pool)
        } else {
            self.serves(prev.pool, terms.key, &request.namespace_labels, &request.labels)
        };
        let same_request = request.requested.is_empty() || same_set(&request.requested, &prev.ips);
        if !candidate || !same_request || prev.ips.iter().any(|ip| self.check_ip(prev.pool, *ip, terms).is_err()) {
            return None;
        }
        if !request.requested.is_empty() {
            return Some(request.requested.clone());
        }
        let held: Vec<Family> = prev.ips.iter().map(|ip| Family::of(*ip)).collect();
        let prefer = request.family_policy == FamilyPolicy::PreferDualStack;
        // The families asked for, or (PreferDualStack) some of them: the others are added when they can be.
        let fits = same_set(&held, families) || (prefer && held.iter().all(|f| families.contains(f)));
        if !fits {
            return None;
        }
        let mut ips = prev.ips.clone();
        for &family in families.iter().filter(|f| !held.contains(f)) {
            if let Ok(ip) = self.pick(prev.pool, family, terms, None) {
                ips.push(ip);
            }
        }
        // In ipFamilies order, whatever order they were held in.
        ips.sort_by_key(|ip| families.iter().position(|f| *f == Family::of(*ip)));
        Some(ips)
    }

    /// Records that `key` holds `ips` (a restart restoring the cluster's state). Refuses, changing nothing,
    /// when an address lies in no pool, the addresses span pools, or another service holds one and may not
    /// share it. Returns the pool's name. Does not look at serviceAllocation: see `assign_served`.
    pub fn assign(
        &mut self,
        key: &str,
        ips: &[IpAddr],
        ports: &[Port],
        sharing_key: Option<String>,
        backend_key: &str,
    ) -> Result<String, AllocError> {
        self.assign_checked(key, ips, ports, sharing_key, backend_key, None)
    }

    /// `assign` for a known Service, as MetalLB's Assign: the pool's serviceAllocation must also serve it
    /// (namespace from the key, the Service's labels and its namespace's labels).
    pub fn assign_served(
        &mut self,
        key: &str,
        ips: &[IpAddr],
        ports: &[Port],
        sharing_key: Option<String>,
        backend_key: &str,
        labels: &ServiceLabels,
    ) -> Result<String, AllocError> {
        self.assign_checked(key, ips, ports, sharing_key, backend_key, Some(labels))
    }

    fn assign_checked(
        &mut self,
        key: &str,
        ips: &[IpAddr],
        ports: &[Port],
        sharing_key: Option<String>,
        backend_key: &str,
        served: Option<&ServiceLabels>,
    ) -> Result<String, AllocError> {
        if ips.is_empty() {
            return Err(AllocError::Family(format!("assign {key:?}: no address given")));
        }
        check_one_per_family(ips)?;
        let pool = self.pool_of_all(key, ips)?;
        if let Some(labels) = served {
            if !self.serves(pool, key, &labels.namespace, &labels.service) {
                return Err(self.not_served(key, pool));
            }
        }
        let previous = self.holdings.remove(key);
        if let Some(prev) = &previous {
            self.untake(key, prev);
        }
        let sharing_key = sharing_key.filter(|k| !k.is_empty());
        let terms = Terms { key, ports, sharing_key: sharing_key.as_deref(), backend_key };
        let result = ips.iter().try_for_each(|ip| self.check_ip(pool, *ip, &terms));
        match result {
            Ok(()) => {
                self.commit(key, self.holding(pool, ips.to_vec(), &terms));
                Ok(self.pools[pool].pool.name.clone())
            }
            Err(e) => {
                if let Some(prev) = previous {
                    self.commit(key, prev);
                }
                Err(e)
            }
        }
    }

    /// Frees whatever `key` holds. Returns whether it held anything.
    pub fn release(&mut self, key: &str) -> bool {
        match self.holdings.remove(key) {
            Some(holding) => {
                self.untake(key, &holding);
                true
            }
            None => false,
        }
    }

    pub fn ips(&self, key: &str) -> Option<&[IpAddr]> {
        self.holdings.get(key).map(|h| h.ips.as_slice())
    }

    pub fn pool_of(&self, key: &str) -> Option<&str> {
        self.holdings.get(key).map(|h| self.pools[h.pool].pool.name.as_str())
    }

    pub fn pool_for_ip(&self, ip: IpAddr) -> Option<&str> {
        self.locate(ip).map(|(p, _)| self.pools[p].pool.name.as_str())
    }

    /// The keys holding `ip`, in the order they got it.
    pub fn holders(&self, ip: IpAddr) -> &[String] {
        self.ips.get(&ip).map_or(&[], |u| u.holders.as_slice())
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.holdings.keys().map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.holdings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.holdings.is_empty()
    }

    /// The pool's counts; all zero for a pool that is not configured (removed, or never was), as in MetalLB,
    /// so a status or metrics writer racing a configuration change reads zeros rather than failing.
    pub fn counters(&self, pool: &str) -> Counters {
        self.by_name.get(pool).map(|&p| self.pools[p].counters).unwrap_or_default()
    }

    // ---- decisions ----

    fn serves(
        &self,
        pool: usize,
        key: &str,
        namespace_labels: &HashMap<String, String>,
        labels: &HashMap<String, String>,
    ) -> bool {
        let namespace = key.split_once('/').map_or("", |(ns, _)| ns);
        self.pools[pool]
            .pool
            .service_allocation
            .as_ref()
            .is_none_or(|sa| sa.matches(namespace, namespace_labels, labels))
    }

    fn not_served(&self, key: &str, pool: usize) -> AllocError {
        AllocError::NoPool {
            key: key.to_string(),
            reason: format!(
                "pool {:?} serves only the namespaces and labels its serviceAllocation selects",
                self.pools[pool].pool.name
            ),
        }
    }

    /// Pools that may serve this request, in tiers tried one after the other, each in the order tried.
    fn candidate_pools(&self, key: &str, request: &Request) -> Result<Vec<Vec<usize>>, AllocError> {
        let serves = |p: usize| self.serves(p, key, &request.namespace_labels, &request.labels);
        if let Some(name) = &request.pool {
            let &p = self.by_name.get(name).ok_or_else(|| AllocError::UnknownPool { pool: name.clone() })?;
            if !serves(p) {
                return Err(self.not_served(key, p));
            }
            return Ok(vec![vec![p]]);
        }
        if !request.requested.is_empty() {
            let p = self.pool_of_all(key, &request.requested)?;
            if !serves(p) {
                return Err(self.not_served(key, p));
            }
            return Ok(vec![vec![p]]);
        }
        let mut selected: Vec<usize> = (0..self.pools.len())
            .filter(|&p| self.pools[p].pool.auto_assign && self.pools[p].pool.service_allocation.is_some() && serves(p))
            .collect();
        selected.sort_by_key(|&p| {
            let priority = self.pools[p].pool.service_allocation.as_ref().and_then(|sa| sa.priority);
            (priority.is_none(), priority, &self.pools[p].pool.name)
        });
        let mut open: Vec<usize> = (0..self.pools.len())
            .filter(|&p| self.pools[p].pool.auto_assign && self.pools[p].pool.service_allocation.is_none())
            .collect();
        open.sort_by_key(|&p| &self.pools[p].pool.name);
        let tiers: Vec<Vec<usize>> = [selected, open].into_iter().filter(|t| !t.is_empty()).collect();
        if tiers.is_empty() {
            return Err(AllocError::NoPool {
                key: key.to_string(),
                reason: "no auto-assign pool serves its namespace and labels".into(),
            });
        }
        Ok(tiers)
    }

    /// The one pool holding every address in `ips`.
    fn pool_of_all(&self, key: &str, ips: &[IpAddr]) -> Result<usize, AllocError> {
        let mut pool: Option<usize> = None;
        for ip in ips {
            let (p, _) = self.locate(*ip).ok_or_else(|| AllocError::IpNotAllowed {
                ip: *ip,
                key: key.to_string(),
                reason: "it lies in no pool".into(),
            })?;
            match pool {
                Some(first) if first != p => {
                    return Err(AllocError::IpNotAllowed {
                        ip: *ip,
                        key: key.to_string(),
                        reason: format!(
                            "a service's addresses must come from one pool, and it is in {:?}, not {:?}",
                            self.pools[p].pool.name, self.pools[first].pool.name
                        ),
                    })
                }
                _ => pool = Some(p),
            }
        }
        pool.ok_or_else(|| AllocError::Family(format!("{key:?}: no address given")))
    }

    /// Whether `ip` of pool `pool` may go to a service with these terms.
    fn check_ip(&self, pool: usize, ip: IpAddr, terms: &Terms<'_>) -> Result<(), AllocError> {
        let not_allowed = |reason: String| AllocError::IpNotAllowed { ip, key: terms.key.to_string(), reason };
        let range = match self.locate(ip) {
            Some((p, r)) if p == pool => r,
            _ => return Err(not_allowed(format!("it is not in pool {:?}", self.pools[pool].pool.name))),
        };
        if !self.pools[pool].free[range].allowed(to_int(ip)) {
            return Err(not_allowed(format!(
                "pool {:?} avoids buggy addresses ending in .0 or .255",
                self.pools[pool].pool.name
            )));
        }
        match self.ips.get(&ip) {
            None => {
                debug_assert!(self.pools[pool].free[range].is_free(to_int(ip)), "{ip} unused but not free");
                Ok(())
            }
            Some(usage) => can_share(usage, terms).map_err(|reason| AllocError::IpInUse {
                ip,
                key: terms.key.to_string(),
                holder: usage.holders.first().cloned().unwrap_or_default(),
                reason,
            }),
        }
    }

    /// The address of `family` to give on these terms: `reuse` when it is still allowed, else the lowest that
    /// is free or shareable.
    fn pick(
        &self,
        pool: usize,
        family: Family,
        terms: &Terms<'_>,
        reuse: Option<IpAddr>,
    ) -> Result<IpAddr, AllocError> {
        if let Some(ip) = reuse.filter(|ip| Family::of(*ip) == family) {
            if self.check_ip(pool, ip, terms).is_ok() {
                return Ok(ip);
            }
        }
        let state = &self.pools[pool];
        let free = state.lowest_free(family);
        let shared = terms.sharing_key.and_then(|sk| state.shared.get(sk)).and_then(|carriers| {
            carriers.iter().copied().find(|&(r, x)| {
                state.pool.ranges[r].family == family
                    && self.ips.get(&family.ip(x)).is_some_and(|usage| can_share(usage, terms).is_ok())
            })
        });
        let best = match (free, shared) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let (_, x) = best.ok_or_else(|| AllocError::PoolExhausted { pool: state.pool.name.clone(), family })?;
        Ok(family.ip(x))
    }

    // ---- state changes (only after the decisions above said yes) ----

    fn holding(&self, pool: usize, ips: Vec<IpAddr>, terms: &Terms<'_>) -> Holding {
        Holding {
            pool,
            ips,
            ports: terms.ports.to_vec(),
            sharing_key: terms.sharing_key.map(str::to_string),
            backend_key: terms.backend_key.to_string(),
        }
    }

    fn commit(&mut self, key: &str, holding: Holding) {
        for &ip in &holding.ips {
            match self.ips.entry(ip) {
                Entry::Occupied(mut e) => {
                    let usage = e.get_mut();
                    usage.holders.push(key.to_string());
                    usage.ports.extend_from_slice(&holding.ports);
                }
                Entry::Vacant(e) => {
                    let (family, x) = (Family::of(ip), to_int(ip));
                    let (p, range) = Self::locate_in(&self.ranges, ip).expect("committed addresses lie in a pool");
                    debug_assert_eq!(p, holding.pool);
                    let state = &mut self.pools[p];
                    // check_ip said yes; a failure here is a bug that must not turn into a shared address.
                    let taken = state.free[range].take(x);
                    assert!(taken, "{ip} was not free when committed");
                    if state.free[range].is_empty() {
                        state.nonfull[family.index()].remove(&range);
                    }
                    state.counters.in_use[family.index()] += 1;
                    if let Some(sk) = &holding.sharing_key {
                        state.shared.entry(sk.clone()).or_default().insert((range, x));
                    }
                    e.insert(IpUse {
                        range,
                        holders: vec![key.to_string()],
                        sharing_key: holding.sharing_key.clone(),
                        backend_key: holding.backend_key.clone(),
                        ports: holding.ports.clone(),
                    });
                }
            }
        }
        self.holdings.insert(key.to_string(), holding);
    }

    fn untake(&mut self, key: &str, holding: &Holding) {
        for ip in &holding.ips {
            let Entry::Occupied(mut e) = self.ips.entry(*ip) else { continue };
            let usage = e.get_mut();
            usage.holders.retain(|h| h != key);
            if !usage.holders.is_empty() {
                // Ports of services sharing an address never overlap, so these are exactly this key's ports.
                usage.ports.retain(|p| !holding.ports.contains(p));
                continue;
            }
            let usage = e.remove();
            let (family, x) = (Family::of(*ip), to_int(*ip));
            let state = &mut self.pools[holding.pool];
            state.free[usage.range].give(x);
            state.nonfull[family.index()].insert(usage.range);
            state.counters.in_use[family.index()] -= 1;
            if let Some(sk) = &usage.sharing_key {
                if let Entry::Occupied(mut carriers) = state.shared.entry(sk.clone()) {
                    carriers.get_mut().remove(&(usage.range, x));
                    if carriers.get().is_empty() {
                        carriers.remove();
                    }
                }
            }
        }
    }

    fn locate(&self, ip: IpAddr) -> Option<(usize, usize)> {
        Self::locate_in(&self.ranges, ip)
    }

    fn locate_in(ranges: &BTreeMap<(Family, u128), (usize, usize, u128)>, ip: IpAddr) -> Option<(usize, usize)> {
        let (family, x) = (Family::of(ip), to_int(ip));
        let (&(f, _), &(p, r, end)) = ranges.range(..=(family, x)).next_back()?;
        (f == family && x <= end).then_some((p, r))
    }
}

/// The terms under which a key asks for an address.
struct Terms<'a> {
    key: &'a str,
    ports: &'a [Port],
    sharing_key: Option<&'a str>,
    backend_key: &'a str,
}

/// MetalLB's sharing rule: same non-empty sharing key, same backend key, no common (port, protocol).
fn can_share(usage: &IpUse, terms: &Terms<'_>) -> Result<(), String> {
    match (usage.sharing_key.as_deref(), terms.sharing_key) {
        (None, _) => return Err("its holder does not allow sharing (no allow-shared-ip key)".into()),
        (_, None) => return Err("the service has no sharing key (allow-shared-ip)".into()),
        (Some(a), Some(b)) if a != b => return Err(format!("sharing keys differ ({a:?} and {b:?})")),
        _ => {}
    }
    if usage.backend_key != terms.backend_key {
        return Err("backend keys differ: with externalTrafficPolicy Local, services sharing an address \
                    must select the same pods"
            .into());
    }
    if let Some(port) = terms.ports.iter().find(|p| usage.ports.contains(p)) {
        return Err(format!("port {port} is already used on it"));
    }
    Ok(())
}

/// Validates `ip_families` and the requested addresses against the policy; returns the families to give, in
/// order (see `Request::ip_families` for when it is empty).
fn check_families(request: &Request) -> Result<Vec<Family>, AllocError> {
    check_one_per_family(&request.requested)?;
    let families = if !request.ip_families.is_empty() {
        request.ip_families.clone()
    } else if !request.requested.is_empty() {
        request.requested.iter().map(|ip| Family::of(*ip)).collect()
    } else if request.family_policy == FamilyPolicy::SingleStack {
        vec![Family::V4]
    } else {
        Family::ALL.to_vec()
    };
    if families.len() > 2 || (families.len() == 2 && families[0] == families[1]) {
        return Err(AllocError::Family(format!("ipFamilies {} must list each family at most once", join(&families))));
    }
    let from = if request.ip_families.is_empty() && !request.requested.is_empty() {
        " (the requested addresses' families)"
    } else {
        ""
    };
    match request.family_policy {
        FamilyPolicy::SingleStack if families.len() > 1 => {
            return Err(AllocError::Family(format!(
                "ipFamilyPolicy SingleStack allows one family, not {}{from}",
                join(&families)
            )))
        }
        // MetalLB's controller refuses it too: the Service "requires dual stack but not enough clusterips".
        FamilyPolicy::RequireDualStack if families.len() < 2 => {
            return Err(AllocError::Family(format!(
                "ipFamilyPolicy RequireDualStack needs both IPv4 and IPv6 in ipFamilies, not only {}{from}",
                join(&families)
            )))
        }
        _ => {}
    }
    // MetalLB's controller (allocateIPs) refuses requested addresses whose family (IPv4, IPv6 or both) is
    // not the Service's, PreferDualStack included: one address of each of its families, no other.
    let requested: Vec<Family> = request.requested.iter().map(|ip| Family::of(*ip)).collect();
    if !requested.is_empty() && !same_set(&requested, &families) {
        let ips: Vec<String> = request.requested.iter().map(IpAddr::to_string).collect();
        return Err(AllocError::Family(format!(
            "requested address {} ({}) does not match the Service's ipFamilies {}: request one address of \
             each family in ipFamilies, no other, as MetalLB requires",
            ips.join(","),
            join(&requested),
            join(&families)
        )));
    }
    Ok(families)
}

fn check_one_per_family(ips: &[IpAddr]) -> Result<(), AllocError> {
    for family in Family::ALL {
        if ips.iter().filter(|ip| Family::of(**ip) == family).count() > 1 {
            return Err(AllocError::Family(format!("at most one {family} address per service")));
        }
    }
    Ok(())
}

fn same_set<T: PartialEq>(a: &[T], b: &[T]) -> bool {
    a.len() == b.len() && a.iter().all(|x| b.contains(x))
}

fn join(families: &[Family]) -> String {
    families.iter().map(Family::to_string).collect::<Vec<_>>().join("+")
}
