//! Errors at the edge: every error carries `extensions.code`, mapped once, here.

use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextRequest, NextSubscribe,
    NextValidation,
};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{
    Error, ErrorExtensions, Response, ServerError, ServerResult, ValidationResult, Variables,
};
use futures::stream::{BoxStream, StreamExt};
use opsledger_domain::automation::baseline::BaselineError;
use opsledger_domain::automation::library::LibraryError;
use opsledger_domain::changes::change::ChangeError;
use opsledger_domain::changes::freeze::FreezeError;
use opsledger_domain::notify::contact::ContactError;
use opsledger_domain::operations::calendar::CalendarError;
use opsledger_domain::operations::desk::TicketError;
use opsledger_domain::operations::emergency::{EmergencyPlanError, PlanRunError};
use opsledger_domain::operations::incident::IncidentError;
use opsledger_domain::operations::inspection::{InspectionError, InspectionTemplateError};
use opsledger_domain::operations::knowledge::ArticleError;
use opsledger_domain::operations::sla::SlaError;
use opsledger_domain::requests::catalog::CatalogError;
use opsledger_domain::requests::delegation::DelegationError;
use opsledger_domain::requests::request::RequestError;
use opsledger_domain::resources::cmdb::CiError;
use opsledger_domain::resources::ipam::SubnetError;
use opsledger_domain::resources::pool::PoolError;
use opsledger_domain::resources::quota::QuotaError;

use crate::Failure;

/// The error codes of the API (DESIGN.md, "GraphQL conventions").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    Unauthenticated,
    Forbidden,
    BadUserInput,
    NotFound,
    Conflict,
    Internal,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Unauthenticated => "UNAUTHENTICATED",
            Code::Forbidden => "FORBIDDEN",
            Code::BadUserInput => "BAD_USER_INPUT",
            Code::NotFound => "NOT_FOUND",
            Code::Conflict => "CONFLICT",
            Code::Internal => "INTERNAL",
        }
    }
}

/// An error with its code (and, for bad input, the field).
pub fn error(code: Code, message: impl std::fmt::Display) -> Error {
    Error::new(message.to_string()).extend_with(|_, e| e.set("code", code.as_str()))
}

/// Bad input, naming the field.
pub fn bad_input(field: &str, problem: impl std::fmt::Display) -> Error {
    let field = field.to_owned();
    Error::new(format!("{field}: {problem}")).extend_with(move |_, e| {
        e.set("code", Code::BadUserInput.as_str());
        e.set("field", field.as_str());
    })
}

/// Each domain error's code.
pub trait Coded: std::fmt::Display {
    fn code(&self) -> Code;

    /// The field a `BAD_USER_INPUT` error names.
    fn field(&self) -> Option<&str> {
        None
    }
}

impl Coded for CatalogError {
    fn code(&self) -> Code {
        match self {
            CatalogError::NotCatalogAdmin => Code::Forbidden,
            CatalogError::AlreadyExists | CatalogError::Retired => Code::Conflict,
            CatalogError::NotFound => Code::NotFound,
            CatalogError::Invalid(_) => Code::BadUserInput,
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            CatalogError::Invalid(f) => Some(&f.field),
            _ => None,
        }
    }
}

impl Coded for RequestError {
    fn code(&self) -> Code {
        use RequestError as E;
        match self {
            E::NotFound => Code::NotFound,
            E::Invalid(_) => Code::BadUserInput,
            E::NotOffered
            | E::SelfApproval
            | E::AlreadyDecidedAStep(..)
            | E::NotEligible(_)
            | E::DelegationNotValid(_)
            | E::NotRequester
            | E::NotOperator => Code::Forbidden,
            E::AlreadySubmitted
            | E::ItemRetired
            | E::NotPendingApproval(_)
            | E::NotTheOpenStep { .. }
            | E::CannotCancel(_)
            | E::NotApproved(_)
            | E::EscalationNotDue(_)
            | E::OverQuota(_) => Code::Conflict,
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            RequestError::Invalid(f) => Some(&f.field),
            _ => None,
        }
    }
}

