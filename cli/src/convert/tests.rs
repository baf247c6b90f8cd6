//! The conversion rules, one scenario per test, from YAML as a user has it.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::*;
use crate::input::Source;

const TUTORIAL: &str = include_str!("../../tests/fixtures/tutorial-configmap.yaml");
const MIXED: &str = include_str!("../../tests/fixtures/legacy-mixed.yaml");
const CRDS: &str = include_str!("../../tests/fixtures/metallb-crds.yaml");
const BAD_ADDRESS: &str = include_str!("../../tests/fixtures/bad-address.yaml");

fn inputs(yaml: &str) -> Inputs {
    let mut inputs = Inputs::default();
    inputs.add_yaml(yaml, &Source::File("fixture.yaml".into())).expect("the fixture reads");
    inputs
}

fn migrate(yaml: &str) -> Migration {
    convert(&inputs(yaml)).unwrap_or_else(|invalid| panic!("the fixture converts: {invalid}"))
}

fn refusal(yaml: &str) -> InvalidInput {
    match convert(&inputs(yaml)) {
        Ok(migration) => panic!("converted, but should have been refused: {migration:#?}"),
        Err(invalid) => invalid,
    }
}

/// A legacy ConfigMap holding `config`.
fn configmap(config: &str) -> String {
    let indented: String = config.lines().map(|line| format!("    {line}\n")).collect();
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: config, namespace: metallb-system}}\ndata:\n  config: |\n{indented}"
    )
}

fn pool<'a>(migration: &'a Migration, name: &str) -> &'a IPAddressPool {
    named(&migration.pools, name)
}

fn advertisement<'a>(migration: &'a Migration, name: &str) -> &'a L2Advertisement {
    named(&migration.advertisements, name)
}

