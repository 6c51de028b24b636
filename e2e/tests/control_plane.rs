//! The harness itself: a control plane starts, serves, audits, survives an
//! API server restart, and leaves no process behind.

use voicechat_e2e::{Assets, ControlPlane, Options};

#[test]
fn starts_audits_restarts_and_stops() {
    let available = Assets::available();
    if !voicechat_testkit::have_or_skip(
        available.is_ok(),
        "starts_audits_restarts_and_stops",
        "kubernetes",
        &format!(
            "a Kubernetes control plane ({})",
            available.err().unwrap_or_default()
        ),
    ) {
        return;
    }
    let mut plane = ControlPlane::start(Options::default()).expect("control plane");
    let version = plane
        .kubectl(&["version", "-o", "json"])
        .expect("kubectl version");
    assert!(version.contains("\"serverVersion\""), "{version}");

    let mark = plane.audit().mark();
    plane
        .kubectl(&["create", "configmap", "probe", "--from-literal=a=b"])
        .expect("create a ConfigMap");
    let writes = plane.audit().writes_since(mark, "admin");
    assert!(
        writes.iter().any(|w| w.verb == "create"
            && w.resource == "configmaps"
            && w.name.as_deref() == Some("probe")),
        "the audit log records the write: {writes:?}"
    );

    plane.restart_apiserver().expect("restart the API server");
    let value = plane
        .kubectl(&["get", "configmap", "probe", "-o", "jsonpath={.data.a}"])
        .expect("read after restart");
    assert_eq!(value, "b", "etcd kept the data across the restart");

    let dir = plane.dir().to_path_buf();
    drop(plane);
    assert!(!dir.exists(), "the temp folder is removed");
}
