//! Stage 1, normalize: one canonical path for every later stage **and** for the upstream.
//!
//! Percent-escapes of unreserved characters are decoded, other escapes are upper-cased, empty
//! segments are merged (`//` → `/`, as nginx does) and `.`/`..` segments are resolved. Anything
//! that one server could read differently from another is refused instead of guessed: an encoded
//! `/` or `\`, a raw `\`, control characters, `..` above the root, and `.`/`..` hidden behind
//! `;` parameters (`/..;/admin`, which Tomcat treats as `..`).

use std::borrow::Cow;

use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderName, HeaderValue, Uri};

use crate::error::{Problem, Refusal};

/// The request target every stage after this one sees.
#[derive(Debug)]
pub struct Target {
    /// Canonical path plus the query exactly as the client sent it.
    pub path_and_query: PathAndQuery,
    /// The authority the client addressed (`Host`, or the URI's authority for HTTP/2 and
    /// absolute-form requests).
    pub host: Option<HeaderValue>,
    /// A WebSocket handshake on a route that allows it: the only upgrade that is forwarded.
    pub websocket: bool,
    /// The route accepts request trailers (otherwise they are dropped).
    pub request_trailers: bool,
}

/// Builds the canonical [`Target`] of a request, or refuses it. `require_host`: a request
/// without a `Host` (or an authority) is refused, as HTTP/1.1 demands (RFC 9112 §3.2).
pub fn target(uri: &Uri, headers: &HeaderMap, require_host: bool) -> Result<Target, Refusal> {
    let host = host(uri, headers)?;
    if require_host && host.is_none() {
        return Err(Refusal::new(
            Problem::MalformedRequest,
            "the request has no Host header",
        ));
    }
    let path = uri.path();
    if !path.starts_with('/') {
        return Err(Refusal::new(
            Problem::MalformedRequest,
            "the request target must be an absolute path",
        ));
    }
    let canonical = canonical_path(path)?;
    let path_and_query = match (canonical, uri.query()) {
        (Cow::Borrowed(_), _) => uri.path_and_query().cloned(),
        (Cow::Owned(p), None) => PathAndQuery::try_from(p).ok(),
        (Cow::Owned(p), Some(q)) => PathAndQuery::try_from(format!("{p}?{q}")).ok(),
    }
    .ok_or_else(|| Refusal::new(Problem::AmbiguousPath, "the path could not be normalized"))?;
    Ok(Target {
        path_and_query,
        host,
        websocket: false,
        request_trailers: false,
    })
}

fn host(uri: &Uri, headers: &HeaderMap) -> Result<Option<HeaderValue>, Refusal> {
    let mut hosts = headers.get_all(http::header::HOST).iter();
    let header = hosts.next();
    if hosts.next().is_some() {
        return Err(Refusal::new(
            Problem::MalformedRequest,
            "more than one Host header",
        ));
    }
    match (uri.authority(), header) {
        (Some(authority), Some(header))
            if !authority
                .as_str()
                .as_bytes()
                .eq_ignore_ascii_case(header.as_bytes()) =>
        {
            Err(Refusal::new(
                Problem::MalformedRequest,
                "the Host header disagrees with the request's authority",
            ))
        }
        (Some(authority), _) => {
            valid_authority(authority.as_str().as_bytes())?;
            Ok(HeaderValue::from_str(authority.as_str()).ok())
        }
        (None, Some(header)) => {
            valid_authority(header.as_bytes())?;
            Ok(Some(header.clone()))
        }
        (None, None) => Ok(None),
    }
}

