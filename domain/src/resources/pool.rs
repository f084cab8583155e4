//! Resource pools (issue 4's first rule): a pool states its capacity in CPU cores, memory
//! and storage, with optional overcommit of CPU and memory, and never allocates beyond it.
//! Allocation and release are events on the pool, so its state at any moment is a fold.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::kernel::aggregate::{Aggregate, Context, DomainEvent};
use crate::kernel::refusal::{Refusal, Refuse};
use crate::requests::catalog::{invalid, InvalidField};

/// The kinds of pool in the service plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolKind {
    PhysicalServer,
    VirtualMachine,
    Storage,
    Network,
    Database,
    Middleware,
    Application,
}

/// An amount of capacity: what a pool has, or what an allocation takes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Amount {
    pub cpu_cores: u64,
    pub memory_gib: u64,
    pub storage_gib: u64,
}

impl Amount {
    pub fn plus(self, other: Amount) -> Amount {
        Amount {
            cpu_cores: self.cpu_cores + other.cpu_cores,
            memory_gib: self.memory_gib + other.memory_gib,
            storage_gib: self.storage_gib + other.storage_gib,
        }
    }

    pub fn minus(self, other: Amount) -> Amount {
        Amount {
            cpu_cores: self.cpu_cores.saturating_sub(other.cpu_cores),
            memory_gib: self.memory_gib.saturating_sub(other.memory_gib),
            storage_gib: self.storage_gib.saturating_sub(other.storage_gib),
        }
    }

    /// The first dimension in which `self` exceeds `limit`, with both figures.
    pub fn exceeds(self, limit: Amount) -> Option<(&'static str, u64, u64)> {
        [
            ("cpu_cores", self.cpu_cores, limit.cpu_cores),
            ("memory_gib", self.memory_gib, limit.memory_gib),
            ("storage_gib", self.storage_gib, limit.storage_gib),
        ]
        .into_iter()
        .find(|(_, want, have)| want > have)
    }
}

/// Counted things a pool holds besides capacity, by name: licences, VLANs (`oracle_licence`
/// → 20).
pub type Units = BTreeMap<String, u64>;

/// How far CPU and memory may be promised beyond the physical capacity, in per mille
/// (1000 = none; 1500 = half as much again). Storage is never overcommitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overcommit {
    pub cpu_permille: u32,
    pub memory_permille: u32,
}

impl Default for Overcommit {
    fn default() -> Self {
        Overcommit {
            cpu_permille: 1000,
            memory_permille: 1000,
        }
    }
}

/// Orders to a pool.
#[derive(Clone, Debug)]
pub enum PoolCommand {
    CreatePool {
        pool_id: Uuid,
        name: String,
        kind: PoolKind,
        capacity: Amount,
        overcommit: Overcommit,
        units: Units,
    },
    AllocateCapacity {
        allocation_id: Uuid,
        amount: Amount,
        /// Counted things taken with it (each must be one the pool counts).
        units: Units,
        /// The request the capacity is for, when there is one.
        request_id: Option<Uuid>,
    },
    ReleaseCapacity {
        allocation_id: Uuid,
    },
    ResizePool {
        capacity: Amount,
    },
    /// Holds capacity back from allocation (e.g. for failover); `Amount::default()` frees it.
    SetReserve {
        reserved: Amount,
    },
    /// How many of a counted thing the pool holds; not below what is allocated.
    SetUnits {
        unit: String,
        count: u64,
    },
}

/// What happened to a pool.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum PoolEvent {
    PoolCreated {
        pool_id: Uuid,
        name: String,
        kind: PoolKind,
        capacity: Amount,
        overcommit: Overcommit,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        units: Units,
    },
    CapacityAllocated {
        allocation_id: Uuid,
        amount: Amount,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        units: Units,
        request_id: Option<Uuid>,
    },
    CapacityReleased {
        allocation_id: Uuid,
        amount: Amount,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        units: Units,
    },
    PoolResized {
        capacity: Amount,
    },
    ReserveSet {
        reserved: Amount,
    },
    UnitsSet {
        unit: String,
        count: u64,
    },
}

impl DomainEvent for PoolEvent {}

