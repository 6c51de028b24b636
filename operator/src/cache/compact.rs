//! A watch-fed store that keeps each object as its JSON bytes and decodes
//! it when a reconcile reads it. Typed Kubernetes objects take several
//! times their JSON in memory (every optional field is a slot, every
//! string its own allocation), and the children of a thousand stacks were
//! most of the operator's resident memory; a reconcile reads a stack's
//! dozen children, so decoding them costs far less than keeping them.
//!
//! Same semantics as kube's reflector store: a relist (`Init` …
//! `InitDone`) is gathered aside and replaces the contents at once, and the
//! store is ready after the first complete listing.

use std::collections::{BTreeMap, HashMap};
use std::marker::PhantomData;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use kube::Resource;
use kube::runtime::watcher;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::watch;

/// Namespace and name.
type Key = (String, String);

/// One stored object: its labels (selections read them without decoding)
/// and its JSON.
struct Entry {
    labels: BTreeMap<String, String>,
    json: Box<[u8]>,
}

#[derive(Default)]
struct Contents {
    objects: HashMap<Key, Entry>,
    /// A relist in progress: it replaces `objects` when complete.
    listing: Option<HashMap<Key, Entry>>,
}

/// The store's read side, cloned freely.
pub struct CompactStore<K> {
    contents: Arc<RwLock<Contents>>,
    listed: watch::Receiver<bool>,
    kind: PhantomData<fn() -> K>,
}

impl<K> Clone for CompactStore<K> {
    fn clone(&self) -> Self {
        Self {
            contents: self.contents.clone(),
            listed: self.listed.clone(),
            kind: PhantomData,
        }
    }
}

/// The store's write side, fed by one watch.
pub struct CompactWriter<K> {
    contents: Arc<RwLock<Contents>>,
    listed: watch::Sender<bool>,
    kind: PhantomData<fn() -> K>,
}

/// The writer went away before the store was listed once.
#[derive(Debug, thiserror::Error)]
#[error("the watch filling this store ended before its first listing")]
pub struct WriterDropped;

pub fn store<K>() -> (CompactStore<K>, CompactWriter<K>) {
    let contents = Arc::new(RwLock::new(Contents::default()));
    let (listed_tx, listed_rx) = watch::channel(false);
    (
        CompactStore {
            contents: contents.clone(),
            listed: listed_rx,
            kind: PhantomData,
        },
        CompactWriter {
            contents,
            listed: listed_tx,
            kind: PhantomData,
        },
    )
}

// A panic while the lock was held cannot leave the maps half-changed (each
// write is one insert, remove or swap), so a poisoned lock is still usable.
fn read(lock: &RwLock<Contents>) -> RwLockReadGuard<'_, Contents> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write(lock: &RwLock<Contents>) -> RwLockWriteGuard<'_, Contents> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn entry<K: Resource + Serialize>(object: &K) -> Option<(Key, Entry)> {
    let meta = object.meta();
    let key = (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone()?,
    );
    match serde_json::to_vec(object) {
        Ok(json) => Some((
            key,
            Entry {
                labels: meta.labels.clone().unwrap_or_default(),
                json: json.into_boxed_slice(),
            },
        )),
        Err(e) => {
            // Not stored: a reconcile then finds it missing and applies it,
            // which is safe.
            tracing::warn!(namespace = %key.0, name = %key.1, error = %e, "cannot store an object");
            None
        }
    }
}

impl<K: Resource + Serialize> CompactWriter<K> {
    pub fn apply(&mut self, event: &watcher::Event<K>) {
        match event {
            watcher::Event::Apply(object) => {
                if let Some((key, entry)) = entry(object) {
                    write(&self.contents).objects.insert(key, entry);
                }
            }
            watcher::Event::Delete(object) => {
                let meta = object.meta();
                if let Some(name) = meta.name.clone() {
                    let key = (meta.namespace.clone().unwrap_or_default(), name);
                    write(&self.contents).objects.remove(&key);
                }
            }
            watcher::Event::Init => write(&self.contents).listing = Some(HashMap::new()),
            watcher::Event::InitApply(object) => {
                if let Some((key, entry)) = entry(object) {
                    write(&self.contents)
                        .listing
                        .get_or_insert_with(HashMap::new)
                        .insert(key, entry);
                }
            }
            watcher::Event::InitDone => {
                {
                    let mut contents = write(&self.contents);
                    contents.objects = contents.listing.take().unwrap_or_default();
                }
                self.listed.send_replace(true);
            }
        }
    }
}

