//! Python classes over `metallb_core::alloc`: Port, LabelSelector, ServiceAllocation, Pool, Allocator.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use metallb_core::alloc::{
    self as core, Allocator as CoreAllocator, Family, FamilyPolicy, LabelSelector as CoreSelector, Pool as CorePool,
    Protocol, Request, ServiceAllocation as CoreServiceAllocation, ServiceLabels,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use crate::errors::{alloc_error, config_error};
use crate::repr::{py_bool, py_str};

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Port>()?;
    m.add_class::<LabelSelector>()?;
    m.add_class::<ServiceAllocation>()?;
    m.add_class::<Pool>()?;
    m.add_class::<Allocator>()?;
    m.add_function(wrap_pyfunction!(validate_pools, m)?)?;
    Ok(())
}

/// Accepts `"192.0.2.1"` or an `ipaddress` object.
fn extract_ip(value: &Bound<'_, PyAny>) -> PyResult<IpAddr> {
    if let Ok(text) = value.cast::<PyString>() {
        let text = text.to_str()?;
        return text.trim().parse().map_err(|_| PyValueError::new_err(format!("{text:?} is not an IP address")));
    }
    value.extract::<IpAddr>().map_err(|_| PyValueError::new_err(format!("{value} is not an IP address")))
}

fn extract_ips(values: &[Bound<'_, PyAny>]) -> PyResult<Vec<IpAddr>> {
    values.iter().map(extract_ip).collect()
}

#[pyclass(module = "metallb_py._core", frozen, eq, hash, str = "{0}", from_py_object)]
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Port(core::Port);

#[pymethods]
impl Port {
    #[new]
    #[pyo3(signature = (port, protocol = "TCP"))]
    fn new(port: i64, protocol: &str) -> PyResult<Self> {
        let number = u16::try_from(port)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| PyValueError::new_err(format!("port {port} is out of range 1-65535")))?;
        let protocol = Protocol::parse(protocol)
            .ok_or_else(|| PyValueError::new_err(format!("protocol {protocol:?} is not TCP, UDP or SCTP")))?;
        Ok(Port(core::Port { port: number, protocol }))
    }

    #[getter]
    fn port(&self) -> u16 {
        self.0.port
    }

    #[getter]
    fn protocol(&self) -> &'static str {
        self.0.protocol.as_str()
    }

    fn __repr__(&self) -> String {
        format!("Port(port={}, protocol={})", self.0.port, py_str(self.0.protocol.as_str()))
    }
}

#[pyclass(module = "metallb_py._core", frozen, eq, hash, from_py_object)]
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct LabelSelector(CoreSelector);

#[pymethods]
impl LabelSelector {
    #[new]
    #[pyo3(signature = (match_labels = None, match_expressions = Vec::new(), *, path = "selector"))]
    fn new(
        py: Python<'_>,
        match_labels: Option<BTreeMap<String, String>>,
        match_expressions: Vec<(String, String, Vec<String>)>,
        path: &str,
    ) -> PyResult<Self> {
        CoreSelector::new(path, match_labels.unwrap_or_default(), match_expressions)
            .map(LabelSelector)
            .map_err(|e| config_error(py, e))
    }

    #[getter]
    fn match_labels(&self) -> BTreeMap<String, String> {
        self.0.match_labels.clone()
    }

    #[getter]
    fn match_expressions(&self) -> Vec<(String, String, Vec<String>)> {
        self.0.match_expressions.iter().map(|r| (r.key.clone(), r.operator.to_string(), r.values.clone())).collect()
    }

    fn matches(&self, labels: HashMap<String, String>) -> bool {
        self.0.matches(&labels)
    }

    fn __repr__(&self) -> String {
        format!(
            "LabelSelector(match_labels={:?}, match_expressions={:?})",
            self.0.match_labels,
            self.match_expressions()
        )
    }
}

