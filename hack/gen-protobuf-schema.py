#!/usr/bin/env python3
"""Generate apiserver/src/protobuf/schema.json, the wire schema of the Kubernetes protobuf encoding.

kubectl and client-go send most request bodies as `application/vnd.kubernetes.protobuf`; the
apiserver transcodes them to the JSON it stores (apiserver/src/protobuf/). This script extracts
the schema that transcoder needs from two crates already in the cargo registry, so nothing is
written by hand per type:

* k8s-pb 0.9.0 (prost-generated from the upstream `generated.proto` files) gives every message's
  field tags, wire types, cardinality (optional / repeated / map) and field message types;
* k8s-openapi 0.29.0 (feature v1_33) gives the JSON name of every field (the arms of its
  `Deserialize` impls, `"volumeID" => Field::Key_volume_id`) and the served kinds (its
  `impl crate::Resource` blocks).

A k8s-pb field is matched to the k8s-openapi JSON name whose lowercase alphanumerics equal its own
(`volume_id` ~ `volumeID`, `r#ref` ~ `$ref`). k8s-pb follows a newer Kubernetes than v1_33, so
fields and messages unknown to v1_33 are left out: the transcoder then skips them as unknown tags,
exactly as a 1.33 kube-apiserver does. Only messages reachable from the served kinds, their
`<Kind>List`s and the meta/v1 kinds below (DeleteOptions; Status, PartialObjectMetadata(List) and
WatchEvent, which only responses carry) are written.

Regenerate (stdlib python3 only, after `cargo fetch` so both crates are in ~/.cargo/registry):

    python3 hack/gen-protobuf-schema.py            # writes apiserver/src/protobuf/schema.json
    python3 hack/gen-protobuf-schema.py --report   # also lists fields left out or inlined

Output format (compact JSON):

    {"kinds":     {"apps/v1": {"Deployment": "api.apps.v1.Deployment", ...}, ...},
     "metaKinds": {"DeleteOptions": "apimachinery.pkg.apis.meta.v1.DeleteOptions"},
     "responseKinds": {"apps/v1": {"DeploymentList": "api.apps.v1.DeploymentList", ...},
                       "v1": {"Status": "apimachinery.pkg.apis.meta.v1.Status", ...}, ...},
     "shapes":    {"apimachinery.pkg.apis.meta.v1.Time": "time", ...},
     "messages":  {"api.apps.v1.Deployment": {"1": ["metadata", "<message name>"],
                                              "2": ["spec", "api.apps.v1.DeploymentSpec"], ...}}}

`metaKinds` are accepted in every apiVersion of `kinds`. `responseKinds` are the kinds the apiserver
only ever sends (the decoder keeps refusing them: no request body upstream takes one):
every served kind's list, Status (always apiVersion v1, an "unversioned" kind upstream) and
PartialObjectMetadata(List) of meta.k8s.io/v1. A field is `[jsonName, type]` plus
`"repeated"`, `"map"` (map keys are always strings; the type is the value's) or `"inline"` (an
embedded Go struct whose fields belong to the enclosing JSON object). A type is a scalar
(`string int32 int64 bool double bytes`) or a message name. `shapes` names the messages whose
JSON form is not a plain object (LEAF_SHAPES, COMPOSITE_SHAPES, ITEMS_SHAPE below); the leaf
shapes have no entry in `messages`.
"""

import glob
import json
import os
import re
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUTPUT = os.path.join(REPO, "apiserver", "src", "protobuf", "schema.json")
REGISTRY = os.path.expanduser(os.environ.get("CARGO_HOME", "~/.cargo")) + "/registry/src/*/"
PB_SRC = "k8s-pb-0.9.0/src"
OPENAPI_SRC = "k8s-openapi-0.29.0/src/v1_33"

SCALARS = {"string", "int32", "int64", "bool", "double", "bytes"}

META = "apimachinery.pkg.apis.meta.v1."
APIEXT = "apiextensions_apiserver.pkg.apis.apiextensions.v1."

