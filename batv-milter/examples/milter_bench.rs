//! Measuring tools for batv-milter (bench/compare and RELIABILITY.md use them).
//!
//!   milter_bench null unix:/path         a milter on indymilter that does nothing, negotiating
//!                                        the same stages as batv-milter (the cost baseline)
//!   milter_bench drive unix:/path N C    N transactions (connect, MAIL, RCPT, end of message)
//!                                        over C connections at once; prints transactions/s
//!   milter_bench junk unix:/path N       N connections of malformed packets (see `junk`)
//!   milter_bench idle unix:/path N SECS  holds N idle connections open for SECS seconds
//!
//! Build: cargo build --release -p batv-milter --examples

use indymilter::{Actions, Callbacks, MacroStage, ProtoOpts, Status};
use indymilter_test::TestConnection;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::{UnixListener, UnixStream};

fn path(spec: &str) -> PathBuf {
    PathBuf::from(spec.strip_prefix("unix:").unwrap_or(spec))
}

async fn null(sock: PathBuf) {
    let _ = std::fs::remove_file(&sock);
    let listener = UnixListener::bind(&sock).expect("bind");
    let callbacks: Callbacks<ProtoOpts> = Callbacks::new()
        .on_negotiate(|cx, _, mta_opts| {
            Box::pin(async move {
                cx.requested_actions = Actions::CHANGE_SENDER | Actions::ADD_HEADER | Actions::CHANGE_HEADER;
                let opts = ProtoOpts::NO_HELO
                    | ProtoOpts::NO_BODY
                    | ProtoOpts::NO_UNKNOWN
                    | ProtoOpts::NO_DATA
                    | ProtoOpts::NO_HEADER
                    | ProtoOpts::NO_EOH;
                let quiet = (ProtoOpts::NOREPLY_CONNECT | ProtoOpts::NOREPLY_MAIL) & mta_opts;
                cx.requested_opts = (opts & mta_opts) | quiet;
                cx.data = Some(quiet);
                Status::Continue
            })
        })
        .on_connect(|cx, _, _| {
            let quiet = cx.data.is_some_and(|q| q.contains(ProtoOpts::NOREPLY_CONNECT));
            Box::pin(async move { if quiet { Status::Noreply } else { Status::Continue } })
        })
        .on_mail(|cx, _| {
            let quiet = cx.data.is_some_and(|q| q.contains(ProtoOpts::NOREPLY_MAIL));
            Box::pin(async move { if quiet { Status::Noreply } else { Status::Continue } })
        })
        .on_rcpt(|_, _| Box::pin(async { Status::Continue }))
        .on_eom(|_| Box::pin(async { Status::Continue }))
        .on_abort(|_| Box::pin(async { Status::Continue }));
    let config = indymilter::Config { max_connections: 1024, ..Default::default() };
    let shutdown = async {
        let mut t = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal");
        t.recv().await;
    };
    indymilter::run(listener, callbacks, config, shutdown).await.expect("milter");
    let _ = std::fs::remove_file(&sock);
}

/// One outgoing transaction from a trusted client: signed at end of message by batv-milter.
async fn transaction(c: &mut TestConnection) -> bool {
    let ok = c.macros(MacroStage::Connect, [("{daemon_name}", "mx")]).await.is_ok()
        && c.connect("localhost", [127, 0, 0, 1]).await.is_ok()
        && c.macros(MacroStage::Mail, [("i", "4ABCDEF")]).await.is_ok()
        && c.mail(["<alice@example.test>", "SIZE=100"]).await.is_ok()
        && c.rcpt(["<bob@remote.example>"]).await.is_ok();
    ok && matches!(c.eom().await, Ok((_, indymilter_test::Status::Continue)))
}

async fn drive(sock: PathBuf, n: usize, conc: usize) {
    // Postfix opens one milter connection per SMTP session; here each message is one
    // session, and `conc` of them run at a time.
    let per = n / conc;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let sock = sock.clone();
        tasks.push(tokio::spawn(async move {
            let mut ok = 0usize;
            for _ in 0..per {
                let Ok(mut c) = TestConnection::configure().open_unix(&sock).await else { continue };
                if transaction(&mut c).await {
                    ok += 1;
                }
                let _ = c.close().await;
            }
            ok
        }));
    }
    let mut ok = 0;
    for t in tasks {
        ok += t.await.unwrap_or(0);
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "transactions={} ok={} seconds={:.3} per_second={:.0} us_per_transaction={:.1}",
        per * conc,
        ok,
        secs,
        ok as f64 / secs,
        secs * 1e6 / ok.max(1) as f64
    );
}

