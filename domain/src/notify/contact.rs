//! Contacts: where a user is reached by email, and in which language. Users are token
//! subjects, not addresses, so each user sets their own address; the event also records
//! the department and roles they had then, so a notice for a role (the approvers of a
//! department) finds the addresses of the people holding it.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::kernel::aggregate::{Aggregate, Context, DomainEvent};
use crate::kernel::refusal::{Refusal, Refuse};
use crate::requests::catalog::{invalid, InvalidField};

/// The longest address, in characters (RFC 5321's path limit).
pub const MAX_ADDRESS: usize = 254;

/// The language a user reads their email in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Language {
    /// Chinese (traditional), the service plan's own.
    #[default]
    Zh,
    En,
}

/// The id of `user`'s contact: one per user, derived from the user id.
pub fn contact_id(user: &str) -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_OID,
        format!("opsledger:contact:{user}").as_bytes(),
    )
}

/// An email address as a contact stores it: trimmed, and one an SMTP server accepts.
///
/// # Errors
/// `email`, when it is empty, too long, or not an address.
pub fn normalise_address(email: &str) -> Result<String, InvalidField> {
    let email = email.trim();
    if email.is_empty() {
        return Err(invalid("email", "is required"));
    }
    if email.chars().count() > MAX_ADDRESS {
        return Err(invalid(
            "email",
            format!("is longer than {MAX_ADDRESS} characters"),
        ));
    }
    email
        .parse::<lettre::Address>()
        .map(|a| a.to_string())
        .map_err(|e| invalid("email", format!("is not an email address ({e})")))
}

/// Orders to a contact. Each is given by the user whose contact it is.
#[derive(Clone, Debug)]
pub enum ContactCommand {
    /// Sets (or changes) the address and language, and records the user's department and
    /// roles as they are now.
    Set { email: String, language: Language },
    /// Stops email to the user; their notices stay in the `notifications` query.
    Remove,
}

/// What happened to a contact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum ContactEvent {
    ContactSet {
        user: String,
        email: String,
        language: Language,
        #[serde(default)]
        department: Option<String>,
        #[serde(default)]
        roles: Vec<String>,
    },
    ContactRemoved {
        user: String,
    },
}

impl DomainEvent for ContactEvent {}

/// Why a contact refuses a command.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ContactError {
    /// A field of the contact breaks its rules (invalid)
    #[error(transparent)]
    Invalid(#[from] InvalidField),
    /// A contact is set by its own user only (forbidden)
    #[error("a contact is set by its own user")]
    NotYours,
    /// System components have no contact (forbidden)
    #[error("system components have no contact")]
    NotAPerson,
    /// The contact says this already (conflict)
    #[error("the contact already says this")]
    Unchanged,
    /// There is no contact to remove (not found)
    #[error("there is no contact to remove")]
    NotSet,
}

impl Refuse for ContactError {
    fn refusal(&self) -> Refusal<'_> {
        match self {
            Self::Invalid(f) => Refusal::Invalid { field: &f.field },
            Self::NotYours | Self::NotAPerson => Refusal::Forbidden,
            Self::Unchanged => Refusal::Conflict,
            Self::NotSet => Refusal::NotFound,
        }
    }
}

/// A contact's state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Contact {
    pub user: Option<String>,
    /// The last `ContactSet`, unless removed since.
    pub current: Option<ContactEvent>,
}

impl Aggregate for Contact {
    const KIND: &'static str = "contact";
    type Command = ContactCommand;
    type Event = ContactEvent;
    type Error = ContactError;

    fn decide(
        &self,
        command: ContactCommand,
        ctx: &Context,
    ) -> Result<Vec<ContactEvent>, ContactError> {
        let actor = &ctx.actor;
        if actor.is_system() {
            return Err(ContactError::NotAPerson);
        }
        if self.user.as_ref().is_some_and(|u| *u != actor.id) {
            return Err(ContactError::NotYours);
        }
        let event = match command {
            ContactCommand::Set { email, language } => {
                let mut roles = actor.roles.clone();
                roles.sort();
                roles.dedup();
                let set = ContactEvent::ContactSet {
                    user: actor.id.clone(),
                    email: normalise_address(&email)?,
                    language,
                    department: actor.department.clone(),
                    roles,
                };
                if self.current.as_ref() == Some(&set) {
                    return Err(ContactError::Unchanged);
                }
                set
            }
            ContactCommand::Remove => {
                if self.current.is_none() {
                    return Err(ContactError::NotSet);
                }
                ContactEvent::ContactRemoved {
                    user: actor.id.clone(),
                }
            }
        };
        Ok(vec![event])
    }

