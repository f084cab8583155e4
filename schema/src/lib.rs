//! OpsLedger's GraphQL schema: types and resolvers over the domain and the projections.
//!
//! It knows no database: it depends on `opsledger-domain`, `opsledger-projections` and on
//! small traits (a command bus, read access to projections) that the binary implements.
//! The first types arrive with the service catalogue and request flow.
