//! The object store of a local lake: the local file system, except that byte
//! ranges of the files vitals' writer made are slices of a read-only memory
//! map rather than `read`s into fresh zeroed buffers. Only those files are
//! mapped: vitals never changes a file after writing it, while another tool
//! may rewrite or truncate its own in place, and touching a mapped page past
//! a truncated end kills the process (SIGBUS) where a read returns an error.

use std::fmt;
use std::fs::File;
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use super::log::is_owned_name;
use object_store::{
    Attributes, CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

/// The local file system with ranged reads of vitals' own files served from memory maps.
///
/// Read through `LocalFileSystem`, each column chunk the Parquet reader asks for
/// costs a hop to the blocking pool, a buffer zeroed (so faulted in page by
/// page) and a copy out of the page cache; a mapped range is the page cache
/// itself, read by the thread that decodes it. Writes, listing and deletes go
/// to the inner store; the writer commits a file by renaming it into place, so
/// a mapped file is never changed, and stays readable after a delete.
#[derive(Debug)]
pub struct MappedStore {
    inner: LocalFileSystem,
}

impl MappedStore {
    pub fn new() -> Self {
        MappedStore { inner: LocalFileSystem::new() }
    }

    fn file_path(&self, location: &Path) -> object_store::Result<PathBuf> {
        self.inner.path_to_filesystem(location)
    }
}

impl Default for MappedStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for MappedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MappedStore({})", self.inner)
    }
}

/// A whole file mapped read-only; unmapped when the last slice is dropped.
struct Mapping {
    ptr: *mut libc::c_void,
    len: usize,
}

// SAFETY: the mapping is read-only and private; its pages are never written
// through this pointer, so sharing it between threads is sound.
unsafe impl Send for Mapping {}
unsafe impl Sync for Mapping {}

impl AsRef<[u8]> for Mapping {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: ptr..ptr+len is a live PROT_READ mapping owned by self.
        unsafe { std::slice::from_raw_parts(self.ptr as *const u8, self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: ptr and len are exactly what mmap returned; nothing else unmaps it.
        unsafe {
            libc::munmap(self.ptr, self.len);
        }
    }
}

/// Opens and maps one file; returns its bytes (empty for an empty file) and metadata.
fn map_file(path: &std::path::Path) -> std::io::Result<(Bytes, std::fs::Metadata)> {
    let file = File::open(path)?;
    let meta = file.metadata()?;
    let len = meta.len() as usize;
    if len == 0 {
        return Ok((Bytes::new(), meta));
    }
    // SAFETY: a fresh read-only private mapping of a file we hold open; the
    // kernel keeps the pages valid after the descriptor is closed.
    let ptr = unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_PRIVATE, file.as_raw_fd(), 0) };
    if ptr == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    Ok((Bytes::from_owner(Mapping { ptr, len }), meta))
}

fn not_found_or_generic(e: std::io::Error, path: &std::path::Path) -> object_store::Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        object_store::Error::NotFound { path: path.display().to_string(), source: Box::new(e) }
    } else {
        object_store::Error::Generic { store: "MappedStore", source: format!("{}: {e}", path.display()).into() }
    }
}

fn out_of_range(path: &std::path::Path, range: &Range<u64>, size: u64) -> object_store::Error {
    object_store::Error::Generic {
        store: "MappedStore",
        source: format!("{}: range {}..{} is outside the file's {size} bytes", path.display(), range.start, range.end).into(),
    }
}

/// The object metadata LocalFileSystem would report for the same file.
fn object_meta(location: &Path, meta: &std::fs::Metadata) -> ObjectMeta {
    let mtime = meta.modified().ok().and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok()).unwrap_or_default();
    ObjectMeta {
        location: location.clone(),
        last_modified: DateTime::<Utc>::from(SystemTime::UNIX_EPOCH + mtime),
        size: meta.len(),
        e_tag: Some(format!("{:x}-{:x}-{:x}", meta.ino(), mtime.as_micros(), meta.len())),
        version: None,
    }
}

/// Whether a file may be mapped: one vitals wrote, which nothing rewrites.
fn mappable(location: &Path) -> bool {
    location.filename().is_some_and(is_owned_name)
}

/// Whether a get asks only for bytes: no conditions, no version, not a HEAD.
fn plain_ranged(options: &GetOptions) -> bool {
    options.range.is_some()
        && !options.head
        && options.if_match.is_none()
        && options.if_none_match.is_none()
        && options.if_modified_since.is_none()
        && options.if_unmodified_since.is_none()
        && options.version.is_none()
}

