//! The HMAC blocks of a one-block message, written in 16-octet stores.
//!
//! Why this exists (issue 6, measured by the `probe/inner_*` rows of `--bench ratios`): the
//! block function reads its block 16 octets at a time. Built octet by octet (`K DDD`, the
//! address, `0x80`, the length), each of those loads spans several smaller stores that have not
//! reached the cache yet, and the processor cannot forward them: the load waits until they are
//! written, and the rest of `sign` and `verify` cannot overlap the hashing meanwhile. That
//! stall cost more than everything else around the two compressions. Here each 16-octet chunk
//! of the block is assembled in a register from 16-octet loads of the address and written with
//! one store, which the block function's load then reads straight from the store buffer.
//!
//! The chunk assembly needs byte shifts in SSE2 registers: the address starts 4 octets into the
//! block (after `K DDD`), and its last, partial window moves by a length-dependent amount. Safe
//! Rust cannot express those (`core::arch` intrinsics are `unsafe` to call, and batv-core is
//! `#![forbid(unsafe_code)]`; auto-vectorised array code was measured to be split back into
//! small stores), so this module uses `safe_arch`, whose safe wrappers exist exactly when the
//! target has the instructions (SSE2 is part of every x86-64). On other targets, and for
//! addresses outside 16..=51 octets, [`one_block`] returns `None` and `mac.rs` builds the block
//! octet by octet as before. Both builders are checked against each other for every length,
//! fold and many contents (`tests` below), and the whole HMAC against the `hmac` crate.
//!
//! [`outer_block`] does the same for the outer block of SHA-256: the inner digest, byte-swapped
//! to big-endian in two registers, over the constant padding, in two 16-octet stores.
//!
//! `--cfg batv_portable` (in `RUSTFLAGS`) turns this module off on x86 too, so that the
//! portable paths that other targets run are tested here as well (`tests/rust.sh` does).

#[cfg(all(any(target_arch = "x86_64", target_arch = "x86"), target_feature = "sse2", not(batv_portable)))]
mod sse2 {
    /// Shortest address this builder takes: its first 16 octets are loaded at once.
    pub(crate) const MIN_LEN: usize = 16;
    /// Longest address whose `K DDD address`, `0x80` and 8-octet length fit in one 64-octet
    /// block.
    pub(crate) const MAX_LEN: usize = 64 - 4 - 1 - 8;

    use safe_arch::{
        add_i8_m128i, bitand_m128i, bitor_m128i, bitxor_m128i, byte_shl_imm_u128_m128i,
        byte_shr_imm_u128_m128i, cmp_eq_mask_i8_m128i, cmp_gt_mask_i8_m128i, cmp_lt_mask_i8_m128i,
        load_unaligned_m128i, m128i, move_mask_i8_m128i, set_i32_m128i_s, set_i64_m128i_s,
        set_splat_i8_m128i, shl_all_u64_m128i, shl_imm_u16_m128i, shr_all_u64_m128i,
        shr_imm_u16_m128i, shuffle_ai_i16_h64all_m128i, shuffle_ai_i16_l64all_m128i,
        store_unaligned_m128i, zeroed_m128i,
    };

    /// `0x80` at index 64: the 16 octets from `64 - k` hold the padding marker at lane `k`.
    static END: [u8; 128] = {
        let mut t = [0u8; 128];
        t[64] = 0x80;
        t
    };

    /// `0x20` from index 64 on: the 16 octets from `64 + k` fold every lane, from `64 - k`
    /// fold lanes `k..`, and from `0` fold none.
    static FOLD: [u8; 128] = {
        let mut t = [0u8; 128];
        let mut i = 64;
        while i < 128 {
            t[i] = 0x20;
            i += 1;
        }
        t
    };

    /// The 16 octets of `bytes` from `at`, or `None` past the end.
    #[inline(always)]
    fn load(bytes: &[u8], at: usize) -> Option<m128i> {
        bytes.get(at..)?.first_chunk::<16>().map(load_unaligned_m128i)
    }

