//! The admin API from a test: one blocking request with any method, body and headers.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;

use super::tollgate::ADMIN_TOKEN;

pub struct AdminReply {
    pub status: u16,
    /// The response head, lower-cased.
    pub head: String,
    pub body: String,
}

impl AdminReply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// Asserts a problem+json answer of `status` and type slug `slug`.
    pub fn assert_problem(&self, status: u16, slug: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        assert!(
            self.head.contains("content-type: application/problem+json"),
            "{}",
            self.head
        );
        assert_eq!(
            self.json()["type"],
            format!("https://tollgate.dev/problems/{slug}"),
            "{}",
            self.body
        );
    }

    /// The messages of a 422.
    pub fn errors(&self) -> Vec<String> {
        self.json()["errors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// `method path` with the admin token (`token` `None`: none sent), `body` as JSON.
pub fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> AdminReply {
    let body = body.map(Value::to_string).unwrap_or_default();
    send(
        addr,
        method,
        path,
        token,
        headers,
        ("application/json", &body),
    )
}

/// `method path` with the admin token and a body of the given content type, as it is.
pub fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    (content_type, body): (&str, &str),
) -> AdminReply {
    let mut stream = std::net::TcpStream::connect(addr).expect("admin listener");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n");
    if let Some(token) = token {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!(
        "Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    ));
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body.as_bytes()).unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let status = text[9..12].parse().unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    AdminReply {
        status,
        head: head.to_ascii_lowercase(),
        body: body.to_string(),
    }
}

/// [`call`] with the test's admin token and no extra headers.
pub fn admin(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> AdminReply {
    call(addr, method, path, Some(ADMIN_TOKEN), &[], body)
}