impl Coded for DelegationError {
    fn code(&self) -> Code {
        match self {
            DelegationError::Invalid(_) => Code::BadUserInput,
            DelegationError::AlreadyGranted | DelegationError::Revoked => Code::Conflict,
            DelegationError::NotFound => Code::NotFound,
            DelegationError::NotDelegator | DelegationError::NothingToDelegate => Code::Forbidden,
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            DelegationError::Invalid(f) => Some(&f.field),
            _ => None,
        }
    }
}

impl Coded for PoolError {
    fn code(&self) -> Code {
        match self {
            PoolError::Invalid(_) => Code::BadUserInput,
            PoolError::NotOperator => Code::Forbidden,
            PoolError::NotFound => Code::NotFound,
            PoolError::AlreadyExists
            | PoolError::InsufficientCapacity { .. }
            | PoolError::InsufficientUnits { .. }
            | PoolError::AlreadyAllocated(_)
            | PoolError::NoSuchAllocation(_)
            | PoolError::BelowAllocated { .. } => Code::Conflict,
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            PoolError::Invalid(f) => Some(&f.field),
            _ => None,
        }
    }
}

impl Coded for SubnetError {
    fn code(&self) -> Code {
        match self {
            SubnetError::Invalid(_) => Code::BadUserInput,
            SubnetError::NotOperator => Code::Forbidden,
            SubnetError::NotFound => Code::NotFound,
            SubnetError::AlreadyExists
            | SubnetError::Exhausted(_)
            | SubnetError::Taken { .. }
            | SubnetError::NothingHeld(_)
            | SubnetError::AlreadyHolds { .. } => Code::Conflict,
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            SubnetError::Invalid(f) => Some(&f.field),
            _ => None,
        }
    }
}

impl Coded for QuotaError {
    fn code(&self) -> Code {
        match self {
            QuotaError::Invalid(_) => Code::BadUserInput,
            QuotaError::NotPermitted => Code::Forbidden,
            QuotaError::Exceeded(_)
            | QuotaError::AlreadyConsumed(_)
            | QuotaError::NotConsumed(_) => Code::Conflict,
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            QuotaError::Invalid(f) => Some(&f.field),
            _ => None,
        }
    }
}

impl Coded for CiError {
    fn code(&self) -> Code {
        match self {
            CiError::Invalid(_) => Code::BadUserInput,
            CiError::NotOperator | CiError::NotOwner => Code::Forbidden,
            CiError::NotFound | CiError::UnknownBackup(_) => Code::NotFound,
            CiError::AlreadyExists
            | CiError::Retired
            | CiError::AlreadyInStatus(_)
            | CiError::NoLease
            | CiError::AlreadyNoticed(_)
            | CiError::NotRunning
            | CiError::BackupExists(_)
            | CiError::Deleted => Code::Conflict,
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            CiError::Invalid(f) => Some(&f.field),
            _ => None,
        }
    }
}

impl Coded for crate::ResourceError {
    fn code(&self) -> Code {
        match self {
            crate::ResourceError::Pool(e) => e.code(),
            crate::ResourceError::Subnet(e) => e.code(),
            crate::ResourceError::Quota(e) => e.code(),
            crate::ResourceError::Ci(e) => e.code(),
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            crate::ResourceError::Pool(e) => e.field(),
            crate::ResourceError::Subnet(e) => e.field(),
            crate::ResourceError::Quota(e) => e.field(),
            crate::ResourceError::Ci(e) => e.field(),
        }
    }
}

impl<E: Coded> From<Failure<E>> for Error {
    fn from(failure: Failure<E>) -> Self {
        match failure {
            Failure::Domain(e) => match e.field() {
                Some(field) => bad_input(
                    field,
                    e.to_string().trim_start_matches(&format!("{field}: ")),
                ),
                None => error(e.code(), &e),
            },
            Failure::Conflict(m) => error(Code::Conflict, m),
            Failure::Internal(m) => error(Code::Internal, m),
        }
    }
}