    fn evolve(mut self, event: &ContactEvent) -> Self {
        match event {
            ContactEvent::ContactSet { user, .. } => {
                self.user = Some(user.clone());
                self.current = Some(event.clone());
            }
            ContactEvent::ContactRemoved { user } => {
                self.user = Some(user.clone());
                self.current = None;
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::given::{given, person};

    fn set(email: &str, language: Language) -> ContactCommand {
        ContactCommand::Set {
            email: email.into(),
            language,
        }
    }

    fn set_event(email: &str, language: Language) -> ContactEvent {
        ContactEvent::ContactSet {
            user: "u-ho".into(),
            email: email.into(),
            language,
            department: Some("財政局".into()),
            roles: vec!["approver".into(), "requester".into()],
        }
    }

    fn ho() -> crate::Actor {
        person("u-ho", "財政局", &["requester", "approver", "approver"])
    }

    #[test]
    fn a_user_sets_their_address_with_their_department_and_roles_of_the_moment() {
        given::<Contact>([])
            .when(set("  ho@fin.gov.example ", Language::Zh), &ho())
            .then([set_event("ho@fin.gov.example", Language::Zh)]);
    }

    #[test]
    fn an_address_that_is_not_one_is_refused_naming_the_field() {
        for bad in ["", "ho", "ho@", "@fin.gov", "ho fin@gov.example"] {
            let err = Contact::default()
                .decide(
                    set(bad, Language::En),
                    &Context {
                        actor: ho(),
                        now: crate::kernel::given::at(9),
                    },
                )
                .unwrap_err();
            assert!(
                matches!(&err, ContactError::Invalid(f) if f.field == "email"),
                "{bad:?}: {err:?}"
            );
        }
    }

    #[test]
    fn changing_the_language_is_recorded_but_setting_the_same_again_is_refused() {
        given::<Contact>([set_event("ho@fin.gov.example", Language::Zh)])
            .when(set("ho@fin.gov.example", Language::En), &ho())
            .then([set_event("ho@fin.gov.example", Language::En)]);
        given::<Contact>([set_event("ho@fin.gov.example", Language::Zh)])
            .when(set("ho@fin.gov.example", Language::Zh), &ho())
            .then_err(ContactError::Unchanged);
    }

    #[test]
    fn another_user_cannot_change_someone_s_contact_and_the_system_has_none() {
        given::<Contact>([set_event("ho@fin.gov.example", Language::Zh)])
            .when(
                set("evil@example.com", Language::Zh),
                &person("u-chan", "財政局", &["admin"]),
            )
            .then_err(ContactError::NotYours);
        given::<Contact>([])
            .when(
                set("bot@example.com", Language::Zh),
                &crate::Actor::system("scheduler"),
            )
            .then_err(ContactError::NotAPerson);
    }

    #[test]
    fn a_person_whose_id_looks_like_a_component_is_still_a_person() {
        let sys = person("system:mailer", "財政局", &["approver"]);
        let events = given::<Contact>([])
            .when(set("sys@fin.gov.example", Language::Zh), &sys)
            .events();
        assert_eq!(events.len(), 1);
    }

    #[test]
    fn a_removed_contact_gets_no_more_mail_and_cannot_be_removed_twice() {
        let removed = ContactEvent::ContactRemoved {
            user: "u-ho".into(),
        };
        given::<Contact>([set_event("ho@fin.gov.example", Language::Zh)])
            .when(ContactCommand::Remove, &ho())
            .then([removed.clone()]);
        given::<Contact>([set_event("ho@fin.gov.example", Language::Zh), removed])
            .when(ContactCommand::Remove, &ho())
            .then_err(ContactError::NotSet);
    }

    #[test]
    fn the_contact_id_is_the_user_s_and_no_one_else_s() {
        assert_eq!(contact_id("u-ho"), contact_id("u-ho"));
        assert_ne!(contact_id("u-ho"), contact_id("u-chan"));
    }
}
