//! Pure decisions and data structures of metallb-py.
//!
//! Nothing here does I/O, knows about Python or talks to Kubernetes: the bindings (`metallb-py`) and the
//! Python layer put the edges around it.
#![forbid(unsafe_code)]

pub mod alloc;
pub mod bfd;
pub mod bgp;
pub mod l2;
pub mod membership;
pub mod packet;
