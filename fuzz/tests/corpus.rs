//! Runs every target body over the RFC 4475 corpus and its prefixes with a
//! stable toolchain: `cargo test --manifest-path fuzz/Cargo.toml`.

use std::path::PathBuf;

fn corpus() -> Vec<Vec<u8>> {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/testdata/rfc4475"
    ));
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|e| e == "dat") {
            out.push(std::fs::read(p).unwrap());
        }
    }
    assert_eq!(out.len(), 49, "corpus at {}", dir.display());
    out
}

#[test]
fn sip_targets_on_rfc4475() {
    for data in corpus() {
        for end in (0..=data.len()).step_by(7) {
            softswitch_fuzz::sip_parse(&data[..end]);
            softswitch_fuzz::sip_differential(&data[..end]);
        }
        softswitch_fuzz::sip_parse(&data);
        softswitch_fuzz::sip_differential(&data);
    }
}

#[test]
fn sdp_target_on_bodies() {
    for data in corpus() {
        let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let body = &data[at + 4..];
        for end in 0..=body.len() {
            softswitch_fuzz::sdp_parse(&body[..end]);
        }
    }
}
