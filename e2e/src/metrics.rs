//! The Prometheus text exposition format, as the lab's speakers, operators and the API server
//! serve it on `/metrics`: parsed into samples, summed by name and labels.

use std::collections::BTreeMap;

/// One sample line: `name{label="value",...} value [timestamp]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The sample's name, e.g. `apiserver_request_total` or `..._bucket`.
    pub name: String,
    /// Its labels, unescaped.
    pub labels: BTreeMap<String, String>,
    /// Its value.
    pub value: f64,
}

/// A parsed exposition. Comment lines (`# HELP`, `# TYPE`) and lines that do not parse are
/// skipped.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    samples: Vec<Sample>,
}

impl Metrics {
    /// Parses the text of a `/metrics` response.
    pub fn parse(text: &str) -> Self {
        Self { samples: text.lines().filter_map(parse_line).collect() }
    }

    /// Every sample.
    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }

    /// The sum of every sample named `name` that has each of `labels` (name, value); 0 when
    /// there is none. Labels not given may have any value.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|sample| {
                sample.name == name
                    && labels.iter().all(|(key, value)| sample.labels.get(*key).is_some_and(|v| v == value))
            })
            .map(|sample| sample.value)
            .sum()
    }
}

fn parse_line(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line.find(|c: char| c == '{' || c.is_whitespace())?;
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(after_brace) = rest.strip_prefix('{') {
        rest = after_brace;
        loop {
            rest = rest.trim_start_matches([' ', ',']);
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let (key, after_key) = rest.split_once('=')?;
            let (value, after_value) = quoted(after_key.trim_start())?;
            labels.insert(key.trim().to_owned(), value);
            rest = after_value;
        }
    }
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other.parse().ok()?,
    };
    Some(Sample { name: name.to_owned(), labels, value })
}

/// A double-quoted label value at the start of `text` (escapes `\\`, `\"`, `\n`), and what
/// follows it.
fn quoted(text: &str) -> Option<(String, &str)> {
    let mut chars = text.strip_prefix('"')?.char_indices();
    let mut value = String::new();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((value, &text[i + 2..])),
            '\\' => match chars.next()?.1 {
                'n' => value.push('\n'),
                other => value.push(other),
            },
            other => value.push(other),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"# HELP apiserver_request_total [STABLE] Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, scope, component, and HTTP response code.
# TYPE apiserver_request_total counter
apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="services",scope="namespace",subresource="",verb="POST",version="v1"} 10000
apiserver_request_total{code="200",component="apiserver",dry_run="",group="ironlb.io",resource="ipaddresspools",scope="resource",subresource="status",verb="APPLY",version="v1alpha1"} 12
apiserver_request_total{code="409",component="apiserver",dry_run="",group="ironlb.io",resource="ipaddresspools",scope="resource",subresource="status",verb="APPLY",version="v1alpha1"} 3
apiserver_request_body_size_bytes_bucket{resource="ipaddresspools",verb="patch",le="50000"} 4
apiserver_request_body_size_bytes_bucket{resource="ipaddresspools",verb="patch",le="+Inf"} 15
apiserver_request_body_size_bytes_sum{resource="ipaddresspools",verb="patch"} 1.2345e+06
apiserver_request_body_size_bytes_count{resource="ipaddresspools",verb="patch"} 15
odd_label_value{path="a \"quoted\", {braced} \\ value"} 7 1700000000000
ironlb_speaker_announced_addresses{family="ipv4"} 1667
process_cpu_seconds_total 12.5
"#;

    #[test]
    fn samples_are_summed_by_name_and_labels() {
        let metrics = Metrics::parse(SAMPLE);
        assert_eq!(metrics.sum("apiserver_request_total", &[("resource", "ipaddresspools")]), 15.0);
        assert_eq!(metrics.sum("apiserver_request_total", &[("resource", "ipaddresspools"), ("code", "409")]), 3.0);
        assert_eq!(metrics.sum("apiserver_request_total", &[]), 10_015.0);
        assert_eq!(metrics.sum("apiserver_request_total", &[("resource", "leases")]), 0.0);
        // A label value is matched whole, not as a substring.
        assert_eq!(metrics.sum("apiserver_request_total", &[("resource", "service")]), 0.0);
        assert_eq!(metrics.sum("apiserver_request_body_size_bytes_sum", &[("verb", "patch")]), 1_234_500.0);
        assert_eq!(metrics.sum("apiserver_request_body_size_bytes_bucket", &[("le", "+Inf")]), 15.0);
        assert_eq!(metrics.sum("ironlb_speaker_announced_addresses", &[("family", "ipv4")]), 1_667.0);
        assert_eq!(metrics.sum("process_cpu_seconds_total", &[]), 12.5);
    }

    #[test]
    fn label_values_are_unescaped_and_timestamps_ignored() {
        let metrics = Metrics::parse(SAMPLE);
        let odd = metrics.samples().iter().find(|s| s.name == "odd_label_value").expect("parsed");
        assert_eq!(odd.labels["path"], r#"a "quoted", {braced} \ value"#);
        assert_eq!(odd.value, 7.0);
        assert_eq!(metrics.samples().len(), 10);
    }
}
