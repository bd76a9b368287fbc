//! A fixed number of calls of one hot path, for instruction-level profiling (issue 6: profile
//! before optimising). Not a timing benchmark.
//!
//! `cargo bench -p batv-core --bench iters --no-run`, then e.g.
//! `valgrind --tool=callgrind target/release/deps/iters-* sign 1000000` and
//! `callgrind_annotate`: dividing a function's instructions by the call count gives its cost
//! per call. (Under valgrind, sha2 sees no SHA-NI and uses its portable block function; the
//! instructions outside it are the overhead this crate controls.)
//!
//! OP: sign | sign200 | verify | verify200 | parse | untagged | sha1-sign | sha1-verify | limit

use batv_core::{Keyring, SIGNED_MAX};
use std::hint::black_box;

const NOW: i64 = 1_795_700_000;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let op = args.first().map_or("sign", String::as_str);
    let n: u64 = args
        .get(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let sha256 =
        Keyring::parse("key 1 hmac-sha256 base64:q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=\n")
            .expect("keyring parses");
    let sha1 =
        Keyring::parse("key 0 hmac-sha1 text:secret shared with exim\n").expect("keyring parses");
    let short = "user01@example.com".to_string();
    let long = format!("{}@example.com", "x".repeat(188));
    let (keys, addr) = match op {
        "sha1-sign" | "sha1-verify" => (&sha1, &short),
        "sign200" | "verify200" => (&sha256, &long),
        _ => (&sha256, &short),
    };
    let tagged = keys.sign_at(addr, NOW).expect("signs").into_owned();
    let mut buf = [0u8; SIGNED_MAX];
    let mut acc = 0usize;
    for _ in 0..n {
        acc += match op {
            "sign" | "sign200" | "sha1-sign" => {
                keys.sign_into(black_box(addr), NOW, &mut buf).is_ok() as usize
            }
            "verify" | "verify200" | "sha1-verify" => {
                keys.verify_at(black_box(&tagged), NOW).is_ok() as usize
            }
            "parse" => batv_core::wire::parse(black_box(&tagged)).is_ok() as usize,
            "untagged" => keys.verify_at(black_box(addr), NOW).is_err() as usize,
            "limit" => {
                let mut s = black_box([0u32; 8]);
                sha2::block_api::compress256(&mut s, black_box(&[[0u8; 64]; 2]));
                s[0] as usize & 1
            }
            other => panic!("unknown op {other}"),
        };
    }
    println!("{op} x {n}: {acc}");
}
