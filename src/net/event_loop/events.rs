//! Translation of swarm events: connections, identify, ping, mDNS, gossip, Kademlia,
//! request-response, AutoNAT, relay and DCUtR events become policy calls, ledger answers
//! and spawned store work.
//! Commands are translated in the parent module; no decision is made here.

use libp2p::core::ConnectedPoint;
use libp2p::gossipsub::{self, MessageId};
use libp2p::kad::store::RecordStore;
use libp2p::kad::{self, GetProvidersOk, GetRecordOk, QueryResult};
use libp2p::request_response;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::SwarmEvent;
use libp2p::{autonat, dcutr, identify, mdns, ping, relay, PeerId};
use std::time::Instant;

use super::super::behaviour::BehaviourEvent;
use super::super::command::Command;
use super::super::inbound;
use super::super::metrics::RecordPath;
use super::super::nat::{is_relayed, HOP_PROTOCOL};
use super::super::policy::GossipCheck;
use super::super::policy::{self, OnConnect};
use super::super::protocol::{
    archive_of_key, check_dht_record, parse_record, Request, Response, KAD_PROTOCOL,
};
use super::super::ratelimit::{self, RequestKind};
use super::super::reputation::PeerEvent;
use super::EventLoop;
use crate::store::IngestOutcome;

/// Providers dialed per lookup step (the transfer uses a few; the rest wait).
const PROVIDER_DIALS: usize = 4;

