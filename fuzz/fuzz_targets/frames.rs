//! The frame readers on arbitrary bytes: the raw frames every connection
//! is cut into, the envelopes a `FrameReader` yields, and `read_frame_within`
//! (handshakes, bulk connections). Frames or an error, never a panic, never
//! a frame over the limit; run with `-malloc_limit_mb` to catch a reader
//! reserving what a length claims.

#![no_main]

use futures::executor::block_on;
use futures::StreamExt;
use libfuzzer_sys::fuzz_target;
use oxray_proto::frame::{framed_read, FrameReader, MAX_HELLO_FRAME};
use oxray_proto::transport::read_frame_within;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the limit: a hello's, or a larger one.
    let Some((&pick, stream)) = data.split_first() else {
        return;
    };
    let max = if pick & 1 == 0 {
        MAX_HELLO_FRAME
    } else {
        64 * 1024
    };
    block_on(async {
        let mut frames = framed_read(stream, max);
        while let Some(frame) = frames.next().await {
            match frame {
                Ok(frame) => assert!(frame.len() <= max, "a frame over the limit"),
                Err(_) => break,
            }
        }
        let mut reader = FrameReader::with_max_frame(stream, max);
        while reader.next().await.is_some() {}
        let mut rest = stream;
        while read_frame_within(&mut rest, max).await.is_ok() {}
    });
});
