//! Connection and subscription tokens: JWTs as Centrifugo issues them.
//!
//! Owns verification (HS256 with the token secret by default, RS256 or
//! ES256 with a configured public key) and signing for `gentoken` and the
//! dev token endpoint. The algorithm is pinned by the configured key: a token
//! whose header names another algorithm (`none`, or HS256 against an RSA
//! key) is refused as invalid, never verified with the wrong key type. What
//! a verified token allows (channels, namespaces) is decided elsewhere.
//!
//! ```
//! use duplex_server::auth::{Auth, ConnectClaims};
//! use duplex_server::config::TokenKey;
//!
//! let auth = Auth::new(&TokenKey::Hmac("secret".into())).unwrap();
//! let token = auth.sign_connect("42", Some(3600), None, &[]).unwrap();
//! let claims: ConnectClaims = auth.verify_connect(&token).unwrap();
//! assert_eq!(claims.sub, "42");
//! ```

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::config::TokenKey;

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The token was valid but its `exp` has passed (code 109: the SDKs
    /// fetch a fresh one).
    #[error("token expired")]
    Expired,
    /// Malformed, wrongly signed, wrong algorithm, or missing claims
    /// (close 3500 / error 101).
    #[error("invalid token: {0}")]
    Invalid(String),
}

/// Why the configured key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The PEM text is not a key of the expected kind.
    #[error("token public key: {0}")]
    BadPem(String),
    /// An HMAC secret was empty.
    #[error("token secret is empty")]
    EmptySecret,
    /// Signing needs an HMAC secret.
    #[error("signing tokens needs an HMAC token secret")]
    CannotSign,
}

/// The claims of a connection token.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ConnectClaims {
    /// The user id; empty means anonymous.
    #[serde(default)]
    pub sub: String,
    /// Expiry, seconds since the Unix epoch; `None` never expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
    /// Issued at, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// JSON shown in presence as `conn_info`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<Box<RawValue>>,
    /// Channels to subscribe the connection to on connect (server-side).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<String>,
}

/// The claims of a subscription token.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct SubscribeClaims {
    /// The user id; must match the connection's user.
    #[serde(default)]
    pub sub: String,
    /// The one channel this token authorises.
    #[serde(default)]
    pub channel: String,
    /// Expiry, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
    /// Issued at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// JSON shown in presence as `chan_info`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<Box<RawValue>>,
}

/// Verifies (and, with an HMAC secret, signs) tokens with one pinned algorithm.
#[derive(Clone)]
pub struct Auth {
    algorithm: Algorithm,
    decoding: DecodingKey,
    encoding: Option<EncodingKey>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// Seconds since the Unix epoch, now.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Auth {
    /// Prepares verification with `key`.
    pub fn new(key: &TokenKey) -> Result<Self, KeyError> {
        Ok(match key {
            TokenKey::Hmac(secret) => {
                if secret.is_empty() {
                    return Err(KeyError::EmptySecret);
                }
                Self {
                    algorithm: Algorithm::HS256,
                    decoding: DecodingKey::from_secret(secret.as_bytes()),
                    encoding: Some(EncodingKey::from_secret(secret.as_bytes())),
                }
            }
            TokenKey::RsaPem(pem) => Self {
                algorithm: Algorithm::RS256,
                decoding: DecodingKey::from_rsa_pem(pem.as_bytes())
                    .map_err(|e| KeyError::BadPem(e.to_string()))?,
                encoding: None,
            },
            TokenKey::EcPem(pem) => Self {
                algorithm: Algorithm::ES256,
                decoding: DecodingKey::from_ec_pem(pem.as_bytes())
                    .map_err(|e| KeyError::BadPem(e.to_string()))?,
                encoding: None,
            },
        })
    }

