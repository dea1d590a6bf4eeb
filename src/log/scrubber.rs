//! The background scrubber: finds bit rot in sealed segments before a consumer does.
//!
//! Fetches are sent from the segment files with `sendfile`, so the broker never sees the
//! bytes it serves and cannot check their CRCs on the way out (the read planner only
//! checks the headers it reads anyway). Instead, as ZFS scrubs a pool, one low-priority
//! thread (its own OS thread at nice 19, never a runtime worker) walks every sealed
//! segment at a bounded rate, verifies every batch's CRC and offsets, and records what it
//! finds as damaged ranges (see [`super::damage`]), which fetches then refuse with
//! `CORRUPT_MESSAGE` instead of serving. Sealed segments never change, so a pass needs no
//! lock: each segment's file, size and end offset are captured under the partition lock
//! and verified after it is released.

use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::LogError;
use super::damage::{DamageSet, SegmentView, salvage};
use super::open_files::SegmentFile;
use super::partition_log::PartitionLog;

/// Default read rate of a scrub pass.
pub const DEFAULT_BYTES_PER_SEC: u64 = 32 * 1024 * 1024;
/// Default pause between the end of one pass and the start of the next.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);
/// Default pause before the first pass, so start-up I/O goes first.
pub const DEFAULT_FIRST_DELAY: Duration = Duration::from_secs(5 * 60);

/// One sealed segment to verify, captured under the partition lock.
pub struct ScrubTarget {
    file: Arc<SegmentFile>,
    path: PathBuf,
    base_offset: i64,
    size: u64,
    end_offset: i64,
    damage: Arc<DamageSet>,
}

impl PartitionLog {
    /// The sealed segments (all but the active one) for the scrubber.
    pub fn scrub_targets(&self) -> Vec<ScrubTarget> {
        let segments = self.segments();
        segments
            .windows(2)
            .map(|pair| ScrubTarget {
                file: pair[0].file.clone(),
                path: pair[0].path("log"),
                base_offset: pair[0].base_offset,
                size: pair[0].size,
                end_offset: pair[1].base_offset,
                damage: self.damage().clone(),
            })
            .collect()
    }
}

/// Bounds the scrubber's read rate by sleeping when it runs ahead.
pub struct RateLimiter {
    bytes_per_sec: u64,
    started: Instant,
    bytes: u64,
}

impl RateLimiter {
    pub fn new(bytes_per_sec: u64) -> Self {
        RateLimiter { bytes_per_sec: bytes_per_sec.max(1), started: Instant::now(), bytes: 0 }
    }

    /// Accounts for `n` bytes read, sleeping until the average rate is back within bounds.
    pub fn consume(&mut self, n: usize) {
        self.bytes += n as u64;
        let due = Duration::from_secs_f64(self.bytes as f64 / self.bytes_per_sec as f64);
        let elapsed = self.started.elapsed();
        if due > elapsed {
            std::thread::sleep(due - elapsed);
        }
        // Restart the window now and then so an idle period is not spent as a burst.
        if elapsed > Duration::from_secs(10) {
            self.started = Instant::now();
            self.bytes = 0;
        }
    }
}

/// Verifies one sealed segment's batches (CRC, offsets) and records damage it finds.
/// Returns how many new damaged ranges were recorded.
pub fn scrub(target: &ScrubTarget, limiter: &mut RateLimiter) -> Result<usize, LogError> {
    let file = target.file.get()?;
    let view = SegmentView {
        file: &file,
        path: &target.path,
        base_offset: target.base_offset,
        size: target.size,
        end_offset: Some(target.end_offset),
    };
    let salvaged = salvage(&view, None, |_, _| {}, |n| limiter.consume(n))?;
    let mut new = 0;
    for range in salvaged.damaged {
        if target.damage.add(range)? {
            new += 1;
        }
    }
    Ok(new)
}

/// The scrubber thread. Dropping or [`stop`](Scrubber::stop)ping it ends the thread at
/// the next segment.
pub struct Scrubber {
    stop: Arc<(Mutex<bool>, Condvar)>,
    handle: Option<JoinHandle<()>>,
}

/// How often, how fast, and over what a [`Scrubber`] runs.
#[derive(Debug, Clone, Copy)]
pub struct ScrubberConfig {
    pub bytes_per_sec: u64,
    pub interval: Duration,
    pub first_delay: Duration,
}

impl Default for ScrubberConfig {
    fn default() -> Self {
        ScrubberConfig {
            bytes_per_sec: DEFAULT_BYTES_PER_SEC,
            interval: DEFAULT_INTERVAL,
            first_delay: DEFAULT_FIRST_DELAY,
        }
    }
}

