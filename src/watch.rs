//! Noticing that files changed without reading them. inotify on the directories holding the
//! watched files wakes the reloader as soon as a file is closed after writing, created, removed
//! or renamed over (and for nothing else: a busy file beside the configuration, such as the
//! audit log, is written without a single wake-up); and on every tick a `stat` of each file, following
//! symlinks (device, inode, size, modification and change times), catches whatever inotify missed
//! or could not watch. Both survive Kubernetes' ConfigMap and Secret updates, which swap a `..data`
//! symlink in the directory, and editors that replace a file by renaming.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use inotify::{Inotify, WatchDescriptor, WatchMask, Watches};

/// What identifies one version of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        dev: m.dev(),
        ino: m.ino(),
        len: m.len(),
        mtime: (m.mtime(), m.mtime_nsec()),
        ctime: (m.ctime(), m.ctime_nsec()),
    })
}

pub(crate) struct FileWatch {
    paths: Vec<PathBuf>,
    /// Last stamps seen; `None` where the file did not exist.
    seen: Vec<Option<Stamp>>,
}

impl FileWatch {
    pub fn new(paths: Vec<PathBuf>) -> Self {
        let seen = paths.iter().map(|p| stamp(p)).collect();
        FileWatch { paths, seen }
    }

    /// Like [`FileWatch::changed`], for a set of files that may itself change (a policy file
    /// added or removed counts as a change).
    pub(crate) fn changed_set(&mut self, paths: Vec<PathBuf>) -> bool {
        if paths != self.paths {
            *self = FileWatch::new(paths);
            return true;
        }
        self.changed()
    }

    /// Stats every file; true if any differs from the last call.
    pub fn changed(&mut self) -> bool {
        let mut changed = false;
        for (path, seen) in self.paths.iter().zip(self.seen.iter_mut()) {
            let now = stamp(path);
            if now != *seen {
                *seen = now;
                changed = true;
            }
        }
        changed
    }
}

/// The events that can mean a file has new contents. Plain writes are left to the close that ends
/// them, so a file is never read half written; opens and reads (the reloader's own) mean nothing.
fn mask() -> WatchMask {
    WatchMask::CLOSE_WRITE
        | WatchMask::CREATE
        | WatchMask::DELETE
        | WatchMask::MOVED_FROM
        | WatchMask::MOVED_TO
        | WatchMask::ATTRIB
        | WatchMask::DELETE_SELF
        | WatchMask::MOVE_SELF
}

/// inotify on a set of directories, calling `wake` on every event of [`mask`].
pub(crate) struct Notifier {
    watches: Option<Watches>,
    dirs: BTreeMap<PathBuf, WatchDescriptor>,
}

impl Notifier {
    /// A notifier watching nothing yet; without inotify it stays idle and the tick's `stat`s
    /// do the work. Its events are read by a thread of its own.
    pub fn new(wake: impl Fn() + Send + 'static) -> Notifier {
        let watches = Inotify::init().and_then(|mut inotify| {
            let watches = inotify.watches();
            std::thread::Builder::new()
                .name("tollgate-inotify".into())
                .spawn(move || {
                    let mut buffer = [0u8; 4096];
                    loop {
                        match inotify.read_events_blocking(&mut buffer) {
                            Ok(mut events) => {
                                if events.next().is_some() {
                                    wake();
                                }
                            }
                            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                            Err(_) => return,
                        }
                    }
                })?;
            Ok(watches)
        });
        let watches = watches
            .inspect_err(|e| {
                tracing::warn!(error = %e, "cannot use inotify; noticing file changes on each tick only");
            })
            .ok();
        Notifier {
            watches,
            dirs: BTreeMap::new(),
        }
    }

    /// Watches the directories of `files` and `dirs` themselves, and no others.
    pub fn watch(&mut self, files: &[PathBuf], dirs: &[PathBuf]) {
        let Some(watches) = self.watches.as_mut() else {
            return;
        };
        let wanted: Vec<PathBuf> = files
            .iter()
            .filter_map(|f| f.parent())
            .map(|d| {
                if d.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    d
                }
            })
            .map(Path::to_path_buf)
            .chain(dirs.iter().cloned())
            .collect();
        let mut kept = BTreeMap::new();
        for dir in wanted {
            if kept.contains_key(&dir) {
                continue;
            }
            match self.dirs.remove(&dir) {
                Some(wd) => {
                    kept.insert(dir, wd);
                }
                None => {
                    if let Ok(wd) = watches.add(&dir, mask()) {
                        kept.insert(dir, wd);
                    }
                }
            }
        }
        for (_, gone) in std::mem::replace(&mut self.dirs, kept) {
            // A directory that was removed is no longer watched anyway.
            let _ = watches.remove(gone);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::FileWatch;

    #[test]
    fn notices_changed_removed_and_restored_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.yaml");
        std::fs::write(&path, "one").unwrap();
        let mut watch = FileWatch::new(vec![path.clone()]);
        assert!(!watch.changed());
        std::fs::write(&path, "two").unwrap();
        assert!(watch.changed());
        assert!(!watch.changed());
        std::fs::remove_file(&path).unwrap();
        assert!(watch.changed());
        std::fs::write(&path, "two").unwrap();
        assert!(watch.changed());
    }

    #[test]
    fn notices_a_configmap_style_symlink_swap() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("v1")).unwrap();
        std::fs::create_dir(root.join("v2")).unwrap();
        std::fs::write(root.join("v1/a.yaml"), "same").unwrap();
        std::fs::write(root.join("v2/a.yaml"), "same").unwrap();
        std::os::unix::fs::symlink("v1", root.join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/a.yaml", root.join("a.yaml")).unwrap();
        let mut watch = FileWatch::new(vec![root.join("a.yaml")]);
        assert!(!watch.changed());
        // What the kubelet does: a new `..data` link, renamed over the old one.
        std::os::unix::fs::symlink("v2", root.join("..data_tmp")).unwrap();
        std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
        assert!(watch.changed());
        assert!(!watch.changed());
    }
}
