//! A real OTLP trace receiver for tests: the collector's gRPC `TraceService` (tonic) and
//! the OTLP/HTTP protobuf endpoint `POST /v1/traces`, both decoding the wire format the
//! gateway's exporter sends and keeping the spans for assertions.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;

/// One received span, flattened for assertions (ids in lower-case hex).
#[derive(Clone, Debug)]
pub struct ReceivedSpan {
    pub service: String,
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    pub name: String,
    /// `SpanKind` as the protocol numbers it (2 = server, 3 = client, 5 = consumer).
    pub kind: i32,
    pub attributes: HashMap<String, String>,
    /// (trace id, span id) of each link.
    pub links: Vec<(String, String)>,
}

#[derive(Clone, Default)]
pub struct Received(Arc<Mutex<Vec<ReceivedSpan>>>);

impl Received {
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.0.lock().unwrap().clone()
    }

    pub fn of_trace(&self, trace_id: &str) -> Vec<ReceivedSpan> {
        self.spans()
            .into_iter()
            .filter(|s| s.trace_id == trace_id)
            .collect()
    }

    fn add(&self, request: ExportTraceServiceRequest) {
        let mut spans = self.0.lock().unwrap();
        for rs in request.resource_spans {
            let service = rs
                .resource
                .as_ref()
                .and_then(|r| {
                    r.attributes
                        .iter()
                        .find(|kv| kv.key == "service.name")
                        .map(|kv| text(&kv.value))
                })
                .unwrap_or_default();
            for ss in rs.scope_spans {
                for s in ss.spans {
                    spans.push(ReceivedSpan {
                        service: service.clone(),
                        trace_id: hex::encode(&s.trace_id),
                        span_id: hex::encode(&s.span_id),
                        parent_span_id: hex::encode(&s.parent_span_id),
                        name: s.name.clone(),
                        kind: s.kind,
                        attributes: s
                            .attributes
                            .iter()
                            .map(|kv| (kv.key.clone(), text(&kv.value)))
                            .collect(),
                        links: s
                            .links
                            .iter()
                            .map(|l| (hex::encode(&l.trace_id), hex::encode(&l.span_id)))
                            .collect(),
                    });
                }
            }
        }
    }
}

fn text(value: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

struct Grpc(Received);

#[tonic::async_trait]
impl TraceService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.add(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// A running receiver; stops when dropped.
pub struct Receiver {
    pub addr: SocketAddr,
    pub received: Received,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    /// `http://127.0.0.1:port`, the value of `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The OTLP gRPC receiver (what `OTEL_EXPORTER_OTLP_PROTOCOL=grpc` talks to).
    pub async fn grpc() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Received::default();
        let service = TraceServiceServer::new(Grpc(received.clone()));
        let task = tokio::spawn(async move {
            let incoming = tokio_stream_from(listener);
            let _ = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(incoming)
                .await;
        });
        Self {
            addr,
            received,
            task,
        }
    }

    /// The OTLP/HTTP receiver: `POST /v1/traces` with an `application/x-protobuf` body.
    pub async fn http() -> Self {
        use axum::routing::post;
        use prost::Message;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Received::default();
        let sink = received.clone();
        let router = axum::Router::new().route(
            "/v1/traces",
            post(
                move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                    let sink = sink.clone();
                    async move {
                        let protobuf = headers
                            .get("content-type")
                            .and_then(|v| v.to_str().ok())
                            .is_some_and(|v| v.starts_with("application/x-protobuf"));
                        if !protobuf {
                            return (axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE, Vec::new());
                        }
                        match ExportTraceServiceRequest::decode(body) {
                            Ok(request) => {
                                sink.add(request);
                                let reply = ExportTraceServiceResponse {
                                    partial_success: None,
                                };
                                (axum::http::StatusCode::OK, reply.encode_to_vec())
                            }
                            Err(_) => (axum::http::StatusCode::BAD_REQUEST, Vec::new()),
                        }
                    }
                },
            ),
        );
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self {
            addr,
            received,
            task,
        }
    }
}

/// The accepted connections of `listener` as the stream tonic serves.
fn tokio_stream_from(
    listener: tokio::net::TcpListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(s, _)| s);
        Some((accepted, listener))
    })
}