#[pyclass(module = "metallb_py._core", frozen, eq, hash, from_py_object)]
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ServiceAllocation(CoreServiceAllocation);

#[pymethods]
impl ServiceAllocation {
    #[new]
    #[pyo3(signature = (priority = None, namespaces = Vec::new(), namespace_selectors = Vec::new(), service_selectors = Vec::new()))]
    fn new(
        priority: Option<i64>,
        namespaces: Vec<String>,
        namespace_selectors: Vec<LabelSelector>,
        service_selectors: Vec<LabelSelector>,
    ) -> Self {
        ServiceAllocation(CoreServiceAllocation {
            priority,
            namespaces,
            namespace_selectors: namespace_selectors.into_iter().map(|s| s.0).collect(),
            service_selectors: service_selectors.into_iter().map(|s| s.0).collect(),
        })
    }

    #[getter]
    fn priority(&self) -> Option<i64> {
        self.0.priority
    }

    #[getter]
    fn namespaces(&self) -> Vec<String> {
        self.0.namespaces.clone()
    }

    #[getter]
    fn namespace_selectors(&self) -> Vec<LabelSelector> {
        self.0.namespace_selectors.iter().cloned().map(LabelSelector).collect()
    }

    #[getter]
    fn service_selectors(&self) -> Vec<LabelSelector> {
        self.0.service_selectors.iter().cloned().map(LabelSelector).collect()
    }

    fn matches(
        &self,
        namespace: &str,
        namespace_labels: HashMap<String, String>,
        service_labels: HashMap<String, String>,
    ) -> bool {
        self.0.matches(namespace, &namespace_labels, &service_labels)
    }

    fn __repr__(&self) -> String {
        format!(
            "ServiceAllocation(priority={:?}, namespaces={:?}, namespace_selectors=[{} selectors], \
             service_selectors=[{} selectors])",
            self.0.priority,
            self.0.namespaces,
            self.0.namespace_selectors.len(),
            self.0.service_selectors.len()
        )
    }
}

#[pyclass(module = "metallb_py._core", frozen, eq, hash, from_py_object)]
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Pool(CorePool);

#[pymethods]
impl Pool {
    #[new]
    #[pyo3(signature = (name, addresses, *, auto_assign = true, avoid_buggy_ips = false, service_allocation = None))]
    fn new(
        py: Python<'_>,
        name: String,
        addresses: Vec<String>,
        auto_assign: bool,
        avoid_buggy_ips: bool,
        service_allocation: Option<ServiceAllocation>,
    ) -> PyResult<Self> {
        CorePool::new(name, addresses, auto_assign, avoid_buggy_ips, service_allocation.map(|s| s.0))
            .map(Pool)
            .map_err(|e| config_error(py, e))
    }

    #[getter]
    fn name(&self) -> &str {
        &self.0.name
    }

    #[getter]
    fn addresses(&self) -> Vec<String> {
        self.0.addresses.clone()
    }

    #[getter]
    fn auto_assign(&self) -> bool {
        self.0.auto_assign
    }

    #[getter]
    fn avoid_buggy_ips(&self) -> bool {
        self.0.avoid_buggy_ips
    }

    #[getter]
    fn service_allocation(&self) -> Option<ServiceAllocation> {
        self.0.service_allocation.clone().map(ServiceAllocation)
    }

    #[getter]
    fn families(&self) -> Vec<String> {
        self.0.families().iter().map(Family::to_string).collect()
    }

    /// Each address entry as its (first, last) address, in order.
    fn ranges(&self) -> Vec<(IpAddr, IpAddr)> {
        self.0.ranges.iter().map(|r| (r.first(), r.last())).collect()
    }

    fn contains(&self, ip: &Bound<'_, PyAny>) -> PyResult<bool> {
        Ok(self.0.range_of(extract_ip(ip)?).is_some())
    }

