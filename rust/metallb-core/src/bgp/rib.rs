//! Adj-RIB-Out: the routes a peer should hold, what it has been sent, and the UPDATEs that close the gap.
//!
//! One [`AdjRibOut`] per peer. The caller says what the peer should hold — all at once ([`AdjRibOut::set_wanted`])
//! or one prefix at a time ([`AdjRibOut::advertise`], [`AdjRibOut::withdraw`]) — and drains
//! [`AdjRibOut::next_updates`] while the session is established; each UPDATE it returns counts as sent. When
//! the session ends, [`AdjRibOut::reset_sent`] (the peer dropped everything); on a ROUTE-REFRESH,
//! [`AdjRibOut::resend`] (the peer keeps what it has and wants it again).
//!
//! UPDATEs: withdrawals first, then announcements grouped by identical attributes into as few UPDATEs as fit
//! BGP's 4096 octets. IPv4 uses the classic withdrawn/NLRI fields with NEXT_HOP, IPv6 MP_REACH_NLRI /
//! MP_UNREACH_NLRI (RFC 4760). Every route carries ORIGIN IGP (as FRR's `network` statements, which MetalLB
//! uses) and an AS_PATH that is empty for iBGP and our ASN for eBGP; iBGP routes carry LOCAL_PREF (100 when
//! unset, FRR's default), eBGP ones never do; communities and large communities when there are any. A new
//! value for a prefix is simply announced again (it replaces the old one at the peer); no withdrawal.
//!
//! A prefix whose family was not negotiated, or whose family has no next hop, stays pending and is listed by
//! [`AdjRibOut::unsendable`] with the reason, as is one whose attributes alone do not fit an UPDATE.
//!
//! End-of-RIB (RFC 4724): sent if and only if the session advertised graceful restart
//! ([`UpdateContext::end_of_rib`]), whose capability promises it: once per session and negotiated family,
//! after that family's initial table (as soon as nothing sendable of it is left, so also for an empty
//! table). metallb-py's speaker advertises no graceful restart, so its sessions send no marker: a speaker
//! that dies must lose its routes when its TCP connection closes, not after a restart time.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Bound;

use super::codec::{encoded_len, prefix_wire_len, CodecOptions, MAX_MESSAGE_LEN};
use super::fsm::Negotiated;
use super::message::{Afi, AsSegment, Message, MpReach, MpUnreach, Origin, PathAttributes, Prefix, Safi, Update};

/// LOCAL_PREF sent to iBGP peers for routes without one (FRR's default; MetalLB's `localPref: 0` is unset).
pub const DEFAULT_LOCAL_PREF: u32 = 100;

/// What MetalLB lets an advertisement set on a route. Kept normalized (sorted, without duplicates) so that
/// equal sets compare equal: [`AdjRibOut`] normalizes what it is given.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct RouteAttrs {
    /// iBGP only; None sends [`DEFAULT_LOCAL_PREF`].
    pub local_pref: Option<u32>,
    pub communities: Vec<u32>,
    pub large_communities: Vec<(u32, u32, u32)>,
}

impl RouteAttrs {
    /// Sorted and deduplicated.
    pub fn normalized(mut self) -> RouteAttrs {
        self.communities.sort_unstable();
        self.communities.dedup();
        self.large_communities.sort_unstable();
        self.large_communities.dedup();
        self
    }
}

/// What one established session lets us send. Must stay the same for as long as routes sent under it are
/// held by the peer: after a change, call [`AdjRibOut::reset_sent`] on the new session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateContext {
    pub local_asn: u32,
    pub ibgp: bool,
    pub next_hop_v4: Option<Ipv4Addr>,
    pub next_hop_v6: Option<Ipv6Addr>,
    /// The negotiated families.
    pub families: Vec<(Afi, Safi)>,
    pub four_octet_as: bool,
    /// We advertised graceful restart: End-of-RIB markers are due ([`Negotiated::end_of_rib`]).
    pub end_of_rib: bool,
}

impl UpdateContext {
    /// The context of an established session.
    pub fn new(
        local_asn: u32,
        negotiated: &Negotiated,
        next_hop_v4: Option<Ipv4Addr>,
        next_hop_v6: Option<Ipv6Addr>,
    ) -> UpdateContext {
        UpdateContext {
            local_asn,
            ibgp: negotiated.ibgp,
            next_hop_v4,
            next_hop_v6,
            families: negotiated.families.clone(),
            four_octet_as: negotiated.four_octet_as,
            end_of_rib: negotiated.end_of_rib,
        }
    }

