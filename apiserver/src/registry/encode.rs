//! The HTTP side of the registry: what an operation produced ([`Outcome`]) encoded in the
//! format the client negotiated (JSON, YAML, Table, metadata only).
//!
//! Upstream keeps the same seam: its registry returns objects and its handlers pick a
//! serializer. Keeping every encoding here means the write paths in `rest/` know nothing of
//! Accept headers, and a new encoding is one branch per shape (object, list, watch event)
//! instead of one per verb.

use std::borrow::Cow;
use std::sync::Arc;

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{json, Value};

use super::cache::Entry;
use super::list::Page;
use super::request::{metadata_shape_mismatch, Output};
use super::strategy::Strategy;
use super::table::{self, Cells, Column, IncludeObject, Row};
use super::{scale, stored, ResourceInfo};
use crate::error::{ApiError, ApiResult};
use crate::protobuf;

/// What a registry operation produced, before encoding.
pub(super) enum Outcome {
    /// One object in this API's form (stored bytes, resourceVersion not yet set) at
    /// `revision`, with the warnings the request earned.
    Object {
        code: StatusCode,
        raw: Bytes,
        revision: i64,
        warnings: Vec<String>,
    },
    /// A `Status` the operation answers with (a deletion done, an action taken).
    Status { code: StatusCode, status: Value },
    /// One page of a list.
    List(Page),
    /// A `autoscaling/v1` Scale built from its parent.
    Scale(Value),
    /// A watch: a stream that encodes its own events through [`Encoder::event`].
    Stream(Response),
    /// An object built for the request rather than stored (a TokenRequest with its token),
    /// answered with 201.
    Answer(super::answer::Answered),
}

impl Outcome {
    /// One object answered with 200 and no warnings: a read, a deletion that waits.
    pub(super) fn ok(raw: Bytes, revision: i64) -> Self {
        Outcome::Object {
            code: StatusCode::OK,
            raw,
            revision,
            warnings: Vec::new(),
        }
    }
}

/// What a resource's tables are made of: its strategy's columns and cells.
pub(super) trait Rows: Send + Sync {
    fn columns(&self) -> Vec<Column>;
    /// The cells of one stored object.
    fn cells(&self, stored: &[u8], revision: i64) -> ApiResult<Cells>;
}

/// [`Rows`] of a typed strategy: each object is decoded to compute its cells.
pub(super) struct StrategyRows<S: Strategy>(pub Arc<S>);

impl<S: Strategy> Rows for StrategyRows<S> {
    fn columns(&self) -> Vec<Column> {
        self.0.columns()
    }

    fn cells(&self, stored: &[u8], revision: i64) -> ApiResult<Cells> {
        let object: S::Object = stored::decode(stored, revision)?;
        Cells::new(&self.0.cells(&object))
    }
}

/// Encodes one resource's outcomes; shared with its watchers, which outlive a request.
pub(super) struct Encoder {
    kind: &'static str,
    list_kind: &'static str,
    version: &'static str,
    api_version: String,
    rows: Arc<dyn Rows>,
}

impl Encoder {
    pub(super) fn new(info: &ResourceInfo, rows: Arc<dyn Rows>) -> Self {
        Encoder {
            kind: info.kind,
            list_kind: info.list_kind,
            version: info.version,
            api_version: info.api_version(),
            rows,
        }
    }

    /// The response for `outcome` in the negotiated `output`.
    pub(super) fn answer(&self, outcome: Outcome, output: Output) -> ApiResult<Response> {
        match outcome {
            Outcome::Object {
                code,
                raw,
                revision,
                warnings,
            } => {
                let body = self.object(&raw, revision, output)?;
                Ok(with_warnings(body_response(code, body, output), &warnings))
            }
            Outcome::Status { code, status } => Ok(status_response(code, &status, output)),
            Outcome::List(page) => Ok(body_response(
                StatusCode::OK,
                self.list(page, output)?,
                output,
            )),
            Outcome::Scale(value) => Ok(body_response(
                StatusCode::OK,
                scale::encode(&value, output)?,
                output,
            )),
            Outcome::Stream(response) => Ok(response),
            Outcome::Answer(answered) => answered.respond(output),
        }
    }

    /// One object's body.
    fn object(&self, raw: &[u8], revision: i64, output: Output) -> ApiResult<Vec<u8>> {
        Ok(match output {
            Output::Json => stored::with_resource_version(raw, revision),
            Output::Yaml => yaml(&stored::with_resource_version(raw, revision))?,
            Output::Protobuf => protobuf::encode_object(
                &self.api_version,
                self.kind,
                &stored::with_resource_version(raw, revision),
            )
            .map_err(internal)?,
            Output::Metadata { list: true, .. } => {
                return Err(metadata_shape_mismatch(
                    true,
                    &format!("*{}.{}", self.version, self.kind),
                ))
            }
            Output::Metadata {
                list: false,
                api_version,
                protobuf,
            } => {
                let mut body = Vec::with_capacity(raw.len().min(4096));
                stored::write_partial_metadata(&mut body, raw, revision, api_version);
                if protobuf {
                    body = protobuf::encode_object(api_version, "PartialObjectMetadata", &body)
                        .map_err(internal)?;
                }
                body
            }
            Output::Table(include) => {
                let cells = self.rows.cells(raw, revision)?;
                let row = (Cow::Owned(cells), include.row_object(raw, revision));
                table::table(&self.rows.columns(), [Ok(row)], None, true, None)?
            }
        })
    }

