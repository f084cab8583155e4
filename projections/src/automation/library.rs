//! The media and script libraries as people browse them and provisioning reads them:
//! every item in the order it was added, with every version, who added or deprecated it
//! and when; lists by kind; a search by words in the name, description and tags; and the
//! version to use now ([`LibraryEntry::current`]).
//!
//! Search is a case-insensitive substring match of every word of the query, so Chinese
//! (written without spaces) is found by any part of a name: `介質` finds `CentOS 7.9
//! 安裝介質`. The library is small (hundreds of items), so a scan is fast enough.

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use opsledger_domain::automation::library::{LibraryEvent, LibraryItem, LibraryKind};
use opsledger_domain::kernel::aggregate::{Aggregate, DomainEvent};
use opsledger_domain::RecordedEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{stream_id, stream_kind, Projection};

/// Who marked something as not to be used, when, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deprecation {
    pub reason: String,
    /// The user id.
    pub by: String,
    pub at: DateTime<Utc>,
}

/// One version of an item: a file in the content store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LibraryVersion {
    /// 1, 2, …
    pub version: u32,
    /// The content store's name for the file.
    pub sha256: String,
    /// In bytes, as the content store measured it.
    pub size: u64,
    /// The file's name, e.g. `hostname.sh`.
    pub file_name: String,
    pub notes: String,
    /// The user id.
    pub added_by: String,
    pub added_at: DateTime<Utc>,
    pub deprecated: Option<Deprecation>,
}

impl LibraryVersion {
    /// The file's name (the same as `file_name`).
    pub fn name(&self) -> &str {
        &self.file_name
    }

    pub fn is_deprecated(&self) -> bool {
        self.deprecated.is_some()
    }
}

/// A library item with every version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LibraryEntry {
    pub id: Uuid,
    pub kind: LibraryKind,
    pub name: String,
    pub description: String,
    /// The user id of who looks after it.
    pub owner: String,
    pub platform: Option<String>,
    pub tags: Vec<String>,
    pub added_by: String,
    pub added_at: DateTime<Utc>,
    /// When it last changed (a version, an edit, a deprecation).
    pub updated_at: DateTime<Utc>,
    pub deprecated: Option<Deprecation>,
    /// Oldest first.
    pub versions: Vec<LibraryVersion>,
    /// The position of its last event.
    pub position: u64,
}

impl LibraryEntry {
    /// The version to use now: the latest one not deprecated, `None` when the item is
    /// deprecated or every version is.
    pub fn current(&self) -> Option<&LibraryVersion> {
        if self.deprecated.is_some() {
            return None;
        }
        self.versions.iter().rev().find(|v| !v.is_deprecated())
    }

    /// One version by its number.
    pub fn version(&self, version: u32) -> Option<&LibraryVersion> {
        self.versions.iter().find(|v| v.version == version)
    }

    pub fn is_deprecated(&self) -> bool {
        self.deprecated.is_some()
    }

    /// Whether every word of `words` (lower-case) is in the name, description or tags.
    fn matches(&self, words: &[String]) -> bool {
        if words.is_empty() {
            return true;
        }
        let name = self.name.to_lowercase();
        let description = self.description.to_lowercase();
        words.iter().all(|w| {
            name.contains(w.as_str())
                || description.contains(w.as_str())
                || self.tags.iter().any(|t| t.contains(w.as_str()))
        })
    }
}

/// What a list of the library asks for.
#[derive(Clone, Debug, Default)]
pub struct LibraryFilter {
    pub kind: Option<LibraryKind>,
    /// Words that must all appear (any case) in the name, description or tags.
    pub search: String,
    pub include_deprecated: bool,
}

/// Every library item, in the order added.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Library {
    items: IndexMap<Uuid, LibraryEntry>,
}

