//! Bounded fuzzing of the decoders, run with the other tests (the open-ended
//! cargo-fuzz targets live in `fuzz/` at the repository root).
//!
//! Whatever bytes a peer sends, [`Envelope::decode`], the frame reader and
//! [`read_frame`] return messages or an error: they never panic, and what
//! they allocate is bounded by the largest frame accepted, never by a
//! length the peer claims. Messages survive an encode/decode round trip.
//!
//! Allocations are measured per thread by a counting allocator: each check
//! runs its decoder on the test's own thread and looks at the largest
//! single allocation it made.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures::executor::block_on;
use futures::StreamExt;
use oxray_proto::frame::{encode_frame, framed_read, max_frame, FrameReader, MAX_HELLO_FRAME};
use oxray_proto::transport::{read_frame, read_frame_within};
use oxray_proto::*;
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use prost::Message;
use tokio::io::{AsyncRead, ReadBuf};

// --- allocation accounting ---------------------------------------------------

/// The system allocator, noting the largest allocation of each thread.
struct Counting;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    // `try_with`: the slot may be gone while a thread exits.
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
}

// SAFETY: every call is forwarded unchanged to `System`.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        System.realloc(ptr, layout, new_size)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f`; returns its result and the largest single allocation it made
/// on this thread.
fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|l| l.set(0));
    let out = f();
    (out, LARGEST.with(|l| l.get()))
}

/// The read buffer a frame reader starts with (`frame::READ_BUFFER`).
const READ_BUFFER: usize = 16 * 1024;

/// The most one buffer of a frame reader refusing frames over `max` bytes
/// may take: the frame and its length, or the initial buffer, with room for
/// amortized growth (a buffer doubles when it must grow).
fn framing_bound(max: usize) -> usize {
    4 * (max + 4).max(READ_BUFFER)
}

/// The most one allocation decoding `n` bytes may take. Every element of a
/// repeated field costs at least one byte on the wire and no element type
/// is larger than an `Envelope`; a `Vec` grows by doubling from 4 elements.
fn decode_bound(n: usize) -> usize {
    4 * (n + 1) * std::mem::size_of::<Envelope>()
}

// --- readers -----------------------------------------------------------------

/// Serves `data` in pieces of the sizes in `chunks` (cycled), and with
/// `stall` answers every other poll with `Pending` (waking at once), the
/// way a socket delivers what arrived so far.
struct Trickle {
    data: Vec<u8>,
    pos: usize,
    chunks: Vec<usize>,
    turn: usize,
    stall: bool,
    stalled: bool,
}

impl Trickle {
    fn new(data: Vec<u8>, chunks: Vec<usize>, stall: bool) -> Self {
        Self {
            data,
            pos: 0,
            chunks,
            turn: 0,
            stall,
            stalled: false,
        }
    }
}

impl AsyncRead for Trickle {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = &mut *self;
        if me.stall && !me.stalled {
            me.stalled = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        me.stalled = false;
        let chunk = me.chunks[me.turn % me.chunks.len()];
        me.turn += 1;
        let n = chunk.min(buf.remaining()).min(me.data.len() - me.pos);
        buf.put_slice(&me.data[me.pos..me.pos + n]);
        me.pos += n;
        Poll::Ready(Ok(()))
    }
}

/// Every envelope a [`FrameReader`] refusing frames over `max` yields from
/// `source`, until it ends or finds a broken frame.
fn read_all<R: AsyncRead + Unpin>(source: R, max: usize) -> Vec<Envelope> {
    let mut reader = FrameReader::with_max_frame(source, max);
    block_on(async {
        let mut out = Vec::new();
        while let Some(env) = reader.next().await {
            out.push(env);
        }
        out
    })
}

/// Every raw frame of `source` up to the first error, and whether one
/// ended it.
fn raw_frames<R: AsyncRead + Unpin>(source: R, max: usize) -> (Vec<BytesMut>, bool) {
    let mut frames = framed_read(source, max);
    block_on(async {
        let mut out = Vec::new();
        while let Some(frame) = frames.next().await {
            match frame {
                Ok(f) => out.push(f),
                Err(_) => return (out, true),
            }
        }
        (out, false)
    })
}

fn framed(envs: &[Envelope]) -> Vec<u8> {
    let mut buf = BytesMut::new();
    for env in envs {
        encode_frame(env, &mut buf);
    }
    buf.to_vec()
}

