//! IP address management: subnets with an allocatable range. A subnet hands each address
//! to one CI at a time; two allocations deciding on the same state cannot both append, so
//! no address is ever handed out twice.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::kernel::aggregate::{Aggregate, Context, DomainEvent};
use crate::kernel::refusal::{Refusal, Refuse};
use crate::requests::catalog::{invalid, InvalidField};

/// Orders to a subnet.
#[derive(Clone, Debug)]
pub enum SubnetCommand {
    CreateSubnet {
        subnet_id: Uuid,
        name: String,
        cidr: Ipv4Net,
        /// The allocatable range, inclusive.
        first: Ipv4Addr,
        last: Ipv4Addr,
        gateway: Option<Ipv4Addr>,
        vlan: Option<u16>,
    },
    /// Gives `ci_id` the lowest free address, or `address` when it is free.
    AllocateAddress {
        ci_id: Uuid,
        address: Option<Ipv4Addr>,
    },
    /// Takes back every address `ci_id` holds.
    ReleaseAddresses { ci_id: Uuid },
}

/// What happened to a subnet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum SubnetEvent {
    SubnetCreated {
        subnet_id: Uuid,
        name: String,
        cidr: Ipv4Net,
        first: Ipv4Addr,
        last: Ipv4Addr,
        gateway: Option<Ipv4Addr>,
        vlan: Option<u16>,
    },
    AddressAllocated {
        address: Ipv4Addr,
        ci_id: Uuid,
    },
    AddressReleased {
        address: Ipv4Addr,
        ci_id: Uuid,
    },
}

impl DomainEvent for SubnetEvent {}

/// Why a subnet refuses a command.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SubnetError {
    /// A field of the subnet breaks its rules (invalid)
    #[error(transparent)]
    Invalid(#[from] InvalidField),
    /// Only operators manage subnets (forbidden)
    #[error("only operators manage subnets")]
    NotOperator,
    /// The subnet exists already (conflict)
    #[error("the subnet already exists")]
    AlreadyExists,
    /// There is no such subnet (not found)
    #[error("there is no such subnet")]
    NotFound,
    /// No free address is left (conflict)
    #[error("no free address is left in {0}")]
    Exhausted(String),
    /// The address is held by another CI (conflict)
    #[error("{address} is already held by {ci_id}")]
    Taken { address: Ipv4Addr, ci_id: Uuid },
    /// The CI holds no address in the subnet (conflict)
    #[error("{0} holds no address in this subnet")]
    NothingHeld(Uuid),
    /// The CI holds an address in the subnet already (conflict)
    #[error("{ci_id} already holds {address} in this subnet")]
    AlreadyHolds { ci_id: Uuid, address: Ipv4Addr },
}

impl Refuse for SubnetError {
    fn refusal(&self) -> Refusal<'_> {
        match self {
            Self::Invalid(f) => Refusal::Invalid { field: &f.field },
            Self::NotOperator => Refusal::Forbidden,
            Self::AlreadyExists
            | Self::Exhausted(..)
            | Self::Taken { .. }
            | Self::NothingHeld(..)
            | Self::AlreadyHolds { .. } => Refusal::Conflict,
            Self::NotFound => Refusal::NotFound,
        }
    }
}

/// A subnet's state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subnet {
    pub subnet_id: Option<Uuid>,
    pub name: String,
    pub cidr: Option<Ipv4Net>,
    pub first: u32,
    pub last: u32,
    pub gateway: Option<Ipv4Addr>,
    pub vlan: Option<u16>,
    /// Who holds each address.
    pub allocated: BTreeMap<Ipv4Addr, Uuid>,
}

