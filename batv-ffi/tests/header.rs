//! The checked-in `include/batv.h` is exactly what cbindgen makes from the sources, so the
//! header can never drift from the code. `BATV_BLESS=1 cargo test -p batv-ffi --test header`
//! rewrites it after an intended API change.

use std::path::{Path, PathBuf};

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn header_path() -> PathBuf {
    crate_dir().join("../include/batv.h")
}

/// The header cbindgen makes from the crate whose `src/lib.rs` is under `src_root`, with the
/// crate's cbindgen.toml. Parsing the sources directly (not through `cargo metadata`) lets the
/// second test run it on a modified copy.
fn generate(src_root: &Path) -> String {
    let config = cbindgen::Config::from_file(crate_dir().join("cbindgen.toml"))
        .unwrap_or_else(|e| panic!("cbindgen.toml: {e}"));
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(src_root.join("lib.rs"))
        .generate()
        .unwrap_or_else(|e| panic!("cbindgen failed: {e}"));
    let mut out = Vec::new();
    bindings.write(&mut out);
    String::from_utf8(out).expect("cbindgen writes UTF-8")
}

/// The first line where two headers differ, for the failure message.
fn first_difference(expected: &str, actual: &str) -> Option<String> {
    if expected == actual {
        return None;
    }
    let (mut e, mut a) = (expected.lines(), actual.lines());
    for n in 1.. {
        match (e.next(), a.next()) {
            (Some(x), Some(y)) if x == y => continue,
            (x, y) => {
                return Some(format!(
                    "line {n}:\n  checked in: {}\n  generated:  {}",
                    x.unwrap_or("<end of file>"),
                    y.unwrap_or("<end of file>")
                ))
            }
        }
    }
    unreachable!()
}

#[test]
fn checked_in_header_matches_the_sources() {
    let generated = generate(&crate_dir().join("src"));
    let path = header_path();
    if std::env::var_os("BATV_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &generated).expect("write include/batv.h");
        return;
    }
    assert!(
        !generated.contains("batv_exim_"),
        "the Exim ${{dlfunc}} functions must stay out of batv.h"
    );
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    if let Some(diff) = first_difference(&checked_in, &generated) {
        panic!(
            "include/batv.h is out of date with batv-ffi/src ({diff})\n\
             If the API change is intended, run: BATV_BLESS=1 cargo test -p batv-ffi --test header"
        );
    }
}

/// The comparison catches a changed exported signature: a tiny crate with one exported
/// function, generated once with a `size_t` argument and once with a `uint32_t` one, gives two
/// headers that differ at that argument.
#[test]
fn a_changed_signature_changes_the_generated_header() {
    let dir = batv_test_support::TempDir::new("header");
    let header_for = |arg_type: &str| {
        std::fs::write(
            dir.join("lib.rs"),
            format!("/// Doc.\n#[no_mangle]\npub extern \"C\" fn batv_probe(len: {arg_type}) {{}}\n"),
        )
        .expect("write the probe crate");
        generate(dir.path())
    };
    let (wide, narrow) = (header_for("usize"), header_for("u32"));
    assert!(wide.contains("batv_probe(size_t len)"), "{wide}");
    let diff = first_difference(&wide, &narrow).expect("a changed signature must change the header");
    assert!(diff.contains("uint32_t len"), "{diff}");
}
