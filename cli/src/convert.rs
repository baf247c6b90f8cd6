//! The conversion itself: sorted MetalLB inputs in, ironlb objects and a report out. Pure: no
//! I/O, so every rule is tested from YAML fixtures.
//!
//! Data flow: [`convert`] takes the [`Inputs`] that [`crate::input`] sorted and
//! 1. turns each legacy `layer2` pool (ConfigMap, or the deprecated `AddressPool` resource)
//!    into an `IPAddressPool` plus an `L2Advertisement` naming it, as MetalLB announced it;
//! 2. maps `metallb.io` `IPAddressPool`s and `L2Advertisement`s field by field (the ironlb API
//!    has the same fields with the same meaning, pool selectors included, and the pools keep
//!    their labels so those selectors still match);
//! 3. checks every pool with ironlb's own address parser and spec validation
//!    ([`IPAddressPoolSpec::validate`]), names, and overlaps between pools, collecting every
//!    problem into one [`InvalidInput`] so a user fixes them in one pass;
//! 4. records in the [`Report`] what it left out (BGP in every form, unknown protocols and
//!    fields) and why, what it changed, and what it ignored.
//!
//! The objects are built from `ironlb-core`' own types, so they serialise exactly as the CRDs
//! expect; [`crate::manifest`] writes them.

use std::collections::BTreeMap;
use std::fmt;

use ironlb_core::address::{AddressError, AddressRange, parse_entry};
use ironlb_core::v1alpha1::{
    IPAddressPool, IPAddressPoolSpec, L2Advertisement, L2AdvertisementSpec, MAX_ADDRESSES, ServiceAllocation, SpecError,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use thiserror::Error;

use crate::input::{Found, Inputs, Origin};
use crate::legacy::describe_peer;
use crate::metallb_crds::{self, Kind};
use crate::report::{Finding, Report};

/// A converted object and a line saying what it was made from (written above it).
#[derive(Clone, Debug, PartialEq)]
pub struct Converted<T> {
    /// The ironlb object.
    pub object: T,
    /// What it was made from, e.g. `address-pools[0] "default" of ConfigMap metallb-system/config (x.yaml)`.
    pub from: String,
}

/// The result of a conversion.
#[derive(Clone, Debug, PartialEq)]
pub struct Migration {
    /// The pools, in the order read.
    pub pools: Vec<Converted<IPAddressPool>>,
    /// The advertisements: those made for legacy pools first, then the converted ones.
    pub advertisements: Vec<Converted<L2Advertisement>>,
    /// What was left out, changed or ignored.
    pub report: Report,
}

impl Migration {
    /// Whether nothing was converted.
    pub fn is_empty(&self) -> bool {
        self.pools.is_empty() && self.advertisements.is_empty()
    }

    /// `converted 1 IPAddressPool and 1 L2Advertisement`, for the report's first line.
    pub fn summary(&self) -> String {
        let count = |n: usize, kind: &str| format!("{n} {kind}{}", if n == 1 { "" } else { "s" });
        let converted = format!(
            "converted {} and {}",
            count(self.pools.len(), "IPAddressPool"),
            count(self.advertisements.len(), "L2Advertisement")
        );
        match self.report.left_out.len() {
            0 => format!("{converted}; nothing left out"),
            n => format!("{converted}; {n} left out (listed below)"),
        }
    }
}

/// A MetalLB setting that cannot become a valid ironlb object. MetalLB refuses all of these
/// too, except the names: its legacy pool names needed not be Kubernetes names.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ConvertError {
    /// An object or legacy pool without a name.
    #[error("{subject} has no name")]
    Unnamed {
        /// What lacks the name.
        subject: String,
    },
    /// A name the API server would refuse for an ironlb object.
    #[error("{subject}: {name:?} cannot name an ironlb {kind}: {why}")]
    InvalidName {
        /// Where the name was read.
        subject: String,
        /// `IPAddressPool` or `L2Advertisement`.
        kind: &'static str,
        /// The name.
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// Two sources would make ironlb objects of one kind and name.
    #[error("two {kind}s would be named {name:?}: one from {first}, one from {second}; convert only one of them")]
    DuplicateName {
        /// `IPAddressPool` or `L2Advertisement`.
        kind: &'static str,
        /// The shared name.
        name: String,
        /// What the first was made from.
        first: String,
        /// What the second was made from.
        second: String,
    },
    /// A pool without addresses.
    #[error("{from}: the pool lists no addresses")]
    NoAddresses {
        /// The pool's name.
        pool: String,
        /// What it was made from.
        from: String,
    },
    /// More entries than an ironlb pool takes.
    #[error(
        "{from}: the pool lists {count} address entries; an ironlb pool takes at most {MAX_ADDRESSES}, so split it"
    )]
    TooManyAddresses {
        /// The pool's name.
        pool: String,
        /// What it was made from.
        from: String,
        /// How many entries it has.
        count: usize,
    },
    /// An entry ironlb's parser refuses; the message is the one `kubectl apply` would print.
    #[error("{from}: address entry {source}")]
    InvalidAddress {
        /// The pool's name.
        pool: String,
        /// What it was made from.
        from: String,
        /// The entry and what is wrong with it.
        source: AddressError,
    },
    /// Two entries of one pool share addresses.
    #[error("{from}: address entries {first:?} and {second:?} overlap")]
    OverlappingEntries {
        /// The pool's name.
        pool: String,
        /// What it was made from.
        from: String,
        /// The entry listed first.
        first: String,
        /// The entry listed second.
        second: String,
    },
    /// Two pools share addresses; ironlb would give the younger one a Conflict.
    #[error(
        "pools {first:?} and {second:?} share {shared} ({first_from}; {second_from}); MetalLB refuses overlapping pools too"
    )]
    OverlappingPools {
        /// The pool read first.
        first: String,
        /// What it was made from.
        first_from: String,
        /// The pool read second.
        second: String,
        /// What it was made from.
        second_from: String,
        /// The addresses both hold (the first shared range found).
        shared: String,
    },
}

