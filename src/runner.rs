//! The projection runner: folds the log into the read models, catch-up first, then live,
//! and lets a reader wait until the models reflect a position (read your writes).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use opsledger_projections::{Projection, ReadModels};
use tokio::sync::{watch, RwLock};

use crate::store::EventStore;

/// The read models and the position they reflect.
#[derive(Clone)]
pub struct Runner {
    models: Arc<RwLock<ReadModels>>,
    position: watch::Receiver<u64>,
}

impl Runner {
    /// Starts folding `store` into fresh read models on a background task.
    pub fn start(store: &EventStore) -> Self {
        let models = Arc::new(RwLock::new(ReadModels::default()));
        let (tx, position) = watch::channel(0);
        let mut events = store.subscribe(1);
        let writer = models.clone();
        tokio::spawn(async move {
            while let Some(event) = events.next().await {
                match event {
                    Ok(event) => {
                        let at = event.position;
                        writer.write().await.apply(&event);
                        tx.send_replace(at);
                    }
                    Err(e) => {
                        tracing::error!("the projection runner stopped: {e}");
                        return;
                    }
                }
            }
        });
        Runner { models, position }
    }

    /// The position the read models reflect now.
    pub fn position(&self) -> u64 {
        *self.position.borrow()
    }

    /// Waits (at most `timeout`) until the read models reflect `position`.
    ///
    /// # Errors
    /// The position it reached, when the time ran out first.
    pub async fn wait_for(&self, position: u64, timeout: Duration) -> Result<(), u64> {
        let mut rx = self.position.clone();
        let reached = tokio::time::timeout(timeout, rx.wait_for(|p| *p >= position)).await;
        match reached {
            Ok(Ok(_)) => Ok(()),
            _ => Err(self.position()),
        }
    }

    /// Read access to the models.
    pub async fn read(&self) -> tokio::sync::RwLockReadGuard<'_, ReadModels> {
        self.models.read().await
    }
}
