//! What every call on a gRPC port gets on its way in, in one tower layer in
//! front of the router, not in each handler: a tracing span with its method
//! and request id (the caller's `x-request-id` if it sent a short printable
//! one, else a fresh one), and a count and a time by method and status.
//!
//! - `switchboard_api_requests_total{method, code}`
//! - `switchboard_api_request_duration_seconds{method, code}`: until the
//!   response headers; for a streaming call (a watch), until it opened.
//!
//! The code is read from the response headers: tonic puts `grpc-status`
//! there for every refusal (a trailers-only response) and in the trailers
//! only for success, so a response without it is OK. Method paths come
//! from callers, so only the methods the port serves (read from the
//! descriptors) are labelled as themselves; any other path is `unknown`,
//! and no caller can grow the label set.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Context;
use std::task::Poll;
use std::time::Instant;

use prost::Message as _;
use tonic::Code;
use tower::Layer;
use tower::Service;
use tracing::Instrument as _;

/// The layer: wrap a router's services in [`RequestMetrics`].
#[derive(Clone, Debug)]
pub struct RequestMetricsLayer {
    known: Arc<HashSet<String>>,
}

impl RequestMetricsLayer {
    /// Labels the methods of the services in `descriptors` (an encoded
    /// `FileDescriptorSet`) and of `grpc.health.v1` and reflection.
    pub fn new(descriptors: &[u8]) -> Result<Self, prost::DecodeError> {
        let set = prost_types::FileDescriptorSet::decode(descriptors)?;
        let mut known: HashSet<String> = set
            .file
            .iter()
            .flat_map(|file| {
                let package = file.package().to_owned();
                file.service.iter().flat_map(move |service| {
                    let package = package.clone();
                    service.method.iter().map(move |method| {
                        format!("/{package}.{}/{}", service.name(), method.name())
                    })
                })
            })
            .collect();
        known.extend(STANDARD_METHODS.iter().map(|m| (*m).to_owned()));
        Ok(RequestMetricsLayer {
            known: Arc::new(known),
        })
    }
}

/// The standard services the API port serves besides its own.
const STANDARD_METHODS: [&str; 3] = [
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
];

impl<S> Layer<S> for RequestMetricsLayer {
    type Service = RequestMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestMetrics {
            inner,
            known: self.known.clone(),
        }
    }
}

/// Counts and times the calls `inner` answers.
#[derive(Clone, Debug)]
pub struct RequestMetrics<S> {
    inner: S,
    known: Arc<HashSet<String>>,
}

type Boxed<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'static>>;

impl<S, B, R> Service<http::Request<B>> for RequestMetrics<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: 'static,
    R: 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Boxed<S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let path = request.uri().path();
        let method = if self.known.contains(path) {
            path.to_owned()
        } else {
            UNKNOWN_METHOD.to_owned()
        };
        let request_id = request_id_of(request.headers());
        let span = tracing::info_span!("request", method = %method, request_id = %request_id);
        let started = Instant::now();
        let answered = {
            let _entered = span.enter();
            self.inner.call(request)
        };
        Box::pin(async move {
            let result = answered.await;
            let code = match &result {
                Ok(response) => code_of(response.headers()),
                Err(_) => Code::Unknown,
            };
            let code = code_name(code);
            metrics::counter!("switchboard_api_requests_total", "method" => method.clone(), "code" => code)
                .increment(1);
            metrics::histogram!("switchboard_api_request_duration_seconds", "method" => method, "code" => code)
                .record(started.elapsed().as_secs_f64());
            result
        }.instrument(span))
    }
}

/// The header a caller may name its request by, for matching its logs.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Longest request id taken from a caller.
const REQUEST_ID_BYTES_MAX: usize = 64;

/// The caller's request id if short and printable, else a fresh one.
fn request_id_of(headers: &http::HeaderMap) -> String {
    headers
        .get(REQUEST_ID_HEADER)
        .and_then(|value| value.to_str().ok())
        .filter(|id| {
            !id.is_empty()
                && id.len() <= REQUEST_ID_BYTES_MAX
                && id.bytes().all(|b| b.is_ascii_graphic())
        })
        .map_or_else(|| format!("{:016x}", rand::random::<u64>()), str::to_owned)
}

/// The label of every path the port does not serve.
const UNKNOWN_METHOD: &str = "unknown";

/// The gRPC status of a response from its headers: OK when absent.
fn code_of(headers: &http::HeaderMap) -> Code {
    headers
        .get("grpc-status")
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.parse::<i32>().ok())
        .map_or(Code::Ok, Code::from_i32)
}

/// The code's name as gRPC spells it (`NOT_FOUND`), a static label value.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_without_grpc_status_is_ok_and_one_with_it_is_its_code() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(code_of(&headers), Code::Ok);
        headers.insert("grpc-status", http::HeaderValue::from_static("5"));
        assert_eq!(code_of(&headers), Code::NotFound);
        assert_eq!(code_name(code_of(&headers)), "NOT_FOUND");
    }

    #[test]
    fn a_callers_request_id_is_kept_only_if_short_and_printable() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(request_id_of(&headers).len(), 16, "a fresh one");
        headers.insert(REQUEST_ID_HEADER, http::HeaderValue::from_static("abc-123"));
        assert_eq!(request_id_of(&headers), "abc-123");
        let long = "x".repeat(REQUEST_ID_BYTES_MAX + 1);
        headers.insert(
            REQUEST_ID_HEADER,
            http::HeaderValue::from_str(&long).unwrap(),
        );
        assert_ne!(request_id_of(&headers), long);
        headers.insert(REQUEST_ID_HEADER, http::HeaderValue::from_static("a b"));
        assert_ne!(request_id_of(&headers), "a b");
    }

    #[test]
    fn only_the_methods_served_become_labels() {
        let layer = RequestMetricsLayer::new(switchboard_proto::v1::FILE_DESCRIPTOR_SET)
            .expect("descriptors decode");
        assert!(layer.known.contains("/switchboard.v1.HostService/Attach"));
        assert!(layer.known.contains("/grpc.health.v1.Health/Check"));
        assert!(!layer.known.contains("/switchboard.v1.HostService/Invented"));
        assert!(
            RequestMetricsLayer::new(b"\xff\xff").is_err(),
            "bad descriptors are refused"
        );
    }
}