impl<K: DeserializeOwned> CompactStore<K> {
    fn decode(key: &Key, entry: &Entry) -> Option<Arc<K>> {
        match serde_json::from_slice(&entry.json) {
            Ok(object) => Some(Arc::new(object)),
            Err(e) => {
                tracing::warn!(namespace = %key.0, name = %key.1, error = %e, "cannot read a stored object");
                None
            }
        }
    }

    /// The object `namespace/name`, as last seen.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<K>> {
        let key = (namespace.to_owned(), name.to_owned());
        read(&self.contents)
            .objects
            .get(&key)
            .and_then(|entry| Self::decode(&key, entry))
    }

    /// The objects whose namespace and labels `wanted` accepts.
    pub fn filter(&self, wanted: impl Fn(&str, &BTreeMap<String, String>) -> bool) -> Vec<Arc<K>> {
        read(&self.contents)
            .objects
            .iter()
            .filter(|((namespace, _), entry)| wanted(namespace, &entry.labels))
            .filter_map(|(key, entry)| Self::decode(key, entry))
            .collect()
    }

    pub fn len(&self) -> usize {
        read(&self.contents).objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits for the first complete listing.
    pub async fn wait_until_ready(&self) -> Result<(), WriterDropped> {
        let mut listed = self.listed.clone();
        listed
            .wait_for(|listed| *listed)
            .await
            .map(|_| ())
            .map_err(|_| WriterDropped)
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::ObjectMeta;

    use super::*;

    fn map(name: &str, value: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("apps".into()),
                labels: Some(BTreeMap::from([("app".into(), name.into())])),
                ..Default::default()
            },
            data: Some(BTreeMap::from([("k".into(), value.into())])),
            ..Default::default()
        }
    }

    fn value(store: &CompactStore<ConfigMap>, name: &str) -> Option<String> {
        store
            .get("apps", name)
            .and_then(|m| m.data.as_ref()?.get("k").cloned())
    }

    #[tokio::test]
    async fn objects_come_back_as_stored_and_a_relist_replaces_them_whole() {
        let (store, mut writer) = store::<ConfigMap>();
        writer.apply(&watcher::Event::Init);
        writer.apply(&watcher::Event::InitApply(map("a", "1")));
        assert!(
            store.is_empty(),
            "a listing is not visible before it is done"
        );
        writer.apply(&watcher::Event::InitDone);
        store.wait_until_ready().await.expect("listed");
        assert_eq!(store.get("apps", "a").as_deref(), Some(&map("a", "1")));

        writer.apply(&watcher::Event::Apply(map("b", "2")));
        writer.apply(&watcher::Event::Apply(map("a", "3")));
        assert_eq!(value(&store, "a").as_deref(), Some("3"));
        assert_eq!(value(&store, "b").as_deref(), Some("2"));
        assert!(store.get("other", "a").is_none());

        // A relist without `b`: `b` is gone once it is done, not before.
        writer.apply(&watcher::Event::Init);
        writer.apply(&watcher::Event::InitApply(map("a", "4")));
        assert_eq!(value(&store, "b").as_deref(), Some("2"));
        writer.apply(&watcher::Event::InitDone);
        assert_eq!(value(&store, "a").as_deref(), Some("4"));
        assert!(store.get("apps", "b").is_none());

        writer.apply(&watcher::Event::Delete(map("a", "4")));
        assert!(store.is_empty());
    }

    #[tokio::test]
    async fn selections_read_labels_and_a_dropped_writer_is_an_error() {
        let (store, mut writer) = store::<ConfigMap>();
        writer.apply(&watcher::Event::Apply(map("a", "1")));
        writer.apply(&watcher::Event::Apply(map("b", "2")));
        let picked = store.filter(|ns, labels| {
            ns == "apps" && labels.get("app").map(String::as_str) == Some("b")
        });
        assert_eq!(picked.len(), 1);
        assert_eq!(picked[0].metadata.name.as_deref(), Some("b"));

        drop(writer);
        assert!(store.wait_until_ready().await.is_err());
    }
}
