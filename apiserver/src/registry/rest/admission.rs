//! Where the generic registry asks the admission chain (`crate::admission` lists the points),
//! turning a request and its typed objects into admission attributes and taking back what
//! mutating plugins changed.

use k8s_openapi::Metadata;
use serde_json::Value;

use super::Rest;
use crate::admission::{
    Attributes, Chain, GroupVersionKind, GroupVersionResource, Object, Operation, ToJson,
};
use crate::error::{ApiError, ApiResult};
use crate::registry::request::ApiRequest;
use crate::registry::strategy::{Action, Strategy};

impl<S: Strategy> Rest<S> {
    fn chain(&self) -> Option<&Chain> {
        self.admission.get().map(|chain| &**chain)
    }

    /// Attributes of `request` on this resource, carrying an object of `kind`, without
    /// objects yet.
    fn attributes<'a>(
        &self,
        request: &'a ApiRequest,
        operation: Operation,
        kind: GroupVersionKind,
        name: &'a str,
    ) -> Attributes<'a> {
        Attributes {
            operation,
            kind,
            resource: GroupVersionResource {
                group: self.info.group,
                version: self.info.version,
                resource: self.info.plural,
            },
            subresource: request.subresource.as_deref(),
            namespace: request
                .namespace
                .as_deref()
                .filter(|_| self.info.namespaced),
            name,
            user: &request.user,
            dry_run: request.query.dry_run,
            object: Object::absent(),
            old_object: Object::absent(),
        }
    }

    /// Attributes of a create (`old` is `None`) or an update of this resource's own object
    /// named `name`, whose JSON forms `object` and `old` make when a plugin asks.
    fn write_attributes<'a>(
        &self,
        request: &'a ApiRequest,
        name: &'a str,
        object: ToJson<'a>,
        old: Option<ToJson<'a>>,
    ) -> Attributes<'a> {
        let operation = match old {
            Some(_) => Operation::Update,
            None => Operation::Create,
        };
        let mut attributes = self.attributes(request, operation, self.own_kind(), name);
        attributes.object = Object::typed(object);
        if let Some(old) = old {
            attributes.old_object = Object::typed(old);
        }
        attributes
    }

    fn own_kind(&self) -> GroupVersionKind {
        GroupVersionKind {
            group: self.info.group,
            version: self.info.version,
            kind: self.info.kind,
        }
    }

    /// The mutating phase of a create (`old` is `None`) or an update of `object`, which takes
    /// what the plugins changed. A create not yet named goes by its empty name, as upstream's
    /// (a refusal then names its `generateName`).
    pub(super) async fn admit_write(
        &self,
        request: &ApiRequest,
        object: &mut S::Object,
        old: Option<&S::Object>,
    ) -> ApiResult<()> {
        let Some(chain) = self.chain() else {
            return Ok(());
        };
        let changed = {
            let name = object.metadata().name.clone().unwrap_or_default();
            let new_json = || serde_json::to_value(&*object);
            let old_json = old.map(|old| move || serde_json::to_value(old));
            let old_json = old_json.as_ref().map(|f| f as ToJson<'_>);
            let mut attributes = self.write_attributes(request, &name, &new_json, old_json);
            chain.admit(&mut attributes).await?;
            attributes.into_changed()
        };
        if let Some(value) = changed {
            *object = serde_json::from_value(value).map_err(|e| {
                ApiError::Internal(format!(
                    "admission left an object that does not decode: {e}"
                ))
            })?;
        }
        Ok(())
    }

    /// The validating phase of a create (`old` is `None`) or an update of `object`, once it
    /// is validated.
    pub(super) async fn validate_write(
        &self,
        request: &ApiRequest,
        object: &S::Object,
        old: Option<&S::Object>,
    ) -> ApiResult<()> {
        let Some(chain) = self.chain() else {
            return Ok(());
        };
        let name = object.metadata().name.clone().unwrap_or_default();
        let new_json = || serde_json::to_value(object);
        let old_json = old.map(|old| move || serde_json::to_value(old));
        let old_json = old_json.as_ref().map(|f| f as ToJson<'_>);
        let attributes = self.write_attributes(request, &name, &new_json, old_json);
        chain.validate(&attributes).await
    }

    /// Both phases of a delete of `current` (the old object; a delete has no new one).
    pub(super) async fn admit_delete(
        &self,
        request: &ApiRequest,
        name: &str,
        current: &S::Object,
    ) -> ApiResult<()> {
        let Some(chain) = self.chain() else {
            return Ok(());
        };
        let old_json = || serde_json::to_value(current);
        let mut attributes = self.attributes(request, Operation::Delete, self.own_kind(), name);
        attributes.old_object = Object::typed(&old_json);
        chain.admit(&mut attributes).await?;
        chain.validate(&attributes).await
    }

    /// Both phases of a POST to `action`: a create of the subresource whose object is the
    /// posted `body`, which is returned as the plugins left it.
    pub(super) async fn admit_action(
        &self,
        request: &ApiRequest,
        action: &Action,
        body: Value,
    ) -> ApiResult<Value> {
        let Some(chain) = self.chain() else {
            return Ok(body);
        };
        let kind = GroupVersionKind {
            group: action.group,
            version: action.version,
            kind: action.kind,
        };
        let name = request.name.as_deref().unwrap_or_default();
        let mut attributes = self.attributes(request, Operation::Create, kind, name);
        attributes.object = Object::json(body.clone());
        chain.admit(&mut attributes).await?;
        chain.validate(&attributes).await?;
        Ok(attributes.into_changed().unwrap_or(body))
    }

    /// Both phases of an update through `/scale`: the `autoscaling/v1` Scale written and
    /// the one it replaces; returns the Scale as the plugins left it.
    pub(in crate::registry) async fn admit_scale(
        &self,
        request: &ApiRequest,
        scale: Value,
        old: Value,
    ) -> ApiResult<Value> {
        let Some(chain) = self.chain() else {
            return Ok(scale);
        };
        let kind = GroupVersionKind {
            group: "autoscaling",
            version: "v1",
            kind: "Scale",
        };
        let name = request.name.as_deref().unwrap_or_default();
        let mut attributes = self.attributes(request, Operation::Update, kind, name);
        attributes.object = Object::json(scale.clone());
        attributes.old_object = Object::json(old);
        chain.admit(&mut attributes).await?;
        chain.validate(&attributes).await?;
        Ok(attributes.into_changed().unwrap_or(scale))
    }
}