    fn negotiated(&self, afi: Afi) -> bool {
        self.families.contains(&(afi, Safi::Unicast))
    }

    fn has_next_hop(&self, afi: Afi) -> bool {
        match afi {
            Afi::Ipv4 => self.next_hop_v4.is_some(),
            Afi::Ipv6 => self.next_hop_v6.is_some(),
        }
    }

    fn codec(&self) -> CodecOptions {
        CodecOptions { four_octet_as: self.four_octet_as }
    }

    /// The path attributes of an announcement of `attrs` in family `afi` (NLRI not included).
    fn path_attributes(&self, afi: Afi, attrs: &RouteAttrs) -> PathAttributes {
        PathAttributes {
            origin: Origin::Igp,
            as_path: if self.ibgp { Vec::new() } else { vec![AsSegment::Sequence(vec![self.local_asn])] },
            next_hop: if afi == Afi::Ipv4 { self.next_hop_v4 } else { None },
            med: None,
            local_pref: self.ibgp.then(|| attrs.local_pref.unwrap_or(DEFAULT_LOCAL_PREF)),
            communities: attrs.communities.clone(),
            large_communities: attrs.large_communities.clone(),
            mp_reach: match (afi, self.next_hop_v6) {
                (Afi::Ipv6, Some(nh)) => Some(MpReach {
                    afi: Afi::Ipv6,
                    safi: Safi::Unicast,
                    next_hops: vec![IpAddr::V6(nh)],
                    nlri: Vec::new(),
                }),
                _ => None,
            },
            mp_unreach: None,
        }
    }
}

/// Why a pending prefix cannot be sent on this session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Unsendable {
    /// The peer did not agree to this address family.
    FamilyNotNegotiated,
    /// No next hop of this family is configured for the session.
    NoNextHop,
    /// Its attributes (communities) alone exceed one UPDATE.
    AttributesTooLarge,
}

/// The routes one peer should hold and what it has been sent. Invariants: a prefix is in `to_withdraw` iff
/// it was sent and is not wanted; it is in `to_announce[(family, wanted attrs)]` iff it is wanted and was
/// not sent with these attributes, or a resend was asked for it; `taken_back` holds prefixes the peer still
/// has from us although they no longer count as sent (their next hop is gone): they are withdrawn next,
/// whatever is wanted.
#[derive(Debug, Clone, Default)]
pub struct AdjRibOut {
    wanted: BTreeMap<Prefix, RouteAttrs>,
    sent: BTreeMap<Prefix, RouteAttrs>,
    /// Wanted and sent unchanged, but to be announced again (ROUTE-REFRESH).
    resend: BTreeSet<Prefix>,
    to_announce: BTreeMap<(Afi, RouteAttrs), BTreeSet<Prefix>>,
    to_withdraw: BTreeSet<Prefix>,
    taken_back: BTreeSet<Prefix>,
    /// The families whose End-of-RIB marker went out this session.
    end_of_rib_sent: BTreeSet<Afi>,
}

/// The widest prefix of a family on the wire.
fn max_prefix_wire_len(afi: Afi) -> usize {
    match afi {
        Afi::Ipv4 => 5,
        Afi::Ipv6 => 17,
    }
}

/// An MP attribute's length field grows from one octet to two once its value passes 255 octets: room kept
/// for that instead of recomputing the length after every prefix.
const MP_LENGTH_SLACK: usize = 1;

/// Moves prefixes from `prefixes` into `into` while the message, `len` octets so far, stays within BGP's
/// 4096; `len` grows with them.
fn fill<'a>(len: &mut usize, prefixes: impl IntoIterator<Item = &'a Prefix>, into: &mut Vec<Prefix>) {
    for p in prefixes {
        let more = prefix_wire_len(p);
        if *len + more > MAX_MESSAGE_LEN {
            break;
        }
        *len += more;
        into.push(*p);
    }
}

