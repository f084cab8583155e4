//! The knowledge base as engineers search it: every article with every version it had,
//! an inverted index of its words (Chinese and English), and lookups by tag, by
//! configuration item and by incident, so a search or an incident's suggestions read a
//! few short lists instead of every article's text.
//!
//! Text is cut into tokens by [`tokenize`]: runs of letters and digits are lower-cased
//! words; runs of Chinese (and Japanese, Korean) characters are cut into overlapping
//! pairs, `機房空調` into `機房 房空 空調`, so a two-character query finds the word wherever
//! it stands, without a dictionary. A query is cut the same way, and an article matches
//! when it holds every one of the query's tokens.
//!
//! The index is left out of snapshots (it is large and follows from the articles):
//! [`Knowledge::restored`] rebuilds it after a snapshot is read back.

use foldhash::HashMap;
use std::cmp::Ordering;

use chrono::{DateTime, Utc};
use opsledger_domain::kernel::aggregate::{Aggregate, DomainEvent};
use opsledger_domain::operations::knowledge::{
    normalise_tag, Article, ArticleContent, ArticleEvent,
};
use opsledger_domain::RecordedEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use opsledger_domain::operations::knowledge::ArticleStatus;

use crate::{stream_id, stream_kind, Projection};

/// One version of an article as it was published.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArticleVersion {
    pub version: u32,
    pub content: ArticleContent,
    /// Why it was revised; empty for the first version.
    pub note: String,
    pub at: DateTime<Utc>,
    /// The user id of who published it.
    pub by: String,
}

/// An article: its current state and every version.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ArticleView {
    pub id: Uuid,
    pub version: u32,
    pub status: ArticleStatus,
    pub published_at: DateTime<Utc>,
    /// When it was last revised or retired.
    pub updated_at: DateTime<Utc>,
    pub retired_reason: Option<String>,
    /// The position of its last event.
    pub position: u64,
    /// Every version, oldest first; the last is the current one.
    pub history: Vec<ArticleVersion>,
}

impl ArticleView {
    /// The current version.
    pub fn current(&self) -> &ArticleVersion {
        self.history
            .last()
            .expect("an article has its first version")
    }

    /// The current content.
    pub fn content(&self) -> &ArticleContent {
        &self.current().content
    }

    pub fn is_retired(&self) -> bool {
        self.status == ArticleStatus::Retired
    }
}

/// An article a search or a suggestion found.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Hit {
    pub id: Uuid,
    /// How well it matches the words; 0 when only tags or links were asked for.
    pub score: f64,
    /// Its current version.
    pub version: u32,
}

/// Every article, and the index that finds them.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Knowledge {
    /// In the order published; an article's place is its document number in the index.
    articles: Vec<ArticleView>,
    /// Rebuilt by [`Knowledge::restored`].
    #[serde(skip)]
    index: Index,
}

/// An article's place in `Knowledge::articles`.
type Doc = u32;

/// A document and its weighted term frequency, packed in one word: the document in the
/// upper 24 bits (16.7 million articles), the frequency, at most 255, in the lower 8.
/// Sorting postings sorts them by document.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Posting(u32);

impl Posting {
    fn new(doc: Doc, tf: u32) -> Posting {
        Posting((doc << 8) | tf.min(255))
    }

    fn doc(self) -> Doc {
        self.0 >> 8
    }

    fn tf(self) -> u32 {
        self.0 & 0xff
    }
}

/// The lookups, each a list sorted by document.
#[derive(Debug, Default)]
struct Index {
    docs: HashMap<Uuid, Doc>,
    words: HashMap<String, Vec<Posting>>,
    tags: HashMap<String, Vec<Doc>>,
    cis: HashMap<Uuid, Vec<Doc>>,
    /// Incidents an article links to or was made from.
    incidents: HashMap<Uuid, Vec<Doc>>,
}

/// How much a token counts in each part of an article.
const TITLE_WEIGHT: u32 = 3;
const TAG_WEIGHT: u32 = 3;
const SYMPTOM_WEIGHT: u32 = 2;
const TEXT_WEIGHT: u32 = 1;

/// A suggestion reads at most this many of the text's tokens, the rarest.
const SUGGEST_TOKENS: usize = 64;

fn insert_doc(list: &mut Vec<Doc>, doc: Doc) {
    if let Err(at) = list.binary_search(&doc) {
        list.insert(at, doc);
    }
}

