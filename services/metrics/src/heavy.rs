//! The heavy-query limit: how many KPI computations from signals a replica
//! runs at once, shared fairly between tenants.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use retain_runtime::error::Error;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// KPI computations one replica runs at once; further calls wait.
pub const HEAVY_QUERIES: usize = 2;

/// Of those, how many one tenant may run at once: the others keep a place.
pub const HEAVY_QUERIES_PER_TENANT: usize = 1;

/// The replica's places and each tenant's. A call takes its tenant's place
/// first, then one of the replica's: a tenant's further calls wait behind
/// each other, not in the replica's queue, so one tenant's twenty
/// dashboards cannot hold every place and make another tenant's one call
/// wait for all of them.
#[derive(Debug)]
pub struct HeavyLimit {
    shared: Arc<Semaphore>,
    per_tenant: usize,
    tenants: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// A heavy query's places, the tenant's and the replica's, given back
/// together when dropped.
#[derive(Debug)]
pub struct HeavyPermit {
    _shared: OwnedSemaphorePermit,
    _own: OwnedSemaphorePermit,
}

impl HeavyLimit {
    /// `shared` places in all, at most `per_tenant` of them one tenant's.
    pub fn new(shared: usize, per_tenant: usize) -> Self {
        Self {
            shared: Arc::new(Semaphore::new(shared)),
            per_tenant: per_tenant.max(1),
            tenants: Mutex::new(HashMap::new()),
        }
    }

    /// Waits for a place of `tenant`'s, then one of the replica's.
    pub async fn acquire(&self, tenant: &str) -> Result<HeavyPermit, Error> {
        let shutting = |_| Error::Unavailable("the server is shutting down".into());
        let own = {
            let mut tenants = self
                .tenants
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            tenants
                .entry(tenant.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_tenant)))
                .clone()
        };
        let own = own.acquire_owned().await.map_err(shutting)?;
        let shared = self
            .shared
            .clone()
            .acquire_owned()
            .await
            .map_err(shutting)?;
        Ok(HeavyPermit {
            _shared: shared,
            _own: own,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::time::Duration;

    /// Whether `tenant` gets places now: its acquisition polled once (a
    /// free place is taken on the first poll; a wait never ends there).
    async fn gets_now(limit: &HeavyLimit, tenant: &str) -> Option<HeavyPermit> {
        tokio::time::timeout(Duration::ZERO, limit.acquire(tenant))
            .await
            .ok()
            .map(Result::unwrap)
    }

    #[tokio::test]
    async fn one_tenant_cannot_hold_every_place() {
        let limit = HeavyLimit::new(2, 1);
        let a = gets_now(&limit, "a").await.expect("a free place");
        assert!(
            gets_now(&limit, "a").await.is_none(),
            "a tenant took a second place"
        );
        // B takes the place A's second call could not.
        let b = gets_now(&limit, "b").await.expect("B waited behind A");
        // Both places taken: C waits until one is given back.
        assert!(gets_now(&limit, "c").await.is_none(), "a third place");
        drop(b);
        let c = gets_now(&limit, "c").await.expect("C gets B's place");
        drop(a);
        assert!(
            gets_now(&limit, "a").await.is_some(),
            "A's next call after its first"
        );
        drop(c);
    }
}