/// `Coded` for an error enum with an `Invalid(InvalidField)` variant (`BAD_USER_INPUT`,
/// naming the field), the variants that are `FORBIDDEN` and `NOT_FOUND`, the rest
/// `CONFLICT` (a state that forbids the command).
macro_rules! coded {
    ($error:ty, forbidden: [$($f:pat),*], not_found: [$($n:pat),*]) => {
        impl Coded for $error {
            fn code(&self) -> Code {
                #[allow(unreachable_patterns)]
                match self {
                    Self::Invalid(_) => Code::BadUserInput,
                    $($f => Code::Forbidden,)*
                    $($n => Code::NotFound,)*
                    _ => Code::Conflict,
                }
            }

            fn field(&self) -> Option<&str> {
                match self {
                    Self::Invalid(f) => Some(&f.field),
                    _ => None,
                }
            }
        }
    };
}

coded!(IncidentError,
    forbidden: [IncidentError::NotPermitted, IncidentError::NotScheduler],
    not_found: [IncidentError::NotFound]);
coded!(TicketError, forbidden: [TicketError::NotPermitted(_)], not_found: [TicketError::NotFound]);
coded!(CalendarError, forbidden: [CalendarError::NotPermitted], not_found: []);
coded!(SlaError, forbidden: [SlaError::NotPermitted], not_found: []);
coded!(ArticleError, forbidden: [ArticleError::NotPermitted], not_found: [ArticleError::NotPublished]);
coded!(ChangeError,
    forbidden: [ChangeError::NotPermitted { .. }, ChangeError::OwnChange, ChangeError::OverrideNotAllowed(_)],
    not_found: [ChangeError::NotFound]);
coded!(FreezeError, forbidden: [FreezeError::NotPermitted], not_found: [FreezeError::NotFound]);
coded!(InspectionTemplateError,
    forbidden: [InspectionTemplateError::NotOperator],
    not_found: [InspectionTemplateError::NotFound]);
coded!(InspectionError,
    forbidden: [InspectionError::NotOperator, InspectionError::NotInspector],
    not_found: [InspectionError::NotScheduled]);
coded!(EmergencyPlanError,
    forbidden: [EmergencyPlanError::NotPermitted],
    not_found: [EmergencyPlanError::NotFound]);
coded!(BaselineError,
    forbidden: [BaselineError::NotPermitted],
    not_found: [BaselineError::NotFound]);
coded!(PlanRunError,
    forbidden: [
        PlanRunError::NotPermitted,
        PlanRunError::NotLead,
        PlanRunError::NotStepRole { .. },
        PlanRunError::RequiredStep { .. }
    ],
    not_found: [PlanRunError::NotStarted]);
coded!(LibraryError,
    forbidden: [LibraryError::NotPermitted],
    not_found: [LibraryError::NotFound, LibraryError::NoSuchVersion(_)]);

coded!(opsledger_domain::automation::workflow::WorkflowError,
    forbidden: [opsledger_domain::automation::workflow::WorkflowError::NotPermitted],
    not_found: [opsledger_domain::automation::workflow::WorkflowError::NotFound]);
coded!(opsledger_domain::automation::provisioning::ProvisioningError,
    forbidden: [opsledger_domain::automation::provisioning::ProvisioningError::NotPermitted],
    not_found: [opsledger_domain::automation::provisioning::ProvisioningError::NotFound]);

coded!(ContactError,
    forbidden: [ContactError::NotYours, ContactError::NotAPerson],
    not_found: [ContactError::NotSet]);

impl Coded for crate::OperationError {
    fn code(&self) -> Code {
        use crate::OperationError as O;
        match self {
            O::Incident(e) => e.code(),
            O::Ticket(e) => e.code(),
            O::Calendar(e) => e.code(),
            O::Sla(e) => e.code(),
            O::Article(e) => e.code(),
            O::Change(e) => e.code(),
            O::Freeze(e) => e.code(),
            O::InspectionTemplate(e) => e.code(),
            O::Inspection(e) => e.code(),
            O::EmergencyPlan(e) => e.code(),
            O::PlanRun(e) => e.code(),
            O::Workflow(e) => e.code(),
            O::Provisioning(e) => e.code(),
            O::LibraryItem(e) => e.code(),
            O::Contact(e) => e.code(),
            O::Baseline(e) => e.code(),
        }
    }

