//! What makes one resource different from another. Everything else (storage, metadata,
//! concurrency, watch, tables, discovery) is generic; a resource is a [`Strategy`]
//! implementation in its own small file plus one line in `resources::all`.

use async_trait::async_trait;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{DeleteOptions, ObjectMeta};
use k8s_openapi::Metadata as _;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::table::{Cell, Column};
use crate::error::{ApiResult, Cause};

/// How names of a resource are validated (upstream's `ValidateObjectMeta` name functions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// DNS-1123 subdomain: lowercase alphanumerics, '-' and '.', at most 253 (most resources).
    Subdomain,
    /// DNS-1123 label: lowercase alphanumerics and '-', at most 63 (namespaces, services).
    Label,
    /// DNS-1035 label: a DNS-1123 label starting with a letter (services).
    Dns1035Label,
    /// Anything usable as a path segment (events, leases of some kinds).
    PathSegment,
}

/// Where `/scale` reads and writes its numbers, like upstream's scale subresource mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScalePaths {
    pub spec_replicas: &'static str,
    pub status_replicas: &'static str,
    /// The selector (`spec.selector`) turned into the Scale's `status.selector` string.
    pub label_selector: &'static str,
    /// Whether that selector is a plain label map (a ReplicationController's) rather than
    /// a `LabelSelector` object.
    pub equality_selector: bool,
}

/// A subresource clients POST to in order to act on an object (`pods/binding`,
/// `pods/eviction`) rather than to store what they send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Action {
    pub name: &'static str,
    /// What is posted, as discovery advertises it.
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub effect: Effect,
}

/// What a POST to an action subresource does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Changes the object through [`Strategy::act`] (a binding); answered with a `Status`.
    Change,
    /// Deletes the object (an eviction); answered with a `Status`.
    Delete,
    /// Leaves the object as it is and answers with the object [`Strategy::answer`] builds
    /// from it and the posted one (a TokenRequest).
    Answer,
}

/// How a resource kept in another API version's layout is converted, like upstream's storage
/// versions: events.k8s.io/v1 Events live as core/v1 Events, so both APIs see every event.
#[derive(Debug, Clone, Copy)]
pub struct Conversion {
    /// A stored object (apiVersion and kind included) in this API's form.
    pub from_storage: fn(&Value) -> Value,
    /// This API's object in the stored form.
    pub to_storage: fn(&Value) -> Value,
}

/// Static facts about a resource: what discovery advertises and which generic behaviours apply.
#[derive(Debug, Clone)]
pub struct Description {
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    /// Serves `/status`; the main resource then ignores status changes.
    pub status: bool,
    pub scale: Option<ScalePaths>,
    /// `metadata.generation` is maintained (bumped on every spec change).
    pub generation: bool,
    /// DELETE answers with the deleted object rather than a `Status` (pods, services...).
    pub return_deleted_object: bool,
    pub name_rule: NameRule,
    /// Selectable fields besides `metadata.name` and `metadata.namespace`.
    pub field_selectors: &'static [&'static str],
    /// Key segment under the store prefix when upstream's differs from the plural
    /// (`services/specs`, `minions`), so data laid out by either is found by both.
    pub storage_path: Option<&'static str>,
    /// Serves `/finalize`, which may change only `spec.finalizers` (namespaces).
    pub finalize: bool,
    /// Subresources besides `/status` served for GET, PUT and PATCH, each changing only what
    /// [`Strategy::prepare_subresource_update`] keeps of a write (a CSR's `/approval`, its
    /// conditions).
    pub update_subresources: &'static [&'static str],
    pub actions: &'static [Action],
    pub conversion: Option<Conversion>,
    /// A PUT to a missing object creates it (upstream's `AllowCreateOnUpdate`: endpoints,
    /// events, leases).
    pub create_on_update: bool,
    /// A PUT without a resourceVersion is allowed (upstream's `AllowUnconditionalUpdate`;
    /// leases refuse it).
    pub unconditional_update: bool,
    /// `DELETE` on the collection is served (not for namespaces).
    pub delete_collection: bool,
    /// The `Warning` every request to a deprecated resource gets (core/v1 Endpoints).
    pub deprecation: Option<&'static str>,
    /// Only POST to the collection is served and nothing is stored: what is posted is
    /// answered (reviews; see [`super::answer::CreateOnly`]).
    pub create_only: bool,
}

