//! Every pipeline stage on its hot path, on a generated deployment of 10,000 tenants: tenant
//! resolution, JWT verification (cold and cached), route matching, the Cedar decision (cache miss
//! and hit; 10, 100 and 1,000 policies in the tenant's set), the rate-limit check and the quota
//! check per backend (memory, embedded redb, Redis when `redis-server` is installed).

#[allow(dead_code, reason = "the reload helpers serve benches/reload.rs")]
mod support;

use std::hint::black_box;
use std::net::IpAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue, Method, Uri};
use tollgate::authz::decide::Inputs;
use tollgate::identity::jwks::JwksCache;
use tollgate::limits::Limits;
use tollgate::limits::rate::RateLimiters;
use tollgate::limits::store::Item;
use tollgate::metrics::Metrics;
use tollgate::pipeline::{normalize, tenant};

use support::{Deployment, tenant_id};
use tollgate::config::DECISION_CACHE;

const TENANTS: usize = 10_000;
const MEMORY: &str = "limits: { backend: memory }";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn request(host: &str, authorization: Option<&str>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_str(host).unwrap());
    if let Some(token) = authorization {
        let value = format!("Bearer {token}");
        headers.insert("authorization", HeaderValue::from_str(&value).unwrap());
    }
    headers
}

fn tenants(c: &mut Criterion) {
    let d = Deployment::build(TENANTS, 10, DECISION_CACHE, MEMORY);
    let tenancy = d.snapshot.config.tenancy.as_ref().unwrap();
    let directory = d.snapshot.tenants.as_ref().unwrap();
    let uri: Uri = "/api/v1/agents/7".parse().unwrap();
    let last = tenant_id(TENANTS - 1);
    for (name, host) in [
        ("subdomain", format!("{last}.app.example.com")),
        ("custom_domain", format!("{last}.example.org")),
    ] {
        let headers = request(&host, None);
        c.bench_function(&format!("tenant/resolve {name} (10,000 tenants)"), |b| {
            b.iter_batched_ref(
                || normalize::target(&uri, &headers, true).unwrap(),
                |target| tenant::resolve(tenancy, directory, target, &headers).unwrap(),
                criterion::BatchSize::SmallInput,
            )
        });
    }
}

fn identity(c: &mut Criterion) {
    let rt = runtime();
    let d = Deployment::build(10, 0, DECISION_CACHE, MEMORY);
    let verifier = d.verifier();
    let jwks = JwksCache::new();
    let token = d.token("alice");
    c.bench_function("jwt/verify cold (ES256, no cache)", |b| {
        b.iter(|| {
            rt.block_on(verifier.verify(
                black_box(&token),
                &jwks,
                std::time::Duration::from_secs(30),
            ))
            .unwrap()
        })
    });
    let headers = request("t00000.app.example.com", Some(&token));
    let config = &d.snapshot.config.identity;
    c.bench_function("jwt/authenticate cached", |b| {
        b.iter(|| {
            rt.block_on(
                d.snapshot
                    .identity
                    .authenticate(config, &headers, &jwks, false, None),
            )
            .unwrap()
        })
    });
}

fn routes(c: &mut Criterion) {
    let d = Deployment::build(10, 0, 0, MEMORY);
    let routes = &d.snapshot.authz.as_ref().unwrap().routes;
    c.bench_function("route/find (shipped routes, with a parameter)", |b| {
        b.iter(|| {
            routes
                .find(&Method::GET, black_box("/api/v1/agents/7"))
                .unwrap()
        })
    });
}

fn inputs<'a>(
    tenant: &'a tollgate::tenants::Tenant,
    principal: &'a tollgate::identity::Principal,
    resource_id: &'a str,
) -> Inputs<'a> {
    Inputs {
        tenant,
        principal,
        action: "read",
        resource_type: "Agent",
        resource_id,
        client_ip: IpAddr::from([10, 1, 2, 3]),
        method: "GET",
        path: "/api/v1/agents/7",
        now: SystemTime::now(),
    }
}

