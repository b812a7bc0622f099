//! The generic REST implementation: create, read, update and delete for any [`Strategy`],
//! with upstream's object semantics (system metadata, generation, status split, optimistic
//! concurrency, finalizers, graceful deletion, dry run, field validation).

use std::any::TypeId;
use std::sync::Arc;

use async_trait::async_trait;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{DeleteOptions, ObjectMeta};
use k8s_openapi::{Metadata, NamespaceResourceScope, Resource as _};
use serde_json::{json, Value};
use store::Store;

use super::cache::{Cache, Derived, Indexer};
use super::request::{
    decode_body, metadata_shape_mismatch, ApiRequest, FieldValidation, Output, Verb,
};
use super::strategy::Strategy;
use super::table::{self, IncludeObject};
use super::{stored, validation, Resource, ResourceInfo};
use crate::decoding;
use crate::error::{ApiError, ApiResult, Cause};
use crate::limits;
use crate::patch::PatchType;

/// Events kept per resource for watchers resuming from a recent resourceVersion.
const CACHE_EVENTS: usize = 4096;

/// Serves one resource through its strategy.
pub struct Rest<S: Strategy> {
    pub(super) strategy: Arc<S>,
    pub(super) info: ResourceInfo,
    pub(super) store: Arc<dyn Store>,
    pub(super) cache: Arc<Cache>,
    /// `/pods/`: every key of the resource starts with it.
    pub(super) prefix: String,
    /// The object's schema, built on the first PATCH: strategic merge patch walks it.
    patch_schemas: std::sync::OnceLock<Arc<crate::patch::schema::Schemas>>,
}

/// Where an update's new object comes from.
enum Source<T> {
    /// A PUT body.
    Object(T),
    /// A PATCH applied to the current object on every attempt.
    Patch(PatchType),
    /// A POST to a changing action subresource, with its body.
    Action(&'static str, Value),
}

impl<S: Strategy> Rest<S> {
    /// Builds the resource and starts its watch cache.
    pub fn new(strategy: S, store: Arc<dyn Store>) -> Self {
        let description = strategy.describe();
        let plural = S::Object::URL_PATH_SEGMENT;
        let prefix = format!("/{}/", description.storage_path.unwrap_or(plural));
        let info = ResourceInfo {
            group: S::Object::GROUP,
            version: S::Object::VERSION,
            kind: S::Object::KIND,
            list_kind: <S::Object as k8s_openapi::ListableResource>::LIST_KIND,
            plural,
            singular: S::Object::KIND.to_ascii_lowercase(),
            namespaced: TypeId::of::<<S::Object as k8s_openapi::Resource>::Scope>()
                == TypeId::of::<NamespaceResourceScope>(),
            description,
        };
        let strategy = Arc::new(strategy);
        let indexer: Indexer = {
            let strategy = strategy.clone();
            let info = info.clone();
            Arc::new(move |raw: &Bytes| {
                let served = convert(&info, raw.clone(), |c| c.from_storage)?;
                let object: S::Object = decoding::from_stored(&served).map_err(|e| {
                    ApiError::Internal(format!("stored object does not decode: {e}"))
                })?;
                Ok((derive(&*strategy, &object), served))
            })
        };
        let cache = Cache::start(
            store.clone(),
            Bytes::from(prefix.clone()),
            indexer,
            CACHE_EVENTS,
        );
        Rest {
            strategy,
            info,
            store,
            cache,
            prefix,
            patch_schemas: std::sync::OnceLock::new(),
        }
    }

    pub(super) fn key(&self, namespace: Option<&str>, name: &str) -> String {
        match (self.info.namespaced, namespace) {
            (true, Some(ns)) => format!("{}{ns}/{name}", self.prefix),
            _ => format!("{}{name}", self.prefix),
        }
    }

    /// The prefix a list or watch covers: one namespace or the whole resource.
    pub(super) fn list_prefix(&self, namespace: Option<&str>) -> String {
        match (self.info.namespaced, namespace) {
            (true, Some(ns)) => format!("{}{ns}/", self.prefix),
            _ => self.prefix.clone(),
        }
    }

    pub(super) fn decode(&self, raw: &[u8], revision: i64) -> ApiResult<S::Object> {
        stored::decode(raw, revision)
    }

    /// Reads the current object or answers 404.
    async fn current(&self, namespace: Option<&str>, name: &str) -> ApiResult<store::KeyValue> {
        let mut kv = self
            .store
            .get(self.key(namespace, name).as_bytes())
            .await?
            .ok_or_else(|| ApiError::NotFound(self.info.target(name)))?;
        kv.value = self.served(kv.value)?;
        Ok(kv)
    }

    /// Stored bytes in this API's form (a no-op unless the resource is stored converted).
    pub(super) fn served(&self, stored: Bytes) -> ApiResult<Bytes> {
        convert(&self.info, stored, |c| c.from_storage)
    }

    /// This API's encoded object in the stored form.
    fn storable(&self, served: Bytes) -> ApiResult<Bytes> {
        convert(&self.info, served, |c| c.to_storage)
    }

    /// Encodes one object for the negotiated output.
    pub(super) fn respond(
        &self,
        code: StatusCode,
        raw: &[u8],
        revision: i64,
        output: Output,
        warnings: &[String],
    ) -> ApiResult<Response> {
        let body = match output {
            Output::Json => stored::with_resource_version(raw, revision),
            Output::Yaml => yaml(&stored::with_resource_version(raw, revision))?,
            Output::Metadata {
                list: false,
                api_version,
            } => {
                let mut body = Vec::with_capacity(raw.len().min(4096));
                stored::write_partial_metadata(&mut body, raw, revision, api_version);
                body
            }
            Output::Metadata { list: true, .. } => {
                return Err(metadata_shape_mismatch(
                    true,
                    &format!("*{}.{}", self.info.version, self.info.kind),
                ))
            }
            Output::Table(include) => {
                let row = self.row(raw, revision, include)?;
                table::table(&self.strategy.columns(), [Ok(row)], None, true, None)?
            }
        };
        Ok(with_warnings(body_response(code, body, output), warnings))
    }

