//! Relay paging: a page of a list with the position it reflects, and its cursors.

use async_graphql::connection::{Connection, Edge, OpaqueCursor};
use async_graphql::{OutputType, Result, SimpleObject};

use crate::kit::errors::bad_input;

/// The position of the log a read reflects.
#[derive(SimpleObject, Clone, Copy)]
pub struct ReadAt {
    /// Every event up to this position is in the answer.
    pub position: u64,
}

/// A page of a list, with the position it reflects.
pub type Page<T> = Connection<OpaqueCursor<usize>, T, ReadAt>;

/// The longest page a client may ask for.
const MAX_PAGE: usize = 500;

/// `first` as a page size, `default` when absent.
pub(crate) fn page_size(first: Option<i32>, default: usize) -> Result<usize> {
    match first {
        None => Ok(default),
        Some(n) => usize::try_from(n)
            .ok()
            .filter(|n| *n <= MAX_PAGE)
            .ok_or_else(|| bad_input("first", format!("must be between 0 and {MAX_PAGE}"))),
    }
}

/// The key of the last item a client has, from its `after` cursor.
pub(crate) fn cursor(after: Option<String>) -> Result<Option<usize>> {
    after
        .map(|c| {
            <OpaqueCursor<usize> as async_graphql::connection::CursorType>::decode_cursor(&c)
                .map(|c| c.0)
                .map_err(|_| bad_input("after", "is not a cursor of this list"))
        })
        .transpose()
}

/// A page of up to `first` items from `items`, which start just after the client's
/// cursor; each item comes with its cursor key and is converted only if on the page.
pub(crate) fn page<V, T: OutputType>(
    items: impl Iterator<Item = (usize, V)>,
    convert: impl Fn(V) -> T,
    after_a_cursor: bool,
    first: Option<i32>,
    position: u64,
) -> Result<Page<T>> {
    let first = page_size(first, 50)?;
    let mut taken: Vec<(usize, V)> = items.take(first + 1).collect();
    let more = taken.len() > first;
    taken.truncate(first);
    let mut connection =
        Connection::with_additional_fields(after_a_cursor, more, ReadAt { position });
    connection.edges.extend(
        taken
            .into_iter()
            .map(|(key, item)| Edge::new(OpaqueCursor(key), convert(item))),
    );
    Ok(connection)
}

/// A page of a list whose cursors are places in it.
pub(crate) fn page_in_order<V, T: OutputType>(
    items: impl Iterator<Item = V>,
    convert: impl Fn(V) -> T,
    after: Option<String>,
    first: Option<i32>,
    position: u64,
) -> Result<Page<T>> {
    let after = cursor(after)?;
    let start = after.map_or(0, |a| a + 1);
    page(
        items.enumerate().skip(start),
        convert,
        after.is_some(),
        first,
        position,
    )
}
