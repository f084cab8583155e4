//! Why the rules refuse a command, as one of four classes the API answers with. Which
//! class a refusal is (may not, does not exist, malformed, not now) is a domain fact, so
//! each error enum says it for every variant, beside the enum, with a `match` that has no
//! wildcard: a new variant does not compile until it is placed. The schema maps the class
//! to an error code once.

/// The class of a refusal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal<'a> {
    /// The actor may not do this, whatever the state (`FORBIDDEN`).
    Forbidden,
    /// The aggregate, or the part of it the command names, does not exist (`NOT_FOUND`).
    NotFound,
    /// A field of the command breaks its rules; it names the field (`BAD_USER_INPUT`).
    Invalid { field: &'a str },
    /// The aggregate's state forbids the command now (`CONFLICT`).
    Conflict,
}

/// A domain error that says which class of [`Refusal`] each of its variants is.
pub trait Refuse: std::error::Error {
    /// This refusal's class.
    fn refusal(&self) -> Refusal<'_>;

    /// The field an [`Refusal::Invalid`] refusal names.
    fn field(&self) -> Option<&str> {
        match self.refusal() {
            Refusal::Invalid { field } => Some(field),
            Refusal::Forbidden | Refusal::NotFound | Refusal::Conflict => None,
        }
    }
}
