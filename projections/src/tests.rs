//! The read models over a flow recorded through the domain's own rules, and over a crafted
//! history that breaks them.

use opsledger_domain::kernel::aggregate::{Aggregate, Context, Role};
use opsledger_domain::requests::catalog::{CatalogEvent, OfferingKind};
use opsledger_domain::requests::demo::{new_vm, two_steps, vm_definition};
use opsledger_domain::requests::request::{
    CatalogSnapshot, Decider, Delegation, Request, RequestCommand, RequestEvent, RequestStatus,
};
use opsledger_domain::Actor;
use uuid::Uuid;

use crate::audit::{AuditFilter, AuditTrail};
use crate::requests::catalog::Catalog;
use crate::requests::compliance::{Compliance, FindingKind};
use crate::requests::{Order, RequestFilter, RequestView, Requests};
use crate::test_log::{at, person, Log};

fn chan() -> Actor {
    person("u-chan", "財政局", &["requester"])
}
fn ho() -> Actor {
    person("u-ho", "財政局", &["approver"])
}
fn wong() -> Actor {
    person("u-wong", "運維中心", &["operator"])
}

const ITEM: u128 = 1;

fn item_stream() -> String {
    format!("catalog_item-{}", Uuid::from_u128(ITEM))
}

fn request_stream(n: u128) -> String {
    format!("request-{}", Uuid::from_u128(n))
}

/// Runs `command` through the request's own rules and records what it decides.
fn run(log: &mut Log, n: u128, command: RequestCommand, by: &Actor, hour: u32) {
    let stream = request_stream(n);
    let state = log
        .events
        .iter()
        .filter(|e| e.stream == stream)
        .map(|e| {
            <RequestEvent as opsledger_domain::kernel::aggregate::DomainEvent>::from_recorded(e)
                .unwrap()
        })
        .fold(Request::default(), |s, e| s.evolve(&e));
    let ctx = Context {
        actor: by.clone(),
        now: at(hour),
    };
    for event in state.decide(command, &ctx).unwrap() {
        log.record(&stream, &event, by, hour);
    }
}

fn submit(n: u128, project: &str) -> RequestCommand {
    RequestCommand::SubmitRequest {
        request_id: Uuid::from_u128(n),
        item: CatalogSnapshot {
            item_id: Uuid::from_u128(ITEM),
            version: 1,
            definition: vm_definition(two_steps()),
            retired: false,
        },
        details: new_vm(4, 1, project),
        over_quota: None,
    }
}

fn approve(step: usize, comment: &str) -> RequestCommand {
    RequestCommand::ApproveRequest {
        step,
        comment: Some(comment.into()),
        on_behalf_of: None,
    }
}

/// Two requests: one approved through both steps and fulfilled, one waiting at step 0.
fn flow() -> Log {
    let mut log = Log::default();
    log.record(
        &item_stream(),
        &CatalogEvent::CatalogItemCreated {
            item_id: Uuid::from_u128(ITEM),
            version: 1,
            definition: vm_definition(two_steps()),
        },
        &person("u-lam", "運維中心", &["catalog_admin"]),
        8,
    );
    run(&mut log, 10, submit(10, "電子公文交換"), &chan(), 9);
    run(&mut log, 10, approve(0, "同意"), &ho(), 10);
    run(&mut log, 10, approve(1, "資源充足"), &wong(), 11);
    run(
        &mut log,
        10,
        RequestCommand::MarkFulfilled {
            note: "vm-0042".into(),
        },
        &wong(),
        12,
    );
    run(&mut log, 11, submit(11, "財政數據平台"), &chan(), 13);
    log
}

