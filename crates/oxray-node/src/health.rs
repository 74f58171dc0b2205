//! The node's plain-HTTP endpoints: `GET /healthz` for container probes,
//! and `GET /metrics` for Prometheus. Health answers 200 while the node is
//! a live member of its cluster (the head: while it runs; another node:
//! while its connection to the head is up), 503 otherwise. Neither needs a
//! token: health reveals only that and the node's id, metrics only usage
//! figures (as Ray's metrics endpoints).

use std::convert::Infallible;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::daemon::Node;
use crate::NodeError;

/// An answer: status, content type, body.
type Answer = (StatusCode, &'static str, String);

const JSON: &str = "application/json";
/// Prometheus' text exposition format.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Binds `ip:port` for the endpoint named `what` (in errors).
pub(crate) async fn bind(ip: &str, port: u16, what: &str) -> Result<TcpListener, NodeError> {
    TcpListener::bind((ip, port))
        .await
        .map_err(|source| NodeError::Bind {
            path: format!("{ip}:{port} ({what})"),
            source,
        })
}

impl Node {
    /// Serves the endpoints on `listener` until the daemon stops.
    pub(crate) fn serve_http(self: &Arc<Self>, listener: TcpListener) {
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let me = me.clone();
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                            let answer = match me.upgrade() {
                                Some(node) => node.answer(req.uri().path()),
                                None => (
                                    StatusCode::SERVICE_UNAVAILABLE,
                                    JSON,
                                    "{\"status\": \"stopping\"}".to_string(),
                                ),
                            };
                            async move {
                                let (status, content_type, body) = answer;
                                let mut response = Response::new(Full::new(Bytes::from(body)));
                                *response.status_mut() = status;
                                response.headers_mut().insert(
                                    hyper::header::CONTENT_TYPE,
                                    hyper::header::HeaderValue::from_static(content_type),
                                );
                                Ok::<_, Infallible>(response)
                            }
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    }

    fn answer(&self, path: &str) -> Answer {
        match path {
            "/healthz" | "/api/healthz" => self.health_answer(),
            "/metrics" => (StatusCode::OK, PROMETHEUS_TEXT, self.metrics_text()),
            _ => (
                StatusCode::NOT_FOUND,
                JSON,
                "{\"error\": \"not found: use /healthz or /metrics\"}".into(),
            ),
        }
    }

    fn health_answer(&self) -> Answer {
        let member = self.is_head() || self.head().is_some_and(|h| !h.is_closed());
        let status = if member {
            "ok"
        } else {
            "not a member of a cluster"
        };
        let body = format!(
            "{{\"status\": \"{status}\", \"node_id\": \"{}\", \"is_head\": {}}}",
            self.node_id.hex(),
            self.is_head()
        );
        let code = if member {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        (code, JSON, body)
    }
}
