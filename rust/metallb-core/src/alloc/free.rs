//! The free addresses of one range, as sorted runs, so that "lowest free" is O(log n) whatever the range size.

use std::collections::BTreeMap;

use super::addr::is_buggy_int;
use super::{Family, IpRange};

/// Free, allowed addresses of one range as disjoint inclusive runs `start -> end`.
///
/// With `avoid_buggy` set, .0/.255 addresses are never free; a run may span them but never starts or ends on
/// one, and two runs are never separated by buggy addresses alone. That keeps the form canonical (release
/// undoes take exactly) and the number of runs at most one more than the number of taken addresses.
#[derive(Debug, Clone)]
pub(crate) struct FreeRuns {
    family: Family,
    avoid_buggy: bool,
    runs: BTreeMap<u128, u128>,
}

impl FreeRuns {
    pub fn new(range: &IpRange, avoid_buggy: bool) -> Self {
        let mut free = FreeRuns { family: range.family, avoid_buggy, runs: BTreeMap::new() };
        free.insert_trimmed(range.start, range.end);
        free
    }

    pub fn allowed(&self, x: u128) -> bool {
        !(self.avoid_buggy && is_buggy_int(self.family, x))
    }

    pub fn first(&self) -> Option<u128> {
        self.runs.first_key_value().map(|(start, _)| *start)
    }

    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    fn run_of(&self, x: u128) -> Option<(u128, u128)> {
        self.runs.range(..=x).next_back().filter(|(_, end)| **end >= x).map(|(s, e)| (*s, *e))
    }

    pub fn is_free(&self, x: u128) -> bool {
        self.allowed(x) && self.run_of(x).is_some()
    }

    /// Marks `x` used. Returns false (and changes nothing) when it was not free.
    pub fn take(&mut self, x: u128) -> bool {
        let Some((start, end)) = self.run_of(x).filter(|_| self.allowed(x)) else {
            return false;
        };
        self.runs.remove(&start);
        if x > start {
            self.insert_trimmed(start, x - 1);
        }
        if x < end {
            self.insert_trimmed(x + 1, end);
        }
        true
    }

    /// Marks a used, allowed `x` free again, merging with neighbouring runs.
    pub fn give(&mut self, x: u128) {
        debug_assert!(self.allowed(x) && self.run_of(x).is_none());
        let (mut start, mut end) = (x, x);
        if let Some((&s, &e)) = self.runs.range(..x).next_back() {
            if self.only_disallowed_between(e, x) {
                self.runs.remove(&s);
                start = s;
            }
        }
        // x + 1 overflows only at the very last IPv6 address, which has no successor run.
        if let Some((&s, &e)) = x.checked_add(1).and_then(|next| self.runs.range(next..).next()) {
            if self.only_disallowed_between(x, s) {
                self.runs.remove(&s);
                end = e;
            }
        }
        self.runs.insert(start, end);
    }

    /// True when no allowed address lies strictly between `a` and `b` (a < b).
    fn only_disallowed_between(&self, a: u128, b: u128) -> bool {
        // Buggy addresses come in pairs (.255, .0), so an all-buggy gap is at most two wide.
        b - a <= 3 && (a + 1..b).all(|x| !self.allowed(x))
    }

    fn insert_trimmed(&mut self, start: u128, end: u128) {
        let mut s = start;
        while s <= end && !self.allowed(s) {
            s += 1;
        }
        let mut e = end;
        while e >= s && !self.allowed(e) {
            match e.checked_sub(1) {
                Some(prev) => e = prev,
                None => return,
            }
        }
        if s <= e {
            self.runs.insert(s, e);
        }
    }

    #[cfg(test)]
    pub fn runs(&self) -> Vec<(u128, u128)> {
        self.runs.iter().map(|(s, e)| (*s, *e)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn runs_of(text: &str, avoid: bool) -> FreeRuns {
        FreeRuns::new(&IpRange::parse(text).unwrap(), avoid)
    }

    #[test]
    fn trims_buggy_edges() {
        let r = runs_of("192.0.2.0/24", true);
        assert_eq!(r.runs(), vec![(0xc000_0201, 0xc000_02fe)]);
        let r = runs_of("192.0.2.255-192.0.3.0", true);
        assert!(r.is_empty());
        let r = runs_of("0.0.0.0/32", true);
        assert!(r.is_empty());
        let r = runs_of("255.255.255.255/32", true);
        assert!(r.is_empty());
    }

    #[test]
    fn take_all_then_give_all_restores_one_run() {
        let mut r = runs_of("192.0.2.0/23", true);
        let before = r.runs();
        let mut taken = vec![];
        while let Some(x) = r.first() {
            assert!(r.take(x));
            taken.push(x);
        }
        assert_eq!(taken.len(), 512 - 4);
        for x in taken.iter().rev() {
            r.give(*x);
        }
        assert_eq!(r.runs(), before);
    }

    proptest! {
        // Whatever order addresses are taken and given back in, the runs equal those built from scratch
        // over the same free set: the representation is canonical.
        #[test]
        fn runs_are_canonical(ops in proptest::collection::vec((0u128..600, any::<bool>()), 1..300), avoid in any::<bool>()) {
            let range = IpRange::parse("192.0.2.0-192.0.4.87").unwrap();
            let mut r = FreeRuns::new(&range, avoid);
            let mut used = std::collections::BTreeSet::new();
            for (offset, give) in ops {
                let x = range.start + offset.min(range.end - range.start);
                if give && used.remove(&x) {
                    r.give(x);
                } else if !give {
                    let was_free = r.is_free(x);
                    prop_assert_eq!(r.take(x), was_free);
                    if was_free { used.insert(x); }
                }
            }
            // Rebuild: start full, take the used set; must match.
            let mut fresh = FreeRuns::new(&range, avoid);
            for x in &used { prop_assert!(fresh.take(*x)); }
            prop_assert_eq!(r.runs(), fresh.runs());
            // And the lowest free is the lowest allowed unused address.
            let expect = (range.start..=range.end).find(|x| r.allowed(*x) && !used.contains(x));
            prop_assert_eq!(r.first(), expect);
        }
    }
}
