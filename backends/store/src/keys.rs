//! API key format (docs/architecture.md): `brl_` + 40 base62 characters;
//! stored as the lower-case hex SHA-256 of the whole key string, plus a
//! display prefix (first 8 characters) and a public key id.

use rand::distr::{Alphanumeric, SampleString};
use sha2::{Digest, Sha256};

/// Every key starts with this, so secret scanners can match
/// `brl_[A-Za-z0-9]{40}`.
pub const KEY_PREFIX: &str = "brl_";

/// Number of random base62 characters after [`KEY_PREFIX`].
pub const KEY_RANDOM_LEN: usize = 40;

/// Characters of the key kept for display (`brl_AbCd`).
pub const DISPLAY_PREFIX_LEN: usize = 8;

/// A new random API key (about 238 bits of entropy).
pub fn generate_key() -> String {
    let mut key = String::with_capacity(KEY_PREFIX.len() + KEY_RANDOM_LEN);
    key.push_str(KEY_PREFIX);
    key.push_str(&Alphanumeric.sample_string(&mut rand::rng(), KEY_RANDOM_LEN));
    key
}

/// A new public key id (`key_` + 16 base62 characters); safe to show and log.
pub fn generate_key_id() -> String {
    format!("key_{}", Alphanumeric.sample_string(&mut rand::rng(), 16))
}

/// Lower-case hex SHA-256 of the whole key string: the only form stored.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// The first characters of a key, shown in listings.
pub fn display_prefix(key: &str) -> String {
    key.chars().take(DISPLAY_PREFIX_LEN).collect()
}

/// Whether a string has the shape of one of our keys.
pub fn looks_like_key(s: &str) -> bool {
    s.strip_prefix(KEY_PREFIX).is_some_and(|rest| {
        rest.len() == KEY_RANDOM_LEN && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

/// Whether a string is a well-formed key hash (64 lower-case hex digits).
pub fn is_key_hash(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_the_scannable_shape_and_differ() {
        let a = generate_key();
        let b = generate_key();
        assert!(looks_like_key(&a), "{a}");
        assert_ne!(a, b);
        assert_eq!(display_prefix(&a).len(), 8);
        assert!(display_prefix(&a).starts_with("brl_"));
    }

    #[test]
    fn hash_is_lower_hex_sha256_of_the_whole_key() {
        assert_eq!(
            hash_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(is_key_hash(&hash_key(&generate_key())));
        assert!(!is_key_hash("ABC"));
    }
}