fn remove_doc<K: std::hash::Hash + Eq>(map: &mut HashMap<K, Vec<Doc>>, key: &K, doc: Doc) {
    if let Some(list) = map.get_mut(key) {
        if let Ok(at) = list.binary_search(&doc) {
            list.remove(at);
        }
        if list.is_empty() {
            map.remove(key);
        }
    }
}

/// Each token of `content` with its weighted frequency.
fn weighted_terms(content: &ArticleContent) -> HashMap<String, u32> {
    let mut terms: HashMap<String, u32> = HashMap::default();
    let fields = [
        (content.title.as_str(), TITLE_WEIGHT),
        (content.symptom.as_str(), SYMPTOM_WEIGHT),
        (content.cause.as_str(), TEXT_WEIGHT),
        (content.solution.as_str(), TEXT_WEIGHT),
    ]
    .into_iter()
    .chain(content.tags.iter().map(|t| (t.as_str(), TAG_WEIGHT)));
    for (text, weight) in fields {
        for token in tokenize(text) {
            *terms.entry(token).or_default() += weight;
        }
    }
    terms
}

/// Incidents `content` links to or was made from.
fn incidents_of(content: &ArticleContent) -> impl Iterator<Item = Uuid> + '_ {
    content
        .incident_ids
        .iter()
        .copied()
        .chain(content.from_incident)
}

impl Index {
    fn add(&mut self, doc: Doc, content: &ArticleContent) {
        for (token, tf) in weighted_terms(content) {
            let list = self.words.entry(token).or_default();
            let posting = Posting::new(doc, tf);
            // A new article's number is the largest: most adds are a push.
            match list.last() {
                Some(last) if last.doc() >= doc => {
                    let at = list.partition_point(|p| p.doc() < doc);
                    list.insert(at, posting);
                }
                _ => list.push(posting),
            }
        }
        for tag in &content.tags {
            insert_doc(self.tags.entry(tag.clone()).or_default(), doc);
        }
        for ci in &content.ci_ids {
            insert_doc(self.cis.entry(*ci).or_default(), doc);
        }
        for incident in incidents_of(content) {
            insert_doc(self.incidents.entry(incident).or_default(), doc);
        }
    }

    fn remove(&mut self, doc: Doc, content: &ArticleContent) {
        for token in weighted_terms(content).into_keys() {
            if let Some(list) = self.words.get_mut(&token) {
                if let Ok(at) = list.binary_search_by_key(&doc, |p| p.doc()) {
                    list.remove(at);
                }
                if list.is_empty() {
                    self.words.remove(&token);
                }
            }
        }
        for tag in &content.tags {
            remove_doc(&mut self.tags, tag, doc);
        }
        for ci in &content.ci_ids {
            remove_doc(&mut self.cis, ci, doc);
        }
        for incident in incidents_of(content) {
            remove_doc(&mut self.incidents, &incident, doc);
        }
    }
}

/// A list a search intersects: a query token's postings or a tag's articles.
enum Filter<'a> {
    Word(&'a [Posting]),
    Tag(&'a [Doc]),
}

impl Filter<'_> {
    fn len(&self) -> usize {
        match self {
            Filter::Word(p) => p.len(),
            Filter::Tag(d) => d.len(),
        }
    }

    fn docs(&self) -> Box<dyn Iterator<Item = Doc> + '_> {
        match self {
            Filter::Word(p) => Box::new(p.iter().map(|p| p.doc())),
            Filter::Tag(d) => Box::new(d.iter().copied()),
        }
    }
}

impl Knowledge {
    pub fn get(&self, id: Uuid) -> Option<&ArticleView> {
        self.index
            .docs
            .get(&id)
            .map(|&d| &self.articles[d as usize])
    }

    /// Version `version` of article `id`, as it was published.
    pub fn version(&self, id: Uuid, version: u32) -> Option<&ArticleVersion> {
        self.get(id)?.history.iter().find(|v| v.version == version)
    }

    /// Every article, retired ones too, in the order published.
    pub fn all(&self) -> impl Iterator<Item = &ArticleView> {
        self.articles.iter()
    }

    pub fn len(&self) -> usize {
        self.articles.len()
    }

    pub fn is_empty(&self) -> bool {
        self.articles.is_empty()
    }

