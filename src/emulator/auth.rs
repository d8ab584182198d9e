//! Access tokens and API key secrets.
//!
//! Tokens are JWT-shaped (`header.payload.signature`, base64url without padding), signed with
//! HMAC-SHA256 under a key drawn at random per process — so a restarted emulator rejects old
//! tokens, and a client must renew (SPEC §8: one renewal on 401). The payload carries `sub` (the
//! API key's email), `iat`, `exp` (whole seconds, `iat + ttl`) and a `jti`.
//!
//! API key secrets are kept only as salted SHA-256 (`sha256$<salt hex>$<hash hex>`).

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngExt as _;
use sha2::{Digest as _, Sha256};

const BLOCK: usize = 64;

/// HMAC-SHA256 (RFC 2104).
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let ipad: Vec<u8> = block.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = block.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new()
        .chain_update(&ipad)
        .chain_update(message)
        .finalize();
    let outer = Sha256::new()
        .chain_update(&opad)
        .chain_update(inner)
        .finalize();
    outer.into()
}

/// Compare without an early exit, so timing does not tell how much of a guess was right.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A salted SHA-256 of an API key secret. `Display` gives the stored form.
#[derive(Clone)]
pub struct SecretHash {
    salt: [u8; 16],
    hash: [u8; 32],
}

impl SecretHash {
    /// Hash a secret under a fresh random salt.
    pub fn new(secret: &str) -> Self {
        let salt: [u8; 16] = rand::rng().random();
        SecretHash {
            salt,
            hash: Self::digest(&salt, secret),
        }
    }

    fn digest(salt: &[u8; 16], secret: &str) -> [u8; 32] {
        Sha256::new()
            .chain_update(salt)
            .chain_update(secret.as_bytes())
            .finalize()
            .into()
    }

    /// Parse the stored form `sha256$<32 hex>$<64 hex>`.
    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.split('$');
        if parts.next()? != "sha256" {
            return None;
        }
        let salt = hex::decode(parts.next()?).ok()?.try_into().ok()?;
        let hash = hex::decode(parts.next()?).ok()?.try_into().ok()?;
        if parts.next().is_some() {
            return None;
        }
        Some(SecretHash { salt, hash })
    }

    /// Does this secret match?
    pub fn verify(&self, secret: &str) -> bool {
        constant_time_eq(&Self::digest(&self.salt, secret), &self.hash)
    }
}

impl fmt::Display for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sha256${}${}",
            hex::encode(self.salt),
            hex::encode(self.hash)
        )
    }
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretHash(<redacted>)")
    }
}

/// Why a bearer token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// No `Authorization: Bearer` header.
    #[error("no bearer token")]
    Missing,
    /// Not three base64url parts, bad JSON, or a signature that does not verify.
    #[error("invalid token")]
    Invalid,
    /// Signature fine, `exp` passed.
    #[error("the token expired")]
    Expired,
}

/// Issues and checks tokens under one per-process key.
pub struct TokenIssuer {
    key: [u8; 32],
    ttl: Duration,
}

impl fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Claims {
    sub: String,
    iat: i64,
    exp: i64,
    jti: String,
}

impl TokenIssuer {
    /// A fresh random key; tokens live `ttl` (whole seconds, at least one).
    pub fn new(ttl: Duration) -> Self {
        TokenIssuer {
            key: rand::rng().random(),
            ttl,
        }
    }

    /// Sign a token for `email`, valid from now for the configured lifetime.
    pub fn issue(&self, email: &str) -> String {
        let now = chrono::Utc::now().timestamp();
        let ttl = i64::try_from(self.ttl.as_secs().max(1)).unwrap_or(i64::MAX / 2);
        let claims = Claims {
            sub: email.to_string(),
            iat: now,
            exp: now.saturating_add(ttl),
            jti: uuid::Uuid::new_v4().to_string(),
        };
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        // Serializing a struct of strings and integers cannot fail.
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap_or_default());
        let signing_input = format!("{header}.{payload}");
        let sig = URL_SAFE_NO_PAD.encode(hmac_sha256(&self.key, signing_input.as_bytes()));
        format!("{signing_input}.{sig}")
    }

    /// Check an `Authorization` header value; returns the token's subject (email).
    pub fn verify_header(&self, header: Option<&str>) -> Result<String, TokenError> {
        let value = header.ok_or(TokenError::Missing)?;
        let (scheme, token) = value.trim().split_once(' ').ok_or(TokenError::Missing)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(TokenError::Missing);
        }
        self.verify(token.trim())
    }

    /// Check a token; returns its subject (email).
    pub fn verify(&self, token: &str) -> Result<String, TokenError> {
        let (signing_input, sig) = token.rsplit_once('.').ok_or(TokenError::Invalid)?;
        let (_, payload) = signing_input.split_once('.').ok_or(TokenError::Invalid)?;
        let sig = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| TokenError::Invalid)?;
        let expected = hmac_sha256(&self.key, signing_input.as_bytes());
        if !constant_time_eq(&sig, &expected) {
            return Err(TokenError::Invalid);
        }
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| TokenError::Invalid)?;
        let claims: Claims = serde_json::from_slice(&payload).map_err(|_| TokenError::Invalid)?;
        if chrono::Utc::now().timestamp() >= claims.exp {
            return Err(TokenError::Expired);
        }
        Ok(claims.sub)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Case 6: a key longer than the block is hashed first.
        let mac = hmac_sha256(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First",
        );
        assert_eq!(
            hex::encode(mac),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn tokens_verify_and_tampering_fails() {
        let issuer = TokenIssuer::new(Duration::from_secs(60));
        let t = issuer.issue("admin@corp.example");
        assert_eq!(t.split('.').count(), 3);
        assert_eq!(issuer.verify(&t).unwrap(), "admin@corp.example");
        assert_eq!(
            issuer.verify_header(Some(&format!("Bearer {t}"))).unwrap(),
            "admin@corp.example"
        );
        let mut bad = t.clone();
        bad.push('x');
        assert_eq!(issuer.verify(&bad), Err(TokenError::Invalid));
        let other = TokenIssuer::new(Duration::from_secs(60));
        assert_eq!(other.verify(&t), Err(TokenError::Invalid));
        for junk in ["", ".", "..", "a.b.c", "ä.ö.ü", "Bearer"] {
            assert!(issuer.verify(junk).is_err());
        }
        assert_eq!(issuer.verify_header(None), Err(TokenError::Missing));
        assert_eq!(
            issuer.verify_header(Some("Basic abc")),
            Err(TokenError::Missing)
        );
    }

    proptest::proptest! {
        #[test]
        fn any_token_string_is_refused_without_panicking(token in ".{0,300}") {
            let issuer = TokenIssuer::new(Duration::from_secs(60));
            proptest::prop_assert!(issuer.verify(&token).is_err());
            proptest::prop_assert!(issuer.verify_header(Some(&token)).is_err());
        }
    }

    #[test]
    fn secret_hash_round_trip() {
        let h = SecretHash::new("s3cret");
        let parsed = SecretHash::parse(&h.to_string()).unwrap();
        assert!(parsed.verify("s3cret"));
        assert!(!parsed.verify("s3cret "));
        assert!(!format!("{h:?}").contains("s3cret"));
        for bad in ["", "sha256$", "sha256$00$00", "md5$aa$bb", "sha256$zz$zz"] {
            assert!(SecretHash::parse(bad).is_none());
        }
    }
}
