//! A capped newline reader for child pipes.
//!
//! Lines longer than `max` are dropped whole: the reader resyncs at the next newline and
//! never parses the tail of an over-cap line as a new frame (SECURITY.md E4). A line still
//! running past `drain_max` is an error, and the caller kills the child.

use std::io;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

/// One line from the pipe.
#[derive(Debug)]
pub(crate) enum Line {
    /// A complete line without its `\n` (and without a trailing `\r`).
    Text(Bytes),
    /// A line over the cap was dropped; its length in bytes.
    TooLong(u64),
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("pipe read failed")]
    Io(#[from] io::Error),
    #[error("line exceeded the drain limit")]
    DrainLimit,
}

#[derive(Debug)]
pub(crate) struct LineReader<R> {
    inner: BufReader<R>,
    max: usize,
    drain_max: u64,
    acc: BytesMut,
    /// Bytes of the over-cap line being discarded, if any.
    discarding: Option<u64>,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    /// `buf` is the read buffer size; lines longer than it are assembled across reads.
    pub(crate) fn new(inner: R, buf: usize, max: usize, drain_max: u64) -> Self {
        LineReader {
            inner: BufReader::with_capacity(buf, inner),
            max,
            drain_max,
            acc: BytesMut::new(),
            discarding: None,
        }
    }

    /// The next line, or `None` at end of stream.
    pub(crate) async fn next(&mut self) -> Result<Option<Line>, Error> {
        loop {
            let buf = self.inner.fill_buf().await?;
            if buf.is_empty() {
                return Ok(self.finish());
            }
            let (chunk, found) = match memchr::memchr(b'\n', buf) {
                Some(i) => (&buf[..i], true),
                None => (buf, false),
            };
            let used = chunk.len() + usize::from(found);
            match self.discarding.as_mut() {
                Some(n) => {
                    *n += chunk.len() as u64;
                    if *n > self.drain_max {
                        return Err(Error::DrainLimit);
                    }
                }
                None if self.acc.len() + chunk.len() > self.max => {
                    let n = (self.acc.len() + chunk.len()) as u64;
                    if n > self.drain_max {
                        return Err(Error::DrainLimit);
                    }
                    self.discarding = Some(n);
                    self.acc = BytesMut::new();
                }
                None => self.acc.extend_from_slice(chunk),
            }
            self.inner.consume(used);
            if found {
                return Ok(Some(self.take()));
            }
        }
    }

    fn take(&mut self) -> Line {
        if let Some(n) = self.discarding.take() {
            return Line::TooLong(n);
        }
        let mut line = self.acc.split().freeze();
        if line.last() == Some(&b'\r') {
            line.truncate(line.len() - 1);
        }
        Line::Text(line)
    }

    fn finish(&mut self) -> Option<Line> {
        if self.discarding.is_none() && self.acc.is_empty() {
            return None;
        }
        Some(self.take())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines(input: &[u8], max: usize, drain: u64) -> Vec<String> {
        let mut r = LineReader::new(input, 16, max, drain);
        let mut out = Vec::new();
        loop {
            match r.next().await {
                Ok(Some(Line::Text(b))) => out.push(String::from_utf8_lossy(&b).into_owned()),
                Ok(Some(Line::TooLong(n))) => out.push(format!("<too long {n}>")),
                Ok(None) => return out,
                Err(e) => {
                    out.push(format!("<{e}>"));
                    return out;
                }
            }
        }
    }

    #[tokio::test]
    async fn over_cap_line_is_dropped_and_its_tail_never_parsed() {
        let mut input = vec![b'x'; 100];
        input.extend_from_slice(b"{\"id\":7}\nok\r\nlast");
        assert_eq!(
            lines(&input, 50, 1000).await,
            vec!["<too long 108>", "ok", "last"]
        );
    }

    #[tokio::test]
    async fn drain_limit_is_an_error() {
        let input = vec![b'x'; 5000];
        assert_eq!(
            lines(&input, 10, 1000).await,
            vec!["<line exceeded the drain limit>"]
        );
    }
}
