//! Who may see what: every visibility rule of the API, in one place. Every list, read by
//! id, `node(id:)` and subscription asks here, so the answers agree: an entity behind a
//! wall is missing from the lists and, read by id, does not exist (`NOT_FOUND`), whatever
//! its state. The rules themselves (which roles see every department) are the domain's.
//!
//! - **Catalogue items**: catalogue administrators and auditors see every item, retired
//!   ones too; anyone else sees the open items their role and department may request.
//! - **Requests**: the roles of [`request::SEES_EVERY_DEPARTMENT`] see every department's;
//!   anyone else sees their own department's and their own.
//! - **Delegations**: the delegator and the substitute; auditors see every one.
//! - **Configuration items**: the roles of [`cmdb::SEES_EVERY_DEPARTMENT`] see every
//!   department's; anyone else sees their own department's and the ones they own.
//! - **Service operations** (tickets, incidents, changes, inspections, plans): the staff
//!   roles of [`STAFF`].
//! - **Automation** (workflows, runs): operators, catalogue administrators, auditors.

use async_graphql::{Context, Result};
use opsledger_domain::kernel::aggregate::Role;
use opsledger_domain::requests::request;
use opsledger_domain::resources::cmdb::{self, ConfigurationItem};
use opsledger_domain::Actor;
use opsledger_projections::requests::catalog::CatalogEntry;
use opsledger_projections::requests::delegations::DelegationView;
use opsledger_projections::requests::{RequestFilter, RequestView};
use opsledger_projections::resources::inventory::{CiFilter, CiView};
use uuid::Uuid;

use crate::kit::errors::{error, Code};
use crate::kit::{actor, require};
use crate::Models;

/// Whether `actor` sees the whole catalogue, retired items too.
pub(crate) fn sees_whole_catalogue(actor: &Actor) -> bool {
    [Role::CatalogAdmin, Role::Auditor]
        .iter()
        .any(|r| actor.has_role(*r))
}

fn roles_of(actor: &Actor) -> Vec<Role> {
    actor.roles.iter().filter_map(|r| r.parse().ok()).collect()
}

/// The catalogue as `actor` may list it.
pub(crate) fn catalogue<'m>(
    m: &'m Models<'_>,
    actor: &Actor,
    include_retired: bool,
) -> Box<dyn Iterator<Item = &'m CatalogEntry> + 'm> {
    if sees_whole_catalogue(actor) {
        Box::new(m.catalog.all(include_retired))
    } else {
        let roles = roles_of(actor);
        let department = actor.department.clone();
        Box::new(
            m.catalog
                .all(false)
                .filter(move |e| e.current().visible_to(&roles, department.as_deref())),
        )
    }
}

/// The catalogue item `id`, if `actor` may see it.
pub(crate) fn catalog_item<'m>(
    m: &'m Models<'_>,
    actor: &Actor,
    id: Uuid,
) -> Result<&'m CatalogEntry> {
    let missing = || error(Code::NotFound, format!("there is no catalogue item {id}"));
    let entry = m.catalog.get(id).ok_or_else(missing)?;
    let visible = sees_whole_catalogue(actor)
        || (!entry.retired
            && entry
                .current()
                .visible_to(&roles_of(actor), actor.department.as_deref()));
    visible.then_some(entry).ok_or_else(missing)
}

/// Narrows a list of requests to what `actor` may see; asking for another department's is
/// refused.
pub(crate) fn narrow_requests(actor: &Actor, filter: &mut RequestFilter) -> Result<()> {
    if request::sees_every_department(actor) {
        return Ok(());
    }
    let own = actor.department.as_deref().unwrap_or_default();
    if filter.department.as_deref().is_some_and(|d| d != own) {
        return Err(error(
            Code::Forbidden,
            "requesters see their own department's requests only",
        ));
    }
    filter.reader = Some(actor.clone());
    Ok(())
}

/// The request `id`, if `actor` may see it.
pub(crate) fn request<'m>(m: &'m Models<'_>, actor: &Actor, id: Uuid) -> Result<&'m RequestView> {
    m.requests
        .get(id)
        .filter(|r| r.state.visible_to(actor))
        .ok_or_else(|| error(Code::NotFound, format!("there is no request {id}")))
}

