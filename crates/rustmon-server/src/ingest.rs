//! OTLP receivers: HTTP (`/v1/traces`, `/v1/metrics`) and gRPC (`TraceService`, `MetricsService`).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use tokio::sync::Semaphore;

use crate::metrics::SelfMetrics;
use crate::model::{Converted, convert_traces};
use crate::otlp::{self, DecodeError, Encoding};
use crate::store::{Store, StoreError};
use crate::wire;

/// Seconds a throttled client is told to wait.
pub const RETRY_AFTER_SECS: u64 = 1;

/// What the receivers share.
#[derive(Clone)]
pub struct Ingest {
    /// The store.
    pub store: Arc<dyn Store>,
    /// Self-metrics.
    pub metrics: Arc<SelfMetrics>,
    /// Largest request body accepted, compressed or not.
    pub max_body: usize,
    /// Requests being decoded at once; more get 429.
    pub inflight: Arc<Semaphore>,
}

/// Why an export failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The queue is full.
    #[error("ingest queue is full, retry after {RETRY_AFTER_SECS}s")]
    Throttled,
    /// Shutting down.
    #[error("collector is shutting down")]
    Closed,
    /// The store failed.
    #[error("store failed: {0}")]
    Store(String),
}

impl From<StoreError> for IngestError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Full => IngestError::Throttled,
            StoreError::Closed => IngestError::Closed,
            e => IngestError::Store(e.to_string()),
        }
    }
}

impl Ingest {
    /// Stores a trace request; `wal` is its protobuf encoding. Returns rejected count and message.
    pub async fn traces(
        &self,
        req: ExportTraceServiceRequest,
        wal: Bytes,
    ) -> Result<(u64, Option<String>), IngestError> {
        self.converted(convert_traces(req), wal).await
    }

    /// Stores spans converted from a trace request whose protobuf encoding is `wal`.
    async fn converted(
        &self,
        conv: Converted,
        wal: Bytes,
    ) -> Result<(u64, Option<String>), IngestError> {
        let m = &self.metrics;
        m.spans_received
            .fetch_add(conv.spans.len() as u64 + conv.rejected, Ordering::Relaxed);
        m.spans_rejected.fetch_add(conv.rejected, Ordering::Relaxed);
        if conv.spans.is_empty() {
            return Ok((conv.rejected, conv.error));
        }
        let ack = match self.store.submit_spans(wal, conv.spans) {
            Ok(a) => a,
            Err(e) => {
                if matches!(e, StoreError::Full) {
                    m.requests_throttled.fetch_add(1, Ordering::Relaxed);
                }
                return Err(e.into());
            }
        };
        match ack.await {
            Ok(Ok(())) => Ok((conv.rejected, conv.error)),
            Ok(Err(e)) => Err(IngestError::Store(e)),
            Err(_) => Err(IngestError::Closed),
        }
    }

    /// Stores a metrics request. Returns rejected count and message.
    pub async fn metrics(
        &self,
        req: ExportMetricsServiceRequest,
    ) -> Result<(u64, Option<String>), IngestError> {
        let store = self.store.clone();
        let m = self.metrics.clone();
        tokio::task::spawn_blocking(move || {
            let conv = otlp::convert_metrics(req);
            store.insert_metrics(&conv.points)?;
            if !conv.rollups.is_empty() {
                store.merge_agent_rollups(&conv.rollups)?;
            }
            m.metric_points_received
                .fetch_add(conv.points.len() as u64, Ordering::Relaxed);
            m.metric_points_rejected
                .fetch_add(conv.rejected, Ordering::Relaxed);
            Ok::<_, StoreError>((conv.rejected, conv.error))
        })
        .await
        .map_err(|e| IngestError::Store(e.to_string()))?
        .map_err(IngestError::from)
    }
}