    /// A Table row of a cached object version, its cells computed once per version.
    fn row<'a>(&self, entry: &'a Entry, include: IncludeObject) -> ApiResult<Row<'a>> {
        let cells = entry.cells(|stored, revision| self.rows.cells(stored, revision))?;
        Ok((
            Cow::Borrowed(cells),
            include.row_object(&entry.stored, entry.revision),
        ))
    }

    /// A list page's body, written item by item from the stored bytes: a 10,000-item list
    /// never exists as one JSON tree.
    fn list(&self, page: Page, output: Output) -> ApiResult<Vec<u8>> {
        match output {
            Output::Table(include) => {
                let rows = page.items.iter().map(|entry| self.row(entry, include));
                table::table(
                    &self.rows.columns(),
                    rows,
                    Some(page.revision),
                    true,
                    page.continue_token,
                )
            }
            Output::Metadata { list: false, .. } => Err(metadata_shape_mismatch(
                false,
                &format!("*{}.{}", self.version, self.list_kind),
            )),
            Output::Metadata {
                list: true,
                api_version,
                protobuf: false,
            } => {
                let mut body = Vec::with_capacity(page.items.len() * 512 + 200);
                body.extend_from_slice(
                    b"{\"kind\":\"PartialObjectMetadataList\",\"apiVersion\":\"",
                );
                body.extend_from_slice(api_version.as_bytes());
                body.extend_from_slice(b"\",");
                write_list_metadata(&mut body, &page);
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
                Ok(body)
            }
            Output::Metadata {
                list: true,
                api_version,
                protobuf: true,
            } => {
                let mut list = protobuf::ListEncoder::new(
                    api_version,
                    "PartialObjectMetadataList",
                    &list_metadata(&page),
                )
                .map_err(internal)?;
                let mut item = Vec::with_capacity(2048);
                for entry in &page.items {
                    item.clear();
                    stored::write_partial_metadata(
                        &mut item,
                        &entry.stored,
                        entry.revision,
                        api_version,
                    );
                    list.push(&item).map_err(internal)?;
                }
                Ok(list.finish())
            }
            Output::Protobuf => {
                let mut list = protobuf::ListEncoder::new(
                    &self.api_version,
                    self.list_kind,
                    &list_metadata(&page),
                )
                .map_err(internal)?;
                let mut item = Vec::with_capacity(4096);
                for entry in &page.items {
                    item.clear();
                    stored::write_list_item(&mut item, &entry.stored, entry.revision);
                    list.push(&item).map_err(internal)?;
                }
                Ok(list.finish())
            }
            Output::Json | Output::Yaml => {
                let size = page
                    .items
                    .iter()
                    .map(|e| e.stored.len() + 40)
                    .sum::<usize>();
                let mut body = Vec::with_capacity(size + 200);
                body.extend_from_slice(
                    format!(
                        "{{\"kind\":\"{}\",\"apiVersion\":\"{}\",",
                        self.list_kind, self.api_version,
                    )
                    .as_bytes(),
                );
                write_list_metadata(&mut body, &page);
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
                Ok(body)
            }
        }
    }

    /// One event of a watch stream in `output`: a JSON line or a protobuf frame. `headers`
    /// false leaves a Table's column definitions out, as upstream does after a watch's
    /// first event.
    pub(super) fn event(
        &self,
        kind: &str,
        entry: &Entry,
        output: Output,
        headers: bool,
    ) -> ApiResult<Bytes> {
        let object = match output {
            Output::Table(include) => table::table(
                &self.rows.columns(),
                [self.row(entry, include)],
                Some(entry.revision),
                headers,
                None,
            )?,
            // A metadata watch asks for the list form; each event is one object.
            Output::Metadata {
                api_version,
                protobuf,
                ..
            } => self.object(
                &entry.stored,
                entry.revision,
                Output::Metadata {
                    list: false,
                    api_version,
                    protobuf,
                },
            )?,
            Output::Json | Output::Yaml => {
                stored::with_resource_version(&entry.stored, entry.revision)
            }
            Output::Protobuf => self.object(&entry.stored, entry.revision, output)?,
        };
        Ok(event_frame(kind, &object, output))
    }

    /// A BOOKMARK event: only the kind and the revision the watcher has seen (plus
    /// upstream's marker at the end of the initial events).
    pub(super) fn bookmark(
        &self,
        revision: i64,
        initial_events_end: bool,
        output: Output,
    ) -> Bytes {
        let mut metadata =
            json!({"resourceVersion": revision.to_string(), "creationTimestamp": null});
        if initial_events_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let (api_version, kind) = match output {
            Output::Metadata { api_version, .. } => (api_version, "PartialObjectMetadata"),
            _ => (self.api_version.as_str(), self.kind),
        };
        let object = json!({"kind": kind, "apiVersion": api_version, "metadata": metadata});
        let body = if output.is_protobuf() {
            protobuf::encode_object(api_version, kind, object.to_string().as_bytes())
                .unwrap_or_default()
        } else {
            serde_json::to_vec(&object).unwrap_or_default()
        };
        event_frame("BOOKMARK", &body, output)
    }
}

