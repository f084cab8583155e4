//! The service catalogue as requesters and administrators see it: every item, its current
//! version, and every version it had.

use std::collections::BTreeMap;

use opsledger_domain::kernel::aggregate::{DomainEvent, Role};
use opsledger_domain::requests::catalog::{CatalogEvent, ItemDefinition};
use opsledger_domain::RecordedEvent;
use uuid::Uuid;

use crate::Projection;

/// One catalogue item.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CatalogEntry {
    pub item_id: Uuid,
    /// Every version, oldest first; the last is current.
    pub versions: Vec<ItemDefinition>,
    pub retired: bool,
    /// The position of the item's last event.
    pub position: u64,
}

impl CatalogEntry {
    pub fn current(&self) -> &ItemDefinition {
        // An entry exists only once created, with its first version.
        &self.versions[self.versions.len() - 1]
    }

    pub fn version(&self) -> u32 {
        self.versions.len() as u32
    }
}

/// Every catalogue item, in the order they were created.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Catalog {
    items: BTreeMap<Uuid, CatalogEntry>,
    order: Vec<Uuid>,
}

impl Catalog {
    pub fn get(&self, item_id: Uuid) -> Option<&CatalogEntry> {
        self.items.get(&item_id)
    }

    /// Items in creation order; retired ones only when asked for.
    pub fn all(&self, include_retired: bool) -> impl Iterator<Item = &CatalogEntry> {
        self.order
            .iter()
            .filter_map(|id| self.items.get(id))
            .filter(move |e| include_retired || !e.retired)
    }

    /// The open items `roles` in `department` may see and request.
    pub fn visible_to<'a>(
        &'a self,
        roles: &'a [Role],
        department: Option<&'a str>,
    ) -> impl Iterator<Item = &'a CatalogEntry> + 'a {
        self.all(false)
            .filter(move |e| e.current().visible_to(roles, department))
    }
}

impl Projection for Catalog {
    fn name(&self) -> &'static str {
        "catalog"
    }

    fn apply(&mut self, event: &RecordedEvent) {
        if crate::stream_kind(&event.stream) != "catalog_item" {
            return;
        }
        let Ok(e) = CatalogEvent::from_recorded(event) else {
            return;
        };
        match e {
            CatalogEvent::CatalogItemCreated {
                item_id,
                definition,
                ..
            } => {
                self.order.push(item_id);
                self.items.insert(
                    item_id,
                    CatalogEntry {
                        item_id,
                        versions: vec![definition],
                        retired: false,
                        position: event.position,
                    },
                );
            }
            CatalogEvent::CatalogItemRevised { definition, .. } => {
                if let Some(entry) = self.by_stream(&event.stream) {
                    entry.versions.push(definition);
                    entry.position = event.position;
                }
            }
            CatalogEvent::CatalogItemRetired { .. } => {
                if let Some(entry) = self.by_stream(&event.stream) {
                    entry.retired = true;
                    entry.position = event.position;
                }
            }
        }
    }
}

impl Catalog {
    fn by_stream(&mut self, stream: &str) -> Option<&mut CatalogEntry> {
        self.items.get_mut(&crate::stream_id(stream)?)
    }
}
