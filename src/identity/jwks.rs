//! JSON Web Key Sets: parsed from a file (part of the snapshot, reloaded with it) or fetched from
//! a URL (given, or found through OIDC discovery) and cached in moka across snapshots. A URL's
//! set is refetched when it is older than the issuer's `jwks_refresh`, or when a token names a
//! key id the set lacks (a rotation), at most once per `identity.unknown_kid_refetch`, however
//! many such tokens come. Concurrent requests share one fetch.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Header};

use super::keys::VerifyKey;

const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// Where an issuer's remote keys are found.
pub(crate) enum Remote {
    /// A JWKS URL.
    Url(String),
    /// `{issuer}/.well-known/openid-configuration`, whose `jwks_uri` names the set.
    Discovery(String),
}

/// Turns a key set into verification keys. Each key's algorithm is pinned: taken from its `alg`,
/// or, when absent, from what its key type allows unambiguously (RSA → RS256, P-256 → ES256,
/// P-384 → ES384, Ed25519 → EdDSA). Symmetric keys in a JWKS are refused.
pub(crate) fn keys_from_jwks(text: &str) -> Result<Vec<VerifyKey>, String> {
    let set: JwkSet = serde_json::from_str(text).map_err(|e| format!("not a JWKS: {e}"))?;
    let mut keys = Vec::new();
    for (i, jwk) in set.keys.iter().enumerate() {
        let implied = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => Some(Algorithm::RS256),
            AlgorithmParameters::EllipticCurve(p) => match p.curve {
                EllipticCurve::P256 => Some(Algorithm::ES256),
                EllipticCurve::P384 => Some(Algorithm::ES384),
                _ => None,
            },
            AlgorithmParameters::OctetKeyPair(_) => Some(Algorithm::EdDSA),
            AlgorithmParameters::OctetKey(_) => {
                return Err(format!("keys[{i}]: symmetric keys do not belong in a JWKS"));
            }
            _ => None,
        };
        let alg = match jwk.common.key_algorithm {
            Some(declared) => Algorithm::try_from(declared)
                .map_err(|_| format!("keys[{i}]: algorithm {declared:?} cannot verify tokens"))?,
            None => implied
                .ok_or_else(|| format!("keys[{i}]: no `alg` and none implied by its key type"))?,
        };
        let decoding = DecodingKey::from_jwk(jwk).map_err(|e| format!("keys[{i}]: {e}"))?;
        keys.push(VerifyKey {
            kid: jwk.common.key_id.clone(),
            alg,
            decoding,
        });
    }
    Ok(keys)
}

/// A remote document as last fetched. `claimed` is set by the one request that refetches it, so
/// that a burst of requests seeing it stale causes one fetch, not one each.
struct Fetched<T> {
    at: Instant,
    value: T,
    claimed: AtomicBool,
}

type Remotes<T> = moka::future::Cache<String, Arc<Fetched<T>>>;

/// Remote key sets by URL and discovered `jwks_uri`s by issuer, shared by every snapshot of the
/// process.
pub struct JwksCache {
    sets: Remotes<Arc<Vec<VerifyKey>>>,
    /// `None`: the discovery document could not be fetched or was refused.
    discovered: Remotes<Option<Arc<str>>>,
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
}

/// Whether Tollgate fetches keys from `url`: `https`, or `http` to a loopback address (a local
/// identity provider in development and tests).
pub(crate) fn fetchable(url: &str) -> Result<(), &'static str> {
    let uri: http::Uri = url.parse().map_err(|_| "is not a URL")?;
    let host = uri.host().ok_or("is not a URL with a host")?;
    match uri.scheme_str() {
        Some("https") => Ok(()),
        Some("http") if ["127.0.0.1", "localhost", "[::1]"].contains(&host) => Ok(()),
        Some("http") => Err("must be https (http only to a loopback address)"),
        _ => Err("is not an http(s) URL"),
    }
}

/// The current value at `key`, fetched when missing or when `stale` says so. Of the requests
/// that find it stale at once, one fetches; the others use it as it is until the fetch is done.
async fn fresh<T, F, Fut>(
    cache: &Remotes<T>,
    key: &str,
    stale: impl Fn(&Fetched<T>) -> bool,
    fetch: F,
) -> Arc<Fetched<T>>
where
    T: Send + Sync + 'static,
    F: FnOnce(Option<Arc<Fetched<T>>>) -> Fut,
    Fut: Future<Output = T>,
{
    let previous = cache.get(key).await;
    if let Some(current) = &previous {
        if !stale(current) || current.claimed.swap(true, Ordering::AcqRel) {
            return current.clone();
        }
        cache.invalidate(key).await;
    }
    let fetching = fetch(previous);
    cache
        .get_with(key.to_string(), async move {
            Arc::new(Fetched {
                at: Instant::now(),
                value: fetching.await,
                claimed: AtomicBool::new(false),
            })
        })
        .await
}

