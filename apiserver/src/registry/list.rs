//! LIST and DELETECOLLECTION: from the watch cache when the request allows (informers'
//! `resourceVersion=0`, unpaginated consistent reads), from the store at a fixed revision for
//! paginated and exact reads, as upstream splits them.

use std::sync::Arc;

use bytes::Bytes;
use k8s_openapi::Metadata;

use super::cache::Entry;
use super::continuation::{Continue, EXPIRED};
use super::encode::Outcome;
use super::request::{ApiRequest, Output};
use super::rest::derive;
use super::selector::{FieldSelector, LabelSelector};
use super::strategy::Strategy;
use super::Rest;
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
    pub(super) async fn list(&self, request: ApiRequest) -> ApiResult<Outcome> {
        let page = self.read_page(&request).await?;
        Ok(Outcome::List(page))
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
            // Versions the watch cache holds are taken from it: already derived, and with
            // their table cells if a Table has shown them.
            let cached = self
                .cache
                .versions(result.kvs.iter().map(|kv| (&kv.key[..], kv.mod_revision)))
                .await;
            for (i, (kv, cached)) in result.kvs.into_iter().zip(cached).enumerate() {
                let entry = match cached {
                    Some(entry) => entry,
                    None => {
                        let served = self.served(kv.value)?;
                        let object: S::Object = self.decode(&served, kv.mod_revision)?;
                        let derived = derive(&*self.strategy, &object);
                        Arc::new(Entry::new(kv.key, served, kv.mod_revision, derived))
                    }
                };
                if filter.matches(&entry) {
                    items.push(entry);
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

    /// Deletes every object a list with the same selectors returns, answering with them.
    pub(super) async fn delete_collection(&self, request: ApiRequest) -> ApiResult<Outcome> {
        let mut list_request = ApiRequest {
            verb: request.verb,
            namespace: request.namespace.clone(),
            name: None,
            subresource: None,
            query: request.query.clone(),
            output: request.output,
            headers: request.headers.clone(),
            body: Bytes::new(),
            user: request.user.clone(),
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
                user: request.user.clone(),
            };
            match self.delete(single).await {
                Ok(_) | Err(ApiError::NotFound(_)) => deleted.push(entry),
                Err(other) => return Err(other),
            }
        }
        let revision = self.store.current_revision().await?;
        Ok(Outcome::List(Page {
            items: deleted,
            revision,
            continue_token: None,
            remaining: None,
        }))
    }
}
