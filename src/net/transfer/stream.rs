//! `/ggen/chunks/1.0.0`, the streaming chunk protocol: the downloader asks for a range of
//! chunks on a stream and the provider sends them back to back, read straight from its
//! stored file; a stream carries one range after another. This module is the spec, the provider's side ([`serve`]) and the
//! downloader's ([`fetch_range`]); which ranges to ask of whom is `schedule.rs`'s.
//!
//! Participants: a downloader and a provider, over a libp2p stream (`libp2p-stream`) on
//! the connection they already share (Noise + Yamux over TCP, or QUIC).
//!
//! Messages (integers big-endian):
//! - request, downloader → provider, exactly [`REQUEST_LEN`] bytes:
//!   `archive: [u8; 32] | first: u32 | count: u32`, `1 ≤ count ≤` [`MAX_RANGE`];
//! - answer, provider → downloader, frames in order; after the last chunk the provider
//!   waits up to [`IDLE_WAIT`] for the next request on the same stream (the downloader
//!   keeps finished streams for [`POOL_KEEP`] < [`IDLE_WAIT`] and reuses them):
//!   - `0 | index: u32 | len: u32 | bytes[len]`, one per chunk `first..first+count`, each
//!     `len ≤` [`MAX_CHUNK_SIZE`];
//!   - `1 | len: u16 | utf8[len]` (`len ≤` [`MAX_ERROR_LEN`]): refused (rate limit, bad
//!     range, damaged copy), nothing follows;
//!   - `2`: the provider does not have the archive (or, from a node still downloading
//!     it, not every chunk of the range), nothing follows.
//! - offers request (swarming, see `swarm.rs`), downloader → provider: a request with
//!   `count = 0` and `first = 1` (`first = 0` from older askers, which do not know answer
//!   `4`), then `n: u32 | bits[⌈n/8⌉]`, the chunks the asker does not need from
//!   this provider: verified, or being fetched from another (`n` the archive's chunk count, ≤ [`MAX_OFFER_CHUNKS`]; bit `i` is bit `i % 8` of byte `i / 8`);
//!   answered by `3 | n: u32 | bits[⌈n/8⌉] | k: u8 | k × (len: u8 | peer id[len])`: the
//!   chunks the provider offers the asker, and up to `swarm::MAX_NAMED` other peers that
//!   asked it about the archive lately (peer exchange). The bits are
//!   (a node still downloading: those it has verified, less those it is sending to
//!   another peer at the moment when any the asker lacks remain, `swarm::relay_offer`;
//!   a whole-archive holder: a window
//!   of those the asker lacks that it handed out the fewest times, i.e. super-seeding —
//!   all it lacks when nobody else asked lately), or by `2`. A whole-archive holder
//!   answers a window held for the asker with `4` instead of `3` (same layout) when the
//!   request had `first ≥ 1`: the asker then asks all of it at once, past its caps
//!   (`Schedule::take_window`). An asker that wants
//!   something and holds no upload slot (`choke.rs`) is offered nothing this time.
//!   With `first = 2` (news) a node still downloading holds the request until it has
//!   verified a chunk the asker lacks and was not told of in its last `5` answer to it,
//!   its download ends, or `swarm::NEWS_WAIT` passes; with `first = 3` (an asker's first
//!   request of a download, which must be answered at once) it answers at once. To
//!   either it answers `5` (layout of `3`) when it offers as a partial holder: the asker
//!   asks again at once, with `first = 2`. It gets `3` while choked, and from a
//!   whole-archive holder, and asks again at its next refresh. The stream then takes
//!   the next request.
//!
//! A provider that cannot take a stream (libp2p-stream drops inbound streams while the
//! acceptor is busy) resets it: a range that fails before its first chunk is retried on a
//! new stream a few times ([`OPEN_ATTEMPTS`]) before it counts against the provider.
//!
//! Limits: the provider reads the first request within [`REQUEST_WAIT`], serves at most
//! [`MAX_SERVING`] streams at once and charges `count` tokens of the peer's chunk rate
//! limit before sending. The provider does not hash what it sends (the store verified
//! the file when it took it); the downloader checks every chunk against the signed chunk
//! list and judges the provider. Out of scope: the chunk list itself (one
//! `/ggen/rr` `ChunkList` request), and encryption (the connection's).

use std::collections::{HashMap, HashSet};
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream::{self, Stream, StreamExt};
use futures::{AsyncReadExt, AsyncWriteExt};
use libp2p::{PeerId, StreamProtocol};
use libp2p_stream::{Control, IncomingStreams, OpenStreamError};

