//! The two primitives every layer shares: a cursor that reads fixed-size fields off the front of a
//! received buffer, and a function that lays fixed-size fields out into an outgoing one.
//!
//! Both are built on checked slice operations only (`split_first_chunk`, `zip`), so no layer above
//! needs an index expression that could panic on a short or hostile frame.

use super::PacketError;

/// Reads big-endian (network order) fields from the front of a buffer, one after another.
///
/// Running out of bytes is [`PacketError::Truncated`]: every caller reads a header whose size the
/// protocol fixes, so a short read always means the frame ended early.
#[derive(Debug)]
pub(super) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    /// The next `N` bytes, as an array reference the caller can destructure without indexing.
    pub(super) fn array<const N: usize>(&mut self) -> Result<&'a [u8; N], PacketError> {
        let (head, rest) = self.rest.split_first_chunk::<N>().ok_or(PacketError::Truncated)?;
        self.rest = rest;
        Ok(head)
    }

    pub(super) fn u8(&mut self) -> Result<u8, PacketError> {
        let [byte] = *self.array::<1>()?;
        Ok(byte)
    }

    pub(super) fn u16(&mut self) -> Result<u16, PacketError> {
        Ok(u16::from_be_bytes(*self.array::<2>()?))
    }

    /// Whatever follows the fields read so far (a payload, or a list of options).
    pub(super) fn rest(&self) -> &'a [u8] {
        self.rest
    }
}

/// Concatenates `parts` into an `N`-byte array.
///
/// Callers pass fields whose sizes the protocol fixes and which add up to `N` (each builder's
/// exact bytes are pinned by a test). Should they ever not, the result is a short or zero-filled
/// frame, never a panic: a wrong frame is caught by those tests, a panic would take the speaker down.
pub(super) fn assemble<const N: usize>(parts: &[&[u8]]) -> [u8; N] {
    debug_assert_eq!(parts.iter().map(|part| part.len()).sum::<usize>(), N, "fields must fill the frame exactly");
    let mut out = [0u8; N];
    for (slot, byte) in out.iter_mut().zip(parts.iter().flat_map(|part| part.iter())) {
        *slot = *byte;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_reads_fields_in_network_order_and_keeps_the_rest() {
        let mut reader = Reader::new(&[0x08, 0x06, 0x2a, 1, 2, 3]);
        assert_eq!(reader.u16(), Ok(0x0806));
        assert_eq!(reader.u8(), Ok(0x2a));
        assert_eq!(reader.rest(), &[1, 2, 3]);
    }

    #[test]
    fn reader_reports_truncation_and_does_not_advance() {
        let mut reader = Reader::new(&[1, 2, 3]);
        assert_eq!(reader.array::<4>(), Err(PacketError::Truncated));
        assert_eq!(reader.rest(), &[1, 2, 3]);
    }

    #[test]
    fn assemble_concatenates_parts() {
        assert_eq!(assemble::<5>(&[&[1, 2], &[], &[3, 4, 5]]), [1, 2, 3, 4, 5]);
    }
}
