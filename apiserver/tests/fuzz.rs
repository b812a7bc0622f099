//! Property tests over what a client controls byte for byte: query strings, request bodies in
//! every accepted encoding, patches of every type, and selectors. Whatever arrives, the
//! server answers with an error or a result, never a panic, and a patch never builds more
//! than the limits allow. The fixed seeds below are inputs that once mattered (amplifying
//! copies, deep nesting, a YAML alias bomb); proptest adds random ones on every run, a
//! bounded number so CI stays short (`PROPTEST_CASES` raises it for a longer hunt).

use apiserver::patch::{self, schema::Schemas, PatchType};
use apiserver::registry::request::{decode_body, Query};
use axum::http::HeaderMap;
use proptest::prelude::*;
use serde_json::{json, Value};

/// Inputs kept as a corpus: each runs on every test run, before the random ones.
const SEEDS: &[&str] = &[
    r#"[{"op":"copy","from":"/data","path":"/data/a"},{"op":"copy","from":"/data","path":"/data/b"}]"#,
    r#"[{"op":"move","from":"/data","path":"/data/x"}]"#,
    r#"[{"op":"add","path":"/metadata/uid","value":"x"},{"op":"test","path":"/kind","value":"Pod"}]"#,
    r#"{"metadata":{"$patch":"delete"},"data":{"$retainKeys":["a"]}}"#,
    "a: &a [1,2]\nb: &b [*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b]\nd: [*c,*c,*c,*c]\n",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
    "labelSelector=a%20in%20(b,c),!d&fieldSelector=metadata.name%3D%3Dx&limit=-1&timeoutSeconds=99999999999999999999",
];

fn configmap() -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "default"}, "data": {"seed": "x".repeat(1000)}})
}

fn headers(content_type: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", content_type.parse().unwrap());
    headers
}

fn schemas() -> std::sync::Arc<Schemas> {
    let mut generator = schemars::generate::SchemaSettings::openapi3().into_generator();
    generator.subschema_for::<k8s_openapi::api::core::v1::ConfigMap>();
    Schemas::new(generator.take_definitions(true))
}

/// Every patch type and body decoder on `input`: no panic, and any patched document stays
/// within a few times the request limit (the server refuses it before storing if larger).
fn exercise(input: &[u8]) {
    let schemas = schemas();
    let root = schemas.root("io.k8s.api.core.v1.ConfigMap");
    let original = configmap();
    for kind in [PatchType::Json, PatchType::Merge, PatchType::Strategic] {
        if let Ok(patched) = patch::apply(kind, &original, input, root) {
            let size = serde_json::to_vec(&patched).unwrap().len();
            assert!(
                size <= input.len() + 2 * apiserver::limits::MAX_JSON_PATCH_COPY_BYTES + 4096,
                "{kind:?} built {size} bytes"
            );
        }
    }
    for content_type in [
        "application/json",
        "application/yaml",
        "application/vnd.kubernetes.protobuf",
    ] {
        let _ = decode_body(
            &headers(content_type),
            &bytes::Bytes::copy_from_slice(input),
        );
    }
    if let Ok(text) = std::str::from_utf8(input) {
        if let Ok(query) = Query::parse(Some(text)) {
            let _ = query.validate_list_options(false);
            let _ = query.revision();
        }
        let _ = machinery::selector::Selector::parse(text);
    }
}

#[test]
fn the_seed_corpus_is_handled() {
    for seed in SEEDS {
        exercise(seed.as_bytes());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..512)) {
        exercise(&input);
    }

    #[test]
    fn arbitrary_json_patches_never_panic(ops in proptest::collection::vec((0..6usize, "(/data(/[a-z]{1,3}){0,3})|/metadata/[a-z]{1,8}", "/data(/[a-z]{1,3}){0,2}"), 0..40)) {
        let names = ["add", "remove", "replace", "move", "copy", "test"];
        let patch: Vec<Value> = ops
            .iter()
            .map(|(op, path, from)| json!({"op": names[*op], "path": path, "from": from, "value": {"v": path}}))
            .collect();
        exercise(&serde_json::to_vec(&patch).unwrap());
    }

    #[test]
    fn arbitrary_selectors_and_queries_never_panic(text in "[a-z!=(),. %&=0-9-]{0,64}") {
        exercise(text.as_bytes());
    }
}