use crate::net::client::Client;
use crate::net::inbound::remote_message;
use crate::net::ratelimit::refusal;
use crate::package::Blake3Hash;
use crate::store::partial::{Layout, MAX_CHUNK_SIZE};
use crate::store::Store;
use crate::tasks::Tasks;

/// The protocol id; a changed wire format gets a new one.
pub const CHUNKS_PROTOCOL: &str = "/ggen/chunks/1.0.0";
/// Length of a request.
pub const REQUEST_LEN: usize = 40;
/// Chunks one request may ask for.
pub const MAX_RANGE: u32 = 64;
/// Longest error text.
pub const MAX_ERROR_LEN: usize = 1024;
/// How long a provider waits for the request once a stream is open.
pub const REQUEST_WAIT: Duration = Duration::from_secs(10);
/// Requests (ranges, offers) a provider serves at once; more wait for a slot.
pub const MAX_SERVING: usize = 64;
/// Streams a provider keeps open at once, most of them waiting for their next request
/// (downloaders reuse them); more wait to be accepted. Idle streams hold no serving slot:
/// when they did, sixteen downloaders' pooled streams filled all 64 slots in the swarm
/// lab and a new range waited 10 s for one to time out.
pub const MAX_OPEN: usize = 1024;
/// How long a provider keeps a stream open for the next request after a range.
pub const IDLE_WAIT: Duration = Duration::from_secs(15);
/// How long a downloader keeps a finished stream for reuse (less than [`IDLE_WAIT`], so
/// a reused stream is not one the provider is about to close).
pub const POOL_KEEP: Duration = Duration::from_secs(5);
/// Streams tried for one range before its failure counts against the provider.
pub const OPEN_ATTEMPTS: u32 = 4;

const TAG_CHUNK: u8 = 0;
const TAG_ERROR: u8 = 1;
const TAG_NOT_FOUND: u8 = 2;
const TAG_OFFERS: u8 = 3;
const TAG_WINDOW: u8 = 4;
const TAG_OFFERS_AGAIN: u8 = 5;
/// `first` of an offers request from an asker that understands [`TAG_WINDOW`] answers.
const ASKS_WINDOWS: u32 = 1;
/// `first` of an offers request that may be held until there is news, from an asker that
/// understands [`TAG_WINDOW`] and [`TAG_OFFERS_AGAIN`] answers.
const ASKS_NEWS: u32 = 2;
/// `first` of an offers request from an asker that understands [`TAG_WINDOW`] and
/// [`TAG_OFFERS_AGAIN`] answers, to be answered at once.
const ASKS_NEWS_NOW: u32 = 3;
/// How a range answered "not found" reads: the downloader asked only chunks the provider
/// offered, so this answer is a broken promise (see `download.rs`).
pub(crate) const NOT_HELD: &str = "does not have chunk";
/// Largest chunk count an offers request may carry (16 TiB at 4 MiB chunks).
pub const MAX_OFFER_CHUNKS: u32 = 1 << 22;

pub(crate) fn protocol() -> StreamProtocol {
    StreamProtocol::new(CHUNKS_PROTOCOL)
}

/// One range request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RangeRequest {
    pub archive: Blake3Hash,
    pub first: u32,
    pub count: u32,
}

impl RangeRequest {
    pub fn encode(&self) -> [u8; REQUEST_LEN] {
        let mut out = [0u8; REQUEST_LEN];
        out[..32].copy_from_slice(self.archive.as_bytes());
        out[32..36].copy_from_slice(&self.first.to_be_bytes());
        out[36..].copy_from_slice(&self.count.to_be_bytes());
        out
    }

    pub fn decode(bytes: &[u8; REQUEST_LEN]) -> Self {
        let mut archive = [0u8; 32];
        archive.copy_from_slice(&bytes[..32]);
        let word = |at: usize| {
            u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        Self {
            archive: Blake3Hash(archive),
            first: word(32),
            count: word(36),
        }
    }
}

/// Peers with a chunk stream open either way, or closed less than [`LINGER`] ago:
/// connection pruning spares them, as it spares peers with a request in flight. The
/// linger covers the gap between one range and the next (no stream is open then, on
/// either side), so a download is never cut between ranges.
#[derive(Clone, Default)]
pub(crate) struct ActiveStreams(Arc<Mutex<HashMap<PeerId, (usize, std::time::Instant)>>>);

/// How long a peer stays busy after its last chunk stream closed.
pub(crate) const LINGER: Duration = Duration::from_secs(5);

/// Counts one open stream of a peer until dropped.
pub(crate) struct StreamGuard {
    active: ActiveStreams,
    peer: PeerId,
}

impl ActiveStreams {
    pub(crate) fn enter(&self, peer: PeerId) -> StreamGuard {
        let now = std::time::Instant::now();
        let mut map = self.lock();
        let entry = map.entry(peer).or_insert((0, now));
        entry.0 += 1;
        entry.1 = now;
        StreamGuard {
            active: self.clone(),
            peer,
        }
    }

