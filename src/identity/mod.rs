//! Identity: who is calling. A bearer JWT, an API key (its own header, or a bearer token with the
//! `tgk_` prefix), or nobody (anonymous, where allowed). Verified principals are cached per
//! snapshot, so a reload (new keys, revoked API keys) never serves a stale verification.

pub mod apikeys;
mod issuer;
pub mod jwks;
pub mod jwt;
pub mod keys;
pub mod principal;
pub mod shipped;
pub mod tenant_idp;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::HeaderMap;
use http::header::AUTHORIZATION;

use crate::config::{self, yaml};
use crate::error::{Problem, Refusal};

use apikeys::ApiKeyStore;
use issuer::Attempt;
use jwks::JwksCache;
use jwt::JwtVerifier;
pub use principal::AuthMethod;
pub use principal::Principal;
pub use tenant_idp::{IdentityProvider, TenantIssuer};

/// The tenants' own identity providers, as the snapshot's directory holds them.
pub trait TenantIssuers {
    /// The tenant whose provider has the issuer `iss`, that tenant's revision, and the provider.
    fn by_issuer(&self, iss: &str) -> Option<(&Arc<str>, u64, &TenantIssuer)>;
    /// The revision of tenant `id`, while it exists.
    fn revision(&self, id: &str) -> Option<u64>;
    /// Whether any tenant has an identity provider.
    fn any(&self) -> bool;
}

/// What one snapshot knows about credentials.
pub struct Identity {
    jwt: JwtVerifier,
    api_keys: Option<ApiKeyStore>,
    /// Verified tokens by their text, within `identity.token_cache` bytes (`None`: off).
    tokens: Option<moka::sync::Cache<String, Arc<Principal>>>,
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
    /// Whether `tenant` already has an API key named `name`.
    pub(crate) fn has_key_named(&self, tenant: &str, name: &str) -> bool {
        self.api_keys
            .as_ref()
            .is_some_and(|keys| keys.names().any(|key| key == (tenant, name)))
    }

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
            tokens: (config.token_cache > 0).then(|| {
                moka::sync::Cache::builder()
                    .max_capacity(config.token_cache)
                    .weigher(|token: &String, principal: &Arc<Principal>| {
                        let bytes = principal::ENTRY_OVERHEAD + token.len() + principal.weight();
                        u32::try_from(bytes).unwrap_or(u32::MAX)
                    })
                    .time_to_live(Duration::from_secs(300))
                    .build()
            }),
            anonymous: Arc::new(Principal::anonymous()),
        })
    }

    /// The verified-token cache's entries and their weight in bytes (0, 0 when it is off).
    pub fn token_cache_size(&self) -> (u64, u64) {
        self.tokens.as_ref().map_or((0, 0), |t| {
            t.run_pending_tasks();
            (t.entry_count(), t.weighted_size())
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
        issuers: Option<&(dyn TenantIssuers + Sync)>,
    ) -> Result<Arc<Principal>, Refusal> {
        let tenant_issuers = issuers.is_some_and(|i| i.any());
        if anonymous && self.jwt.is_empty() && self.api_keys.is_none() && !tenant_issuers {
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
                if let Some(hit) = self.tokens.as_ref().and_then(|t| t.get(token))
                    && hit.valid_until.is_some_and(|until| until > now)
                    && hit.issued_by.as_ref().is_none_or(|(tenant, revision)| {
                        issuers.and_then(|i| i.revision(tenant)) == Some(*revision)
                    })
                {
                    return Ok(hit);
                }
                let principal = Arc::new(self.verify(config, token, jwks, issuers).await?);
                if let Some(tokens) = &self.tokens {
                    tokens.insert(token.to_string(), principal.clone());
                }
                Ok(principal)
            }
        }
    }
}

impl Identity {
    /// A bearer token checked against the issuer its `iss` names: a tenant's own provider, or
    /// the global ones. (`iss` only picks the issuer; the issuer's checks include it again.)
    async fn verify(
        &self,
        config: &config::Identity,
        token: &str,
        jwks: &JwksCache,
        issuers: Option<&(dyn TenantIssuers + Sync)>,
    ) -> Result<Principal, Refusal> {
        #[derive(serde::Deserialize)]
        struct Claimed {
            iss: Option<String>,
        }
        let refetch = config.unknown_kid_refetch;
        let claimed = || {
            jsonwebtoken::dangerous::insecure_decode_claims::<Claimed>(token)
                .ok()
                .and_then(|c| c.iss)
        };
        if let Some(issuers) = issuers.filter(|i| i.any())
            && let Some(iss) = claimed()
            && let Some((tenant, revision, issuer)) = issuers.by_issuer(&iss)
        {
            let header = jwt::header(token).map_err(invalid)?;
            return match issuer.0.attempt(token, &header, jwks, refetch).await {
                Attempt::Accepted(mut principal) => {
                    principal.issued_by = Some((tenant.clone(), revision));
                    Ok(*principal)
                }
                Attempt::Refused(why) | Attempt::NotMine(why) => Err(invalid(why)),
            };
        }
        if self.jwt.is_empty() {
            return Err(invalid("bearer tokens are not accepted here"));
        }
        self.jwt.verify(token, jwks, refetch).await.map_err(invalid)
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::HeaderMap;
    use serde_json::json;

    use super::{Identity, JwksCache, JwtVerifier};
    use crate::config::Config;

    /// A configuration with one HMAC key and a token cache of `budget`.
    fn config(budget: &str) -> (tempfile::TempDir, Config) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tollgate.yaml");
        std::fs::write(
            &path,
            format!(
                "upstream: {{ url: http://127.0.0.1:9 }}
identity:
  token_cache: {budget}
  jwt:
    - issuer: https://issuer.test
      audiences: [app]
      keys: [{{ kid: hs, alg: HS256, secret: \"0123456789abcdef0123456789abcdef\" }}]
"
            ),
        )
        .unwrap();
        let config = Config::load(&path).unwrap();
        (dir, config)
    }

    async fn authenticate_distinct(identity: &Identity, config: &Config, n: usize) {
        let jwks = JwksCache::new();
        for i in 0..n {
            let claims = json!({ "sub": format!("user-{i}"), "roles": ["viewer"] });
            let token =
                JwtVerifier::mint(&config.identity.jwt, &claims, Duration::from_secs(600)).unwrap();
            let mut headers = HeaderMap::new();
            let bearer = format!("Bearer {token}");
            headers.insert(http::header::AUTHORIZATION, bearer.parse().unwrap());
            identity
                .authenticate(&config.identity, &headers, &jwks, false, None)
                .await
                .unwrap();
        }
    }

    #[tokio::test]
    async fn the_token_cache_holds_its_byte_budget_however_many_callers_come() {
        let (_dir, config) = config("64KiB");
        let identity = Identity::load(&config.identity, |_| true).unwrap();
        authenticate_distinct(&identity, &config, 500).await;
        let (entries, bytes) = identity.token_cache_size();
        assert!(bytes <= 64 * 1024, "{bytes} bytes");
        assert!(entries > 0 && entries < 500, "{entries} entries");
        // What an entry weighs is what it costs, about (benches/memory.rs measures it).
        assert!(
            bytes / entries >= 1024,
            "{} bytes an entry",
            bytes / entries
        );
    }

    #[tokio::test]
    async fn a_token_cache_of_zero_keeps_nothing() {
        let (_dir, config) = config("0");
        let identity = Identity::load(&config.identity, |_| true).unwrap();
        authenticate_distinct(&identity, &config, 3).await;
        assert_eq!(identity.token_cache_size(), (0, 0));
    }
}
