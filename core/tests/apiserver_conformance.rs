//! Opt-in conformance check: the CEL rules in the CRD and `IPAddressPoolSpec::validate` refuse
//! exactly the same `spec.addresses` entries, with exactly the same message.
//!
//! It installs the CRDs, then dry-run-creates pools holding a few thousand entries (hand-picked
//! edge cases plus deterministic random ones, shaped to hit every rule) and compares the API
//! server's answer for each entry with the Rust one. Run it only against a throwaway API server:
//!
//! ```text
//! KUBECONFIG=/path/to/throwaway/kubeconfig \
//!     cargo test -p ironlb-core --test apiserver_conformance -- --ignored --nocapture
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use anyhow::{Context, Result};
use ironlb_core::address::parse_entry;
use ironlb_core::v1alpha1::{self, IPAddressPool, IPAddressPoolSpec, MAX_ADDRESSES, MAX_ENTRY_LENGTH};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;

/// Generated entries per run; `IRONLB_CONFORMANCE_ENTRIES` overrides it for a longer soak.
const GENERATED_ENTRIES: usize = 4000;

fn generated_entries() -> usize {
    std::env::var("IRONLB_CONFORMANCE_ENTRIES").ok().and_then(|n| n.parse().ok()).unwrap_or(GENERATED_ENTRIES)
}

#[tokio::test]
#[ignore = "needs a throwaway API server; see the module docs"]
async fn api_server_and_validate_refuse_the_same_entries_with_the_same_words() -> Result<()> {
    let client = kube::Client::try_default().await?;
    install_crds(&client).await?;
    let pools: Api<IPAddressPool> = Api::all(client);
    let corpus = corpus();
    let batch_size = usize::try_from(MAX_ADDRESSES)?;
    let mut disagreements = Vec::new();
    let mut refused: BTreeMap<&str, usize> = BTreeMap::new();
    for batch in corpus.chunks(batch_size) {
        let answers = api_server_verdicts(&pools, batch).await?;
        for (index, entry) in batch.iter().enumerate() {
            let server = answers.get(&index).cloned();
            let rust = rust_verdict(entry);
            if let Err(error) = parse_entry(entry) {
                *refused.entry(error.problem().reason()).or_default() += 1;
            }
            if server != rust {
                disagreements.push(format!("{entry:?}\n  api server: {server:?}\n  validate:   {rust:?}"));
            }
        }
    }
    println!("{} entries compared; refusals by reason: {refused:?}", corpus.len());
    assert!(
        disagreements.is_empty(),
        "{} of {} entries disagree:\n{}",
        disagreements.len(),
        corpus.len(),
        disagreements.join("\n")
    );
    Ok(())
}

/// The message `validate` gives for a pool holding only `entry`.
fn rust_verdict(entry: &str) -> Option<String> {
    IPAddressPoolSpec::new([entry]).validate().err().map(|invalid| invalid.to_string())
}

/// The API server's messages for a pool holding `entries`, by entry index.
async fn api_server_verdicts(pools: &Api<IPAddressPool>, entries: &[String]) -> Result<BTreeMap<usize, String>> {
    let pool = IPAddressPool::new("conformance", IPAddressPoolSpec::new(entries.iter().cloned()));
    let params = PostParams { dry_run: true, field_manager: None };
    let status = match pools.create(&params, &pool).await {
        Ok(_) => return Ok(BTreeMap::new()),
        Err(kube::Error::Api(status)) if status.code == 422 => status,
        Err(error) => return Err(error).context("dry-run create"),
    };
    let mut verdicts: BTreeMap<usize, String> = BTreeMap::new();
    for cause in status.details.map(|details| details.causes).unwrap_or_default() {
        let index = cause
            .field
            .strip_prefix("spec.addresses[")
            .and_then(|rest| rest.strip_suffix(']'))
            .and_then(|index| index.parse::<usize>().ok())
            .with_context(|| format!("unexpected cause {cause:?}"))?;
        // The cause reads `Invalid value: "<entry>": <message>`; keep the message.
        let message = match cause.message.find("spec.addresses entry ") {
            Some(start) => cause.message[start..].to_owned(),
            None => cause.message.clone(),
        };
        verdicts
            .entry(index)
            .and_modify(|earlier| {
                earlier.push_str(" AND ");
                earlier.push_str(&message);
            })
            .or_insert(message);
    }
    Ok(verdicts)
}

