//! The media and script libraries (the service plan's 介質庫): operating-system installation
//! media and images (Windows, Linux), patches, software packages (Oracle, WebSphere, IIS…)
//! and scripts, each a [`LibraryItem`] with a name, a description, an owner and tags, and
//! numbered versions. A version is a file kept in the content-addressed store: the events
//! hold its SHA-256 and size, never its bytes. Versions and whole items are deprecated, not
//! deleted, so what a past provisioning ran stays on record.
//!
//! This module does no I/O: whether the store holds a file is a fact the handler looks up
//! and passes in ([`NewVersion::stored_size`]), as the time and the actor are.
//! Automation workflows are their own aggregate, not library items.

use serde::{Deserialize, Serialize};

use crate::kernel::aggregate::{Aggregate, Context, DomainEvent, Role};
use crate::kernel::refusal::{Refusal, Refuse};
use crate::operations::knowledge::normalise_tag;
use crate::requests::catalog::{invalid, InvalidField};
use crate::Actor;

/// The longest name, in characters.
pub const MAX_NAME: usize = 200;
/// The longest description, in characters.
pub const MAX_DESCRIPTION: usize = 4_000;
/// The longest owner id, platform, or tag, in characters.
pub const MAX_SHORT: usize = 64;
/// The most tags an item carries.
pub const MAX_TAGS: usize = 20;
/// The longest file name, in characters.
pub const MAX_FILE_NAME: usize = 255;
/// The longest version note or deprecation reason, in characters.
pub const MAX_NOTE: usize = 2_000;

/// What a library item is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LibraryKind {
    /// Operating-system installation media (an ISO).
    OsMedia,
    /// A ready operating-system image (a template, a qcow2, a WIM).
    OsImage,
    /// An operating-system or software patch.
    Patch,
    /// An application software package.
    Software,
    /// A script run on a host.
    Script,
}

impl LibraryKind {
    pub const ALL: [LibraryKind; 5] = [
        LibraryKind::OsMedia,
        LibraryKind::OsImage,
        LibraryKind::Patch,
        LibraryKind::Software,
        LibraryKind::Script,
    ];

    /// The name in events, e.g. `os_media`.
    pub fn as_str(self) -> &'static str {
        match self {
            LibraryKind::OsMedia => "os_media",
            LibraryKind::OsImage => "os_image",
            LibraryKind::Patch => "patch",
            LibraryKind::Software => "software",
            LibraryKind::Script => "script",
        }
    }
}

/// What describes an item besides its versions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemDetails {
    pub name: String,
    pub kind: LibraryKind,
    #[serde(default)]
    pub description: String,
    /// The user id of who looks after it.
    pub owner: String,
    /// `linux`, `windows`… (lower-case), when it is for one platform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// Normalised by [`normalise_tag`], deduplicated and sorted.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// A version to add: a file already uploaded to the content store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewVersion {
    /// Its SHA-256, 64 hex digits.
    pub sha256: String,
    /// The fact the handler looked up: the size in bytes of the file the content store
    /// holds under `sha256`, `None` when it holds none.
    pub stored_size: Option<u64>,
    /// The file's name, e.g. `CentOS-7-x86_64-DVD-2009.iso`.
    pub file_name: String,
    /// What changed in it; may be empty.
    pub notes: String,
}

/// Orders to a library item.
#[derive(Clone, Debug)]
pub enum LibraryCommand {
    /// Adds the item with its first version.
    AddItem {
        details: ItemDetails,
        version: NewVersion,
    },
    /// Adds the next version.
    AddVersion { version: NewVersion },
    /// Changes what is given (`None` keeps it).
    EditDetails {
        description: Option<String>,
        owner: Option<String>,
        tags: Option<Vec<String>>,
    },
    /// Marks one version as not to be used any more.
    DeprecateVersion { version: u32, reason: String },
    /// Marks the whole item as not to be used any more.
    DeprecateItem { reason: String },
}

/// What happened to a library item. Who did it and when are in the event's metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum LibraryEvent {
    /// Always followed, in the same command, by its version 1.
    LibraryItemAdded {
        details: ItemDetails,
    },
    LibraryVersionAdded {
        version: u32,
        sha256: String,
        size: u64,
        file_name: String,
        #[serde(default)]
        notes: String,
    },
    /// The details as they are now (the name and kind never change).
    LibraryItemEdited {
        description: String,
        owner: String,
        tags: Vec<String>,
    },
    LibraryVersionDeprecated {
        version: u32,
        reason: String,
    },
    LibraryItemDeprecated {
        reason: String,
    },
}

