//! A cap on the request bytes one connection has buffered at once.
//!
//! The decoder buffers a message until its last byte arrives, so a caller
//! that declares large messages on many streams and withholds their last
//! bytes would pin memory for as long as it likes. Each request body is
//! charged to its connection's [`RequestBytes`] frame by frame, and given
//! back when the body is dropped (after decoding, for unary requests); a
//! frame past the cap ends its request with RESOURCE_EXHAUSTED.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering;
use std::task::Context;
use std::task::Poll;
use std::task::ready;

use http_body::Frame;
use http_body::SizeHint;
use tonic::Status;
use tonic::body::Body;
use tonic::codegen::Bytes;
use tonic::codegen::http;
use tonic::metadata::MetadataValue;
use tonic::server::NamedService;
use tonic::transport::server::TlsConnectInfo;

use crate::connection::ConnectionInfo;
use crate::headers::RETRY_AFTER_HEADER;

/// When a refused caller should try again: its other requests finish
/// within the request timeout, most within milliseconds.
const RETRY_AFTER_MS: u64 = 100;

/// Request bytes one connection has buffered, up to its cap.
#[derive(Debug)]
pub struct RequestBytes {
    held: AtomicUsize,
    max: usize,
}

impl RequestBytes {
    /// A budget of `max` bytes.
    pub fn new(max: usize) -> Self {
        RequestBytes {
            held: AtomicUsize::new(0),
            max,
        }
    }

    /// Bytes held now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// Takes `bytes`, or nothing if that would pass the cap.
    fn try_take(&self, bytes: usize) -> bool {
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(bytes).filter(|total| *total <= self.max)
            })
            .is_ok()
    }

    fn give_back(&self, bytes: usize) {
        let before = self.held.fetch_sub(bytes, Ordering::AcqRel);
        assert!(before >= bytes, "gave back {bytes} of {before} bytes held");
    }
}

/// Wraps a gRPC service so that its request bodies are charged to their
/// connection (requests on a connection that is not a
/// [`Connection`](crate::connection::Connection) are not charged).
#[derive(Clone, Debug)]
pub struct ChargeRequestBytes<S> {
    inner: S,
}

impl<S> ChargeRequestBytes<S> {
    /// `inner`, its request bodies charged.
    pub fn new(inner: S) -> Self {
        ChargeRequestBytes { inner }
    }
}

impl<S: NamedService> NamedService for ChargeRequestBytes<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> tower_service::Service<http::Request<Body>> for ChargeRequestBytes<S>
where
    S: tower_service::Service<http::Request<Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let budget = request
            .extensions()
            .get::<TlsConnectInfo<ConnectionInfo>>()
            .map(|info| info.get_ref().request_bytes.clone());
        match budget {
            Some(budget) => self.inner.call(request.map(|body| {
                Body::new(Charged {
                    body,
                    budget,
                    held: 0,
                })
            })),
            None => self.inner.call(request),
        }
    }
}

/// A request body whose buffered bytes are charged to its connection.
struct Charged {
    body: Body,
    budget: Arc<RequestBytes>,
    held: usize,
}

impl http_body::Body for Charged {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        let frame = ready!(Pin::new(&mut this.body).poll_frame(cx));
        if let Some(Ok(frame)) = &frame
            && let Some(data) = frame.data_ref()
        {
            if !this.budget.try_take(data.len()) {
                metrics::counter!("switchboard_requests_refused_total", "reason" => "request_bytes")
                    .increment(1);
                return Poll::Ready(Some(Err(exhausted(this.budget.max))));
            }
            this.held += data.len();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Charged {
    fn drop(&mut self) {
        self.budget.give_back(self.held);
    }
}

fn exhausted(max: usize) -> Status {
    let mut status = Status::resource_exhausted(format!(
        "this connection has {max} bytes of requests in flight already; wait for them or open another connection"
    ));
    status
        .metadata_mut()
        .insert(RETRY_AFTER_HEADER, MetadataValue::from(RETRY_AFTER_MS));
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_up_to_the_cap_and_gives_back() {
        let budget = RequestBytes::new(10);
        assert!(budget.try_take(6));
        assert!(!budget.try_take(5), "past the cap");
        assert!(budget.try_take(4));
        assert_eq!(budget.held(), 10);
        budget.give_back(6);
        assert!(budget.try_take(5));
        assert_eq!(budget.held(), 9);
    }

    #[tokio::test]
    async fn a_body_past_the_cap_is_refused_and_its_bytes_come_back_on_drop() {
        use http_body_util::BodyExt;
        let budget = Arc::new(RequestBytes::new(8));
        let body = |bytes: &'static [u8]| Charged {
            body: Body::new(http_body_util::Full::new(Bytes::from_static(bytes))),
            budget: budget.clone(),
            held: 0,
        };
        let mut first = body(b"123456");
        let frame = first
            .frame()
            .await
            .expect("a frame")
            .expect("within the cap");
        assert_eq!(frame.into_data().expect("data").len(), 6);
        let mut second = body(b"789");
        let refused = second
            .frame()
            .await
            .expect("a frame")
            .expect_err("past the cap");
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(refused.metadata().get(RETRY_AFTER_HEADER).is_some());
        drop(first);
        assert_eq!(budget.held(), 0, "a dropped body gives its bytes back");
        let mut third = body(b"789");
        third.frame().await.expect("a frame").expect("room again");
    }
}
