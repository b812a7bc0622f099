//! Continue tokens of paginated lists: the revision of the first page and the last key
//! returned, so every page reads the same point in time.

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ApiResult};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Continue {
    /// Token format version, as upstream's tokens carry one.
    v: String,
    pub rv: i64,
    /// The last key returned, relative to the listed prefix.
    pub start: String,
}

impl Continue {
    pub fn new(rv: i64, start: String) -> Self {
        Continue {
            v: "meta.k8s.io/v1".into(),
            rv,
            start,
        }
    }

    pub fn encode(&self) -> String {
        base64::engine::general_purpose::URL_SAFE
            .encode(serde_json::to_vec(self).unwrap_or_default())
    }

    pub fn decode(token: &str) -> ApiResult<Self> {
        let invalid =
            |detail: String| ApiError::BadRequest(format!("continue key is not valid: {detail}"));
        let raw = base64::engine::general_purpose::URL_SAFE
            .decode(token)
            .map_err(|e| invalid(e.to_string()))?;
        let token: Continue = serde_json::from_slice(&raw).map_err(|e| invalid(e.to_string()))?;
        if token.v != "meta.k8s.io/v1" || token.rv <= 0 {
            return Err(invalid(
                "incorrect encoded start resourceVersion (version meta.k8s.io/v1)".into(),
            ));
        }
        if token.start.is_empty() {
            return Err(invalid("encoded start key empty".into()));
        }
        // Like upstream, the start key must be a clean path below the listed prefix: a
        // crafted token must not reach keys of another resource or namespace.
        if !is_clean(&token.start) {
            return Err(invalid(token.start));
        }
        Ok(token)
    }
}

/// Whether `/start` is its own `path.Clean`: no empty, `.` or `..` segments, no trailing
/// slash.
fn is_clean(start: &str) -> bool {
    let relative = start.strip_prefix('/').unwrap_or(start);
    relative
        .split('/')
        .all(|segment| !segment.is_empty() && segment != "." && segment != "..")
}

/// Upstream's message for a continue token whose revision was compacted.
pub const EXPIRED: &str = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_garbage_is_rejected() {
        let token = Continue::new(42, "default/web".into());
        assert_eq!(Continue::decode(&token.encode()).unwrap(), token);
        assert!(matches!(
            Continue::decode("not-a-token"),
            Err(ApiError::BadRequest(_))
        ));
        for escaping in ["default/../kube-system/x", "../secrets/x", "a//b", "a/b/"] {
            let token = Continue::new(42, escaping.into()).encode();
            assert!(
                matches!(Continue::decode(&token), Err(ApiError::BadRequest(_))),
                "{escaping}"
            );
        }
        assert!(Continue::decode(&Continue::new(42, "ns/name..with.dots".into()).encode()).is_ok());
    }
}
