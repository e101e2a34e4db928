//! Stage 9, record: what happened to the request, for metrics and logs. Runs for allowed and
//! refused requests alike.

use http::{Method, StatusCode};

use crate::metrics::Metrics;

use super::Context;

pub fn record(metrics: &Metrics, ctx: &Context, method: &Method, status: StatusCode) {
    let elapsed = ctx.started.elapsed();
    metrics.requests.with_label_values(&[status.as_str()]).inc();
    metrics.request_duration.observe(elapsed.as_secs_f64());
    tracing::debug!(
        request_id = ctx.request_id.to_str().unwrap_or_default(),
        peer = %ctx.peer,
        %method,
        status = status.as_u16(),
        micros = elapsed.as_micros() as u64,
        "request"
    );
}
