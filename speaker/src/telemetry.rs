//! What the speaker tells Prometheus and the kubelet: `GET /metrics` (OpenMetrics text),
//! `/healthz` and `/readyz` on the metrics port (served by `ironlb-daemon`, as the operator's).
//!
//! Names carry the `ironlb_speaker_` prefix; counters get `_total` from the encoder. Every
//! label value of a reason is registered at zero on start, so a rate() over it works before the
//! first event.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::claims::OverBudget;
use crate::packet::PacketError;

pub use ironlb_daemon::Health;

/// Layer-2 protocol of a frame: `arp` or `ndp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// ARP (IPv4).
    Arp,
    /// Neighbor Discovery (IPv6).
    Ndp,
}

impl Protocol {
    const fn as_str(self) -> &'static str {
        match self {
            Self::Arp => "arp",
            Self::Ndp => "ndp",
        }
    }
}

/// Why a well-formed request was not answered: the `reason` of `requests_ignored`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ignored {
    /// It asks for an address this node does not announce.
    NotOwned,
    /// It asks for an owned address on an interface the address is not announced on.
    WrongInterface,
    /// Another host announced (gratuitous ARP / unsolicited NA) or probed for an owned address.
    ForeignClaim,
    /// A reply or advertisement not asking anything.
    NotARequest,
}

impl Ignored {
    const ALL: [Self; 4] = [Self::NotOwned, Self::WrongInterface, Self::ForeignClaim, Self::NotARequest];

    const fn as_str(self) -> &'static str {
        match self {
            Self::NotOwned => "not_owned",
            Self::WrongInterface => "wrong_interface",
            Self::ForeignClaim => "foreign_claim",
            Self::NotARequest => "not_a_request",
        }
    }
}

/// Why a claim seen on the wire did not reach the controller: the `reason` of `claims_dropped`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClaimDropped {
    /// Over the claims per address or per MAC ([`crate::claims::ClaimLimiter`]).
    RateLimited,
    /// The claim queue was full: the controller is behind.
    QueueFull,
}

impl ClaimDropped {
    const ALL: [Self; 2] = [Self::RateLimited, Self::QueueFull];

