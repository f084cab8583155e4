//! The email templates: for each kind of notice, a subject and a plain-text body in
//! Chinese and in English, filled in from the notice. The notice's own text is Chinese
//! (the events' words); an English mail says what happened in English and quotes it.

use opsledger_domain::notify::contact::Language;

use crate::notify::notifications::{Notice, NoticeKind};

/// A mail's subject and body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub body: String,
}

/// The stable name of a notice kind, as mails record it, e.g. `ApprovalNeeded`.
pub fn kind_name(kind: NoticeKind) -> String {
    match serde_json::to_value(kind) {
        Ok(serde_json::Value::String(name)) => name,
        _ => format!("{kind:?}"),
    }
}

/// The subject line and the first sentence, in Chinese and in English.
fn words(kind: NoticeKind) -> [(&'static str, &'static str); 2] {
    use NoticeKind as K;
    match kind {
        K::ApprovalNeeded => [
            ("審批待辦", "有一項服務請求待您審批。"),
            (
                "Approval needed",
                "A service request is waiting for your approval.",
            ),
        ],
        K::StepEscalated => [
            ("審批升級", "一個審批步驟等待逾時，已升級至您的角色。"),
            (
                "Approval step escalated",
                "An approval step waited past its time and was escalated to your role.",
            ),
        ],
        K::RequestDecided => [
            ("服務請求進度", "您的服務請求有了結果。"),
            (
                "Your service request was decided",
                "Your service request was approved, rejected, fulfilled or failed.",
            ),
        ],
        K::DelegationGranted => [
            ("審批委託", "您被指定為代理審批人。"),
            (
                "You are a substitute approver",
                "An approver who is away named you their substitute.",
            ),
        ],
        K::LeaseEnding => [
            ("租期即將屆滿", "您擁有或關注的資源租期即將屆滿。"),
            (
                "Lease ending soon",
                "The lease of a resource you own or watch ends soon; request an extension if you still need it.",
            ),
        ],
        K::ResourceReclaimed => [
            ("資源已回收", "您擁有或關注的資源已被回收。"),
            (
                "Resource reclaimed",
                "A resource you own or watch was reclaimed.",
            ),
        ],
        K::IncidentEscalated => [
            ("事件預警升級", "一宗事件的預警級別已升高，需要您處理。"),
            (
                "Incident escalated",
                "An incident was raised to a higher warning level and your role must act.",
            ),
        ],
        K::SlaWarning => [
            ("SLA 告警：時限將至", "一宗事件的 SLA 時限即將到期。"),
            (
                "SLA warning",
                "An incident's SLA clock reached its warning share.",
            ),
        ],
        K::SlaBreached => [
            ("SLA 告警：已超時", "一宗事件已超出 SLA 時限。"),
            ("SLA breached", "An incident's SLA clock reached its target."),
        ],
        K::IncidentAssigned => [
            ("事件指派", "一宗事件已指派給您。"),
            (
                "Incident assigned to you",
                "An incident was assigned to you.",
            ),
        ],
        K::WorkOrderIssued => [
            ("新工單", "您收到一張新工單。"),
            ("New work order", "A work order was issued to you."),
        ],
        K::WorkOrderHandedBack => [
            ("工單回訪", "二線已處理工單，請回訪用戶。"),
            (
                "Work order handed back",
                "Second line handed a ticket back: please call the user.",
            ),
        ],
        K::TermsNeeded => [
            ("收費變更待確認", "一項收費變更等待確認商務條款。"),
            (
                "Chargeable change needs terms",
                "A chargeable change is waiting for you to confirm its terms.",
            ),
        ],
    }
}

/// The first line of `text`, at most `max` characters (with an ellipsis when cut).
fn headline(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or_default().trim();
    if line.chars().count() <= max {
        return line.to_owned();
    }
    let mut cut: String = line.chars().take(max).collect();
    cut.push('…');
    cut
}

