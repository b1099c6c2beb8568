//! The core's validation error: which field is wrong, a stable code, and a message a merchant can
//! act on. The shell maps it to HTTP 400/422 in one place (`src/http/error.rs`).

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    /// Dotted path of the offending input field (`rewards.sale.amount`), empty for the whole body.
    pub field: String,
    /// Stable machine-readable code, e.g. `invalid_currency`.
    pub code: &'static str,
    pub message: String,
}

impl Invalid {
    pub fn new(field: impl Into<String>, code: &'static str, message: impl Into<String>) -> Self {
        Invalid { field: field.into(), code, message: message.into() }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}
