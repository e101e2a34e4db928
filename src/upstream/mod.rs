//! The upstream: where allowed requests go. A cleartext HTTP/1.1 upstream (the sidecar's case)
//! uses Tollgate's own keep-alive pool (`pool.rs`); TLS (HTTP/1.1 or HTTP/2 by ALPN) and
//! `upstream.http2` use hyper-util's pooled client with rustls.

pub mod body;
mod error;
mod pool;

use std::sync::Arc;

use http::uri::PathAndQuery;
use http::{Request, Response, Uri};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::RootCertStore;

use crate::config::Upstream;
use crate::pem::load_roots;

pub(crate) use body::UpstreamBody;
pub use error::UpstreamError;
pub use pool::Streamed;

type PooledClient = Client<HttpsConnector<HttpConnector>, UpstreamBody>;

/// The client for the configured upstream.
pub enum UpstreamClient {
    Http1(Arc<pool::Pool>),
    Pooled(Box<PooledClient>),
}

impl UpstreamClient {
    /// Builds the client; the HTTP/1.1 pool starts its idle reaper on the current runtime.
    pub fn new(config: &Upstream) -> Result<UpstreamClient, String> {
        if config.scheme == http::uri::Scheme::HTTP && !config.http2 {
            Ok(UpstreamClient::Http1(pool::Pool::start(config)))
        } else {
            client(config).map(|c| UpstreamClient::Pooled(Box::new(c)))
        }
    }

    /// The request target for `path_and_query` on this upstream.
    pub fn target(&self, config: &Upstream, path_and_query: PathAndQuery) -> Result<Uri, String> {
        match self {
            UpstreamClient::Http1(_) => Ok(pool::Pool::target(path_and_query)),
            UpstreamClient::Pooled(_) => Uri::builder()
                .scheme(config.scheme.clone())
                .authority(config.authority.clone())
                .path_and_query(path_and_query)
                .build()
                .map_err(|e| e.to_string()),
        }
    }

    /// Sends the request and returns the response head; the body streams after.
    pub async fn send(
        &self,
        request: Request<UpstreamBody>,
    ) -> Result<Response<Streamed>, UpstreamError> {
        match self {
            UpstreamClient::Http1(pool) => pool.send(request).await,
            UpstreamClient::Pooled(client) => client
                .request(request)
                .await
                .map(|response| response.map(Streamed::unpooled))
                .map_err(UpstreamError::Client),
        }
    }
}

/// Whether the request asks to switch protocols (its connection cannot be reused).
/// Builds hyper-util's pooled client for the configured upstream.
fn client(config: &Upstream) -> Result<PooledClient, String> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(config.connect_timeout));

    let roots = match &config.ca_file {
        Some(path) => load_roots(path)?,
        None => RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("upstream TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let https = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);

    let mut builder = Client::builder(TokioExecutor::new());
    builder
        .pool_idle_timeout(config.pool_idle_timeout)
        .pool_max_idle_per_host(config.pool_max_idle_per_host)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .http2_only(config.http2);
    Ok(builder.build(https))
}