    /// A table row of a stored object: the strategy's cells and the object as
    /// `includeObject` asks.
    pub(super) fn row(
        &self,
        stored: &[u8],
        revision: i64,
        include: IncludeObject,
    ) -> ApiResult<table::Row> {
        let object = self.decode(stored, revision)?;
        Ok((
            self.strategy.cells(&object),
            include.row_object(stored, revision),
        ))
    }

    /// Decodes a request body into the typed object, applying `fieldValidation`.
    fn read_body(&self, request: &ApiRequest) -> ApiResult<(S::Object, Vec<String>)> {
        if request.body.is_empty() {
            return Err(ApiError::BadRequest(
                "the body of the request is empty".into(),
            ));
        }
        let input = decode_body(&request.headers, &request.body)?;
        self.typed(
            input,
            request,
            decoding::Source::of(&request.headers, &request.body),
        )
    }

    /// Checks a document's type and fields and converts it to the typed object as Go would;
    /// `fieldValidation` looks for unknown fields, and for keys repeated in the `source` text.
    fn typed(
        &self,
        input: Value,
        request: &ApiRequest,
        source: decoding::Source,
    ) -> ApiResult<(S::Object, Vec<String>)> {
        let Some(fields_map) = input.as_object() else {
            return Err(ApiError::BadRequest(format!(
                "the body of the request is not a JSON object: {input}"
            )));
        };
        // Like upstream's decoder, a missing apiVersion or kind defaults to the URL's.
        let expected_version = self.info.api_version();
        let api_version = fields_map
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or(&expected_version);
        if api_version != expected_version {
            return Err(ApiError::BadRequest(format!(
                "the API version in the data ({api_version}) does not match the expected API version ({expected_version})"
            )));
        }
        let kind = fields_map
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or(self.info.kind);
        if kind != self.info.kind {
            return Err(ApiError::BadRequest(format!(
                "the kind in the data ({kind}) does not match the expected kind ({})",
                self.info.kind
            )));
        }
        let mut input = input;
        input["apiVersion"] = Value::from(expected_version.as_str());
        input["kind"] = Value::from(self.info.kind);
        let validation = request
            .query
            .field_validation
            .unwrap_or(FieldValidation::Warn);
        let check = validation != FieldValidation::Ignore;
        let (object, unknown) =
            decoding::decode::<S::Object>(input, check).map_err(|e| match e {
                decoding::DecodeError::Invalid(e) => ApiError::BadRequest(format!(
                    "the body of the request could not be decoded: {e}"
                )),
                e @ decoding::DecodeError::Encode(_) => ApiError::Internal(e.to_string()),
            })?;
        if !check {
            return Ok((object, Vec::new()));
        }
        let problems = source.problems(unknown);
        match validation {
            FieldValidation::Strict if !problems.is_empty() => {
                Err(ApiError::BadRequest(format!(
                    "{kind} in version \"{version}\" cannot be handled as a {kind}: strict decoding error: {}",
                    problems.join(", "),
                    kind = self.info.kind,
                    version = self.info.version,
                )))
            }
            _ => Ok((object, problems)),
        }
    }

    /// 404 if the namespace is missing, 403 if it is being deleted, as upstream's
    /// NamespaceLifecycle admission answers.
    async fn check_namespace(&self, namespace: &str, name: &str) -> ApiResult<()> {
        let Some(kv) = self
            .store
            .get(format!("/namespaces/{namespace}").as_bytes())
            .await?
        else {
            return Err(ApiError::NotFound(crate::error::Target {
                group: String::new(),
                resource: "namespaces".into(),
                kind: "Namespace".into(),
                name: namespace.into(),
            }));
        };
        let phase: Option<String> =
            serde_json::from_slice::<Value>(&kv.value)
                .ok()
                .and_then(|ns| {
                    ns.pointer("/status/phase")
                        .and_then(Value::as_str)
                        .map(String::from)
                });
        if phase.as_deref() == Some("Terminating") {
            return Err(ApiError::Forbidden {
                target: self.info.target(name),
                reason: format!(
                    "unable to create new content in namespace {namespace} because it is being terminated"
                ),
            });
        }
        Ok(())
    }

    async fn create(&self, request: ApiRequest) -> ApiResult<Response> {
        let (object, warnings) = self.read_body(&request)?;
        let manager = crate::apply::field_manager(&request, "CreateOptions", false)?;
        self.insert(&request, object, warnings, Some(&manager))
            .await
    }

