//! The media and script libraries (介質庫) over GraphQL: items listed by kind and found by
//! words, each with its versions; adding an item or a version names a file already uploaded
//! with `PUT /content`, and its checksum and size are the ones the server computed.

use async_graphql::{Context, Enum, InputObject, Object, Result, SimpleObject, ID};
use chrono::{DateTime, Utc};
use opsledger_domain::automation::library::{
    ItemDetails, LibraryCommand, LibraryItem as LibraryAggregate, NewVersion,
};
use opsledger_domain::kernel::aggregate::Aggregate;
use opsledger_projections::automation::library::{
    Deprecation as DeprecationView, LibraryEntry, LibraryFilter, LibraryVersion as VersionView,
};
use opsledger_projections::ReadModels;
use uuid::Uuid;

use crate::kit::errors::internal;
use crate::kit::ids;
use crate::kit::operate;
use crate::kit::{actor, cursor, ledger, models, page, Page};
use crate::kit::{new_id, Payload};
use crate::Operation;

/// What a library item is.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "opsledger_domain::automation::library::LibraryKind")]
pub enum LibraryKind {
    /// Operating-system installation media (an ISO).
    OsMedia,
    /// A ready operating-system image.
    OsImage,
    Patch,
    /// An application software package (Oracle, WebSphere, IIS…).
    Software,
    Script,
}

/// Who marked something as not to be used, when, and why.
#[derive(SimpleObject)]
pub struct Deprecation {
    pub reason: String,
    pub by: String,
    pub at: DateTime<Utc>,
}

fn deprecation(d: &Option<DeprecationView>) -> Option<Deprecation> {
    d.as_ref().map(|d| Deprecation {
        reason: d.reason.clone(),
        by: d.by.clone(),
        at: d.at,
    })
}

/// One version of a library item: a file in the content store.
#[derive(SimpleObject)]
pub struct LibraryVersion {
    pub version: u32,
    /// The SHA-256 the server computed when the file was uploaded.
    pub sha256: String,
    /// In bytes.
    pub size: u64,
    pub file_name: String,
    pub notes: String,
    pub added_by: String,
    pub added_at: DateTime<Utc>,
    pub deprecated: bool,
    pub deprecation: Option<Deprecation>,
    /// Where to download it (with a bearer token): `/content/<sha256>`.
    pub download_path: String,
}

fn version_node(v: &VersionView) -> LibraryVersion {
    LibraryVersion {
        version: v.version,
        sha256: v.sha256.clone(),
        size: v.size,
        file_name: v.file_name.clone(),
        notes: v.notes.clone(),
        added_by: v.added_by.clone(),
        added_at: v.added_at,
        deprecated: v.is_deprecated(),
        deprecation: deprecation(&v.deprecated),
        download_path: format!("/content/{}", v.sha256),
    }
}

/// An item of the media and script libraries.
#[derive(SimpleObject)]
pub struct LibraryItem {
    pub id: ID,
    pub kind: LibraryKind,
    pub name: String,
    pub description: String,
    /// The user id of who looks after it.
    pub owner: String,
    pub platform: Option<String>,
    pub tags: Vec<String>,
    pub added_by: String,
    pub added_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deprecated: bool,
    pub deprecation: Option<Deprecation>,
    /// The version to use now: the latest not deprecated; none when the item is deprecated.
    pub current: Option<LibraryVersion>,
    /// Every version, oldest first.
    pub versions: Vec<LibraryVersion>,
}

fn item_node(e: &LibraryEntry) -> LibraryItem {
    LibraryItem {
        id: ids::global(LibraryAggregate::KIND, e.id),
        kind: e.kind.into(),
        name: e.name.clone(),
        description: e.description.clone(),
        owner: e.owner.clone(),
        platform: e.platform.clone(),
        tags: e.tags.clone(),
        added_by: e.added_by.clone(),
        added_at: e.added_at,
        updated_at: e.updated_at,
        deprecated: e.is_deprecated(),
        deprecation: deprecation(&e.deprecated),
        current: e.current().map(version_node),
        versions: e.versions.iter().map(version_node).collect(),
    }
}

#[derive(Default)]
pub struct LibraryQuery;