#[test]
fn the_requests_view_follows_each_request_through_its_chain() {
    let requests: Requests = flow().fold();
    let done = requests.get(Uuid::from_u128(10)).unwrap();
    assert_eq!(
        (done.status(), done.kind(), done.project()),
        (
            RequestStatus::Fulfilled,
            "new_resource",
            Some("電子公文交換")
        )
    );
    assert_eq!(
        (done.item_version, done.offering, done.submitted_at),
        (1, OfferingKind::VirtualMachine, at(9))
    );
    let waiting = RequestFilter {
        status: Some(RequestStatus::PendingApproval),
        ..RequestFilter::default()
    };
    let ids: Vec<Uuid> = requests
        .list(&waiting, None, Order::OldestFirst)
        .map(|(_, r)| r.request_id)
        .collect();
    assert_eq!(ids, [Uuid::from_u128(11)]);
    let by_project = RequestFilter {
        project: Some("電子公文交換".into()),
        department: Some("財政局".into()),
        ..RequestFilter::default()
    };
    assert_eq!(
        requests.list(&by_project, None, Order::OldestFirst).count(),
        1
    );
    let later = RequestFilter {
        submitted_from: Some(at(13)),
        ..RequestFilter::default()
    };
    assert_eq!(requests.list(&later, None, Order::NewestFirst).count(), 1);
}

#[test]
fn pending_approvals_are_the_open_steps_an_approver_may_decide() {
    let requests: Requests = flow().fold();
    let pending: Vec<Uuid> = requests
        .pending_for(&ho(), at(14), None)
        .map(|(_, r)| r.request_id)
        .collect();
    assert_eq!(pending, [Uuid::from_u128(11)]);
    assert_eq!(
        requests.pending_for(&wong(), at(14), None).count(),
        0,
        "step 1 is not open yet"
    );
    assert_eq!(
        requests.pending_for(&chan(), at(14), None).count(),
        0,
        "never one's own"
    );
}

#[test]
fn the_catalogue_lists_what_a_requester_may_see() {
    let mut log = flow();
    let catalog: Catalog = log.fold();
    assert_eq!(
        catalog
            .visible_to(&[Role::Requester], Some("財政局"))
            .count(),
        1
    );
    assert_eq!(
        catalog
            .visible_to(&[Role::Engineer], Some("財政局"))
            .count(),
        0
    );
    log.record(
        &item_stream(),
        &CatalogEvent::CatalogItemRetired {
            version: 1,
            reason: "換代".into(),
        },
        &person("u-lam", "運維中心", &["catalog_admin"]),
        15,
    );
    let catalog: Catalog = log.fold();
    assert_eq!(
        catalog
            .visible_to(&[Role::Requester], Some("財政局"))
            .count(),
        0
    );
    assert_eq!(
        catalog.all(true).next().map(|e| (e.retired, e.version())),
        Some((true, 1))
    );
}

#[test]
fn the_audit_trail_shows_who_did_what_with_which_comment() {
    let log = flow();
    let trail: AuditTrail = log.fold();
    assert_eq!(trail.len(), log.events.len());
    let request = AuditFilter {
        stream: Some(request_stream(10)),
        ..AuditFilter::default()
    };
    let lines: Vec<(String, String, Option<String>)> = trail
        .entries(&request)
        .map(|e| {
            let comment = e.comment.map(str::to_owned);
            (e.event_type.to_owned(), e.actor.to_owned(), comment)
        })
        .filter(|(t, ..)| t.starts_with("Approval") || t == "RequestFulfilled")
        .collect();
    assert_eq!(
        lines,
        [
            ("ApprovalGranted".into(), "u-ho".into(), Some("同意".into())),
            (
                "ApprovalGranted".into(),
                "u-wong".into(),
                Some("資源充足".into())
            ),
            (
                "RequestFulfilled".into(),
                "u-wong".into(),
                Some("vm-0042".into())
            ),
        ]
    );
    let positions: Vec<u64> = trail.entries(&request).map(|e| e.position).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "in log order");
    let by_wong = AuditFilter {
        actor: Some("u-wong".into()),
        until: Some(at(12)),
        ..AuditFilter::default()
    };
    let types: Vec<&str> = trail.entries(&by_wong).map(|e| e.event_type).collect();
    assert_eq!(
        types,
        ["ApprovalGranted", "StepCompleted", "RequestApproved"],
        "not the fulfilment at 12:00"
    );
}

#[test]
fn a_clean_history_has_no_findings() {
    let compliance: Compliance = flow().fold();
    assert_eq!(compliance.findings(), []);
}

