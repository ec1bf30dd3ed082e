//! The composed libp2p behaviour and the swarm built around it: transports (TCP, QUIC,
//! DNS, relay client), identify, ping, our own Kademlia, gossipsub with application
//! validation, request-response, optional mDNS/AutoNAT, the circuit relay v2 server,
//! DCUtR and raw streams (chunk transfers), and binding its listeners.
//! Configuration only; events are handled in `event_loop.rs`.

use std::collections::HashSet;
use std::num::NonZeroUsize;
use std::time::Duration;

use futures::StreamExt;

use libp2p::kad::store::{MemoryStore, MemoryStoreConfig};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{
    allow_block_list, autonat, connection_limits, dcutr, gossipsub, identify, kad, mdns, noise,
    ping, relay, request_response, tcp, yamux, Multiaddr, StreamProtocol, Swarm, SwarmBuilder,
};

use super::protocol::{
    Request, Response, IDENTIFY_PROTOCOL, KAD_PROTOCOL, MAX_GOSSIP_SIZE, MAX_KAD_PACKET_SIZE,
    MAX_REQUEST_SIZE, MAX_RESPONSE_SIZE, RECORDS_TOPIC, RR_PROTOCOL,
};
use super::{NetConfig, NetError};

/// Records and provider keys kept by the DHT store (the defaults of 1024 are far too few
/// for a registry).
const KAD_MAX_RECORDS: usize = 1 << 20;
const KAD_MAX_PROVIDED_KEYS: usize = 1 << 20;
/// Concurrent connections to one peer.
const MAX_PER_PEER: u32 = 2;
/// How long binding the listen addresses may take.
const LISTEN_WAIT: Duration = Duration::from_secs(10);

#[derive(NetworkBehaviour)]
pub struct Behaviour {
    /// Peers banned for invalid input: their connections are denied outright.
    pub blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    pub limits: connection_limits::Behaviour,
    pub identify: identify::Behaviour,
    pub ping: ping::Behaviour,
    pub kad: kad::Behaviour<MemoryStore>,
    pub gossipsub: gossipsub::Behaviour,
    pub rr: request_response::cbor::Behaviour<Request, Response>,
    pub mdns: Toggle<mdns::tokio::Behaviour>,
    pub autonat: Toggle<autonat::Behaviour>,
    pub relay: relay::client::Behaviour,
    /// Serves nodes behind NAT; libp2p advertises it only with a confirmed external
    /// address (AutoNAT said public).
    pub relay_server: Toggle<relay::Behaviour>,
    pub dcutr: dcutr::Behaviour,
    /// Raw streams for the streaming chunk protocol (`transfer/stream.rs`).
    pub stream: libp2p_stream::Behaviour,
}

pub fn records_topic() -> gossipsub::IdentTopic {
    gossipsub::IdentTopic::new(RECORDS_TOPIC)
}

fn gossip_config(config: &NetConfig) -> Result<gossipsub::Config, NetError> {
    let (n, low, high) = config.gossip_mesh;
    gossipsub::ConfigBuilder::default()
        .heartbeat_interval(config.heartbeat)
        .mesh_n(n)
        .mesh_n_low(low)
        .mesh_n_high(high)
        .mesh_outbound_min((low / 2).min(n / 2))
        .validation_mode(gossipsub::ValidationMode::Strict)
        .validate_messages()
        .max_transmit_size(MAX_GOSSIP_SIZE)
        .flood_publish(true)
        .message_id_fn(|message: &gossipsub::Message| {
            gossipsub::MessageId::from(blake3::hash(&message.data).as_bytes().to_vec())
        })
        .build()
        .map_err(|e| NetError::Config(format!("gossipsub: {e}")))
}

/// Gossipsub peer scoring, tuned for a registry: records are rare, so no penalty for a
/// quiet mesh (P3/P3b off). Invalid messages lower the score twice: P4 (the square of
/// their count, weighted lightly) and P5, the application score, which is this node's
/// reputation of the peer (invalid records lower it too). P5 dominates so that a peer is
/// graylisted (its gossip ignored entirely, which would hide its further offences) no
/// sooner than the reputation bans it, whatever credit it had; gossip to it stops from
/// its second offence. IP colocation (P6) is off: on loopback test networks and behind
/// one NAT many honest peers share an address.
pub(crate) fn gossip_scoring() -> (gossipsub::PeerScoreParams, gossipsub::PeerScoreThresholds) {
    let topic = gossipsub::TopicScoreParams {
        topic_weight: 1.0,
        time_in_mesh_weight: 0.01,
        time_in_mesh_quantum: Duration::from_secs(1),
        time_in_mesh_cap: 300.0,
        first_message_deliveries_weight: 1.0,
        first_message_deliveries_decay: 0.9,
        first_message_deliveries_cap: 20.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        invalid_message_deliveries_weight: -0.5,
        // Per decay interval (1 s): an invalid message's weight halves in about a minute.
        invalid_message_deliveries_decay: 0.99,
        ..Default::default()
    };
    let mut params = gossipsub::PeerScoreParams {
        topic_score_cap: 25.0,
        app_specific_weight: 1.0,
        ip_colocation_factor_weight: 0.0,
        ..Default::default()
    };
    params.topics.insert(records_topic().hash(), topic);
    let thresholds = gossipsub::PeerScoreThresholds {
        gossip_threshold: -10.0,
        publish_threshold: -40.0,
        graylist_threshold: -80.0,
        accept_px_threshold: 10.0,
        opportunistic_graft_threshold: 5.0,
    };
    (params, thresholds)
}

