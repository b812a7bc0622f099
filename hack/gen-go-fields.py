#!/usr/bin/env python3
"""Generate apiserver/src/decoding/go_fields.json: how upstream's Go types encode each field.

Upstream decodes a request into Go structs and encodes the stored and returned object from
them, so what a client sees depends on each field's Go type, not on the OpenAPI schema that
k8s-openapi is generated from:

* a non-pointer field absent from the request holds its zero value ("" / 0 / false / empty
  struct / the zero metav1.Time);
* `omitempty` drops zero scalars and empty lists and maps on output, but never a struct: a
  non-pointer struct is always written (`resources: {}`), and a zero metav1.Time is written
  as `null` (`creationTimestamp: null`);
* a pointer (`*int32`) keeps an explicit zero (`replicas: 0`), and a nil slice, map or pointer
  without `omitempty` is written as `null`.

This script reads upstream's Go type declarations and records, per OpenAPI definition name
and JSON field, the field's type, whether it is a pointer, a list or a map, and whether it is
`omitempty`. Fields k8s-openapi (v1_33) does not know are left out, so the data never adds a
field the 1.33 API lacks; fields k8s-openapi knows but the Go files lack are reported with
`--report` (the apiserver leaves such fields as they are).

Inputs:

* a directory of upstream `types.go` files laid out as `<group>/<version>/types.go` for the
  groups in PACKAGES below, taken from kubernetes/kubernetes
  (`staging/src/k8s.io/api/<group>/<version>/types.go` and
  `staging/src/k8s.io/apimachinery/pkg/apis/meta/v1/types.go` as `meta/v1/types.go`). They
  are read, not committed: fetch them to a scratch directory. Only the struct declarations
  matter; comments and other declarations are skipped.
* k8s-openapi 0.29.0 (feature v1_33) from the cargo registry (`cargo fetch`), for the set of
  fields each definition has in 1.33.

Use the files of the release served (v1.33); with older copies, `--report` lists the 1.33
fields they lack (the committed data was generated from copies that predate some 1.33 additions,
such as PodStatus.observedGeneration; each is listed by `--report`).

Regenerate (stdlib python3 only):

    python3 hack/gen-go-fields.py /tmp/k8s-types            # writes go_fields.json
    python3 hack/gen-go-fields.py /tmp/k8s-types --report   # also lists the mismatches

Output (compact JSON):

    {"kinds": {"apps/v1/Deployment": "io.k8s.api.apps.v1.Deployment", ...},
     "types": {"io.k8s.api.core.v1.ContainerPort":
                  {"hostPort": ["int", "o"], "containerPort": ["int", ""], ...}, ...}}

A field is `[type, flags]`. The type is a scalar (`string int bool bytes`), a leaf with its
own JSON form (`time microTime quantity intOrString raw`), or a definition name. The flags are
`p` (pointer), `l` (list of the type), `m` (map from string to the type), `o` (omitempty) and
`r` (k8s-openapi refuses an object without it: a Go non-pointer whose Rust type has no default,
like metav1.Condition's lastTransitionTime, which the apiserver fills with the zero value).
"""

import glob
import json
import os
import re
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUTPUT = os.path.join(REPO, "apiserver", "src", "decoding", "go_fields.json")
REGISTRY = os.path.expanduser(os.environ.get("CARGO_HOME", "~/.cargo")) + "/registry/src/*/"
OPENAPI_SRC = "k8s-openapi-0.29.0/src/v1_33"

# Go package directory (under the input directory) → OpenAPI definition prefix.
PACKAGES = {
    "core/v1": "io.k8s.api.core.v1",
    "apps/v1": "io.k8s.api.apps.v1",
    "autoscaling/v1": "io.k8s.api.autoscaling.v1",
    "autoscaling/v2": "io.k8s.api.autoscaling.v2",
    "batch/v1": "io.k8s.api.batch.v1",
    "certificates/v1": "io.k8s.api.certificates.v1",
    "coordination/v1": "io.k8s.api.coordination.v1",
    "discovery/v1": "io.k8s.api.discovery.v1",
    "events/v1": "io.k8s.api.events.v1",
    "policy/v1": "io.k8s.api.policy.v1",
    "rbac/v1": "io.k8s.api.rbac.v1",
    "scheduling/v1": "io.k8s.api.scheduling.v1",
    "meta/v1": "io.k8s.apimachinery.pkg.apis.meta.v1",
}

# Import aliases the type files use for other packages.
ALIASES = {"metav1": "meta/v1", "v1": "core/v1", "corev1": "core/v1", "apiv1": "core/v1"}