fn family_bounds(afi: Afi) -> (Bound<Prefix>, Bound<Prefix>) {
    let v6_first = Prefix::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0).unwrap_or_else(|| unreachable!());
    match afi {
        Afi::Ipv4 => (Bound::Unbounded, Bound::Excluded(v6_first)),
        Afi::Ipv6 => (Bound::Included(v6_first), Bound::Unbounded),
    }
}

impl AdjRibOut {
    pub fn new() -> AdjRibOut {
        AdjRibOut::default()
    }

    /// What the peer should hold.
    pub fn wanted(&self) -> &BTreeMap<Prefix, RouteAttrs> {
        &self.wanted
    }

    /// What the peer holds from us (as far as we sent it this session).
    pub fn sent(&self) -> &BTreeMap<Prefix, RouteAttrs> {
        &self.sent
    }

    pub fn sent_count(&self) -> usize {
        self.sent.len()
    }

    /// Prefixes waiting to be announced or withdrawn, sendable or not.
    pub fn pending_count(&self) -> usize {
        let withdrawals = self.to_withdraw.len() + self.taken_back.len();
        withdrawals + self.to_announce.values().map(BTreeSet::len).sum::<usize>()
    }

    /// Makes `routes` the whole set the peer should hold.
    pub fn set_wanted(&mut self, routes: BTreeMap<Prefix, RouteAttrs>) {
        let old: Vec<Prefix> = self.wanted.keys().filter(|p| !routes.contains_key(p)).copied().collect();
        for p in old {
            self.withdraw(p);
        }
        for (p, attrs) in routes {
            self.advertise(p, attrs);
        }
    }

    /// The peer should hold `prefix` with `attrs` (replacing any other attributes).
    pub fn advertise(&mut self, prefix: Prefix, attrs: RouteAttrs) {
        let attrs = attrs.normalized();
        if self.wanted.get(&prefix) == Some(&attrs) {
            return;
        }
        self.unmark(prefix);
        self.wanted.insert(prefix, attrs);
        self.mark(prefix);
    }

    /// The peer should not hold `prefix`. Returns whether it was wanted.
    pub fn withdraw(&mut self, prefix: Prefix) -> bool {
        if !self.wanted.contains_key(&prefix) {
            return false;
        }
        self.unmark(prefix);
        self.wanted.remove(&prefix);
        self.resend.remove(&prefix);
        self.mark(prefix);
        true
    }

    /// The session ended: the peer holds nothing from us, so everything wanted is pending again.
    pub fn reset_sent(&mut self) {
        self.end_of_rib_sent.clear();
        self.sent.clear();
        self.resend.clear();
        self.to_withdraw.clear();
        self.taken_back.clear();
        self.to_announce.clear();
        for (p, attrs) in &self.wanted {
            self.to_announce.entry((p.afi(), attrs.clone())).or_default().insert(*p);
        }
    }

    /// The peer asked for our routes of `afi` again (ROUTE-REFRESH): announce them all again. Pending
    /// withdrawals stay pending.
    pub fn resend(&mut self, afi: Afi) {
        let prefixes: Vec<Prefix> = self.wanted.range(family_bounds(afi)).map(|(p, _)| *p).collect();
        for p in prefixes {
            if self.sent.contains_key(&p) {
                self.resend.insert(p);
            }
            self.unmark(p);
            self.mark(p);
        }
    }

    /// The next hop the peer's routes of `afi` were sent with is gone, and the session has no other: the peer
    /// must stop using them, so they are withdrawn. They stay wanted, and are announced again once the family
    /// has a next hop (then call [`resend`](AdjRibOut::resend)).
    pub fn take_back(&mut self, afi: Afi) {
        let held: Vec<Prefix> = self.sent.range(family_bounds(afi)).map(|(p, _)| *p).collect();
        for p in held {
            self.unmark(p);
            self.sent.remove(&p);
            self.resend.remove(&p);
            self.taken_back.insert(p);
            self.mark(p);
        }
    }

    /// Whether [`next_updates`](AdjRibOut::next_updates) has anything to send on this session.
    pub fn has_pending(&self, ctx: &UpdateContext) -> bool {
        [Afi::Ipv4, Afi::Ipv6].into_iter().any(|afi| self.sendable(ctx, afi) || self.end_of_rib_due(ctx, afi))
    }