/// Every reason the input cannot be converted; nothing is written then.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub struct InvalidInput {
    /// The problems, in the order found; never empty.
    pub errors: Vec<ConvertError>,
}

impl fmt::Display for InvalidInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.errors.len();
        write!(
            f,
            "the MetalLB configuration cannot be converted ({count} problem{}):",
            if count == 1 { "" } else { "s" }
        )?;
        for error in &self.errors {
            write!(f, "\n  - {error}")?;
        }
        Ok(())
    }
}

/// Converts everything read; see the module documentation for the rules.
///
/// # Errors
///
/// Every [`ConvertError`] found, when there is at least one.
pub fn convert(inputs: &Inputs) -> Result<Migration, InvalidInput> {
    let mut conversion = Conversion::default();
    for config in &inputs.legacy {
        conversion.legacy_config(config);
    }
    for pool in &inputs.address_pools {
        let spec = &pool.spec;
        conversion.left_out_fields(&pool.origin, "spec.", spec.unknown.keys());
        conversion.protocol_pool(ProtocolPool {
            subject: pool.origin.to_string(),
            name: pool.name(),
            protocol: spec.protocol.as_deref(),
            addresses: &spec.pool.addresses,
            auto_assign: spec.pool.auto_assign,
            avoid_buggy_ips: spec.pool.avoid_buggy_ips,
            bgp_advertisements: spec.bgp_advertisements.len(),
        });
    }
    for pool in &inputs.pools {
        conversion.crd_pool(pool, inputs);
    }
    for advertisement in &inputs.l2_advertisements {
        conversion.crd_advertisement(advertisement, inputs);
    }
    for (origin, reason) in &inputs.unconvertible {
        conversion.report.left_out.push(Finding::new(origin, reason.clone()));
    }
    for (origin, reason) in &inputs.ignored {
        conversion.report.ignored.push(Finding::new(origin, reason.clone()));
    }
    conversion.check_overlaps();
    conversion.finish()
}