fn named<'a, T: kube::Resource + fmt::Debug>(converted: &'a [Converted<T>], name: &str) -> &'a T {
    converted
        .iter()
        .map(|converted| &converted.object)
        .find(|object| object.meta().name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no {name} among {converted:#?}"))
}

fn names<T: kube::Resource>(converted: &[Converted<T>]) -> Vec<String> {
    converted.iter().map(|c| c.object.meta().name.clone().unwrap_or_default()).collect()
}

fn left_out(migration: &Migration) -> Vec<String> {
    migration.report.left_out.iter().map(|finding| format!("{}: {}", finding.subject, finding.reason)).collect()
}

fn selector(yaml: &str) -> LabelSelector {
    serde_yaml::from_str(yaml).expect("selector")
}

#[test]
fn tutorial_configmap_becomes_the_tutorial_pool_announced_at_layer_2() {
    let migration = migrate(TUTORIAL);

    assert_eq!(names(&migration.pools), ["default"]);
    let default = pool(&migration, "default");
    assert_eq!(default.spec, IPAddressPoolSpec::new(["192.168.2.10-192.168.2.49"]));
    assert!(default.spec.auto_assign && !default.spec.avoid_buggy_ips);
    // The 40 addresses the tutorial hands out, 192.168.2.10 first.
    let ranges = default.spec.validate().expect("a valid ironlb pool");
    assert_eq!(ranges.len(), 1);
    assert_eq!(ranges[0].first().to_string(), "192.168.2.10");
    assert_eq!(ranges[0].last().to_string(), "192.168.2.49");

    assert_eq!(names(&migration.advertisements), ["default"]);
    let adv = advertisement(&migration, "default");
    assert_eq!(adv.spec, L2AdvertisementSpec { ip_address_pools: vec!["default".to_owned()], ..Default::default() });

    assert_eq!(migration.report, Report::default(), "nothing to report for the tutorial");
    assert!(migration.pools[0].from.contains("ConfigMap metallb-system/config"), "{}", migration.pools[0].from);
}

#[test]
fn auto_assign_and_avoid_buggy_ips_are_carried() {
    let migration = migrate(MIXED);
    let public = pool(&migration, "public");
    assert!(!public.spec.auto_assign, "auto-assign: false must stay false");
    assert!(public.spec.avoid_buggy_ips, "avoid-buggy-ips: true must stay true");
    let lan = pool(&migration, "lan");
    assert!(lan.spec.auto_assign, "auto-assign defaults to true, as in MetalLB");
    assert!(!lan.spec.avoid_buggy_ips);
}

#[test]
fn mixed_config_converts_layer2_pools_and_reports_the_bgp_side() {
    let migration = migrate(MIXED);
    assert_eq!(names(&migration.pools), ["lan", "public"]);
    assert_eq!(names(&migration.advertisements), ["lan", "public"]);
    assert_eq!(pool(&migration, "lan").spec.addresses, ["192.168.2.10-192.168.2.49", "fd6c:6a7e:5f2b:2::/120"]);

    let left_out = left_out(&migration);
    assert_eq!(left_out.len(), 3, "{left_out:#?}");
    assert!(
        left_out[0].starts_with(
            r#"address-pools[2] "routed" of ConfigMap metallb-system/config (fixture.yaml): protocol: bgp;"#
        )
    );
    assert!(left_out[1].starts_with("BGP peer 10.0.0.1 (peer-asn 64501, my-asn 64500) in `peers` of ConfigMap"));
    assert!(left_out[2].starts_with(r#"BGP community "no-export" in `bgp-communities`"#));
    assert!(left_out.iter().all(|line| line.contains("BGP")), "each says why: {left_out:#?}");
    assert!(!migration.report.is_complete());
}

#[test]
fn unknown_protocol_is_reported_and_not_converted() {
    let migration = migrate(&configmap(
        "address-pools:\n- name: old\n  protocol: arp\n  addresses: [10.0.0.0/24]\n- name: new\n  protocol: layer2\n  addresses: [10.0.1.0/24]\n",
    ));
    assert_eq!(names(&migration.pools), ["new"]);
    assert_eq!(
        left_out(&migration),
        [
            r#"address-pools[0] "old" of ConfigMap metallb-system/config (fixture.yaml): unknown protocol "arp": MetalLB knows layer2 and bgp, and only layer2 has an ironlb equivalent"#
        ]
    );
}

#[test]
fn pool_without_protocol_is_reported_and_not_converted() {
    let migration = migrate(&configmap("address-pools:\n- name: p\n  addresses: [10.0.0.0/24]\n"));
    assert!(migration.is_empty());
    assert!(left_out(&migration)[0].contains("no protocol"), "{:?}", left_out(&migration));
}

#[test]
fn bad_address_is_refused_naming_pool_and_entry() {
    let invalid = refusal(BAD_ADDRESS);
    assert_eq!(invalid.errors.len(), 1);
    assert_eq!(
        invalid.errors[0].to_string(),
        r#"address-pools[0] "default" of ConfigMap metallb-system/config (fixture.yaml): address entry "192.168.3.49-192.168.3.10" is reversed: its start comes after its end; did you mean "192.168.3.10-192.168.3.49"?"#
    );
}

#[test]
fn every_problem_is_listed_at_once() {
    let invalid = refusal(&configmap(
        "address-pools:\n- name: a\n  protocol: layer2\n  addresses: [hello, 10.0.0.1]\n- name: B_pool\n  protocol: layer2\n  addresses: [10.1.0.0/24]\n",
    ));
    let messages: Vec<String> = invalid.errors.iter().map(ToString::to_string).collect();
    assert_eq!(messages.len(), 3, "{messages:#?}");
    assert!(messages[0].contains(r#""hello" is not a valid CIDR"#), "{}", messages[0]);
    assert!(
        messages[1].contains(r#""10.0.0.1" is a single address, not a CIDR or range; did you mean "10.0.0.1/32"?"#)
    );
    assert!(messages[2].contains(r#""B_pool" cannot name an ironlb IPAddressPool"#), "{}", messages[2]);
    assert!(
        invalid
            .to_string()
            .starts_with("the MetalLB configuration cannot be converted (3 problems):\n  - address-pools[0] \"a\"")
    );
}

#[test]
fn host_bits_are_dropped_as_metallb_did_and_the_report_says_so() {
    let migration =
        migrate(&configmap("address-pools:\n- name: a\n  protocol: layer2\n  addresses: [192.168.2.1/24]\n"));
    assert_eq!(pool(&migration, "a").spec.addresses, ["192.168.2.0/24"]);
    assert!(migration.report.is_complete(), "the pool means what it meant to MetalLB");
    assert_eq!(migration.report.notes.len(), 1);
    assert!(migration.report.notes[0].reason.contains(r#"written as "192.168.2.0/24""#));
}

#[test]
fn overlapping_pools_are_refused_naming_both() {
    let invalid = refusal(&configmap(
        "address-pools:\n- name: a\n  protocol: layer2\n  addresses: [192.168.2.0/24]\n- name: b\n  protocol: layer2\n  addresses: [192.168.2.200-192.168.3.10]\n",
    ));
    let message = invalid.errors[0].to_string();
    assert!(
        message
            .starts_with(r#"pools "a" and "b" share 192.168.2.200-192.168.2.255 (address-pools[0] "a" of ConfigMap"#),
        "{message}"
    );
}

#[test]
fn the_same_pool_from_the_configmap_and_from_a_resource_is_refused() {
    let both = format!(
        "{TUTORIAL}---\napiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: default, namespace: metallb-system}}\nspec: {{addresses: [10.9.0.0/24]}}\n"
    );
    let invalid = refusal(&both);
    assert!(
        invalid.errors[0]
            .to_string()
            .starts_with(r#"two IPAddressPools would be named "default": one from address-pools[0]"#),
        "{invalid}"
    );
}

#[test]
fn metallb_pool_keeps_service_allocation_and_labels() {
    let migration = migrate(CRDS);
    let web = pool(&migration, "web");
    assert_eq!(web.spec.addresses, ["192.168.2.10-192.168.2.29"]);
    assert!(!web.spec.auto_assign && web.spec.avoid_buggy_ips);
    assert_eq!(
        web.spec.service_allocation,
        Some(ServiceAllocation {
            priority: Some(10),
            namespaces: vec!["web".to_owned()],
            namespace_selectors: vec![selector("matchLabels: {team: web}")],
            service_selectors: vec![selector("matchExpressions: [{key: tier, operator: In, values: [frontend]}]")],
        })
    );
    // The L2Advertisement selects it by this label, so the label must come along.
    assert_eq!(web.metadata.labels, Some(BTreeMap::from([("zone".to_owned(), "lan".to_owned())])));
    assert_eq!(pool(&migration, "spare").spec, IPAddressPoolSpec::new(["192.168.2.30-192.168.2.49"]));
}

#[test]
fn metallb_advertisement_keeps_node_selectors_interfaces_and_pool_selectors() {
    let migration = migrate(CRDS);
    assert_eq!(names(&migration.advertisements), ["lan", "spare"]);
    assert_eq!(
        advertisement(&migration, "lan").spec,
        L2AdvertisementSpec {
            ip_address_pools: vec![],
            ip_address_pool_selectors: vec![selector("matchLabels: {zone: lan}")],
            node_selectors: vec![selector("matchLabels: {kubernetes.io/hostname: node-a}")],
            interfaces: vec!["eth0".to_owned()],
        }
    );
    assert_eq!(advertisement(&migration, "spare").spec.ip_address_pools, ["spare"]);
}

#[test]
fn pool_announced_only_over_bgp_is_left_out_and_every_bgp_kind_is_reported() {
    let migration = migrate(CRDS);
    assert_eq!(names(&migration.pools), ["web", "spare"], "routed is announced only by a BGPAdvertisement");
    let left_out = left_out(&migration);
    let subjects: Vec<&str> = left_out.iter().map(|line| line.split(':').next().unwrap_or_default()).collect();
    assert_eq!(
        subjects,
        [
            "IPAddressPool metallb-system/routed (fixture.yaml)",
            "BGPAdvertisement metallb-system/routed (fixture.yaml)",
            "BGPPeer metallb-system/router (fixture.yaml)",
            "BFDProfile metallb-system/fast (fixture.yaml)",
            "Community metallb-system/communities (fixture.yaml)",
        ]
    );
    assert!(
        left_out[0].contains("only BGPAdvertisement routed announces it and no L2Advertisement does"),
        "{}",
        left_out[0]
    );
    assert!(left_out.iter().all(|line| line.contains("no BGP speaker")), "{left_out:#?}");
}

#[test]
fn pool_no_advertisement_selects_is_converted_with_a_note() {
    let migration = migrate(
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: quiet, namespace: metallb-system}\nspec: {addresses: [10.0.0.0/24]}\n",
    );
    assert_eq!(names(&migration.pools), ["quiet"]);
    assert!(migration.advertisements.is_empty(), "MetalLB did not announce it, so neither does ironlb");
    assert!(migration.report.is_complete());
    assert!(migration.report.notes[0].reason.contains("no node answers"), "{:?}", migration.report.notes);
}

#[test]
fn fields_ironlb_lacks_are_reported_and_the_rest_converted() {
    let migration = migrate(
        "apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: a, namespace: metallb-system}\nspec: {interfaces: [eth0], futureField: 1}\n",
    );
    assert_eq!(advertisement(&migration, "a").spec.interfaces, ["eth0"]);
    assert_eq!(
        left_out(&migration),
        [
            "field spec.futureField of L2Advertisement metallb-system/a (fixture.yaml): ironlb has no such field; the rest of the object is converted without it"
        ]
    );
}

#[test]
fn deprecated_address_pool_resource_converts_like_the_configmap() {
    let migration = migrate(
        "apiVersion: metallb.io/v1beta1\nkind: AddressPool\nmetadata: {name: old, namespace: metallb-system}\nspec: {protocol: layer2, addresses: [10.0.0.0/24], autoAssign: false}\n",
    );
    assert!(!pool(&migration, "old").spec.auto_assign);
    assert_eq!(advertisement(&migration, "old").spec.ip_address_pools, ["old"]);
}