#[test]
fn a_substitutes_approval_is_audited_under_both_names() {
    let mut log = flow();
    let yip = person("u-yip", "財政局", &["requester"]);
    let delegation = Delegation {
        delegator: ho(),
        substitute: "u-yip".into(),
        from: at(8),
        until: at(18),
    };
    run(
        &mut log,
        11,
        RequestCommand::ApproveRequest {
            step: 0,
            comment: None,
            on_behalf_of: Some(delegation),
        },
        &yip,
        14,
    );
    let trail: AuditTrail = log.fold();
    let for_ho = AuditFilter {
        actor: Some("u-ho".into()),
        from: Some(at(14)),
        ..AuditFilter::default()
    };
    let entry = trail.entries(&for_ho).next().unwrap();
    assert_eq!((entry.actor, entry.on_behalf_of), ("u-yip", Some("u-ho")));
    let compliance: Compliance = log.fold();
    assert_eq!(compliance.findings(), [], "a valid delegation is compliant");
}

#[test]
fn a_crafted_history_shows_every_kind_of_finding() {
    // Events no command would decide: written straight into the log, as an import could.
    let mut log = flow();
    let stream = request_stream(11);
    let granted = |step: usize, by: &Actor| RequestEvent::ApprovalGranted {
        step,
        decider: Decider {
            user: by.id.clone(),
            roles: by.roles.clone(),
            on_behalf_of: None,
        },
        comment: None,
    };
    log.record(&stream, &granted(0, &chan()), &chan(), 14); // the requester, without the role
    log.record(
        &stream,
        &RequestEvent::StepCompleted {
            step: 0,
            at: at(14),
        },
        &chan(),
        14,
    );
    let ho_operator = person("u-ho", "財政局", &["approver", "operator"]);
    log.record(&stream, &granted(0, &ho_operator), &ho_operator, 15);
    log.record(&stream, &granted(1, &ho_operator), &ho_operator, 15); // a second step
    log.record(
        &stream,
        &RequestEvent::RequestFulfilled {
            note: "搶先交付".into(),
        },
        &wong(),
        16,
    );
    let compliance: Compliance = log.fold();
    let found: Vec<(FindingKind, Option<&str>)> = compliance
        .findings()
        .iter()
        .map(|f| (f.kind, f.person.as_deref()))
        .collect();
    assert_eq!(
        found,
        [
            (FindingKind::ApprovedByRequester, Some("u-chan")),
            (FindingKind::ApproverLackedRole, Some("u-chan")),
            (FindingKind::OnePersonTwoSteps, Some("u-ho")),
            (FindingKind::FulfilledWithoutApproval, None),
        ]
    );
    assert!(compliance
        .findings()
        .iter()
        .all(|f| f.request_id == Uuid::from_u128(11)));
}

/// Sixty requests from three requesters in two departments, for three projects, left in
/// every state a chain can reach.
fn many() -> Log {
    let mut log = flow();
    let lee = person("u-lee", "衛生局", &["requester"]);
    let kwok = person("u-kwok", "衛生局", &["approver"]);
    let ng = person("u-ng", "財政局", &["requester"]);
    let projects = ["電子公文交換", "財政數據平台", "電子病歷"];
    for n in 100..160u128 {
        let (requester, approver) = match n % 3 {
            0 => (chan(), ho()),
            1 => (lee.clone(), kwok.clone()),
            _ => (ng.clone(), ho()),
        };
        run(
            &mut log,
            n,
            submit(n, projects[(n % 7 % 3) as usize]),
            &requester,
            9,
        );
        match n % 5 {
            1 => run(&mut log, n, approve(0, "同意"), &approver, 10),
            2 => run(
                &mut log,
                n,
                RequestCommand::CancelRequest { reason: None },
                &requester,
                10,
            ),
            3 => run(
                &mut log,
                n,
                RequestCommand::RejectRequest {
                    step: 0,
                    comment: "預算不足".into(),
                    on_behalf_of: None,
                },
                &approver,
                10,
            ),
            4 => {
                run(&mut log, n, approve(0, "同意"), &approver, 10);
                run(&mut log, n, approve(1, "同意"), &wong(), 11);
            }
            _ => {}
        }
    }
    log
}

