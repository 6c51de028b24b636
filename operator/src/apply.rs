//! Writing the desired children: server-side apply under one field
//! manager, in dependency order, of what the cache does not already hold
//! as wanted; then deleting the stack's children that are no longer wanted
//! (found by label in the cache).

use std::collections::BTreeSet;

use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde::Serialize;

use crate::build::Children;
use crate::cache::{Cached, ChildCache, REPLICAS_FIELD};

/// The one field manager of everything the operator writes.
pub const FIELD_MANAGER: &str = "voicechat-operator";

/// Whether every field of `desired` is in `observed` with the same value:
/// the server adds defaults and bookkeeping, but never changes what we
/// set unless someone edited it. Lists must match element by element.
pub fn is_subset(desired: &serde_json::Value, observed: &serde_json::Value) -> bool {
    first_difference(desired, observed).is_none()
}

/// The path of the first field of `desired` that `observed` lacks or holds
/// differently (`None` when `desired` is a subset): logged, so drift and
/// server-side normalisation are visible.
pub fn first_difference(
    desired: &serde_json::Value,
    observed: &serde_json::Value,
) -> Option<String> {
    use serde_json::Value;
    match (desired, observed) {
        (Value::Object(d), Value::Object(o)) => d.iter().find_map(|(k, v)| match o.get(k) {
            Some(ov) => first_difference(v, ov).map(|p| format!(".{k}{p}")),
            // A null or zero value we send is the same as none at all: the
            // API server's Go types drop zero values (`omitempty`), e.g. a
            // volume mount's `readOnly: false`.
            None => {
                let empty = v.is_null()
                    || v == &Value::Bool(false)
                    || v.as_i64() == Some(0)
                    || v.as_str() == Some("")
                    || v.as_object().is_some_and(serde_json::Map::is_empty)
                    || v.as_array().is_some_and(Vec::is_empty);
                (!empty).then(|| format!(".{k} (missing)"))
            }
        }),
        (Value::Array(d), Value::Array(o)) => {
            if d.len() != o.len() {
                return Some(format!(" ({} items, {} wanted)", o.len(), d.len()));
            }
            d.iter()
                .zip(o)
                .enumerate()
                .find_map(|(i, (dv, ov))| first_difference(dv, ov).map(|p| format!("[{i}]{p}")))
        }
        (d, o) if d == o => None,
        (d, o) => Some(format!(" ({o} there, {d} wanted)")),
    }
}

/// Whether an API error says the object does not exist.
pub fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(s) if s.code == 404)
}

/// Applies `object` unless the cache holds it as wanted, so a steady state
/// sends no request at all. A cache that has not seen the object yet (or
/// not its latest change) costs one apply that changes nothing.
async fn apply<K>(
    client: &Client,
    cache: &ChildCache,
    namespace: &str,
    object: &K,
) -> Result<(), kube::Error>
where
    K: Cached + Serialize,
{
    let name = object.name_any();
    if let Some(current) = cache.get::<K>(namespace, &name) {
        let desired = serde_json::to_value(object).map_err(kube::Error::SerdeError)?;
        let observed = serde_json::to_value(&*current).map_err(kube::Error::SerdeError)?;
        match first_difference(&desired, &observed) {
            None => return Ok(()),
            Some(path) => tracing::info!(
                kind = %K::kind(&K::DynamicType::default()),
                %name,
                differs = %path,
                "re-applying a child"
            ),
        }
    }
    // `force`: the operator owns these fields even if someone edited them.
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(object),
    )
    .await
    .map(|_| ())
}

async fn apply_each<K>(
    client: &Client,
    cache: &ChildCache,
    namespace: &str,
    objects: &[K],
) -> Result<(), kube::Error>
where
    K: Cached + Serialize,
{
    for object in objects {
        apply(client, cache, namespace, object).await?;
    }
    Ok(())
}

/// Applies every child. Order: ServiceAccount, Secret, ConfigMaps, PVCs
/// (the models cache among them), the models loader Job, Services, PDBs,
/// NetworkPolicies, and workloads last, so that what a pod mounts exists
/// before the pod rolls.
pub async fn apply_children(
    client: &Client,
    cache: &ChildCache,
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
        models_cache,
        jobs,
        deployments,
        autoscalers,
        waiting_for_models: _,
        models: _,
    } = children;
    apply(client, cache, namespace, service_account).await?;
    if let Some(secret) = jwt_secret {
        apply(client, cache, namespace, secret).await?;
    }
    apply_each(client, cache, namespace, config_maps).await?;
    apply_each(client, cache, namespace, pvcs).await?;
    if let Some(claim) = models_cache {
        apply(client, cache, namespace, claim).await?;
    }
    apply_each(client, cache, namespace, jobs).await?;
    apply_each(client, cache, namespace, services).await?;
    apply_each(client, cache, namespace, pdbs).await?;
    apply_each(client, cache, namespace, network_policies).await?;
    for deployment in deployments {
        if deployment
            .spec
            .as_ref()
            .is_some_and(|s| s.replicas.is_none())
        {
            hand_over_replicas(client, cache, namespace, &deployment.name_any()).await?;
        }
    }
    apply_each(client, cache, namespace, deployments).await?;
    apply_each(client, cache, namespace, autoscalers).await?;
    Ok(())
}

