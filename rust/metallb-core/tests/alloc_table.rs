//! Table tests of the allocator in MetalLB's style: each case is a sequence of steps with expected outcomes.

use std::collections::HashMap;
use std::net::IpAddr;

use metallb_core::alloc::{
    AllocError, Allocator, Counters, Family, FamilyPolicy, LabelSelector, Pool, Port, Protocol, Request,
    ServiceAllocation, ServiceLabels,
};

fn pool(name: &str, addresses: &[&str]) -> Pool {
    Pool::new(name, addresses.iter().map(|s| s.to_string()).collect(), true, false, None).unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn tcp(port: u16) -> Port {
    Port { port, protocol: Protocol::Tcp }
}

fn shared(key: &str, ports: &[u16]) -> Request {
    Request { sharing_key: Some(key.into()), ports: ports.iter().map(|p| tcp(*p)).collect(), ..Request::default() }
}

/// Expected outcome of one step: the addresses, or the error variant's name.
#[derive(Debug)]
enum Want<'a> {
    Ips(&'a [&'a str]),
    Err(&'a str),
}

fn check(step: &str, got: Result<Vec<IpAddr>, AllocError>, want: &Want<'_>) {
    match (got, want) {
        (Ok(ips), Want::Ips(w)) => assert_eq!(ips, w.iter().map(|s| ip(s)).collect::<Vec<_>>(), "{step}"),
        (Err(e), Want::Err(name)) => assert!(format!("{e:?}").starts_with(name), "{step}: got {e:?}, want {name}"),
        (got, want) => panic!("{step}: got {got:?}, want {want:?}"),
    }
}