    /// Whether a withdrawal or an announcement of `afi` can go out on this session.
    fn sendable(&self, ctx: &UpdateContext, afi: Afi) -> bool {
        let withdrawals = ctx.negotiated(afi) && self.has_withdrawals(afi);
        withdrawals
            || self.to_announce.keys().any(|(a, attrs)| *a == afi && self.group_sendable(ctx, afi, attrs).is_ok())
    }

    /// Whether `afi`'s End-of-RIB marker is due now: promised, not sent yet this session, and nothing of its
    /// initial table left to send.
    fn end_of_rib_due(&self, ctx: &UpdateContext, afi: Afi) -> bool {
        ctx.end_of_rib && ctx.negotiated(afi) && !self.end_of_rib_sent.contains(&afi) && !self.sendable(ctx, afi)
    }

    /// The pending prefixes this session cannot send, and why.
    pub fn unsendable(&self, ctx: &UpdateContext) -> Vec<(Prefix, Unsendable)> {
        let mut out = Vec::new();
        for afi in [Afi::Ipv4, Afi::Ipv6] {
            if !ctx.negotiated(afi) {
                out.extend(self.withdrawals(afi, usize::MAX).into_iter().map(|p| (p, Unsendable::FamilyNotNegotiated)));
            }
        }
        for ((afi, attrs), prefixes) in &self.to_announce {
            if let Err(why) = self.group_sendable(ctx, *afi, attrs) {
                out.extend(prefixes.iter().map(|p| (*p, why)));
            }
        }
        out.sort_unstable();
        out
    }

    /// Up to `max_messages` UPDATEs towards what is wanted, withdrawals first, End-of-RIB markers (when due)
    /// last. What they carry counts as sent. Fewer than `max_messages` means nothing sendable is left.
    pub fn next_updates(&mut self, ctx: &UpdateContext, max_messages: usize) -> Vec<Update> {
        let mut out = Vec::new();
        while out.len() < max_messages {
            match self.next_withdrawal(ctx) {
                Some(update) => out.push(update),
                None => break,
            }
        }
        let groups: Vec<(Afi, RouteAttrs)> = self
            .to_announce
            .keys()
            .filter(|(afi, attrs)| self.group_sendable(ctx, *afi, attrs).is_ok())
            .cloned()
            .collect();
        for key in groups {
            while out.len() < max_messages {
                match self.next_announcement(ctx, &key) {
                    Some(update) => out.push(update),
                    None => break,
                }
            }
        }
        for afi in [Afi::Ipv4, Afi::Ipv6] {
            if out.len() < max_messages && self.end_of_rib_due(ctx, afi) {
                self.end_of_rib_sent.insert(afi);
                out.push(Update::end_of_rib(afi));
            }
        }
        out
    }

    fn has_withdrawals(&self, afi: Afi) -> bool {
        let bounds = family_bounds(afi);
        self.to_withdraw.range(bounds).next().is_some() || self.taken_back.range(bounds).next().is_some()
    }

    /// The first `limit` pending withdrawals of `afi`, in order.
    fn withdrawals(&self, afi: Afi, limit: usize) -> Vec<Prefix> {
        let bounds = family_bounds(afi);
        let (mine, taken) = (self.to_withdraw.range(bounds).take(limit), self.taken_back.range(bounds).take(limit));
        let mut all: Vec<Prefix> = mine.chain(taken).copied().collect();
        all.sort_unstable();
        all.dedup();
        all.truncate(limit);
        all
    }

    /// Takes `p` out of the pending sets (before `wanted` changes: its group is found by its wanted attrs).
    fn unmark(&mut self, p: Prefix) {
        self.to_withdraw.remove(&p);
        if let Some(attrs) = self.wanted.get(&p) {
            let key = (p.afi(), attrs.clone());
            if let Some(group) = self.to_announce.get_mut(&key) {
                group.remove(&p);
                if group.is_empty() {
                    self.to_announce.remove(&key);
                }
            }
        }
    }

    /// Puts `p` in the pending set it belongs to now (after it was unmarked).
    fn mark(&mut self, p: Prefix) {
        match (self.wanted.get(&p), self.sent.get(&p)) {
            (Some(w), Some(s)) if w == s && !self.resend.contains(&p) => {}
            (Some(w), _) => {
                self.to_announce.entry((p.afi(), w.clone())).or_default().insert(p);
            }
            (None, Some(_)) => {
                self.to_withdraw.insert(p);
            }
            (None, None) => {}
        }
    }

