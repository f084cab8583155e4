//! Errors at the edge: every error carries `extensions.code`, mapped once, here. A domain
//! refusal's class ([`Refusal`]) gives its code; an internal failure is answered with an
//! id and logged with its cause under that id ([`internal`]).

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
use opsledger_domain::kernel::refusal::{Refusal, Refuse};
use uuid::Uuid;

use crate::CommandError;

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

impl From<Refusal<'_>> for Code {
    fn from(refusal: Refusal<'_>) -> Self {
        match refusal {
            Refusal::Forbidden => Code::Forbidden,
            Refusal::NotFound => Code::NotFound,
            Refusal::Invalid { .. } => Code::BadUserInput,
            Refusal::Conflict => Code::Conflict,
        }
    }
}

/// An error with its code, the message as given. Not for `INTERNAL`: see [`internal`].
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

/// Logs an internal failure under a fresh id and returns the id: the one place an
/// internal cause is written down. The GraphQL edge answers with [`internal`]; the plain
/// HTTP routes and the panic guard use the id the same way.
pub fn log_internal(cause: &dyn std::fmt::Display) -> Uuid {
    let id = Uuid::now_v7();
    tracing::error!(error_id = %id, error = %cause, "internal error");
    id
}

/// What a client is told of an internal failure: the id it is logged under, no more.
pub fn internal_message(id: Uuid) -> String {
    format!("internal error (id {id})")
}

/// An internal failure as the client sees it: `INTERNAL`, the message
/// `internal error (id <uuid>)` and `extensions.errorId`, never the cause, which is
/// logged under the id ([`log_internal`]).
pub fn internal(cause: impl std::fmt::Display) -> Error {
    let id = log_internal(&cause);
    Error::new(internal_message(id)).extend_with(move |_, e| {
        e.set("code", Code::Internal.as_str());
        e.set("errorId", id.to_string());
    })
}

/// Each error's code (and, for bad input, the field).
pub trait Coded: std::fmt::Display {
    fn code(&self) -> Code;

    /// The field a `BAD_USER_INPUT` error names.
    fn field(&self) -> Option<&str> {
        None
    }
}

/// A domain refusal's code is its class's.
impl<T: Refuse> Coded for T {
    fn code(&self) -> Code {
        self.refusal().into()
    }

    fn field(&self) -> Option<&str> {
        Refuse::field(self)
    }
}

/// A driver's failure is `INTERNAL`, with its message (see [`crate::VmError::Driver`]):
/// nothing the client sent was wrong, and the CI is as it was; a freeze is `CONFLICT`,
/// naming it.
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
            V::Ci(e) => Refuse::field(e),
            V::Resource(e) => Refuse::field(e),
            V::Baseline(e) => Refuse::field(e),
            V::Frozen(_) | V::Driver { .. } => None,
        }
    }
}

/// A domain error as the client sees it: bad input names the field, the rest carry their
/// code and the refusal's text.
pub fn refused(e: &impl Coded) -> Error {
    match e.field() {
        Some(field) => bad_input(
            field,
            e.to_string().trim_start_matches(&format!("{field}: ")),
        ),
        None => error(e.code(), e),
    }
}