impl DomainEvent for LibraryEvent {}

/// Why a library item refuses a command.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LibraryError {
    /// A field of the item breaks its rules (invalid)
    #[error(transparent)]
    Invalid(#[from] InvalidField),
    /// Only operators, catalogue administrators and administrators change the library (forbidden)
    #[error("only operators, catalogue administrators and administrators change the library")]
    NotPermitted,
    /// The item exists already (conflict)
    #[error("this library item exists already")]
    AlreadyExists,
    /// There is no such item (not found)
    #[error("there is no such library item")]
    NotFound,
    /// The item is deprecated (conflict)
    #[error("this library item is deprecated")]
    Deprecated,
    /// The content is a version of the item already (conflict)
    #[error("this content is already version {0} of the item")]
    DuplicateContent(u32),
    /// The item has no such version (not found)
    #[error("the item has no version {0}")]
    NoSuchVersion(u32),
    /// The version is deprecated already (conflict)
    #[error("version {0} is deprecated already")]
    VersionDeprecated(u32),
    /// The edit changes nothing (conflict)
    #[error("the edit changes nothing")]
    Unchanged,
}

impl Refuse for LibraryError {
    fn refusal(&self) -> Refusal<'_> {
        match self {
            Self::Invalid(f) => Refusal::Invalid { field: &f.field },
            Self::NotPermitted => Refusal::Forbidden,
            Self::AlreadyExists
            | Self::Deprecated
            | Self::DuplicateContent(..)
            | Self::VersionDeprecated(..)
            | Self::Unchanged => Refusal::Conflict,
            Self::NotFound | Self::NoSuchVersion(..) => Refusal::NotFound,
        }
    }
}

/// A version as the aggregate remembers it: enough to refuse duplicates and double
/// deprecations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionState {
    pub version: u32,
    pub sha256: String,
    pub deprecated: bool,
}

/// A library item's state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LibraryItem {
    pub details: Option<ItemDetails>,
    pub versions: Vec<VersionState>,
    pub deprecated: bool,
}

/// Whether `actor` may change the library: operators, catalogue administrators and
/// administrators (and the system's own components).
pub fn manages_library(actor: &Actor) -> bool {
    actor.operates() || actor.has_role(Role::CatalogAdmin)
}

fn text(field: &str, value: &str, required: bool, max: usize) -> Result<String, InvalidField> {
    let value = value.trim().to_owned();
    if required && value.is_empty() {
        return Err(invalid(field, "is required"));
    }
    if value.chars().count() > max {
        return Err(invalid(field, format!("is longer than {max} characters")));
    }
    Ok(value)
}

fn tags(list: &[String]) -> Result<Vec<String>, InvalidField> {
    let mut tags = Vec::with_capacity(list.len());
    for tag in list {
        let tag = normalise_tag(tag);
        if tag.is_empty() {
            return Err(invalid("tags", "has an empty tag"));
        }
        if tag.chars().count() > MAX_SHORT {
            return Err(invalid(
                "tags",
                format!("has a tag longer than {MAX_SHORT} characters: {tag:?}"),
            ));
        }
        tags.push(tag);
    }
    tags.sort();
    tags.dedup();
    if tags.len() > MAX_TAGS {
        return Err(invalid("tags", format!("has more than {MAX_TAGS} tags")));
    }
    Ok(tags)
}

