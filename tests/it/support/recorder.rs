//! An upstream that records exactly the bytes it received, request by request (head, body and
//! trailers as they came off the wire), and answers each request with a small 200, or, when
//! told to, with a `101 Switching Protocols` to anything (an upstream that would open a tunnel
//! for any `Upgrade`), after which it records whatever else arrives on that connection.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub struct Recorder {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Vec<u8>>>>,
}

#[derive(Clone, Copy)]
pub enum Answer {
    Ok,
    /// `101` with this `Upgrade` token, whatever was asked.
    Switch(&'static str),
}

impl Recorder {
    pub async fn start(answer: Answer) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let record = requests.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, record.clone(), answer));
            }
        });
        Recorder { addr, requests }
    }

    /// Every request received so far, as text (lossy), in order.
    pub fn requests(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .map(|r| String::from_utf8_lossy(r).into_owned())
            .collect()
    }

    /// The last request, lower-cased (header names compare without case).
    pub fn last(&self) -> String {
        self.requests()
            .last()
            .cloned()
            .unwrap_or_default()
            .to_ascii_lowercase()
    }

    /// Everything received, lower-cased.
    pub fn all(&self) -> String {
        self.requests().concat().to_ascii_lowercase()
    }
}

async fn serve(mut stream: TcpStream, record: Arc<Mutex<Vec<Vec<u8>>>>, answer: Answer) {
    let mut buf = Vec::new();
    loop {
        let Some(end) = read_request(&mut stream, &mut buf).await else {
            return;
        };
        let request: Vec<u8> = buf.drain(..end).collect();
        let index = {
            let mut all = record.lock().unwrap();
            all.push(request);
            all.len() - 1
        };
        match answer {
            Answer::Ok => {
                let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                if stream.write_all(reply).await.is_err() {
                    return;
                }
            }
            Answer::Switch(token) => {
                let reply = format!(
                    "HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: {token}\r\n\r\n"
                );
                if stream.write_all(reply.as_bytes()).await.is_err() {
                    return;
                }
                // A tunnel now: everything else is recorded with this request.
                record.lock().unwrap()[index].extend_from_slice(&buf);
                let mut chunk = [0u8; 4096];
                while let Ok(n) = stream.read(&mut chunk).await {
                    if n == 0 {
                        return;
                    }
                    record.lock().unwrap()[index].extend_from_slice(&chunk[..n]);
                }
                return;
            }
        }
    }
}

/// Reads until `buf` holds one whole request; returns its length.
async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<usize> {
    loop {
        if let Some(end) = complete(buf) {
            return Some(end);
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// The length of the first whole request in `buf` (Content-Length or chunked framing).
fn complete(buf: &[u8]) -> Option<usize> {
    let head_end = find(buf, b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let header = |name: &str| {
        head.lines().find_map(|l| {
            l.strip_prefix(&format!("{name}:"))
                .map(|v| v.trim().to_string())
        })
    };
    if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        let mut at = head_end;
        loop {
            let line_end = at + find(&buf[at..], b"\r\n")?;
            let size_text = String::from_utf8_lossy(&buf[at..line_end]);
            let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
            at = line_end + 2;
            if size == 0 {
                // Trailers, then an empty line.
                let end = at + find(&buf[at..], b"\r\n")?;
                if end == at {
                    return Some(at + 2);
                }
                return Some(at + find(&buf[at..], b"\r\n\r\n")? + 4);
            }
            if buf.len() < at + size + 2 {
                return None;
            }
            at += size + 2;
        }
    }
    let length: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (buf.len() >= head_end + length).then_some(head_end + length)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