    /// Creates `object`, for a POST and for a server-side apply to an object that does not
    /// exist yet. `manager` is recorded as the creating updater; an apply has already
    /// recorded itself and passes `None`.
    async fn insert(
        &self,
        request: &ApiRequest,
        mut object: S::Object,
        warnings: Vec<String>,
        manager: Option<&str>,
    ) -> ApiResult<Response> {
        let namespace = self.scope_namespace(request, object.metadata())?;
        let description = &self.info.description;
        {
            let meta = object.metadata_mut();
            meta.namespace = namespace.clone();
            meta.uid = Some(stored::new_uid());
            meta.creation_timestamp = Some(stored::now());
            meta.resource_version = None;
            meta.deletion_timestamp = None;
            meta.deletion_grace_period_seconds = None;
            meta.generation = description.generation.then_some(1);
            meta.self_link = None;
            drop_empty(meta);
        }
        self.strategy.prepare_create(&mut object);
        self.strategy.default_fields(&mut object);
        let generated = object.metadata().name.as_deref().unwrap_or("").is_empty();
        if generated {
            if let Some(base) = object
                .metadata()
                .generate_name
                .clone()
                .filter(|g| !g.is_empty())
            {
                object.metadata_mut().name = Some(format!("{base}{}", stored::name_suffix()));
            }
        }
        let name = object.metadata().name.clone().unwrap_or_default();
        if let Some(manager) = manager {
            self.track(None, &mut object, request, manager)?;
        }
        self.validate(&object, None)?;
        if let Some(ns) = &namespace {
            self.check_namespace(ns, &name).await?;
        }
        self.strategy.admit_create(&mut object).await?;
        let written = match stored::encode(&object)
            .and_then(|raw| limits::check_object_size(&raw).map(|()| raw))
        {
            Ok(raw) if request.query.dry_run => match self
                .store
                .get(self.key(namespace.as_deref(), &name).as_bytes())
                .await
            {
                Ok(Some(_)) => Err(ApiError::AlreadyExists(self.info.target(&name))),
                Ok(None) => Ok((raw, 0)),
                Err(other) => Err(other.into()),
            },
            Ok(raw) => match self
                .store
                .create(
                    self.key(namespace.as_deref(), &name).as_bytes(),
                    self.storable(raw.clone())?,
                )
                .await
            {
                Ok(revision) => Ok((raw, revision)),
                Err(store::Error::AlreadyExists { .. }) => {
                    Err(ApiError::AlreadyExists(self.info.target(&name)))
                }
                Err(other) => Err(other.into()),
            },
            Err(error) => Err(error),
        };
        if request.query.dry_run || written.is_err() {
            self.strategy.release(&object, None).await;
        }
        let (raw, revision) = written?;
        self.respond(
            StatusCode::CREATED,
            &raw,
            revision,
            request.output,
            &warnings,
        )
    }

    /// The namespace an object lives in: the URL's; a different one in the body is a 400.
    fn scope_namespace(
        &self,
        request: &ApiRequest,
        meta: &ObjectMeta,
    ) -> ApiResult<Option<String>> {
        if !self.info.namespaced {
            return Ok(None);
        }
        let url = request
            .namespace
            .clone()
            .ok_or(ApiError::MethodNotAllowed)?;
        match meta.namespace.as_deref() {
            Some(body) if !body.is_empty() && body != url => Err(ApiError::BadRequest(
                "the namespace of the provided object does not match the namespace sent on the request".into(),
            )),
            _ => Ok(Some(url)),
        }
    }

    fn validate(&self, object: &S::Object, old: Option<&S::Object>) -> ApiResult<()> {
        let mut causes =
            validation::object_meta(object.metadata(), self.info.description.name_rule);
        causes.extend(match old {
            Some(old) => {
                let mut causes = validation::object_meta_update(object.metadata(), old.metadata());
                causes.extend(self.strategy.validate_update(object, old));
                causes
            }
            None => self.strategy.validate(object),
        });
        if causes.is_empty() {
            return Ok(());
        }
        let name = object.metadata().name.clone().unwrap_or_default();
        Err(ApiError::Invalid {
            target: self.info.target(&name),
            causes,
        })
    }

    async fn update(&self, request: ApiRequest) -> ApiResult<Response> {
        let (input, warnings) = self.read_body(&request)?;
        self.write(request, Source::Object(input), warnings).await
    }

    async fn patch(&self, request: ApiRequest) -> ApiResult<Response> {
        let kind = PatchType::from_headers(&request.headers)?;
        self.write(request, Source::Patch(kind), Vec::new()).await
    }

    /// The object's schema, built on first use: patches and managed fields walk it.
    fn schemas(&self) -> &crate::patch::schema::Schemas {
        self.patch_schemas.get_or_init(|| {
            let mut generator = schemars::generate::SchemaSettings::openapi3().into_generator();
            generator.subschema_for::<S::Object>();
            crate::patch::schema::Schemas::new(generator.take_definitions(true))
        })
    }

    /// Runs `f` with what managed-fields bookkeeping needs to know about a write to this
    /// resource.
    pub(super) fn with_context<T>(
        &self,
        request: &ApiRequest,
        f: impl FnOnce(&crate::apply::Context) -> T,
    ) -> T {
        let definition = <S::Object as schemars::JsonSchema>::schema_name();
        let api_version = self.info.api_version();
        let context = crate::apply::Context {
            schema: self.schemas().root(&definition),
            definition: &definition,
            api_version: &api_version,
            kind: self.info.kind,
            subresource: request.subresource.as_deref(),
            has_status: self.info.description.status,
        };
        f(&context)
    }

    /// Records a create (`old` is `None`) or an update by `manager` in the object's
    /// `managedFields`.
    pub(super) fn track(
        &self,
        old: Option<&S::Object>,
        object: &mut S::Object,
        request: &ApiRequest,
        manager: &str,
    ) -> ApiResult<()> {
        let to_value =
            |o: &S::Object| serde_json::to_value(o).map_err(|e| ApiError::Internal(e.to_string()));
        let old = old.map(to_value).transpose()?;
        let mut new = to_value(object)?;
        self.with_context(request, |context| {
            crate::apply::track(old.as_ref(), &mut new, context, manager)
        });
        let managed = new
            .pointer("/metadata/managedFields")
            .cloned()
            .unwrap_or(Value::Null);
        object.metadata_mut().managed_fields =
            serde_json::from_value(managed).map_err(|e| ApiError::Internal(e.to_string()))?;
        Ok(())
    }

