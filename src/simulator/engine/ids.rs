//! Seeded randomness and id rendering. Everything random in the simulator is a hash of the
//! seed and a stable key (batch sequence, request index, custom_id, a counter), never a
//! thread RNG: the same seed and the same traffic give the same bytes, in any process.

use xxhash_rust::xxh3::Xxh3;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Builds a 64/128-bit hash from the seed and typed parts; parts are length-prefixed so
/// `("ab","c")` and `("a","bc")` differ.
pub struct Key(Xxh3);

impl Key {
    pub fn new(seed: u64, domain: &str) -> Self {
        let mut h = Xxh3::with_seed(seed);
        h.update(domain.as_bytes());
        Key(h)
    }

    pub fn u64(mut self, v: u64) -> Self {
        self.0.update(&v.to_le_bytes());
        self
    }

    pub fn str(mut self, s: &str) -> Self {
        self.0.update(&(s.len() as u64).to_le_bytes());
        self.0.update(s.as_bytes());
        self
    }

    pub fn hash64(&self) -> u64 {
        self.0.digest()
    }

    pub fn hash128(&self) -> u128 {
        self.0.digest128()
    }

    /// A uniform draw in `[0, 1)`.
    pub fn unit(&self) -> f64 {
        unit_from(self.hash64())
    }
}

/// Maps 53 high bits of a hash onto `[0, 1)`.
pub fn unit_from(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// Fixed-width base62 rendering, so ids have a stable length like the real ones (the
/// lowest `width` digits). Ten digits at a time in `u64` (62^10 < 2^64): one 128-bit
/// division per ten digits instead of one per digit, which made ids a third of a
/// results line's cost.
pub fn base62(n: u128, width: usize) -> String {
    let mut out = Vec::with_capacity(width);
    write_base62(n, width, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// [`base62`] appended to `out`.
pub fn write_base62(mut n: u128, width: usize, out: &mut Vec<u8>) {
    const TEN: u128 = 62u128.pow(10);
    let start = out.len();
    out.resize(start + width, b'0');
    for block in out[start..].rchunks_mut(10) {
        let mut low = (n % TEN) as u64;
        n /= TEN;
        for slot in block.iter_mut().rev() {
            *slot = ALPHABET[(low % 62) as usize];
            low /= 62;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_length_prefixed() {
        let ab = Key::new(0, "t").str("ab").str("c").hash64();
        let a_bc = Key::new(0, "t").str("a").str("bc").hash64();
        assert_ne!(ab, a_bc);
    }

    #[test]
    fn base62_renders_the_lowest_digits_like_one_digit_at_a_time() {
        fn naive(mut n: u128, width: usize) -> String {
            let mut out = vec![b'0'; width];
            for slot in out.iter_mut().rev() {
                *slot = ALPHABET[(n % 62) as usize];
                n /= 62;
            }
            String::from_utf8(out).unwrap()
        }
        let mut values = vec![0, 1, 61, 62, u128::from(u64::MAX), u128::MAX, 62u128.pow(10) - 1];
        values.extend((0..200).map(|i| Key::new(9, "b62").u64(i).hash128()));
        for n in values {
            for width in [1, 9, 10, 11, 20, 22, 24, 30] {
                assert_eq!(base62(n, width), naive(n, width), "{n} width {width}");
            }
        }
    }

    #[test]
    fn unit_draws_stay_in_range() {
        for i in 0..1000 {
            let u = Key::new(3, "u").u64(i).unit();
            assert!((0.0..1.0).contains(&u));
        }
        assert!(unit_from(u64::MAX) < 1.0);
    }
}