impl<E: Coded> From<CommandError<E>> for Error {
    fn from(failure: CommandError<E>) -> Self {
        match failure {
            CommandError::Domain(e) => refused(&e),
            CommandError::Conflict(m) => error(Code::Conflict, m),
            CommandError::Internal(cause) => internal(cause),
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

#[cfg(test)]
mod tests {
    //! Every variant of every domain error, with the code the API answers it with: the
    //! promise the variant's doc comment states (its class, after the text).

    use std::net::Ipv4Addr;

    use async_graphql::Value;
    use chrono::{DateTime, Utc};
    use opsledger_domain::automation::baseline::BaselineError;
    use opsledger_domain::automation::library::LibraryError;
    use opsledger_domain::automation::provisioning::{ProvisioningError, RunStatus};
    use opsledger_domain::automation::workflow::WorkflowError;
    use opsledger_domain::changes::change::{ChangeError, ChangeKind, ChangeStatus};
    use opsledger_domain::changes::freeze::{FreezeError, Frozen};
    use opsledger_domain::kernel::aggregate::Role;
    use opsledger_domain::notify::contact::ContactError;
    use opsledger_domain::operations::calendar::CalendarError;
    use opsledger_domain::operations::desk::TicketError;
    use opsledger_domain::operations::emergency::{EmergencyPlanError, PlanRunError};
    use opsledger_domain::operations::incident::{Duty, IncidentError};
    use opsledger_domain::operations::inspection::{InspectionError, InspectionTemplateError};
    use opsledger_domain::operations::knowledge::ArticleError;
    use opsledger_domain::operations::sla::SlaError;
    use opsledger_domain::requests::catalog::{CatalogError, InvalidField};
    use opsledger_domain::requests::delegation::DelegationError;
    use opsledger_domain::requests::request::{RequestError, RequestStatus};
    use opsledger_domain::resources::cmdb::{CiError, CiStatus};
    use opsledger_domain::resources::ipam::SubnetError;
    use opsledger_domain::resources::pool::PoolError;
    use opsledger_domain::resources::quota::{QuotaError, QuotaExceeded};
    use uuid::Uuid;

    use super::{refused, Coded};
    use crate::{CommandError, ResourceError, VmError};

    fn bad() -> InvalidField {
        InvalidField {
            field: "title".to_owned(),
            problem: "must not be empty".to_owned(),
        }
    }

    fn exceeded() -> QuotaExceeded {
        QuotaExceeded {
            scope: "x".to_owned(),
            dimension: "x",
            wanted: 2,
            left: 1,
            limit: 1,
        }
    }

    fn frozen() -> Frozen {
        Frozen {
            freeze_id: Uuid::nil(),
            name: "x".to_owned(),
            until: DateTime::<Utc>::UNIX_EPOCH,
        }
    }

    fn extension(error: &async_graphql::Error, key: &str) -> Option<Value> {
        let Some(extensions) = &error.extensions else {
            return None;
        };
        extensions.get(key).cloned()
    }

    /// Each error answers its code; bad input, and only bad input, names the field.
    fn table<E: Coded + std::fmt::Debug>(rows: Vec<(E, &str)>) {
        for (e, code) in rows {
            assert_eq!(e.code().as_str(), code, "{e:?}");
            let answer = refused(&e);
            assert_eq!(extension(&answer, "code"), Some(Value::from(code)), "{e:?}");
            if code == "BAD_USER_INPUT" {
                assert_eq!(e.field(), Some("title"), "{e:?}");
                assert_eq!(extension(&answer, "field"), Some(Value::from("title")));
                assert!(answer.message.starts_with("title: "), "{}", answer.message);
            } else {
                assert_eq!(e.field(), None, "{e:?}");
                assert_eq!(extension(&answer, "field"), None, "{e:?}");
            }
        }
    }

    #[test]
    fn every_catalog_error_has_the_code_the_api_promises() {
        use CatalogError as E;
        table(vec![
            (E::NotCatalogAdmin, "FORBIDDEN"),
            (E::AlreadyExists, "CONFLICT"),
            (E::NotFound, "NOT_FOUND"),
            (E::Retired, "CONFLICT"),
            (E::Invalid(bad()), "BAD_USER_INPUT"),
        ]);
    }

    #[test]
    fn every_request_error_has_the_code_the_api_promises() {
        use RequestError as E;
        table(vec![
            (E::AlreadySubmitted, "CONFLICT"),
            (E::NotFound, "NOT_FOUND"),
            (E::NotOffered, "FORBIDDEN"),
            (E::ItemRetired, "CONFLICT"),
            (E::Invalid(bad()), "BAD_USER_INPUT"),
            (E::NotPendingApproval(RequestStatus::default()), "CONFLICT"),
            (E::NotTheOpenStep { given: 1, open: 1 }, "CONFLICT"),
            (E::SelfApproval, "FORBIDDEN"),
            (E::AlreadyDecidedAStep("x".to_owned(), 1), "FORBIDDEN"),
            (E::NotEligible("x".to_owned()), "FORBIDDEN"),
            (E::DelegationNotValid("x".to_owned()), "FORBIDDEN"),
            (E::NotRequester, "FORBIDDEN"),
            (E::CannotCancel(RequestStatus::default()), "CONFLICT"),
            (E::NotOperator, "FORBIDDEN"),
            (E::NotApproved(RequestStatus::default()), "CONFLICT"),
            (E::EscalationNotDue(1), "CONFLICT"),
            (E::OverQuota("x".to_owned()), "CONFLICT"),
        ]);
    }

    #[test]
    fn every_delegation_error_has_the_code_the_api_promises() {
        use DelegationError as E;
        table(vec![
            (E::Invalid(bad()), "BAD_USER_INPUT"),
            (E::AlreadyGranted, "CONFLICT"),
            (E::NotFound, "NOT_FOUND"),
            (E::Revoked, "CONFLICT"),
            (E::NotDelegator, "FORBIDDEN"),
            (E::NothingToDelegate, "FORBIDDEN"),
        ]);
    }

    #[test]
    fn every_pool_error_has_the_code_the_api_promises() {
        use PoolError as E;
        table(vec![
            (E::Invalid(bad()), "BAD_USER_INPUT"),
            (E::NotOperator, "FORBIDDEN"),
            (E::AlreadyExists, "CONFLICT"),
            (E::NotFound, "NOT_FOUND"),
            (
                E::InsufficientCapacity {
                    dimension: "x",
                    wanted: 1,
                    free: 1,
                },
                "CONFLICT",
            ),
            (
                E::InsufficientUnits {
                    unit: "x".to_owned(),
                    wanted: 1,
                    free: 1,
                },
                "CONFLICT",
            ),
            (E::AlreadyAllocated(Uuid::nil()), "CONFLICT"),
            (E::NoSuchAllocation(Uuid::nil()), "CONFLICT"),
            (
                E::BelowAllocated {
                    dimension: "x",
                    allocated: 1,
                    limit: 1,
                },
                "CONFLICT",
            ),
        ]);
    }

    #[test]
    fn every_subnet_error_has_the_code_the_api_promises() {
        use SubnetError as E;
        table(vec![
            (E::Invalid(bad()), "BAD_USER_INPUT"),
            (E::NotOperator, "FORBIDDEN"),
            (E::AlreadyExists, "CONFLICT"),
            (E::NotFound, "NOT_FOUND"),
            (E::Exhausted("x".to_owned()), "CONFLICT"),
            (
                E::Taken {
                    address: Ipv4Addr::LOCALHOST,
                    ci_id: Uuid::nil(),
                },
                "CONFLICT",
            ),
            (E::NothingHeld(Uuid::nil()), "CONFLICT"),
            (
                E::AlreadyHolds {
                    ci_id: Uuid::nil(),
                    address: Ipv4Addr::LOCALHOST,
                },
                "CONFLICT",
            ),
        ]);
    }

    #[test]
    fn every_quota_error_has_the_code_the_api_promises() {
        use QuotaError as E;
        table(vec![
            (E::Invalid(bad()), "BAD_USER_INPUT"),
            (E::NotPermitted, "FORBIDDEN"),
            (E::Exceeded(exceeded()), "CONFLICT"),
            (E::AlreadyConsumed(Uuid::nil()), "CONFLICT"),
            (E::NotConsumed(Uuid::nil()), "CONFLICT"),
        ]);
    }

    #[test]
    fn every_ci_error_has_the_code_the_api_promises() {
        use CiError as E;
        table(vec![
            (E::Invalid(bad()), "BAD_USER_INPUT"),
            (E::NotOperator, "FORBIDDEN"),
            (E::AlreadyExists, "CONFLICT"),
            (E::NotFound, "NOT_FOUND"),
            (E::Retired, "CONFLICT"),
            (E::AlreadyInStatus(CiStatus::default()), "CONFLICT"),
            (E::NoLease, "CONFLICT"),
            (E::AlreadyNoticed(1), "CONFLICT"),
            (E::NotOwner, "FORBIDDEN"),
            (E::NotRunning, "CONFLICT"),
            (E::UnknownBackup(Uuid::nil()), "NOT_FOUND"),
            (E::BackupExists(Uuid::nil()), "CONFLICT"),
            (E::Deleted, "CONFLICT"),
        ]);
    }

    #[test]
    fn every_incident_error_has_the_code_the_api_promises() {
        use IncidentError as E;
        table(vec![
            (E::Invalid(bad()), "BAD_USER_INPUT"),
            (E::NotPermitted, "FORBIDDEN"),
            (E::NotScheduler, "FORBIDDEN"),
            (E::AlreadyOpened, "CONFLICT"),
            (E::NotFound, "NOT_FOUND"),
            (E::Closed, "CONFLICT"),
            (E::Resolved, "CONFLICT"),
            (E::NotResolved, "CONFLICT"),
            (E::AlreadyAcknowledged, "CONFLICT"),
            (E::AlreadyPaused, "CONFLICT"),
            (E::NotPaused, "CONFLICT"),
            (E::AlreadyRecorded("x", "x"), "CONFLICT"),
            (E::SameLevel(1), "CONFLICT"),
            (
                E::NoSuchDuty(Duty::ReportToOperationsManager, 1),
                "CONFLICT",
            ),
            (
                E::DutyAlreadyDone(Duty::ReportToOperationsManager),
                "CONFLICT",
            ),
            (E::AlreadyLinked, "CONFLICT"),
            (E::Unchanged, "CONFLICT"),
        ]);
    }

    #[test]
    fn every_ticket_error_has_the_code_the_api_promises() {
        use TicketError as E;
        table(vec![
            (E::Invalid(bad()), "BAD_USER_INPUT"),
            (E::NotPermitted("x"), "FORBIDDEN"),
            (E::AlreadyRecorded, "CONFLICT"),
            (E::NotFound, "NOT_FOUND"),
            (E::Closed, "CONFLICT"),
            (E::AwaitingTerms, "CONFLICT"),
            (E::NoTermsToConfirm, "CONFLICT"),
            (E::WorkOrderOpen(Uuid::nil()), "CONFLICT"),
            (E::NoOpenWorkOrder, "CONFLICT"),
            (E::AlreadyAccepted, "CONFLICT"),
            (E::NotHandedBack, "CONFLICT"),
            (E::AlreadyLinked, "CONFLICT"),
        ]);
    }

    #[test]
    fn every_calendar_error_has_the_code_the_api_promises() {
        use CalendarError as E;
        table(vec![
            (E::Invalid(bad()), "BAD_USER_INPUT"),
            (E::NotPermitted, "FORBIDDEN"),
            (E::Unchanged, "CONFLICT"),
        ]);
    }

    #[test]
    fn every_sla_error_has_the_code_the_api_promises() {
        use SlaError as E;
        table(vec![
            (E::Invalid(bad()), "BAD_USER_INPUT"),
            (E::NotPermitted, "FORBIDDEN"),
            (E::Unchanged, "CONFLICT"),
            (E::OtherService("x".to_owned()), "CONFLICT"),
        ]);
    }

    #[test]
    fn every_article_error_has_the_code_the_api_promises() {
        use ArticleError as E;
        table(vec![
            (E::Invalid(bad()), "BAD_USER_INPUT"),
            (E::NotPermitted, "FORBIDDEN"),
            (E::AlreadyPublished, "CONFLICT"),
            (E::NotPublished, "NOT_FOUND"),
            (E::Retired, "CONFLICT"),
            (E::Unchanged, "CONFLICT"),
        ]);
    }

    #[test]
    fn every_change_error_has_the_code_the_api_promises() {
        use ChangeError as E;
        table(vec![
            (E::Invalid(bad()), "BAD_USER_INPUT"),
            (E::AlreadyRaised, "CONFLICT"),
            (E::NotFound, "NOT_FOUND"),
            (
                E::NotPermitted {
                    who: "x",
                    action: "x",
                },
                "FORBIDDEN",
            ),
            (E::Ended(ChangeStatus::default()), "CONFLICT"),
            (E::OwnChange, "FORBIDDEN"),
            (E::NotChargeable, "CONFLICT"),
            (E::TermsAlreadyConfirmed, "CONFLICT"),
            (E::NoAdvisoryStep(ChangeKind::default()), "CONFLICT"),
            (E::NotAwaitingApproval(ChangeStatus::default()), "CONFLICT"),
            (E::TermsNotConfirmed, "CONFLICT"),
            (E::NoAdvice, "CONFLICT"),
            (E::AdvisedAgainst, "CONFLICT"),
            (E::MissingPlan("x"), "CONFLICT"),
            (E::UnacknowledgedConflicts(Vec::new()), "CONFLICT"),
            (E::NotApproved(ChangeStatus::default()), "CONFLICT"),
            (E::AlreadyStarted(ChangeStatus::default()), "CONFLICT"),
            (E::BeforeWindow(DateTime::UNIX_EPOCH), "CONFLICT"),
            (E::WindowPassed(DateTime::UNIX_EPOCH), "CONFLICT"),
            (E::Frozen(frozen()), "CONFLICT"),
            (E::OverrideNotAllowed(ChangeKind::default()), "FORBIDDEN"),
            (E::NotImplementing(ChangeStatus::default()), "CONFLICT"),
            (E::NotImplemented(ChangeStatus::default()), "CONFLICT"),
        ]);
    }

    #[test]
    fn every_freeze_error_has_the_code_the_api_promises() {
        use FreezeError as E;
        table(vec![
            (E::Invalid(bad()), "BAD_USER_INPUT"),
            (E::NotPermitted, "FORBIDDEN"),
            (E::AlreadyDeclared, "CONFLICT"),
            (E::NotFound, "NOT_FOUND"),
            (E::Lifted(DateTime::UNIX_EPOCH), "CONFLICT"),
            (E::Ended(DateTime::UNIX_EPOCH), "CONFLICT"),
        ]);
    }

    #[test]
    fn every_inspection_template_error_has_the_code_the_api_promises() {
        use InspectionTemplateError as E;
        table(vec![
            (E::NotOperator, "FORBIDDEN"),
            (E::AlreadyDefined, "CONFLICT"),
            (E::NotFound, "NOT_FOUND"),
            (E::Retired, "CONFLICT"),
            (E::Invalid(bad()), "BAD_USER_INPUT"),
        ]);
    }

    #[test]
    fn every_inspection_error_has_the_code_the_api_promises() {
        use InspectionError as E;
        table(vec![
            (E::NotOperator, "FORBIDDEN"),
            (E::NotInspector, "FORBIDDEN"),
            (E::AlreadyScheduled, "CONFLICT"),
            (E::NotScheduled, "NOT_FOUND"),
            (E::AlreadyCompleted, "CONFLICT"),
            (
                E::NotYetDue {
                    due: DateTime::UNIX_EPOCH,
                },
                "CONFLICT",
            ),
            (
                E::ItemAlreadyRecorded {
                    key: "x".to_owned(),
                },
                "CONFLICT",
            ),
            (E::AlreadyOverdue, "CONFLICT"),
            (
                E::DeadlineNotPassed {
                    deadline: DateTime::UNIX_EPOCH,
                },
                "CONFLICT",
            ),
            (
                E::NoAnomaly {
                    key: "x".to_owned(),
                },
                "CONFLICT",
            ),
            (
                E::IncidentAlreadyLinked {
                    key: "x".to_owned(),
                    incident_id: Uuid::nil(),
                },
                "CONFLICT",
            ),
            (E::Invalid(bad()), "BAD_USER_INPUT"),
        ]);
    }

    #[test]
    fn every_emergency_plan_error_has_the_code_the_api_promises() {
        use EmergencyPlanError as E;
        table(vec![
            (E::NotPermitted, "FORBIDDEN"),
            (E::AlreadyDefined, "CONFLICT"),
            (E::NotFound, "NOT_FOUND"),
            (E::Retired, "CONFLICT"),
            (E::Unchanged(1), "CONFLICT"),
            (E::Invalid(bad()), "BAD_USER_INPUT"),
        ]);
    }

    #[test]
    fn every_plan_run_error_has_the_code_the_api_promises() {
        use PlanRunError as E;
        table(vec![
            (E::NotPermitted, "FORBIDDEN"),
            (E::NotLead, "FORBIDDEN"),
            (
                E::NotStepRole {
                    key: "x".to_owned(),
                    role: Role::Operator,
                },
                "FORBIDDEN",
            ),
            (
                E::RequiredStep {
                    key: "x".to_owned(),
                },
                "FORBIDDEN",
            ),
            (E::AlreadyStarted, "CONFLICT"),
            (E::NotStarted, "NOT_FOUND"),
            (E::Completed, "CONFLICT"),
            (E::Aborted, "CONFLICT"),
            (
                E::StepAlreadyCompleted {
                    key: "x".to_owned(),
                },
                "CONFLICT",
            ),
            (
                E::StepAlreadySkipped {
                    key: "x".to_owned(),
                },
                "CONFLICT",
            ),
            (
                E::OutOfOrder {
                    key: "x".to_owned(),
                    waiting: "x".to_owned(),
                },
                "CONFLICT",
            ),
            (E::Invalid(bad()), "BAD_USER_INPUT"),
        ]);
    }

    #[test]
    fn every_baseline_error_has_the_code_the_api_promises() {
        use BaselineError as E;
        table(vec![
            (E::Invalid(bad()), "BAD_USER_INPUT"),
            (E::NotPermitted, "FORBIDDEN"),
            (E::AlreadyExists, "CONFLICT"),
            (E::NotFound, "NOT_FOUND"),
        ]);
    }

    #[test]
    fn every_library_error_has_the_code_the_api_promises() {
        use LibraryError as E;
        table(vec![
            (E::Invalid(bad()), "BAD_USER_INPUT"),
            (E::NotPermitted, "FORBIDDEN"),
            (E::AlreadyExists, "CONFLICT"),
            (E::NotFound, "NOT_FOUND"),
            (E::Deprecated, "CONFLICT"),
            (E::DuplicateContent(1), "CONFLICT"),
            (E::NoSuchVersion(1), "NOT_FOUND"),
            (E::VersionDeprecated(1), "CONFLICT"),
            (E::Unchanged, "CONFLICT"),
        ]);
    }

    #[test]
    fn every_workflow_error_has_the_code_the_api_promises() {
        use WorkflowError as E;
        table(vec![
            (E::NotPermitted, "FORBIDDEN"),
            (E::NotFound, "NOT_FOUND"),
            (E::AlreadyExists, "CONFLICT"),
            (E::Deleted, "CONFLICT"),
            (E::Invalid(bad()), "BAD_USER_INPUT"),
        ]);
    }

    #[test]
    fn every_provisioning_error_has_the_code_the_api_promises() {
        use ProvisioningError as E;
        table(vec![
            (E::NotPermitted, "FORBIDDEN"),
            (E::NotFound, "NOT_FOUND"),
            (E::AlreadyStarted, "CONFLICT"),
            (E::Over(RunStatus::default()), "CONFLICT"),
            (E::NotCurrent { step: 1 }, "CONFLICT"),
            (E::NotWaiting { step: 1 }, "CONFLICT"),
            (E::NotNextUndo { step: 1 }, "CONFLICT"),
            (E::WrongStatus(RunStatus::default()), "CONFLICT"),
            (E::Invalid(bad()), "BAD_USER_INPUT"),
        ]);
    }

    #[test]
    fn every_contact_error_has_the_code_the_api_promises() {
        use ContactError as E;
        table(vec![
            (E::Invalid(bad()), "BAD_USER_INPUT"),
            (E::NotYours, "FORBIDDEN"),
            (E::NotAPerson, "FORBIDDEN"),
            (E::Unchanged, "CONFLICT"),
            (E::NotSet, "NOT_FOUND"),
        ]);
    }

    #[test]
    fn the_wrappers_answer_their_inner_refusals_code() {
        table(vec![
            (ResourceError::Pool(PoolError::NotOperator), "FORBIDDEN"),
            (ResourceError::Subnet(SubnetError::NotFound), "NOT_FOUND"),
            (
                ResourceError::Quota(QuotaError::Invalid(bad())),
                "BAD_USER_INPUT",
            ),
            (ResourceError::Ci(CiError::Retired), "CONFLICT"),
        ]);
        table(vec![
            (VmError::Ci(CiError::NotOwner), "FORBIDDEN"),
            (VmError::Frozen(frozen()), "CONFLICT"),
            (
                VmError::Driver {
                    operation: "stop_vm".to_owned(),
                    message: "no answer".to_owned(),
                },
                "INTERNAL",
            ),
            (
                VmError::Resource(ResourceError::Ci(CiError::Invalid(bad()))),
                "BAD_USER_INPUT",
            ),
            (VmError::Baseline(BaselineError::NotFound), "NOT_FOUND"),
        ]);
    }

    /// A driver's failure is the client's to read: `INTERNAL`, its message, no id.
    #[test]
    fn a_driver_failure_keeps_its_message() {
        let e = VmError::Driver {
            operation: "stop_vm".to_owned(),
            message: "simulated failure of stop_vm".to_owned(),
        };
        let answer: async_graphql::Error = CommandError::Domain(e).into();
        assert!(answer.message.contains("simulated failure of stop_vm"));
        assert_eq!(extension(&answer, "errorId"), None);
    }

    #[test]
    fn a_conflict_says_what_changed() {
        let answer: async_graphql::Error =
            CommandError::<CiError>::Conflict("ci-1 changed meanwhile".to_owned()).into();
        assert_eq!(extension(&answer, "code"), Some(Value::from("CONFLICT")));
        assert_eq!(answer.message, "ci-1 changed meanwhile");
    }

    /// An internal error shows the client an id and no cause; the log has both.
    #[test]
    fn an_internal_error_answers_an_id_and_logs_the_cause() {
        let logged = Logged::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(logged.clone())
            .with_ansi(false)
            .finish();
        let answer: async_graphql::Error = tracing::subscriber::with_default(subscriber, || {
            CommandError::<CiError>::internal("the disk is full at /var/lib/x").into()
        });
        assert_eq!(extension(&answer, "code"), Some(Value::from("INTERNAL")));
        let Some(Value::String(id)) = extension(&answer, "errorId") else {
            panic!("no error id: {answer:?}");
        };
        assert!(Uuid::parse_str(&id).is_ok(), "{id}");
        assert_eq!(answer.message, format!("internal error (id {id})"));
        let log = logged.text();
        assert!(log.contains(&format!("error_id={id}")), "{log}");
        assert!(log.contains("the disk is full at /var/lib/x"), "{log}");
    }

    /// What the log subscriber wrote.
    #[derive(Clone, Default)]
    struct Logged(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl Logged {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }
    }

    impl std::io::Write for Logged {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logged {
        type Writer = Logged;

        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }
}
