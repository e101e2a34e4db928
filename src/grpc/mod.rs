//! gRPC's wire for one unary method over HTTP/2: the request's one length-prefixed message,
//! and the answer's message with the call's status in trailers (or, for a call refused before
//! any message, the status alone). Envoy's ext_authz client speaks exactly this; no streaming,
//! no compression.

pub mod proto;

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderValue};

/// The one method served.
pub const CHECK_PATH: &str = "/envoy.service.auth.v3.Authorization/Check";

/// The largest request message read (gRPC's default limit).
pub const MAX_MESSAGE: usize = 4 << 20;

/// The gRPC status codes Tollgate answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Ok = 0,
    InvalidArgument = 3,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    Unimplemented = 12,
    Unavailable = 14,
    Unauthenticated = 16,
}

/// The one message of a unary call's body, or why there is none.
pub fn message(body: &[u8]) -> Result<&[u8], (Code, &'static str)> {
    let (flag, rest) = match body {
        [flag, rest @ ..] if body.len() >= 5 => (*flag, rest),
        _ => {
            return Err((
                Code::InvalidArgument,
                "a gRPC message is a 5-byte prefix and the message",
            ));
        }
    };
    if flag != 0 {
        return Err((
            Code::Unimplemented,
            "compressed messages are not accepted (Envoy's ext_authz client does not compress)",
        ));
    }
    let length = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
    let message = &rest[4..];
    if message.len() != length {
        return Err((
            Code::InvalidArgument,
            "a unary call carries one message, of the length its prefix says",
        ));
    }
    Ok(message)
}

/// `message` with its length prefix.
pub fn frame(message: &[u8]) -> Bytes {
    let mut framed = BytesMut::with_capacity(5 + message.len());
    framed.put_u8(0);
    framed.put_u32(u32::try_from(message.len()).unwrap_or(u32::MAX));
    framed.put_slice(message);
    framed.freeze()
}

/// `grpc-status` (and `grpc-message`, percent-encoded as gRPC requires) as headers or trailers.
pub fn status(code: Code, message: &str) -> HeaderMap {
    let mut status = HeaderMap::new();
    status.insert("grpc-status", HeaderValue::from(code as i32));
    if !message.is_empty() {
        let encoded: String = message
            .bytes()
            .map(|b| {
                if (0x20..0x7f).contains(&b) && b != b'%' {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        if let Ok(value) = HeaderValue::from_str(&encoded) {
            status.insert("grpc-message", value);
        }
    }
    status
}