impl Library {
    pub fn get(&self, id: Uuid) -> Option<&LibraryEntry> {
        self.items.get(&id)
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The items `filter` asks for after the item at place `after` (a place in the order
    /// added, stable as items are added: a cursor), each with its place.
    pub fn list<'a>(
        &'a self,
        filter: &LibraryFilter,
        after: Option<usize>,
    ) -> impl Iterator<Item = (usize, &'a LibraryEntry)> + 'a {
        let words: Vec<String> = filter
            .search
            .split_whitespace()
            .map(str::to_lowercase)
            .collect();
        let kind = filter.kind;
        let include_deprecated = filter.include_deprecated;
        let start = after.map_or(0, |a| a + 1);
        self.items
            .values()
            .enumerate()
            .skip(start)
            .filter(move |(_, e)| {
                kind.is_none_or(|k| e.kind == k)
                    && (include_deprecated || !e.is_deprecated())
                    && e.matches(&words)
            })
    }

    /// Folds one library event in.
    pub fn on_event(&mut self, event: &RecordedEvent, e: &LibraryEvent) {
        let Some(id) = stream_id(&event.stream) else {
            return;
        };
        let at = event.metadata.recorded_at;
        let by = &event.metadata.actor.id;
        if let LibraryEvent::LibraryItemAdded { details } = e {
            self.items.entry(id).or_insert_with(|| LibraryEntry {
                id,
                kind: details.kind,
                name: details.name.clone(),
                description: details.description.clone(),
                owner: details.owner.clone(),
                platform: details.platform.clone(),
                tags: details.tags.clone(),
                added_by: by.clone(),
                added_at: at,
                updated_at: at,
                deprecated: None,
                versions: Vec::new(),
                position: event.position,
            });
            return;
        }
        let Some(entry) = self.items.get_mut(&id) else {
            return;
        };
        entry.updated_at = at;
        entry.position = event.position;
        let deprecation = |reason: &String| Deprecation {
            reason: reason.clone(),
            by: by.clone(),
            at,
        };
        match e {
            LibraryEvent::LibraryItemAdded { .. } => {}
            LibraryEvent::LibraryVersionAdded {
                version,
                sha256,
                size,
                file_name,
                notes,
            } => entry.versions.push(LibraryVersion {
                version: *version,
                sha256: sha256.clone(),
                size: *size,
                file_name: file_name.clone(),
                notes: notes.clone(),
                added_by: by.clone(),
                added_at: at,
                deprecated: None,
            }),
            LibraryEvent::LibraryItemEdited {
                description,
                owner,
                tags,
            } => {
                entry.description.clone_from(description);
                entry.owner.clone_from(owner);
                entry.tags.clone_from(tags);
            }
            LibraryEvent::LibraryVersionDeprecated { version, reason } => {
                if let Some(v) = entry.versions.iter_mut().find(|v| v.version == *version) {
                    v.deprecated = Some(deprecation(reason));
                }
            }
            LibraryEvent::LibraryItemDeprecated { reason } => {
                entry.deprecated = Some(deprecation(reason));
            }
        }
    }
}

impl Projection for Library {
    fn name(&self) -> &'static str {
        "library"
    }

    fn apply(&mut self, event: &RecordedEvent) {
        if stream_kind(&event.stream) != LibraryItem::KIND {
            return;
        }
        if let Ok(e) = LibraryEvent::from_recorded(event) {
            self.on_event(event, &e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_log::{at, person, Log};
    use opsledger_domain::automation::library::ItemDetails;

    fn stream(n: u128) -> String {
        format!("library_item-{}", Uuid::from_u128(n))
    }

    fn item(name: &str, kind: LibraryKind, description: &str, tags: &[&str]) -> LibraryEvent {
        LibraryEvent::LibraryItemAdded {
            details: ItemDetails {
                name: name.into(),
                kind,
                description: description.into(),
                owner: "u-wong".into(),
                platform: None,
                tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            },
        }
    }

    fn version(version: u32, sha: char) -> LibraryEvent {
        LibraryEvent::LibraryVersionAdded {
            version,
            sha256: sha.to_string().repeat(64),
            size: 100 + u64::from(version),
            file_name: format!("v{version}.bin"),
            notes: String::new(),
        }
    }

    fn library() -> Log {
        let wong = person("u-wong", "運維中心", &["operator"]);
        let mut log = Log::default();
        log.record(
            &stream(1),
            &item(
                "CentOS 7.9 安裝介質",
                LibraryKind::OsMedia,
                "DVD ISO",
                &["linux"],
            ),
            &wong,
            9,
        );
        log.record(&stream(1), &version(1, 'a'), &wong, 9);
        log.record(
            &stream(2),
            &item(
                "Oracle 19c",
                LibraryKind::Software,
                "數據庫軟件",
                &["oracle", "數據庫"],
            ),
            &wong,
            10,
        );
        log.record(&stream(2), &version(1, 'b'), &wong, 10);
        log.record(
            &stream(3),
            &item(
                "hostname.sh",
                LibraryKind::Script,
                "Prints the host name",
                &[],
            ),
            &wong,
            11,
        );
        log.record(&stream(3), &version(1, 'c'), &wong, 11);
        log
    }

    fn names<'a>(it: impl Iterator<Item = (usize, &'a LibraryEntry)>) -> Vec<&'a str> {
        it.map(|(_, e)| e.name.as_str()).collect()
    }

    #[test]
    fn lists_by_kind_and_searches_names_descriptions_and_tags_in_any_case() {
        let lib: Library = library().fold();
        let all = LibraryFilter::default();
        assert_eq!(
            names(lib.list(&all, None)),
            ["CentOS 7.9 安裝介質", "Oracle 19c", "hostname.sh"]
        );
        let scripts = LibraryFilter {
            kind: Some(LibraryKind::Script),
            ..all.clone()
        };
        assert_eq!(names(lib.list(&scripts, None)), ["hostname.sh"]);
        let search = |q: &str| {
            let f = LibraryFilter {
                search: q.into(),
                ..LibraryFilter::default()
            };
            names(lib.list(&f, None))
        };
        assert_eq!(search("介質"), ["CentOS 7.9 安裝介質"]);
        assert_eq!(search("數據"), ["Oracle 19c"]);
        assert_eq!(search("ORACLE"), ["Oracle 19c"]);
        assert_eq!(search("LINUX dvd"), ["CentOS 7.9 安裝介質"]);
        assert_eq!(search("host name"), ["hostname.sh"]);
        assert!(search("windows").is_empty());
        // A cursor is a place in the order added.
        assert_eq!(
            names(lib.list(&all, Some(0))),
            ["Oracle 19c", "hostname.sh"]
        );
    }

    #[test]
    fn the_current_version_is_the_latest_not_deprecated() {
        let wong = person("u-wong", "運維中心", &["operator"]);
        let mut log = library();
        log.record(&stream(2), &version(2, 'd'), &wong, 12);
        let lib: Library = log.fold();
        let oracle = lib.get(Uuid::from_u128(2)).unwrap();
        assert_eq!(oracle.current().map(|v| v.version), Some(2));
        assert_eq!(oracle.current().unwrap().sha256, "d".repeat(64));
        assert_eq!(oracle.current().unwrap().size, 102);
        assert_eq!(oracle.current().unwrap().name(), "v2.bin");

        log.record(
            &stream(2),
            &LibraryEvent::LibraryVersionDeprecated {
                version: 2,
                reason: "安裝失敗".into(),
            },
            &wong,
            13,
        );
        let lib: Library = log.fold();
        let oracle = lib.get(Uuid::from_u128(2)).unwrap();
        assert_eq!(oracle.current().map(|v| v.version), Some(1));
        assert_eq!(
            oracle.version(2).unwrap().deprecated,
            Some(Deprecation {
                reason: "安裝失敗".into(),
                by: "u-wong".into(),
                at: at(13)
            })
        );
        assert_eq!(oracle.updated_at, at(13));

        log.record(
            &stream(2),
            &LibraryEvent::LibraryItemDeprecated {
                reason: "改用 21c".into(),
            },
            &wong,
            14,
        );
        let lib: Library = log.fold();
        let oracle = lib.get(Uuid::from_u128(2)).unwrap();
        assert_eq!(oracle.current(), None);
        // Deprecated items are listed only when asked for.
        let f = LibraryFilter::default();
        assert_eq!(
            names(lib.list(&f, None)),
            ["CentOS 7.9 安裝介質", "hostname.sh"]
        );
        let f = LibraryFilter {
            include_deprecated: true,
            ..f
        };
        assert_eq!(lib.list(&f, None).count(), 3);
    }

    #[test]
    fn an_edit_changes_what_search_finds() {
        let wong = person("u-wong", "運維中心", &["operator"]);
        let mut log = library();
        log.record(
            &stream(3),
            &LibraryEvent::LibraryItemEdited {
                description: "顯示主機名".into(),
                owner: "u-lam".into(),
                tags: vec!["巡檢".into()],
            },
            &wong,
            12,
        );
        let lib: Library = log.fold();
        let f = |q: &str| LibraryFilter {
            search: q.into(),
            ..LibraryFilter::default()
        };
        assert_eq!(names(lib.list(&f("主機"), None)), ["hostname.sh"]);
        assert_eq!(names(lib.list(&f("巡檢"), None)), ["hostname.sh"]);
        assert!(lib.list(&f("prints"), None).next().is_none());
        assert_eq!(lib.get(Uuid::from_u128(3)).unwrap().owner, "u-lam");
    }

    #[test]
    fn a_snapshot_reads_back_the_same_library() {
        let lib: Library = library().fold();
        let json = serde_json::to_string(&lib).unwrap();
        let back: Library = serde_json::from_str(&json).unwrap();
        let all = LibraryFilter::default();
        assert_eq!(
            back.list(&all, None)
                .map(|(_, e)| e.clone())
                .collect::<Vec<_>>(),
            lib.list(&all, None)
                .map(|(_, e)| e.clone())
                .collect::<Vec<_>>()
        );
    }
}
