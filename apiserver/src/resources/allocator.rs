//! Reservations of service ClusterIPs and NodePorts. Every value taken is one store key
//! (`/ranges/serviceips/10.96.0.10`) created atomically, so two concurrent creates, two
//! API servers or a restart can never hand out the same value twice, and a reservation
//! names its owner so only that owner's release frees it.
//!
//! Like upstream, values picked automatically come from the upper part of the range first,
//! leaving the lower part to values people choose (`clusterIP: 10.96.0.10` for DNS).

use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;

use bytes::Bytes;
use ipnet::IpNet;
use rand::Rng;
use store::Store;

/// Random picks tried before scanning the range for a free value.
const RANDOM_TRIES: usize = 8;

/// A `--service-node-port-range` value: `30000-32767`, `30000+2767` or a single port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

/// A `--service-node-port-range` value that is no range; upstream's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unable to parse port range: {0}")]
pub struct PortRangeError(String);

impl FromStr for PortRange {
    type Err = PortRangeError;

    fn from_str(text: &str) -> Result<Self, PortRangeError> {
        let bad = || PortRangeError(text.to_string());
        let number = |s: &str| s.trim().parse::<u16>().map_err(|_| bad());
        let (first, last) = if let Some((a, b)) = text.split_once('-') {
            (number(a)?, number(b)?)
        } else if let Some((a, n)) = text.split_once('+') {
            let first = number(a)?;
            (first, first.checked_add(number(n)?).ok_or_else(bad)?)
        } else {
            let port = number(text)?;
            (port, port)
        };
        if first > last || first == 0 {
            return Err(bad());
        }
        Ok(PortRange { first, last })
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

/// Why a value could not be reserved.
#[derive(Debug)]
pub enum AllocError {
    /// The requested value is unusable; the text is upstream's reason.
    Rejected(String),
    /// Every value of the range is taken.
    Full,
    Store(store::Error),
}

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AllocError::Rejected(reason) => f.write_str(reason),
            AllocError::Full => f.write_str("range is full"),
            AllocError::Store(error) => write!(f, "{error}"),
        }
    }
}

#[derive(Debug, Clone)]
enum Range {
    Ips(IpNet),
    Ports(PortRange),
}

/// One range of reservable values kept under one store prefix.
pub struct Allocator {
    store: Arc<dyn Store>,
    prefix: &'static str,
    range: Range,
}

impl Allocator {
    /// Service ClusterIPs from `--service-cluster-ip-range`.
    pub fn ips(store: Arc<dyn Store>, network: IpNet) -> Self {
        Allocator {
            store,
            prefix: "/ranges/serviceips/",
            range: Range::Ips(network.trunc()),
        }
    }

    /// NodePorts from `--service-node-port-range`.
    pub fn ports(store: Arc<dyn Store>, range: PortRange) -> Self {
        Allocator {
            store,
            prefix: "/ranges/servicenodeports/",
            range: Range::Ports(range),
        }
    }

    /// How many values can be reserved: an IPv4 range loses its network and broadcast
    /// addresses, an IPv6 range its network address.
    fn size(&self) -> u64 {
        match &self.range {
            Range::Ips(IpNet::V4(net)) => (1u64 << (32 - net.prefix_len())).saturating_sub(2),
            Range::Ips(IpNet::V6(net)) => {
                let bits = 128 - u32::from(net.prefix_len());
                if bits >= 64 {
                    u64::MAX
                } else {
                    (1u64 << bits) - 1
                }
            }
            Range::Ports(range) => u64::from(range.last - range.first) + 1,
        }
    }

    /// Upstream's static band: `min(max(16, size/step), max)` values at the start of the
    /// range that automatic allocation uses last.
    fn static_band(&self) -> u64 {
        let (total, step, max) = match &self.range {
            Range::Ips(_) => (self.size().saturating_add(2), 16, 256),
            Range::Ports(_) => (self.size(), 32, 128),
        };
        if total <= 16 {
            0
        } else {
            (total / step).clamp(16, max)
        }
    }

