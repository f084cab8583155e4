//! The knowledge base (the service plan's 知識管理): articles that say how a fault shows
//! itself, what caused it and how it was solved, tagged and linked to the configuration
//! items and incidents they concern, so the next engineer finds the answer instead of
//! working it out again. An article is published once, revised as often as it needs (every
//! revision is a new version, the old ones stay readable), and retired when it no longer
//! applies. An incident's report can be published as an article; the incident side builds
//! the [`ArticleContent`] and names itself in `from_incident`.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::kernel::aggregate::{Aggregate, Context, DomainEvent, Role};
use crate::kernel::refusal::{Refusal, Refuse};
use crate::requests::catalog::{invalid, InvalidField};

/// The longest title, in characters.
pub const MAX_TITLE: usize = 200;
/// The longest symptom, cause or solution, in characters.
pub const MAX_TEXT: usize = 20_000;
/// The longest tag, in characters.
pub const MAX_TAG: usize = 40;
/// The most tags an article carries.
pub const MAX_TAGS: usize = 20;
/// The most configuration items, and the most incidents, an article links to.
pub const MAX_LINKS: usize = 100;
/// The longest revision note or retirement reason, in characters.
pub const MAX_NOTE: usize = 500;

/// What an article says. Symptom, cause and solution are Markdown.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArticleContent {
    pub title: String,
    #[serde(default)]
    pub symptom: String,
    #[serde(default)]
    pub cause: String,
    pub solution: String,
    /// Normalised by [`normalise_tag`], deduplicated and sorted.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The configuration items it concerns, deduplicated and sorted.
    #[serde(default)]
    pub ci_ids: Vec<Uuid>,
    /// The incidents it concerns, deduplicated and sorted.
    #[serde(default)]
    pub incident_ids: Vec<Uuid>,
    /// The incident whose report it was made from; set when published, never changed.
    #[serde(default)]
    pub from_incident: Option<Uuid>,
}

/// A tag as articles store it and searches compare it: trimmed, lower-case, inner runs
/// of white space as one space (`" UPS  Power "` is `"ups power"`).
pub fn normalise_tag(tag: &str) -> String {
    tag.split_whitespace()
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

impl ArticleContent {
    /// The content as an article stores it: text trimmed, tags normalised, links
    /// deduplicated and sorted.
    ///
    /// # Errors
    /// The first field that is missing, empty or too long (`content.title`,
    /// `content.solution`, `content.tags`…).
    pub fn normalised(self) -> Result<ArticleContent, InvalidField> {
        let text = |field: &str, value: String, required: bool, max: usize| {
            let value = value.trim().to_owned();
            if required && value.is_empty() {
                return Err(invalid(format!("content.{field}"), "is required"));
            }
            if value.chars().count() > max {
                return Err(invalid(
                    format!("content.{field}"),
                    format!("is longer than {max} characters"),
                ));
            }
            Ok(value)
        };
        let title = text("title", self.title, true, MAX_TITLE)?;
        let symptom = text("symptom", self.symptom, false, MAX_TEXT)?;
        let cause = text("cause", self.cause, false, MAX_TEXT)?;
        let solution = text("solution", self.solution, true, MAX_TEXT)?;
        let mut tags = Vec::with_capacity(self.tags.len());
        for tag in &self.tags {
            let tag = normalise_tag(tag);
            if tag.is_empty() {
                return Err(invalid("content.tags", "has an empty tag"));
            }
            if tag.chars().count() > MAX_TAG {
                return Err(invalid(
                    "content.tags",
                    format!("has a tag longer than {MAX_TAG} characters: {tag:?}"),
                ));
            }
            tags.push(tag);
        }
        tags.sort();
        tags.dedup();
        if tags.len() > MAX_TAGS {
            return Err(invalid(
                "content.tags",
                format!("has more than {MAX_TAGS} tags"),
            ));
        }
        let links = |field: &str, mut ids: Vec<Uuid>| {
            ids.sort();
            ids.dedup();
            if ids.len() > MAX_LINKS {
                return Err(invalid(
                    format!("content.{field}"),
                    format!("links more than {MAX_LINKS}"),
                ));
            }
            Ok(ids)
        };
        Ok(ArticleContent {
            title,
            symptom,
            cause,
            solution,
            tags,
            ci_ids: links("ci_ids", self.ci_ids)?,
            incident_ids: links("incident_ids", self.incident_ids)?,
            from_incident: self.from_incident,
        })
    }
}

/// Orders to an article.
#[derive(Clone, Debug)]
pub enum ArticleCommand {
    /// Publishes the first version.
    Publish { content: ArticleContent },
    /// Publishes a new version. `content.from_incident` may be left out (the article keeps
    /// the incident it was made from) but not changed.
    Revise {
        content: ArticleContent,
        /// Why it was revised; may be empty.
        note: String,
    },
    /// Takes it out of searches and suggestions; it stays readable.
    Retire { reason: String },
}

/// What happened to an article.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum ArticleEvent {
    /// Version 1.
    ArticlePublished {
        version: u32,
        content: ArticleContent,
    },
    ArticleRevised {
        version: u32,
        content: ArticleContent,
        note: String,
    },
    ArticleRetired {
        reason: String,
    },
}

