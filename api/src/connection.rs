//! One accepted TCP connection and what it holds for its whole life: its
//! source address's connection slot and its budget of request bytes.
//!
//! tonic puts a connection's [`Connected::connect_info`] into every
//! request's extensions; [`ConnectionInfo`] carries the budget there, so
//! the [`RequestBytesLayer`](crate::request_bytes::RequestBytesLayer) can
//! charge each request's body to the connection it arrived on.

use std::io;
use std::net::IpAddr;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Context;
use std::task::Poll;

use rustls::pki_types::CertificateDer;
use tokio::io::AsyncRead;
use tokio::io::AsyncWrite;
use tokio::io::ReadBuf;
use tokio::net::TcpStream;
use tonic::transport::server::Connected;
use tonic::transport::server::TcpConnectInfo;
use tonic::transport::server::TlsConnectInfo;

use crate::per_source::Held;
use crate::request_bytes::RequestBytes;

/// A TCP connection holding its source's slot until it closes.
pub struct Connection {
    stream: TcpStream,
    _slot: Held<IpAddr>,
    request_bytes: Arc<RequestBytes>,
}

/// What every request on a [`Connection`] knows about it.
#[derive(Clone, Debug)]
pub struct ConnectionInfo {
    /// Addresses of both ends.
    pub tcp: TcpConnectInfo,
    /// Request bytes the connection has buffered, against its cap.
    pub request_bytes: Arc<RequestBytes>,
}

impl Connection {
    /// `stream`, holding `slot` and allowed `request_bytes_max` buffered
    /// request bytes at once.
    pub fn new(stream: TcpStream, slot: Held<IpAddr>, request_bytes_max: usize) -> Self {
        Connection {
            stream,
            _slot: slot,
            request_bytes: Arc::new(RequestBytes::new(request_bytes_max)),
        }
    }
}

impl Connected for Connection {
    type ConnectInfo = ConnectionInfo;

    fn connect_info(&self) -> ConnectionInfo {
        ConnectionInfo {
            tcp: self.stream.connect_info(),
            request_bytes: self.request_bytes.clone(),
        }
    }
}

/// The caller's address, over TLS (a [`Connection`]) or plaintext.
pub fn remote_addr(extensions: &tonic::Extensions) -> Option<SocketAddr> {
    if let Some(info) = extensions.get::<TlsConnectInfo<ConnectionInfo>>() {
        return info.get_ref().tcp.remote_addr();
    }
    extensions
        .get::<TcpConnectInfo>()
        .and_then(TcpConnectInfo::remote_addr)
}

/// The certificates the caller presented in its TLS handshake.
pub fn peer_certs(extensions: &tonic::Extensions) -> Option<Arc<Vec<CertificateDer<'static>>>> {
    extensions
        .get::<TlsConnectInfo<ConnectionInfo>>()
        .and_then(TlsConnectInfo::peer_certs)
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