/// Every combination of filters, both orders and every cursor: the indexed list is the
/// plain scan of all requests, and a cursor continues exactly after its request.
#[test]
fn an_indexed_list_is_the_filtered_scan_from_any_cursor() {
    let requests: Requests = many().fold();
    let all = RequestFilter::default();
    let everything: Vec<(usize, &RequestView)> =
        requests.list(&all, None, Order::OldestFirst).collect();
    assert_eq!(everything.len(), requests.len());
    let statuses = [
        None,
        Some(RequestStatus::PendingApproval),
        Some(RequestStatus::Approved),
        Some(RequestStatus::Cancelled),
        Some(RequestStatus::Rejected),
        Some(RequestStatus::Fulfilled),
    ];
    let departments = [None, Some("財政局"), Some("衛生局"), Some("無此部門")];
    let requesters = [None, Some("u-chan"), Some("u-lee"), Some("u-ng")];
    let projects = [None, Some("電子公文交換"), Some("電子病歷")];
    let mut checked = 0;
    for status in statuses {
        for department in departments {
            for requester in requesters {
                for project in projects {
                    let filter = RequestFilter {
                        status,
                        department: department.map(Into::into),
                        requester: requester.map(Into::into),
                        project: project.map(Into::into),
                        ..RequestFilter::default()
                    };
                    let expected: Vec<usize> = everything
                        .iter()
                        .filter(|(_, r)| filter.matches(r))
                        .map(|(i, _)| *i)
                        .collect();
                    for order in [Order::OldestFirst, Order::NewestFirst] {
                        let mut want = expected.clone();
                        if order == Order::NewestFirst {
                            want.reverse();
                        }
                        let got: Vec<usize> = requests
                            .list(&filter, None, order)
                            .map(|(i, _)| i)
                            .collect();
                        assert_eq!(got, want, "{filter:?} {order:?}");
                        for (k, cursor) in want.iter().enumerate() {
                            let rest: Vec<usize> = requests
                                .list(&filter, Some(*cursor), order)
                                .map(|(i, _)| i)
                                .collect();
                            assert_eq!(rest, want[k + 1..], "{filter:?} {order:?} after {cursor}");
                            checked += 1;
                        }
                    }
                }
            }
        }
    }
    assert!(checked > 1_000, "only {checked} cursors checked");
    let statuses: std::collections::BTreeSet<String> = everything
        .iter()
        .map(|(_, r)| format!("{:?}", r.status()))
        .collect();
    assert_eq!(statuses.len(), 5, "{statuses:?}");
}

/// The read models decode each event once and share it; each is exactly what it would be
/// folded alone.
#[test]
fn the_models_folded_together_are_each_folded_alone() {
    use crate::notify::notifications::Notifications;
    use crate::requests::delegations::Delegations;
    use crate::ReadModels;
    use opsledger_domain::requests::delegation::DelegationEvent;

    let mut log = many();
    let granted = DelegationEvent::DelegationGranted {
        delegation_id: Uuid::from_u128(900),
        grant: Delegation {
            delegator: ho(),
            substitute: "u-yip".into(),
            from: at(8),
            until: at(18),
        },
        reason: "年假".into(),
    };
    log.record(
        &format!("delegation-{}", Uuid::from_u128(900)),
        &granted,
        &ho(),
        8,
    );
    // One event recorded at an odd instant, to the nanosecond.
    log.events[3].metadata.recorded_at += chrono::Duration::nanoseconds(123_456_789);
    let together: ReadModels = log.fold();
    fn json<T: serde::Serialize>(model: &T) -> serde_json::Value {
        serde_json::to_value(model).unwrap()
    }
    assert_eq!(json(&together.requests), json(&log.fold::<Requests>()));
    assert_eq!(json(&together.compliance), json(&log.fold::<Compliance>()));
    assert_eq!(json(&together.audit), json(&log.fold::<AuditTrail>()));
    assert_eq!(json(&together.catalog), json(&log.fold::<Catalog>()));
    assert_eq!(
        json(&together.delegations),
        json(&log.fold::<Delegations>())
    );
    let notices = log.fold::<Notifications>();
    assert_eq!(json(&together.notifications), json(&notices));
    assert!(json(&notices).to_string().contains("DelegationGranted"));
    assert_eq!(together.position, log.events.len() as u64);

    // A snapshot reads back as the same models.
    let mut back: ReadModels =
        serde_json::from_str(&serde_json::to_string(&together).unwrap()).unwrap();
    back.restored();
    assert_eq!(json(&back), json(&together));
    let pending = RequestFilter {
        status: Some(RequestStatus::PendingApproval),
        department: Some("衛生局".into()),
        ..RequestFilter::default()
    };
    let ids = |m: &ReadModels| -> Vec<usize> {
        m.requests
            .list(&pending, None, Order::NewestFirst)
            .map(|(i, _)| i)
            .collect()
    };
    assert!(!ids(&together).is_empty());
    assert_eq!(ids(&back), ids(&together), "the indexes are rebuilt");
}

