//! The depth and complexity limits of every request, counted so that a client's first
//! contact works: the standard introspection query (graphql-js `getIntrospectionQuery()`,
//! as GraphiQL, Apollo and graphql-codegen send it) is fifteen fields deep, so the fields
//! under `__schema` and `__type` are left out of the depth and complexity of the operation,
//! as graphql-depth-limit does, and are bounded by limits of their own instead, as the
//! Apollo Router does: at most three nested lists (`types { fields { args } }`) and a
//! number of fields.
//!
//! async-graphql's own `limit_depth` and `limit_complexity` count every field, so they are
//! not set; [`Limits`] checks the same numbers, counted the same way (fragments expanded,
//! `__typename` free), with the introspection fields taken out.
//! The complexity of the rest stays async-graphql's (it honours a field's `complexity`
//! attribute): the introspection fields, which have none, are counted here and subtracted.

use std::sync::{Arc, Mutex};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextValidation,
};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{Positioned, ServerError, ServerResult, ValidationResult, Variables};

use crate::kit::errors::Code;

/// The deepest an operation may nest its fields, introspection left out.
pub const MAX_DEPTH: usize = 12;
/// The most complex an operation may be (one per field selected, fragments expanded),
/// introspection left out.
pub const MAX_COMPLEXITY: usize = 2_000;
/// The most lists an introspection field may nest (`__schema { types { fields { args` is
/// three): beyond it, the answer grows by the size of the schema with each list.
pub const MAX_INTROSPECTION_LISTS: usize = 3;
/// The most fields a request may select under `__schema` and `__type`, fragments expanded
/// (the standard introspection query selects a few hundred).
pub const MAX_INTROSPECTION_FIELDS: usize = 1_000;
/// The most fields counted before a request is refused as too complex, whatever they are:
/// it bounds the work of counting a document whose fragments multiply.
const MAX_FIELDS: usize = MAX_COMPLEXITY + MAX_INTROSPECTION_FIELDS;
/// The deepest any field may be, introspection included (the standard introspection query
/// is fifteen deep): it bounds the recursion of counting a chain of fragments.
const MAX_ANY_DEPTH: usize = 32;

/// The introspection fields that answer a list of objects.
const INTROSPECTION_LISTS: &[&str] = &[
    "types",
    "directives",
    "fields",
    "args",
    "inputFields",
    "interfaces",
    "possibleTypes",
    "enumValues",
];

/// The extension that checks the limits, one instance per request.
pub struct Limits;

impl ExtensionFactory for Limits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(LimitsExtension::default())
    }
}

#[derive(Default)]
struct LimitsExtension {
    /// What the parsed document selects, for the validation that follows.
    counted: Mutex<Option<Counted>>,
}

#[async_trait::async_trait]
impl Extension for LimitsExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        let counted = count(&document)?;
        if counted.introspection_lists > MAX_INTROSPECTION_LISTS {
            return Err(refused(
                "Introspection is nested too deep: at most three lists inside each other.",
            ));
        }
        if counted.introspection_fields > MAX_INTROSPECTION_FIELDS {
            return Err(refused("Introspection selects too many fields."));
        }
        *self.counted.lock().unwrap_or_else(|e| e.into_inner()) = Some(counted);
        Ok(document)
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let mut result = next.run(ctx).await?;
        let counted = self
            .counted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or_default();
        result.complexity = result
            .complexity
            .saturating_sub(counted.introspection_fields);
        result.depth = counted.depth;
        if result.complexity > MAX_COMPLEXITY {
            return Err(vec![refused("Query is too complex.")]);
        }
        Ok(result)
    }
}

fn refused(message: &str) -> ServerError {
    refused_at(message, None)
}

fn refused_at(message: &str, pos: Option<async_graphql::Pos>) -> ServerError {
    let mut error = ServerError::new(message, pos);
    let mut extensions = async_graphql::ErrorExtensionValues::default();
    extensions.set("code", Code::BadUserInput.as_str());
    error.extensions = Some(extensions);
    error
}

/// What a document selects, fragments expanded, over all its operations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counted {
    /// The deepest nesting of fields outside `__schema` and `__type`.
    pub depth: usize,
    /// The fields under `__schema` and `__type`, themselves included.
    pub introspection_fields: usize,
    /// The most introspection lists nested inside each other.
    pub introspection_lists: usize,
}

/// Counts `document`.
///
/// # Errors
///
/// A fragment that spreads itself, directly or not; fields nested deeper than
/// [`MAX_DEPTH`] outside introspection; or a document too large to count (more than
/// [`MAX_FIELDS`] fields, or fields deeper than [`MAX_ANY_DEPTH`], once its fragments are
/// expanded).
pub(crate) fn count(document: &ExecutableDocument) -> ServerResult<Counted> {
    let mut walk = Walk {
        document,
        expanding: Vec::new(),
        fields: 0,
        counted: Counted::default(),
    };
    for (_, operation) in document.operations.iter() {
        walk.selection_set(&operation.node.selection_set, 0, None)?;
    }
    Ok(walk.counted)
}

struct Walk<'a> {
    document: &'a ExecutableDocument,
    /// The fragments being expanded, outermost first.
    expanding: Vec<&'a str>,
    fields: usize,
    counted: Counted,
}

