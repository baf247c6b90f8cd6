//! Reading what to convert: YAML documents from files or stdin, and objects from the cluster,
//! sorted by what they are.
//!
//! Data flow: [`crate::migrate`] hands each file's text to [`Inputs::add_yaml`] and
//! [`crate::cluster`] hands each object it read to [`Inputs::add_object`]. A document is
//! classified by `apiVersion` and `kind`: MetalLB's legacy ConfigMap ([`crate::legacy`]), a
//! `metallb.io` object ([`crate::metallb_crds`]), a `List` (whose items are classified in
//! turn), a bare legacy configuration (a document with `address-pools:` at its top), or
//! anything else, which is listed as ignored. Nothing is converted here: [`crate::convert`]
//! works on the sorted [`Inputs`], each piece carrying its [`Origin`] for messages.

use std::fmt;
use std::path::{Path, PathBuf};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use thiserror::Error;

use crate::legacy::{self, ConfigFile};
use crate::metallb_crds::{self, AddressPoolSpec, BGPAdvertisementSpec, IPAddressPoolSpec, Kind, L2AdvertisementSpec};

/// Where a document came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A file given with `-f`.
    File(PathBuf),
    /// `-f -`.
    Stdin,
    /// `--from-cluster`.
    Cluster,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => write!(f, "{}", path.display()),
            Self::Stdin => f.write_str("stdin"),
            Self::Cluster => f.write_str("the cluster"),
        }
    }
}

/// An object as messages name it: `ConfigMap metallb-system/config (tutorial.yaml)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// `ConfigMap`, `IPAddressPool`, ...
    pub kind: String,
    /// `metadata.namespace`, when set.
    pub namespace: Option<String>,
    /// `metadata.name` (empty for a bare legacy configuration).
    pub name: String,
    /// The file, stdin or the cluster.
    pub source: Source,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.kind)?;
        match (&self.namespace, self.name.as_str()) {
            (_, "") => {}
            (Some(namespace), name) => write!(f, " {namespace}/{name}")?,
            (None, name) => write!(f, " {name}")?,
        }
        write!(f, " ({})", self.source)
    }
}

/// A MetalLB object read from some source: where it came from, its metadata and its spec.
#[derive(Clone, Debug, PartialEq)]
pub struct Found<T> {
    /// Where it came from, for messages.
    pub origin: Origin,
    /// Its `metadata` (the name; labels matter to pool selectors).
    pub metadata: ObjectMeta,
    /// What it says.
    pub spec: T,
}

impl<T> Found<T> {
    /// `metadata.name`, empty when missing.
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }
}

/// Everything read, sorted by what it is, in the order read.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    /// Legacy configurations (ConfigMaps or bare documents).
    pub legacy: Vec<Found<ConfigFile>>,
    /// `metallb.io` `IPAddressPool`s.
    pub pools: Vec<Found<IPAddressPoolSpec>>,
    /// `metallb.io` `L2Advertisement`s.
    pub l2_advertisements: Vec<Found<L2AdvertisementSpec>>,
    /// `metallb.io` `BGPAdvertisement`s.
    pub bgp_advertisements: Vec<Found<BGPAdvertisementSpec>>,
    /// `metallb.io/v1beta1` `AddressPool`s (deprecated).
    pub address_pools: Vec<Found<AddressPoolSpec>>,
    /// `metallb.io` objects ironlb has no counterpart for, with the reason.
    pub unconvertible: Vec<(Origin, String)>,
    /// Documents that are not MetalLB configuration, with the reason they were skipped.
    pub ignored: Vec<(Origin, String)>,
}

/// A document that cannot be read as what it claims to be.
#[derive(Debug, Error)]
pub enum InputError {
    /// A file (or stdin) cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The path as given.
        path: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// Not YAML at all.
    #[error("{source_name}, document {document}: not valid YAML: {error}")]
    Yaml {
        /// The file, stdin or the cluster.
        source_name: Source,
        /// 1-based position among the file's `---`-separated documents.
        document: usize,
        /// The parser's message, with the line.
        error: serde_yaml::Error,
    },
    /// A MetalLB object whose fields do not have MetalLB's types.
    #[error("{origin} is not a valid MetalLB {kind}: {error}")]
    Malformed {
        /// The object (boxed: errors stay small on the happy path).
        origin: Box<Origin>,
        /// The kind it claims.
        kind: String,
        /// What does not fit.
        error: serde_json::Error,
    },
    /// A legacy configuration whose keys do not have MetalLB's shape.
    #[error("the MetalLB configuration in {origin} is malformed: {error}")]
    MalformedLegacy {
        /// The ConfigMap or document.
        origin: Box<Origin>,
        /// serde_yaml's message, naming the key.
        error: serde_yaml::Error,
    },
}

