//! The client's view of the LAN: who answers ARP and NDP for an address, what `curl` reaches,
//! and what a packet capture sees — from the client namespace, with the tools a user has.

use std::io::Read;
use std::process::{Child, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};
use ironlb_e2e::{Lab, wait_for};

use crate::support::SETTLE;

/// The MAC of a lab host's LAN interface, lowercase.
pub(crate) fn mac_of(lab: &Lab, host: &str) -> Result<String> {
    Ok(lab.in_netns(host, &["cat", "/sys/class/net/eth0/address"])?.ok()?.stdout.trim().to_lowercase())
}

/// The MACs answering `arping` for `address` from the client, one per reply (3 requests).
pub(crate) fn arping(lab: &Lab, address: &str) -> Result<Vec<String>> {
    let client = lab.var("LAB_CLIENT")?;
    let out = lab.in_netns(client, &["arping", "-r", "-c", "3", "-W", "0.2", "-w", "3", "-i", "eth0", address])?;
    // arping exits non-zero when nobody answers: that is a result here, not an error.
    Ok(out.stdout.lines().map(|line| line.trim().to_lowercase()).filter(|line| !line.is_empty()).collect())
}

/// Waits until every `arping` reply for `address` comes from `mac`.
pub(crate) fn wait_arping(lab: &Lab, address: &str, mac: &str) -> Result<()> {
    let mut seen = Vec::new();
    wait_for(&format!("arping {address} answered only by {mac}"), SETTLE, || {
        seen = arping(lab, address)?;
        Ok((!seen.is_empty() && seen.iter().all(|m| m == mac)).then_some(()))
    })
    .with_context(|| format!("last replies: {seen:?}"))
}

/// The MAC `ndisc6` resolves `address` to from the client, if anyone answers.
pub(crate) fn ndisc6(lab: &Lab, address: &str) -> Result<Option<String>> {
    let client = lab.var("LAB_CLIENT")?;
    let out = lab.in_netns(client, &["ndisc6", "-1", "-r", "3", "-w", "500", address, "eth0"])?;
    Ok(out
        .stdout
        .lines()
        .find_map(|line| line.split_once("Target link-layer address:"))
        .map(|(_, mac)| mac.trim().to_lowercase()))
}

/// What `curl` from the client gets from `url` (the answering node's name).
pub(crate) fn curl(lab: &Lab, url: &str) -> Result<String> {
    let client = lab.var("LAB_CLIENT")?;
    let out = lab.in_netns(client, &["curl", "-sS", "-g", "--max-time", "3", url])?.ok()?;
    Ok(out.stdout.trim().to_owned())
}

/// Waits until `curl` of `url` from the client is answered by `node`.
pub(crate) fn wait_curl(lab: &Lab, url: &str, node: &str) -> Result<()> {
    let mut last = String::new();
    wait_for(&format!("curl {url} answered by {node}"), SETTLE, || {
        last = curl(lab, url).unwrap_or_else(|e| format!("{e:#}"));
        Ok((last == node).then_some(()))
    })
    .with_context(|| format!("last answer: {last}"))
}

/// A packet capture of ARP and Neighbor Advertisements on the client's LAN interface, for
/// seeing gratuitous frames. Stopped (by its PID) when read or dropped.
pub(crate) struct Capture {
    child: Child,
}

impl Capture {
    pub(crate) fn start(lab: &Lab) -> Result<Self> {
        let client = lab.var("LAB_CLIENT")?.to_owned();
        let mut command = lab.command("ip");
        command
            .args(["netns", "exec", &client, "tcpdump", "-i", "eth0", "-l", "-n", "-e", "-c", "2000"])
            .args(["arp or (icmp6 and ip6[40] == 136)"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let child = command.spawn().context("starting tcpdump in the client namespace")?;
        // tcpdump needs a moment to attach its filter.
        std::thread::sleep(Duration::from_millis(800));
        Ok(Self { child })
    }

    /// Stops the capture and returns its lines.
    pub(crate) fn finish(mut self) -> Result<String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut text = String::new();
        if let Some(mut out) = self.child.stdout.take() {
            out.read_to_string(&mut text)?;
        }
        Ok(text)
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `capture` holds a gratuitous ARP for `address` from `mac`: an ARP request about the
/// address sent from the MAC (the node's kernel never asks for an address it does not own, so
/// only the speaker sends that).
pub(crate) fn saw_gratuitous_arp(capture: &str, mac: &str, address: &str) -> bool {
    capture.lines().map(str::to_lowercase).any(|line| {
        line.contains(&format!(" {mac} > ff:ff:ff:ff:ff:ff"))
            && line.contains("request")
            && line.contains(&format!(" {address} "))
    })
}

/// Whether `capture` holds an unsolicited NA for `address` from `mac`.
pub(crate) fn saw_unsolicited_na(capture: &str, mac: &str, address: &str) -> bool {
    capture.lines().any(|line| {
        let line = line.to_lowercase();
        line.contains(mac) && line.contains("neighbor advertisement") && line.contains(&format!("tgt is {address}"))
    })
}
