//! A GraphQL client's first contact, over real HTTP: the introspection queries GraphiQL,
//! Apollo and graphql-codegen send (the exact text of graphql-js's
//! `getIntrospectionQuery()`, in `tests/fixtures/introspection/`) answer within the limits,
//! and describe exactly the committed `schema/schema.graphql`; ordinary queries keep their
//! depth and complexity limits.

use std::collections::{BTreeMap, BTreeSet};

use async_graphql::parser::types::{ConstDirective, TypeKind, TypeSystemDefinition};
use serde_json::{json, Value};

use crate::graphql::{token, Api};
use crate::support::{Fixture, Kind};

const DEFAULT: &str = include_str!("../fixtures/introspection/default.graphql");
const GRAPHIQL: &str = include_str!("../fixtures/introspection/graphiql3.graphql");
const FULL: &str = include_str!("../fixtures/introspection/full.graphql");
const SDL: &str = include_str!("../../schema/schema.graphql");

/// A type as both descriptions can say it: kind, fields (or input fields) with their
/// arguments, interfaces, union members and enum values.
#[derive(Debug, Default, PartialEq, Eq)]
struct Shape {
    kind: String,
    fields: BTreeMap<String, Field>,
    interfaces: BTreeSet<String>,
    members: BTreeSet<String>,
    values: BTreeMap<String, bool>,
}

#[derive(Debug, PartialEq, Eq)]
struct Field {
    ty: String,
    args: BTreeMap<String, Arg>,
    deprecated: bool,
}

#[derive(Debug, PartialEq, Eq)]
struct Arg {
    ty: String,
    default: Option<String>,
}

/// The schema both ways: its root types, its types, and its directives' arguments and
/// locations.
#[derive(Debug, PartialEq, Eq)]
struct Described {
    roots: [Option<String>; 3],
    types: BTreeMap<String, Shape>,
    directives: BTreeMap<String, (BTreeMap<String, Arg>, BTreeSet<String>)>,
}

fn deprecated(directives: &[async_graphql::Positioned<ConstDirective>]) -> bool {
    directives.iter().any(|d| d.node.name.node == "deprecated")
}

