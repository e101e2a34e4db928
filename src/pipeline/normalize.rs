//! Stage 1, normalize: one canonical path for every later stage **and** for the upstream.
//!
//! Percent-escapes of unreserved characters are decoded, other escapes are upper-cased, empty
//! segments are merged (`//` → `/`, as nginx does) and `.`/`..` segments are resolved. Anything
//! that one server could read differently from another is refused instead of guessed: an encoded
//! `/` or `\`, a raw `\`, control characters, `..` above the root, and `.`/`..` hidden behind
//! `;` parameters (`/..;/admin`, which Tomcat treats as `..`).

use std::borrow::Cow;

use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderValue, Uri};

use crate::error::{Problem, Refusal};

/// The request target every stage after this one sees.
#[derive(Debug)]
pub struct Target {
    /// Canonical path plus the query exactly as the client sent it.
    pub path_and_query: PathAndQuery,
    /// The authority the client addressed (`Host`, or the URI's authority for HTTP/2 and
    /// absolute-form requests).
    pub host: Option<HeaderValue>,
}

/// Builds the canonical [`Target`] of a request, or refuses it.
pub fn target(uri: &Uri, headers: &HeaderMap) -> Result<Target, Refusal> {
    let host = host(uri, headers)?;
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
        (Some(authority), _) => Ok(HeaderValue::from_str(authority.as_str()).ok()),
        (None, header) => Ok(header.cloned()),
    }
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
mod tests {
    use super::*;

    fn canon(path: &str) -> Result<String, Problem> {
        canonical_path(path)
            .map(|c| c.into_owned())
            .map_err(|r| r.problem)
    }

    #[test]
    fn canonical_paths_are_borrowed_unchanged() {
        assert!(matches!(
            canonical_path("/api/v1/agents/7"),
            Ok(Cow::Borrowed(_))
        ));
        assert!(matches!(canonical_path("/"), Ok(Cow::Borrowed(_))));
    }

    #[test]
    fn dot_segments_and_duplicate_slashes_resolve() {
        assert_eq!(canon("/public/../admin").unwrap(), "/admin");
        assert_eq!(canon("//admin").unwrap(), "/admin");
        assert_eq!(canon("/admin/.").unwrap(), "/admin/");
        assert_eq!(canon("/a/./b//c/").unwrap(), "/a/b/c/");
        assert_eq!(canon("/a/b/..").unwrap(), "/a/");
        assert_eq!(canon("/.").unwrap(), "/");
    }

    #[test]
    fn encoded_dots_are_dot_segments() {
        assert_eq!(canon("/public/%2e%2e/admin").unwrap(), "/admin");
        assert_eq!(canon("/public/%2E./admin").unwrap(), "/admin");
    }

    #[test]
    fn unreserved_escapes_decode_and_others_uppercase() {
        assert_eq!(canon("/%61pi/x%20y%3a").unwrap(), "/api/x%20y%3A");
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        for path in [
            "/a%2Fb",
            "/a%2fb",
            "/a%5Cb",
            "/a\\b",
            "/a%00b",
            "/..",
            "/a/../..",
            "/%2e%2e/x",
            "/..;/admin",
            "/public/.;x/admin",
            "/bad%zz",
            "/bad%4",
        ] {
            assert_eq!(canon(path), Err(Problem::AmbiguousPath), "{path}");
        }
    }

    #[test]
    fn semicolon_parameters_on_ordinary_segments_pass() {
        assert_eq!(canon("/a;v=1/b").unwrap(), "/a;v=1/b");
    }

    #[test]
    fn query_is_kept_verbatim() {
        let uri: Uri = "/a/../b?x=%2F&y=..".parse().unwrap();
        let t = target(&uri, &HeaderMap::new()).unwrap();
        assert_eq!(t.path_and_query.as_str(), "/b?x=%2F&y=..");
    }

    #[test]
    fn host_must_agree_with_authority() {
        let uri: Uri = "http://a.example/x".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("b.example"));
        assert_eq!(
            target(&uri, &headers).unwrap_err().problem,
            Problem::MalformedRequest
        );
        headers.insert("host", HeaderValue::from_static("A.example"));
        assert_eq!(target(&uri, &headers).unwrap().host.unwrap(), "a.example");
    }
}
