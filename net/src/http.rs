//! A minimal HTTP/1.1 responder: answers `GET <path>` with the text a caller-supplied function
//! produces, and everything else with an error status, then closes. Enough for a Prometheus
//! scrape endpoint; it knows HTTP, never what the body says.
//!
//! Runs on the shard that owns the listener (one SO_REUSEPORT socket per shard, like the frame
//! listener). Limits: a request head is at most [`REQUEST_HEAD_BYTES_MAX`] bytes and must
//! arrive within [`REQUEST_TIMEOUT`]; at most [`CONNECTIONS_MAX`] requests are served at once
//! per shard, more are closed on accept. One request per connection (`Connection: close`):
//! bytes after the head are ignored. Garbage costs its sender a 400 or a closed socket, never a
//! panic.

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::rc::Rc;
use std::time::Duration;

use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;

use crate::Listener;

/// Largest request head (request line and headers) read before answering 400.
pub const REQUEST_HEAD_BYTES_MAX: usize = 8 << 10;
/// How long a client may take to send its request head, and to take the response.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// HTTP connections served at once per listener; more are closed on accept.
pub const CONNECTIONS_MAX: usize = 16;

/// Serves `GET path` on `listener` forever, answering each with `body()` as
/// `text/plain; version=0.0.4` (the Prometheus text exposition format). Stop it by dropping
/// the future (the caller races it against its shutdown signal).
pub async fn serve<F, Fut>(listener: Listener, path: &'static str, body: F)
where
    F: Fn() -> Fut + 'static,
    Fut: Future<Output = String>,
{
    let body = Rc::new(body);
    let open = Rc::new(Cell::new(0usize));
    loop {
        let stream = match listener.inner.accept().await {
            Ok(stream) => stream,
            Err(_) => {
                // Running out of descriptors must not spin: back off a little.
                glommio::timer::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if open.get() >= CONNECTIONS_MAX {
            continue;
        }
        open.set(open.get() + 1);
        let (body, open) = (body.clone(), open.clone());
        glommio::spawn_local(async move {
            // A failed exchange only concerns that client.
            let _ = respond(stream, path, &*body).await;
            open.set(open.get() - 1);
        })
        .detach();
    }
}

/// What a request head asks for.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// `GET path`: answer with the body.
    Serve,
    /// A well-formed request for something else.
    Status(&'static str),
}

async fn respond<F, Fut>(mut stream: TcpStream, path: &str, body: &F) -> io::Result<()>
where
    F: Fn() -> Fut,
    Fut: Future<Output = String>,
{
    stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    stream.set_write_timeout(Some(REQUEST_TIMEOUT))?;
    let mut head = vec![0u8; REQUEST_HEAD_BYTES_MAX];
    let mut filled = 0;
    let complete = loop {
        if let Some(end) = find_head_end(&head[..filled]) {
            break Some(end);
        }
        if filled == head.len() {
            break None;
        }
        match stream.read(&mut head[filled..]).await? {
            // The client gave up before finishing its head: nothing to answer.
            0 => return Ok(()),
            read => filled += read,
        }
    };
    let verdict = match complete {
        Some(end) => judge(&head[..end], path),
        None => Verdict::Status("400 Bad Request"),
    };
    let response = match verdict {
        Verdict::Serve => {
            let text = body().await;
            format_response("200 OK", &text)
        }
        Verdict::Status(status) => format_response(status, status),
    };
    stream.write_all(response.as_bytes()).await?;
    stream.flush().await?;
    stream.close().await
}

/// The index just past the blank line that ends the head, if it arrived.
fn find_head_end(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .map(|start| start + 4)
}

/// Decides what a complete head asks for, from its request line.
fn judge(head: &[u8], path: &str) -> Verdict {
    let Ok(head) = std::str::from_utf8(head) else {
        return Verdict::Status("400 Bad Request");
    };
    let line = head.split("\r\n").next().unwrap_or("");
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Verdict::Status("400 Bad Request");
    };
    if !version.starts_with("HTTP/1.") || method.is_empty() || !target.starts_with('/') {
        return Verdict::Status("400 Bad Request");
    }
    let target = target.split('?').next().unwrap_or(target);
    if target != path {
        return Verdict::Status("404 Not Found");
    }
    if method != "GET" {
        return Verdict::Status("405 Method Not Allowed");
    }
    Verdict::Serve
}

fn format_response(status: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[cfg(test)]
mod tests {
    use super::{Verdict, find_head_end, judge};

    #[test]
    fn request_lines_are_judged() {
        let serve = |head: &[u8]| judge(head, "/metrics");
        assert_eq!(
            serve(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Verdict::Serve
        );
        assert_eq!(serve(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n"), Verdict::Serve);
        assert_eq!(
            serve(b"GET / HTTP/1.1\r\n\r\n"),
            Verdict::Status("404 Not Found")
        );
        assert_eq!(
            serve(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Verdict::Status("405 Method Not Allowed")
        );
        for garbage in [
            &b"\xff\xfe\r\n\r\n"[..],
            b"GET\r\n\r\n",
            b"GET /metrics HTTP/1.1 extra\r\n\r\n",
            b"GET metrics SMTP\r\n\r\n",
            b"\r\n\r\n",
        ] {
            assert_eq!(serve(garbage), Verdict::Status("400 Bad Request"));
        }
    }

    #[test]
    fn the_head_ends_at_the_blank_line() {
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n\r\nbody"), Some(18));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n"), None);
        assert_eq!(find_head_end(b""), None);
    }
}
