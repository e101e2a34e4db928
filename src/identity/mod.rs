//! Identity: who is calling. A bearer JWT, an API key (its own header, or a bearer token with the
//! `tgk_` prefix), or nobody (anonymous, where allowed). Verified principals are cached per
//! snapshot, so a reload (new keys, revoked API keys) never serves a stale verification.

pub mod apikeys;
pub mod jwks;
pub mod jwt;
pub mod principal;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::HeaderMap;
use http::header::AUTHORIZATION;

use crate::config::{self, yaml};
use crate::error::{Problem, Refusal};

use apikeys::ApiKeyStore;
use jwks::JwksCache;
use jwt::JwtVerifier;
pub use principal::{AuthMethod, Principal};

/// What one snapshot knows about credentials.
pub struct Identity {
    jwt: JwtVerifier,
    api_keys: Option<ApiKeyStore>,
    /// Verified tokens by their text.
    tokens: moka::sync::Cache<String, Arc<Principal>>,
    anonymous: Arc<Principal>,
}

enum Credential<'a> {
    Bearer(&'a str),
    ApiKey(&'a str),
}

fn invalid(detail: &'static str) -> Refusal {
    Refusal::new(Problem::InvalidCredentials, detail)
}

impl Identity {
    pub fn load(
        config: &config::Identity,
        known_tenant: impl Fn(&str) -> bool,
    ) -> Result<Identity, Vec<String>> {
        let (jwt, api_keys) = yaml::both(
            JwtVerifier::load(&config.jwt, &config.operator_roles, &known_tenant),
            config
                .api_keys
                .as_ref()
                .map(|k| ApiKeyStore::load(&k.file, &known_tenant))
                .transpose(),
        )?;
        Ok(Identity {
            jwt,
            api_keys,
            tokens: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(300))
                .build(),
            anonymous: Arc::new(Principal::anonymous()),
        })
    }

    /// Authenticates the caller of a request. `anonymous` says whether a request without
    /// credentials passes (globally, or because its route allows it).
    pub async fn authenticate(
        &self,
        config: &config::Identity,
        headers: &HeaderMap,
        jwks: &JwksCache,
        anonymous: bool,
    ) -> Result<Arc<Principal>, Refusal> {
        if anonymous && self.jwt.is_empty() && self.api_keys.is_none() {
            // Tollgate checks no credentials here: they are the application's, forwarded as sent.
            return Ok(self.anonymous.clone());
        }
        let credential = credential(config, headers)?;
        let now = SystemTime::now();
        match credential {
            None if anonymous => Ok(self.anonymous.clone()),
            None => Err(Refusal::new(
                Problem::Unauthenticated,
                "send a bearer token or an API key",
            )),
            Some(Credential::ApiKey(key)) => {
                let store = self
                    .api_keys
                    .as_ref()
                    .ok_or_else(|| invalid("API keys are not accepted here"))?;
                store.lookup(key, now).map_err(invalid)
            }
            Some(Credential::Bearer(token)) => {
                if let Some(hit) = self.tokens.get(token)
                    && hit.valid_until.is_some_and(|until| until > now)
                {
                    return Ok(hit);
                }
                if self.jwt.is_empty() {
                    return Err(invalid("bearer tokens are not accepted here"));
                }
                let principal = Arc::new(self.jwt.verify(token, jwks).await.map_err(invalid)?);
                self.tokens.insert(token.to_string(), principal.clone());
                Ok(principal)
            }
        }
    }
}

/// The one credential a request carries. Two different ones are refused rather than one picked.
fn credential<'a>(
    config: &config::Identity,
    headers: &'a HeaderMap,
) -> Result<Option<Credential<'a>>, Refusal> {
    let bearer = match headers.get(AUTHORIZATION) {
        None => None,
        Some(value) => {
            let text = value
                .to_str()
                .map_err(|_| invalid("unreadable Authorization header"))?;
            let (scheme, token) = text
                .split_once(' ')
                .ok_or_else(|| invalid("the Authorization header must be `Bearer <token>`"))?;
            if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
                return Err(invalid("the Authorization header must be `Bearer <token>`"));
            }
            Some(token.trim())
        }
    };
    let key_header = config
        .api_keys
        .as_ref()
        .and_then(|k| headers.get(&k.header))
        .map(|v| v.to_str().map_err(|_| invalid("unreadable API key header")))
        .transpose()?;
    Ok(match (bearer, key_header) {
        (Some(_), Some(_)) => return Err(invalid("send a bearer token or an API key, not both")),
        (Some(token), None) if token.starts_with(apikeys::PREFIX) => {
            Some(Credential::ApiKey(token))
        }
        (Some(token), None) => Some(Credential::Bearer(token)),
        (None, Some(key)) => Some(Credential::ApiKey(key.trim())),
        (None, None) => None,
    })
}