impl Subnet {
    /// The lowest address in the range that is neither held nor the gateway: a walk of
    /// the held addresses in order, which stops at the first gap.
    pub fn lowest_free(&self) -> Option<Ipv4Addr> {
        let mut candidate = self.first;
        let mut held = self
            .allocated
            .range(Ipv4Addr::from(self.first)..)
            .map(|(a, _)| u32::from(*a))
            .peekable();
        let gateway = self.gateway.map(u32::from);
        loop {
            if candidate > self.last {
                return None;
            }
            if Some(candidate) == gateway {
                candidate = candidate.checked_add(1)?;
                continue;
            }
            while held.peek().is_some_and(|a| *a < candidate) {
                held.next();
            }
            if held.peek() == Some(&candidate) {
                candidate = candidate.checked_add(1)?;
                continue;
            }
            return Some(Ipv4Addr::from(candidate));
        }
    }

    /// How many addresses the range holds, the gateway left out.
    pub fn size(&self) -> u64 {
        let all = u64::from(self.last) + 1 - u64::from(self.first);
        let gateway_inside = self
            .gateway
            .is_some_and(|g| (self.first..=self.last).contains(&u32::from(g)));
        all - u64::from(gateway_inside)
    }
}

impl Aggregate for Subnet {
    const KIND: &'static str = "subnet";
    type Command = SubnetCommand;
    type Event = SubnetEvent;
    type Error = SubnetError;

    fn decide(
        &self,
        command: SubnetCommand,
        ctx: &Context,
    ) -> Result<Vec<SubnetEvent>, SubnetError> {
        if !ctx.actor.operates() {
            return Err(SubnetError::NotOperator);
        }
        match command {
            SubnetCommand::CreateSubnet {
                subnet_id,
                name,
                cidr,
                first,
                last,
                gateway,
                vlan,
            } => {
                if self.subnet_id.is_some() {
                    return Err(SubnetError::AlreadyExists);
                }
                if name.trim().is_empty() {
                    return Err(invalid("name", "is required").into());
                }
                if let Some(vlan) = vlan {
                    crate::kernel::limits::within(
                        "vlan",
                        i64::from(vlan),
                        &crate::kernel::limits::VLAN,
                    )?;
                }
                for (field, address) in [
                    ("first", Some(first)),
                    ("last", Some(last)),
                    ("gateway", gateway),
                ] {
                    if let Some(address) = address {
                        if !cidr.contains(&address) {
                            return Err(
                                invalid(field, format!("{address} is outside {cidr}")).into()
                            );
                        }
                    }
                }
                if first > last {
                    return Err(invalid("last", "comes before first").into());
                }
                Ok(vec![SubnetEvent::SubnetCreated {
                    subnet_id,
                    name,
                    cidr,
                    first,
                    last,
                    gateway,
                    vlan,
                }])
            }
            SubnetCommand::AllocateAddress { ci_id, address } => {
                let cidr = self.cidr.ok_or(SubnetError::NotFound)?;
                if let Some((held, _)) = self.allocated.iter().find(|(_, c)| **c == ci_id) {
                    return Err(SubnetError::AlreadyHolds {
                        ci_id,
                        address: *held,
                    });
                }
                let address = match address {
                    Some(address) => {
                        let a = u32::from(address);
                        if a < self.first || a > self.last || Some(address) == self.gateway {
                            return Err(invalid(
                                "address",
                                format!("{address} is not in the allocatable range of {cidr}"),
                            )
                            .into());
                        }
                        if let Some(holder) = self.allocated.get(&address) {
                            return Err(SubnetError::Taken {
                                address,
                                ci_id: *holder,
                            });
                        }
                        address
                    }
                    None => self
                        .lowest_free()
                        .ok_or_else(|| SubnetError::Exhausted(cidr.to_string()))?,
                };
                Ok(vec![SubnetEvent::AddressAllocated { address, ci_id }])
            }
            SubnetCommand::ReleaseAddresses { ci_id } => {
                self.cidr.ok_or(SubnetError::NotFound)?;
                let events: Vec<SubnetEvent> = self
                    .allocated
                    .iter()
                    .filter(|(_, holder)| **holder == ci_id)
                    .map(|(address, _)| SubnetEvent::AddressReleased {
                        address: *address,
                        ci_id,
                    })
                    .collect();
                if events.is_empty() {
                    return Err(SubnetError::NothingHeld(ci_id));
                }
                Ok(events)
            }
        }
    }