    /// Server-side apply to an object that does not exist: the configuration applied to the
    /// empty object, then created as a POST would be (201).
    async fn apply_create(&self, request: &ApiRequest, manager: &str) -> ApiResult<Response> {
        let force = request.query.force.unwrap_or(false);
        let applied = self.with_context(request, |context| {
            crate::apply::apply(None, &request.body, context, manager, force)
        })?;
        let (object, warnings) = self.typed(applied, request, decoding::Source::Other)?;
        let name = request.name.clone().unwrap_or_default();
        match object.metadata().name.as_deref().unwrap_or("") {
            "" => Err(ApiError::BadRequest(format!(
                "the name of the object ({name} based on URL) was undeterminable: name must be provided"
            ))),
            _ => {
                check_body_name(object.metadata(), &name)?;
                self.insert(request, object, warnings, None).await
            }
        }
    }

    /// The new object a PATCH by `manager` makes of `current`, with the resourceVersion the
    /// patch itself demands (if it changed the current one).
    fn patched(
        &self,
        kind: PatchType,
        current: &store::KeyValue,
        request: &ApiRequest,
        manager: &str,
    ) -> ApiResult<(S::Object, Option<String>, Vec<String>)> {
        let original: Value = serde_json::from_slice(&stored::with_resource_version(
            &current.value,
            current.mod_revision,
        ))
        .map_err(|e| ApiError::Internal(e.to_string()))?;
        let patched = match kind {
            PatchType::Apply => {
                let force = request.query.force.unwrap_or(false);
                self.with_context(request, |context| {
                    crate::apply::apply(Some(&original), &request.body, context, manager, force)
                })?
            }
            _ => {
                let root = <S::Object as schemars::JsonSchema>::schema_name();
                crate::patch::apply(kind, &original, &request.body, self.schemas().root(&root))?
            }
        };
        let demanded = patched
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .map(String::from);
        let precondition =
            demanded.filter(|rv| !rv.is_empty() && *rv != current.mod_revision.to_string());
        let (object, warnings) = self.typed(patched, request, decoding::Source::Other)?;
        Ok((object, precondition, warnings))
    }

    /// The update path shared by PUT and PATCH: read, merge, default, validate, compare and
    /// swap, retrying on a concurrent write unless the client pinned a resourceVersion.
    async fn write(
        &self,
        request: ApiRequest,
        source: Source<S::Object>,
        mut warnings: Vec<String>,
    ) -> ApiResult<Response> {
        let name = request.name.clone().unwrap_or_default();
        let subresource = request.subresource.as_deref();
        let namespace = request.namespace.clone().filter(|_| self.info.namespaced);
        let applying = matches!(source, Source::Patch(PatchType::Apply));
        let manager = match &source {
            Source::Object(_) => crate::apply::field_manager(&request, "UpdateOptions", false)?,
            Source::Patch(kind) => {
                crate::apply::field_manager(&request, "PatchOptions", *kind == PatchType::Apply)?
            }
            Source::Action(..) => String::new(),
        };
        loop {
            let current = match self.current(namespace.as_deref(), &name).await {
                Err(ApiError::NotFound(_)) if applying && subresource.is_none() => {
                    match self.apply_create(&request, &manager).await {
                        Err(ApiError::AlreadyExists(_)) => continue,
                        created => return created,
                    }
                }
                Err(ApiError::NotFound(_))
                    if subresource.is_none() && self.info.description.create_on_update =>
                {
                    let Source::Object(input) = &source else {
                        return Err(ApiError::NotFound(self.info.target(&name)));
                    };
                    check_body_name(input.metadata(), &name)?;
                    let mut object = input.clone();
                    object.metadata_mut().name = Some(name.clone());
                    match self
                        .insert(&request, object, warnings.clone(), Some(&manager))
                        .await
                    {
                        Err(ApiError::AlreadyExists(_)) => continue,
                        created => return created,
                    }
                }
                current => current?,
            };
            let (input, precondition) = match &source {
                Source::Object(input) => (
                    input.clone(),
                    input
                        .metadata()
                        .resource_version
                        .clone()
                        .filter(|rv| !rv.is_empty()),
                ),
                Source::Patch(kind) => {
                    let (input, precondition, found) =
                        self.patched(*kind, &current, &request, &manager)?;
                    warnings = found;
                    (input, precondition)
                }
                Source::Action(action, body) => {
                    let mut object = self.decode(&current.value, current.mod_revision)?;
                    self.strategy.act(action, &mut object, body)?;
                    (object, None)
                }
            };
            self.scope_namespace(&request, input.metadata())?;
            check_body_name(input.metadata(), &name)?;
            let old = self.decode(&current.value, current.mod_revision)?;
            if let Source::Object(input) = &source {
                // Like upstream, a UID in a PUT body is a precondition, checked before the
                // resourceVersion: a client holding an object that was deleted and recreated
                // under the same name must not overwrite the new one.
                self.check_body_uid(input.metadata().uid.as_deref(), &old, &name, &current.key)?;
                if precondition.is_none() && !self.info.description.unconditional_update {
                    return Err(ApiError::Invalid {
                        target: self.info.target(&name),
                        causes: vec![Cause::invalid_printed(
                            "metadata.resourceVersion",
                            "0x0",
                            "must be specified for an update",
                        )],
                    });
                }
            }
            if let Some(rv) = &precondition {
                if *rv != current.mod_revision.to_string() {
                    return Err(self.modified(&name));
                }
            }
            let mut object = self.merge_update(&input, &old, subresource)?;
            if subresource == Some("status") {
                self.strategy.prepare_status_update(&mut object, &old);
            } else {
                self.strategy.prepare_update(&mut object, &old);
            }
            self.strategy.default_fields(&mut object);
            match &source {
                Source::Patch(PatchType::Apply) => {
                    object.metadata_mut().managed_fields = input.metadata().managed_fields.clone()
                }
                Source::Action(..) => {}
                _ => self.track(Some(&old), &mut object, &request, &manager)?,
            }
            // An action (a binding) is the strategy's own change, exempt from update rules
            // such as pod spec immutability, as upstream's binding bypasses them.
            if !matches!(source, Source::Action(..)) {
                self.validate(&object, Some(&old))?;
            }
            self.strategy.admit_update(&mut object, &old).await?;
            let raw = match stored::encode(&object)
                .and_then(|raw| limits::check_object_size(&raw).map(|()| raw))
            {
                Ok(raw) => raw,
                Err(error) => {
                    self.strategy.release(&object, Some(&old)).await;
                    return Err(error);
                }
            };
            if raw == current.value {
                return self.respond(
                    StatusCode::OK,
                    &current.value,
                    current.mod_revision,
                    request.output,
                    &warnings,
                );
            }
            if request.query.dry_run {
                self.strategy.release(&object, Some(&old)).await;
                return self.respond(
                    StatusCode::OK,
                    &raw,
                    current.mod_revision,
                    request.output,
                    &warnings,
                );
            }
            let written = self
                .write_update(
                    namespace.as_deref(),
                    &name,
                    &object,
                    raw.clone(),
                    current.mod_revision,
                )
                .await;
            match &written {
                Ok(_) => self.strategy.release(&old, Some(&object)).await,
                Err(_) => self.strategy.release(&object, Some(&old)).await,
            }
            match written {
                Ok(revision) => {
                    return self.respond(StatusCode::OK, &raw, revision, request.output, &warnings)
                }
                Err(store::Error::Conflict { .. }) if precondition.is_none() => continue,
                Err(store::Error::Conflict { .. }) => return Err(self.modified(&name)),
                Err(store::Error::NotFound { .. }) => {
                    return Err(ApiError::NotFound(self.info.target(&name)))
                }
                Err(other) => return Err(other.into()),
            }
        }
    }