    fn __repr__(&self) -> String {
        let addresses: Vec<String> = self.0.addresses.iter().map(|a| py_str(a)).collect();
        format!(
            "Pool({}, [{}], auto_assign={}, avoid_buggy_ips={})",
            py_str(&self.0.name),
            addresses.join(", "),
            py_bool(self.0.auto_assign),
            py_bool(self.0.avoid_buggy_ips),
        )
    }
}

fn core_pools(pools: Vec<Pool>) -> Vec<CorePool> {
    pools.into_iter().map(|p| p.0).collect()
}

/// Raises ConfigError for duplicate names or any address in two ranges.
#[pyfunction]
fn validate_pools(py: Python<'_>, pools: Vec<Pool>) -> PyResult<()> {
    core::validate_pools(&core_pools(pools)).map_err(|e| config_error(py, e))
}

fn parse_family(name: &str) -> PyResult<Family> {
    Family::parse(name).ok_or_else(|| {
        alloc_error(core::AllocError::Family(format!("unknown IP family {name:?}; expected IPv4 or IPv6")))
    })
}

#[pyclass(module = "metallb_py._core")]
pub struct Allocator(CoreAllocator);

#[pymethods]
impl Allocator {
    #[new]
    #[pyo3(signature = (pools = Vec::new()))]
    fn new(py: Python<'_>, pools: Vec<Pool>) -> PyResult<Self> {
        CoreAllocator::new(core_pools(pools)).map(Allocator).map_err(|e| config_error(py, e))
    }

