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
        let mut data =
            jsonwebtoken::decode::<serde_json::Value>(token, &self.decoding, &validation)
                .map_err(|e| TokenError::Invalid(e.to_string()))?;
        whole_seconds(&mut data.claims)?;
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

/// The claims that are RFC 7519 NumericDates.
const NUMERIC_DATES: [&str; 3] = ["exp", "iat", "nbf"];

/// Checks that the claims are a JSON object and turns its NumericDates into
/// whole seconds. RFC 7519 allows fractions, and common libraries write
/// them (PyJWT given `time.time() + 3600`, JavaScript's `Date.now() / 1000`);
/// Centrifugo reads them too. Rounding down makes a token expire up to a
/// second early, never late. A date that is not a non-negative number is
/// refused.
fn whole_seconds(claims: &mut serde_json::Value) -> Result<(), TokenError> {
    let Some(map) = claims.as_object_mut() else {
        return Err(TokenError::Invalid(
            "the claims are not a JSON object".into(),
        ));
    };
    for name in NUMERIC_DATES {
        let Some(value) = map.get_mut(name) else {
            continue;
        };
        if value.is_null() || value.is_u64() {
            continue;
        }
        match value.as_f64() {
            // `as` saturates; seconds beyond u64 are "never" either way.
            Some(secs) if secs.is_finite() && secs >= 0.0 => {
                *value = serde_json::Value::from(secs.floor() as u64);
            }
            _ => {
                return Err(TokenError::Invalid(format!(
                    "{name}: not a NumericDate (seconds since the epoch)"
                )))
            }
        }
    }
    Ok(())
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

    /// Test-only key pairs (tests/fixtures), made with openssl.
    const RSA_PRIVATE: &str = include_str!("../tests/fixtures/test-only-rs256-private.pem");
    const RSA_PUBLIC: &str = include_str!("../tests/fixtures/test-only-rs256-public.pem");
    const EC_PRIVATE: &str = include_str!("../tests/fixtures/test-only-es256-private.pem");
    const EC_PUBLIC: &str = include_str!("../tests/fixtures/test-only-es256-public.pem");

    fn signed(alg: Algorithm, key: &EncodingKey, claims: &serde_json::Value) -> String {
        jsonwebtoken::encode(&Header::new(alg), claims, key).unwrap()
    }

    #[test]
    fn public_keys_verify_their_algorithm_only() {
        let rsa = Auth::new(&TokenKey::RsaPem(RSA_PUBLIC.into())).unwrap();
        let ec = Auth::new(&TokenKey::EcPem(EC_PUBLIC.into())).unwrap();
        assert_eq!(rsa.algorithm(), Algorithm::RS256);
        assert_eq!(ec.algorithm(), Algorithm::ES256);
        let rsa_key = EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap();
        let ec_key = EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap();
        let claims = serde_json::json!({"sub": "42", "exp": now_secs() + 60});
        let rs = signed(Algorithm::RS256, &rsa_key, &claims);
        let es = signed(Algorithm::ES256, &ec_key, &claims);
        assert_eq!(rsa.verify_connect(&rs).unwrap().sub, "42");
        assert_eq!(ec.verify_connect(&es).unwrap().sub, "42");
        // Each refuses the other's tokens, and HS256 keyed with its PEM.
        assert!(matches!(
            rsa.verify_connect(&es),
            Err(TokenError::Invalid(_))
        ));
        assert!(matches!(
            ec.verify_connect(&rs),
            Err(TokenError::Invalid(_))
        ));
        for (auth, pem) in [(&rsa, RSA_PUBLIC), (&ec, EC_PUBLIC)] {
            let confused = signed(
                Algorithm::HS256,
                &EncodingKey::from_secret(pem.as_bytes()),
                &claims,
            );
            assert!(matches!(
                auth.verify_connect(&confused),
                Err(TokenError::Invalid(_))
            ));
        }
        // RS384 with the right RSA key is still another algorithm.
        let rs384 = signed(Algorithm::RS384, &rsa_key, &claims);
        assert!(matches!(
            rsa.verify_connect(&rs384),
            Err(TokenError::Invalid(_))
        ));
        // Public keys cannot sign.
        assert!(matches!(
            rsa.sign_connect("1", None, None, &[]),
            Err(KeyError::CannotSign)
        ));
        // A key of the wrong kind is refused up front.
        assert!(Auth::new(&TokenKey::RsaPem(EC_PUBLIC.into())).is_err());
        assert!(Auth::new(&TokenKey::EcPem(RSA_PUBLIC.into())).is_err());
        assert!(matches!(
            Auth::new(&TokenKey::Hmac(String::new())),
            Err(KeyError::EmptySecret)
        ));
    }

    #[test]
    fn numeric_dates_may_be_fractional() {
        // RFC 7519 NumericDate allows fractions, and libraries emit them
        // (PyJWT with `time.time() + 3600`, JavaScript's `Date.now() / 1000`).
        let auth = hmac();
        let now = now_secs() as f64;
        let claims = serde_json::json!({"sub": "1", "iat": now + 0.25, "exp": now + 60.5});
        let c = auth.verify_connect(&auth.sign(&claims).unwrap()).unwrap();
        assert_eq!(c.exp, Some(now as u64 + 60));
        assert_eq!(c.iat, Some(now as u64));
        let claims = serde_json::json!({"sub": "1", "exp": now - 10.5});
        assert_eq!(
            auth.verify_connect(&auth.sign(&claims).unwrap())
                .unwrap_err(),
            TokenError::Expired
        );
        let claims = serde_json::json!({"sub": "1", "channel": "c", "exp": now + 60.5, "iat": now});
        let s = auth.verify_subscribe(&auth.sign(&claims).unwrap()).unwrap();
        assert_eq!(s.exp, Some(now as u64 + 60));
        // Not numbers, or negative: invalid.
        for exp in [
            serde_json::json!("soon"),
            serde_json::json!(-5),
            serde_json::json!(-0.5),
        ] {
            let claims = serde_json::json!({"sub": "1", "exp": exp});
            assert!(
                matches!(
                    auth.verify_connect(&auth.sign(&claims).unwrap()),
                    Err(TokenError::Invalid(_))
                ),
                "{claims}"
            );
        }
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