    /// Articles (retired ones too) whose current version links to `incident_id` or was
    /// made from its report, in the order published.
    pub fn by_incident(&self, incident_id: Uuid) -> impl Iterator<Item = &ArticleView> {
        self.listed(self.index.incidents.get(&incident_id))
    }

    /// Articles (retired ones too) whose current version links to configuration item
    /// `ci_id`, in the order published.
    pub fn by_ci(&self, ci_id: Uuid) -> impl Iterator<Item = &ArticleView> {
        self.listed(self.index.cis.get(&ci_id))
    }

    fn listed<'a>(&'a self, docs: Option<&'a Vec<Doc>>) -> impl Iterator<Item = &'a ArticleView> {
        docs.into_iter()
            .flatten()
            .map(|&d| &self.articles[d as usize])
    }

    /// How much a token found in `df` articles says: rarer counts more.
    fn idf(&self, df: usize) -> f64 {
        (1.0 + self.articles.len() as f64 / df.max(1) as f64).ln()
    }

    /// Articles holding every tag in `tags` and, when `query` has tokens, every token of
    /// it; the best `limit`, by how well the words match (tf-idf), then the most recently
    /// updated, then by id. Without tokens, tagged articles (or all) by recency. Retired
    /// articles only when `include_retired`.
    ///
    /// The index's shortest list drives the search; the others are only probed.
    pub fn search(
        &self,
        query: &str,
        tags: &[String],
        limit: usize,
        include_retired: bool,
    ) -> Vec<Hit> {
        if limit == 0 {
            return Vec::new();
        }
        let mut filters = Vec::new();
        for token in distinct(tokenize(query)) {
            match self.index.words.get(&token) {
                Some(list) => filters.push(Filter::Word(list)),
                None => return Vec::new(),
            }
        }
        let mut wanted: Vec<String> = tags.iter().map(|t| normalise_tag(t)).collect();
        wanted.sort();
        wanted.dedup();
        for tag in wanted.iter().filter(|t| !t.is_empty()) {
            match self.index.tags.get(tag) {
                Some(list) => filters.push(Filter::Tag(list)),
                None => return Vec::new(),
            }
        }
        filters.sort_by_key(Filter::len);
        let idfs: Vec<f64> = filters.iter().map(|f| self.idf(f.len())).collect();

        let score = |doc: Doc| -> Option<f64> {
            let mut score = 0.0;
            for (filter, idf) in filters.iter().zip(&idfs).skip(1) {
                match filter {
                    Filter::Word(list) => {
                        let at = list.binary_search_by_key(&doc, |p| p.doc()).ok()?;
                        score += (1.0 + f64::from(list[at].tf()).ln()) * idf;
                    }
                    Filter::Tag(list) => {
                        list.binary_search(&doc).ok()?;
                    }
                }
            }
            Some(score)
        };
        let shown = |doc: Doc| include_retired || !self.articles[doc as usize].is_retired();
        let found: Vec<(Doc, f64)> = match filters.first() {
            None => (0..self.articles.len() as Doc)
                .filter(|&d| shown(d))
                .map(|d| (d, 0.0))
                .collect(),
            Some(first) => {
                let first_idf = idfs[0];
                first
                    .docs()
                    .enumerate()
                    .filter(|&(_, d)| shown(d))
                    .filter_map(|(i, d)| {
                        let own = match first {
                            Filter::Word(list) => (1.0 + f64::from(list[i].tf()).ln()) * first_idf,
                            Filter::Tag(_) => 0.0,
                        };
                        Some((d, own + score(d)?))
                    })
                    .collect()
            }
        };
        self.best(found, limit, |&(doc, score)| (0, score, doc))
    }