fn decisions(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("authz/decide");
    for policies in [10, 100, 1000] {
        let miss = Deployment::build(TENANTS, policies, 0, MEMORY);
        let authz = miss.snapshot.authz.as_ref().unwrap();
        let tenant = miss.tenant(0);
        let principal = miss.principal(&rt, "alice");
        group.bench_with_input(BenchmarkId::new("miss", policies), &policies, |b, _| {
            b.iter(|| {
                let (decision, hit) = authz.decide(&inputs(tenant, &principal, "7"));
                assert!(decision.allowed && !hit);
            })
        });
        if policies == 1000 {
            let cached = Deployment::build(TENANTS, policies, DECISION_CACHE, MEMORY);
            let authz = cached.snapshot.authz.as_ref().unwrap();
            let tenant = cached.tenant(0);
            authz.decide(&inputs(tenant, &principal, "7"));
            group.bench_with_input(BenchmarkId::new("hit", policies), &policies, |b, _| {
                b.iter(|| {
                    let (decision, hit) = authz.decide(&inputs(tenant, &principal, "7"));
                    assert!(decision.allowed && hit);
                })
            });
        }
        if policies == 10 {
            // The last of the 10,000 tenants (only the shipped policies apply), asked by a caller
            // of the first: denied by `no-cross-tenant`.
            let other = miss.tenant(TENANTS - 1);
            let principal = miss.principal(&rt, "bob");
            group.bench_function("miss, tenant 10,000 of 10,000", |b| {
                b.iter(|| authz.decide(&inputs(other, &principal, "7")))
            });
        }
    }
    group.finish();
}

fn rate_limits(c: &mut Criterion) {
    let d = Deployment::build(10, 0, 0, MEMORY);
    let tenant = d.tenant(0);
    let limit = &tenant.rate_limits[0];
    let limiters = RateLimiters::default();
    let key = "t00000\u{1f}alice".to_string();
    c.bench_function("rate/check one key", |b| {
        b.iter(|| assert!(limiters.check(limit, black_box(&key)).allowed))
    });
    let keys: Vec<String> = (0..100_000)
        .map(|i| format!("t00000\u{1f}user-{i}"))
        .collect();
    let mut next = 0;
    c.bench_function("rate/check 100,000 keys in turn", |b| {
        b.iter(|| {
            next = (next + 1) % keys.len();
            limiters.check(limit, &keys[next])
        })
    });
}

/// A redis-server on a free port for the Redis backend, if one is installed.
struct Redis(Child, u16);

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn redis() -> Option<Redis> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .spawn()
        .ok()?;
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(Redis(child, port));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

fn quotas(c: &mut Criterion) {
    let rt = runtime();
    let metrics = Metrics::new().unwrap();
    let state = tempfile::tempdir().unwrap();
    let server = redis();
    let mut backends = vec![
        ("memory", MEMORY.to_string()),
        (
            "embedded",
            format!(
                "limits: {{ backend: embedded, path: {} }}",
                state.path().join("usage.redb").display()
            ),
        ),
    ];
    match &server {
        Some(Redis(_, port)) => backends.push((
            "redis",
            format!("limits: {{ backend: redis, redis: {{ url: \"redis://127.0.0.1:{port}\" }} }}"),
        )),
        None => eprintln!("redis-server is not installed: the Redis backend is not measured"),
    }
    let item = Item {
        ends_in: 86_400,
        metric: "api_calls".into(),
        period: "2026-11".into(),
        limit: 1_000_000_000_000,
        cost: 1,
    };
    let principal = AtomicU64::new(0);
    let mut group = c.benchmark_group("limits/check (rate limit and quota)");
    for (name, section) in backends {
        let d = Deployment::build(10, 0, 0, &section);
        let limits = rt
            .block_on(async { Limits::open(&d.snapshot.config.limits) })
            .unwrap();
        let tenant = d.tenant(0);
        let items = [item.clone()];
        group.bench_function(name, |b| {
            b.iter(|| {
                let who = format!("user-{}", principal.fetch_add(1, Ordering::Relaxed) % 1000);
                let outcome = rt
                    .block_on(limits.check(&metrics, tenant, &who, None, &items))
                    .unwrap();
                assert!(outcome.consumed.is_some());
            })
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    tenants,
    identity,
    routes,
    decisions,
    rate_limits,
    quotas
);
criterion_main!(benches);
