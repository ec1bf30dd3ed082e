//! libp2p's errors in words a user can act on: one sentence with a hint ("could not reach
//! 127.0.0.1:9: connection refused — is a node listening there?") and short peer ids
//! instead of `PeerId("12D3KooW…")`. Pure text; it decides nothing about the peers.

use std::error::Error;
use std::io;

use libp2p::multiaddr::Protocol;
use libp2p::request_response::OutboundFailure;
use libp2p::swarm::DialError;
use libp2p::{Multiaddr, PeerId};

/// A peer id as people read it: the first 8 and last 6 characters, which is enough to
/// tell peers apart in a message (`ggen-p2p peers` lists full ids).
pub fn short_peer(peer: &PeerId) -> String {
    short_id(&peer.to_base58())
}

fn short_id(id: &str) -> String {
    if id.len() <= 16 {
        return id.to_string();
    }
    format!("{}…{}", &id[..8], &id[id.len() - 6..])
}

/// `host:port` of an address when it has them (`/ip4/127.0.0.1/tcp/9` → `127.0.0.1:9`),
/// else the address as it is, without its `/p2p/` part.
pub fn target(addr: &Multiaddr) -> String {
    let mut host = None;
    let mut port = None;
    let mut rest = Multiaddr::empty();
    for protocol in addr.iter() {
        match &protocol {
            Protocol::Ip4(ip) => host = Some(ip.to_string()),
            Protocol::Ip6(ip) => host = Some(format!("[{ip}]")),
            Protocol::Dns(name) | Protocol::Dns4(name) | Protocol::Dns6(name) => {
                host = Some(name.to_string())
            }
            Protocol::Tcp(p) | Protocol::Udp(p) => port = Some(*p),
            Protocol::P2p(_) => continue,
            _ => {}
        }
        rest.push(protocol);
    }
    match (host, port) {
        (Some(host), Some(port)) if !addr.iter().any(|p| matches!(p, Protocol::P2pCircuit)) => {
            format!("{host}:{port}")
        }
        _ => rest.to_string(),
    }
}

/// A failed dial as one sentence: where, why, and what to check.
pub fn dial_error(error: &DialError) -> String {
    match error {
        DialError::Transport(attempts) => {
            let Some((addr, first)) = attempts.first() else {
                return "could not reach the peer: no address was tried — give its full address /ip4/…/tcp/…/p2p/…".into();
            };
            let cause = cause_of(first);
            let others = attempts.len() - 1;
            let more = if others > 0 {
                format!(" (and {others} other address(es) failed too)")
            } else {
                String::new()
            };
            format!("could not reach {}: {cause}{more}", target(addr))
        }
        DialError::NoAddresses => {
            "could not reach the peer: no address is known for it — give its full address /ip4/…/tcp/…/p2p/…".into()
        }
        DialError::LocalPeerId { address } => format!(
            "{} is this node itself — give the address of another node",
            target(address)
        ),
        DialError::WrongPeerId { obtained, address } => format!(
            "{} answered as peer {}, not the one in the address — check the /p2p/ part of the address",
            target(address),
            short_peer(obtained)
        ),
        DialError::Denied { cause } => format!(
            "the connection was refused by this node's own rules ({cause}) — check `allow`, `max_connections` and blocked peers in `ggen-p2p config show`"
        ),
        DialError::Aborted => {
            "the connection attempt was aborted (the node is stopping or replaced the dial) — try again".into()
        }
        DialError::DialPeerConditionFalse(_) => {
            "a connection to that peer is already open or being opened — `ggen-p2p peers` lists it".into()
        }
    }
}