// --- strategies --------------------------------------------------------------

fn id(len: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![Just(Vec::new()), vec(any::<u8>(), len)]
}

fn text() -> impl Strategy<Value = String> {
    "\\PC{0,24}"
}

fn blob() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..256).prop_map(Bytes::from)
}

fn resources() -> impl Strategy<Value = BTreeMap<String, i64>> {
    btree_map(text(), any::<i64>(), 0..4)
}

fn object_ref() -> impl Strategy<Value = ObjectRefMsg> {
    (id(20), text(), text()).prop_map(|(id, owner, lender)| ObjectRefMsg { id, owner, lender })
}

fn object() -> impl Strategy<Value = Object> {
    (blob(), vec(any::<u8>(), 0..3), vec(object_ref(), 0..3)).prop_map(
        |(data, metadata, nested)| Object {
            data,
            metadata: Bytes::from(metadata),
            nested,
        },
    )
}

fn task_spec() -> impl Strategy<Value = TaskSpec> {
    (
        (
            id(16),
            any::<u32>(),
            id(20),
            text(),
            blob(),
            vec(object(), 0..3),
        ),
        (any::<u32>(), vec(any::<u32>(), 0..4), any::<u32>(), text()),
        (
            id(16),
            text(),
            any::<bool>(),
            any::<u32>(),
            vec(object_ref(), 0..3),
        ),
    )
        .prop_map(
            |(
                (task_id, job_id, function_id, function_name, args, resolved_args),
                (num_returns, gpu_ids, attempt, owner),
                (actor_id, method_name, actor_creation, max_concurrency, args_nested),
            )| TaskSpec {
                task_id,
                job_id,
                function_id,
                function_name,
                args,
                resolved_args,
                num_returns,
                gpu_ids,
                attempt,
                owner,
                actor_id,
                method_name,
                actor_creation,
                max_concurrency,
                args_nested,
                ..Default::default()
            },
        )
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        task_spec().prop_map(Body::PushTask),
        (id(16), vec(object(), 0..4), any::<bool>(), any::<bool>()).prop_map(
            |(task_id, returns, retryable, bounced)| Body::TaskReply(TaskReply {
                task_id,
                returns,
                retryable,
                bounced,
            })
        ),
        (text(), any::<u32>()).prop_map(|(token, version)| Body::Hello(Hello { token, version })),
        (
            id(16),
            any::<u64>(),
            resources(),
            resources(),
            vec((resources(), any::<u32>()), 0..3)
        )
            .prop_map(
                |(node_id, version, available, total, pending)| Body::ResourceReport(
                    ResourceReport {
                        node_id,
                        version,
                        available,
                        total,
                        pending: pending
                            .into_iter()
                            .map(|(resources, count)| Demand { resources, count })
                            .collect(),
                    }
                )
            ),
        (
            id(20),
            any::<u64>(),
            any::<u64>(),
            text(),
            any::<bool>(),
            any::<bool>()
        )
            .prop_map(|(id, offset, len, reader, raw, direct)| Body::ReadChunk(
                ReadChunk {
                    id,
                    offset,
                    len,
                    reader,
                    raw,
                    direct,
                }
            )),
        (any::<u64>(), blob(), text(), text()).prop_map(|(total, data, error, redirect)| {
            Body::Chunk(Chunk {
                total,
                data,
                error,
                redirect,
            })
        }),
        (proptest::option::of(object()), text())
            .prop_map(|(object, error)| Body::ObjectReply(ObjectReply { object, error })),
        (any::<u32>(), any::<bool>(), vec(text(), 0..4))
            .prop_map(|(pid, stderr, lines)| Body::LogLines(LogLines { pid, stderr, lines })),
        Just(Body::Ack(Ack {})),
    ]
}

fn envelope() -> impl Strategy<Value = Envelope> {
    (any::<u64>(), proptest::option::of(body())).prop_map(|(id, body)| Envelope { id, body })
}

