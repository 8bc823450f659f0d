//! A short-lived cache of tenants and their current flows, so a webchat turn does not read them
//! from the database every time. Publishing a flow through this API invalidates the tenant at
//! once; other API replicas see a publish within `api.tenant_cache_ttl_ms`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use zengine_domain::TenantId;
use zengine_domain::flow::FlowGraph;
use zengine_storage::Database;
use zengine_storage::Tenant;

/// Entries kept at most; the cache is cleared when it would grow past this (unknown tenants are
/// cached too, so a flood of made-up ids cannot grow memory without bound).
const MAX_ENTRIES: usize = 10_000;

type Key = (TenantId, Option<String>);
type Entry = (Instant, Option<(Tenant, Option<FlowGraph>)>);

pub struct TenantCache {
    ttl: Duration,
    entries: Mutex<HashMap<Key, Entry>>,
}

impl TenantCache {
    /// A cache whose entries live `ttl`; zero disables caching.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The tenant (`None` if unknown) and the current version of `flow` (default: the tenant's
    /// main flow; `None` if never published).
    pub async fn lookup(
        &self,
        db: &Database,
        tenant_id: &TenantId,
        flow: Option<&str>,
    ) -> anyhow::Result<Option<(Tenant, Option<FlowGraph>)>> {
        let key = (tenant_id.clone(), flow.map(str::to_owned));
        if !self.ttl.is_zero() {
            let entries = self.entries.lock().expect("cache lock");
            if let Some((at, value)) = entries.get(&key)
                && at.elapsed() < self.ttl
            {
                return Ok(value.clone());
            }
        }
        let value = match db.tenants().get(tenant_id).await? {
            None => None,
            Some(tenant) => {
                let name = flow.unwrap_or(&tenant.main_flow_id);
                let graph = db.tenants().latest_flow(tenant_id, name).await?;
                Some((tenant, graph))
            }
        };
        if !self.ttl.is_zero() {
            let mut entries = self.entries.lock().expect("cache lock");
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
            entries.insert(key, (Instant::now(), value.clone()));
        }
        Ok(value)
    }

    /// Forgets everything cached about `tenant_id`.
    pub fn invalidate(&self, tenant_id: &TenantId) {
        self.entries
            .lock()
            .expect("cache lock")
            .retain(|(t, _), _| t != tenant_id);
    }
}