# Messages whose upstream JSON form is not an object with one key per field. The value is the
# shape the transcoder implements, and the fields (tag: scalar type or message) it relies on.
LEAF_SHAPES = {
    META + "Time": ("time", {1: "int64", 2: "int32"}),
    META + "MicroTime": ("microTime", {1: "int64", 2: "int32"}),
    "apimachinery.pkg.api.resource.Quantity": ("quantity", {1: "string"}),
    "apimachinery.pkg.util.intstr.IntOrString": ("intOrString", {1: "int64", 2: "int32", 3: "string"}),
    "apimachinery.pkg.runtime.RawExtension": ("rawJson", {1: "bytes"}),
    META + "FieldsV1": ("rawJson", {1: "bytes"}),
    APIEXT + "JSON": ("rawJson", {1: "bytes"}),
}
# Shapes built from the message's decoded fields, which keep these JSON names.
COMPOSITE_SHAPES = {
    APIEXT + "JSONSchemaPropsOrArray": ("schemaOrArray", {1: "schema", 2: "jSONSchemas"}),
    APIEXT + "JSONSchemaPropsOrBool": ("schemaOrBool", {1: "allows", 2: "schema"}),
    APIEXT + "JSONSchemaPropsOrStringArray": ("schemaOrStringArray", {1: "schema", 2: "property"}),
}
# Go named slice types (`type ExtraValue []string`) wrapped in a message with one repeated
# `items` field because a proto map value cannot be repeated; their JSON is the bare array.
ITEMS_SHAPE = "items"

# Registered in every group version upstream; request bodies of DELETE carry it.
META_KINDS = {"DeleteOptions": META + "DeleteOptions"}
META_API_VERSION = "meta.k8s.io/v1"

# Meta kinds only responses carry: errors are Status in every encoding, and metadata-only
# clients (the garbage collector, client-go metadata informers) ask for PartialObjectMetadata.
META_RESPONSE_KINDS = {
    "v1": {"Status": META + "Status"},
    META_API_VERSION: {
        "PartialObjectMetadata": META + "PartialObjectMetadata",
        "PartialObjectMetadataList": META + "PartialObjectMetadataList",
    },
}
# Not a kind of any table: the watch stream's frame, whose tags the encoder writes by hand and
# its tests check against this schema.
WATCH_EVENT = META + "WatchEvent"
# Every `<Kind>List` is {metadata = 1 ListMeta, items = 2 repeated <Kind>}; k8s-openapi has one
# generic List<T> instead of their definitions, so their JSON names are given here, like those of
# PartialObjectMetadata(List), which OpenAPI does not describe at all, and WatchEvent's, whose
# k8s-openapi file also holds the fields of its BOOKMARK object.
LIST_JSON_NAMES = ["metadata", "items"]
JSON_NAMES = {
    META + "PartialObjectMetadata": ["metadata"],
    META + "PartialObjectMetadataList": LIST_JSON_NAMES,
    WATCH_EVENT: ["type", "object"],
}

# API groups whose protos live outside k8s.io/api.
GROUP_PACKAGES = {
    "apiextensions.k8s.io": "apiextensions_apiserver.pkg.apis.apiextensions",
    "apiregistration.k8s.io": "kube_aggregator.pkg.apis.apiregistration",
    "internal.apiserver.k8s.io": "api.apiserverinternal",
}


def proto_package(group, version):
    """The proto package of a group version: `api.<first DNS label of the group>.<version>`."""
    if group in GROUP_PACKAGES:
        return GROUP_PACKAGES[group] + "." + version
    return "api." + (group.split(".")[0] if group else "core") + "." + version


def crate_dir(sub):
    found = sorted(glob.glob(REGISTRY + sub))
    if not found:
        sys.exit(f"gen-protobuf-schema: {sub} not found under {REGISTRY} (run `cargo fetch`)")
    return found[-1]


def normalize(name):
    return re.sub(r"[^a-z0-9]", "", name.lower())


# ---- k8s-pb: messages with tags and types -------------------------------------------------

STRUCT_RE = re.compile(r"^pub struct (\w+) \{(?:\}|\n(.*?)^\})", re.S | re.M)
FIELD_RE = re.compile(r"#\[prost\(([^\]]*)\)\]\s*pub (?:r#)?(\w+):\s*(.*?),\n(?=\s*(?:///|#\[)|\Z)", re.S)
TYPE_PATH_RE = re.compile(r"(?<![:\w])((?:super::)*(?:\w+::)*[A-Z]\w*)")