impl Scrubber {
    /// Starts the thread. `targets` lists, at the start of each pass, every partition's
    /// sealed segments with a label for the logs (e.g. `topic-0`).
    pub fn start<F>(config: ScrubberConfig, targets: F) -> std::io::Result<Scrubber>
    where
        F: Fn() -> Vec<(String, Vec<ScrubTarget>)> + Send + 'static,
    {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let flag = stop.clone();
        let handle = std::thread::Builder::new().name("jet-scrubber".into()).spawn(move || {
            lower_priority();
            let mut wait = config.first_delay;
            loop {
                if wait_or_stop(&flag, wait) {
                    return;
                }
                let started = Instant::now();
                let (segments, found) = run_pass(&targets(), config.bytes_per_sec, || stopped(&flag));
                tracing::info!(segments, damaged_ranges = found, secs = started.elapsed().as_secs(), "scrub pass done");
                wait = config.interval;
            }
        })?;
        Ok(Scrubber { stop, handle: Some(handle) })
    }

    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let (lock, cvar) = &*self.stop;
        *lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = true;
        cvar.notify_all();
        if let Some(h) = self.handle.take()
            && h.join().is_err()
        {
            tracing::error!("scrubber thread panicked");
        }
    }
}

impl Drop for Scrubber {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// One pass over `partitions`; returns (segments verified, new damaged ranges).
pub fn run_pass(
    partitions: &[(String, Vec<ScrubTarget>)],
    bytes_per_sec: u64,
    stop: impl Fn() -> bool,
) -> (usize, usize) {
    let mut limiter = RateLimiter::new(bytes_per_sec);
    let (mut segments, mut found) = (0, 0);
    for (label, targets) in partitions {
        for target in targets {
            if stop() {
                return (segments, found);
            }
            match scrub(target, &mut limiter) {
                Ok(n) => found += n,
                Err(e) => {
                    tracing::warn!(partition = label, segment = %target.path.display(), error = %e, "scrub failed")
                }
            }
            segments += 1;
        }
    }
    (segments, found)
}

fn stopped(flag: &(Mutex<bool>, Condvar)) -> bool {
    *flag.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Waits `d` unless stopped first; returns whether it was stopped.
fn wait_or_stop(flag: &(Mutex<bool>, Condvar), d: Duration) -> bool {
    let (lock, cvar) = flag;
    let guard = lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let (guard, _) = cvar.wait_timeout_while(guard, d, |s| !*s).unwrap_or_else(std::sync::PoisonError::into_inner);
    *guard
}

/// Nice 19 for this thread only (Linux schedules threads individually), so a scrub never
/// competes with request handling for CPU.
fn lower_priority() {
    // SAFETY: gettid has no preconditions; setpriority on our own thread id only changes
    // this thread's nice value.
    let r = unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 19) };
    if r != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "could not lower the scrubber's priority");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;
    use crate::log::LogConfig;
    use crate::log::test_util::batch_sized;

    #[test]
    fn the_scrubber_runs_on_its_own_low_priority_thread_and_stops() {
        let (tx, rx) = mpsc::channel();
        let config =
            ScrubberConfig { first_delay: Duration::ZERO, interval: Duration::from_secs(3600), ..Default::default() };
        let scrubber = Scrubber::start(config, move || {
            let current = std::thread::current();
            // SAFETY: getpriority only reads this thread's nice value.
            let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) };
            let _ = tx.send((current.name().map(str::to_string), nice));
            Vec::new()
        })
        .expect("start");
        let (name, nice) = rx.recv_timeout(Duration::from_secs(10)).expect("a pass started");
        assert_eq!(name.as_deref(), Some("jet-scrubber"));
        assert_eq!(nice, 19);
        let stopping = Instant::now();
        scrubber.stop();
        assert!(stopping.elapsed() < Duration::from_secs(5), "stop interrupts the wait between passes");
    }

    #[test]
    fn a_pass_is_rate_limited() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = PartitionLog::open(dir.path(), LogConfig { segment_bytes: 64 * 1024, ..LogConfig::default() })
            .expect("open");
        for i in 0..40 {
            log.append(&batch_sized(8, i, 4000, crate::log::Compression::None), 0, 1_000).expect("append");
        }
        let targets = log.scrub_targets();
        let bytes: u64 = targets.iter().map(|t| t.size).sum();
        assert!(bytes > 1_000_000, "{bytes} bytes in sealed segments");
        let started = Instant::now();
        let (segments, found) = run_pass(&[("p".to_string(), targets)], 4 * 1024 * 1024, || false);
        let took = started.elapsed();
        assert_eq!((segments > 1, found), (true, 0));
        // 4 MiB/s over at least 1 MB: no faster than about a quarter of a second.
        let floor = Duration::from_secs_f64(bytes as f64 / (4.0 * 1024.0 * 1024.0)) - Duration::from_millis(50);
        assert!(took >= floor, "{bytes} bytes scrubbed in {took:?} (floor {floor:?})");
    }
}