fn kad_behaviour(config: &NetConfig, id: libp2p::PeerId) -> kad::Behaviour<MemoryStore> {
    let replication =
        NonZeroUsize::new(config.replication_factor.max(1)).unwrap_or(NonZeroUsize::MIN);
    let store = MemoryStore::with_config(
        id,
        MemoryStoreConfig {
            max_records: KAD_MAX_RECORDS,
            max_value_bytes: MAX_KAD_PACKET_SIZE,
            max_providers_per_key: replication.get(),
            max_provided_keys: KAD_MAX_PROVIDED_KEYS,
        },
    );
    let mut kad_config = kad::Config::new(StreamProtocol::new(KAD_PROTOCOL));
    kad_config
        .set_query_timeout(config.query_timeout)
        .set_replication_factor(replication)
        .set_record_filtering(kad::StoreInserts::FilterBoth)
        .set_provider_record_ttl(Some(super::policy::PROVIDER_TTL))
        .set_provider_publication_interval(Some(super::policy::REPROVIDE_INTERVAL))
        .set_max_packet_size(MAX_KAD_PACKET_SIZE);
    let mut kad = kad::Behaviour::with_config(id, store, kad_config);
    kad.set_mode(Some(kad::Mode::Server));
    kad
}

/// True when every listen address is on loopback: AutoNAT has nothing to learn there and
/// its probes drop QUIC connections on localhost (rust-libp2p #3308).
pub fn loopback_only(listen: &[Multiaddr]) -> bool {
    !listen.is_empty()
        && listen.iter().all(|addr| {
            addr.iter().any(|p| match p {
                Protocol::Ip4(ip) => ip.is_loopback(),
                Protocol::Ip6(ip) => ip.is_loopback(),
                _ => false,
            })
        })
}

/// AutoNAT v1 with libp2p's defaults, except that non-global addresses may be probed:
/// a server dials back only the IP the asking connection came from, so this cannot be
/// aimed at third parties, and LANs (and the NAT lab's 198.18.0.0/15) need it.
fn autonat_config() -> autonat::Config {
    autonat::Config {
        only_global_ips: false,
        ..autonat::Config::default()
    }
}

/// Builds the swarm (TCP + QUIC + DNS + relay client) and subscribes to the records topic.
pub fn build_swarm(config: &NetConfig) -> Result<Swarm<Behaviour>, NetError> {
    let gossip = gossip_config(config)?;
    let mut swarm = SwarmBuilder::with_existing_identity(config.keypair.clone())
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| NetError::Config(format!("tcp transport: {e}")))?
        .with_quic()
        .with_dns()
        .map_err(|e| NetError::Config(format!("dns resolver: {e}")))?
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .map_err(|e| NetError::Config(format!("relay client: {e}")))?
        .with_bandwidth_metrics(&mut config.metrics.registry())
        .with_behaviour(|key, relay| {
            let id = key.public().to_peer_id();
            let limits = connection_limits::ConnectionLimits::default()
                .with_max_established(Some(config.max_connections))
                .with_max_established_per_peer(Some(MAX_PER_PEER))
                .with_max_pending_incoming(Some(config.max_connections))
                .with_max_pending_outgoing(Some(config.max_connections));
            let identify = identify::Behaviour::new(
                identify::Config::new(IDENTIFY_PROTOCOL.into(), key.public())
                    .with_agent_version(format!("ggen-p2p/{}", env!("CARGO_PKG_VERSION"))),
            );
            let mut gossipsub = gossipsub::Behaviour::new(
                gossipsub::MessageAuthenticity::Signed(key.clone()),
                gossip,
            )
            .map_err(|e| NetError::Config(format!("gossipsub: {e}")))?;
            let (params, thresholds) = gossip_scoring();
            gossipsub
                .with_peer_score(params, thresholds)
                .map_err(|e| NetError::Config(format!("gossipsub scoring: {e}")))?;
            let codec = request_response::cbor::codec::Codec::default()
                .set_request_size_maximum(MAX_REQUEST_SIZE)
                .set_response_size_maximum(MAX_RESPONSE_SIZE);
            let rr = request_response::Behaviour::with_codec(
                codec,
                [(
                    StreamProtocol::new(RR_PROTOCOL),
                    request_response::ProtocolSupport::Full,
                )],
                request_response::Config::default().with_request_timeout(config.connection_timeout),
            );
            let mdns = if config.mdns {
                Some(
                    mdns::tokio::Behaviour::new(mdns::Config::default(), id)
                        .map_err(|e| NetError::Config(format!("mdns: {e}")))?,
                )
            } else {
                None
            };
            let autonat = (config.autonat && !loopback_only(&config.listen))
                .then(|| autonat::Behaviour::new(id, autonat_config()));
            let relay_server = config
                .relay_server
                .as_ref()
                .map(|limits| relay::Behaviour::new(id, limits.server_config()));
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Behaviour {
                blocked: allow_block_list::Behaviour::default(),
                limits: connection_limits::Behaviour::new(limits),
                identify,
                ping: ping::Behaviour::default(),
                kad: kad_behaviour(config, id),
                gossipsub,
                rr,
                mdns: mdns.into(),
                autonat: autonat.into(),
                relay,
                relay_server: relay_server.into(),
                dcutr: dcutr::Behaviour::new(id),
                stream: libp2p_stream::Behaviour::new(),
            })
        })
        .map_err(|e| NetError::Config(format!("behaviour: {e}")))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(config.idle_timeout))
        .build();
    swarm
        .behaviour_mut()
        .gossipsub
        .subscribe(&records_topic())
        .map_err(|e| NetError::Config(format!("gossip topic {RECORDS_TOPIC}: {e}")))?;
    Ok(swarm)
}

