//! Why the upstream gave no response.

use std::error::Error as StdError;
use std::fmt;
use std::io;

/// Why the upstream gave no response.
#[derive(Debug)]
pub enum UpstreamError {
    /// No connection could be opened.
    Connect(io::Error),
    /// The connection failed during the exchange.
    Request(hyper::Error),
    /// hyper-util's client failed (connecting or during the exchange).
    Client(hyper_util::client::legacy::Error),
}

impl UpstreamError {
    /// Whether no connection could be opened (refused, unreachable, timed out).
    pub(crate) fn is_connect(&self) -> bool {
        match self {
            UpstreamError::Connect(_) => true,
            UpstreamError::Request(_) => false,
            UpstreamError::Client(e) => e.is_connect(),
        }
    }
}

impl fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpstreamError::Connect(_) => f.write_str("cannot connect to the upstream"),
            UpstreamError::Request(_) | UpstreamError::Client(_) => {
                f.write_str("the upstream exchange failed")
            }
        }
    }
}

impl StdError for UpstreamError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            UpstreamError::Connect(e) => Some(e),
            UpstreamError::Request(e) => Some(e),
            UpstreamError::Client(e) => Some(e),
        }
    }
}
