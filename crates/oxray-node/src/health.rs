//! The health endpoint: plain HTTP `GET /healthz` on the node's IP, for
//! container probes. It answers 200 while the node is a live member of its
//! cluster (the head: while it runs; another node: while its connection to
//! the head is up), 503 otherwise. It reveals nothing but that and the
//! node's id, so it needs no token.

use std::convert::Infallible;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use crate::daemon::Node;
use crate::NodeError;

impl Node {
    /// Serves `GET /healthz` on `ip:port` until the daemon stops.
    pub(crate) async fn serve_health(
        self: &Arc<Self>,
        ip: &str,
        port: u16,
    ) -> Result<(), NodeError> {
        let listener = tokio::net::TcpListener::bind((ip, port))
            .await
            .map_err(|source| NodeError::Bind {
                path: format!("{ip}:{port} (health endpoint)"),
                source,
            })?;
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let me = me.clone();
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                            let answer = match me.upgrade() {
                                Some(node) => node.health_answer(req.uri().path()),
                                None => (
                                    StatusCode::SERVICE_UNAVAILABLE,
                                    "{\"status\": \"stopping\"}".to_string(),
                                ),
                            };
                            async move {
                                let (status, body) = answer;
                                let mut response = Response::new(Full::new(Bytes::from(body)));
                                *response.status_mut() = status;
                                response.headers_mut().insert(
                                    hyper::header::CONTENT_TYPE,
                                    hyper::header::HeaderValue::from_static("application/json"),
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
        Ok(())
    }

    fn health_answer(&self, path: &str) -> (StatusCode, String) {
        if path != "/healthz" && path != "/api/healthz" {
            return (
                StatusCode::NOT_FOUND,
                "{\"error\": \"not found: use /healthz\"}".into(),
            );
        }
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
        (
            if member {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            },
            body,
        )
    }
}
