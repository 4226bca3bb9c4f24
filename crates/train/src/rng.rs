//! The epoch's random stream with its position, so that a run killed mid-epoch resumes
//! with exactly the numbers the uninterrupted run would have drawn.
//!
//! [`EpochRng`] is the run's `StdRng` (ChaCha12, seeded by `trainer::epoch_seed`) that
//! counts the 32-bit words it hands out. ChaCha's block generator hands out whole words:
//! `next_u32` takes one, `next_u64` two (also across a block boundary), and `fill_bytes`
//! of `n` bytes `ceil(n / 4)` (a partial word's other bytes are dropped). The position is
//! therefore one number, stored in the checkpoint, and [`EpochRng::at`] gets back to it
//! by drawing and discarding that many words: no generator state is serialised, and
//! `rand`'s `StdRng` exposes none.

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

pub struct EpochRng {
    inner: StdRng,
    words: u64,
}

impl EpochRng {
    pub fn new(seed: u64) -> EpochRng {
        EpochRng {
            inner: StdRng::seed_from_u64(seed),
            words: 0,
        }
    }

    /// The stream of `seed` after `words` words have been drawn.
    pub fn at(seed: u64, words: u64) -> EpochRng {
        let mut r = EpochRng::new(seed);
        // Whole words at a time: 4 k bytes take exactly k words.
        let mut buf = [0u8; 1 << 16];
        let mut left = words;
        while left > 0 {
            let k = left.min((buf.len() / 4) as u64) as usize;
            r.inner.fill_bytes(&mut buf[..4 * k]);
            left -= k as u64;
        }
        r.words = words;
        r
    }

    /// Words drawn so far.
    pub fn words(&self) -> u64 {
        self.words
    }
}

impl RngCore for EpochRng {
    fn next_u32(&mut self) -> u32 {
        self.words += 1;
        self.inner.next_u32()
    }

    fn next_u64(&mut self) -> u64 {
        self.words += 2;
        self.inner.next_u64()
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.words += dest.len().div_ceil(4) as u64;
        self.inner.fill_bytes(dest)
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        self.words += dest.len().div_ceil(4) as u64;
        self.inner.try_fill_bytes(dest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::{any, prop, prop_assert_eq, proptest};
    use rand::Rng;

    /// One draw of the kinds the trainer's streams make.
    fn draw(r: &mut EpochRng, kind: u8, len: usize, out: &mut Vec<u64>) {
        match kind % 5 {
            0 => out.push(r.next_u32() as u64),
            1 => out.push(r.next_u64()),
            2 => {
                let mut b = vec![0u8; len];
                r.fill_bytes(&mut b);
                out.extend(b.iter().map(|&v| v as u64));
            }
            3 => out.push(r.gen::<f32>().to_bits() as u64),
            _ => out.push(r.gen_range(0..len.max(1)) as u64),
        }
    }

    proptest! {
        /// After any mixture of draws (words, pairs, odd byte counts across block
        /// boundaries, floats, ranges), a stream rebuilt at the counted position draws
        /// what the original draws next.
        #[test]
        fn a_stream_rebuilt_at_its_position_continues_it(
            seed in any::<u64>(),
            calls in prop::collection::vec((any::<u8>(), 0usize..300), 0..200),
            after in prop::collection::vec((any::<u8>(), 0usize..300), 1..50),
        ) {
            let mut a = EpochRng::new(seed);
            let mut sink = vec![];
            for &(k, n) in &calls {
                draw(&mut a, k, n, &mut sink);
            }
            let mut b = EpochRng::at(seed, a.words());
            let (mut xa, mut xb) = (vec![], vec![]);
            for &(k, n) in &after {
                draw(&mut a, k, n, &mut xa);
                draw(&mut b, k, n, &mut xb);
            }
            prop_assert_eq!(xa, xb);
            prop_assert_eq!(a.words(), b.words());
        }
    }
}
