//! The core's target ratios (issue 6), measured interleaved so that a noisy, shared machine
//! disturbs both sides of each ratio alike.
//!
//! `cargo bench -p batv-core --bench ratios [-- ROUNDS]`
//!
//! Criterion (`--bench core`) measures one benchmark after another; when other jobs start and
//! stop between them, a ratio of two of its medians can be off by 30 % or more. Here every
//! round times one batch of each operation back to back (in a rotating order), each batch is
//! divided by the `limit` batch of the same round, and the median of those per-round ratios
//! is the figure. Medians of the per-call times are printed too.
//!
//! `limit` is two SHA-256 block compressions: `sha2::block_api::compress256` over two blocks.
//! The last lines are machine-readable for `bench/compare`:
//! `RESULT op=<name> median_ns=<ns> ratio=<median of per-round op/limit>`

use batv_core::{Keyring, Policy, Signed, SIGNED_MAX};
use std::hint::black_box;
use std::time::Instant;

const NOW: i64 = 1_795_700_000;
const SHA256_KEYS: &str = "key 1 hmac-sha256 base64:q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=\n";
const SHA1_KEYS: &str = "key 0 hmac-sha1 text:secret shared with exim\n";
const IV: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];
/// Calls per batch: a batch lasts tens to hundreds of microseconds.
const BATCH: u32 = 1000;

type Op<'a> = Box<dyn FnMut() -> usize + 'a>;

/// An HMAC's two dependent compressions over a given inner block.
#[inline(always)]
fn probe_hmac(inner: [[u8; 64]; 1]) -> usize {
    let mut s = IV;
    sha2::block_api::compress256(&mut s, &inner);
    let mut outer = [[0u8; 64]; 1];
    for (d, w) in outer[0].chunks_exact_mut(4).zip(&s) {
        d.copy_from_slice(&w.to_be_bytes());
    }
    outer[0][32] = 0x80;
    outer[0][62] = 3;
    let mut o = IV;
    sha2::block_api::compress256(&mut o, &outer);
    o[0] as usize
}

/// The inner block as `mac.rs` builds it: octet-sized stores into a zeroed block.
#[inline(always)]
fn inner_bytes(kddd: &[u8; 4], a: &[u8]) -> [[u8; 64]; 1] {
    let n = 4 + a.len();
    let mut b = [[0u8; 64]; 1];
    let bytes = b.as_flattened_mut();
    bytes[..4].copy_from_slice(kddd);
    for (d, &s) in bytes[4..n].iter_mut().zip(a) {
        *d = s | (u8::from(s.is_ascii_uppercase()) << 5);
    }
    bytes[n] = 0x80;
    bytes[56..].copy_from_slice(&((64 + n) as u64 * 8).to_be_bytes());
    b
}

/// A block written as four 16-octet stores of (lower-cased) address windows: what a block
/// builder that realigns in registers would store. Needs an address of at least 16 octets.
#[inline(always)]
fn inner_wide(a: &[u8]) -> [[u8; 64]; 1] {
    let mut b = [[0u8; 64]; 1];
    for c in 0..4 {
        let at = (16 * c).min(a.len() - 16);
        let w: [u8; 16] = a[at..at + 16].try_into().expect("16 octets");
        let w = w.map(|s| s | (u8::from(s.is_ascii_uppercase()) << 5));
        b[0][16 * c..16 * c + 16].copy_from_slice(&w);
    }
    b
}

