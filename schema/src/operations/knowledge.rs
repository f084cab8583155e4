//! The knowledge base over GraphQL: versioned articles, searched by words (Chinese and
//! English) and tags, suggested on incidents, and made from an incident's report.

use async_graphql::{Context, InputObject, Object, Result, SimpleObject, ID};
use chrono::{DateTime, Utc};
use opsledger_domain::kernel::aggregate::Aggregate;
use opsledger_domain::operations::incident::Incident as IncidentAgg;
use opsledger_domain::operations::knowledge::{
    Article as ArticleAggregate, ArticleCommand, ArticleContent,
};
use opsledger_domain::resources::cmdb::ConfigurationItem as CiAggregate;
use opsledger_projections::operations::knowledge::{ArticleStatus, ArticleView};
use opsledger_projections::ReadModels;
use uuid::Uuid;

use crate::kit::errors::{bad_input, error, Code};
use crate::kit::ids;
use crate::kit::operate;
use crate::kit::{actor, current_models, models, page_size};
use crate::kit::{new_id, Payload};
use crate::Operation;

/// A knowledge article at one version.
#[derive(SimpleObject)]
pub struct Article {
    pub id: ID,
    pub version: u32,
    pub retired: bool,
    pub title: String,
    pub symptom: String,
    pub cause: String,
    pub solution: String,
    pub tags: Vec<String>,
    pub configuration_items: Vec<ID>,
    pub incidents: Vec<ID>,
    /// The incident whose report it was made from.
    pub from_incident: Option<ID>,
    pub published_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Who wrote this version, and why it was revised.
    pub by: String,
    pub note: String,
}

/// An article at its current version or at `version` (anyone signed in; for its field and
/// for `node(id:)`).
pub(crate) fn article_by_id(
    ctx: &Context<'_>,
    m: &ReadModels,
    id: Uuid,
    version: Option<u32>,
) -> Result<Option<Article>> {
    actor(ctx)?;
    let Some(v) = m.knowledge.get(id) else {
        return Ok(None);
    };
    Ok(match version {
        None => Some(article_node(v)),
        Some(n) => v
            .history
            .iter()
            .position(|h| h.version == n)
            .map(|i| article_version(v, i)),
    })
}

pub(crate) fn article_node(v: &ArticleView) -> Article {
    article_version(v, v.history.len() - 1)
}

fn article_version(v: &ArticleView, i: usize) -> Article {
    let version = &v.history[i];
    let c = &version.content;
    Article {
        id: ids::global(ArticleAggregate::KIND, v.id),
        version: version.version,
        retired: v.status == ArticleStatus::Retired,
        title: c.title.clone(),
        symptom: c.symptom.clone(),
        cause: c.cause.clone(),
        solution: c.solution.clone(),
        tags: c.tags.clone(),
        configuration_items: c
            .ci_ids
            .iter()
            .map(|i| ids::global(CiAggregate::KIND, *i))
            .collect(),
        incidents: c
            .incident_ids
            .iter()
            .map(|i| ids::global(IncidentAgg::KIND, *i))
            .collect(),
        from_incident: c.from_incident.map(|i| ids::global(IncidentAgg::KIND, i)),
        published_at: v.published_at,
        updated_at: v.updated_at,
        by: version.by.clone(),
        note: version.note.clone(),
    }
}

/// Search results, best first, with the position they reflect.
#[derive(SimpleObject)]
pub struct ArticleHits {
    pub articles: Vec<Article>,
    /// Every event up to this position is in the answer.
    pub position: u64,
}

#[derive(Default)]
pub struct KnowledgeQuery;

