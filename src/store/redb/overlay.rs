//! A copy-on-write view of a database file for the engine, so a file can
//! be checked without a byte of it changing (SPEC §10: a damaged file is
//! never changed). The engine's integrity check and its recovery write
//! (a header flag, a rebuilt allocator state); here those writes land in
//! memory, over the file opened read-only. Only the pages written are
//! held, so checking a large file costs little memory and no disk.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use parking_lot::Mutex;
use redb::StorageBackend;

/// The granularity of the in-memory copy.
const CHUNK: u64 = 4096;

/// A file seen through an in-memory layer of the writes made to it.
#[derive(Debug)]
pub struct ReadOnlyOverlay {
    file: File,
    state: Mutex<Layer>,
}

#[derive(Debug)]
struct Layer {
    /// The length as the engine last set it.
    len: u64,
    /// Bytes of the file at or past this offset read as zero (the engine
    /// shrank the file there at some point, then may have grown it).
    file_valid: u64,
    /// Written chunks by index, each `CHUNK` bytes.
    chunks: BTreeMap<u64, Box<[u8]>>,
}

impl ReadOnlyOverlay {
    /// Opens `path` for reading only.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        Ok(Self {
            file,
            state: Mutex::new(Layer {
                len,
                file_valid: len,
                chunks: BTreeMap::new(),
            }),
        })
    }

    /// Bytes of the file itself at `offset` (zeros past what is valid).
    fn read_file(&self, layer: &Layer, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        out.fill(0);
        let end = (offset + out.len() as u64).min(layer.file_valid);
        if end > offset {
            self.file
                .read_exact_at(&mut out[..(end - offset) as usize], offset)?;
        }
        Ok(())
    }
}

impl StorageBackend for ReadOnlyOverlay {
    fn len(&self) -> Result<u64, std::io::Error> {
        Ok(self.state.lock().len)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), std::io::Error> {
        let layer = self.state.lock();
        if offset + out.len() as u64 > layer.len {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "read past the end of the file",
            ));
        }
        let mut done = 0usize;
        while done < out.len() {
            let at = offset + done as u64;
            let (index, within) = (at / CHUNK, (at % CHUNK) as usize);
            let take = (CHUNK as usize - within).min(out.len() - done);
            let dest = &mut out[done..done + take];
            match layer.chunks.get(&index) {
                Some(chunk) => dest.copy_from_slice(&chunk[within..within + take]),
                None => self.read_file(&layer, at, dest)?,
            }
            done += take;
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
        let mut layer = self.state.lock();
        if len < layer.len {
            layer.file_valid = layer.file_valid.min(len);
            let first_gone = len.div_ceil(CHUNK);
            layer.chunks.retain(|&i, _| i < first_gone);
            if !len.is_multiple_of(CHUNK)
                && let Some(last) = layer.chunks.get_mut(&(len / CHUNK))
            {
                last[(len % CHUNK) as usize..].fill(0);
            }
        }
        layer.len = len;
        Ok(())
    }

    fn sync_data(&self) -> Result<(), std::io::Error> {
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
        let mut layer = self.state.lock();
        let mut done = 0usize;
        while done < data.len() {
            let at = offset + done as u64;
            let (index, within) = (at / CHUNK, (at % CHUNK) as usize);
            let take = (CHUNK as usize - within).min(data.len() - done);
            if !layer.chunks.contains_key(&index) {
                let mut chunk = vec![0u8; CHUNK as usize].into_boxed_slice();
                self.read_file(&layer, index * CHUNK, &mut chunk)?;
                layer.chunks.insert(index, chunk);
            }
            let chunk = layer.chunks.get_mut(&index).expect("inserted above");
            chunk[within..within + take].copy_from_slice(&data[done..done + take]);
            done += take;
        }
        layer.len = layer.len.max(offset + data.len() as u64);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overlay(bytes: &[u8]) -> (tempfile::NamedTempFile, ReadOnlyOverlay) {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), bytes).unwrap();
        let o = ReadOnlyOverlay::open(file.path()).unwrap();
        (file, o)
    }

    fn read(o: &ReadOnlyOverlay, offset: u64, len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        o.read(offset, &mut out).unwrap();
        out
    }

    #[test]
    fn writes_stay_in_memory_and_read_back() {
        let original: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let (file, o) = overlay(&original);
        assert_eq!(o.len().unwrap(), 10_000);
        assert_eq!(read(&o, 4000, 200), original[4000..4200]);
        o.write(4090, &[0xAA; 20]).unwrap();
        let mut want = original.clone();
        want[4090..4110].fill(0xAA);
        assert_eq!(read(&o, 4000, 200), want[4000..4200], "across a chunk edge");
        assert_eq!(read(&o, 0, 10_000), want);
        o.write(10_000, &[1, 2, 3]).unwrap();
        assert_eq!(o.len().unwrap(), 10_003, "a write past the end grows it");
        assert_eq!(read(&o, 9_999, 4), [original[9_999], 1, 2, 3]);
        o.sync_data().unwrap();
        assert_eq!(
            std::fs::read(file.path()).unwrap(),
            original,
            "the file is untouched"
        );
    }

    #[test]
    fn shrinking_then_growing_reads_zeros() {
        let (file, o) = overlay(&[7u8; 9000]);
        o.write(8000, &[9; 10]).unwrap();
        o.set_len(5000).unwrap();
        assert!(o.read(4999, &mut [0u8; 2]).is_err(), "past the end");
        o.set_len(9000).unwrap();
        assert_eq!(
            read(&o, 4998, 4),
            [7, 7, 0, 0],
            "what was cut reads as zero"
        );
        assert_eq!(read(&o, 8000, 10), [0; 10], "chunks past the cut are gone");
        o.set_len(12_000).unwrap();
        assert_eq!(o.len().unwrap(), 12_000);
        assert_eq!(read(&o, 11_000, 3), [0, 0, 0]);
        assert_eq!(std::fs::read(file.path()).unwrap(), [7u8; 9000]);
    }
}