    /// Stores an update; an object being deleted whose last finalizer just went is removed.
    async fn write_update(
        &self,
        namespace: Option<&str>,
        name: &str,
        object: &S::Object,
        raw: Bytes,
        expected: i64,
    ) -> store::Result<i64> {
        let key = self.key(namespace, name);
        let stored = self
            .storable(raw)
            .map_err(|e| store::Error::InvalidArgument(e.to_string()))?;
        let revision = self.store.update(key.as_bytes(), stored, expected).await?;
        let meta = object.metadata();
        let finalized = meta.finalizers.as_ref().is_none_or(|f| f.is_empty())
            && !self.strategy.holds_deletion(object);
        if meta.deletion_timestamp.is_some()
            && finalized
            && self.strategy.grace_period(object, None).is_none()
        {
            match self.store.delete(key.as_bytes(), Some(revision)).await {
                Ok((deleted, _)) => {
                    self.strategy.release(object, None).await;
                    return Ok(deleted);
                }
                Err(store::Error::Conflict { .. } | store::Error::NotFound { .. }) => {}
                Err(other) => return Err(other),
            }
        }
        Ok(revision)
    }

    fn modified(&self, name: &str) -> ApiError {
        ApiError::Conflict {
            target: self.info.target(name),
            detail: "the object has been modified; please apply your changes to the latest version and try again".into(),
        }
    }

    /// The object an update stores: the input with the system metadata of `old`, and only
    /// the part the (sub)resource may change.
    fn merge_update(
        &self,
        input: &S::Object,
        old: &S::Object,
        subresource: Option<&str>,
    ) -> ApiResult<S::Object> {
        let description = &self.info.description;
        let to_value =
            |o: &S::Object| serde_json::to_value(o).map_err(|e| ApiError::Internal(e.to_string()));
        let (mut new, old_value) = (to_value(input)?, to_value(old)?);
        match subresource {
            Some("status") => {
                // Like upstream's status strategies: everything but metadata and status (the
                // spec) stays as it was; metadata changes such as annotations go through.
                if let (Some(new_fields), Some(old_fields)) =
                    (new.as_object_mut(), old_value.as_object())
                {
                    new_fields.retain(|key, _| key == "metadata" || key == "status");
                    for (key, value) in old_fields {
                        if key != "metadata" && key != "status" {
                            new_fields.insert(key.clone(), value.clone());
                        }
                    }
                }
            }
            Some("finalize") => {
                let finalizers = new.pointer("/spec/finalizers").cloned();
                new = old_value.clone();
                if let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) {
                    match finalizers {
                        Some(f) => spec.insert("finalizers".into(), f),
                        None => spec.remove("finalizers"),
                    };
                }
            }
            Some(sub) if self.action(sub).is_some() => {}
            _ if description.status => {
                set_or_remove(&mut new, "status", old_value.get("status").cloned())
            }
            _ => {}
        }
        let mut object: S::Object =
            serde_json::from_value(new).map_err(|e| ApiError::BadRequest(e.to_string()))?;
        let old_meta = old.metadata();
        {
            let meta = object.metadata_mut();
            meta.name = old_meta.name.clone();
            meta.namespace = old_meta.namespace.clone();
            // Upstream's BeforeUpdate: an absent UID, the creation time and a deletion in
            // progress carry over; a UID, deletion time or grace period the client changed
            // stays, for validation to refuse as immutable.
            if meta.uid.as_deref().unwrap_or("").is_empty() {
                meta.uid = old_meta.uid.clone();
            }
            meta.creation_timestamp = old_meta.creation_timestamp.clone();
            if old_meta.deletion_timestamp.is_some() {
                meta.deletion_timestamp = old_meta.deletion_timestamp.clone();
            }
            if meta.deletion_grace_period_seconds.is_none() {
                meta.deletion_grace_period_seconds = old_meta.deletion_grace_period_seconds;
            }
            meta.generate_name = meta
                .generate_name
                .take()
                .or_else(|| old_meta.generate_name.clone());
            meta.generation = old_meta.generation;
            meta.self_link = None;
            drop_empty(meta);
        }
        if description.generation && spec_changed(&to_value(&object)?, &old_value) {
            object.metadata_mut().generation = Some(old_meta.generation.unwrap_or(0) + 1);
        }
        Ok(object)
    }

