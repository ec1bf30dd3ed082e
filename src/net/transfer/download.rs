//! The async driver of one download: fetches and checks the chunk list, then keeps the
//! scheduler's ranges in flight (streamed back to back), hands each chunk as it arrives
//! to a blocking worker that verifies and writes it, and cancels what a stalled or
//! dropped provider still owes.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use std::collections::BTreeSet;
use std::time::Duration;

use futures::future::{AbortHandle, BoxFuture};
use futures::stream::{Abortable, BoxStream, FuturesUnordered, SelectAll, StreamExt};

use super::stream::MAX_RANGE;
use super::{ChunkSource, Failure, ListError, Schedule, TransferConfig, TransferError, Verdict};
use crate::package::digest::chunks_root;
use crate::package::digest::ArchiveDigest;
use crate::package::{ArchiveInfo, Blake3Hash};
use crate::store::partial::{check_chunk_list, Layout, PartialError, PartialFile};
use crate::store::Store;

/// Downloads `info`'s archive from `providers` with the default [`TransferConfig`] into
/// the `store`'s partial directory and returns the path of the complete, fully verified file (BLAKE3,
/// SHA-256 and size match `info`), ready for `Store::put_archive_file`.
/// `progress(bytes_done, total)` is called at the start and after each chunk.
pub async fn download<S: ChunkSource>(
    source: &S,
    store: &Store,
    info: &ArchiveInfo,
    providers: Vec<S::Peer>,
    progress: impl Fn(u64, u64) + Send + Sync,
) -> Result<PathBuf, TransferError> {
    download_with(
        source,
        store,
        info,
        providers,
        TransferConfig::default(),
        progress,
    )
    .await
}

/// [`download`] with explicit caps and deadlines.
pub async fn download_with<S: ChunkSource>(
    source: &S,
    store: &Store,
    info: &ArchiveInfo,
    providers: Vec<S::Peer>,
    config: TransferConfig,
    progress: impl Fn(u64, u64) + Send + Sync,
) -> Result<PathBuf, TransferError> {
    let (path, _) = download_verified(source, store, info, providers, config, progress).await?;
    Ok(path)
}

