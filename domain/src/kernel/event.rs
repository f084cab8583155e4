//! The recorded event: what the log stores, how it is chained, how it is read back.
//!
//! An event exists in three forms:
//! - [`NewEvent`]: what a command produces (type, schema version, JSON payload);
//! - [`StoredEvent`]: the row as the log holds it, byte for byte, with its position, stream
//!   version, id and hash. It is also the line format of `opsledger export`;
//! - [`RecordedEvent`]: a stored event decoded for readers: metadata parsed, payload
//!   upcast to the newest schema version.
//!
//! The hash of each event is SHA-256 over its canonical bytes and the previous event's hash
//! (see [`chain_hash`]), so changing any stored byte breaks the chain from that position on.

use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::kernel::upcast::{UpcastError, Upcasters};

/// A SHA-256 digest, shown and serialised as lowercase hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// The "previous hash" of the first event in the log.
    pub const GENESIS: Hash = Hash([0; 32]);

    /// Parses 64 hex digits.
    ///
    /// # Errors
    /// When the text is not exactly 32 bytes of hex.
    pub fn from_hex(text: &str) -> Result<Self, hex::FromHexError> {
        let mut bytes = [0; 32];
        hex::decode_to_slice(text, &mut bytes)?;
        Ok(Hash(bytes))
    }

    /// Takes a 32-byte slice as stored in a database column.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Hash)
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({self})")
    }
}

impl Serialize for Hash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; 64];
        hex::encode_to_slice(self.0, &mut buf).map_err(serde::ser::Error::custom)?;
        serializer.serialize_str(std::str::from_utf8(&buf).map_err(serde::ser::Error::custom)?)
    }
}

impl<'de> Deserialize<'de> for Hash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Hash::from_hex(&text).map_err(|e| serde::de::Error::custom(format!("bad hash: {e}")))
    }
}

/// Who did it: the authenticated user (or the system component) behind a command.
///
/// Written as `{"id", "name"?, "department"?, "roles", "kind"?}`: `kind` is written for a
/// system component only. Metadata recorded before actors had a kind has none; there a
/// `system:` id was a component (see [`ActorRecord`]), so old logs replay as they ran.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "ActorRecord")]
pub struct Actor {
    /// The user id (a token's subject), or a component such as `system:scheduler`.
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    /// A user or one of the system's own components; only [`Actor::system`] makes the
    /// latter, and no token can (the edge refuses a `system:` subject).
    #[serde(default, skip_serializing_if = "ActorKind::is_user")]
    pub kind: ActorKind,
}

/// Whether an actor is a person or one of the system's own components.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    /// Someone signed in with a token.
    #[default]
    User,
    /// A component acting on its own: the scheduler, the engine, a change applying itself.
    System,
}

impl ActorKind {
    pub fn is_user(&self) -> bool {
        *self == ActorKind::User
    }
}

/// The prefix of a system component's id, which no user id may have.
pub const SYSTEM_PREFIX: &str = "system:";

/// An actor as written in an event, with or without its kind.
#[derive(Deserialize)]
struct ActorRecord {
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    department: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    kind: Option<ActorKind>,
}

impl From<ActorRecord> for Actor {
    fn from(r: ActorRecord) -> Self {
        // Before the kind was written, the system's components were known by their ids.
        let kind = r.kind.unwrap_or(if r.id.starts_with(SYSTEM_PREFIX) {
            ActorKind::System
        } else {
            ActorKind::User
        });
        Actor {
            id: r.id,
            name: r.name,
            department: r.department,
            roles: r.roles,
            kind,
        }
    }
}

impl Actor {
    /// A system component acting on its own (the scheduler, a process manager, an import).
    pub fn system(component: &str) -> Self {
        Actor {
            id: format!("{SYSTEM_PREFIX}{component}"),
            name: None,
            department: None,
            roles: Vec::new(),
            kind: ActorKind::System,
        }
    }

    /// Whether it is one of the system's own components rather than a person.
    pub fn is_system(&self) -> bool {
        self.kind == ActorKind::System
    }
}