    async fn delete(&self, request: ApiRequest) -> ApiResult<Response> {
        let name = request.name.clone().unwrap_or_default();
        let namespace = request.namespace.clone().filter(|_| self.info.namespaced);
        let options = delete_options(&request)?;
        loop {
            let current = self.current(namespace.as_deref(), &name).await?;
            let mut object = self.decode(&current.value, current.mod_revision)?;
            self.strategy.check_delete(&object, &options)?;
            self.check_preconditions(&options, &object, &name)?;
            match self.begin_delete(&mut object, &options) {
                Some(object) => {
                    let raw = stored::encode(&object)?;
                    if raw == current.value || request.query.dry_run {
                        return self.respond(
                            StatusCode::OK,
                            &raw,
                            current.mod_revision,
                            request.output,
                            &[],
                        );
                    }
                    match self
                        .store
                        .update(
                            self.key(namespace.as_deref(), &name).as_bytes(),
                            self.storable(raw.clone())?,
                            current.mod_revision,
                        )
                        .await
                    {
                        Ok(revision) => {
                            return self.respond(
                                StatusCode::OK,
                                &raw,
                                revision,
                                request.output,
                                &[],
                            )
                        }
                        Err(store::Error::Conflict { .. }) => continue,
                        Err(store::Error::NotFound { .. }) => {
                            return Err(ApiError::NotFound(self.info.target(&name)))
                        }
                        Err(other) => return Err(other.into()),
                    }
                }
                None => {
                    if !request.query.dry_run {
                        match self
                            .store
                            .delete(
                                self.key(namespace.as_deref(), &name).as_bytes(),
                                Some(current.mod_revision),
                            )
                            .await
                        {
                            Ok(_) => self.strategy.release(&object, None).await,
                            Err(store::Error::Conflict { .. }) => continue,
                            Err(store::Error::NotFound { .. }) => {
                                return Err(ApiError::NotFound(self.info.target(&name)))
                            }
                            Err(other) => return Err(other.into()),
                        }
                    }
                    if self.info.description.return_deleted_object {
                        return self.respond(
                            StatusCode::OK,
                            &current.value,
                            current.mod_revision,
                            request.output,
                            &[],
                        );
                    }
                    return Ok(success_status(
                        &self.info,
                        &name,
                        object.metadata().uid.as_deref(),
                    ));
                }
            }
        }
    }

    /// Upstream's delete preconditions (uid, resourceVersion).
    fn check_preconditions(
        &self,
        options: &DeleteOptions,
        object: &S::Object,
        name: &str,
    ) -> ApiResult<()> {
        let Some(preconditions) = &options.preconditions else {
            return Ok(());
        };
        let meta = object.metadata();
        // Upstream's BeforeDelete names the kind, not the resource, in these conflicts.
        let target = crate::error::Target {
            group: self.info.group.into(),
            resource: self.info.kind.into(),
            kind: self.info.kind.into(),
            name: name.into(),
        };
        let actual_uid = meta.uid.as_deref().unwrap_or_default();
        if let Some(uid) = preconditions.uid.as_deref().filter(|u| *u != actual_uid) {
            return Err(ApiError::Conflict {
                target,
                detail: format!(
                    "the UID in the precondition ({uid}) does not match the UID in record ({actual_uid}). The object might have been deleted and then recreated"
                ),
            });
        }
        if let Some(rv) = &preconditions.resource_version {
            if Some(rv) != meta.resource_version.as_ref() {
                return Err(ApiError::Conflict {
                    target,
                    detail: format!(
                        "the ResourceVersion in the precondition ({rv}) does not match the ResourceVersion in record ({}). The object might have been modified",
                        meta.resource_version.as_deref().unwrap_or("")
                    ),
                });
            }
        }
        Ok(())
    }

    /// The UID in a PUT body, a precondition on the current object. Upstream's storage layer
    /// refuses it, so the conflict carries its storage error naming the full key.
    fn check_body_uid(
        &self,
        uid: Option<&str>,
        current: &S::Object,
        name: &str,
        key: &[u8],
    ) -> ApiResult<()> {
        let Some(uid) = uid.filter(|u| !u.is_empty()) else {
            return Ok(());
        };
        let actual = current.metadata().uid.as_deref().unwrap_or("");
        if uid == actual {
            return Ok(());
        }
        let full_key = [self.store.key_prefix(), key].concat();
        Err(ApiError::Conflict {
            target: self.info.target(name),
            detail: format!(
                "StorageError: invalid object, Code: 4, Key: {}, ResourceVersion: 0, AdditionalErrorMsg: Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}",
                String::from_utf8_lossy(&full_key)
            ),
        })
    }

