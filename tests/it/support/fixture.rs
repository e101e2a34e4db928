//! A multi-tenant configuration for tests: plans, tenants, an API keys file and freshly generated
//! JWT keys of every supported kind, plus a token signer.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use super::Options;

pub const ISSUER: &str = "https://issuer.test";
pub const AUDIENCE: &str = "tollgate-test";
pub const HS_SECRET: &str = "an-hmac-secret-of-at-least-32-bytes!!";

pub const PLANS: &str = "plans:
  basic:
    rate_limits: [{ name: hourly, limit: 1000, window: 1h }]
    quotas: { api_calls: { limit: 20000, period: month } }
    features: [basic_analytics]
    limits: { max_users: 5 }
  professional:
    features: [basic_analytics, advanced_analytics]
    limits: { max_users: 50, max_agents: 25 }
";

pub const TENANTS: &str = "tenants:
  - { id: acme, domains: [acme.example.org], plan: professional, status: active, limits: { max_users: 75 } }
  - { id: globex, plan: basic, status: active }
  - { id: initech, plan: basic, status: suspended }
  - { id: soylent, plan: basic, status: pending }
  - { id: oldco, plan: basic, status: archived }
  - { id: umbrella, plan: basic, status: trial, trial_ends_at: 2020-01-01T00:00:00Z }
  - { id: newco, plan: basic, status: trial, trial_ends_at: 2999-01-01T00:00:00Z }
";

/// Key pairs generated for one test run.
pub struct Keys {
    pub rsa: rcgen::KeyPair,
    pub ec: rcgen::KeyPair,
    pub ed: rcgen::KeyPair,
}

impl Keys {
    pub fn generate() -> Keys {
        Keys {
            rsa: rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap(),
            ec: rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap(),
            ed: rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap(),
        }
    }

    pub fn encoding(&self, alg: Algorithm) -> EncodingKey {
        match alg {
            Algorithm::HS256 => EncodingKey::from_secret(HS_SECRET.as_bytes()),
            Algorithm::RS256 => {
                EncodingKey::from_rsa_pem(self.rsa.serialize_pem().as_bytes()).unwrap()
            }
            Algorithm::ES256 => {
                EncodingKey::from_ec_pem(self.ec.serialize_pem().as_bytes()).unwrap()
            }
            Algorithm::EdDSA => {
                EncodingKey::from_ed_pem(self.ed.serialize_pem().as_bytes()).unwrap()
            }
            other => panic!("no test key for {other:?}"),
        }
    }
}

/// Options for a Tollgate with tenancy (the given tenant `sources`) and identity (every key
/// kind); `providers` are more `identity.jwt` entries.
pub fn options(keys: &Keys, anonymous: bool, sources: &[&str], providers: &[Value]) -> Options {
    let files = vec![
        ("plans.yaml".to_string(), PLANS.to_string()),
        ("tenants.yaml".to_string(), TENANTS.to_string()),
        ("api-keys.yaml".to_string(), "keys:\n".to_string()),
        ("keys/rs.pub.pem".to_string(), keys.rsa.public_key_pem()),
        ("keys/es.pub.pem".to_string(), keys.ec.public_key_pem()),
        ("keys/ed.pub.pem".to_string(), keys.ed.public_key_pem()),
    ];
    let mut jwt = vec![json!({
        "issuer": ISSUER,
        "audiences": [AUDIENCE],
        "leeway": "5s",
        "grants_operator_roles": true,
        "keys": [
            { "kid": "hs", "alg": "HS256", "secret": HS_SECRET },
            { "kid": "rs", "alg": "RS256", "public_key_file": "keys/rs.pub.pem" },
            { "kid": "es", "alg": "ES256", "public_key_file": "keys/es.pub.pem" },
            { "kid": "ed", "alg": "EdDSA", "public_key_file": "keys/ed.pub.pem" },
        ],
    })];
    jwt.extend(providers.iter().cloned());
    Options {
        files,
        ..Options::default()
    }
    .with(
        "tenancy",
        json!({
            "tenants_file": "tenants.yaml",
            "plans_file": "plans.yaml",
            "base_domains": ["app.test"],
            "sources": sources,
            "reload_interval": "100ms",
        }),
    )
    .with(
        "identity",
        json!({
            "anonymous": anonymous,
            "api_keys": { "file": "api-keys.yaml" },
            "operator_roles": ["super_admin"],
            "jwt": jwt,
        }),
    )
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Standard valid claims for `sub` of `tenant` with `roles`.
pub fn claims(sub: &str, tenant: &str, roles: &[&str]) -> Value {
    json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": sub, "tenant": tenant, "roles": roles,
        "iat": now(), "nbf": now(), "exp": now() + 3600,
    })
}

pub fn sign(keys: &Keys, alg: Algorithm, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_string());
    jsonwebtoken::encode(&header, claims, &keys.encoding(alg)).unwrap()
}

/// Signs with any P-256 key pair (a JWKS key that is not one of `Keys`).
pub fn sign_es256(key: &rcgen::KeyPair, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.to_string());
    let encoding = EncodingKey::from_ec_pem(key.serialize_pem().as_bytes()).unwrap();
    jsonwebtoken::encode(&header, claims, &encoding).unwrap()
}

pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Every stage at once: tenancy, identity (no anonymous callers), the shipped routes and
/// policies, and plan limits in memory. globex may send one request an hour (the second is
/// rate-limited). `extra` is more top-level YAML.
pub fn full_stack(keys: &Keys, extra: &str) -> Options {
    let mut options = options(keys, false, &["subdomain", "claim"], &[]);
    options.files.extend(crate::authz::shipped_policy_files());
    options.files.push((
        "tenants.yaml".into(),
        TENANTS.replace(
            "{ id: globex, plan: basic, status: active }",
            "{ id: globex, plan: basic, status: active, rate_limits: { hourly: 1 } }",
        ),
    ));
    options.set(
        "authorization",
        json!({ "routes_file": "routes.yaml", "policies_dir": "policies" }),
    );
    options.set("limits.backend", "memory");
    options.extra.push_str(extra);
    options
}

/// What `tollgate check` says of a deployment of the fixture's plans, its tenants and the tenant
/// line `tenant`, and `files` (name, text); `extra` is added to the main file. It must fail.
pub fn check_fails(tenant: &str, files: &[(String, String)], extra: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    for (name, body) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    }
    let tenants = format!("{TENANTS}  - {tenant}\n");
    std::fs::write(dir.path().join("tenants.yaml"), tenants).unwrap();
    std::fs::write(dir.path().join("plans.yaml"), PLANS).unwrap();
    let main = dir.path().join("tollgate.yaml");
    std::fs::write(
        &main,
        format!("upstream: {{ url: \"http://127.0.0.1:1\" }}\ntenancy: {{ tenants_file: tenants.yaml, plans_file: plans.yaml }}\n{extra}"),
    )
    .unwrap();
    let (ok, out) = super::tollgate::check(&[&main]);
    assert!(!ok, "{out}");
    out
}
