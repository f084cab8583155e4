//! `opsledger demo`'s media and script libraries (介質庫): the operating-system media and
//! images, software packages, a patch and two scripts the plan names, their files put in
//! the content store through the same path an upload takes. The scripts are real; the
//! media and packages are small stand-ins that say what they stand for (the demo ships no
//! installation media). Ids and command ids derive from names, so loading twice changes
//! nothing.

use opsledger_domain::automation::library::{
    ItemDetails, LibraryCommand, LibraryItem, LibraryKind, NewVersion,
};
use opsledger_domain::automation::workflow::{Workflow, WorkflowCommand, WorkflowDefinition};
use opsledger_domain::kernel::aggregate::Context;
use opsledger_domain::requests::catalog::{CatalogCommand, CatalogItem};
use opsledger_domain::{Actor, ActorKind};
use uuid::Uuid;

use crate::app::App;

fn id(name: &str) -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_OID,
        format!("opsledger-demo:library {name}").as_bytes(),
    )
}

const HOSTNAME_SH: &str = r#"#!/bin/sh
# Prints the host's name, fully qualified where it can, and its addresses.
set -eu
echo "hostname: $(hostname)"
echo "fqdn:     $(hostname -f 2>/dev/null || hostname)"
echo "address:  $(hostname -I 2>/dev/null || echo unknown)"
"#;

const NTP_CHECK_SH_1: &str = r#"#!/bin/sh
# Checks that the clock is synchronised; exits 1 when it is not.
set -eu
if timedatectl show -p NTPSynchronized --value 2>/dev/null | grep -qx yes; then
    echo "ntp: synchronised"
else
    echo "ntp: NOT synchronised" >&2
    exit 1
fi
"#;

const NTP_CHECK_SH_2: &str = r#"#!/bin/sh
# Checks that the clock is synchronised and its offset is under a limit (seconds,
# default 0.5); exits 1 when it is not.
set -eu
limit="${1:-0.5}"
if ! timedatectl show -p NTPSynchronized --value 2>/dev/null | grep -qx yes; then
    echo "ntp: NOT synchronised" >&2
    exit 1
fi
if command -v chronyc >/dev/null 2>&1; then
    offset=$(chronyc tracking | awk '/^System time/ {print $4}')
    if awk -v o="$offset" -v l="$limit" 'BEGIN {exit !(o > l)}'; then
        echo "ntp: offset ${offset}s is over ${limit}s" >&2
        exit 1
    fi
    echo "ntp: synchronised, offset ${offset}s"
else
    echo "ntp: synchronised"
fi
"#;

/// A small file standing in for media the demo does not ship.
fn stand_in(file_name: &str, what: &str) -> Vec<u8> {
    format!(
        "OpsLedger demo stand-in for {file_name}\n{what}\nThe demo ships no installation media; upload the real file with PUT /content and add it as a new version.\n"
    )
    .into_bytes()
}

/// One version: file name, notes, content.
type Version = (&'static str, &'static str, Vec<u8>);

