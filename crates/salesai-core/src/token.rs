//! API tokens: random, shown once, stored only as a hash.

use rand::RngCore;
use sha2::{Digest, Sha256};

/// The prefix every salesai token carries, so a leaked one is recognisable in a secret scanner.
pub const TOKEN_PREFIX: &str = "sai_";

/// A fresh token: the prefix and 32 random bytes in hex (256 bits of entropy).
pub fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{TOKEN_PREFIX}{}", hex::encode(bytes))
}

/// The stored form of a token: SHA-256, hex. Tokens are high-entropy, so a fast hash is enough
/// (a slow password hash protects guessable secrets; these are not guessable).
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.trim().as_bytes()))
}

/// Whether two secrets are equal, in time that depends only on their lengths (never on where
/// they first differ), so a comparison cannot be timed to guess a secret byte by byte. Every
/// secret salesai compares (CSRF tokens, OpenID Connect state and nonce, signed cookies) goes
/// through here.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hash_stably() {
        let a = generate_token();
        let b = generate_token();
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX));
        assert_eq!(a.len(), TOKEN_PREFIX.len() + 64);
        assert_eq!(hash_token(&a), hash_token(&a));
        assert_ne!(hash_token(&a), hash_token(&b));
        assert_eq!(hash_token(&a).len(), 64);
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(constant_time_eq(b"", b""));
    }
}
