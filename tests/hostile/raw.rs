//! A deliberately dumb HTTP/1.1 client on a raw socket: hostile cases need bytes no real
//! client library would send (broken headers, unnormalised paths, invalid UTF-8, lies in
//! `Content-Length`), and control over when the body stops.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A parsed answer; `status` 0 when the server closed without answering.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Request head bytes: `METHOD PATH HTTP/1.1`, Host, `Connection: close`, then `headers`.
pub fn head(method: &str, path: &[u8], headers: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(path);
    out.extend_from_slice(b" HTTP/1.1\r\nhost: gateway\r\nconnection: close\r\n");
    for (k, v) in headers {
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// A complete request with `Content-Length` (when there is a body or the method is POST).
pub fn request(method: &str, path: &[u8], headers: &[(&str, &[u8])], body: &[u8]) -> Vec<u8> {
    let len = body.len().to_string();
    let mut all: Vec<(&str, &[u8])> = headers.to_vec();
    if !body.is_empty() || method == "POST" {
        all.push(("content-length", len.as_bytes()));
    }
    let mut out = head(method, path, &all);
    out.extend_from_slice(body);
    out
}

/// Sends `bytes` and reads the answer until the server closes (bounded by `wait`).
pub async fn send(addr: SocketAddr, bytes: &[u8], wait: Duration) -> Reply {
    let mut s = TcpStream::connect(addr).await.unwrap();
    // A server that answers early may stop reading; keep what it said.
    let _ = s.write_all(bytes).await;
    read_reply(&mut s, wait).await
}

/// Reads until EOF, reset or `wait`, and parses whatever answer arrived.
pub async fn read_reply(s: &mut TcpStream, wait: Duration) -> Reply {
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(wait, async {
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    parse(&buf)
}

/// Parses one HTTP/1.1 response (content-length, chunked or read-to-end bodies).
pub fn parse(buf: &[u8]) -> Reply {
    let none = Reply { status: 0, headers: vec![], body: vec![] };
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else { return none };
    let head = String::from_utf8_lossy(&buf[..end]);
    let mut lines = head.split("\r\n");
    let status =
        lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let raw = &buf[end + 4..];
    let chunked = headers.iter().any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked { dechunk(raw) } else { raw.to_vec() };
    Reply { status, headers, body }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&raw[..eol]);
        let Ok(size) = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
        else {
            break;
        };
        if size == 0 || raw.len() < eol + 2 + size {
            break;
        }
        out.extend_from_slice(&raw[eol + 2..eol + 2 + size]);
        raw = &raw[(eol + 4 + size).min(raw.len())..];
    }
    out
}
