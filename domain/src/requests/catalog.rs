//! The service catalogue (ITIL): the offerings requesters choose from, each with the
//! configuration they may choose, who may see it, and how requests for it are approved.
//! Every edit is a new version; a request records the version it was made against.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::kernel::aggregate::{Aggregate, Context, DomainEvent, Role};
use crate::kernel::refusal::{Refusal, Refuse};

/// What kind of thing an item offers (the service plan's resource types).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OfferingKind {
    VirtualMachine,
    PhysicalServer,
    Storage,
    Network,
    Database,
    Middleware,
    Application,
    SoftwareInstallation,
}

/// One thing a requester chooses, e.g. CPU cores or the OS image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field {
    /// The key in a request's configuration, e.g. `cpu`.
    pub name: String,
    /// What requesters read, e.g. `CPU 核數`.
    pub label: String,
    pub required: bool,
    pub choice: Choice,
}

/// The values a field allows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Choice {
    /// A whole number in `min..=max`, in steps of `step` from `min`.
    Integer { min: i64, max: i64, step: i64 },
    /// One of the listed values.
    OneOf { options: Vec<String> },
    /// One of the values listed for what was chosen in an earlier field (e.g. the images
    /// offered for the chosen OS family).
    DependsOn {
        field: String,
        options: BTreeMap<String, Vec<String>>,
    },
    /// Free text up to `max_len` characters.
    Text { max_len: usize },
}

/// Who may see and request an item; an empty list admits everyone.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Audience {
    pub roles: Vec<Role>,
    pub departments: Vec<String>,
}

/// How requests for an item are approved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ApprovalPolicy {
    /// The service plan's 預審批: approved at once when every condition holds (no
    /// conditions: always); otherwise the `otherwise` steps apply.
    PreApproved {
        /// The policy's name, recorded in the approval event.
        policy: String,
        conditions: Vec<Condition>,
        otherwise: Vec<ApprovalStep>,
    },
    /// Steps decided in order.
    Steps { steps: Vec<ApprovalStep> },
}

/// A pre-approval condition: the chosen value of `field`, times the quantity, is at most
/// `at_most` (e.g. `cpu` ≤ 8).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Condition {
    pub field: String,
    pub at_most: i64,
}

/// One step of an approval chain.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ApprovalStep {
    pub name: String,
    /// The role that decides.
    pub role: Role,
    pub department: StepDepartment,
    pub quorum: Quorum,
    /// When set, only these users (ids) may decide, and [`Quorum::All`] means all of them.
    #[serde(default)]
    pub approvers: Vec<String>,
    /// Escalate a step still open after this many hours.
    #[serde(default)]
    pub escalate_after_hours: Option<u32>,
    /// Who is told when it escalates.
    #[serde(default)]
    pub escalate_to: Option<Role>,
}

/// Which department's holders of the role may decide a step.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum StepDepartment {
    Any,
    /// The requester's own department (e.g. the department head).
    Requesters,
    Named(String),
}

/// How many must approve a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "count", rename_all = "snake_case")]
pub enum Quorum {
    One,
    AtLeast(u32),
    /// Every user in the step's `approvers`.
    All,
}

/// Everything a catalogue item says; one version of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemDefinition {
    pub name: String,
    pub category: String,
    pub description: String,
    pub kind: OfferingKind,
    pub fields: Vec<Field>,
    pub audience: Audience,
    pub approval: ApprovalPolicy,
    /// The step a request that would exceed its department's quota goes through as well;
    /// without one such a request is refused at submission.
    #[serde(default)]
    pub over_quota_step: Option<Box<ApprovalStep>>,
    /// The provisioning workflow an approved request starts (none: fulfilled by hand).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_id: Option<Uuid>,
}

pub(crate) use crate::kernel::field::invalid;
pub use crate::kernel::field::InvalidField;