def parse_pb(root):
    """Returns {module.Struct: {tag: (name, type, label)}} for every k8s-pb message."""
    messages = {}
    for path in sorted(glob.glob(root + "/**/mod.rs", recursive=True)):
        module = os.path.relpath(os.path.dirname(path), root).split(os.sep)
        text = open(path, encoding="utf-8").read()
        for struct, body in STRUCT_RE.findall(text):
            fields = {}
            for attrs, name, rust_type in FIELD_RE.findall(body):
                tag, field = parse_pb_field(module, attrs, rust_type)
                fields[tag] = (name,) + field
            messages[".".join(module + [struct])] = fields
    return messages


def parse_pb_field(module, attrs, rust_type):
    tag = int(re.search(r'tag = "(\d+)"', attrs).group(1))
    kind = attrs.split(",")[0].split("=")[0].strip()
    if kind == "btree_map":
        key, value = re.search(r'btree_map = "(\w+), (\w+)"', attrs).groups()
        assert key == "string", attrs
        return tag, (resolve_type(module, value, rust_type), "map")
    label = "repeated" if ", repeated" in attrs else ""
    return tag, (resolve_type(module, kind, rust_type), label)


def resolve_type(module, kind, rust_type):
    if kind != "message":
        assert kind in SCALARS, kind
        return kind
    # The one path not rooted at `::` (std and prost wrappers are): `super::...::Name` or `Name`.
    paths = TYPE_PATH_RE.findall(re.sub(r"\s", "", rust_type))
    assert len(paths) == 1, rust_type
    segments = paths[0].split("::")
    base = list(module)
    while segments[0] == "super":
        segments.pop(0)
        base.pop()
    return ".".join(base + segments)


# ---- k8s-openapi: JSON names and kinds -----------------------------------------------------

DEFINITION_RE = re.compile(r"^// Generated from definition io\.k8s\.(\S+)", re.M)
ARM_RE = re.compile(r'^\s*"([^"]+)" => Field::Key_\w+,$', re.M)
RESOURCE_RE = re.compile(
    r'impl crate::Resource for \w+ \{\s*const API_VERSION: &\'static str = "([^"]*)";'
    r'\s*const GROUP: &\'static str = "([^"]*)";\s*const KIND: &\'static str = "([^"]*)";'
    r'\s*const VERSION: &\'static str = "([^"]*)";'
)


def parse_openapi(root):
    """Returns ({definition: [jsonName]}, [(apiVersion, group, kind, version, definition)])."""
    json_names, kinds = {}, []
    for path in sorted(glob.glob(root + "/**/*.rs", recursive=True)):
        text = open(path, encoding="utf-8").read()
        found = DEFINITION_RE.search(text)
        if not found:
            continue
        definition = found.group(1).replace("-", "_")
        json_names[definition] = ARM_RE.findall(text)
        kinds += [resource + (definition,) for resource in RESOURCE_RE.findall(text)]
    return json_names, kinds


# ---- joining the two ------------------------------------------------------------------------


def canonical_names(pb_messages, definitions):
    """Maps k8s-pb names (`api.core.v1.PodIp`) to upstream ones (`api.core.v1.PodIP`)."""
    by_key = {}
    for definition in definitions:
        package, _, name = definition.rpartition(".")
        by_key[(package, name.lower())] = definition
    names = {}
    for pb_name in pb_messages:
        package, _, name = pb_name.rpartition(".")
        names[pb_name] = by_key.get((package, name.lower()), pb_name)
    return names


def served_kinds(kinds, pb_canonical):
    table, problems = {}, []
    for api_version, group, kind, version, definition in kinds:
        if definition.startswith("apimachinery."):
            continue
        message = proto_package(group, version) + "." + kind
        if message != definition or message not in pb_canonical:
            in_pb = "has it" if message in pb_canonical else "has no such message"
            problems.append(f"{api_version} {kind}: rule gives {message}, k8s-openapi {definition}, k8s-pb {in_pb}")
            continue
        table.setdefault(api_version, {})[kind] = message
    return table, problems