    /// Peers with a stream open, or one closed within [`LINGER`]; forgets the others.
    pub(crate) fn peers(&self) -> HashSet<PeerId> {
        self.peers_at(std::time::Instant::now())
    }

    fn peers_at(&self, now: std::time::Instant) -> HashSet<PeerId> {
        let mut map = self.lock();
        map.retain(|_, (open, last)| *open > 0 || now.duration_since(*last) < LINGER);
        map.keys().copied().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PeerId, (usize, std::time::Instant)>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let mut map = self.active.lock();
        if let Some((open, last)) = map.get_mut(&self.peer) {
            *open = open.saturating_sub(1);
            *last = std::time::Instant::now();
        }
    }
}

/// What the provider does for one chunk (honest unless a test-support hostile rule says
/// otherwise).
#[cfg_attr(not(feature = "test-support"), allow(dead_code))]
enum Serve {
    Honest,
    Bytes(Vec<u8>),
    Refuse(String),
    /// Answer "not found" although the archive is held (a peer whose offers lie).
    NotHeld,
    Hold,
    Delay(Duration),
}

/// The test-support hook a hostile node answers chunks by; nothing in a real build.
#[cfg(feature = "test-support")]
pub(crate) type HostileHook = Option<crate::net::hostile::Hostile>;
#[cfg(not(feature = "test-support"))]
pub(crate) type HostileHook = Option<std::convert::Infallible>;

#[cfg(feature = "test-support")]
fn rule(hook: &HostileHook, archive: &Blake3Hash, index: u32) -> Serve {
    use crate::net::hostile::HostileAnswer;
    use crate::net::protocol::{Request, Response};
    let Some(hostile) = hook else {
        return Serve::Honest;
    };
    let request = Request::Chunk {
        archive: *archive,
        index,
    };
    match (hostile.0)(&request) {
        HostileAnswer::Honest => Serve::Honest,
        HostileAnswer::Respond(Response::Chunk { bytes }) => Serve::Bytes(bytes.into_vec()),
        HostileAnswer::Respond(Response::NotFound) => Serve::NotHeld,
        HostileAnswer::Respond(other) => Serve::Refuse(other.kind().into()),
        HostileAnswer::Hold => Serve::Hold,
        HostileAnswer::Delay(wait) => Serve::Delay(wait),
    }
}

#[cfg(not(feature = "test-support"))]
fn rule(_hook: &HostileHook, _archive: &Blake3Hash, _index: u32) -> Serve {
    Serve::Honest
}

/// The provider's side: accepts chunk streams until shutdown, each on its own task (at
/// most [`MAX_OPEN`] at once), serving at most [`MAX_SERVING`] requests at once.
pub(crate) async fn serve(
    mut incoming: IncomingStreams,
    store: Store,
    client: Client,
    active: ActiveStreams,
    tasks: Tasks,
    hook: HostileHook,
) {
    let open = Arc::new(tokio::sync::Semaphore::new(MAX_OPEN));
    let serving = Arc::new(tokio::sync::Semaphore::new(MAX_SERVING));
    loop {
        let next = tokio::select! {
            () = tasks.cancelled() => break,
            next = incoming.next() => next,
        };
        let Some((peer, stream)) = next else { break };
        let Ok(slot) = open.clone().acquire_owned().await else {
            break;
        };
        let (store, client, guard, tasks2, slots) = (
            store.clone(),
            client.clone(),
            active.enter(peer),
            tasks.clone(),
            serving.clone(),
        );
        let hook = hook.clone();
        tasks.spawn(async move {
            let rule = move |archive: &Blake3Hash, index: u32| rule(&hook, archive, index);
            tokio::select! {
                () = tasks2.cancelled() => {}
                result = serve_stream(peer, stream, &store, &client, &slots, rule) => {
                    if let Err(e) = result {
                        tracing::debug!("chunk stream to {peer}: {e}");
                    }
                }
            }
            drop((guard, slot));
        });
    }
}

async fn serve_stream(
    peer: PeerId,
    mut stream: libp2p::Stream,
    store: &Store,
    client: &Client,
    slots: &tokio::sync::Semaphore,
    rule: impl Fn(&Blake3Hash, u32) -> Serve,
) -> io::Result<()> {
    let mut wait = REQUEST_WAIT;
    loop {
        let mut bytes = [0u8; REQUEST_LEN];
        match tokio::time::timeout(wait, stream.read_exact(&mut bytes)).await {
            Err(_) if wait == IDLE_WAIT => return stream.close().await,
            Err(_) => return Err(io::Error::new(io::ErrorKind::TimedOut, "no request")),
            // The downloader closed its side after its last range.
            Ok(Err(e)) if wait == IDLE_WAIT && e.kind() == io::ErrorKind::UnexpectedEof => {
                return stream.close().await
            }
            Ok(result) => result?,
        }
        let request = RangeRequest::decode(&bytes);
        let more = if request.count == 0 {
            serve_offers(peer, &mut stream, request, store, client, slots).await?
        } else {
            let Ok(_slot) = slots.acquire().await else {
                return stream.close().await; // shutting down
            };
            serve_range(peer, &mut stream, request, store, client, &rule).await?
        };
        if !more {
            return stream.close().await;
        }
        wait = IDLE_WAIT;
    }
}

/// Answers one range; `Ok(false)` when the stream is done (refused, not found).
async fn serve_range(
    peer: PeerId,
    stream: &mut libp2p::Stream,
    request: RangeRequest,
    store: &Store,
    client: &Client,
    rule: &impl Fn(&Blake3Hash, u32) -> Serve,
) -> io::Result<bool> {
    let RangeRequest {
        archive,
        first,
        count,
    } = request;
    if count == 0 || count > MAX_RANGE {
        let why = format!("{count} chunks asked in one range, 1 to {MAX_RANGE} allowed");
        return refuse(stream, &why).await.map(|()| false);
    }
    let found = store
        .call(move |store| store.archive_for_serving(&archive))
        .await;
    let swarms = client.swarms();
    let (path, layout) = match found {
        Ok(Some((path, size, chunk_size))) => (path, whole_layout(size, chunk_size)),
        // Still downloading it: only chunks already verified are ever served.
        Ok(None) => match swarms.partial(&archive) {
            Some(partial) if swarms.holds_range(&archive, first, count) => {
                (partial.path, partial.layout)
            }
            _ => {
                stream.write_all(&[TAG_NOT_FOUND]).await?;
                return Ok(false);
            }
        },
        Err(e) => return refuse(stream, &remote_message(&e)).await.map(|()| false),
    };
    let end = u64::from(first) + u64::from(count);
    if end > u64::from(layout.count) {
        let why = format!(
            "chunks {first}..{end} asked, the archive has {} chunks",
            layout.count
        );
        return refuse(stream, &why).await.map(|()| false);
    }
    if let Err(wait) = client
        .admit_chunks(peer, u64::from(count) * u64::from(layout.chunk_size))
        .await
    {
        return refuse(stream, &refusal(wait)).await.map(|()| false);
    }
    let file = tokio::task::spawn_blocking(move || std::fs::File::open(path))
        .await
        .map_err(io::Error::other)??;
    let file = Arc::new(file);
    // One chunk read ahead on the blocking pool while the previous one is sent.
    let read = |index: u32| {
        let file = file.clone();
        let (offset, len) = (layout.offset(index), layout.len(index) as usize);
        tokio::task::spawn_blocking(move || {
            let mut buffer = vec![0u8; len];
            read_exact_at(&file, &mut buffer, offset).map(|()| buffer)
        })
    };
    // On their way to this peer from now: not handed to another meanwhile (a seeder),
    // not offered to another meanwhile (a node still downloading, `swarm::relay_offer`).
    let now = std::time::Instant::now();
    let mut sending = swarms.sending(archive, peer, first, first + count, now);
    let last = first + count - 1;
    tracing::debug!(%peer, first, count, "serving range");
    let _slot = swarms.serving(peer);
    let mut next = Some(read(first));
    for index in first..=last {
        let Some(reading) = next.take() else { break };
        let chunk = match reading.await.map_err(io::Error::other)? {
            Ok(chunk) => chunk,
            Err(e) => {
                tracing::debug!("serving chunk {index} of {archive}: {e}");
                let why = "this node's copy of the archive is unreadable; try another provider";
                return refuse(stream, why).await.map(|()| false);
            }
        };
        if index < last {
            next = Some(read(index + 1));
        }
        let chunk = match rule(&archive, index) {
            Serve::Honest => chunk,
            Serve::Bytes(bytes) => bytes,
            Serve::Refuse(why) => return refuse(stream, &why).await.map(|()| false),
            Serve::NotHeld => {
                stream.write_all(&[TAG_NOT_FOUND]).await?;
                return Ok(false);
            }
            Serve::Hold => std::future::pending().await,
            Serve::Delay(wait) => {
                tokio::time::sleep(wait).await;
                chunk
            }
        };
        // Its turn on the upload link (at once without `upload_limit`).
        client.pace(&archive, index, chunk.len()).await;
        let mut header = [0u8; 9];
        header[0] = TAG_CHUNK;
        header[1..5].copy_from_slice(&index.to_be_bytes());
        header[5..].copy_from_slice(&(chunk.len() as u32).to_be_bytes());
        stream.write_all(&header).await?;
        stream.write_all(&chunk).await?;
        client.served(&archive, chunk.len() as u64);
        sending.written(index, std::time::Instant::now());
        tracing::debug!(%peer, index, "chunk written");
    }
    stream.flush().await?;
    Ok(true)
}

fn whole_layout(size: u64, chunk_size: u32) -> Layout {
    Layout {
        size,
        chunk_size,
        count: size.div_ceil(u64::from(chunk_size.max(1))).max(1) as u32,
    }
}

/// Answers an offers request (the asker's bits follow the request on the stream). A
/// request held for news holds no serving slot while it waits.
async fn serve_offers(
    peer: PeerId,
    stream: &mut libp2p::Stream,
    request: RangeRequest,
    store: &Store,
    client: &Client,
    slots: &tokio::sync::Semaphore,
) -> io::Result<bool> {
    let archive = request.archive;
    let windows = request.first >= ASKS_WINDOWS;
    // Only a request from an asker that knows `5` may get it; only `2` is held.
    let news = request.first >= ASKS_NEWS;
    let mut n = [0u8; 4];
    stream.read_exact(&mut n).await?;
    let n = u32::from_be_bytes(n);
    if n > MAX_OFFER_CHUNKS {
        let why = format!("{n} chunks in an offers request, at most {MAX_OFFER_CHUNKS}");
        return refuse(stream, &why).await.map(|()| false);
    }
    let mut bits = vec![0u8; (n as usize).div_ceil(8)];
    stream.read_exact(&mut bits).await?;
    let theirs = super::swarm::unpack(&bits, n);
    if request.first == ASKS_NEWS {
        client.swarms().news_for(&archive, peer, &theirs).await;
    }
    let Ok(_slot) = slots.acquire().await else {
        return Ok(false); // shutting down
    };
    let found = store
        .call(move |store| store.archive_for_serving(&archive))
        .await;
    let whole = match found {
        Ok(Some((_, size, chunk_size))) => Some(whole_layout(size, chunk_size)),
        Ok(None) => None,
        Err(e) => return refuse(stream, &remote_message(&e)).await.map(|()| false),
    };
    let swarms = client.swarms();
    let others = swarms.asked(archive, peer, &theirs);
    let alone = others.is_empty();
    let lacks = |i: usize| !theirs.get(i).copied().unwrap_or(false);
    // Still downloading it: what it holds (one copy of the bits for both uses below).
    let partial = whole.is_none().then(|| swarms.partial(&archive)).flatten();
    let wanted = match (&whole, &partial) {
        (Some(layout), _) => (0..layout.count as usize).any(lacks),
        (None, Some(p)) => p.have.iter().enumerate().any(|(i, &h)| h && lacks(i)),
        (None, None) => false,
    };
    // Upload slots: a peer that wants something gets it only while it holds a slot.
    let fetch = !wanted || swarms.may_fetch(peer, whole.is_some());
    tracing::debug!(%peer, wanted, fetch, "offers asked");
    // A window held for this asker (not everything, offered to a lone asker), to an asker
    // that knows what that means.
    let window = windows && fetch && wanted && whole.is_some() && !alone;
    // What the asker is told this node holds, for news (a partial holder's answer).
    let mut told = None;
    let offered = match (fetch, whole, partial) {
        (false, whole, partial) => {
            let count = (whole.map(|l| l.count)).or(partial.map(|p| p.layout.count));
            vec![false; count.unwrap_or(0) as usize]
        }
        (true, None, Some(partial)) => {
            let sending = swarms.sending_now(&archive, partial.have.len());
            let offered = super::swarm::relay_offer(&partial.have, &theirs, &sending);
            told = Some(partial.have);
            offered
        }
        (true, None, None) => Vec::new(),
        (true, Some(_), _) => swarms.offers(&archive, whole, &theirs, peer, alone),
    };
    if offered.is_empty() {
        stream.write_all(&[TAG_NOT_FOUND]).await?;
        return Ok(true);
    }
    // Offered as a partial holder, to an asker that may wait: it comes back at once.
    let again = news && fetch && whole.is_none();
    if again {
        swarms.told(&archive, peer, told.as_deref().unwrap_or(&offered));
    }
    let tag = match (window, again) {
        (true, _) => TAG_WINDOW,
        (false, true) => TAG_OFFERS_AGAIN,
        (false, false) => TAG_OFFERS,
    };
    let mut frame = vec![tag];
    frame.extend_from_slice(&(offered.len() as u32).to_be_bytes());
    frame.extend_from_slice(&super::swarm::pack(&offered));
    frame.push(others.len() as u8);
    for other in others {
        let bytes = other.to_bytes();
        frame.push(bytes.len() as u8);
        frame.extend_from_slice(&bytes);
    }
    stream.write_all(&frame).await?;
    stream.flush().await?;
    Ok(true)
}

async fn refuse(stream: &mut libp2p::Stream, why: &str) -> io::Result<()> {
    let mut text = why.as_bytes();
    if text.len() > MAX_ERROR_LEN {
        text = &text[..MAX_ERROR_LEN];
    }
    let mut frame = Vec::with_capacity(3 + text.len());
    frame.push(TAG_ERROR);
    frame.extend_from_slice(&(text.len() as u16).to_be_bytes());
    frame.extend_from_slice(text);
    stream.write_all(&frame).await
}

#[cfg(unix)]
fn read_exact_at(file: &std::fs::File, buffer: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buffer, offset)
}

