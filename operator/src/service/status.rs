//! `status.loadBalancer`: what the operator writes once a Service has its addresses, and what it
//! reads back on start-up to restore the allocator before allocating anything new.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::{LoadBalancerIngress, LoadBalancerStatus, Service};

/// `ipMode: VIP`: traffic reaches the node with the load-balancer address as its destination
/// (the speaker answers ARP/NDP for it), so kube-proxy may route in-cluster traffic to the
/// address directly instead of sending it out to a proxy.
pub const IP_MODE_VIP: &str = "VIP";

/// The status that shows `addresses` in `kubectl get service` (EXTERNAL-IP): one ingress per
/// address, in the order given. `ingress` is always present, so the status for no addresses
/// clears a stale list when patched.
pub fn load_balancer_status(addresses: &[IpAddr]) -> LoadBalancerStatus {
    let ingress = addresses
        .iter()
        .map(|address| LoadBalancerIngress {
            ip: Some(address.to_string()),
            ip_mode: Some(IP_MODE_VIP.to_owned()),
            ..LoadBalancerIngress::default()
        })
        .collect();
    LoadBalancerStatus { ingress: Some(ingress) }
}

/// The addresses `status.loadBalancer.ingress` holds, in order, each once. Hostname entries and
/// entries whose `ip` does not parse are skipped: they cannot be ours, and one bad entry must not
/// cost the Service the addresses it does hold. Whoever wrote the status (ironlb, or MetalLB
/// before a migration) does not matter: the allocator decides whether the addresses may be kept.
pub fn assigned_addresses(service: &Service) -> Vec<IpAddr> {
    let ingress = service.status.as_ref().and_then(|status| status.load_balancer.as_ref()?.ingress.as_ref());
    let mut addresses = Vec::new();
    for address in ingress.into_iter().flatten().filter_map(|entry| entry.ip.as_deref()?.trim().parse().ok()) {
        if !addresses.contains(&address) {
            addresses.push(address);
        }
    }
    addresses
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(text: &str) -> IpAddr {
        text.parse().expect("test address")
    }

    fn service(yaml: &str) -> Service {
        serde_yaml::from_str(yaml).expect("valid Service fixture")
    }

    #[test]
    fn status_has_one_vip_ingress_per_address() {
        let status = load_balancer_status(&[address("192.168.2.10"), address("fd00::a")]);
        let ingress = status.ingress.expect("ingress");
        let shown: Vec<(Option<&str>, Option<&str>)> =
            ingress.iter().map(|entry| (entry.ip.as_deref(), entry.ip_mode.as_deref())).collect();
        assert_eq!(shown, vec![(Some("192.168.2.10"), Some("VIP")), (Some("fd00::a"), Some("VIP"))]);
        assert!(ingress.iter().all(|entry| entry.hostname.is_none() && entry.ports.is_none()));
    }

    #[test]
    fn status_without_addresses_clears_the_ingress_list() {
        assert_eq!(load_balancer_status(&[]).ingress, Some(Vec::new()));
    }

    #[test]
    fn assigned_addresses_read_back_every_ingress_ip_in_order() {
        let service = service(
            "
            metadata: {name: web, namespace: shop}
            status:
              loadBalancer:
                ingress:
                  - {ip: fd00::a, ipMode: VIP}
                  - {ip: 192.168.2.10}
            ",
        );
        assert_eq!(assigned_addresses(&service), vec![address("fd00::a"), address("192.168.2.10")]);
    }

    #[test]
    fn assigned_addresses_ignore_hostnames_and_unparsable_entries() {
        let service = service(
            "
            metadata: {name: web, namespace: shop}
            status:
              loadBalancer:
                ingress:
                  - {hostname: lb.example.com}
                  - {ip: not-an-ip}
                  - {ip: 192.168.2.10}
                  - {ip: 192.168.2.10}
            ",
        );
        assert_eq!(assigned_addresses(&service), vec![address("192.168.2.10")]);
    }

    #[test]
    fn service_without_status_holds_nothing() {
        assert_eq!(assigned_addresses(&service("metadata: {name: web, namespace: shop}")), Vec::<IpAddr>::new());
    }

    #[test]
    fn written_status_reads_back_as_the_same_addresses() {
        let addresses = vec![address("10.0.0.1"), address("2001:db8::1")];
        let service = Service {
            status: Some(k8s_openapi::api::core::v1::ServiceStatus {
                load_balancer: Some(load_balancer_status(&addresses)),
                ..Default::default()
            }),
            ..Service::default()
        };
        assert_eq!(assigned_addresses(&service), addresses);
    }
}