#[test]
fn notices_reach_the_people_who_must_act_once_each() {
    use crate::notify::notifications::{NoticeKind, Notifications};
    use opsledger_domain::requests::demo::small_vm_pre_approved;

    let mut log = flow();
    // A step of request 11 waited past its time and went up to the admins.
    let escalated = RequestEvent::StepEscalated {
        step: 0,
        to: Some(Role::Admin),
        waited_hours: 26,
    };
    log.record(
        &request_stream(11),
        &escalated,
        &Actor::system("scheduler"),
        15,
    );
    // A small VM, pre-approved on submission.
    let small = RequestCommand::SubmitRequest {
        request_id: Uuid::from_u128(12),
        item: CatalogSnapshot {
            item_id: Uuid::from_u128(ITEM),
            version: 1,
            definition: vm_definition(small_vm_pre_approved()),
            retired: false,
        },
        details: new_vm(2, 1, "電子公文交換"),
        over_quota: None,
    };
    run(&mut log, 12, small, &chan(), 16);

    let notices: Notifications = log.fold();
    let seen = |actor: &Actor| -> Vec<(NoticeKind, String)> {
        notices
            .for_actor(actor, None)
            .map(|(_, n)| (n.kind, n.subject.stream()))
            .collect()
    };
    let decided = |n: u128| (NoticeKind::RequestDecided, request_stream(n));
    let needed = |n: u128| (NoticeKind::ApprovalNeeded, request_stream(n));
    assert_eq!(
        seen(&chan()),
        [decided(10), decided(10), decided(12)],
        "request 10 approved then fulfilled; request 12 approved once, pre-approval included"
    );
    assert_eq!(seen(&ho()), [needed(10), needed(11)]);
    assert_eq!(seen(&wong()), [needed(10)], "step 1 of request 10 only");
    let root = person("u-root", "運維中心", &["admin"]);
    assert!(seen(&root).contains(&(NoticeKind::StepEscalated, request_stream(11))));
    let elsewhere = person("u-siu", "教育局", &["approver"]);
    assert_eq!(
        seen(&elsewhere),
        [],
        "another department's approvers are not asked"
    );
}

mod resources {
    //! The inventory and usage folds over a small hand-made history.

    use std::collections::BTreeMap;

    use opsledger_domain::resources::cmdb::{CiEvent, CiRecord, CiType, Placement};
    use opsledger_domain::resources::pool::{Amount, Overcommit, PoolEvent, PoolKind};
    use uuid::Uuid;

    use crate::resources::usage::{AsOf, GroupBy, UsageFilter};
    use crate::test_log::{at, Log};
    use crate::ReadModels;

    fn cores(cpu_cores: u64) -> Amount {
        Amount {
            cpu_cores,
            memory_gib: 0,
            storage_gib: 0,
        }
    }

    fn placed(pool: u128, cpu: u64) -> Placement {
        Placement {
            pool_id: Uuid::from_u128(pool),
            amount: cores(cpu),
        }
    }

    fn registered(ci: u128, pool: u128, cpu: u64) -> CiEvent {
        CiEvent::CiRegistered {
            ci_id: Uuid::from_u128(ci),
            record: CiRecord {
                ci_type: CiType::VirtualMachine,
                name: format!("vm-{ci}"),
                attributes: BTreeMap::new(),
                placement: Some(placed(pool, cpu)),
                addresses: vec![],
                department: "財政局".into(),
                project: Some("稅務系統".into()),
                owner: None,
                watchers: vec![],
                request_id: None,
                lease: None,
            },
            at: at(0),
        }
    }