#[Object]
impl LibraryQuery {
    /// The library, in the order items were added: of one kind, matching every word of
    /// `search` (any case; Chinese by any part) in the name, description or tags, without
    /// deprecated items unless asked.
    #[expect(
        clippy::too_many_arguments,
        reason = "a GraphQL field takes each of its arguments as a parameter"
    )]
    async fn library_items(
        &self,
        ctx: &Context<'_>,
        kind: Option<LibraryKind>,
        #[graphql(
            desc = "At most 200 characters.",
            validator(
                custom = "crate::kit::bounds::chars(\"search\", crate::kit::bounds::KEY_CHARS)"
            )
        )]
        search: Option<String>,
        include_deprecated: Option<bool>,
        #[graphql(
            desc = "Range: 0–500.",
            validator(custom = "crate::kit::bounds::within(\"first\", crate::kit::bounds::PAGE)")
        )]
        first: Option<i32>,
        #[graphql(
            desc = "At most 200 characters.",
            validator(
                custom = "crate::kit::bounds::chars(\"after\", crate::kit::bounds::KEY_CHARS)"
            )
        )]
        after: Option<String>,
        #[graphql(
            desc = "Range: 0–9007199254740991.",
            validator(
                custom = "crate::kit::bounds::within(\"atLeast\", crate::kit::bounds::POSITION)"
            )
        )]
        at_least: Option<u64>,
    ) -> Result<Page<LibraryItem>> {
        actor(ctx)?;
        let after = cursor(after)?;
        let m = models(ctx, at_least).await?;
        let filter = LibraryFilter {
            kind: kind.map(Into::into),
            search: search.unwrap_or_default(),
            include_deprecated: include_deprecated.unwrap_or(false),
        };
        page(
            m.library.list(&filter, after),
            item_node,
            after.is_some(),
            first,
            m.position,
        )
    }

    /// One library item, deprecated or not.
    async fn library_item(
        &self,
        ctx: &Context<'_>,
        id: ID,
        #[graphql(
            desc = "Range: 0–9007199254740991.",
            validator(
                custom = "crate::kit::bounds::within(\"atLeast\", crate::kit::bounds::POSITION)"
            )
        )]
        at_least: Option<u64>,
    ) -> Result<Option<LibraryItem>> {
        actor(ctx)?;
        let id = ids::parse("id", LibraryAggregate::KIND, &id)?;
        let m = models(ctx, at_least).await?;
        Ok(item_of(&m, id))
    }
}

/// Library item `id`, deprecated or not.
pub(crate) fn item_of(m: &ReadModels, id: Uuid) -> Option<LibraryItem> {
    m.library.get(id).map(item_node)
}

#[derive(InputObject)]
pub struct AddLibraryItemInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    pub kind: LibraryKind,
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"name\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub name: String,
    /// At most 10000 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"description\", opsledger_domain::kernel::limits::TEXT_CHARS)"
    ))]
    pub description: Option<String>,
    /// The user id of who looks after it; you, when left out.
    ///
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"owner\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub owner: Option<String>,
    /// `linux`, `windows`…
    ///
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"platform\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub platform: Option<String>,
    /// At most 200 items of at most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"tags\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub tags: Option<Vec<String>>,
    /// The SHA-256 `PUT /content` answered for the first version's file.
    ///
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"sha256\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub sha256: String,
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"fileName\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub file_name: String,
    /// At most 10000 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"notes\", opsledger_domain::kernel::limits::TEXT_CHARS)"
    ))]
    pub notes: Option<String>,
}

#[derive(InputObject)]
pub struct AddLibraryVersionInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    pub item_id: ID,
    /// The SHA-256 `PUT /content` answered for the new version's file.
    ///
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"sha256\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub sha256: String,
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"fileName\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub file_name: String,
    /// What changed.
    ///
    /// At most 10000 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"notes\", opsledger_domain::kernel::limits::TEXT_CHARS)"
    ))]
    pub notes: Option<String>,
}

#[derive(InputObject)]
pub struct EditLibraryItemInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    pub item_id: ID,
    /// Left out, each keeps its value.
    ///
    /// At most 10000 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"description\", opsledger_domain::kernel::limits::TEXT_CHARS)"
    ))]
    pub description: Option<String>,
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"owner\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub owner: Option<String>,
    /// At most 200 items of at most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"tags\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub tags: Option<Vec<String>>,
}

