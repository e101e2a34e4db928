//! Header processing on the hot path: what every forwarded request pays before it leaves.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderName, HeaderValue};
use tollgate::headers::{self, ClientSide};
use tollgate::pipeline::normalize;

/// A typical browser/API request's headers, including hop-by-hop ones to remove.
fn typical_request() -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in [
        ("host", "acme.app.example.com"),
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36",
        ),
        ("accept", "application/json"),
        ("accept-encoding", "gzip, deflate, br"),
        ("accept-language", "en-US,en;q=0.9"),
        (
            "authorization",
            "Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln",
        ),
        ("connection", "keep-alive"),
        ("keep-alive", "timeout=5"),
        ("cookie", "session=abc123; theme=dark"),
        ("x-request-id", "01a202ff-9f6e-7312-8f70-1a10bbde944f"),
        ("x-forwarded-for", "203.0.113.9"),
    ] {
        h.append(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    h
}

fn bench(c: &mut Criterion) {
    let template = typical_request();
    let host = HeaderValue::from_static("acme.app.example.com");

    c.bench_function(
        "headers/request_pass (strip hop-by-hop and reserved, forwarded, request id)",
        |b| {
            b.iter_batched_ref(
                || template.clone(),
                |h| {
                    let id = headers::request_id(h, false);
                    let upgrade = headers::upgrade_requested(h);
                    headers::strip_hop_by_hop(h);
                    headers::strip_reserved(h, &[], false);
                    headers::set_forwarded(
                        h,
                        &ClientSide {
                            peer: [10, 1, 2, 3].into(),
                            peer_trusted: false,
                            proto: "https",
                            host: Some(&host),
                        },
                    );
                    h.insert(&headers::X_REQUEST_ID, id);
                    black_box(upgrade);
                },
                criterion::BatchSize::SmallInput,
            )
        },
    );

    c.bench_function("headers/request_id generated", |b| {
        let empty = HeaderMap::new();
        b.iter(|| black_box(headers::request_id(black_box(&empty), false)))
    });

    c.bench_function("normalize/canonical path (already canonical)", |b| {
        b.iter(|| {
            black_box(normalize::canonical_path(black_box(
                "/api/v1/agents/7/execute",
            )))
        })
    });

    c.bench_function("normalize/canonical path (dot segments, escapes)", |b| {
        b.iter(|| {
            black_box(normalize::canonical_path(black_box(
                "/api/v1/./agents//%37/../7/%65xecute",
            )))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
