//! The announce set: which addresses are answered on which of the responder's interfaces.
//!
//! [`AnnounceTable`] is immutable once published: announce and withdraw build a new table and swap it in
//! whole (see `responder`), so the packet loop reads a consistent set without a lock. The solicited-node
//! groups the responder must belong to are derived from the table ([`wanted_groups`]), never tracked by hand.
//!
//! Interfaces come and go while the responder runs, so a table names them by position, and [`Slots`] keeps
//! each name on one position while it is served or an announcement names it: an address announced on
//! `eth0.100` is answered there again when `eth0.100` comes back. [`InterfaceSet::ALL`] means every served
//! interface, those added later included.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv6Addr};

use metallb_core::l2::{AddressHasher, AnnounceSet};
use metallb_core::packet::solicited_node_multicast;

/// Most interfaces one responder serves (one bit each in [`InterfaceSet`]).
pub const MAX_INTERFACES: usize = 64;

/// A set of the responder's interfaces, by their position in its [`Slots`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Debug)]
pub struct InterfaceSet(u64);

impl InterfaceSet {
    /// Every position: every interface served now or later.
    pub const ALL: InterfaceSet = InterfaceSet(u64::MAX);
    pub const EMPTY: InterfaceSet = InterfaceSet(0);

    pub fn is_all(&self) -> bool {
        *self == Self::ALL
    }

    pub fn with(self, position: usize) -> Self {
        InterfaceSet::from_positions(self.positions().chain([position]))
    }

    pub fn without(self, position: usize) -> Self {
        match position {
            p if p < MAX_INTERFACES => InterfaceSet(self.0 & !(1 << p)),
            _ => self,
        }
    }

    pub fn intersect(self, other: InterfaceSet) -> Self {
        InterfaceSet(self.0 & other.0)
    }

    pub fn from_positions(positions: impl IntoIterator<Item = usize>) -> Self {
        InterfaceSet(positions.into_iter().filter(|p| *p < MAX_INTERFACES).fold(0, |bits, p| bits | 1 << p))
    }

    pub fn contains(&self, position: usize) -> bool {
        position < MAX_INTERFACES && self.0 & (1 << position) != 0
    }

    pub fn positions(self) -> impl Iterator<Item = usize> {
        (0..MAX_INTERFACES).filter(move |p| self.contains(*p))
    }

    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }
}

/// The addresses answered, each with the interfaces it is answered on.
///
/// Every received frame looks up one or two addresses here (the target asked about, and the sender, to see
/// another host claim an announced address): the map hashes with [`AddressHasher`], not SipHash.
#[derive(Clone, Default, Debug, PartialEq, Eq)]
pub struct AnnounceTable {
    entries: HashMap<IpAddr, InterfaceSet, AddressHasher>,
}

impl AnnounceTable {
    /// A copy with `ip` answered on `interfaces` (replacing what it had).
    pub fn with(&self, ip: IpAddr, interfaces: InterfaceSet) -> Self {
        let mut entries = self.entries.clone();
        entries.insert(ip, interfaces);
        AnnounceTable { entries }
    }

    /// A copy without `ip`.
    pub fn without(&self, ip: IpAddr) -> Self {
        let mut entries = self.entries.clone();
        entries.remove(&ip);
        AnnounceTable { entries }
    }

    pub fn get(&self, ip: IpAddr) -> Option<InterfaceSet> {
        self.entries.get(&ip).copied()
    }

    pub fn iter(&self) -> impl Iterator<Item = (IpAddr, InterfaceSet)> + '_ {
        self.entries.iter().map(|(ip, set)| (*ip, *set))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The set as one interface sees it, for [`metallb_core::l2::decide`].
    pub fn on_interface(&self, position: usize) -> OnInterface<'_> {
        OnInterface { table: self, position }
    }
}

/// The addresses answered on one interface.
#[derive(Clone, Copy, Debug)]
pub struct OnInterface<'a> {
    table: &'a AnnounceTable,
    position: usize,
}

