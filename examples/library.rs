//! The README's library snippet as a program (so it keeps compiling): a registry on a
//! throwaway data directory and key, one publish and one search, then a clean stop.
//!
//! `cargo run --example library` from the repository root.

use ggen_p2p::{P2PRegistryBuilder, PublishRequest, PublisherKey, Registry, SearchRequest};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // A throwaway data directory and publisher key: your own (~/.local/share/ggen-p2p,
    // publisher.key) stay untouched.
    let home = tempfile::tempdir()?;
    let registry = P2PRegistryBuilder::new()
        .with_data_dir(home.path())
        .with_listen_addresses(vec!["/ip4/127.0.0.1/tcp/0".to_string()])
        .build()?;
    PublisherKey::generate().save(&registry.publisher_key_path(), false)?;
    registry.start().await?;
    let pack = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/packs/rust-axum-service"
    );
    registry.publish(PublishRequest::new(pack)).await?;
    let report = registry
        .search(
            SearchRequest::new(vec!["rust".into()])
                .with_category("web".into())
                .with_limit(20),
        )
        .await?;
    for hit in &report.results {
        println!("{}@{}", hit.package.name, hit.package.version);
    }
    registry.stop().await?;
    Ok(())
}