fn error_response(status: StatusCode, enc: Option<Encoding>, msg: String) -> Response {
    // OTLP/HTTP: errors carry a google.rpc.Status in the request's encoding
    let mut resp = match enc {
        Some(Encoding::Protobuf) => {
            let body = encode_status(status.as_u16(), &msg);
            (
                status,
                [(header::CONTENT_TYPE, "application/x-protobuf")],
                body,
            )
                .into_response()
        }
        _ => (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::json!({ "error": msg, "code": grpc_code(status), "message": msg })
                .to_string(),
        )
            .into_response(),
    };
    if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    }
    resp
}

fn grpc_code(s: StatusCode) -> i32 {
    match s {
        StatusCode::BAD_REQUEST
        | StatusCode::PAYLOAD_TOO_LARGE
        | StatusCode::UNSUPPORTED_MEDIA_TYPE => 3,
        StatusCode::TOO_MANY_REQUESTS => 8,
        StatusCode::SERVICE_UNAVAILABLE => 14,
        _ => 13,
    }
}

/// A `google.rpc.Status { code, message }` in protobuf, by hand (two fields).
fn encode_status(http: u16, msg: &str) -> Vec<u8> {
    let code = grpc_code(StatusCode::from_u16(http).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
    let mut b = Vec::new();
    b.push(0x08);
    crate::codec::put_uvarint(&mut b, code as u64);
    b.push(0x12);
    crate::codec::put_bytes(&mut b, msg.as_bytes());
    b
}

fn decode_error_response(&(ref e, enc): &(DecodeError, Option<Encoding>)) -> Response {
    let status = match e {
        DecodeError::UnsupportedMediaType(_) | DecodeError::UnsupportedEncoding(_) => {
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        }
        DecodeError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::BAD_REQUEST,
    };
    error_response(status, enc, e.to_string())
}

fn ingest_error_response(e: IngestError, enc: Encoding) -> Response {
    let status = match e {
        IngestError::Throttled => StatusCode::TOO_MANY_REQUESTS,
        IngestError::Closed => StatusCode::SERVICE_UNAVAILABLE,
        IngestError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error_response(status, Some(enc), e.to_string())
}

/// Reads and decompresses a body within the limit, choosing its encoding.
async fn read_body(
    ing: &Ingest,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Encoding, Bytes), (DecodeError, Option<Encoding>)> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let enc = otlp::encoding_of(ct).map_err(|e| (e, None))?;
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
    {
        if len > ing.max_body {
            return Err((DecodeError::TooLarge(ing.max_body), Some(enc)));
        }
    }
    let raw = axum::body::to_bytes(body, ing.max_body)
        .await
        .map_err(|_| (DecodeError::TooLarge(ing.max_body), Some(enc)))?;
    let ce = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok());
    match otlp::decompress(&raw, ce, ing.max_body).map_err(|e| (e, Some(enc)))? {
        Some(d) => Ok((enc, Bytes::from(d))),
        None => Ok((enc, raw)),
    }
}

fn ok_response<M: Message + serde::Serialize>(enc: Encoding, msg: &M) -> Response {
    let body = match enc {
        Encoding::Protobuf => msg.encode_to_vec(),
        Encoding::Json => serde_json::to_vec(msg).unwrap_or_else(|_| b"{}".to_vec()),
    };
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, enc.content_type())],
        body,
    )
        .into_response()
}

