//! A damaged row in the sender's SQLite file costs only that record: the peer asking
//! for a batch still receives every intact record in it, and `verify` on the sender
//! names the damaged one.

use ggen_p2p::package::{ArchiveInfo, PublisherKey, Record, RecordBody, VersionRecord};
use ggen_p2p::registry::{Registry, VerifyRequest};

mod support;
use support::registry::{address, loopback, node, wait_for};

fn record(key: &PublisherKey, name: &str) -> Record {
    let archive = ArchiveInfo::fixture(name.as_bytes());
    let body = VersionRecord {
        description: format!("{name} test pack"),
        published_at: 1_700_000_000_000,
        ..VersionRecord::fixture(key, name, "1.0.0", archive)
    };
    Record::sign(RecordBody::Version(body), key).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_damaged_row_does_not_block_the_others() {
    let root = tempfile::tempdir().unwrap();
    let key = PublisherKey::generate();
    let names = ["alpha", "bravo", "charlie", "delta", "echo"];
    let records: Vec<Record> = names.iter().map(|name| record(&key, name)).collect();

    let sender = loopback(&root.path().join("sender"), vec![]);
    for record in &records {
        sender.store().ingest(record).unwrap();
    }
    let damaged = records[2].id();
    {
        let conn = rusqlite::Connection::open(root.path().join("sender/index.sqlite")).unwrap();
        let changed = conn
            .execute(
                "UPDATE records SET bytes = CAST(zeroblob(200) AS BLOB) WHERE id = ?1",
                [damaged.as_bytes().as_slice()],
            )
            .unwrap();
        assert_eq!(changed, 1);
    }
    let report = sender.verify(VerifyRequest::default()).await.unwrap();
    assert_eq!(report.bad_records.len(), 1, "{:?}", report.bad_records);
    assert_eq!(report.bad_records[0].id, damaged.to_string());

    sender.start().await.unwrap();
    let receiver = node(root.path(), "receiver", vec![address(&sender).await]).await;
    let version = semver::Version::new(1, 0, 0);
    for (index, name) in names.iter().enumerate() {
        if index != 2 {
            wait_for(&receiver, name, &version).await;
        }
    }
    assert!(receiver.store().record(&damaged).unwrap().is_none());
    assert_eq!(
        receiver.store().record_ids().unwrap().len(),
        names.len() - 1
    );

    receiver.stop().await.unwrap();
    sender.stop().await.unwrap();
}