/// The inner block of `K DDD lower(address)` for a 16..=51-octet address, each 16-octet chunk
/// assembled in registers from 16-octet loads of the address and written with one store.
#[inline(always)]
fn inner_realigned(kddd: &[u8; 4], a: &[u8]) -> [[u8; 64]; 1] {
    let (l, n) = (a.len(), a.len() + 4);
    let window = |at: usize| u128::from_le_bytes(a[at..at + 16].try_into().expect("16 octets"));
    let mut b = [[0u8; 64]; 1];
    for c in 0..4 {
        // Chunk c holds message octets 16c..16c+16, that is address octets 16c-4.. .
        let data = if c == 0 {
            window(0) << 32 | u128::from(u32::from_le_bytes(*kddd))
        } else if 16 * c + 12 <= l {
            window(16 * c - 4)
        } else if 16 * c - 4 < l {
            window(l - 16) >> (8 * (16 * c + 12 - l))
        } else {
            0
        };
        let d = data.to_le_bytes().map(|s| s | (u8::from(s.is_ascii_uppercase()) << 5));
        let mut mark = 0u128;
        if let Some(pos) = n.checked_sub(16 * c).filter(|&p| p < 16) {
            mark |= 0x80 << (8 * pos);
        }
        if c == 3 {
            mark |= u128::from(((64 + n) as u64 * 8).swap_bytes()) << 64;
        }
        let m = mark.to_le_bytes();
        let chunk: [u8; 16] = core::array::from_fn(|i| d[i] | m[i]);
        b[0][16 * c..16 * c + 16].copy_from_slice(&chunk);
    }
    b
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let rounds = std::env::args()
        .skip(1)
        .find_map(|a| a.parse::<usize>().ok())
        .unwrap_or(600);
    let k256 = Keyring::parse(SHA256_KEYS).expect("keyring parses");
    let k1 = Keyring::parse(SHA1_KEYS).expect("keyring parses");
    let policy = Policy::new();
    let short = "user01@example.com";
    let long = format!("{}@example.com", "x".repeat(188));
    let t_short = k256.sign_at(short, NOW).expect("signs").into_owned();
    let t_long = k256.sign_at(&long, NOW).expect("signs").into_owned();
    let t1_short = k1.sign_at(short, NOW).expect("signs").into_owned();
    let blocks = [[0x36u8; 64], [0x5cu8; 64]];
    // The realigned builder must build exactly the block the octet builder does.
    for len in 16..=51 {
        let a: Vec<u8> = (0..len).map(|i| b"aZ@.x09Q-_Mm"[(i * 7 + len) % 12]).collect();
        assert_eq!(inner_realigned(b"1234", &a), inner_bytes(b"1234", &a), "{len} octets");
    }
    let mut buf = [0u8; SIGNED_MAX];
    let mut buf1 = [0u8; SIGNED_MAX];
    let mut buf2 = [0u8; SIGNED_MAX];
    let mut buf3 = [0u8; SIGNED_MAX];

    let signed = |r: Result<Signed, batv_core::SignError>| match r {
        Ok(Signed::Written(n)) => n,
        other => panic!("sign failed: {other:?}"),
    };
    let mut ops: Vec<(&str, Op)> = vec![
        (
            "limit/two_compressions",
            Box::new(|| {
                let mut s = black_box(IV);
                sha2::block_api::compress256(&mut s, black_box(&blocks));
                s[0] as usize
            }),
        ),
        (
            // The least an HMAC can do with this block function: the outer block is made from
            // the inner state, so the two compressions are two dependent calls.
            "floor/hmac_two_calls",
            Box::new(|| {
                let mut s = black_box(IV);
                sha2::block_api::compress256(&mut s, black_box(&blocks[..1]));
                let mut outer = [[0u8; 64]; 1];
                for (d, w) in outer[0].chunks_exact_mut(4).zip(&s) {
                    d.copy_from_slice(&w.to_be_bytes());
                }
                outer[0][32] = 0x80;
                outer[0][62] = 3;
                let mut o = black_box(IV);
                sha2::block_api::compress256(&mut o, &outer);
                o[0] as usize
            }),
        ),
        (
            // Probes for the store-forwarding question (see BENCHMARKS.md): the same HMAC
            // shape (inner block from the short address, then the outer block), with the inner
            // block written three ways. Not a correct MAC message; only the stores differ.
            // 1. As mac.rs writes it: zeroed, then `K DDD`, the address, 0x80 and the length.
            "probe/inner_byte_stores",
            Box::new(|| probe_hmac(inner_bytes(b"1234", black_box(short.as_bytes())))),
        ),
        (
            // 2. Four 16-octet copies of address windows: each load of the block function
            //    finds its 16 octets in one store.
            "probe/inner_16B_stores",
            Box::new(|| probe_hmac(inner_wide(black_box(short.as_bytes())))),
        ),
        (
            // 2b. The correct block, realigned in safe Rust (u128 shifts, array maps) in the
            //     hope of 16-octet stores; LLVM splits the first window again (see BENCHMARKS.md).
            "probe/inner_u128_realigned",
            Box::new(|| probe_hmac(inner_realigned(b"1234", black_box(short.as_bytes())))),
        ),
        (
            // 3. A constant block: no stores at all before the first compression.
            "probe/inner_constant",
            Box::new(|| probe_hmac(black_box([[0x36u8; 64]]))),
        ),
        (
            "sign/short",
            Box::new(|| signed(k256.sign_into(black_box(short), NOW, &mut buf))),
        ),
        (
            "verify_valid/short",
            Box::new(|| {
                k256.verify_at(black_box(&t_short), NOW)
                    .map_or(0, |o| o.len())
            }),
        ),
        (
            "verify_untagged/short",
            Box::new(|| k256.verify_at(black_box(short), NOW).map_or(1, |o| o.len())),
        ),
        (
            // Parsing alone (no MAC): the part of verify_valid outside the HMAC.
            "parse_tagged/short",
            Box::new(|| batv_core::wire::parse(black_box(&t_short)).map_or(0, |t| t.map_or(0, |t| t.original.len()))),
        ),
        (
            "sign/200",
            Box::new(|| signed(k256.sign_into(black_box(&long), NOW, &mut buf1))),
        ),
        (
            "verify_valid/200",
            Box::new(|| {
                k256.verify_at(black_box(&t_long), NOW)
                    .map_or(0, |o| o.len())
            }),
        ),
        (
            "verify_untagged/200",
            Box::new(|| k256.verify_at(black_box(&long), NOW).map_or(1, |o| o.len())),
        ),
        (
            "check_bounce/short",
            Box::new(|| policy.check(&k256, "", black_box(&t_short), NOW).accepted as usize),
        ),
        (
            "sha1/sign/short",
            Box::new(|| signed(k1.sign_into(black_box(short), NOW, &mut buf2))),
        ),
        (
            "sha1/verify_valid/short",
            Box::new(|| {
                k1.verify_at(black_box(&t1_short), NOW)
                    .map_or(0, |o| o.len())
            }),
        ),
        (
            "sha1/sign_into_copy/short",
            Box::new(|| {
                let o = k1.verify_at(black_box(&t1_short), NOW).expect("valid");
                o.copy_to(&mut buf3).expect("fits")
            }),
        ),
    ];

    let n = ops.len();
    let mut times: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); n];
    let mut sink = 0usize;
    // One warm-up round, not recorded.
    for r in 0..=rounds {
        for j in 0..n {
            let i = (j + r) % n;
            let f = &mut ops[i].1;
            let t = Instant::now();
            for _ in 0..BATCH {
                sink = sink.wrapping_add(f());
            }
            let ns = t.elapsed().as_nanos() as f64 / f64::from(BATCH);
            if r > 0 {
                times[i].push(ns);
            }
        }
    }
    black_box(sink);
    let limit = times[0].clone();
    println!("{rounds} interleaved rounds of {BATCH} calls per operation");
    println!("{:<28} {:>10} {:>8}", "operation", "median ns", "x limit");
    let mut results = Vec::new();
    for (i, (name, _)) in ops.iter().enumerate() {
        let ratio = median(times[i].iter().zip(&limit).map(|(t, l)| t / l).collect());
        let med = median(times[i].clone());
        println!("{name:<28} {med:>10.1} {ratio:>8.3}");
        results.push(format!(
            "RESULT op={name} median_ns={med:.2} ratio={ratio:.4}"
        ));
    }
    for r in results {
        println!("{r}");
    }
}