#[cfg(not(unix))]
fn read_exact_at(file: &std::fs::File, buffer: &mut [u8], offset: u64) -> io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = file;
    file.seek(SeekFrom::Start(offset))?;
    file.read_exact(buffer)
}

/// Why a range could not be fetched over a stream.
#[derive(Debug)]
pub(crate) enum OpenError {
    /// The peer does not speak [`CHUNKS_PROTOCOL`] (an older node): ask chunk by chunk.
    Unsupported,
    Other(String),
}

/// A finished stream and when it finished.
type Pooled = (libp2p::Stream, std::time::Instant);

/// Finished streams of each provider, kept for [`POOL_KEEP`] so the next range to that
/// provider skips opening (and negotiating) a new one.
#[derive(Clone, Default)]
pub(crate) struct StreamPool(Arc<Mutex<HashMap<PeerId, Vec<Pooled>>>>);

impl StreamPool {
    fn take(&self, peer: &PeerId) -> Option<libp2p::Stream> {
        let now = std::time::Instant::now();
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let streams = map.get_mut(peer)?;
        streams.retain(|(_, since)| now.duration_since(*since) < POOL_KEEP);
        let stream = streams.pop().map(|(stream, _)| stream);
        if streams.is_empty() {
            map.remove(peer);
        }
        stream
    }

