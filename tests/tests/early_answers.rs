//! An early answer (401 before the body was read) must not break the
//! connection under a client that is still sending: small bodies are read
//! and dropped, so the client sees the answer and can reuse the connection.
//! Go's HTTP client sends manifests chunked, which is the case here.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use berth_tests::Berth;

/// Reads one HTTP/1.1 response with a Content-Length body; returns the
/// status line and the headers.
fn read_response(reader: &mut BufReader<TcpStream>) -> (String, Vec<String>) {
    let mut status = String::new();
    reader.read_line(&mut status).expect("status line");
    let mut headers = Vec::new();
    let mut len = 0usize;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("header line");
        let line = line.trim_end().to_owned();
        if line.is_empty() {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().expect("content-length");
        }
        headers.push(line);
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body).expect("body");
    (status.trim_end().to_owned(), headers)
}

#[test]
fn a_401_to_a_chunked_manifest_put_keeps_the_connection_usable() {
    let berth = Berth::start();
    let stream = TcpStream::connect(berth.host_port()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);

    // 3 MiB of "manifest" in 64 KiB chunks, no credentials.
    write!(
        writer,
        "PUT /v2/team/early/manifests/v1 HTTP/1.1\r\nHost: {}\r\n\
         Content-Type: application/vnd.oci.image.manifest.v1+json\r\n\
         Transfer-Encoding: chunked\r\n\r\n",
        berth.host_port()
    )
    .unwrap();
    let chunk = vec![b'a'; 64 * 1024];
    for _ in 0..48 {
        write!(writer, "{:x}\r\n", chunk.len()).unwrap();
        writer.write_all(&chunk).unwrap();
        writer.write_all(b"\r\n").unwrap();
    }
    // Every byte was accepted: no reset while the client was writing.
    writer.write_all(b"0\r\n\r\n").unwrap();
    writer.flush().unwrap();

    let (status, headers) = read_response(&mut reader);
    assert!(status.contains(" 401 "), "{status} {headers:?}");
    assert!(
        headers.iter().any(|h| h
            .to_ascii_lowercase()
            .starts_with("www-authenticate: bearer")),
        "{headers:?}"
    );
    assert!(
        !headers
            .iter()
            .any(|h| h.eq_ignore_ascii_case("connection: close")),
        "the connection should stay open: {headers:?}"
    );

    // The same connection serves the next request.
    write!(
        writer,
        "GET /v2/ HTTP/1.1\r\nHost: {}\r\n\r\n",
        berth.host_port()
    )
    .unwrap();
    let (status, _) = read_response(&mut reader);
    assert!(status.contains(" 401 "), "{status}");
}

/// Sends `head` and a chunked body whose second chunk size is not hex,
/// followed by a request smuggled after it; returns the one answer's
/// status and body, and what else the connection delivered before it
/// closed.
fn send_malformed_chunked(berth: &Berth, head: &str) -> (String, String, String) {
    let stream = TcpStream::connect(berth.host_port()).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("read timeout");
    let mut writer = stream.try_clone().expect("clone");
    let mut reader = BufReader::new(stream);
    // In one write: `write!` on a socket sends each formatted piece on
    // its own, and berth may answer and close after the bad chunk size
    // before the last pieces go (the client then sees EPIPE, not the answer).
    let request = format!(
        "{head}Host: {}\r\nTransfer-Encoding: chunked\r\n\r\n\
         5\r\nhello\r\nzz\r\nGET /v2/ HTTP/1.1\r\nHost: {}\r\n\r\n",
        berth.host_port(),
        berth.host_port()
    );
    writer.write_all(request.as_bytes()).expect("write");
    writer.flush().expect("flush");
    let mut status = String::new();
    reader.read_line(&mut status).expect("status line");
    let mut len = 0usize;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("header line");
        let line = line.trim_end().to_ascii_lowercase();
        if line.is_empty() {
            break;
        }
        if let Some(v) = line.strip_prefix("content-length:") {
            len = v.trim().parse().expect("content-length");
        }
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body).expect("body");
    // Closed: the rest reads as EOF, with nothing after the answer (the
    // smuggled GET must not be answered).
    let mut rest = Vec::new();
    let _ = reader.read_to_end(&mut rest);
    (
        status.trim_end().to_owned(),
        String::from_utf8_lossy(&body).into_owned(),
        String::from_utf8_lossy(&rest).into_owned(),
    )
}

#[test]
fn a_malformed_chunked_body_closes_the_connection_with_the_endpoints_error() {
    let berth = Berth::start();
    let (user, password) = berth.admin_credentials();
    let basic = berth_tests::registry::base64(format!("{user}:{password}").as_bytes());

    let (status, body, rest) = send_malformed_chunked(
        &berth,
        &format!(
            "PUT /v2/library/smuggle/manifests/v1 HTTP/1.1\r\nAuthorization: Basic {basic}\r\n\
             Content-Type: application/vnd.oci.image.manifest.v1+json\r\n"
        ),
    );
    assert!(status.contains(" 400 "), "{status} {body}");
    assert!(body.contains("MANIFEST_INVALID"), "{body}");
    assert_eq!(rest, "", "the connection went on after a broken body");

    let (status, body, rest) = send_malformed_chunked(
        &berth,
        "POST /service/token HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\n",
    );
    assert!(status.contains(" 400 "), "{status} {body}");
    assert!(!body.contains("BLOB_UPLOAD"), "{body}");
    assert_eq!(rest, "", "the connection went on after a broken body");
}
