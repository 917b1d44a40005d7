//! Checks against the running kernel that need no namespace: the filter is accepted, and start() reports
//! missing interfaces and interfaces without a MAC. Skipped (with a note) without CAP_NET_RAW.

use metallb_l2::filter::RESPONDER_FILTER;
use metallb_l2::sys::PacketSocket;
use metallb_l2::{L2Error, Responder, ResponderConfig};

fn packet_socket() -> Option<PacketSocket> {
    match PacketSocket::unbound() {
        Ok(socket) => Some(socket),
        Err(err) => {
            eprintln!("skipped: no packet socket ({err}); needs CAP_NET_RAW");
            None
        }
    }
}

#[test]
fn kernel_accepts_the_filter() {
    let Some(socket) = packet_socket() else { return };
    socket.attach_filter(&RESPONDER_FILTER).expect("the kernel's BPF checker refuses the responder filter");
}

#[test]
fn start_reports_a_missing_interface() {
    if packet_socket().is_none() {
        return;
    }
    let err = Responder::start(ResponderConfig::new(vec!["nosuch-if0".into()])).err().expect("must fail");
    assert!(matches!(err, L2Error::InterfaceNotFound { ref name, .. } if name == "nosuch-if0"), "{err}");
}

#[test]
fn start_refuses_loopback_for_its_missing_mac() {
    if packet_socket().is_none() {
        return;
    }
    let err = Responder::start(ResponderConfig::new(vec!["lo".into()])).err().expect("must fail");
    assert!(matches!(err, L2Error::NoMacAddress { ref name, hw_type: 772 } if name == "lo"), "{err}");
}

#[test]
fn start_refuses_a_namespace_that_does_not_exist() {
    let mut config = ResponderConfig::new(vec!["eth0".into()]);
    config.netns = Some("metallb-no-such-ns".into());
    let err = Responder::start(config).err().expect("must fail");
    assert!(matches!(err, L2Error::Netns { .. } | L2Error::PermissionDenied { .. }), "{err}");
    let mut config = ResponderConfig::new(vec!["eth0".into()]);
    config.netns = Some("../etc".into());
    assert!(matches!(Responder::start(config), Err(L2Error::Netns { .. })));
}

#[test]
fn config_refuses_empty_and_duplicate_interfaces() {
    assert!(matches!(ResponderConfig::new(vec![]).validate(), Err(L2Error::InvalidConfig(_))));
    let twice = ResponderConfig::new(vec!["a".into(), "a".into()]);
    assert!(matches!(twice.validate(), Err(L2Error::InvalidConfig(_))));
}
