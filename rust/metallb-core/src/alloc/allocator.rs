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
    /// `spec.ipFamilies` in order; empty means IPv4.
    pub ip_families: Vec<Family>,
    pub family_policy: FamilyPolicy,
    pub labels: HashMap<String, String>,
    pub namespace_labels: HashMap<String, String>,
}

/// Address counts of one pool, per family (index with `Family::index`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    /// Addresses the pool may hand out (buggy ones excluded when avoided). Saturates only for a pool holding
    /// the whole IPv6 space, which has 2^128 addresses.
    pub total: [u128; 2],
    /// Distinct addresses held by at least one service.
    pub in_use: [u64; 2],
}

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
        let candidates = self.candidate_pools(key, request)?;
        let sharing_key = request.sharing_key.clone().filter(|k| !k.is_empty());
        let terms = Terms {
            key,
            ports: &request.ports,
            sharing_key: sharing_key.as_deref(),
            backend_key: &request.backend_key,
        };

        if let Some(prev) = previous {
            let same_request = request.requested.is_empty() || same_set(&request.requested, &prev.ips);
            let fits = candidates.contains(&prev.pool)
                && same_request
                && wanted_families(request, families, &self.pools[prev.pool].pool)
                    .is_ok_and(|want| same_set(&want, &prev.ips.iter().map(|ip| Family::of(*ip)).collect::<Vec<_>>()))
                && prev.ips.iter().all(|ip| self.check_ip(prev.pool, *ip, &terms).is_ok());
            if fits {
                let ips = prev.ips.clone();
                self.commit(key, self.holding(prev.pool, ips.clone(), &terms));
                return Ok(ips);
            }
        }

        if !request.requested.is_empty() {
            let pool = candidates[0];
            for ip in &request.requested {
                self.check_ip(pool, *ip, &terms)?;
            }
            self.commit(key, self.holding(pool, request.requested.clone(), &terms));
            return Ok(request.requested.clone());
        }

        let mut exhausted: Option<AllocError> = None;
        for pool in candidates {
            let Ok(want) = wanted_families(request, families, &self.pools[pool].pool) else { continue };
            match self.pick(pool, &want, &terms) {
                Ok(ips) => {
                    self.commit(key, self.holding(pool, ips.clone(), &terms));
                    return Ok(ips);
                }
                Err(e) => exhausted = exhausted.or(Some(e)),
            }
        }
        Err(exhausted.unwrap_or_else(|| AllocError::NoPool {
            key: key.to_string(),
            reason: format!("no candidate pool has {} addresses", join(families)),
        }))
    }

    /// Records that `key` holds `ips` (a restart restoring the cluster's state). Refuses, changing nothing,
    /// when an address lies in no pool, the addresses span pools, or another service holds one and may not
    /// share it. Returns the pool's name.
    pub fn assign(
        &mut self,
        key: &str,
        ips: &[IpAddr],
        ports: &[Port],
        sharing_key: Option<String>,
        backend_key: &str,
    ) -> Result<String, AllocError> {
        if ips.is_empty() {
            return Err(AllocError::Family(format!("assign {key:?}: no address given")));
        }
        check_one_per_family(ips)?;
        let previous = self.holdings.remove(key);
        if let Some(prev) = &previous {
            self.untake(key, prev);
        }
        let sharing_key = sharing_key.filter(|k| !k.is_empty());
        let terms = Terms { key, ports, sharing_key: sharing_key.as_deref(), backend_key };
        let result = self.pool_of_all(key, ips).and_then(|pool| {
            for ip in ips {
                self.check_ip(pool, *ip, &terms)?;
            }
            Ok(pool)
        });
        match result {
            Ok(pool) => {
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

    pub fn counters(&self, pool: &str) -> Result<Counters, AllocError> {
        let &p = self.by_name.get(pool).ok_or_else(|| AllocError::UnknownPool { pool: pool.to_string() })?;
        Ok(self.pools[p].counters)
    }

    // ---- decisions ----

    /// Pools that may serve this request, in the order they are tried.
    fn candidate_pools(&self, key: &str, request: &Request) -> Result<Vec<usize>, AllocError> {
        let namespace = key.split_once('/').map_or("", |(ns, _)| ns);
        let serves = |p: usize| {
            self.pools[p]
                .pool
                .service_allocation
                .as_ref()
                .is_none_or(|sa| sa.matches(namespace, &request.namespace_labels, &request.labels))
        };
        let refuse = |p: usize| AllocError::NoPool {
            key: key.to_string(),
            reason: format!(
                "pool {:?} serves only the namespaces and labels its serviceAllocation selects",
                self.pools[p].pool.name
            ),
        };
        if let Some(name) = &request.pool {
            let &p = self.by_name.get(name).ok_or_else(|| AllocError::UnknownPool { pool: name.clone() })?;
            if !serves(p) {
                return Err(refuse(p));
            }
            return Ok(vec![p]);
        }
        if !request.requested.is_empty() {
            let p = self.pool_of_all(key, &request.requested)?;
            if !serves(p) {
                return Err(refuse(p));
            }
            return Ok(vec![p]);
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
        selected.extend(open);
        if selected.is_empty() {
            return Err(AllocError::NoPool {
                key: key.to_string(),
                reason: "no auto-assign pool serves its namespace and labels".into(),
            });
        }
        Ok(selected)
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

    /// The lowest address per family that is free or shareable on these terms.
    fn pick(&self, pool: usize, families: &[Family], terms: &Terms<'_>) -> Result<Vec<IpAddr>, AllocError> {
        let state = &self.pools[pool];
        let mut ips = Vec::with_capacity(families.len());
        for &family in families {
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
            ips.push(family.ip(x));
        }
        Ok(ips)
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

/// Validates `ip_families` and the requested addresses against the policy; returns the ordered families.
fn check_families(request: &Request) -> Result<Vec<Family>, AllocError> {
    let families = if request.ip_families.is_empty() { vec![Family::V4] } else { request.ip_families.clone() };
    if families.len() > 2 || (families.len() == 2 && families[0] == families[1]) {
        return Err(AllocError::Family(format!("ipFamilies {} must list each family at most once", join(&families))));
    }
    if families.len() == 2 && request.family_policy == FamilyPolicy::SingleStack {
        return Err(AllocError::Family("ipFamilyPolicy SingleStack allows one ipFamily".into()));
    }
    check_one_per_family(&request.requested)?;
    let asked = request.requested.len();
    match request.family_policy {
        FamilyPolicy::SingleStack if asked > 1 => {
            Err(AllocError::Family("SingleStack service requests an address of each family".into()))
        }
        FamilyPolicy::RequireDualStack if asked == 1 => {
            Err(AllocError::Family("RequireDualStack service requests an address of one family only".into()))
        }
        _ => Ok(families),
    }
}

fn check_one_per_family(ips: &[IpAddr]) -> Result<(), AllocError> {
    for family in Family::ALL {
        if ips.iter().filter(|ip| Family::of(**ip) == family).count() > 1 {
            return Err(AllocError::Family(format!("at most one {family} address per service")));
        }
    }
    Ok(())
}

/// The families to allocate from `pool` for this request, in order, or why the pool cannot serve them.
fn wanted_families(request: &Request, families: &[Family], pool: &Pool) -> Result<Vec<Family>, AllocError> {
    if !request.requested.is_empty() {
        return Ok(request.requested.iter().map(|ip| Family::of(*ip)).collect());
    }
    let mut ordered = families.to_vec();
    if request.family_policy != FamilyPolicy::SingleStack {
        for f in Family::ALL {
            if !ordered.contains(&f) {
                ordered.push(f);
            }
        }
    }
    let missing: Vec<Family> = ordered.iter().copied().filter(|f| !pool.has_family(*f)).collect();
    let want: Vec<Family> = ordered.into_iter().filter(|f| pool.has_family(*f)).collect();
    let enough = match request.family_policy {
        FamilyPolicy::PreferDualStack => !want.is_empty(),
        _ => missing.is_empty(),
    };
    if enough {
        Ok(want)
    } else {
        Err(AllocError::Family(format!("pool {:?} has no {} addresses", pool.name, join(&missing))))
    }
}

fn same_set<T: PartialEq>(a: &[T], b: &[T]) -> bool {
    a.len() == b.len() && a.iter().all(|x| b.contains(x))
}

fn join(families: &[Family]) -> String {
    families.iter().map(Family::to_string).collect::<Vec<_>>().join("+")
}
