//! Event schema evolution: old versions are upcast when read, never rewritten.
//!
//! An upcaster turns the payload of `(type, version n)` into the payload of version `n + 1`.
//! Reading applies them in a chain until no upcaster matches, so a version-1 event is read as
//! the newest version however many steps lie between. The stored bytes, and so the hash
//! chain, never change.

use std::collections::HashMap;

use serde_json::Value;

/// Turns one version's payload into the next version's.
pub type UpcastFn = Box<dyn Fn(Value) -> Result<Value, String> + Send + Sync>;

/// An upcaster that failed, or produced something that is not JSON.
#[derive(Debug, thiserror::Error)]
#[error("upcasting {event_type} from schema version {from_version} failed: {problem}")]
pub struct UpcastError {
    pub event_type: String,
    pub from_version: u32,
    pub problem: String,
}

/// The registered upcasters, by event type and the version they read.
#[derive(Default)]
pub struct Upcasters {
    by_type: HashMap<String, HashMap<u32, UpcastFn>>,
}

impl std::fmt::Debug for Upcasters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut registered: Vec<_> = self
            .by_type
            .iter()
            .flat_map(|(t, m)| m.keys().map(move |v| format!("{t}@{v}")))
            .collect();
        registered.sort();
        f.debug_struct("Upcasters")
            .field("registered", &registered)
            .finish()
    }
}

impl Upcasters {
    /// Registers how to read `event_type` at `from_version` as `from_version + 1`.
    #[must_use]
    pub fn register(
        mut self,
        event_type: &str,
        from_version: u32,
        upcast: impl Fn(Value) -> Result<Value, String> + Send + Sync + 'static,
    ) -> Self {
        self.by_type
            .entry(event_type.to_owned())
            .or_default()
            .insert(from_version, Box::new(upcast));
        self
    }

    /// Reads a payload stored at `schema_version` as the newest version registered.
    /// Events with no upcaster pass through untouched, without being parsed.
    ///
    /// # Errors
    /// When an upcaster fails; the error names the type and the version it read.
    pub fn upcast(
        &self,
        event_type: &str,
        schema_version: u32,
        data: String,
    ) -> Result<(u32, String), UpcastError> {
        let Some(steps) = self.by_type.get(event_type) else {
            return Ok((schema_version, data));
        };
        let mut version = schema_version;
        let mut value: Option<Value> = None;
        while let Some(step) = steps.get(&version) {
            let error = |problem: String| UpcastError {
                event_type: event_type.to_owned(),
                from_version: version,
                problem,
            };
            let current = match value.take() {
                Some(v) => v,
                None => serde_json::from_str(&data).map_err(|e| error(e.to_string()))?,
            };
            value = Some(step(current).map_err(error)?);
            version += 1;
        }
        match value {
            None => Ok((version, data)),
            Some(v) => {
                let text = serde_json::to_string(&v).map_err(|e| UpcastError {
                    event_type: event_type.to_owned(),
                    from_version: version,
                    problem: e.to_string(),
                })?;
                Ok((version, text))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn raw(v: Value) -> String {
        v.to_string()
    }

    fn split_name(mut v: Value) -> Result<Value, String> {
        let name = v["name"].as_str().ok_or("no name")?.to_owned();
        let (given, family) = name.split_once(' ').unwrap_or((&name, ""));
        v["given_name"] = json!(given);
        v["family_name"] = json!(family);
        v.as_object_mut().unwrap().remove("name");
        Ok(v)
    }

    #[test]
    fn a_version_1_event_is_read_as_version_3_through_each_step() {
        let upcasters = Upcasters::default()
            .register("UserRegistered", 1, split_name)
            .register("UserRegistered", 2, |mut v| {
                v["locale"] = json!("zh-Hant");
                Ok(v)
            });
        let (version, data) = upcasters
            .upcast("UserRegistered", 1, raw(json!({"name": "Chan Tai Man"})))
            .unwrap();
        assert_eq!(version, 3);
        let data: Value = serde_json::from_str(&data).unwrap();
        assert_eq!(
            data,
            json!({"given_name": "Chan", "family_name": "Tai Man", "locale": "zh-Hant"})
        );
    }

    #[test]
    fn events_without_upcasters_pass_through_byte_for_byte() {
        let upcasters = Upcasters::default().register("UserRegistered", 1, split_name);
        let stored = r#"{ "b":1, "a":2 }"#.to_owned();
        let (version, data) = upcasters.upcast("Other", 1, stored).unwrap();
        assert_eq!((version, data.as_str()), (1, r#"{ "b":1, "a":2 }"#));
    }

    #[test]
    fn a_failing_upcaster_names_the_type_and_version() {
        let upcasters = Upcasters::default().register("UserRegistered", 1, split_name);
        let err = upcasters
            .upcast("UserRegistered", 1, raw(json!({"id": 1})))
            .unwrap_err();
        assert_eq!(err.from_version, 1);
        assert!(err.to_string().contains("UserRegistered"), "{err}");
    }
}