/// The field manager that keeps a Deployment's replicas while the
/// operator lets go of them.
const REPLICAS_HANDOVER: &str = "voicechat-operator-replicas-handover";

/// An autoscaler now sets this Deployment's replicas. If the operator's
/// field manager still owns them, applying without them would drop the
/// field and the Deployment would fall to one replica; so another manager
/// first applies the current count (Kubernetes' documented hand-over),
/// and the autoscaler's first scale takes them from it. `true` when it
/// handed them over (the operator must then apply without them).
async fn hand_over_replicas(
    client: &Client,
    cache: &ChildCache,
    namespace: &str,
    name: &str,
) -> Result<bool, kube::Error> {
    use k8s_openapi::api::apps::v1::Deployment;
    let Some(current) = cache.get::<Deployment>(namespace, name) else {
        return Ok(false);
    };
    let ours = current.managed_fields().iter().any(|m| {
        m.manager.as_deref() == Some(FIELD_MANAGER)
            && m.operation.as_deref() == Some("Apply")
            && m.fields_v1
                .as_ref()
                .is_some_and(|f| f.0.pointer(REPLICAS_FIELD).is_some())
    });
    let Some(replicas) = current.spec.as_ref().and_then(|s| s.replicas) else {
        return Ok(false);
    };
    if !ours {
        return Ok(false);
    }
    tracing::info!(%name, replicas, "handing the replicas over to the autoscaler");
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let keep = serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"replicas": replicas},
    });
    api.patch(
        name,
        &PatchParams::apply(REPLICAS_HANDOVER),
        &Patch::Apply(&keep),
    )
    .await?;
    Ok(true)
}

/// Deletes the children of kind `K` of `stack` (by label, in the cache)
/// that neither `wanted` nor `kept` names.
async fn prune<K>(
    client: &Client,
    cache: &ChildCache,
    namespace: &str,
    stack: &str,
    wanted: &[K],
    kept: &[String],
) -> Result<(), kube::Error>
where
    K: Cached,
{
    let wanted: BTreeSet<&str> = wanted
        .iter()
        .filter_map(|o| o.meta().name.as_deref())
        .chain(kept.iter().map(String::as_str))
        .collect();
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    for object in cache.children_of::<K>(namespace, stack) {
        let name = object.name_any();
        if wanted.contains(name.as_str()) || object.meta().deletion_timestamp.is_some() {
            continue;
        }
        tracing::info!(kind = %K::kind(&()), %name, "deleting a child no longer wanted");
        match api.delete(&name, &DeleteParams::background()).await {
            // Gone already: the cache had not seen the deletion yet.
            Err(e) if !is_not_found(&e) => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// Deletes the kinds of children that come and go with the spec (Ollama,
/// the managed Redis, PDBs, loader Jobs), except the Deployments (and
/// their ConfigMaps) waiting for their models. PVCs are never deleted: they hold data (the models cache
/// is shared by the namespace's stacks).
pub async fn prune_children(
    client: &Client,
    cache: &ChildCache,
    namespace: &str,
    stack: &str,
    children: &Children,
) -> Result<(), kube::Error> {
    let kept = &children.waiting_for_models;
    prune(client, cache, namespace, stack, &children.autoscalers, &[]).await?;
    prune(client, cache, namespace, stack, &children.deployments, kept).await?;
    prune(client, cache, namespace, stack, &children.services, &[]).await?;
    prune(client, cache, namespace, stack, &children.pdbs, &[]).await?;
    prune(
        client,
        cache,
        namespace,
        stack,
        &children.network_policies,
        &[],
    )
    .await?;
    prune(client, cache, namespace, stack, &children.config_maps, kept).await?;
    // Loader Jobs of earlier model lists (their pods go with them).
    prune(client, cache, namespace, stack, &children.jobs, &[]).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{first_difference, is_subset};
    use serde_json::json;

    #[test]
    fn server_additions_are_fine_changes_are_not() {
        let desired = json!({"metadata": {"name": "a", "labels": {"x": "1"}}, "spec": {"ports": [{"port": 80}], "tags": []}});
        let observed = json!({"metadata": {"name": "a", "uid": "u", "labels": {"x": "1", "extra": "y"}}, "spec": {"ports": [{"port": 80, "protocol": "TCP"}]}, "status": {}});
        assert!(is_subset(&desired, &observed));
        let edited = json!({"metadata": {"name": "a", "labels": {"x": "2"}}, "spec": {"ports": [{"port": 80}]}});
        assert!(!is_subset(&desired, &edited), "a changed label is drift");
        let fewer = json!({"metadata": {"name": "a", "labels": {"x": "1"}}, "spec": {"ports": []}});
        assert!(
            !is_subset(&desired, &fewer),
            "a removed list element is drift"
        );
        assert!(!is_subset(&json!({"replicas": 2}), &json!({"replicas": 3})));
        assert!(
            is_subset(&json!({"readOnly": false, "a": ""}), &json!({})),
            "the server omits zero values"
        );
        assert!(!is_subset(&json!({"readOnly": true}), &json!({})));
        assert_eq!(
            first_difference(&desired, &edited).as_deref(),
            Some(r#".metadata.labels.x ("2" there, "1" wanted)"#)
        );
        assert_eq!(
            first_difference(&desired, &fewer).as_deref(),
            Some(".spec.ports (0 items, 1 wanted)")
        );
    }
}
