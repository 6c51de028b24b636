//! Writing the desired children: server-side apply under one field
//! manager, in dependency order, then deleting the stack's children that
//! are no longer wanted (found by label).

use std::collections::BTreeSet;
use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::build::Children;
use crate::build::meta::MANAGED_BY;

/// The one field manager of everything the operator writes.
pub const FIELD_MANAGER: &str = "voicechat-operator";

async fn apply<K>(client: &Client, namespace: &str, object: &K) -> Result<(), kube::Error>
where
    K: Resource<Scope = NamespaceResourceScope> + Clone + Debug + Serialize + DeserializeOwned,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    // `force`: the operator owns these fields even if someone edited them.
    api.patch(
        &object.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(object),
    )
    .await
    .map(|_| ())
}

async fn apply_each<K>(client: &Client, namespace: &str, objects: &[K]) -> Result<(), kube::Error>
where
    K: Resource<Scope = NamespaceResourceScope> + Clone + Debug + Serialize + DeserializeOwned,
    K::DynamicType: Default,
{
    for object in objects {
        apply(client, namespace, object).await?;
    }
    Ok(())
}

/// Applies every child. Order: ServiceAccount, Secret, ConfigMaps, PVCs,
/// Services, PDBs, NetworkPolicies, and workloads last, so that what a pod
/// mounts exists before the pod rolls.
pub async fn apply_children(
    client: &Client,
    namespace: &str,
    children: &Children,
) -> Result<(), kube::Error> {
    // No `..`: a new kind of child does not compile until it is applied here.
    let Children {
        service_account,
        jwt_secret,
        config_maps,
        pvcs,
        services,
        pdbs,
        network_policies,
        deployments,
    } = children;
    apply(client, namespace, service_account).await?;
    if let Some(secret) = jwt_secret {
        apply(client, namespace, secret).await?;
    }
    apply_each(client, namespace, config_maps).await?;
    apply_each(client, namespace, pvcs).await?;
    apply_each(client, namespace, services).await?;
    apply_each(client, namespace, pdbs).await?;
    apply_each(client, namespace, network_policies).await?;
    apply_each(client, namespace, deployments).await?;
    Ok(())
}

/// Label selector of a stack's children.
pub fn children_selector(stack_name: &str) -> String {
    format!("app.kubernetes.io/instance={stack_name},app.kubernetes.io/managed-by={MANAGED_BY}")
}

async fn prune<K>(
    client: &Client,
    namespace: &str,
    selector: &str,
    wanted: &BTreeSet<String>,
) -> Result<(), kube::Error>
where
    K: Resource<Scope = NamespaceResourceScope> + Clone + Debug + DeserializeOwned,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    for object in api
        .list_metadata(&ListParams::default().labels(selector))
        .await?
    {
        let name = object.name_any();
        if !wanted.contains(&name) {
            tracing::info!(kind = %K::kind(&K::DynamicType::default()), %name, "deleting a child no longer wanted");
            api.delete(&name, &DeleteParams::background()).await?;
        }
    }
    Ok(())
}

/// Deletes the kinds of children that come and go with the spec (Ollama,
/// the managed Redis, PDBs). PVCs are never deleted: they hold data.
pub async fn prune_children(
    client: &Client,
    namespace: &str,
    stack_name: &str,
    children: &Children,
) -> Result<(), kube::Error> {
    let selector = children_selector(stack_name);
    let names = |metas: Vec<&k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>| -> BTreeSet<String> {
        metas.into_iter().filter_map(|m| m.name.clone()).collect()
    };
    prune::<Deployment>(
        client,
        namespace,
        &selector,
        &names(children.deployments.iter().map(|d| &d.metadata).collect()),
    )
    .await?;
    prune::<Service>(
        client,
        namespace,
        &selector,
        &names(children.services.iter().map(|d| &d.metadata).collect()),
    )
    .await?;
    prune::<PodDisruptionBudget>(
        client,
        namespace,
        &selector,
        &names(children.pdbs.iter().map(|d| &d.metadata).collect()),
    )
    .await?;
    prune::<NetworkPolicy>(
        client,
        namespace,
        &selector,
        &names(
            children
                .network_policies
                .iter()
                .map(|d| &d.metadata)
                .collect(),
        ),
    )
    .await?;
    prune::<ConfigMap>(
        client,
        namespace,
        &selector,
        &names(children.config_maps.iter().map(|d| &d.metadata).collect()),
    )
    .await?;
    Ok(())
}