    fn field(&self) -> Option<&str> {
        use crate::OperationError as O;
        match self {
            O::Incident(e) => e.field(),
            O::Ticket(e) => e.field(),
            O::Calendar(e) => e.field(),
            O::Sla(e) => e.field(),
            O::Article(e) => e.field(),
            O::Change(e) => e.field(),
            O::Freeze(e) => e.field(),
            O::InspectionTemplate(e) => e.field(),
            O::Inspection(e) => e.field(),
            O::EmergencyPlan(e) => e.field(),
            O::PlanRun(e) => e.field(),
            O::Workflow(e) => e.field(),
            O::Provisioning(e) => e.field(),
            O::LibraryItem(e) => e.field(),
            O::Contact(e) => e.field(),
            O::Baseline(e) => e.field(),
        }
    }
}

/// A driver's failure is `INTERNAL`: nothing the client sent was wrong, and the CI is as it
/// was; a freeze is `CONFLICT`, naming it.
impl Coded for crate::VmError {
    fn code(&self) -> Code {
        use crate::VmError as V;
        match self {
            V::Ci(e) => e.code(),
            V::Frozen(_) => Code::Conflict,
            V::Driver { .. } => Code::Internal,
            V::Resource(e) => e.code(),
            V::Baseline(e) => e.code(),
        }
    }

    fn field(&self) -> Option<&str> {
        use crate::VmError as V;
        match self {
            V::Ci(e) => e.field(),
            V::Resource(e) => e.field(),
            V::Baseline(e) => e.field(),
            V::Frozen(_) | V::Driver { .. } => None,
        }
    }
}

/// Gives every error a client sees a code, as Apollo names them: async-graphql's own
/// refusals carry none. A query that does not parse is `GRAPHQL_PARSE_FAILED`; one that
/// breaks the schema's rules (an unknown field, a wrong type, a missing argument, the
/// depth and complexity limits, an unknown operation) `GRAPHQL_VALIDATION_FAILED`; a value
/// refused while a field is resolved (it has a path) `BAD_USER_INPUT`.
pub struct Codes;

/// The code of a parse error.
pub const PARSE_FAILED: &str = "GRAPHQL_PARSE_FAILED";
/// The code of a query the schema's rules refuse.
pub const VALIDATION_FAILED: &str = "GRAPHQL_VALIDATION_FAILED";

fn has_code(error: &ServerError) -> bool {
    error
        .extensions
        .as_ref()
        .is_some_and(|e| e.get("code").is_some())
}

fn with_code(mut error: ServerError, code: &str) -> ServerError {
    if !has_code(&error) {
        error
            .extensions
            .get_or_insert_with(Default::default)
            .set("code", code);
    }
    error
}

fn coded_response(mut response: Response) -> Response {
    response.errors = std::mem::take(&mut response.errors)
        .into_iter()
        .map(|e| {
            let code = if e.path.is_empty() {
                VALIDATION_FAILED
            } else {
                Code::BadUserInput.as_str()
            };
            with_code(e, code)
        })
        .collect();
    response
}

impl ExtensionFactory for Codes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Codes)
    }
}

#[async_trait::async_trait]
impl Extension for Codes {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        coded_response(next.run(ctx).await)
    }

    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        next.run(ctx, stream).map(coded_response).boxed()
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        next.run(ctx, query, variables)
            .await
            .map_err(|e| with_code(e, PARSE_FAILED))
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        next.run(ctx).await.map_err(|errors| {
            errors
                .into_iter()
                .map(|e| with_code(e, VALIDATION_FAILED))
                .collect()
        })
    }
}