/// `FragmentSpread` → `FRAGMENT_SPREAD`, as introspection names a location.
fn screaming(camel: &str) -> String {
    let mut out = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

fn from_sdl(sdl: &str) -> Described {
    let document = async_graphql::parser::parse_schema(sdl).expect("the committed SDL parses");
    let mut described = Described {
        roots: [None, None, None],
        types: BTreeMap::new(),
        directives: BTreeMap::new(),
    };
    let args = |values: &[async_graphql::Positioned<
        async_graphql::parser::types::InputValueDefinition,
    >]| {
        values
            .iter()
            .map(|v| {
                (
                    v.node.name.node.to_string(),
                    Arg {
                        ty: v.node.ty.node.to_string(),
                        default: v.node.default_value.as_ref().map(|d| d.node.to_string()),
                    },
                )
            })
            .collect::<BTreeMap<_, _>>()
    };
    for definition in document.definitions {
        match definition {
            TypeSystemDefinition::Schema(schema) => {
                let name = |n: &Option<async_graphql::Positioned<async_graphql::Name>>| {
                    n.as_ref().map(|n| n.node.to_string())
                };
                described.roots = [
                    name(&schema.node.query),
                    name(&schema.node.mutation),
                    name(&schema.node.subscription),
                ];
            }
            TypeSystemDefinition::Directive(directive) => {
                let locations = directive
                    .node
                    .locations
                    .iter()
                    .map(|l| screaming(&format!("{:?}", l.node)))
                    .collect();
                described.directives.insert(
                    directive.node.name.node.to_string(),
                    (args(&directive.node.arguments), locations),
                );
            }
            TypeSystemDefinition::Type(ty) => {
                let mut shape = Shape::default();
                let fields = |fields: &[async_graphql::Positioned<
                    async_graphql::parser::types::FieldDefinition,
                >]| {
                    fields
                        .iter()
                        .map(|f| {
                            (
                                f.node.name.node.to_string(),
                                Field {
                                    ty: f.node.ty.node.to_string(),
                                    args: args(&f.node.arguments),
                                    deprecated: deprecated(&f.node.directives),
                                },
                            )
                        })
                        .collect()
                };
                let names = |names: &[async_graphql::Positioned<async_graphql::Name>]| {
                    names.iter().map(|n| n.node.to_string()).collect()
                };
                match &ty.node.kind {
                    TypeKind::Scalar => shape.kind = "SCALAR".into(),
                    TypeKind::Object(object) => {
                        shape.kind = "OBJECT".into();
                        shape.fields = fields(&object.fields);
                        shape.interfaces = names(&object.implements);
                    }
                    TypeKind::Interface(interface) => {
                        shape.kind = "INTERFACE".into();
                        shape.fields = fields(&interface.fields);
                        shape.interfaces = names(&interface.implements);
                    }
                    TypeKind::Union(union) => {
                        shape.kind = "UNION".into();
                        shape.members = names(&union.members);
                    }
                    TypeKind::Enum(enumeration) => {
                        shape.kind = "ENUM".into();
                        shape.values = enumeration
                            .values
                            .iter()
                            .map(|v| {
                                (
                                    v.node.value.node.to_string(),
                                    deprecated(&v.node.directives),
                                )
                            })
                            .collect();
                    }
                    TypeKind::InputObject(input) => {
                        shape.kind = "INPUT_OBJECT".into();
                        shape.fields = args(&input.fields)
                            .into_iter()
                            .map(|(name, arg)| {
                                let field = Field {
                                    ty: arg.ty,
                                    args: [(
                                        "default".to_owned(),
                                        Arg {
                                            ty: String::new(),
                                            default: arg.default,
                                        },
                                    )]
                                    .into(),
                                    deprecated: false,
                                };
                                (name, field)
                            })
                            .collect();
                    }
                }
                described.types.insert(ty.node.name.node.to_string(), shape);
            }
        }
    }
    described
}

/// A `TypeRef` of the introspection answer, as SDL writes it (`[String!]!`).
fn type_ref(ty: &Value) -> String {
    match ty["kind"].as_str() {
        Some("NON_NULL") => format!("{}!", type_ref(&ty["ofType"])),
        Some("LIST") => format!("[{}]", type_ref(&ty["ofType"])),
        _ => ty["name"].as_str().expect("a named type").to_owned(),
    }
}

fn list(value: &Value) -> impl Iterator<Item = &Value> {
    value.as_array().into_iter().flatten()
}

fn introspected_args(args: &Value) -> BTreeMap<String, Arg> {
    list(args)
        .map(|a| {
            (
                a["name"].as_str().unwrap().to_owned(),
                Arg {
                    ty: type_ref(&a["type"]),
                    default: a["defaultValue"].as_str().map(str::to_owned),
                },
            )
        })
        .collect()
}

/// The schema an introspection answer describes, built-in scalars and `__` types left out
/// as SDL leaves them out.
fn from_introspection(schema: &Value) -> Described {
    let root = |key: &str| schema[key]["name"].as_str().map(str::to_owned);
    let builtin = ["String", "Int", "Float", "Boolean", "ID"];
    let mut types = BTreeMap::new();
    for ty in list(&schema["types"]) {
        let name = ty["name"].as_str().unwrap();
        if name.starts_with("__") || builtin.contains(&name) {
            continue;
        }
        let names = |key: &str| {
            list(&ty[key])
                .map(|t| t["name"].as_str().unwrap().to_owned())
                .collect()
        };
        let mut fields: BTreeMap<String, Field> = list(&ty["fields"])
            .map(|f| {
                (
                    f["name"].as_str().unwrap().to_owned(),
                    Field {
                        ty: type_ref(&f["type"]),
                        args: introspected_args(&f["args"]),
                        deprecated: f["isDeprecated"] == json!(true),
                    },
                )
            })
            .collect();
        for (name, arg) in introspected_args(&ty["inputFields"]) {
            let field = Field {
                ty: arg.ty,
                args: [(
                    "default".to_owned(),
                    Arg {
                        ty: String::new(),
                        default: arg.default,
                    },
                )]
                .into(),
                deprecated: false,
            };
            fields.insert(name, field);
        }
        let shape = Shape {
            kind: ty["kind"].as_str().unwrap().to_owned(),
            fields,
            interfaces: names("interfaces"),
            members: if ty["kind"] == "UNION" {
                names("possibleTypes")
            } else {
                BTreeSet::new()
            },
            values: list(&ty["enumValues"])
                .map(|v| {
                    (
                        v["name"].as_str().unwrap().to_owned(),
                        v["isDeprecated"] == json!(true),
                    )
                })
                .collect(),
        };
        types.insert(name.to_owned(), shape);
    }
    let directives = list(&schema["directives"])
        .map(|d| {
            let locations = list(&d["locations"])
                .map(|l| l.as_str().unwrap().to_owned())
                .collect();
            (
                d["name"].as_str().unwrap().to_owned(),
                (introspected_args(&d["args"]), locations),
            )
        })
        .collect();
    Described {
        roots: [
            root("queryType"),
            root("mutationType"),
            root("subscriptionType"),
        ],
        types,
        directives,
    }
}

/// Asserts that `query`, sent as a client sends it on first contact (no token yet),
/// answers without errors and describes the committed schema; the answer's `__schema`.
async fn introspects_the_committed_schema(api: &Api, query: &str) -> Value {
    let body = api.post(None, query, Value::Null).await;
    assert!(body.get("errors").is_none(), "{body}");
    let schema = body["data"]["__schema"].clone();
    let mut introspected = from_introspection(&schema);
    let committed = from_sdl(SDL);
    // The directives every schema has; SDL may leave them out.
    for builtin in ["deprecated", "oneOf"] {
        if !committed.directives.contains_key(builtin) {
            introspected.directives.remove(builtin);
        }
    }
    assert_eq!(introspected.roots, committed.roots);
    let names = |d: &Described| d.types.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&introspected), names(&committed));
    for (name, shape) in &committed.types {
        assert_eq!(&introspected.types[name], shape, "type {name}");
    }
    assert_eq!(introspected.directives, committed.directives);
    schema
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standard_introspection_query_describes_the_committed_schema() {
    let fixture = Fixture::new(Kind::Sqlite).await.unwrap();
    let api = Api::start(&fixture).await;
    introspects_the_committed_schema(&api, DEFAULT).await;
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_variants_graphiql_and_graphql_js_send_describe_the_committed_schema() {
    let fixture = Fixture::new(Kind::Sqlite).await.unwrap();
    let api = Api::start(&fixture).await;
    // GraphiQL 3 with `inputValueDeprecation` and `schemaDescription` on.
    let schema = introspects_the_committed_schema(&api, GRAPHIQL).await;
    assert!(schema.as_object().unwrap().contains_key("description"));
    // graphql-js's `introspectionFromSchema`: also `specifiedByURL`, `isRepeatable`, `isOneOf`.
    let schema = introspects_the_committed_schema(&api, FULL).await;
    let scalar = list(&schema["types"])
        .find(|t| t["kind"] == "SCALAR")
        .unwrap();
    assert!(
        scalar.as_object().unwrap().contains_key("specifiedByURL"),
        "{scalar}"
    );
    let input = list(&schema["types"])
        .find(|t| t["kind"] == "INPUT_OBJECT")
        .unwrap();
    assert_eq!(input["isOneOf"], json!(false), "{input}");
    let directive = list(&schema["directives"]).next().unwrap();
    assert!(directive["isRepeatable"].is_boolean(), "{directive}");
    api.stop().await;
}

/// `{ requests { edges { node { … } } } }` style nesting, `depth` fields deep.
fn nested(depth: usize) -> String {
    let mut query = String::from("id");
    for _ in 1..depth {
        query = format!("a {{ {query} }}");
    }
    format!("{{ {query} }}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordinary_queries_keep_their_depth_and_complexity_limits() {
    let fixture = Fixture::new(Kind::Sqlite).await.unwrap();
    let api = Api::start(&fixture).await;
    let admin = token("u-lam", "運維中心", &["catalog_admin"]);

    // Too deep, even beside introspection.
    let (code, error) = api.code(Some(&admin), &nested(13), Value::Null).await;
    assert_eq!(code, "BAD_USER_INPUT");
    assert_eq!(error["message"], "Query is nested too deep.");
    let deep_beside_introspection =
        nested(13).replacen('{', "{ __schema { queryType { name } } ", 1);
    let (_, error) = api
        .code(Some(&admin), &deep_beside_introspection, Value::Null)
        .await;
    assert_eq!(error["message"], "Query is nested too deep.");

    // Too complex: 2001 fields (a type's name counts for nothing).
    let aliases = |n: usize| -> String {
        let fields: Vec<String> = (0..n).map(|i| format!("f{i}: position")).collect();
        fields.join(" ")
    };
    let wide = |n: usize| format!("{{ __typename {} }}", aliases(n));
    let (code, error) = api.code(Some(&admin), &wide(2_001), Value::Null).await;
    assert_eq!(code, "BAD_USER_INPUT");
    assert_eq!(error["message"], "Query is too complex.");
    let data = api.ok(&admin, &wide(2_000), Value::Null).await;
    assert!(data["f1999"].is_u64(), "{data}");

    // The introspection fields do not count towards the complexity of the rest.
    let beside = DEFAULT.replacen("__schema {", &format!("{} __schema {{", aliases(1_990)), 1);
    let body = api.post(Some(&admin), &beside, Value::Null).await;
    assert!(body.get("errors").is_none(), "{}", body["errors"]);
    assert!(body["data"]["f1989"].is_u64());

    // Introspection has limits of its own: lists nested four deep, or the schema many times.
    let lists =
        "{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }";
    let (code, error) = api.code(None, lists, Value::Null).await;
    assert_eq!(code, "BAD_USER_INPUT");
    assert!(
        error["message"].as_str().unwrap().contains("Introspection"),
        "{error}"
    );
    let copies: Vec<String> = (0..150)
        .map(|i| format!("s{i}: __schema {{ types {{ name kind description fields {{ name description }} }} }}"))
        .collect();
    let copies = format!("{{ {} }}", copies.join(" "));
    let (code, error) = api.code(None, &copies, Value::Null).await;
    assert_eq!(code, "BAD_USER_INPUT");
    assert!(
        error["message"].as_str().unwrap().contains("Introspection"),
        "{error}"
    );
    api.stop().await;
}
