//! Tests on a real link (see `crate::testlab`): the kernel's filtering, the sockets' binding and
//! the multicast joins, exercised for real between two throwaway namespaces.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use super::{ArpSocket, NdpSocket, link};
use crate::packet::{self, ArpOperation, NdpSender, Packet};
use crate::testlab::{Lab, MAC_A, MAC_B, SPEAKER_MAC, VIP4, VIP6, installed, run};

/// Frames received on eth0 of `ns`, as the interface's counter has them.
fn rx_packets(ns: &str) -> u64 {
    let output = run("ip", &["netns", "exec", ns, "cat", "/sys/class/net/eth0/statistics/rx_packets"]);
    String::from_utf8_lossy(&output.stdout).trim().parse().expect("counter")
}

/// Everything the socket delivers until it stays quiet for `quiet`.
async fn drain<F, Fut>(recv: F, quiet: Duration) -> Vec<Vec<u8>>
where
    F: Fn(Vec<u8>) -> Fut,
    Fut: Future<Output = (Vec<u8>, std::io::Result<usize>)>,
{
    let mut frames = Vec::new();
    loop {
        match tokio::time::timeout(quiet, recv(vec![0; 2048])).await {
            Ok((buf, result)) => {
                let len = result.expect("recv");
                frames.push(buf[..len].to_vec());
            }
            Err(_elapsed) => return frames,
        }
    }
}

#[test]
fn interfaces_inside_a_namespace_list_the_veth_eth0_with_its_mac_and_addresses() {
    let Some(lab) = Lab::new() else { return };
    let interfaces = lab.in_a(async { link::interfaces().expect("interfaces") });
    let eth0 = interfaces.iter().find(|interface| interface.name == "eth0").expect("eth0");
    assert_eq!(eth0.mac, Some(MAC_A));
    assert!(eth0.flags.up && eth0.flags.broadcast && eth0.flags.lower_up, "{eth0:?}");
    let addresses: Vec<_> = eth0.addresses.iter().map(|a| (a.address, a.prefix_len)).collect();
    assert_eq!(addresses, [(IpAddr::V4(Ipv4Addr::new(192, 168, 77, 1)), 24), ("fd77::1".parse().expect("ip"), 64)]);
    // A veth, but named like a NIC: in the lab it is the node's uplink, so it stays a default.
    assert_eq!(eth0.default_exclusion(), None);
    assert!(eth0.has_subnet_for(IpAddr::V4(VIP4)) && eth0.has_subnet_for(IpAddr::V6(VIP6)));
    let lo = interfaces.iter().find(|interface| interface.name == "lo").expect("lo");
    assert_eq!(lo.default_exclusion(), Some(link::Exclusion::Loopback));
}

#[test]
fn arp_socket_sees_only_arp_and_its_reply_answers_arping() {
    let Some(lab) = Lab::new() else { return };
    if !installed("arping") {
        return;
    }
    let (a, b) = (lab.a.clone(), lab.b.clone());
    lab.in_a(async move {
        let eth0 = link::interface_by_name("eth0").expect("interfaces").expect("eth0");
        let socket = std::sync::Arc::new(ArpSocket::open(eth0.index).expect("open ArpSocket"));
        let recv = |mut buf: Vec<u8>| {
            let socket = socket.clone();
            async move {
                let result = socket.recv(&mut buf).await;
                (buf, result)
            }
        };

        // IPv4 that is not ARP: 5 pings (and their replies, outgoing) and 5 UDP datagrams.
        let before = rx_packets(&a);
        run("ip", &["netns", "exec", &b, "ping", "-c", "5", "-i", "0.2", "-W", "1", "192.168.77.1"]);
        let udp = "for i in 1 2 3 4 5; do echo ironlb > /dev/udp/192.168.77.1/9; done";
        run("ip", &["netns", "exec", &b, "bash", "-c", udp]);
        let arrived = rx_packets(&a) - before;
        let seen = drain(recv, Duration::from_millis(300)).await;
        eprintln!("unrelated IPv4: {arrived} frames arrived on eth0, {} reached the ARP socket", seen.len());
        assert!(arrived >= 10, "the traffic must really arrive: {arrived}");
        assert!(seen.is_empty(), "{seen:?}");

        // One ARP request for the VIP: seen once, answered with our frame.
        let arping = tokio::process::Command::new("ip")
            .args(["netns", "exec", &b, "arping", "-c", "1", "-w", "3", "-i", "eth0", &VIP4.to_string()])
            .output();
        let arping = tokio::spawn(arping);
        let mut buf = [0; 2048];
        let received = tokio::time::timeout(Duration::from_secs(5), socket.recv_frame(&mut buf))
            .await
            .expect("an ARP request within 5 s")
            .expect("recv");
        assert!(!received.is_truncated());
        let Ok(Packet::Arp { ethernet, arp }) = packet::parse(&buf[..received.len]) else {
            panic!("not ARP: {:?}", &buf[..received.len]);
        };
        assert_eq!((arp.operation(), arp.target_ip(), ethernet.source()), (ArpOperation::Request, VIP4, MAC_B));
        socket.send(&packet::arp_reply(SPEAKER_MAC, VIP4, arp.sender_mac(), arp.sender_ip())).expect("send");

        let output = arping.await.expect("join").expect("arping");
        let stdout = String::from_utf8_lossy(&output.stdout);
        eprintln!("arping: {stdout}");
        assert!(stdout.to_lowercase().contains(&SPEAKER_MAC.to_string()), "{stdout}");
        // Our own reply is outgoing: the kernel keeps it from the socket too.
        let rest = drain(recv, Duration::from_millis(300)).await;
        assert!(rest.is_empty(), "{rest:?}");
    });
}

