//! The HTTP edge: the server and its routes ([`server`]), GraphiQL's page and files
//! ([`graphiql`]), the GraphQL extension that names, times and guards every operation
//! ([`observe`]), and bearer tokens ([`auth`]). What it serves lives elsewhere: the read
//! models and commands behind [`crate::app::App`], the registry of [`crate::metrics`],
//! the files of [`crate::store::content`].

pub mod auth;
pub mod graphiql;
pub mod observe;
pub mod server;
