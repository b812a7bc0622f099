//! The short hashes controllers put in names and labels: FNV-32 or FNV-32a of some bytes,
//! printed in decimal and spelled in upstream's consonant-and-digit alphabet (its
//! `rand.SafeEncodeString`) so a generated name never spells a word. Deployments name their
//! ReplicaSets with FNV-32a (`pod-template-hash`); controller histories name their
//! ControllerRevisions with FNV-32.

const OFFSET_BASIS: u32 = 0x811c_9dc5;
const PRIME: u32 = 0x0100_0193;

/// Which of the two FNV-32 variants: they differ only in the order of the xor and multiply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// FNV-1: multiply, then xor (Go's `fnv.New32`).
    Fnv1,
    /// FNV-1a: xor, then multiply (Go's `fnv.New32a`).
    Fnv1a,
}

/// A running 32-bit FNV hash.
#[derive(Debug, Clone, Copy)]
pub struct Fnv32 {
    variant: Variant,
    state: u32,
}

impl Fnv32 {
    pub fn new(variant: Variant) -> Self {
        Fnv32 {
            variant,
            state: OFFSET_BASIS,
        }
    }

    pub fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.state = match self.variant {
                Variant::Fnv1 => self.state.wrapping_mul(PRIME) ^ u32::from(*byte),
                Variant::Fnv1a => (self.state ^ u32::from(*byte)).wrapping_mul(PRIME),
            };
        }
    }

    /// The hash so far, safely encoded as upstream writes it in names.
    pub fn encoded(&self) -> String {
        safe_encode(&self.state.to_string())
    }
}

/// Upstream's `rand.SafeEncodeString`: each byte mapped into an alphabet without vowels
/// and without the digits and letters that look alike.
pub fn safe_encode(text: &str) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    text.bytes()
        .map(|b| ALPHANUMS[b as usize % ALPHANUMS.len()] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(variant: Variant, text: &str) -> u32 {
        let mut hash = Fnv32::new(variant);
        hash.write(text.as_bytes());
        hash.state
    }

    #[test]
    fn both_variants_match_the_reference_values() {
        // The published FNV test vectors for "a".
        assert_eq!(sum(Variant::Fnv1, "a"), 0x050c_5d7e);
        assert_eq!(sum(Variant::Fnv1a, "a"), 0xe40c_292c);
        assert_eq!(sum(Variant::Fnv1, ""), OFFSET_BASIS);
    }

    #[test]
    fn encoding_uses_the_safe_alphabet() {
        assert_eq!(safe_encode("0123456789"), "456789bcdf");
    }
}