impl Inputs {
    /// Reads a file given with `-f`: `-` is stdin, a directory contributes its `.yaml`, `.yml`
    /// and `.json` files in name order (as `kubectl apply -f DIR` does).
    ///
    /// # Errors
    ///
    /// A file cannot be read, or a document in it cannot be parsed.
    pub fn add_path(&mut self, path: &Path) -> Result<(), InputError> {
        let read_error = |source| InputError::Read { path: path.display().to_string(), source };
        if path == Path::new("-") {
            let text = std::io::read_to_string(std::io::stdin()).map_err(read_error)?;
            return self.add_yaml(&text, &Source::Stdin);
        }
        if path.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(read_error)?
                .filter_map(|entry| entry.ok().map(|entry| entry.path()))
                .filter(|file| file.extension().is_some_and(|ext| ext == "yaml" || ext == "yml" || ext == "json"))
                .collect();
            files.sort();
            return files.iter().try_for_each(|file| self.add_path(file));
        }
        let text = std::fs::read_to_string(path).map_err(read_error)?;
        self.add_yaml(&text, &Source::File(path.to_owned()))
    }

    /// Adds every document of a multi-document YAML (or JSON) text.
    ///
    /// # Errors
    ///
    /// A document is not YAML, or is a MetalLB object of the wrong shape.
    pub fn add_yaml(&mut self, text: &str, source: &Source) -> Result<(), InputError> {
        for (index, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
            let yaml_error = |error| InputError::Yaml { source_name: source.clone(), document: index + 1, error };
            let value = serde_yaml::Value::deserialize(document).map_err(yaml_error)?;
            if value.is_null() {
                continue;
            }
            if !value.get("kind").is_some_and(serde_yaml::Value::is_string) && legacy::looks_like_metallb(&value) {
                let origin = origin("MetalLB configuration", None, "", source);
                self.add_legacy(origin, ObjectMeta::default(), legacy::from_value(value))?;
                continue;
            }
            let json = serde_json::to_value(&value)
                .map_err(|error| yaml_error(serde::de::Error::custom(format!("cannot be read as JSON: {error}"))))?;
            self.add_object(json, source)?;
        }
        Ok(())
    }

    /// Adds one object (a `List` adds its items).
    ///
    /// # Errors
    ///
    /// It is a MetalLB object, or MetalLB's ConfigMap, whose fields have the wrong shape.
    pub fn add_object(&mut self, object: Value, source: &Source) -> Result<(), InputError> {
        let api_version = object.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
        let kind = object.get("kind").and_then(Value::as_str).unwrap_or_default().to_owned();
        let group = api_version.rsplit_once('/').map_or("", |(group, _version)| group);
        let metadata: ObjectMeta =
            object.get("metadata").and_then(|m| serde_json::from_value(m.clone()).ok()).unwrap_or_default();
        let origin = origin(
            if kind.is_empty() { "a document without a kind" } else { &kind },
            metadata.namespace.as_deref(),
            metadata.name.as_deref().unwrap_or_default(),
            source,
        );
        if kind.ends_with("List")
            && let Some(items) = object.get("items").and_then(Value::as_array)
        {
            return items.iter().try_for_each(|item| self.add_object(item.clone(), source));
        }
        match (group, kind.as_str()) {
            ("", "ConfigMap") => self.add_configmap(origin, metadata, &object),
            (metallb_crds::GROUP, _) => self.add_metallb(origin, metadata, &object),
            _ => {
                self.ignored.push((origin, "not a MetalLB resource".to_owned()));
                Ok(())
            }
        }
    }

    fn add_configmap(&mut self, origin: Origin, metadata: ObjectMeta, object: &Value) -> Result<(), InputError> {
        let Some(text) = object.pointer("/data/config").and_then(Value::as_str) else {
            self.ignored.push((origin, "a ConfigMap without a `config` key is not MetalLB's configuration".to_owned()));
            return Ok(());
        };
        self.add_legacy(origin, metadata, legacy::parse(text))
    }

    fn add_legacy(
        &mut self,
        origin: Origin,
        metadata: ObjectMeta,
        parsed: Result<Option<ConfigFile>, serde_yaml::Error>,
    ) -> Result<(), InputError> {
        match parsed {
            Ok(Some(spec)) => self.legacy.push(Found { origin, metadata, spec }),
            Ok(None) => self.ignored.push((
                origin,
                format!("its `config` names none of MetalLB's settings ({})", legacy::KNOWN_KEYS.join(", ")),
            )),
            Err(error) => return Err(InputError::MalformedLegacy { origin: Box::new(origin), error }),
        }
        Ok(())
    }

    fn add_metallb(&mut self, origin: Origin, metadata: ObjectMeta, object: &Value) -> Result<(), InputError> {
        let kind = Kind::of(&origin.kind);
        match kind {
            Kind::IPAddressPool => self.pools.push(found(origin, metadata, object)?),
            Kind::L2Advertisement => self.l2_advertisements.push(found(origin, metadata, object)?),
            Kind::BGPAdvertisement => {
                let advertisement = found(origin.clone(), metadata, object)?;
                self.bgp_advertisements.push(advertisement);
                self.unconvertible.push((origin, kind.why_not_converted().unwrap_or_default()));
            }
            Kind::AddressPool => self.address_pools.push(found(origin, metadata, object)?),
            Kind::Status(_) => {
                self.ignored.push((origin, "MetalLB's own status record; ironlb keeps its own".to_owned()));
            }
            Kind::BGPPeer | Kind::BFDProfile | Kind::Community | Kind::Other(_) => {
                self.unconvertible.push((origin, kind.why_not_converted().unwrap_or_default()));
            }
        }
        Ok(())
    }

    /// Whether nothing MetalLB-related was read.
    pub fn is_empty(&self) -> bool {
        self.legacy.is_empty()
            && self.pools.is_empty()
            && self.l2_advertisements.is_empty()
            && self.bgp_advertisements.is_empty()
            && self.address_pools.is_empty()
            && self.unconvertible.is_empty()
    }
}

