//! Counters of the responder, with MetalLB's metric meanings.
//!
//! Per announced address: `requests_received` (ARP requests and neighbor solicitations answered for it, i.e.
//! for an address announced on the interface they arrived on), `responses_sent` (answers that left the
//! socket), `gratuitous_sent` (unsolicited frames: two per gratuitous ARP, one per unsolicited NA). Drops are
//! counted per reason label, [`metallb_core::l2::DropReason::label`] plus the responder's own. Claims of other
//! hosts on announced addresses are counted by the responder's conflict log and copied into [`Stats`].

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use metallb_core::l2::DropReason;

/// Drop labels, in slot order: those of [`DropReason`] then the responder's.
pub const DROP_LABELS: [&str; 15] = [
    "malformed",
    "not_arp_or_ndp",
    "vlan_tagged",
    "from_self",
    "sender_not_unicast",
    "not_a_request",
    "gratuitous",
    "ethernet_destination",
    "ipv6_destination",
    "no_source_link_layer",
    "not_announced",
    // The address is announced, but not on the interface the request arrived on.
    "interface_not_selected",
    // Sent by this host (the kernel filter already refuses these; counted if one slips through).
    "outgoing",
    // Longer than the receive buffer.
    "truncated",
    // A request for an announced address while the responder is muted (its node hears no peer).
    "muted",
];

pub(crate) const SLOT_INTERFACE_NOT_SELECTED: usize = 11;
pub(crate) const SLOT_OUTGOING: usize = 12;
pub(crate) const SLOT_TRUNCATED: usize = 13;
pub(crate) const SLOT_MUTED: usize = 14;

/// The counter slot of a drop reason. Exhaustive, so a new reason fails to compile until it has a slot.
pub(crate) fn drop_slot(reason: &DropReason) -> usize {
    match reason {
        DropReason::Malformed(_) => 0,
        DropReason::NotArpOrNdp => 1,
        DropReason::VlanTagged { .. } => 2,
        DropReason::FromSelf => 3,
        DropReason::SenderNotUnicast(_) => 4,
        DropReason::NotARequest => 5,
        DropReason::Gratuitous => 6,
        DropReason::EthernetDestination(_) => 7,
        DropReason::Ipv6Destination(_) => 8,
        DropReason::NoSourceLinkLayer => 9,
        DropReason::NotAnnounced(_) => 10,
    }
}

#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct IpCounters {
    pub requests_received: u64,
    pub responses_sent: u64,
    pub gratuitous_sent: u64,
}

/// A snapshot of every counter. Counters only grow while the responder runs; addresses keep theirs after a
/// withdraw, as Prometheus counters do.
#[derive(Clone, Default, PartialEq, Eq, Debug)]
pub struct Stats {
    pub ips: BTreeMap<IpAddr, IpCounters>,
    /// Every label of [`DROP_LABELS`], zero or not.
    pub drops: BTreeMap<&'static str, u64>,
    /// Frames the filter let through to the responder.
    pub frames_received: u64,
    /// Frames the kernel dropped because the receive buffer was full (PACKET_STATISTICS).
    pub kernel_drops: u64,
    /// Answers or announcements the socket refused to send.
    pub send_errors: u64,
    /// Receive and membership errors other than a link going down.
    pub socket_errors: u64,
    /// Times a socket reported its interface down (ENETDOWN); answering resumes when it is up again.
    pub link_down: u64,
    /// Solicited-node groups that could not be joined at IPv6 level (fell back to an Ethernet membership).
    pub group_fallbacks: u64,
    /// Frames in which another host claimed an announced address (every one, repeats included).
    pub conflicts: u64,
    /// Claims of a new (address, MAC, interface) left out of [`crate::Responder::conflicts`] because its list
    /// was full.
    pub conflicts_dropped: u64,
}

/// The live counters, owned by the responder thread (no atomics on the packet path).
#[derive(Default, Debug)]
pub(crate) struct Counters {
    pub ips: HashMap<IpAddr, IpCounters>,
    pub drops: [u64; DROP_LABELS.len()],
    pub frames_received: u64,
    pub kernel_drops: u64,
    pub send_errors: u64,
    pub socket_errors: u64,
    pub link_down: u64,
    pub group_fallbacks: u64,
}

impl Counters {
    pub fn ip(&mut self, ip: IpAddr) -> &mut IpCounters {
        self.ips.entry(ip).or_default()
    }

    pub fn snapshot(&self) -> Stats {
        Stats {
            ips: self.ips.iter().map(|(ip, c)| (*ip, *c)).collect(),
            drops: DROP_LABELS.iter().copied().zip(self.drops.iter().copied()).collect(),
            frames_received: self.frames_received,
            kernel_drops: self.kernel_drops,
            send_errors: self.send_errors,
            socket_errors: self.socket_errors,
            link_down: self.link_down,
            group_fallbacks: self.group_fallbacks,
            conflicts: 0,
            conflicts_dropped: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv6Addr;

    use metallb_core::packet::{MacAddr, PacketError};

    use super::*;

    #[test]
    fn every_drop_reason_has_the_slot_of_its_label() {
        let v6 = Ipv6Addr::LOCALHOST;
        let reasons = [
            DropReason::Malformed(PacketError::BadOpcode(9)),
            DropReason::NotArpOrNdp,
            DropReason::VlanTagged { vlan_id: 5 },
            DropReason::FromSelf,
            DropReason::SenderNotUnicast(MacAddr::BROADCAST),
            DropReason::NotARequest,
            DropReason::Gratuitous,
            DropReason::EthernetDestination(MacAddr::BROADCAST),
            DropReason::Ipv6Destination(v6),
            DropReason::NoSourceLinkLayer,
            DropReason::NotAnnounced(v6.into()),
        ];
        for reason in &reasons {
            assert_eq!(DROP_LABELS[drop_slot(reason)], reason.label(), "{reason:?}");
        }
        assert_eq!(DROP_LABELS[SLOT_INTERFACE_NOT_SELECTED], "interface_not_selected");
        assert_eq!(DROP_LABELS[SLOT_OUTGOING], "outgoing");
        assert_eq!(DROP_LABELS[SLOT_TRUNCATED], "truncated");
    }

    #[test]
    fn snapshot_lists_every_drop_label() {
        let mut counters = Counters::default();
        counters.drops[SLOT_OUTGOING] = 3;
        counters.ip("198.51.100.10".parse().unwrap()).responses_sent = 2;
        let stats = counters.snapshot();
        assert_eq!(stats.drops.len(), DROP_LABELS.len());
        assert_eq!(stats.drops["outgoing"], 3);
        assert_eq!(stats.ips[&"198.51.100.10".parse::<IpAddr>().unwrap()].responses_sent, 2);
    }
}
