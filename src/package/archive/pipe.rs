//! A `Write` that hands blocks to a second thread, so packing (tar + zstd, on the
//! caller's thread) and whatever consumes the archive (hashing and writing to disk in
//! publish) run on two cores at once. Bytes arrive in order and unchanged; memory is
//! bounded by the block size times the channel depth.

use std::io::{self, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError};

/// Bytes per block handed over.
const BLOCK: usize = 1 << 20;
/// Blocks in flight between the two threads.
const DEPTH: usize = 4;

/// The producer half: buffers writes into blocks and sends full blocks.
pub(super) struct PipeWriter {
    block: Vec<u8>,
    full: Option<SyncSender<Vec<u8>>>,
    /// Emptied blocks coming back, so steady state allocates nothing.
    empty: Receiver<Vec<u8>>,
}

impl PipeWriter {
    fn send_block(&mut self) -> io::Result<()> {
        if self.block.is_empty() {
            return Ok(());
        }
        let next = match self.empty.try_recv() {
            Ok(block) => block,
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => Vec::with_capacity(BLOCK),
        };
        let block = std::mem::replace(&mut self.block, next);
        let stopped = || io::Error::new(io::ErrorKind::BrokenPipe, "archive writer stopped");
        self.full
            .as_ref()
            .ok_or_else(stopped)?
            .send(block)
            .map_err(|_| stopped())
    }

    /// Sends what is buffered and signals the end of the stream.
    pub(super) fn close(mut self) -> io::Result<()> {
        self.send_block()?;
        self.full = None;
        Ok(())
    }
}

impl Write for PipeWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let room = BLOCK - self.block.len();
        let take = room.min(bytes.len());
        self.block.extend_from_slice(&bytes[..take]);
        if self.block.len() == BLOCK {
            self.send_block()?;
        }
        Ok(take)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Runs `produce` with a [`PipeWriter`] on this thread while another thread writes
/// every block to `out`; returns `out` (flushed) or the first error, preferring the
/// consumer's (e.g. disk full), which is the cause when both fail.
pub(super) fn piped<W, E>(
    out: W,
    produce: impl FnOnce(PipeWriter) -> Result<(), E>,
    write_error: impl Fn(io::Error) -> E,
) -> Result<W, E>
where
    W: Write + Send,
{
    let (full_tx, full_rx) = sync_channel::<Vec<u8>>(DEPTH);
    let (empty_tx, empty_rx) = sync_channel::<Vec<u8>>(DEPTH);
    std::thread::scope(|scope| {
        let consumer = scope.spawn(move || -> io::Result<W> {
            let mut out = out;
            for mut block in full_rx {
                out.write_all(&block)?;
                block.clear();
                let _ = empty_tx.try_send(block);
            }
            out.flush()?;
            Ok(out)
        });
        let pipe = PipeWriter {
            block: Vec::with_capacity(BLOCK),
            full: Some(full_tx),
            empty: empty_rx,
        };
        // Dropping the pipe (on success or error) ends the consumer's loop.
        let produced = produce(pipe);
        let consumed = consumer
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("archive writer thread panicked")));
        match (produced, consumed) {
            (_, Err(e)) => Err(write_error(e)),
            (Err(e), Ok(_)) => Err(e),
            (Ok(()), Ok(out)) => Ok(out),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_arrive_in_order_and_whole() {
        let data: Vec<u8> = (0..(3 * BLOCK + 12345)).map(|i| (i % 253) as u8).collect();
        let out = piped(
            Vec::new(),
            |mut pipe| {
                for piece in data.chunks(7777) {
                    pipe.write_all(piece)?;
                }
                pipe.close()
            },
            |e| e,
        )
        .unwrap();
        assert_eq!(out, data);
    }

    #[test]
    fn consumer_failure_stops_the_producer_and_is_reported() {
        struct Failing;
        impl Write for Failing {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::other("disk full"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let result = piped(
            Failing,
            |mut pipe| {
                for _ in 0..100 {
                    pipe.write_all(&[0u8; BLOCK])?;
                }
                pipe.close()
            },
            |e| e,
        );
        assert_eq!(result.err().unwrap().to_string(), "disk full");
    }
}
