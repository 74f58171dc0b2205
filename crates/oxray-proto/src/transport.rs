//! How processes reach each other: addresses, and the token handshake that
//! opens every TCP connection.
//!
//! An address names where a process listens: `unix:PATH` on a single-node
//! cluster, `tcp:IP:PORT|unix:PATH` once the node takes part in a
//! multi-node cluster. A [`Dialer`] connects over the Unix socket when the
//! peer is on its own host (same IP, so the same machine) and over TCP
//! otherwise.
//!
//! Every TCP connection starts with a [`Hello`] frame carrying the cluster
//! token; the server compares it in constant time and answers [`Welcome`],
//! or an error and a closed connection. Until then it reads at most
//! [`MAX_HELLO_FRAME`] bytes, so a stranger can neither act nor make the
//! server reserve memory.

use std::sync::Arc;
use std::time::Duration;

use oxray_common::{Error, Result};
use subtle::ConstantTimeEq;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::frame::{max_frame, FrameReader, FrameWriter, MAX_HELLO_FRAME};
use crate::messages::{Body, Envelope, ErrorReply, Hello, Welcome, PROTOCOL_VERSION};
use crate::rpc::RpcPeer;

/// How long a TCP peer has to say hello before it is dropped.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// The parts of an address.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Address {
    /// `IP:PORT`, when reachable over TCP.
    pub tcp: Option<String>,
    /// The Unix socket's path, when there is one.
    pub unix: Option<String>,
}

impl Address {
    /// Parses `unix:PATH`, `tcp:IP:PORT` or both joined with `|`.
    pub fn parse(address: &str) -> Address {
        let mut out = Address::default();
        for part in address.split('|') {
            if let Some(p) = part.strip_prefix("unix:") {
                out.unix = Some(p.to_string());
            } else if let Some(t) = part.strip_prefix("tcp:") {
                out.tcp = Some(t.to_string());
            }
        }
        out
    }

    /// The address as a string (the inverse of [`Address::parse`]).
    pub fn format(&self) -> String {
        let parts: Vec<String> = self
            .tcp
            .iter()
            .map(|t| format!("tcp:{t}"))
            .chain(self.unix.iter().map(|u| format!("unix:{u}")))
            .collect();
        parts.join("|")
    }

    /// The IP of the TCP part.
    pub fn ip(&self) -> Option<&str> {
        let tcp = self.tcp.as_deref()?;
        Some(
            tcp.rsplit_once(':')
                .map_or(tcp, |(ip, _)| ip)
                .trim_start_matches('[')
                .trim_end_matches(']'),
        )
    }
}

/// Connects to other processes of the cluster, choosing the transport.
#[derive(Clone, Debug, Default)]
pub struct Dialer {
    /// This host's IP in the cluster (empty on a single-node cluster).
    local_ip: String,
    token: Arc<str>,
}

impl Dialer {
    /// A dialer for a process on the host with IP `local_ip`, proving
    /// `token` to TCP peers.
    /// With `OXRAY_SAME_HOST_TCP=1` in the environment, peers on the same
    /// host are reached over TCP too (to measure the network path on one
    /// machine).
    pub fn new(local_ip: &str, token: &str) -> Self {
        let tcp_only = std::env::var("OXRAY_SAME_HOST_TCP").is_ok_and(|v| v == "1");
        let local_ip = if tcp_only && !local_ip.is_empty() {
            String::new()
        } else {
            local_ip.to_string()
        };
        Self {
            local_ip,
            token: Arc::from(token),
        }
    }

    /// The token proved to TCP peers.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Connects to `address`: over its Unix socket when it is on this host,
    /// else over TCP.
    pub async fn connect(
        &self,
        address: &str,
    ) -> Result<(Arc<RpcPeer>, mpsc::UnboundedReceiver<Envelope>)> {
        match self.route(address)? {
            Route::Unix(path) => RpcPeer::connect_unix(&path).await,
            Route::Tcp(tcp) => RpcPeer::connect_tcp(&tcp, &self.token).await,
        }
    }