/// Malformed milter traffic, one connection each: garbage, a length over the 1 MiB limit, a
/// truncated packet, an unknown command, a negotiation with nonsense, a zero length, every
/// fifth a proper negotiation followed by random commands, and every hundredth an oversized
/// packet with half a megabyte of data behind it.
async fn junk(sock: PathBuf, n: usize) {
    let samples: [&[u8]; 7] = [
        b"\xff\xff\xff\xffgarbage",
        b"\x00\x10\x00\x01O",
        b"\x00\x00\x00\x0dO\x00\x00\x00\x06",
        b"\x00\x00\x00\x01Q",
        b"\x00\x00\x00\x05X\x01\x02\x03\x04",
        b"\x00\x00\x00\x0dO\x00\x00\x00\x06\xff\xff\xff\xff\xff\xff\xff\xff",
        b"\x00\x00\x00\x00",
    ];
    // A packet announcing 1 MiB - 1 (indymilter's own limit) followed by 512 KiB of data.
    let mut big = 0x000f_ffffu32.to_be_bytes().to_vec();
    big.push(b'O');
    big.resize(big.len() + 512 * 1024, 0);
    let mut sent = 0;
    let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ n as u64;
    let start = Instant::now();
    for i in 0..n {
        if let Ok(mut s) = UnixStream::connect(&sock).await {
            if i % 5 == 4 {
                // A proper negotiation, then a conversation of random commands.
                let _ = s.write_all(&negotiation()).await;
                let _ = s.write_all(&random_packets(&mut rng)).await;
                let _ = s.shutdown().await;
                sent += 1;
                continue;
            }
            let sample = if i % 100 == 99 { &big[..] } else { samples[i % samples.len()] };
            let _ = s.write_all(sample).await;
            // Some close at once, some leave the daemon waiting for the rest.
            if i.is_multiple_of(2) {
                let _ = s.shutdown().await;
            }
            sent += 1;
        }
    }
    println!("junk_connections={sent} seconds={:.2}", start.elapsed().as_secs_f64());
}

fn packet(cmd: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = ((payload.len() + 1) as u32).to_be_bytes().to_vec();
    v.push(cmd);
    v.extend_from_slice(payload);
    v
}

/// Protocol version 6, every action and every protocol option offered.
fn negotiation() -> Vec<u8> {
    let mut p = 6u32.to_be_bytes().to_vec();
    p.extend_from_slice(&0x1ffu32.to_be_bytes());
    p.extend_from_slice(&0x1f_ffffu32.to_be_bytes());
    packet(b'O', &p)
}

fn next(rng: &mut u64) -> u64 {
    // xorshift64: reproducible noise, no dependency.
    *rng ^= *rng << 13;
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    *rng
}

/// 1 to 24 packets of milter commands (connect, macros, MAIL, RCPT, headers, end of message,
/// abort, quit, and unknown letters) with payloads of random octets, NUL-separated words,
/// addresses with and without brackets, and tags.
fn random_packets(rng: &mut u64) -> Vec<u8> {
    const CMDS: &[u8] = b"CDMRLNHTEBAQUKO?\x00";
    const WORDS: &[&[u8]] = &[
        b"<>", b"<alice@example.test>", b"alice@example.test", b"<prvs=1234abcdef=alice@example.test>",
        b"<prvs=x=alice@example.test", b"{daemon_name}", b"ORIGINATING", b"{auth_authen}", b"i", b"X-BATV",
        b"<@a,@b:c@example.test>", b"\xff\xfe", b"", b"SIZE=1", b"<\"q@\"@example.test>", b"127.0.0.1",
    ];
    let mut out = Vec::new();
    for _ in 0..(1 + next(rng) % 24) {
        let cmd = CMDS[(next(rng) % CMDS.len() as u64) as usize];
        let mut payload = Vec::new();
        match next(rng) % 3 {
            0 => {
                for _ in 0..next(rng) % 300 {
                    payload.push(next(rng) as u8);
                }
            }
            _ => {
                if cmd == b'D' || next(rng).is_multiple_of(4) {
                    payload.push(b"CHMRTLNE"[(next(rng) % 8) as usize]);
                }
                for _ in 0..next(rng) % 6 {
                    payload.extend_from_slice(WORDS[(next(rng) % WORDS.len() as u64) as usize]);
                    payload.push(0);
                }
            }
        }
        out.extend_from_slice(&packet(cmd, &payload));
    }
    out
}

async fn idle(sock: PathBuf, n: usize, secs: u64) {
    let mut held = Vec::new();
    for _ in 0..n {
        match UnixStream::connect(&sock).await {
            Ok(s) => held.push(s),
            Err(e) => {
                eprintln!("connect failed after {}: {e}", held.len());
                break;
            }
        }
    }
    println!("idle_connections={}", held.len());
    tokio::time::sleep(Duration::from_secs(secs)).await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let a: Vec<String> = std::env::args().collect();
    let arg = |i: usize| a.get(i).map(String::as_str).unwrap_or("");
    let num = |i: usize| arg(i).parse::<usize>().expect("a number");
    match arg(1) {
        "null" => null(path(arg(2))).await,
        "drive" => drive(path(arg(2)), num(3), num(4)).await,
        "junk" => junk(path(arg(2)), num(3)).await,
        "idle" => idle(path(arg(2)), num(3), num(4) as u64).await,
        _ => {
            eprintln!("usage: milter_bench null|drive|junk|idle unix:/path [N [C|SECS]]");
            std::process::exit(2);
        }
    }
}