impl Default for Description {
    fn default() -> Self {
        Description {
            short_names: &[],
            categories: &[],
            status: false,
            scale: None,
            generation: false,
            return_deleted_object: false,
            name_rule: NameRule::Subdomain,
            field_selectors: &[],
            storage_path: None,
            finalize: false,
            update_subresources: &[],
            actions: &[],
            conversion: None,
            create_on_update: false,
            unconditional_update: true,
            delete_collection: true,
            deprecation: None,
            create_only: false,
        }
    }
}

/// Deletes the object a deleting action (an eviction) was posted to, with the given options
/// (preconditions, grace period, dry run), as a DELETE of it would.
#[async_trait]
pub trait Deleter: Send + Sync {
    async fn delete(&self, options: DeleteOptions) -> ApiResult<()>;
}

/// What a DELETE naming no propagation policy does to the object's dependents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultPropagation {
    /// The garbage collector deletes them once the object is gone.
    Background,
    /// They are orphaned (batch/v1 Jobs, v1 ReplicationControllers), and the DELETE is
    /// answered with `warning`, if any.
    Orphan { warning: Option<&'static str> },
}

/// Types a strategy can serve: any k8s-openapi resource with standard object metadata.
pub trait ApiObject:
    k8s_openapi::Resource
    + k8s_openapi::ListableResource
    + k8s_openapi::Metadata<Ty = ObjectMeta>
    + Serialize
    + DeserializeOwned
    + schemars::JsonSchema
    + Clone
    + Default
    + Send
    + Sync
    + 'static
{
}

impl<T> ApiObject for T where
    T: k8s_openapi::Resource
        + k8s_openapi::ListableResource
        + k8s_openapi::Metadata<Ty = ObjectMeta>
        + Serialize
        + DeserializeOwned
        + schemars::JsonSchema
        + Clone
        + Default
        + Send
        + Sync
        + 'static
{
}

