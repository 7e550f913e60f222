//! Export and import: the whole state as a JSON Lines snapshot, streamed
//! out of one read transaction and streamed into one write transaction, so
//! memory stays flat however many users there are.

use bytes::Bytes;
use tokio::sync::mpsc;

use super::{AdminError, InternalError, Service};
use crate::domain::keys::Keyring;
use crate::store::snapshot::{self, ImportCounts};
use crate::store::{Action, Audit};

/// Size of the chunks an export is streamed in.
const EXPORT_CHUNK: usize = 64 * 1024;

/// Buffers export output and hands it over in chunks; stops the export
/// (BrokenPipe) when the receiver has gone away.
struct ChunkWriter {
    tx: mpsc::Sender<std::io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl ChunkWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(EXPORT_CHUNK),
        ));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    }
}

impl std::io::Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= EXPORT_CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

impl Service {
    /// Starts a JSON Lines snapshot of users, keys and revocations, taken in
    /// one read transaction; 64 KiB chunks arrive on the returned channel as
    /// they are written. A failure midway ends the stream with an error (the
    /// snapshot then lacks its end line, which an import refuses).
    pub fn export(&self) -> mpsc::Receiver<std::io::Result<Bytes>> {
        let (tx, rx) = mpsc::channel(4);
        let store = self.store.clone();
        let now = self.clock.now();
        tokio::task::spawn_blocking(move || {
            let mut out = ChunkWriter {
                tx: tx.clone(),
                buf: Vec::with_capacity(EXPORT_CHUNK),
            };
            if let Err(e) = store.export(&mut out, now) {
                tracing::error!(error = %e, "export failed");
                let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
            }
        });
        rx
    }

    /// Replaces users, keys and revocations with a snapshot, atomically.
    /// The snapshot arrives as chunks (an `Err` chunk: the upload broke off,
    /// and nothing changes) and is read one line at a time on the blocking
    /// pool, so it is never held whole in memory. The new keyring is
    /// published before this returns.
    pub async fn import(
        &self,
        mut chunks: mpsc::Receiver<Result<Bytes, String>>,
    ) -> Result<ImportCounts, AdminError> {
        let _guard = self.key_changes.lock().await;
        let at = self.clock.now();
        // The audit event is made on the blocking thread: note it here.
        crate::runtime::change_log::note(Action::StoreImport.as_str(), "-");
        let counts = self
            .blocking(move |s| {
                let mut lines = snapshot::Lines::new(std::iter::from_fn(|| chunks.blocking_recv()));
                s.import(&mut lines, &|c| Audit {
                    at,
                    action: Action::StoreImport,
                    target: "-".into(),
                    detail: format!(
                        "{} users, {} keys, {} revocations",
                        c.users, c.keys, c.revocations
                    ),
                })
            })
            .await?;
        let records = self.blocking(|s| s.keys()).await?;
        self.set_keyring(Keyring::load(&records).map_err(InternalError::from)?);
        Ok(counts)
    }
}