#[derive(Debug, Default)]
struct Conversion {
    pools: Vec<(Converted<IPAddressPool>, Vec<AddressRange>)>,
    advertisements: Vec<Converted<L2Advertisement>>,
    report: Report,
    errors: Vec<ConvertError>,
    /// (kind, name) -> what the object was made from, to catch two sources of one name.
    names: BTreeMap<(&'static str, String), String>,
}

/// A pool that carries its protocol: a legacy ConfigMap entry or a deprecated `AddressPool`.
#[derive(Debug)]
struct ProtocolPool<'a> {
    subject: String,
    name: &'a str,
    protocol: Option<&'a str>,
    addresses: &'a [String],
    auto_assign: Option<bool>,
    avoid_buggy_ips: bool,
    bgp_advertisements: usize,
}

/// A pool about to be built, whatever it came from.
#[derive(Debug)]
struct PoolDraft<'a> {
    name: &'a str,
    from: String,
    labels: BTreeMap<String, String>,
    addresses: &'a [String],
    auto_assign: bool,
    avoid_buggy_ips: bool,
    service_allocation: Option<ServiceAllocation>,
}

const NO_BGP: &str = "ironlb announces addresses at layer 2 only (ARP/NDP) and has no BGP speaker";

impl Conversion {
    fn legacy_config(&mut self, config: &Found<crate::legacy::ConfigFile>) {
        let origin = &config.origin;
        let file = &config.spec;
        for (index, pool) in file.address_pools.iter().enumerate() {
            let subject = format!("address-pools[{index}] {:?} of {origin}", pool.name);
            for key in pool.unknown.keys() {
                self.report.left_out.push(Finding::new(
                    format!("key `{key}` of {subject}"),
                    "not a setting of MetalLB's legacy format (MetalLB refuses unknown keys), so there is nothing to convert it to",
                ));
            }
            self.protocol_pool(ProtocolPool {
                subject,
                name: &pool.name,
                protocol: pool.protocol.as_deref(),
                addresses: &pool.addresses,
                auto_assign: pool.auto_assign,
                avoid_buggy_ips: pool.avoid_buggy_ips.unwrap_or(false),
                bgp_advertisements: pool.bgp_advertisements.len(),
            });
        }
        let bgp_reason = |kind: Kind| kind.why_not_converted().unwrap_or_default();
        for peer in &file.peers {
            let subject = format!("BGP peer {} in `peers` of {origin}", describe_peer(peer));
            self.report.left_out.push(Finding::new(subject, bgp_reason(Kind::BGPPeer)));
        }
        for name in file.bgp_communities.keys() {
            let subject = format!("BGP community {name:?} in `bgp-communities` of {origin}");
            self.report.left_out.push(Finding::new(subject, bgp_reason(Kind::Community)));
        }
        for profile in &file.bfd_profiles {
            let name = profile.get("name").and_then(serde_yaml::Value::as_str).unwrap_or("without a name");
            let subject = format!("BFD profile {name:?} in `bfd-profiles` of {origin}");
            self.report.left_out.push(Finding::new(subject, bgp_reason(Kind::BFDProfile)));
        }
        if file.peer_autodiscovery.is_some() {
            let subject = format!("`peer-autodiscovery` of {origin}");
            self.report.left_out.push(Finding::new(subject, bgp_reason(Kind::BGPPeer)));
        }
        for key in file.unknown.keys() {
            self.report.left_out.push(Finding::new(
                format!("key `{key}` of {origin}"),
                "not a setting of MetalLB's legacy format (MetalLB refuses unknown keys), so there is nothing to convert it to",
            ));
        }
    }