#[test]
fn ndp_socket_sees_only_solicitations_and_its_advertisement_answers_ndisc6() {
    let Some(lab) = Lab::new() else { return };
    if !installed("ndisc6") {
        return;
    }
    let (a, b) = (lab.a.clone(), lab.b.clone());
    lab.in_a(async move {
        let eth0 = link::interface_by_name("eth0").expect("interfaces").expect("eth0");
        let socket = std::sync::Arc::new(NdpSocket::open(eth0.index).expect("open NdpSocket"));
        let recv = |mut buf: Vec<u8>| {
            let socket = socket.clone();
            async move {
                let result = socket.recv(&mut buf).await;
                (buf, result)
            }
        };
        let groups = || {
            String::from_utf8_lossy(&run("ip", &["-n", &a, "-6", "maddr", "show", "dev", "eth0"]).stdout).into_owned()
        };
        socket.join_solicited_node(VIP6).expect("join");
        socket.join_solicited_node(VIP6).expect("joining twice is harmless");
        assert!(groups().contains("ff02::1:ff00:10"), "{}", groups());

        // ICMPv6 that is not Neighbor Discovery: 5 echo requests (and the outgoing replies).
        let before = rx_packets(&a);
        run("ip", &["netns", "exec", &b, "ping", "-6", "-c", "5", "-i", "0.2", "-W", "1", "fd77::1"]);
        let arrived = rx_packets(&a) - before;
        let seen = drain(recv, Duration::from_millis(300)).await;
        eprintln!("unrelated ICMPv6: {arrived} frames arrived on eth0, {} reached the NDP socket", seen.len());
        assert!(arrived >= 5, "the traffic must really arrive: {arrived}");
        assert!(seen.is_empty(), "{seen:?}");

        let ndisc6 = tokio::process::Command::new("ip")
            .args(["netns", "exec", &b, "ndisc6", "-1", "-r", "1", "-w", "3000", &VIP6.to_string(), "eth0"])
            .output();
        let ndisc6 = tokio::spawn(ndisc6);
        let mut buf = [0; 2048];
        let len = tokio::time::timeout(Duration::from_secs(5), socket.recv(&mut buf))
            .await
            .expect("a solicitation within 5 s")
            .expect("recv");
        let Ok(Packet::NeighborSolicitation { ethernet, solicitation }) = packet::parse(&buf[..len]) else {
            panic!("not a solicitation: {:?}", &buf[..len]);
        };
        assert_eq!((solicitation.target(), ethernet.source()), (VIP6, MAC_B));
        let answer = packet::neighbor_advertisement(
            NdpSender { mac: SPEAKER_MAC, address: VIP6 },
            VIP6,
            ethernet.source(),
            solicitation.source(),
            true,
            true,
        );
        socket.send(&answer).expect("send");

        let output = ndisc6.await.expect("join").expect("ndisc6");
        let stdout = String::from_utf8_lossy(&output.stdout);
        eprintln!("ndisc6: {stdout}");
        assert!(stdout.to_lowercase().contains(&SPEAKER_MAC.to_string()), "{stdout}");
        let rest = drain(recv, Duration::from_millis(300)).await;
        assert!(rest.is_empty(), "{rest:?}");

        socket.leave_solicited_node(VIP6).expect("leave");
        assert!(!groups().contains("ff02::1:ff00:10"), "{}", groups());
    });
}
