//! Pools: a validated set of address ranges plus the rules for which services may draw from it.

use std::collections::{HashMap, HashSet};

use super::{ConfigError, Family, IpRange, LabelSelector};

/// Which services a pool serves, and in which order pools are tried (MetalLB's `serviceAllocation`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ServiceAllocation {
    /// Lower is tried first; pools without a priority come after all pools with one.
    pub priority: Option<i64>,
    pub namespaces: Vec<String>,
    pub namespace_selectors: Vec<LabelSelector>,
    pub service_selectors: Vec<LabelSelector>,
}

impl ServiceAllocation {
    /// A service matches when its namespace is listed or selected (when either list is given) and its labels
    /// match one of the service selectors (when given).
    pub fn matches(
        &self,
        namespace: &str,
        namespace_labels: &HashMap<String, String>,
        service_labels: &HashMap<String, String>,
    ) -> bool {
        let namespace_ok = (self.namespaces.is_empty() && self.namespace_selectors.is_empty())
            || self.namespaces.iter().any(|n| n == namespace)
            || self.namespace_selectors.iter().any(|s| s.matches(namespace_labels));
        let service_ok =
            self.service_selectors.is_empty() || self.service_selectors.iter().any(|s| s.matches(service_labels));
        namespace_ok && service_ok
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pool {
    pub name: String,
    /// The address entries as the user wrote them, in order: they are the allocation order.
    pub addresses: Vec<String>,
    pub ranges: Vec<IpRange>,
    pub auto_assign: bool,
    pub avoid_buggy_ips: bool,
    pub service_allocation: Option<ServiceAllocation>,
}

impl Pool {
    pub fn new(
        name: impl Into<String>,
        addresses: Vec<String>,
        auto_assign: bool,
        avoid_buggy_ips: bool,
        service_allocation: Option<ServiceAllocation>,
    ) -> Result<Pool, ConfigError> {
        let name = name.into();
        if name.is_empty() {
            return Err(ConfigError::new("pool", "name must not be empty"));
        }
        let here = format!("pool {name:?}");
        if addresses.is_empty() {
            return Err(ConfigError::new(format!("{here}: addresses"), "a pool needs at least one CIDR or range"));
        }
        let mut ranges = Vec::with_capacity(addresses.len());
        for (i, text) in addresses.iter().enumerate() {
            let range = IpRange::parse(text).map_err(|e| ConfigError::new(format!("{here}: addresses[{i}]"), e))?;
            ranges.push(range);
        }
        let pool = Pool { name, addresses, ranges, auto_assign, avoid_buggy_ips, service_allocation };
        // Overlaps inside one pool are as wrong as across pools; one check serves both.
        validate_pools(std::slice::from_ref(&pool))?;
        Ok(pool)
    }

    pub fn families(&self) -> Vec<Family> {
        Family::ALL.into_iter().filter(|f| self.ranges.iter().any(|r| r.family == *f)).collect()
    }

    pub fn has_family(&self, family: Family) -> bool {
        self.ranges.iter().any(|r| r.family == family)
    }

    /// The index of the range that holds `ip`, if any.
    pub fn range_of(&self, ip: std::net::IpAddr) -> Option<usize> {
        self.ranges.iter().position(|r| r.contains(ip))
    }
}

/// Checks a whole set of pools: unique names, and no address in two ranges (within or across pools). The error
/// names both pools and both ranges.
pub fn validate_pools(pools: &[Pool]) -> Result<(), ConfigError> {
    let mut names = HashSet::with_capacity(pools.len());
    for pool in pools {
        if !names.insert(pool.name.as_str()) {
            return Err(ConfigError::new(format!("pool {:?}", pool.name), "duplicate pool name"));
        }
    }
    let mut all: Vec<(&IpRange, &Pool, usize)> =
        pools.iter().flat_map(|p| p.ranges.iter().enumerate().map(move |(i, r)| (r, p, i))).collect();
    all.sort_by_key(|(r, _, _)| (r.family, r.start));
    // Sorted by start, a range overlaps an earlier one iff it starts before the furthest end seen so far.
    let mut reach: Option<(&IpRange, &Pool, usize)> = None;
    for entry @ (range, pool, i) in all {
        if let Some((prev, prev_pool, j)) = reach {
            if prev.overlaps(range) {
                let (a, b) = (&prev_pool.addresses[j], &pool.addresses[i]);
                let what = if prev_pool.name == pool.name {
                    format!("pool {:?}", pool.name)
                } else {
                    format!("pools {:?} and {:?}", prev_pool.name, pool.name)
                };
                return Err(ConfigError::new(
                    format!("{what}: addresses"),
                    format!("{a:?} and {b:?} overlap; every address may belong to one range of one pool"),
                ));
            }
        }
        if reach.is_none_or(|(prev, _, _)| prev.family != range.family || range.end > prev.end) {
            reach = Some(entry);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(name: &str, addresses: &[&str]) -> Result<Pool, ConfigError> {
        Pool::new(name, addresses.iter().map(|s| s.to_string()).collect(), true, false, None)
    }

    #[test]
    fn rejects_bad_pools() {
        let cases: &[(&str, &[&str], &str)] = &[
            ("", &["192.0.2.0/24"], "name must not be empty"),
            ("a", &[], "at least one"),
            ("a", &["192.0.2.0/24", "bad"], "pool \"a\": addresses[1]"),
            ("a", &["192.0.2.0/24", "192.0.2.10-192.0.2.20"], "\"192.0.2.0/24\" and \"192.0.2.10-192.0.2.20\" overlap"),
        ];
        for (name, addresses, want) in cases {
            let err = pool(name, addresses).expect_err(want).to_string();
            assert!(err.contains(want), "{err}");
        }
    }

    #[test]
    fn overlap_across_pools_names_both() {
        let a = pool("a", &["192.0.2.0/25", "198.51.100.0/24"]).unwrap();
        let b = pool("b", &["2001:db8::/64", "192.0.2.100-192.0.2.200"]).unwrap();
        let err = validate_pools(&[a.clone(), b]).unwrap_err().to_string();
        assert!(err.contains("pools \"a\" and \"b\""), "{err}");
        assert!(err.contains("\"192.0.2.0/25\" and \"192.0.2.100-192.0.2.200\""), "{err}");

        // A long range followed by a short one inside it, with a disjoint one between in start order.
        let c = pool("c", &["198.51.100.200-198.51.100.210"]).unwrap();
        assert!(validate_pools(&[a.clone(), c]).is_err());
        let d = pool("d", &["192.0.2.128/25", "2001:db8:1::/64"]).unwrap();
        assert_eq!(validate_pools(&[a.clone(), d]), Ok(()));
        let err = validate_pools(&[a.clone(), a]).unwrap_err().to_string();
        assert!(err.contains("duplicate pool name"), "{err}");
    }
}