/// A valid encoding with some bytes overwritten and the end cut off: input
/// that gets past the first tags, deeper into the decoder than noise does.
fn mangled() -> impl Strategy<Value = Vec<u8>> {
    (
        envelope(),
        vec((any::<usize>(), any::<u8>()), 0..8),
        any::<usize>(),
    )
        .prop_map(|(env, edits, cut)| {
            let mut bytes = env.encode_to_vec();
            if !bytes.is_empty() {
                for (at, b) in edits {
                    let n = bytes.len();
                    bytes[at % n] = b;
                }
                bytes.truncate(cut % (bytes.len() + 1));
            }
            bytes
        })
}

/// How the bytes arrive: piece sizes, and whether reads stall.
fn delivery() -> impl Strategy<Value = (Vec<usize>, bool)> {
    (vec(1usize..=4096, 1..6), any::<bool>())
}

/// The largest frames the readers are tried with: the hello's, and one
/// large enough to hold every generated envelope.
fn max_frame_under_test() -> impl Strategy<Value = usize> {
    prop_oneof![Just(MAX_HELLO_FRAME), Just(64 * 1024)]
}

fn header(len: usize) -> Vec<u8> {
    (len as u32).to_be_bytes().to_vec()
}

/// A stream that looks like frames to a reader refusing frames over `max`
/// bytes: lengths up to just past the limit followed by payloads that may
/// be short, long or noise, damaged encodings, and plain noise.
fn frame_like(max: usize) -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        (0..=max + 16, vec(any::<u8>(), 0..2048)).prop_map(|(len, payload)| {
            let mut out = header(len);
            out.extend(payload);
            out
        }),
        mangled().prop_map(|bytes| {
            let mut out = header(bytes.len());
            out.extend(bytes);
            out
        }),
        vec(any::<u8>(), 0..64),
    ];
    vec(piece, 0..8).prop_map(|pieces| pieces.concat())
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        // Shrinking a failure should not take long either.
        max_shrink_iters: 2048,
        ..ProptestConfig::default()
    }
}

// --- properties --------------------------------------------------------------
//
// Case counts keep the whole file to a few seconds in release mode; run
// the cargo-fuzz targets for longer searches.

proptest! {
    #![proptest_config(config(3000))]

    /// Noise up to 64 KiB: decoded or refused, with allocations bounded by
    /// the input's size.
    #[test]
    fn envelope_decode_survives_noise(bytes in vec(any::<u8>(), 0..64 * 1024)) {
        let (_, largest) = largest_allocation(|| Envelope::decode(bytes.as_slice()).is_ok());
        prop_assert!(
            largest <= decode_bound(bytes.len()),
            "{largest} bytes for {} of input", bytes.len()
        );
    }
}

proptest! {
    #![proptest_config(config(20_000))]

    /// Damaged encodings: decoded or refused, never a panic.
    #[test]
    fn envelope_decode_survives_damage(bytes in mangled()) {
        let input = Bytes::from(bytes.clone());
        let (_, largest) = largest_allocation(|| Envelope::decode(input).is_ok());
        prop_assert!(largest <= decode_bound(bytes.len()));
    }

    /// Frame-like bytes through the frame reader, arriving in pieces:
    /// frames, then the end or an error; no panic, no frame over the
    /// limit, and no buffer beyond about the limit.
    #[test]
    fn frame_reader_survives_noise(
        (max, bytes) in max_frame_under_test().prop_flat_map(|max| (Just(max), frame_like(max))),
        (chunks, stall) in delivery(),
    ) {
        let source = Trickle::new(bytes.clone(), chunks.clone(), stall);
        let ((frames, _), largest) = largest_allocation(|| raw_frames(source, max));
        prop_assert!(
            largest <= framing_bound(max),
            "{largest} bytes buffered under a {max}-byte limit"
        );
        let mut used = 0;
        for f in &frames {
            prop_assert!(f.len() <= max);
            used += 4 + f.len();
        }
        prop_assert!(used <= bytes.len());

        let source = Trickle::new(bytes, chunks, stall);
        let (envs, largest) = largest_allocation(|| read_all(source, max));
        prop_assert!(envs.len() <= frames.len());
        prop_assert!(largest <= framing_bound(max).max(decode_bound(max)));
    }
}

