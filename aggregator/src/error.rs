//! Field problems: what is wrong with one field of a request, as every
//! parser and service reports it (the HTTP layer answers them as a 422
//! naming the field, see `crate::http::error`).

use serde::Serialize;

/// One problem with one field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Field name (JSON path).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl Problem {
    /// A problem with `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}
