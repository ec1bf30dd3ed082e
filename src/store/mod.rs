//! TEMPORARY SHIM (net branch only): an in-memory stand-in with exactly the
//! `STORE_API.md` signatures the network layer uses, so `src/net` compiles and its tests
//! run before the real SQLite store lands. The lead drops this file when merging.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::package::digest::{ArchiveDigest, ArchiveHasher};
use crate::package::{ArchiveInfo, Blake3Hash, PublisherId, Record, RecordBody, RecordId};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("archive {0}: not in the store")]
    MissingArchive(Blake3Hash),
    #[error("archive {hash}: {reason}")]
    Corrupt { hash: Blake3Hash, reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestOutcome {
    Added,
    Duplicate,
    Equivocation { existing: RecordId },
    Rejected { reason: String },
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Query {
    pub terms: Vec<String>,
    pub category: Option<String>,
    pub keyword: Option<String>,
    pub limit: usize,
    pub offset: usize,
}

impl Query {
    pub fn new(terms: Vec<String>) -> Self {
        Self {
            terms,
            limit: 20,
            ..Self::default()
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PackageMetadata {
    pub name: String,
    pub version: semver::Version,
    pub publisher: PublisherId,
    pub description: String,
    pub category: Option<String>,
    pub keywords: Vec<String>,
    pub authors: Vec<String>,
    pub license: Option<String>,
    pub repository: Option<String>,
    pub dependencies: BTreeMap<String, String>,
    pub archive: ArchiveInfo,
    pub published_at: u64,
    pub yanked: bool,
    pub record_id: RecordId,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SearchHit {
    pub package: PackageMetadata,
    pub score: f64,
    pub conflict: bool,
}

#[derive(Debug, Clone, Default)]
pub struct StoreStats {
    pub records: u64,
    pub packages: u64,
    pub versions: u64,
    pub archives: u64,
    pub archive_bytes: u64,
    pub equivocations: u64,
}

#[derive(Default)]
struct State {
    records: BTreeMap<RecordId, Record>,
    versions: HashMap<(PublisherId, String, String), (Blake3Hash, RecordId)>,
    archives: HashMap<Blake3Hash, (u64, Vec<Blake3Hash>)>,
    providers: HashMap<Blake3Hash, BTreeSet<String>>,
    equivocations: u64,
}

#[derive(Clone)]
pub struct Store {
    dir: Arc<PathBuf>,
    state: Arc<Mutex<State>>,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Store {
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let tmp = dir.join("blobs").join("tmp");
        fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
        Ok(Store {
            dir: Arc::new(dir.to_path_buf()),
            state: Arc::default(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn ingest(&self, record: &Record) -> Result<IngestOutcome, StoreError> {
        let mut state = self.lock();
        let id = record.id();
        if state.records.contains_key(&id) {
            return Ok(IngestOutcome::Duplicate);
        }
        if let RecordBody::Version(v) = record.body() {
            let key = (v.publisher, v.name.replace('_', "-"), v.version.to_string());
            if let Some((archive, existing)) = state.versions.get(&key) {
                if *archive != v.archive.blake3 {
                    let existing = *existing;
                    state.equivocations += 1;
                    return Ok(IngestOutcome::Equivocation { existing });
                }
                return Ok(IngestOutcome::Duplicate);
            }
            state.versions.insert(key, (v.archive.blake3, id));
        }
        state.records.insert(id, record.clone());
        Ok(IngestOutcome::Added)
    }

    pub fn ingest_many(&self, records: &[Record]) -> Result<Vec<IngestOutcome>, StoreError> {
        records.iter().map(|r| self.ingest(r)).collect()
    }

    pub fn record(&self, id: &RecordId) -> Result<Option<Record>, StoreError> {
        Ok(self.lock().records.get(id).cloned())
    }

    pub fn records(&self, ids: &[RecordId]) -> Result<Vec<Record>, StoreError> {
        let state = self.lock();
        Ok(ids
            .iter()
            .filter_map(|id| state.records.get(id).cloned())
            .collect())
    }

    pub fn record_ids(&self) -> Result<Vec<RecordId>, StoreError> {
        Ok(self.lock().records.keys().copied().collect())
    }

    pub fn search(&self, query: &Query) -> Result<Vec<SearchHit>, StoreError> {
        let state = self.lock();
        let mut hits = Vec::new();
        for (id, record) in &state.records {
            if let RecordBody::Version(v) = record.body() {
                let text = format!("{} {}", v.name, v.description).to_lowercase();
                if query.terms.iter().all(|t| text.contains(&t.to_lowercase())) {
                    hits.push(SearchHit {
                        package: PackageMetadata {
                            name: v.name.clone(),
                            version: v.version.clone(),
                            publisher: v.publisher,
                            description: v.description.clone(),
                            category: v.category.clone(),
                            keywords: v.keywords.clone(),
                            authors: v.authors.clone(),
                            license: v.license.clone(),
                            repository: v.repository.clone(),
                            dependencies: v.dependencies.clone(),
                            archive: v.archive.clone(),
                            published_at: v.published_at,
                            yanked: false,
                            record_id: *id,
                        },
                        score: 1.0,
                        conflict: false,
                    });
                }
            }
        }
        let limit = if query.limit == 0 { 20 } else { query.limit };
        Ok(hits.into_iter().skip(query.offset).take(limit).collect())
    }

    pub fn put_archive_file(&self, temp: &Path, info: &ArchiveInfo) -> Result<(), StoreError> {
        let file = File::open(temp).map_err(io_err(temp))?;
        let digest = ArchiveHasher::digest_reader(file).map_err(io_err(temp))?;
        if digest.info.blake3 != info.blake3 || digest.info.size != info.size {
            return Err(StoreError::Corrupt {
                hash: info.blake3,
                reason: "file does not match its record".into(),
            });
        }
        self.install(temp, &digest)
    }

    fn install(&self, temp: &Path, digest: &ArchiveDigest) -> Result<(), StoreError> {
        let dest = self.blob_path(&digest.info.blake3);
        fs::rename(temp, &dest).map_err(io_err(&dest))?;
        self.lock().archives.insert(
            digest.info.blake3,
            (digest.info.size, digest.chunks.clone()),
        );
        Ok(())
    }

    pub fn blob_writer(&self) -> Result<BlobWriter, StoreError> {
        let tmp = self.dir.join("blobs").join("tmp");
        let path = tmp.join(format!("{}.tmp", rand::random::<u64>()));
        let file = File::create(&path).map_err(io_err(&path))?;
        Ok(BlobWriter {
            store: self.clone(),
            path,
            hasher: ArchiveHasher::tee(file),
        })
    }

    fn blob_path(&self, blake3: &Blake3Hash) -> PathBuf {
        self.dir.join("blobs").join(blake3.to_hex())
    }

    pub fn has_archive(&self, blake3: &Blake3Hash) -> bool {
        self.lock().archives.contains_key(blake3)
    }

    pub fn archive_path(&self, blake3: &Blake3Hash) -> Option<PathBuf> {
        self.has_archive(blake3).then(|| self.blob_path(blake3))
    }

    pub fn chunk_hashes(&self, blake3: &Blake3Hash) -> Result<Option<Vec<Blake3Hash>>, StoreError> {
        Ok(self.lock().archives.get(blake3).map(|(_, c)| c.clone()))
    }

    pub fn read_chunk(&self, blake3: &Blake3Hash, index: u32) -> Result<Vec<u8>, StoreError> {
        let size = match self.lock().archives.get(blake3) {
            Some((size, _)) => *size,
            None => return Err(StoreError::MissingArchive(*blake3)),
        };
        let chunk = u64::from(crate::package::digest::CHUNK_SIZE);
        let start = u64::from(index) * chunk;
        if start >= size && !(size == 0 && index == 0) {
            return Err(StoreError::Corrupt {
                hash: *blake3,
                reason: format!("chunk {index} is past the end"),
            });
        }
        let path = self.blob_path(blake3);
        let mut file = File::open(&path).map_err(io_err(&path))?;
        file.seek(SeekFrom::Start(start)).map_err(io_err(&path))?;
        let mut bytes = Vec::new();
        file.take(chunk)
            .read_to_end(&mut bytes)
            .map_err(io_err(&path))?;
        Ok(bytes)
    }

    pub fn add_provider(&self, blake3: &Blake3Hash, peer: &str) -> Result<(), StoreError> {
        self.lock()
            .providers
            .entry(*blake3)
            .or_default()
            .insert(peer.to_string());
        Ok(())
    }

    pub fn remove_provider(&self, blake3: &Blake3Hash, peer: &str) -> Result<(), StoreError> {
        if let Some(set) = self.lock().providers.get_mut(blake3) {
            set.remove(peer);
        }
        Ok(())
    }

    pub fn providers(&self, blake3: &Blake3Hash) -> Result<Vec<String>, StoreError> {
        Ok(self
            .lock()
            .providers
            .get(blake3)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default())
    }

    pub fn stats(&self) -> Result<StoreStats, StoreError> {
        let state = self.lock();
        Ok(StoreStats {
            records: state.records.len() as u64,
            versions: state.versions.len() as u64,
            archives: state.archives.len() as u64,
            archive_bytes: state.archives.values().map(|(s, _)| *s).sum(),
            equivocations: state.equivocations,
            ..StoreStats::default()
        })
    }
}

/// Temp file in `blobs/tmp` digested as it is written.
pub struct BlobWriter {
    store: Store,
    path: PathBuf,
    hasher: ArchiveHasher<File>,
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.hasher.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.hasher.flush()
    }
}

impl BlobWriter {
    pub fn commit(self) -> Result<ArchiveDigest, StoreError> {
        let (file, digest) = self.hasher.finish();
        file.sync_all().map_err(io_err(&self.path))?;
        drop(file);
        self.store.install(&self.path, &digest)?;
        Ok(digest)
    }
}