async fn install_crds(client: &kube::Client) -> Result<()> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply("ironlb-core-conformance").force();
    for crd in v1alpha1::crds() {
        let name = crd.metadata.name.clone().context("CRD without a name")?;
        crds.patch(&name, &params, &Patch::Apply(&crd)).await?;
        for _ in 0..60 {
            let established =
                crds.get(&name).await?.status.and_then(|status| status.conditions).is_some_and(|conditions| {
                    conditions.iter().any(|c| c.type_ == "Established" && c.status == "True")
                });
            if established {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    // The CRD is established before the validators of its new revision are in place everywhere.
    tokio::time::sleep(Duration::from_secs(2)).await;
    Ok(())
}

/// Hand-picked edge cases and generated entries: unique (a list-type set refuses duplicates),
/// and no longer than the schema's maxLength (that refusal is not a CEL one).
fn corpus() -> Vec<String> {
    let mut entries: BTreeSet<String> = EDGE_CASES.iter().map(|&entry| entry.to_owned()).collect();
    let mut runner = TestRunner::deterministic();
    let strategy = entry();
    let wanted = generated_entries();
    let mut attempts = 0;
    while entries.len() < EDGE_CASES.len() + wanted && attempts < 20 * wanted {
        attempts += 1;
        if let Ok(tree) = strategy.new_tree(&mut runner) {
            entries.insert(tree.current());
        }
    }
    let max_length = usize::try_from(MAX_ENTRY_LENGTH).unwrap_or(usize::MAX);
    entries.into_iter().filter(|entry| entry.chars().count() <= max_length).collect()
}

const EDGE_CASES: &[&str] = &[
    "192.168.2.10-192.168.2.49",
    "192.168.2.49-192.168.2.10",
    "10.0.0.0/8",
    "10.0.0.300/24",
    "192.168.2.1/24",
    "10.0.0.5/30",
    "0.0.0.0/0",
    "255.255.255.255/32",
    "fd00::/64",
    "fd00::1/64",
    "::/0",
    "::1/0",
    "fd00::ff - fd00::10",
    "fd00::10 - fd00::ff",
    "192.168.2.10-fd00::1",
    "192.168.2.10",
    "fd00::1",
    "fe80::1%eth0",
    "fe80::1%eth0/64",
    "::ffff:192.168.2.0/120",
    "::ffff:1.2.3.4-::ffff:1.2.3.9",
    "::FFFF:c0a8:20a-::ffff:c0a8:20f",
    "::fffe:1.2.3.4/128",
    "64:ff9b::192.0.2.1-64:ff9b::192.0.2.0",
    "::1.2.3.4-::102:303",
    "1:2:3:4:5:6:7::/128",
    "1::2:3:4:5:6:7:8/128",
    "10.0.0.0/08",
    "10.0.0.0/+8",
    "10.0.0.0/",
    "10.0.0.0/33",
    "::/129",
    "010.0.0.1-10.0.0.2",
    "1.2.3.4-1.2.3.5-1.2.3.6",
    "1.2.3.4-",
    "-1.2.3.4",
    "-",
    "/",
    "",
    " ",
    "hello",
    " 10.0.0.0/24 ",
    "\t10.0.0.1 -\t10.0.0.2",
    "10.0.0.0/8-10.0.1.0/8",
    "0.0.0.1-0.0.0.0",
    "255.255.255.255-0.0.0.0",
    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff-::",
    "::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    "8000::-7fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    "2001:DB8::-2001:db8::ffff",
    "2001:db8::1-2001:DB8::1",
    "fd00::1\nfd00::2",
    // Blocks no LAN address can be (issue list), their boundaries, and ranges spanning them.
    "224.0.0.0/24",
    "ff02::/16",
    "127.0.0.0/8",
    "::1",
    "::1/128",
    "::/128",
    "169.254.0.0/16",
    "fe80::/64",
    "fe80::/10",
    "fe80::1/64",
    "127.0.0.1/8",
    "1.2.3.4/0",
    "126.255.255.255/32",
    "127.0.0.0/32",
    "127.255.255.255/32",
    "128.0.0.0/32",
    "0.255.255.255/32",
    "1.0.0.0/32",
    "169.253.255.255/32",
    "169.254.0.0/32",
    "169.254.255.255/32",
    "169.255.0.0/32",
    "223.255.255.255/32",
    "224.0.0.0/32",
    "239.255.255.255/32",
    "240.0.0.0/32",
    "240.0.0.0-255.255.255.254",
    "240.0.0.0-255.255.255.255",
    "126.0.0.0-128.0.0.0",
    "128.0.0.0-126.0.0.0",
    "126.255.255.255-128.0.0.0",
    "127.0.0.9-127.0.0.1",
    "0.0.0.0-0.0.0.1",
    "169.253.0.0-169.255.0.0",
    "200.0.0.0 - 224.0.0.0",
    "::2/127",
    "::-::2",
    "::2-::3",
    "fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128",
    "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128",
    "fec0::/10",
    "fe00::-ff00::",
    "feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff-fe00::",
    "FF02::1/128",
    // Whitespace: both sides trim the entry and the ends of a range, and nothing else.
    "1.2.3.4 - 1.2.3.9",
    " 10.0.0.0/8",
    "10.0.0.0/8\n",
    "1.2.3.4\n-\n1.2.3.9",
    "\u{a0}10.0.0.0/8\u{3000}",
    "\u{200b}10.0.0.0/8",
    "10.0.0.0 /8",
    "10.0.0.0/ 8",
    "10.0.0.0\t/8",
    "1.2.3. 4-1.2.3.9",
    "1.2.3.4 1.2.3.9",
    "fd00:: 1/128",
];

/// A string shaped like a pool entry, valid or not.
fn entry() -> BoxedStrategy<String> {
    let address = prop_oneof![ipv4(), ipv6()];
    prop_oneof![
        3 => (address.clone(), prefix_length()).prop_map(|(a, len)| format!("{a}/{len}")),
        3 => range(),
        1 => address.clone(),
        1 => (address, prefix_length(), separator()).prop_map(|(a, len, sep)| format!("{a}/{len}{sep}{a}")),
        1 => (range(), separator(), ipv4()).prop_map(|(r, sep, a)| format!("{r}{sep}{a}")),
        2 => (prop_oneof![range(), (ipv6(), prefix_length()).prop_map(|(a, l)| format!("{a}/{l}"))], any::<usize>(), prop::sample::select(NOISE.to_vec()))
            .prop_map(|(e, at, noise)| mutate(&e, at, noise)),
    ]
    .boxed()
}

const NOISE: &[&str] = &["", ":", "::", ".", "/", "-", "%", " ", "0", "f", "F", "g", "ffff", "1.2.3.4"];

/// Replaces the character at `at` (modulo the length) with `noise`.
fn mutate(entry: &str, at: usize, noise: &str) -> String {
    let chars: Vec<char> = entry.chars().collect();
    if chars.is_empty() {
        return noise.to_owned();
    }
    let at = at % chars.len();
    let mut out: String = chars[..at].iter().collect();
    out.push_str(noise);
    out.extend(&chars[at + 1..]);
    out
}

fn separator() -> BoxedStrategy<&'static str> {
    prop::sample::select(vec!["-", " - ", "- ", " -", "\t-\t"]).boxed()
}

fn prefix_length() -> BoxedStrategy<String> {
    prop_oneof![
        8 => (0u32..=129).prop_map(|len| len.to_string()),
        1 => (0u32..=40).prop_map(|len| format!("0{len}")),
        1 => prop::sample::select(vec!["".to_owned(), "+8".to_owned(), "-1".to_owned(), "1000".to_owned()]),
    ]
    .boxed()
}

/// Two ends, often close together so the reversed-range check is exercised at every bit.
fn range() -> BoxedStrategy<String> {
    let v4 = (any::<u32>(), 0u32..32, any::<bool>(), separator()).prop_map(|(start, bit, flip, sep)| {
        let end = if flip { start ^ (1 << bit) } else { start.wrapping_add(bit) };
        format!("{}{sep}{}", Ipv4Addr::from(start), Ipv4Addr::from(end))
    });
    let v6 = (ipv6_number(), 0u32..128, any::<bool>(), separator(), spelling(), spelling()).prop_map(
        |(start, bit, flip, sep, start_spelling, end_spelling)| {
            let end = if flip { start ^ (1 << bit) } else { start.wrapping_add(u128::from(bit)) };
            format!("{}{sep}{}", spell(start, start_spelling), spell(end, end_spelling))
        },
    );
    let mixed = (ipv4(), ipv6(), any::<bool>(), separator())
        .prop_map(|(a, b, swap, sep)| if swap { format!("{b}{sep}{a}") } else { format!("{a}{sep}{b}") });
    prop_oneof![3 => v4, 4 => v6, 1 => mixed].boxed()
}

fn ipv4() -> BoxedStrategy<String> {
    prop_oneof![
        8 => any::<u32>().prop_map(|n| Ipv4Addr::from(n).to_string()),
        1 => any::<[u8; 4]>().prop_map(|[a, b, c, d]| format!("{a}.{b}.0{c}.{d}")),
        1 => any::<[u16; 4]>().prop_map(|[a, b, c, d]| format!("{a}.{b}.{c}.{d}")),
    ]
    .boxed()
}

fn ipv6() -> BoxedStrategy<String> {
    prop_oneof![
        8 => (ipv6_number(), spelling()).prop_map(|(n, how)| spell(n, how)),
        1 => (any::<u32>(), spelling()).prop_map(|(v4, how)| spell(0xffff_0000_0000 | u128::from(v4), how)),
        1 => ipv6_number().prop_map(|n| format!("{}%eth0", Ipv6Addr::from(n))),
    ]
    .boxed()
}

/// Addresses with runs of zero groups, as real ones have.
fn ipv6_number() -> BoxedStrategy<u128> {
    prop::array::uniform8(prop_oneof![3 => Just(0u16), 1 => Just(0xffff), 3 => any::<u16>()])
        .prop_map(|groups| groups.iter().fold(0u128, |acc, &group| (acc << 16) | u128::from(group)))
        .boxed()
}

#[derive(Clone, Copy, Debug)]
enum Spelling {
    Canonical,
    Expanded,
    Padded,
    Upper,
    EmbeddedIpv4,
}

fn spelling() -> BoxedStrategy<Spelling> {
    prop::sample::select(vec![
        Spelling::Canonical,
        Spelling::Canonical,
        Spelling::Expanded,
        Spelling::Padded,
        Spelling::Upper,
        Spelling::EmbeddedIpv4,
    ])
    .boxed()
}

fn spell(n: u128, how: Spelling) -> String {
    let address = Ipv6Addr::from(n);
    let groups = address.segments();
    match how {
        Spelling::Canonical => address.to_string(),
        Spelling::Expanded => groups.iter().map(|g| format!("{g:x}")).collect::<Vec<_>>().join(":"),
        Spelling::Padded => groups.iter().map(|g| format!("{g:04x}")).collect::<Vec<_>>().join(":"),
        Spelling::Upper => address.to_string().to_uppercase(),
        Spelling::EmbeddedIpv4 => {
            let head: Vec<String> = groups[..6].iter().map(|g| format!("{g:x}")).collect();
            let [a, b, c, d] = (u32::try_from(n & 0xffff_ffff).unwrap_or(0)).to_be_bytes();
            format!("{}:{a}.{b}.{c}.{d}", head.join(":"))
        }
    }
}

#[test]
fn mutation_replaces_one_character() {
    assert_eq!(mutate("abc", 1, "::"), "a::c");
    assert_eq!(mutate("", 3, "x"), "x");
}

#[test]
fn corpus_is_unique_and_within_the_length_limit() {
    let corpus = corpus();
    assert!(corpus.len() > GENERATED_ENTRIES / 2);
    assert!(corpus.iter().all(|entry| entry.chars().count() <= 100));
    assert!(corpus.iter().any(String::is_empty), "the empty entry is a deliberate edge case");
}