impl JwksCache {
    pub fn new() -> Self {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .build();
        JwksCache {
            sets: moka::future::Cache::builder().max_capacity(4096).build(),
            discovered: moka::future::Cache::builder().max_capacity(4096).build(),
            client: Client::builder(TokioExecutor::new()).build(https),
        }
    }

    /// The keys of `remote` for a token with `header`: the set as cached, fetched when missing
    /// or older than `refresh`, and refetched when it lacks the token's `kid` and is older than
    /// `refetch`. A set that cannot be fetched yields the keys it had (none at first): tokens
    /// needing others are refused, never accepted unverified.
    pub(crate) async fn remote_keys(
        &self,
        remote: &Remote,
        refresh: Duration,
        header: &Header,
        refetch: Duration,
    ) -> Arc<Vec<VerifyKey>> {
        let url = match remote {
            Remote::Url(url) => url.as_str().into(),
            Remote::Discovery(issuer) => match self.jwks_uri(issuer, refresh, refetch).await {
                Some(url) => url,
                None => return Arc::default(),
            },
        };
        let keys = self.keys(&url, refresh, None).await;
        let known = |k: &VerifyKey| k.alg == header.alg && k.kid == header.kid;
        if header.kid.is_some() && !keys.iter().any(known) {
            return self.keys(&url, refresh, Some(refetch)).await;
        }
        keys
    }

    /// The set at `url`; with `unknown_kid`, refetched when older than that.
    async fn keys(
        &self,
        url: &str,
        refresh: Duration,
        unknown_kid: Option<Duration>,
    ) -> Arc<Vec<VerifyKey>> {
        let stale = |f: &Fetched<Arc<Vec<VerifyKey>>>| {
            let age = f.at.elapsed();
            age >= refresh || unknown_kid.is_some_and(|floor| age >= floor)
        };
        let fetched = fresh(&self.sets, url, stale, |previous| async move {
            match self.fetch(url).await.and_then(|b| keys_from_jwks(&b)) {
                Ok(keys) => {
                    tracing::info!(url, keys = keys.len(), "fetched a JWKS");
                    Arc::new(keys)
                }
                Err(e) => {
                    tracing::error!(url, error = %e, "JWKS fetch failed; keeping the keys it had");
                    previous.map(|p| p.value.clone()).unwrap_or_default()
                }
            }
        })
        .await;
        fetched.value.clone()
    }

    /// The `jwks_uri` of `issuer`'s OpenID Provider configuration, which must name the same
    /// issuer (OpenID Connect Discovery 1.0, §4.3). A failure is retried after `refetch`.
    async fn jwks_uri(
        &self,
        issuer: &str,
        refresh: Duration,
        refetch: Duration,
    ) -> Option<Arc<str>> {
        let stale = |f: &Fetched<Option<Arc<str>>>| {
            f.at.elapsed() >= if f.value.is_some() { refresh } else { refetch }
        };
        let fetched = fresh(&self.discovered, issuer, stale, |previous| async move {
            let url = format!(
                "{}/.well-known/openid-configuration",
                issuer.trim_end_matches('/')
            );
            match self.fetch(&url).await.and_then(|b| discovered(issuer, &b)) {
                Ok(jwks_uri) => Some(jwks_uri.into()),
                Err(e) => {
                    tracing::error!(issuer, error = %e, "OIDC discovery failed");
                    previous.and_then(|p| p.value.clone())
                }
            }
        })
        .await;
        fetched.value.clone()
    }

    async fn fetch(&self, url: &str) -> Result<String, String> {
        let uri: http::Uri = url.parse().map_err(|e| format!("bad URL: {e}"))?;
        let request = http::Request::get(uri)
            .header(http::header::ACCEPT, "application/json")
            .body(Empty::new())
            .map_err(|e| e.to_string())?;
        let response = tokio::time::timeout(FETCH_TIMEOUT, self.client.request(request))
            .await
            .map_err(|_| "timed out".to_string())?
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("HTTP {}", response.status()));
        }
        let body = Limited::new(response.into_body(), MAX_JWKS_BYTES)
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok(String::from_utf8_lossy(&body).into_owned())
    }
}

/// The `jwks_uri` of a discovery document for `issuer`.
fn discovered(issuer: &str, document: &str) -> Result<String, String> {
    #[derive(serde::Deserialize)]
    struct Configuration {
        issuer: String,
        jwks_uri: String,
    }
    let configuration: Configuration = serde_json::from_str(document)
        .map_err(|e| format!("not an OpenID Provider configuration: {e}"))?;
    if configuration.issuer != issuer {
        return Err(format!(
            "the configuration is for issuer {:?}",
            configuration.issuer
        ));
    }
    fetchable(&configuration.jwks_uri).map_err(|e| format!("jwks_uri {e}"))?;
    Ok(configuration.jwks_uri)
}

impl Default for JwksCache {
    fn default() -> Self {
        Self::new()
    }
}