/// An ERROR event carrying `error`'s Status (a watch from a compacted revision).
pub(super) fn error_event(error: &ApiError, output: Output) -> Bytes {
    let status = error.status();
    let body = if output.is_protobuf() {
        protobuf::encode_object("v1", "Status", status.to_string().as_bytes()).unwrap_or_default()
    } else {
        serde_json::to_vec(&status).unwrap_or_default()
    };
    event_frame("ERROR", &body, output)
}

/// The content type of a watch stream in `output`.
pub(super) fn watch_content_type(output: Output) -> HeaderValue {
    HeaderValue::from_static(if output.is_protobuf() {
        "application/vnd.kubernetes.protobuf;stream=watch"
    } else {
        "application/json"
    })
}

/// The error response for a request that negotiated `output`: upstream encodes a failure's
/// Status like any other answer, so a protobuf client gets a protobuf Status.
pub fn error_response(error: ApiError, output: Output) -> Response {
    if !output.is_protobuf() {
        return error.into_response();
    }
    let code = error.code();
    if code.is_server_error() {
        tracing::warn!(%error, "request failed");
    }
    error.advise_retry(status_response(code, &error.status(), output))
}

fn status_response(code: StatusCode, status: &Value, output: Output) -> Response {
    let body = match output.is_protobuf() {
        true => protobuf::encode_object("v1", "Status", status.to_string().as_bytes())
            .unwrap_or_default(),
        false => serde_json::to_vec(status).unwrap_or_default(),
    };
    let output = match output.is_protobuf() {
        true => Output::Protobuf,
        false => Output::Json,
    };
    body_response(code, body, output)
}

/// A list's metadata as JSON, for the protobuf encoder.
fn list_metadata(page: &Page) -> Vec<u8> {
    let mut metadata = json!({"resourceVersion": page.revision.to_string()});
    if let Some(token) = &page.continue_token {
        metadata["continue"] = Value::from(token.as_str());
    }
    if let Some(remaining) = page.remaining {
        metadata["remainingItemCount"] = Value::from(remaining);
    }
    metadata.to_string().into_bytes()
}

/// A list's `"metadata":{...}` member: its resourceVersion, continue token and remaining
/// item count.
fn write_list_metadata(body: &mut Vec<u8>, page: &Page) {
    body.extend_from_slice(
        format!("\"metadata\":{{\"resourceVersion\":\"{}\"", page.revision).as_bytes(),
    );
    if let Some(token) = &page.continue_token {
        body.extend_from_slice(format!(",\"continue\":{}", Value::from(token.as_str())).as_bytes());
    }
    if let Some(remaining) = page.remaining {
        body.extend_from_slice(format!(",\"remainingItemCount\":{remaining}").as_bytes());
    }
    body.push(b'}');
}

/// One event of a watch stream: a JSON line, or a length-prefixed protobuf WatchEvent.
fn event_frame(kind: &str, object: &[u8], output: Output) -> Bytes {
    if output.is_protobuf() {
        return protobuf::watch_frame(kind, object).into();
    }
    let mut line = Vec::with_capacity(object.len() + 32);
    line.extend_from_slice(b"{\"type\":\"");
    line.extend_from_slice(kind.as_bytes());
    line.extend_from_slice(b"\",\"object\":");
    line.extend_from_slice(object);
    line.extend_from_slice(b"}\n");
    line.into()
}

/// Converts a JSON document to YAML for `Accept: application/yaml`.
pub(super) fn yaml(json: &[u8]) -> ApiResult<Vec<u8>> {
    let value: Value = serde_json::from_slice(json).map_err(internal)?;
    crate::yaml::from_json(&value)
        .map(String::into_bytes)
        .map_err(internal)
}

pub(super) fn body_response(code: StatusCode, body: Vec<u8>, output: Output) -> Response {
    let content_type = match output {
        Output::Yaml => "application/yaml",
        output if output.is_protobuf() => "application/vnd.kubernetes.protobuf",
        _ => "application/json",
    };
    let mut response = (code, body).into_response();
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static(content_type));
    response
}

/// Adds upstream-style `Warning: 299 - "..."` headers.
pub(super) fn with_warnings(mut response: Response, warnings: &[String]) -> Response {
    for warning in warnings {
        let text = format!("299 - {:?}", warning);
        if let Ok(value) = HeaderValue::from_str(&text) {
            response.headers_mut().append("warning", value);
        }
    }
    response
}

fn internal(error: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(error.to_string())
}
