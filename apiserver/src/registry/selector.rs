//! Label and field selectors, as `?labelSelector=` and `?fieldSelector=` spell them: parsed
//! and matched by `machinery::selector`, their errors answered as 400s in upstream's words.

pub use machinery::selector::{FieldSelector, Selector as LabelSelector};

use crate::error::ApiError;

impl From<machinery::selector::SelectorError> for ApiError {
    fn from(error: machinery::selector::SelectorError) -> Self {
        ApiError::BadRequest(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors_are_bad_requests_in_upstream_words() {
        let error =
            ApiError::from(FieldSelector::parse("spec.foo=bar", &["metadata.name"]).unwrap_err());
        assert!(
            matches!(&error, ApiError::BadRequest(message) if message == "field label not supported: spec.foo")
        );
        let error = ApiError::from(LabelSelector::parse("a b c").unwrap_err());
        let expected =
            "unable to parse requirement: found 'b c', expected: in, notin, =, ==, !=, gt, lt";
        assert!(matches!(&error, ApiError::BadRequest(message) if message == expected));
    }
}
