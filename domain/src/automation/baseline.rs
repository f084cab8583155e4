//! Configuration baselines (the plan's 配置基線): the system, database or application
//! settings a server is expected to have, each a key and its expected value. A baseline
//! is attached to provisioning workflows and to configuration items; after provisioning,
//! and on demand, the settings actually found are compared with it, and every difference
//! is a [`Finding`], recorded on the configuration item (`BaselineAudited`). Every edit is
//! a new version; an audit names the version it compared against.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::kernel::aggregate::{Aggregate, Context, DomainEvent};
use crate::kernel::refusal::{Refusal, Refuse};
use crate::requests::catalog::{invalid, InvalidField};

/// The longest name, in characters.
pub const MAX_NAME: usize = 200;
/// The most settings a baseline holds.
pub const MAX_SETTINGS: usize = 500;
/// The longest setting key or value, in characters.
pub const MAX_SETTING: usize = 2_000;

/// What a baseline's settings are about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BaselineScope {
    System,
    Database,
    Application,
}

/// A baseline at one version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaselineDefinition {
    pub name: String,
    pub scope: BaselineScope,
    /// Each setting's key and the value expected, as text.
    pub settings: BTreeMap<String, String>,
    #[serde(default)]
    pub description: String,
}

impl BaselineDefinition {
    /// Checks the definition; names the first field that is wrong.
    ///
    /// # Errors
    /// The field and its problem.
    pub fn check(&self) -> Result<(), InvalidField> {
        if self.name.trim().is_empty() {
            return Err(invalid("name", "is required"));
        }
        if self.name.chars().count() > MAX_NAME {
            return Err(invalid(
                "name",
                format!("is longer than {MAX_NAME} characters"),
            ));
        }
        if self.settings.is_empty() {
            return Err(invalid("settings", "a baseline needs at least one setting"));
        }
        if self.settings.len() > MAX_SETTINGS {
            return Err(invalid(
                "settings",
                format!("holds more than {MAX_SETTINGS} settings"),
            ));
        }
        for (key, value) in &self.settings {
            if key.trim().is_empty() || key.trim() != key {
                return Err(invalid(
                    "settings",
                    format!("{key:?} is not a key: keys are non-empty, without surrounding spaces"),
                ));
            }
            if key.chars().count() > MAX_SETTING || value.chars().count() > MAX_SETTING {
                return Err(invalid(
                    format!("settings.{key}"),
                    format!("is longer than {MAX_SETTING} characters"),
                ));
            }
        }
        Ok(())
    }
}

/// One difference between a baseline and what was found, as recorded on the CI.
pub use crate::resources::cmdb::Finding;

/// The findings of comparing `expected` with `actual`, by key: a setting that is missing
/// or has another value. Settings found that the baseline does not ask about are not
/// findings.
pub fn compare(
    expected: &BTreeMap<String, String>,
    actual: &BTreeMap<String, Option<String>>,
) -> Vec<Finding> {
    expected
        .iter()
        .filter_map(|(key, want)| {
            let found = actual.get(key).cloned().flatten();
            (found.as_ref() != Some(want)).then(|| Finding {
                key: key.clone(),
                expected: want.clone(),
                actual: found,
            })
        })
        .collect()
}

/// Orders to a baseline.
#[derive(Clone, Debug)]
pub enum BaselineCommand {
    Create {
        baseline_id: Uuid,
        definition: BaselineDefinition,
    },
    /// A new version.
    Edit {
        definition: BaselineDefinition,
        note: String,
    },
    Attach {
        workflow_ids: Vec<Uuid>,
        ci_ids: Vec<Uuid>,
    },
    Detach {
        workflow_ids: Vec<Uuid>,
        ci_ids: Vec<Uuid>,
    },
}

/// What happened to a baseline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum BaselineEvent {
    BaselineCreated {
        baseline_id: Uuid,
        definition: BaselineDefinition,
        at: DateTime<Utc>,
    },
    BaselineEdited {
        version: u32,
        definition: BaselineDefinition,
        note: String,
        at: DateTime<Utc>,
    },
    /// Only what was not attached already.
    BaselineAttached {
        workflow_ids: Vec<Uuid>,
        ci_ids: Vec<Uuid>,
    },
    /// Only what was attached.
    BaselineDetached {
        workflow_ids: Vec<Uuid>,
        ci_ids: Vec<Uuid>,
    },
}

impl DomainEvent for BaselineEvent {}

/// Why a baseline refuses a command.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BaselineError {
    /// A field of the baseline breaks its rules (invalid)
    #[error(transparent)]
    Invalid(#[from] InvalidField),
    /// Only operators keep baselines (forbidden)
    #[error("only operators keep configuration baselines")]
    NotPermitted,
    /// The baseline exists already (conflict)
    #[error("the baseline already exists")]
    AlreadyExists,
    /// There is no such baseline (not found)
    #[error("there is no such baseline")]
    NotFound,
}

