//! A pool of read buffers for streaming blobs. A buffer goes to the socket
//! as `Bytes` and comes back here when the socket writer drops it, so a
//! steady pull reuses a few warm buffers instead of faulting in fresh pages
//! for every piece, and memory stays bounded after a burst of pulls.

use std::sync::{Arc, Mutex};

use bytes::Bytes;

pub struct BufPool {
    size: usize,
    max_idle: usize,
    idle: Mutex<Vec<Vec<u8>>>,
}

/// A pooled buffer holding `len` valid bytes; returns to the pool on drop.
struct Pooled {
    buf: Vec<u8>,
    len: usize,
    pool: Arc<BufPool>,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        let mut idle = self.pool.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < self.pool.max_idle {
            idle.push(buf);
        }
    }
}

impl BufPool {
    /// Buffers of `size` bytes; at most `max_idle` are kept when unused.
    pub fn new(size: usize, max_idle: usize) -> Arc<BufPool> {
        Arc::new(BufPool {
            size,
            max_idle,
            idle: Mutex::default(),
        })
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// A buffer of `size` bytes (contents unspecified).
    pub fn take(&self) -> Vec<u8> {
        let reused = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        reused.unwrap_or_else(|| vec![0; self.size])
    }

    /// Wraps the first `len` bytes of `buf` as `Bytes` that come back here.
    pub fn freeze(self: &Arc<Self>, buf: Vec<u8>, len: usize) -> Bytes {
        Bytes::from_owner(Pooled {
            buf,
            len,
            pool: self.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_when_bytes_drop() {
        let pool = BufPool::new(8, 2);
        let mut b = pool.take();
        b[..3].copy_from_slice(b"abc");
        let bytes = pool.freeze(b, 3);
        assert_eq!(&bytes[..], b"abc");
        let clone = bytes.clone();
        drop(bytes);
        assert_eq!(pool.idle.lock().unwrap().len(), 0, "still referenced");
        drop(clone);
        assert_eq!(pool.idle.lock().unwrap().len(), 1);
        // At most max_idle are kept.
        let (x, y, z) = (pool.take(), pool.take(), pool.take());
        drop(pool.freeze(x, 1));
        drop(pool.freeze(y, 1));
        drop(pool.freeze(z, 1));
        assert_eq!(pool.idle.lock().unwrap().len(), 2);
    }
}
