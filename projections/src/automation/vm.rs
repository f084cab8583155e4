//! Virtual-server operations as an operator reads them: per configuration item, every
//! power change, backup, restore and deletion, and every operation its driver failed
//! (with the error and the end of the driver's log), newest last. A VM's backups are on
//! the CI itself (`ConfigurationItem::backups`, in the inventory).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use opsledger_domain::resources::cmdb::CiEvent;
use opsledger_domain::RecordedEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::resources::inventory::ResourceEvent;

/// One operation on a CI, done or failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationRecord {
    /// The driver's operation: `start_vm`, `stop_vm`, `restart_vm`, `backup_vm`,
    /// `restore_vm`, `delete_vm`, `collect_configuration`.
    pub operation: String,
    /// `None`: done; otherwise what the driver said.
    pub error: Option<String>,
    /// For a failure, the end of the driver's log.
    pub log: Option<String>,
    /// The backup taken or restored.
    pub backup_id: Option<Uuid>,
    /// A stop's reason.
    pub reason: Option<String>,
    pub at: DateTime<Utc>,
    pub by: String,
    pub position: u64,
}

/// Every CI's operations.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct VirtualServers {
    operations: HashMap<Uuid, Vec<OperationRecord>>,
}

impl VirtualServers {
    pub fn on_resource(&mut self, event: &RecordedEvent, e: &ResourceEvent) {
        let ResourceEvent::Ci(e) = e else {
            return;
        };
        let (operation, error, log, backup_id, reason) = match e {
            CiEvent::CiStarted => ("start_vm", None, None, None, None),
            CiEvent::CiStopped { reason } => ("stop_vm", None, None, None, Some(reason.clone())),
            CiEvent::CiRestarted { .. } => ("restart_vm", None, None, None, None),
            CiEvent::BackupTaken { backup_id, .. } => {
                ("backup_vm", None, None, Some(*backup_id), None)
            }
            CiEvent::BackupRestored { backup_id, .. } => {
                ("restore_vm", None, None, Some(*backup_id), None)
            }
            CiEvent::VmDeleted { .. } => ("delete_vm", None, None, None, None),
            CiEvent::CiOperationFailed {
                operation,
                error,
                log,
                ..
            } => (
                operation.as_str(),
                Some(error.clone()),
                Some(log.clone()),
                None,
                None,
            ),
            _ => return,
        };
        let Some(ci_id) = crate::stream_id(&event.stream) else {
            return;
        };
        self.operations
            .entry(ci_id)
            .or_default()
            .push(OperationRecord {
                operation: operation.to_owned(),
                error,
                log,
                backup_id,
                reason,
                at: event.metadata.recorded_at,
                by: event.metadata.actor.id.clone(),
                position: event.position,
            });
    }

    /// A CI's operations, oldest first.
    pub fn operations(&self, ci_id: Uuid) -> &[OperationRecord] {
        self.operations.get(&ci_id).map_or(&[], Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    use opsledger_domain::resources::cmdb::CiEvent;
    use uuid::Uuid;

    use crate::test_log::{at, person, Log};
    use crate::ReadModels;

    #[test]
    fn a_failed_operation_is_listed_with_its_error_beside_the_ones_done() {
        let chan = person("u-chan", "財政局", &["requester"]);
        let ci = Uuid::from_u128(5);
        let stream = format!("ci-{ci}");
        let mut log = Log::default();
        log.record(
            &stream,
            &CiEvent::CiOperationFailed {
                operation: "stop_vm".into(),
                error: "simulated failure of stop_vm (do)".into(),
                log: "simulator: stop_vm do".into(),
                at: at(9),
            },
            &chan,
            9,
        );
        log.record(
            &stream,
            &CiEvent::CiStopped {
                reason: "維護".into(),
            },
            &chan,
            10,
        );
        log.record(
            &stream,
            &CiEvent::LeaseExtended {
                from: at(1),
                to: at(2),
                request_id: None,
            },
            &chan,
            10,
        );
        let models = log.fold::<ReadModels>();
        let ops = models.vm.operations(ci);
        assert_eq!(ops.len(), 2, "{ops:?}");
        assert_eq!(ops[0].operation, "stop_vm");
        assert_eq!(
            ops[0].error.as_deref(),
            Some("simulated failure of stop_vm (do)")
        );
        assert_eq!(ops[1].error, None);
        assert_eq!(ops[1].reason.as_deref(), Some("維護"));
        assert_eq!(ops[1].by, "u-chan");
    }
}
