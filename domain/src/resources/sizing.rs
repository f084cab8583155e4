//! Sizing: what a configuration item takes from its pool, and what a request's
//! configuration asks for, as CMDB attributes, an amount and a CI type. Pure functions the
//! fulfilment of a request, the demo and the quota check at submission share.

use std::collections::BTreeMap;

use crate::resources::cmdb::AttrValue;
use crate::resources::pool::Amount;

/// What a CI takes from its pool, from its attributes.
pub fn amount_of(attributes: &BTreeMap<String, AttrValue>) -> Amount {
    let int = |name: &str| match attributes.get(name) {
        Some(AttrValue::Integer(n)) => u64::try_from(*n).unwrap_or(0),
        _ => 0,
    };
    let disks = match attributes.get("disks_gib") {
        Some(AttrValue::Integers(ds)) => ds.iter().map(|d| u64::try_from(*d).unwrap_or(0)).sum(),
        _ => 0,
    };
    Amount {
        cpu_cores: int("cpu"),
        memory_gib: int("memory_gib"),
        storage_gib: int("storage_gib").max(disks),
    }
}

/// What one resource of a request's configuration takes from a pool: read straight from
/// the JSON (this is on every submission's path), by the names
/// [`requested_attributes`] maps.
pub fn requested_amount(configuration: &BTreeMap<String, serde_json::Value>) -> Amount {
    let get = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| configuration.get(*n)?.as_u64())
            .unwrap_or(0)
    };
    Amount {
        cpu_cores: get(&["cpu"]),
        memory_gib: get(&["memory_gib", "memory_gb"]),
        storage_gib: get(&["storage_gib", "size_gb", "disk_gb"]),
    }
}

/// A request's configuration as CMDB attributes: `memory_gb` is `memory_gib`, `size_gb`
/// and `disk_gb` are `storage_gib`, `image` is `os_image`; other choices keep their name.
pub fn requested_attributes(
    configuration: &BTreeMap<String, serde_json::Value>,
) -> BTreeMap<String, AttrValue> {
    configuration
        .iter()
        .filter_map(|(k, v)| {
            let name = match k.as_str() {
                "memory_gb" => "memory_gib",
                "size_gb" | "disk_gb" => "storage_gib",
                "image" => "os_image",
                other => other,
            };
            let value = serde_json::from_value::<AttrValue>(v.clone()).ok()?;
            Some((name.to_owned(), value))
        })
        .collect()
}

/// The CI type a request's configuration asks for: a VM unless it names storage.
pub fn ci_type_of(
    configuration: &BTreeMap<String, serde_json::Value>,
) -> crate::resources::cmdb::CiType {
    if configuration.contains_key("size_gb") && !configuration.contains_key("cpu") {
        crate::resources::cmdb::CiType::StorageVolume
    } else {
        crate::resources::cmdb::CiType::VirtualMachine
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_request_asks_for_is_what_its_resources_take() {
        for cfg in [
            serde_json::json!({"cpu": 4, "memory_gb": 16, "os": "linux", "image": "rhel-9.4"}),
            serde_json::json!({"size_gb": 500, "tier": "performance"}),
            serde_json::json!({"cpu": 2, "memory_gib": 8, "disk_gb": 100}),
        ] {
            let cfg: BTreeMap<String, serde_json::Value> = serde_json::from_value(cfg).unwrap();
            assert_eq!(
                requested_amount(&cfg),
                amount_of(&requested_attributes(&cfg))
            );
        }
    }

    #[test]
    fn a_configuration_that_names_only_a_size_asks_for_a_storage_volume() {
        let cfg = |v: serde_json::Value| -> BTreeMap<String, serde_json::Value> {
            serde_json::from_value(v).unwrap()
        };
        assert_eq!(
            ci_type_of(&cfg(serde_json::json!({"size_gb": 500}))),
            crate::resources::cmdb::CiType::StorageVolume
        );
        assert_eq!(
            ci_type_of(&cfg(serde_json::json!({"cpu": 2, "size_gb": 500}))),
            crate::resources::cmdb::CiType::VirtualMachine
        );
    }

    #[test]
    fn a_ci_takes_the_larger_of_its_storage_and_the_sum_of_its_disks() {
        let attributes = BTreeMap::from([
            ("cpu".to_owned(), AttrValue::Integer(8)),
            ("memory_gib".to_owned(), AttrValue::Integer(32)),
            ("storage_gib".to_owned(), AttrValue::Integer(100)),
            ("disks_gib".to_owned(), AttrValue::Integers(vec![80, 120])),
            ("cores".to_owned(), AttrValue::Integer(-1)),
        ]);
        assert_eq!(
            amount_of(&attributes),
            Amount {
                cpu_cores: 8,
                memory_gib: 32,
                storage_gib: 200
            }
        );
    }
}
