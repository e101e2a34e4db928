//! Noticing that files changed, by content. Reading a few small files every few seconds is cheap
//! and, unlike inotify, needs no special case for Kubernetes' ConfigMap and Secret symlink swaps or
//! for editors that replace files by renaming.

use std::path::PathBuf;

pub struct FileWatch {
    paths: Vec<PathBuf>,
    /// Last contents seen; `None` where the file could not be read.
    seen: Vec<Option<Vec<u8>>>,
}

impl FileWatch {
    pub fn new(paths: Vec<PathBuf>) -> Self {
        let seen = paths.iter().map(|p| std::fs::read(p).ok()).collect();
        FileWatch { paths, seen }
    }

    /// Like [`FileWatch::changed`], for a set of files that may itself change (a policy file
    /// added or removed counts as a change).
    pub fn changed_set(&mut self, paths: Vec<PathBuf>) -> bool {
        if paths != self.paths {
            *self = FileWatch::new(paths);
            return true;
        }
        self.changed()
    }

    /// Re-reads every file; true if any differs from the last call.
    pub fn changed(&mut self) -> bool {
        let mut changed = false;
        for (path, seen) in self.paths.iter().zip(self.seen.iter_mut()) {
            let now = std::fs::read(path).ok();
            if now != *seen {
                *seen = now;
                changed = true;
            }
        }
        changed
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
}