impl ItemDefinition {
    /// Checks the definition is one requesters can use.
    ///
    /// # Errors
    /// The first field of the definition that is wrong, by its path.
    pub fn validate(&self) -> Result<(), InvalidField> {
        if self.name.trim().is_empty() {
            return Err(invalid("name", "must not be empty"));
        }
        let mut seen: Vec<&str> = Vec::new();
        for (i, f) in self.fields.iter().enumerate() {
            let path = format!("fields[{i}]");
            if f.name.is_empty() || seen.contains(&f.name.as_str()) {
                return Err(invalid(
                    path,
                    format!("name {:?} is empty or repeated", f.name),
                ));
            }
            match &f.choice {
                Choice::Integer { min, max, step } if min > max || *step < 1 => {
                    return Err(invalid(path, "needs min ≤ max and a step of at least 1"));
                }
                Choice::OneOf { options } if options.is_empty() => {
                    return Err(invalid(path, "offers no options"));
                }
                Choice::DependsOn { field, .. } if !seen.contains(&field.as_str()) => {
                    return Err(invalid(
                        path,
                        format!("depends on {field:?}, which is not an earlier field"),
                    ));
                }
                _ => {}
            }
            seen.push(&f.name);
        }
        let steps = match &self.approval {
            ApprovalPolicy::PreApproved {
                conditions,
                otherwise,
                ..
            } => {
                for c in conditions {
                    let numeric = self
                        .fields
                        .iter()
                        .any(|f| f.name == c.field && matches!(f.choice, Choice::Integer { .. }));
                    if !numeric {
                        return Err(invalid(
                            "approval.conditions",
                            format!("{:?} is not a number field", c.field),
                        ));
                    }
                }
                otherwise
            }
            ApprovalPolicy::Steps { steps } if steps.is_empty() => {
                return Err(invalid("approval.steps", "a chain needs at least one step"));
            }
            ApprovalPolicy::Steps { steps } => steps,
        };
        for (i, s) in steps.iter().enumerate() {
            let needed = match s.quorum {
                Quorum::One => 1,
                Quorum::AtLeast(n) => n as usize,
                Quorum::All => s.approvers.len().max(1),
            };
            if needed == 0 || (!s.approvers.is_empty() && needed > s.approvers.len()) {
                return Err(invalid(
                    format!("approval.steps[{i}]"),
                    "the quorum cannot be reached",
                ));
            }
            if matches!(s.quorum, Quorum::All) && s.approvers.is_empty() {
                return Err(invalid(
                    format!("approval.steps[{i}]"),
                    "quorum `all` needs a list of approvers",
                ));
            }
        }
        Ok(())
    }

    /// Whether `roles` in `department` may see and request the item.
    pub fn visible_to(&self, roles: &[Role], department: Option<&str>) -> bool {
        let role_ok = self.audience.roles.is_empty()
            || roles
                .iter()
                .any(|r| *r == Role::Admin || self.audience.roles.contains(r));
        let department_ok = self.audience.departments.is_empty()
            || department.is_some_and(|d| self.audience.departments.iter().any(|a| a == d));
        role_ok && department_ok
    }