async fn http_traces(State(ing): State<Ingest>, headers: HeaderMap, body: Body) -> Response {
    let Ok(_permit) = ing.inflight.clone().try_acquire_owned() else {
        ing.metrics
            .requests_throttled
            .fetch_add(1, Ordering::Relaxed);
        let enc = otlp::encoding_of(
            headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
        )
        .ok();
        return error_response(
            StatusCode::TOO_MANY_REQUESTS,
            enc,
            IngestError::Throttled.to_string(),
        );
    };
    let (enc, bytes) = match read_body(&ing, &headers, body).await {
        Ok(x) => x,
        Err(e) => {
            ing.metrics.requests_invalid.fetch_add(1, Ordering::Relaxed);
            return decode_error_response(&e);
        }
    };
    // protobuf is decoded straight into spans and logged as received; JSON goes through the
    // prost types and is logged re-encoded. The logged copy is exactly the body's size: the
    // body itself may be a slice of the connection's larger read buffer, which a queued batch
    // would keep alive beyond what the queue's memory limit counts.
    let decoded = match enc {
        Encoding::Protobuf => wire::decode_traces(&bytes)
            .map(|conv| (conv, Bytes::copy_from_slice(&bytes)))
            .map_err(|e| DecodeError::Malformed {
                kind: "protobuf",
                what: "ExportTraceServiceRequest",
                msg: e.to_string(),
            }),
        Encoding::Json => otlp::decode_traces(enc, &bytes)
            .map(|req| (Bytes::from(req.encode_to_vec()), req))
            .map(|(wal, req)| (convert_traces(req), wal)),
    };
    let (conv, wal) = match decoded {
        Ok(x) => x,
        Err(e) => {
            ing.metrics.requests_invalid.fetch_add(1, Ordering::Relaxed);
            return decode_error_response(&(e, Some(enc)));
        }
    };
    match ing.converted(conv, wal).await {
        Ok((rejected, msg)) => ok_response(
            enc,
            &ExportTraceServiceResponse {
                partial_success: (rejected > 0).then(|| ExportTracePartialSuccess {
                    rejected_spans: rejected as i64,
                    error_message: msg.unwrap_or_default(),
                }),
            },
        ),
        Err(e) => ingest_error_response(e, enc),
    }
}

async fn http_metrics(State(ing): State<Ingest>, headers: HeaderMap, body: Body) -> Response {
    let Ok(_permit) = ing.inflight.clone().try_acquire_owned() else {
        ing.metrics
            .requests_throttled
            .fetch_add(1, Ordering::Relaxed);
        return error_response(
            StatusCode::TOO_MANY_REQUESTS,
            None,
            IngestError::Throttled.to_string(),
        );
    };
    let (enc, bytes) = match read_body(&ing, &headers, body).await {
        Ok(x) => x,
        Err(e) => {
            ing.metrics.requests_invalid.fetch_add(1, Ordering::Relaxed);
            return decode_error_response(&e);
        }
    };
    let req = match otlp::decode_metrics(enc, &bytes) {
        Ok(r) => r,
        Err(e) => {
            ing.metrics.requests_invalid.fetch_add(1, Ordering::Relaxed);
            return decode_error_response(&(e, Some(enc)));
        }
    };
    match ing.metrics(req).await {
        Ok((rejected, msg)) => ok_response(
            enc,
            &ExportMetricsServiceResponse {
                partial_success: (rejected > 0).then(|| ExportMetricsPartialSuccess {
                    rejected_data_points: rejected as i64,
                    error_message: msg.unwrap_or_default(),
                }),
            },
        ),
        Err(e) => ingest_error_response(e, enc),
    }
}

async fn not_found() -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        None,
        "not found: OTLP/HTTP accepts POST /v1/traces and POST /v1/metrics".into(),
    )
}

/// The OTLP/HTTP router.
pub fn http_router(ing: Ingest) -> Router {
    Router::new()
        .route("/v1/traces", post(http_traces))
        .route("/v1/metrics", post(http_metrics))
        .fallback(not_found)
        .with_state(ing)
}

fn status_of(e: IngestError) -> tonic::Status {
    match e {
        IngestError::Throttled => {
            let mut st = tonic::Status::resource_exhausted(e.to_string());
            // RetryInfo is the standard hint; a plain header is understood by humans and proxies
            st.metadata_mut().insert(
                "retry-after",
                tonic::metadata::MetadataValue::from_static("1"),
            );
            st
        }
        IngestError::Closed => tonic::Status::unavailable(e.to_string()),
        IngestError::Store(_) => tonic::Status::internal(e.to_string()),
    }
}

/// gRPC `TraceService`.
#[derive(Clone)]
pub struct GrpcTraces(pub Ingest);

#[tonic::async_trait]
impl TraceService for GrpcTraces {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let req = request.into_inner();
        let wal = Bytes::from(req.encode_to_vec());
        let (rejected, msg) = self.0.traces(req, wal).await.map_err(status_of)?;
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: (rejected > 0).then(|| ExportTracePartialSuccess {
                rejected_spans: rejected as i64,
                error_message: msg.unwrap_or_default(),
            }),
        }))
    }
}

