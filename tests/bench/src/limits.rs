//! The machine's ceilings, measured in the same run as the servers:
//! single-core sha256 (a registry must hash every pushed byte) and a
//! loopback TCP copy (every pulled byte crosses loopback).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::time::Instant;

use anyhow::{anyhow, bail};
use sha2::{Digest as _, Sha256};

use crate::data::{Pieces, PIECE};

/// sha256 over `len` bytes in 1 MiB pieces on one core: bytes per second.
pub fn sha256_rate(len: u64) -> f64 {
    let mut buf = vec![0u8; PIECE];
    Pieces::new(1, PIECE as u64).fill(&mut buf);
    let pieces = len / PIECE as u64;
    let mut hasher = Sha256::new();
    let started = Instant::now();
    for _ in 0..pieces {
        hasher.update(&buf);
    }
    let digest = hasher.finalize();
    let secs = started.elapsed().as_secs_f64();
    // Keep the result observable so the loop is not optimised away.
    std::hint::black_box(digest);
    (pieces * PIECE as u64) as f64 / secs
}

/// One thread writes `len` bytes to a loopback socket, another reads
/// them, 1 MiB at a time: bytes per second.
pub fn loopback_rate(len: u64) -> anyhow::Result<f64> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let addr = listener.local_addr()?;
    let writer = std::thread::spawn(move || -> anyhow::Result<()> {
        let mut stream = TcpStream::connect(addr)?;
        let mut buf = vec![0u8; PIECE];
        Pieces::new(2, PIECE as u64).fill(&mut buf);
        let mut left = len;
        while left > 0 {
            let n = left.min(PIECE as u64) as usize;
            stream.write_all(&buf[..n])?;
            left -= n as u64;
        }
        Ok(())
    });
    let (mut stream, _) = listener.accept()?;
    let started = Instant::now();
    let mut buf = vec![0u8; PIECE];
    let mut got = 0u64;
    // Bounded: stops at EOF, or at `len` bytes.
    while got < len {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        got += n as u64;
    }
    let secs = started.elapsed().as_secs_f64();
    writer
        .join()
        .map_err(|_| anyhow!("loopback writer thread panicked"))??;
    if got != len {
        bail!("loopback copy got {got} of {len} bytes");
    }
    Ok(len as f64 / secs)
}