    const fn as_str(self) -> &'static str {
        match self {
            Self::RateLimited => "rate_limited",
            Self::QueueFull => "queue_full",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct FrameLabels {
    interface: String,
    protocol: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct FamilyLabels {
    family: String,
}

/// The speaker's metrics. Cheap to clone: clones share the series.
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Arc<Registry>,
    requests_received: Family<FrameLabels, Counter>,
    replies_sent: Family<FrameLabels, Counter>,
    gratuitous_sent: Family<FrameLabels, Counter>,
    send_errors: Family<FrameLabels, Counter>,
    requests_ignored: Family<ReasonLabels, Counter>,
    malformed_dropped: Family<ReasonLabels, Counter>,
    claims_dropped: Family<ReasonLabels, Counter>,
    events_dropped: Family<ReasonLabels, Counter>,
    announced_addresses: Family<FamilyLabels, Gauge>,
    announcer_changes: Counter,
    lease_renewal_failures: Counter,
    address_conflicts: Counter,
    yielded: Counter,
    unreadable_objects: Family<KindLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every series.
    pub fn new() -> Self {
        let reasons = |reasons: &[&str]| {
            let family: Family<ReasonLabels, Counter> = Family::default();
            for reason in reasons {
                drop(family.get_or_create(&ReasonLabels { reason: (*reason).to_owned() }));
            }
            family
        };
        let requests_ignored = reasons(&Ignored::ALL.map(Ignored::as_str));
        let malformed_dropped = reasons(&PacketError::ALL.map(PacketError::reason));
        let claims_dropped = reasons(&ClaimDropped::ALL.map(ClaimDropped::as_str));
        let events_dropped = reasons(&OverBudget::ALL.map(OverBudget::reason));
        let announced_addresses = Family::default();
        for family in ["ipv4", "ipv6"] {
            drop(announced_addresses.get_or_create(&FamilyLabels { family: family.to_owned() }));
        }
        let mut registry = Registry::with_prefix("ironlb_speaker");
        let metrics = Self {
            registry: Arc::default(),
            requests_received: Family::default(),
            replies_sent: Family::default(),
            gratuitous_sent: Family::default(),
            send_errors: Family::default(),
            requests_ignored,
            malformed_dropped,
            claims_dropped,
            events_dropped,
            announced_addresses,
            announcer_changes: Counter::default(),
            lease_renewal_failures: Counter::default(),
            address_conflicts: Counter::default(),
            yielded: Counter::default(),
            unreadable_objects: Family::default(),
        };
        registry.register(
            "requests_received",
            "ARP requests and Neighbor Solicitations received, by interface and protocol",
            metrics.requests_received.clone(),
        );
        registry.register(
            "replies_sent",
            "ARP replies and solicited Neighbor Advertisements sent",
            metrics.replies_sent.clone(),
        );
        registry.register(
            "gratuitous_sent",
            "Gratuitous ARP and unsolicited Neighbor Advertisements sent (take-overs and refreshes)",
            metrics.gratuitous_sent.clone(),
        );
        registry.register("send_errors", "Frames the kernel refused to send", metrics.send_errors.clone());
        registry.register(
            "requests_ignored",
            "Well-formed ARP/NDP frames not answered, by reason",
            metrics.requests_ignored.clone(),
        );
        registry.register(
            "malformed_frames_dropped",
            "ARP/NDP frames dropped as malformed, by reason",
            metrics.malformed_dropped.clone(),
        );
        registry.register(
            "claims_dropped",
            "Claims of an announced address seen on the wire and not handled, by reason",
            metrics.claims_dropped.clone(),
        );
        registry.register(
            "events_dropped",
            "Events not posted because the speaker's Event budget was spent, by reason",
            metrics.events_dropped.clone(),
        );
        registry.register(
            "announced_addresses",
            "Addresses this node answers for, by family",
            metrics.announced_addresses.clone(),
        );
        registry.register(
            "announcer_changes",
            "Services this node started announcing (it became their announcer)",
            metrics.announcer_changes.clone(),
        );
        registry.register(
            "lease_renewal_failures",
            "Node Lease renewals that failed or timed out",
            metrics.lease_renewal_failures.clone(),
        );
        registry.register(
            "address_conflicts",
            "Claims of an announced address by a host that is not an ironlb speaker",
            metrics.address_conflicts.clone(),
        );
        registry.register(
            "addresses_yielded",
            "Addresses given up to a peer heard announcing them while cut off or shutting down",
            metrics.yielded.clone(),
        );
        registry.register(
            "unreadable_objects",
            "Objects a watch delivered that this version cannot decode, skipped (by kind)",
            metrics.unreadable_objects.clone(),
        );
        Self { registry: Arc::new(registry), ..metrics }
    }

    fn frame(interface: &str, protocol: Protocol) -> FrameLabels {
        FrameLabels { interface: interface.to_owned(), protocol: protocol.as_str().to_owned() }
    }

    /// A request (ARP request, NS) arrived on `interface`.
    pub fn request_received(&self, interface: &str, protocol: Protocol) {
        self.requests_received.get_or_create(&Self::frame(interface, protocol)).inc();
    }

    /// A reply went out.
    pub fn reply_sent(&self, interface: &str, protocol: Protocol) {
        self.replies_sent.get_or_create(&Self::frame(interface, protocol)).inc();
    }

    /// A gratuitous ARP / unsolicited NA went out.
    pub fn gratuitous_sent(&self, interface: &str, protocol: Protocol) {
        self.gratuitous_sent.get_or_create(&Self::frame(interface, protocol)).inc();
    }

    /// The kernel refused a frame.
    pub fn send_error(&self, interface: &str, protocol: Protocol) {
        self.send_errors.get_or_create(&Self::frame(interface, protocol)).inc();
    }

    /// A well-formed frame was not answered.
    pub fn ignored(&self, reason: Ignored) {
        self.requests_ignored.get_or_create(&ReasonLabels { reason: reason.as_str().to_owned() }).inc();
    }

    /// A malformed frame was dropped.
    pub fn malformed(&self, error: PacketError) {
        self.malformed_dropped.get_or_create(&ReasonLabels { reason: error.reason().to_owned() }).inc();
    }

    /// A claim seen on the wire did not reach the controller.
    pub fn claim_dropped(&self, reason: ClaimDropped) {
        self.claims_dropped.get_or_create(&ReasonLabels { reason: reason.as_str().to_owned() }).inc();
    }

    /// An Event was dropped, over the Event budget.
    pub fn event_dropped(&self, reason: OverBudget) {
        self.events_dropped.get_or_create(&ReasonLabels { reason: reason.reason().to_owned() }).inc();
    }

    /// How many addresses of each family this node announces.
    pub fn set_announced(&self, ipv4: usize, ipv6: usize) {
        for (family, count) in [("ipv4", ipv4), ("ipv6", ipv6)] {
            let gauge = self.announced_addresses.get_or_create(&FamilyLabels { family: family.to_owned() });
            gauge.set(i64::try_from(count).unwrap_or(i64::MAX));
        }
    }

    /// This node became the announcer of a Service.
    pub fn announcer_changed(&self) {
        self.announcer_changes.inc();
    }

    /// A foreign host claimed an announced address.
    pub fn conflict(&self) {
        self.address_conflicts.inc();
    }

    /// An object of `kind` was skipped because it could not be decoded.
    pub fn unreadable(&self, kind: &str) {
        self.unreadable_objects.get_or_create(&KindLabels { kind: kind.to_owned() }).inc();
    }

    /// An address was yielded to a peer.
    pub fn yielded(&self) {
        self.yielded.inc();
    }

    /// A Lease renewal failed.
    pub fn lease_renewal_failed(&self) {
        self.lease_renewal_failures.inc();
    }

    /// The OpenMetrics text of every series.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// Serves `/metrics` (these metrics), `/healthz` and `/readyz` on `addr` until the listener fails.
pub async fn serve(addr: std::net::SocketAddr, metrics: Metrics, health: Health) -> anyhow::Result<()> {
    ironlb_daemon::serve(addr, Arc::new(move || metrics.render()), health).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_is_exported_at_zero_and_counts_show() {
        let metrics = Metrics::new();
        metrics.reply_sent("eth0", Protocol::Arp);
        metrics.malformed(PacketError::Truncated);
        metrics.set_announced(2, 1);
        let text = metrics.render().expect("renders");
        assert!(text.contains("ironlb_speaker_replies_sent_total{interface=\"eth0\",protocol=\"arp\"} 1"), "{text}");
        assert!(text.contains("ironlb_speaker_malformed_frames_dropped_total{reason=\"truncated\"} 1"), "{text}");
        assert!(text.contains("ironlb_speaker_malformed_frames_dropped_total{reason=\"bad_checksum\"} 0"), "{text}");
        assert!(text.contains("ironlb_speaker_requests_ignored_total{reason=\"not_owned\"} 0"), "{text}");
        assert!(text.contains("ironlb_speaker_announced_addresses{family=\"ipv6\"} 1"), "{text}");
        assert!(text.contains("ironlb_speaker_claims_dropped_total{reason=\"queue_full\"} 0"), "{text}");
        assert!(text.contains("ironlb_speaker_events_dropped_total{reason=\"address_rate\"} 0"), "{text}");
    }

    #[test]
    fn dropped_claims_and_events_are_counted_by_reason() {
        let metrics = Metrics::new();
        metrics.claim_dropped(ClaimDropped::RateLimited);
        metrics.claim_dropped(ClaimDropped::RateLimited);
        metrics.event_dropped(OverBudget::Backlog);
        let text = metrics.render().expect("renders");
        assert!(text.contains("ironlb_speaker_claims_dropped_total{reason=\"rate_limited\"} 2"), "{text}");
        assert!(text.contains("ironlb_speaker_events_dropped_total{reason=\"backlog\"} 1"), "{text}");
    }
}
