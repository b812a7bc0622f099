//! The generic REST implementation: create, read, update and delete for any [`Strategy`],
//! with upstream's object semantics (system metadata, generation, status split, optimistic
//! concurrency, finalizers, graceful deletion, dry run, field validation).
//!
//! Each verb is a file; every one returns an [`Outcome`] and leaves encoding to
//! [`super::encode`].

mod admission;
mod body;
mod create;
mod delete;
mod reservation;
mod update;

use std::any::TypeId;
use std::sync::Arc;

use async_trait::async_trait;
use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{DeleteOptions, ObjectMeta};
use k8s_openapi::{Metadata, NamespaceResourceScope, Resource as _};
use serde_json::{json, Value};
use store::Store;

use super::cache::{Cache, Derived, Indexer};
use super::encode::{error_response, with_warnings, Encoder, Outcome, StrategyRows};
use super::request::{decode_body, ApiRequest, Output, Verb};
use super::strategy::{Effect, Strategy};
use super::{stored, validation, Resource, ResourceInfo};
use crate::decoding;
use crate::error::{ApiError, ApiResult};
use crate::patch::PatchType;

/// Events kept per resource for watchers resuming from a recent resourceVersion.
const CACHE_EVENTS: usize = 4096;

/// Serves one resource through its strategy.
pub struct Rest<S: Strategy> {
    pub(super) strategy: Arc<S>,
    pub(super) info: ResourceInfo,
    pub(super) store: Arc<dyn Store>,
    pub(super) cache: Arc<Cache>,
    /// Encodes this resource's outcomes; watchers hold it too.
    pub(super) encoder: Arc<Encoder>,
    /// `/pods/`: every key of the resource starts with it.
    pub(super) prefix: String,
    /// The object's schema, built on the first PATCH: strategic merge patch walks it.
    patch_schemas: std::sync::OnceLock<Arc<crate::patch::schema::Schemas>>,
    /// The admission chain of the registry serving the resource; none until it is added
    /// to one.
    admission: std::sync::OnceLock<Arc<crate::admission::Chain>>,
    /// Stops the watch cache's feeder when the resource goes.
    _feeding: tokio_util::sync::DropGuard,
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
        let stop = tokio_util::sync::CancellationToken::new();
        let cache = Cache::start(
            store.clone(),
            Bytes::from(prefix.clone()),
            indexer,
            CACHE_EVENTS,
            stop.clone(),
        );
        let encoder = Arc::new(Encoder::new(
            &info,
            Arc::new(StrategyRows(strategy.clone())),
        ));
        Rest {
            encoder,
            strategy,
            info,
            store,
            cache,
            prefix,
            patch_schemas: std::sync::OnceLock::new(),
            admission: std::sync::OnceLock::new(),
            _feeding: stop.drop_guard(),
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
    pub(super) async fn current(
        &self,
        namespace: Option<&str>,
        name: &str,
    ) -> ApiResult<store::KeyValue> {
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

    /// What a write answers with: `raw` as a read returns it after the write, which for a
    /// resource kept in another API's layout is the stored form converted back (a v1
    /// HorizontalPodAutoscaler answers with the annotations its v2 status maps to).
    pub(super) fn as_read(&self, raw: Bytes) -> ApiResult<Bytes> {
        match self.info.description.conversion {
            Some(_) => self.served(self.storable(raw)?),
            None => Ok(raw),
        }
    }

    /// This API's encoded object in the stored form.
    pub(super) fn storable(&self, served: Bytes) -> ApiResult<Bytes> {
        convert(&self.info, served, |c| c.to_storage)
    }

    /// The namespace an object lives in: the URL's; a different one in the body is a 400.
    pub(super) fn scope_namespace(
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

    /// Checks a create (`old` is `None`) or an update, through `subresource` if it is one of
    /// the strategy's own update subresources.
    pub(super) fn validate(
        &self,
        object: &S::Object,
        old: Option<&S::Object>,
        subresource: Option<&str>,
    ) -> ApiResult<()> {
        let mut causes =
            validation::object_meta(object.metadata(), self.info.description.name_rule);
        causes.extend(match old {
            Some(old) => {
                let mut causes = validation::object_meta_update(object.metadata(), old.metadata());
                causes.extend(match subresource.filter(|s| self.updates_subresource(s)) {
                    Some(sub) => self.strategy.validate_subresource_update(sub, object, old),
                    None => self.strategy.validate_update(object, old),
                });
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

    /// The object's schema, built on first use: patches and managed fields walk it.
    pub(super) fn schemas(&self) -> &crate::patch::schema::Schemas {
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
            crate::apply::track(old, &mut new, context, manager)
        });
        let managed = new
            .pointer("/metadata/managedFields")
            .cloned()
            .unwrap_or(Value::Null);
        object.metadata_mut().managed_fields =
            serde_json::from_value(managed).map_err(|e| ApiError::Internal(e.to_string()))?;
        Ok(())
    }

    async fn get(&self, request: ApiRequest) -> ApiResult<Outcome> {
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
        Ok(Outcome::ok(kv.value, kv.mod_revision))
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
        let output = request.output;
        let response = self
            .dispatch(request)
            .await
            .and_then(|outcome| self.encoder.answer(outcome, output))
            .unwrap_or_else(|error| error_response(error, output));
        // A deprecated resource warns on every request, failed ones too, as upstream does.
        Ok(match self.info.description.deprecation {
            Some(warning) => with_warnings(response, &[warning.to_string()]),
            None => response,
        })
    }

    fn admit_with(&self, chain: &Arc<crate::admission::Chain>) {
        let _ = self.admission.set(chain.clone());
    }

    fn stored_cache(&self) -> Option<Arc<Cache>> {
        match self.info.description.conversion {
            None => Some(self.cache.clone()),
            Some(_) => None,
        }
    }
}

impl<S: Strategy> Rest<S> {
    async fn dispatch(&self, request: ApiRequest) -> ApiResult<Outcome> {
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
            (Verb::Get, Some(sub)) if self.updates_subresource(sub) => self.get(request).await,
            (Verb::Update, Some(sub)) if self.updates_subresource(sub) => {
                self.update(request).await
            }
            (Verb::Patch, Some(sub)) if self.updates_subresource(sub) => self.patch(request).await,
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
    /// upstream's `Status` Success and 201, or the object the strategy answers with.
    async fn act(&self, request: ApiRequest) -> ApiResult<Outcome> {
        let action = self
            .action(request.subresource.as_deref().unwrap_or(""))
            .ok_or(ApiError::PathNotFound)?;
        let body = decode_body(&request.headers, &request.body)?;
        let kind = body.get("kind").and_then(Value::as_str);
        // An answered body may leave its kind to the URL, as a created object may.
        if kind != Some(action.kind) && (action.effect != Effect::Answer || kind.is_some()) {
            return Err(ApiError::BadRequest(format!(
                "the body of the request must be a {}",
                action.kind
            )));
        }
        let body = self.admit_action(&request, action, body).await?;
        match action.effect {
            Effect::Delete => {
                let named = body.pointer("/metadata/name").and_then(Value::as_str);
                if named != request.name.as_deref() {
                    return Err(ApiError::BadRequest(format!(
                        "name in URL does not match name in {} object",
                        action.kind
                    )));
                }
                let options = match body.get("deleteOptions") {
                    Some(options) => serde_json::from_value(options.clone())
                        .map_err(|e| ApiError::BadRequest(format!("invalid DeleteOptions: {e}")))?,
                    None => DeleteOptions::default(),
                };
                self.remove(&request, options).await?;
            }
            Effect::Change => {
                self.write(request, Source::Action(action.name, body), Vec::new())
                    .await?;
            }
            Effect::Answer => {
                let name = request.name.clone().unwrap_or_default();
                let namespace = request
                    .namespace
                    .as_deref()
                    .filter(|_| self.info.namespaced);
                let kv = self.current(namespace, &name).await?;
                let object = self.decode(&kv.value, kv.mod_revision)?;
                let answered = self
                    .strategy
                    .answer(action.name, &object, body, &request)
                    .await?;
                return Ok(Outcome::Answer(answered));
            }
        }
        Ok(Outcome::Status {
            code: StatusCode::CREATED,
            status: json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
        })
    }

    fn serves(&self, subresource: &str) -> bool {
        let description = &self.info.description;
        match subresource {
            "status" => description.status,
            "scale" => description.scale.is_some(),
            "finalize" => description.finalize,
            other => self.updates_subresource(other),
        }
    }

    /// Whether `subresource` is one of [`super::Description::update_subresources`].
    pub(super) fn updates_subresource(&self, subresource: &str) -> bool {
        self.info
            .description
            .update_subresources
            .contains(&subresource)
    }
}
