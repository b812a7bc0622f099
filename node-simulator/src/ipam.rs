//! Addresses: each node's pod CIDR carved from the cluster CIDR by node index, and pod IPs
//! handed out from a node's CIDR (skipping the network address, the gateway `.1` and the
//! broadcast address) and returned when the pod goes away.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// Why a node gets no pod CIDR: the flags leave no room for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("--node-cidr-mask-size {prefix} does not fit in --cluster-cidr {cluster}")]
    MaskSize { prefix: u8, cluster: Ipv4Net },
    #[error("--cluster-cidr {cluster} has room for {available} /{prefix} node CIDRs, node #{index} needs more")]
    Exhausted {
        cluster: Ipv4Net,
        available: usize,
        prefix: u8,
        index: usize,
    },
}

/// The `index`-th subnet of `prefix` bits in `cluster`, or why there is none.
pub fn node_cidr(cluster: Ipv4Net, prefix: u8, index: usize) -> Result<Ipv4Net, CidrError> {
    if prefix < cluster.prefix_len() || prefix > 30 {
        return Err(CidrError::MaskSize { prefix, cluster });
    }
    let available = 1usize << (prefix - cluster.prefix_len());
    if index >= available {
        return Err(CidrError::Exhausted {
            cluster,
            available,
            prefix,
            index,
        });
    }
    let base = u32::from(cluster.network()) + ((index as u32) << (32 - prefix));
    Ok(Ipv4Net::new(Ipv4Addr::from(base), prefix).expect("prefix checked to be at most 30"))
}

/// Pod IPs of one node.
#[derive(Debug)]
pub struct Ipam {
    cidr: Ipv4Net,
    /// Offsets from the network address in use.
    used: BTreeSet<u32>,
}

impl Ipam {
    pub fn new(cidr: Ipv4Net) -> Ipam {
        Ipam {
            cidr,
            used: BTreeSet::new(),
        }
    }

    pub fn cidr(&self) -> Ipv4Net {
        self.cidr
    }

    fn size(&self) -> u32 {
        1u32 << (32 - self.cidr.prefix_len())
    }

    pub fn allocate(&mut self) -> Option<Ipv4Addr> {
        let offset = (2..self.size() - 1).find(|o| !self.used.contains(o))?;
        self.used.insert(offset);
        Some(Ipv4Addr::from(u32::from(self.cidr.network()) + offset))
    }

    /// Marks an address found on an existing pod as taken (after a restart).
    pub fn reserve(&mut self, ip: Ipv4Addr) {
        if self.cidr.contains(&ip) {
            self.used
                .insert(u32::from(ip) - u32::from(self.cidr.network()));
        }
    }

    pub fn release(&mut self, ip: Ipv4Addr) {
        if self.cidr.contains(&ip) {
            self.used
                .remove(&(u32::from(ip) - u32::from(self.cidr.network())));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_cidrs_are_consecutive_subnets() {
        let cluster: Ipv4Net = "10.244.0.0/16".parse().unwrap();
        assert_eq!(
            node_cidr(cluster, 24, 0).unwrap().to_string(),
            "10.244.0.0/24"
        );
        assert_eq!(
            node_cidr(cluster, 24, 3).unwrap().to_string(),
            "10.244.3.0/24"
        );
        assert!(matches!(
            node_cidr(cluster, 24, 256),
            Err(CidrError::Exhausted { available: 256, .. })
        ));
        assert!(matches!(
            node_cidr(cluster, 8, 0),
            Err(CidrError::MaskSize { prefix: 8, .. })
        ));
    }

    #[test]
    fn pod_ips_skip_reserved_addresses_and_are_reused() {
        let mut ipam = Ipam::new("10.244.1.0/30".parse().unwrap());
        assert_eq!(ipam.allocate(), Some("10.244.1.2".parse().unwrap()));
        assert_eq!(ipam.allocate(), None, "a /30 has one usable pod address");
        ipam.release("10.244.1.2".parse().unwrap());
        ipam.reserve("10.244.1.2".parse().unwrap());
        assert_eq!(ipam.allocate(), None);
    }
}
