//! Sample catalogue items and approval chains from the service plan, for `opsledger demo`
//! and for tests.

use std::collections::BTreeMap;

use crate::kernel::aggregate::Role;
use crate::requests::catalog::{
    ApprovalPolicy, ApprovalStep, Audience, Choice, Field, ItemDefinition, OfferingKind, Quorum,
    StepDepartment,
};
use crate::requests::request::{Period, RequestDetails};

/// The standard Linux/Windows virtual machine.
pub fn vm_definition(approval: ApprovalPolicy) -> ItemDefinition {
    ItemDefinition {
        name: "標準虛擬機".into(),
        category: "計算資源".into(),
        description: "x86 虛擬化平台上的虛擬服務器".into(),
        kind: OfferingKind::VirtualMachine,
        fields: vec![
            Field {
                name: "cpu".into(),
                label: "CPU 核數".into(),
                required: true,
                choice: Choice::Integer {
                    min: 1,
                    max: 32,
                    step: 1,
                },
            },
            Field {
                name: "memory_gb".into(),
                label: "內存 (GB)".into(),
                required: true,
                choice: Choice::Integer {
                    min: 2,
                    max: 256,
                    step: 2,
                },
            },
            Field {
                name: "os".into(),
                label: "操作系統".into(),
                required: true,
                choice: Choice::OneOf {
                    options: vec!["linux".into(), "windows".into()],
                },
            },
            Field {
                name: "image".into(),
                label: "系統鏡像".into(),
                required: true,
                choice: Choice::DependsOn {
                    field: "os".into(),
                    options: BTreeMap::from([
                        (
                            "linux".into(),
                            vec!["rhel-9.4".into(), "ubuntu-24.04".into()],
                        ),
                        ("windows".into(), vec!["windows-server-2022".into()]),
                    ]),
                },
            },
        ],
        audience: Audience {
            roles: vec![Role::Requester],
            departments: vec![],
        },
        approval,
        over_quota_step: Some(Box::new(over_quota_step())),
        workflow_id: None,
    }
}

/// The requester's department approves, then the operations centre (運維中心).
pub fn two_steps() -> ApprovalPolicy {
    ApprovalPolicy::Steps {
        steps: vec![
            ApprovalStep {
                name: "部門審批".into(),
                role: Role::Approver,
                department: StepDepartment::Requesters,
                quorum: Quorum::One,
                approvers: vec![],
                escalate_after_hours: Some(24),
                escalate_to: Some(Role::Admin),
            },
            ApprovalStep {
                name: "運維中心審批".into(),
                role: Role::Operator,
                department: StepDepartment::Any,
                quorum: Quorum::One,
                approvers: vec![],
                escalate_after_hours: None,
                escalate_to: None,
            },
        ],
    }
}

/// A request beyond its department's quota also needs the administrator (超額審批).
pub fn over_quota_step() -> ApprovalStep {
    ApprovalStep {
        name: "超額審批".into(),
        role: Role::Admin,
        department: StepDepartment::Any,
        quorum: Quorum::One,
        approvers: vec![],
        escalate_after_hours: None,
        escalate_to: None,
    }
}

/// Small virtual machines are pre-approved (預審批) up to 8 cores in all; larger ones go
/// through [`two_steps`].
pub fn small_vm_pre_approved() -> ApprovalPolicy {
    let ApprovalPolicy::Steps { steps } = two_steps() else {
        unreachable!("two_steps is a chain")
    };
    ApprovalPolicy::PreApproved {
        policy: "小型虛擬機預審批".into(),
        conditions: vec![crate::requests::catalog::Condition {
            field: "cpu".into(),
            at_most: 8,
        }],
        otherwise: steps,
    }
}

/// A block storage volume, approved by the operations centre alone.
pub fn storage_definition() -> ItemDefinition {
    ItemDefinition {
        name: "塊存儲卷".into(),
        category: "存儲資源".into(),
        description: "SAN 存儲池中劃分的數據卷".into(),
        kind: OfferingKind::Storage,
        fields: vec![
            Field {
                name: "size_gb".into(),
                label: "容量 (GB)".into(),
                required: true,
                choice: Choice::Integer {
                    min: 100,
                    max: 10_000,
                    step: 100,
                },
            },
            Field {
                name: "tier".into(),
                label: "存儲級別".into(),
                required: true,
                choice: Choice::OneOf {
                    options: vec!["standard".into(), "performance".into()],
                },
            },
        ],
        audience: Audience::default(),
        approval: ApprovalPolicy::Steps {
            steps: vec![ApprovalStep {
                name: "運維中心審批".into(),
                role: Role::Operator,
                department: StepDepartment::Any,
                quorum: Quorum::One,
                approvers: vec![],
                escalate_after_hours: Some(8),
                escalate_to: Some(Role::Admin),
            }],
        },
        over_quota_step: None,
        workflow_id: None,
    }
}

/// Installing database or middleware software on an existing server.
pub fn software_definition() -> ItemDefinition {
    ItemDefinition {
        name: "軟件安裝".into(),
        category: "軟件服務".into(),
        description: "從介質庫安裝數據庫或中間件".into(),
        kind: OfferingKind::SoftwareInstallation,
        fields: vec![Field {
            name: "software".into(),
            label: "軟件".into(),
            required: true,
            choice: Choice::OneOf {
                options: vec!["oracle-19c".into(), "websphere-9".into(), "iis-10".into()],
            },
        }],
        audience: Audience::default(),
        approval: two_steps(),
        over_quota_step: None,
        workflow_id: None,
    }
}

/// A request for `quantity` standard Linux VMs of `cpu` cores and 16 GB for `project`,
/// from December 2026 to June 2027.
pub fn new_vm(cpu: i64, quantity: u32, project: &str) -> RequestDetails {
    let configuration = [
        ("cpu", serde_json::json!(cpu)),
        ("memory_gb", serde_json::json!(16)),
        ("os", serde_json::json!("linux")),
        ("image", serde_json::json!("rhel-9.4")),
    ];
    RequestDetails::NewResource {
        configuration: configuration
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
        quantity,
        project: project.into(),
        period: Period {
            start: chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap_or_default(),
            end: chrono::NaiveDate::from_ymd_opt(2027, 6, 1).unwrap_or_default(),
        },
    }
}