    fn evolve(mut self, event: &SubnetEvent) -> Self {
        match event {
            SubnetEvent::SubnetCreated {
                subnet_id,
                name,
                cidr,
                first,
                last,
                gateway,
                vlan,
            } => {
                self.subnet_id = Some(*subnet_id);
                self.name.clone_from(name);
                self.cidr = Some(*cidr);
                self.first = u32::from(*first);
                self.last = u32::from(*last);
                self.gateway = *gateway;
                self.vlan = *vlan;
            }
            SubnetEvent::AddressAllocated { address, ci_id } => {
                self.allocated.insert(*address, *ci_id);
            }
            SubnetEvent::AddressReleased { address, .. } => {
                self.allocated.remove(address);
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::given::{given, person};

    fn created() -> SubnetEvent {
        SubnetEvent::SubnetCreated {
            subnet_id: Uuid::from_u128(1),
            name: "政務外網 VLAN 120".into(),
            cidr: "10.120.0.0/29".parse().unwrap(),
            first: "10.120.0.1".parse().unwrap(),
            last: "10.120.0.6".parse().unwrap(),
            gateway: Some("10.120.0.1".parse().unwrap()),
            vlan: Some(120),
        }
    }

    fn held(last_octet: u8, ci: u128) -> SubnetEvent {
        SubnetEvent::AddressAllocated {
            address: Ipv4Addr::new(10, 120, 0, last_octet),
            ci_id: Uuid::from_u128(ci),
        }
    }

    fn allocate(ci: u128) -> SubnetCommand {
        SubnetCommand::AllocateAddress {
            ci_id: Uuid::from_u128(ci),
            address: None,
        }
    }

    fn wong() -> crate::Actor {
        person("u-wong", "運維中心", &["operator"])
    }

    #[test]
    fn the_lowest_free_address_is_handed_out_skipping_the_gateway_and_holes_are_reused() {
        given::<Subnet>([created()])
            .when(allocate(9), &wong())
            .then([held(2, 9)]);
        given::<Subnet>([created(), held(2, 9), held(4, 10)])
            .when(allocate(11), &wong())
            .then([held(3, 11)]);
    }

    #[test]
    fn a_full_range_and_a_held_address_are_refused() {
        let full = (2..=6).map(|n| held(n, u128::from(n)));
        given::<Subnet>(std::iter::once(created()).chain(full))
            .when(allocate(99), &wong())
            .then_err(SubnetError::Exhausted("10.120.0.0/29".into()));
        given::<Subnet>([created(), held(5, 3)])
            .when(
                SubnetCommand::AllocateAddress {
                    ci_id: Uuid::from_u128(4),
                    address: Some(Ipv4Addr::new(10, 120, 0, 5)),
                },
                &wong(),
            )
            .then_err(SubnetError::Taken {
                address: Ipv4Addr::new(10, 120, 0, 5),
                ci_id: Uuid::from_u128(3),
            });
    }

    #[test]
    fn a_release_gives_back_every_address_the_ci_held() {
        given::<Subnet>([created(), held(2, 9), held(3, 10), held(4, 9)])
            .when(
                SubnetCommand::ReleaseAddresses {
                    ci_id: Uuid::from_u128(9),
                },
                &wong(),
            )
            .then([
                SubnetEvent::AddressReleased {
                    address: Ipv4Addr::new(10, 120, 0, 2),
                    ci_id: Uuid::from_u128(9),
                },
                SubnetEvent::AddressReleased {
                    address: Ipv4Addr::new(10, 120, 0, 4),
                    ci_id: Uuid::from_u128(9),
                },
            ]);
    }
}
