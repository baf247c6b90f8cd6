//! The rendezvous score: a hash every speaker, on every architecture and release, computes alike.
//!
//! SipHash-2-4 (Aumasson and Bernstein, 2012) is written out here rather than taken from `std`
//! or a crate: `std`'s hashers promise no stable output, and the score decides where traffic
//! goes, so its definition must live in this repository, checked against the reference vectors
//! of the SipHash paper. SipHash rather than FNV: node names differ in their last bytes, and FNV
//! leaves such inputs correlated, which would skew the balance between nodes.

use std::net::IpAddr;

/// The SipHash key of [`score`]: the 16 ASCII bytes `ironlb-announcer`. Part of the promise in
/// the module documentation: never change it.
pub const HASH_KEY: [u8; 16] = *b"ironlb-announcer";

/// The rendezvous score of `node_name` for an announcement whose key is `key`: the winner is
/// the eligible node with the highest score.
///
/// `SipHash-2-4(HASH_KEY, node_name ‖ 0x00 ‖ key in canonical text)`, read as SipHash defines
/// its output (the little-endian `u64`). Canonical text is dotted decimal for IPv4 and RFC 5952
/// for IPv6, as `Display` of [`IpAddr`] writes them; the test vectors pin that too.
///
/// Test vectors (also pinned by the test `winner_is_pinned_by_test_vectors`):
///
/// | node name | key            | message bytes                | score                |
/// |-----------|----------------|------------------------------|----------------------|
/// | `node-a`  | `192.168.2.10` | `node-a` `00` `192.168.2.10` | `0xc101eb3a1a9eaccf` |
/// | `node-b`  | `2001:db8::1`  | `node-b` `00` `2001:db8::1`  | `0xd7d0dc433853f659` |
pub fn score(node_name: &str, key: IpAddr) -> u64 {
    siphash_2_4(&HASH_KEY, format!("{node_name}\0{key}").as_bytes())
}

/// SipHash-2-4 of `message` under `key` (16 bytes, read as two little-endian words).
pub(super) fn siphash_2_4(key: &[u8; 16], message: &[u8]) -> u64 {
    let (k0, k1) = (le_word(&key[..8]), le_word(&key[8..]));
    let mut state = SipState([
        k0 ^ 0x736f_6d65_7073_6575,
        k1 ^ 0x646f_7261_6e64_6f6d,
        k0 ^ 0x6c79_6765_6e65_7261,
        k1 ^ 0x7465_6462_7974_6573,
    ]);
    let words = message.chunks_exact(8);
    // The last word holds the leftover bytes and, in its top byte, the length modulo 256.
    let last = le_word(words.remainder()) | u64::from(message.len() as u8) << 56;
    for word in words.map(le_word).chain([last]) {
        state.0[3] ^= word;
        state.rounds(2);
        state.0[0] ^= word;
    }
    state.0[2] ^= 0xff;
    state.rounds(4);
    let [v0, v1, v2, v3] = state.0;
    v0 ^ v1 ^ v2 ^ v3
}

/// Up to eight bytes as a little-endian word, missing high bytes zero.
fn le_word(bytes: &[u8]) -> u64 {
    bytes.iter().rev().fold(0, |word, &byte| word << 8 | u64::from(byte))
}

struct SipState([u64; 4]);

impl SipState {
    /// `count` SipRounds.
    fn rounds(&mut self, count: usize) {
        let [v0, v1, v2, v3] = &mut self.0;
        for _ in 0..count {
            *v0 = v0.wrapping_add(*v1);
            *v1 = v1.rotate_left(13) ^ *v0;
            *v0 = v0.rotate_left(32);
            *v2 = v2.wrapping_add(*v3);
            *v3 = v3.rotate_left(16) ^ *v2;
            *v0 = v0.wrapping_add(*v3);
            *v3 = v3.rotate_left(21) ^ *v0;
            *v2 = v2.wrapping_add(*v1);
            *v1 = v1.rotate_left(17) ^ *v2;
            *v2 = v2.rotate_left(32);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference vectors of the SipHash paper (appendix A): key `00 01 … 0f`, message
    /// `00 01 … (len-1)`.
    #[test]
    fn siphash_matches_the_reference_vectors() {
        let key: [u8; 16] = std::array::from_fn(|i| i as u8);
        let message: Vec<u8> = (0..64).collect();
        let vectors = [
            (0, 0x726f_db47_dd0e_0e31),
            (1, 0x74f8_39c5_93dc_67fd),
            (7, 0xab02_00f5_8b01_d137),
            (8, 0x93f5_f579_9a93_2462),
            (15, 0xa129_ca61_49be_45e5),
            (16, 0x3f2a_cc7f_57c2_9bdb),
            (63, 0x958a_324c_eb06_4572),
        ];
        for (len, expected) in vectors {
            assert_eq!(siphash_2_4(&key, &message[..len]), expected, "message of {len} bytes");
        }
    }
}