    fn put(&self, peer: PeerId, stream: libp2p::Stream) {
        let now = std::time::Instant::now();
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let streams = map.entry(peer).or_default();
        streams.retain(|(_, since)| now.duration_since(*since) < POOL_KEEP);
        streams.push((stream, now));
    }
}

/// Why reading a frame failed: the provider's own answer, or the stream broke.
enum FrameError {
    Answer(String),
    Transport(String),
}

impl FrameError {
    fn into_message(self) -> String {
        match self {
            Self::Answer(message) | Self::Transport(message) => message,
        }
    }
}

/// Sends `request` on a pooled stream of `peer` or a new one and reads its first chunk.
/// A stream that breaks before that chunk (the provider could not take it, or closed a
/// pooled one) is replaced, up to [`OPEN_ATTEMPTS`] new streams with a short backoff.
pub(crate) async fn open_range(
    mut control: Control,
    pool: &StreamPool,
    peer: PeerId,
    request: RangeRequest,
) -> Result<(libp2p::Stream, Vec<u8>), OpenError> {
    let begun = std::time::Instant::now();
    if let Some(mut stream) = pool.take(&peer) {
        if stream.write_all(&request.encode()).await.is_ok() {
            match read_frame(&mut stream, request.first).await {
                Ok(bytes) => {
                    tracing::debug!(%peer, pooled = true, wait_ms = ms(begun), "first chunk");
                    return Ok((stream, bytes));
                }
                Err(FrameError::Answer(e)) => return Err(OpenError::Other(e)),
                Err(FrameError::Transport(_)) => {} // closed meanwhile: open a new one
            }
        }
    }
    let mut last = String::new();
    for attempt in 0..OPEN_ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(20 << attempt)).await;
        }
        let mut stream = match control.open_stream(peer, protocol()).await {
            Ok(stream) => stream,
            Err(OpenStreamError::UnsupportedProtocol(_)) => return Err(OpenError::Unsupported),
            Err(e) => {
                last = e.to_string();
                continue;
            }
        };
        if let Err(e) = stream.write_all(&request.encode()).await {
            last = format!("sending the range request: {e}");
            continue;
        }
        match read_frame(&mut stream, request.first).await {
            Ok(bytes) => {
                tracing::debug!(%peer, pooled = false, wait_ms = ms(begun), "first chunk");
                return Ok((stream, bytes));
            }
            Err(FrameError::Answer(e)) => return Err(OpenError::Other(e)),
            Err(FrameError::Transport(e)) => last = e,
        }
    }
    Err(OpenError::Other(format!(
        "{last} ({OPEN_ATTEMPTS} streams tried)"
    )))
}

