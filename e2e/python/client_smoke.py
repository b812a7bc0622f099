"""The official Python client against our apiserver: what a controller written in Python does.

Run by e2e/tests/python_client.rs with KUBECONFIG pointing at a fresh cluster.
"""
import sys

from kubernetes import client, config, watch


def main() -> int:
    config.load_kube_config()
    core = client.CoreV1Api()
    names = [ns.metadata.name for ns in core.list_namespace().items]
    assert "kube-system" in names, names

    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="py")))
    body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="settings", labels={"app": "py"}), data={"k": "v"})
    created = core.create_namespaced_config_map("py", body)
    assert created.metadata.resource_version, created

    patched = core.patch_namespaced_config_map("settings", "py", {"data": {"k": "v2"}})
    assert patched.data["k"] == "v2", patched.data

    try:
        core.read_namespaced_config_map("missing", "py")
        raise AssertionError("expected 404")
    except client.ApiException as error:
        assert error.status == 404, error.status

    listed = core.list_namespaced_config_map("py", label_selector="app=py")
    stream = watch.Watch().stream(
        core.list_namespaced_config_map, "py", resource_version=listed.metadata.resource_version, timeout_seconds=10
    )
    core.delete_namespaced_config_map("settings", "py")
    for event in stream:
        if event["type"] == "DELETED" and event["object"].metadata.name == "settings":
            break
    else:
        raise AssertionError("no DELETED event")
    print("python client ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