    /// ASCII upper-case letters OR `mask` (0x20 where a lane folds, 0 where it does not).
    #[inline(always)]
    fn fold(v: m128i, mask: m128i) -> m128i {
        // Moves `A..=Z` to the bottom of the signed range, so one signed compare finds them.
        let shifted = add_i8_m128i(v, set_splat_i8_m128i((0x80u8.wrapping_sub(b'A')) as i8));
        let upper = cmp_lt_mask_i8_m128i(shifted, set_splat_i8_m128i((0x80u8 + 26) as i8));
        bitor_m128i(v, bitand_m128i(upper, mask))
    }

    /// Lanes moved down by `s` (0..16), zeros shifted in.
    #[inline(always)]
    fn shift_down(v: m128i, s: usize) -> m128i {
        let v = if s >= 8 { byte_shr_imm_u128_m128i::<8>(v) } else { v };
        let bits = ((s & 7) * 8) as i64;
        // Each 64-bit half shifted, plus the bits the high half hands to the low one (a shift
        // by 64 gives 0, so `bits == 0` needs no special case).
        let halves = shr_all_u64_m128i(v, set_i64_m128i_s(bits));
        let carry = shl_all_u64_m128i(byte_shr_imm_u128_m128i::<8>(v), set_i64_m128i_s(64 - bits));
        bitor_m128i(halves, carry)
    }

    /// Chunk `c` of the block (octets `16 c..16 c + 16`), before the length: the address
    /// octets it holds (`K DDD` too in chunk 0), folded, and the `0x80` that ends the message.
    #[inline(always)]
    fn chunk(c: usize, kddd: m128i, a: &[u8], last: m128i, fold_from: usize) -> Option<m128i> {
        let len = a.len();
        let data = if c == 0 {
            bitor_m128i(byte_shl_imm_u128_m128i::<4>(load(a, 0)?), kddd)
        } else if 16 * c + 12 <= len {
            load(a, 16 * c - 4)?
        } else if 16 * c - 4 < len {
            shift_down(last, 16 * c + 12 - len)
        } else {
            zeroed_m128i()
        };
        // Lanes whose address index is at least `fold_from` fold; lane `n - 16 c` ends it.
        let mask = load(&FOLD, (64 + 16 * c).saturating_sub(4 + fold_from.min(64)).min(112))?;
        let end = load(&END, (64 + 16 * c).checked_sub(4 + len)?)?;
        Some(bitor_m128i(fold(data, mask), end))
    }

    /// See [`super::scan`].
    #[inline(always)]
    pub(crate) fn scan<const SIGN: bool>(b: &[u8]) -> Option<(bool, Option<usize>)> {
        if b.len() < 16 {
            return None;
        }
        let splat = |c: u8| set_splat_i8_m128i(c as i8);
        // Unsigned "below c" as a signed compare: flipping the high bit of both sides maps
        // 0..=255 onto -128..=127 in order.
        let below = |v: m128i, c: u8| cmp_lt_mask_i8_m128i(bitxor_m128i(v, splat(0x80)), splat(c ^ 0x80));
        let mut flags = 0i32;
        let mut last_at = None;
        let mut visit = |at: usize| -> Option<()> {
            let v = load(b, at)?;
            let f = if SIGN {
                // Controls and space; 0x7f and every non-ASCII octet; `<` and `>` (bit 1 set
                // maps exactly those two onto `>`).
                let high = cmp_gt_mask_i8_m128i(bitxor_m128i(v, splat(0x80)), splat(0x7e ^ 0x80));
                bitor_m128i(bitor_m128i(below(v, 0x21), high), cmp_eq_mask_i8_m128i(bitor_m128i(v, splat(2)), splat(b'>')))
            } else {
                bitor_m128i(below(v, 0x20), cmp_eq_mask_i8_m128i(v, splat(0x7f)))
            };
            flags |= move_mask_i8_m128i(f);
            let ats = move_mask_i8_m128i(cmp_eq_mask_i8_m128i(v, splat(b'@'))) as u32;
            if ats != 0 {
                last_at = Some(at + (31 - ats.leading_zeros() as usize));
            }
            Some(())
        };
        // Whole windows, then the last 16 octets (a byte seen twice changes nothing, and
        // positions only grow).
        if b.len() > 32 {
            for k in 0..b.len() / 16 {
                visit(16 * k)?;
            }
        } else {
            visit(0)?;
        }
        visit(b.len() - 16)?;
        Some((flags != 0, last_at))
    }