/// One resource's rules. Every method has the default upstream applies to a resource that
/// does not customise it.
#[async_trait]
pub trait Strategy: Send + Sync + 'static {
    type Object: ApiObject;

    fn describe(&self) -> Description {
        Description::default()
    }

    /// Fills unset fields with upstream's defaults; runs on create and update.
    fn default_fields(&self, _object: &mut Self::Object) {}

    /// Resets what a create may not set (status of resources with a status subresource...).
    fn prepare_create(&self, _object: &mut Self::Object) {}

    /// Fills what a create records about the requesting user (a CSR's `spec.username`, `uid`,
    /// `groups` and `extra`), after [`Strategy::prepare_create`]: upstream's
    /// `PrepareForCreate` reads the user from the request's context.
    fn prepare_create_by(&self, _object: &mut Self::Object, _user: &crate::authn::UserInfo) {}

    /// Field checks beyond metadata, as upstream's `ValidateX`.
    fn validate(&self, _object: &Self::Object) -> Vec<Cause> {
        Vec::new()
    }

    /// Checks of an update: by default the create checks; override for immutable fields.
    fn validate_update(&self, new: &Self::Object, _old: &Self::Object) -> Vec<Cause> {
        self.validate(new)
    }

    /// Confines a write to one of [`Description::update_subresources`] to what it may
    /// change, instead of [`Strategy::prepare_update`]: upstream's per-subresource
    /// strategies (a CSR's `/approval` keeps the spec and the issued certificate).
    fn prepare_subresource_update(
        &self,
        _subresource: &str,
        _new: &mut Self::Object,
        _old: &Self::Object,
    ) {
    }

    /// Checks of a write to one of [`Description::update_subresources`]; by default the
    /// update checks.
    fn validate_subresource_update(
        &self,
        _subresource: &str,
        new: &Self::Object,
        old: &Self::Object,
    ) -> Vec<Cause> {
        self.validate_update(new, old)
    }

    /// Refuses a write that authorization let through but the requesting user may still not
    /// make with this content (`old` is `None` on create): upstream's RBAC escalation checks,
    /// which wrap its storage and so run before validation.
    async fn authorize_write(
        &self,
        _request: &super::ApiRequest,
        _new: &Self::Object,
        _old: Option<&Self::Object>,
    ) -> ApiResult<()> {
        Ok(())
    }

    /// Work a create needs beyond storing (allocating a ClusterIP...); may change the object.
    async fn admit_create(&self, _object: &mut Self::Object) -> ApiResult<()> {
        Ok(())
    }

    /// Adjusts an update before defaulting and validation, as upstream's `PrepareForUpdate`
    /// (keeping allocated values the client left out, bumping the generation on annotation
    /// changes...).
    fn prepare_update(&self, _new: &mut Self::Object, _old: &Self::Object) {}

    /// Adjusts a `/status` update instead of [`Strategy::prepare_update`], as upstream's
    /// status strategies do (the spec is already the old one; some keep more, such as a
    /// Deployment's labels).
    fn prepare_status_update(&self, _new: &mut Self::Object, _old: &Self::Object) {}

    /// Refuses a DELETE the resource cannot take now (a namespace still being emptied), before
    /// the generic preconditions are checked.
    fn check_delete(&self, _object: &Self::Object, _options: &DeleteOptions) -> ApiResult<()> {
        Ok(())
    }

    /// Work an update needs beyond storing (allocating NodePorts for new ports...); runs
    /// after validation and may change the object.
    async fn admit_update(&self, _new: &mut Self::Object, _old: &Self::Object) -> ApiResult<()> {
        Ok(())
    }

    /// Gives back what [`Strategy::admit_create`] or [`Strategy::admit_update`] took for
    /// `gone` and `kept` does not hold: after a delete (`kept` is `None`), a create that
    /// failed or was a dry run, or an update (its old object once it succeeded, the new one
    /// if it did not).
    async fn release(&self, _gone: &Self::Object, _kept: Option<&Self::Object>) {}

    /// Whether [`Strategy::admit_create`] or [`Strategy::admit_update`] reserve anything
    /// [`Strategy::release`] must give back; only then does a write keep copies of its
    /// objects to release them if it is abandoned.
    const RESERVES: bool = false;

    /// Values of the selectable fields listed in [`Description::field_selectors`].
    fn fields(&self, _object: &Self::Object) -> Vec<(&'static str, String)> {
        Vec::new()
    }

    /// The `kubectl get` columns (NAME first); the default is upstream's NAME, AGE table.
    fn columns(&self) -> Vec<Column> {
        vec![Column::name(), Column::age()]
    }

    /// The cells of one row, matching [`Strategy::columns`]. Cells that change with time
    /// alone are [`Cell::Relative`]: the watch cache keeps an object's cells until it changes.
    fn cells(&self, object: &Self::Object) -> Vec<Cell> {
        vec![
            Cell::from(object.metadata().name.clone().unwrap_or_default()),
            super::table::age(object.metadata()),
        ]
    }

    /// What a DELETE naming no propagation policy does to the object's dependents
    /// (upstream's `DefaultGarbageCollectionPolicy`): background deletion, except for the
    /// kinds that kept their behaviour from before the garbage collector.
    fn default_propagation(&self) -> DefaultPropagation {
        DefaultPropagation::Background
    }

    /// Finalizers kept outside `metadata.finalizers` that also hold a deletion (a
    /// namespace's `spec.finalizers`).
    fn holds_deletion(&self, _object: &Self::Object) -> bool {
        false
    }

    /// Marks an object whose deletion has started but must wait (a namespace turns
    /// Terminating).
    fn begin_deletion(&self, _object: &mut Self::Object) {}

    /// Carries out a POST to the changing action `action` (see [`Description::actions`]) on
    /// the current object, e.g. a binding setting `spec.nodeName`.
    fn act(&self, _action: &str, _object: &mut Self::Object, _body: &Value) -> ApiResult<()> {
        Err(crate::error::ApiError::MethodNotAllowed)
    }

    /// Answers a POST to the answering action `action` (see [`Effect::Answer`]) on the
    /// current `object`, given the posted body, e.g. a token for a service account.
    async fn answer(
        &self,
        _action: &str,
        _object: &Self::Object,
        _posted: Value,
        _request: &super::ApiRequest,
    ) -> ApiResult<super::answer::Answered> {
        Err(crate::error::ApiError::MethodNotAllowed)
    }

    /// Carries out a POST to the deleting action `action` (see [`Effect::Delete`]) on the
    /// object `name` in `namespace`, given the posted delete options: by default a plain
    /// deletion; a pod's eviction first asks its PodDisruptionBudget, as upstream's does.
    async fn delete_through(
        &self,
        _action: &str,
        _namespace: &str,
        _name: &str,
        options: DeleteOptions,
        deleter: &dyn Deleter,
    ) -> ApiResult<()> {
        deleter.delete(options).await
    }

    /// Seconds a DELETE waits before removing the object (graceful pod termination), given
    /// the grace period the client asked for; `None` removes it at once.
    fn grace_period(&self, _object: &Self::Object, _requested: Option<i64>) -> Option<i64> {
        None
    }
}
