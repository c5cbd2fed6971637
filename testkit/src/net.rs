//! Networking helpers for tests: picking free local ports, probing whether a port accepts
//! connections, and a deliberately tiny synchronous HTTP/1.1 client.
//!
//! The client exists so that the harness can talk to ClickHouse's HTTP interface (and tests can
//! poke at other local services) without pulling an async stack or a TLS library into every test
//! binary. It speaks plain `http://` only, sends one request per connection
//! (`Connection: close`, explicit `Content-Length`), and understands both `Content-Length`-less
//! "read until close" bodies and `Transfer-Encoding: chunked` responses. It is not a general
//! purpose client: no redirects, no keep-alive, no `https`.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Returns a TCP port on `127.0.0.1` that was free a moment ago.
///
/// The port is found by binding port 0 and reading back what the kernel chose; the listener is
/// then closed, so another process *could* grab the port before the caller binds it. That race is
/// rare in practice; callers that start servers should still be prepared to retry.
///
/// # Panics
///
/// Panics if no loopback socket can be bound at all (which means the machine has no usable
/// networking and no test could run anyway).
#[must_use]
pub fn free_port() -> u16 {
    free_ports(1)[0]
}

/// Returns `n` distinct TCP ports on `127.0.0.1` that were free a moment ago.
///
/// All listeners are held open until every port has been chosen, so the returned ports are
/// guaranteed to differ from each other (unlike calling [`free_port`] `n` times).
///
/// # Panics
///
/// Panics if a loopback socket cannot be bound (see [`free_port`]).
#[must_use]
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| {
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("binding 127.0.0.1:0 must work")
        })
        .collect();
    listeners
        .iter()
        .map(|l| {
            l.local_addr()
                .expect("a bound listener has an address")
                .port()
        })
        .collect()
}

/// Whether something currently accepts TCP connections on `127.0.0.1:port`.
///
/// Returns `false` when the connection is refused or does not complete within one second.
#[must_use]
pub fn accepts_connections(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
}

/// A complete HTTP response as returned by [`http_request`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code, e.g. `200`.
    pub status: u16,
    /// Response headers in the order received (names as sent by the server).
    pub headers: Vec<(String, String)>,
    /// The decoded body (chunked transfer encoding already removed).
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The body as text (invalid UTF-8 is replaced, never an error).
    #[must_use]
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The first header with this name, compared case-insensitively.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one HTTP/1.1 request and reads the whole response.
///
/// `url` must look like `http://host[:port][/path][?query]`; `user:password@` before the host is
/// sent as HTTP Basic authentication. `headers` are added verbatim after the standard ones
/// (`Host`, `Connection: close`, `Content-Length`). `timeout` applies separately to connecting,
/// to each write and to each read.
///
/// # Errors
///
/// Returns an [`io::Error`] when the URL is not a plain `http://` URL, when connecting, writing or
/// reading fails (including [`io::ErrorKind::ConnectionRefused`] when nothing listens), or when
/// the response is not valid HTTP/1.x.
pub fn http_request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> io::Result<HttpResponse> {
    let target = Target::parse(url)?;
    let mut stream = connect(&target.host, target.port, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;

    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\
         User-Agent: clickstitch-testkit\r\nContent-Length: {len}\r\n",
        path = target.path_and_query,
        host = target.host_header,
        len = body.len(),
    );
    if let Some(userinfo) = &target.userinfo {
        request.push_str("Authorization: Basic ");
        request.push_str(&base64(userinfo.as_bytes()));
        request.push_str("\r\n");
    }
    for (name, value) in headers {
        request.push_str(name);
        request.push_str(": ");
        request.push_str(value);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()?;

    // Read until the response is complete rather than until the connection closes: some
    // servers (workerd) keep it open despite `Connection: close`.
    let mut raw = Vec::new();
    let mut buf = [0_u8; 16 * 1024];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
        if response_complete(&raw) {
            break;
        }
    }
    parse_response(&raw)
}

/// Whether `raw` holds a whole response: headers plus a `Content-Length` body or a complete
/// chunked body. Without either, only the end of the connection ends it.
fn response_complete(raw: &[u8]) -> bool {
    let Some(header_end) = find(raw, b"\r\n\r\n") else {
        return false;
    };
    let Ok(head) = std::str::from_utf8(&raw[..header_end]) else {
        return false;
    };
    let payload = &raw[header_end + 4..];
    let header = |name: &str| {
        head.split("\r\n").skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    };
    if header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        return decode_chunked(payload).is_some();
    }
    header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|len| payload.len() >= len)
}

/// `GET url` with no extra headers; see [`http_request`].
///
/// # Errors
///
/// As for [`http_request`].
pub fn http_get(url: &str, timeout: Duration) -> io::Result<HttpResponse> {
    http_request("GET", url, &[], &[], timeout)
}

/// `POST url` with `body`; see [`http_request`].
///
/// # Errors
///
/// As for [`http_request`].
pub fn http_post(url: &str, body: &[u8], timeout: Duration) -> io::Result<HttpResponse> {
    http_request("POST", url, &[], body, timeout)
}