#[derive(InputObject)]
pub struct DeprecateLibraryVersionInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    pub item_id: ID,
    /// Range: 0–1000000.
    #[graphql(validator(
        custom = "crate::kit::bounds::within(\"version\", opsledger_domain::kernel::limits::ORDINAL)"
    ))]
    pub version: u32,
    /// At most 10000 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"reason\", opsledger_domain::kernel::limits::TEXT_CHARS)"
    ))]
    pub reason: String,
}

#[derive(InputObject)]
pub struct DeprecateLibraryItemInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    pub item_id: ID,
    /// At most 10000 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"reason\", opsledger_domain::kernel::limits::TEXT_CHARS)"
    ))]
    pub reason: String,
}

/// The version to add, with the size of the file the content store holds under its hash
/// (none when it holds none): the checksum and size are the server's, not the client's.
async fn new_version(
    ctx: &Context<'_>,
    sha256: &str,
    file_name: String,
    notes: Option<String>,
) -> Result<NewVersion> {
    let sha256 = sha256.trim().to_ascii_lowercase();
    let stored_size = ledger(ctx).content_size(&sha256).await.map_err(internal)?;
    Ok(NewVersion {
        sha256,
        stored_size,
        file_name,
        notes: notes.unwrap_or_default(),
    })
}

async fn on_item(
    ctx: &Context<'_>,
    client_mutation_id: Option<String>,
    item_id: Uuid,
    command: LibraryCommand,
) -> Result<Payload> {
    operate(
        ctx,
        client_mutation_id,
        LibraryAggregate::KIND,
        item_id,
        Operation::LibraryItem(item_id, command),
    )
    .await
}

#[derive(Default)]
pub struct LibraryMutation;

#[Object]
impl LibraryMutation {
    /// Adds an item to the library with its first version (operators, catalogue
    /// administrators).
    async fn add_library_item(
        &self,
        ctx: &Context<'_>,
        input: AddLibraryItemInput,
    ) -> Result<Payload> {
        let user = actor(ctx)?.id.clone();
        let id = new_id(ctx, &user, input.client_mutation_id.as_deref());
        let version = new_version(ctx, &input.sha256, input.file_name, input.notes).await?;
        let command = LibraryCommand::AddItem {
            details: ItemDetails {
                name: input.name,
                kind: input.kind.into(),
                description: input.description.unwrap_or_default(),
                owner: input.owner.unwrap_or(user),
                platform: input.platform,
                tags: input.tags.unwrap_or_default(),
            },
            version,
        };
        on_item(ctx, input.client_mutation_id, id, command).await
    }

    /// Adds the next version of an item; content already among its versions is refused.
    async fn add_library_version(
        &self,
        ctx: &Context<'_>,
        input: AddLibraryVersionInput,
    ) -> Result<Payload> {
        actor(ctx)?;
        let id = ids::parse("itemId", LibraryAggregate::KIND, &input.item_id)?;
        let version = new_version(ctx, &input.sha256, input.file_name, input.notes).await?;
        on_item(
            ctx,
            input.client_mutation_id,
            id,
            LibraryCommand::AddVersion { version },
        )
        .await
    }

    /// Changes an item's description, owner or tags.
    async fn edit_library_item(
        &self,
        ctx: &Context<'_>,
        input: EditLibraryItemInput,
    ) -> Result<Payload> {
        let id = ids::parse("itemId", LibraryAggregate::KIND, &input.item_id)?;
        let command = LibraryCommand::EditDetails {
            description: input.description,
            owner: input.owner,
            tags: input.tags,
        };
        on_item(ctx, input.client_mutation_id, id, command).await
    }

    /// Marks one version as not to be used any more.
    async fn deprecate_library_version(
        &self,
        ctx: &Context<'_>,
        input: DeprecateLibraryVersionInput,
    ) -> Result<Payload> {
        let id = ids::parse("itemId", LibraryAggregate::KIND, &input.item_id)?;
        let command = LibraryCommand::DeprecateVersion {
            version: input.version,
            reason: input.reason,
        };
        on_item(ctx, input.client_mutation_id, id, command).await
    }

    /// Marks a whole item as not to be used any more.
    async fn deprecate_library_item(
        &self,
        ctx: &Context<'_>,
        input: DeprecateLibraryItemInput,
    ) -> Result<Payload> {
        let id = ids::parse("itemId", LibraryAggregate::KIND, &input.item_id)?;
        let command = LibraryCommand::DeprecateItem {
            reason: input.reason,
        };
        on_item(ctx, input.client_mutation_id, id, command).await
    }
}
