//! Prefixes and route attributes as users write them: `"198.51.100.10/32"`, `"65000:100"`,
//! `"large:65000:1:2"` (MetalLB's spelling), parsed here so every error names the bad value.

use std::fmt;
use std::net::IpAddr;

use metallb_core::bgp::Prefix;

use crate::BgpError;

/// The attributes a prefix is advertised with (metallb-core's, kept sorted and without duplicates):
/// `local_pref` only reaches iBGP peers (100 when unset), communities every peer.
pub use metallb_core::bgp::rib::RouteAttrs as Route;

/// A community in either spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Community {
    Standard(u32),
    Large(u32, u32, u32),
}

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Community::Standard(c) => write!(f, "{}:{}", c >> 16, c & 0xffff),
            Community::Large(g, a, b) => write!(f, "large:{g}:{a}:{b}"),
        }
    }
}

impl Community {
    /// MetalLB's spelling: `"65000:100"` (two 16-bit numbers) or `"large:65000:1:2"` (three 32-bit ones).
    /// With `large_only`, the `large:` tag may be left out (the caller said the list is of large ones).
    pub fn parse(text: &str, large_only: bool) -> Result<Community, BgpError> {
        let fields: Vec<&str> = text.split(':').collect();
        let bad = |why: String| BgpError::InvalidRoute(format!("community {text:?}: {why}"));
        let number = |field: &str, bits: u32| -> Result<u32, BgpError> {
            let max = if bits == 16 { u32::from(u16::MAX) } else { u32::MAX };
            // Plain decimal digits, as MetalLB (Go's ParseUint) takes them: no sign, spaces or underscores.
            match field.parse::<u32>() {
                Ok(n) if n <= max && !field.is_empty() && field.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
                _ => Err(bad(format!("{field:?} is not a {bits}-bit unsigned number"))),
            }
        };
        match fields.as_slice() {
            [asn, value] if !large_only => Ok(Community::Standard((number(asn, 16)? << 16) | number(value, 16)?)),
            ["large", g, a, b] => Ok(Community::Large(number(g, 32)?, number(a, 32)?, number(b, 32)?)),
            [g, a, b] if large_only => Ok(Community::Large(number(g, 32)?, number(a, 32)?, number(b, 32)?)),
            [_, _, _, _] => Err(bad("a large community starts with \"large:\", e.g. large:65000:1:2".into())),
            _ if large_only => Err(bad("a large community is large:GLOBAL:LOCAL1:LOCAL2, e.g. large:65000:1:2".into())),
            _ => Err(bad("neither a community (65000:100) nor a large community (large:65000:1:2)".into())),
        }
    }
}

/// A route from MetalLB-spelled communities: `communities` may hold both kinds, `large_communities` only large
/// ones (with or without the `large:` tag). The first bad value is the error, naming it.
pub fn parse_route(
    local_pref: Option<u32>,
    communities: &[impl AsRef<str>],
    large_communities: &[impl AsRef<str>],
) -> Result<Route, BgpError> {
    let mut route = Route { local_pref, ..Route::default() };
    let parsed = communities
        .iter()
        .map(|c| Community::parse(c.as_ref(), false))
        .chain(large_communities.iter().map(|c| Community::parse(c.as_ref(), true)));
    for community in parsed {
        match community? {
            Community::Standard(c) => route.communities.push(c),
            Community::Large(g, a, b) => route.large_communities.push((g, a, b)),
        }
    }
    Ok(route.normalized())
}

/// A route's communities in MetalLB's spelling: (standard, large).
pub fn community_texts(route: &Route) -> (Vec<String>, Vec<String>) {
    (
        route.communities.iter().map(|c| Community::Standard(*c).to_string()).collect(),
        route.large_communities.iter().map(|&(g, a, b)| Community::Large(g, a, b).to_string()).collect(),
    )
}

