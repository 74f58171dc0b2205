//! The byte layout of a value serialized with out-of-band buffers (pickle
//! protocol 5): a header, the pickle stream, then each buffer at a 64-byte
//! aligned offset, so that arrays read straight from shared memory are
//! aligned. Python reads it in `oxray._private.serialization`.
//!
//! ```text
//! u32 magic "OXR1" | u32 buffer count n | u64 pickle length
//! n × (u64 offset, u64 length)          | pickle bytes | buffers...
//! ```

/// First four bytes of every layout.
pub const MAGIC: u32 = u32::from_le_bytes(*b"OXR1");
const BUFFER_ALIGN: usize = 64;

fn align(n: usize) -> usize {
    n.div_ceil(BUFFER_ALIGN) * BUFFER_ALIGN
}

/// Where each part of a layout goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Offset of the pickle stream.
    pub main_offset: usize,
    /// Offset of each buffer.
    pub buffer_offsets: Vec<usize>,
    /// Total size.
    pub size: usize,
}

/// Plans a layout for a pickle stream of `main_len` bytes and buffers of
/// `buffer_lens` bytes.
pub fn plan(main_len: usize, buffer_lens: &[usize]) -> Plan {
    let main_offset = 16 + 16 * buffer_lens.len();
    let mut end = main_offset + main_len;
    let mut buffer_offsets = Vec::with_capacity(buffer_lens.len());
    for len in buffer_lens {
        let at = align(end);
        buffer_offsets.push(at);
        end = at + len;
    }
    Plan {
        main_offset,
        buffer_offsets,
        size: end,
    }
}

/// Writes the header and the pickle stream into `out` (of `plan.size`
/// bytes); the caller copies the buffers to `plan.buffer_offsets`.
pub fn write_head(plan: &Plan, main: &[u8], buffer_lens: &[usize], out: &mut [u8]) {
    out[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    out[4..8].copy_from_slice(&(buffer_lens.len() as u32).to_le_bytes());
    out[8..16].copy_from_slice(&(main.len() as u64).to_le_bytes());
    for (i, (off, len)) in plan.buffer_offsets.iter().zip(buffer_lens).enumerate() {
        let at = 16 + 16 * i;
        out[at..at + 8].copy_from_slice(&(*off as u64).to_le_bytes());
        out[at + 8..at + 16].copy_from_slice(&(*len as u64).to_le_bytes());
    }
    out[plan.main_offset..plan.main_offset + main.len()].copy_from_slice(main);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_aligned_and_after_main() {
        let p = plan(10, &[100, 3]);
        assert_eq!(p.main_offset, 48);
        assert_eq!(p.buffer_offsets, vec![64, 192]);
        assert_eq!(p.size, 195);
        let mut out = vec![0u8; p.size];
        write_head(&p, b"0123456789", &[100, 3], &mut out);
        assert_eq!(&out[0..4], b"OXR1");
        assert_eq!(u32::from_le_bytes(out[4..8].try_into().unwrap()), 2);
        assert_eq!(&out[48..58], b"0123456789");
        assert_eq!(u64::from_le_bytes(out[32..40].try_into().unwrap()), 192);
    }

    #[test]
    fn no_buffers() {
        let p = plan(5, &[]);
        assert_eq!((p.main_offset, p.size), (16, 21));
    }
}
