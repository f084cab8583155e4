//! Global ids: an entity's id is its stream name, `<kind>-<uuid>` (`request-0190…`), the
//! same name the audit trail and the event feed use, so `node(id:)` finds anything by it.
//! Inputs take the global id or the bare uuid.

use async_graphql::{Result, ID};
use uuid::Uuid;

use crate::kit::errors::bad_input;

/// The kind of a work order's global id: work orders live in their ticket's stream, so
/// the kind is not an aggregate's.
pub(crate) const WORK_ORDER: &str = "work_order";

/// The global id of entity `id` of `kind`.
pub(crate) fn global(kind: &str, id: Uuid) -> ID {
    ID(format!("{kind}-{id}"))
}

/// The kind and uuid of a global id.
pub(crate) fn split(id: &str) -> Option<(&str, Uuid)> {
    let (kind, uuid) = id.split_once('-')?;
    Some((kind, uuid.parse().ok()?))
}

/// The uuid of `id`, which must name a `kind` (or be a bare uuid); `field` names the input.
pub(crate) fn parse(field: &str, kind: &str, id: &ID) -> Result<Uuid> {
    if let Ok(uuid) = id.parse::<Uuid>() {
        return Ok(uuid);
    }
    match split(id) {
        Some((k, uuid)) if k == kind => Ok(uuid),
        Some((k, _)) => Err(bad_input(
            field,
            format!("{:?} is the id of a {k}, not of a {kind}", id.as_str()),
        )),
        None => Err(bad_input(field, format!("{:?} is not an id", id.as_str()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_input_takes_the_global_id_or_the_bare_uuid_of_its_kind_only() {
        let uuid = Uuid::from_u128(42);
        let id = global("request", uuid);
        assert_eq!(parse("requestId", "request", &id).unwrap(), uuid);
        assert_eq!(
            parse("requestId", "request", &ID(uuid.to_string())).unwrap(),
            uuid
        );
        let wrong = parse("requestId", "request", &global("catalog_item", uuid)).unwrap_err();
        assert!(
            wrong.message.contains("id of a catalog_item"),
            "{}",
            wrong.message
        );
        assert!(parse("requestId", "request", &ID("request-nope".into())).is_err());
        assert_eq!(split(&id), Some(("request", uuid)));
    }
}