impl<'a> Walk<'a> {
    /// Walks `set`, at `depth` fields below the operation; `lists` is the number of
    /// introspection lists above it, or `None` outside introspection.
    fn selection_set(
        &mut self,
        set: &'a Positioned<SelectionSet>,
        depth: usize,
        lists: Option<usize>,
    ) -> ServerResult<()> {
        for selection in &set.node.items {
            match &selection.node {
                Selection::Field(field) => {
                    self.fields += 1;
                    if self.fields > MAX_FIELDS {
                        return Err(refused("Query is too complex."));
                    }
                    if depth >= MAX_ANY_DEPTH {
                        return Err(refused_at("Query is nested too deep.", Some(field.pos)));
                    }
                    let name = field.node.name.node.as_str();
                    // A type's name costs nothing: async-graphql counts it neither in the
                    // depth nor in the complexity.
                    if name == "__typename" {
                        continue;
                    }
                    let lists = match lists {
                        None if name == "__schema" || name == "__type" => Some(0),
                        None => {
                            if depth >= MAX_DEPTH {
                                return Err(refused_at(
                                    "Query is nested too deep.",
                                    Some(field.pos),
                                ));
                            }
                            self.counted.depth = self.counted.depth.max(depth + 1);
                            None
                        }
                        Some(lists) => Some(lists),
                    };
                    let lists = lists.map(|lists| {
                        self.counted.introspection_fields += 1;
                        let nested = !field.node.selection_set.node.items.is_empty();
                        let lists =
                            lists + usize::from(nested && INTROSPECTION_LISTS.contains(&name));
                        self.counted.introspection_lists =
                            self.counted.introspection_lists.max(lists);
                        lists
                    });
                    self.selection_set(&field.node.selection_set, depth + 1, lists)?;
                }
                Selection::InlineFragment(fragment) => {
                    self.selection_set(&fragment.node.selection_set, depth, lists)?;
                }
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.as_str();
                    if self.expanding.contains(&name) {
                        return Err(refused_at(
                            &format!("Fragment \"{name}\" spreads itself."),
                            Some(spread.pos),
                        ));
                    }
                    // An unknown fragment is for validation to name.
                    if let Some(fragment) = self.document.fragments.get(name) {
                        self.expanding.push(name);
                        self.selection_set(&fragment.node.selection_set, depth, lists)?;
                        self.expanding.pop();
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::parser::parse_query;

    use super::*;

    fn counted(query: &str) -> ServerResult<Counted> {
        count(&parse_query(query).unwrap())
    }

    #[test]
    fn the_standard_introspection_query_is_counted_apart_from_the_operation() {
        let query = include_str!("../../../tests/fixtures/introspection/default.graphql");
        let counted = counted(query).unwrap();
        assert_eq!(counted.depth, 0);
        assert_eq!(counted.introspection_lists, 3);
        assert!(
            (200..MAX_INTROSPECTION_FIELDS).contains(&counted.introspection_fields),
            "{counted:?}"
        );
    }

    #[test]
    fn ordinary_fields_count_their_depth_through_fragments() {
        let query = "query { a { b { ...F } } } fragment F on B { c { d { __typename } } }";
        let counted = counted(query).unwrap();
        assert_eq!(
            counted,
            Counted {
                depth: 4,
                introspection_fields: 0,
                introspection_lists: 0
            }
        );
    }

    #[test]
    fn lists_nested_in_introspection_are_counted() {
        let query = "{ __schema { types { fields { type { fields { type { name } } } } } } }";
        assert_eq!(counted(query).unwrap().introspection_lists, 3);
        let query = "{ __type(name: \"Query\") { fields { type { fields { type { fields { name } } } } } } }";
        assert_eq!(counted(query).unwrap().introspection_lists, 3);
        let query =
            "{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }";
        assert_eq!(counted(query).unwrap().introspection_lists, 4);
    }

    #[test]
    fn a_fragment_that_spreads_itself_is_refused() {
        let query = "{ a { ...F } } fragment F on A { b { ...G } } fragment G on B { ...F }";
        let error = counted(query).unwrap_err();
        assert!(error.message.contains("spreads itself"), "{error:?}");
    }

    #[test]
    fn fragments_that_multiply_are_refused_before_they_are_expanded() {
        let mut query = String::from("{ ...F0 }");
        for n in 0..30 {
            let next = n + 1;
            query += &format!(" fragment F{n} on Query {{ ...F{next} ...F{next} }}");
        }
        query += " fragment F30 on Query { y }";
        let error = counted(&query).unwrap_err();
        assert_eq!(error.message, "Query is too complex.");
    }

    /// `{ a { a { … x } } }`, `depth` fields deep.
    fn nested(depth: usize) -> String {
        let mut query = String::from("x");
        for _ in 1..depth {
            query = format!("a {{ {query} }}");
        }
        format!("{{ {query} }}")
    }

    #[test]
    fn ordinary_fields_deeper_than_the_limit_are_refused() {
        assert_eq!(counted(&nested(MAX_DEPTH)).unwrap().depth, MAX_DEPTH);
        let error = counted(&nested(MAX_DEPTH + 1)).unwrap_err();
        assert_eq!(error.message, "Query is nested too deep.");
    }
}