/// Starts listening on `addrs` and waits (bounded) until every listener is bound, so the
/// swarm's listen addresses are meaningful at once.
pub async fn bind(swarm: &mut Swarm<Behaviour>, addrs: &[Multiaddr]) -> Result<(), NetError> {
    let mut listeners = HashSet::new();
    for addr in addrs {
        let id = swarm
            .listen_on(addr.clone())
            .map_err(|e| NetError::Listen {
                addr: addr.clone(),
                reason: e.to_string(),
            })?;
        listeners.insert(id);
    }
    // Wait until every listener is bound, so `listen_addrs` is meaningful at once.
    let deadline = tokio::time::Instant::now() + LISTEN_WAIT;
    while !listeners.is_empty() {
        match tokio::time::timeout_at(deadline, swarm.select_next_some()).await {
            Ok(SwarmEvent::NewListenAddr { listener_id, .. }) => {
                listeners.remove(&listener_id);
            }
            Ok(SwarmEvent::ListenerClosed {
                addresses, reason, ..
            }) => {
                let reason = match reason {
                    Ok(()) => "closed".to_string(),
                    Err(e) => e.to_string(),
                };
                let addr = addresses
                    .into_iter()
                    .next()
                    .unwrap_or_else(Multiaddr::empty);
                return Err(NetError::Listen { addr, reason });
            }
            Ok(SwarmEvent::ListenerError { error, .. }) => {
                return Err(NetError::Config(format!("listener: {error}")));
            }
            Ok(_) => {}
            Err(_) => {
                return Err(NetError::Timeout {
                    what: "binding listen addresses".into(),
                    after: LISTEN_WAIT,
                })
            }
        }
    }

    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gossip_scoring_graylists_a_forger_no_sooner_than_the_reputation_bans_it() {
        use crate::net::reputation::{PeerEvent, BAN_SCORE, MAX_SCORE, MIN_SCORE};
        let (params, thresholds) = gossip_scoring();
        params.validate().unwrap();
        thresholds.validate().unwrap();
        let topic = &params.topics[&records_topic().hash()];
        // P4 is the square of the invalid-message counter times its weight; P5 is the
        // reputation, which each invalid record lowers too, from whatever credit it had.
        let p4 = |n: u32| f64::from(n * n) * topic.invalid_message_deliveries_weight;
        for credit in [0.0, 0.02, 5.0, 12.5, MAX_SCORE] {
            for n in 0..20 {
                let reputation =
                    (credit + f64::from(n) * PeerEvent::BadRecord.weight()).max(MIN_SCORE);
                let score = topic.topic_weight * p4(n) + params.app_specific_weight * reputation;
                if reputation > BAN_SCORE {
                    assert!(
                        score > thresholds.graylist_threshold,
                        "graylisted before the ban: credit {credit}, {n} offences"
                    );
                }
                if n >= 2 && credit == 0.0 {
                    assert!(score < thresholds.gossip_threshold);
                }
            }
        }
        assert_eq!(params.ip_colocation_factor_weight, 0.0, "loopback networks");
        assert!(
            topic.time_in_mesh_cap * topic.time_in_mesh_weight
                + topic.first_message_deliveries_cap * topic.first_message_deliveries_weight
                <= params.topic_score_cap + 1e-9,
            "good behaviour earns at most the cap"
        );
    }

    #[test]
    fn autonat_is_skipped_only_for_loopback_listeners() {
        let parse = |a: &str| a.parse::<Multiaddr>().unwrap();
        assert!(loopback_only(&[
            parse("/ip4/127.0.0.1/tcp/0"),
            parse("/ip6/::1/udp/0/quic-v1")
        ]));
        assert!(!loopback_only(&[
            parse("/ip4/127.0.0.1/tcp/0"),
            parse("/ip4/0.0.0.0/tcp/4001")
        ]));
        assert!(!loopback_only(&[]));
    }
}
