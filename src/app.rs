//! The running system, wired: the event store, the command bus, the projection runner, the
//! supervisor of the background tasks, the clock, the content store and the driver. Wiring
//! only; what the GraphQL schema asks of it (its [`opsledger_schema::Ledger`] trait) is
//! answered in [`crate::ledger`].

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::runtime::runner::Runner;
use crate::store::commands::CommandBus;
use crate::store::EventStore;

/// Where "now" comes from: the system clock in production, a manual one in tests.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that moves only when told: tests drive notice, escalation and expiry with it.
pub struct ManualClock(std::sync::Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn new(now: DateTime<Utc>) -> Self {
        ManualClock(std::sync::Mutex::new(now))
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: chrono::Duration) {
        if let Ok(mut now) = self.0.lock() {
            *now += by;
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        self.0.lock().map(|now| *now).unwrap_or_default()
    }
}

/// The whole application over one event store.
#[derive(Clone)]
pub struct App {
    pub store: EventStore,
    pub bus: CommandBus,
    pub runner: Runner,
    /// The background tasks (the runner, and what `serve` starts) and their states.
    pub supervisor: crate::runtime::supervise::Supervisor,
    pub clock: Arc<dyn Clock>,
    /// Where library media, scripts and drivers' full logs are kept.
    pub content: crate::store::content::ContentStore,
    /// What workflow steps, virtual-server operations and baseline audits call.
    pub driver: Arc<dyn crate::drivers::Driver>,
}

impl App {
    /// Starts the projection runner over `store`, replaying it from position 1.
    pub fn start(store: EventStore, clock: Arc<dyn Clock>) -> Self {
        Self::start_with_snapshots(store, clock, None)
    }

    /// Starts the projection runner over `store` from the snapshot kept in `snapshots`
    /// (when there is a valid one), replaying only the tail.
    pub fn start_with_snapshots(
        store: EventStore,
        clock: Arc<dyn Clock>,
        snapshots: Option<std::path::PathBuf>,
    ) -> Self {
        let supervisor = crate::runtime::supervise::Supervisor::new(&store);
        let runner = Runner::start_under(&store, snapshots, &supervisor);
        App {
            bus: CommandBus::new(store.clone()),
            store,
            runner,
            supervisor,
            clock,
            content: crate::store::content::ContentStore::temporary()
                .expect("a temporary directory for the content store"),
            driver: crate::drivers::DriverConfig::default().build(),
        }
    }

    /// The same application with its content store under `content` and calls going to
    /// `driver` (`serve` keeps content under the data directory).
    pub fn with_automation(
        mut self,
        content: crate::store::content::ContentStore,
        driver: Arc<dyn crate::drivers::Driver>,
    ) -> Self {
        self.content = content;
        self.driver = driver;
        self
    }
}