def list_kinds(table, pb, json_names):
    """`<Kind>List` of every served kind that has one, renamed to the upstream message name.

    Renames the k8s-pb message in `pb` and gives it its JSON names in `json_names`.
    """
    lists, problems = {}, []
    by_key = {}
    for pb_name in pb:
        package, _, name = pb_name.rpartition(".")
        by_key[(package, name.lower())] = pb_name
    for api_version, kinds in table.items():
        for kind, message in kinds.items():
            package, _, _ = message.rpartition(".")
            pb_name = by_key.get((package, (kind + "List").lower()))
            if pb_name is None:
                continue
            name = package + "." + kind + "List"
            pb[name] = pb.pop(pb_name)
            want = {1: ("metadata", META + "ListMeta", ""), 2: ("items", message, "repeated")}
            if pb[name] != want:
                problems.append(f"{api_version} {kind}List: {pb[name]} is not {{metadata, items}}")
                continue
            json_names[name] = LIST_JSON_NAMES
            lists.setdefault(api_version, {})[kind + "List"] = name
    return lists, problems


def pb_resource_problems(pb_root, pb_canonical):
    """Checks the group rule against every kind k8s-pb itself declares."""
    problems = []
    for path in sorted(glob.glob(pb_root + "/**/mod.rs", recursive=True)):
        text = open(path, encoding="utf-8").read()
        for _, group, kind, version in RESOURCE_RE.findall(text):
            message = proto_package(group, version) + "." + kind
            if message not in pb_canonical:
                problems.append(f"k8s-pb {group}/{version} {kind}: no message {message}")
    return problems


def build_message(name, pb, json_names, borrowed, report):
    """Fields of one message as `{tag: [json, type, label]}`, renamed to upstream JSON."""
    pb_fields = pb[name]
    if name in COMPOSITE_SHAPES:
        wanted = COMPOSITE_SHAPES[name][1]
        assert set(pb_fields) == set(wanted), (name, pb_fields)
        return {tag: [wanted[tag], f[1], f[2]] for tag, f in pb_fields.items()}
    if is_items_wrapper(name, pb_fields, json_names):
        return {1: ["items", pb_fields[1][1], "repeated"]}
    names = json_names.get(name) or borrowed.get(name, [])
    by_normal = {normalize(j): j for j in names}
    assert len(by_normal) == len(names), name
    out = {}
    for tag, (pb_name, ftype, label) in sorted(pb_fields.items()):
        json_name = by_normal.get(normalize(pb_name))
        if json_name is not None:
            out[tag] = [json_name, ftype, label]
        elif not label and ftype in pb and is_embedded(pb[ftype], json_names.get(ftype), by_normal):
            if ftype not in json_names:
                borrow_names(pb[ftype], by_normal, borrowed.setdefault(ftype, []))
            out[tag] = [pb_name, ftype, "inline"]
            report.append(f"inlined: {name}.{pb_name} (tag {tag}, {ftype})")
        else:
            report.append(f"left out: {name}.{pb_name} (tag {tag})")
    if name in json_names:
        report += [f"no tag: {name}.{j}" for j in missing_tags(name, out, json_names, borrowed)]
    return out


def borrow_names(inner_fields, parent_names, names):
    """Gives an embedded struct without a definition the JSON names its fields have in a parent."""
    for pb_name, _, _ in inner_fields.values():
        json_name = parent_names.get(normalize(pb_name))
        if json_name is not None and json_name not in names:
            names.append(json_name)


def missing_tags(name, fields, json_names, borrowed):
    """JSON fields of a v1_33 message that k8s-pb has no tag for (removed after 1.33)."""
    covered = {"apiVersion", "kind"}
    for json_name, ftype, label in fields.values():
        inner = json_names.get(ftype) or borrowed.get(ftype, [])
        covered |= set(inner) if label == "inline" else {json_name}
    return sorted(set(json_names[name]) - covered)


def is_embedded(inner_fields, inner_names, parent_names):
    """An embedded Go struct (`json:",inline"`): its JSON fields are the parent's own.

    OpenAPI flattens such structs, so most (ProbeHandler, VolumeSource) have no k8s-openapi
    definition: then most of their fields must match JSON fields of the parent.
    """
    if inner_names:
        return {normalize(n) for n in inner_names} <= set(parent_names)
    matched = sum(normalize(f[0]) in parent_names for f in inner_fields.values())
    return matched * 2 > len(inner_fields)


