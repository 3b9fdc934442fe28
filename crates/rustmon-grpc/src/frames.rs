//! Counting gRPC messages in a body as it streams, without copying: each message is a 5-byte
//! prefix (compression flag, big-endian length) and its payload.

/// A length-prefixed message parser that only counts.
#[derive(Debug, Default)]
pub(crate) struct MessageCounter {
    header: u8,
    len: u32,
    skip: u64,
    pub(crate) messages: u64,
}

impl MessageCounter {
    /// Feeds the next bytes of the stream.
    #[inline]
    pub(crate) fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.skip > 0 {
                let n = (self.skip.min(data.len() as u64)) as usize;
                self.skip -= n as u64;
                data = &data[n..];
                continue;
            }
            let b = data[0];
            data = &data[1..];
            if self.header > 0 {
                self.len = (self.len << 8) | u32::from(b);
            }
            self.header += 1;
            if self.header == 5 {
                self.messages += 1;
                self.skip = u64::from(self.len);
                self.header = 0;
                self.len = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0];
        f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn counts_across_any_split() {
        let mut stream = Vec::new();
        for p in [&b"hello"[..], b"", &[7u8; 300][..], b"x"] {
            stream.extend(frame(p));
        }
        for split in 1..stream.len() {
            let mut c = MessageCounter::default();
            for chunk in stream.chunks(split) {
                c.feed(chunk);
            }
            assert_eq!(c.messages, 4, "split {split}");
        }
    }
}