    fn group_sendable(&self, ctx: &UpdateContext, afi: Afi, attrs: &RouteAttrs) -> Result<usize, Unsendable> {
        if !ctx.negotiated(afi) {
            return Err(Unsendable::FamilyNotNegotiated);
        }
        if !ctx.has_next_hop(afi) {
            return Err(Unsendable::NoNextHop);
        }
        let base = announcement_base_len(ctx, afi, attrs);
        if base + max_prefix_wire_len(afi) > MAX_MESSAGE_LEN {
            return Err(Unsendable::AttributesTooLarge);
        }
        Ok(base)
    }

    /// One UPDATE of pending withdrawals of the negotiated families (IPv4 in the withdrawn field, IPv6 in
    /// MP_UNREACH_NLRI, both in one message when they fit), or None.
    fn next_withdrawal(&mut self, ctx: &UpdateContext) -> Option<Update> {
        let pick = |afi: Afi, rib: &AdjRibOut| -> Vec<Prefix> {
            if ctx.negotiated(afi) {
                // No more fit one UPDATE (a prefix takes at least one octet).
                rib.withdrawals(afi, MAX_MESSAGE_LEN)
            } else {
                Vec::new()
            }
        };
        let (v4, v6) = (pick(Afi::Ipv4, self), pick(Afi::Ipv6, self));
        if v4.is_empty() && v6.is_empty() {
            return None;
        }
        let mut update = Update::default();
        if !v6.is_empty() {
            update.attributes.mp_unreach =
                Some(MpUnreach { afi: Afi::Ipv6, safi: Safi::Unicast, withdrawn: Vec::new() });
        }
        let mut len = encoded_len(&Message::Update(update.clone()), &ctx.codec());
        if !v6.is_empty() {
            len += MP_LENGTH_SLACK;
        }
        fill(&mut len, &v4, &mut update.withdrawn);
        if let Some(mp) = update.attributes.mp_unreach.as_mut() {
            fill(&mut len, &v6, &mut mp.withdrawn);
            if mp.withdrawn.is_empty() {
                // The IPv4 withdrawals filled the message; the IPv6 ones go in the next.
                update.attributes.mp_unreach = None;
            }
        }
        let withdrawn = update.withdrawn.iter().chain(update.attributes.mp_unreach.iter().flat_map(|m| &m.withdrawn));
        for p in withdrawn {
            self.to_withdraw.remove(p);
            self.taken_back.remove(p);
            self.sent.remove(p);
        }
        Some(update)
    }

    /// One UPDATE announcing pending prefixes of one group, or None when the group is done.
    fn next_announcement(&mut self, ctx: &UpdateContext, key: &(Afi, RouteAttrs)) -> Option<Update> {
        let (afi, attrs) = key;
        let mut len = self.group_sendable(ctx, *afi, attrs).ok()?;
        let group = self.to_announce.get_mut(key)?;
        let mut nlri = Vec::new();
        fill(&mut len, group.iter(), &mut nlri);
        for p in &nlri {
            group.remove(p);
        }
        if group.is_empty() {
            self.to_announce.remove(key);
        }
        for p in &nlri {
            self.sent.insert(*p, attrs.clone());
            self.resend.remove(p);
        }
        let mut attributes = ctx.path_attributes(*afi, attrs);
        Some(match attributes.mp_reach.as_mut() {
            Some(mp) => {
                mp.nlri = nlri;
                Update { withdrawn: Vec::new(), attributes, nlri: Vec::new() }
            }
            None => Update { withdrawn: Vec::new(), attributes, nlri },
        })
    }
}

/// Encoded length of an announcement of `attrs` in `afi` with no prefixes yet, plus the slack its MP
/// attribute may need.
fn announcement_base_len(ctx: &UpdateContext, afi: Afi, attrs: &RouteAttrs) -> usize {
    let update = Update { withdrawn: Vec::new(), attributes: ctx.path_attributes(afi, attrs), nlri: Vec::new() };
    let slack = if update.attributes.mp_reach.is_some() { MP_LENGTH_SLACK } else { 0 };
    encoded_len(&Message::Update(update), &ctx.codec()) + slack
}
