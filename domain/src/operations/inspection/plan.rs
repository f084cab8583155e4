//! The service plan's inspections as templates, for `opsledger demo` and for tests: the
//! machine-room walk at least every 45 minutes and the hourly detailed walk (機房巡檢制度,
//! 巡檢管理), the platform check every 3 hours, the daily log checks, the weekly backup
//! checks, and the monthly inspection and tuning (巡檢優化).
//!
//! The expected ranges are the usual ones for a data centre's machine room (GB 50174):
//! 18–27 °C, 40–55 %RH; power and UPS loads at most 80 %.

use chrono::{DateTime, NaiveTime, Utc, Weekday};

use super::schedule::{Cadence, Schedule, SITE_TIME_ZONE};
use super::template::{
    template_id, Area, ChecklistItem as Item, IncidentLevel, InspectionTemplateCommand,
    TemplateDefinition,
};

/// The plan's six templates as `DefineTemplate` orders, each with the id
/// [`template_id`]`(key)` of its key, scheduled from `anchor` (the site's local midnight
/// gives walks on the quarter hours).
pub fn plan_templates(anchor: DateTime<Utc>) -> Vec<InspectionTemplateCommand> {
    let every = |minutes| Cadence::Every { minutes };
    let at = |h| NaiveTime::from_hms_opt(h, 0, 0).unwrap_or_default();
    let define = |key: &str, name: &str, area, cadence, window_minutes, items| {
        InspectionTemplateCommand::DefineTemplate {
            template_id: template_id(key),
            definition: TemplateDefinition {
                name: name.into(),
                area,
                items,
                schedule: Schedule {
                    cadence,
                    time_zone: SITE_TIME_ZONE,
                    anchor,
                    window_minutes,
                },
            },
        }
    };
    vec![
        define(
            "machine_room_walk",
            "機房環境巡檢",
            Area::MachineRoom,
            every(45),
            None,
            vec![
                Item::reading("temperature", "機房溫度", "°C", Some(18.0), Some(27.0))
                    .level(IncidentLevel::Important),
                Item::reading("humidity", "機房濕度", "%RH", Some(40.0), Some(55.0)),
                Item::reading("power_load", "機房用電負載", "%", None, Some(80.0))
                    .level(IncidentLevel::Important),
                Item::reading("ups_load", "UPS負載", "%", None, Some(80.0))
                    .level(IncidentLevel::Important),
                Item::check("air_conditioning", "空調運行狀態").level(IncidentLevel::Important),
                Item::check("fire_system", "消防設施").level(IncidentLevel::Urgent),
                Item::check("monitoring_alarms", "監控屏幕報警"),
                Item::check("door_locks", "機柜門及機房門鎖閉"),
                Item::check("noise_and_smell", "異響異味"),
                Item::check("cleanliness", "地板污漬、水漬、垃圾").without_incident(),
            ],
        ),
        define(
            "machine_room_detailed_walk",
            "機房細致巡檢",
            Area::Devices,
            every(60),
            None,
            vec![
                Item::check("status_lights", "服務器及網絡設備電源、運行狀態指示燈"),
                Item::check("device_alarms", "設備可見可聞的故障告警")
                    .level(IncidentLevel::Important),
                Item::check("server_hardware", "云服務項目平臺服務器硬件狀態"),
                Item::check("ancillary_rooms", "空調機房、通信機房、電池室、鋼瓶間"),
                Item::check("environment_monitoring", "機房監控系統及其記錄"),
                Item::check("cabling", "布線").without_incident(),
            ],
        ),
        define(
            "platform_check",
            "運維平臺設備檢查",
            Area::Platform,
            every(180),
            None,
            vec![
                Item::check("platform_devices", "運維平臺所有設備狀態"),
                Item::check("server_alarms", "運維監控平臺服務器報警")
                    .level(IncidentLevel::Important),
            ],
        ),
        define(
            "daily_log_check",
            "每日日誌檢查",
            Area::Platform,
            Cadence::Daily { at: at(9) },
            // By the end of the working day.
            Some(9 * 60),
            vec![
                Item::check("console_logs", "管理控制臺系統日誌"),
                Item::check("security_device_logs", "安全設備日誌報錯"),
                Item::check("platform_warnings", "運維平臺報錯或警告"),
                Item::check("platform_permissions", "運維平臺權限屬性")
                    .level(IncidentLevel::Important),
            ],
        ),
        define(
            "weekly_backup_check",
            "每週備份檢查",
            Area::Backups,
            Cadence::Weekly {
                weekday: Weekday::Mon,
                at: at(10),
            },
            None,
            vec![
                Item::check("network_device_backups", "網絡設備備份")
                    .level(IncidentLevel::Important),
                Item::check("physical_server_backups", "物理服務器備份")
                    .level(IncidentLevel::Important),
            ],
        ),
        define(
            "monthly_optimisation",
            "每月巡檢優化",
            Area::Optimisation,
            Cadence::Monthly { day: 1, at: at(10) },
            None,
            vec![
                Item::check("supporting_facilities", "配套設施巡檢優化"),
                Item::check("department_devices", "各部門應用設備巡檢優化"),
                // Findings here are tuning advice for the monthly report, not faults.
                Item::check("performance_analysis", "系統性能分析和優化建議").without_incident(),
                Item::check("security_advice", "網絡安全建議").without_incident(),
            ],
        ),
    ]
}