/// Why one transport attempt failed, from the typed causes (an `io::Error` kind) where
/// there is one, else from libp2p's text.
fn cause_of(error: &(dyn Error + 'static)) -> String {
    let mut chain: Vec<&(dyn Error + 'static)> = Vec::new();
    let mut next = Some(error);
    while let Some(cause) = next {
        chain.push(cause);
        next = cause.source();
    }
    for cause in &chain {
        if let Some(io) = cause.downcast_ref::<io::Error>() {
            if let Some(words) = io_words(io.kind()) {
                return words.to_string();
            }
        }
    }
    let text: String = chain
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join(": ");
    text_words(&text)
}

fn io_words(kind: io::ErrorKind) -> Option<&'static str> {
    use io::ErrorKind::*;
    Some(match kind {
        ConnectionRefused => "connection refused — is a node listening there?",
        TimedOut => "no answer in time — is the address right, and not behind a firewall or NAT?",
        ConnectionReset | ConnectionAborted | UnexpectedEof | BrokenPipe => {
            "the other side closed the connection — is it a ggen-p2p node, and does it allow this peer?"
        }
        HostUnreachable | NetworkUnreachable | AddrNotAvailable => {
            "no route to that address — check the address and this machine's network"
        }
        PermissionDenied => "the system refused the connection (a firewall rule?)",
        _ => return None,
    })
}

/// Words for libp2p text when no typed cause says more (strings from other processes,
/// the daemon's answers, or errors that only carry text).
fn text_words(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let known: &[(&str, &str)] = &[
        ("connection refused", "connection refused — is a node listening there?"),
        ("timed out", "no answer in time — is the address right, and not behind a firewall or NAT?"),
        ("timeout", "no answer in time — is the address right, and not behind a firewall or NAT?"),
        ("no route to host", "no route to that address — check the address and this machine's network"),
        ("network is unreachable", "no route to that address — check the address and this machine's network"),
        ("failed to lookup", "the name did not resolve — check the host name in the address"),
        ("dns", "the name did not resolve — check the host name in the address"),
        ("multiaddr is not supported", "this node cannot dial that kind of address — use /ip4/…/tcp/… or /udp/…/quic-v1"),
        ("noise", "the other side did not complete the encrypted handshake — is it a ggen-p2p (libp2p) node?"),
        ("multistream", "the other side does not speak libp2p — is it a ggen-p2p node?"),
        ("unexpected peer id", "a different node answered — check the /p2p/ part of the address"),
        ("connection reset", "the other side closed the connection — is it a ggen-p2p node?"),
    ];
    for (needle, words) in known {
        if lower.contains(needle) {
            return (*words).to_string();
        }
    }
    format!("{} — is a node listening there?", shorten_peer_ids(text))
}

/// A failed request to a peer, in words.
pub fn outbound_failure(error: &OutboundFailure) -> String {
    match error {
        OutboundFailure::DialFailure => {
            "it could not be reached (offline, or its addresses are stale)".into()
        }
        OutboundFailure::Timeout => "it did not answer in time (busy, or its link is slow)".into(),
        OutboundFailure::ConnectionClosed => {
            "the connection closed before it answered (it may have stopped)".into()
        }
        OutboundFailure::UnsupportedProtocols => {
            "it does not speak this protocol (not a ggen-p2p node, or a version too old)".into()
        }
        OutboundFailure::Io(e) => format!("the exchange broke off ({e})"),
    }
}

/// Replaces every `PeerId("12D3KooW…")` (a peer id's debug form) in `text` by its short
/// form, so messages built from debug output read like the rest.
pub fn shorten_peer_ids(text: &str) -> String {
    const OPEN: &str = "PeerId(\"";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(OPEN) {
        out.push_str(&rest[..start]);
        let after = &rest[start + OPEN.len()..];
        match after.find("\")") {
            Some(end) => {
                out.push_str(&short_id(&after[..end]));
                rest = &after[end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures::StreamExt;
    use libp2p::swarm::{dummy, SwarmEvent};

    use super::*;

    /// A real swarm dialing a closed loopback port: the error value libp2p really gives.
    #[tokio::test]
    async fn a_refused_tcp_dial_reads_as_one_sentence_with_a_hint() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let mut swarm = libp2p::SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_tcp(
                libp2p::tcp::Config::default(),
                libp2p::noise::Config::new,
                libp2p::yamux::Config::default,
            )
            .unwrap()
            .with_behaviour(|_| dummy::Behaviour)
            .unwrap()
            .build();
        let addr: Multiaddr = format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap();
        swarm.dial(addr).unwrap();
        let error = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let SwarmEvent::OutgoingConnectionError { error, .. } =
                    swarm.select_next_some().await
                {
                    return error;
                }
            }
        })
        .await
        .expect("the dial fails within 10 s");
        let raw = error.to_string();
        assert!(
            raw.contains("Failed to negotiate"),
            "libp2p's own text: {raw}"
        );
        let said = dial_error(&error);
        assert_eq!(
            said,
            format!(
                "could not reach 127.0.0.1:{port}: connection refused — is a node listening there?"
            )
        );
    }

    #[test]
    fn other_dial_errors_name_the_place_and_the_fix() {
        let peer = PeerId::random();
        let addr: Multiaddr = format!("/ip4/10.0.0.1/tcp/4001/p2p/{peer}")
            .parse()
            .unwrap();
        let wrong = dial_error(&DialError::WrongPeerId {
            obtained: peer,
            address: addr.clone(),
        });
        assert!(
            wrong.starts_with("10.0.0.1:4001 answered as peer "),
            "{wrong}"
        );
        assert!(!wrong.contains("PeerId("), "{wrong}");
        assert!(dial_error(&DialError::NoAddresses).contains("/p2p/"));
        let timed_out = DialError::Transport(vec![(
            addr,
            libp2p::TransportError::Other(io::Error::new(io::ErrorKind::TimedOut, "timeout")),
        )]);
        assert!(
            dial_error(&timed_out).starts_with("could not reach 10.0.0.1:4001: no answer in time")
        );
    }

    #[test]
    fn peer_ids_are_shortened_in_text_and_request_failures_read_plainly() {
        let peer = PeerId::random();
        let text = format!("{peer:?}: chunk list request failed");
        let short = shorten_peer_ids(&text);
        assert!(!short.contains("PeerId("), "{short}");
        assert!(short.starts_with(&short_peer(&peer)), "{short}");
        assert_eq!(short_peer(&peer).chars().count(), 15);
        let said = outbound_failure(&OutboundFailure::DialFailure);
        assert!(said.contains("could not be reached"), "{said}");
        assert_eq!(
            target(&"/ip6/::1/udp/4001/quic-v1".parse().unwrap()),
            "[::1]:4001"
        );
        let relayed: Multiaddr = format!("/ip4/1.2.3.4/tcp/1/p2p/{peer}/p2p-circuit")
            .parse()
            .unwrap();
        assert!(target(&relayed).contains("p2p-circuit"));
    }
}