impl EventLoop {
    pub(super) fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        let now = Instant::now();
        match event {
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                num_established,
                ..
            } => {
                let dial = self.pending.dials.remove(&connection_id);
                let dialed = match &endpoint {
                    ConnectedPoint::Dialer { address, .. } => Some(address),
                    ConnectedPoint::Listener { .. } => None,
                };
                (self.nat).opened(peer_id, connection_id, dialed, endpoint.is_relayed());
                let remote = match endpoint {
                    ConnectedPoint::Dialer { address, .. } => address,
                    ConnectedPoint::Listener { send_back_addr, .. } => send_back_addr,
                };
                let first = num_established.get() == 1;
                match self.policy.connected(peer_id, remote, first, now) {
                    OnConnect::Refuse => {
                        if let Some(dial) = dial {
                            if self.policy.penalties.is_banned(&peer_id) {
                                dial.banned(&peer_id);
                            } else {
                                dial.failed(super::policy::not_allowed(&peer_id));
                            }
                        }
                        let _ = self.swarm.disconnect_peer_id(peer_id);
                    }
                    OnConnect::Accept { sync } => {
                        if let Some(dial) = dial {
                            dial.connected(peer_id);
                        }
                        if sync {
                            self.spawn_sync(peer_id);
                        }
                        if self
                            .policy
                            .slots_short(self.swarm.connected_peers().count())
                        {
                            self.prune();
                        }
                    }
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                ..
            } => {
                self.nat.closed(&peer_id, connection_id);
                if num_established == 0 {
                    self.policy.disconnected(&peer_id, now);
                }
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                peer_id,
                error,
            } => {
                if let Some(dial) = self.pending.dials.remove(&connection_id) {
                    dial.unreachable(&error);
                }
                if let Some(peer) = peer_id {
                    let said = crate::net::explain::dial_error(&error);
                    if self.policy.bootstrap.on_dial_error(&peer, said.clone()) {
                        tracing::warn!(
                            "bootstrap peer {}: {said} (retrying with backoff; `ggen-p2p status` shows it)",
                            crate::net::explain::short_peer(&peer)
                        );
                    }
                }
                if let Some(peer) = peer_id.filter(|p| !self.swarm.is_connected(p)) {
                    self.policy.dial_failed(&peer, now);
                }
            }
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!("listening on {address}");
                if is_relayed(&address) {
                    // A reservation: others reach us through the relay at this address.
                    self.nat.circuit_listening(&address);
                    self.swarm.add_external_address(address);
                }
            }
            SwarmEvent::ExpiredListenAddr { address, .. } if is_relayed(&address) => {
                self.nat.circuit_closed(std::slice::from_ref(&address));
                self.swarm.remove_external_address(&address);
            }
            SwarmEvent::ListenerClosed {
                listener_id,
                addresses,
                reason,
            } => {
                if let Some(relay) = self.relay_listeners.remove(&listener_id) {
                    tracing::info!("relay {relay} reservation ended: {reason:?}");
                    self.nat.reservation_failed(&relay);
                    self.nat.circuit_closed(&addresses);
                    for address in &addresses {
                        self.swarm.remove_external_address(address);
                    }
                }
            }
            _ => {}
        }
    }

    fn on_behaviour_event(&mut self, event: BehaviourEvent) {
        self.metrics.record_behaviour(&event);
        match event {
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                let speaks_kad = info.protocols.iter().any(|p| p.as_ref() == KAD_PROTOCOL);
                let speaks_hop = info.protocols.iter().any(|p| p.as_ref() == HOP_PROTOCOL);
                self.nat.identified(peer_id, speaks_hop);
                if speaks_kad {
                    for addr in &info.listen_addrs {
                        self.swarm
                            .behaviour_mut()
                            .kad
                            .add_address(&peer_id, addr.clone());
                    }
                }
                let listen = info.listen_addrs.clone();
                let waiting =
                    (self.policy).identified(peer_id, info.agent_version, info.listen_addrs);
                self.address_providers(peer_id, &waiting, listen);
            }
            BehaviourEvent::Ping(ping::Event {
                peer,
                result: Ok(rtt),
                ..
            }) => self.policy.measured(&peer, rtt),
            BehaviourEvent::Kad(event) => self.on_kad_event(event),
            BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            }) => self.validate_gossip(propagation_source, message_id, message.data),
            BehaviourEvent::Rr(event) => self.on_rr_event(event),
            BehaviourEvent::Autonat(autonat::Event::StatusChanged { old, new }) => {
                let mode = self.nat.status_changed(&new);
                tracing::info!("reachability {old:?} -> {new:?}: kademlia {mode}");
                self.swarm.behaviour_mut().kad.set_mode(Some(mode));
            }
            BehaviourEvent::Relay(relay::client::Event::ReservationReqAccepted {
                relay_peer_id,
                renewal,
                ..
            }) => {
                if !renewal {
                    tracing::info!("relay {relay_peer_id} accepted our reservation");
                }
                self.nat.reserved(relay_peer_id);
            }
            BehaviourEvent::Relay(event) => tracing::debug!("relay client: {event:?}"),
            BehaviourEvent::RelayServer(event) => tracing::debug!("relay server: {event:?}"),
            BehaviourEvent::Dcutr(dcutr::Event {
                remote_peer_id,
                result,
            }) => match result {
                Ok(_) => tracing::info!("direct connection to {remote_peer_id} (hole punched)"),
                Err(e) => tracing::info!("no direct connection to {remote_peer_id}: {e}"),
            },
            BehaviourEvent::Mdns(mdns::Event::Discovered(found)) => {
                for (peer, addr) in found {
                    self.swarm
                        .behaviour_mut()
                        .kad
                        .add_address(&peer, addr.clone());
                    let connected = self.swarm.is_connected(&peer);
                    if self.policy.should_dial(&peer, connected) {
                        let opts = DialOpts::peer_id(peer)
                            .addresses(vec![addr])
                            .condition(PeerCondition::DisconnectedAndNotDialing)
                            .build();
                        let _ = self.swarm.dial(opts);
                    }
                }
            }
            _ => {}
        }
    }

    /// Gossip: size check and signature check in a task, ingest, then report the verdict
    /// (only accepted messages are forwarded). A record that equivocates is forwarded
    /// and the record it conflicts with is gossiped again, so nodes that hold either
    /// side learn the other.
    fn validate_gossip(&mut self, source: PeerId, message_id: MessageId, data: Vec<u8>) {
        let (client, store) = (self.client.clone(), self.store.clone());
        self.tasks.spawn(async move {
            let check = inbound::check_gossip(&store, source, data).await;
            client.metrics().gossip_checked(&check);
            if let GossipCheck::Ingested(IngestOutcome::Equivocation { existing }) = &check {
                inbound::regossip(&client, &store, *existing).await;
            }
            let acceptance = policy::gossip_acceptance(&check);
            let verdict = Command::GossipVerdict {
                message_id,
                source,
                acceptance,
            };
            let _ = client.send_internal(verdict).await;
        });
    }

    fn on_kad_event(&mut self, event: kad::Event) {
        match event {
            kad::Event::InboundRequest {
                request:
                    kad::InboundRequest::PutRecord {
                        source,
                        record: Some(record),
                        ..
                    },
            } => self.on_dht_put(source, record),
            kad::Event::InboundRequest {
                request:
                    kad::InboundRequest::AddProvider {
                        record: Some(provider),
                    },
            } => {
                let Some(archive) = archive_of_key(&provider.key) else {
                    tracing::debug!(
                        "provider record with a non-archive key from {}",
                        provider.provider
                    );
                    return;
                };
                if self.limit(provider.provider, RequestKind::Dht).is_err() {
                    return;
                }
                let peer = provider.provider.to_string();
                let mut provider = provider;
                let announced = std::mem::take(&mut provider.addresses);
                provider.addresses =
                    (self.policy).provider_addrs(provider.provider, &provider.key, announced);
                if let Err(e) = self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .store_mut()
                    .add_provider(provider)
                {
                    tracing::debug!("dht provider store: {e}");
                }
                let store = self.store.clone();
                self.tasks
                    .spawn_blocking(move || inbound::keep_provider(&store, &archive, &peer));
            }
            kad::Event::OutboundQueryProgressed {
                id,
                result,
                stats,
                step,
            } => match result {
                QueryResult::GetProviders(Ok(GetProvidersOk::FoundProviders {
                    providers, ..
                })) => {
                    self.dial_providers(&providers);
                    let done = match self.pending.lookups.get_mut(&id) {
                        Some(lookup) => {
                            lookup.requests = stats.num_requests();
                            policy::lookup_done(&mut lookup.found, providers, step.last)
                        }
                        None => false,
                    };
                    if done {
                        self.finish_lookup(id);
                    }
                }
                QueryResult::GetProviders(other) => {
                    if let Err(e) = other {
                        tracing::debug!("get providers: {e}");
                    }
                    if let Some(lookup) = self.pending.lookups.get_mut(&id) {
                        lookup.requests = stats.num_requests();
                    }
                    self.finish_lookup(id);
                }
                QueryResult::GetRecord(Ok(GetRecordOk::FoundRecord(found))) => {
                    let full = match self.pending.gets.get_mut(&id) {
                        Some(get) => get.add(found.record.value),
                        None => false,
                    };
                    if full || step.last {
                        self.finish_get(id);
                    }
                }
                QueryResult::GetRecord(other) => {
                    // NotFound is an empty answer; other errors too, after a log line.
                    if let Err(e) = other {
                        tracing::debug!("dht get record: {e}");
                    }
                    self.finish_get(id);
                }
                QueryResult::PutRecord(result) => {
                    if let Err(e) = &result {
                        tracing::debug!("dht put: {e}");
                    }
                    if let Some(reply) = self.pending.puts.remove(&id) {
                        let _ = reply.send(Ok(stats.num_successes() as usize));
                    }
                }
                QueryResult::StartProviding(result) => {
                    // The provider record is stored locally either way and republished
                    // periodically, so a failed spread is logged, not fatal.
                    if let Err(e) = result {
                        tracing::debug!("dht provide: {e}");
                    }
                    if let Some(reply) = self.pending.provides.remove(&id) {
                        let _ = reply.send(Ok(()));
                    }
                }
                _ => {}
            },
            _ => {}
        }
    }

    /// Dials providers we are not connected to while their query still holds the
    /// addresses they were announced with (a provider behind NAT is reachable only at its
    /// relay circuit address, which no routing table holds); the transfer that follows
    /// then finds them connected.
    fn dial_providers(&mut self, providers: &std::collections::HashSet<PeerId>) {
        let local = *self.swarm.local_peer_id();
        for peer in providers
            .iter()
            .filter(|p| **p != local)
            .take(PROVIDER_DIALS)
        {
            if self.swarm.is_connected(peer) || self.policy.penalties.is_banned(peer) {
                continue;
            }
            let opts = DialOpts::peer_id(*peer)
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build();
            if let Err(e) = self.swarm.dial(opts) {
                tracing::debug!("dial provider {peer}: {e}");
            }
        }
    }

    /// Gives `peer`'s provider records under `keys`, stored without addresses, the
    /// addresses identify just reported (see [`policy::Policy::provider_addrs`]).
    fn address_providers(
        &mut self,
        peer: PeerId,
        keys: &[kad::RecordKey],
        addrs: Vec<libp2p::Multiaddr>,
    ) {
        if addrs.is_empty() {
            return;
        }
        let store = self.swarm.behaviour_mut().kad.store_mut();
        for key in keys {
            let held = store
                .providers(key)
                .into_iter()
                .find(|p| p.provider == peer);
            if let Some(mut record) = held.filter(|r| r.addresses.is_empty()) {
                record.addresses = addrs.clone();
                if let Err(e) = store.add_provider(record) {
                    tracing::debug!("dht provider store: {e}");
                }
            }
        }
    }

    fn finish_lookup(&mut self, id: kad::QueryId) {
        if let Some(lookup) = self.pending.lookups.remove(&id) {
            if let Some(mut running) = self.swarm.behaviour_mut().kad.query_mut(&id) {
                running.finish();
            }
            lookup.finish(self.swarm.local_peer_id());
        }
    }

    fn finish_get(&mut self, id: kad::QueryId) {
        if let Some(get) = self.pending.gets.remove(&id) {
            if let Some(mut running) = self.swarm.behaviour_mut().kad.query_mut(&id) {
                running.finish();
            }
            get.finish();
        }
    }

    /// A peer asked us to store a DHT record: it must be a valid record under one of its
    /// own keys, and it replaces what a shared key holds only as the policy allows.
    fn on_dht_put(&mut self, source: PeerId, kad_record: kad::Record) {
        if self.limit(source, RequestKind::Dht).is_err() {
            return;
        }
        let record = match check_dht_record(&kad_record.key, kad_record.value.clone()) {
            Ok(record) => record,
            Err(reason) => {
                tracing::debug!("dht put from {source}: {reason}");
                self.metrics.invalid(RecordPath::dht);
                self.penalize(source);
                return;
            }
        };
        let kad_store = self.swarm.behaviour_mut().kad.store_mut();
        let held = kad_store
            .get(&kad_record.key)
            .and_then(|held| parse_record(held.value.clone()).ok());
        if let Some(held) = held {
            if !policy::replaces_held_record(&held, &record) {
                tracing::debug!("dht put from {source}: kept the record held under that key");
                return;
            }
        }
        if let Err(e) = kad_store.put(kad_record) {
            tracing::debug!("dht store: {e}");
        }
        let (store, metrics) = (self.store.clone(), self.metrics.clone());
        self.tasks
            .spawn_blocking(move || inbound::keep_dht_record(&store, &record, &metrics));
    }

    fn on_rr_event(&mut self, event: request_response::Event<Request, Response>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request_id,
                    request,
                    channel,
                } => {
                    if let Err(wait) = self.limit(peer, RequestKind::of(&request)) {
                        let message = ratelimit::refusal(wait);
                        let response = Response::Error { message };
                        if self
                            .swarm
                            .behaviour_mut()
                            .rr
                            .send_response(channel, response)
                            .is_err()
                        {
                            tracing::debug!("rate-limit answer dropped: {peer} went away");
                        }
                        return;
                    }
                    #[cfg(feature = "test-support")]
                    let Some((request, channel)) = self.hostile_answer(request, channel) else {
                        return;
                    };
                    (self.pending.serving).started(request_id, peer, Instant::now());
                    let (client, store) = (self.client.clone(), self.store.clone());
                    let chunk_of = match &request {
                        Request::Chunk { archive, index } => Some((*archive, *index)),
                        _ => None,
                    };
                    self.tasks.spawn(async move {
                        let response = inbound::respond(&store, request).await;
                        if let (Response::Chunk { bytes }, Some((archive, index))) =
                            (&response, chunk_of)
                        {
                            // The per-chunk path shares the upload link's pace with the
                            // chunk streams (`upload_limit`).
                            client.pace(&archive, index, bytes.len()).await;
                            client.served(&archive, bytes.len() as u64);
                        }
                        let _ = client
                            .send_internal(Command::Respond { channel, response })
                            .await;
                    });
                    tracing::trace!("request from {peer}");
                }
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    if !matches!(response, Response::Error { .. }) {
                        self.judge(peer, PeerEvent::Served);
                    }
                    if let Some(outbound) = self.pending.requests.remove(&request_id) {
                        outbound.answered(response);
                    }
                }
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                // Timed out, or an answer that broke the protocol (oversize, garbled).
                if matches!(
                    error,
                    request_response::OutboundFailure::Timeout
                        | request_response::OutboundFailure::Io(_)
                ) {
                    self.judge(peer, PeerEvent::Timeout);
                }
                if let Some(outbound) = self.pending.requests.remove(&request_id) {
                    let said = crate::net::explain::outbound_failure(&error);
                    let reason = match self.nat.failure_hint(&peer) {
                        Some(hint) => format!("{said} ({hint})"),
                        None => said,
                    };
                    outbound.failed(reason);
                }
            }
            request_response::Event::InboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                self.pending.serving.ended(&request_id);
                tracing::debug!("inbound request from {peer} failed: {error}");
            }
            request_response::Event::ResponseSent { request_id, .. } => {
                self.pending.serving.ended(&request_id);
            }
        }
    }

    /// Takes a token from `peer`'s `kind` bucket; over the limit, the peer loses a little
    /// reputation and the request is refused with how long to wait.
    fn limit(&mut self, peer: PeerId, kind: RequestKind) -> Result<(), std::time::Duration> {
        let checked = self.policy.limiter.check(peer, kind, Instant::now());
        if let Err(wait) = checked {
            tracing::debug!("{peer}: {kind:?} request refused: retry in {wait:?}");
            self.judge(peer, PeerEvent::RateLimited);
        }
        checked
    }

    /// Test hook: a hostile node answers as its rule says; `Some` hands the request back
    /// to be answered honestly.
    #[cfg(feature = "test-support")]
    fn hostile_answer(
        &mut self,
        request: Request,
        channel: request_response::ResponseChannel<Response>,
    ) -> Option<(Request, request_response::ResponseChannel<Response>)> {
        use super::super::hostile::HostileAnswer;
        let Some(hostile) = &self.hostile else {
            return Some((request, channel));
        };
        match (hostile.0)(&request) {
            HostileAnswer::Honest | HostileAnswer::Delay(_) => Some((request, channel)),
            HostileAnswer::Respond(response) => {
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .rr
                    .send_response(channel, response);
                None
            }
            HostileAnswer::Hold => {
                self.held.push(channel);
                None
            }
        }
    }
}