    /// The object to store instead of deleting it when the deletion must wait (finalizers,
    /// a grace period); `None` when it can go now.
    fn begin_delete(&self, object: &mut S::Object, options: &DeleteOptions) -> Option<S::Object> {
        let policy = options
            .propagation_policy
            .as_deref()
            .or(match options.orphan_dependents {
                Some(true) => Some("Orphan"),
                _ => None,
            });
        let finalizer = match policy {
            Some("Orphan") => Some("orphan"),
            Some("Foreground") => Some("foregroundDeletion"),
            _ => None,
        };
        let grace = self
            .strategy
            .grace_period(object, options.grace_period_seconds);
        let meta = object.metadata_mut();
        if let Some(finalizer) = finalizer {
            if meta.deletion_timestamp.is_none() {
                let finalizers = meta.finalizers.get_or_insert_with(Vec::new);
                if !finalizers.iter().any(|f| f == finalizer) {
                    finalizers.push(finalizer.to_string());
                }
            }
        }
        let has_finalizers = meta.finalizers.as_ref().is_some_and(|f| !f.is_empty());
        let waits =
            has_finalizers || self.strategy.holds_deletion(object) || grace.is_some_and(|g| g > 0);
        if !waits {
            return None;
        }
        let meta = object.metadata_mut();
        if meta.deletion_timestamp.is_none() {
            let now = stored::now();
            let seconds = grace.unwrap_or(0);
            meta.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                jiff::Timestamp::from_second(now.0.as_second() + seconds).unwrap_or(now.0),
            ));
            meta.deletion_grace_period_seconds = Some(seconds);
        } else if let Some(seconds) = grace {
            // A shorter grace period may only shorten a deletion in progress.
            if meta
                .deletion_grace_period_seconds
                .is_none_or(|current| seconds < current)
            {
                meta.deletion_grace_period_seconds = Some(seconds);
            }
        }
        self.strategy.begin_deletion(object);
        Some(object.clone())
    }

    async fn get(&self, request: ApiRequest) -> ApiResult<Response> {
        let name = request.name.clone().unwrap_or_default();
        let kv = self
            .current(
                request
                    .namespace
                    .as_deref()
                    .filter(|_| self.info.namespaced),
                &name,
            )
            .await?;
        self.respond(
            StatusCode::OK,
            &kv.value,
            kv.mod_revision,
            request.output,
            &[],
        )
    }
}

/// Re-encodes `raw` through one direction of the resource's conversion, if it has one.
fn convert(
    info: &ResourceInfo,
    raw: Bytes,
    direction: impl Fn(&super::strategy::Conversion) -> fn(&Value) -> Value,
) -> ApiResult<Bytes> {
    let Some(conversion) = &info.description.conversion else {
        return Ok(raw);
    };
    let value: Value = serde_json::from_slice(&raw)
        .map_err(|e| ApiError::Internal(format!("stored object does not decode: {e}")))?;
    stored::encode(&direction(conversion)(&value))
}

/// A name in the body must be the URL's (an absent one takes the URL's), as upstream's
/// `checkName` requires.
fn check_body_name(meta: &ObjectMeta, url_name: &str) -> ApiResult<()> {
    match meta.name.as_deref() {
        Some(body_name) if !body_name.is_empty() && body_name != url_name => {
            Err(ApiError::BadRequest(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({url_name})"
            )))
        }
        _ => Ok(()),
    }
}

/// The Status upstream answers a DELETE with when it does not return the object.
fn success_status(info: &ResourceInfo, name: &str, uid: Option<&str>) -> Response {
    let mut details = json!({"name": name, "kind": info.plural});
    if !info.group.is_empty() {
        details["group"] = Value::from(info.group);
    }
    if let Some(uid) = uid {
        details["uid"] = Value::from(uid);
    }
    let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details});
    body_response(
        StatusCode::OK,
        serde_json::to_vec(&status).unwrap_or_default(),
        Output::Json,
    )
}

/// DeleteOptions from the body (if any) and the query string, which wins.
fn delete_options(request: &ApiRequest) -> ApiResult<DeleteOptions> {
    let mut options: DeleteOptions = if request.body.iter().all(u8::is_ascii_whitespace) {
        DeleteOptions::default()
    } else {
        let value = decode_body(&request.headers, &request.body)?;
        serde_json::from_value(value)
            .map_err(|e| ApiError::BadRequest(format!("invalid DeleteOptions: {e}")))?
    };
    if let Some(grace) = request.query.grace_period_seconds {
        options.grace_period_seconds = Some(grace);
    }
    if let Some(policy) = &request.query.propagation_policy {
        options.propagation_policy = Some(policy.clone());
    }
    if let Some(policy) = &options.propagation_policy {
        if !["Orphan", "Background", "Foreground"].contains(&policy.as_str()) {
            return Err(ApiError::Invalid {
                target: crate::error::Target {
                    group: String::new(),
                    resource: String::new(),
                    kind: String::new(),
                    name: String::new(),
                },
                causes: vec![Cause::unsupported(
                    "propagationPolicy",
                    &Value::from(policy.as_str()),
                    &["Foreground", "Background", "Orphan"],
                )],
            });
        }
    }
    if options.grace_period_seconds.is_some_and(|g| g < 0) {
        options.grace_period_seconds = Some(0);
    }
    Ok(options)
}

/// Empty label, annotation, finalizer and owner lists are absent upstream (Go omits empty
/// maps and slices), so removing the last label leaves no `labels: {}` behind.
fn drop_empty(meta: &mut ObjectMeta) {
    if meta.labels.as_ref().is_some_and(|m| m.is_empty()) {
        meta.labels = None;
    }
    if meta.annotations.as_ref().is_some_and(|m| m.is_empty()) {
        meta.annotations = None;
    }
    if meta.finalizers.as_ref().is_some_and(|f| f.is_empty()) {
        meta.finalizers = None;
    }
    if meta.owner_references.as_ref().is_some_and(|o| o.is_empty()) {
        meta.owner_references = None;
    }
}

/// Whether anything but metadata and status differs: what bumps `metadata.generation`.
fn spec_changed(new: &Value, old: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(map) = v.as_object_mut() {
            map.remove("metadata");
            map.remove("status");
        }
        v
    };
    strip(new) != strip(old)
}

fn set_or_remove(object: &mut Value, key: &str, value: Option<Value>) {
    if let Some(map) = object.as_object_mut() {
        match value {
            Some(value) => map.insert(key.into(), value),
            None => map.remove(key),
        };
    }
}

fn json_headers() -> axum::http::HeaderMap {
    let mut headers = axum::http::HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers
}

/// Converts a JSON document to YAML for `Accept: application/yaml`.
pub(super) fn yaml(json: &[u8]) -> ApiResult<Vec<u8>> {
    let value: Value =
        serde_json::from_slice(json).map_err(|e| ApiError::Internal(e.to_string()))?;
    crate::yaml::from_json(&value)
        .map(String::into_bytes)
        .map_err(|e| ApiError::Internal(e.to_string()))
}