    /// A pool whose protocol decides how it was announced: `layer2` becomes a pool and an
    /// advertisement naming it; anything else is reported.
    fn protocol_pool(&mut self, pool: ProtocolPool<'_>) {
        match pool.protocol {
            Some("layer2") => {
                if pool.bgp_advertisements > 0 {
                    self.report.left_out.push(Finding::new(
                        format!("bgp-advertisements of {}", pool.subject),
                        "a layer2 pool is not advertised over BGP (MetalLB refuses this combination)",
                    ));
                }
                let converted = self.pool(PoolDraft {
                    name: pool.name,
                    from: pool.subject.clone(),
                    labels: BTreeMap::new(),
                    addresses: pool.addresses,
                    auto_assign: pool.auto_assign.unwrap_or(true),
                    avoid_buggy_ips: pool.avoid_buggy_ips,
                    service_allocation: None,
                });
                if converted {
                    let spec = L2AdvertisementSpec { ip_address_pools: vec![pool.name.to_owned()], ..Default::default() };
                    let from = format!("the layer2 announcement of {}", pool.subject);
                    self.advertisement(pool.name, from, BTreeMap::new(), spec);
                }
            }
            Some("bgp") => self.report.left_out.push(Finding::new(
                pool.subject,
                format!(
                    "protocol: bgp; {NO_BGP}, and the pool alone would hand out addresses no router learns about. \
                     Keep a BGP speaker for these addresses, or make the pool layer2 if they are on the nodes' LAN"
                ),
            )),
            Some(other) => self.report.left_out.push(Finding::new(
                pool.subject,
                format!("unknown protocol {other:?}: MetalLB knows layer2 and bgp, and only layer2 has an ironlb equivalent"),
            )),
            None => self.report.left_out.push(Finding::new(
                pool.subject,
                "no protocol (MetalLB refuses such a pool); set `protocol: layer2` if its addresses are on the nodes' LAN",
            )),
        }
    }

    fn crd_pool(&mut self, pool: &Found<metallb_crds::IPAddressPoolSpec>, inputs: &Inputs) {
        let name = pool.name();
        let labels = pool.metadata.labels.clone().unwrap_or_default();
        let by_l2 = inputs.l2_advertisements.iter().any(|adv| adv.spec.pools.selects(name, &labels));
        let by_bgp: Vec<&str> = inputs
            .bgp_advertisements
            .iter()
            .filter(|adv| adv.spec.selects(name, &labels))
            .map(|adv| adv.name())
            .collect();
        if !by_l2 && !by_bgp.is_empty() {
            self.report.left_out.push(Finding::new(
                &pool.origin,
                format!(
                    "only {} {} announce{} it and no L2Advertisement does; {NO_BGP}, so its Services would get \
                     addresses no router learns about",
                    if by_bgp.len() == 1 { "BGPAdvertisement" } else { "BGPAdvertisements" },
                    by_bgp.join(", "),
                    if by_bgp.len() == 1 { "s" } else { "" },
                ),
            ));
            return;
        }
        if !by_l2 {
            self.report.notes.push(Finding::new(
                &pool.origin,
                "no L2Advertisement read selects it: ironlb assigns its addresses but no node answers for them, as \
                 MetalLB did; add an L2Advertisement if they should be reachable",
            ));
        }
        let spec = &pool.spec;
        self.left_out_fields(&pool.origin, "spec.", spec.unknown.keys());
        let service_allocation = spec.service_allocation.as_ref().map(|allocation| {
            self.left_out_fields(&pool.origin, "spec.serviceAllocation.", allocation.unknown.keys());
            ServiceAllocation {
                priority: allocation.priority,
                namespaces: allocation.namespaces.clone(),
                namespace_selectors: allocation.namespace_selectors.clone(),
                service_selectors: allocation.service_selectors.clone(),
            }
        });
        self.pool(PoolDraft {
            name,
            from: pool.origin.to_string(),
            labels,
            addresses: &spec.pool.addresses,
            auto_assign: spec.pool.auto_assign.unwrap_or(true),
            avoid_buggy_ips: spec.pool.avoid_buggy_ips,
            service_allocation,
        });
    }

