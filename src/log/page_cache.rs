//! Telling hot reads from cold ones, so that a read which would wait for the disk runs on
//! the blocking pool instead of stalling an async worker (and every connection on it).
//!
//! A fetch's file ranges are sent with `sendfile`, which blocks the calling thread on a
//! page-cache miss. Before sending, [`is_resident`] asks the kernel whether every page of
//! the range is cached (`cachestat(2)`, Linux 6.5+; `mincore(2)` over a temporary mapping
//! before that). A range that is not is read once on the blocking pool ([`warm`]), which
//! brings its pages into the cache; the `sendfile` that follows copies from memory. Hot
//! ranges, the common case for consumers that keep up, are sent straight away.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::read_plan::FileRange;

/// `cachestat(2)`'s number, the same on every architecture (the unified syscall table).
const SYS_CACHESTAT: libc::c_long = 451;

/// Set once `cachestat` turned out to be missing (ENOSYS): `mincore` from then on.
static NO_CACHESTAT: AtomicBool = AtomicBool::new(false);

/// Ranges found cold and read on the blocking pool, and ranges found hot.
static COLD_RANGES: AtomicU64 = AtomicU64::new(0);
static HOT_RANGES: AtomicU64 = AtomicU64::new(0);

/// Ranges warmed on the blocking pool so far (tests and metrics).
pub fn cold_ranges() -> u64 {
    COLD_RANGES.load(Ordering::Relaxed)
}

/// Ranges found entirely in the page cache so far.
pub fn hot_ranges() -> u64 {
    HOT_RANGES.load(Ordering::Relaxed)
}

#[repr(C)]
struct CachestatRange {
    off: u64,
    len: u64,
}

#[repr(C)]
#[derive(Default)]
struct Cachestat {
    nr_cache: u64,
    nr_dirty: u64,
    nr_writeback: u64,
    nr_evicted: u64,
    nr_recently_evicted: u64,
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).ok().filter(|&s| s > 0).unwrap_or(4096)
}

/// Whether every page of `len` bytes at `pos` of `file` is in the page cache. Counts the
/// answer (see [`cold_ranges`]). An error counts as cold: the blocking pool is the safe
/// side.
pub fn is_resident(file: &File, pos: u64, len: usize) -> bool {
    let resident = len == 0 || residency(file, pos, len as u64).unwrap_or(false);
    if resident {
        HOT_RANGES.fetch_add(1, Ordering::Relaxed);
    }
    resident
}

fn residency(file: &File, pos: u64, len: u64) -> std::io::Result<bool> {
    let page = page_size();
    let pages = (pos + len - 1) / page - pos / page + 1;
    if !NO_CACHESTAT.load(Ordering::Relaxed) {
        let range = CachestatRange { off: pos, len };
        let mut stat = Cachestat::default();
        // SAFETY: cachestat reads `range` and writes `stat`, both live and of the layout
        // the kernel expects; the descriptor is open (borrowed).
        let r = unsafe {
            libc::syscall(SYS_CACHESTAT, file.as_raw_fd(), &raw const range, &raw mut stat, 0 as libc::c_uint)
        };
        if r == 0 {
            return Ok(stat.nr_cache >= pages);
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ENOSYS) {
            return Err(e);
        }
        NO_CACHESTAT.store(true, Ordering::Relaxed);
    }
    mincore_resident(file, pos, len, page, pages)
}

/// `mincore` over a temporary read-only mapping of the range's pages.
fn mincore_resident(file: &File, pos: u64, len: u64, page: u64, pages: u64) -> std::io::Result<bool> {
    let start = pos / page * page;
    let map_len = usize::try_from(pos + len - start).map_err(std::io::Error::other)?;
    let offset = libc::off_t::try_from(start).map_err(std::io::Error::other)?;
    // SAFETY: a fresh shared read-only mapping of an open file; unmapped below, and never
    // dereferenced (mincore only inspects the page tables).
    let addr = unsafe {
        libc::mmap(std::ptr::null_mut(), map_len, libc::PROT_READ, libc::MAP_SHARED, file.as_raw_fd(), offset)
    };
    if addr == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    let mut vec = vec![0u8; usize::try_from(pages).map_err(std::io::Error::other)?];
    // SAFETY: `addr..addr + map_len` is the mapping made above; `vec` has one byte per page.
    let r = unsafe { libc::mincore(addr, map_len, vec.as_mut_ptr().cast()) };
    let result = if r == 0 { Ok(vec.iter().all(|v| v & 1 == 1)) } else { Err(std::io::Error::last_os_error()) };
    // SAFETY: unmaps exactly the mapping made above.
    unsafe { libc::munmap(addr, map_len) };
    result
}

/// Reads `range` (and throws the bytes away) so its pages are in the page cache: the part
/// of a cold read that waits for the disk. For the blocking pool.
pub fn warm(range: &FileRange) -> std::io::Result<()> {
    COLD_RANGES.fetch_add(1, Ordering::Relaxed);
    let mut buf = vec![0u8; range.len.min(WARM_CHUNK)];
    let mut done = 0usize;
    while done < range.len {
        let want = (range.len - done).min(buf.len());
        match std::os::unix::fs::FileExt::read_at(&*range.file, &mut buf[..want], range.pos + done as u64) {
            Ok(0) => break, // shorter than planned: the send reports it
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Bytes read at a time when warming a range.
const WARM_CHUNK: usize = 256 * 1024;

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn dropped_pages_are_cold_until_warmed() {
        let mut f = tempfile::tempfile().expect("tempfile");
        f.write_all(&vec![7u8; 64 * 1024]).expect("write");
        f.sync_all().expect("fsync"); // clean pages can be dropped
        assert!(residency(&f, 0, 64 * 1024).expect("residency"), "just written: cached");
        // SAFETY: advice on an open descriptor.
        let r = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        assert_eq!(r, 0);
        assert!(!residency(&f, 0, 64 * 1024).expect("residency"), "dropped from the cache");
        let range = FileRange { file: std::sync::Arc::new(f), path: "t".into(), pos: 4096, len: 8192 };
        warm(&range).expect("warm");
        assert!(residency(&range.file, 4096, 8192).expect("residency"));
        let mincore = mincore_resident(&range.file, 4096, 8192, page_size(), 2).expect("mincore");
        assert!(mincore, "mincore agrees");
    }
}