/// What every event of one command carries besides its payload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    pub actor: Actor,
    /// The idempotency key: a command id seen before returns its first outcome.
    pub command_id: Uuid,
    /// Ties together everything done for one user intent across aggregates.
    pub correlation_id: Uuid,
    /// The event (by id) or command that caused this command, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<Uuid>,
    /// When the command was accepted, in UTC, from the injected clock.
    pub recorded_at: DateTime<Utc>,
    /// Free text the actor gave (a comment, a rejection reason).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Metadata {
    /// Metadata for a command with no cause: its own correlation.
    pub fn new(actor: Actor, command_id: Uuid, recorded_at: DateTime<Utc>) -> Self {
        Metadata {
            actor,
            command_id,
            correlation_id: command_id,
            causation_id: None,
            recorded_at,
            reason: None,
        }
    }
}

/// An event a command produced, before the log gives it a place.
#[derive(Clone, Debug)]
pub struct NewEvent {
    /// The stable type name, e.g. `RequestSubmitted`; never a Rust type path.
    pub event_type: String,
    pub schema_version: u32,
    /// The payload as compact JSON; these exact bytes are stored and hashed.
    pub data: Box<RawValue>,
}

impl NewEvent {
    /// Serialises `data` as the payload of an event of `event_type` at `schema_version`.
    ///
    /// # Errors
    /// When `data` cannot be serialised to JSON (a map with non-string keys, say).
    pub fn new<T: Serialize + ?Sized>(
        event_type: impl Into<String>,
        schema_version: u32,
        data: &T,
    ) -> Result<Self, serde_json::Error> {
        Ok(NewEvent {
            event_type: event_type.into(),
            schema_version,
            data: serde_json::value::to_raw_value(data)?,
        })
    }
}

/// An event as the log stores it, and as `opsledger export` writes it: one JSON object per
/// line with exactly these fields. `data` and `metadata` are the stored JSON text, byte for
/// byte; they are written into the line as JSON (not as strings) and checked to be JSON
/// when a line is read.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredEvent {
    /// Global, gap-free, from 1.
    pub position: u64,
    /// The aggregate, `<kind>-<uuid>`.
    pub stream: String,
    /// Place in the stream, from 0.
    pub version: u64,
    /// UUID v7.
    pub id: Uuid,
    #[serde(rename = "type")]
    pub event_type: String,
    pub schema_version: u32,
    #[serde(with = "json_text")]
    pub data: String,
    #[serde(with = "json_text")]
    pub metadata: String,
    /// [`chain_hash`] of this event and the previous one.
    pub hash: Hash,
}

impl StoredEvent {
    /// Decodes the metadata and upcasts the payload to the newest schema version.
    ///
    /// # Errors
    /// When the metadata is not valid [`Metadata`] JSON, or an upcaster fails.
    pub fn decode(self, upcasters: &Upcasters) -> Result<RecordedEvent, DecodeError> {
        let metadata: Metadata = serde_json::from_str(&self.metadata).map_err(|e| DecodeError {
            position: self.position,
            problem: format!("metadata is not valid: {e}"),
        })?;
        let (schema_version, data) = upcasters
            .upcast(&self.event_type, self.schema_version, self.data)
            .map_err(|e: UpcastError| DecodeError {
                position: self.position,
                problem: e.to_string(),
            })?;
        Ok(RecordedEvent {
            position: self.position,
            stream: self.stream,
            version: self.version,
            id: self.id,
            event_type: self.event_type,
            schema_version,
            data,
            metadata,
            hash: self.hash,
        })
    }
}

/// A stored event that could not be read as a [`RecordedEvent`].
#[derive(Debug, thiserror::Error)]
#[error("event at position {position} cannot be decoded: {problem}")]
pub struct DecodeError {
    pub position: u64,
    pub problem: String,
}

/// An event as readers (projections, process managers, the API) see it.
#[derive(Clone, Debug)]
pub struct RecordedEvent {
    pub position: u64,
    pub stream: String,
    pub version: u64,
    pub id: Uuid,
    pub event_type: String,
    /// After upcasting: the newest version this binary knows for the type.
    pub schema_version: u32,
    /// The payload, JSON text; [`RecordedEvent::data`] reads it as a type.
    pub data: String,
    pub metadata: Metadata,
    pub hash: Hash,
}

