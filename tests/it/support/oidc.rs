//! A local OpenID provider for tests: it serves its discovery document and its JWKS over
//! loopback HTTP, counts how often each is fetched, rotates its signing key on demand and signs
//! tokens, as an enterprise tenant's IdP would.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use super::fixture::now;

/// A P-256 signing key and its public JWK.
struct Key {
    kid: String,
    pem: String,
    jwk: Value,
}

impl Key {
    fn generate(kid: &str) -> Key {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let point = pair.public_key_raw();
        Key {
            kid: kid.to_string(),
            pem: pair.serialize_pem(),
            jwk: json!({
                "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid,
                "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
            }),
        }
    }
}

struct State {
    /// The key set served; the last key signs.
    keys: Vec<Key>,
    /// The `issuer` the discovery document claims (the real one unless a test lies).
    claimed_issuer: String,
    rotations: usize,
    /// Answer every request with a 503 (an outage).
    down: bool,
}

pub struct Oidc {
    /// `http://127.0.0.1:<port>`: its tokens' `iss`.
    pub issuer: String,
    state: Arc<Mutex<State>>,
    jwks_fetches: Arc<AtomicUsize>,
    discovery_fetches: Arc<AtomicUsize>,
}

impl Oidc {
    pub async fn start() -> Oidc {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let issuer = format!("http://{addr}");
        let state = Arc::new(Mutex::new(State {
            keys: vec![Key::generate("k0")],
            claimed_issuer: issuer.clone(),
            rotations: 0,
            down: false,
        }));
        let jwks_fetches = Arc::new(AtomicUsize::new(0));
        let discovery_fetches = Arc::new(AtomicUsize::new(0));
        let (served, jwks, discovery, base) = (
            state.clone(),
            jwks_fetches.clone(),
            discovery_fetches.clone(),
            issuer.clone(),
        );
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (state, jwks, discovery, base) = (
                    served.clone(),
                    jwks.clone(),
                    discovery.clone(),
                    base.clone(),
                );
                tokio::spawn(async move {
                    let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let state = state.lock().unwrap();
                        let path = req.uri().path();
                        match path {
                            "/jwks" => jwks.fetch_add(1, Ordering::SeqCst),
                            _ => discovery.fetch_add(1, Ordering::SeqCst),
                        };
                        let (status, body) = match path {
                            _ if state.down => (503, String::new()),
                            "/.well-known/openid-configuration" => {
                                let document = json!({
                                    "issuer": state.claimed_issuer,
                                    "jwks_uri": format!("{base}/jwks"),
                                    "id_token_signing_alg_values_supported": ["ES256"],
                                });
                                (200, document.to_string())
                            }
                            "/jwks" => {
                                let keys: Vec<&Value> = state.keys.iter().map(|k| &k.jwk).collect();
                                (200, json!({ "keys": keys }).to_string())
                            }
                            _ => (404, String::new()),
                        };
                        let mut response = http::Response::new(Full::new(Bytes::from(body)));
                        *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
                        async move { Ok::<_, Infallible>(response) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Oidc {
            issuer,
            state,
            jwks_fetches,
            discovery_fetches,
        }
    }

    /// A new signing key replaces the current one in the set; returns its `kid`.
    pub fn rotate(&self) -> String {
        let mut state = self.state.lock().unwrap();
        state.rotations += 1;
        let kid = format!("k{}", state.rotations);
        state.keys = vec![Key::generate(&kid)];
        kid
    }

    /// Starts or ends an outage.
    pub fn set_down(&self, down: bool) {
        self.state.lock().unwrap().down = down;
    }

    /// Makes the discovery document claim another issuer.
    pub fn claim_issuer(&self, issuer: &str) {
        self.state.lock().unwrap().claimed_issuer = issuer.to_string();
    }

    /// Valid claims of this issuer for `sub` in `groups`, for audience `aud`.
    pub fn claims(&self, sub: &str, aud: &str, groups: &[&str]) -> Value {
        json!({
            "iss": self.issuer, "aud": aud, "sub": sub, "groups": groups,
            "iat": now(), "nbf": now(), "exp": now() + 3600,
        })
    }

    /// `claims` signed with the current key, under `kid` (`None`: the current key's).
    pub fn sign(&self, claims: &Value, kid: Option<&str>) -> String {
        let state = self.state.lock().unwrap();
        let key = state.keys.last().unwrap();
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.unwrap_or(&key.kid).to_string());
        let encoding = EncodingKey::from_ec_pem(key.pem.as_bytes()).unwrap();
        jsonwebtoken::encode(&header, claims, &encoding).unwrap()
    }

    pub fn jwks_fetches(&self) -> usize {
        self.jwks_fetches.load(Ordering::SeqCst)
    }

    pub fn discovery_fetches(&self) -> usize {
        self.discovery_fetches.load(Ordering::SeqCst)
    }
}
