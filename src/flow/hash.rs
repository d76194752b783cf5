//! A fast hasher for the connection tables: the multiply-rotate scheme of rustc's FxHash,
//! seeded per table from the standard library's random keys so that a crafted capture
//! cannot predict collisions. SipHash was the single largest cost of the flow stage.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;

/// The hasher state.
#[derive(Debug, Clone, Copy)]
pub struct FlowHasher {
    hash: u64,
}

impl FlowHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(K);
    }
}

impl Hasher for FlowHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            for (d, b) in w.iter_mut().zip(rest) {
                *d = *b;
            }
            self.add(u64::from_le_bytes(w));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        // A final mix so that the low bits (used by the table) depend on every input bit.
        let h = self.hash;
        (h ^ (h >> 29)).wrapping_mul(K) ^ (h >> 32)
    }
}

/// Builds [`FlowHasher`]s with a per-table random seed.
#[derive(Debug, Clone, Copy)]
pub struct FlowHashBuilder {
    seed: u64,
}

impl Default for FlowHashBuilder {
    fn default() -> Self {
        FlowHashBuilder {
            seed: RandomState::new().hash_one(0x5eed_u64),
        }
    }
}

impl FlowHashBuilder {
    /// A builder with a fixed seed (the same hashes in every thread and run).
    pub fn with_seed(seed: u64) -> Self {
        FlowHashBuilder { seed }
    }
}

impl BuildHasher for FlowHashBuilder {
    type Hasher = FlowHasher;
    #[inline]
    fn build_hasher(&self) -> FlowHasher {
        FlowHasher { hash: self.seed }
    }
}

/// A hash map keyed for flow lookups.
pub type FlowMap<K, V> = std::collections::HashMap<K, V, FlowHashBuilder>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    #[test]
    fn distinct_endpoints_hash_apart_and_equal_ones_together() {
        let b = FlowHashBuilder::default();
        let a: SocketAddr = "10.0.0.1:50000".parse().unwrap();
        let c: SocketAddr = "10.0.0.1:50001".parse().unwrap();
        assert_eq!(b.hash_one((a, c)), b.hash_one((a, c)));
        assert_ne!(b.hash_one((a, c)), b.hash_one((c, a)));
        let mut m: FlowMap<(SocketAddr, SocketAddr), u32> = FlowMap::default();
        for p in 1..5000u16 {
            m.insert((a, SocketAddr::new(a.ip(), p)), u32::from(p));
        }
        assert_eq!(m.len(), 4999);
        assert_eq!(m.get(&(a, SocketAddr::new(a.ip(), 77))), Some(&77));
    }
}