    /// Which transport reaches `address` from here.
    fn route(&self, address: &str) -> Result<Route> {
        let a = Address::parse(address);
        let same_host = a
            .ip()
            .is_none_or(|ip| !self.local_ip.is_empty() && ip == self.local_ip);
        match (a.unix, a.tcp) {
            (Some(path), tcp) if same_host || tcp.is_none() => Ok(Route::Unix(path)),
            (_, Some(tcp)) => Ok(Route::Tcp(tcp)),
            _ => Err(Error::Protocol {
                peer: address.to_string(),
                reason: "not an address".into(),
            }),
        }
    }
}

fn tcp_error(peer: &str) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Connection {
        peer: peer.to_string(),
        source,
    }
}

/// A connection used as a raw byte stream (bulk object transfers).
pub trait RawConnection: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> RawConnection for T {}

impl Dialer {
    /// Connects to `address` for a raw byte stream, choosing the transport
    /// as [`Dialer::connect`] does (a TCP peer sees the token first).
    pub async fn connect_raw(&self, address: &str) -> Result<Box<dyn RawConnection>> {
        match self.route(address)? {
            Route::Unix(path) => {
                let stream = tokio::net::UnixStream::connect(&path)
                    .await
                    .map_err(tcp_error(&path))?;
                Ok(Box::new(stream))
            }
            Route::Tcp(tcp) => Ok(Box::new(handshake_tcp(&tcp, &self.token).await?)),
        }
    }
}

/// Writes one framed envelope to a raw stream.
pub async fn write_frame<W: AsyncWrite + Unpin + ?Sized>(
    w: &mut W,
    env: Envelope,
) -> std::io::Result<()> {
    let mut buf = bytes::BytesMut::new();
    crate::frame::encode_frame(&env, &mut buf);
    w.write_all(&buf).await
}

/// Reads one framed envelope from a raw stream, reading nothing past it
/// (what follows may be raw bytes).
pub async fn read_frame<R: AsyncRead + Unpin + ?Sized>(r: &mut R) -> std::io::Result<Envelope> {
    read_frame_within(r, max_frame()).await
}

/// Bytes reserved for a frame before any of it arrives: the buffer grows
/// with what the peer actually sends, not with the length it claims.
const FRAME_READ_AHEAD: usize = 64 * 1024;

