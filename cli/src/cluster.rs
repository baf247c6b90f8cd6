//! `--from-cluster`: reading MetalLB's configuration from a running cluster.
//!
//! Data flow: [`read`] connects like kubectl (the kubeconfig, or the in-cluster service
//! account), fetches the legacy ConfigMap and lists every `metallb.io` resource in MetalLB's
//! namespace, and hands each object to [`Inputs::add_object`], exactly as if it had been read
//! from a file. It only reads. A missing ConfigMap or a cluster without the `metallb.io` API
//! group is not an error (MetalLB v0.13+ has no ConfigMap, v0.12 no custom resources); each
//! becomes a line of the returned description instead, so the user sees what was looked at.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DynamicObject, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::{self, Scope, verbs};
use kube::{Client, Config};
use thiserror::Error;

use crate::input::{InputError, Inputs, Source};
use crate::metallb_crds::{self, Kind};

/// Where to look.
#[derive(Clone, Debug)]
pub struct ClusterSource {
    /// MetalLB's namespace.
    pub namespace: String,
    /// The legacy ConfigMap's name.
    pub configmap: String,
    /// A kubeconfig file instead of kube's default search (`$KUBECONFIG`, `~/.kube/config`, in-cluster).
    pub kubeconfig: Option<std::path::PathBuf>,
    /// A kubeconfig context instead of the current one.
    pub context: Option<String>,
}

/// Why the cluster could not be read.
#[derive(Debug, Error)]
pub enum ClusterError {
    /// No usable kubeconfig or in-cluster configuration.
    #[error("cannot configure a Kubernetes client: {0}")]
    Config(String),
    /// A request failed (other than the 404s that mean "MetalLB has none of these").
    #[error("cannot read {what} from the cluster: {source}")]
    Request {
        /// What was being read.
        what: String,
        /// The client's error.
        source: kube::Error,
    },
    /// An object the client returned cannot be turned back into JSON (not expected).
    #[error("cannot read {what}: {source}")]
    Decode {
        /// What was being read.
        what: String,
        /// serde_json's error.
        source: serde_json::Error,
    },
    /// What the cluster returned is not valid MetalLB configuration.
    #[error(transparent)]
    Input(#[from] InputError),
}

/// Reads MetalLB's configuration into `inputs`; returns one line per thing looked at, for the
/// output's header and the report (e.g. `ConfigMap metallb-system/config: not found`).
///
/// # Errors
///
/// The cluster cannot be reached, refuses a read (e.g. RBAC), or returns malformed objects.
pub fn read(source: &ClusterSource, inputs: &mut Inputs) -> Result<Vec<String>, ClusterError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| ClusterError::Config(format!("cannot start the async runtime: {error}")))?;
    runtime.block_on(read_async(source, inputs))
}

async fn read_async(source: &ClusterSource, inputs: &mut Inputs) -> Result<Vec<String>, ClusterError> {
    let client = client(source).await?;
    let namespace = &source.namespace;
    let mut looked_at = Vec::new();

    let what = format!("ConfigMap {namespace}/{}", source.configmap);
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    match configmaps.get_opt(&source.configmap).await {
        Ok(Some(configmap)) => {
            inputs.add_object(to_value(&configmap, &what)?, &Source::Cluster)?;
            looked_at.push(format!("{what} (cluster)"));
        }
        Ok(None) => looked_at.push(format!("{what} (cluster): not found")),
        Err(source) => return Err(ClusterError::Request { what, source }),
    }

    let group = match discovery::group(&client, metallb_crds::GROUP).await {
        Ok(group) => group,
        Err(kube::Error::Discovery(_)) => {
            looked_at.push(format!("{} resources (cluster): the API group is not installed", metallb_crds::GROUP));
            return Ok(looked_at);
        }
        Err(source) => {
            return Err(ClusterError::Request { what: format!("the {} API group", metallb_crds::GROUP), source });
        }
    };
    // Each kind at its most stable version (BGPPeer is v1beta2, the others v1beta1).
    for (resource, capabilities) in group.resources_by_stability() {
        if capabilities.scope != Scope::Namespaced || !capabilities.supports_operation(verbs::LIST) {
            continue;
        }
        // MetalLB writes these for itself; there is nothing to migrate in them.
        if matches!(Kind::of(&resource.kind), Kind::Status(_)) {
            continue;
        }
        let what = format!("{} in namespace {namespace}", resource.plural);
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
        let list = match api.list(&ListParams::default()).await {
            Ok(list) => list,
            // A CRD removed between discovery and listing, or a version no longer served.
            Err(kube::Error::Api(status)) if status.code == 404 => continue,
            Err(source) => return Err(ClusterError::Request { what, source }),
        };
        looked_at.push(format!("{} {} in namespace {namespace} (cluster)", list.items.len(), resource.plural));
        for mut object in list.items {
            // List items come without apiVersion and kind; classification needs them.
            object.types =
                Some(kube::api::TypeMeta { api_version: resource.api_version.clone(), kind: resource.kind.clone() });
            inputs.add_object(to_value(&object, &what)?, &Source::Cluster)?;
        }
    }
    Ok(looked_at)
}

async fn client(source: &ClusterSource) -> Result<Client, ClusterError> {
    let options = KubeConfigOptions { context: source.context.clone(), ..KubeConfigOptions::default() };
    let config = match (&source.kubeconfig, &source.context) {
        (Some(path), _) => {
            let kubeconfig = Kubeconfig::read_from(path)
                .map_err(|error| ClusterError::Config(format!("cannot read {}: {error}", path.display())))?;
            Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .map_err(|error| ClusterError::Config(error.to_string()))
        }
        (None, Some(_)) => {
            Config::from_kubeconfig(&options).await.map_err(|error| ClusterError::Config(error.to_string()))
        }
        (None, None) => Config::infer().await.map_err(|error| ClusterError::Config(error.to_string())),
    }?;
    Client::try_from(config).map_err(|error| ClusterError::Config(error.to_string()))
}

fn to_value(object: &impl serde::Serialize, what: &str) -> Result<serde_json::Value, ClusterError> {
    serde_json::to_value(object).map_err(|source| ClusterError::Decode { what: what.to_owned(), source })
}