/// Percent-encodes `s` for use as a URL query value (everything except RFC 3986 "unreserved"
/// characters is encoded).
#[must_use]
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The value of an `Authorization` header for HTTP Basic authentication.
#[must_use]
pub fn basic_authorization(user: &str, password: &str) -> String {
    format!("Basic {}", base64(format!("{user}:{password}").as_bytes()))
}

/// The parts of an `http://` URL the client needs.
struct Target {
    userinfo: Option<String>,
    host: String,
    host_header: String,
    port: u16,
    path_and_query: String,
}

impl Target {
    fn parse(url: &str) -> io::Result<Self> {
        let invalid = |why: &str| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("unsupported URL {url:?}: {why}"),
            )
        };
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| invalid("only http:// is supported"))?;
        let (authority, path_and_query) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_owned()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_owned()),
        };
        let (userinfo, host_port) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u.to_owned()), h),
            None => (None, authority),
        };
        let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or_else(|| invalid("unterminated IPv6 literal"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| invalid("bad port"))?,
                None if after.is_empty() => 80,
                None => return Err(invalid("garbage after IPv6 literal")),
            };
            (host.to_owned(), port)
        } else {
            match host_port.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), p.parse().map_err(|_| invalid("bad port"))?),
                None => (host_port.to_owned(), 80),
            }
        };
        if host.is_empty() {
            return Err(invalid("empty host"));
        }
        let host_header = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        Ok(Self {
            userinfo,
            host,
            host_header,
            port,
            path_and_query,
        })
    }
}

fn connect(host: &str, port: u16, timeout: Duration) -> io::Result<TcpStream> {
    let mut last_error = None;
    for addr in (host, port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(stream) => return Ok(stream),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("{host} resolved to no address"),
        )
    }))
}

fn parse_response(raw: &[u8]) -> io::Result<HttpResponse> {
    let bad = |why: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad HTTP response: {why}"),
        )
    };
    let header_end = find(raw, b"\r\n\r\n").ok_or_else(|| bad("no end of headers"))?;
    let head = std::str::from_utf8(&raw[..header_end]).map_err(|_| bad("headers are not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(bad(&format!("status line {status_line:?}")));
    }
    let status = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(&format!("status line {status_line:?}")))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let payload = &raw[header_end + 4..];
    let chunked = headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("transfer-encoding") && v.to_ascii_lowercase().contains("chunked")
    });
    let body = if chunked {
        decode_chunked(payload).ok_or_else(|| bad("malformed chunked body"))?
    } else {
        let length = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse::<usize>().ok());
        match length {
            Some(len) if len <= payload.len() => payload[..len].to_vec(),
            Some(_) => return Err(bad("body shorter than Content-Length")),
            None => payload.to_vec(),
        }
    };
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

fn decode_chunked(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = find(data, b"\r\n")?;
        let size_field = std::str::from_utf8(&data[..line_end]).ok()?;
        let size_hex = size_field.split(';').next()?.trim();
        let size = usize::from_str_radix(size_hex, 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_examples() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foob"), "Zm9vYg==");
        assert_eq!(base64(b"default:"), "ZGVmYXVsdDo=");
    }

    #[test]
    fn urls_are_split_into_host_port_and_path() {
        let t = Target::parse("http://u:p@127.0.0.1:8123/ping?x=1").unwrap();
        assert_eq!(t.userinfo.as_deref(), Some("u:p"));
        assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", 8123));
        assert_eq!(t.path_and_query, "/ping?x=1");
        let t = Target::parse("http://[::1]:9?q").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.host_header.as_str()),
            ("::1", 9, "[::1]:9")
        );
        assert_eq!(t.path_and_query, "/?q");
        let t = Target::parse("http://localhost").unwrap();
        assert_eq!((t.port, t.path_and_query.as_str()), (80, "/"));
        assert!(Target::parse("https://example.com").is_err());
    }

    #[test]
    fn chunked_and_plain_responses_are_decoded() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nOk.\r\n1\r\n\n\r\n0\r\n\r\n";
        let r = parse_response(raw).unwrap();
        assert_eq!((r.status, r.text().as_str()), (200, "Ok.\n"));
        let raw = b"HTTP/1.0 404 Not Found\r\nContent-Length: 4\r\n\r\nnope";
        let r = parse_response(raw).unwrap();
        assert_eq!((r.status, r.text().as_str()), (404, "nope"));
        assert_eq!(r.header("content-length"), Some("4"));
    }

    #[test]
    fn complete_responses_are_recognised() {
        assert!(!response_complete(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n"
        ));
        assert!(!response_complete(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok"
        ));
        assert!(response_complete(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n"
        ));
        assert!(!response_complete(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nOk.\r\n"
        ));
        assert!(response_complete(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nOk.\r\n0\r\n\r\n"
        ));
        assert!(!response_complete(b"HTTP/1.0 200 OK\r\n\r\nuntil close"));
    }

    #[test]
    fn percent_encoding_keeps_only_unreserved_characters() {
        assert_eq!(percent_encode("a_b-c.d~e"), "a_b-c.d~e");
        assert_eq!(percent_encode("SELECT 1;"), "SELECT%201%3B");
    }

    #[test]
    fn free_ports_are_distinct_and_then_unused() {
        let ports = free_ports(4);
        let mut sorted = ports.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 4);
        assert!(ports.iter().all(|p| !accepts_connections(*p)));
    }
}
