//! Runs `scripts/nat-lab` (network namespaces, two NAT routers, the real binary) so that
//! `cargo test` — and CI, which runs as root — proves a pack published behind one NAT
//! installs behind another. Without root the script says it is skipped, and so does this.

use std::path::Path;
use std::process::Command;

const SKIPPED: &str = "nat-lab: skipped: needs root (network namespaces)";

/// Runs the lab (with `symmetric` NATs or port-preserving ones, every node on `transport`
/// "tcp" or "quic") and returns its last line, or `None` when it was skipped for lack of
/// root.
fn run_lab(symmetric: bool, transport: &str) -> Option<String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/nat-lab");
    let output = Command::new("bash")
        .arg(&script)
        .env("GGEN_P2P_BIN", env!("CARGO_BIN_EXE_ggen-p2p"))
        .env("NAT_LAB_SYMMETRIC", if symmetric { "1" } else { "0" })
        .env("NAT_LAB_TRANSPORT", transport)
        .output()
        .expect("bash runs scripts/nat-lab");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "nat-lab failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    if stdout.trim() == SKIPPED {
        eprintln!("{SKIPPED}");
        return None;
    }
    let last = stdout.lines().last().unwrap_or_default().to_string();
    assert!(last.starts_with("nat-lab: ok"), "{stdout}\n{stderr}");
    println!("{stdout}");
    Some(last)
}

/// Both labs in one test, one after the other (two at once would only compete for the
/// machine).
#[test]
fn a_pack_published_behind_one_nat_installs_behind_another() {
    // Port-preserving NATs: DCUtR punches a hole, so even a pack larger than a relay
    // circuit carries installs, directly.
    let Some(cone) = run_lab(false, "tcp") else {
        return;
    };
    assert!(cone.contains("installed and verified"), "{cone}");
    assert!(cone.contains("publisher: direct over TCP"), "{cone}");
    assert!(cone.contains("large pack installed direct"), "{cone}");

    // Symmetric NATs: no hole can be punched; the small pack comes through the relay and
    // the large one is refused with the reason.
    let symmetric = run_lab(true, "tcp").expect("root for the first lab is root for the second");
    assert!(symmetric.contains("installed and verified"), "{symmetric}");
    assert!(!symmetric.contains("publisher: direct"), "{symmetric}");
    assert!(
        symmetric.contains("large pack refused over the relay with the reason"),
        "{symmetric}"
    );

    // The same over QUIC only: AutoNAT, the relay reservation and the hole punch all run
    // over UDP, and the bytes come over a direct QUIC connection.
    let quic = run_lab(false, "quic").expect("root for the first lab is root for the third");
    assert!(quic.contains("publisher: direct over QUIC"), "{quic}");
    assert!(quic.contains("large pack installed direct"), "{quic}");
}
