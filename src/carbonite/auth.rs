//! Credentials and the access-token cache (SPEC §5): an API key is exchanged at
//! `POST /api/tokens/apikey` for a token that lives one hour; the token is kept in memory only
//! and renewed shortly before it expires — read from the JWT's `exp` when the token is a JWT,
//! else assumed to be one hour — and once more on a 401. A static bearer token is used as is.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;

use crate::config::secret::Secret;

/// The vendor's token lifetime, assumed when a token does not say.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
/// Renew at most this long before expiry...
pub const MAX_RENEW_MARGIN: Duration = Duration::from_secs(60);
/// ...and at most this fraction of the lifetime before it (short-lived test tokens).
const RENEW_MARGIN_FRACTION: u32 = 10;

/// How the client authenticates.
#[derive(Clone, Debug)]
pub enum Credentials {
    /// Exchanged for tokens at `POST /api/tokens/apikey`.
    ApiKey { email: String, secret: Secret },
    /// Sent as is; cannot be renewed.
    Bearer(Secret),
}

impl Credentials {
    /// The email part of the ledger/cache key: the API key's email, `-` for a bearer token.
    pub fn ledger_email(&self) -> &str {
        match self {
            Credentials::ApiKey { email, .. } => email,
            Credentials::Bearer(_) => "-",
        }
    }
}

/// A token in the cache.
#[derive(Clone, Debug)]
pub struct CachedToken {
    /// The access token.
    pub value: Secret,
    /// When it expires (from `exp`, or assumed).
    pub expires_at: SystemTime,
    /// When to stop using it and get a new one.
    pub renew_at: SystemTime,
}

impl CachedToken {
    /// A token received at `received`; `lifetime_override` replaces what the token says.
    pub fn new(value: Secret, received: SystemTime, lifetime_override: Option<Duration>) -> Self {
        let expires_at = match lifetime_override {
            Some(l) => received + l,
            None => jwt_expiry(value.expose())
                .filter(|exp| *exp > received)
                .unwrap_or(received + DEFAULT_TOKEN_LIFETIME),
        };
        let lifetime = expires_at.duration_since(received).unwrap_or_default();
        let margin = MAX_RENEW_MARGIN.min(lifetime / RENEW_MARGIN_FRACTION);
        CachedToken {
            value,
            expires_at,
            renew_at: expires_at - margin,
        }
    }

    /// Still good to use at `now`.
    pub fn fresh_at(&self, now: SystemTime) -> bool {
        now < self.renew_at
    }
}

/// The `exp` claim of a JWT (`header.payload.signature`, base64url), if `token` is one.
pub fn jwt_expiry(token: &str) -> Option<SystemTime> {
    let mut parts = token.split('.');
    let (_header, payload, _sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let exp = claims.get("exp")?;
    let secs = exp.as_u64().or_else(|| exp.as_f64().map(|f| f as u64))?;
    UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: serde_json::Value) -> String {
        let enc = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        format!(
            "{}.{}.{}",
            enc(br#"{"alg":"HS256","typ":"JWT"}"#),
            enc(claims.to_string().as_bytes()),
            enc(b"sig")
        )
    }

    #[test]
    fn reads_exp_from_a_jwt() {
        let t = jwt(serde_json::json!({"sub": "a@b", "exp": 1_700_003_600}));
        assert_eq!(
            jwt_expiry(&t),
            Some(UNIX_EPOCH + Duration::from_secs(1_700_003_600))
        );
        assert_eq!(jwt_expiry("opaque-token"), None);
        assert_eq!(jwt_expiry("a.b.c"), None);
        assert_eq!(jwt_expiry(&jwt(serde_json::json!({"sub": "x"}))), None);
    }

    #[test]
    fn renews_a_minute_or_a_tenth_before_expiry() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let hour = jwt(serde_json::json!({"exp": 1_700_003_600}));
        let t = CachedToken::new(Secret::new(hour), now, None);
        assert_eq!(t.expires_at, now + Duration::from_secs(3600));
        assert_eq!(t.renew_at, now + Duration::from_secs(3540));
        assert!(t.fresh_at(now + Duration::from_secs(3539)));
        assert!(!t.fresh_at(now + Duration::from_secs(3540)));

        let short = jwt(serde_json::json!({"exp": 1_700_000_002}));
        let t = CachedToken::new(Secret::new(short), now, None);
        assert_eq!(t.renew_at, now + Duration::from_millis(1800));

        // Opaque, or already expired by our clock: assume the vendor's hour.
        let t = CachedToken::new(Secret::new("opaque"), now, None);
        assert_eq!(t.expires_at, now + DEFAULT_TOKEN_LIFETIME);
        let past = jwt(serde_json::json!({"exp": 1_600_000_000}));
        let t = CachedToken::new(Secret::new(past), now, None);
        assert_eq!(t.expires_at, now + DEFAULT_TOKEN_LIFETIME);

        let t = CachedToken::new(Secret::new("x"), now, Some(Duration::from_secs(100)));
        assert_eq!(t.renew_at, now + Duration::from_secs(90));
    }
}
