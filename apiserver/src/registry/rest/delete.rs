//! DELETE: preconditions, finalizers, grace periods and propagation policies.

use axum::http::StatusCode;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions;
use k8s_openapi::Metadata;
use serde_json::{json, Value};

use super::Rest;
use crate::error::{ApiError, ApiResult, Cause};
use crate::registry::encode::Outcome;
use crate::registry::request::{decode_body, ApiRequest};
use crate::registry::strategy::{DefaultPropagation, Deleter, Strategy};
use crate::registry::{stored, ResourceInfo};

impl<S: Strategy> Rest<S> {
    pub(in crate::registry) async fn delete(&self, request: ApiRequest) -> ApiResult<Outcome> {
        let options = delete_options(&request)?;
        let defaulted = policy(&options).is_none();
        let mut outcome = self.remove(&request, options).await?;
        if let (
            true,
            DefaultPropagation::Orphan {
                warning: Some(warning),
            },
            Outcome::Object { warnings, .. },
        ) = (defaulted, self.strategy.default_propagation(), &mut outcome)
        {
            warnings.push(warning.to_string());
        }
        Ok(outcome)
    }

    /// Deletes the object `request` names with `options` (a DELETE's, or an eviction's,
    /// which the strategy may first check or refuse through [`Strategy::delete_through`]).
    pub(super) async fn remove(
        &self,
        request: &ApiRequest,
        options: DeleteOptions,
    ) -> ApiResult<Outcome> {
        let mut options = with_query(options, request)?;
        if request.query.dry_run && options.dry_run.as_ref().is_none_or(|d| d.is_empty()) {
            options.dry_run = Some(vec!["All".into()]);
        }
        let Some(action) = request.subresource.as_deref() else {
            return self.remove_now(request, options).await;
        };
        let name = request.name.as_deref().unwrap_or_default();
        let namespace = request.namespace.as_deref().unwrap_or_default();
        let deleter = Deletion {
            rest: self,
            request,
        };
        self.strategy
            .delete_through(action, namespace, name, options, &deleter)
            .await?;
        Ok(Outcome::Status {
            code: StatusCode::OK,
            status: json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}),
        })
    }

    async fn remove_now(&self, request: &ApiRequest, options: DeleteOptions) -> ApiResult<Outcome> {
        let name = request.name.clone().unwrap_or_default();
        let namespace = request.namespace.clone().filter(|_| self.info.namespaced);
        // `dryRun` may come in the query or in the body's options.
        let dry_run =
            request.query.dry_run || options.dry_run.as_ref().is_some_and(|d| !d.is_empty());
        loop {
            let current = self.current(namespace.as_deref(), &name).await?;
            let mut object = self.decode(&current.value, current.mod_revision)?;
            self.strategy.check_delete(&object, &options)?;
            self.check_preconditions(&options, &object, &name)?;
            // A delete through a subresource (an eviction) was admitted as its create; like
            // upstream's eviction, the deletion itself is not admitted again.
            if request.subresource.is_none() {
                self.admit_delete(request, &name, &object).await?;
            }
            match self.begin_delete(&mut object, &options) {
                Some(object) => {
                    let raw = stored::encode(&object)?;
                    if raw == current.value || dry_run {
                        return Ok(Outcome::ok(raw, current.mod_revision));
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
                        Ok(revision) => return Ok(Outcome::ok(raw, revision)),
                        Err(store::Error::Conflict { .. }) => continue,
                        Err(store::Error::NotFound { .. }) => {
                            return Err(ApiError::NotFound(self.info.target(&name)))
                        }
                        Err(other) => return Err(other.into()),
                    }
                }
                None => {
                    if !dry_run {
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
                        return Ok(Outcome::ok(current.value, current.mod_revision));
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

    /// The object to store instead of deleting it when the deletion must wait (finalizers,
    /// a grace period); `None` when it can go now.
    fn begin_delete(&self, object: &mut S::Object, options: &DeleteOptions) -> Option<S::Object> {
        let policy = policy(options).or(match self.strategy.default_propagation() {
            DefaultPropagation::Orphan { .. } => Some("Orphan"),
            DefaultPropagation::Background => None,
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
}

/// What a strategy deletes through: the object of the action request, deleted as a DELETE
/// would with the options given.
struct Deletion<'a, S: Strategy> {
    rest: &'a Rest<S>,
    request: &'a ApiRequest,
}

#[async_trait::async_trait]
impl<S: Strategy> Deleter for Deletion<'_, S> {
    async fn delete(&self, options: DeleteOptions) -> ApiResult<()> {
        self.rest.remove_now(self.request, options).await.map(drop)
    }
}

/// The Status upstream answers a DELETE with when it does not return the object.
fn success_status(info: &ResourceInfo, name: &str, uid: Option<&str>) -> Outcome {
    let mut details = json!({"name": name, "kind": info.plural});
    if !info.group.is_empty() {
        details["group"] = Value::from(info.group);
    }
    if let Some(uid) = uid {
        details["uid"] = Value::from(uid);
    }
    let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details});
    Outcome::Status {
        code: StatusCode::OK,
        status,
    }
}

/// DeleteOptions from the body, if any.
fn delete_options(request: &ApiRequest) -> ApiResult<DeleteOptions> {
    if request.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(DeleteOptions::default());
    }
    let value = decode_body(&request.headers, &request.body)?;
    serde_json::from_value(value)
        .map_err(|e| ApiError::BadRequest(format!("invalid DeleteOptions: {e}")))
}

/// `options` with the query string's options, which win, checked as upstream checks them.
fn with_query(mut options: DeleteOptions, request: &ApiRequest) -> ApiResult<DeleteOptions> {
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

/// The propagation policy `options` ask for, if any (the deprecated `orphanDependents`
/// included).
fn policy(options: &DeleteOptions) -> Option<&str> {
    options
        .propagation_policy
        .as_deref()
        .or(match options.orphan_dependents {
            Some(true) => Some("Orphan"),
            Some(false) => Some("Background"),
            None => None,
        })
}
