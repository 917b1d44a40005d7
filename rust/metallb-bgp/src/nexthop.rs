//! The next hops a session's routes carry: the session's own local address for its family, and for the other
//! family the first global address of that family on the same interface. Configured ones win.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use metallb_sys::syscall::InterfaceAddress;

/// The next hop per family; `None` where there is none to give (routes of that family cannot be sent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NextHops {
    pub v4: Option<Ipv4Addr>,
    pub v6: Option<Ipv6Addr>,
}

/// Picks the next hops of a session whose local address is `local`, among the namespace's `addresses`.
pub fn choose(
    local: IpAddr,
    addresses: &[InterfaceAddress],
    configured_v4: Option<Ipv4Addr>,
    configured_v6: Option<Ipv6Addr>,
) -> NextHops {
    let interface = addresses.iter().find(|a| a.addr == local).map(|a| a.interface.as_str());
    let on_interface = || addresses.iter().filter(move |a| Some(a.interface.as_str()) == interface);
    let (v4, v6) = match local {
        IpAddr::V4(own) => (
            Some(own),
            on_interface().find_map(|a| match a.addr {
                IpAddr::V6(v6) if is_global_v6(v6) => Some(v6),
                _ => None,
            }),
        ),
        IpAddr::V6(own) => (
            // An IPv4-mapped local address (a dual-stack socket) is really an IPv4 one.
            own.to_ipv4_mapped().or_else(|| {
                on_interface().find_map(|a| match a.addr {
                    IpAddr::V4(v4) if is_usable_v4(v4) => Some(v4),
                    _ => None,
                })
            }),
            Some(own).filter(|o| o.to_ipv4_mapped().is_none()),
        ),
    };
    NextHops { v4: configured_v4.or(v4), v6: configured_v6.or(v6) }
}

/// Not link-local, loopback or unspecified: an address another router can forward to from elsewhere
/// (documentation and unique local ranges count, as labs use them).
fn is_global_v6(addr: Ipv6Addr) -> bool {
    !(addr.is_loopback() || addr.is_unspecified() || addr.is_multicast() || addr.is_unicast_link_local())
}

fn is_usable_v4(addr: Ipv4Addr) -> bool {
    !(addr.is_loopback() || addr.is_unspecified() || addr.is_link_local())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(interface: &str, addr: &str) -> InterfaceAddress {
        InterfaceAddress { interface: interface.into(), addr: addr.parse().unwrap() }
    }

    fn table() -> Vec<InterfaceAddress> {
        vec![
            addr("lo", "127.0.0.1"),
            addr("lo", "::1"),
            addr("eth0", "192.0.2.10"),
            addr("eth0", "fe80::1"),
            addr("eth0", "2001:db8::10"),
            addr("eth0", "2001:db8::11"),
            addr("eth1", "198.51.100.10"),
            addr("eth1", "2001:db8:1::10"),
        ]
    }

    #[test]
    fn the_other_family_comes_from_the_same_interface() {
        let hops = choose("192.0.2.10".parse().unwrap(), &table(), None, None);
        assert_eq!(
            hops,
            NextHops { v4: Some("192.0.2.10".parse().unwrap()), v6: Some("2001:db8::10".parse().unwrap()) }
        );
        let hops = choose("2001:db8:1::10".parse().unwrap(), &table(), None, None);
        assert_eq!(
            hops,
            NextHops { v4: Some("198.51.100.10".parse().unwrap()), v6: Some("2001:db8:1::10".parse().unwrap()) }
        );
    }

    #[test]
    fn link_local_and_missing_addresses_give_none() {
        let only_link_local = vec![addr("eth0", "192.0.2.10"), addr("eth0", "fe80::1")];
        assert_eq!(choose("192.0.2.10".parse().unwrap(), &only_link_local, None, None).v6, None);
        assert_eq!(choose("192.0.2.99".parse().unwrap(), &table(), None, None).v6, None, "not on any interface");
    }

    #[test]
    fn configured_next_hops_win_and_mapped_addresses_are_ipv4() {
        let hops = choose("192.0.2.10".parse().unwrap(), &table(), Some("203.0.113.1".parse().unwrap()), None);
        assert_eq!(hops.v4, Some("203.0.113.1".parse().unwrap()));
        let hops = choose("::ffff:192.0.2.10".parse().unwrap(), &table(), None, None);
        assert_eq!(hops, NextHops { v4: Some("192.0.2.10".parse().unwrap()), v6: None });
    }
}
