//! A TCP proxy in front of a plain-http registry that answers `503 Service Unavailable` to
//! the next N manifest or blob GETs, then forwards: registry failures that pass, on demand.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

pub struct FlakyProxy {
    /// `127.0.0.1:PORT` of the proxy.
    pub host: String,
    failures_left: Arc<AtomicUsize>,
    served_failures: Arc<AtomicUsize>,
}

impl FlakyProxy {
    /// Starts a proxy to `upstream` (`127.0.0.1:PORT`) on a free port.
    pub fn start(upstream: &str) -> FlakyProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let host = format!(
            "127.0.0.1:{}",
            listener.local_addr().expect("proxy address").port()
        );
        let failures_left = Arc::new(AtomicUsize::new(0));
        let served_failures = Arc::new(AtomicUsize::new(0));
        let (left, served, upstream) = (
            failures_left.clone(),
            served_failures.clone(),
            upstream.to_string(),
        );
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (left, served, upstream) = (left.clone(), served.clone(), upstream.clone());
                std::thread::spawn(move || serve(client, &upstream, &left, &served));
            }
        });
        FlakyProxy {
            host,
            failures_left,
            served_failures,
        }
    }

    /// The next `n` manifest or blob GETs get a 503.
    pub fn fail_next(&self, n: usize) {
        self.failures_left.store(n, Ordering::SeqCst);
    }

    /// How many 503s the proxy answered so far.
    pub fn served_failures(&self) -> usize {
        self.served_failures.load(Ordering::SeqCst)
    }
}

/// Does `line` start an HTTP request (rather than, say, a TLS handshake)?
fn is_http(line: &str) -> bool {
    ["GET ", "HEAD ", "PUT ", "POST ", "PATCH ", "DELETE "]
        .iter()
        .any(|method| line.starts_with(method))
}

fn take_one(counter: &AtomicUsize) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

/// One client connection: its first request may get a 503 (then the connection closes), else
/// the connection is piped to the registry both ways.
fn serve(mut client: TcpStream, upstream: &str, left: &AtomicUsize, served: &AtomicUsize) {
    let mut head = vec![0u8; 8192];
    let Ok(read) = client.read(&mut head) else {
        return;
    };
    head.truncate(read);
    let first = String::from_utf8_lossy(&head)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    let flaky =
        first.starts_with("GET ") && (first.contains("/manifests/") || first.contains("/blobs/"));
    if flaky && take_one(left) {
        served.fetch_add(1, Ordering::SeqCst);
        let _ = client.write_all(
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
        return;
    }
    let Ok(mut registry) = TcpStream::connect(upstream) else {
        return;
    };
    // One request per connection (the registry closes after answering), so that every
    // request passes through the decision above rather than riding a kept-alive connection.
    if let Some(end) = head
        .windows(2)
        .position(|w| w == b"\r\n")
        .filter(|_| is_http(&first))
    {
        head.splice(end + 2..end + 2, b"Connection: close\r\n".iter().copied());
    }
    if registry.write_all(&head).is_err() {
        return;
    }
    let (Ok(mut client_reader), Ok(mut registry_writer)) =
        (client.try_clone(), registry.try_clone())
    else {
        return;
    };
    let upload = std::thread::spawn(move || {
        let _ = std::io::copy(&mut client_reader, &mut registry_writer);
        let _ = registry_writer.shutdown(std::net::Shutdown::Write);
    });
    let _ = std::io::copy(&mut registry, &mut client);
    let _ = client.shutdown(std::net::Shutdown::Write);
    let _ = upload.join();
}
