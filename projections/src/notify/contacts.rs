//! Contacts: each user's email address and language, and who holds which role in which
//! department, so that a notice's audience resolves to the addresses to mail.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use opsledger_domain::kernel::aggregate::{Aggregate, DomainEvent};
use opsledger_domain::notify::contact::{Contact, ContactEvent, Language};
use opsledger_domain::RecordedEvent;
use serde::{Deserialize, Serialize};

use crate::notify::notifications::Audience;
use crate::{stream_kind, Projection};

/// One user's contact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactView {
    pub user: String,
    pub email: String,
    pub language: Language,
    pub department: Option<String>,
    pub roles: Vec<String>,
    pub set_at: DateTime<Utc>,
    /// The position from which the user has had a contact without a break: notices
    /// before it are not mailed to them (a restart that looks at an older notice again
    /// decides as the first pass did).
    pub since: u64,
}

/// Every contact, by user, and the users holding each role.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Contacts {
    by_user: BTreeMap<String, ContactView>,
    by_role: BTreeMap<String, BTreeSet<String>>,
}

impl Contacts {
    pub fn get(&self, user: &str) -> Option<&ContactView> {
        self.by_user.get(user)
    }

    pub fn len(&self) -> usize {
        self.by_user.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_user.is_empty()
    }

    /// The contacts a notice recorded at `position` for `audience` is mailed to, in user
    /// order: the user it names, or the holders of its role (by name: an admin is not
    /// mailed for every role) in its department, or only the users it names. Only
    /// contacts set before the notice count.
    pub fn recipients(&self, audience: &Audience, position: u64) -> Vec<&ContactView> {
        let before = |c: &&ContactView| c.since < position;
        match audience {
            Audience::User(user) => self.get(user).filter(before).into_iter().collect(),
            Audience::Role {
                role,
                department,
                users,
            } => self
                .by_role
                .get(role.as_str())
                .into_iter()
                .flatten()
                .filter_map(|u| self.by_user.get(u))
                .filter(before)
                .filter(|c| department.is_none() || c.department == *department)
                .filter(|c| users.is_empty() || users.contains(&c.user))
                .collect(),
        }
    }

    fn unindex(&mut self, user: &str) {
        if let Some(old) = self.by_user.get(user) {
            for role in &old.roles {
                if let Some(holders) = self.by_role.get_mut(role) {
                    holders.remove(user);
                }
            }
        }
    }

    /// Folds one event of a contact's stream, already decoded.
    pub fn on_event(&mut self, event: &RecordedEvent, e: &ContactEvent) {
        match e {
            ContactEvent::ContactSet {
                user,
                email,
                language,
                department,
                roles,
            } => {
                let since = self.by_user.get(user).map_or(event.position, |c| c.since);
                self.unindex(user);
                for role in roles {
                    self.by_role
                        .entry(role.clone())
                        .or_default()
                        .insert(user.clone());
                }
                self.by_user.insert(
                    user.clone(),
                    ContactView {
                        user: user.clone(),
                        email: email.clone(),
                        language: *language,
                        department: department.clone(),
                        roles: roles.clone(),
                        set_at: event.metadata.recorded_at,
                        since,
                    },
                );
            }
            ContactEvent::ContactRemoved { user } => {
                self.unindex(user);
                self.by_user.remove(user);
            }
        }
    }
}

impl Projection for Contacts {
    fn name(&self) -> &'static str {
        "contacts"
    }

    fn apply(&mut self, event: &RecordedEvent) {
        if stream_kind(&event.stream) == Contact::KIND {
            if let Ok(e) = ContactEvent::from_recorded(event) {
                self.on_event(event, &e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_log::{person, Log};
    use opsledger_domain::kernel::aggregate::Role;
    use opsledger_domain::notify::contact::contact_id;

    fn set(log: &mut Log, user: &str, department: &str, roles: &[&str], hour: u32) {
        let by = person(user, department, roles);
        let event = ContactEvent::ContactSet {
            user: user.into(),
            email: format!("{user}@gov.example"),
            language: Language::Zh,
            department: Some(department.into()),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        };
        log.record(&format!("contact-{}", contact_id(user)), &event, &by, hour);
    }

    fn users(found: Vec<&ContactView>) -> Vec<&str> {
        found.iter().map(|c| c.user.as_str()).collect()
    }

    #[test]
    fn a_role_audience_finds_the_holders_in_its_department_who_set_a_contact_before_it() {
        let mut log = Log::default();
        set(&mut log, "u-ho", "財政局", &["approver"], 9);
        set(&mut log, "u-lee", "財政局", &["approver", "requester"], 9);
        set(&mut log, "u-ng", "運維中心", &["approver"], 9);
        set(&mut log, "u-admin", "財政局", &["admin"], 9);
        set(&mut log, "u-late", "財政局", &["approver"], 10);
        let contacts: Contacts = log.fold();
        let approvers = Audience::Role {
            role: Role::Approver,
            department: Some("財政局".into()),
            users: vec![],
        };
        assert_eq!(users(contacts.recipients(&approvers, 5)), ["u-ho", "u-lee"]);
        assert_eq!(
            users(contacts.recipients(&approvers, 6)),
            ["u-ho", "u-late", "u-lee"]
        );
        let named = Audience::Role {
            role: Role::Approver,
            department: None,
            users: vec!["u-ng".into()],
        };
        assert_eq!(users(contacts.recipients(&named, 6)), ["u-ng"]);
        let one = Audience::User("u-lee".into());
        assert_eq!(users(contacts.recipients(&one, 6)), ["u-lee"]);
        assert!(contacts.recipients(&one, 2).is_empty());
    }

    #[test]
    fn a_changed_contact_keeps_its_start_and_moves_between_roles_and_a_removed_one_is_gone() {
        let mut log = Log::default();
        set(&mut log, "u-ho", "財政局", &["approver"], 9);
        set(&mut log, "u-ho", "財政局", &["requester"], 10);
        let contacts: Contacts = log.fold();
        assert_eq!(contacts.get("u-ho").map(|c| c.since), Some(1));
        let approvers = Audience::Role {
            role: Role::Approver,
            department: None,
            users: vec![],
        };
        assert!(contacts.recipients(&approvers, 9).is_empty());
        let by = person("u-ho", "財政局", &["requester"]);
        log.record(
            &format!("contact-{}", contact_id("u-ho")),
            &ContactEvent::ContactRemoved {
                user: "u-ho".into(),
            },
            &by,
            11,
        );
        let contacts: Contacts = log.fold();
        assert!(contacts.is_empty());
    }
}
