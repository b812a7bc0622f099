//! CREATE (POST, and server-side apply or PUT to an object that does not exist).

use axum::http::StatusCode;
use bytes::Bytes;
use k8s_openapi::Metadata;

use super::reservation::Reservation;
use super::{check_body_name, drop_empty, Rest};
use crate::decoding;
use crate::error::{ApiError, ApiResult};
use crate::limits;
use crate::registry::encode::Outcome;
use crate::registry::request::ApiRequest;
use crate::registry::stored;
use crate::registry::strategy::Strategy;

impl<S: Strategy> Rest<S> {
    pub(super) async fn create(&self, request: ApiRequest) -> ApiResult<Outcome> {
        let (object, warnings) = self.read_body(&request)?;
        let manager = crate::apply::field_manager(&request, "CreateOptions", false)?;
        self.insert(&request, object, warnings, Some(&manager))
            .await
    }

    /// Creates `object`, for a POST and for a server-side apply to an object that does not
    /// exist yet. `manager` is recorded as the creating updater; an apply has already
    /// recorded itself and passes `None`.
    pub(super) async fn insert(
        &self,
        request: &ApiRequest,
        mut object: S::Object,
        warnings: Vec<String>,
        manager: Option<&str>,
    ) -> ApiResult<Outcome> {
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
        self.strategy.prepare_create_by(&mut object, &request.user);
        self.strategy.default_fields(&mut object);
        // Managed fields are recorded before admission, so what admission adds is nobody's,
        // as upstream's field manager runs first.
        if let Some(manager) = manager {
            self.track(None, &mut object, request, manager)?;
        }
        self.admit_write(request, &mut object, None).await?;
        self.strategy
            .authorize_write(request, &object, None)
            .await?;
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
        self.validate(&object, None, None)?;
        self.validate_write(request, &object, None).await?;
        let reservation = Reservation::admit(&self.strategy, &mut object, None).await?;
        let written = self
            .store_create(request, &object, namespace.as_deref(), &name)
            .await;
        reservation
            .settle(written.is_ok() && !request.query.dry_run)
            .await;
        let (raw, revision) = written?;
        Ok(Outcome::Object {
            code: StatusCode::CREATED,
            raw,
            revision,
            warnings,
        })
    }

    /// The store step of a create: the new key, or for a dry run the check that the name is
    /// free. A dry run answers revision 0, as nothing was written.
    async fn store_create(
        &self,
        request: &ApiRequest,
        object: &S::Object,
        namespace: Option<&str>,
        name: &str,
    ) -> ApiResult<(Bytes, i64)> {
        let raw = stored::encode(object)?;
        limits::check_object_size(&raw)?;
        let key = self.key(namespace, name);
        if request.query.dry_run {
            return match self.store.get(key.as_bytes()).await? {
                Some(_) => Err(ApiError::AlreadyExists(self.info.target(name))),
                None => Ok((self.as_read(raw)?, 0)),
            };
        }
        match self
            .store
            .create(key.as_bytes(), self.storable(raw.clone())?)
            .await
        {
            Ok(revision) => Ok((self.as_read(raw)?, revision)),
            Err(store::Error::AlreadyExists { .. }) => {
                Err(ApiError::AlreadyExists(self.info.target(name)))
            }
            Err(other) => Err(other.into()),
        }
    }

    /// Server-side apply to an object that does not exist: the configuration applied to the
    /// empty object, then created as a POST would be (201).
    pub(super) async fn apply_create(
        &self,
        request: &ApiRequest,
        manager: &str,
    ) -> ApiResult<Outcome> {
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
}
