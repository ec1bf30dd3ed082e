//! The event loop's one ledger of work waiting on the swarm: dials, requests, DHT puts,
//! provides, provider lookups and record lookups, each with its caller's reply. Every entry is answered
//! exactly once, on every outcome: success, failure, expiry, shutdown (drain), and at once
//! when its kind is over its cap. It knows nothing of the swarm; keys are the swarm's ids.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::time::{Duration, Instant};

use libp2p::kad::QueryId;
use libp2p::request_response::{InboundRequestId, OutboundRequestId};
use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::oneshot;

use super::protocol::Response;
use super::NetError;

/// Entries of one kind waiting at once; past it a new one is refused with
/// [`NetError::Overloaded`]. Requests are many (a download keeps several chunks in flight
/// per provider, a sync eight bucket listings per peer); the DHT work is rarer.
pub(crate) const MAX_DIALS: usize = 256;
pub(crate) const MAX_REQUESTS: usize = 4096;
pub(crate) const MAX_QUERIES: usize = 512;
/// Grace past the swarm's own timeout before the ledger gives up on an entry: the
/// swarm normally answers first; this catches an event that never comes.
const EXPIRY_SLACK: Duration = Duration::from_secs(2);

/// One waiting caller: how to answer it when its work fails or expires.
pub(crate) trait Entry {
    fn fail(self, error: NetError);

    /// The work outlived its deadline. By default a timeout error.
    fn expire(self, error: NetError)
    where
        Self: Sized,
    {
        self.fail(error);
    }
}

impl<T> Entry for oneshot::Sender<Result<T, NetError>> {
    fn fail(self, error: NetError) {
        let _ = self.send(Err(error));
    }
}

/// A dial waiting for its connection.
pub(crate) struct Dial {
    pub addr: Multiaddr,
    pub reply: oneshot::Sender<Result<PeerId, NetError>>,
}

impl Dial {
    pub fn connected(self, peer: PeerId) {
        let _ = self.reply.send(Ok(peer));
    }

    pub fn failed(self, reason: String) {
        let addr = self.addr;
        let _ = self.reply.send(Err(NetError::Dial { addr, reason }));
    }

    /// The transport could not connect: `error` in words (see `net::explain`).
    pub fn unreachable(self, error: &libp2p::swarm::DialError) {
        let reason = super::explain::dial_error(error);
        let addr = self.addr;
        let _ = self.reply.send(Err(NetError::Unreachable { addr, reason }));
    }

    /// The connection opened, but to a banned peer (the loop closes it).
    pub fn banned(self, peer: &PeerId) {
        let _ = self
            .reply
            .send(Err(super::policy::banned_dial(self.addr, peer)));
    }
}

impl Entry for Dial {
    fn fail(self, error: NetError) {
        let _ = self.reply.send(Err(error));
    }
}

/// One of our outbound requests, with the peer asked (pruning spares busy peers).
pub(crate) struct Outbound {
    pub peer: PeerId,
    pub reply: oneshot::Sender<Result<Response, NetError>>,
}

impl Outbound {
    pub fn answered(self, response: Response) {
        let _ = self.reply.send(Ok(response));
    }

    pub fn failed(self, reason: String) {
        let peer = self.peer;
        let _ = self.reply.send(Err(NetError::Request { peer, reason }));
    }
}

impl Entry for Outbound {
    fn fail(self, error: NetError) {
        let _ = self.reply.send(Err(error));
    }
}

/// What a provider lookup found, and how many DHT requests it took (the benchmarks set
/// that against log2 of the network size).
#[derive(Debug, Clone, Default)]
pub struct ProvidersFound {
    pub providers: Vec<PeerId>,
    /// Requests the Kademlia query sent (`QueryStats::num_requests`); with alpha
    /// parallel requests, the hops are at least this divided by alpha.
    pub dht_requests: u32,
}

/// A provider lookup: providers found so far, answered once one is found or the query
/// ends (see [`super::policy::lookup_done`]).
pub(crate) struct Lookup {
    pub found: HashSet<PeerId>,
    pub requests: u32,
    pub reply: oneshot::Sender<Result<ProvidersFound, NetError>>,
}