    /// Articles to offer on an incident: those linked to any of `ci_ids` first (more of
    /// them first), then by how well they match the words of `text`, any of them (an
    /// incident's description is long), leaving out tokens too common to tell articles
    /// apart. Never retired ones.
    pub fn suggest(&self, ci_ids: &[Uuid], text: &str, limit: usize) -> Vec<Hit> {
        if limit == 0 {
            return Vec::new();
        }
        // (linked configuration items, word score) per article.
        let mut found: HashMap<Doc, (u32, f64)> = HashMap::default();
        let mut cis = ci_ids.to_vec();
        cis.sort();
        cis.dedup();
        for ci in &cis {
            for &doc in self.index.cis.get(ci).into_iter().flatten() {
                found.entry(doc).or_default().0 += 1;
            }
        }
        let common = (self.articles.len() / 5).max(100);
        let mut lists: Vec<&[Posting]> = distinct(tokenize(text))
            .into_iter()
            .filter_map(|t| self.index.words.get(&t).map(Vec::as_slice))
            .filter(|list| list.len() <= common)
            .collect();
        lists.sort_by_key(|l| l.len());
        lists.truncate(SUGGEST_TOKENS);
        for list in lists {
            let idf = self.idf(list.len());
            for p in list {
                found.entry(p.doc()).or_default().1 += (1.0 + f64::from(p.tf()).ln()) * idf;
            }
        }
        let found: Vec<(Doc, (u32, f64))> = found
            .into_iter()
            .filter(|&(doc, _)| !self.articles[doc as usize].is_retired())
            .collect();
        self.best(found, limit, |&(doc, (linked, score))| (linked, score, doc))
    }

    /// The best `limit` of `found` by `key` (a rank, then a score, both the higher the
    /// better, and the article), then the most recently updated, then by id.
    fn best<T>(
        &self,
        mut found: Vec<T>,
        limit: usize,
        key: impl Fn(&T) -> (u32, f64, Doc),
    ) -> Vec<Hit> {
        let order = |a: &T, b: &T| -> Ordering {
            let ((ra, sa, da), (rb, sb, db)) = (key(a), key(b));
            let (va, vb) = (&self.articles[da as usize], &self.articles[db as usize]);
            rb.cmp(&ra)
                .then(sb.total_cmp(&sa))
                .then(vb.updated_at.cmp(&va.updated_at))
                .then(va.id.cmp(&vb.id))
        };
        if found.len() > limit {
            found.select_nth_unstable_by(limit - 1, order);
            found.truncate(limit);
        }
        found.sort_unstable_by(order);
        found
            .iter()
            .map(|f| {
                let (_, score, doc) = key(f);
                let view = &self.articles[doc as usize];
                Hit {
                    id: view.id,
                    score,
                    version: view.version,
                }
            })
            .collect()
    }
}

fn distinct(mut tokens: Vec<String>) -> Vec<String> {
    tokens.sort();
    tokens.dedup();
    tokens
}

impl Knowledge {
    /// Folds one event of an article's stream, already decoded.
    pub fn on_event(&mut self, event: &RecordedEvent, e: &ArticleEvent) {
        let Some(id) = stream_id(&event.stream) else {
            return;
        };
        if self.index.docs.len() != self.articles.len() {
            // Read back from a snapshot without `restored`: the index must follow.
            self.restored();
        }
        let at = event.metadata.recorded_at;
        let by = event.metadata.actor.id.clone();
        match e {
            ArticleEvent::ArticlePublished { version, content } => {
                if self.index.docs.contains_key(&id) {
                    return;
                }
                let doc = self.articles.len() as Doc;
                self.index.docs.insert(id, doc);
                self.index.add(doc, content);
                self.articles.push(ArticleView {
                    id,
                    version: *version,
                    status: ArticleStatus::Published,
                    published_at: at,
                    updated_at: at,
                    retired_reason: None,
                    position: event.position,
                    history: vec![ArticleVersion {
                        version: *version,
                        content: content.clone(),
                        note: String::new(),
                        at,
                        by,
                    }],
                });
            }
            ArticleEvent::ArticleRevised {
                version,
                content,
                note,
            } => {
                let Some(&doc) = self.index.docs.get(&id) else {
                    return;
                };
                let view = &mut self.articles[doc as usize];
                self.index.remove(doc, &view.current().content);
                self.index.add(doc, content);
                view.version = *version;
                view.updated_at = at;
                view.position = event.position;
                view.history.push(ArticleVersion {
                    version: *version,
                    content: content.clone(),
                    note: note.clone(),
                    at,
                    by,
                });
            }
            ArticleEvent::ArticleRetired { reason } => {
                let Some(&doc) = self.index.docs.get(&id) else {
                    return;
                };
                let view = &mut self.articles[doc as usize];
                view.status = ArticleStatus::Retired;
                view.retired_reason = Some(reason.clone());
                view.updated_at = at;
                view.position = event.position;
            }
        }
    }

