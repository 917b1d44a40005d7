//! Addresses as integers: families, ranges and CIDRs, and the "buggy" .0/.255 addresses.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub const ALL: [Family; 2] = [Family::V4, Family::V6];

    pub fn of(ip: IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// Kubernetes spelling: `IPv4` / `IPv6`.
    pub fn parse(name: &str) -> Option<Family> {
        match name {
            "IPv4" => Some(Family::V4),
            "IPv6" => Some(Family::V6),
            _ => None,
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn ip(self, value: u128) -> IpAddr {
        match self {
            // Values of a V4 family never exceed u32::MAX: they come from `to_int` or stay inside a range.
            Family::V4 => IpAddr::V4(Ipv4Addr::from(value as u32)),
            Family::V6 => IpAddr::V6(Ipv6Addr::from(value)),
        }
    }

    fn bits(self) -> u32 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

pub fn to_int(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// Old firmware treats IPv4 addresses ending in .0 or .255 as network or broadcast addresses whatever the
/// prefix; pools with `avoid_buggy_ips` never hand them out. IPv6 has no such addresses.
pub fn is_buggy(ip: IpAddr) -> bool {
    is_buggy_int(Family::of(ip), to_int(ip))
}

pub(crate) fn is_buggy_int(family: Family, value: u128) -> bool {
    family == Family::V4 && matches!(value & 0xff, 0 | 0xff)
}

/// An inclusive run of addresses of one family, from a CIDR or an `a-b` range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpRange {
    pub family: Family,
    pub start: u128,
    pub end: u128,
}

impl IpRange {
    /// Parses `192.0.2.0/24`, `2001:db8::/64` or `192.0.2.10-192.0.2.20` (spaces around the ends allowed).
    /// The error is a sentence about `text`, for the caller to prefix with where it was found.
    pub fn parse(text: &str) -> Result<IpRange, String> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err("empty address; expected a CIDR like 192.0.2.0/24 or a range like 192.0.2.1-192.0.2.9".into());
        }
        if let Some((ip, prefix)) = trimmed.split_once('/') {
            return Self::parse_cidr(trimmed, ip.trim(), prefix.trim());
        }
        if let Some((first, last)) = trimmed.split_once('-') {
            return Self::parse_range(trimmed, first.trim(), last.trim());
        }
        match trimmed.parse::<IpAddr>() {
            Ok(ip) => Err(format!(
                "{trimmed:?} is a single address; write it as {ip}/{} (MetalLB also needs the prefix)",
                Family::of(ip).bits()
            )),
            Err(_) => Err(format!("{trimmed:?} is neither a CIDR (a.b.c.d/n) nor a range (a.b.c.d-e.f.g.h)")),
        }
    }

    fn parse_cidr(text: &str, ip: &str, prefix: &str) -> Result<IpRange, String> {
        let ip: IpAddr = ip.parse().map_err(|_| format!("{text:?}: {ip:?} is not an IP address"))?;
        let family = Family::of(ip);
        let bits = family.bits();
        let prefix: u32 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= bits)
            .ok_or_else(|| format!("{text:?}: prefix length must be a number from 0 to {bits}"))?;
        let host_bits = bits - prefix;
        let host_mask: u128 = if host_bits == 128 { u128::MAX } else { (1u128 << host_bits) - 1 };
        let start = to_int(ip);
        if start & host_mask != 0 {
            let network = family.ip(start & !host_mask);
            return Err(format!("{text:?} has host bits set; did you mean {network}/{prefix}?"));
        }
        Ok(IpRange { family, start, end: start | host_mask })
    }

    fn parse_range(text: &str, first: &str, last: &str) -> Result<IpRange, String> {
        let parse = |s: &str| s.parse::<IpAddr>().map_err(|_| format!("{text:?}: {s:?} is not an IP address"));
        let (first, last) = (parse(first)?, parse(last)?);
        if Family::of(first) != Family::of(last) {
            return Err(format!("{text:?} mixes IPv4 and IPv6; a range must stay in one family"));
        }
        let (start, end) = (to_int(first), to_int(last));
        if start > end {
            return Err(format!("{text:?} is reversed: {first} comes after {last}"));
        }
        Ok(IpRange { family: Family::of(first), start, end })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        Family::of(ip) == self.family && (self.start..=self.end).contains(&to_int(ip))
    }

    pub fn overlaps(&self, other: &IpRange) -> bool {
        self.family == other.family && self.start <= other.end && other.start <= self.end
    }

    pub fn first(&self) -> IpAddr {
        self.family.ip(self.start)
    }

    pub fn last(&self) -> IpAddr {
        self.family.ip(self.end)
    }

    /// Number of addresses minus one (so a whole IPv6 space still fits in a u128).
    pub fn span(&self) -> u128 {
        self.end - self.start
    }

    /// Whether the range holds a whole CIDR block of 2^`bits` addresses (one it would be split into).
    pub fn holds_aligned_block(&self, bits: u32) -> bool {
        if bits >= 128 {
            return self.start == 0 && self.end == u128::MAX;
        }
        let size = 1u128 << bits;
        // The first block boundary at or after start; none when it would pass the end of the space.
        let first = match self.start % size {
            0 => Some(self.start),
            r => self.start.checked_add(size - r),
        };
        first.and_then(|b| b.checked_add(size - 1)).is_some_and(|last| last <= self.end)
    }

    /// How many .0/.255 addresses the range holds (0 for IPv6).
    pub fn buggy_count(&self) -> u128 {
        if self.family == Family::V6 {
            return 0;
        }
        // Count of x in [start, end] with x % 256 == r.
        let count = |r: u128| {
            let upto = |n: u128| if n < r { 0 } else { (n - r) / 256 + 1 };
            upto(self.end) - if self.start == 0 { 0 } else { upto(self.start - 1) }
        };
        count(0) + count(255)
    }
}

impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first(), self.last())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_cidrs_and_ranges() {
        let cases: &[(&str, &str, &str)] = &[
            ("192.0.2.0/24", "192.0.2.0", "192.0.2.255"),
            ("192.0.2.7/32", "192.0.2.7", "192.0.2.7"),
            ("0.0.0.0/0", "0.0.0.0", "255.255.255.255"),
            ("192.168.1.11-192.168.1.13", "192.168.1.11", "192.168.1.13"),
            (" 192.168.1.11 - 192.168.1.13 ", "192.168.1.11", "192.168.1.13"),
            ("2001:db8::/64", "2001:db8::", "2001:db8::ffff:ffff:ffff:ffff"),
            ("::/0", "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
            ("2001:db8::1-2001:db8::5", "2001:db8::1", "2001:db8::5"),
        ];
        for (text, first, last) in cases {
            let r = IpRange::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!((r.first(), r.last()), (ip(first), ip(last)), "{text}");
        }
    }

    #[test]
    fn rejects_bad_addresses_with_a_reason() {
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            ("192.0.2.1/24", "host bits set; did you mean 192.0.2.0/24"),
            ("192.0.2.0/33", "prefix length"),
            ("192.0.2.0/x", "prefix length"),
            ("192.0.2.9-192.0.2.1", "reversed"),
            ("192.0.2.1-2001:db8::1", "mixes IPv4 and IPv6"),
            ("192.0.2.1", "single address"),
            ("nonsense", "neither a CIDR"),
            ("192.0.2.300-192.0.2.301", "not an IP address"),
            ("2001:db8::1/64", "host bits"),
        ];
        for (text, want) in cases {
            let err = IpRange::parse(text).expect_err(text);
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn finds_aligned_blocks() {
        let holds = |s: &str, bits| IpRange::parse(s).unwrap().holds_aligned_block(bits);
        assert!(holds("2001:db8::/64", 62));
        assert!(holds("2001:db8::/66", 62));
        assert!(!holds("2001:db8::/67", 62));
        // 2^63 addresses but straddling two 2^62 blocks by one address each side: still holds one.
        assert!(holds("::3fff:ffff:ffff:ffff-::c000:0:0:0", 62));
        assert!(!holds("::1-::4000:0:0:0", 62));
        assert!(holds("ffff:ffff:ffff:ffff::/64", 62));
        assert!(!holds("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127", 62));
        assert!(holds("::/0", 128) && !holds("::1-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 128));
        assert!(holds("192.0.2.0/24", 8) && !holds("192.0.2.1-192.0.3.0", 8));
    }

    #[test]
    fn counts_buggy_addresses() {
        let count = |s: &str| IpRange::parse(s).unwrap().buggy_count();
        assert_eq!(count("192.0.2.0/24"), 2);
        assert_eq!(count("192.0.2.1-192.0.2.254"), 0);
        assert_eq!(count("10.0.0.0/16"), 512);
        assert_eq!(count("192.0.2.255-192.0.3.0"), 2);
        assert_eq!(count("0.0.0.0/32"), 1);
        assert_eq!(count("2001:db8::/120"), 0);
    }
}