impl RecordedEvent {
    /// Deserialises the payload into the event's Rust type.
    ///
    /// # Errors
    /// When the payload does not match `T`.
    pub fn data<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.data)
    }
}

/// Serialises JSON text as the JSON it holds, and reads any JSON value back as its text.
mod json_text {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use serde_json::value::RawValue;

    pub fn serialize<S: Serializer>(text: &str, serializer: S) -> Result<S::Ok, S::Error> {
        let raw: &RawValue = serde_json::from_str(text)
            .map_err(|e| serde::ser::Error::custom(format!("stored text is not JSON: {e}")))?;
        raw.serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        Ok(Box::<str>::from(raw).into_string())
    }
}

/// The hash of an event: SHA-256 over the previous event's hash and this event's canonical
/// bytes. Canonical bytes are the fields in a fixed order, integers big-endian, each text
/// field preceded by its length as a big-endian u64:
///
/// ```text
/// prev_hash[32] position:u64 stream version:u64 id[16] type schema_version:u32 data metadata
/// ```
///
/// `data` and `metadata` are the stored JSON text, byte for byte, so anyone can recompute
/// the chain from an export without knowing OpsLedger's types.
pub fn chain_hash(prev: &Hash, event: &StoredEvent) -> Hash {
    fn text(hasher: &mut Sha256, value: &str) {
        hasher.update((value.len() as u64).to_be_bytes());
        hasher.update(value.as_bytes());
    }
    let mut hasher = Sha256::new();
    hasher.update(prev.0);
    hasher.update(event.position.to_be_bytes());
    text(&mut hasher, &event.stream);
    hasher.update(event.version.to_be_bytes());
    hasher.update(event.id.as_bytes());
    text(&mut hasher, &event.event_type);
    hasher.update(event.schema_version.to_be_bytes());
    text(&mut hasher, &event.data);
    text(&mut hasher, &event.metadata);
    Hash(hasher.finalize().into())
}

/// The first place where a log stops being a valid chain.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("position {position}: {problem}")]
pub struct ChainBreak {
    pub position: u64,
    pub problem: String,
}

/// Checks a log read in position order: positions gap-free from 1, stream versions gap-free
/// from 0, and every hash equal to [`chain_hash`] of the event and its predecessor.
#[derive(Debug)]
pub struct ChainVerifier {
    next_position: u64,
    prev_hash: Hash,
    next_version: HashMap<String, u64>,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        ChainVerifier {
            next_position: 1,
            prev_hash: Hash::GENESIS,
            next_version: HashMap::new(),
        }
    }
}

impl ChainVerifier {
    /// Checks the next event of the log.
    ///
    /// # Errors
    /// A [`ChainBreak`] naming the event's position and what is wrong with it.
    pub fn check(&mut self, event: &StoredEvent) -> Result<(), ChainBreak> {
        let recomputed = chain_hash(&self.prev_hash, event);
        self.check_link(
            event.position,
            &event.stream,
            event.version,
            event.hash,
            recomputed,
        )
    }

    /// Checks the next event when its hash was recomputed ahead, for instance by page on
    /// another core: `recomputed` must be [`chain_hash`] of the *stored* hash of the event
    /// before it and the event. Each link then only needs its neighbour, so a log can be
    /// hashed in parallel while this check stays sequential and cheap.
    ///
    /// # Errors
    /// A [`ChainBreak`] naming the event's position and what is wrong with it.
    pub fn check_link(
        &mut self,
        position: u64,
        stream: &str,
        version: u64,
        stored: Hash,
        recomputed: Hash,
    ) -> Result<(), ChainBreak> {
        let broken = |problem: String| ChainBreak { position, problem };
        if position != self.next_position {
            return Err(ChainBreak {
                position: self.next_position,
                problem: format!(
                    "expected position {}, found {position} (an event is missing or out of order)",
                    self.next_position
                ),
            });
        }
        let expected_version = self.next_version.get(stream).copied();
        if version != expected_version.unwrap_or(0) {
            return Err(broken(format!(
                "stream {stream} expected version {}, found {version}",
                expected_version.unwrap_or(0)
            )));
        }
        if recomputed != stored {
            return Err(broken(format!(
                "hash mismatch: stored {stored}, recomputed {recomputed} (the event or its predecessor was altered)"
            )));
        }
        match expected_version {
            Some(_) => {
                if let Some(v) = self.next_version.get_mut(stream) {
                    *v += 1;
                }
            }
            None => {
                self.next_version.insert(stream.to_owned(), 1);
            }
        }
        self.next_position += 1;
        self.prev_hash = stored;
        Ok(())
    }