/// Whether `actor` sees every delegation.
pub(crate) fn sees_every_delegation(actor: &Actor) -> bool {
    actor.has_role(Role::Auditor)
}

/// The delegations `actor` may list.
pub(crate) fn delegations<'m>(
    m: &'m Models<'_>,
    actor: &'m Actor,
) -> impl Iterator<Item = &'m DelegationView> + 'm {
    let all = sees_every_delegation(actor);
    m.delegations
        .all()
        .filter(move |d| all || d.concerns(actor))
}

/// The delegation `id`, if `actor` may see it.
pub(crate) fn delegation<'m>(
    m: &'m Models<'_>,
    actor: &Actor,
    id: Uuid,
) -> Result<&'m DelegationView> {
    m.delegations
        .get(id)
        .filter(|d| sees_every_delegation(actor) || d.concerns(actor))
        .ok_or_else(|| error(Code::NotFound, format!("there is no delegation {id}")))
}

/// The department a figure over resources (usage, quotas) is narrowed to for `actor`
/// (`None`: every one).
pub(crate) fn ci_department(actor: &Actor) -> Option<String> {
    if cmdb::sees_every_department(actor) {
        None
    } else {
        Some(actor.department.clone().unwrap_or_default())
    }
}

/// Narrows a list of configuration items to what `actor` may see; asking for another
/// department's is refused.
pub(crate) fn narrow_cis(actor: &Actor, filter: &mut CiFilter) -> Result<()> {
    if cmdb::sees_every_department(actor) {
        return Ok(());
    }
    let own = actor.department.as_deref().unwrap_or_default();
    if filter.department.as_deref().is_some_and(|d| d != own) {
        return Err(error(
            Code::Forbidden,
            format!("you may see the configuration items of {own} only"),
        ));
    }
    filter.reader = Some(actor.clone());
    Ok(())
}

/// Whether `actor` may see the configuration item `state` (its department and owner never
/// change, so the answer holds for every moment of its history).
pub(crate) fn sees_ci(actor: &Actor, state: &ConfigurationItem) -> bool {
    state.record.as_ref().is_some_and(|r| r.visible_to(actor))
}

/// The configuration item `id` as it stands, if `actor` may see it.
pub(crate) fn ci<'m>(m: &'m Models<'_>, actor: &Actor, id: Uuid) -> Result<&'m CiView> {
    m.inventory
        .ci(id)
        .filter(|v| sees_ci(actor, &v.state))
        .ok_or_else(|| {
            error(
                Code::NotFound,
                format!("there is no configuration item {id}"),
            )
        })
}

/// The roles that read and work service operations (and auditors, who read everything).
pub(crate) const STAFF: &[Role] = &[
    Role::ServiceDesk,
    Role::Engineer,
    Role::Operator,
    Role::OperationsManager,
    Role::OperationsHead,
    Role::ChangeManager,
    Role::ProductManager,
    Role::Auditor,
];

/// The signed-in actor, if they are service-operations staff.
pub(crate) fn staff<'a>(ctx: &Context<'a>) -> Result<&'a Actor> {
    let actor = actor(ctx)?;
    require(actor, STAFF)?;
    Ok(actor)
}

/// Whether `actor` reads service operations (incidents, tickets, reports).
pub fn reads_operations(actor: &Actor) -> bool {
    STAFF.iter().any(|r| actor.has_role(*r))
}

/// Whether `actor` sees workflows and provisioning runs: operators, catalogue
/// administrators, auditors, admins.
pub(crate) fn sees_automation(actor: &Actor) -> bool {
    actor.operates()
        || [Role::CatalogAdmin, Role::Auditor, Role::Admin]
            .iter()
            .any(|r| actor.has_role(*r))
}

/// Refuses anyone who does not see automation.
pub(crate) fn require_automation(ctx: &Context<'_>) -> Result<()> {
    if sees_automation(actor(ctx)?) {
        Ok(())
    } else {
        Err(error(
            Code::Forbidden,
            "only operators, catalogue administrators and auditors see automation",
        ))
    }
}