/// Why a pool refuses a command.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// A field of the pool breaks its rules (invalid)
    #[error(transparent)]
    Invalid(#[from] InvalidField),
    /// Only operators manage pools (forbidden)
    #[error("only operators manage pools")]
    NotOperator,
    /// The pool exists already (conflict)
    #[error("the pool already exists")]
    AlreadyExists,
    /// There is no such pool (not found)
    #[error("there is no such pool")]
    NotFound,
    /// The pool has too little free capacity (conflict)
    #[error("not enough {dimension} in the pool: {wanted} needed, {free} free")]
    InsufficientCapacity {
        dimension: &'static str,
        wanted: u64,
        free: u64,
    },
    /// The pool has too few free units of a kind (conflict)
    #[error("not enough {unit} in the pool: {wanted} needed, {free} free")]
    InsufficientUnits {
        unit: String,
        wanted: u64,
        free: u64,
    },
    /// The allocation was made already (conflict)
    #[error("allocation {0} was already made")]
    AlreadyAllocated(Uuid),
    /// The pool holds no such allocation (conflict)
    #[error("there is no allocation {0} in this pool")]
    NoSuchAllocation(Uuid),
    /// The new limit is below what is allocated and reserved (conflict)
    #[error("the pool cannot shrink below what it has allocated and reserved: {dimension} {allocated} allocated and reserved, {limit} in all")]
    BelowAllocated {
        dimension: &'static str,
        allocated: u64,
        limit: u64,
    },
}

impl Refuse for PoolError {
    fn refusal(&self) -> Refusal<'_> {
        match self {
            Self::Invalid(f) => Refusal::Invalid { field: &f.field },
            Self::NotOperator => Refusal::Forbidden,
            Self::AlreadyExists
            | Self::InsufficientCapacity { .. }
            | Self::InsufficientUnits { .. }
            | Self::AlreadyAllocated(..)
            | Self::NoSuchAllocation(..)
            | Self::BelowAllocated { .. } => Refusal::Conflict,
            Self::NotFound => Refusal::NotFound,
        }
    }
}

/// A pool's state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    pub pool_id: Option<Uuid>,
    pub name: String,
    pub kind: Option<PoolKind>,
    pub capacity: Amount,
    pub overcommit: Overcommit,
    pub allocations: BTreeMap<Uuid, Amount>,
    pub allocated: Amount,
    /// Held back from allocation by the operators.
    pub reserved: Amount,
    /// Counted things: how many the pool holds, and how many are allocated.
    #[serde(default)]
    pub units: Units,
    #[serde(default)]
    pub units_allocated: Units,
    /// The counted things of each allocation that took some.
    #[serde(default)]
    pub unit_allocations: BTreeMap<Uuid, Units>,
}

impl Pool {
    /// What may be allocated in all: capacity with CPU and memory overcommitted.
    pub fn limit(&self) -> Amount {
        limit(self.capacity, self.overcommit)
    }

    /// What is left to allocate.
    pub fn free(&self) -> Amount {
        self.limit().minus(self.allocated).minus(self.reserved)
    }

    /// Refuses a limit below what is allocated and reserved.
    fn holds(&self, limit: Amount, reserved: Amount) -> Result<(), PoolError> {
        match self.allocated.plus(reserved).exceeds(limit) {
            Some((dimension, allocated, limit)) => Err(PoolError::BelowAllocated {
                dimension,
                allocated,
                limit,
            }),
            None => Ok(()),
        }
    }

    fn exists(&self) -> Result<(), PoolError> {
        self.pool_id.map(|_| ()).ok_or(PoolError::NotFound)
    }
}

fn limit(capacity: Amount, overcommit: Overcommit) -> Amount {
    let scale = |v: u64, permille: u32| v * u64::from(permille) / 1000;
    Amount {
        cpu_cores: scale(capacity.cpu_cores, overcommit.cpu_permille),
        memory_gib: scale(capacity.memory_gib, overcommit.memory_permille),
        storage_gib: capacity.storage_gib,
    }
}

impl Aggregate for Pool {
    const KIND: &'static str = "pool";
    type Command = PoolCommand;
    type Event = PoolEvent;
    type Error = PoolError;

