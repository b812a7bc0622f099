//! `ServiceAccount`: a new pod runs as the `default` service account unless it names one.

use async_trait::async_trait;
use serde_json::Value;

use super::{Attributes, Operation, Plugin};
use crate::error::ApiResult;

/// The account pods run as unless they name one.
const DEFAULT_ACCOUNT: &str = "default";

pub struct ServiceAccount;

#[async_trait]
impl Plugin for ServiceAccount {
    fn handles(&self, attributes: &Attributes<'_>) -> bool {
        attributes.resource.is_core("pods")
            && attributes.subresource.is_none()
            && attributes.operation == Operation::Create
    }

    async fn admit(&self, attributes: &mut Attributes<'_>) -> ApiResult<()> {
        let named = attributes
            .object()?
            .and_then(|pod| pod.pointer("/spec/serviceAccountName"))
            .and_then(Value::as_str)
            .is_some_and(|name| !name.is_empty());
        if named {
            return Ok(());
        }
        if let Some(spec) = attributes
            .object_mut()?
            .and_then(|pod| pod.get_mut("spec"))
            .and_then(Value::as_object_mut)
        {
            // The v1 form echoes the name into the deprecated `serviceAccount`.
            spec.insert("serviceAccountName".into(), DEFAULT_ACCOUNT.into());
            spec.insert("serviceAccount".into(), DEFAULT_ACCOUNT.into());
        }
        Ok(())
    }
}