/// `"198.51.100.10/32"`, `"2001:db8::10/128"`, or a bare address for its host route. A prefix with bits set
/// past its length is refused (it is most likely a typo), naming the prefix that was probably meant.
pub fn parse_prefix(text: &str) -> Result<Prefix, BgpError> {
    let bad = |why: &str| BgpError::InvalidRoute(format!("prefix {text:?}: {why}"));
    let (addr_text, len_text) = match text.split_once('/') {
        Some((addr, len)) => (addr, Some(len)),
        None => (text, None),
    };
    let addr: IpAddr = addr_text.parse().map_err(|_| bad("not an IP address or prefix (\"198.51.100.10/32\")"))?;
    let Some(len_text) = len_text else { return Ok(Prefix::host(addr)) };
    let width = if addr.is_ipv4() { 32 } else { 128 };
    let len = len_text
        .parse::<u8>()
        .ok()
        .filter(|l| *l <= width && len_text.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| bad(&format!("the length must be a number from 0 to {width}")))?;
    let prefix = Prefix::new(addr, len).ok_or_else(|| bad("invalid length"))?;
    if prefix.addr() != addr {
        return Err(bad(&format!("has bits set past /{len}; did you mean {prefix}?")));
    }
    Ok(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn communities_in_metallb_spelling() {
        let route = parse_route(Some(200), &["65000:100", "large:65000:1:2", "65000:100", "1:2"], &["1:2:3"]).unwrap();
        assert_eq!(route.local_pref, Some(200));
        assert_eq!(route.communities, vec![(1 << 16) | 2, (65000 << 16) | 100], "sorted, no duplicates");
        assert_eq!(route.large_communities, vec![(1, 2, 3), (65000, 1, 2)]);
        assert_eq!(
            community_texts(&route),
            (
                vec!["1:2".to_string(), "65000:100".to_string()],
                vec!["large:1:2:3".to_string(), "large:65000:1:2".to_string()]
            )
        );
        assert_eq!(Community::parse("large:4294967295:0:1", false).unwrap(), Community::Large(u32::MAX, 0, 1));
    }

    #[test]
    fn bad_communities_name_the_value() {
        for (text, large_only, fragment) in [
            ("65536:1", false, "\"65536\" is not a 16-bit"),
            ("1:-2", false, "\"-2\" is not a 16-bit"),
            ("+1:2", false, "\"+1\" is not"),
            ("1:2:3", false, "neither a community"),
            ("x:1:2:3", false, "starts with \"large:\""),
            ("large:1:2", false, "neither"),
            ("large:4294967296:1:2", false, "not a 32-bit"),
            ("1:2", true, "large:GLOBAL:LOCAL1:LOCAL2"),
            ("", false, "neither"),
        ] {
            let err = Community::parse(text, large_only).unwrap_err().to_string();
            assert!(err.starts_with(&format!("community {text:?}: ")), "{err}");
            assert!(err.contains(fragment), "{err:?} lacks {fragment:?}");
        }
    }

    #[test]
    fn prefixes_and_host_addresses() {
        assert_eq!(parse_prefix("198.51.100.10/32").unwrap().to_string(), "198.51.100.10/32");
        assert_eq!(parse_prefix("198.51.100.10").unwrap().to_string(), "198.51.100.10/32");
        assert_eq!(parse_prefix("2001:db8::10").unwrap().to_string(), "2001:db8::10/128");
        assert_eq!(parse_prefix("2001:db8::/64").unwrap().len(), 64);
        assert_eq!(parse_prefix("0.0.0.0/0").unwrap().len(), 0);
        for (text, fragment) in [
            ("198.51.100.10/24", "did you mean 198.51.100.0/24?"),
            ("198.51.100.10/33", "from 0 to 32"),
            ("2001:db8::1/129", "from 0 to 128"),
            ("198.51.100.10/+8", "from 0 to 32"),
            ("nonsense", "not an IP address"),
        ] {
            let err = parse_prefix(text).unwrap_err().to_string();
            assert!(err.contains(fragment) && err.contains(text), "{err:?} lacks {fragment:?}");
        }
    }
}