proptest! {
    #![proptest_config(config(5000))]

    /// A length over the limit is refused from the length alone, whatever
    /// follows, without reserving it.
    #[test]
    fn huge_lengths_are_refused_unread(
        excess in prop_oneof![1..=4096u64, any::<u32>().prop_map(u64::from)],
        tail in vec(any::<u8>(), 0..8192),
        max in prop_oneof![Just(MAX_HELLO_FRAME), Just(64 * 1024), Just(max_frame())],
        (chunks, stall) in delivery(),
    ) {
        let claim = (max as u64 + excess).min(u64::from(u32::MAX)) as usize;
        prop_assume!(claim > max);
        let mut bytes = header(claim);
        bytes.extend_from_slice(&tail);

        let source = Trickle::new(bytes.clone(), chunks.clone(), stall);
        let ((frames, errored), largest) = largest_allocation(|| raw_frames(source, max));
        prop_assert!(frames.is_empty() && errored);
        prop_assert!(largest <= 4 * READ_BUFFER, "{largest} bytes reserved for a refused frame");

        let source = Trickle::new(bytes.clone(), chunks, stall);
        let (envs, largest) = largest_allocation(|| read_all(source, max));
        prop_assert!(envs.is_empty());
        prop_assert!(largest <= 4 * READ_BUFFER);

        let mut source = bytes.as_slice();
        let (res, largest) = largest_allocation(|| block_on(read_frame_within(&mut source, max)));
        prop_assert!(res.is_err());
        prop_assert!(largest <= 4 * READ_BUFFER);
    }

    /// `read_frame` (handshakes, bulk connections) on a length it accepts
    /// followed by too few, too many or damaged bytes: an envelope or an
    /// error, with memory following the bytes that came, not the length
    /// claimed.
    #[test]
    fn read_frame_allocates_what_arrives(
        claim in prop_oneof![0..=8192usize, 0..=max_frame()],
        tail in prop_oneof![vec(any::<u8>(), 0..4096), mangled()],
        (chunks, stall) in delivery(),
    ) {
        let mut bytes = header(claim);
        bytes.extend_from_slice(&tail);
        let mut source = Trickle::new(bytes, chunks, stall);
        let (res, largest) = largest_allocation(|| block_on(read_frame(&mut source)));
        if claim > tail.len() {
            prop_assert!(res.is_err());
        }
        prop_assert!(
            largest <= (128 * 1024).max(decode_bound(tail.len())),
            "{largest} bytes for a claimed {claim} and {} sent", tail.len()
        );
    }

    /// Envelopes come back equal from their encoding, alone and in a
    /// stream of frames cut anywhere (followed by noise).
    #[test]
    fn envelopes_round_trip(
        envs in vec(envelope(), 1..6),
        noise in vec(any::<u8>(), 0..64),
        (chunks, stall) in delivery(),
    ) {
        for env in &envs {
            let back = Envelope::decode(env.encode_to_vec().as_slice());
            prop_assert_eq!(back.as_ref(), Ok(env));
        }
        let mut bytes = framed(&envs);
        bytes.extend_from_slice(&noise);
        let got = read_all(Trickle::new(bytes.clone(), chunks.clone(), stall), 64 * 1024);
        prop_assert!(got.len() >= envs.len());
        prop_assert_eq!(&got[..envs.len()], &envs[..]);
        let mut source = Trickle::new(bytes, chunks, stall);
        let first = block_on(read_frame(&mut source)).ok();
        prop_assert_eq!(first.as_ref(), Some(&envs[0]));
    }
}

#[test]
fn a_frame_at_the_limit_passes_and_one_over_it_does_not() {
    let env = |n: usize| Envelope {
        id: 1,
        body: Some(Body::Warning(Warning {
            text: "x".repeat(n),
        })),
    };
    let at = (0..MAX_HELLO_FRAME)
        .map(env)
        .find(|e| e.encoded_len() == MAX_HELLO_FRAME)
        .expect("some text length encodes to the limit");
    let over = env(MAX_HELLO_FRAME);
    assert!(over.encoded_len() > MAX_HELLO_FRAME);
    let got = read_all(
        framed(std::slice::from_ref(&at)).as_slice(),
        MAX_HELLO_FRAME,
    );
    assert_eq!(got, vec![at.clone()]);
    let got = read_all(framed(&[over.clone(), at]).as_slice(), MAX_HELLO_FRAME);
    assert!(got.is_empty());
    let refused = block_on(read_frame_within(
        &mut framed(&[over]).as_slice(),
        MAX_HELLO_FRAME,
    ));
    assert!(refused.is_err());
}
