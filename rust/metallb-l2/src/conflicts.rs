//! Other hosts seen claiming addresses the responder announces, kept for the speaker to drain.
//!
//! The responder thread records every [`metallb_core::l2::Claim`] it sees with the interface it arrived on; the
//! speaker drains the list now and then to log, count and report them. Between two drains each (address, MAC,
//! interface) is listed once however often it was seen (a host repeating gratuitous ARP, or flooding it), and
//! the list holds at most [`MAX_PENDING`] entries: past that, claims are counted as dropped, so a hostile
//! segment costs bounded memory.

use std::collections::HashSet;
use std::net::IpAddr;

use metallb_core::l2::Claim;
use metallb_core::packet::MacAddr;

/// Most distinct conflicts kept between two drains.
pub const MAX_PENDING: usize = 1024;

/// Another host seen claiming an address announced on `interface`: neighbors that heard it may send the
/// address's traffic to `mac`.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Conflict {
    pub ip: IpAddr,
    pub mac: MacAddr,
    /// The name of the responder's interface the claim arrived on.
    pub interface: String,
}

/// The conflicts seen since the last drain, with the counters of every claim.
#[derive(Default, Debug)]
pub(crate) struct ConflictLog {
    pending: Vec<Conflict>,
    /// (address, MAC, interface index) of each pending entry: the index tells apart a link re-created under the
    /// same name, and needs no string to look up.
    listed: HashSet<(IpAddr, MacAddr, i32)>,
    /// Every claim seen, listed or not.
    pub seen: u64,
    /// Claims of a new (address, MAC, interface) not listed because the list was full.
    pub dropped: u64,
}

impl ConflictLog {
    /// Records `claim`, seen on the interface `index` named `name` (the name is only copied for a new entry).
    pub fn record(&mut self, claim: Claim, index: i32, name: &str) {
        self.seen += 1;
        let key = (claim.ip, claim.mac, index);
        if self.listed.contains(&key) {
            return;
        }
        if self.pending.len() >= MAX_PENDING {
            self.dropped += 1;
            return;
        }
        self.listed.insert(key);
        self.pending.push(Conflict { ip: claim.ip, mac: claim.mac, interface: name.to_string() });
    }

    /// The conflicts since the last drain, in the order first seen; the next drain starts empty.
    pub fn drain(&mut self) -> Vec<Conflict> {
        self.listed.clear();
        std::mem::take(&mut self.pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const THIEF: MacAddr = MacAddr::new(0x00, 0x00, 0x5e, 0x00, 0x53, 0x66);
    const OTHER: MacAddr = MacAddr::new(0x00, 0x00, 0x5e, 0x00, 0x53, 0x67);

    fn claim(ip: &str, mac: MacAddr) -> Claim {
        Claim { ip: ip.parse().unwrap(), mac }
    }

    fn conflict(ip: &str, mac: MacAddr, interface: &str) -> Conflict {
        Conflict { ip: ip.parse().unwrap(), mac, interface: interface.into() }
    }

    #[test]
    fn lists_each_address_mac_and_interface_once_per_drain() {
        let mut log = ConflictLog::default();
        for _ in 0..3 {
            log.record(claim("198.51.100.10", THIEF), 2, "eth0");
        }
        log.record(claim("198.51.100.10", OTHER), 2, "eth0");
        log.record(claim("198.51.100.10", THIEF), 3, "eth1");
        log.record(claim("2001:db8::10", THIEF), 2, "eth0");
        assert_eq!(
            log.drain(),
            vec![
                conflict("198.51.100.10", THIEF, "eth0"),
                conflict("198.51.100.10", OTHER, "eth0"),
                conflict("198.51.100.10", THIEF, "eth1"),
                conflict("2001:db8::10", THIEF, "eth0"),
            ]
        );
        assert_eq!((log.seen, log.dropped), (6, 0));
        assert_eq!(log.drain(), vec![], "a drain empties the list");
        log.record(claim("198.51.100.10", THIEF), 2, "eth0");
        assert_eq!(log.drain(), vec![conflict("198.51.100.10", THIEF, "eth0")], "listed again after a drain");
        assert_eq!(log.seen, 7);
    }

    #[test]
    fn a_link_recreated_under_its_name_is_another_entry() {
        let mut log = ConflictLog::default();
        log.record(claim("198.51.100.10", THIEF), 2, "eth0.100");
        log.record(claim("198.51.100.10", THIEF), 9, "eth0.100");
        assert_eq!(log.drain().len(), 2);
    }

    #[test]
    fn the_list_is_bounded_and_counts_what_it_drops() {
        let mut log = ConflictLog::default();
        for n in 0..MAX_PENDING as u32 + 10 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0xc633_6400 + n));
            log.record(Claim { ip, mac: THIEF }, 2, "eth0");
            // Entries already listed stay listed without counting as dropped.
            log.record(Claim { ip: "198.51.100.0".parse().unwrap(), mac: THIEF }, 2, "eth0");
        }
        assert_eq!(log.dropped, 10);
        assert_eq!(log.seen, 2 * (MAX_PENDING as u64 + 10));
        assert_eq!(log.drain().len(), MAX_PENDING);
        log.record(claim("198.51.100.10", THIEF), 2, "eth0");
        assert_eq!(log.drain().len(), 1, "room again after the drain");
    }
}