def is_items_wrapper(name, pb_fields, json_names):
    return (
        name not in json_names
        and list(pb_fields) == [1]
        and pb_fields[1][0] == "items"
        and pb_fields[1][2] == "repeated"
    )


def check_leaf_shape(name, pb_fields):
    wanted = LEAF_SHAPES[name][1]
    got = {tag: f[1] for tag, f in pb_fields.items()}
    assert got == wanted, f"{name}: k8s-pb fields {got}, transcoder expects {wanted}"


def walk(roots, pb, json_names):
    """Every message reachable from `roots`, with fields renamed; reports fields left out."""
    messages, shapes, report, pending, borrowed = {}, {}, [], list(roots), {}
    while pending:
        name = pending.pop()
        if name in messages or name in shapes:
            continue
        if name not in pb:
            sys.exit(f"gen-protobuf-schema: message {name} is not in k8s-pb")
        if name in LEAF_SHAPES:
            check_leaf_shape(name, pb[name])
            shapes[name] = LEAF_SHAPES[name][0]
            continue
        if name in COMPOSITE_SHAPES:
            shapes[name] = COMPOSITE_SHAPES[name][0]
        elif is_items_wrapper(name, pb[name], json_names):
            shapes[name] = ITEMS_SHAPE
        messages[name] = build_message(name, pb, json_names, borrowed, report)
        pending += [f[1] for f in messages[name].values() if f[1] not in SCALARS]
    return messages, shapes, report


def rename_messages(pb_messages, canonical):
    """k8s-pb messages keyed by upstream name, with field types renamed likewise."""
    return {
        canonical[name]: {tag: (n, canonical.get(t, t), lab) for tag, (n, t, lab) in fields.items()}
        for name, fields in pb_messages.items()
    }


def compact_field(field):
    json_name, ftype, label = field
    return [json_name, ftype] + ([label] if label else [])


def main():
    pb_root = crate_dir(PB_SRC)
    pb_messages = parse_pb(pb_root)
    json_names, kinds = parse_openapi(crate_dir(OPENAPI_SRC))
    canonical = canonical_names(pb_messages, json_names)
    pb = rename_messages(pb_messages, canonical)
    pb_canonical = set(pb)

    table, problems = served_kinds(kinds, pb_canonical)
    problems += pb_resource_problems(pb_root, pb_canonical)
    responses, list_problems = list_kinds(table, pb, json_names)
    problems += list_problems
    for api_version, meta_kinds in META_RESPONSE_KINDS.items():
        responses.setdefault(api_version, {}).update(meta_kinds)
    json_names.update(JSON_NAMES)
    table[META_API_VERSION] = dict(META_KINDS)
    roots = [m for kinds in (table, responses) for v in kinds.values() for m in v.values()]
    messages, shapes, report = walk(roots + [WATCH_EVENT], pb, json_names)

    schema = {
        "kinds": {v: dict(sorted(k.items())) for v, k in sorted(table.items())},
        "metaKinds": META_KINDS,
        "responseKinds": {v: dict(sorted(k.items())) for v, k in sorted(responses.items())},
        "shapes": dict(sorted(shapes.items())),
        "messages": {
            name: {str(tag): compact_field(f) for tag, f in sorted(fields.items())}
            for name, fields in sorted(messages.items())
        },
    }
    with open(OUTPUT, "w", encoding="utf-8") as out:
        json.dump(schema, out, separators=(",", ":"))
        out.write("\n")
    print(
        f"wrote {os.path.relpath(OUTPUT, REPO)}: {sum(map(len, table.values()))} kinds, "
        f"{sum(map(len, responses.values()))} response kinds, "
        f"{len(messages)} messages, {len(shapes)} shapes, "
        f"{sum(r.startswith('left out') for r in report)} k8s-pb fields not in v1_33"
    )
    for problem in problems:
        print("not served:", problem)
    if "--report" in sys.argv:
        print("\n".join(report))


if __name__ == "__main__":
    main()
