//! JWT bearer tokens. Every key has exactly one algorithm; a token is checked only against keys
//! whose algorithm equals the token's `alg` (so `none`, and HS256-signed-with-an-RSA-public-key,
//! never verify), selected by `kid`. `iss`, `aud`, `exp` and `nbf` are checked with the
//! provider's leeway; `exp` and `iss` are required.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde_json::Value;

use crate::config::{JwtKey, JwtProvider};

use super::issuer::{Attempt, Issuer, validations};
use super::jwks::{JwksCache, Remote, keys_from_jwks};
use super::keys::VerifyKey;
use super::principal::Principal;

/// Every configured issuer with its keys (PEM and JWKS files read at snapshot build).
pub struct JwtVerifier {
    providers: Vec<Issuer>,
}

/// A token's header, or why it cannot be one.
pub(crate) fn header(token: &str) -> Result<Header, &'static str> {
    jsonwebtoken::decode_header(token).map_err(|_| "malformed token or unsupported algorithm")
}

fn is_hmac(alg: Algorithm) -> bool {
    matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))
}

fn decoding_key(key: &JwtKey) -> Result<DecodingKey, String> {
    if is_hmac(key.alg) {
        let secret = key.secret.as_deref().unwrap_or_default();
        return Ok(DecodingKey::from_secret(secret.as_bytes()));
    }
    let path = key.public_key_file.as_deref().ok_or("no public_key_file")?;
    let pem = read(path)?;
    let parsed = match key.alg {
        Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(&pem),
        Algorithm::EdDSA => DecodingKey::from_ed_pem(&pem),
        _ => DecodingKey::from_rsa_pem(&pem),
    };
    parsed.map_err(|e| format!("{}: not a {:?} public key: {e}", path.display(), key.alg))
}

/// The signing key of a configured key, for `tollgate token`.
pub(crate) fn encoding_key(key: &JwtKey) -> Result<EncodingKey, String> {
    if is_hmac(key.alg) {
        let secret = key.secret.as_deref().unwrap_or_default();
        return Ok(EncodingKey::from_secret(secret.as_bytes()));
    }
    let path = key
        .private_key_file
        .as_deref()
        .ok_or("this key has no private_key_file to sign with")?;
    let pem = read(path)?;
    let parsed = match key.alg {
        Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(&pem),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem),
        _ => EncodingKey::from_rsa_pem(&pem),
    };
    parsed.map_err(|e| format!("{}: not a {:?} private key: {e}", path.display(), key.alg))
}

impl JwtVerifier {
    /// Loads every issuer. `operator_roles` are the roles that act on any tenant;
    /// `known_tenant` checks an issuer's `tenants`.
    pub fn load(
        config: &[JwtProvider],
        operator_roles: &[String],
        known_tenant: &dyn Fn(&str) -> bool,
    ) -> Result<JwtVerifier, Vec<String>> {
        let mut errors = Vec::new();
        let mut providers = Vec::new();
        for (i, p) in config.iter().enumerate() {
            for tenant in p.tenants.iter().filter(|t| !known_tenant(t)) {
                errors.push(format!("identity.jwt[{i}].tenants: no tenant {tenant:?}"));
            }
            let mut keys = Vec::new();
            for (k, key) in p.keys.iter().enumerate() {
                match decoding_key(key) {
                    Ok(decoding) => keys.push(VerifyKey {
                        kid: key.kid.clone(),
                        alg: key.alg,
                        decoding,
                    }),
                    Err(e) => errors.push(format!("identity.jwt[{i}].keys[{k}]: {e}")),
                }
            }
            if let Some(path) = &p.jwks_file {
                match read(path).and_then(|bytes| keys_from_jwks(&String::from_utf8_lossy(&bytes)))
                {
                    Ok(more) => keys.extend(more),
                    Err(e) => errors.push(format!("{}: {e}", path.display())),
                }
            }
            providers.push(Issuer {
                issuer: p.issuer.clone(),
                leeway: p.leeway,
                claims: p.claims.clone(),
                groups: None,
                validations: validations(
                    &p.issuer,
                    &p.audiences,
                    p.leeway,
                    &keys,
                    p.jwks_url.is_some(),
                ),
                keys,
                remote: p
                    .jwks_url
                    .clone()
                    .map(|url| (Remote::Url(url), p.jwks_refresh)),
                tenants: (!p.tenants.is_empty()).then(|| p.tenants.clone().into()),
                tenant_claim: true,
                forbidden_roles: if p.grants_operator_roles {
                    Vec::new()
                } else {
                    operator_roles.to_vec()
                },
            });
        }
        if errors.is_empty() {
            Ok(JwtVerifier { providers })
        } else {
            Err(errors)
        }
    }

    pub fn is_empty(&self) -> bool {
        self.providers.is_empty()
    }

    /// Verifies a token and maps its claims, or says why it is refused.
    pub async fn verify(
        &self,
        token: &str,
        jwks: &JwksCache,
        refetch: Duration,
    ) -> Result<Principal, &'static str> {
        let header = &header(token)?;
        let mut refusal = "no key matches the token's kid and alg";
        for provider in &self.providers {
            match provider.attempt(token, header, jwks, refetch).await {
                Attempt::Accepted(principal) => return Ok(*principal),
                // The token was signed for this provider and failed a claim check.
                Attempt::Refused(why) => return Err(why),
                Attempt::NotMine(why) => refusal = why,
            }
        }
        Err(refusal)
    }

    /// Signs a development token with the first provider's first key that can sign.
    pub fn mint(config: &[JwtProvider], claims: &Value, ttl: Duration) -> Result<String, String> {
        let (provider, key, encoding) = config
            .iter()
            .flat_map(|p| p.keys.iter().map(move |k| (p, k)))
            .find_map(|(p, k)| encoding_key(k).ok().map(|e| (p, k, e)))
            .ok_or("the configuration has no JWT key that can sign (an HMAC secret or a private_key_file)")?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|e| e.to_string())?
            .as_secs();
        let mut body = claims.clone();
        if let Value::Object(map) = &mut body {
            map.insert("iss".into(), provider.issuer.clone().into());
            if let Some(aud) = provider.audiences.first() {
                map.insert("aud".into(), aud.clone().into());
            }
            map.insert("iat".into(), now.into());
            map.insert("nbf".into(), now.into());
            map.insert("exp".into(), (now + ttl.as_secs()).into());
        }
        let mut header = Header::new(key.alg);
        header.kid = key.kid.clone();
        jsonwebtoken::encode(&header, &body, &encoding).map_err(|e| e.to_string())
    }
}