impl Lookup {
    pub fn new(reply: oneshot::Sender<Result<ProvidersFound, NetError>>) -> Self {
        Self {
            found: HashSet::new(),
            requests: 0,
            reply,
        }
    }

    /// Answers with what was found, `me` left out.
    pub fn finish(self, me: &PeerId) {
        let providers = self.found.into_iter().filter(|p| p != me).collect();
        let _ = self.reply.send(Ok(ProvidersFound {
            providers,
            dht_requests: self.requests,
        }));
    }
}

impl Entry for Lookup {
    fn fail(self, error: NetError) {
        let _ = self.reply.send(Err(error));
    }

    /// A lookup that ran out of time is finished with what it found, like one whose
    /// query ended.
    fn expire(self, _error: NetError) {
        let _ = self.reply.send(Ok(ProvidersFound {
            providers: self.found.into_iter().collect(),
            dht_requests: self.requests,
        }));
    }
}

/// A DHT record lookup: the record bytes found so far (at most [`MAX_RECORDS_PER_GET`]),
/// answered when the query ends or runs out of time.
pub(crate) struct RecordGet {
    pub found: Vec<Vec<u8>>,
    pub reply: oneshot::Sender<Result<Vec<Vec<u8>>, NetError>>,
}

/// Records one DHT record lookup collects at most (a key is stored on up to the
/// replication factor of nodes; competing claims are what a reader wants to see).
pub(crate) const MAX_RECORDS_PER_GET: usize = 20;

impl RecordGet {
    pub fn new(reply: oneshot::Sender<Result<Vec<Vec<u8>>, NetError>>) -> Self {
        Self {
            found: Vec::new(),
            reply,
        }
    }

    /// Adds one record's bytes (identical copies kept once); true once the cap is hit.
    pub fn add(&mut self, bytes: Vec<u8>) -> bool {
        if !self.found.contains(&bytes) {
            self.found.push(bytes);
        }
        self.found.len() >= MAX_RECORDS_PER_GET
    }

    pub fn finish(self) {
        let _ = self.reply.send(Ok(self.found));
    }
}

impl Entry for RecordGet {
    fn fail(self, error: NetError) {
        let _ = self.reply.send(Err(error));
    }

    /// A lookup that ran out of time answers with what it found.
    fn expire(self, _error: NetError) {
        self.finish();
    }
}

/// Waiting entries of one kind, keyed by the swarm's id for the work.
pub(crate) struct Table<K, E> {
    what: &'static str,
    cap: usize,
    /// How long the swarm may take before the entry is expired.
    timeout: Duration,
    entries: HashMap<K, (Instant, E)>,
}

impl<K: Eq + Hash + Copy, E: Entry> Table<K, E> {
    pub fn new(what: &'static str, cap: usize, timeout: Duration) -> Self {
        Self {
            what,
            cap,
            timeout,
            entries: HashMap::new(),
        }
    }

    /// `Some(entry)` when there is room for it (start the work, then [`Table::insert`]);
    /// otherwise it is answered now with [`NetError::Overloaded`].
    pub fn admit(&self, entry: E) -> Option<E> {
        if self.entries.len() < self.cap {
            return Some(entry);
        }
        entry.fail(NetError::Overloaded {
            what: self.what.to_string(),
            limit: self.cap,
        });
        None
    }

    pub fn insert(&mut self, key: K, entry: E, now: Instant) {
        let deadline = now + self.timeout + EXPIRY_SLACK;
        self.entries.insert(key, (deadline, entry));
    }

    pub fn remove(&mut self, key: &K) -> Option<E> {
        self.entries.remove(key).map(|(_, entry)| entry)
    }

    pub fn get_mut(&mut self, key: &K) -> Option<&mut E> {
        self.entries.get_mut(key).map(|(_, entry)| entry)
    }