pub(super) fn body_response(code: StatusCode, body: Vec<u8>, output: Output) -> Response {
    let content_type = match output {
        Output::Yaml => "application/yaml",
        _ => "application/json",
    };
    let mut response = (code, body).into_response();
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static(content_type));
    response
}

/// Adds upstream-style `Warning: 299 - "..."` headers.
pub(super) fn with_warnings(mut response: Response, warnings: &[String]) -> Response {
    for warning in warnings {
        let text = format!("299 - {:?}", warning);
        if let Ok(value) = HeaderValue::from_str(&text) {
            response.headers_mut().append("warning", value);
        }
    }
    response
}

/// What selectors need from an object, computed once per version for the watch cache.
pub(super) fn derive<S: Strategy>(strategy: &S, object: &S::Object) -> Derived {
    let meta = object.metadata();
    let mut fields = vec![
        ("metadata.name", meta.name.clone().unwrap_or_default()),
        (
            "metadata.namespace",
            meta.namespace.clone().unwrap_or_default(),
        ),
    ];
    fields.extend(strategy.fields(object));
    Derived {
        labels: meta.labels.clone().unwrap_or_default(),
        fields,
    }
}

#[async_trait]
impl<S: Strategy> Resource for Rest<S> {
    fn info(&self) -> &ResourceInfo {
        &self.info
    }

    fn schema(&self, generator: &mut schemars::SchemaGenerator) -> String {
        generator.subschema_for::<S::Object>();
        <S::Object as schemars::JsonSchema>::schema_name().into_owned()
    }

    async fn handle(&self, request: ApiRequest) -> ApiResult<Response> {
        let answer = self.dispatch(request).await;
        // A deprecated resource warns on every request, failed ones too, as upstream does.
        match self.info.description.deprecation {
            Some(warning) => {
                let response = answer.unwrap_or_else(IntoResponse::into_response);
                Ok(with_warnings(response, &[warning.to_string()]))
            }
            None => answer,
        }
    }
}

impl<S: Strategy> Rest<S> {
    async fn dispatch(&self, request: ApiRequest) -> ApiResult<Response> {
        let description = &self.info.description;
        let subresource = request.subresource.clone();
        // Like upstream, a Table is only offered where the storage can draw one: the
        // resource, its status and its scale, not finalize or create-only actions. Asked
        // for nothing else, the request is refused before anything is done.
        if matches!(request.output, Output::Table(_))
            && !matches!(subresource.as_deref(), None | Some("status" | "scale"))
        {
            return Err(super::request::not_acceptable());
        }
        match (request.verb, subresource.as_deref()) {
            (Verb::Get, None) => self.get(request).await,
            (Verb::Get, Some("status")) if description.status => self.get(request).await,
            (Verb::Update, Some("status")) if description.status => self.update(request).await,
            (Verb::Update, Some("finalize")) if description.finalize => self.update(request).await,
            (Verb::Get | Verb::Update | Verb::Patch, Some("scale"))
                if description.scale.is_some() =>
            {
                self.scale(request).await
            }
            (Verb::List, None) => self.list(request).await,
            (Verb::Watch, None) => self.watch(request).await,
            (Verb::Create, None) if request.name.is_none() => self.create(request).await,
            (Verb::Update, None) => self.update(request).await,
            (Verb::Patch, None) => self.patch(request).await,
            (Verb::Patch, Some("status")) if description.status => self.patch(request).await,
            (Verb::Delete, None) => self.delete(request).await,
            (Verb::DeleteCollection, None) if description.delete_collection => {
                self.delete_collection(request).await
            }
            (Verb::Create, Some(sub)) if request.name.is_some() && self.action(sub).is_some() => {
                self.act(request).await
            }
            (_, Some(sub)) if !self.serves(sub) => Err(ApiError::PathNotFound),
            _ => Err(ApiError::MethodNotAllowed),
        }
    }
}

impl<S: Strategy> Rest<S> {
    fn action(&self, subresource: &str) -> Option<&'static super::strategy::Action> {
        self.info
            .description
            .actions
            .iter()
            .find(|a| a.name == subresource)
    }

    /// A POST to an action subresource: the change (or deletion) it asks for, answered with
    /// upstream's `Status` Success and 201.
    async fn act(&self, request: ApiRequest) -> ApiResult<Response> {
        let action = self
            .action(request.subresource.as_deref().unwrap_or(""))
            .ok_or(ApiError::PathNotFound)?;
        let body = decode_body(&request.headers, &request.body)?;
        if body.get("kind").and_then(Value::as_str) != Some(action.kind) {
            return Err(ApiError::BadRequest(format!(
                "the body of the request must be a {}",
                action.kind
            )));
        }
        if action.deletes {
            let options = body
                .get("deleteOptions")
                .cloned()
                .unwrap_or(Value::Object(Default::default()));
            let delete = ApiRequest {
                verb: Verb::Delete,
                subresource: None,
                body: Bytes::from(
                    serde_json::to_vec(&options).map_err(|e| ApiError::Internal(e.to_string()))?,
                ),
                headers: json_headers(),
                ..request
            };
            self.delete(delete).await?;
        } else {
            self.write(request, Source::Action(action.name, body), Vec::new())
                .await?;
        }
        let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201});
        Ok(body_response(
            StatusCode::CREATED,
            serde_json::to_vec(&status).unwrap_or_default(),
            Output::Json,
        ))
    }

    fn serves(&self, subresource: &str) -> bool {
        let description = &self.info.description;
        match subresource {
            "status" => description.status,
            "scale" => description.scale.is_some(),
            "finalize" => description.finalize,
            _ => false,
        }
    }
}
