//! Stage 0, admission: refuse requests that are too large before doing any work for them.
//! hyper already refuses broken framing (two different `Content-Length`s, an obfuscated
//! `Transfer-Encoding`) with 400, and closes the connection after a request that carried both
//! `Content-Length` and `Transfer-Encoding` (RFC 9112 §6.1), so no smuggled request survives.

use http::HeaderMap;
use http::header::CONTENT_LENGTH;

use crate::config::Limits;
use crate::error::{Problem, Refusal};

/// Checks header count and size, and a declared body length, against the configured limits.
pub fn check(limits: &Limits, headers: &HeaderMap) -> Result<(), Refusal> {
    if headers.len() > limits.max_headers {
        return Err(Refusal::new(
            Problem::HeadersTooLarge,
            format!("more than {} request headers", limits.max_headers),
        ));
    }
    // Counted as on the wire: "name: value\r\n".
    let size: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if size > limits.max_header_bytes {
        return Err(Refusal::new(
            Problem::HeadersTooLarge,
            format!("request headers exceed {} bytes", limits.max_header_bytes),
        ));
    }
    if let Some(max) = limits.max_body_bytes {
        let declared = headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > max) {
            return Err(body_too_large(max));
        }
    }
    Ok(())
}

pub(crate) fn body_too_large(max: u64) -> Refusal {
    Refusal::new(
        Problem::PayloadTooLarge,
        format!("the request body exceeds {max} bytes"),
    )
}
