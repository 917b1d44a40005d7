//! The announce set: which addresses are answered on which of the responder's interfaces.
//!
//! [`AnnounceTable`] is immutable once published: announce and withdraw build a new table and swap it in
//! whole (see `responder`), so the packet loop reads a consistent set without a lock. The solicited-node
//! groups the responder must belong to are derived from the table ([`wanted_groups`]), never tracked by hand.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv6Addr};

use metallb_core::l2::AnnounceSet;
use metallb_core::packet::solicited_node_multicast;

/// Most interfaces one responder serves (one bit each in [`InterfaceSet`]).
pub const MAX_INTERFACES: usize = 64;

/// A set of the responder's interfaces, by their position in the list given at start.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Debug)]
pub struct InterfaceSet(u64);

impl InterfaceSet {
    /// The first `count` interfaces: all of them.
    pub fn all(count: usize) -> Self {
        match count {
            0 => InterfaceSet(0),
            n if n >= MAX_INTERFACES => InterfaceSet(u64::MAX),
            n => InterfaceSet((1u64 << n) - 1),
        }
    }

    pub fn from_positions(positions: impl IntoIterator<Item = usize>) -> Self {
        InterfaceSet(positions.into_iter().filter(|p| *p < MAX_INTERFACES).fold(0, |bits, p| bits | 1 << p))
    }

    pub fn contains(&self, position: usize) -> bool {
        position < MAX_INTERFACES && self.0 & (1 << position) != 0
    }

    pub fn positions(&self) -> impl Iterator<Item = usize> + '_ {
        (0..MAX_INTERFACES).filter(|p| self.contains(*p))
    }

    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }
}

/// The addresses answered, each with the interfaces it is answered on.
#[derive(Clone, Default, Debug, PartialEq, Eq)]
pub struct AnnounceTable {
    entries: HashMap<IpAddr, InterfaceSet>,
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
/// interfaces. Two addresses with the same low 24 bits share a group, which is joined once.
pub fn wanted_groups(table: &AnnounceTable) -> BTreeSet<(usize, Ipv6Addr)> {
    table
        .iter()
        .filter_map(|(ip, set)| match ip {
            IpAddr::V6(v6) => Some((v6, set)),
            IpAddr::V4(_) => None,
        })
        .flat_map(|(ip, set)| set.positions().map(move |p| (p, solicited_node_multicast(ip))).collect::<Vec<_>>())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn interface_sets() {
        assert_eq!(InterfaceSet::all(3).positions().collect::<Vec<_>>(), vec![0, 1, 2]);
        assert!(InterfaceSet::all(64).contains(63));
        assert!(InterfaceSet::all(0).is_empty());
        let some = InterfaceSet::from_positions([1, 4]);
        assert!(some.contains(4) && !some.contains(0) && !some.contains(200));
    }

    #[test]
    fn table_is_copied_not_changed() {
        let empty = AnnounceTable::default();
        let one = empty.with(ip("198.51.100.10"), InterfaceSet::all(2));
        assert!(empty.is_empty());
        assert_eq!(one.len(), 1);
        assert!(one.without(ip("198.51.100.10")).is_empty());
        assert_eq!(one.len(), 1);
    }

    #[test]
    fn interface_view_answers_only_where_selected() {
        let table = AnnounceTable::default()
            .with(ip("198.51.100.10"), InterfaceSet::from_positions([1]))
            .with(ip("2001:db8::10"), InterfaceSet::all(2));
        assert!(!table.on_interface(0).announces(ip("198.51.100.10")));
        assert!(table.on_interface(1).announces(ip("198.51.100.10")));
        assert!(table.on_interface(0).announces(ip("2001:db8::10")));
        assert!(!table.on_interface(0).announces(ip("198.51.100.11")));
    }

    #[test]
    fn groups_follow_ipv6_addresses_and_are_shared() {
        let table = AnnounceTable::default()
            .with(ip("198.51.100.10"), InterfaceSet::all(2))
            .with(ip("2001:db8::1:10"), InterfaceSet::from_positions([0]))
            .with(ip("2001:db8:ffff::1:10"), InterfaceSet::all(2));
        let group: Ipv6Addr = "ff02::1:ff01:10".parse().unwrap();
        assert_eq!(wanted_groups(&table), BTreeSet::from([(0, group), (1, group)]));
        let fewer = table.without(ip("2001:db8:ffff::1:10"));
        assert_eq!(wanted_groups(&fewer), BTreeSet::from([(0, group)]));
    }
}