    fn crd_advertisement(&mut self, advertisement: &Found<metallb_crds::L2AdvertisementSpec>, inputs: &Inputs) {
        let spec = &advertisement.spec;
        self.left_out_fields(&advertisement.origin, "spec.", spec.unknown.keys());
        let known = |pool: &str| {
            inputs.pools.iter().any(|p| p.name() == pool)
                || inputs.address_pools.iter().any(|p| p.name() == pool)
                || inputs.legacy.iter().any(|c| c.spec.address_pools.iter().any(|p| p.name == pool))
        };
        for missing in spec.pools.ip_address_pools.iter().filter(|pool| !known(pool)) {
            self.report.notes.push(Finding::new(
                &advertisement.origin,
                format!(
                    "names pool {missing:?}, which was not among the input; its status will say so until such a pool exists"
                ),
            ));
        }
        let converted = L2AdvertisementSpec {
            ip_address_pools: spec.pools.ip_address_pools.clone(),
            ip_address_pool_selectors: spec.pools.ip_address_pool_selectors.clone(),
            node_selectors: spec.node_selectors.clone(),
            interfaces: spec.interfaces.clone(),
        };
        let labels = advertisement.metadata.labels.clone().unwrap_or_default();
        self.advertisement(advertisement.name(), advertisement.origin.to_string(), labels, converted);
    }