/// What a peer answered to an offers request: the chunks it offers (`None`: a peer
/// without the swarm extension, taken as offering every chunk) and the other peers it
/// named.
pub(crate) type Offered = (super::Offer, Vec<PeerId>);

/// Asks `peer` which chunks of `archive` it offers, telling it ours (`mine`); with
/// `wait`, a peer still downloading may hold the request until it has news. Either way
/// the asker understands `5` (ask again at once, with `wait`).
pub(crate) async fn ask_offers(
    mut control: Control,
    pool: &StreamPool,
    peer: PeerId,
    archive: Blake3Hash,
    mine: &[bool],
    wait: bool,
) -> Result<Offered, String> {
    let request = RangeRequest {
        archive,
        first: if wait { ASKS_NEWS } else { ASKS_NEWS_NOW },
        count: 0,
    };
    let mut message = request.encode().to_vec();
    message.extend_from_slice(&(mine.len() as u32).to_be_bytes());
    message.extend_from_slice(&super::swarm::pack(mine));
    let mut last = String::new();
    for attempt in 0..2 {
        let begun = std::time::Instant::now();
        let pooled = if attempt == 0 { pool.take(&peer) } else { None };
        let was_pooled = pooled.is_some();
        let mut stream = match pooled {
            Some(stream) => stream,
            None => match control.open_stream(peer, protocol()).await {
                Ok(stream) => stream,
                Err(OpenStreamError::UnsupportedProtocol(_)) => {
                    return Ok((super::Offer::default(), Vec::new()))
                }
                Err(e) => return Err(e.to_string()),
            },
        };
        let open_ms = ms(begun);
        let sent = std::time::Instant::now();
        if let Err(e) = stream.write_all(&message).await {
            last = format!("sending the offers request: {e}");
            continue;
        }
        let mut tag = [0u8; 1];
        if let Err(e) = stream.read_exact(&mut tag).await {
            last = format!("reading the offers: {e}");
            continue;
        }
        let answer_ms = ms(sent);
        tracing::debug!(%peer, pooled = was_pooled, open_ms, answer_ms, "offers answered");
        let offered = match tag[0] {
            tag @ (TAG_OFFERS | TAG_WINDOW | TAG_OFFERS_AGAIN) => {
                let mut n = [0u8; 4];
                stream.read_exact(&mut n).await.map_err(|e| e.to_string())?;
                let n = u32::from_be_bytes(n);
                if n as usize != mine.len() {
                    return Err(format!(
                        "offered {n} chunks of an archive of {}",
                        mine.len()
                    ));
                }
                let mut bits = vec![0u8; (n as usize).div_ceil(8)];
                stream
                    .read_exact(&mut bits)
                    .await
                    .map_err(|e| e.to_string())?;
                let named = read_named(&mut stream, peer).await?;
                let offer = super::Offer {
                    chunks: Some(super::swarm::unpack(&bits, n)),
                    window: tag == TAG_WINDOW,
                    again: tag == TAG_OFFERS_AGAIN,
                };
                (offer, named)
            }
            TAG_NOT_FOUND => {
                let offer = super::Offer {
                    chunks: Some(vec![false; mine.len()]),
                    ..super::Offer::default()
                };
                (offer, Vec::new())
            }
            TAG_ERROR => return Err("refused the offers request".into()),
            other => return Err(format!("sent frame type {other} to an offers request")),
        };
        pool.put(peer, stream);
        return Ok(offered);
    }
    Err(last)
}

