//! The file system's own semantics, through a real mount and ordinary syscalls: what an
//! fsync makes durable, and what a power loss takes back.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::LazyMount;

fn sync_dir(p: &Path) {
    File::open(p).unwrap().sync_all().unwrap();
}

fn read(p: &Path) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    File::open(p).ok()?.read_to_end(&mut out).unwrap();
    Some(out)
}

#[test]
fn file_data_is_durable_only_up_to_the_last_fsync() {
    let Some(m) = LazyMount::mount_or_skip() else { return };
    let p = m.join("f");
    let mut f = File::create(&p).unwrap();
    sync_dir(m.path());
    f.write_all(b"synced").unwrap();
    f.sync_data().unwrap();
    f.write_all(b" lost").unwrap();
    f.write_at(b"S", 0).unwrap();
    assert_eq!(read(&p).unwrap(), b"Synced lost");
    drop(f);
    m.power_loss();
    assert_eq!(read(&p).unwrap(), b"synced");
    // Written again after the loss, the file reads back what was written.
    OpenOptions::new().append(true).open(&p).unwrap().write_all(b"+more").unwrap();
    assert_eq!(read(&p).unwrap(), b"synced+more");
}

#[test]
fn a_new_file_without_a_directory_fsync_is_lost_even_if_the_file_was_fsynced() {
    let Some(m) = LazyMount::mount_or_skip() else { return };
    fs::create_dir(m.join("d")).unwrap();
    sync_dir(m.path());
    let kept = m.join("d/kept");
    let lost = m.join("d/lost");
    let mut f = File::create(&kept).unwrap();
    f.write_all(b"k").unwrap();
    f.sync_all().unwrap();
    sync_dir(&m.join("d"));
    let mut f = File::create(&lost).unwrap();
    f.write_all(b"l").unwrap();
    f.sync_all().unwrap();
    m.power_loss();
    assert_eq!(read(&kept).unwrap(), b"k");
    assert!(!lost.exists(), "the entry was never made durable by an fsync of d/");
    // A directory whose parent was not fsynced after mkdir is lost with everything in it.
    fs::create_dir(m.join("e")).unwrap();
    File::create(m.join("e/x")).unwrap().sync_all().unwrap();
    sync_dir(&m.join("e"));
    m.power_loss();
    assert!(!m.join("e").exists());
}

#[test]
fn rename_and_unlink_are_undone_without_a_directory_fsync() {
    let Some(m) = LazyMount::mount_or_skip() else { return };
    let (a, b, c) = (m.join("a"), m.join("b"), m.join("c"));
    for p in [&a, &c] {
        let mut f = File::create(p).unwrap();
        f.write_all(b"v1").unwrap();
        f.sync_all().unwrap();
    }
    sync_dir(m.path());
    fs::rename(&a, &b).unwrap();
    fs::remove_file(&c).unwrap();
    File::open(&b).unwrap().sync_all().unwrap();
    m.power_loss();
    assert_eq!(read(&a).unwrap(), b"v1", "the rename was not durable");
    assert!(!b.exists());
    assert_eq!(read(&c).unwrap(), b"v1", "the unlink was not durable");
    // With the directory fsynced, both stick.
    fs::rename(&a, &b).unwrap();
    fs::remove_file(&c).unwrap();
    sync_dir(m.path());
    m.power_loss();
    assert_eq!((a.exists(), read(&b).unwrap(), c.exists()), (false, b"v1".to_vec(), false));
}

#[test]
fn set_len_is_durable_with_fdatasync_and_undone_without() {
    let Some(m) = LazyMount::mount_or_skip() else { return };
    let p = m.join("seg");
    let f = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&p).unwrap();
    sync_dir(m.path());
    f.write_all_at(&[7u8; 10_000], 0).unwrap();
    f.sync_data().unwrap();
    f.set_len(100).unwrap();
    assert_eq!(fs::metadata(&p).unwrap().len(), 100);
    drop(f);
    m.power_loss();
    assert_eq!(read(&p).unwrap(), vec![7u8; 10_000], "the truncation was never synced");
    let f = OpenOptions::new().write(true).open(&p).unwrap();
    f.set_len(100).unwrap();
    f.set_len(200).unwrap(); // the regrown range reads as zeros, durably
    f.sync_data().unwrap();
    drop(f);
    m.power_loss();
    let mut want = vec![7u8; 100];
    want.resize(200, 0);
    assert_eq!(read(&p).unwrap(), want);
}

#[test]
fn sendfile_reads_through_the_file_system() {
    let Some(m) = LazyMount::mount_or_skip() else { return };
    let p = m.join("s");
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    fs::write(&p, &data).unwrap();
    let src = File::open(&p).unwrap();
    let (mut rx, tx) = std::os::unix::net::UnixStream::pair().unwrap();
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        rx.read_to_end(&mut got).unwrap();
        got
    });
    let mut offset: libc::off_t = 1000;
    let mut left = data.len() - 1000;
    while left > 0 {
        use std::os::fd::AsRawFd;
        // SAFETY: both fds are open for the duration of the call; offset is a valid pointer.
        let n = unsafe { libc::sendfile(tx.as_raw_fd(), src.as_raw_fd(), &mut offset, left) };
        assert!(n > 0, "sendfile: {}", std::io::Error::last_os_error());
        left -= n as usize;
    }
    drop(tx);
    assert_eq!(reader.join().unwrap(), &data[1000..]);
}

#[test]
fn a_lying_disk_loses_even_fsynced_data() {
    let Some(m) = LazyMount::mount_or_skip() else { return };
    m.honour_syncs(false);
    let mut f = File::create(m.join("f")).unwrap();
    f.write_all(b"x").unwrap();
    f.sync_all().unwrap();
    sync_dir(m.path());
    assert_eq!(m.unsynced_paths(), vec!["/ (entries not synced: new [f] gone [])".to_string(), "/f".to_string()]);
    m.power_loss();
    assert!(!m.join("f").exists());
    assert_eq!(m.stats().file_syncs, 1);
}

#[test]
fn partial_write_back_keeps_synced_data_and_a_prefix_or_zeros_of_the_rest() {
    let Some(m) = LazyMount::mount_or_skip() else { return };
    let p = m.join("f");
    let mut seen = std::collections::HashSet::new();
    for seed in 1..40u64 {
        let mut f = File::create(&p).unwrap();
        f.write_all(b"synced").unwrap();
        f.sync_all().unwrap();
        sync_dir(m.path());
        f.write_all(b"+unsynced").unwrap();
        drop(f);
        m.power_loss_with(Some(seed * 0x9e37_79b9));
        let got = read(&p).unwrap();
        let (head, tail) = got.split_at(6);
        assert_eq!(head, b"synced");
        let prefix = b"+unsynced".starts_with(tail);
        let zeros = tail.len() == 9 && tail.iter().all(|b| *b == 0);
        assert!(prefix || zeros, "{got:?}");
        seen.insert(if zeros { 10 } else { tail.len() });
    }
    assert!(seen.len() >= 3, "outcomes seen: {seen:?}");
}