impl AnnounceSet for OnInterface<'_> {
    fn announces(&self, ip: IpAddr) -> bool {
        self.table.entries.get(&ip).is_some_and(|set| set.contains(self.position))
    }
}

/// The solicited-node groups to belong to: (interface position, group) for each IPv6 address on each of its
/// `served` interfaces. Two addresses with the same low 24 bits share a group, which is joined once.
pub fn wanted_groups(table: &AnnounceTable, served: InterfaceSet) -> BTreeSet<(usize, Ipv6Addr)> {
    table
        .iter()
        .filter_map(|(ip, set)| match ip {
            IpAddr::V6(v6) => Some((v6, set.intersect(served))),
            IpAddr::V4(_) => None,
        })
        .flat_map(|(ip, set)| set.positions().map(move |p| (p, solicited_node_multicast(ip))).collect::<Vec<_>>())
        .collect()
}

/// The names behind the positions of [`InterfaceSet`]s, and which of them are served (have a socket).
///
/// A name keeps its position while it is served or an announcement of the table names it (not counting
/// [`InterfaceSet::ALL`]), so a position never changes meaning under a published table.
#[derive(Clone, Default, Debug, PartialEq, Eq)]
pub struct Slots {
    names: Vec<Option<String>>,
    served: InterfaceSet,
}

