//! Shared by the packet_* integration tests: a hex decoder and frames captured from Linux.
//!
//! The captures were taken with tcpdump between two network namespaces joined by a veth pair (Linux 6.x kernel,
//! iputils arping, ndisc6): host 1 is 02:00:00:00:00:01 with 192.0.2.1 and 2001:db8::1, host 2 is
//! 02:00:00:00:00:02 with 192.0.2.2 and 2001:db8::2. They pin the builders to what a real stack sends and the
//! parsers to what a real stack receives.
#![allow(dead_code)]

/// Decodes hex, ignoring whitespace and `_` so frames can be laid out field by field.
pub fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace() && *b != b'_').collect();
    assert!(digits.len() % 2 == 0, "odd number of hex digits");
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).expect("hex digit"))
        .collect()
}

/// `arping -I mlbv2 192.0.2.1` from host 2: who-has 192.0.2.1 tell 192.0.2.2 (arping sets the target hardware
/// address to broadcast).
pub const ARP_REQUEST: &str = "ffffffffffff 020000000002 0806 0001 0800 06 04 0001
    020000000002 c0000202 ffffffffffff c0000201";
/// Host 1's kernel answering it: 192.0.2.1 is-at 02:00:00:00:00:01 (42 bytes: veth does not pad).
pub const ARP_REPLY: &str = "020000000002 020000000001 0806 0001 0800 06 04 0002
    020000000001 c0000201 020000000002 c0000202";
/// `arping -U`: gratuitous ARP, request form, target hardware address broadcast.
pub const ARP_GRATUITOUS_REQUEST: &str = "ffffffffffff 020000000002 0806 0001 0800 06 04 0001
    020000000002 c0000202 ffffffffffff c0000202";
/// `arping -A`: gratuitous ARP, reply form, target hardware address = sender's.
pub const ARP_GRATUITOUS_REPLY: &str = "ffffffffffff 020000000002 0806 0001 0800 06 04 0002
    020000000002 c0000202 020000000002 c0000202";

/// Host 1's kernel probing 2001:db8::1 for duplicates: from ::, to ff02::1:ff00:1, with an RFC 7527 nonce
/// option (type 14) and no source link-layer address.
pub const NS_DAD_WITH_NONCE: &str = "3333ff000001 020000000001 86dd
    6 00 00000 0020 3a ff 00000000000000000000000000000000 ff0200000000000000000001ff000001
    87 00 6cd6 00000000 20010db8000000000000000000000001
    0e01 c5c0f86213ea";
/// `ndisc6 2001:db8::1 mlbv2` from host 2: a solicitation with a flow label and a source link-layer option.
pub const NS_FROM_NDISC6: &str = "3333ff000001 020000000002 86dd
    6 00 26c8c 0020 3a ff fe80000000000000000000fffe000002 ff0200000000000000000001ff000001
    87 00 4c5f 00000000 20010db8000000000000000000000001
    0101 020000000002";
/// Host 1's kernel answering it: from the target address to the solicitor, Solicited and Override set.
pub const NA_SOLICITED: &str = "020000000002 020000000001 86dd
    6 00 00000 0020 3a ff 20010db8000000000000000000000001 fe80000000000000000000fffe000002
    88 00 baab 60000000 20010db8000000000000000000000001
    0201 020000000001";
/// Host 2 probing 2001:db8::1 (which host 1 holds) for duplicates.
pub const NS_DAD_CONFLICT: &str = "3333ff000001 020000000002 86dd
    6 00 00000 0020 3a ff 00000000000000000000000000000000 ff0200000000000000000001ff000001
    87 00 8aaf 00000000 20010db8000000000000000000000001
    0e01 a8a754abb6e1";
/// Host 1's kernel defending 2001:db8::1 against that probe: to ff02::1, Override only.
pub const NA_DAD_DEFENSE: &str = "333300000001 020000000001 86dd
    6 00 00000 0020 3a ff 20010db8000000000000000000000001 ff020000000000000000000000000001
    88 00 f92a 20000000 20010db8000000000000000000000001
    0201 020000000001";
/// Host 1's kernel announcing 2001:db8::1 after its MAC changed to 02:00:00:00:00:11 (ndisc_notify=1).
pub const NA_UNSOLICITED: &str = "333300000001 020000000011 86dd
    6 00 00000 0020 3a ff 20010db8000000000000000000000001 ff020000000000000000000000000001
    88 00 f91a 20000000 20010db8000000000000000000000001
    0201 020000000011";
/// Host 2's kernel sending a router solicitation (ICMPv6 type 133): IPv6 and hop limit 255, but not ours.
pub const ROUTER_SOLICITATION: &str = "333300000002 020000000002 86dd
    6 00 00000 0010 3a ff fe80000000000000000000fffe000002 ff020000000000000000000000000002
    85 00 7b2a 00000000 0101 020000000002";
/// An MLDv2 report: next header 0 (hop-by-hop options) and hop limit 1.
pub const MLD_REPORT: &str = "333300000016 020000000001 86dd
    6 00 00000 0024 00 01 00000000000000000000000000000000 ff020000000000000000000000000016
    3a00 0502 0000 0100 8f00 6f89 0000 0001 0400 0000 ff020000000000000000000001ff000001";
