//! All-or-nothing stage outputs, and one writer per data folder.
//!
//! A stage writes every output into its own staging folder
//! (`DATA/.staging/<stage>-<pid>/`, mirroring the layout), then commits:
//!
//! 1. every staged file is synced, and so are the folders holding them;
//! 2. the list of moves is written to `DATA/.commit.json` (temp file, sync,
//!    rename, sync DATA): this rename is the commit point;
//! 3. the moves run: a file is renamed over the old one; a folder (a raw
//!    table, a model) is swapped in by moving the old one into the staging
//!    folder first; a removed output is moved there too;
//! 4. the journal is deleted, then the staging folder.
//!
//! Every stage (and `status`) first takes the lock and runs [`recover`]: a
//! journal left by a crash is replayed (each move is skipped when already
//! done, so replaying twice is harmless), and staging folders without a
//! journal are deleted, which rolls back a run that never reached its commit
//! point. So the next run always sees all of the old outputs or all of the
//! new, whatever the moment of a kill, a power cut or a full disk.
//!
//! The lock is an advisory `flock` on `DATA/.lock`: the kernel drops it when
//! its owner dies, so a lock left by a killed run is simply taken over.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::{ContractError, Layout};

const JOURNAL: &str = ".commit.json";
const STAGING: &str = ".staging";
const LOCK: &str = ".lock";
/// How long a second writer waits for the first before giving up.
pub const LOCK_WAIT: Duration = Duration::from_secs(600);

/// One move of a commit: `staged` (inside the staging folder) replaces
/// `target`, or `target` is removed when `staged` is `None`. Paths are relative
/// to the data folder, so a journal replays the same wherever the next stage
/// is started from.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Move {
    target: PathBuf,
    staged: Option<PathBuf>,
    /// Where the old target goes before it is deleted (folders and removals).
    aside: Option<PathBuf>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Journal {
    stage: String,
    staging: PathBuf,
    moves: Vec<Move>,
}

/// The data folder's writer lock, held until dropped.
pub struct Lock {
    _file: File,
    /// The outermost folder taking the lock created (the data folder did not
    /// exist): a run that then fails removes it, so it leaves no trace.
    created: Option<PathBuf>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ContractError + '_ {
    move |e| ContractError::io(path, e)
}

/// Takes the data folder's lock, waiting (with a note on stderr) while
/// another stage holds it, at most `wait`.
pub fn lock(layout: &Layout, stage: &str, wait: Duration) -> Result<Lock, ContractError> {
    let root = layout.root();
    let created = root
        .ancestors()
        .take_while(|p| !p.as_os_str().is_empty() && !p.exists())
        .last()
        .map(Path::to_path_buf);
    fs::create_dir_all(root).map_err(io_err(root))?;
    let path = root.join(LOCK);
    let mut file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(io_err(&path))?;
    let started = Instant::now();
    let mut told = false;
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(fs::TryLockError::WouldBlock) => {
                let holder = fs::read_to_string(&path).unwrap_or_default();
                let holder = holder.trim();
                if started.elapsed() >= wait {
                    return Err(ContractError::Busy {
                        path: root.to_path_buf(),
                        holder: holder.to_string(),
                        waited: wait,
                    });
                }
                if !told {
                    eprintln!(
                        "{stage}: waiting for {} ({holder}) to finish",
                        root.display()
                    );
                    told = true;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(fs::TryLockError::Error(e)) => return Err(ContractError::io(&path, e)),
        }
    }
    // Who holds it, for the message a waiting stage prints.
    let _ = file.set_len(0);
    let _ = writeln!(file, "{stage}, pid {}", std::process::id());
    Ok(Lock {
        _file: file,
        created,
    })
}

fn sync_dir(dir: &Path) -> Result<(), ContractError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// True when anything, a dangling symbolic link included, is at `path`.
fn present(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

fn sync_tree(path: &Path) -> Result<(), ContractError> {
    let kind = fs::symlink_metadata(path)
        .map_err(io_err(path))?
        .file_type();
    if kind.is_symlink() {
        // A champion link: synced with the folder that holds it.
        Ok(())
    } else if kind.is_dir() {
        for entry in fs::read_dir(path).map_err(io_err(path))? {
            sync_tree(&entry.map_err(io_err(path))?.path())?;
        }
        sync_dir(path)
    } else {
        File::open(path)
            .and_then(|f| f.sync_all())
            .map_err(io_err(path))
    }
}

fn remove_any(path: &Path) -> Result<(), ContractError> {
    let is_dir = fs::symlink_metadata(path).is_ok_and(|m| m.is_dir());
    let result = if is_dir {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    match result {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(ContractError::io(path, e)),
        _ => Ok(()),
    }
}

/// Applies the moves under `root`; each is skipped when already done.
fn apply(root: &Path, moves: &[Move]) -> Result<(), ContractError> {
    for m in moves {
        let target = root.join(&m.target);
        let staged = m.staged.as_ref().map(|s| root.join(s));
        if staged.as_ref().is_some_and(|s| !present(s)) {
            continue; // already moved in
        }
        if let Some(aside) = m.aside.as_ref().map(|a| root.join(a))
            && present(&target)
            && !present(&aside)
        {
            if let Some(parent) = aside.parent() {
                fs::create_dir_all(parent).map_err(io_err(parent))?;
            }
            fs::rename(&target, &aside).map_err(io_err(&target))?;
        }
        if let Some(staged) = &staged {
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent).map_err(io_err(parent))?;
            }
            fs::rename(staged, &target).map_err(io_err(&target))?;
        }
    }
    let mut parents: Vec<PathBuf> = moves
        .iter()
        .filter_map(|m| root.join(&m.target).parent().map(Path::to_path_buf))
        .collect();
    parents.sort();
    parents.dedup();
    for p in parents {
        if p.exists() {
            sync_dir(&p)?;
        }
    }
    Ok(())
}