# The kinds the apiserver serves: apiVersion/kind → package and Go type. Objects only reach the
# data through storage (created, updated, read back) and request bodies decoded into a stored
# kind; answered kinds (TokenReview, SubjectAccessReview...) are built as JSON and Eviction
# bodies are read as they come, so they have no entry.
SERVED = {
    "v1/Namespace": ("core/v1", "Namespace"),
    "v1/Pod": ("core/v1", "Pod"),
    "v1/Node": ("core/v1", "Node"),
    "v1/Service": ("core/v1", "Service"),
    "v1/Endpoints": ("core/v1", "Endpoints"),
    "v1/ConfigMap": ("core/v1", "ConfigMap"),
    "v1/Secret": ("core/v1", "Secret"),
    "v1/ServiceAccount": ("core/v1", "ServiceAccount"),
    "v1/Event": ("core/v1", "Event"),
    "v1/Binding": ("core/v1", "Binding"),
    "v1/ReplicationController": ("core/v1", "ReplicationController"),
    "v1/PodTemplate": ("core/v1", "PodTemplate"),
    "v1/PersistentVolumeClaim": ("core/v1", "PersistentVolumeClaim"),
    "apps/v1/Deployment": ("apps/v1", "Deployment"),
    "apps/v1/ReplicaSet": ("apps/v1", "ReplicaSet"),
    "apps/v1/StatefulSet": ("apps/v1", "StatefulSet"),
    "apps/v1/DaemonSet": ("apps/v1", "DaemonSet"),
    "apps/v1/ControllerRevision": ("apps/v1", "ControllerRevision"),
    "batch/v1/Job": ("batch/v1", "Job"),
    "batch/v1/CronJob": ("batch/v1", "CronJob"),
    "policy/v1/PodDisruptionBudget": ("policy/v1", "PodDisruptionBudget"),
    # Stored as v2; v1 objects are encoded as v1 on the way in and out (a Conversion).
    "autoscaling/v2/HorizontalPodAutoscaler": ("autoscaling/v2", "HorizontalPodAutoscaler"),
    "autoscaling/v1/HorizontalPodAutoscaler": ("autoscaling/v1", "HorizontalPodAutoscaler"),
    "rbac.authorization.k8s.io/v1/Role": ("rbac/v1", "Role"),
    "rbac.authorization.k8s.io/v1/ClusterRole": ("rbac/v1", "ClusterRole"),
    "rbac.authorization.k8s.io/v1/RoleBinding": ("rbac/v1", "RoleBinding"),
    "rbac.authorization.k8s.io/v1/ClusterRoleBinding": ("rbac/v1", "ClusterRoleBinding"),
    "certificates.k8s.io/v1/CertificateSigningRequest": ("certificates/v1", "CertificateSigningRequest"),
    "coordination.k8s.io/v1/Lease": ("coordination/v1", "Lease"),
    "discovery.k8s.io/v1/EndpointSlice": ("discovery/v1", "EndpointSlice"),
    "events.k8s.io/v1/Event": ("events/v1", "Event"),
    "scheduling.k8s.io/v1/PriorityClass": ("scheduling/v1", "PriorityClass"),
}

# Types with their own JSON form, by qualified Go name.
LEAVES = {
    "meta/v1.Time": "time",
    "meta/v1.MicroTime": "microTime",
    "meta/v1.FieldsV1": "raw",
    "resource.Quantity": "quantity",
    "intstr.IntOrString": "intOrString",
    "runtime.RawExtension": "raw",
}
SCALARS = {
    "string": "string",
    "bool": "bool",
    "int32": "int",
    "int64": "int",
    "types.UID": "string",
}

STRUCT_RE = re.compile(r"^type (\w+) struct \{\n(.*?)^\}", re.S | re.M)
MAP_TYPE_RE = re.compile(r"^type (\w+) (map\[[^\n]*)$", re.M)
FIELD_RE = re.compile(r"^\t(?:(\w+)\s+)?([\w.\[\]*]+)\s+`([^`]*)`", re.M)
JSON_TAG_RE = re.compile(r'json:"([^"]*)"')


def parse_package(path):
    """Returns ({struct: [(go name or None, go type, json tag)]}, {map type: go type})."""
    with open(path) as f:
        text = f.read()
    text = re.sub(r"^\s*//.*$", "", text, flags=re.M)
    structs = {}
    for name, body in STRUCT_RE.findall(text):
        fields = []
        for go_name, go_type, tags in FIELD_RE.findall(body):
            tag = JSON_TAG_RE.search(tags)
            fields.append((go_name or None, go_type, tag.group(1) if tag else None))
        structs[name] = fields
    named_maps = dict(MAP_TYPE_RE.findall(text))
    return structs, named_maps


def qualify(package, name):
    """`metav1.Time` in apps/v1 → `meta/v1.Time`; `Probe` in core/v1 → `core/v1.Probe`."""
    if "." in name:
        alias, rest = name.split(".", 1)
        return f"{ALIASES.get(alias, alias)}.{rest}"
    return f"{package}.{name}"


