//! Admission: what may change or refuse a write after authentication and authorization let it
//! through, as upstream's admission chain does. Each plugin is one file behind [`Plugin`];
//! [`Chain`] runs the enabled ones in upstream's order, every mutating step first, and the
//! generic registry calls it where upstream's handlers and storage do:
//!
//! - create: the mutating phase after defaulting (before the name is generated, so a refusal
//!   names `generateName` as upstream's does), the validating phase after validation;
//! - update (PUT, every patch, `/status` and other subresources): the same, on the merged
//!   object with the current one as the old object;
//! - delete: both phases on the current object (as the old object), before anything is
//!   written;
//! - POSTs to action subresources (`pods/binding`, `pods/eviction`, `serviceaccounts/token`):
//!   a create of the subresource with the posted body as the object, before the action.
//!
//! Plugins see objects as JSON ([`Attributes::object`]), what webhooks and CEL policies need
//! too; a typed object is converted only when a plugin first asks for it, so writes no plugin
//! reads (most of them) pay nothing for the interface.

mod certificates;
mod default_toleration_seconds;
mod lookup;
mod namespace_lifecycle;
mod node_restriction;
mod plugins;
mod priority;
mod service_account;

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use serde_json::Value;

pub use self::lookup::Lookup;
pub use self::plugins::{Enabled, FlagError, Name};
use crate::authn::UserInfo;
use crate::error::{ApiError, ApiResult, Target};

/// What a request does to its object, in upstream's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
    Delete,
    /// A connection to an object (`pods/exec`, `pods/portforward`, proxies); none is served
    /// yet, but plugins and webhooks filter on it like on the others.
    Connect,
}

impl Operation {
    /// `CREATE`, `UPDATE`, ... as AdmissionReview requests carry it.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
            Operation::Connect => "CONNECT",
        }
    }
}

/// The kind of the object a request carries: the resource's, or a subresource's own
/// (`policy/v1` Eviction for `pods/eviction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupVersionKind {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
}

/// The resource a request addresses (its plural; the subresource is separate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupVersionResource {
    pub group: &'static str,
    pub version: &'static str,
    pub resource: &'static str,
}

impl GroupVersionResource {
    /// Whether this is `resource` of the core (`""`) group, what most plugins look for.
    pub fn is_core(&self, resource: &str) -> bool {
        self.group.is_empty() && self.resource == resource
    }
}

/// Converts a typed object to JSON on demand.
pub type ToJson<'a> = &'a (dyn Fn() -> Result<Value, serde_json::Error> + Send + Sync);

/// An object as plugins see it: JSON, converted from the typed object the first time a plugin
/// asks for it.
pub struct Object<'a> {
    typed: Option<ToJson<'a>>,
    json: OnceLock<Value>,
    changed: bool,
}

impl<'a> Object<'a> {
    /// No object (a create's old object, a delete's new one).
    pub fn absent() -> Self {
        Object {
            typed: None,
            json: OnceLock::new(),
            changed: false,
        }
    }

    /// A typed object, converted by `to_json` if a plugin reads it.
    pub fn typed(to_json: ToJson<'a>) -> Self {
        Object {
            typed: Some(to_json),
            json: OnceLock::new(),
            changed: false,
        }
    }

    /// An object that is JSON already (a posted Eviction, a Scale).
    pub fn json(value: Value) -> Self {
        Object {
            typed: None,
            json: OnceLock::from(value),
            changed: false,
        }
    }

    fn get(&self) -> ApiResult<Option<&Value>> {
        if let Some(value) = self.json.get() {
            return Ok(Some(value));
        }
        let Some(to_json) = self.typed else {
            return Ok(None);
        };
        let value = to_json().map_err(|e| ApiError::Internal(e.to_string()))?;
        Ok(Some(self.json.get_or_init(|| value)))
    }

    fn get_mut(&mut self) -> ApiResult<Option<&mut Value>> {
        self.get()?;
        self.changed = true;
        Ok(self.json.get_mut())
    }
}

/// One request as admission sees it: upstream's admission attributes.
pub struct Attributes<'a> {
    pub operation: Operation,
    pub kind: GroupVersionKind,
    pub resource: GroupVersionResource,
    pub subresource: Option<&'a str>,
    /// `None` for cluster-scoped resources.
    pub namespace: Option<&'a str>,
    /// The object's name; empty on a create whose name is still to be generated.
    pub name: &'a str,
    pub user: &'a UserInfo,
    /// Nothing will be written: plugins with side effects must not make them.
    pub dry_run: bool,
    /// The object written (absent on delete); plugins read it through
    /// [`Attributes::object`].
    pub(crate) object: Object<'a>,
    /// The object replaced (absent on create).
    pub(crate) old_object: Object<'a>,
}

impl<'a> Attributes<'a> {
    /// The object being written (`None` on delete and connect).
    pub fn object(&self) -> ApiResult<Option<&Value>> {
        self.object.get()
    }