#[test]
fn seed_scenario_lowest_free_first_and_reuse() {
    let mut a = Allocator::new(vec![pool("nginx-ip-range", &["192.168.1.11-192.168.1.13"])]).unwrap();
    let r = Request { ports: vec![tcp(80)], ..Request::default() };
    let steps: &[(&str, Want<'_>)] = &[
        ("default/lb-hname-svc", Want::Ips(&["192.168.1.11"])),
        ("default/lb-ip-svc", Want::Ips(&["192.168.1.12"])),
        ("default/third", Want::Ips(&["192.168.1.13"])),
        ("default/fourth", Want::Err("PoolExhausted")),
    ];
    for (key, want) in steps {
        check(key, a.allocate(key, &r), want);
    }
    assert!(a.release("default/lb-ip-svc"));
    check("reuse", a.allocate("default/fourth", &r), &Want::Ips(&["192.168.1.12"]));
    // Allocating again for a key that holds a valid address keeps it.
    check("idempotent", a.allocate("default/lb-hname-svc", &r), &Want::Ips(&["192.168.1.11"]));
    assert_eq!(a.counters("nginx-ip-range").in_use, [3, 0]);
}

#[test]
fn address_order_follows_the_pool_entries() {
    let mut a = Allocator::new(vec![pool("p", &["198.51.100.10-198.51.100.11", "192.0.2.5/32"])]).unwrap();
    let r = Request::default();
    check("1", a.allocate("ns/a", &r), &Want::Ips(&["198.51.100.10"]));
    check("2", a.allocate("ns/b", &r), &Want::Ips(&["198.51.100.11"]));
    check("3", a.allocate("ns/c", &r), &Want::Ips(&["192.0.2.5"]));
}

#[test]
fn buggy_ips() {
    let buggy = Pool::new("b", vec!["192.0.2.254-192.0.3.1".into()], true, true, None).unwrap();
    let mut a = Allocator::new(vec![buggy]).unwrap();
    let r = Request::default();
    check("first", a.allocate("ns/a", &r), &Want::Ips(&["192.0.2.254"]));
    check("skips .255 and .0", a.allocate("ns/b", &r), &Want::Ips(&["192.0.3.1"]));
    check("full", a.allocate("ns/c", &r), &Want::Err("PoolExhausted"));
    let asked = Request { requested: vec![ip("192.0.3.0")], ..Request::default() };
    check("request a buggy one", a.allocate("ns/d", &asked), &Want::Err("IpNotAllowed"));
    assert!(matches!(a.assign("ns/e", &[ip("192.0.2.255")], &[], None, ""), Err(AllocError::IpNotAllowed { .. })));
    assert_eq!(a.counters("b").total, [2, 0]);

    // Without avoid_buggy_ips the same addresses are ordinary.
    let mut plain = Allocator::new(vec![pool("b", &["192.0.2.254-192.0.3.1"])]).unwrap();
    for (i, want) in ["192.0.2.254", "192.0.2.255", "192.0.3.0", "192.0.3.1"].iter().enumerate() {
        check(want, plain.allocate(&format!("ns/{i}"), &r), &Want::Ips(&[want]));
    }
}

#[test]
fn sharing_rules() {
    let mut a = Allocator::new(vec![pool("p", &["192.0.2.0/30"])]).unwrap();
    let local = |key: &str, ports: &[u16], backend: &str| Request { backend_key: backend.into(), ..shared(key, ports) };
    let cases: &[(&str, Request, Want<'_>)] = &[
        ("ns/web", shared("k", &[80]), Want::Ips(&["192.0.2.0"])),
        ("ns/tls", shared("k", &[443]), Want::Ips(&["192.0.2.0"])),
        // Same key, same port: cannot share, so the next free address.
        ("ns/web2", shared("k", &[80]), Want::Ips(&["192.0.2.1"])),
        // Another key never shares.
        ("ns/other", shared("other", &[22]), Want::Ips(&["192.0.2.2"])),
        // No key: never shares.
        ("ns/plain", Request::default(), Want::Ips(&["192.0.2.3"])),
        ("ns/full", Request::default(), Want::Err("PoolExhausted")),
        // Same key, other backend key: cannot join .0 or .1; pool full otherwise.
        ("ns/local", local("k", &[8080], "app=x"), Want::Err("PoolExhausted")),
        // Same key, free port: joins the lowest shareable, .0.
        ("ns/dns", shared("k", &[53]), Want::Ips(&["192.0.2.0"])),
    ];
    for (key, request, want) in cases {
        check(key, a.allocate(key, request), want);
    }
    let mut holders = a.holders(ip("192.0.2.0")).to_vec();
    holders.sort();
    assert_eq!(holders, ["ns/dns", "ns/tls", "ns/web"]);
    // Requesting an address held by an incompatible service names the holder.
    let asked = Request { requested: vec![ip("192.0.2.3")], ..shared("k", &[1]) };
    let err = a.allocate("ns/x", &asked).unwrap_err();
    assert!(matches!(&err, AllocError::IpInUse { holder, .. } if holder == "ns/plain"), "{err:?}");
    // Releasing one sharer keeps the address for the others; releasing all frees it.
    a.release("ns/web");
    a.release("ns/tls");
    assert_eq!(a.holders(ip("192.0.2.0")), ["ns/dns"]);
    a.release("ns/dns");
    check("freed", a.allocate("ns/new", &Request::default()), &Want::Ips(&["192.0.2.0"]));
    assert_eq!(a.counters("p").in_use, [4, 0]);
}

#[test]
fn pool_choice_explicit_requested_priority_and_auto_assign() {
    let manual = Pool::new("manual", vec!["198.51.100.0/24".into()], false, false, None).unwrap();
    let sa = |priority, namespaces: &[&str]| ServiceAllocation {
        priority,
        namespaces: namespaces.iter().map(|s| s.to_string()).collect(),
        ..ServiceAllocation::default()
    };
    let team_low =
        Pool::new("team-low", vec!["192.0.2.0/28".into()], true, false, Some(sa(Some(20), &["team"]))).unwrap();
    let team_high =
        Pool::new("team-high", vec!["192.0.2.16/28".into()], true, false, Some(sa(Some(10), &["team"]))).unwrap();
    let team_any = Pool::new("team-any", vec!["192.0.2.32/28".into()], true, false, Some(sa(None, &["team"]))).unwrap();
    let b_open = pool("b-open", &["192.0.2.64/31"]);
    let a_open = pool("a-open", &["192.0.2.48/31"]);
    let mut a = Allocator::new(vec![manual, team_low, team_high, team_any, b_open, a_open]).unwrap();
    let named = |p: &str| Request { pool: Some(p.into()), ..Request::default() };
    let asked = |s: &str| Request { requested: vec![ip(s)], ..Request::default() };
    let both = Request { pool: Some("manual".into()), requested: vec![ip("192.0.2.50")], ..Request::default() };
    let cases: &[(&str, Request, Want<'_>)] = &[
        ("team/a", Request::default(), Want::Ips(&["192.0.2.16"])), // priority 10 first
        ("other/a", Request::default(), Want::Ips(&["192.0.2.48"])), // open pools by name
        ("other/b", Request::default(), Want::Ips(&["192.0.2.49"])),
        ("other/c", Request::default(), Want::Ips(&["192.0.2.64"])), // then the next open pool
        ("other/m", named("manual"), Want::Ips(&["198.51.100.0"])),  // auto_assign=false only when named
        ("other/r", asked("198.51.100.7"), Want::Ips(&["198.51.100.7"])),
        ("other/t", named("team-high"), Want::Err("NoPool")), // serves only namespace team
        ("other/u", asked("192.0.2.20"), Want::Err("NoPool")),
        ("other/n", named("nope"), Want::Err("UnknownPool")),
        ("other/x", asked("203.0.113.1"), Want::Err("IpNotAllowed")),
        ("other/y", both, Want::Err("IpNotAllowed")),
    ];
    for (key, request, want) in cases {
        check(key, a.allocate(key, request), want);
    }
    // Exhausting the priority-10 pool moves team services to priority 20.
    for i in 1..16 {
        a.allocate(&format!("team/h{i}"), &Request::default()).unwrap();
    }
    check("team next", a.allocate("team/next", &Request::default()), &Want::Ips(&["192.0.2.0"]));
    assert_eq!(a.pool_of("team/next"), Some("team-low"));
}

#[test]
fn selectors_pick_pools_by_labels() {
    let sel = LabelSelector::new("s", [("env".to_string(), "prod".to_string())].into(), vec![]).unwrap();
    let by_ns = ServiceAllocation { namespace_selectors: vec![sel.clone()], ..ServiceAllocation::default() };
    let by_svc = ServiceAllocation { service_selectors: vec![sel], priority: Some(1), ..ServiceAllocation::default() };
    let mut a = Allocator::new(vec![
        Pool::new("ns-prod", vec!["192.0.2.0/31".into()], true, false, Some(by_ns)).unwrap(),
        Pool::new("svc-prod", vec!["192.0.2.8/31".into()], true, false, Some(by_svc)).unwrap(),
        pool("default", &["192.0.2.16/31"]),
    ])
    .unwrap();
    let prod: HashMap<String, String> = [("env".to_string(), "prod".to_string())].into();
    let ns_prod = Request { namespace_labels: prod.clone(), ..Request::default() };
    let svc_prod = Request { labels: prod.clone(), ..Request::default() };
    check("ns", a.allocate("x/a", &ns_prod), &Want::Ips(&["192.0.2.0"]));
    check("svc", a.allocate("x/b", &svc_prod), &Want::Ips(&["192.0.2.8"]));
    check("none", a.allocate("x/c", &Request::default()), &Want::Ips(&["192.0.2.16"]));
}

#[test]
fn dual_stack() {
    use Family::{V4, V6};
    use FamilyPolicy::*;
    let mut a = Allocator::new(vec![
        pool("v4", &["192.0.2.0/30"]),
        pool("zz-dual", &["198.51.100.0/30", "2001:db8::/126"]),
        pool("zz-v6", &["2001:db8:1::/126"]),
    ])
    .unwrap();
    let req = |families: &[Family], policy| Request {
        ip_families: families.to_vec(),
        family_policy: policy,
        ..Request::default()
    };
    let asked = |ips: &[&str], policy| Request {
        requested: ips.iter().map(|s| ip(s)).collect(),
        family_policy: policy,
        ..Request::default()
    };
    let cases: &[(&str, Request, Want<'_>)] = &[
        ("ns/a", req(&[V4], SingleStack), Want::Ips(&["192.0.2.0"])),
        ("ns/b", req(&[V6], SingleStack), Want::Ips(&["2001:db8::"])),
        ("ns/c", req(&[V4, V6], RequireDualStack), Want::Ips(&["198.51.100.0", "2001:db8::1"])),
        ("ns/d", req(&[V6, V4], RequireDualStack), Want::Ips(&["2001:db8::2", "198.51.100.1"])),
        // PreferDualStack takes the first pool by name that has any wanted family: v4 only.
        ("ns/e", req(&[V4], PreferDualStack), Want::Ips(&["192.0.2.1"])),
        ("ns/f", req(&[V4, V6], SingleStack), Want::Err("Family")),
        ("ns/g", req(&[V4, V4], PreferDualStack), Want::Err("Family")),
        ("ns/h", asked(&["192.0.2.3", "192.0.2.2"], PreferDualStack), Want::Err("Family")),
        (
            "ns/i",
            asked(&["198.51.100.3", "2001:db8::3"], RequireDualStack),
            Want::Ips(&["198.51.100.3", "2001:db8::3"]),
        ),
        ("ns/j", asked(&["192.0.2.3", "2001:db8:1::3"], RequireDualStack), Want::Err("IpNotAllowed")),
        ("ns/k", asked(&["192.0.2.3"], RequireDualStack), Want::Err("Family")),
    ];
    for (key, request, want) in cases {
        check(key, a.allocate(key, request), want);
    }
    let c = a.counters("zz-dual");
    assert_eq!((c.total, c.in_use), ([4, 4], [3, 4]));
}

#[test]
fn assign_restores_and_refuses_conflicts_without_moving_anyone() {
    let mut a = Allocator::new(vec![pool("p", &["192.0.2.0/29"])]).unwrap();
    assert_eq!(a.assign("ns/a", &[ip("192.0.2.5")], &[tcp(80)], None, "").unwrap(), "p");
    check("lowest free", a.allocate("ns/b", &Request::default()), &Want::Ips(&["192.0.2.0"]));
    let err = a.assign("ns/c", &[ip("192.0.2.5")], &[tcp(443)], None, "").unwrap_err();
    assert!(matches!(err, AllocError::IpInUse { .. }), "{err:?}");
    assert_eq!(a.ips("ns/a").unwrap(), [ip("192.0.2.5")]);
    assert_eq!(a.ips("ns/c"), None);
    // A failed re-assign keeps what the key had.
    assert!(a.assign("ns/b", &[ip("192.0.2.5")], &[], None, "").is_err());
    assert_eq!(a.ips("ns/b").unwrap(), [ip("192.0.2.0")]);
    // Re-assign moves a key to a free address.
    a.assign("ns/b", &[ip("192.0.2.7")], &[], None, "").unwrap();
    check("freed", a.allocate("ns/d", &Request::default()), &Want::Ips(&["192.0.2.0"]));
    assert!(matches!(a.assign("ns/e", &[ip("203.0.113.9")], &[], None, ""), Err(AllocError::IpNotAllowed { .. })));
    assert!(matches!(a.assign("ns/e", &[], &[], None, ""), Err(AllocError::Family(_))));
}

#[test]
fn pool_reload_keeps_valid_and_returns_evicted() {
    let mut a = Allocator::new(vec![pool("p", &["192.0.2.0/29"]), pool("q", &["198.51.100.0/30"])]).unwrap();
    for key in ["ns/a", "ns/b", "ns/c"] {
        a.allocate(key, &Request::default()).unwrap(); // .0 .1 .2 of p
    }
    a.allocate("ns/q", &Request { pool: Some("q".into()), ..Request::default() }).unwrap();
    // Shrink p to .1-.3 and rename q: a is evicted, b and c stay, q's holder follows the rename.
    let evicted = a.set_pools(vec![pool("p", &["192.0.2.1-192.0.2.3"]), pool("q2", &["198.51.100.0/30"])]).unwrap();
    assert_eq!(evicted, ["ns/a"]);
    assert_eq!(a.ips("ns/a"), None);
    assert_eq!(a.pool_of("ns/q"), Some("q2"));
    check("next", a.allocate("ns/a", &Request::default()), &Want::Ips(&["192.0.2.3"]));
    assert_eq!(a.counters("p").in_use, [3, 0]);
    // An invalid set of pools changes nothing.
    let before: Vec<_> = a.pools().cloned().collect();
    assert!(a.set_pools(vec![pool("x", &["192.0.2.0/24"]), pool("y", &["192.0.2.128/25"])]).is_err());
    assert_eq!(a.pools().cloned().collect::<Vec<_>>(), before);
    assert_eq!(a.ips("ns/b").unwrap(), [ip("192.0.2.1")]);
    // Turning on avoid_buggy_ips evicts holders of .0/.255.
    let mut b = Allocator::new(vec![pool("p", &["192.0.2.0/24"])]).unwrap();
    b.allocate("ns/zero", &Request::default()).unwrap();
    let strict = Pool::new("p", vec!["192.0.2.0/24".into()], true, true, None).unwrap();
    assert_eq!(b.set_pools(vec![strict]).unwrap(), ["ns/zero"]);
}

#[test]
fn huge_pools_cost_nothing_up_front() {
    assert!(Allocator::new(vec![pool("v6", &["2001:db8::/64"]), pool("all", &["::/0"])]).is_err());
    let mut a = Allocator::new(vec![pool("v6", &["2001:db8::/32"])]).unwrap();
    let req = Request { ip_families: vec![Family::V6], ..Request::default() };
    check("first", a.allocate("ns/a", &req), &Want::Ips(&["2001:db8::"]));
    assert_eq!(a.counters("v6").total, [0, 1u128 << 96]);
}

#[test]
fn the_last_ipv6_address_can_be_released() {
    // Regression: giving back ffff:...:ffff computed its successor with an overflowing x + 1.
    let mut a = Allocator::new(vec![pool("all6", &["::/0"])]).unwrap();
    let top = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
    let asked = |s: &str| Request { requested: vec![ip(s)], ..Request::default() };
    check("low", a.allocate("ns/a", &asked("::5")), &Want::Ips(&["::5"]));
    check("top", a.allocate("ns/b", &asked(top)), &Want::Ips(&[top]));
    assert!(a.release("ns/b"));
    let v6 = Request { ip_families: vec![Family::V6], ..Request::default() };
    for (key, want) in
        [("ns/c", "::"), ("ns/d", "::1"), ("ns/e", "::2"), ("ns/f", "::3"), ("ns/g", "::4"), ("ns/h", "::6")]
    {
        check(key, a.allocate(key, &v6), &Want::Ips(&[want]));
    }
    check("top again", a.allocate("ns/b", &asked(top)), &Want::Ips(&[top]));
}

fn req(families: &[Family], policy: FamilyPolicy) -> Request {
    Request { ip_families: families.to_vec(), family_policy: policy, ..Request::default() }
}

#[test]
fn prefer_dual_stack_prefers_a_pool_with_both_families_then_the_primary() {
    use Family::{V4, V6};
    use FamilyPolicy::*;
    // By name, the v4-only and v6-only pools come before the dual one.
    let mut a = Allocator::new(vec![
        pool("a-v4", &["192.0.2.0/31"]),
        pool("b-v6", &["2001:db8:1::/127"]),
        pool("c-dual", &["198.51.100.0/31", "2001:db8::/127"]),
    ])
    .unwrap();
    let cases: &[(&str, Request, Want<'_>)] = &[
        ("ns/a", req(&[V4, V6], PreferDualStack), Want::Ips(&["198.51.100.0", "2001:db8::"])),
        ("ns/b", req(&[V6, V4], PreferDualStack), Want::Ips(&["2001:db8::1", "198.51.100.1"])),
        // The dual pool is full: the first pool giving the primary family, whichever comes first by name.
        ("ns/c", req(&[V6, V4], PreferDualStack), Want::Ips(&["2001:db8:1::"])),
        ("ns/d", req(&[V4, V6], PreferDualStack), Want::Ips(&["192.0.2.0"])),
        // One family listed (a single-stack cluster): only that family, as MetalLB aligns with the cluster IP.
        ("ns/e", req(&[V4], PreferDualStack), Want::Ips(&["192.0.2.1"])),
        ("ns/f", req(&[V4, V6], PreferDualStack), Want::Ips(&["2001:db8:1::1"])), // only v6 is left
        ("ns/g", req(&[V4], RequireDualStack), Want::Err("Family")),
    ];
    for (key, request, want) in cases {
        check(key, a.allocate(key, request), want);
    }
}

#[test]
fn prefer_dual_stack_keeps_its_address_and_gains_the_missing_family() {
    use Family::{V4, V6};
    use FamilyPolicy::*;
    let mut a = Allocator::new(vec![pool("dual", &["192.0.2.0/30", "2001:db8::/126"])]).unwrap();
    check("v6 only", a.allocate("ns/s", &req(&[V6], PreferDualStack)), &Want::Ips(&["2001:db8::"]));
    check("v6 more", a.allocate("ns/t", &req(&[V6], SingleStack)), &Want::Ips(&["2001:db8::1"]));
    assert!(a.release("ns/t"));
    check("lower", a.allocate("ns/u", &req(&[V4], SingleStack)), &Want::Ips(&["192.0.2.0"]));
    // Now dual: keeps 2001:db8:: and adds the lowest free IPv4, in ipFamilies order.
    check("upgraded", a.allocate("ns/s", &req(&[V4, V6], PreferDualStack)), &Want::Ips(&["192.0.2.1", "2001:db8::"]));
    // RequireDualStack from SingleStack: the IPv6 address stays although a lower one is free.
    check("v6 again", a.allocate("ns/r", &req(&[V6], SingleStack)), &Want::Ips(&["2001:db8::1"]));
    check("held", a.allocate("ns/h", &req(&[V6], SingleStack)), &Want::Ips(&["2001:db8::2"]));
    assert!(a.release("ns/r"));
    check("again", a.allocate("ns/h", &req(&[V4, V6], RequireDualStack)), &Want::Ips(&["192.0.2.2", "2001:db8::2"]));
}

#[test]
fn prefer_dual_stack_falls_back_to_one_family_when_the_other_is_exhausted() {
    use Family::{V4, V6};
    use FamilyPolicy::*;
    let mut a = Allocator::new(vec![pool("dual", &["192.0.2.0/32", "2001:db8::/127"])]).unwrap();
    check("v4", a.allocate("ns/a", &req(&[V4], SingleStack)), &Want::Ips(&["192.0.2.0"]));
    check("prefer", a.allocate("ns/b", &req(&[V4, V6], PreferDualStack)), &Want::Ips(&["2001:db8::"]));
    check("require", a.allocate("ns/c", &req(&[V4, V6], RequireDualStack)), &Want::Err("PoolExhausted"));
}

#[test]
fn assign_served_checks_the_pools_service_allocation() {
    let team = ServiceAllocation { namespaces: vec!["team".into()], ..ServiceAllocation::default() };
    let mut a = Allocator::new(vec![
        Pool::new("team", vec!["192.0.2.0/30".into()], true, false, Some(team)).unwrap(),
        pool("open", &["198.51.100.0/30"]),
    ])
    .unwrap();
    let none = ServiceLabels::default();
    assert_eq!(a.assign_served("team/a", &[ip("192.0.2.1")], &[], None, "", &none).unwrap(), "team");
    let err = a.assign_served("other/a", &[ip("192.0.2.2")], &[], None, "", &none).unwrap_err();
    assert!(matches!(err, AllocError::NoPool { .. }), "{err:?}");
    assert_eq!(a.ips("other/a"), None);
    // Plain assign does not look at serviceAllocation (restoring an unreadable Service's addresses).
    assert_eq!(a.assign("other/a", &[ip("192.0.2.2")], &[], None, "").unwrap(), "team");
    // A failed assign_served keeps what the key held.
    assert!(a.assign_served("other/a", &[ip("192.0.2.3")], &[], None, "", &none).is_err());
    assert_eq!(a.ips("other/a").unwrap(), [ip("192.0.2.2")]);
}

#[test]
fn counters_of_a_removed_pool_are_zero_and_capacity_follows_metallb() {
    let mut a = Allocator::new(vec![pool("p", &["192.0.2.0/30", "2001:db8::/64"])]).unwrap();
    a.allocate("ns/a", &Request::default()).unwrap();
    let c = a.counters("p");
    assert_eq!((c.total, c.in_use), ([4, 1 << 64], [1, 0]));
    assert_eq!((c.capacity, c.assigned(Family::V4), c.available(Family::V4)), ([4, i64::MAX], 1, 3));
    assert_eq!(a.counters("never"), Counters::default());
    a.set_pools(vec![]).unwrap();
    assert_eq!(a.counters("p"), Counters::default());
    assert_eq!(a.counters("p").available(Family::V6), 0);
    // Ranges below 2^62 addresses add up exactly; sums saturate rather than wrap.
    let b = Allocator::new(vec![pool("q", &["2001:db8::/67", "2001:db8:1::/67", "2001:db8:2::/67"])]).unwrap();
    assert_eq!(b.counters("q").capacity, [0, 3 << 61]);
    let c = Allocator::new(vec![pool("r", &["2001:db8::/67", "2001:db8:1::/66"])]).unwrap();
    assert_eq!(c.counters("r").capacity, [0, i64::MAX]);
}

#[test]
fn an_address_from_a_manual_pool_is_kept_when_the_pool_is_no_longer_asked_for() {
    // MetalLB's Allocate keeps an existing allocation whenever its Assign succeeds; autoAssign only decides
    // where new addresses come from.
    let manual = Pool::new("manual", vec!["198.51.100.0/30".into()], false, false, None).unwrap();
    let mut a = Allocator::new(vec![manual, pool("auto", &["192.0.2.0/30"])]).unwrap();
    let named = Request { pool: Some("manual".into()), ..Request::default() };
    check("asked", a.allocate("ns/a", &named), &Want::Ips(&["198.51.100.0"]));
    check("kept", a.allocate("ns/a", &Request::default()), &Want::Ips(&["198.51.100.0"]));
    check("fresh", a.allocate("ns/b", &Request::default()), &Want::Ips(&["192.0.2.0"]));
    // A pool that does not serve the service any more is left.
    let team = ServiceAllocation { namespaces: vec!["team".into()], ..ServiceAllocation::default() };
    let mut b = Allocator::new(vec![
        Pool::new("team", vec!["198.51.100.0/30".into()], true, false, Some(team)).unwrap(),
        pool("auto", &["192.0.2.0/30"]),
    ])
    .unwrap();
    b.assign("ns/c", &[ip("198.51.100.1")], &[], None, "").unwrap();
    check("moved", b.allocate("ns/c", &Request::default()), &Want::Ips(&["192.0.2.0"]));
}

#[test]
fn kept_addresses_follow_the_order_of_ip_families() {
    // Found by the stateful property test: a key keeping [v6, v4] under ipFamilies [IPv4, IPv6].
    use Family::{V4, V6};
    let mut a = Allocator::new(vec![pool("dual", &["192.0.2.0/30", "2001:db8::/126"])]).unwrap();
    let v6_first = req(&[V6, V4], FamilyPolicy::PreferDualStack);
    check("v6 first", a.allocate("ns/a", &v6_first), &Want::Ips(&["2001:db8::", "192.0.2.0"]));
    let v4_first = req(&[V4, V6], FamilyPolicy::RequireDualStack);
    check("v4 first", a.allocate("ns/a", &v4_first), &Want::Ips(&["192.0.2.0", "2001:db8::"]));
    let asked = Request { requested: vec![ip("2001:db8::"), ip("192.0.2.0")], ..v4_first };
    check("as requested", a.allocate("ns/a", &asked), &Want::Ips(&["2001:db8::", "192.0.2.0"]));
}

#[test]
fn a_priority_only_service_allocation_serves_every_service_before_the_open_pools() {
    // MetalLB (config.go, addressPoolServiceAllocationsFromCR, since v0.15.0): a serviceAllocation naming no
    // namespace and no selector selects every Service, so the pool is pinned (ByServiceSelector) and
    // Allocate tries it, by priority, before the auto-assign pools that have no serviceAllocation.
    let only = |priority| ServiceAllocation { priority, ..ServiceAllocation::default() };
    let team = ServiceAllocation { priority: Some(5), namespaces: vec!["team".into()], ..ServiceAllocation::default() };
    let mut a = Allocator::new(vec![
        pool("a-open", &["192.0.2.0/31"]),
        Pool::new("prio-10", vec!["198.51.100.0/31".into()], true, false, Some(only(Some(10)))).unwrap(),
        Pool::new("prio-none", vec!["198.51.100.8/31".into()], true, false, Some(only(None))).unwrap(),
        Pool::new("team-5", vec!["203.0.113.0/31".into()], true, false, Some(team)).unwrap(),
        Pool::new("manual", vec!["203.0.113.8/31".into()], false, false, Some(only(Some(1)))).unwrap(),
    ])
    .unwrap();
    let named = Request { pool: Some("manual".into()), ..Request::default() };
    let asked = Request { requested: vec![ip("203.0.113.9")], ..Request::default() };
    let cases: &[(&str, Request, Want<'_>)] = &[
        ("any/a", Request::default(), Want::Ips(&["198.51.100.0"])), // priority 10, any namespace
        ("team/a", Request::default(), Want::Ips(&["203.0.113.0"])), // priority 5 first for team
        ("team/b", Request::default(), Want::Ips(&["203.0.113.1"])),
        ("team/c", Request::default(), Want::Ips(&["198.51.100.1"])), // then priority 10
        ("any/b", Request::default(), Want::Ips(&["198.51.100.8"])),  // no priority: after those with one
        ("any/c", Request::default(), Want::Ips(&["198.51.100.9"])),
        ("any/d", Request::default(), Want::Ips(&["192.0.2.0"])), // and only then the open pools
        // autoAssign false: never chosen, but the annotation or a requested address reaches it.
        ("any/m", named, Want::Ips(&["203.0.113.8"])),
        ("any/r", asked, Want::Ips(&["203.0.113.9"])),
    ];
    for (key, request, want) in cases {
        check(key, a.allocate(key, request), want);
    }
}

#[test]
fn requested_addresses_must_be_of_the_services_families() {
    // MetalLB's controller (service.go, allocateIPs): the requested addresses' family (ipv4, ipv6 or dual)
    // must equal the Service's (from its cluster IPs), else "does not match the ipFamily of the service".
    use Family::{V4, V6};
    use FamilyPolicy::*;
    let mut a = Allocator::new(vec![pool("dual", &["192.0.2.0/30", "2001:db8::/126"])]).unwrap();
    let asked = |ips: &[&str], families: &[Family], policy| Request {
        requested: ips.iter().map(|s| ip(s)).collect(),
        ..req(families, policy)
    };
    let cases: &[(&str, Request, Want<'_>)] = &[
        ("ns/a", asked(&["2001:db8::1"], &[V4], SingleStack), Want::Err("Family")),
        ("ns/b", asked(&["192.0.2.1"], &[V6], SingleStack), Want::Err("Family")),
        // A dual-stack Service asking for one family, or a single-stack one for both: refused too.
        ("ns/c", asked(&["192.0.2.1"], &[V4, V6], PreferDualStack), Want::Err("Family")),
        ("ns/d", asked(&["192.0.2.1", "2001:db8::1"], &[V4], PreferDualStack), Want::Err("Family")),
        ("ns/e", asked(&["2001:db8::1"], &[V6, V4], RequireDualStack), Want::Err("Family")),
        // Matching families, in any order; no ipFamilies (unknown) takes the requested addresses' families.
        ("ns/f", asked(&["192.0.2.1"], &[V4], PreferDualStack), Want::Ips(&["192.0.2.1"])),
        (
            "ns/g",
            asked(&["192.0.2.2", "2001:db8::2"], &[V6, V4], RequireDualStack),
            Want::Ips(&["192.0.2.2", "2001:db8::2"]),
        ),
        ("ns/h", asked(&["2001:db8::3"], &[], SingleStack), Want::Ips(&["2001:db8::3"])),
    ];
    for (key, request, want) in cases {
        check(key, a.allocate(key, request), want);
    }
    let err = a.allocate("ns/a", &asked(&["2001:db8::1"], &[V4], SingleStack)).unwrap_err().to_string();
    assert!(err.contains("2001:db8::1") && err.contains("ipFamilies IPv4"), "{err}");
    // A refused request changes nothing: the key keeps what it held.
    let err = a.allocate("ns/f", &asked(&["2001:db8::1"], &[V4], SingleStack)).unwrap_err();
    assert!(matches!(err, AllocError::Family(_)), "{err:?}");
    assert_eq!(a.ips("ns/f").unwrap(), [ip("192.0.2.1")]);
    assert_eq!(a.counters("dual").in_use, [2, 2]);
}
