//! UPDATE and PATCH: the read-merge-validate-admit-store loop shared by PUT, every patch
//! type and action subresources.

use axum::http::StatusCode;
use bytes::Bytes;
use k8s_openapi::Metadata;
use serde_json::Value;

use super::reservation::Reservation;
use super::{check_body_name, drop_empty, Rest, Source};
use crate::decoding;
use crate::error::{ApiError, ApiResult, Cause};
use crate::limits;
use crate::patch::PatchType;
use crate::registry::encode::Outcome;
use crate::registry::request::ApiRequest;
use crate::registry::stored;
use crate::registry::strategy::Strategy;

/// One update attempt's new object, the current one it replaces, and the resourceVersion
/// the client pinned.
struct Prepared<O> {
    object: O,
    old: O,
    precondition: Option<String>,
}

/// What the store step did.
enum Stored {
    Written(Bytes, i64),
    Unchanged,
    DryRun(Bytes),
    /// Someone else wrote first.
    Conflict,
}

/// How a create standing in for an update ended.
enum Attempt {
    Done(ApiResult<Outcome>),
    Retry,
}

impl<S: Strategy> Rest<S> {
    pub(super) async fn update(&self, request: ApiRequest) -> ApiResult<Outcome> {
        let (input, warnings) = self.read_body(&request)?;
        self.write(request, Source::Object(input), warnings).await
    }

