//! The README's bandwidth-per-codec table is `softswitch codecs` output on
//! the default config, not typed by hand: this fails when they drift.

use std::process::Command;

#[test]
fn readme_codec_table_is_the_command_output() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let out = Command::new(env!("CARGO_BIN_EXE_softswitch"))
        .args(["codecs", "--config"])
        .arg(format!("{root}/config"))
        .env_remove("RUST_LOG")
        .output()
        .expect("run softswitch codecs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8(out.stdout).expect("utf-8 table");
    assert!(
        table.contains("| G.711 (PCMU/PCMA) | 20 | 64 | 87.2 |"),
        "{table}"
    );
    assert!(table.contains("| G.729 | 20 | 8 | 31.2 |"), "{table}");

    let readme = std::fs::read_to_string(format!("{root}/README.md")).expect("README.md");
    let begin = readme
        .find("<!-- codecs:begin -->\n")
        .expect("begin marker")
        + 22;
    let end = readme.find("<!-- codecs:end -->").expect("end marker");
    assert_eq!(
        &readme[begin..end],
        table,
        "README's codec table differs from `softswitch codecs`: regenerate it"
    );
}
