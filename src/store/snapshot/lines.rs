//! A stream of upload chunks as lines, one line held at a time, so a
//! snapshot is never held whole in memory.

use super::MAX_LINE_BYTES;

/// Splits a stream of chunks into lines of at most [`MAX_LINE_BYTES`],
/// holding no more than one line at a time. A chunk error (the upload broke
/// off) ends the stream with that error.
pub struct Lines<I> {
    chunks: I,
    buf: Vec<u8>,
    start: usize,
    done: bool,
}

impl<I> Lines<I> {
    /// Lines of `chunks`.
    pub fn new(chunks: I) -> Self {
        Self {
            chunks,
            buf: Vec::new(),
            start: 0,
            done: false,
        }
    }
}

impl<I, B> Iterator for Lines<I>
where
    I: Iterator<Item = Result<B, String>>,
    B: AsRef<[u8]>,
{
    type Item = Result<Vec<u8>, String>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(at) = self.buf[self.start..].iter().position(|&b| b == b'\n') {
                let line = self.buf[self.start..self.start + at].to_vec();
                self.start += at + 1;
                return Some(Ok(line));
            }
            if self.buf.len() - self.start > MAX_LINE_BYTES {
                self.done = true;
                self.buf.clear();
                self.start = 0;
                return Some(Err(format!("a line is longer than {MAX_LINE_BYTES} bytes")));
            }
            if self.done {
                if self.start < self.buf.len() {
                    let line = self.buf[self.start..].to_vec();
                    self.buf.clear();
                    self.start = 0;
                    return Some(Ok(line));
                }
                return None;
            }
            self.buf.drain(..self.start);
            self.start = 0;
            match self.chunks.next() {
                Some(Ok(chunk)) => self.buf.extend_from_slice(chunk.as_ref()),
                Some(Err(e)) => {
                    self.done = true;
                    self.buf.clear();
                    return Some(Err(e));
                }
                None => self.done = true,
            }
        }
    }
}
