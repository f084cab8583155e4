//! Configuration baselines as operators and the provisioning engine read them: every
//! baseline with its versions, the baselines attached to each configuration item and to
//! each workflow, and each CI's latest audit against each baseline with its findings.
//! Folded from the baseline streams and the CIs' `BaselineAudited` events.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use opsledger_domain::automation::baseline::{BaselineDefinition, BaselineEvent, Finding};
use opsledger_domain::resources::cmdb::CiEvent;
use opsledger_domain::RecordedEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::resources::inventory::ResourceEvent;

/// A baseline at one version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaselineVersion {
    pub version: u32,
    pub definition: BaselineDefinition,
    pub at: DateTime<Utc>,
    pub by: String,
    pub note: String,
}

/// A baseline with every version, newest last, and what it is attached to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaselineView {
    pub id: Uuid,
    pub history: Vec<BaselineVersion>,
    pub workflow_ids: BTreeSet<Uuid>,
    pub ci_ids: BTreeSet<Uuid>,
}

impl BaselineView {
    /// The current version.
    pub fn current(&self) -> &BaselineVersion {
        self.history
            .last()
            .expect("a baseline has its first version")
    }

    /// The definition at `version`.
    pub fn at_version(&self, version: u32) -> Option<&BaselineVersion> {
        self.history.iter().find(|v| v.version == version)
    }
}

/// One audit of a CI against a baseline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditView {
    pub ci_id: Uuid,
    pub baseline_id: Uuid,
    pub baseline_version: u32,
    pub findings: Vec<Finding>,
    pub at: DateTime<Utc>,
    pub by: String,
    pub position: u64,
}

/// Every baseline and audit.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Baselines {
    /// By creation, oldest first.
    baselines: Vec<BaselineView>,
    /// Where each baseline is in `baselines`.
    index: HashMap<Uuid, usize>,
    /// The latest audit of each CI against each baseline.
    audits: HashMap<Uuid, BTreeMap<Uuid, AuditView>>,
}

impl Baselines {
    pub fn on_event(&mut self, event: &RecordedEvent, e: &BaselineEvent) {
        let Some(id) = crate::stream_id(&event.stream) else {
            return;
        };
        let by = event.metadata.actor.id.clone();
        if let BaselineEvent::BaselineCreated { definition, at, .. } = e {
            self.index.insert(id, self.baselines.len());
            self.baselines.push(BaselineView {
                id,
                history: vec![BaselineVersion {
                    version: 1,
                    definition: definition.clone(),
                    at: *at,
                    by,
                    note: String::new(),
                }],
                workflow_ids: BTreeSet::new(),
                ci_ids: BTreeSet::new(),
            });
            return;
        }
        let Some(view) = self.index.get(&id).map(|&i| &mut self.baselines[i]) else {
            return;
        };
        match e {
            BaselineEvent::BaselineCreated { .. } => {}
            BaselineEvent::BaselineEdited {
                version,
                definition,
                note,
                at,
            } => view.history.push(BaselineVersion {
                version: *version,
                definition: definition.clone(),
                at: *at,
                by,
                note: note.clone(),
            }),
            BaselineEvent::BaselineAttached {
                workflow_ids,
                ci_ids,
            } => {
                view.workflow_ids.extend(workflow_ids);
                view.ci_ids.extend(ci_ids);
            }
            BaselineEvent::BaselineDetached {
                workflow_ids,
                ci_ids,
            } => {
                for w in workflow_ids {
                    view.workflow_ids.remove(w);
                }
                for c in ci_ids {
                    view.ci_ids.remove(c);
                }
            }
        }
    }

    /// Folds a CI's audits.
    pub fn on_resource(&mut self, event: &RecordedEvent, e: &ResourceEvent) {
        let ResourceEvent::Ci(CiEvent::BaselineAudited {
            baseline_id,
            baseline_version,
            findings,
            at,
        }) = e
        else {
            return;
        };
        let Some(ci_id) = crate::stream_id(&event.stream) else {
            return;
        };
        self.audits.entry(ci_id).or_default().insert(
            *baseline_id,
            AuditView {
                ci_id,
                baseline_id: *baseline_id,
                baseline_version: *baseline_version,
                findings: findings.clone(),
                at: *at,
                by: event.metadata.actor.id.clone(),
                position: event.position,
            },
        );
    }

