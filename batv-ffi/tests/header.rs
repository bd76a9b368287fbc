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

/// The comparison catches a changed exported signature: change `batv_sign`'s `buf_len` from
/// `usize` to `u32` in a copy of the sources and the generated header no longer matches.
#[test]
fn a_changed_signature_fails_the_comparison() {
    let copy = std::env::temp_dir().join(format!("batv-header-test-{}", std::process::id()));
    std::fs::create_dir_all(&copy).expect("temp dir");
    for entry in std::fs::read_dir(crate_dir().join("src")).expect("read src") {
        let entry = entry.expect("dir entry");
        std::fs::copy(entry.path(), copy.join(entry.file_name())).expect("copy source");
    }
    let capi = copy.join("capi.rs");
    let text = std::fs::read_to_string(&capi).expect("read capi.rs");
    let needle = "    buf: *mut c_char,\n    buf_len: usize,\n    out_len: *mut usize,\n) -> batv_result {\n    ffi_boundary! {\n        // SAFETY: the caller's contract covers every pointer.\n        let (keyring, (address, mut out)) =";
    assert!(
        text.contains(needle),
        "batv_sign's buffer arguments are where this test expects"
    );
    std::fs::write(
        &capi,
        text.replacen(needle, &needle.replacen("usize,", "u32,", 1), 1),
    )
    .expect("write modified capi.rs");

    let unmodified = generate(&crate_dir().join("src"));
    let modified = generate(&copy);
    std::fs::remove_dir_all(&copy).ok();
    let diff = first_difference(&unmodified, &modified)
        .expect("a changed signature must change the header");
    assert!(diff.contains("uint32_t buf_len"), "{diff}");
}