/// [`download_with`], also returning the digest the final check computed (whole-file
/// hashes and chunk list), so the caller can store the file without hashing it again.
pub async fn download_verified<S: ChunkSource>(
    source: &S,
    store: &Store,
    info: &ArchiveInfo,
    providers: Vec<S::Peer>,
    config: TransferConfig,
    progress: impl Fn(u64, u64) + Send + Sync,
) -> Result<(PathBuf, ArchiveDigest), TransferError> {
    let archive = info.blake3;
    let layout = Layout::of(info).map_err(|reason| TransferError::BadRecord { archive, reason })?;

    // The chunk list: saved by an earlier attempt (re-checked), or from the first
    // provider whose list matches the record's root.
    let mut wrong_list = Vec::new();
    let saved = {
        let info = info.clone();
        store
            .call(move |store| Ok::<_, TransferError>(store.saved_chunk_list(&info)))
            .await?
    };
    let chunks = match saved {
        Some(chunks) => chunks,
        None => fetch_chunk_list(source, info, &providers, &config, &mut wrong_list).await?,
    };
    let chunks: Arc<[Blake3Hash]> = chunks.into();

    let (info_owned, list) = (info.clone(), chunks.clone());
    let partial = store
        .call(move |store| Ok::<_, TransferError>(store.partial(&info_owned, &list)))
        .await??;

    let mut schedule = Schedule::new(layout.count, partial.verified(), providers, config.limits);
    for (peer, why) in wrong_list {
        schedule.drop_provider(&peer, why);
    }
    let run = (config.limits.per_provider / 2).clamp(1, MAX_RANGE as usize) as u32;
    let mine: Vec<bool> = (0..layout.count).map(|i| schedule.is_verified(i)).collect();
    source.joined(&archive, partial.path(), layout, mine.clone());
    // What each provider offers, before the first request (a seeder offers only part).
    let first_offers =
        futures::future::join_all(schedule.active_providers().into_iter().map(|peer| {
            let mine = mine.clone();
            async move {
                let ask = source.offers(&peer, &archive, mine);
                let answer = tokio::time::timeout(config.refresh * 4, ask).await;
                (peer, answer)
            }
        }))
        .await;
    // Providers whose last offer gave something to ask for: asked again as soon as it is
    // used up (a seeder's window), not only every `refresh`.
    let mut fruitful: HashSet<S::Peer> = HashSet::new();
    // Providers that asked to be asked again at once (`Offer::again`): when each was
    // last so asked, and those waiting for [`AGAIN_GAP`] to pass.
    let mut asked_again: HashMap<S::Peer, std::time::Instant> = HashMap::new();
    let mut again_due: HashMap<S::Peer, std::time::Instant> = HashMap::new();
    for (peer, offered) in first_offers {
        match offered {
            Ok(Ok(offered)) => apply_offer(&mut schedule, &mut fruitful, &peer, offered),
            // Unreachable or silent (a stale provider record of a node that is gone):
            // nothing is asked of it until an offers request gets an answer, and each
            // failed one is a strike (three drop it, with the reason).
            Ok(Err(e)) => {
                schedule.set_have(&peer, Some(vec![false; layout.count as usize]));
                schedule.strike(&peer, format!("asking what it offers failed: {e}"));
            }
            Err(_) => {
                schedule.set_have(&peer, Some(vec![false; layout.count as usize]));
                schedule.strike(&peer, "no answer to what it offers");
            }
        }
    }
    let mut done = partial.verified_bytes();
    progress(done, layout.size);

    // Verification and writes run on one blocking worker behind a bounded queue, so the
    // network side keeps reading while chunks are hashed and written, and at most
    // VERIFY_QUEUE received chunks wait in memory.
    let (to_worker, from_driver) = tokio::sync::mpsc::channel(VERIFY_QUEUE);
    let (verdict_tx, mut verdicts) = tokio::sync::mpsc::unbounded_channel();
    let worker = {
        let chunks = chunks.clone();
        tokio::task::spawn_blocking(move || {
            check_and_write(partial, layout, &chunks, from_driver, verdict_tx)
        })
    };
    let mut driver = Driver {
        source,
        archive,
        ranges: SelectAll::new(),
        open: HashMap::new(),
        checking: HashMap::new(),
        next_id: 0,
    };
    // One offers request to a provider, answered with the provider it went to.
    let ask_offers = |peer: S::Peer, mine: Vec<bool>| -> BoxFuture<'_, OffersAnswer<S::Peer>> {
        Box::pin(async move {
            let answer = source.offers(&peer, &archive, mine).await;
            (peer, answer)
        })
    };
    let mut asking: FuturesUnordered<BoxFuture<'_, OffersAnswer<S::Peer>>> =
        FuturesUnordered::new();
    let mut being_asked: HashSet<S::Peer> = HashSet::new();
    let mut finding: Option<BoxFuture<'_, Vec<S::Peer>>> = None;
    let mut next_refresh = now() + config.refresh;
    // The first look for other providers comes at once (peers named by the first offers).
    let mut next_discover = now();
    let mut last_progress = now();
    let mut last_pressure = super::schedule::Pressure::default();
    let ended = loop {
        if schedule.is_complete() {
            break Ok(());
        }
        if let Some(stuck) = schedule.stuck() {
            break Err(stuck);
        }
        let now_at = now();
        for (peer, first, count) in schedule.next_ranges(now_at, run) {
            driver.launch(peer, first, count);
        }
        if tracing::enabled!(tracing::Level::DEBUG) {
            // For the lab's timelines: what limits asking more (see `Schedule::pressure`).
            let pressure = schedule.pressure();
            if pressure != last_pressure {
                tracing::debug!(?pressure, "pressure");
                last_pressure = pressure;
            }
        }
        for (peer, index) in schedule.steal(now_at) {
            tracing::debug!(?peer, index, "chunk stolen from a slow provider");
            driver.launch(peer, index, 1);
        }
        let idle = driver.open.is_empty() && driver.checking.is_empty();
        if idle && schedule.unavailable() == 0 {
            // Unreachable while the schedule is sound (an active provider always gets
            // work); an error beats waiting forever.
            drop(to_worker);
            let _ = worker.await;
            source.left(&archive);
            return Err(TransferError::Task {
                archive,
                reason: format!("{} chunks missing but nothing to ask", schedule.missing()),
            });
        }
        if idle && now_at.saturating_duration_since(last_progress) >= config.starve {
            // Every missing chunk waits for someone to offer it, and nobody has.
            let missing = schedule.missing();
            for peer in schedule.active_providers() {
                schedule.drop_provider(
                    &peer,
                    format!(
                        "offered none of the {missing} missing chunks for {:?}",
                        config.starve
                    ),
                );
            }
            continue;
        }
        let refresh_all = now_at >= next_refresh;
        if refresh_all {
            next_refresh = now_at + config.refresh;
        }
        for peer in schedule.active_providers() {
            // A window used up and nearly drained: ask for the next one (asking sooner
            // would take a seeder's next window before peers had a chance to serve).
            let used_up = fruitful.contains(&peer)
                && schedule.offered_queued(&peer) == 0
                && schedule.in_flight_to(&peer) <= 2;
            if (refresh_all || used_up) && being_asked.insert(peer.clone()) {
                fruitful.remove(&peer);
                asking.push(ask_offers(peer.clone(), schedule.needless_from(&peer)));
            }
        }
        let due: Vec<S::Peer> = (again_due.iter())
            .filter(|(_, at)| **at <= now_at)
            .map(|(peer, _)| peer.clone())
            .collect();
        for peer in due {
            again_due.remove(&peer);
            if schedule.active_providers().contains(&peer) && being_asked.insert(peer.clone()) {
                asked_again.insert(peer.clone(), now_at);
                asking.push(ask_offers(peer.clone(), schedule.needless_from(&peer)));
            }
        }
        if now_at >= next_discover && finding.is_none() {
            next_discover = now_at + config.discover;
            finding = Some(Box::pin(source.discover(&archive)));
        }
        let wake = match (schedule.next_deadline(), schedule.next_steal()) {
            (Some(a), Some(b)) => Some(a.min(b.max(now_at + STEAL_RECHECK))),
            (a, b) => a.or(b.map(|b| b.max(now_at + STEAL_RECHECK))),
        };
        let wake = Some(wake.map_or(next_refresh, |w| w.min(next_refresh)));
        let wake = match (wake, again_due.values().min()) {
            (Some(w), Some(&a)) => Some(w.min(a)),
            (w, a) => w.or(a.copied()),
        };
        tokio::select! {
            Some((peer, offered)) = asking.next(), if !asking.is_empty() => {
                being_asked.remove(&peer);
                // Peers the answer named join at once (peer exchange).
                for named in source.named(&archive) {
                    if join_provider(&mut schedule, &named, layout.count) {
                        tracing::debug!(peer = ?named, "a named peer joined the download");
                        if being_asked.insert(named.clone()) {
                            asking.push(ask_offers(named.clone(), schedule.needless_from(&named)));
                        }
                    }
                }
                match offered {
                    Ok(offered) => {
                        let again = offered.again;
                        apply_offer(&mut schedule, &mut fruitful, &peer, offered);
                        // It holds the next ask until it has news: ask at once, but not
                        // more often than every AGAIN_GAP (a peer answering at once
                        // every time must not set the pace).
                        if again {
                            let due = asked_again.get(&peer).map(|at| *at + AGAIN_GAP);
                            again_due.insert(peer.clone(), due.unwrap_or_else(now));
                        }
                    }
                    Err(e) => {
                        tracing::debug!(?peer, "offers: {e}");
                        schedule.set_have(&peer, Some(vec![false; layout.count as usize]));
                        let cancel = schedule.strike(&peer, format!("asking what it offers failed: {e}"));
                        if !cancel.is_empty() {
                            driver.close_peer(&peer);
                        }
                    }
                }
            }
            found = async { finding.as_mut().expect("guarded").await }, if finding.is_some() => {
                finding = None;
                for peer in found {
                    if join_provider(&mut schedule, &peer, layout.count) {
                        tracing::debug!(?peer, "a provider joined the download");
                        if being_asked.insert(peer.clone()) {
                            asking.push(ask_offers(peer.clone(), schedule.needless_from(&peer)));
                        }
                    }
                }
            }
            Some((id, item)) = driver.ranges.next(), if !driver.ranges.is_empty() => {
                let Some(range) = driver.open.get_mut(&id) else { continue };
                let peer = range.peer.clone();
                match item {
                    Some(Ok((index, bytes))) => {
                        range.remaining.remove(&index);
                        schedule.on_progress(&peer, now());
                        if !schedule.is_outstanding_with(&peer, index) {
                            continue; // stolen meanwhile, or its provider dropped
                        }
                        let seq = driver.next_id();
                        driver.checking.insert(seq, (peer, index));
                        if to_worker.send((seq, index, bytes)).await.is_err() {
                            break Ok(()); // the worker ended: its verdict says why
                        }
                    }
                    Some(Err(mut e)) => {
                        let remaining: Vec<u32> = range.remaining.iter().copied().collect();
                        driver.close(id);
                        tracing::debug!(?peer, ?remaining, "range failed: {e}");
                        if e.starts_with(super::stream::NOT_HELD) {
                            // Spot check: it was asked only what it offered (or, without
                            // offers, what its provider record promised). Advertising
                            // chunks it does not serve costs reputation, not only a strike.
                            source.judged(&peer, Verdict::Stalled);
                            e = format!("offered chunks it then did not serve ({e})");
                        }
                        if let Some(cancel) =
                            schedule.on_chunks_failed(&peer, &remaining, Failure::Transport(e))
                        {
                            if !cancel.is_empty() || !schedule.active_providers().contains(&peer) {
                                driver.close_peer(&peer);
                            }
                        }
                    }
                    None => {
                        let remaining: Vec<u32> = range.remaining.iter().copied().collect();
                        driver.close(id);
                        if !remaining.is_empty() {
                            let why = format!("range ended with {} chunks unsent", remaining.len());
                            if schedule
                                .on_chunks_failed(&peer, &remaining, Failure::Transport(why))
                                .is_some()
                                && !schedule.active_providers().contains(&peer)
                            {
                                driver.close_peer(&peer);
                            }
                        }
                    }
                }
            }
            verdict = verdicts.recv() => {
                let Some((seq, checked)) = verdict else { break Ok(()) };
                let Some((peer, index)) = driver.checking.remove(&seq) else { continue };
                match checked {
                    Checked::Written => {
                        tracing::debug!(?peer, index, "chunk verified");
                        last_progress = now();
                        let verified = layout.len(index);
                        source.judged(&peer, Verdict::Good { bytes: verified });
                        // A chunk stolen in the end game can arrive twice: only its first
                        // copy counts as held (status's bytes downloaded is the archive).
                        if schedule.on_chunk_ok(&peer, index) {
                            source.held(&archive, index);
                            done += verified;
                            progress(done, layout.size);
                        }
                    }
                    Checked::Corrupt(why) => {
                        let failure = Failure::Corrupt(why);
                        tracing::debug!(?peer, index, ?failure, "chunk request failed");
                        source.judged(&peer, Verdict::Bad);
                        if schedule.on_chunk_failed(&peer, index, failure).is_some() {
                            driver.close_peer(&peer);
                        }
                    }
                    Checked::WriteFailed => break Ok(()),
                }
            }
            () = sleep_until(wake) => {
                let mut stalled = Vec::new();
                for (peer, _) in schedule.on_stalls(now()) {
                    if !stalled.contains(&peer) {
                        stalled.push(peer);
                    }
                }
                for peer in &stalled {
                    driver.close_peer(peer);
                    source.judged(peer, Verdict::Stalled);
                }
            }
        }
    };
    drop(driver);
    drop(to_worker);
    source.left(&archive);
    let (mut partial, failed) = worker.await.map_err(|e| TransferError::Task {
        archive,
        reason: e.to_string(),
    })?;
    if let Some(e) = failed {
        return Err(e.into());
    }
    match ended {
        Ok(()) if schedule.is_complete() => Ok(store
            .call(move |_| Ok::<_, TransferError>(partial.finish_with_digest()))
            .await??),
        Ok(()) => Err(TransferError::Task {
            archive,
            reason: "the chunk verification task ended early".into(),
        }),
        Err(stuck) => {
            let done_chunks = layout.count - stuck.missing;
            // Best effort: the error to report is that the download is stuck.
            if let Err(e) = store
                .call(move |_| Ok::<_, TransferError>(partial.sync()))
                .await?
            {
                tracing::warn!("saving download progress: {e}");
            }
            Err(TransferError::Stuck {
                archive,
                stuck: stuck.to_string(),
                missing: stuck.missing,
                done: done_chunks,
            })
        }
    }
}