impl Refuse for BaselineError {
    fn refusal(&self) -> Refusal<'_> {
        match self {
            Self::Invalid(f) => Refusal::Invalid { field: &f.field },
            Self::NotPermitted => Refusal::Forbidden,
            Self::AlreadyExists => Refusal::Conflict,
            Self::NotFound => Refusal::NotFound,
        }
    }
}

/// A baseline's state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Baseline {
    pub baseline_id: Option<Uuid>,
    /// 1 when created, one more with each edit.
    pub version: u32,
    pub definition: Option<BaselineDefinition>,
    pub workflow_ids: BTreeSet<Uuid>,
    pub ci_ids: BTreeSet<Uuid>,
}

impl Baseline {
    fn definition(&self) -> Result<&BaselineDefinition, BaselineError> {
        self.definition.as_ref().ok_or(BaselineError::NotFound)
    }
}

/// `ids` without repeats, in order.
fn distinct(ids: Vec<Uuid>) -> Vec<Uuid> {
    let mut seen = BTreeSet::new();
    ids.into_iter().filter(|id| seen.insert(*id)).collect()
}

impl Aggregate for Baseline {
    const KIND: &'static str = "baseline";
    type Command = BaselineCommand;
    type Event = BaselineEvent;
    type Error = BaselineError;

    fn decide(
        &self,
        command: BaselineCommand,
        ctx: &Context,
    ) -> Result<Vec<BaselineEvent>, BaselineError> {
        if !ctx.actor.operates() {
            return Err(BaselineError::NotPermitted);
        }
        let event = match command {
            BaselineCommand::Create {
                baseline_id,
                definition,
            } => {
                if self.definition.is_some() {
                    return Err(BaselineError::AlreadyExists);
                }
                definition.check()?;
                BaselineEvent::BaselineCreated {
                    baseline_id,
                    definition,
                    at: ctx.now,
                }
            }
            BaselineCommand::Edit { definition, note } => {
                if self.definition()? == &definition {
                    return Err(invalid("baseline", "the edit changes nothing").into());
                }
                definition.check()?;
                BaselineEvent::BaselineEdited {
                    version: self.version + 1,
                    definition,
                    note,
                    at: ctx.now,
                }
            }
            BaselineCommand::Attach {
                workflow_ids,
                ci_ids,
            } => {
                self.definition()?;
                let workflow_ids: Vec<Uuid> = distinct(workflow_ids)
                    .into_iter()
                    .filter(|w| !self.workflow_ids.contains(w))
                    .collect();
                let ci_ids: Vec<Uuid> = distinct(ci_ids)
                    .into_iter()
                    .filter(|c| !self.ci_ids.contains(c))
                    .collect();
                if workflow_ids.is_empty() && ci_ids.is_empty() {
                    return Err(invalid(
                        "ciIds",
                        "name a workflow or configuration item not attached already",
                    )
                    .into());
                }
                BaselineEvent::BaselineAttached {
                    workflow_ids,
                    ci_ids,
                }
            }
            BaselineCommand::Detach {
                workflow_ids,
                ci_ids,
            } => {
                self.definition()?;
                let workflow_ids: Vec<Uuid> = distinct(workflow_ids)
                    .into_iter()
                    .filter(|w| self.workflow_ids.contains(w))
                    .collect();
                let ci_ids: Vec<Uuid> = distinct(ci_ids)
                    .into_iter()
                    .filter(|c| self.ci_ids.contains(c))
                    .collect();
                if workflow_ids.is_empty() && ci_ids.is_empty() {
                    return Err(invalid(
                        "ciIds",
                        "name a workflow or configuration item that is attached",
                    )
                    .into());
                }
                BaselineEvent::BaselineDetached {
                    workflow_ids,
                    ci_ids,
                }
            }
        };
        Ok(vec![event])
    }

