//! A TCP proxy that delays every byte by a fixed one-way time, in both
//! directions: WAN round trips between sites on one machine, whose kernel
//! has no netem.
//!
//! Each chunk read is stamped with when it may leave and queued; a writer
//! sends it no earlier. The queue is bounded, so a slow reader slows the
//! writer (as a full window would) instead of buffering without end.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Bytes read at once from either side.
const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks in flight per direction of a connection before reads wait:
/// 64 MiB at most, above any bandwidth-delay product these tests make.
const CHUNKS_IN_FLIGHT_MAX: usize = 1_024;

/// A running proxy; stops (and drops its connections) on drop.
pub struct DelayProxy {
    /// Where it listens.
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl DelayProxy {
    /// Listens on a free loopback port and forwards to `target`, each way
    /// `delay` late.
    pub async fn start(target: SocketAddr, delay: Duration) -> std::io::Result<DelayProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((inbound, _)) = accepted else { return };
                        connections.spawn(async move {
                            if let Ok(outbound) = TcpStream::connect(target).await {
                                relay(inbound, outbound, delay).await;
                            }
                        });
                    }
                    // Reaps finished connections.
                    Some(_) = connections.join_next() => {}
                }
            }
        });
        Ok(DelayProxy { addr, task })
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        // Aborting the acceptor drops the JoinSet, which aborts every
        // connection it holds.
        self.task.abort();
    }
}

/// Pumps both directions until either side closes.
async fn relay(inbound: TcpStream, outbound: TcpStream, delay: Duration) {
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let (in_read, in_write) = inbound.into_split();
    let (out_read, out_write) = outbound.into_split();
    tokio::select! {
        _ = one_way(in_read, out_write, delay) => {}
        _ = one_way(out_read, in_write, delay) => {}
    }
}

/// Reads from `from` and writes each chunk to `to` `delay` after it was read.
async fn one_way(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
) {
    let (queue, mut due) = mpsc::channel::<(Instant, Vec<u8>)>(CHUNKS_IN_FLIGHT_MAX);
    let reader = async move {
        let mut buffer = vec![0; CHUNK_BYTES];
        loop {
            match from.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    let chunk = (Instant::now() + delay, buffer[..n].to_vec());
                    if queue.send(chunk).await.is_err() {
                        return;
                    }
                }
            }
        }
    };
    let writer = async move {
        while let Some((at, chunk)) = due.recv().await {
            tokio::time::sleep_until(at).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}