impl DomainEvent for ArticleEvent {}

/// Why an article refuses a command.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ArticleError {
    /// A field of the article breaks its rules (invalid)
    #[error(transparent)]
    Invalid(#[from] InvalidField),
    /// Only engineers, the service desk and operators write articles (forbidden)
    #[error("only engineers, the service desk and operators write knowledge articles")]
    NotPermitted,
    /// The article was published already (conflict)
    #[error("this article was already published")]
    AlreadyPublished,
    /// There is no such article (not found)
    #[error("there is no such article")]
    NotPublished,
    /// The article is retired (conflict)
    #[error("this article is retired")]
    Retired,
    /// The revision changes nothing (conflict)
    #[error("the revision changes nothing")]
    Unchanged,
}

impl Refuse for ArticleError {
    fn refusal(&self) -> Refusal<'_> {
        match self {
            Self::Invalid(f) => Refusal::Invalid { field: &f.field },
            Self::NotPermitted => Refusal::Forbidden,
            Self::AlreadyPublished | Self::Retired | Self::Unchanged => Refusal::Conflict,
            Self::NotPublished => Refusal::NotFound,
        }
    }
}

/// Where an article stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArticleStatus {
    /// Found by searches and suggested on incidents.
    #[default]
    Published,
    /// Readable, but no longer found or suggested.
    Retired,
}

/// An article's state: its current version and content.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Article {
    /// 0 before it is published, then 1, 2, …
    pub version: u32,
    pub content: Option<ArticleContent>,
    pub status: ArticleStatus,
    pub retired_reason: Option<String>,
}

impl Article {
    /// The current content of an article that may still change.
    fn writable(&self) -> Result<&ArticleContent, ArticleError> {
        let content = self.content.as_ref().ok_or(ArticleError::NotPublished)?;
        if self.status == ArticleStatus::Retired {
            return Err(ArticleError::Retired);
        }
        Ok(content)
    }
}

/// Whether `actor` may write knowledge articles: engineers, the service desk and
/// operators (an admin holds every role).
pub fn writes_knowledge(actor: &crate::Actor) -> bool {
    [Role::Engineer, Role::ServiceDesk, Role::Operator]
        .into_iter()
        .any(|r| actor.has_role(r))
}

fn note(field: &str, text: String, required: bool) -> Result<String, InvalidField> {
    let text = text.trim().to_owned();
    if required && text.is_empty() {
        return Err(invalid(field, "is required"));
    }
    if text.chars().count() > MAX_NOTE {
        return Err(invalid(
            field,
            format!("is longer than {MAX_NOTE} characters"),
        ));
    }
    Ok(text)
}

impl Aggregate for Article {
    const KIND: &'static str = "article";
    type Command = ArticleCommand;
    type Event = ArticleEvent;
    type Error = ArticleError;

    fn decide(
        &self,
        command: ArticleCommand,
        ctx: &Context,
    ) -> Result<Vec<ArticleEvent>, ArticleError> {
        if !writes_knowledge(&ctx.actor) {
            return Err(ArticleError::NotPermitted);
        }
        let event = match command {
            ArticleCommand::Publish { content } => {
                if self.content.is_some() {
                    return Err(ArticleError::AlreadyPublished);
                }
                ArticleEvent::ArticlePublished {
                    version: 1,
                    content: content.normalised()?,
                }
            }
            ArticleCommand::Revise {
                mut content,
                note: why,
            } => {
                let current = self.writable()?;
                match (content.from_incident, current.from_incident) {
                    (None, kept) => content.from_incident = kept,
                    (Some(given), Some(kept)) if given == kept => {}
                    (Some(_), _) => {
                        return Err(invalid(
                            "content.from_incident",
                            "cannot change once the article is published",
                        )
                        .into())
                    }
                }
                let content = content.normalised()?;
                let why = note("note", why, false)?;
                if &content == current {
                    return Err(ArticleError::Unchanged);
                }
                ArticleEvent::ArticleRevised {
                    version: self.version + 1,
                    content,
                    note: why,
                }
            }
            ArticleCommand::Retire { reason } => {
                self.writable()?;
                ArticleEvent::ArticleRetired {
                    reason: note("reason", reason, true)?,
                }
            }
        };
        Ok(vec![event])
    }

