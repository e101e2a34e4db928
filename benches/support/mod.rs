//! A generated deployment for the benchmarks: `tenants` tenants (`t00000`…) on a plan whose limits
//! never refuse, the shipped routes, schema and policies, and `policies` more policies in the
//! first tenant's own set. Files are written to a temporary directory and loaded the way
//! `tollgate serve` loads them.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tollgate::config::Config;
use tollgate::identity::Principal;
use tollgate::identity::jwks::JwksCache;
use tollgate::identity::jwt::JwtVerifier;
use tollgate::snapshot::Snapshot;
use tollgate::tenants::Tenant;

pub struct Deployment {
    pub snapshot: Snapshot,
    /// The main configuration file, to load the deployment again.
    pub config_file: std::path::PathBuf,
    dir: tempfile::TempDir,
}

fn repo(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(path)
        .display()
        .to_string()
}

pub fn tenant_id(i: usize) -> String {
    format!("t{i:05}")
}

/// A policy of a tenant's own set.
fn own_policy(i: usize) -> String {
    format!(
        "@id(\"own-{i}\")\npermit (principal in Role::\"role-{i}\", action == Action::\"read\", resource is Agent)\nwhen {{ context.hour >= 0 }};\n"
    )
}

/// One plan whose limits never refuse (shared with `load.py`).
const PLANS: &str = include_str!("../plans.yaml");

impl Deployment {
    /// `limits` is the `limits:` section (memory, embedded or redis).
    pub fn build(tenants: usize, policies: usize, decision_cache: u64, limits: &str) -> Deployment {
        Deployment::build_with(tenants, policies, 1, decision_cache, limits)
    }

    /// Like [`Deployment::build`], with `policy_sets` tenants (`t00000`…) that have policies of
    /// their own: the first has the `policies` generated ones, the others one each.
    pub fn build_with(
        tenants: usize,
        policies: usize,
        policy_sets: usize,
        decision_cache: u64,
        limits: &str,
    ) -> Deployment {
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name);
        let mut list = String::from("tenants:\n");
        for i in 0..tenants {
            let id = tenant_id(i);
            writeln!(list, "  - {{ id: {id}, name: {id}, plan: bench, status: active, domains: [{id}.example.org] }}").unwrap();
        }
        std::fs::write(path("tenants.yaml"), list).unwrap();
        std::fs::write(path("plans.yaml"), PLANS).unwrap();
        let policy_dir = path("policies");
        let own = policy_dir.join("tenants").join(tenant_id(0));
        std::fs::create_dir_all(&own).unwrap();
        for file in ["schema.cedarschema", "roles.cedar", "guards.cedar"] {
            std::fs::copy(repo(&format!("policies/{file}")), policy_dir.join(file)).unwrap();
        }
        let mut generated = String::new();
        for i in 0..policies {
            // Each one is evaluated and none matches the benchmark's caller: the cost of a big set.
            writeln!(
                generated,
                "@id(\"generated-{i}\")\npermit (principal in Role::\"role-{i}\", action == Action::\"read\", resource is Agent)\nwhen {{ context.features.contains(\"feature-{i}\") && context.hour >= 0 }};\n"
            )
            .unwrap();
        }
        std::fs::write(own.join("generated.cedar"), generated).unwrap();
        for i in 1..policy_sets.min(tenants) {
            let own = policy_dir.join("tenants").join(tenant_id(i));
            std::fs::create_dir_all(&own).unwrap();
            std::fs::write(own.join("own.cedar"), own_policy(i)).unwrap();
        }
        let config = format!(
            "upstream: {{ url: http://127.0.0.1:9 }}
tenancy:
  tenants_file: tenants.yaml
  plans_file: plans.yaml
  base_domains: [app.example.com]
identity:
  jwt:
    - issuer: https://auth.tollgate.dev/demo
      audiences: [tollgate-demo]
      keys:
        - {{ kid: demo-es256, alg: ES256, public_key_file: {public}, private_key_file: {private} }}
      claims: {{ subject: sub, tenant: tenant, roles: roles, scopes: scope, mfa: mfa }}
authorization:
  routes_file: {routes}
  policies_dir: policies
  decision_cache: {decision_cache}
{limits}
",
            public = repo("config/keys/demo-es256.pub.pem"),
            private = repo("config/keys/demo-es256.pem"),
            routes = repo("config/routes.yaml"),
        );
        let file = path("tollgate.yaml");
        std::fs::write(&file, config).unwrap();
        let config = Config::load(&file).unwrap_or_else(|e| panic!("{e:?}"));
        let snapshot = Snapshot::load(config, 1).unwrap_or_else(|e| panic!("{e:?}"));
        Deployment {
            snapshot,
            config_file: file,
            dir,
        }
    }

    /// Rewrites tenant `i`'s own policy file (`i` ≥ 1) with a policy of another id.
    pub fn change_tenant_policy(&self, i: usize, version: usize) {
        let own = self.dir.path().join("policies/tenants").join(tenant_id(i));
        std::fs::write(own.join("own.cedar"), own_policy(i * 1_000_000 + version)).unwrap();
    }

    /// A token of `sub` in tenant `t00000` with the viewer role.
    pub fn token(&self, sub: &str) -> String {
        let claims = json!({
            "sub": sub, "tenant": tenant_id(0), "roles": ["viewer"], "scope": "", "mfa": false,
            "iss": "https://auth.tollgate.dev/demo", "aud": "tollgate-demo",
        });
        JwtVerifier::mint(
            &self.snapshot.config.identity.jwt,
            &claims,
            Duration::from_secs(3600),
        )
        .unwrap()
    }

    /// The `i`th tenant.
    pub fn tenant(&self, i: usize) -> &Arc<Tenant> {
        self.snapshot
            .tenants
            .as_ref()
            .unwrap()
            .get(&tenant_id(i))
            .unwrap()
    }

    pub fn verifier(&self) -> JwtVerifier {
        JwtVerifier::load(&self.snapshot.config.identity.jwt, &[], &|_| true).unwrap()
    }

    pub fn principal(&self, runtime: &tokio::runtime::Runtime, sub: &str) -> Arc<Principal> {
        let token = self.token(sub);
        let principal = runtime
            .block_on(self.verifier().verify(
                &token,
                &JwksCache::new(),
                std::time::Duration::from_secs(30),
            ))
            .unwrap();
        Arc::new(principal)
    }
}