/// Milliseconds since `since` (the lab's debug lines: where a chunk's time goes).
fn ms(since: std::time::Instant) -> u64 {
    since.elapsed().as_millis() as u64
}

/// The peers an offers answer names (peer exchange), `from` itself left out.
async fn read_named(stream: &mut libp2p::Stream, from: PeerId) -> Result<Vec<PeerId>, String> {
    let io = |e: io::Error| format!("reading the offers: {e}");
    let mut k = [0u8; 1];
    stream.read_exact(&mut k).await.map_err(io)?;
    if usize::from(k[0]) > super::swarm::MAX_NAMED {
        return Err(format!(
            "named {} peers, at most {}",
            k[0],
            super::swarm::MAX_NAMED
        ));
    }
    let mut named = Vec::new();
    for _ in 0..k[0] {
        let mut len = [0u8; 1];
        stream.read_exact(&mut len).await.map_err(io)?;
        let mut id = vec![0u8; usize::from(len[0])];
        stream.read_exact(&mut id).await.map_err(io)?;
        match PeerId::from_bytes(&id) {
            Ok(other) if other != from => named.push(other),
            Ok(_) => {}
            Err(_) => return Err("named a malformed peer id".into()),
        }
    }
    Ok(named)
}

/// The downloader's side: the chunks of `request` after its first (which
/// [`open_range`] read) as they arrive, in order. An error ends the range; a finished
/// stream goes back to `pool`.
pub(crate) fn read_range(
    stream: libp2p::Stream,
    request: RangeRequest,
    pool: StreamPool,
    peer: PeerId,
    guard: StreamGuard,
) -> impl Stream<Item = Result<(u32, Vec<u8>), String>> + Send + 'static {
    let end = request.first + request.count;
    stream::unfold(Some((stream, request.first + 1, guard)), move |state| {
        let pool = pool.clone();
        async move {
            let (mut stream, index, guard) = state?;
            if index >= end {
                pool.put(peer, stream);
                drop(guard);
                return None;
            }
            match read_frame(&mut stream, index).await {
                Ok(bytes) => Some((Ok((index, bytes)), Some((stream, index + 1, guard)))),
                Err(e) => Some((Err(e.into_message()), None)),
            }
        }
    })
}

