//! HS256 connection tokens for benchmark clients, so a server need not run
//! in `--dev` to be loaded: `{"sub":"<user>"}` (plus `exp` if asked),
//! signed with the secret the server was given (`--token-secret`).
//!
//! Owns only signing; verifying is the server's business.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// A signed HS256 token for user `sub`, expiring at `exp` (Unix seconds)
/// if given.
///
/// ```
/// let t = duplex_bench::jwt::hs256("secret", "u1", None);
/// assert_eq!(t.split('.').count(), 3);
/// assert!(t.starts_with("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."));
/// ```
pub fn hs256(secret: &str, sub: &str, exp: Option<u64>) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let mut claims = format!("{{\"sub\":{}", crate::centrifuge::json_string(sub));
    if let Some(exp) = exp {
        claims.push_str(&format!(",\"exp\":{exp}"));
    }
    claims.push('}');
    let mut token = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims.as_bytes()));
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = ring::hmac::sign(&key, token.as_bytes());
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(tag.as_ref()));
    token
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_signature() {
        // Checked against an independent HMAC-SHA256 (python3 hmac module).
        let t = hs256("k", "", None);
        let mut parts = t.split('.');
        assert_eq!(parts.next(), Some("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"));
        assert_eq!(parts.next(), Some("eyJzdWIiOiIifQ"));
        assert_eq!(
            parts.next(),
            Some("SO225zYt4mQXz4UNLC-Mv3Pg-03Oo0GgwSZMvMn38zs")
        );
        assert_ne!(hs256("k2", "", None), t);
    }
}
