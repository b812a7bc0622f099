//! Endpoints (`v1`): the addresses behind a service, one object per service, written by the
//! endpoints controller (and by the API server for the `kubernetes` service).

use std::net::IpAddr;

use k8s_openapi::api::core::v1::{EndpointAddress, EndpointPort, Endpoints};
use serde_json::Value;

use super::podspec::PORT_RANGE;
use crate::error::Cause;
use crate::registry::table::{age, Cell, Column};
use crate::registry::{validation, Description, NameRule, Strategy};

pub struct EndpointsStrategy;

const ENDPOINTS: &str = "The set of all endpoints is the union of all subsets. Addresses are placed into subsets according to the IPs they share. A single address with multiple ports, some of which are ready and some of which are not (because they come from different containers) will result in the address being displayed in different subsets for the different ports. No address will appear in both Addresses and NotReadyAddresses in the same subset. Sets of addresses and ports that comprise a service.";

impl Strategy for EndpointsStrategy {
    type Object = Endpoints;

    fn describe(&self) -> Description {
        Description {
            short_names: &["ep"],
            storage_path: Some("services/endpoints"),
            create_on_update: true,
            deprecation: Some(
                "v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice",
            ),
            ..Description::default()
        }
    }

    fn default_fields(&self, endpoints: &mut Endpoints) {
        for port in endpoints
            .subsets
            .iter_mut()
            .flatten()
            .flat_map(|s| s.ports.iter_mut().flatten())
        {
            port.protocol.get_or_insert_with(|| "TCP".into());
        }
    }

    /// Upstream's `validateEndpointSubsets`.
    fn validate(&self, endpoints: &Endpoints) -> Vec<Cause> {
        let mut causes = Vec::new();
        for (i, subset) in endpoints.subsets.iter().flatten().enumerate() {
            let path = format!("subsets[{i}]");
            let addresses = subset.addresses.as_deref().unwrap_or_default();
            let not_ready = subset.not_ready_addresses.as_deref().unwrap_or_default();
            if addresses.is_empty() && not_ready.is_empty() {
                causes.push(Cause::required_because(
                    path.clone(),
                    "must specify `addresses` or `notReadyAddresses`",
                ));
            }
            for (j, address) in addresses.iter().enumerate() {
                causes.extend(validate_address(address, &format!("{path}.addresses[{j}]")));
            }
            for (j, address) in not_ready.iter().enumerate() {
                causes.extend(validate_address(
                    address,
                    &format!("{path}.notReadyAddresses[{j}]"),
                ));
            }
            let ports = subset.ports.as_deref().unwrap_or_default();
            for (j, port) in ports.iter().enumerate() {
                causes.extend(validate_port(
                    port,
                    ports.len() > 1,
                    &format!("{path}.ports[{j}]"),
                ));
            }
        }
        causes
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::name(),
            Column::new("Endpoints", "string", ENDPOINTS),
            Column::age(),
        ]
    }

    fn cells(&self, endpoints: &Endpoints) -> Vec<Cell> {
        vec![
            Cell::from(endpoints.metadata.name.clone().unwrap_or_default()),
            Cell::from(endpoints_cell(endpoints)),
            age(&endpoints.metadata),
        ]
    }
}

fn validate_address(address: &EndpointAddress, path: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    match address.ip.parse::<IpAddr>() {
        Err(_) => causes.push(Cause::invalid(
            format!("{path}.ip"),
            &Value::from(address.ip.as_str()),
            "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
        )),
        Ok(ip) => {
            causes.extend(special_ip_error(&ip).map(|e| {
                Cause::invalid(format!("{path}.ip"), &Value::from(address.ip.as_str()), e)
            }))
        }
    }
    if let Some(hostname) = address.hostname.as_deref().filter(|h| !h.is_empty()) {
        for error in validation::name_errors(hostname, NameRule::Label) {
            causes.push(Cause::invalid(
                format!("{path}.hostname"),
                &Value::from(hostname),
                error,
            ));
        }
    }
    if let Some(node) = address.node_name.as_deref().filter(|n| !n.is_empty()) {
        for error in validation::name_errors(node, NameRule::Subdomain) {
            causes.push(Cause::invalid(
                format!("{path}.nodeName"),
                &Value::from(node),
                error,
            ));
        }
    }
    causes
}

