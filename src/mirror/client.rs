//! Reading a mirror over HTTP: its names, a name's index lines (raw record bytes, not
//! yet verified) and archives (streamed into the store, kept only if their digest is the
//! signed one). Verifying and ingesting records is the registry's, not this file's.

use std::time::Duration;

use base64::Engine;
use tokio::sync::mpsc;

use super::{IndexLine, MirrorError, MAX_INDEX_BYTES, MAX_NAMES_BYTES};
use crate::package::ArchiveInfo;
use crate::store::{Store, StoreError};

/// How long to wait for a mirror to connect; a slow body is bounded by the read timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest pause between two pieces of a body.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Pieces of an archive in flight between the socket and the writer thread.
const WRITE_QUEUE: usize = 16;

/// One mirror, by its base URL (`http://host:port`, no trailing slash).
#[derive(Debug, Clone)]
pub struct MirrorClient {
    http: reqwest::Client,
    base: String,
}

/// The raw lines of one index file: each record's bytes, or why the line is unreadable.
pub type IndexRecords = Vec<Result<Vec<u8>, String>>;

impl MirrorClient {
    /// A client for the mirror at `url`. Only `http://` is spoken: integrity comes from
    /// signatures and hashes, not from the transport (see `docs/mirror.md`).
    pub fn new(url: &str) -> Result<Self, MirrorError> {
        let base = url.trim().trim_end_matches('/').to_string();
        let bad = |reason: &str| MirrorError::BadUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let parsed = reqwest::Url::parse(&base).map_err(|e| bad(&e.to_string()))?;
        if parsed.scheme() != "http" {
            return Err(bad("only http:// mirrors are supported (this build has no TLS; a mirror is verified by signatures and hashes, not by its transport)"));
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(bad("it names no host"));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .no_proxy()
            .build()
            .map_err(|e| bad(&e.to_string()))?;
        Ok(Self { http, base })
    }

    pub fn url(&self) -> &str {
        &self.base
    }

    fn unreachable(&self, reason: impl std::fmt::Display) -> MirrorError {
        MirrorError::Unreachable {
            url: self.base.clone(),
            reason: reason.to_string(),
        }
    }

    fn refused(&self, reason: impl std::fmt::Display) -> MirrorError {
        MirrorError::Refused {
            url: self.base.clone(),
            reason: reason.to_string(),
        }
    }

    /// `GET path`: `None` on 404, the response on success, an error otherwise.
    async fn get(&self, path: &str) -> Result<Option<reqwest::Response>, MirrorError> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .map_err(|e| self.unreachable(format!("{}; is a mirror serving there?", plain(&e))))?;
        match response.status() {
            status if status.is_success() => Ok(Some(response)),
            reqwest::StatusCode::NOT_FOUND => Ok(None),
            status => Err(self.unreachable(format!("GET {path} answered {status}"))),
        }
    }

    /// A whole body, refused past `max` bytes.
    async fn body(
        &self,
        path: &str,
        mut response: reqwest::Response,
        max: usize,
    ) -> Result<Vec<u8>, MirrorError> {
        let mut body = Vec::new();
        while let Some(piece) = response
            .chunk()
            .await
            .map_err(|e| self.unreachable(format!("GET {path}: {}", plain(&e))))?
        {
            if body.len() + piece.len() > max {
                return Err(self.refused(format!("{path} is over the {max}-byte limit")));
            }
            body.extend_from_slice(&piece);
        }
        Ok(body)
    }

    /// Every name the mirror lists.
    pub async fn names(&self) -> Result<Vec<String>, MirrorError> {
        let Some(response) = self.get("/names").await? else {
            return Err(self.unreachable("/names is missing (404); is this a ggen-p2p mirror?"));
        };
        let body = self.body("/names", response, MAX_NAMES_BYTES).await?;
        let text = String::from_utf8(body).map_err(|_| self.refused("/names is not UTF-8"))?;
        Ok(text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect())
    }