/// A provider's offers answer applied: what it offers, a seeder's window asked whole,
/// and whether to ask it again as soon as that is used up (`fruitful`).
fn apply_offer<P: Clone + Eq + std::hash::Hash + std::fmt::Debug>(
    schedule: &mut Schedule<P>,
    fruitful: &mut HashSet<P>,
    peer: &P,
    offered: super::Offer,
) {
    let partial = offered.chunks.is_some();
    schedule.set_have(peer, offered.chunks);
    if offered.window {
        schedule.take_window(peer);
    }
    if partial && schedule.offered_queued(peer) > 0 {
        fruitful.insert(peer.clone());
    }
}

/// `peer` (found by discovery or named by another) joins the download, offering nothing
/// until its first offers answer; false when it was already known.
fn join_provider<P: Clone + Eq + std::hash::Hash + std::fmt::Debug>(
    schedule: &mut Schedule<P>,
    peer: &P,
    chunk_count: u32,
) -> bool {
    if schedule.knows(peer) {
        return false;
    }
    schedule.add_provider(peer.clone());
    schedule.set_have(peer, Some(vec![false; chunk_count as usize]));
    true
}

/// A provider's answer to "what do you offer".
type OffersAnswer<P> = (P, Result<super::Offer, String>);

/// Received chunks waiting for the verification worker, at most.
const VERIFY_QUEUE: usize = 4;
/// How soon to look again for work to steal when a candidate is not slow enough yet.
const STEAL_RECHECK: Duration = Duration::from_millis(50);
/// Least time between two asks of a provider that asked to be asked again at once
/// (`Offer::again`): an honest one holds the ask until a chunk arrives, one that answers
/// at once every time gets 20 asks a second, not as many as the round trip allows.
const AGAIN_GAP: Duration = Duration::from_millis(50);
/// Pauses before the chunk list is asked again of providers whose request failed (not
/// those that sent a wrong list or no answer in time): a request fails when the
/// connection closes under it, e.g. when the other side pruned it a moment before, and
/// a download with one known provider (the publisher, at a release) failed with it. In
/// the swarm lab that happened twice in about fifty rounds of sixteen.
const LIST_RETRY: [Duration; 2] = [Duration::from_millis(250), Duration::from_secs(1)];