    fn evolve(mut self, event: &ArticleEvent) -> Self {
        match event {
            ArticleEvent::ArticlePublished { version, content }
            | ArticleEvent::ArticleRevised {
                version, content, ..
            } => {
                self.version = *version;
                self.content = Some(content.clone());
            }
            ArticleEvent::ArticleRetired { reason } => {
                self.status = ArticleStatus::Retired;
                self.retired_reason = Some(reason.clone());
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::given::{given, person};

    fn engineer() -> crate::Actor {
        person("u-chan", "運維中心", &["engineer"])
    }

    fn content() -> ArticleContent {
        ArticleContent {
            title: "機房空調故障".into(),
            symptom: "機房溫度升高,服務器告警".into(),
            cause: "空調壓縮機故障".into(),
            solution: "啟動備用空調,聯系廠商檢修".into(),
            // As normalised: sorted.
            tags: vec!["機房".into(), "空調".into()],
            ci_ids: vec![Uuid::from_u128(1)],
            incident_ids: vec![],
            from_incident: None,
        }
    }

    fn published() -> ArticleEvent {
        ArticleEvent::ArticlePublished {
            version: 1,
            content: content(),
        }
    }

    fn revise(content: ArticleContent) -> ArticleCommand {
        ArticleCommand::Revise {
            content,
            note: "補充檢修步驟".into(),
        }
    }

    fn retired() -> ArticleEvent {
        ArticleEvent::ArticleRetired {
            reason: "空調已更換".into(),
        }
    }

    #[test]
    fn an_engineer_publishes_version_one_with_normalised_content() {
        let messy = ArticleContent {
            title: "  UPS 電源告警 ".into(),
            tags: vec![" UPS ".into(), "Power  Supply".into(), "ups".into()],
            ci_ids: vec![Uuid::from_u128(2), Uuid::from_u128(1), Uuid::from_u128(2)],
            incident_ids: vec![Uuid::from_u128(9), Uuid::from_u128(9)],
            solution: "切換至市電旁路\n".into(),
            ..ArticleContent::default()
        };
        given::<Article>([])
            .when(ArticleCommand::Publish { content: messy }, &engineer())
            .then([ArticleEvent::ArticlePublished {
                version: 1,
                content: ArticleContent {
                    title: "UPS 電源告警".into(),
                    solution: "切換至市電旁路".into(),
                    tags: vec!["power supply".into(), "ups".into()],
                    ci_ids: vec![Uuid::from_u128(1), Uuid::from_u128(2)],
                    incident_ids: vec![Uuid::from_u128(9)],
                    ..ArticleContent::default()
                },
            }]);
    }

    #[test]
    fn the_service_desk_operators_and_admins_write_articles_but_requesters_and_auditors_do_not() {
        for roles in [&["service_desk"][..], &["operator"], &["admin"]] {
            given::<Article>([])
                .when(
                    ArticleCommand::Publish { content: content() },
                    &person("u-a", "運維中心", roles),
                )
                .then([published()]);
        }
        for roles in [&["requester"][..], &["auditor"], &["approver"]] {
            given::<Article>([])
                .when(
                    ArticleCommand::Publish { content: content() },
                    &person("u-a", "財政局", roles),
                )
                .then_err(ArticleError::NotPermitted);
            given::<Article>([published()])
                .when(revise(content()), &person("u-a", "財政局", roles))
                .then_err(ArticleError::NotPermitted);
            given::<Article>([published()])
                .when(
                    ArticleCommand::Retire {
                        reason: "過時".into(),
                    },
                    &person("u-a", "財政局", roles),
                )
                .then_err(ArticleError::NotPermitted);
        }
    }

    #[test]
    fn an_article_needs_a_title_and_a_solution_within_bounds() {
        let bad = |content: ArticleContent, field: &str, problem: &str| {
            given::<Article>([])
                .when(ArticleCommand::Publish { content }, &engineer())
                .then_err(invalid(field, problem).into());
        };
        bad(
            ArticleContent {
                title: "  ".into(),
                ..content()
            },
            "content.title",
            "is required",
        );
        bad(
            ArticleContent {
                solution: "\n".into(),
                ..content()
            },
            "content.solution",
            "is required",
        );
        bad(
            ArticleContent {
                title: "空".repeat(MAX_TITLE + 1),
                ..content()
            },
            "content.title",
            "is longer than 200 characters",
        );
        bad(
            ArticleContent {
                cause: "x".repeat(MAX_TEXT + 1),
                ..content()
            },
            "content.cause",
            "is longer than 20000 characters",
        );
        // Exactly at the bounds is accepted.
        let at_bounds = ArticleContent {
            title: "空".repeat(MAX_TITLE),
            tags: (0..MAX_TAGS).map(|n| format!("{n:0>40}")).collect(),
            ..content()
        };
        assert_eq!(
            given::<Article>([])
                .when(ArticleCommand::Publish { content: at_bounds }, &engineer())
                .events()
                .len(),
            1
        );
    }

    #[test]
    fn tags_are_never_empty_long_or_too_many() {
        let bad = |tags: Vec<String>, problem: &str| {
            given::<Article>([])
                .when(
                    ArticleCommand::Publish {
                        content: ArticleContent { tags, ..content() },
                    },
                    &engineer(),
                )
                .then_err(invalid("content.tags", problem).into());
        };
        bad(vec!["ups".into(), "  ".into()], "has an empty tag");
        bad(
            vec!["x".repeat(MAX_TAG + 1)],
            &format!("has a tag longer than 40 characters: {:?}", "x".repeat(41)),
        );
        bad(
            (0..=MAX_TAGS).map(|n| format!("tag{n}")).collect(),
            "has more than 20 tags",
        );
        // Duplicates count once.
        let same: Vec<String> = (0..=MAX_TAGS).map(|_| "UPS".into()).collect();
        given::<Article>([])
            .when(
                ArticleCommand::Publish {
                    content: ArticleContent {
                        tags: same,
                        ..content()
                    },
                },
                &engineer(),
            )
            .then([ArticleEvent::ArticlePublished {
                version: 1,
                content: ArticleContent {
                    tags: vec!["ups".into()],
                    ..content()
                },
            }]);
    }

    #[test]
    fn an_article_links_at_most_a_hundred_items_and_incidents() {
        let many: Vec<Uuid> = (0..=MAX_LINKS as u128).map(Uuid::from_u128).collect();
        given::<Article>([])
            .when(
                ArticleCommand::Publish {
                    content: ArticleContent {
                        ci_ids: many.clone(),
                        ..content()
                    },
                },
                &engineer(),
            )
            .then_err(invalid("content.ci_ids", "links more than 100").into());
        given::<Article>([])
            .when(
                ArticleCommand::Publish {
                    content: ArticleContent {
                        incident_ids: many,
                        ..content()
                    },
                },
                &engineer(),
            )
            .then_err(invalid("content.incident_ids", "links more than 100").into());
    }

    #[test]
    fn an_article_is_published_once() {
        given::<Article>([published()])
            .when(ArticleCommand::Publish { content: content() }, &engineer())
            .then_err(ArticleError::AlreadyPublished);
        given::<Article>([published(), retired()])
            .when(ArticleCommand::Publish { content: content() }, &engineer())
            .then_err(ArticleError::AlreadyPublished);
    }

    #[test]
    fn a_revision_is_the_next_version_with_its_note() {
        let better = ArticleContent {
            solution: "啟動備用空調;檢查冷媒壓力".into(),
            ..content()
        };
        let revised = ArticleEvent::ArticleRevised {
            version: 2,
            content: better.clone(),
            note: "補充檢修步驟".into(),
        };
        given::<Article>([published()])
            .when(revise(better.clone()), &engineer())
            .then([revised.clone()]);
        let third = ArticleContent {
            tags: vec!["空調".into()],
            ..better
        };
        given::<Article>([published(), revised])
            .when(
                ArticleCommand::Revise {
                    content: third.clone(),
                    note: String::new(),
                },
                &engineer(),
            )
            .then([ArticleEvent::ArticleRevised {
                version: 3,
                content: third,
                note: String::new(),
            }]);
    }

    #[test]
    fn a_revision_that_changes_nothing_is_refused() {
        // Differs only in what normalisation removes.
        let same = ArticleContent {
            title: " 機房空調故障 ".into(),
            tags: vec!["空調".into(), "機房".into(), "空調".into()],
            ..content()
        };
        given::<Article>([published()])
            .when(revise(same), &engineer())
            .then_err(ArticleError::Unchanged);
    }

    #[test]
    fn a_revision_is_checked_like_a_publication() {
        given::<Article>([published()])
            .when(
                revise(ArticleContent {
                    title: String::new(),
                    ..content()
                }),
                &engineer(),
            )
            .then_err(invalid("content.title", "is required").into());
        given::<Article>([published()])
            .when(
                ArticleCommand::Revise {
                    content: ArticleContent {
                        solution: "新方案".into(),
                        ..content()
                    },
                    note: "長".repeat(MAX_NOTE + 1),
                },
                &engineer(),
            )
            .then_err(invalid("note", "is longer than 500 characters").into());
    }

    #[test]
    fn an_article_made_from_an_incident_keeps_that_incident() {
        let incident = Uuid::from_u128(42);
        let from_report = ArticleEvent::ArticlePublished {
            version: 1,
            content: ArticleContent {
                from_incident: Some(incident),
                ..content()
            },
        };
        // Left out, the revision keeps it.
        let events = given::<Article>([from_report.clone()])
            .when(
                revise(ArticleContent {
                    solution: "新方案".into(),
                    ..content()
                }),
                &engineer(),
            )
            .events();
        let [ArticleEvent::ArticleRevised { content: kept, .. }] = &events[..] else {
            panic!("expected one revision, got {events:?}");
        };
        assert_eq!(kept.from_incident, Some(incident));
        // Named differently, the revision is refused.
        given::<Article>([from_report])
            .when(
                revise(ArticleContent {
                    solution: "新方案".into(),
                    from_incident: Some(Uuid::from_u128(43)),
                    ..content()
                }),
                &engineer(),
            )
            .then_err(
                invalid(
                    "content.from_incident",
                    "cannot change once the article is published",
                )
                .into(),
            );
        // An article not made from a report cannot claim one later.
        given::<Article>([published()])
            .when(
                revise(ArticleContent {
                    from_incident: Some(incident),
                    ..content()
                }),
                &engineer(),
            )
            .then_err(
                invalid(
                    "content.from_incident",
                    "cannot change once the article is published",
                )
                .into(),
            );
    }

    #[test]
    fn an_unpublished_article_takes_no_revision_or_retirement() {
        given::<Article>([])
            .when(revise(content()), &engineer())
            .then_err(ArticleError::NotPublished);
        given::<Article>([])
            .when(
                ArticleCommand::Retire {
                    reason: "過時".into(),
                },
                &engineer(),
            )
            .then_err(ArticleError::NotPublished);
    }

    #[test]
    fn a_retirement_gives_its_reason() {
        given::<Article>([published()])
            .when(
                ArticleCommand::Retire {
                    reason: " 空調已更換 ".into(),
                },
                &engineer(),
            )
            .then([retired()]);
        given::<Article>([published()])
            .when(
                ArticleCommand::Retire {
                    reason: "  ".into(),
                },
                &engineer(),
            )
            .then_err(invalid("reason", "is required").into());
    }

    #[test]
    fn a_retired_article_is_neither_revised_nor_retired_again() {
        given::<Article>([published(), retired()])
            .when(
                revise(ArticleContent {
                    solution: "新方案".into(),
                    ..content()
                }),
                &engineer(),
            )
            .then_err(ArticleError::Retired);
        given::<Article>([published(), retired()])
            .when(
                ArticleCommand::Retire {
                    reason: "再次".into(),
                },
                &engineer(),
            )
            .then_err(ArticleError::Retired);
    }

    #[test]
    fn the_state_follows_the_versions_and_the_retirement() {
        let better = ArticleContent {
            solution: "新方案".into(),
            ..content()
        };
        let state = [
            published(),
            ArticleEvent::ArticleRevised {
                version: 2,
                content: better.clone(),
                note: String::new(),
            },
            retired(),
        ]
        .iter()
        .fold(Article::default(), Article::evolve);
        assert_eq!(
            state,
            Article {
                version: 2,
                content: Some(better),
                status: ArticleStatus::Retired,
                retired_reason: Some("空調已更換".into()),
            }
        );
    }

    #[test]
    fn events_read_back_as_written() {
        for event in [published(), retired()] {
            let new = event.to_new_event().unwrap();
            let back: ArticleEvent = serde_json::from_str(&format!(
                "{{\"type\":{:?},\"data\":{}}}",
                new.event_type,
                new.data.get()
            ))
            .unwrap();
            assert_eq!(back, event);
        }
    }
}