/// The mail for `notice` in `language`.
pub fn render(notice: &Notice, language: Language) -> Rendered {
    let [zh, en] = words(notice.kind);
    let entity = notice.subject.stream();
    let at = notice.at.format("%Y-%m-%d %H:%M UTC");
    match language {
        Language::Zh => Rendered {
            subject: format!("[OpsLedger] {}：{}", zh.0, headline(&notice.text, 60)),
            body: format!(
                "您好：\n\n{}\n\n{}\n\n事項：{entity}\n時間：{at}\n\n請登入 OpsLedger 查看詳情。\n\n\
                 —— OpsLedger 運維服務管理平台（系統自動發送，請勿回覆）\n",
                zh.1, notice.text
            ),
        },
        Language::En => Rendered {
            subject: format!("[OpsLedger] {}", en.0),
            body: format!(
                "Hello,\n\n{}\n\nAs recorded: {}\n\nAbout: {entity}\nWhen: {at}\n\n\
                 Sign in to OpsLedger for the details.\n\n\
                 -- OpsLedger IT service management (sent automatically; please do not reply)\n",
                en.1, notice.text
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::notifications::{Audience, Subject};
    use chrono::TimeZone;
    use uuid::Uuid;

    fn notice(kind: NoticeKind, text: &str) -> Notice {
        Notice {
            position: 12,
            at: chrono::Utc
                .with_ymd_and_hms(2026, 11, 26, 9, 30, 0)
                .unwrap(),
            kind,
            subject: Subject::Request(Uuid::from_u128(7)),
            audience: Audience::User("u-ho".into()),
            text: text.into(),
        }
    }

    #[test]
    fn an_approval_needed_reads_in_chinese_with_the_notice_s_words() {
        let mail = render(
            &notice(
                NoticeKind::ApprovalNeeded,
                "u-chan 的申請待您審批：第 1 步「部門審批」",
            ),
            Language::Zh,
        );
        assert_eq!(
            mail.subject,
            "[OpsLedger] 審批待辦：u-chan 的申請待您審批：第 1 步「部門審批」"
        );
        assert!(
            mail.body.contains("有一項服務請求待您審批。"),
            "{}",
            mail.body
        );
        assert!(mail.body.contains("第 1 步「部門審批」"));
        assert!(mail
            .body
            .contains(&format!("request-{}", Uuid::from_u128(7))));
        assert!(mail.body.contains("2026-11-26 09:30 UTC"));
    }

    #[test]
    fn the_english_mail_says_it_in_english_and_quotes_the_record() {
        let mail = render(
            &notice(
                NoticeKind::SlaBreached,
                "事件「核心交換機故障」的解決時限已超時",
            ),
            Language::En,
        );
        assert_eq!(mail.subject, "[OpsLedger] SLA breached");
        assert!(mail
            .body
            .contains("An incident's SLA clock reached its target."));
        assert!(mail.body.contains("As recorded: 事件「核心交換機故障」"));
    }

    #[test]
    fn every_kind_has_its_own_subject_in_each_language() {
        use NoticeKind as K;
        let kinds = [
            K::ApprovalNeeded,
            K::StepEscalated,
            K::RequestDecided,
            K::DelegationGranted,
            K::LeaseEnding,
            K::ResourceReclaimed,
            K::IncidentEscalated,
            K::SlaWarning,
            K::SlaBreached,
            K::IncidentAssigned,
            K::WorkOrderIssued,
            K::WorkOrderHandedBack,
            K::TermsNeeded,
        ];
        for language in [Language::Zh, Language::En] {
            let mut subjects: Vec<String> = kinds
                .iter()
                .map(|k| render(&notice(*k, "x"), language).subject)
                .collect();
            subjects.sort();
            subjects.dedup();
            assert_eq!(subjects.len(), kinds.len(), "{language:?}");
        }
        assert_eq!(kind_name(K::LeaseEnding), "LeaseEnding");
    }

    #[test]
    fn a_long_text_is_cut_in_the_subject_but_whole_in_the_body() {
        let long = "長".repeat(100);
        let mail = render(&notice(NoticeKind::RequestDecided, &long), Language::Zh);
        assert!(mail.subject.ends_with('…'));
        assert!(mail.body.contains(&long));
    }
}