    #[pyo3(signature = (key, *, ports = Vec::new(), pool = None, requested = Vec::new(), sharing_key = None,
        backend_key = String::new(), ip_families = Vec::new(), ip_family_policy = "SingleStack", labels = None,
        namespace_labels = None))]
    #[allow(clippy::too_many_arguments)]
    fn allocate(
        &mut self,
        key: &str,
        ports: Vec<PyRef<'_, Port>>,
        pool: Option<String>,
        requested: Vec<Bound<'_, PyAny>>,
        sharing_key: Option<String>,
        backend_key: String,
        ip_families: Vec<String>,
        ip_family_policy: &str,
        labels: Option<HashMap<String, String>>,
        namespace_labels: Option<HashMap<String, String>>,
    ) -> PyResult<Vec<IpAddr>> {
        let family_policy = FamilyPolicy::parse(ip_family_policy).ok_or_else(|| {
            alloc_error(core::AllocError::Family(format!(
                "unknown ipFamilyPolicy {ip_family_policy:?}; expected SingleStack, PreferDualStack or RequireDualStack"
            )))
        })?;
        let request = Request {
            pool,
            requested: extract_ips(&requested)?,
            ports: ports.iter().map(|p| p.0).collect(),
            sharing_key,
            backend_key,
            ip_families: ip_families.iter().map(|f| parse_family(f)).collect::<PyResult<_>>()?,
            family_policy,
            labels: labels.unwrap_or_default(),
            namespace_labels: namespace_labels.unwrap_or_default(),
        };
        self.0.allocate(key, &request).map_err(alloc_error)
    }

    /// Records that `key` holds `ips`. Given the Service's `labels` or its `namespace_labels`, the pool's
    /// serviceAllocation must also serve the Service, as MetalLB's Assign checks; without either it is not
    /// looked at (restoring addresses for a Service that cannot be read).
    #[pyo3(signature = (key, ips, *, ports = Vec::new(), sharing_key = None, backend_key = "", labels = None,
        namespace_labels = None))]
    #[allow(clippy::too_many_arguments)]
    fn assign(
        &mut self,
        key: &str,
        ips: Vec<Bound<'_, PyAny>>,
        ports: Vec<PyRef<'_, Port>>,
        sharing_key: Option<String>,
        backend_key: &str,
        labels: Option<HashMap<String, String>>,
        namespace_labels: Option<HashMap<String, String>>,
    ) -> PyResult<String> {
        let ips = extract_ips(&ips)?;
        let ports: Vec<core::Port> = ports.iter().map(|p| p.0).collect();
        let result = if labels.is_none() && namespace_labels.is_none() {
            self.0.assign(key, &ips, &ports, sharing_key, backend_key)
        } else {
            let served =
                ServiceLabels { service: labels.unwrap_or_default(), namespace: namespace_labels.unwrap_or_default() };
            self.0.assign_served(key, &ips, &ports, sharing_key, backend_key, &served)
        };
        result.map_err(alloc_error)
    }

    fn release(&mut self, key: &str) -> bool {
        self.0.release(key)
    }

    fn ips(&self, key: &str) -> Vec<IpAddr> {
        self.0.ips(key).map(<[IpAddr]>::to_vec).unwrap_or_default()
    }

    fn pool_of(&self, key: &str) -> Option<String> {
        self.0.pool_of(key).map(str::to_string)
    }

    fn pool_for_ip(&self, ip: &Bound<'_, PyAny>) -> PyResult<Option<String>> {
        Ok(self.0.pool_for_ip(extract_ip(ip)?).map(str::to_string))
    }

    fn holders(&self, ip: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
        Ok(self.0.holders(extract_ip(ip)?).to_vec())
    }

    /// Applies new pools; returns the keys whose addresses are no longer allowed (now released).
    fn set_pools(&mut self, py: Python<'_>, pools: Vec<Pool>) -> PyResult<Vec<String>> {
        self.0.set_pools(core_pools(pools)).map_err(|e| config_error(py, e))
    }

    fn pools(&self) -> Vec<Pool> {
        self.0.pools().cloned().map(Pool).collect()
    }

    fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.0.keys().map(str::to_string).collect();
        keys.sort();
        keys
    }

    /// Exact address counts of a pool as Python ints: total, in_use, available, and the same per family. All
    /// zero for a pool that is not configured (removed, or never was), as in MetalLB.
    fn counters<'py>(&self, py: Python<'py>, pool: &str) -> PyResult<Bound<'py, PyDict>> {
        let c = self.0.counters(pool);
        let dict = PyDict::new(py);
        let (v4, v6) = (Family::V4.index(), Family::V6.index());
        let total = c.total[v4].saturating_add(c.total[v6]);
        let in_use = u128::from(c.in_use[v4] + c.in_use[v6]);
        dict.set_item("total", total)?;
        dict.set_item("in_use", in_use)?;
        dict.set_item("available", total - in_use)?;
        dict.set_item("total_ipv4", c.total[v4])?;
        dict.set_item("in_use_ipv4", c.in_use[v4])?;
        dict.set_item("total_ipv6", c.total[v6])?;
        dict.set_item("in_use_ipv6", c.in_use[v6])?;
        Ok(dict)
    }

    /// MetalLB's pool counters, as the IPAddressPool status fields (int64): assignedIPv4, assignedIPv6,
    /// availableIPv4, availableIPv6. A range of 2^62 addresses or more makes its family's capacity 2^63-1, as
    /// MetalLB counts it; all zero for a pool that is not configured.
    fn pool_status<'py>(&self, py: Python<'py>, pool: &str) -> PyResult<Bound<'py, PyDict>> {
        let c = self.0.counters(pool);
        let dict = PyDict::new(py);
        dict.set_item("assignedIPv4", c.assigned(Family::V4))?;
        dict.set_item("assignedIPv6", c.assigned(Family::V6))?;
        dict.set_item("availableIPv4", c.available(Family::V4))?;
        dict.set_item("availableIPv6", c.available(Family::V6))?;
        Ok(dict)
    }

    fn __len__(&self) -> usize {
        self.0.len()
    }

    fn __contains__(&self, key: &Bound<'_, PyAny>) -> bool {
        key.extract::<&str>().is_ok_and(|k| self.0.ips(k).is_some())
    }
}