/// Finishes or undoes whatever a killed run left: replays a journal, then
/// deletes every staging folder and stray temporary file. Call with the lock held.
pub fn recover(layout: &Layout) -> Result<(), ContractError> {
    let root = layout.root();
    let journal_path = root.join(JOURNAL);
    if journal_path.exists() {
        let text = fs::read_to_string(&journal_path).map_err(io_err(&journal_path))?;
        // A journal is complete once renamed into place; one that does not
        // parse was never committed (impossible after the rename, but harmless).
        if let Ok(journal) = serde_json::from_str::<Journal>(&text) {
            apply(root, &journal.moves)?;
        }
        fs::remove_file(&journal_path).map_err(io_err(&journal_path))?;
        sync_dir(root)?;
    }
    let staging = root.join(STAGING);
    if present(&staging) {
        remove_any(&staging)?;
    }
    // Temporary files of interrupted atomic writes (`.name.XXXX.tmp`).
    remove_temporaries(root)?;
    Ok(())
}

fn remove_temporaries(dir: &Path) -> Result<(), ContractError> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        // Not through links: a champion link leads into a folder walked anyway.
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            // Staging and swapped-out folders of earlier versions of the pipeline.
            if name.starts_with('.') && (name.contains(".staging-") || name.contains(".old-")) {
                remove_any(&path)?;
            } else if name != STAGING {
                remove_temporaries(&path)?;
            }
        } else if name.starts_with('.') && name.ends_with(".tmp") {
            remove_any(&path)?;
        }
    }
    Ok(())
}

/// A stage's outputs being written: paths inside the staging folder, then one
/// commit. Dropped without [`Commit::finish`], it deletes what it staged.
pub struct Commit {
    root: PathBuf,
    stage: String,
    /// The staging folder, and the same relative to the data folder.
    staging: PathBuf,
    staging_rel: PathBuf,
    moves: Vec<Move>,
    done: bool,
    lock: Lock,
}

impl Commit {
    /// Takes the lock, recovers from any interrupted run, and opens a staging folder.
    pub fn begin(layout: &Layout, stage: &str) -> Result<Self, ContractError> {
        let lock = lock(layout, stage, LOCK_WAIT)?;
        recover(layout)?;
        let root = layout.root().to_path_buf();
        let staging_rel = Path::new(STAGING).join(format!("{stage}-{}", std::process::id()));
        let staging = root.join(&staging_rel);
        fs::create_dir_all(&staging).map_err(io_err(&staging))?;
        Ok(Self {
            root,
            stage: stage.to_string(),
            staging,
            staging_rel,
            moves: Vec::new(),
            done: false,
            lock,
        })
    }

    fn relative<'a>(&self, target: &'a Path) -> &'a Path {
        target.strip_prefix(&self.root).unwrap_or(target)
    }

    /// Where to write the new version of the file `target` (a layout path).
    pub fn file(&mut self, target: &Path) -> Result<PathBuf, ContractError> {
        let rel = self.relative(target).to_path_buf();
        let staged = self.staging.join("new").join(&rel);
        if let Some(parent) = staged.parent() {
            fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        self.moves.push(Move {
            staged: Some(self.staging_rel.join("new").join(&rel)),
            target: rel,
            aside: None,
        });
        Ok(staged)
    }

    /// A new, empty folder that replaces the folder `target` whole.
    pub fn dir(&mut self, target: &Path) -> Result<PathBuf, ContractError> {
        let rel = self.relative(target).to_path_buf();
        let staged = self.staging.join("new").join(&rel);
        if staged.exists() {
            remove_any(&staged)?;
        }
        fs::create_dir_all(&staged).map_err(io_err(&staged))?;
        self.moves.push(Move {
            staged: Some(self.staging_rel.join("new").join(&rel)),
            aside: Some(self.staging_rel.join("old").join(&rel)),
            target: rel,
        });
        Ok(staged)
    }

    /// A scratch folder inside the staging folder, for work files that are
    /// not outputs themselves (deleted with the staging folder).
    pub fn scratch(&mut self, name: &str) -> Result<PathBuf, ContractError> {
        let dir = self.staging.join("scratch").join(name);
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        Ok(dir)
    }

    /// `target` (a file or folder of the layout) is removed at commit.
    pub fn remove(&mut self, target: &Path) {
        let rel = self.relative(target).to_path_buf();
        self.moves.push(Move {
            staged: None,
            aside: Some(self.staging_rel.join("old").join(&rel)),
            target: rel,
        });
    }

    /// Makes every staged output visible at once (see the module doc).
    pub fn finish(mut self) -> Result<(), ContractError> {
        sync_tree(&self.staging)?;
        let journal = Journal {
            stage: self.stage.clone(),
            staging: self.staging_rel.clone(),
            moves: std::mem::take(&mut self.moves),
        };
        let path = self.root.join(JOURNAL);
        crate::io::write_json(&journal, &path)?;
        sync_dir(&self.root)?;
        // Past the commit point: from here a crash is rolled forward by `recover`.
        self.done = true;
        apply(&self.root, &journal.moves)?;
        fs::remove_file(&path).map_err(io_err(&path))?;
        sync_dir(&self.root)?;
        remove_any(&self.staging)?;
        Ok(())
    }
}