    /// Rebuilds the index after a snapshot was read back.
    pub(crate) fn restored(&mut self) {
        self.index = self
            .baselines
            .iter()
            .enumerate()
            .map(|(i, b)| (b.id, i))
            .collect();
    }

    pub fn get(&self, id: Uuid) -> Option<&BaselineView> {
        self.index.get(&id).map(|&i| &self.baselines[i])
    }

    /// Every baseline, oldest first.
    pub fn all(&self) -> &[BaselineView] {
        &self.baselines
    }

    /// The baselines attached to a configuration item, oldest first.
    pub fn for_ci(&self, ci_id: Uuid) -> impl Iterator<Item = &BaselineView> + '_ {
        self.baselines
            .iter()
            .filter(move |b| b.ci_ids.contains(&ci_id))
    }

    /// The baselines attached to a workflow, oldest first: what the engine audits after
    /// provisioning.
    pub fn for_workflow(&self, workflow_id: Uuid) -> impl Iterator<Item = &BaselineView> + '_ {
        self.baselines
            .iter()
            .filter(move |b| b.workflow_ids.contains(&workflow_id))
    }

    /// A CI's latest audit against each baseline, newest first.
    pub fn audits_of(&self, ci_id: Uuid) -> Vec<&AuditView> {
        let mut audits: Vec<&AuditView> = self
            .audits
            .get(&ci_id)
            .into_iter()
            .flat_map(BTreeMap::values)
            .collect();
        audits.sort_by_key(|a| std::cmp::Reverse(a.position));
        audits
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use opsledger_domain::automation::baseline::{
        BaselineDefinition, BaselineEvent, BaselineScope, Finding,
    };
    use opsledger_domain::resources::cmdb::CiEvent;
    use uuid::Uuid;

    use crate::test_log::{at, person, Log};
    use crate::ReadModels;

    fn definition(selinux: &str) -> BaselineDefinition {
        BaselineDefinition {
            name: "Linux 主機安全基線".into(),
            scope: BaselineScope::System,
            settings: BTreeMap::from([("selinux".into(), selinux.into())]),
            description: String::new(),
        }
    }

    #[test]
    fn baselines_are_found_by_ci_and_workflow_and_the_latest_audit_per_baseline_is_kept() {
        let wong = person("u-wong", "運維中心", &["operator"]);
        let (b, ci, wf) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        let stream = format!("baseline-{b}");
        let mut log = Log::default();
        log.record(
            &stream,
            &BaselineEvent::BaselineCreated {
                baseline_id: b,
                definition: definition("enforcing"),
                at: at(9),
            },
            &wong,
            9,
        );
        log.record(
            &stream,
            &BaselineEvent::BaselineAttached {
                workflow_ids: vec![wf],
                ci_ids: vec![ci],
            },
            &wong,
            9,
        );
        log.record(
            &stream,
            &BaselineEvent::BaselineEdited {
                version: 2,
                definition: definition("permissive"),
                note: "測試環境".into(),
                at: at(10),
            },
            &wong,
            10,
        );
        let audit = |version, findings| CiEvent::BaselineAudited {
            baseline_id: b,
            baseline_version: version,
            findings,
            at: at(11),
        };
        let finding = Finding {
            key: "selinux".into(),
            expected: "enforcing".into(),
            actual: Some("permissive".into()),
        };
        log.record(&format!("ci-{ci}"), &audit(1, vec![finding]), &wong, 11);
        log.record(&format!("ci-{ci}"), &audit(2, vec![]), &wong, 12);
        let models = log.fold::<ReadModels>();
        let baselines = &models.baselines;
        let found: Vec<Uuid> = baselines.for_ci(ci).map(|v| v.id).collect();
        assert_eq!(found, vec![b]);
        assert_eq!(baselines.for_workflow(wf).count(), 1);
        assert_eq!(baselines.for_workflow(ci).count(), 0);
        let view = baselines.get(b).unwrap();
        assert_eq!(view.current().version, 2);
        assert_eq!(
            view.at_version(1).unwrap().definition.settings["selinux"],
            "enforcing"
        );
        let audits = baselines.audits_of(ci);
        assert_eq!(audits.len(), 1);
        assert_eq!(audits[0].baseline_version, 2);
        assert!(audits[0].findings.is_empty());
    }
}