    fn value(&self, index: u64) -> String {
        match &self.range {
            Range::Ips(IpNet::V4(net)) => {
                std::net::Ipv4Addr::from(u32::from(net.network()) + 1 + index as u32).to_string()
            }
            Range::Ips(IpNet::V6(net)) => {
                std::net::Ipv6Addr::from(u128::from(net.network()) + 1 + u128::from(index))
                    .to_string()
            }
            Range::Ports(range) => (u64::from(range.first) + index).to_string(),
        }
    }

    /// The index of `value` in the range, or upstream's reason it is not reservable.
    fn index(&self, value: &str) -> Result<u64, AllocError> {
        match &self.range {
            Range::Ips(net) => {
                let outside = || {
                    AllocError::Rejected(format!("the provided IP ({value}) is not in the valid range. The range of valid IPs is {net}"))
                };
                let ip: IpAddr = value.parse().map_err(|_| outside())?;
                if !net.contains(&ip) {
                    return Err(outside());
                }
                let offset = match (net, ip) {
                    (IpNet::V4(n), IpAddr::V4(ip)) => {
                        u128::from(u32::from(ip) - u32::from(n.network()))
                    }
                    (IpNet::V6(n), IpAddr::V6(ip)) => u128::from(ip) - u128::from(n.network()),
                    _ => return Err(outside()),
                };
                match offset.checked_sub(1).and_then(|i| u64::try_from(i).ok()) {
                    Some(index) if index < self.size() => Ok(index),
                    _ => Err(outside()),
                }
            }
            Range::Ports(range) => {
                let outside = || {
                    AllocError::Rejected(format!("provided port is not in the valid range. The range of valid ports is {range}"))
                };
                let port: u16 = value.parse().map_err(|_| outside())?;
                if port < range.first || port > range.last {
                    return Err(outside());
                }
                Ok(u64::from(port - range.first))
            }
        }
    }

    fn key(&self, value: &str) -> String {
        format!("{}{value}", self.prefix)
    }