    /// Two VMs: one of 4 cores 1:00–5:00, one of 2 cores from 3:00, moved to another pool
    /// at 4:00 and still running at 8:00.
    fn history() -> Log {
        let wong = super::wong();
        let mut log = Log::default();
        for pool in [100, 200] {
            let created = PoolEvent::PoolCreated {
                pool_id: Uuid::from_u128(pool),
                name: format!("pool {pool}"),
                kind: PoolKind::VirtualMachine,
                capacity: cores(64),
                overcommit: Overcommit::default(),
                units: Default::default(),
            };
            log.record(
                &format!("pool-{}", Uuid::from_u128(pool)),
                &created,
                &wong,
                0,
            );
        }
        let a = format!("ci-{}", Uuid::from_u128(1));
        let b = format!("ci-{}", Uuid::from_u128(2));
        log.record(&a, &registered(1, 100, 4), &wong, 1);
        log.record(&b, &registered(2, 100, 2), &wong, 3);
        let moved = CiEvent::CiMoved {
            from: Some(placed(100, 2)),
            to: placed(200, 2),
            at: at(4),
        };
        log.record(&b, &moved, &wong, 4);
        let retired = CiEvent::CiRetired {
            reason: "done".into(),
            released: Some(placed(100, 4)),
            at: at(5),
            notify: vec![],
        };
        log.record(&a, &retired, &wong, 5);
        log
    }

    #[test]
    fn usage_sums_each_stretch_in_the_window_counts_a_moved_ci_once_and_clips_at_as_of() {
        let models: ReadModels = history().fold();
        let usage = &models.inventory.usage;
        let now = AsOf {
            position: models.position,
            at: at(8),
        };
        let rows = usage.table(GroupBy::Project, &UsageFilter::default(), at(0), at(8), now);
        assert_eq!(rows.len(), 1);
        // 4 cores × 4 h + 2 cores × 5 h; peak 6 cores (3:00–5:00); two CIs.
        assert_eq!(rows[0].cpu_core_hours, 26.0);
        assert_eq!(rows[0].peak.cpu_cores, 6);
        assert_eq!(rows[0].resources, 2);
        let pools = usage.table(GroupBy::Pool, &UsageFilter::default(), at(0), at(8), now);
        let by_pool: Vec<(u128, f64)> = pools
            .iter()
            .map(|r| (r.pool.unwrap().as_u128(), r.cpu_core_hours))
            .collect();
        assert!(
            by_pool.contains(&(100, 18.0)) && by_pool.contains(&(200, 8.0)),
            "{by_pool:?}"
        );
        // As of the move (position 5, at 4:00): nothing after it is known.
        let then = AsOf {
            position: 5,
            at: at(4),
        };
        let rows = usage.table(
            GroupBy::Project,
            &UsageFilter::default(),
            at(0),
            at(8),
            then,
        );
        assert_eq!(rows[0].cpu_core_hours, 4.0 * 3.0 + 2.0);
    }

    #[test]
    fn a_pools_figures_as_of_any_position_are_those_it_had_then() {
        let models: ReadModels = history().fold();
        let pool = models.inventory.pool(Uuid::from_u128(100)).unwrap();
        // Only CI events here: capacity is not allocated by the pool's own events, but
        // the counts follow the CIs.
        assert_eq!(pool.at(4).unwrap().counts, [2, 0, 0]);
        assert_eq!(pool.at(5).unwrap().counts, [1, 0, 0]);
        assert_eq!(pool.now().counts, [0, 0, 1]);
        assert!(pool.at(0).is_none(), "not created yet");
        assert_eq!(models.inventory.position_at(at(3)), 4);
        assert_eq!(models.inventory.position_at(at(2)), 3);
        // Positions 1–6 were recorded at 0:00, 0:00, 1:00, 3:00, 4:00, 5:00.
        let times: Vec<_> = (1..=6)
            .map(|p| models.inventory.time_at(p).unwrap())
            .collect();
        assert_eq!(times, [at(0), at(0), at(1), at(3), at(4), at(5)]);
    }
}