    /// The pinned algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    fn verify<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
    ) -> Result<(T, Option<u64>), TokenError> {
        // Pin the algorithm before any signature work: jsonwebtoken refuses a
        // header naming another algorithm (including `none`).
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| TokenError::Invalid(e.to_string()))?;
        if header.alg != self.algorithm {
            return Err(TokenError::Invalid(format!(
                "algorithm {:?} not accepted (expected {:?})",
                header.alg, self.algorithm
            )));
        }
        let mut validation = Validation::new(self.algorithm);
        // `exp` is optional in Centrifugo's tokens; we check it ourselves so
        // that an expired token is told apart from an invalid one.
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_aud = false;
        #[derive(Deserialize)]
        struct Exp {
            #[serde(default)]
            exp: Option<u64>,
        }
        let data = jsonwebtoken::decode::<serde_json::Value>(token, &self.decoding, &validation)
            .map_err(|e| TokenError::Invalid(e.to_string()))?;
        let exp: Exp = serde_json::from_value(data.claims.clone())
            .map_err(|e| TokenError::Invalid(format!("exp: {e}")))?;
        if let Some(exp) = exp.exp {
            if exp > 0 && exp <= now_secs() {
                return Err(TokenError::Expired);
            }
        }
        let claims: T =
            serde_json::from_value(data.claims).map_err(|e| TokenError::Invalid(e.to_string()))?;
        Ok((claims, exp.exp.filter(|e| *e > 0)))
    }

    /// Verifies a connection token.
    pub fn verify_connect(&self, token: &str) -> Result<ConnectClaims, TokenError> {
        let (mut claims, exp): (ConnectClaims, _) = self.verify(token)?;
        claims.exp = exp;
        Ok(claims)
    }

    /// Verifies a subscription token.
    pub fn verify_subscribe(&self, token: &str) -> Result<SubscribeClaims, TokenError> {
        let (mut claims, exp): (SubscribeClaims, _) = self.verify(token)?;
        if claims.channel.is_empty() {
            return Err(TokenError::Invalid(
                "subscription token without channel".into(),
            ));
        }
        claims.exp = exp;
        Ok(claims)
    }

    /// Signs a connection token for `user`, valid `ttl` seconds (`None`: no expiry).
    pub fn sign_connect(
        &self,
        user: &str,
        ttl: Option<u64>,
        info: Option<&serde_json::Value>,
        channels: &[String],
    ) -> Result<String, KeyError> {
        let now = now_secs();
        let claims = serde_json::json!({
            "sub": user,
            "iat": now,
            "exp": ttl.map(|t| now + t),
            "info": info,
            "channels": channels,
        });
        self.sign(&strip_nulls(claims))
    }

    /// Signs a subscription token for `user` on `channel`.
    pub fn sign_subscribe(
        &self,
        user: &str,
        channel: &str,
        ttl: Option<u64>,
        info: Option<&serde_json::Value>,
    ) -> Result<String, KeyError> {
        let now = now_secs();
        let claims = serde_json::json!({
            "sub": user,
            "channel": channel,
            "iat": now,
            "exp": ttl.map(|t| now + t),
            "info": info,
        });
        self.sign(&strip_nulls(claims))
    }

    fn sign(&self, claims: &serde_json::Value) -> Result<String, KeyError> {
        let key = self.encoding.as_ref().ok_or(KeyError::CannotSign)?;
        jsonwebtoken::encode(&Header::new(self.algorithm), claims, key)
            .map_err(|e| KeyError::BadPem(e.to_string()))
    }
}

fn strip_nulls(mut value: serde_json::Value) -> serde_json::Value {
    if let Some(map) = value.as_object_mut() {
        map.retain(|_, v| !v.is_null() && v.as_array().is_none_or(|a| !a.is_empty()));
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hmac() -> Auth {
        Auth::new(&TokenKey::Hmac("s3cret".into())).unwrap()
    }

    #[test]
    fn signs_and_verifies() {
        let auth = hmac();
        let info = serde_json::json!({"name": "Ann"});
        let t = auth
            .sign_connect("42", Some(60), Some(&info), &["news".into()])
            .unwrap();
        let c = auth.verify_connect(&t).unwrap();
        assert_eq!(c.sub, "42");
        assert_eq!(c.channels, ["news"]);
        assert_eq!(c.info.unwrap().get(), r#"{"name":"Ann"}"#);
        assert!(c.exp.unwrap() > now_secs());
    }

    #[test]
    fn expired_is_told_apart() {
        let auth = hmac();
        let claims = serde_json::json!({"sub": "1", "exp": now_secs() - 10});
        let t = auth.sign(&claims).unwrap();
        assert_eq!(auth.verify_connect(&t).unwrap_err(), TokenError::Expired);
    }

    #[test]
    fn wrong_secret_alg_none_and_garbage_are_invalid() {
        let auth = hmac();
        let other = Auth::new(&TokenKey::Hmac("other".into())).unwrap();
        let t = other.sign_connect("1", None, None, &[]).unwrap();
        assert!(matches!(
            auth.verify_connect(&t),
            Err(TokenError::Invalid(_))
        ));
        // alg: none, unsigned.
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let none = format!(
            "{}.{}.",
            b64.encode(r#"{"alg":"none","typ":"JWT"}"#),
            b64.encode(r#"{"sub":"1"}"#)
        );
        assert!(matches!(
            auth.verify_connect(&none),
            Err(TokenError::Invalid(_))
        ));
        assert!(matches!(
            auth.verify_connect("x.y.z"),
            Err(TokenError::Invalid(_))
        ));
        assert!(matches!(
            auth.verify_connect(""),
            Err(TokenError::Invalid(_))
        ));
    }

    #[test]
    fn subscription_token_needs_channel() {
        let auth = hmac();
        let t = auth.sign_subscribe("1", "chat", Some(60), None).unwrap();
        assert_eq!(auth.verify_subscribe(&t).unwrap().channel, "chat");
        let t = auth.sign_connect("1", Some(60), None, &[]).unwrap();
        assert!(auth.verify_subscribe(&t).is_err());
    }
}
