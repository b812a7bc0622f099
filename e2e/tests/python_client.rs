//! The official Python `kubernetes` client drives the apiserver (installed by hack/test.sh).

use std::process::Command;

use e2e::{on_both_backends, Cluster};

on_both_backends!(python_client_creates_patches_lists_and_watches);

async fn python_client_creates_patches_lists_and_watches(cluster: &mut Cluster) {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("python/client_smoke.py");
    let output = Command::new("python3")
        .arg(script)
        .env("KUBECONFIG", cluster.kubeconfig())
        .output()
        .expect("run python3");
    assert!(
        output.status.success(),
        "python client failed:\n{}\n{}\n--- apiserver log ---\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        cluster.log()
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("python client ok"));
}