    fn left_out_fields<'a>(&mut self, origin: &Origin, prefix: &str, fields: impl Iterator<Item = &'a String>) {
        for field in fields {
            self.report.left_out.push(Finding::new(
                format!("field {prefix}{field} of {origin}"),
                "ironlb has no such field; the rest of the object is converted without it",
            ));
        }
    }

    /// Builds and checks a pool; returns whether it was added.
    fn pool(&mut self, draft: PoolDraft<'_>) -> bool {
        let PoolDraft { name, from, labels, addresses, auto_assign, avoid_buggy_ips, service_allocation } = draft;
        if !self.claim_name("IPAddressPool", name, &from) {
            return false;
        }
        if u64::try_from(addresses.len()).unwrap_or(u64::MAX) > MAX_ADDRESSES {
            let (pool, count) = (name.to_owned(), addresses.len());
            self.errors.push(ConvertError::TooManyAddresses { pool, from, count });
            return false;
        }
        let addresses = addresses.iter().map(|entry| self.entry(name, &from, entry)).collect();
        let spec = IPAddressPoolSpec { addresses, auto_assign, avoid_buggy_ips, service_allocation };
        match spec.validate() {
            Ok(ranges) => {
                let mut object = IPAddressPool::new(name, spec);
                object.metadata = metadata(name, labels);
                self.pools.push((Converted { object, from }, ranges));
                true
            }
            Err(invalid) => {
                let pool = || name.to_owned();
                self.errors.extend(invalid.errors.into_iter().map(|error| match error {
                    SpecError::NoAddresses => ConvertError::NoAddresses { pool: pool(), from: from.clone() },
                    SpecError::InvalidAddress { source, .. } => {
                        ConvertError::InvalidAddress { pool: pool(), from: from.clone(), source }
                    }
                    SpecError::OverlappingEntries { first, second, .. } => {
                        ConvertError::OverlappingEntries { pool: pool(), from: from.clone(), first, second }
                    }
                }));
                false
            }
        }
    }

    /// One address entry as ironlb should read it. MetalLB parsed a CIDR with Go's
    /// `net.ParseCIDR`, which drops host bits (`192.168.2.1/24` meant `192.168.2.0/24`), while
    /// the ironlb API refuses them so a typo cannot widen a pool: write the block MetalLB used,
    /// and say so. Every other entry is kept as written (trimmed) for validation to judge.
    fn entry(&mut self, pool: &str, from: &str, entry: &str) -> String {
        let entry = entry.trim();
        match parse_entry(entry) {
            Err(AddressError::HostBitsSet { masked, .. }) => {
                let network = masked.to_string();
                self.report.notes.push(Finding::new(
                    format!("address entry {entry:?} of pool {pool:?} ({from})"),
                    format!("written as {network:?}: MetalLB ignored the host bits, ironlb refuses them"),
                ));
                network
            }
            _ => entry.to_owned(),
        }
    }

    fn advertisement(&mut self, name: &str, from: String, labels: BTreeMap<String, String>, spec: L2AdvertisementSpec) {
        if !self.claim_name("L2Advertisement", name, &from) {
            return;
        }
        let mut object = L2Advertisement::new(name, spec);
        object.metadata = metadata(name, labels);
        self.advertisements.push(Converted { object, from });
    }

    /// Checks that `name` may name a new ironlb object of `kind`, recording why not.
    fn claim_name(&mut self, kind: &'static str, name: &str, from: &str) -> bool {
        if name.is_empty() {
            self.errors.push(ConvertError::Unnamed { subject: from.to_owned() });
            return false;
        }
        if let Some(why) = object_name_problem(name) {
            let (subject, name) = (from.to_owned(), name.to_owned());
            self.errors.push(ConvertError::InvalidName { subject, kind, name, why });
            return false;
        }
        match self.names.get(&(kind, name.to_owned())) {
            Some(first) => {
                let (name, first, second) = (name.to_owned(), first.clone(), from.to_owned());
                self.errors.push(ConvertError::DuplicateName { kind, name, first, second });
                false
            }
            None => {
                self.names.insert((kind, name.to_owned()), from.to_owned());
                true
            }
        }
    }

    /// MetalLB refuses overlapping pools, and ironlb would hand the shared addresses to the
    /// older pool only: either way such an input was not working as written.
    fn check_overlaps(&mut self) {
        for (index, (first, first_ranges)) in self.pools.iter().enumerate() {
            for (second, second_ranges) in &self.pools[index + 1..] {
                let shared = first_ranges.iter().find_map(|a| second_ranges.iter().find_map(|b| a.intersection(*b)));
                if let Some(shared) = shared {
                    self.errors.push(ConvertError::OverlappingPools {
                        first: first.object.metadata.name.clone().unwrap_or_default(),
                        first_from: first.from.clone(),
                        second: second.object.metadata.name.clone().unwrap_or_default(),
                        second_from: second.from.clone(),
                        shared: shared.to_string(),
                    });
                }
            }
        }
    }

    fn finish(self) -> Result<Migration, InvalidInput> {
        if !self.errors.is_empty() {
            return Err(InvalidInput { errors: self.errors });
        }
        Ok(Migration {
            pools: self.pools.into_iter().map(|(pool, _)| pool).collect(),
            advertisements: self.advertisements,
            report: self.report,
        })
    }
}

fn metadata(name: &str, labels: BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta { name: Some(name.to_owned()), labels: (!labels.is_empty()).then_some(labels), ..ObjectMeta::default() }
}

/// Why the API server would refuse `name` for a cluster-scoped custom resource (an RFC 1123
/// subdomain: at most 253 characters of lower-case letters, digits, `-` and `.`, starting and
/// ending with a letter or digit), or `None`. MetalLB's legacy pool names were free text.
fn object_name_problem(name: &str) -> Option<&'static str> {
    let alphanumeric = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    if name.len() > 253 {
        Some("longer than 253 characters")
    } else if !name.chars().all(|c| alphanumeric(c) || c == '-' || c == '.') {
        Some(
            "only lower-case letters, digits, '-' and '.' are allowed (Services naming the pool in an address-pool annotation must then be edited to the new name)",
        )
    } else if !name.starts_with(alphanumeric) || !name.ends_with(alphanumeric) {
        Some("it must start and end with a lower-case letter or digit")
    } else {
        None
    }
}

#[cfg(test)]
mod tests;