    fn taken_reason(&self) -> &'static str {
        match self.range {
            Range::Ips(_) => "provided IP is already allocated",
            Range::Ports(_) => "provided port is already allocated",
        }
    }

    /// Reserves `value` (in its canonical form) for `owner`.
    pub async fn allocate(&self, value: &str, owner: &str) -> Result<String, AllocError> {
        let index = self.index(value)?;
        let value = self.value(index);
        if self.claim(&value, owner).await? {
            Ok(value)
        } else {
            Err(AllocError::Rejected(self.taken_reason().into()))
        }
    }

    /// Reserves any free value for `owner`: random picks from the upper band, then a scan
    /// of what is left (upper band first).
    pub async fn allocate_next(&self, owner: &str) -> Result<String, AllocError> {
        let size = self.size();
        let split = self.static_band().min(size);
        let bands = [(split, size), (0, split)];
        for &(low, high) in bands.iter().filter(|(low, high)| low < high) {
            for _ in 0..RANDOM_TRIES {
                let value = self.value(rand::rng().random_range(low..high));
                if self.claim(&value, owner).await? {
                    return Ok(value);
                }
            }
        }
        let taken = self.taken().await?;
        for &(low, high) in bands.iter().filter(|(low, high)| low < high) {
            let start = rand::rng().random_range(low..high);
            for index in (start..high).chain(low..start) {
                let value = self.value(index);
                if !taken.contains(&value) && self.claim(&value, owner).await? {
                    return Ok(value);
                }
            }
        }
        Err(AllocError::Full)
    }

    /// Frees `value` if `owner` holds it.
    pub async fn release(&self, value: &str, owner: &str) {
        let key = self.key(value);
        let result = match self.store.get(key.as_bytes()).await {
            Ok(Some(kv)) if kv.value == owner.as_bytes() => self
                .store
                .delete(key.as_bytes(), Some(kv.mod_revision))
                .await
                .map(|_| ()),
            Ok(_) => Ok(()),
            Err(error) => Err(error),
        };
        match result {
            Ok(()) | Err(store::Error::NotFound { .. } | store::Error::Conflict { .. }) => {}
            Err(error) => tracing::warn!(%error, key, "cannot release a service allocation"),
        }
    }

    /// Takes `value` from whoever holds it: for the `kubernetes` service, whose address is
    /// fixed and whose reservation may outlive a start that stopped half-way.
    pub async fn claim_over(&self, value: &str, owner: &str) -> Result<(), AllocError> {
        let key = self.key(value);
        loop {
            if self.claim(value, owner).await? {
                return Ok(());
            }
            let Some(kv) = self
                .store
                .get(key.as_bytes())
                .await
                .map_err(AllocError::Store)?
            else {
                continue;
            };
            match self
                .store
                .update(
                    key.as_bytes(),
                    Bytes::copy_from_slice(owner.as_bytes()),
                    kv.mod_revision,
                )
                .await
            {
                Ok(_) => return Ok(()),
                Err(store::Error::Conflict { .. } | store::Error::NotFound { .. }) => continue,
                Err(error) => return Err(AllocError::Store(error)),
            }
        }
    }

    /// Makes sure `value` is reserved: `true` if `owner` holds it (now or already), `false`
    /// if someone else does.
    pub async fn ensure(&self, value: &str, owner: &str) -> Result<bool, AllocError> {
        if self.claim(value, owner).await? {
            return Ok(true);
        }
        let current = self
            .store
            .get(self.key(value).as_bytes())
            .await
            .map_err(AllocError::Store)?;
        Ok(current.is_some_and(|kv| kv.value == owner.as_bytes()))
    }

    /// Creates the reservation key; `false` when someone holds it already.
    async fn claim(&self, value: &str, owner: &str) -> Result<bool, AllocError> {
        match self
            .store
            .create(
                self.key(value).as_bytes(),
                Bytes::copy_from_slice(owner.as_bytes()),
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(store::Error::AlreadyExists { .. }) => Ok(false),
            Err(error) => Err(AllocError::Store(error)),
        }
    }

    /// Every value reserved now.
    async fn taken(&self) -> Result<HashSet<String>, AllocError> {
        let listed = self
            .store
            .list(self.prefix.as_bytes(), store::ListOptions::default())
            .await
            .map_err(AllocError::Store)?;
        Ok(listed
            .kvs
            .iter()
            .filter_map(|kv| {
                std::str::from_utf8(&kv.key)
                    .ok()?
                    .strip_prefix(self.prefix)
                    .map(String::from)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use store::embedded::{EmbeddedConfig, EmbeddedStore};

    fn store(dir: &tempfile::TempDir) -> Arc<dyn Store> {
        Arc::new(EmbeddedStore::open(EmbeddedConfig::new(dir.path())).unwrap())
    }

    #[test]
    fn port_ranges_parse_like_upstream() {
        assert_eq!(
            "30000-32767".parse::<PortRange>(),
            Ok(PortRange {
                first: 30000,
                last: 32767
            })
        );
        assert_eq!(
            "30000+10".parse::<PortRange>(),
            Ok(PortRange {
                first: 30000,
                last: 30010
            })
        );
        assert_eq!(
            "32767-30000".parse::<PortRange>().unwrap_err().to_string(),
            "unable to parse port range: 32767-30000"
        );
        assert_eq!(
            PortRange {
                first: 30000,
                last: 32767
            }
            .to_string(),
            "30000-32767"
        );
    }

    #[tokio::test]
    async fn requested_values_are_checked_and_unique() {
        let dir = tempfile::tempdir().unwrap();
        let ips = Allocator::ips(store(&dir), "10.96.0.0/12".parse().unwrap());
        assert_eq!(ips.allocate("10.96.0.10", "a").await.unwrap(), "10.96.0.10");
        let taken = ips.allocate("10.96.0.10", "b").await.unwrap_err();
        assert_eq!(taken.to_string(), "provided IP is already allocated");
        let outside = ips.allocate("10.0.0.1", "b").await.unwrap_err();
        assert_eq!(outside.to_string(), "the provided IP (10.0.0.1) is not in the valid range. The range of valid IPs is 10.96.0.0/12");
        assert!(
            ips.allocate("10.96.0.0", "b").await.is_err(),
            "the network address is not usable"
        );
        assert!(
            ips.allocate("10.111.255.255", "b").await.is_err(),
            "the broadcast address is not usable"
        );
        ips.release("10.96.0.10", "b").await;
        assert!(
            ips.allocate("10.96.0.10", "b").await.is_err(),
            "only the owner releases"
        );
        ips.release("10.96.0.10", "a").await;
        assert_eq!(ips.allocate("10.96.0.10", "b").await.unwrap(), "10.96.0.10");

        let ports = Allocator::ports(
            store(&tempfile::tempdir().unwrap()),
            "30000-32767".parse().unwrap(),
        );
        assert_eq!(
            ports.allocate("80", "a").await.unwrap_err().to_string(),
            "provided port is not in the valid range. The range of valid ports is 30000-32767"
        );
        ports.allocate("30080", "a").await.unwrap();
        assert_eq!(
            ports.allocate("30080", "b").await.unwrap_err().to_string(),
            "provided port is already allocated"
        );
    }

    #[tokio::test]
    async fn automatic_values_prefer_the_upper_band_and_fill_the_range() {
        let dir = tempfile::tempdir().unwrap();
        let ips = Allocator::ips(store(&dir), "10.96.0.0/12".parse().unwrap());
        let ip: std::net::Ipv4Addr = ips.allocate_next("a").await.unwrap().parse().unwrap();
        assert!(
            u32::from(ip) > u32::from(std::net::Ipv4Addr::new(10, 96, 1, 0)),
            "{ip} is in the static band"
        );

        let small = Allocator::ips(
            store(&tempfile::tempdir().unwrap()),
            "10.0.0.0/29".parse().unwrap(),
        );
        let mut seen = HashSet::new();
        for _ in 0..6 {
            assert!(seen.insert(small.allocate_next("a").await.unwrap()));
        }
        assert!(matches!(
            small.allocate_next("a").await,
            Err(AllocError::Full)
        ));
        small.release("10.0.0.3", "a").await;
        assert_eq!(small.allocate_next("b").await.unwrap(), "10.0.0.3");
    }

    #[tokio::test]
    async fn concurrent_allocations_never_collide() {
        let dir = tempfile::tempdir().unwrap();
        let ports = Arc::new(Allocator::ports(
            store(&dir),
            "30000-30039".parse().unwrap(),
        ));
        let tasks: Vec<_> = (0..40)
            .map(|i| {
                let ports = ports.clone();
                tokio::spawn(
                    async move { ports.allocate_next(&format!("owner-{i}")).await.unwrap() },
                )
            })
            .collect();
        let mut seen = HashSet::new();
        for task in tasks {
            assert!(seen.insert(task.await.unwrap()));
        }
        assert_eq!(seen.len(), 40);
        assert!(matches!(
            ports.allocate_next("late").await,
            Err(AllocError::Full)
        ));
    }

    #[tokio::test]
    async fn claim_over_takes_a_stale_reservation() {
        let dir = tempfile::tempdir().unwrap();
        let ips = Allocator::ips(store(&dir), "10.96.0.0/12".parse().unwrap());
        ips.allocate("10.96.0.1", "stale").await.unwrap();
        ips.claim_over("10.96.0.1", "kubernetes").await.unwrap();
        ips.release("10.96.0.1", "stale").await;
        assert!(ips.allocate("10.96.0.1", "x").await.is_err());
        ips.release("10.96.0.1", "kubernetes").await;
        ips.allocate("10.96.0.1", "x").await.unwrap();
    }
}