/// Accepts only `host[:port]` (RFC 9110 §7.2): a registered name or IPv4 address of letters,
/// digits, `-`, `.`, `_` and `~`, or an IPv6 literal in brackets, then an optional port of one
/// to five digits up to 65535. A list, a user-info part, an empty port, spaces or bytes outside
/// ASCII could name two different hosts to two different servers, so they are refused.
fn valid_authority(bytes: &[u8]) -> Result<(), Refusal> {
    let bad = || {
        Refusal::new(
            Problem::MalformedRequest,
            "the Host header is not a valid host[:port]",
        )
    };
    let (host, port) = if bytes.first() == Some(&b'[') {
        let end = bytes.iter().position(|&b| b == b']').ok_or_else(bad)?;
        let inner = std::str::from_utf8(&bytes[1..end]).map_err(|_| bad())?;
        inner.parse::<std::net::Ipv6Addr>().map_err(|_| bad())?;
        match &bytes[end + 1..] {
            [] => (&bytes[..=end], None),
            [b':', port @ ..] => (&bytes[..=end], Some(port)),
            _ => return Err(bad()),
        }
    } else {
        match bytes.iter().position(|&b| b == b':') {
            Some(colon) => (&bytes[..colon], Some(&bytes[colon + 1..])),
            None => (bytes, None),
        }
    };
    let name_ok = host.first() == Some(&b'[')
        || (!host.is_empty()
            && host
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(b)));
    let port_ok = port.is_none_or(|p| {
        (1..=5).contains(&p.len())
            && p.iter().all(u8::is_ascii_digit)
            && std::str::from_utf8(p)
                .ok()
                .and_then(|p| p.parse::<u32>().ok())
                .is_some_and(|n| n <= 65535)
    });
    if name_ok && port_ok {
        Ok(())
    } else {
        Err(bad())
    }
}

/// Refuses a request that carries one of `names` more than once: which value a server reads
/// (the first, the last, both joined) differs, so the one judged might not be the one used.
pub(crate) fn single_valued(headers: &HeaderMap, names: &[HeaderName]) -> Result<(), Refusal> {
    for name in names {
        let mut values = headers.get_all(name).iter();
        if values.next().is_some() && values.next().is_some() {
            return Err(Refusal::new(
                Problem::MalformedRequest,
                format!("the {name} header appears more than once"),
            ));
        }
    }
    Ok(())
}

fn ambiguous(detail: &'static str) -> Refusal {
    Refusal::new(Problem::AmbiguousPath, detail)
}

/// The canonical form of `path` (which starts with `/`), borrowed when it already is canonical.
pub fn canonical_path(path: &str) -> Result<Cow<'_, str>, Refusal> {
    let bytes = path.as_bytes();
    let needs_work = bytes.contains(&b'%')
        || bytes.contains(&b'\\')
        || bytes.contains(&b';')
        || path.contains("//")
        || path.contains("/.")
        || bytes.iter().any(|b| b.is_ascii_control());
    if !needs_work {
        return Ok(Cow::Borrowed(path));
    }
    let decoded = decode_unreserved(path)?;
    let mut segments: Vec<&str> = Vec::new();
    // A path ends in a directory when its last segment is empty or a dot segment.
    let mut trailing_slash = false;
    for segment in decoded.split('/') {
        let bare = segment.split(';').next().unwrap_or(segment);
        match (segment, bare) {
            ("" | ".", _) => trailing_slash = true,
            ("..", _) => {
                if segments.pop().is_none() {
                    return Err(ambiguous("the path climbs above the root with '..'"));
                }
                trailing_slash = true;
            }
            (_, "." | "..") => {
                return Err(ambiguous("a '.' or '..' segment carries ';' parameters"));
            }
            _ => {
                segments.push(segment);
                trailing_slash = false;
            }
        }
    }
    let mut out = String::with_capacity(decoded.len());
    for segment in &segments {
        out.push('/');
        out.push_str(segment);
    }
    if out.is_empty() || trailing_slash {
        out.push('/');
    }
    Ok(Cow::Owned(out))
}

/// Decodes `%XX` escapes of unreserved characters and upper-cases the hex of every other escape.
fn decode_unreserved(path: &str) -> Result<String, Refusal> {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'%' => {
                let value = bytes
                    .get(i + 1..i + 3)
                    .and_then(|hex| std::str::from_utf8(hex).ok())
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                    .ok_or_else(|| ambiguous("a '%' is not followed by two hex digits"))?;
                match value {
                    b'/' | b'\\' => {
                        return Err(ambiguous("an encoded '/' or '\\' in the path"));
                    }
                    v if v.is_ascii_control() => {
                        return Err(ambiguous("an encoded control character in the path"));
                    }
                    v if v.is_ascii_alphanumeric() || b"-._~".contains(&v) => {
                        out.push(char::from(v))
                    }
                    v => {
                        out.push('%');
                        out.push_str(&format!("{v:02X}"));
                    }
                }
                i += 3;
            }
            b'\\' => return Err(ambiguous("a '\\' in the path")),
            b if b.is_ascii_control() => {
                return Err(ambiguous("a control character in the path"));
            }
            b => {
                out.push(char::from(b));
                i += 1;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod properties;
