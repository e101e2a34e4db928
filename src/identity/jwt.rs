//! JWT bearer tokens. Every key has exactly one algorithm; a token is checked only against keys
//! whose algorithm equals the token's `alg` (so `none`, and HS256-signed-with-an-RSA-public-key,
//! never verify), selected by `kid`. `iss`, `aud`, `exp` and `nbf` are checked with the
//! provider's leeway; `exp` and `iss` are required.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::Value;

use crate::config::{ClaimNames, JwtKey, JwtProvider};

use super::jwks::{JwksCache, keys_from_jwks};
use super::keys::VerifyKey;
use super::principal::{AuthMethod, Principal};

struct Provider {
    leeway: Duration,
    claims: ClaimNames,
    keys: Vec<VerifyKey>,
    jwks_url: Option<(String, Duration)>,
    validations: HashMap<Algorithm, Validation>,
    /// The tenants this issuer may act on; `None`: any.
    tenants: Option<Arc<[String]>>,
    /// Operator roles this issuer may not grant (all of them, unless `grants_operator_roles`).
    forbidden_roles: Vec<String>,
}

/// Every configured issuer with its keys (PEM and JWKS files read at snapshot build).
pub struct JwtVerifier {
    providers: Vec<Provider>,
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
            let mut algs: Vec<Algorithm> = keys.iter().map(|k| k.alg).collect();
            if p.jwks_url.is_some() {
                algs.extend([
                    Algorithm::RS256,
                    Algorithm::ES256,
                    Algorithm::ES384,
                    Algorithm::EdDSA,
                ]);
            }
            let validations = algs
                .into_iter()
                .map(|alg| {
                    let mut v = Validation::new(alg);
                    v.leeway = p.leeway.as_secs();
                    v.validate_nbf = true;
                    v.set_issuer(&[&p.issuer]);
                    if p.audiences.is_empty() {
                        v.validate_aud = false;
                    } else {
                        v.set_audience(&p.audiences);
                    }
                    v.set_required_spec_claims(&["exp", "iss"]);
                    (alg, v)
                })
                .collect();
            providers.push(Provider {
                leeway: p.leeway,
                claims: p.claims.clone(),
                keys,
                jwks_url: p.jwks_url.clone().map(|url| (url, p.jwks_refresh)),
                validations,
                tenants: (!p.tenants.is_empty()).then(|| p.tenants.clone().into()),
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
    pub async fn verify(&self, token: &str, jwks: &JwksCache) -> Result<Principal, &'static str> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| "malformed token or unsupported algorithm")?;
        let mut refusal = "no key matches the token's kid and alg";
        for provider in &self.providers {
            let Some(validation) = provider.validations.get(&header.alg) else {
                continue;
            };
            let matches = |k: &&VerifyKey| {
                k.alg == header.alg && (header.kid.is_none() || k.kid == header.kid)
            };
            let mut tried = false;
            for key in provider.keys.iter().filter(matches) {
                tried = true;
                match provider.check(token, key, validation) {
                    Ok(principal) => return Ok(principal),
                    Err(why) => refusal = why,
                }
            }
            if let Some((url, refresh)) = &provider.jwks_url {
                // Boxed: the fetch is a large future every request would otherwise carry.
                let mut remote = Box::pin(jwks.keys(url, *refresh, false)).await;
                if header.kid.is_some() && !remote.iter().any(|k| matches(&k)) {
                    remote = Box::pin(jwks.keys(url, *refresh, true)).await;
                }
                for key in remote.iter().filter(matches) {
                    tried = true;
                    match provider.check(token, key, validation) {
                        Ok(principal) => return Ok(principal),
                        Err(why) => refusal = why,
                    }
                }
            }
            if tried && refusal != "bad signature" {
                // The token was signed for this provider and failed a claim check.
                return Err(refusal);
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

impl Provider {
    fn check(
        &self,
        token: &str,
        key: &VerifyKey,
        validation: &Validation,
    ) -> Result<Principal, &'static str> {
        let data =
            jsonwebtoken::decode::<Value>(token, &key.decoding, validation).map_err(|e| match e
                .kind()
            {
                ErrorKind::ExpiredSignature => "token expired",
                ErrorKind::ImmatureSignature => "token not yet valid",
                ErrorKind::InvalidAudience => "token has the wrong audience",
                ErrorKind::InvalidIssuer => "token has the wrong issuer",
                ErrorKind::InvalidSignature => "bad signature",
                ErrorKind::MissingRequiredClaim(_) => "token lacks a required claim",
                _ => "invalid token",
            })?;
        self.principal(&data.claims)
    }

    fn principal(&self, claims: &Value) -> Result<Principal, &'static str> {
        let claim = |path: &str| path.split('.').try_fold(claims, |v, k| v.get(k));
        let subject = claim(&self.claims.subject)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or("token has no subject")?;
        let tenant = claim(&self.claims.tenant)
            .and_then(Value::as_str)
            .map(str::to_string);
        let mfa = match claim(&self.claims.mfa) {
            Some(Value::Bool(b)) => *b,
            // An `amr`-style list of methods.
            Some(Value::Array(methods)) => methods.iter().any(|m| m == "mfa"),
            _ => false,
        };
        let valid_until = claims
            .get("exp")
            .and_then(Value::as_u64)
            .map(|exp| UNIX_EPOCH + Duration::from_secs(exp) + self.leeway);
        let mut principal = Principal::new(
            subject.to_string(),
            AuthMethod::Jwt,
            tenant,
            strings(claim(&self.claims.roles))?,
            strings(claim(&self.claims.scopes))?,
            mfa,
            valid_until,
        )?;
        if principal.has_any_role(&self.forbidden_roles) {
            return Err("the token's issuer may not grant an operator role");
        }
        principal.issuer_tenants = self.tenants.clone();
        Ok(principal)
    }
}

/// A list claim: a JSON array of strings, or one space-separated string (OAuth `scope`). An
/// array with anything but strings is refused, not filtered.
fn strings(value: Option<&Value>) -> Result<Vec<String>, &'static str> {
    match value {
        Some(Value::String(s)) => Ok(s.split_whitespace().map(str::to_string).collect()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_string)
                    .ok_or("a role or scope list holds something other than strings")
            })
            .collect(),
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(_) => Err("a role or scope claim is neither a list nor a string"),
    }
}
