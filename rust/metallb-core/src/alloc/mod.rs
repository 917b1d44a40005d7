//! IP address management: pools, the allocator and MetalLB's sharing rules.

mod addr;
mod allocator;
mod error;
mod free;
mod pool;
mod selector;

pub use addr::{is_buggy, Family, IpRange};
pub use allocator::{Allocator, Counters, FamilyPolicy, Port, Protocol, Request, ServiceLabels};
pub use error::{AllocError, ConfigError};
pub use pool::{validate_pools, Pool, ServiceAllocation};
pub use selector::{LabelSelector, Operator, Requirement};
