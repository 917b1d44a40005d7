//! Who a member is on the wire: its node name, its gossip address and the generation of its identity.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

/// Longest node name accepted: a Kubernetes node name is a DNS subdomain (at most 253 bytes).
pub const MAX_NAME_LEN: usize = 253;

/// One incarnation of a speaker in the cluster.
///
/// SWIM's `Down` is final for an identity, so a member that restarts, or that the cluster wrongly declared
/// down, comes back with a newer `generation` at the same address; the newer generation replaces the older
/// one everywhere (see [`foca::Identity::win_addr_conflict`]). The runtime starts the generation at the wall
/// clock in milliseconds, so a restarted process is usually newer than the one before it; when the clock
/// stepped back in between, the cluster tells it the generation it holds and it takes the next one (see the
/// engine). The address is the unique key: two identities at one address are two generations of the same
/// member.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct MemberId {
    name: Arc<str>,
    addr: SocketAddr,
    generation: u64,
}

impl MemberId {
    pub fn new(name: &str, addr: SocketAddr, generation: u64) -> Self {
        MemberId { name: Arc::from(name), addr, generation }
    }

    /// The identity used as destination when only an address is known (seeds, peers from the API): the
    /// receiver accepts an announce addressed to any identity with its address.
    pub fn placeholder(addr: SocketAddr) -> Self {
        MemberId::new("", addr, 0)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The name, shared rather than copied (a key for per-sender state).
    pub(crate) fn shared_name(&self) -> Arc<str> {
        Arc::clone(&self.name)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }
}

impl fmt::Debug for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}#{}", self.name, self.addr, self.generation)
    }
}

impl foca::Identity for MemberId {
    type Addr = SocketAddr;

    /// A member declared down rejoins at once with the next generation.
    fn renew(&self) -> Option<Self> {
        let generation = self.generation.checked_add(1)?;
        Some(MemberId { generation, ..self.clone() })
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The newer generation wins; the name breaks ties so that two misconfigured nodes sharing an address
    /// and a generation still agree on one winner instead of flapping.
    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        (self.generation, &self.name) > (adversary.generation, &adversary.name)
    }
}

#[cfg(test)]
mod tests {
    use foca::Identity;

    use super::*;

    #[test]
    fn renewal_wins_over_the_identity_it_renews() {
        let id = MemberId::new("node-a", "192.0.2.1:7946".parse().unwrap(), 1_700_000_000_000);
        let renewed = id.renew().unwrap();
        assert_eq!(renewed.generation(), id.generation() + 1);
        assert_eq!(renewed.addr(), id.addr());
        assert!(renewed.win_addr_conflict(&id));
        assert!(!id.win_addr_conflict(&renewed));
        assert!(MemberId::new("n", id.addr(), u64::MAX).renew().is_none());
    }

    #[test]
    fn equal_generations_are_ordered_by_name() {
        let addr = "192.0.2.1:7946".parse().unwrap();
        let (a, b) = (MemberId::new("a", addr, 5), MemberId::new("b", addr, 5));
        assert!(b.win_addr_conflict(&a));
        assert!(!a.win_addr_conflict(&b));
    }
}