    fn decide(&self, command: PoolCommand, ctx: &Context) -> Result<Vec<PoolEvent>, PoolError> {
        if !ctx.actor.operates() {
            return Err(PoolError::NotOperator);
        }
        match command {
            PoolCommand::CreatePool {
                pool_id,
                name,
                kind,
                capacity,
                overcommit,
                units,
            } => {
                if self.pool_id.is_some() {
                    return Err(PoolError::AlreadyExists);
                }
                if name.trim().is_empty() {
                    return Err(invalid("name", "is required").into());
                }
                if overcommit.cpu_permille < 1000 || overcommit.memory_permille < 1000 {
                    return Err(invalid("overcommit", "cannot be below 1000 per mille").into());
                }
                if units.keys().any(|u| u.trim().is_empty()) {
                    return Err(invalid("units", "a counted thing needs a name").into());
                }
                Ok(vec![PoolEvent::PoolCreated {
                    pool_id,
                    name,
                    kind,
                    capacity,
                    overcommit,
                    units,
                }])
            }
            PoolCommand::AllocateCapacity {
                allocation_id,
                amount,
                units,
                request_id,
            } => {
                self.exists()?;
                if self.allocations.contains_key(&allocation_id) {
                    return Err(PoolError::AlreadyAllocated(allocation_id));
                }
                if amount == Amount::default() && units.values().all(|n| *n == 0) {
                    return Err(invalid("amount", "allocates nothing").into());
                }
                if let Some((dimension, wanted, free)) = amount.exceeds(self.free()) {
                    return Err(PoolError::InsufficientCapacity {
                        dimension,
                        wanted,
                        free,
                    });
                }
                for (unit, wanted) in &units {
                    let Some(held) = self.units.get(unit) else {
                        return Err(invalid(
                            format!("units.{unit}"),
                            "is not counted by this pool",
                        )
                        .into());
                    };
                    let free = held - self.units_allocated.get(unit).copied().unwrap_or(0);
                    if *wanted > free {
                        return Err(PoolError::InsufficientUnits {
                            unit: unit.clone(),
                            wanted: *wanted,
                            free,
                        });
                    }
                }
                Ok(vec![PoolEvent::CapacityAllocated {
                    allocation_id,
                    amount,
                    units,
                    request_id,
                }])
            }
            PoolCommand::ReleaseCapacity { allocation_id } => {
                self.exists()?;
                let amount = *self
                    .allocations
                    .get(&allocation_id)
                    .ok_or(PoolError::NoSuchAllocation(allocation_id))?;
                Ok(vec![PoolEvent::CapacityReleased {
                    allocation_id,
                    amount,
                    units: self
                        .unit_allocations
                        .get(&allocation_id)
                        .cloned()
                        .unwrap_or_default(),
                }])
            }
            PoolCommand::ResizePool { capacity } => {
                self.exists()?;
                self.holds(limit(capacity, self.overcommit), self.reserved)?;
                Ok(vec![PoolEvent::PoolResized { capacity }])
            }
            PoolCommand::SetReserve { reserved } => {
                self.exists()?;
                self.holds(self.limit(), reserved)?;
                Ok(vec![PoolEvent::ReserveSet { reserved }])
            }
            PoolCommand::SetUnits { unit, count } => {
                self.exists()?;
                if unit.trim().is_empty() {
                    return Err(invalid("unit", "a counted thing needs a name").into());
                }
                let allocated = self.units_allocated.get(&unit).copied().unwrap_or(0);
                if count < allocated {
                    return Err(invalid(
                        "count",
                        format!("{allocated} {unit} are allocated; the pool cannot hold fewer"),
                    )
                    .into());
                }
                Ok(vec![PoolEvent::UnitsSet { unit, count }])
            }
        }
    }