/// gRPC `MetricsService`.
#[derive(Clone)]
pub struct GrpcMetrics(pub Ingest);

#[tonic::async_trait]
impl MetricsService for GrpcMetrics {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let (rejected, msg) = self
            .0
            .metrics(request.into_inner())
            .await
            .map_err(status_of)?;
        Ok(tonic::Response::new(ExportMetricsServiceResponse {
            partial_success: (rejected > 0).then(|| ExportMetricsPartialSuccess {
                rejected_data_points: rejected as i64,
                error_message: msg.unwrap_or_default(),
            }),
        }))
    }
}

/// The gRPC services, with the body limit and gzip accepted.
pub fn grpc_services(
    ing: Ingest,
) -> (
    TraceServiceServer<GrpcTraces>,
    MetricsServiceServer<GrpcMetrics>,
) {
    let max = ing.max_body;
    (
        TraceServiceServer::new(GrpcTraces(ing.clone()))
            .max_decoding_message_size(max)
            .accept_compressed(tonic::codec::CompressionEncoding::Gzip),
        MetricsServiceServer::new(GrpcMetrics(ing))
            .max_decoding_message_size(max)
            .accept_compressed(tonic::codec::CompressionEncoding::Gzip),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{EmbeddedStore, StoreOptions};
    use crate::testdata::{Rng, realistic_request};
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
    use std::future::IntoFuture;

    /// With the writer held, a second batch finds the queue full: HTTP 429 with Retry-After,
    /// gRPC RESOURCE_EXHAUSTED; the first batch completes once the writer resumes.
    #[test]
    fn full_queue_is_refused() {
        let dir = std::env::temp_dir().join(format!("rustmon-bp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let metrics = Arc::new(SelfMetrics::default());
        let mut opts = StoreOptions::new(&dir);
        opts.max_queue_bytes = 1;
        let store = Arc::new(EmbeddedStore::open(opts, metrics.clone()).unwrap());
        let ing_metrics = metrics.clone();
        let ing = Ingest {
            store: store.clone(),
            metrics,
            max_body: 1 << 20,
            inflight: Arc::new(Semaphore::new(8)),
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (http_addr, grpc_addr) = rt.block_on(async {
            let h = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let g = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addrs = (h.local_addr().unwrap(), g.local_addr().unwrap());
            tokio::spawn(axum::serve(h, http_router(ing.clone())).into_future());
            let (ts, ms) = grpc_services(ing);
            tokio::spawn(
                tonic::transport::Server::builder()
                    .add_service(ts)
                    .add_service(ms)
                    .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(g)),
            );
            addrs
        });
        let body =
            realistic_request(&mut Rng::new(1), 40, 1_700_000_000_000_000_000).encode_to_vec();
        let url = format!("http://{http_addr}/v1/traces");
        let guard = store.pause();
        let first = {
            let (url, body) = (url.clone(), body.clone());
            std::thread::spawn(move || {
                reqwest::blocking::Client::new()
                    .post(url)
                    .header("content-type", "application/x-protobuf")
                    .body(body)
                    .send()
                    .unwrap()
                    .status()
                    .as_u16()
            })
        };
        // the writer fsyncs the first batch, then waits for the view we hold
        while ing_metrics.wal_syncs.load(Ordering::Relaxed) == 0 {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let r = reqwest::blocking::Client::new()
            .post(&url)
            .header("content-type", "application/x-protobuf")
            .body(body.clone())
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 429);
        assert_eq!(r.headers()["retry-after"], "1");
        let st = rt.block_on(async {
            let mut c = TraceServiceClient::connect(format!("http://{grpc_addr}"))
                .await
                .unwrap();
            let req = ExportTraceServiceRequest::decode(&body[..]).unwrap();
            c.export(req).await.unwrap_err()
        });
        assert_eq!(st.code(), tonic::Code::ResourceExhausted, "{st:?}");
        drop(guard);
        assert_eq!(first.join().unwrap(), 200);
        store.shutdown();
        rt.shutdown_background();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