#[Object]
impl KnowledgeQuery {
    /// Articles matching every word of `query` (Chinese or English) and every tag, best
    /// first; with no words, the tagged articles newest first.
    async fn articles(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "At most 200 characters.",
            validator(
                custom = "crate::kit::bounds::chars(\"query\", crate::kit::bounds::KEY_CHARS)"
            )
        )]
        query: Option<String>,
        #[graphql(
            desc = "At most 200 items of at most 200 characters.",
            validator(
                custom = "crate::kit::bounds::chars(\"tags\", opsledger_domain::kernel::limits::NAME_CHARS)"
            )
        )]
        tags: Option<Vec<String>>,
        include_retired: Option<bool>,
        #[graphql(
            desc = "Range: 0–500.",
            validator(custom = "crate::kit::bounds::within(\"first\", crate::kit::bounds::PAGE)")
        )]
        first: Option<i32>,
        #[graphql(
            desc = "Range: 0–9007199254740991.",
            validator(
                custom = "crate::kit::bounds::within(\"atLeast\", crate::kit::bounds::POSITION)"
            )
        )]
        at_least: Option<u64>,
    ) -> Result<ArticleHits> {
        actor(ctx)?;
        let limit = page_size(first, 20)?;
        let m = models(ctx, at_least).await?;
        let hits = m.knowledge.search(
            query.as_deref().unwrap_or_default(),
            tags.as_deref().unwrap_or_default(),
            limit,
            include_retired.unwrap_or(false),
        );
        Ok(ArticleHits {
            articles: hits
                .iter()
                .filter_map(|h| m.knowledge.get(h.id))
                .map(article_node)
                .collect(),
            position: m.position,
        })
    }

    /// An article, at its current version or at `version`.
    async fn article(
        &self,
        ctx: &Context<'_>,
        id: ID,
        #[graphql(
            desc = "Range: 0–1000000.",
            validator(
                custom = "crate::kit::bounds::within(\"version\", opsledger_domain::kernel::limits::ORDINAL)"
            )
        )]
        version: Option<u32>,
        #[graphql(
            desc = "Range: 0–9007199254740991.",
            validator(
                custom = "crate::kit::bounds::within(\"atLeast\", crate::kit::bounds::POSITION)"
            )
        )]
        at_least: Option<u64>,
    ) -> Result<Option<Article>> {
        actor(ctx)?;
        let id = ids::parse("id", ArticleAggregate::KIND, &id)?;
        article_by_id(ctx, &*models(ctx, at_least).await?, id, version)
    }
}

#[derive(InputObject)]
pub struct ArticleInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"title\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub title: String,
    /// At most 10000 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"symptom\", opsledger_domain::kernel::limits::TEXT_CHARS)"
    ))]
    pub symptom: Option<String>,
    /// At most 10000 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"cause\", opsledger_domain::kernel::limits::TEXT_CHARS)"
    ))]
    pub cause: Option<String>,
    /// At most 10000 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"solution\", opsledger_domain::kernel::limits::TEXT_CHARS)"
    ))]
    pub solution: String,
    /// At most 200 items of at most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"tags\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub tags: Option<Vec<String>>,
    pub configuration_items: Option<Vec<ID>>,
    pub incidents: Option<Vec<ID>>,
}

fn content(input: ArticleInput) -> Result<ArticleContent> {
    let parse_all = |field: &str, kind: &str, list: &Option<Vec<ID>>| -> Result<Vec<Uuid>> {
        list.iter()
            .flatten()
            .enumerate()
            .map(|(i, id)| ids::parse(&format!("article.{field}[{i}]"), kind, id))
            .collect()
    };
    Ok(ArticleContent {
        ci_ids: parse_all(
            "configurationItems",
            CiAggregate::KIND,
            &input.configuration_items,
        )?,
        incident_ids: parse_all("incidents", IncidentAgg::KIND, &input.incidents)?,
        title: input.title,
        symptom: input.symptom.unwrap_or_default(),
        cause: input.cause.unwrap_or_default(),
        solution: input.solution,
        tags: input.tags.unwrap_or_default(),
        from_incident: None,
    })
}

#[derive(InputObject)]
pub struct PublishArticleInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    pub article: ArticleInput,
}

#[derive(InputObject)]
pub struct ReviseArticleInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    pub article_id: ID,
    pub article: ArticleInput,
    /// Why it was revised.
    ///
    /// At most 10000 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"note\", opsledger_domain::kernel::limits::TEXT_CHARS)"
    ))]
    pub note: Option<String>,
}

#[derive(InputObject)]
pub struct RetireArticleInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    pub article_id: ID,
    /// At most 10000 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"reason\", opsledger_domain::kernel::limits::TEXT_CHARS)"
    ))]
    pub reason: String,
}