fn origin(kind: &str, namespace: Option<&str>, name: &str, source: &Source) -> Origin {
    Origin {
        kind: kind.to_owned(),
        namespace: namespace.map(str::to_owned),
        name: name.to_owned(),
        source: source.clone(),
    }
}

/// The object's spec as `T`; a missing spec is an empty one (MetalLB's defaults).
fn found<T: DeserializeOwned + Default>(
    origin: Origin,
    metadata: ObjectMeta,
    object: &Value,
) -> Result<Found<T>, InputError> {
    let spec = match object.get("spec") {
        None | Some(Value::Null) => T::default(),
        Some(spec) => serde_json::from_value(spec.clone()).map_err(|error| InputError::Malformed {
            kind: origin.kind.clone(),
            origin: Box::new(origin.clone()),
            error,
        })?,
    };
    Ok(Found { origin, metadata, spec })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(yaml: &str) -> Inputs {
        let mut inputs = Inputs::default();
        inputs.add_yaml(yaml, &Source::Stdin).expect("reads");
        inputs
    }

    #[test]
    fn a_list_contributes_its_items() {
        let inputs = read(
            "apiVersion: v1\nkind: List\nitems:\n- apiVersion: metallb.io/v1beta1\n  kind: IPAddressPool\n  metadata: {name: a}\n  spec: {addresses: [10.0.0.0/24]}\n- apiVersion: metallb.io/v1beta1\n  kind: L2Advertisement\n  metadata: {name: b}\n",
        );
        assert_eq!(inputs.pools.len(), 1);
        assert_eq!(inputs.l2_advertisements.len(), 1);
    }

    #[test]
    fn a_bare_configuration_is_read_like_the_configmaps_key() {
        let inputs = read("address-pools:\n- name: a\n  protocol: layer2\n  addresses: [10.0.0.0/24]\n");
        assert_eq!(inputs.legacy.len(), 1);
        assert_eq!(inputs.legacy[0].origin.to_string(), "MetalLB configuration (stdin)");
    }

    #[test]
    fn other_objects_are_listed_as_ignored() {
        let inputs = read(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: controller, namespace: metallb-system}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: other}\ndata: {x: y}\n",
        );
        assert!(inputs.is_empty());
        let ignored: Vec<String> = inputs.ignored.iter().map(|(origin, _)| origin.to_string()).collect();
        assert_eq!(ignored, ["Deployment metallb-system/controller (stdin)", "ConfigMap other (stdin)"]);
    }

    #[test]
    fn a_metallb_object_of_the_wrong_shape_is_an_error_naming_it() {
        let mut inputs = Inputs::default();
        let error = inputs
            .add_yaml(
                "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: p, namespace: metallb-system}\nspec: {addresses: 10.0.0.0/24}\n",
                &Source::Stdin,
            )
            .expect_err("refused");
        let message = error.to_string();
        assert!(
            message.starts_with("IPAddressPool metallb-system/p (stdin) is not a valid MetalLB IPAddressPool"),
            "{message}"
        );
    }

    #[test]
    fn broken_yaml_names_the_document() {
        let mut inputs = Inputs::default();
        let error = inputs.add_yaml("kind: A\n---\nkind: [\n", &Source::Stdin).expect_err("refused");
        assert!(error.to_string().starts_with("stdin, document 2: not valid YAML"), "{error}");
    }
}
