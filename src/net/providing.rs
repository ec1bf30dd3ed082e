//! The provider lifecycle of a running node: once the DHT has a peer, it provides every
//! archive the store holds and puts the records published here again (both live only
//! in Kademlia's memory, so a restart loses them), then forgets stale providers from the
//! store every [`PROVIDER_UPKEEP`]. Re-providing while the node runs is Kademlia's own
//! job (see `behaviour.rs`); withdrawing an evicted archive is [`Client::stop_providing`].

use std::time::Duration;

use super::policy::{live_since, PROVIDER_UPKEEP, PROVIDE_SPACING};
use super::{Client, NetError};
use crate::package::RecordBody;
use crate::store::{now_ms, Store};
use crate::tasks::Tasks;

/// How often the routing table is checked while the node has no DHT peer yet.
const WAIT_FOR_PEERS: Duration = Duration::from_millis(200);

/// Runs until the registry stops (spawned by `P2PRegistry::start`, never awaited there).
pub(crate) async fn upkeep(client: Client, store: Store, tasks: Tasks) {
    tokio::select! {
        _ = tasks.cancelled() => {}
        result = run(&client, &store) => match result {
            Ok(()) | Err(NetError::Shutdown) => {}
            Err(e) => tracing::warn!("provider upkeep stopped: {e}"),
        },
    }
}

async fn run(client: &Client, store: &Store) -> Result<(), NetError> {
    forget_stale(store).await?;
    while client.status().await?.routing_table_size == 0 {
        tokio::time::sleep(WAIT_FOR_PEERS).await;
    }
    let archives = store.call(|store| store.stored_archives()).await?;
    for archive in &archives {
        match client.provide(*archive).await {
            Ok(()) => {}
            Err(NetError::Shutdown) => return Err(NetError::Shutdown),
            Err(e) => tracing::debug!("provide {archive} at start: {e}"),
        }
        tokio::time::sleep(PROVIDE_SPACING).await;
    }
    let mut records = store.call(|store| store.published_here_records()).await?;
    // Oldest version first, so a name key (held locally as put) ends on the newest.
    records.sort_by_key(|record| match record.body() {
        RecordBody::Version(v) => Some(v.version.clone()),
        _ => None,
    });
    for record in records {
        let id = record.id();
        match client.put_record(record).await {
            Ok(_) => {}
            Err(NetError::Shutdown) => return Err(NetError::Shutdown),
            Err(e) => tracing::debug!("dht put of record {id} at start: {e}"),
        }
        tokio::time::sleep(PROVIDE_SPACING).await;
    }
    tracing::debug!(archives = archives.len(), "stored archives provided");
    loop {
        tokio::time::sleep(PROVIDER_UPKEEP).await;
        forget_stale(store).await?;
    }
}

/// Forgets providers not confirmed within the provider TTL.
async fn forget_stale(store: &Store) -> Result<(), NetError> {
    let since = live_since(now_ms());
    let forgotten = store
        .call(move |store| store.forget_providers_before(since))
        .await?;
    if forgotten > 0 {
        tracing::debug!(forgotten, "stale providers forgotten");
    }
    Ok(())
}