    /// The object being written, for a mutating plugin to change; whatever it changes is
    /// what the registry goes on with.
    pub fn object_mut(&mut self) -> ApiResult<Option<&mut Value>> {
        self.object.get_mut()
    }

    /// The current object an update or delete replaces (`None` on create).
    pub fn old_object(&self) -> ApiResult<Option<&Value>> {
        self.old_object.get()
    }

    /// The object as mutating plugins left it, if one asked to change it.
    pub fn into_changed(self) -> Option<Value> {
        let Object { json, changed, .. } = self.object;
        json.into_inner().filter(|_| changed)
    }

    /// Upstream's `admission.NewForbidden`: `<resource> "<name>" is forbidden: <reason>`,
    /// naming the object as upstream does before its name is generated (its `generateName`,
    /// or `Unknown`).
    pub fn forbidden(&self, reason: impl std::fmt::Display) -> ApiError {
        let name = match self.name {
            "" => {
                let meta = self.object().ok().flatten().map(|o| &o["metadata"]);
                let field = |field: &str| {
                    meta.and_then(|m| m[field].as_str())
                        .filter(|v| !v.is_empty())
                        .map(String::from)
                };
                field("name")
                    .or_else(|| field("generateName"))
                    .unwrap_or_else(|| "Unknown".into())
            }
            name => name.to_string(),
        };
        ApiError::Forbidden {
            target: Target {
                group: self.resource.group.into(),
                resource: self.resource.resource.into(),
                kind: self.kind.kind.into(),
                name,
            },
            reason: reason.to_string(),
        }
    }
}

/// One admission plugin.
#[async_trait]
pub trait Plugin: Send + Sync {
    /// Whether the plugin takes part in this request (upstream's `Handles` and the resource
    /// checks its plugins start with). Objects are only converted for plugins that do.
    fn handles(&self, attributes: &Attributes<'_>) -> bool;

    /// The mutating phase: may change the object or refuse the request.
    async fn admit(&self, _attributes: &mut Attributes<'_>) -> ApiResult<()> {
        Ok(())
    }

    /// The validating phase, after every mutating plugin and the registry's validation: may
    /// only refuse.
    async fn validate(&self, _attributes: &Attributes<'_>) -> ApiResult<()> {
        Ok(())
    }
}

/// What plugins are built with.
pub struct Context {
    /// Where plugins look up what they check against (namespaces, service accounts...).
    pub lookup: Arc<Lookup>,
    /// The authorizers plugins ask about permissions beyond the request's own (a signer's
    /// `approve` and `sign`).
    pub authorization: Option<Arc<crate::authz::Chain>>,
}

/// The enabled plugins in the order they run. An empty chain admits everything.
#[derive(Default)]
pub struct Chain {
    plugins: Vec<(&'static str, Arc<dyn Plugin>)>,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<_> = self.plugins.iter().map(|(name, _)| *name).collect();
        f.debug_tuple("Chain").field(&names).finish()
    }
}

impl Chain {
    /// The chain of the `enabled` plugins.
    pub fn new(enabled: &Enabled, context: &Context) -> Chain {
        let plugins = enabled
            .names()
            .iter()
            .map(|name| (name.as_str(), plugins::build(*name, context)))
            .collect();
        Chain { plugins }
    }

    /// A chain of the given plugins, named as given, in that order.
    pub fn of(plugins: Vec<(&'static str, Arc<dyn Plugin>)>) -> Chain {
        Chain { plugins }
    }

    /// The mutating phase: every plugin that handles the request, in order; the first
    /// refusal ends it.
    pub async fn admit(&self, attributes: &mut Attributes<'_>) -> ApiResult<()> {
        for (name, plugin) in &self.plugins {
            if plugin.handles(attributes) {
                plugin
                    .admit(attributes)
                    .await
                    .inspect_err(|error| refused(name, "admit", attributes, error))?;
            }
        }
        Ok(())
    }

    /// The validating phase: every plugin that handles the request, in order; the first
    /// refusal ends it.
    pub async fn validate(&self, attributes: &Attributes<'_>) -> ApiResult<()> {
        for (name, plugin) in &self.plugins {
            if plugin.handles(attributes) {
                plugin
                    .validate(attributes)
                    .await
                    .inspect_err(|error| refused(name, "validate", attributes, error))?;
            }
        }
        Ok(())
    }
}

fn refused(plugin: &str, phase: &str, attributes: &Attributes<'_>, error: &ApiError) {
    tracing::debug!(
        plugin,
        phase,
        operation = attributes.operation.as_str(),
        resource = attributes.resource.resource,
        namespace = attributes.namespace.unwrap_or(""),
        name = attributes.name,
        %error,
        "admission refused the request"
    );
}

#[cfg(test)]
mod tests;