/// Upstream's `ValidateNonSpecialIP`: endpoints must be reachable from other nodes.
pub fn special_ip_error(ip: &IpAddr) -> Option<&'static str> {
    let link_local_multicast = match ip {
        IpAddr::V4(v4) => v4.octets()[..3] == [224, 0, 0],
        IpAddr::V6(v6) => v6.segments()[0] & 0xff0f == 0xff02,
    };
    let link_local = match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.segments()[0] & 0xffc0 == 0xfe80,
    };
    if ip.is_unspecified() {
        Some(if ip.is_ipv4() {
            "may not be unspecified (0.0.0.0)"
        } else {
            "may not be unspecified (::)"
        })
    } else if ip.is_loopback() {
        Some("may not be in the loopback range (127.0.0.0/8, ::1/128)")
    } else if link_local {
        Some("may not be in the link-local range (169.254.0.0/16, fe80::/10)")
    } else if link_local_multicast {
        Some("may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)")
    } else {
        None
    }
}

fn validate_port(port: &EndpointPort, name_required: bool, path: &str) -> Vec<Cause> {
    let mut causes = validation::port_name(port.name.as_deref().unwrap_or(""), name_required, path);
    if !(1..=65535).contains(&port.port) {
        causes.push(Cause::invalid(
            format!("{path}.port"),
            &Value::from(port.port),
            PORT_RANGE,
        ));
    }
    match port.protocol.as_deref().unwrap_or("") {
        "" => causes.push(Cause::required(format!("{path}.protocol"))),
        "SCTP" | "TCP" | "UDP" => {}
        other => causes.push(Cause::unsupported(
            format!("{path}.protocol"),
            &Value::from(other),
            &["SCTP", "TCP", "UDP"],
        )),
    }
    causes
}

/// Upstream's `formatEndpoints`: up to three ready `ip:port` pairs (bare IPs for a subset
/// without ports), then `+ N more...`.
pub fn endpoints_cell(endpoints: &Endpoints) -> String {
    const MAX: usize = 3;
    let subsets = endpoints.subsets.as_deref().unwrap_or_default();
    if subsets.is_empty() {
        return "<none>".into();
    }
    let mut list = Vec::new();
    let mut count = 0;
    for subset in subsets {
        let addresses = subset.addresses.as_deref().unwrap_or_default();
        let ports = subset.ports.as_deref().unwrap_or_default();
        if ports.is_empty() {
            count += addresses.len();
            list.extend(addresses.iter().map(|a| a.ip.clone()));
            continue;
        }
        for port in ports {
            count += addresses.len();
            list.extend(addresses.iter().map(|a| match a.ip.parse::<IpAddr>() {
                Ok(IpAddr::V6(_)) => format!("[{}]:{}", a.ip, port.port),
                _ => format!("{}:{}", a.ip, port.port),
            }));
        }
    }
    let more = list.len() > MAX;
    list.truncate(MAX);
    let text = list.join(",");
    if more {
        format!("{text} + {} more...", count - MAX)
    } else if text.is_empty() {
        "<none>".into()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn endpoints(subsets: Value) -> Endpoints {
        serde_json::from_value(json!({"metadata": {"name": "web"}, "subsets": subsets})).unwrap()
    }

    #[test]
    fn cells_list_three_then_count_the_rest() {
        let four = endpoints(json!([{
            "addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}, {"ip": "10.0.0.3"}, {"ip": "10.0.0.4"}],
            "ports": [{"port": 80}]
        }]));
        assert_eq!(
            endpoints_cell(&four),
            "10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 1 more..."
        );
        let headless = endpoints(json!([{"addresses": [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}]}]));
        assert_eq!(endpoints_cell(&headless), "10.0.0.1,fd00::1");
        let v6 = endpoints(json!([{"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 443}]}]));
        assert_eq!(endpoints_cell(&v6), "[fd00::1]:443");
        assert_eq!(endpoints_cell(&endpoints(json!([]))), "<none>");
        let not_ready = endpoints(
            json!([{"notReadyAddresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}]}]),
        );
        assert_eq!(endpoints_cell(&not_ready), "<none>");
    }

    #[test]
    fn validation_and_defaults() {
        let mut ep = endpoints(
            json!([{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"port": 80}, {"port": 0}]}, {}]),
        );
        EndpointsStrategy.default_fields(&mut ep);
        assert_eq!(
            ep.subsets.as_ref().unwrap()[0].ports.as_ref().unwrap()[0]
                .protocol
                .as_deref(),
            Some("TCP")
        );
        let lines: Vec<String> = EndpointsStrategy
            .validate(&ep)
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        assert_eq!(
            lines,
            [
                r#"subsets[0].addresses[0].ip: Invalid value: "127.0.0.1": may not be in the loopback range (127.0.0.0/8, ::1/128)"#,
                "subsets[0].ports[0].name: Required value",
                "subsets[0].ports[1].name: Required value",
                "subsets[0].ports[1].port: Invalid value: 0: must be between 1 and 65535, inclusive",
                "subsets[1]: Required value: must specify `addresses` or `notReadyAddresses`",
            ]
        );
    }
}
