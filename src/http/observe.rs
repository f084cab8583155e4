//! The GraphQL edge's last line of defence and its instruments: an async-graphql extension
//! that turns a panic anywhere in a request into an `INTERNAL` error carrying an id that is
//! logged (never a dropped connection), names the operation on the request's span, and
//! counts every operation with its outcome and time in [`crate::metrics`].

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextPrepareRequest, NextRequest,
    NextResolve, NextSubscribe, ResolveInfo,
};
use async_graphql::{Request, Response, ServerError, ServerResult, Value};
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};

use crate::metrics::{metrics, operation_label, Open};

/// The extension's factory, added to the schema by the server.
pub struct Observe;

impl ExtensionFactory for Observe {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Observed::default())
    }
}

/// One request's view: the operation's name as the client sent it, then as executed.
#[derive(Default)]
struct Observed {
    operation: Mutex<Option<String>>,
}

impl Observed {
    fn name(&self, name: Option<&str>) {
        if let (Some(name), Ok(mut kept)) = (name, self.operation.lock()) {
            *kept = Some(name.to_owned());
        }
    }

    fn operation(&self) -> Option<String> {
        self.operation.lock().ok().and_then(|n| n.clone())
    }
}

/// The text of a panic's payload.
fn panic_text(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic without a message")
}

/// The error a client gets for a panic: the kit's internal error, `INTERNAL` with an id,
/// the same id that is logged with where it panicked and the panic's text (which the
/// client does not see).
fn panicked(panic: &(dyn Any + Send), at: &str) -> ServerError {
    metrics().graphql_panics.inc();
    let error = opsledger_schema::internal(format_args!("{at} panicked: {}", panic_text(panic)));
    let mut answer = ServerError::new(error.message, None);
    answer.extensions = error.extensions;
    answer
}

/// The code a response is counted under: `ok`, or its first error's code.
fn outcome(response: &Response) -> Option<String> {
    let error = response.errors.first()?;
    let code = error
        .extensions
        .as_ref()
        .and_then(|e| e.get("code"))
        .and_then(|c| match c {
            Value::String(s) => Some(s.clone()),
            _ => None,
        });
    Some(code.unwrap_or_else(|| "UNCODED".to_owned()))
}

#[async_trait::async_trait]
impl Extension for Observed {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let started = Instant::now();
        let response = match AssertUnwindSafe(next.run(ctx)).catch_unwind().await {
            Ok(response) => response,
            Err(panic) => Response::from_errors(vec![panicked(panic.as_ref(), "request")]),
        };
        let operation = operation_label(self.operation().as_deref());
        metrics().graphql(&operation, outcome(&response).as_deref(), started.elapsed());
        response
    }

    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        self.name(request.operation_name.as_deref());
        next.run(ctx, request).await
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        self.name(operation_name);
        if let Some(name) = operation_name {
            tracing::Span::current().record("operation", name);
        }
        next.run(ctx, operation_name).await
    }

    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        let path = info.path_node.to_string();
        match AssertUnwindSafe(next.run(ctx, info)).catch_unwind().await {
            Ok(resolved) => resolved,
            Err(panic) => Err(panicked(panic.as_ref(), &path)),
        }
    }

    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        let open = Open::subscription();
        AssertUnwindSafe(next.run(ctx, stream))
            .catch_unwind()
            .scan(false, |ended, item| {
                if *ended {
                    return futures::future::ready(None);
                }
                let item = match item {
                    Ok(response) => response,
                    Err(panic) => {
                        *ended = true;
                        Response::from_errors(vec![panicked(panic.as_ref(), "subscription")])
                    }
                };
                futures::future::ready(Some(item))
            })
            .map(move |response| {
                let _open = &open;
                response
            })
            .boxed()
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::{EmptyMutation, EmptySubscription, Object, Schema};

    use super::Observe;

    struct Query;

    #[Object]
    impl Query {
        async fn fine(&self) -> i32 {
            1
        }

        async fn broken(&self, at: Option<usize>) -> i32 {
            let values: Vec<i32> = Vec::new();
            values[at.unwrap_or(1)]
        }
    }

    #[tokio::test]
    async fn a_panicking_resolver_answers_internal_with_a_logged_id() {
        let schema = Schema::build(Query, EmptyMutation, EmptySubscription)
            .extension(Observe)
            .finish();
        let answer = schema.execute("{ fine broken }").await;
        let error = &answer.errors[0];
        let extensions = error.extensions.as_ref().unwrap();
        assert_eq!(
            extensions.get("code"),
            Some(&async_graphql::Value::from("INTERNAL"))
        );
        let Some(async_graphql::Value::String(id)) = extensions.get("errorId") else {
            panic!("no error id: {error:?}");
        };
        assert!(error.message.contains(id.as_str()), "{}", error.message);
        assert!(
            !error.message.contains("index out of bounds"),
            "{}",
            error.message
        );
        // The fields that did not panic are still answered.
        assert_eq!(
            answer.data.into_json().unwrap()["fine"],
            serde_json::json!(1)
        );
    }
}