    pub(super) async fn patch(&self, request: ApiRequest) -> ApiResult<Outcome> {
        let kind = PatchType::from_headers(&request.headers)?;
        self.write(request, Source::Patch(kind), Vec::new()).await
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

    /// The update path shared by PUT, PATCH and actions, as named steps: read the current
    /// object, [`prepare`](Self::prepare) the new one, mutating admission, validate,
    /// validating admission, reserve what the strategy needs (held until settled),
    /// [`store`](Self::store_update), settle the reservation. A concurrent write restarts
    /// the loop unless the client pinned a resourceVersion.
    pub(super) async fn write(
        &self,
        request: ApiRequest,
        source: Source<S::Object>,
        mut warnings: Vec<String>,
    ) -> ApiResult<Outcome> {
        let name = request.name.clone().unwrap_or_default();
        let manager = match &source {
            Source::Object(_) => crate::apply::field_manager(&request, "UpdateOptions", false)?,
            Source::Patch(kind) => {
                crate::apply::field_manager(&request, "PatchOptions", *kind == PatchType::Apply)?
            }
            Source::Action(..) => String::new(),
        };
        loop {
            let namespace = request
                .namespace
                .as_deref()
                .filter(|_| self.info.namespaced);
            let current = match self.current(namespace, &name).await {
                Err(ApiError::NotFound(_)) => {
                    match self
                        .create_instead(&request, &source, &manager, &warnings)
                        .await
                    {
                        Attempt::Done(outcome) => return outcome,
                        Attempt::Retry => continue,
                    }
                }
                current => current?,
            };
            let prepared = self.prepare(&request, &source, &current, &manager, &mut warnings)?;
            let Prepared {
                mut object,
                old,
                precondition,
            } = prepared;
            // An action (a binding) is the strategy's own change, exempt from update rules
            // such as pod spec immutability and from update admission (it was admitted as
            // the action's create), as upstream's binding bypasses them.
            if !matches!(source, Source::Action(..)) {
                self.admit_write(&request, &mut object, Some(&old)).await?;
                self.strategy
                    .authorize_write(&request, &object, Some(&old))
                    .await?;
                self.validate(&object, Some(&old), request.subresource.as_deref())?;
                self.validate_write(&request, &object, Some(&old)).await?;
            }
            let reservation = Reservation::admit(&self.strategy, &mut object, Some(&old)).await?;
            let stored = self.store_update(&request, &object, &current).await;
            reservation
                .settle(matches!(stored, Ok(Stored::Written(..))))
                .await;
            let (raw, revision) = match stored {
                Ok(Stored::Written(raw, revision)) => (raw, revision),
                Ok(Stored::Unchanged) => (current.value, current.mod_revision),
                Ok(Stored::DryRun(raw)) => (raw, current.mod_revision),
                Ok(Stored::Conflict) if precondition.is_none() => continue,
                Ok(Stored::Conflict) => return Err(self.modified(&name)),
                Err(error) => return Err(error),
            };
            return Ok(Outcome::Object {
                code: StatusCode::OK,
                raw,
                revision,
                warnings,
            });
        }
    }

    /// A write to an object that does not exist: a server-side apply creates it, and so
    /// does a PUT to a resource that allows it (upstream's `AllowCreateOnUpdate`); anything
    /// else is a 404. A create that lost a race with another retries as an update.
    async fn create_instead(
        &self,
        request: &ApiRequest,
        source: &Source<S::Object>,
        manager: &str,
        warnings: &[String],
    ) -> Attempt {
        let name = request.name.clone().unwrap_or_default();
        let created = match source {
            _ if request.subresource.is_some() => {
                return Attempt::Done(Err(ApiError::NotFound(self.info.target(&name))))
            }
            Source::Patch(PatchType::Apply) => self.apply_create(request, manager).await,
            Source::Object(input) if self.info.description.create_on_update => {
                if let Err(error) = check_body_name(input.metadata(), &name) {
                    return Attempt::Done(Err(error));
                }
                let mut object = input.clone();
                object.metadata_mut().name = Some(name);
                self.insert(request, object, warnings.to_vec(), Some(manager))
                    .await
            }
            _ => Err(ApiError::NotFound(self.info.target(&name))),
        };
        match created {
            Err(ApiError::AlreadyExists(_)) => Attempt::Retry,
            created => Attempt::Done(created),
        }
    }

    /// The object an update attempt would store: built from its source (the PUT body, the
    /// patch applied to `current`, the action), checked against `current` (name, namespace,
    /// UID and resourceVersion preconditions), merged with the system metadata, prepared and
    /// defaulted by the strategy, and its managed fields updated.
    fn prepare(
        &self,
        request: &ApiRequest,
        source: &Source<S::Object>,
        current: &store::KeyValue,
        manager: &str,
        warnings: &mut Vec<String>,
    ) -> ApiResult<Prepared<S::Object>> {
        let name = request.name.as_deref().unwrap_or_default();
        let subresource = request.subresource.as_deref();
        let (input, precondition) = match source {
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
                    self.patched(*kind, current, request, manager)?;
                *warnings = found;
                (input, precondition)
            }
            Source::Action(action, body) => {
                let mut object = self.decode(&current.value, current.mod_revision)?;
                self.strategy.act(action, &mut object, body)?;
                (object, None)
            }
        };
        self.scope_namespace(request, input.metadata())?;
        check_body_name(input.metadata(), name)?;
        let old = self.decode(&current.value, current.mod_revision)?;
        if let Source::Object(input) = source {
            // Like upstream, a UID in a PUT body is a precondition, checked before the
            // resourceVersion: a client holding an object that was deleted and recreated
            // under the same name must not overwrite the new one.
            self.check_body_uid(input.metadata().uid.as_deref(), &old, name, &current.key)?;
            if precondition.is_none() && !self.info.description.unconditional_update {
                return Err(ApiError::Invalid {
                    target: self.info.target(name),
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
                return Err(self.modified(name));
            }
        }
        let mut object = self.merge_update(&input, &old, subresource)?;
        match subresource {
            Some("status") => self.strategy.prepare_status_update(&mut object, &old),
            Some(sub) if self.updates_subresource(sub) => {
                self.strategy
                    .prepare_subresource_update(sub, &mut object, &old)
            }
            _ => self.strategy.prepare_update(&mut object, &old),
        }
        self.strategy.default_fields(&mut object);
        match source {
            Source::Patch(PatchType::Apply) => {
                object.metadata_mut().managed_fields = input.metadata().managed_fields.clone()
            }
            Source::Action(..) => {}
            _ => self.track(Some(&old), &mut object, request, manager)?,
        }
        Ok(Prepared {
            object,
            old,
            precondition,
        })
    }

    /// The store step of an update: nothing when the object did not change (upstream
    /// writes nothing and keeps the resourceVersion) or for a dry run, else compare and
    /// swap against `current`.
    async fn store_update(
        &self,
        request: &ApiRequest,
        object: &S::Object,
        current: &store::KeyValue,
    ) -> ApiResult<Stored> {
        let raw = stored::encode(object)?;
        limits::check_object_size(&raw)?;
        if raw == current.value {
            return Ok(Stored::Unchanged);
        }
        if request.query.dry_run {
            return Ok(Stored::DryRun(self.as_read(raw)?));
        }
        let namespace = request
            .namespace
            .as_deref()
            .filter(|_| self.info.namespaced);
        let name = request.name.as_deref().unwrap_or_default();
        match self
            .write_update(namespace, name, object, raw.clone(), current.mod_revision)
            .await
        {
            Ok(revision) => Ok(Stored::Written(self.as_read(raw)?, revision)),
            Err(store::Error::Conflict { .. }) => Ok(Stored::Conflict),
            Err(store::Error::NotFound { .. }) => Err(ApiError::NotFound(self.info.target(name))),
            Err(other) => Err(other.into()),
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

    pub(super) fn modified(&self, name: &str) -> ApiError {
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
            // The strategy confines what the write changes (prepare_subresource_update).
            Some(sub) if self.action(sub).is_some() || self.updates_subresource(sub) => {}
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

    /// The UID in a PUT body, a precondition on the current object. Upstream's storage layer
    /// refuses it, so the conflict carries its storage error naming the full key.
    pub(super) fn check_body_uid(
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