#[derive(InputObject)]
pub struct ArticleFromIncidentInput {
    /// At most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"clientMutationId\", crate::kit::bounds::KEY_CHARS)"
    ))]
    pub client_mutation_id: Option<String>,
    pub incident_id: ID,
    /// At most 200 items of at most 200 characters.
    #[graphql(validator(
        custom = "crate::kit::bounds::chars(\"tags\", opsledger_domain::kernel::limits::NAME_CHARS)"
    ))]
    pub tags: Option<Vec<String>>,
}

async fn on_article(
    ctx: &Context<'_>,
    client_mutation_id: Option<String>,
    article_id: Uuid,
    command: ArticleCommand,
) -> Result<Payload> {
    let operation = Operation::Article(article_id, command);
    operate(
        ctx,
        client_mutation_id,
        ArticleAggregate::KIND,
        article_id,
        operation,
    )
    .await
}

#[derive(Default)]
pub struct KnowledgeMutation;

#[Object]
impl KnowledgeMutation {
    /// Publishes a new article (engineers, the service desk, operators).
    async fn publish_article(
        &self,
        ctx: &Context<'_>,
        input: PublishArticleInput,
    ) -> Result<Payload> {
        let user = actor(ctx)?.id.clone();
        let id = new_id(ctx, &user, input.client_mutation_id.as_deref());
        let command = ArticleCommand::Publish {
            content: content(input.article)?,
        };
        on_article(ctx, input.client_mutation_id, id, command).await
    }

    /// Publishes a new version of an article.
    async fn revise_article(
        &self,
        ctx: &Context<'_>,
        input: ReviseArticleInput,
    ) -> Result<Payload> {
        let id = ids::parse("articleId", ArticleAggregate::KIND, &input.article_id)?;
        let command = ArticleCommand::Revise {
            content: content(input.article)?,
            note: input.note.unwrap_or_default(),
        };
        on_article(ctx, input.client_mutation_id, id, command).await
    }

    /// Takes an article out of searches and suggestions.
    async fn retire_article(
        &self,
        ctx: &Context<'_>,
        input: RetireArticleInput,
    ) -> Result<Payload> {
        let id = ids::parse("articleId", ArticleAggregate::KIND, &input.article_id)?;
        let command = ArticleCommand::Retire {
            reason: input.reason,
        };
        on_article(ctx, input.client_mutation_id, id, command).await
    }

    /// Turns a resolved incident's report into an article: its title, description as the
    /// symptom, cause, resolution and preventive measures as the solution, its items.
    async fn article_from_incident(
        &self,
        ctx: &Context<'_>,
        input: ArticleFromIncidentInput,
    ) -> Result<Payload> {
        actor(ctx)?;
        let incident_id = ids::parse("incidentId", IncidentAgg::KIND, &input.incident_id)?;
        let content = {
            let m = current_models(ctx).await?;
            let v = m
                .incidents
                .get(incident_id)
                .ok_or_else(|| error(Code::NotFound, "there is no such incident"))?;
            let r = v
                .resolution
                .clone()
                .ok_or_else(|| bad_input("incidentId", "the incident is not resolved yet"))?;
            let mut solution = r.resolution;
            if !r.preventive_measures.trim().is_empty() {
                solution.push_str("\n\n預防措施 / Preventive measures:\n\n");
                solution.push_str(&r.preventive_measures);
            }
            let mut tags = input.tags.unwrap_or_default();
            tags.push(v.opening.service.clone());
            ArticleContent {
                title: v.opening.title.clone(),
                symptom: v.opening.description.clone(),
                cause: r.cause,
                solution,
                tags,
                ci_ids: v.opening.ci_ids.clone(),
                incident_ids: vec![incident_id],
                from_incident: Some(incident_id),
            }
        };
        // One article per incident: a retry publishes nothing twice.
        let article_id = Uuid::new_v5(&incident_id, b"knowledge-article");
        on_article(
            ctx,
            input.client_mutation_id,
            article_id,
            ArticleCommand::Publish { content },
        )
        .await
    }
}