    /// The number of events checked so far.
    pub fn count(&self) -> u64 {
        self.next_position - 1
    }

    /// The hash of the last event checked ([`Hash::GENESIS`] for an empty log).
    pub fn head_hash(&self) -> Hash {
        self.prev_hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(position: u64, stream: &str, version: u64, prev: &Hash) -> StoredEvent {
        let mut e = StoredEvent {
            position,
            stream: stream.into(),
            version,
            id: Uuid::from_u128(position as u128),
            event_type: "Tested".into(),
            schema_version: 1,
            data: r#"{"n":1,"名":"値"}"#.into(),
            metadata: "{}".into(),
            hash: Hash::GENESIS,
        };
        e.hash = chain_hash(prev, &e);
        e
    }

    fn chain(n: u64) -> Vec<StoredEvent> {
        let mut prev = Hash::GENESIS;
        (1..=n)
            .map(|p| {
                let e = event(p, &format!("s-{}", p % 2), (p - 1) / 2, &prev);
                prev = e.hash;
                e
            })
            .collect()
    }

    #[test]
    fn an_untouched_chain_verifies() {
        let mut v = ChainVerifier::default();
        for e in chain(10) {
            v.check(&e).unwrap();
        }
        assert_eq!(v.count(), 10);
    }

    #[test]
    fn an_altered_payload_breaks_the_chain_at_its_position() {
        let mut events = chain(5);
        events[2].data = r#"{"n":2,"名":"値"}"#.into();
        let mut v = ChainVerifier::default();
        let err = events.iter().try_for_each(|e| v.check(e)).unwrap_err();
        assert_eq!(err.position, 3);
        assert!(err.problem.contains("hash mismatch"), "{err}");
    }

    #[test]
    fn a_missing_event_is_a_gap_at_the_missing_position() {
        let mut events = chain(5);
        events.remove(1);
        let mut v = ChainVerifier::default();
        let err = events.iter().try_for_each(|e| v.check(e)).unwrap_err();
        assert_eq!(err.position, 2);
    }

    #[test]
    fn a_stream_version_gap_is_reported() {
        let prev = Hash::GENESIS;
        let e = event(1, "s-1", 1, &prev);
        let err = ChainVerifier::default().check(&e).unwrap_err();
        assert!(err.problem.contains("expected version 0"), "{err}");
    }

    #[test]
    fn hashes_round_trip_as_hex() {
        let h = chain(1)[0].hash;
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(json.len(), 66);
        assert_eq!(serde_json::from_str::<Hash>(&json).unwrap(), h);
        assert!(serde_json::from_str::<Hash>("\"abc\"").is_err());
    }

    #[test]
    fn an_actor_written_before_actors_had_a_kind_reads_as_it_ran() {
        let old: Actor = serde_json::from_str(r#"{"id":"system:scheduler","roles":[]}"#).unwrap();
        assert_eq!(old, Actor::system("scheduler"));
        let person: Actor =
            serde_json::from_str(r#"{"id":"u-ho","department":"財政局","roles":["approver"]}"#)
                .unwrap();
        assert_eq!(person.kind, ActorKind::User);
    }

    #[test]
    fn a_user_is_written_as_before_and_a_component_with_its_kind() {
        let person = Actor {
            id: "u-ho".into(),
            name: None,
            department: None,
            roles: vec!["approver".into()],
            kind: ActorKind::User,
        };
        let written = serde_json::to_string(&person).unwrap();
        assert_eq!(written, r#"{"id":"u-ho","roles":["approver"]}"#);
        assert_eq!(serde_json::from_str::<Actor>(&written).unwrap(), person);

        let written = serde_json::to_string(&Actor::system("engine")).unwrap();
        assert_eq!(
            written,
            r#"{"id":"system:engine","roles":[],"kind":"system"}"#
        );
        let read: Actor = serde_json::from_str(&written).unwrap();
        assert!(read.is_system());
    }
}