/// The worker's word on one received chunk.
enum Checked {
    Written,
    Corrupt(String),
    /// Writing failed; the worker returns the error and stops.
    WriteFailed,
}

/// The verification worker (a blocking thread): checks each chunk against the chunk
/// list and writes the good ones; returns the partial file (and a write error, if any).
fn check_and_write(
    mut partial: PartialFile,
    layout: Layout,
    chunks: &[Blake3Hash],
    mut from_driver: tokio::sync::mpsc::Receiver<(u64, u32, Vec<u8>)>,
    verdicts: tokio::sync::mpsc::UnboundedSender<(u64, Checked)>,
) -> (PartialFile, Option<PartialError>) {
    while let Some((seq, index, bytes)) = from_driver.blocking_recv() {
        let (checked, failed) = match layout.check_chunk(chunks, index, &bytes) {
            Err(why) => (Checked::Corrupt(why), None),
            Ok(()) => match partial.write_chunk(index, &bytes) {
                Ok(()) => (Checked::Written, None),
                Err(e) => (Checked::WriteFailed, Some(e)),
            },
        };
        drop(bytes);
        let stop = failed.is_some();
        if verdicts.send((seq, checked)).is_err() || stop {
            return (partial, failed);
        }
    }
    (partial, None)
}

type RangeItem = Option<Result<(u32, Vec<u8>), String>>;

/// One streamed range in flight.
struct Range<P> {
    peer: P,
    /// Chunks not received yet.
    remaining: BTreeSet<u32>,
    abort: AbortHandle,
}

/// The network side of one download: open ranges, merged into one stream of items, and
/// the chunks handed to the verification worker.
struct Driver<'a, S: ChunkSource> {
    source: &'a S,
    archive: Blake3Hash,
    /// Every open range's items tagged with its id; `None` marks the end of a range.
    ranges: SelectAll<BoxStream<'a, (u64, RangeItem)>>,
    open: HashMap<u64, Range<S::Peer>>,
    /// Chunks at the worker: sequence number -> (provider, index).
    checking: HashMap<u64, (S::Peer, u32)>,
    next_id: u64,
}