    /// See [`super::outer_block`].
    #[inline(always)]
    pub(crate) fn outer_block(digest: &[u32; 8], padding: &[u8; 64]) -> [[u8; 64]; 1] {
        // Each 32-bit lane to big-endian: swap its 16-bit halves, then the octets of each half.
        let be = |w: [u32; 4]| {
            let v = m128i::from(w);
            let v = shuffle_ai_i16_h64all_m128i::<0b10_11_00_01>(shuffle_ai_i16_l64all_m128i::<0b10_11_00_01>(v));
            bitor_m128i(shl_imm_u16_m128i::<8>(v), shr_imm_u16_m128i::<8>(v))
        };
        let [a, b, c, d, e, f, g, h] = *digest;
        let mut block = [*padding];
        if let Some((c0, rest)) = block[0].split_first_chunk_mut::<16>() {
            store_unaligned_m128i(c0, be([a, b, c, d]));
            if let Some((c1, _)) = rest.split_first_chunk_mut::<16>() {
                store_unaligned_m128i(c1, be([e, f, g, h]));
            }
        }
        block
    }

    /// See [`super::one_block`].
    #[inline(always)]
    pub(crate) fn one_block(kddd: &[u8; 4], a: &[u8], fold_from: usize) -> Option<[[u8; 64]; 1]> {
        let len = a.len();
        if !(MIN_LEN..=MAX_LEN).contains(&len) {
            return None;
        }
        // Block octet p holds message octet p: `K DDD` for p < 4, then address octet p - 4.
        let kddd = set_i32_m128i_s(i32::from_le_bytes(*kddd));
        // The last 16 address octets, for the chunk where the address ends.
        let last = load(a, len - 16)?;
        let bits = ((64 + 4 + len) as u64 * 8).to_be_bytes();
        let length = byte_shl_imm_u128_m128i::<8>(set_i64_m128i_s(i64::from_le_bytes(bits)));
        let mut block = [[0u8; 64]; 1];
        let (c0, rest) = block[0].split_first_chunk_mut::<16>()?;
        let (c1, rest) = rest.split_first_chunk_mut::<16>()?;
        let (c2, c3) = rest.split_first_chunk_mut::<16>()?;
        let c3: &mut [u8; 16] = c3.try_into().ok()?;
        store_unaligned_m128i(c0, chunk(0, kddd, a, last, fold_from)?);
        store_unaligned_m128i(c1, chunk(1, kddd, a, last, fold_from)?);
        store_unaligned_m128i(c2, chunk(2, kddd, a, last, fold_from)?);
        store_unaligned_m128i(c3, bitor_m128i(chunk(3, kddd, a, last, fold_from)?, length));
        Some(block)
    }
}

/// `K DDD address`, the address folded to lower case from octet `fold_from` on, padded for a
/// hash that has already compressed one 64-octet key block: one block, written in 16-octet
/// stores. `None` when the address is not 16..=51 octets or the target has no SSE2.
#[inline(always)]
pub(crate) fn one_block(kddd: &[u8; 4], address: &[u8], fold_from: usize) -> Option<[[u8; 64]; 1]> {
    #[cfg(all(any(target_arch = "x86_64", target_arch = "x86"), target_feature = "sse2", not(batv_portable)))]
    {
        sse2::one_block(kddd, address, fold_from)
    }
    #[cfg(not(all(any(target_arch = "x86_64", target_arch = "x86"), target_feature = "sse2", not(batv_portable))))]
    {
        let _ = (kddd, address, fold_from);
        None
    }
}