async fn read_frame(stream: &mut libp2p::Stream, index: u32) -> Result<Vec<u8>, FrameError> {
    let io = |e: io::Error| {
        FrameError::Transport(match e.kind() {
            io::ErrorKind::UnexpectedEof => format!("stream ended before chunk {index}"),
            _ => format!("stream broke before chunk {index}: {e}"),
        })
    };
    let mut tag = [0u8; 1];
    stream.read_exact(&mut tag).await.map_err(io)?;
    match tag[0] {
        TAG_CHUNK => {
            let mut header = [0u8; 8];
            stream.read_exact(&mut header).await.map_err(io)?;
            let got = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
            let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
            if got != index {
                return Err(FrameError::Answer(format!(
                    "sent chunk {got} where chunk {index} was due"
                )));
            }
            if len > MAX_CHUNK_SIZE {
                return Err(FrameError::Answer(format!(
                    "announced a chunk of {len} bytes, over the {MAX_CHUNK_SIZE}-byte limit"
                )));
            }
            let mut bytes = vec![0u8; len as usize];
            stream.read_exact(&mut bytes).await.map_err(io)?;
            Ok(bytes)
        }
        TAG_ERROR => {
            let mut len = [0u8; 2];
            stream.read_exact(&mut len).await.map_err(io)?;
            let len = usize::from(u16::from_be_bytes(len)).min(MAX_ERROR_LEN);
            let mut text = vec![0u8; len];
            stream.read_exact(&mut text).await.map_err(io)?;
            Err(FrameError::Answer(format!(
                "refused chunk {index}: {}",
                String::from_utf8_lossy(&text)
            )))
        }
        TAG_NOT_FOUND => Err(FrameError::Answer(format!("{NOT_HELD} {index}"))),
        other => Err(FrameError::Answer(format!(
            "sent frame type {other}, not a chunk"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        let request = RangeRequest {
            archive: Blake3Hash::of(b"archive"),
            first: 7,
            count: MAX_RANGE,
        };
        let bytes = request.encode();
        assert_eq!(bytes.len(), REQUEST_LEN);
        assert_eq!(RangeRequest::decode(&bytes), request);
    }

    #[test]
    fn active_streams_count_per_peer() {
        let active = ActiveStreams::default();
        let peer = PeerId::random();
        let a = active.enter(peer);
        let b = active.enter(peer);
        assert_eq!(active.peers(), HashSet::from([peer]));
        drop(a);
        assert_eq!(active.peers(), HashSet::from([peer]));
        drop(b);
        // Busy for LINGER after the last stream closed, then forgotten.
        assert_eq!(active.peers(), HashSet::from([peer]));
        let later = std::time::Instant::now() + LINGER;
        assert!(active.peers_at(later).is_empty());
    }
}