impl<'a, S: ChunkSource> Driver<'a, S> {
    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn launch(&mut self, peer: S::Peer, first: u32, count: u32) {
        let id = self.next_id();
        let (abort, registration) = AbortHandle::new_pair();
        let items = self
            .source
            .chunk_range(peer.clone(), self.archive, first, count)
            .map(Some);
        let items = Abortable::new(items, registration)
            .chain(futures::stream::iter([None]))
            .map(move |item| (id, item));
        self.ranges.push(items.boxed());
        self.open.insert(
            id,
            Range {
                peer,
                remaining: (first..first + count).collect(),
                abort,
            },
        );
    }

    fn close(&mut self, id: u64) {
        if let Some(range) = self.open.remove(&id) {
            range.abort.abort();
        }
    }

    /// Cancels every range open with `peer` (dropped, stalled).
    fn close_peer(&mut self, peer: &S::Peer) {
        let ids: Vec<u64> = (self.open.iter())
            .filter(|(_, range)| range.peer == *peer)
            .map(|(&id, _)| id)
            .collect();
        for id in ids {
            self.close(id);
        }
    }
}

impl<S: ChunkSource> Drop for Driver<'_, S> {
    fn drop(&mut self) {
        for range in self.open.values() {
            range.abort.abort();
        }
    }
}

/// Asks every provider for the chunk list at once; the first list that matches `info`
/// wins and the other requests are cancelled. Providers that answered a wrong list by
/// then are returned in `wrong` (to be dropped); errors and timeouts leave a provider in
/// the running (its chunk requests will tell). When no list came, those whose request
/// failed on its way are asked again after each of [`LIST_RETRY`] (not those that
/// answered without one: "not found" is their word, and asking again only delays the
/// error when nobody has the archive).
async fn fetch_chunk_list<S: ChunkSource>(
    source: &S,
    info: &ArchiveInfo,
    providers: &[S::Peer],
    config: &TransferConfig,
    wrong: &mut Vec<(S::Peer, String)>,
) -> Result<Vec<Blake3Hash>, TransferError> {
    let archive = info.blake3;
    let mut asking: Vec<&S::Peer> = providers.iter().collect();
    let mut pauses = LIST_RETRY.iter();
    let mut tried = Vec::new();
    loop {
        let mut asks: FuturesUnordered<_> = (asking.iter().copied())
            .map(|peer| async move {
                let ask = source.chunk_list(peer, &archive);
                (peer, tokio::time::timeout(config.list_deadline, ask).await)
            })
            .collect();
        let mut failed = Vec::new();
        while let Some((peer, answer)) = asks.next().await {
            let why = match answer {
                Ok(Ok(chunks)) => match check_chunk_list(info, &chunks) {
                    Ok(()) => return Ok(chunks),
                    Err(reason) if chunks_root(&chunks) == info.chunks_root => {
                        return Err(TransferError::BadRecord { archive, reason });
                    }
                    Err(reason) => {
                        source.judged(peer, Verdict::Bad);
                        let why = format!("sent a wrong chunk list: {reason}");
                        wrong.push((peer.clone(), why.clone()));
                        why
                    }
                },
                Ok(Err(e)) => {
                    if let ListError::Failed(_) = e {
                        failed.push(peer);
                    }
                    e.to_string()
                }
                Err(_) => format!("no chunk list within {:?}", config.list_deadline),
            };
            tried.push((peer, why));
        }
        let Some(pause) = pauses.next().filter(|_| !failed.is_empty()) else {
            break;
        };
        tracing::debug!(%archive, failed = failed.len(), "asking for the chunk list again");
        tokio::time::sleep(*pause).await;
        // Those asked again are described by their last answer.
        tried.retain(|(peer, _)| !failed.contains(peer));
        asking = failed;
    }
    let mut tried: Vec<String> = (tried.into_iter())
        .map(|(peer, why)| format!("{peer:?}: {why}"))
        .collect();
    if tried.is_empty() {
        tried.push("no providers were given".to_string());
    }
    Err(TransferError::NoChunkList {
        archive,
        tried: tried.join("; "),
    })
}

/// The scheduler's clock is std `Instant`; reading tokio's keeps paused-time tests exact.
fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