impl Drop for Commit {
    fn drop(&mut self) {
        if !self.done {
            let _ = remove_any(&self.staging);
            // A failed run into a data folder it created leaves nothing: the
            // lock file, the empty staging folder, the folders made for them
            // (each removed only when empty).
            if let Some(created) = self.lock.created.clone() {
                let _ = fs::remove_dir(self.root.join(STAGING));
                let _ = fs::remove_file(self.root.join(LOCK));
                for dir in self.root.ancestors() {
                    if fs::remove_dir(dir).is_err() || dir == created {
                        break;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> (tempfile::TempDir, Layout) {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        (dir, layout)
    }

    #[test]
    fn outputs_appear_together_or_not_at_all() {
        let (_d, layout) = layout();
        let a = layout.root().join("clean/a.txt");
        let b = layout.root().join("raw/t");
        let mut c = Commit::begin(&layout, "test").unwrap();
        fs::write(c.file(&a).unwrap(), "new a").unwrap();
        fs::write(c.dir(&b).unwrap().join("part"), "new b").unwrap();
        assert!(!a.exists(), "nothing visible before the commit");
        c.finish().unwrap();
        assert_eq!(fs::read_to_string(&a).unwrap(), "new a");
        assert_eq!(fs::read_to_string(b.join("part")).unwrap(), "new b");

        // A run that fails (dropped) changes nothing and leaves nothing.
        let mut c = Commit::begin(&layout, "test").unwrap();
        fs::write(c.file(&a).unwrap(), "half").unwrap();
        drop(c);
        assert_eq!(fs::read_to_string(&a).unwrap(), "new a");
        assert!(!layout.root().join(STAGING).join("x").exists());
        assert!(
            fs::read_dir(layout.root().join(STAGING))
                .map(|d| d.count())
                .unwrap_or(0)
                == 0
        );
    }

    #[test]
    fn a_journal_left_by_a_crash_is_rolled_forward_once() {
        let (_d, layout) = layout();
        let a = layout.root().join("clean/a.txt");
        let b = layout.root().join("raw/t");
        fs::create_dir_all(&b).unwrap();
        fs::write(b.join("old-part"), "old").unwrap();
        fs::create_dir_all(a.parent().unwrap()).unwrap();
        fs::write(&a, "old a").unwrap();
        // Stage, write the journal, apply only the first half of the moves: a kill.
        let staging = layout.root().join(STAGING).join("crashed");
        let new_a = staging.join("new/clean/a.txt");
        let new_b = staging.join("new/raw/t");
        fs::create_dir_all(new_a.parent().unwrap()).unwrap();
        fs::create_dir_all(&new_b).unwrap();
        fs::write(&new_a, "new a").unwrap();
        fs::write(new_b.join("new-part"), "new").unwrap();
        let moves = vec![
            Move {
                target: a.clone(),
                staged: Some(new_a),
                aside: None,
            },
            Move {
                target: b.clone(),
                staged: Some(new_b),
                aside: Some(staging.join("old/raw/t")),
            },
        ];
        apply(layout.root(), &moves[..1]).unwrap();
        // The old folder already moved aside, the new one not yet in place.
        fs::create_dir_all(staging.join("old/raw")).unwrap();
        fs::rename(&b, staging.join("old/raw/t")).unwrap();
        let journal = Journal {
            stage: "t".into(),
            staging: staging.clone(),
            moves,
        };
        crate::io::write_json(&journal, &layout.root().join(JOURNAL)).unwrap();
        recover(&layout).unwrap();
        assert_eq!(fs::read_to_string(&a).unwrap(), "new a");
        assert_eq!(fs::read_to_string(b.join("new-part")).unwrap(), "new");
        assert!(!b.join("old-part").exists());
        assert!(!layout.root().join(JOURNAL).exists());
        assert!(!staging.exists());
        recover(&layout).unwrap(); // nothing left to do
    }

    #[test]
    fn a_second_writer_waits_then_gives_up() {
        let (_d, layout) = layout();
        let _held = lock(&layout, "first", LOCK_WAIT).unwrap();
        let err = match lock(&layout, "second", Duration::from_millis(300)) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("the lock is held"),
        };
        assert!(err.contains("another stage (first, pid"), "{err}");
    }
}