    /// Rebuilds the index from the articles after they were read back from a snapshot.
    pub fn restored(&mut self) {
        let mut index = Index::default();
        for (doc, view) in self.articles.iter().enumerate() {
            index.docs.insert(view.id, doc as Doc);
            index.add(doc as Doc, view.content());
        }
        self.index = index;
    }
}

impl Projection for Knowledge {
    fn name(&self) -> &'static str {
        "knowledge"
    }

    fn apply(&mut self, event: &RecordedEvent) {
        if stream_kind(&event.stream) != Article::KIND {
            return;
        }
        if let Ok(e) = ArticleEvent::from_recorded(event) {
            self.on_event(event, &e);
        }
    }
}

/// Whether `c` is written without spaces between words: Han (Chinese characters), kana,
/// hangul.
fn is_cjk(c: char) -> bool {
    matches!(u32::from(c),
        0x3400..=0x4DBF          // CJK extension A
        | 0x4E00..=0x9FFF        // CJK unified ideographs
        | 0xF900..=0xFAFF        // compatibility ideographs
        | 0x20000..=0x3134F      // extensions B–G
        | 0x3041..=0x3096        // hiragana
        | 0x30A1..=0x30FA        // katakana
        | 0x30FC                 // katakana prolonged sound mark
        | 0xAC00..=0xD7A3) // hangul syllables
}

/// Full-width ASCII (`ＵＰＳ`, `１２`) as ASCII.
fn narrow(c: char) -> char {
    match u32::from(c) {
        n @ 0xFF01..=0xFF5E => char::from_u32(n - 0xFEE0).unwrap_or(c),
        _ => c,
    }
}