class Generator:
    def __init__(self, root):
        self.structs = {}
        self.named_maps = {}
        for package in PACKAGES:
            structs, named_maps = parse_package(os.path.join(root, package, "types.go"))
            for name, fields in structs.items():
                self.structs[f"{package}.{name}"] = (package, fields)
            for name, go_type in named_maps.items():
                self.named_maps[f"{package}.{name}"] = (package, go_type)
        self.types = {}
        self.report = []

    def definition(self, qualified):
        package, name = qualified.split(".", 1)
        return f"{PACKAGES[package]}.{name}"

    def field_type(self, package, go_type):
        """(type, flags) of a Go field type; nested structs are generated on the way."""
        flags = ""
        if go_type.startswith("*"):
            flags += "p"
            go_type = go_type[1:]
        if go_type.startswith("[]") and go_type != "[]byte":
            flags += "l"
            go_type = go_type[2:]
        elif go_type.startswith("map["):
            flags += "m"
            go_type = go_type[go_type.index("]") + 1 :]
        elif qualify(package, go_type) in self.named_maps:
            map_package, map_type = self.named_maps[qualify(package, go_type)]
            return self.field_type(map_package, map_type)[0], flags + "m"
        if go_type == "[]byte":
            return "bytes", flags
        if go_type in SCALARS:
            return SCALARS[go_type], flags
        qualified = qualify(package, go_type)
        if qualified in LEAVES:
            return LEAVES[qualified], flags
        if qualified in self.structs:
            return self.generate(qualified), flags
        # Named scalar types (`type Protocol string`) are strings. The one named slice,
        # certificates' `ExtraValue` ([]string), is only a map's value, which is left as it is.
        return "string", flags

    def fields(self, qualified):
        """The JSON fields of a struct, embedded `json:",inline"` structs flattened."""
        package, go_fields = self.structs[qualified]
        out = {}
        for go_name, go_type, tag in go_fields:
            if tag == "-":
                continue
            name, _, options = (tag or "").partition(",")
            if go_name is None and not name:
                out.update(self.fields(qualify(package, go_type.lstrip("*"))))
                continue
            if not name:
                name = go_name or go_type.split(".")[-1]
            ty, flags = self.field_type(package, go_type)
            if "omitempty" in options.split(","):
                flags += "o"
            out[name] = [ty, flags]
        return out

    def generate(self, qualified):
        definition = self.definition(qualified)
        if definition not in self.types:
            self.types[definition] = None
            self.types[definition] = self.fields(qualified)
        return definition


def openapi_fields():
    """{definition: (JSON field names, names it cannot default)} from k8s-openapi's Deserialize
    impls."""
    found = sorted(glob.glob(REGISTRY + OPENAPI_SRC))
    if not found:
        sys.exit(f"gen-go-fields: {OPENAPI_SRC} not found under {REGISTRY} (run `cargo fetch`)")
    known = {}
    for path in glob.glob(found[-1] + "/**/*.rs", recursive=True):
        with open(path) as f:
            text = f.read()
        for name in re.findall(r'"(io\.k8s\.[\w.]+)"\.into\(\)', text):
            known[name] = (
                set(re.findall(r'"([^"]+)" => Field::Key_', text)),
                set(re.findall(r'missing_field\("([^"]+)"\)', text)),
            )
    return known


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if len(args) != 1:
        sys.exit("usage: gen-go-fields.py <dir with <group>/<version>/types.go> [--report]")
    generator = Generator(args[0])
    kinds = {}
    for api_version_kind, (package, name) in sorted(SERVED.items()):
        kinds[api_version_kind] = generator.generate(f"{package}.{name}")
    known = openapi_fields()
    report = []
    for definition, fields in sorted(list(generator.types.items())):
        if definition not in known:
            report.append(f"{definition}: not in k8s-openapi v1_33, left out")
            del generator.types[definition]
            continue
        openapi, required = known[definition]
        for name in sorted(required & set(fields)):
            fields[name][1] += "r"
        for name in sorted(set(fields) - openapi - {"apiVersion", "kind"}):
            report.append(f"{definition}.{name}: not in 1.33, left out")
            del fields[name]
        for name in sorted(openapi - set(fields)):
            report.append(f"{definition}.{name}: not in the Go files, left as decoded")
    with open(OUTPUT, "w") as f:
        json.dump({"kinds": kinds, "types": generator.types}, f, sort_keys=True, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {OUTPUT}: {len(kinds)} kinds, {len(generator.types)} types")
    if "--report" in sys.argv:
        print("\n".join(report))


if __name__ == "__main__":
    main()