#[async_trait]
impl ObjectStore for MappedStore {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> object_store::Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
        if !plain_ranged(&options) || !mappable(location) {
            return self.inner.get_opts(location, options).await;
        }
        let path = self.file_path(location)?;
        let (bytes, meta) = map_file(&path).map_err(|e| not_found_or_generic(e, &path))?;
        let size = meta.len();
        let range = match options.range.as_ref() {
            Some(r) => r.as_range(size).map_err(|e| object_store::Error::Generic {
                store: "MappedStore",
                source: format!("{}: {e}", path.display()).into(),
            })?,
            None => 0..size,
        };
        let slice = bytes.slice(range.start as usize..range.end as usize);
        Ok(GetResult {
            payload: GetResultPayload::Stream(futures::stream::once(async move { Ok(slice) }).boxed()),
            meta: object_meta(location, &meta),
            range,
            attributes: Attributes::default(),
        })
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> object_store::Result<Vec<Bytes>> {
        if !mappable(location) {
            return self.inner.get_ranges(location, ranges).await;
        }
        let path = self.file_path(location)?;
        let (bytes, meta) = map_file(&path).map_err(|e| not_found_or_generic(e, &path))?;
        let size = meta.len();
        ranges
            .iter()
            .map(|r| {
                if r.start > r.end || r.end > size {
                    return Err(out_of_range(&path, r, size));
                }
                Ok(bytes.slice(r.start as usize..r.end as usize))
            })
            .collect()
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(&self, prefix: Option<&Path>, offset: &Path) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: object_store::RenameOptions) -> object_store::Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::{GetRange, ObjectStoreExt};

    fn data() -> Vec<u8> {
        (0..100_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect()
    }

    /// Whether the process maps `file` now.
    fn mapped_now(file: &std::path::Path) -> bool {
        std::fs::read_to_string("/proc/self/maps").unwrap().contains(file.to_str().unwrap())
    }

    #[tokio::test]
    async fn ranges_equal_the_file_system_and_bad_ranges_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let data = data();
        let name = crate::lake::log::data_file_name(&crate::lake::log::new_txn(), 1);
        let file = dir.path().join(&name);
        std::fs::write(&file, &data).unwrap();
        let path = Path::from_absolute_path(&file).unwrap();
        let store = MappedStore::new();
        let local = LocalFileSystem::new();
        let ranges = vec![0..10, 4096..70_000, 99_990..100_000, 5..5];
        let mapped = store.get_ranges(&path, &ranges).await.unwrap();
        assert!(mapped_now(&file), "a file vitals wrote is read through a map");
        let read = local.get_ranges(&path, &ranges).await.unwrap();
        assert_eq!(mapped, read);
        for (r, b) in ranges.iter().zip(&mapped) {
            assert_eq!(b.as_ref(), &data[r.start as usize..r.end as usize]);
        }
        // get_range goes through get_opts; a suffix range too.
        assert_eq!(store.get_range(&path, 123..4567).await.unwrap().as_ref(), &data[123..4567]);
        let suffix = store.get_opts(&path, GetOptions::new().with_range(Some(GetRange::Suffix(8)))).await.unwrap();
        assert_eq!(suffix.range, 99_992..100_000);
        assert_eq!(suffix.meta, local.head(&path).await.unwrap());
        assert_eq!(suffix.bytes().await.unwrap().as_ref(), &data[99_992..]);
        // Past the end, or a missing file: an error naming the file, no panic.
        let err = store.get_ranges(&path, &[99_000..100_001]).await.unwrap_err().to_string();
        assert!(err.contains(&name) && err.contains("outside"), "{err}");
        let missing = Path::from_absolute_path(dir.path().join(crate::lake::log::data_file_name(&crate::lake::log::new_txn(), 2))).unwrap();
        assert!(matches!(store.get_ranges(&missing, &[0..1]).await, Err(object_store::Error::NotFound { .. })));
        // A slice outlives the file's deletion.
        drop(mapped);
        let kept = store.get_range(&path, 0..100).await.unwrap();
        std::fs::remove_file(&file).unwrap();
        assert_eq!(kept.as_ref(), &data[..100]);
    }

    #[tokio::test]
    async fn another_tools_file_is_read_not_mapped_so_truncating_it_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let data = data();
        let file = dir.path().join("part-00000-c000.snappy.parquet");
        std::fs::write(&file, &data).unwrap();
        let path = Path::from_absolute_path(&file).unwrap();
        let store = MappedStore::new();
        let before = store.get_ranges(&path, &[0..50_000]).await.unwrap();
        assert!(!mapped_now(&file), "another tool's file is not mapped");
        // Cut short by its writer while the bytes read are still held: they
        // stay valid (a mapped page here would be SIGBUS), and reading past
        // the new end is an error.
        std::fs::OpenOptions::new().write(true).open(&file).unwrap().set_len(10).unwrap();
        assert_eq!(before[0].as_ref(), &data[..50_000]);
        assert!(store.get_ranges(&path, &[0..50_000]).await.is_err());
        // A plain ranged get is cut at the file's end, as HTTP ranges are; the reader sees it short.
        match store.get_range(&path, 0..50_000).await {
            Ok(b) => assert_eq!(b.as_ref(), &data[..10]),
            Err(_) => {}
        }
    }
}