    /// The record bytes of `name`'s index file, unverified, one entry per line (an
    /// unreadable line is an `Err` with the reason); `None` when the mirror has no such
    /// name.
    pub async fn index(&self, name: &str) -> Result<Option<IndexRecords>, MirrorError> {
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(self.refused(format!("{name:?} is not a package name")));
        }
        let path = format!("/index/{name}");
        let Some(response) = self.get(&path).await? else {
            return Ok(None);
        };
        let body = self.body(&path, response, MAX_INDEX_BYTES).await?;
        Ok(Some(parse_index(&body)))
    }

    /// Streams the archive `info` names into the store: written to a temp file while
    /// hashed, never more than `info.size` bytes read, stored only if BLAKE3, SHA-256,
    /// size and chunk root all match the signed record. `progress(done, total)` is
    /// called as bytes arrive.
    pub async fn fetch_archive(
        &self,
        store: &Store,
        info: &ArchiveInfo,
        progress: impl Fn(u64, u64),
    ) -> Result<(), MirrorError> {
        let path = format!("/archives/{}", info.blake3);
        let Some(mut response) = self.get(&path).await? else {
            return Err(self.unreachable(format!("it does not have archive {}", info.blake3)));
        };
        if let Some(length) = response.content_length() {
            if length > info.size {
                return Err(self.refused(format!(
                    "archive {} is {length} bytes but its signed record says {}; nothing was stored",
                    info.blake3, info.size
                )));
            }
        }
        // The blob writer is blocking file I/O: it runs on the blocking pool and takes
        // pieces from a short queue, so memory stays flat and the socket waits for disk.
        // A piece of `None` means "abandon": the writer is dropped (its temp file with
        // it) without a commit, whatever it holds.
        let writer = store.blob_writer()?;
        let (pieces, mut queue) = mpsc::channel::<Option<axum::body::Bytes>>(WRITE_QUEUE);
        let expected = info.clone();
        let write = tokio::task::spawn_blocking(move || {
            let mut writer = writer;
            while let Some(piece) = queue.blocking_recv() {
                let Some(piece) = piece else {
                    return Ok(());
                };
                std::io::Write::write_all(&mut writer, &piece).map_err(|source| {
                    StoreError::Io {
                        path: "blobs/tmp".into(),
                        source,
                    }
                })?;
            }
            writer.commit_verified(&expected)
        });
        let mut done = 0u64;
        let read: Result<(), MirrorError> = async {
            while let Some(piece) = response
                .chunk()
                .await
                .map_err(|e| self.unreachable(format!("GET {path}: {}", plain(&e))))?
            {
                done += piece.len() as u64;
                if done > info.size {
                    return Err(self.refused(format!(
                        "archive {} is longer than the {} bytes its signed record says; nothing was stored",
                        info.blake3, info.size
                    )));
                }
                if pieces.send(Some(piece)).await.is_err() {
                    break; // the writer failed; its error is reported below
                }
                progress(done, info.size);
            }
            Ok(())
        }
        .await;
        if read.is_err() {
            // Nothing is committed from a body that failed; this error wins over the
            // writer's.
            let _ = pieces.send(None).await;
            drop(pieces);
            let _ = write.await;
            return read;
        }
        drop(pieces);
        let written = write
            .await
            .map_err(|e| self.unreachable(format!("writer task failed: {e}")))?;
        match written {
            Ok(()) => Ok(()),
            Err(StoreError::ArchiveMismatch { actual, .. }) => Err(self.refused(format!(
                "archive {} does not match its signed record (got {actual}); the mirror serves altered bytes, nothing was stored",
                info.blake3
            ))),
            Err(e) => Err(e.into()),
        }
    }
}

/// A reqwest error in words: what failed and the innermost cause ("connection refused"),
/// which reqwest's own message leaves out.
fn plain(error: &reqwest::Error) -> String {
    let mut root: &dyn std::error::Error = error;
    while let Some(next) = root.source() {
        root = next;
    }
    let what = if error.is_connect() {
        "could not connect"
    } else if error.is_timeout() {
        "timed out"
    } else {
        "request failed"
    };
    format!("{what} ({root})")
}

/// Splits an index body into record bytes, one per non-empty line.
pub fn parse_index(body: &[u8]) -> IndexRecords {
    body.split(|b| *b == b'\n')
        .enumerate()
        .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
        .map(|(at, line)| {
            let line: IndexLine = serde_json::from_slice(line)
                .map_err(|e| format!("line {}: not an index line ({e})", at + 1))?;
            base64::engine::general_purpose::STANDARD
                .decode(line.record.as_bytes())
                .map_err(|e| format!("line {}: record is not base64 ({e})", at + 1))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_and_index_lines_parsed() {
        assert_eq!(
            MirrorClient::new("http://127.0.0.1:8080/").unwrap().url(),
            "http://127.0.0.1:8080"
        );
        for bad in ["https://mirror.example", "ftp://x", "not a url", "http://"] {
            assert!(MirrorClient::new(bad).is_err(), "{bad}");
        }
        let body = b"{\"kind\":\"version\",\"id\":\"00\",\"record\":\"aGVsbG8=\"}\n\nnope\n";
        let lines = parse_index(body);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].as_ref().unwrap(), b"hello");
        assert!(lines[1].as_ref().unwrap_err().starts_with("line 3:"));
    }
}
