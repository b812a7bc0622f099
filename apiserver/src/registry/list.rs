//! LIST and DELETECOLLECTION: from the watch cache when the request allows (informers'
//! `resourceVersion=0`, unpaginated consistent reads), from the store at a fixed revision for
//! paginated and exact reads, as upstream splits them.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use k8s_openapi::Metadata;
use serde_json::Value;

use super::cache::Entry;
use super::continuation::{Continue, EXPIRED};
use super::request::{metadata_shape_mismatch, ApiRequest, Output};
use super::rest::{body_response, derive, yaml};
use super::selector::{FieldSelector, LabelSelector};
use super::strategy::Strategy;
use super::{stored, table, Rest};
use crate::error::{ApiError, ApiResult};

/// One page of objects, whichever source it came from.
pub(super) struct Page {
    pub items: Vec<Arc<Entry>>,
    pub revision: i64,
    pub continue_token: Option<String>,
    pub remaining: Option<u64>,
}

/// The selectors of a list or watch.
pub(super) struct Filter {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Filter {
    pub fn parse(request: &ApiRequest, supported_extra: &[&str]) -> ApiResult<Self> {
        let mut supported = vec!["metadata.name", "metadata.namespace"];
        supported.extend_from_slice(supported_extra);
        Ok(Filter {
            labels: LabelSelector::parse(request.query.label_selector.as_deref().unwrap_or(""))?,
            fields: FieldSelector::parse(
                request.query.field_selector.as_deref().unwrap_or(""),
                &supported,
            )?,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }

    pub fn matches(&self, entry: &Entry) -> bool {
        self.labels.matches(&entry.derived.labels) && self.fields.matches(&entry.derived.fields)
    }
}

impl<S: Strategy> Rest<S> {
    pub(super) async fn list(&self, request: ApiRequest) -> ApiResult<Response> {
        let page = self.read_page(&request).await?;
        self.encode_list(page, request.output)
    }

    pub(super) async fn read_page(&self, request: &ApiRequest) -> ApiResult<Page> {
        let filter = Filter::parse(request, self.info.description.field_selectors)?;
        let prefix = self.list_prefix(request.namespace.as_deref());
        let query = &request.query;
        query.validate_list_options(false)?;
        let exact = query.resource_version_match.as_deref() == Some("Exact");
        let requested = query.revision()?;
        if let Some(token) = &query.continue_token {
            if requested.is_some_and(|rv| rv != 0) {
                return Err(ApiError::BadRequest(
                    "specifying resource version is not allowed when using continue".into(),
                ));
            }
            let token = Continue::decode(token)?;
            return self
                .store_page(&prefix, &filter, query.limit, token.rv, Some(token.start))
                .await;
        }
        match requested {
            Some(rv) if exact && rv > 0 => {
                self.store_page(&prefix, &filter, query.limit, rv, None)
                    .await
            }
            None if query.limit > 0 => {
                self.store_page(&prefix, &filter, query.limit, 0, None)
                    .await
            }
            requested => {
                let fresh_enough = match requested {
                    None => self.store.current_revision().await?,
                    Some(0) => 1,
                    Some(rv) => rv,
                };
                self.cache.wait_for(fresh_enough).await?;
                let (entries, revision) = self.cache.list(prefix.as_bytes()).await;
                let items = entries.into_iter().filter(|e| filter.matches(e)).collect();
                Ok(Page {
                    items,
                    revision,
                    continue_token: None,
                    remaining: None,
                })
            }
        }
    }

    /// Reads matching objects from the store at `revision` (0: now), up to `limit` (0: all).
    async fn store_page(
        &self,
        prefix: &str,
        filter: &Filter,
        limit: usize,
        revision: i64,
        start: Option<String>,
    ) -> ApiResult<Page> {
        let mut items = Vec::new();
        let mut options = store::ListOptions {
            limit: if filter.is_empty() {
                limit
            } else {
                limit.max(500)
            },
            start_after: start.map(Bytes::from),
            revision,
        };
        loop {
            let result = match self.store.list(prefix.as_bytes(), options.clone()).await {
                Err(store::Error::Compacted { .. }) if options.start_after.is_some() => {
                    return Err(ApiError::Expired(EXPIRED.into()))
                }
                other => other?,
            };
            options.revision = result.revision;
            let count = result.kvs.len();
            let last_examined = result.kvs.last().map(|kv| kv.key.slice(prefix.len()..));
            for (i, kv) in result.kvs.into_iter().enumerate() {
                let served = self.served(kv.value)?;
                let object: S::Object = self.decode(&served, kv.mod_revision)?;
                let entry = Entry {
                    derived: derive(&*self.strategy, &object),
                    key: kv.key,
                    stored: served,
                    revision: kv.mod_revision,
                };
                if filter.matches(&entry) {
                    items.push(Arc::new(entry));
                }
                if limit > 0 && items.len() == limit {
                    let more = i + 1 < count || result.remaining > 0;
                    let remaining = (filter.is_empty() && more)
                        .then_some(result.remaining + (count - i - 1) as u64);
                    let last = items
                        .last()
                        .map(|e| String::from_utf8_lossy(&e.key[prefix.len()..]).into_owned());
                    return Ok(Page {
                        items,
                        revision: result.revision,
                        continue_token: more.then(|| {
                            Continue::new(result.revision, last.unwrap_or_default()).encode()
                        }),
                        remaining: remaining.filter(|r| *r > 0),
                    });
                }
            }
            match last_examined {
                Some(last) if result.remaining > 0 => options.start_after = Some(last),
                _ => {
                    return Ok(Page {
                        items,
                        revision: result.revision,
                        continue_token: None,
                        remaining: None,
                    })
                }
            }
        }
    }

    pub(super) fn encode_list(&self, page: Page, output: Output) -> ApiResult<Response> {
        match output {
            Output::Table(include) => {
                let rows = page
                    .items
                    .iter()
                    .map(|entry| self.row(&entry.stored, entry.revision, include));
                let body = table::table(
                    &self.strategy.columns(),
                    rows,
                    Some(page.revision),
                    true,
                    page.continue_token,
                )?;
                Ok(body_response(StatusCode::OK, body, output))
            }
            Output::Metadata { list: false, .. } => Err(metadata_shape_mismatch(
                false,
                &format!("*{}.{}", self.info.version, self.info.list_kind),
            )),
            Output::Metadata {
                list: true,
                api_version,
            } => {
                let mut body = Vec::with_capacity(page.items.len() * 512 + 200);
                body.extend_from_slice(
                    b"{\"kind\":\"PartialObjectMetadataList\",\"apiVersion\":\"",
                );
                body.extend_from_slice(api_version.as_bytes());
                body.extend_from_slice(b"\",");
                self.write_list_metadata(&mut body, &page);
                body.extend_from_slice(b",\"items\":[");
                for (i, entry) in page.items.iter().enumerate() {
                    if i > 0 {
                        body.push(b',');
                    }
                    stored::write_partial_metadata(
                        &mut body,
                        &entry.stored,
                        entry.revision,
                        api_version,
                    );
                }
                body.extend_from_slice(b"]}");
                Ok(body_response(StatusCode::OK, body, output))
            }
            Output::Json | Output::Yaml => {
                let mut body = Vec::with_capacity(
                    page.items
                        .iter()
                        .map(|e| e.stored.len() + 40)
                        .sum::<usize>()
                        + 200,
                );
                body.extend_from_slice(
                    format!(
                        "{{\"kind\":\"{}\",\"apiVersion\":\"{}\",",
                        self.info.list_kind,
                        self.info.api_version(),
                    )
                    .as_bytes(),
                );
                self.write_list_metadata(&mut body, &page);
                body.extend_from_slice(b",\"items\":[");
                for (i, entry) in page.items.iter().enumerate() {
                    if i > 0 {
                        body.push(b',');
                    }
                    stored::write_list_item(&mut body, &entry.stored, entry.revision);
                }
                body.extend_from_slice(b"]}");
                if output == Output::Yaml {
                    body = yaml(&body)?;
                }
                Ok(body_response(StatusCode::OK, body, output))
            }
        }
    }

    /// A list's `"metadata":{...}` member: its resourceVersion, continue token and remaining
    /// item count.
    fn write_list_metadata(&self, body: &mut Vec<u8>, page: &Page) {
        body.extend_from_slice(
            format!("\"metadata\":{{\"resourceVersion\":\"{}\"", page.revision).as_bytes(),
        );
        if let Some(token) = &page.continue_token {
            body.extend_from_slice(
                format!(",\"continue\":{}", Value::from(token.as_str())).as_bytes(),
            );
        }
        if let Some(remaining) = page.remaining {
            body.extend_from_slice(format!(",\"remainingItemCount\":{remaining}").as_bytes());
        }
        body.push(b'}');
    }

    /// Deletes every object a list with the same selectors returns, answering with them.
    pub(super) async fn delete_collection(&self, request: ApiRequest) -> ApiResult<Response> {
        let mut list_request = ApiRequest {
            verb: request.verb,
            namespace: request.namespace.clone(),
            name: None,
            subresource: None,
            query: request.query.clone(),
            output: request.output,
            headers: request.headers.clone(),
            body: Bytes::new(),
        };
        list_request.query.limit = 0;
        list_request.query.continue_token = None;
        let page = self.read_page(&list_request).await?;
        let mut deleted = Vec::new();
        for entry in page.items {
            let object: S::Object = self.decode(&entry.stored, entry.revision)?;
            let name = object.metadata().name.clone().unwrap_or_default();
            let single = ApiRequest {
                verb: super::Verb::Delete,
                namespace: object.metadata().namespace.clone(),
                name: Some(name),
                subresource: None,
                query: request.query.clone(),
                output: Output::Json,
                headers: request.headers.clone(),
                body: request.body.clone(),
            };
            match self.delete_one(single).await {
                Ok(()) | Err(ApiError::NotFound(_)) => deleted.push(entry),
                Err(other) => return Err(other),
            }
        }
        let revision = self.store.current_revision().await?;
        self.encode_list(
            Page {
                items: deleted,
                revision,
                continue_token: None,
                remaining: None,
            },
            request.output,
        )
    }

    async fn delete_one(&self, request: ApiRequest) -> ApiResult<()> {
        use super::Resource;
        self.handle(request).await.map(|_| ())
    }
}