impl Slots {
    pub fn position(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n.as_deref() == Some(name))
    }

    pub fn name(&self, position: usize) -> Option<&str> {
        self.names.get(position).and_then(|n| n.as_deref())
    }

    /// The interfaces with a socket now.
    pub fn served(&self) -> InterfaceSet {
        self.served
    }

    /// The names of the served interfaces, by position.
    pub fn served_names(&self) -> Vec<String> {
        self.served.positions().filter_map(|p| self.name(p)).map(str::to_string).collect()
    }

    /// The position of `name`, taking a free one if it has none; `None` when every position is taken.
    pub fn assign(&mut self, name: &str) -> Option<usize> {
        if let Some(position) = self.position(name) {
            return Some(position);
        }
        let free = match self.names.iter().position(Option::is_none) {
            Some(free) => free,
            None if self.names.len() < MAX_INTERFACES => {
                self.names.push(None);
                self.names.len() - 1
            }
            None => return None,
        };
        self.names[free] = Some(name.to_string());
        Some(free)
    }

    pub fn set_served(&mut self, position: usize, served: bool) {
        self.served = if served { self.served.with(position) } else { self.served.without(position) };
    }

    /// Frees the positions that are neither served nor named by an announcement of `table`.
    pub fn release_unused(&mut self, table: &AnnounceTable) {
        let named = table
            .iter()
            .filter(|(_, set)| !set.is_all())
            .fold(InterfaceSet::EMPTY, |all, (_, set)| InterfaceSet(all.0 | set.0));
        for (position, name) in self.names.iter_mut().enumerate() {
            if !self.served.contains(position) && !named.contains(position) {
                *name = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// The first `count` positions.
    fn first(count: usize) -> InterfaceSet {
        InterfaceSet::from_positions(0..count)
    }

    #[test]
    fn interface_sets() {
        assert_eq!(first(3).positions().collect::<Vec<_>>(), vec![0, 1, 2]);
        assert!(first(64).contains(63));
        assert!(first(0).is_empty());
        let some = InterfaceSet::from_positions([1, 4]);
        assert!(some.contains(4) && !some.contains(0) && !some.contains(200));
        assert_eq!(some.with(0).without(4).positions().collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(InterfaceSet::ALL.intersect(some), some);
        assert!(InterfaceSet::ALL.is_all() && !first(63).is_all());
    }

    #[test]
    fn table_is_copied_not_changed() {
        let empty = AnnounceTable::default();
        let one = empty.with(ip("198.51.100.10"), first(2));
        assert!(empty.is_empty());
        assert_eq!(one.len(), 1);
        assert!(one.without(ip("198.51.100.10")).is_empty());
        assert_eq!(one.len(), 1);
    }

    #[test]
    fn interface_view_answers_only_where_selected() {
        let table = AnnounceTable::default()
            .with(ip("198.51.100.10"), InterfaceSet::from_positions([1]))
            .with(ip("2001:db8::10"), first(2));
        assert!(!table.on_interface(0).announces(ip("198.51.100.10")));
        assert!(table.on_interface(1).announces(ip("198.51.100.10")));
        assert!(table.on_interface(0).announces(ip("2001:db8::10")));
        assert!(!table.on_interface(0).announces(ip("198.51.100.11")));
    }

    #[test]
    fn groups_follow_ipv6_addresses_and_are_shared() {
        let table = AnnounceTable::default()
            .with(ip("198.51.100.10"), first(2))
            .with(ip("2001:db8::1:10"), InterfaceSet::from_positions([0]))
            .with(ip("2001:db8:ffff::1:10"), first(2));
        let group: Ipv6Addr = "ff02::1:ff01:10".parse().unwrap();
        assert_eq!(wanted_groups(&table, first(2)), BTreeSet::from([(0, group), (1, group)]));
        let fewer = table.without(ip("2001:db8:ffff::1:10"));
        assert_eq!(wanted_groups(&fewer, first(2)), BTreeSet::from([(0, group)]));
        assert_eq!(wanted_groups(&table, InterfaceSet::from_positions([1])), BTreeSet::from([(1, group)]));
    }

    #[test]
    fn all_covers_interfaces_served_later() {
        let table = AnnounceTable::default().with(ip("2001:db8::1:10"), InterfaceSet::ALL);
        let group: Ipv6Addr = "ff02::1:ff01:10".parse().unwrap();
        assert_eq!(wanted_groups(&table, InterfaceSet::from_positions([0])), BTreeSet::from([(0, group)]));
        assert_eq!(
            wanted_groups(&table, InterfaceSet::from_positions([0, 5])),
            BTreeSet::from([(0, group), (5, group)])
        );
        assert!(table.on_interface(40).announces(ip("2001:db8::1:10")));
    }

    #[test]
    fn slots_keep_a_name_on_its_position_while_it_is_served_or_named() {
        let mut slots = Slots::default();
        assert_eq!((slots.assign("eth0"), slots.assign("eth0.100"), slots.assign("eth0")), (Some(0), Some(1), Some(0)));
        slots.set_served(0, true);
        slots.set_served(1, true);
        assert_eq!(slots.served_names(), vec!["eth0", "eth0.100"]);
        // eth0.100 goes away while an address names it: its position waits for it.
        let table = AnnounceTable::default()
            .with(ip("198.51.100.10"), InterfaceSet::from_positions([1]))
            .with(ip("198.51.100.11"), InterfaceSet::ALL);
        slots.set_served(1, false);
        slots.release_unused(&table);
        assert_eq!(slots.served_names(), vec!["eth0"]);
        assert_eq!(slots.assign("eth1"), Some(2), "position 1 is still eth0.100's");
        assert_eq!(slots.assign("eth0.100"), Some(1));
        // Once nothing names it, a position is free again (an ALL announcement names no position).
        slots.release_unused(&table.without(ip("198.51.100.10")));
        assert_eq!((slots.position("eth0.100"), slots.position("eth1")), (None, None));
        assert_eq!(slots.assign("eth2"), Some(1));
    }

    #[test]
    fn slots_run_out_at_the_limit() {
        let mut slots = Slots::default();
        for n in 0..MAX_INTERFACES {
            assert_eq!(slots.assign(&format!("if{n}")), Some(n));
        }
        assert_eq!(slots.assign("one-more"), None);
        assert_eq!(slots.assign("if7"), Some(7));
    }
}
