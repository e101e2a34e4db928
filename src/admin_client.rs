//! A client of the admin listener for the command line (`usage`, `tenants`): one HTTP/1.1
//! request per connection, plain text, with the admin token.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// What the admin listener answered.
pub struct Answer {
    pub status: u16,
    pub body: String,
}

/// `method path` at `addr`, with a body of a content type; `Ok(None)` when nothing listens
/// there.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<(&str, &str)>,
) -> Result<Option<Answer>, String> {
    let timeout = Duration::from_secs(10);
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, timeout) else {
        return Ok(None);
    };
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let authorization = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let (content, body) = match body {
        Some((content_type, body)) => (
            format!(
                "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
                body.len()
            ),
            body,
        ),
        None => (String::new(), ""),
    };
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{authorization}{content}Connection: close\r\n\r\n{body}"
    )
    .map_err(|e| e.to_string())?;
    let mut text = String::new();
    stream
        .read_to_string(&mut text)
        .map_err(|e| e.to_string())?;
    let (head, body) = text.split_once("\r\n\r\n").ok_or("a malformed answer")?;
    let status = head
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or("a malformed status line")?;
    Ok(Some(Answer {
        status,
        body: body.to_string(),
    }))
}