    /// Checks a requester's chosen configuration against the item's fields.
    ///
    /// # Errors
    /// The first field that is missing, unknown or not allowed, by name.
    pub fn check_configuration(
        &self,
        config: &BTreeMap<String, serde_json::Value>,
    ) -> Result<(), InvalidField> {
        for name in config.keys() {
            if !self.fields.iter().any(|f| &f.name == name) {
                return Err(invalid(
                    format!("configuration.{name}"),
                    "is not a field of this item",
                ));
            }
        }
        for f in &self.fields {
            let path = format!("configuration.{}", f.name);
            let Some(value) = config.get(&f.name) else {
                if f.required {
                    return Err(invalid(path, "is required"));
                }
                continue;
            };
            match &f.choice {
                Choice::Integer { min, max, step } => {
                    let n = value
                        .as_i64()
                        .ok_or_else(|| invalid(&path, "must be a whole number"))?;
                    if n < *min || n > *max || (n - min) % step != 0 {
                        return Err(invalid(
                            path,
                            format!("{n} is not allowed: {min} to {max} in steps of {step}"),
                        ));
                    }
                }
                Choice::OneOf { options } => {
                    let s = value
                        .as_str()
                        .ok_or_else(|| invalid(&path, "must be text"))?;
                    if !options.iter().any(|o| o == s) {
                        return Err(invalid(
                            path,
                            format!("{s:?} is not one of {}", options.join(", ")),
                        ));
                    }
                }
                Choice::DependsOn { field, options } => {
                    let s = value
                        .as_str()
                        .ok_or_else(|| invalid(&path, "must be text"))?;
                    let chosen = config
                        .get(field)
                        .and_then(|v| v.as_str())
                        .unwrap_or_default();
                    let allowed = options.get(chosen).map(Vec::as_slice).unwrap_or_default();
                    if !allowed.iter().any(|o| o == s) {
                        return Err(invalid(
                            path,
                            format!("{s:?} is not offered for {field} {chosen:?}"),
                        ));
                    }
                }
                Choice::Text { max_len } => {
                    let s = value
                        .as_str()
                        .ok_or_else(|| invalid(&path, "must be text"))?;
                    if s.chars().count() > *max_len {
                        return Err(invalid(
                            path,
                            format!("is longer than {max_len} characters"),
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Orders to the catalogue.
#[derive(Clone, Debug)]
pub enum CatalogCommand {
    CreateCatalogItem {
        item_id: Uuid,
        definition: ItemDefinition,
    },
    ReviseCatalogItem {
        definition: ItemDefinition,
    },
    RetireCatalogItem {
        reason: String,
    },
}

/// What happened to a catalogue item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum CatalogEvent {
    CatalogItemCreated {
        item_id: Uuid,
        version: u32,
        definition: ItemDefinition,
    },
    CatalogItemRevised {
        version: u32,
        definition: ItemDefinition,
    },
    CatalogItemRetired {
        version: u32,
        reason: String,
    },
}

impl DomainEvent for CatalogEvent {}

/// Why the catalogue refuses.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    /// The actor is not a catalogue administrator (forbidden)
    #[error("only a catalog_admin may change the catalogue")]
    NotCatalogAdmin,
    /// The item exists already (conflict)
    #[error("the catalogue item already exists")]
    AlreadyExists,
    /// There is no such item (not found)
    #[error("there is no such catalogue item")]
    NotFound,
    /// The item is retired and takes no more changes (conflict)
    #[error("the catalogue item is retired")]
    Retired,
    /// A field of the item breaks its rules (invalid)
    #[error("invalid catalogue item: {0}")]
    Invalid(#[from] InvalidField),
}

impl Refuse for CatalogError {
    fn refusal(&self) -> Refusal<'_> {
        match self {
            Self::NotCatalogAdmin => Refusal::Forbidden,
            Self::AlreadyExists | Self::Retired => Refusal::Conflict,
            Self::NotFound => Refusal::NotFound,
            Self::Invalid(f) => Refusal::Invalid { field: &f.field },
        }
    }
}

/// A catalogue item's state: its current version and definition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CatalogItem {
    pub item_id: Option<Uuid>,
    pub version: u32,
    pub definition: Option<ItemDefinition>,
    pub retired: bool,
}

impl Aggregate for CatalogItem {
    const KIND: &'static str = "catalog_item";
    type Command = CatalogCommand;
    type Event = CatalogEvent;
    type Error = CatalogError;

    fn decide(
        &self,
        command: CatalogCommand,
        ctx: &Context,
    ) -> Result<Vec<CatalogEvent>, CatalogError> {
        if !ctx.actor.has_role(Role::CatalogAdmin) {
            return Err(CatalogError::NotCatalogAdmin);
        }
        match command {
            CatalogCommand::CreateCatalogItem {
                item_id,
                definition,
            } => {
                if self.item_id.is_some() {
                    return Err(CatalogError::AlreadyExists);
                }
                definition.validate()?;
                Ok(vec![CatalogEvent::CatalogItemCreated {
                    item_id,
                    version: 1,
                    definition,
                }])
            }
            CatalogCommand::ReviseCatalogItem { definition } => {
                self.open()?;
                definition.validate()?;
                Ok(vec![CatalogEvent::CatalogItemRevised {
                    version: self.version + 1,
                    definition,
                }])
            }
            CatalogCommand::RetireCatalogItem { reason } => {
                self.open()?;
                Ok(vec![CatalogEvent::CatalogItemRetired {
                    version: self.version,
                    reason,
                }])
            }
        }
    }

    fn evolve(mut self, event: &CatalogEvent) -> Self {
        match event {
            CatalogEvent::CatalogItemCreated {
                item_id,
                version,
                definition,
            } => {
                self.item_id = Some(*item_id);
                self.version = *version;
                self.definition = Some(definition.clone());
            }
            CatalogEvent::CatalogItemRevised {
                version,
                definition,
            } => {
                self.version = *version;
                self.definition = Some(definition.clone());
            }
            CatalogEvent::CatalogItemRetired { .. } => self.retired = true,
        }
        self
    }
}

impl CatalogItem {
    fn open(&self) -> Result<(), CatalogError> {
        match (self.item_id, self.retired) {
            (None, _) => Err(CatalogError::NotFound),
            (Some(_), true) => Err(CatalogError::Retired),
            (Some(_), false) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::kernel::given::{given, person};
    use crate::requests::demo::{two_steps, vm_definition};

    fn admin() -> crate::kernel::event::Actor {
        person("u-lam", "運維中心", &["catalog_admin"])
    }

    fn created(definition: ItemDefinition) -> CatalogEvent {
        CatalogEvent::CatalogItemCreated {
            item_id: Uuid::from_u128(1),
            version: 1,
            definition,
        }
    }

    #[test]
    fn a_catalog_admin_creates_an_item_at_version_1() {
        let definition = vm_definition(two_steps());
        given::<CatalogItem>([])
            .when(
                CatalogCommand::CreateCatalogItem {
                    item_id: Uuid::from_u128(1),
                    definition: definition.clone(),
                },
                &admin(),
            )
            .then([created(definition)]);
    }

    #[test]
    fn a_requester_cannot_change_the_catalogue() {
        given::<CatalogItem>([])
            .when(
                CatalogCommand::CreateCatalogItem {
                    item_id: Uuid::from_u128(1),
                    definition: vm_definition(two_steps()),
                },
                &person("u-chan", "財政局", &["requester"]),
            )
            .then_err(CatalogError::NotCatalogAdmin);
    }

    #[test]
    fn every_revision_is_a_new_version_and_a_retired_item_takes_none() {
        let mut revised = vm_definition(two_steps());
        revised.description = "含每日備份".into();
        given::<CatalogItem>([created(vm_definition(two_steps()))])
            .when(
                CatalogCommand::ReviseCatalogItem {
                    definition: revised.clone(),
                },
                &admin(),
            )
            .then([CatalogEvent::CatalogItemRevised {
                version: 2,
                definition: revised.clone(),
            }]);
        given::<CatalogItem>([
            created(vm_definition(two_steps())),
            CatalogEvent::CatalogItemRetired {
                version: 1,
                reason: "停用".into(),
            },
        ])
        .when(
            CatalogCommand::ReviseCatalogItem {
                definition: revised,
            },
            &admin(),
        )
        .then_err(CatalogError::Retired);
    }

    #[test]
    fn a_definition_that_cannot_work_is_refused_naming_the_part() {
        let mut bad = vm_definition(two_steps());
        bad.fields.swap(2, 3); // the image now comes before the OS it depends on
        given::<CatalogItem>([])
            .when(
                CatalogCommand::CreateCatalogItem {
                    item_id: Uuid::from_u128(1),
                    definition: bad,
                },
                &admin(),
            )
            .then_err(CatalogError::Invalid(InvalidField {
                field: "fields[2]".into(),
                problem: "depends on \"os\", which is not an earlier field".into(),
            }));
        let mut unreachable = vm_definition(two_steps());
        if let ApprovalPolicy::Steps { steps } = &mut unreachable.approval {
            steps[0].quorum = Quorum::AtLeast(2);
            steps[0].approvers = vec!["u-ho".into()];
        }
        assert_eq!(
            unreachable.validate().unwrap_err().field,
            "approval.steps[0]"
        );
    }

    #[test]
    fn a_configuration_is_checked_field_by_field() {
        let item = vm_definition(two_steps());
        let config = |v: serde_json::Value| -> BTreeMap<String, serde_json::Value> {
            serde_json::from_value(v).unwrap()
        };
        let good = config(json!({"cpu": 4, "memory_gb": 16, "os": "linux", "image": "rhel-9.4"}));
        assert_eq!(item.check_configuration(&good), Ok(()));
        let cases = [
            (
                json!({"cpu": 64, "memory_gb": 16, "os": "linux", "image": "rhel-9.4"}),
                "configuration.cpu",
            ),
            (
                json!({"cpu": 4, "memory_gb": 15, "os": "linux", "image": "rhel-9.4"}),
                "configuration.memory_gb",
            ),
            (
                json!({"cpu": 4, "memory_gb": 16, "os": "linux", "image": "windows-server-2022"}),
                "configuration.image",
            ),
            (
                json!({"cpu": 4, "memory_gb": 16, "os": "linux"}),
                "configuration.image",
            ),
            (
                json!({"cpu": 4, "memory_gb": 16, "os": "linux", "image": "rhel-9.4", "gpu": 1}),
                "configuration.gpu",
            ),
            (
                json!({"cpu": "four", "memory_gb": 16, "os": "linux", "image": "rhel-9.4"}),
                "configuration.cpu",
            ),
        ];
        for (value, field) in cases {
            assert_eq!(
                item.check_configuration(&config(value.clone()))
                    .unwrap_err()
                    .field,
                field,
                "{value}"
            );
        }
    }

    #[test]
    fn an_item_is_visible_to_its_roles_and_departments() {
        let mut item = vm_definition(two_steps());
        assert!(item.visible_to(&[Role::Requester], Some("財政局")));
        assert!(!item.visible_to(&[Role::Engineer], Some("財政局")));
        item.audience.departments = vec!["運維中心".into()];
        assert!(!item.visible_to(&[Role::Requester], Some("財政局")));
        assert!(item.visible_to(&[Role::Requester], Some("運維中心")));
        assert!(item.visible_to(&[Role::Admin], Some("運維中心")));
    }
}