/// An item: its key (for ids), details, versions (oldest first), and the versions to
/// deprecate with the reason.
type DemoItem = (
    &'static str,
    ItemDetails,
    Vec<Version>,
    Vec<(u32, &'static str)>,
);

fn items() -> Vec<DemoItem> {
    let details = |name: &str,
                   kind: LibraryKind,
                   description: &str,
                   platform: Option<&str>,
                   tags: &[&str]| ItemDetails {
        name: name.into(),
        kind,
        description: description.into(),
        owner: "u-wong".into(),
        platform: platform.map(str::to_owned),
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
    };
    vec![
        (
            "centos-media",
            details(
                "CentOS 7.9 操作系統安裝介質",
                LibraryKind::OsMedia,
                "CentOS 7.9 (2009) x86_64 DVD 安裝光盤",
                Some("linux"),
                &["centos", "操作系統"],
            ),
            vec![(
                "CentOS-7-x86_64-DVD-2009.iso",
                "",
                stand_in(
                    "CentOS-7-x86_64-DVD-2009.iso",
                    "CentOS 7.9 (2009) x86_64 DVD",
                ),
            )],
            vec![],
        ),
        (
            "centos-image",
            details(
                "CentOS 7.9 標準鏡像",
                LibraryKind::OsImage,
                "政務雲標準 Linux 虛擬機鏡像:最小安裝、已加固、含監控代理",
                Some("linux"),
                &["centos", "鏡像", "標準虛擬機"],
            ),
            vec![(
                "centos-7.9-gov-base.qcow2",
                "",
                stand_in(
                    "centos-7.9-gov-base.qcow2",
                    "CentOS 7.9 hardened base image",
                ),
            )],
            vec![],
        ),
        (
            "windows-image",
            details(
                "Windows Server 2019 標準鏡像",
                LibraryKind::OsImage,
                "Windows Server 2019 Datacenter 虛擬機鏡像,已加入域前的標準配置",
                Some("windows"),
                &["windows", "鏡像", "標準虛擬機"],
            ),
            vec![
                (
                    "WS2019-Datacenter-2026-09.vhdx",
                    "",
                    stand_in(
                        "WS2019-Datacenter-2026-09.vhdx",
                        "Windows Server 2019 Datacenter, September updates",
                    ),
                ),
                (
                    "WS2019-Datacenter-2026-11.vhdx",
                    "含十一月累積更新",
                    stand_in(
                        "WS2019-Datacenter-2026-11.vhdx",
                        "Windows Server 2019 Datacenter, November updates",
                    ),
                ),
            ],
            vec![(1, "缺少十月安全更新,改用第 2 版")],
        ),
        (
            "oracle",
            details(
                "Oracle Database 19c",
                LibraryKind::Software,
                "Oracle 數據庫 19c 企業版安裝包 (Linux x86-64)",
                Some("linux"),
                &["oracle", "數據庫"],
            ),
            vec![(
                "LINUX.X64_193000_db_home.zip",
                "",
                stand_in("LINUX.X64_193000_db_home.zip", "Oracle Database 19c (19.3)"),
            )],
            vec![],
        ),
        (
            "websphere",
            details(
                "IBM WebSphere Application Server 9.0",
                LibraryKind::Software,
                "WebSphere 應用服務器 9.0.5 中間件安裝包",
                Some("linux"),
                &["websphere", "中間件"],
            ),
            vec![(
                "was.repo.9000.base.zip",
                "",
                stand_in(
                    "was.repo.9000.base.zip",
                    "IBM WebSphere Application Server 9.0",
                ),
            )],
            vec![],
        ),
        (
            "iis",
            details(
                "IIS 10 離線安裝包",
                LibraryKind::Software,
                "Windows Server 2019 的 IIS 10 網頁服務器離線安裝源",
                Some("windows"),
                &["iis", "中間件", "web"],
            ),
            vec![(
                "iis10-offline-sxs.zip",
                "",
                stand_in("iis10-offline-sxs.zip", "IIS 10 offline feature source"),
            )],
            vec![],
        ),
        (
            "kernel-patch",
            details(
                "CentOS 7 內核安全補丁",
                LibraryKind::Patch,
                "kernel-3.10.0-1160.119.1 安全更新 (操作系統補丁)",
                Some("linux"),
                &["centos", "補丁", "安全"],
            ),
            vec![(
                "kernel-3.10.0-1160.119.1.el7.x86_64.rpm",
                "",
                stand_in(
                    "kernel-3.10.0-1160.119.1.el7.x86_64.rpm",
                    "CentOS 7 kernel security update",
                ),
            )],
            vec![],
        ),
        (
            "hostname",
            details(
                "hostname.sh",
                LibraryKind::Script,
                "顯示主機名、完整域名和 IP 地址,巡檢和部署後核對用",
                Some("linux"),
                &["巡檢"],
            ),
            vec![("hostname.sh", "", HOSTNAME_SH.as_bytes().to_vec())],
            vec![],
        ),
        (
            "ntp-check",
            details(
                "ntp-check.sh",
                LibraryKind::Script,
                "檢查時鐘是否已與 NTP 同步,未同步時以 1 退出",
                Some("linux"),
                &["巡檢", "ntp"],
            ),
            vec![
                ("ntp-check.sh", "", NTP_CHECK_SH_1.as_bytes().to_vec()),
                (
                    "ntp-check.sh",
                    "也檢查時鐘偏差 (chrony)",
                    NTP_CHECK_SH_2.as_bytes().to_vec(),
                ),
            ],
            vec![],
        ),
    ]
}

/// Loads the library into `app` (its files into `app.content`); the number of items.
///
/// # Errors
/// A file that cannot be written, or the first command the store refuses.
pub async fn load(app: &App) -> anyhow::Result<usize> {
    let ctx = Context {
        actor: Actor {
            kind: ActorKind::User,
            id: "u-wong".into(),
            name: None,
            department: Some("運維中心".into()),
            roles: vec!["operator".into()],
        },
        now: app.clock.now(),
    };
    let all = items();
    let count = all.len();
    for (key, details, versions, deprecate) in all {
        let item = id(key);
        for (n, (file_name, notes, bytes)) in versions.into_iter().enumerate() {
            let (sha256, size) = app
                .content
                .put_stream(futures::stream::iter([Ok::<_, std::io::Error>(bytes)]))
                .await?;
            let version = NewVersion {
                sha256: sha256.to_string(),
                stored_size: Some(size),
                file_name: file_name.into(),
                notes: notes.into(),
            };
            let command = if n == 0 {
                LibraryCommand::AddItem {
                    details: details.clone(),
                    version,
                }
            } else {
                LibraryCommand::AddVersion { version }
            };
            app.bus
                .execute::<LibraryItem>(item, command, &ctx, id(&format!("{key} version {n}")))
                .await
                .map_err(|e| {
                    anyhow::anyhow!("demo library item {key}, version {n}: {}", e.report())
                })?;
        }
        for (version, reason) in deprecate {
            let command = LibraryCommand::DeprecateVersion {
                version,
                reason: reason.into(),
            };
            app.bus
                .execute::<LibraryItem>(
                    item,
                    command,
                    &ctx,
                    id(&format!("{key} deprecate {version}")),
                )
                .await
                .map_err(|e| {
                    anyhow::anyhow!("demo library item {key}, deprecation: {}", e.report())
                })?;
        }
    }
    Ok(count)
}

/// The demo's provisioning workflow, 小型虛擬機開通 (capacity in the first pool, the VM,
/// a data disk, the image, an address in the pool's subnet), and a new version of the
/// small-VM item that names it: a small VM requested from now on is pre-approved and
/// provisioned by the engine, while the demo's history stays as it was recorded.
///
/// # Errors
/// The first command the store refuses.
pub async fn load_workflow(app: &App) -> anyhow::Result<Uuid> {
    let ctx = |who: &str, role: &str| Context {
        actor: Actor {
            kind: ActorKind::User,
            id: who.into(),
            name: None,
            department: Some("運維中心".into()),
            roles: vec![role.into()],
        },
        now: app.clock.now(),
    };
    let (pool, subnet) = crate::tools::demo::resources::first_pool_and_subnet();
    let definition: WorkflowDefinition = serde_json::from_value(serde_json::json!({
        "name": "小型虛擬機開通",
        "description": "分配資源池容量、創建虛擬機、掛載數據盤、部署鏡像、分配 IP；失敗時自動回滾",
        "params": [
            {"name": "cpu", "type": "integer", "default": 2},
            {"name": "memory_gb", "type": "integer", "default": 4},
            {"name": "os", "type": "choice", "choices": ["linux", "windows"], "default": "linux"},
            {"name": "image", "type": "text", "default": "rhel-9.4"},
            {"name": "pool_id", "type": "text", "default": pool.to_string()},
            {"name": "subnet_id", "type": "text", "default": subnet.to_string()}
        ],
        "steps": [
            {"name": "capacity", "kind": "allocate_capacity", "inputs": {"pool_id": "${params.pool_id}", "cpu": "${params.cpu}", "memory_gib": "${params.memory_gb}", "storage_gib": 100}},
            {"name": "vm", "kind": "create_vm", "inputs": {"os": "${params.os}"}},
            {"name": "disk", "kind": "create_volume", "inputs": {"size_gb": 100, "vm": "${steps.vm.vm_ref}"}},
            {"name": "image", "kind": "deploy_image", "inputs": {"image": "${params.image}", "vm": "${steps.vm.vm_ref}"}},
            {"name": "ip", "kind": "allocate_ip", "inputs": {"subnet_id": "${params.subnet_id}"}}
        ]
    }))?;
    let workflow_id = id("workflow small-vm");
    let create = WorkflowCommand::Create {
        workflow_id,
        definition,
    };
    app.bus
        .execute::<Workflow>(
            workflow_id,
            create,
            &ctx("u-wong", "operator"),
            id("create workflow small-vm"),
        )
        .await
        .map_err(|e| anyhow::anyhow!("demo workflow: {}", e.report()))?;
    let item_id = crate::tools::demo::item_id("small-vm");
    let (item, _) = app.bus.load::<CatalogItem>(item_id).await?;
    let mut revised = item
        .definition
        .ok_or_else(|| anyhow::anyhow!("the demo has no small-VM item"))?;
    if revised.workflow_id != Some(workflow_id) {
        revised.workflow_id = Some(workflow_id);
        let revise = CatalogCommand::ReviseCatalogItem {
            definition: revised,
        };
        app.bus
            .execute::<CatalogItem>(
                item_id,
                revise,
                &ctx("u-lam", "catalog_admin"),
                id("small-vm names its workflow"),
            )
            .await
            .map_err(|e| anyhow::anyhow!("demo small-VM item: {}", e.report()))?;
    }
    Ok(workflow_id)
}