    fn evolve(mut self, event: &PoolEvent) -> Self {
        match event {
            PoolEvent::PoolCreated {
                pool_id,
                name,
                kind,
                capacity,
                overcommit,
                units,
            } => {
                self.units.clone_from(units);
                self.pool_id = Some(*pool_id);
                self.name.clone_from(name);
                self.kind = Some(*kind);
                self.capacity = *capacity;
                self.overcommit = *overcommit;
            }
            PoolEvent::CapacityAllocated {
                allocation_id,
                amount,
                units,
                ..
            } => {
                self.allocations.insert(*allocation_id, *amount);
                self.allocated = self.allocated.plus(*amount);
                if !units.is_empty() {
                    for (unit, n) in units {
                        *self.units_allocated.entry(unit.clone()).or_default() += n;
                    }
                    self.unit_allocations.insert(*allocation_id, units.clone());
                }
            }
            PoolEvent::CapacityReleased { allocation_id, .. } => {
                if let Some(amount) = self.allocations.remove(allocation_id) {
                    self.allocated = self.allocated.minus(amount);
                }
                for (unit, n) in self
                    .unit_allocations
                    .remove(allocation_id)
                    .unwrap_or_default()
                {
                    if let Some(held) = self.units_allocated.get_mut(&unit) {
                        *held = held.saturating_sub(n);
                    }
                }
            }
            PoolEvent::PoolResized { capacity } => self.capacity = *capacity,
            PoolEvent::ReserveSet { reserved } => self.reserved = *reserved,
            PoolEvent::UnitsSet { unit, count } => {
                self.units.insert(unit.clone(), *count);
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::kernel::given::{at, given, person};

    fn wong() -> crate::Actor {
        person("u-wong", "運維中心", &["operator"])
    }

    fn cores(cpu_cores: u64, memory_gib: u64) -> Amount {
        Amount {
            cpu_cores,
            memory_gib,
            storage_gib: 0,
        }
    }

    fn created(capacity: Amount, cpu_permille: u32) -> PoolEvent {
        PoolEvent::PoolCreated {
            pool_id: Uuid::from_u128(1),
            name: "x86 虛擬化資源池".into(),
            kind: PoolKind::VirtualMachine,
            capacity,
            overcommit: Overcommit {
                cpu_permille,
                memory_permille: 1000,
            },
            units: Units::from([("oracle_licence".into(), 4)]),
        }
    }

    fn allocated(n: u128, amount: Amount) -> PoolEvent {
        PoolEvent::CapacityAllocated {
            allocation_id: Uuid::from_u128(n),
            amount,
            units: Units::new(),
            request_id: None,
        }
    }

    fn allocate(n: u128, amount: Amount) -> PoolCommand {
        PoolCommand::AllocateCapacity {
            allocation_id: Uuid::from_u128(n),
            amount,
            units: Units::new(),
            request_id: None,
        }
    }

    #[test]
    fn a_pool_allocates_up_to_its_overcommitted_capacity_and_no_further() {
        let taken = allocated(10, cores(140, 256));
        given::<Pool>([created(cores(96, 512), 1500), taken])
            .when(allocate(11, cores(4, 16)), &wong())
            .then([allocated(11, cores(4, 16))]);
        let full = allocated(10, cores(144, 256));
        given::<Pool>([created(cores(96, 512), 1500), full])
            .at(at(10))
            .when(allocate(11, cores(1, 1)), &wong())
            .then_err(PoolError::InsufficientCapacity {
                dimension: "cpu_cores",
                wanted: 1,
                free: 0,
            });
    }

    #[test]
    fn only_operators_and_the_system_manage_pools() {
        given::<Pool>([created(cores(8, 8), 1000)])
            .when(
                allocate(2, cores(1, 1)),
                &person("u-chan", "財政局", &["requester"]),
            )
            .then_err(PoolError::NotOperator);
        let events = given::<Pool>([created(cores(8, 8), 1000)])
            .when(
                allocate(2, cores(1, 1)),
                &crate::Actor::system("provisioner"),
            )
            .events();
        assert_eq!(events.len(), 1);
    }

    #[test]
    fn a_pool_cannot_shrink_below_what_it_has_allocated() {
        let taken = allocated(10, cores(6, 6));
        given::<Pool>([created(cores(8, 8), 1000), taken])
            .when(
                PoolCommand::ResizePool {
                    capacity: cores(4, 8),
                },
                &wong(),
            )
            .then_err(PoolError::BelowAllocated {
                dimension: "cpu_cores",
                allocated: 6,
                limit: 4,
            });
    }

    #[test]
    fn counted_things_are_allocated_up_to_what_the_pool_holds_and_released_with_the_allocation() {
        let licences = |n: u64| Units::from([("oracle_licence".into(), n)]);
        let allocate_licences = |id: u128, n: u64| PoolCommand::AllocateCapacity {
            allocation_id: Uuid::from_u128(id),
            amount: cores(2, 8),
            units: licences(n),
            request_id: None,
        };
        let took = PoolEvent::CapacityAllocated {
            allocation_id: Uuid::from_u128(10),
            amount: cores(2, 8),
            units: licences(3),
            request_id: None,
        };
        given::<Pool>([created(cores(96, 512), 1000), took.clone()])
            .when(allocate_licences(11, 2), &wong())
            .then_err(PoolError::InsufficientUnits {
                unit: "oracle_licence".into(),
                wanted: 2,
                free: 1,
            });
        given::<Pool>([created(cores(96, 512), 1000)])
            .when(
                PoolCommand::AllocateCapacity {
                    allocation_id: Uuid::from_u128(11),
                    amount: cores(1, 1),
                    units: Units::from([("vlan".into(), 1)]),
                    request_id: None,
                },
                &wong(),
            )
            .then_err(invalid("units.vlan", "is not counted by this pool").into());
        let release = PoolCommand::ReleaseCapacity {
            allocation_id: Uuid::from_u128(10),
        };
        given::<Pool>([created(cores(96, 512), 1000), took])
            .when(release, &wong())
            .then([PoolEvent::CapacityReleased {
                allocation_id: Uuid::from_u128(10),
                amount: cores(2, 8),
                units: licences(3),
            }]);
    }

    /// One step of a random history: allocate, release one made earlier, or resize.
    #[derive(Clone, Debug)]
    enum Step {
        Allocate(u64, u64, u64),
        Release(usize),
        Resize(u64, u64, u64),
        Reserve(u64, u64, u64),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (0..40u64, 0..100u64, 0..500u64).prop_map(|(c, m, s)| Step::Allocate(c, m, s)),
            2 => (0..64usize).prop_map(Step::Release),
            1 => (0..150u64, 0..400u64, 0..2000u64).prop_map(|(c, m, s)| Step::Resize(c, m, s)),
            1 => (0..20u64, 0..50u64, 0..200u64).prop_map(|(c, m, s)| Step::Reserve(c, m, s)),
        ]
    }

    proptest! {
        /// Whatever the order of allocations, releases and resizes, and whichever of them
        /// the pool refuses, it never holds more than its limit, and what it says is
        /// allocated is the sum of its allocations.
        #[test]
        fn a_pool_never_allocates_beyond_its_limit(
            steps in proptest::collection::vec(step(), 1..120),
            cpu_permille in 1000..2500u32,
        ) {
            let ctx = Context { actor: wong(), now: at(9) };
            let start = Amount { cpu_cores: 64, memory_gib: 256, storage_gib: 1000 };
            let mut pool = Pool::default().evolve(&created(start, cpu_permille));
            let mut made: Vec<Uuid> = Vec::new();
            for (n, step) in steps.into_iter().enumerate() {
                let command = match step {
                    Step::Allocate(c, m, s) => {
                        let amount = Amount { cpu_cores: c, memory_gib: m, storage_gib: s };
                        PoolCommand::AllocateCapacity {
                            allocation_id: Uuid::from_u128(1000 + n as u128),
                            amount,
                            units: Units::from([("oracle_licence".into(), c % 3)]),
                            request_id: None,
                        }
                    }
                    Step::Release(i) if !made.is_empty() => PoolCommand::ReleaseCapacity {
                        allocation_id: made[i % made.len()],
                    },
                    Step::Release(_) => continue,
                    Step::Resize(c, m, s) => PoolCommand::ResizePool {
                        capacity: Amount { cpu_cores: c, memory_gib: m, storage_gib: s },
                    },
                    Step::Reserve(c, m, s) => PoolCommand::SetReserve {
                        reserved: Amount { cpu_cores: c, memory_gib: m, storage_gib: s },
                    },
                };
                if let Ok(events) = pool.decide(command, &ctx) {
                    for e in &events {
                        match e {
                            PoolEvent::CapacityAllocated { allocation_id, .. } => made.push(*allocation_id),
                            PoolEvent::CapacityReleased { allocation_id, .. } => made.retain(|m| m != allocation_id),
                            _ => {}
                        }
                        pool = pool.evolve(e);
                    }
                }
                prop_assert!(pool.allocated.plus(pool.reserved).exceeds(pool.limit()).is_none(), "{pool:?}");
                let sum = pool.allocations.values().fold(Amount::default(), |a, b| a.plus(*b));
                prop_assert_eq!(sum, pool.allocated);
                let licences: u64 = pool.unit_allocations.values().map(|u| u["oracle_licence"]).sum();
                prop_assert_eq!(licences, pool.units_allocated.get("oracle_licence").copied().unwrap_or(0));
                prop_assert!(licences <= pool.units["oracle_licence"], "{pool:?}");
            }
        }
    }
}