async fn sleep_until(deadline: Option<std::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    use std::time::Duration;

    use rand::{RngCore, SeedableRng};

    use super::*;
    use crate::net::transfer::{Limits, Offer};
    use crate::package::digest::{ArchiveDigest, ArchiveHasher, CHUNK_SIZE};

    /// A store in a temp dir: its partial directory holds the downloads' state.
    fn temp_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        (dir, store)
    }

    /// A real tar + zstd archive of incompressible files, about `size` bytes, described
    /// with chunks of `chunk_size`.
    fn archive(size: usize, chunk_size: u32) -> (Arc<Vec<u8>>, ArchiveDigest) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut tar = tar::Builder::new(Vec::new());
        for n in 0..4 {
            let mut body = vec![0u8; size / 4];
            rng.fill_bytes(&mut body);
            let mut header = tar::Header::new_gnu();
            header.set_size(body.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(&mut header, format!("pack/file{n}.bin"), &body[..])
                .unwrap();
        }
        let bytes = zstd::encode_all(&tar.into_inner().unwrap()[..], 3).unwrap();
        let digest = ArchiveHasher::digest_reader_with(&bytes[..], chunk_size).unwrap();
        (Arc::new(bytes), digest)
    }

    #[derive(Debug, Clone, Copy)]
    enum Peer {
        Honest,
        /// Flips a byte of every chunk.
        Corrupt,
        /// Answers the list, never a chunk.
        Stall,
        /// Serves this many chunks, then errors.
        FailAfter(usize),
        /// Sends someone else's chunk list.
        WrongList,
    }

    /// In-memory providers of one archive: the peer side only.
    struct Peers {
        bytes: Arc<Vec<u8>>,
        digest: ArchiveDigest,
        peers: HashMap<u32, Peer>,
        list_requests: AtomicUsize,
        /// List requests still to fail as if the connection closed under them.
        list_failures: AtomicUsize,
        chunk_requests: Mutex<Vec<(u32, u32)>>,
        open: Arc<AtomicUsize>,
        max_open: AtomicUsize,
    }

    /// Counts a request as open until its future completes or is dropped (aborted).
    struct Open(Arc<AtomicUsize>);
    impl Drop for Open {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }

    impl Peers {
        fn new(bytes: Arc<Vec<u8>>, digest: ArchiveDigest, peers: &[(u32, Peer)]) -> Self {
            Self {
                bytes,
                digest,
                peers: peers.iter().copied().collect(),
                list_requests: AtomicUsize::new(0),
                list_failures: AtomicUsize::new(0),
                chunk_requests: Mutex::new(Vec::new()),
                open: Arc::new(AtomicUsize::new(0)),
                max_open: AtomicUsize::new(0),
            }
        }

        fn requests(&self) -> Vec<(u32, u32)> {
            self.chunk_requests.lock().unwrap().clone()
        }

        fn requests_to(&self, peer: u32) -> usize {
            self.requests().iter().filter(|r| r.0 == peer).count()
        }
    }

    impl ChunkSource for Peers {
        type Peer = u32;

        async fn chunk_list(
            &self,
            peer: &u32,
            archive: &Blake3Hash,
        ) -> Result<Vec<Blake3Hash>, ListError> {
            self.list_requests.fetch_add(1, Ordering::SeqCst);
            let failing = self.list_failures.load(Ordering::SeqCst);
            if failing > 0 {
                self.list_failures.store(failing - 1, Ordering::SeqCst);
                let why = "the connection closed before it answered";
                return Err(ListError::Failed(why.into()));
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
            match self.peers.get(peer) {
                _ if *archive != self.digest.info.blake3 => {
                    Err(ListError::Answered("does not have the chunk list".into()))
                }
                Some(Peer::WrongList) => Ok(vec![Blake3Hash::of(b"junk"); 3]),
                Some(_) => Ok(self.digest.chunks.clone()),
                None => Err(ListError::Failed("unknown peer".into())),
            }
        }

        async fn chunk(
            &self,
            peer: &u32,
            archive: &Blake3Hash,
            index: u32,
        ) -> Result<Vec<u8>, String> {
            let served = {
                let mut log = self.chunk_requests.lock().unwrap();
                log.push((*peer, index));
                log.iter().filter(|r| r.0 == *peer).count() - 1
            };
            let now_open = self.open.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_open.fetch_max(now_open, Ordering::SeqCst);
            let _open = Open(self.open.clone());
            tokio::time::sleep(Duration::from_millis(1 + u64::from(index % 3))).await;
            if *archive != self.digest.info.blake3 {
                return Err("not found".into());
            }
            let size = self.digest.info.chunk_size as usize;
            let start = index as usize * size;
            let end = (start + size).min(self.bytes.len());
            let mut bytes = self.bytes.get(start..end).ok_or("no such chunk")?.to_vec();
            match self.peers.get(peer) {
                Some(Peer::Honest) => Ok(bytes),
                Some(Peer::Corrupt) => {
                    bytes[0] ^= 0xff;
                    Ok(bytes)
                }
                Some(Peer::Stall) => std::future::pending().await,
                Some(Peer::FailAfter(n)) if served >= *n => Err("connection reset".into()),
                Some(Peer::FailAfter(_)) => Ok(bytes),
                Some(Peer::WrongList) | None => Err("not found".into()),
            }
        }
    }

    /// Real time: short enough for a quick test, long enough for a loaded machine.
    const DEADLINE: Duration = Duration::from_secs(1);

    fn config(per_provider: usize, total: usize) -> TransferConfig {
        TransferConfig {
            limits: Limits {
                per_provider,
                total,
                chunk_deadline: DEADLINE,
                max_strikes: 2,
                steal_after: DEADLINE,
            },
            list_deadline: DEADLINE,
            ..TransferConfig::default()
        }
    }

    /// A provider that offers everything and asks to be asked again at once, answering
    /// every offers request immediately (as no honest node does: it would hold it).
    struct Eager {
        peers: Peers,
        offers: AtomicUsize,
    }

    impl ChunkSource for Eager {
        type Peer = u32;

        async fn chunk_list(
            &self,
            peer: &u32,
            archive: &Blake3Hash,
        ) -> Result<Vec<Blake3Hash>, ListError> {
            self.peers.chunk_list(peer, archive).await
        }

        async fn chunk(
            &self,
            peer: &u32,
            archive: &Blake3Hash,
            index: u32,
        ) -> Result<Vec<u8>, String> {
            tokio::time::sleep(Duration::from_millis(20)).await;
            self.peers.chunk(peer, archive, index).await
        }

        async fn offers(
            &self,
            _peer: &u32,
            _archive: &Blake3Hash,
            mine: Vec<bool>,
        ) -> Result<Offer, String> {
            self.offers.fetch_add(1, Ordering::SeqCst);
            let chunks = Some(vec![true; mine.len()]);
            Ok(Offer {
                chunks,
                window: false,
                again: true,
            })
        }
    }

    #[tokio::test]
    async fn a_provider_asking_to_be_asked_again_at_once_is_asked_at_most_every_again_gap() {
        let (bytes, digest) = archive(2 << 20, 64 * 1024);
        let eager = Eager {
            peers: Peers::new(bytes.clone(), digest.clone(), &[(1, Peer::Honest)]),
            offers: AtomicUsize::new(0),
        };
        let (_dir, store) = temp_store();
        let begun = std::time::Instant::now();
        let path = download_with(
            &eager,
            &store,
            &digest.info,
            vec![1],
            config(2, 2),
            |_, _| {},
        )
        .await
        .unwrap();
        let took = begun.elapsed();
        assert_eq!(std::fs::read(&path).unwrap(), *bytes);
        let asked = eager.offers.load(Ordering::SeqCst);
        let allowed = (took.as_secs_f64() / AGAIN_GAP.as_secs_f64()).ceil() as usize + 2;
        assert!(
            took >= Duration::from_millis(300),
            "too quick to tell: {took:?}"
        );
        assert!(asked >= 2, "asked again: {asked}");
        assert!(
            asked <= allowed,
            "{asked} offers requests in {took:?}, at most {allowed}"
        );
    }

    #[tokio::test]
    async fn completes_despite_corrupt_stalling_and_failing_providers() {
        let (bytes, digest) = archive(7 << 20, CHUNK_SIZE);
        assert!(digest.chunks.len() >= 7, "{} chunks", digest.chunks.len());
        let peers = Peers::new(
            bytes.clone(),
            digest.clone(),
            &[
                (1, Peer::WrongList),
                (2, Peer::Stall),
                (3, Peer::Corrupt),
                (4, Peer::FailAfter(2)),
                (5, Peer::Honest),
            ],
        );
        let (_dir, store) = temp_store();
        let reports = Mutex::new(Vec::new());
        let path = download_with(
            &peers,
            &store,
            &digest.info,
            vec![1, 2, 3, 4, 5],
            config(2, 8),
            |done, total| reports.lock().unwrap().push((done, total)),
        )
        .await
        .unwrap();

        assert_eq!(std::fs::read(&path).unwrap(), *bytes);
        assert_eq!(
            peers.requests_to(1),
            0,
            "wrong chunk list: never asked for chunks"
        );
        assert!(
            peers.requests_to(2) <= 2,
            "stalled provider dropped at its first deadline"
        );
        assert_eq!(
            peers.requests_to(3),
            2,
            "corrupt provider dropped at its first bad chunk"
        );
        assert!(
            peers.requests_to(4) >= 3,
            "failing provider served, then failed"
        );
        assert!(peers.max_open.load(Ordering::SeqCst) <= 8);
        let reports = reports.into_inner().unwrap();
        assert_eq!(reports.first(), Some(&(0, digest.info.size)));
        assert_eq!(reports.last(), Some(&(digest.info.size, digest.info.size)));
        assert_eq!(reports.len(), digest.chunks.len() + 1);
        assert!(reports.windows(2).all(|w| w[0].0 < w[1].0));
        // Each chunk was accepted exactly once: one report per chunk.
        let names: Vec<_> = std::fs::read_dir(store.partial_dir()).unwrap().collect();
        assert_eq!(names.len(), 1, "only the finished file is left");
    }

    #[tokio::test]
    async fn all_bad_providers_fail_with_a_clear_error_and_keep_progress() {
        let (bytes, digest) = archive(3 << 20, 256 * 1024);
        let peers = Peers::new(
            bytes,
            digest.clone(),
            &[
                (1, Peer::Corrupt),
                (2, Peer::Stall),
                (3, Peer::FailAfter(3)),
            ],
        );
        let (_dir, store) = temp_store();
        let err = download_with(
            &peers,
            &store,
            &digest.info,
            vec![1, 2, 3],
            config(1, 3),
            |_, _| {},
        )
        .await
        .unwrap_err();
        let text = err.to_string();
        let TransferError::Stuck { missing, done, .. } = err else {
            panic!("{text}");
        };
        assert_eq!(done, 3, "{text}");
        assert_eq!(missing as usize, digest.chunks.len() - 3);
        for part in [
            "chunks missing and no provider left",
            "1: sent bad bytes: chunk",
            "2: stalled: no answer within 1s",
            "3: 2 failed requests, last: connection reset",
            "hint: retry later",
        ] {
            assert!(text.contains(part), "{part:?} not in {text}");
        }
        assert!(store
            .partial_dir()
            .join(format!("{}.part", digest.info.blake3))
            .exists());
        let have = store
            .partial_dir()
            .join(format!("{}.have", digest.info.blake3));
        assert!(have.exists(), "progress saved for the next attempt");
    }

    /// One known provider whose connection closes under the list request (pruned by the
    /// other side a moment before): asked again, the download goes on; one that keeps
    /// failing is asked three times in all, then the error names it.
    #[tokio::test]
    async fn a_failed_list_request_is_asked_again() {
        let (bytes, digest) = archive(1 << 20, 256 * 1024);
        let peers = Peers::new(bytes.clone(), digest.clone(), &[(1, Peer::Honest)]);
        peers.list_failures.store(2, Ordering::SeqCst);
        let (_dir, store) = temp_store();
        let path = download(&peers, &store, &digest.info, vec![1], |_, _| {})
            .await
            .unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), *bytes);
        assert_eq!(peers.list_requests.load(Ordering::SeqCst), 3);

        let (_dir, store) = temp_store();
        peers.list_failures.store(3, Ordering::SeqCst);
        let err = download(&peers, &store, &digest.info, vec![1], |_, _| {})
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("1: chunk list request failed: the connection closed"),
            "{err}"
        );
        assert_eq!(peers.list_requests.load(Ordering::SeqCst), 6);
    }

    /// A provider that answers "not found" has said its word: it is asked once, so the
    /// error comes without the retries' pauses.
    #[tokio::test]
    async fn a_provider_without_the_archive_is_asked_once() {
        let (bytes, digest) = archive(1 << 20, 256 * 1024);
        let peers = Peers::new(bytes, digest.clone(), &[(1, Peer::Honest)]);
        let mut other = digest.info.clone();
        other.blake3 = Blake3Hash::of(b"another archive");
        let (_dir, store) = temp_store();
        let err = download(&peers, &store, &other, vec![1], |_, _| {})
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("1: does not have the chunk list"), "{err}");
        assert_eq!(peers.list_requests.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn no_usable_chunk_list_is_a_clear_error() {
        let (bytes, digest) = archive(1 << 20, 256 * 1024);
        let peers = Peers::new(bytes, digest.clone(), &[(1, Peer::WrongList)]);
        let (_dir, store) = temp_store();
        let err = download(&peers, &store, &digest.info, vec![1, 9], |_, _| {})
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no provider sent a chunk list matching the record"),
            "{err}"
        );
        assert!(err.contains("1: sent a wrong chunk list"), "{err}");
        assert!(
            err.contains("9: chunk list request failed: unknown peer"),
            "{err}"
        );

        let err = download(&peers, &store, &digest.info, vec![], |_, _| {})
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("no providers were given"), "{err}");

        let bad = ArchiveInfo {
            chunk_size: 0,
            ..digest.info.clone()
        };
        let err = download(&peers, &store, &bad, vec![1], |_, _| {}).await;
        assert!(matches!(err, Err(TransferError::BadRecord { .. })));
    }

    #[tokio::test]
    async fn interrupted_download_resumes_with_only_missing_chunks() {
        let (bytes, digest) = archive(3 << 20, 64 * 1024);
        let count = digest.chunks.len();
        assert!(count > 40, "{count} chunks");
        let peers = Peers::new(
            bytes.clone(),
            digest.clone(),
            &[(1, Peer::Honest), (2, Peer::Honest)],
        );
        let (_dir, store) = temp_store();
        let reached = tokio::sync::Notify::new();
        let first = download_with(
            &peers,
            &store,
            &digest.info,
            vec![1, 2],
            config(2, 3),
            |done, _| {
                if done >= 20 * 64 * 1024 {
                    reached.notify_one();
                }
            },
        );
        tokio::select! {
            result = first => panic!("finished before the interruption: {result:?}"),
            () = reached.notified() => {}
        }
        // The dropped attempt may still be writing one chunk on a blocking thread.
        tokio::task::yield_now().await;
        let first_requests = peers.requests().len();
        assert!(first_requests < count);

        let resumed_at = Mutex::new(None);
        let path = download_with(
            &peers,
            &store,
            &digest.info,
            vec![1, 2],
            config(2, 3),
            |done, _| {
                resumed_at.lock().unwrap().get_or_insert(done);
            },
        )
        .await
        .unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), *bytes);
        let resumed_at = resumed_at.into_inner().unwrap().unwrap();
        let kept = (resumed_at / (64 * 1024)) as usize;
        assert!(kept >= 20, "only {kept} chunks kept");
        let second: Vec<u32> = peers.requests()[first_requests..]
            .iter()
            .map(|r| r.1)
            .collect();
        assert_eq!(
            second.len(),
            count - kept,
            "only missing chunks are fetched"
        );
        let mut unique = second.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), second.len());
        assert_eq!(
            peers.list_requests.load(Ordering::SeqCst),
            2,
            "the list is asked of each provider once, then reused from disk on resume"
        );
    }

    #[test]
    fn download_future_is_send() {
        fn is_send<T: Send>(_: &T) {}
        let (bytes, digest) = archive(1024, 256);
        let peers = Peers::new(bytes, digest.clone(), &[]);
        let (_dir, store) = temp_store();
        let future = download(&peers, &store, &digest.info, vec![], |_, _| {});
        is_send(&future);
    }
}