/// The tokens of `text`, in order, repeats kept: each run of letters and digits as one
/// lower-cased word (`Nginx-1.24` is `nginx 1 24`); each run of CJK characters as its
/// overlapping pairs (`機房空調` is `機房 房空 空調`), or the one character of a run of one.
/// Anything else separates tokens.
pub fn tokenize(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut word = String::new();
    let mut run: Vec<char> = Vec::new();
    let flush_run = |run: &mut Vec<char>, tokens: &mut Vec<String>| {
        match run.len() {
            0 => {}
            1 => tokens.push(run[0].to_string()),
            _ => tokens.extend(run.windows(2).map(|w| w.iter().collect::<String>())),
        }
        run.clear();
    };
    let flush_word = |word: &mut String, tokens: &mut Vec<String>| {
        if !word.is_empty() {
            tokens.push(std::mem::take(word));
        }
    };
    for c in text.chars().map(narrow) {
        if is_cjk(c) {
            flush_word(&mut word, &mut tokens);
            run.push(c);
        } else if c.is_alphanumeric() {
            flush_run(&mut run, &mut tokens);
            word.extend(c.to_lowercase());
        } else {
            flush_word(&mut word, &mut tokens);
            flush_run(&mut run, &mut tokens);
        }
    }
    flush_word(&mut word, &mut tokens);
    flush_run(&mut run, &mut tokens);
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_log::{person, Log};

    fn stream(n: u128) -> String {
        format!("article-{}", Uuid::from_u128(n))
    }

    fn content(title: &str, solution: &str, tags: &[&str]) -> ArticleContent {
        ArticleContent {
            title: title.into(),
            solution: solution.into(),
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            ..ArticleContent::default()
        }
    }

    fn publish(log: &mut Log, n: u128, content: ArticleContent, hour: u32) {
        let by = person("u-chan", "運維中心", &["engineer"]);
        log.record(
            &stream(n),
            &ArticleEvent::ArticlePublished {
                version: 1,
                content,
            },
            &by,
            hour,
        );
    }

    fn ids(hits: &[Hit]) -> Vec<u128> {
        hits.iter().map(|h| h.id.as_u128()).collect()
    }

    fn search(k: &Knowledge, query: &str, tags: &[&str]) -> Vec<u128> {
        let tags: Vec<String> = tags.iter().map(|t| (*t).to_owned()).collect();
        ids(&k.search(query, &tags, 100, false))
    }

    fn base() -> Log {
        let mut log = Log::default();
        publish(
            &mut log,
            1,
            content(
                "機房空調故障",
                "啟動備用空調,聯系廠商檢修",
                &["空調", "機房"],
            ),
            8,
        );
        publish(
            &mut log,
            2,
            content(
                "Nginx returns 502 Bad Gateway",
                "Restart the upstream PHP-FPM pool",
                &["nginx", "web"],
            ),
            9,
        );
        publish(
            &mut log,
            3,
            content(
                "UPS電源告警",
                "切換至市電旁路,檢查UPS電池",
                &["ups", "機房"],
            ),
            10,
        );
        publish(
            &mut log,
            4,
            content("空氣濕度過高", "開啟除濕機", &["機房"]),
            11,
        );
        log
    }

    #[test]
    fn the_tokenizer_cuts_chinese_into_pairs_and_english_into_lower_case_words() {
        assert_eq!(
            tokenize("機房空調故障"),
            ["機房", "房空", "空調", "調故", "故障"]
        );
        assert_eq!(
            tokenize("Nginx-1.24 UPS電源,空"),
            ["nginx", "1", "24", "ups", "電源", "空"]
        );
        assert_eq!(tokenize("ＵＰＳ告警。"), ["ups", "告警"]);
        assert_eq!(tokenize(" -- "), Vec::<String>::new());
    }

    #[test]
    fn a_chinese_query_finds_the_words_it_holds_and_no_others() {
        let k: Knowledge = base().fold();
        assert_eq!(search(&k, "空調", &[]), [1]);
        assert_eq!(search(&k, "機房空調", &[]), [1]);
        assert_eq!(search(&k, "空氣", &[]), [4]);
        assert_eq!(search(&k, "空調 檢修", &[]), [1]);
        assert!(search(&k, "空調 除濕", &[]).is_empty());
        assert!(search(&k, "調空", &[]).is_empty());
    }

    #[test]
    fn an_english_query_ignores_case_and_mixes_with_chinese() {
        let k: Knowledge = base().fold();
        assert_eq!(search(&k, "NGINX gateway", &[]), [2]);
        assert_eq!(search(&k, "php fpm", &[]), [2]);
        assert_eq!(search(&k, "ups 電池", &[]), [3]);
        assert!(search(&k, "nginx 電池", &[]).is_empty());
    }

    #[test]
    fn every_tag_given_must_be_on_the_article() {
        let k: Knowledge = base().fold();
        // Without words: tagged articles, the most recently updated first.
        assert_eq!(search(&k, "", &["機房"]), [4, 3, 1]);
        assert_eq!(search(&k, "", &["機房", " UPS "]), [3]);
        assert_eq!(search(&k, "告警", &["機房", "ups"]), [3]);
        assert!(search(&k, "", &["機房", "nginx"]).is_empty());
        assert!(search(&k, "", &["網絡"]).is_empty());
        // No words and no tags: everything by recency.
        assert_eq!(search(&k, "", &[]), [4, 3, 2, 1]);
    }

    #[test]
    fn a_match_in_the_title_outranks_one_in_the_solution() {
        let mut log = base();
        publish(
            &mut log,
            5,
            content("服務器溫度告警", "檢查機房空調出風口", &[]),
            12,
        );
        let k: Knowledge = log.fold();
        let hits = k.search("空調", &[], 10, false);
        assert_eq!(ids(&hits), [1, 5]);
        assert!(hits[0].score > hits[1].score);
        // The limit keeps the best.
        assert_eq!(ids(&k.search("空調", &[], 1, false)), [1]);
    }

    #[test]
    fn a_revision_drops_the_old_words_and_tags() {
        let mut log = base();
        let by = person("u-chan", "運維中心", &["engineer"]);
        log.record(
            &stream(1),
            &ArticleEvent::ArticleRevised {
                version: 2,
                content: content("機房製冷失效", "更換壓縮機", &["製冷"]),
                note: "改寫".into(),
            },
            &by,
            13,
        );
        let k: Knowledge = log.fold();
        assert!(search(&k, "空調", &[]).is_empty());
        assert!(search(&k, "", &["空調"]).is_empty());
        assert_eq!(search(&k, "壓縮機", &["製冷"]), [1]);
        let hits = k.search("製冷", &[], 10, false);
        assert_eq!(hits[0].version, 2);
        let view = k.get(Uuid::from_u128(1)).unwrap();
        assert_eq!(view.version, 2);
        assert_eq!(view.content().title, "機房製冷失效");
        assert_eq!(
            k.version(Uuid::from_u128(1), 1).unwrap().content.title,
            "機房空調故障"
        );
        assert_eq!(k.version(Uuid::from_u128(1), 2).unwrap().note, "改寫");
        assert!(k.version(Uuid::from_u128(1), 3).is_none());
        // Most recently updated first, now that it was revised last.
        assert_eq!(search(&k, "", &[]), [1, 4, 3, 2]);
    }

    #[test]
    fn a_retired_article_is_found_only_when_asked_for() {
        let mut log = base();
        let by = person("u-chan", "運維中心", &["engineer"]);
        log.record(
            &stream(3),
            &ArticleEvent::ArticleRetired {
                reason: "UPS 已更換".into(),
            },
            &by,
            13,
        );
        let k: Knowledge = log.fold();
        assert!(search(&k, "ups", &[]).is_empty());
        assert_eq!(search(&k, "", &["機房"]), [4, 1]);
        assert_eq!(ids(&k.search("ups", &[], 10, true)), [3]);
        assert!(k.suggest(&[], "UPS 告警", 10).is_empty());
        assert!(k.get(Uuid::from_u128(3)).unwrap().is_retired());
    }

    #[test]
    fn suggestions_rank_articles_on_the_incidents_items_first() {
        let server = Uuid::from_u128(100);
        let mut log = base();
        publish(
            &mut log,
            5,
            ArticleContent {
                ci_ids: vec![server],
                ..content("服務器風扇異響", "更換風扇模組", &["硬件"])
            },
            12,
        );
        let k: Knowledge = log.fold();
        let description = "機房溫度升高,懷疑空調故障,服務器告警";
        let hits = k.suggest(&[server], description, 10);
        // Linked first though its words match less; then by the words, any of them.
        assert_eq!(ids(&hits), [5, 1, 3, 4]);
        assert!(hits[0].score < hits[1].score);
        assert!(hits[2].score > hits[3].score);
        assert_eq!(ids(&k.suggest(&[], description, 10)), [1, 5, 3, 4]);
        assert_eq!(ids(&k.suggest(&[server], "", 10)), [5]);
        assert_eq!(ids(&k.suggest(&[server], description, 1)), [5]);
    }

    #[test]
    fn articles_are_found_by_the_incident_they_link_to_or_were_made_from() {
        let incident = Uuid::from_u128(200);
        let other = Uuid::from_u128(201);
        let mut log = base();
        publish(
            &mut log,
            5,
            ArticleContent {
                from_incident: Some(incident),
                ..content("交換機端口故障", "更換光模塊", &[])
            },
            12,
        );
        publish(
            &mut log,
            6,
            ArticleContent {
                incident_ids: vec![incident, other],
                ci_ids: vec![Uuid::from_u128(300)],
                ..content("光模塊老化", "定期巡檢光功率", &[])
            },
            13,
        );
        let by = person("u-chan", "運維中心", &["engineer"]);
        log.record(
            &stream(6),
            &ArticleEvent::ArticleRevised {
                version: 2,
                content: ArticleContent {
                    incident_ids: vec![other],
                    ..content("光模塊老化", "定期巡檢光功率", &[])
                },
                note: "解除關聯".into(),
            },
            &by,
            14,
        );
        let k: Knowledge = log.fold();
        let linked = |id| {
            k.by_incident(id)
                .map(|v| v.id.as_u128())
                .collect::<Vec<_>>()
        };
        assert_eq!(linked(incident), [5]);
        assert_eq!(linked(other), [6]);
        assert_eq!(k.by_ci(Uuid::from_u128(300)).count(), 0);
    }

    #[test]
    fn a_snapshot_read_back_finds_the_same_articles() {
        let mut log = base();
        publish(
            &mut log,
            5,
            ArticleContent {
                ci_ids: vec![Uuid::from_u128(100)],
                ..content("服務器溫度告警", "檢查機房空調出風口", &["機房"])
            },
            12,
        );
        let live: Knowledge = log.fold();
        let text = serde_json::to_string(&live).unwrap();
        let mut back: Knowledge = serde_json::from_str(&text).unwrap();
        back.restored();
        for (query, tags) in [
            ("空調", &[][..]),
            ("", &["機房"]),
            ("ups", &[]),
            ("告警", &["機房"]),
        ] {
            let tags: Vec<String> = tags.iter().map(|t: &&str| (*t).to_owned()).collect();
            let found = live.search(query, &tags, 10, false);
            assert!(!found.is_empty(), "{query} finds something");
            assert_eq!(back.search(query, &tags, 10, false), found);
        }
        assert_eq!(
            back.suggest(&[Uuid::from_u128(100)], "空調", 10),
            live.suggest(&[Uuid::from_u128(100)], "空調", 10)
        );
        // Events after the snapshot fold into the restored index.
        let by = person("u-chan", "運維中心", &["engineer"]);
        log.record(
            &stream(1),
            &ArticleEvent::ArticleRetired {
                reason: "過時".into(),
            },
            &by,
            13,
        );
        back.apply(log.events.last().unwrap());
        assert_eq!(search(&back, "空調", &[]), [5]);
    }

    /// A generator of plausible articles: a few words from a vocabulary of the service
    /// plan's faults, mixed Chinese and English.
    struct Articles(u64);

    const WORDS: [&str; 24] = [
        "機房",
        "空調",
        "服務器",
        "存儲",
        "網絡",
        "交換機",
        "數據庫",
        "備份",
        "告警",
        "宕機",
        "電源",
        "溫度",
        "防火牆",
        "病毒",
        "鏡像",
        "補丁",
        "nginx",
        "oracle",
        "ups",
        "vlan",
        "websphere",
        "timeout",
        "disk",
        "memory",
    ];
    const TAGS: [&str; 6] = ["硬件", "軟件", "網絡", "安全", "機房", "數據庫"];

    impl Articles {
        fn next(&mut self) -> usize {
            // A linear congruential generator: deterministic, no dependency.
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) as usize
        }

        fn words(&mut self, n: usize) -> String {
            (0..n)
                .map(|_| WORDS[self.next() % WORDS.len()])
                .collect::<Vec<_>>()
                .join(" ")
        }

        fn content(&mut self) -> ArticleContent {
            let title = self.words(3);
            let solution = self.words(12);
            let tags: Vec<String> = (0..2)
                .map(|_| TAGS[self.next() % TAGS.len()].into())
                .collect();
            let mut tags = tags;
            tags.sort();
            tags.dedup();
            ArticleContent {
                title,
                symptom: self.words(6),
                solution,
                tags,
                ..ArticleContent::default()
            }
        }
    }

    #[test]
    fn the_index_finds_what_reading_every_article_finds() {
        let mut gen = Articles(7);
        let mut log = Log::default();
        let n = 5_000;
        for i in 0..n {
            publish(&mut log, i + 1, gen.content(), 8 + (i % 12) as u32);
        }
        let k: Knowledge = log.fold();
        assert_eq!(k.len(), n as usize);
        for (query, tags) in [
            ("空調", &[][..]),
            ("服務器 數據庫", &[]),
            ("ups timeout", &["機房"]),
            ("oracle 數據庫 備份", &[]),
            ("", &["安全", "硬件"]),
            ("防火牆 病毒 nginx", &["網絡"]),
        ] {
            let tags: Vec<String> = tags.iter().map(|t: &&str| (*t).to_owned()).collect();
            let wanted = distinct(tokenize(query));
            let mut expected: Vec<Uuid> = k
                .all()
                .filter(|v| {
                    let c = v.content();
                    let have = distinct(weighted_terms(c).into_keys().collect());
                    wanted.iter().all(|w| have.contains(w))
                        && tags.iter().all(|t| c.tags.contains(t))
                })
                .map(|v| v.id)
                .collect();
            expected.sort();
            assert!(!expected.is_empty(), "{query:?} {tags:?} finds something");
            let hits = k.search(query, &tags, n as usize, false);
            let mut found: Vec<Uuid> = hits.iter().map(|h| h.id).collect();
            found.sort();
            assert_eq!(found, expected, "{query:?} {tags:?}");
            assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
            // The best ten are the first ten of all.
            assert_eq!(
                k.search(query, &tags, 10, false),
                hits[..10.min(hits.len())]
            );
        }
        // The generated words never adjoin, so no article holds 房空.
        assert!(k.search("機房空調", &[], 10, true).is_empty());
        // Words in most articles tell none apart: a suggestion skips them.
        let description = "機房 空調 溫度 告警 ups 電源 timeout";
        assert!(k.suggest(&[], description, 10).is_empty());
        publish(&mut log, n + 1, content("冷媒不足", "補充冷媒", &[]), 21);
        let k: Knowledge = log.fold();
        let description = format!("{description} 冷媒");
        assert_eq!(ids(&k.suggest(&[], &description, 10)), [n + 1]);
    }
}