    fn evolve(mut self, event: &BaselineEvent) -> Self {
        match event {
            BaselineEvent::BaselineCreated {
                baseline_id,
                definition,
                ..
            } => {
                self.baseline_id = Some(*baseline_id);
                self.version = 1;
                self.definition = Some(definition.clone());
            }
            BaselineEvent::BaselineEdited {
                version,
                definition,
                ..
            } => {
                self.version = *version;
                self.definition = Some(definition.clone());
            }
            BaselineEvent::BaselineAttached {
                workflow_ids,
                ci_ids,
            } => {
                self.workflow_ids.extend(workflow_ids);
                self.ci_ids.extend(ci_ids);
            }
            BaselineEvent::BaselineDetached {
                workflow_ids,
                ci_ids,
            } => {
                for w in workflow_ids {
                    self.workflow_ids.remove(w);
                }
                for c in ci_ids {
                    self.ci_ids.remove(c);
                }
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::given::{at, given, person};

    fn wong() -> crate::Actor {
        person("u-wong", "運維中心", &["operator"])
    }

    fn linux() -> BaselineDefinition {
        BaselineDefinition {
            name: "Linux 主機安全基線".into(),
            scope: BaselineScope::System,
            settings: BTreeMap::from([
                ("ntp".into(), "on".into()),
                ("selinux".into(), "enforcing".into()),
            ]),
            description: String::new(),
        }
    }

    fn created() -> BaselineEvent {
        BaselineEvent::BaselineCreated {
            baseline_id: Uuid::from_u128(1),
            definition: linux(),
            at: at(9),
        }
    }

    #[test]
    fn an_operator_creates_a_baseline_and_a_requester_cannot() {
        let create = || BaselineCommand::Create {
            baseline_id: Uuid::from_u128(1),
            definition: linux(),
        };
        given::<Baseline>([])
            .when(create(), &wong())
            .then([created()]);
        given::<Baseline>([])
            .when(create(), &person("u-chan", "財政局", &["requester"]))
            .then_err(BaselineError::NotPermitted);
        given::<Baseline>([created()])
            .when(create(), &wong())
            .then_err(BaselineError::AlreadyExists);
    }

    #[test]
    fn a_baseline_without_settings_or_with_a_blank_key_is_refused_by_field() {
        let mut empty = linux();
        empty.settings.clear();
        given::<Baseline>([])
            .when(
                BaselineCommand::Create {
                    baseline_id: Uuid::from_u128(1),
                    definition: empty,
                },
                &wong(),
            )
            .then_err(invalid("settings", "a baseline needs at least one setting").into());
        let mut blank = linux();
        blank.settings.insert(" ".into(), "x".into());
        given::<Baseline>([])
            .when(
                BaselineCommand::Create {
                    baseline_id: Uuid::from_u128(1),
                    definition: blank.clone(),
                },
                &wong(),
            )
            .then_err(
                invalid(
                    "settings",
                    "\" \" is not a key: keys are non-empty, without surrounding spaces",
                )
                .into(),
            );
        given::<Baseline>([])
            .when(
                BaselineCommand::Edit {
                    definition: blank,
                    note: String::new(),
                },
                &wong(),
            )
            .then_err(BaselineError::NotFound);
    }

    #[test]
    fn each_edit_is_a_new_version_and_an_edit_that_changes_nothing_is_refused() {
        let mut stricter = linux();
        stricter
            .settings
            .insert("password_max_days".into(), "90".into());
        let edited = BaselineEvent::BaselineEdited {
            version: 2,
            definition: stricter.clone(),
            note: "密碼有效期".into(),
            at: at(9),
        };
        given::<Baseline>([created()])
            .when(
                BaselineCommand::Edit {
                    definition: stricter.clone(),
                    note: "密碼有效期".into(),
                },
                &wong(),
            )
            .then([edited.clone()]);
        let state = [created(), edited]
            .iter()
            .fold(Baseline::default(), |s, e| s.evolve(e));
        assert_eq!(state.version, 2);
        given::<Baseline>([created()])
            .when(
                BaselineCommand::Edit {
                    definition: linux(),
                    note: String::new(),
                },
                &wong(),
            )
            .then_err(invalid("baseline", "the edit changes nothing").into());
    }

    #[test]
    fn attaching_records_only_what_is_new_and_nothing_new_is_refused() {
        let (w, c) = (Uuid::from_u128(10), Uuid::from_u128(20));
        let attached = BaselineEvent::BaselineAttached {
            workflow_ids: vec![w],
            ci_ids: vec![c],
        };
        given::<Baseline>([created()])
            .when(
                BaselineCommand::Attach {
                    workflow_ids: vec![w, w],
                    ci_ids: vec![c],
                },
                &wong(),
            )
            .then([attached.clone()]);
        given::<Baseline>([created(), attached.clone()])
            .when(
                BaselineCommand::Attach {
                    workflow_ids: vec![w],
                    ci_ids: vec![c, Uuid::from_u128(21)],
                },
                &wong(),
            )
            .then([BaselineEvent::BaselineAttached {
                workflow_ids: vec![],
                ci_ids: vec![Uuid::from_u128(21)],
            }]);
        given::<Baseline>([created(), attached])
            .when(
                BaselineCommand::Attach {
                    workflow_ids: vec![w],
                    ci_ids: vec![],
                },
                &wong(),
            )
            .then_err(
                invalid(
                    "ciIds",
                    "name a workflow or configuration item not attached already",
                )
                .into(),
            );
    }

    #[test]
    fn a_missing_setting_and_a_different_value_are_findings_and_extras_are_not() {
        let expected = linux().settings;
        let actual = BTreeMap::from([
            ("ntp".to_owned(), Some("on".to_owned())),
            ("selinux".to_owned(), Some("permissive".to_owned())),
            ("extra".to_owned(), Some("x".to_owned())),
        ]);
        assert_eq!(
            compare(&expected, &actual),
            vec![Finding {
                key: "selinux".into(),
                expected: "enforcing".into(),
                actual: Some("permissive".into()),
            }]
        );
        let missing = BTreeMap::from([("selinux".to_owned(), Some("enforcing".to_owned()))]);
        assert_eq!(
            compare(&expected, &missing),
            vec![Finding {
                key: "ntp".into(),
                expected: "on".into(),
                actual: None,
            }]
        );
        let same = expected
            .iter()
            .map(|(k, v)| (k.clone(), Some(v.clone())))
            .collect();
        assert!(compare(&expected, &same).is_empty());
    }
}