    pub fn values(&self) -> impl Iterator<Item = &E> {
        self.entries.values().map(|(_, entry)| entry)
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Answers and removes every entry past its deadline; returns their keys.
    pub fn expire(&mut self, now: Instant) -> Vec<K> {
        let due: Vec<K> = self
            .entries
            .iter()
            .filter(|(_, (deadline, _))| *deadline <= now)
            .map(|(key, _)| *key)
            .collect();
        for key in &due {
            if let Some((_, entry)) = self.entries.remove(key) {
                entry.expire(NetError::Timeout {
                    what: format!(
                        "one of the pending {} (the swarm never answered)",
                        self.what
                    ),
                    after: self.timeout + EXPIRY_SLACK,
                });
            }
        }
        due
    }

    /// Answers every entry with [`NetError::Shutdown`].
    pub fn drain(&mut self) {
        for (_, (_, entry)) in self.entries.drain() {
            entry.fail(NetError::Shutdown);
        }
    }
}

/// Requests peers made to us that are not answered yet. The peer waits on the
/// connection, so it is busy as much as one we asked: pruning it would fail the peer's
/// request ("connection closed before a response was received"). Entries end when the
/// response is sent or fails, or expire like our own requests (a response never sent).
pub(crate) struct Serving<K = InboundRequestId> {
    timeout: Duration,
    entries: HashMap<K, (PeerId, Instant)>,
}

impl<K: Eq + Hash> Serving<K> {
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout: timeout + EXPIRY_SLACK,
            entries: HashMap::new(),
        }
    }

    /// `peer` asked us something; past [`MAX_REQUESTS`] open ones it is not recorded
    /// (request-response bounds the streams per connection anyway).
    pub fn started(&mut self, id: K, peer: PeerId, now: Instant) {
        if self.entries.len() < MAX_REQUESTS {
            self.entries.insert(id, (peer, now + self.timeout));
        }
    }

    /// The response went out, or the exchange failed.
    pub fn ended(&mut self, id: &K) {
        self.entries.remove(id);
    }

    pub fn peers(&self) -> impl Iterator<Item = &PeerId> {
        self.entries.values().map(|(peer, _)| peer)
    }

    pub fn expire(&mut self, now: Instant) {
        self.entries.retain(|_, (_, deadline)| *deadline > now);
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

/// Everything the event loop waits on, by kind.
pub(crate) struct Pending {
    pub dials: Table<ConnectionId, Dial>,
    pub requests: Table<OutboundRequestId, Outbound>,
    pub puts: Table<QueryId, oneshot::Sender<Result<usize, NetError>>>,
    pub provides: Table<QueryId, oneshot::Sender<Result<(), NetError>>>,
    pub lookups: Table<QueryId, Lookup>,
    pub gets: Table<QueryId, RecordGet>,
    /// Not waiters but work in flight the other way: requests we still owe an answer.
    pub serving: Serving,
}

impl Pending {
    /// `connection` bounds dials and requests, `query` the DHT work.
    pub fn new(connection: Duration, query: Duration) -> Self {
        Self {
            dials: Table::new("dials", MAX_DIALS, connection),
            requests: Table::new("requests", MAX_REQUESTS, connection),
            puts: Table::new("dht puts", MAX_QUERIES, query),
            provides: Table::new("dht provides", MAX_QUERIES, query),
            lookups: Table::new("provider lookups", MAX_QUERIES, query),
            gets: Table::new("dht record lookups", MAX_QUERIES, query),
            serving: Serving::new(connection),
        }
    }

    /// Peers with a request in flight on their connection: one of ours, or one of
    /// theirs we have not answered yet.
    pub fn busy_peers(&self) -> HashSet<PeerId> {
        (self.requests.values().map(|r| &r.peer))
            .chain(self.serving.peers())
            .copied()
            .collect()
    }

    /// Expires every kind; returns the lookups expired (their DHT queries can stop).
    pub fn expire(&mut self, now: Instant) -> Vec<QueryId> {
        self.dials.expire(now);
        self.requests.expire(now);
        self.serving.expire(now);
        self.puts.expire(now);
        self.provides.expire(now);
        let mut queries = self.lookups.expire(now);
        queries.extend(self.gets.expire(now));
        queries
    }

    /// Answers everything with [`NetError::Shutdown`].
    pub fn drain(&mut self) {
        self.dials.drain();
        self.requests.drain();
        self.puts.drain();
        self.provides.drain();
        self.lookups.drain();
        self.gets.drain();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(10);

    fn answer<T>(mut rx: oneshot::Receiver<T>) -> T {
        rx.try_recv().expect("the entry was answered")
    }

    fn dial() -> (Dial, oneshot::Receiver<Result<PeerId, NetError>>) {
        let (reply, rx) = oneshot::channel();
        let addr = "/ip4/127.0.0.1/tcp/1".parse().unwrap();
        (Dial { addr, reply }, rx)
    }

    fn outbound() -> (Outbound, oneshot::Receiver<Result<Response, NetError>>) {
        let (reply, rx) = oneshot::channel();
        let peer = PeerId::random();
        (Outbound { peer, reply }, rx)
    }

    fn lookup() -> (Lookup, oneshot::Receiver<Result<ProvidersFound, NetError>>) {
        let (reply, rx) = oneshot::channel();
        (Lookup::new(reply), rx)
    }

    #[test]
    fn dials_are_answered_on_success_failure_expiry_drain_and_over_cap() {
        let now = Instant::now();
        let mut table: Table<u32, Dial> = Table::new("dials", 2, T);
        let peer = PeerId::random();
        let (a, a_rx) = dial();
        let (b, b_rx) = dial();
        let (c, c_rx) = dial();
        table.insert(1, table.admit(a).unwrap(), now);
        table.insert(2, table.admit(b).unwrap(), now + T);
        let (d, d_rx) = dial();
        assert!(table.admit(d).is_none(), "over the cap");
        assert!(matches!(
            answer(d_rx),
            Err(NetError::Overloaded { limit: 2, .. })
        ));

        table.remove(&1).unwrap().connected(peer);
        assert_eq!(answer(a_rx).unwrap(), peer);
        table.insert(3, table.admit(c).unwrap(), now);
        table.remove(&3).unwrap().failed("refused".into());
        let err = answer(c_rx).unwrap_err().to_string();
        assert!(
            err.contains("/ip4/127.0.0.1/tcp/1") && err.contains("refused"),
            "{err}"
        );

        assert!(table.expire(now + T).is_empty(), "not yet due");
        assert_eq!(table.expire(now + 3 * T), vec![2]);
        assert!(matches!(answer(b_rx), Err(NetError::Timeout { .. })));

        let (e, e_rx) = dial();
        table.insert(4, e, now);
        table.drain();
        assert!(matches!(answer(e_rx), Err(NetError::Shutdown)));
        assert_eq!(table.len(), 0);
    }

    #[test]
    fn requests_are_answered_on_success_failure_expiry_drain_and_over_cap() {
        let now = Instant::now();
        let mut table: Table<u32, Outbound> = Table::new("requests", 1, T);
        let (a, a_rx) = outbound();
        table.insert(1, table.admit(a).unwrap(), now);
        let (over, over_rx) = outbound();
        assert!(table.admit(over).is_none());
        assert!(matches!(answer(over_rx), Err(NetError::Overloaded { .. })));
        table.remove(&1).unwrap().answered(Response::NotFound);
        assert!(matches!(answer(a_rx), Ok(Response::NotFound)));

        let (b, b_rx) = outbound();
        let peer = b.peer;
        table.insert(2, b, now);
        table.remove(&2).unwrap().failed("stream closed".into());
        assert!(matches!(answer(b_rx), Err(NetError::Request { peer: p, .. }) if p == peer));

        let (c, c_rx) = outbound();
        table.insert(3, c, now);
        assert_eq!(table.expire(now + 2 * T), vec![3]);
        assert!(matches!(answer(c_rx), Err(NetError::Timeout { .. })));

        let (d, d_rx) = outbound();
        table.insert(4, d, now);
        table.drain();
        assert!(matches!(answer(d_rx), Err(NetError::Shutdown)));
    }

    #[test]
    fn puts_and_provides_are_answered_on_every_outcome() {
        let now = Instant::now();
        let mut puts: Table<u32, oneshot::Sender<Result<usize, NetError>>> =
            Table::new("dht puts", 1, T);
        let (a, a_rx) = oneshot::channel();
        puts.insert(1, puts.admit(a).unwrap(), now);
        let (over, over_rx) = oneshot::channel::<Result<usize, NetError>>();
        assert!(puts.admit(over).is_none());
        assert!(matches!(answer(over_rx), Err(NetError::Overloaded { .. })));
        let _ = puts.remove(&1).unwrap().send(Ok(3));
        assert_eq!(answer(a_rx).unwrap(), 3);
        let (b, b_rx) = oneshot::channel();
        puts.insert(2, b, now);
        puts.remove(&2)
            .unwrap()
            .fail(NetError::Dht("no peers".into()));
        assert!(matches!(answer(b_rx), Err(NetError::Dht(_))));

        let mut provides: Table<u32, oneshot::Sender<Result<(), NetError>>> =
            Table::new("dht provides", 4, T);
        let (c, c_rx) = oneshot::channel();
        let (d, d_rx) = oneshot::channel();
        provides.insert(1, c, now);
        provides.insert(2, d, now + 10 * T);
        assert_eq!(provides.expire(now + 2 * T), vec![1]);
        assert!(matches!(answer(c_rx), Err(NetError::Timeout { .. })));
        provides.drain();
        assert!(matches!(answer(d_rx), Err(NetError::Shutdown)));
    }

    #[test]
    fn lookups_answer_what_they_found_on_finish_and_expiry() {
        let now = Instant::now();
        let me = PeerId::random();
        let other = PeerId::random();
        let mut table: Table<u32, Lookup> = Table::new("provider lookups", 1, T);
        let (a, a_rx) = lookup();
        table.insert(1, table.admit(a).unwrap(), now);
        let (over, over_rx) = lookup();
        assert!(table.admit(over).is_none());
        assert!(matches!(answer(over_rx), Err(NetError::Overloaded { .. })));
        table.get_mut(&1).unwrap().found.extend([me, other]);
        table.remove(&1).unwrap().finish(&me);
        assert_eq!(
            answer(a_rx).unwrap().providers,
            vec![other],
            "this node is left out"
        );

        let (b, b_rx) = lookup();
        table.insert(2, b, now);
        table.get_mut(&2).unwrap().found.insert(other);
        assert_eq!(table.expire(now + 2 * T), vec![2]);
        assert_eq!(answer(b_rx).unwrap().providers, vec![other]);

        let (c, c_rx) = lookup();
        table.insert(3, c, now);
        table.drain();
        assert!(matches!(answer(c_rx), Err(NetError::Shutdown)));
    }

    #[test]
    fn record_gets_keep_each_record_once_and_answer_on_expiry() {
        let now = Instant::now();
        let mut table: Table<u32, RecordGet> = Table::new("dht record lookups", 4, T);
        let (reply, rx) = oneshot::channel();
        table.insert(1, RecordGet::new(reply), now);
        let get = table.get_mut(&1).unwrap();
        assert!(!get.add(vec![1]));
        assert!(!get.add(vec![1]));
        assert!(!get.add(vec![2]));
        assert_eq!(table.expire(now + 2 * T), vec![1]);
        assert_eq!(answer(rx).unwrap(), vec![vec![1], vec![2]]);

        let (reply, rx) = oneshot::channel();
        let mut get = RecordGet::new(reply);
        let full = (0..MAX_RECORDS_PER_GET as u8)
            .map(|i| get.add(vec![i]))
            .last();
        assert_eq!(full, Some(true), "the cap ends the lookup");
        get.finish();
        assert_eq!(answer(rx).unwrap().len(), MAX_RECORDS_PER_GET);

        let (reply, rx) = oneshot::channel();
        table.insert(2, RecordGet::new(reply), now);
        table.drain();
        assert!(matches!(answer(rx), Err(NetError::Shutdown)));
    }

    #[test]
    fn peers_we_owe_an_answer_are_busy_until_it_is_sent_or_expires() {
        let now = Instant::now();
        let mut serving: Serving<u32> = Serving::new(T);
        let (theirs, other) = (PeerId::random(), PeerId::random());
        serving.started(1, theirs, now);
        serving.started(2, theirs, now);
        serving.started(3, other, now);
        let busy = |s: &Serving<u32>| s.peers().copied().collect::<HashSet<PeerId>>();
        assert_eq!(busy(&serving), HashSet::from([theirs, other]));
        serving.ended(&1);
        serving.ended(&3);
        assert_eq!(
            busy(&serving),
            HashSet::from([theirs]),
            "one answer still owed"
        );
        serving.expire(now + T);
        assert_eq!(serving.len(), 1, "not yet due");
        serving.expire(now + 2 * T);
        assert_eq!(
            serving.len(),
            0,
            "a response never sent does not pin the peer"
        );
    }
}
