//! JSON Web Key Sets: parsed from a file (part of the snapshot, reloaded with it) or fetched from
//! a URL and cached in moka across snapshots. A URL's set is refetched when it is older than the
//! provider's `jwks_refresh`, or when a token names a key id the set lacks (a rotation), at most
//! once per [`MIN_REFETCH`]. Concurrent requests share one fetch.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey};

use super::keys::VerifyKey;

/// A token with an unknown key id refetches a set at most this often.
const MIN_REFETCH: Duration = Duration::from_secs(30);
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_JWKS_BYTES: usize = 1024 * 1024;

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

struct Fetched {
    at: Instant,
    keys: Arc<Vec<VerifyKey>>,
}

/// Remote key sets by URL, shared by every snapshot of the process.
pub struct JwksCache {
    sets: moka::future::Cache<String, Arc<Fetched>>,
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
}

impl JwksCache {
    pub fn new() -> Self {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .build();
        JwksCache {
            sets: moka::future::Cache::builder().max_capacity(64).build(),
            client: Client::builder(TokioExecutor::new()).build(https),
        }
    }

    /// The keys at `url`, fetched when missing, older than `refresh`, or (with `unknown_kid`)
    /// older than the minimum refetch interval. A failed fetch yields no keys: tokens that need
    /// them are refused, never accepted unverified.
    pub async fn keys(
        &self,
        url: &str,
        refresh: Duration,
        unknown_kid: bool,
    ) -> Arc<Vec<VerifyKey>> {
        if let Some(current) = self.sets.get(url).await {
            let age = current.at.elapsed();
            let stale = age >= refresh || (unknown_kid && age >= MIN_REFETCH);
            if !stale {
                return current.keys.clone();
            }
            self.sets.invalidate(url).await;
        }
        let fetched = self
            .sets
            .get_with(url.to_string(), async {
                let keys = match self.fetch(url).await {
                    Ok(keys) => keys,
                    Err(e) => {
                        tracing::error!(url, error = %e, "JWKS fetch failed; tokens needing it are refused");
                        Vec::new()
                    }
                };
                Arc::new(Fetched {
                    at: Instant::now(),
                    keys: Arc::new(keys),
                })
            })
            .await;
        fetched.keys.clone()
    }

    async fn fetch(&self, url: &str) -> Result<Vec<VerifyKey>, String> {
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
        keys_from_jwks(&String::from_utf8_lossy(&body))
    }
}

impl Default for JwksCache {
    fn default() -> Self {
        Self::new()
    }
}