/// Whether `text` is a SHA-256 as the content store names files: 64 lower-case hex digits.
pub fn is_sha256(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl ItemDetails {
    /// The details as an item stores them: text trimmed, platform lower-case, tags
    /// normalised.
    ///
    /// # Errors
    /// The first field that is missing, empty or too long.
    pub fn normalised(self) -> Result<ItemDetails, InvalidField> {
        let platform = match self.platform {
            None => None,
            Some(p) => Some(text("platform", &p, false, MAX_SHORT)?.to_lowercase())
                .filter(|p| !p.is_empty()),
        };
        Ok(ItemDetails {
            name: text("name", &self.name, true, MAX_NAME)?,
            kind: self.kind,
            description: text("description", &self.description, false, MAX_DESCRIPTION)?,
            owner: text("owner", &self.owner, true, MAX_SHORT)?,
            platform,
            tags: tags(&self.tags)?,
        })
    }
}

impl LibraryItem {
    /// The details of an item that may still change.
    fn writable(&self) -> Result<&ItemDetails, LibraryError> {
        let details = self.details.as_ref().ok_or(LibraryError::NotFound)?;
        if self.deprecated {
            return Err(LibraryError::Deprecated);
        }
        Ok(details)
    }

    /// The event adding `v` as version `number`, or why it may not be.
    fn version_added(&self, number: u32, v: NewVersion) -> Result<LibraryEvent, LibraryError> {
        let sha256 = v.sha256.trim().to_owned();
        if !is_sha256(&sha256) {
            return Err(invalid("sha256", "must be 64 lower-case hexadecimal digits").into());
        }
        let Some(size) = v.stored_size else {
            return Err(invalid(
                "sha256",
                "no content with this SHA-256 was uploaded; PUT the file to /content first",
            )
            .into());
        };
        if let Some(same) = self.versions.iter().find(|x| x.sha256 == sha256) {
            return Err(LibraryError::DuplicateContent(same.version));
        }
        let file_name = text("fileName", &v.file_name, true, MAX_FILE_NAME)?;
        if file_name.contains(['/', '\\']) || file_name == "." || file_name == ".." {
            return Err(invalid("fileName", "must be a file name, not a path").into());
        }
        Ok(LibraryEvent::LibraryVersionAdded {
            version: number,
            sha256,
            size,
            file_name,
            notes: text("notes", &v.notes, false, MAX_NOTE)?,
        })
    }
}

impl Aggregate for LibraryItem {
    const KIND: &'static str = "library_item";
    type Command = LibraryCommand;
    type Event = LibraryEvent;
    type Error = LibraryError;

    fn decide(
        &self,
        command: LibraryCommand,
        ctx: &Context,
    ) -> Result<Vec<LibraryEvent>, LibraryError> {
        if !manages_library(&ctx.actor) {
            return Err(LibraryError::NotPermitted);
        }
        match command {
            LibraryCommand::AddItem { details, version } => {
                if self.details.is_some() {
                    return Err(LibraryError::AlreadyExists);
                }
                let details = details.normalised()?;
                let first = self.version_added(1, version)?;
                Ok(vec![LibraryEvent::LibraryItemAdded { details }, first])
            }
            LibraryCommand::AddVersion { version } => {
                self.writable()?;
                let next = self.versions.last().map_or(1, |v| v.version + 1);
                Ok(vec![self.version_added(next, version)?])
            }
            LibraryCommand::EditDetails {
                description,
                owner,
                tags: new_tags,
            } => {
                let current = self.writable()?;
                let description = match description {
                    Some(d) => text("description", &d, false, MAX_DESCRIPTION)?,
                    None => current.description.clone(),
                };
                let owner = match owner {
                    Some(o) => text("owner", &o, true, MAX_SHORT)?,
                    None => current.owner.clone(),
                };
                let new_tags = match new_tags {
                    Some(t) => tags(&t)?,
                    None => current.tags.clone(),
                };
                if description == current.description
                    && owner == current.owner
                    && new_tags == current.tags
                {
                    return Err(LibraryError::Unchanged);
                }
                Ok(vec![LibraryEvent::LibraryItemEdited {
                    description,
                    owner,
                    tags: new_tags,
                }])
            }
            LibraryCommand::DeprecateVersion { version, reason } => {
                self.writable()?;
                let v = self
                    .versions
                    .iter()
                    .find(|v| v.version == version)
                    .ok_or(LibraryError::NoSuchVersion(version))?;
                if v.deprecated {
                    return Err(LibraryError::VersionDeprecated(version));
                }
                Ok(vec![LibraryEvent::LibraryVersionDeprecated {
                    version,
                    reason: text("reason", &reason, true, MAX_NOTE)?,
                }])
            }
            LibraryCommand::DeprecateItem { reason } => {
                self.writable()?;
                Ok(vec![LibraryEvent::LibraryItemDeprecated {
                    reason: text("reason", &reason, true, MAX_NOTE)?,
                }])
            }
        }
    }

    fn evolve(mut self, event: &LibraryEvent) -> Self {
        match event {
            LibraryEvent::LibraryItemAdded { details } => self.details = Some(details.clone()),
            LibraryEvent::LibraryVersionAdded {
                version, sha256, ..
            } => self.versions.push(VersionState {
                version: *version,
                sha256: sha256.clone(),
                deprecated: false,
            }),
            LibraryEvent::LibraryItemEdited {
                description,
                owner,
                tags,
            } => {
                if let Some(d) = &mut self.details {
                    d.description.clone_from(description);
                    d.owner.clone_from(owner);
                    d.tags.clone_from(tags);
                }
            }
            LibraryEvent::LibraryVersionDeprecated { version, .. } => {
                if let Some(v) = self.versions.iter_mut().find(|v| v.version == *version) {
                    v.deprecated = true;
                }
            }
            LibraryEvent::LibraryItemDeprecated { .. } => self.deprecated = true,
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::given::{given, person};

    const ISO_1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
    const ISO_2: &str = "2222222222222222222222222222222222222222222222222222222222222222";

    fn operator() -> Actor {
        person("u-wong", "運維中心", &["operator"])
    }

    fn details() -> ItemDetails {
        ItemDetails {
            name: "CentOS 7.9 安裝介質".into(),
            kind: LibraryKind::OsMedia,
            description: "CentOS 7.9 (2009) x86_64 DVD".into(),
            owner: "u-wong".into(),
            platform: Some("linux".into()),
            tags: vec!["centos".into(), "操作系統".into()],
        }
    }

    fn upload(sha256: &str, file_name: &str) -> NewVersion {
        NewVersion {
            sha256: sha256.into(),
            stored_size: Some(4_700_000),
            file_name: file_name.into(),
            notes: String::new(),
        }
    }

    fn add() -> LibraryCommand {
        LibraryCommand::AddItem {
            details: details(),
            version: upload(ISO_1, "CentOS-7-x86_64-DVD-2009.iso"),
        }
    }

    fn added() -> [LibraryEvent; 2] {
        [
            LibraryEvent::LibraryItemAdded { details: details() },
            version_added(1, ISO_1),
        ]
    }

    fn version_added(version: u32, sha256: &str) -> LibraryEvent {
        LibraryEvent::LibraryVersionAdded {
            version,
            sha256: sha256.into(),
            size: 4_700_000,
            file_name: "CentOS-7-x86_64-DVD-2009.iso".into(),
            notes: String::new(),
        }
    }

    #[test]
    fn an_operator_adds_an_item_with_its_first_version_normalised() {
        let messy = ItemDetails {
            name: "  CentOS 7.9 安裝介質 ".into(),
            platform: Some(" Linux ".into()),
            tags: vec!["CentOS".into(), " 操作系統 ".into(), "centos".into()],
            ..details()
        };
        given::<LibraryItem>([])
            .when(
                LibraryCommand::AddItem {
                    details: messy,
                    version: upload(ISO_1, " CentOS-7-x86_64-DVD-2009.iso "),
                },
                &operator(),
            )
            .then(added());
    }

    #[test]
    fn catalogue_admins_and_admins_change_the_library_but_requesters_and_auditors_do_not() {
        for roles in [&["catalog_admin"][..], &["admin"]] {
            given::<LibraryItem>([])
                .when(add(), &person("u-lam", "運維中心", roles))
                .then(added());
        }
        for roles in [&["requester"][..], &["auditor"], &["engineer"]] {
            let who = person("u-chan", "財政局", roles);
            given::<LibraryItem>([])
                .when(add(), &who)
                .then_err(LibraryError::NotPermitted);
            given::<LibraryItem>(added())
                .when(
                    LibraryCommand::DeprecateItem {
                        reason: "過時".into(),
                    },
                    &who,
                )
                .then_err(LibraryError::NotPermitted);
        }
    }

    #[test]
    fn a_version_whose_content_was_not_uploaded_is_refused_naming_the_field() {
        given::<LibraryItem>([])
            .when(
                LibraryCommand::AddItem {
                    details: details(),
                    version: NewVersion {
                        stored_size: None,
                        ..upload(ISO_1, "a.iso")
                    },
                },
                &operator(),
            )
            .then_err(
                invalid(
                    "sha256",
                    "no content with this SHA-256 was uploaded; PUT the file to /content first",
                )
                .into(),
            );
        given::<LibraryItem>([])
            .when(
                LibraryCommand::AddItem {
                    details: details(),
                    version: upload("ABC", "a.iso"),
                },
                &operator(),
            )
            .then_err(invalid("sha256", "must be 64 lower-case hexadecimal digits").into());
    }

    #[test]
    fn an_item_needs_a_name_and_an_owner_and_a_file_name_that_is_not_a_path() {
        let bad = |details: ItemDetails, file: &str, field: &str, problem: &str| {
            given::<LibraryItem>([])
                .when(
                    LibraryCommand::AddItem {
                        details,
                        version: upload(ISO_1, file),
                    },
                    &operator(),
                )
                .then_err(invalid(field, problem).into());
        };
        bad(
            ItemDetails {
                name: " ".into(),
                ..details()
            },
            "a.iso",
            "name",
            "is required",
        );
        bad(
            ItemDetails {
                owner: String::new(),
                ..details()
            },
            "a.iso",
            "owner",
            "is required",
        );
        bad(
            ItemDetails {
                name: "名".repeat(MAX_NAME + 1),
                ..details()
            },
            "a.iso",
            "name",
            "is longer than 200 characters",
        );
        bad(
            ItemDetails {
                tags: vec!["ok".into(), " ".into()],
                ..details()
            },
            "a.iso",
            "tags",
            "has an empty tag",
        );
        bad(details(), "", "fileName", "is required");
        bad(
            details(),
            "../etc/passwd",
            "fileName",
            "must be a file name, not a path",
        );
    }

    #[test]
    fn an_item_is_added_once() {
        given::<LibraryItem>(added())
            .when(add(), &operator())
            .then_err(LibraryError::AlreadyExists);
    }

    #[test]
    fn a_new_version_is_numbered_after_the_last() {
        given::<LibraryItem>(added())
            .when(
                LibraryCommand::AddVersion {
                    version: upload(ISO_2, "CentOS-7-x86_64-DVD-2009.iso"),
                },
                &operator(),
            )
            .then([version_added(2, ISO_2)]);
    }

    #[test]
    fn a_version_with_the_content_of_an_earlier_one_is_refused() {
        given::<LibraryItem>(added())
            .when(
                LibraryCommand::AddVersion {
                    version: upload(ISO_1, "again.iso"),
                },
                &operator(),
            )
            .then_err(LibraryError::DuplicateContent(1));
        // Even when that version is deprecated.
        let mut events = added().to_vec();
        events.push(version_added(2, ISO_2));
        events.push(LibraryEvent::LibraryVersionDeprecated {
            version: 2,
            reason: "壞".into(),
        });
        given::<LibraryItem>(events)
            .when(
                LibraryCommand::AddVersion {
                    version: upload(ISO_2, "again.iso"),
                },
                &operator(),
            )
            .then_err(LibraryError::DuplicateContent(2));
    }

    #[test]
    fn an_unknown_item_takes_no_version_edit_or_deprecation() {
        let commands = [
            LibraryCommand::AddVersion {
                version: upload(ISO_2, "b.iso"),
            },
            LibraryCommand::EditDetails {
                description: Some("x".into()),
                owner: None,
                tags: None,
            },
            LibraryCommand::DeprecateVersion {
                version: 1,
                reason: "x".into(),
            },
            LibraryCommand::DeprecateItem { reason: "x".into() },
        ];
        for command in commands {
            given::<LibraryItem>([])
                .when(command, &operator())
                .then_err(LibraryError::NotFound);
        }
    }

    #[test]
    fn an_edit_replaces_what_it_names_and_keeps_the_rest() {
        given::<LibraryItem>(added())
            .when(
                LibraryCommand::EditDetails {
                    description: None,
                    owner: Some(" u-lam ".into()),
                    tags: Some(vec!["CentOS".into(), "鏡像".into()]),
                },
                &operator(),
            )
            .then([LibraryEvent::LibraryItemEdited {
                description: "CentOS 7.9 (2009) x86_64 DVD".into(),
                owner: "u-lam".into(),
                tags: vec!["centos".into(), "鏡像".into()],
            }]);
        given::<LibraryItem>(added())
            .when(
                LibraryCommand::EditDetails {
                    description: Some(" CentOS 7.9 (2009) x86_64 DVD".into()),
                    owner: None,
                    tags: Some(vec!["操作系統".into(), "CENTOS".into()]),
                },
                &operator(),
            )
            .then_err(LibraryError::Unchanged);
        given::<LibraryItem>(added())
            .when(
                LibraryCommand::EditDetails {
                    description: None,
                    owner: Some("  ".into()),
                    tags: None,
                },
                &operator(),
            )
            .then_err(invalid("owner", "is required").into());
    }

    #[test]
    fn a_version_is_deprecated_once_with_a_reason() {
        given::<LibraryItem>(added())
            .when(
                LibraryCommand::DeprecateVersion {
                    version: 1,
                    reason: " 有已知漏洞 ".into(),
                },
                &operator(),
            )
            .then([LibraryEvent::LibraryVersionDeprecated {
                version: 1,
                reason: "有已知漏洞".into(),
            }]);
        given::<LibraryItem>(added())
            .when(
                LibraryCommand::DeprecateVersion {
                    version: 1,
                    reason: " ".into(),
                },
                &operator(),
            )
            .then_err(invalid("reason", "is required").into());
        given::<LibraryItem>(added())
            .when(
                LibraryCommand::DeprecateVersion {
                    version: 3,
                    reason: "x".into(),
                },
                &operator(),
            )
            .then_err(LibraryError::NoSuchVersion(3));
        let mut events = added().to_vec();
        events.push(LibraryEvent::LibraryVersionDeprecated {
            version: 1,
            reason: "x".into(),
        });
        given::<LibraryItem>(events)
            .when(
                LibraryCommand::DeprecateVersion {
                    version: 1,
                    reason: "again".into(),
                },
                &operator(),
            )
            .then_err(LibraryError::VersionDeprecated(1));
    }

    #[test]
    fn a_deprecated_item_takes_nothing_more() {
        let mut events = added().to_vec();
        events.push(LibraryEvent::LibraryItemDeprecated {
            reason: "CentOS 7 停止維護".into(),
        });
        let commands = [
            LibraryCommand::AddVersion {
                version: upload(ISO_2, "b.iso"),
            },
            LibraryCommand::EditDetails {
                description: Some("x".into()),
                owner: None,
                tags: None,
            },
            LibraryCommand::DeprecateVersion {
                version: 1,
                reason: "x".into(),
            },
            LibraryCommand::DeprecateItem { reason: "x".into() },
        ];
        for command in commands {
            given::<LibraryItem>(events.clone())
                .when(command, &operator())
                .then_err(LibraryError::Deprecated);
        }
    }

    #[test]
    fn the_state_follows_versions_edits_and_deprecations() {
        let mut events = added().to_vec();
        events.push(version_added(2, ISO_2));
        events.push(LibraryEvent::LibraryVersionDeprecated {
            version: 1,
            reason: "x".into(),
        });
        events.push(LibraryEvent::LibraryItemEdited {
            description: "新".into(),
            owner: "u-lam".into(),
            tags: vec![],
        });
        let state = events
            .iter()
            .fold(LibraryItem::default(), LibraryItem::evolve);
        assert_eq!(
            state.versions,
            vec![
                VersionState {
                    version: 1,
                    sha256: ISO_1.into(),
                    deprecated: true
                },
                VersionState {
                    version: 2,
                    sha256: ISO_2.into(),
                    deprecated: false
                },
            ]
        );
        let d = state.details.unwrap();
        assert_eq!((d.owner.as_str(), d.description.as_str()), ("u-lam", "新"));
        assert!(!state.deprecated);
    }

    #[test]
    fn events_read_back_as_written() {
        let mut events = added().to_vec();
        events.push(LibraryEvent::LibraryItemDeprecated { reason: "x".into() });
        for event in events {
            let new = event.to_new_event().unwrap();
            let back: LibraryEvent = serde_json::from_str(&format!(
                "{{\"type\":{:?},\"data\":{}}}",
                new.event_type,
                new.data.get()
            ))
            .unwrap();
            assert_eq!(back, event);
        }
    }
}
