//! A field of a command and what is wrong with it: the refusal every area gives for bad
//! input, naming the field by its path (`fields[2]`, `period.end`).

/// A field and what is wrong with it; maps to `BAD_USER_INPUT`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct InvalidField {
    pub field: String,
    pub problem: String,
}

pub(crate) fn invalid(field: impl Into<String>, problem: impl Into<String>) -> InvalidField {
    InvalidField {
        field: field.into(),
        problem: problem.into(),
    }
}