/// The outer HMAC block of SHA-256: the inner digest (state words, written big-endian) in two
/// 16-octet stores over `padding`. `None` without SSE2.
#[inline(always)]
pub(crate) fn outer_block(digest: &[u32; 8], padding: &[u8; 64]) -> Option<[[u8; 64]; 1]> {
    #[cfg(all(any(target_arch = "x86_64", target_arch = "x86"), target_feature = "sse2", not(batv_portable)))]
    {
        Some(sse2::outer_block(digest, padding))
    }
    #[cfg(not(all(any(target_arch = "x86_64", target_arch = "x86"), target_feature = "sse2", not(batv_portable))))]
    {
        let _ = (digest, padding);
        None
    }
}

/// One pass over an address of 16 octets or more, 16 at a time: whether an octet is flagged
/// and where the last `@` is. Flagged means a control character or 0x7f; with `SIGN` also a
/// space, `<`, `>` or a non-ASCII octet. `None` for shorter input or without SSE2.
#[inline(always)]
pub(crate) fn scan<const SIGN: bool>(b: &[u8]) -> Option<(bool, Option<usize>)> {
    #[cfg(all(any(target_arch = "x86_64", target_arch = "x86"), target_feature = "sse2", not(batv_portable)))]
    {
        sse2::scan::<SIGN>(b)
    }
    #[cfg(not(all(any(target_arch = "x86_64", target_arch = "x86"), target_feature = "sse2", not(batv_portable))))]
    {
        let _ = b;
        None
    }
}

#[cfg(all(test, any(target_arch = "x86_64", target_arch = "x86"), target_feature = "sse2", not(batv_portable)))]
mod tests {
    use super::sse2::{MAX_LEN, MIN_LEN};
    use super::*;

    /// The block as `mac.rs` writes it without this module.
    fn octet_block(kddd: &[u8; 4], a: &[u8], fold_from: usize) -> [[u8; 64]; 1] {
        let n = 4 + a.len();
        let mut b = [[0u8; 64]; 1];
        let bytes = b.as_flattened_mut();
        bytes[..4].copy_from_slice(kddd);
        for (i, (d, &s)) in bytes[4..n].iter_mut().zip(a).enumerate() {
            *d = if i >= fold_from { s.to_ascii_lowercase() } else { s };
        }
        bytes[n] = 0x80;
        bytes[56..].copy_from_slice(&((64 + n) as u64 * 8).to_be_bytes());
        b
    }

    #[test]
    fn outer_block_writes_the_digest_big_endian_over_the_padding() {
        let mut x: u32 = 0x9e37_79b9;
        let mut padding = [0u8; 64];
        for (i, p) in padding.iter_mut().enumerate() {
            *p = (i as u8).wrapping_mul(37);
        }
        for _ in 0..1000 {
            let digest: [u32; 8] = core::array::from_fn(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x
            });
            let mut want = padding;
            for (d, w) in want.chunks_exact_mut(4).zip(&digest) {
                d.copy_from_slice(&w.to_be_bytes());
            }
            assert_eq!(outer_block(&digest, &padding), Some([want]), "{digest:08x?}");
        }
    }

    #[test]
    fn matches_the_octet_builder_for_every_length_fold_and_many_contents() {
        // Every octet value in every position across the runs, the letters' neighbours
        // (`@`, `[`, backquote, `{`) and high octets included.
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut checked = 0;
        for len in 0..=64usize {
            for round in 0..64 {
                let a: Vec<u8> = (0..len)
                    .map(|i| match (next() % 4, round % 2) {
                        (0, _) => next() as u8,
                        (1, _) => b"@AZ[`az{"[(next() % 8) as usize],
                        _ => b'A' + ((i + round) % 58) as u8,
                    })
                    .collect();
                let kddd = [b'0' + (round % 10) as u8, b'9', b'0', b'5'];
                for fold_from in [0, 1, 5, len / 2, len.saturating_sub(1), len, usize::MAX] {
                    let got = one_block(&kddd, &a, fold_from);
                    if (MIN_LEN..=MAX_LEN).contains(&len) {
                        assert_eq!(got, Some(octet_block(&kddd, &a, fold_from)), "{len} octets, fold from {fold_from}");
                        checked += 1;
                    } else {
                        assert_eq!(got, None, "{len} octets");
                    }
                }
            }
        }
        assert_eq!(checked, (MAX_LEN - MIN_LEN + 1) * 64 * 7);
    }
}
