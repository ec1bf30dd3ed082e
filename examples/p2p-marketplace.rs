//! The library in use: a node that publishes the sample packs, searches them, installs
//! one, and reports its status — all through `ggen_p2p`'s public API.
//!
//! `cargo run --example p2p-marketplace` (offline); add `-- --online` to also start the
//! node's network on a loopback port.

use std::path::Path;

use ggen_p2p::registry::StatusRequest;
use ggen_p2p::{
    InstallRequest, P2PRegistryBuilder, PackageSpec, PublishRequest, PublisherKey, Registry,
    SearchRequest,
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let online = std::env::args().any(|arg| arg == "--online");
    let home = tempfile::tempdir()?;
    let registry = P2PRegistryBuilder::new()
        .with_data_dir(home.path())
        .with_listen_addresses(vec!["/ip4/127.0.0.1/tcp/0".to_string()])
        .with_mdns(false)
        .with_autonat(false)
        .build()?;
    if online {
        registry.start().await?;
    }
    PublisherKey::generate().save(&registry.publisher_key_path(), false)?;

    let packs = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/packs");
    for entry in std::fs::read_dir(&packs)? {
        let dir = entry?.path();
        if !dir.join("package.toml").exists() {
            continue;
        }
        let report = registry.publish(PublishRequest::new(&dir)).await?;
        println!(
            "published {}@{} ({} bytes)",
            report.name, report.version, report.archive.size
        );
    }

    let query = SearchRequest::new(vec!["rust".into()]).with_limit(5);
    for hit in registry.search(query).await?.results {
        println!(
            "{:>6.2}  {}  {}",
            hit.score, hit.package.name, hit.package.description
        );
    }
    let web = SearchRequest::new(vec![]).with_category("web".into());
    println!("web packs: {}", registry.search(web).await?.results.len());

    let target = home.path().join("installed-axum");
    let request = InstallRequest::new(PackageSpec::new("rust-axum-service", "^1"));
    let installed = registry.install(request.with_target(&target), None).await?;
    println!(
        "installed {} files into {}",
        installed.files,
        target.display()
    );

    let status = registry.status(StatusRequest::default()).await?;
    println!(
        "{} records, {} packs, {} archives",
        status.store.records, status.store.packages, status.store.archives
    );
    registry.stop().await?;
    Ok(())
}