/// [`read_frame`], refusing a frame over `max` bytes from its length alone.
pub async fn read_frame_within<R: AsyncRead + Unpin + ?Sized>(
    r: &mut R,
    max: usize,
) -> std::io::Result<Envelope> {
    use prost::Message;
    let len = r.read_u32().await? as usize;
    if len > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "frame too large",
        ));
    }
    let mut buf = Vec::with_capacity(len.min(FRAME_READ_AHEAD));
    (&mut *r).take(len as u64).read_to_end(&mut buf).await?;
    if buf.len() < len {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Envelope::decode(buf.as_slice())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// How a peer is reached.
enum Route {
    /// Its Unix socket (same host).
    Unix(String),
    /// `IP:PORT`, with the token handshake.
    Tcp(String),
}

/// How long a TCP peer may stay silent, or leave what we sent unacknowledged,
/// before its connection is declared broken: every call waiting on that
/// connection then fails, so no wait on another host outlives its link.
pub const TCP_DEAD_AFTER: std::time::Duration = std::time::Duration::from_secs(20);

/// No Nagle delay (small requests go at once), and keepalive probes plus a
/// user timeout so that a host that vanished (power, a cut link) breaks the
/// connection within [`TCP_DEAD_AFTER`] instead of never.
fn tune_tcp(stream: &TcpStream) {
    use rustix::net::sockopt;
    use std::time::Duration;
    let _ = stream.set_nodelay(true);
    let _ = sockopt::set_socket_keepalive(stream, true);
    let _ = sockopt::set_tcp_keepidle(stream, Duration::from_secs(5));
    let _ = sockopt::set_tcp_keepintvl(stream, Duration::from_secs(3));
    let _ = sockopt::set_tcp_keepcnt(stream, 5);
    let _ = sockopt::set_tcp_user_timeout(stream, TCP_DEAD_AFTER.as_millis() as u32);
}

/// Opens a TCP connection to `addr` and proves `token`: the `Hello` frame,
/// then the answer, read without reading past it (raw bytes may follow on
/// a bulk connection).
async fn handshake_tcp(addr: &str, token: &str) -> Result<TcpStream> {
    let mut stream = TcpStream::connect(addr).await.map_err(tcp_error(addr))?;
    tune_tcp(&stream);
    let hello = Body::Hello(Hello {
        token: token.to_string(),
        version: PROTOCOL_VERSION,
    });
    write_frame(
        &mut stream,
        Envelope {
            id: 0,
            body: Some(hello),
        },
    )
    .await
    .map_err(tcp_error(addr))?;
    let refused = |reason: String| Error::Unauthorized {
        peer: addr.to_string(),
        reason,
    };
    // The answer is a `Welcome` or a short refusal: a peer that has proved
    // nothing yet gets no more room than a hello.
    let answer = read_frame_within(&mut stream, MAX_HELLO_FRAME);
    match tokio::time::timeout(HELLO_TIMEOUT, answer).await {
        Ok(Ok(Envelope {
            body: Some(Body::Welcome(_)),
            ..
        })) => Ok(stream),
        Ok(Ok(Envelope {
            body: Some(Body::ErrorReply(e)),
            ..
        })) => Err(refused(e.message)),
        Ok(_) => Err(refused(
            "it closed the connection during the handshake (wrong token, or not an oxray port)"
                .into(),
        )),
        Err(_) => Err(refused("it did not answer the handshake".into())),
    }
}

/// Opens a TCP connection to `addr` and proves `token`; returns the
/// connection ready for requests.
pub async fn dial_tcp(
    addr: &str,
    token: &str,
) -> Result<(FrameReader<OwnedReadHalf>, FrameWriter)> {
    let (r, w) = handshake_tcp(addr, token).await?.into_split();
    Ok((FrameReader::new(r), FrameWriter::tcp(w)))
}

/// Checks the first frame of an accepted TCP connection. Returns the
/// connection, ready for requests, when it proved `token`; otherwise logs
/// why, tells the peer, and drops it.
pub async fn accept_tcp(
    stream: TcpStream,
    token: &str,
) -> Option<(FrameReader<OwnedReadHalf>, FrameWriter)> {
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    tune_tcp(&stream);
    let (r, w) = stream.into_split();
    let writer = FrameWriter::tcp(w);
    let mut reader = FrameReader::with_max_frame(r, MAX_HELLO_FRAME);
    let first = tokio::time::timeout(HELLO_TIMEOUT, reader.next()).await;
    let refusal = match first {
        Ok(Some(Envelope {
            body: Some(Body::Hello(h)),
            ..
        })) => {
            if h.version != PROTOCOL_VERSION {
                Some(format!(
                    "protocol version {} is not this node's {PROTOCOL_VERSION}",
                    h.version
                ))
            } else if !token_matches(&h.token, token) {
                Some("wrong cluster token".to_string())
            } else {
                None
            }
        }
        Ok(Some(_)) => Some("the first message was not a hello with the cluster token".to_string()),
        Ok(None) => {
            Some("the connection closed or sent an oversized or malformed first frame".to_string())
        }
        Err(_) => Some("no hello within the handshake timeout".to_string()),
    };
    match refusal {
        None => {
            writer.send(Envelope {
                id: 0,
                body: Some(Body::Welcome(Welcome {
                    version: PROTOCOL_VERSION,
                })),
            });
            reader.set_max_frame(max_frame());
            Some((reader, writer))
        }
        Some(reason) => {
            tracing::warn!("refused a TCP connection from {peer}: {reason}");
            eprintln!("oxray: refused a TCP connection from {peer}: {reason}");
            writer.send(Envelope {
                id: 0,
                body: Some(Body::ErrorReply(ErrorReply { message: reason })),
            });
            // Give the refusal a moment to leave before the socket closes.
            tokio::time::sleep(Duration::from_millis(50)).await;
            None
        }
    }
}

/// Whether the process at the other end of a Unix socket runs as this
/// process's user: on one host the file system's permissions (a 0700
/// session directory) already keep others out; this check refuses them
/// even where a socket's directory is more open. Refusals are logged.
pub fn same_user(stream: &tokio::net::UnixStream) -> bool {
    let mine = rustix::process::geteuid().as_raw();
    match stream.peer_cred() {
        Ok(cred) if cred.uid() == mine => true,
        Ok(cred) => {
            tracing::warn!(
                "refused a local connection from uid {} (pid {:?})",
                cred.uid(),
                cred.pid()
            );
            eprintln!(
                "oxray: refused a local connection from another user (uid {})",
                cred.uid()
            );
            false
        }
        Err(e) => {
            tracing::warn!("refused a local connection whose user is unknown: {e}");
            false
        }
    }
}

/// Compares tokens in time independent of where they differ.
fn token_matches(given: &str, expected: &str) -> bool {
    !expected.is_empty() && bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::{KvGet, KvValue};

    #[test]
    fn addresses_round_trip() {
        let a = Address::parse("tcp:10.0.0.2:4000|unix:/tmp/x.sock");
        assert_eq!(a.tcp.as_deref(), Some("10.0.0.2:4000"));
        assert_eq!(a.unix.as_deref(), Some("/tmp/x.sock"));
        assert_eq!(a.ip(), Some("10.0.0.2"));
        assert_eq!(Address::parse(&a.format()), a);
        assert_eq!(Address::parse("unix:/a").ip(), None);
    }

    async fn echo_server(token: &'static str) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let Some((reader, writer)) = accept_tcp(stream, token).await else {
                        return;
                    };
                    let (server, mut inbox) =
                        RpcPeer::start_reader(reader, writer, "client".into());
                    while let Some(env) = inbox.recv().await {
                        if let Some(Body::KvGet(g)) = env.body {
                            server.reply(
                                env.id,
                                Body::KvValue(KvValue {
                                    found: true,
                                    value: g.key,
                                }),
                            );
                        }
                    }
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn right_token_talks_wrong_token_is_refused() {
        let addr = echo_server("s3cret").await;
        let (peer, _inbox) = RpcPeer::connect_tcp(&addr, "s3cret").await.unwrap();
        let reply = peer
            .call(Body::KvGet(KvGet {
                namespace: "n".into(),
                key: vec![7],
            }))
            .await
            .unwrap();
        assert_eq!(
            reply,
            Body::KvValue(KvValue {
                found: true,
                value: vec![7]
            })
        );
        let err = RpcPeer::connect_tcp(&addr, "guess").await.unwrap_err();
        assert!(matches!(err, Error::Unauthorized { .. }), "{err}");
        assert!(err.to_string().contains("wrong cluster token"), "{err}");
    }

    #[tokio::test]
    async fn oversized_hello_is_refused_without_reading_it() {
        use tokio::io::AsyncWriteExt;
        let addr = echo_server("t").await;
        let mut s = TcpStream::connect(&addr).await.unwrap();
        // Claims a 1 GiB frame: refused from the length alone.
        s.write_all(&(1u32 << 30).to_be_bytes()).await.unwrap();
        let mut reader = FrameReader::new(s);
        match reader.next().await {
            Some(Envelope {
                body: Some(Body::ErrorReply(_)),
                ..
            })
            | None => {}
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn empty_expected_token_matches_nothing() {
        assert!(!token_matches("", ""));
        assert!(token_matches("a", "a"));
        assert!(!token_matches("a", "b"));
    }
}
