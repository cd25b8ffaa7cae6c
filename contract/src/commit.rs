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
//! That holds for our own stages. For anyone else reading the folder between a
//! kill and our next command (`serve`, a person), the outputs of synth and
//! extract, of transform, of validate and of report are published as one
//! generation each ([`Layout::output_group`]):
//! every output path of the group is a symbolic link through
//! `DATA/.current/<group>` into `DATA/.gen/<group>-<id>/`, a complete copy of
//! the group's outputs (unchanged files hard-linked from the generation before).
//! The stage builds the new generation beside the old one, then renames one new
//! `.current/<group>` link over the old: a single atomic rename, so at every
//! moment every path shows the old outputs or every path the new. [`recover`]
//! deletes generations no link leads to. Train's outputs go through the journal:
//! each model's champion is a link switched in one rename (what `serve` reads),
//! but its reports and versions may show old and new side by side until the
//! next command rolls the journal forward.
//!
//! The lock is an advisory `flock` on `DATA/.lock`: the kernel drops it when
//! its owner dies, so a lock left by a killed run is simply taken over.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::layout::OutputGroup;
use crate::{ContractError, Layout};

const JOURNAL: &str = ".commit.json";
/// Generations of output groups, and the links to the current one of each.
const GENERATIONS: &str = ".gen";
const CURRENT: &str = ".current";
const STAGING: &str = ".staging";
const LOCK: &str = ".lock";
/// How long a second writer waits for the first before giving up.
pub const LOCK_WAIT: Duration = Duration::from_secs(600);

/// The data folder holding `path` (its nearest ancestor with the writer lock
/// and the generations' links), and whether `path` lies in the folders only
/// the commit machinery writes (`.gen`, `.current`, `.staging`, ...).
pub fn data_folder_of(path: &Path) -> Option<(&Path, bool)> {
    let root = path
        .ancestors()
        .skip(1)
        .find(|dir| dir.join(LOCK).is_file() && dir.join(CURRENT).is_dir())?;
    let internal = path
        .strip_prefix(root)
        .ok()
        .and_then(|rel| rel.components().next())
        .is_some_and(|first| first.as_os_str().to_string_lossy().starts_with('.'));
    Some((root, internal))
}

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
    remove_unused_generations(root)?;
    Ok(())
}

/// Deletes every generation no `.current/<group>` link leads to: one a killed
/// run built but never switched to, or the one it switched away from.
fn remove_unused_generations(root: &Path) -> Result<(), ContractError> {
    let generations = root.join(GENERATIONS);
    let Ok(entries) = fs::read_dir(&generations) else {
        return Ok(());
    };
    let current = root.join(CURRENT);
    let used: Vec<std::ffi::OsString> = fs::read_dir(&current)
        .map(|links| {
            links
                .flatten()
                .filter_map(|l| fs::read_link(l.path()).ok())
                .filter_map(|target| target.file_name().map(|n| n.to_os_string()))
                .collect()
        })
        .unwrap_or_default();
    for entry in entries.flatten() {
        if !used.contains(&entry.file_name()) {
            remove_any(&entry.path())?;
        }
    }
    Ok(())
}

/// A copy of the tree `from` at `to`: folders made anew, files hard-linked
/// (copied where the file system cannot link), links copied as links.
fn clone_tree(from: &Path, to: &Path) -> Result<(), ContractError> {
    let kind = fs::symlink_metadata(from)
        .map_err(io_err(from))?
        .file_type();
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    if kind.is_symlink() {
        let target = fs::read_link(from).map_err(io_err(from))?;
        std::os::unix::fs::symlink(target, to).map_err(io_err(to))
    } else if kind.is_dir() {
        fs::create_dir_all(to).map_err(io_err(to))?;
        for entry in fs::read_dir(from).map_err(io_err(from))? {
            let entry = entry.map_err(io_err(from))?;
            clone_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
        Ok(())
    } else {
        fs::hard_link(from, to)
            .or_else(|_| fs::copy(from, to).map(|_| ()))
            .map_err(io_err(to))
    }
}

/// The link text from the link point `rel` (relative to the data folder) into
/// the current generation of `group`: `../` per folder level, then
/// `.current/<group>/<rel>`.
fn link_text(group: &str, rel: &Path) -> PathBuf {
    let mut text = PathBuf::new();
    for _ in 1..rel.components().count() {
        text.push("..");
    }
    text.join(CURRENT).join(group).join(rel)
}

/// A temporary name beside `path` that [`recover`] deletes (`.name.link.tmp`).
fn beside(path: &Path, what: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{what}.tmp"))
}

/// Puts a symbolic link to `text` at `path` in one rename (over whatever is
/// there, a plain file or folder of an older layout included: swapped by
/// `RENAME_EXCHANGE`, then deleted).
fn place_link(text: &Path, path: &Path) -> Result<(), ContractError> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    let tmp = beside(path, "link");
    remove_any(&tmp)?;
    std::os::unix::fs::symlink(text, &tmp).map_err(io_err(&tmp))?;
    let plain_dir = fs::symlink_metadata(path).is_ok_and(|m| m.is_dir());
    if plain_dir {
        rustix::fs::renameat_with(
            rustix::fs::CWD,
            &tmp,
            rustix::fs::CWD,
            path,
            rustix::fs::RenameFlags::EXCHANGE,
        )
        .map_err(|e| ContractError::io(path, e.into()))?;
        remove_any(&tmp)?;
    } else {
        fs::rename(&tmp, path).map_err(io_err(path))?;
    }
    Ok(())
}

/// Points `.current/<group>` at the generation `id` in one rename.
fn switch(root: &Path, group: &str, id: &str) -> Result<(), ContractError> {
    let current = root.join(CURRENT);
    place_link(
        &Path::new("..").join(GENERATIONS).join(id),
        &current.join(group),
    )?;
    sync_dir(&current)
}

/// The folder of the current generation of `group`, if it has one.
fn current_generation(root: &Path, group: &str) -> Option<PathBuf> {
    let target = fs::read_link(root.join(CURRENT).join(group)).ok()?;
    Some(root.join(GENERATIONS).join(target.file_name()?))
}

/// A fresh generation's name: the group, this process, the time.
fn new_generation_id(group: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{group}-{}-{nanos}", std::process::id())
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
    /// The stage's output group, published as one generation.
    group: Option<OutputGroup>,
    /// The generation being built, deleted if the run never switches to it.
    building: Option<PathBuf>,
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
            group: layout.output_group(stage),
            building: None,
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
        if let Some(group) = self.group.take() {
            let inside = |t: &Path| group.links.iter().any(|l| t.starts_with(l));
            if self.moves.iter().all(|m| inside(&m.target)) {
                return self.finish_generation(group);
            }
        }
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

impl Commit {
    /// Publishes the group's outputs as a new generation (see the module doc):
    ///
    /// 1. an older layout's plain outputs become the group's first generation,
    ///    and each is swapped for its link in one rename (once per data folder);
    /// 2. the new generation: the current one hard-linked, then the staged
    ///    outputs moved in and the removed ones deleted, all synced;
    /// 3. links at the link points the new generation adds (until the switch
    ///    they lead into the old generation, where nothing is: absent, as before);
    /// 4. the switch of `.current/<group>`: the commit point;
    /// 5. the old generation deleted, and links to outputs no longer there.
    fn finish_generation(mut self, group: OutputGroup) -> Result<(), ContractError> {
        let root = self.root.clone();
        let links: Vec<(PathBuf, PathBuf)> = group
            .links
            .iter()
            .map(|l| (l.clone(), link_text(group.name, l)))
            .collect();
        let is_plain = |rel: &Path| {
            fs::symlink_metadata(root.join(rel)).is_ok_and(|m| !m.file_type().is_symlink())
        };
        if current_generation(&root, group.name).is_none() && links.iter().any(|(l, _)| is_plain(l))
        {
            let id = new_generation_id(group.name);
            let first = root.join(GENERATIONS).join(&id);
            self.building = Some(first.clone());
            fs::create_dir_all(&first).map_err(io_err(&first))?;
            for (rel, _) in links.iter().filter(|(l, _)| is_plain(l)) {
                clone_tree(&root.join(rel), &first.join(rel))?;
            }
            sync_tree(&first)?;
            sync_dir(&root.join(GENERATIONS))?;
            switch(&root, group.name, &id)?;
            self.building = None;
            for (rel, text) in links.iter().filter(|(l, _)| is_plain(l)) {
                place_link(text, &root.join(rel))?;
            }
        }
        let old = current_generation(&root, group.name);
        let id = new_generation_id(group.name);
        let new = root.join(GENERATIONS).join(&id);
        self.building = Some(new.clone());
        match &old {
            Some(old) => clone_tree(old, &new)?,
            None => fs::create_dir_all(&new).map_err(io_err(&new))?,
        }
        for m in std::mem::take(&mut self.moves) {
            let target = new.join(&m.target);
            remove_any(&target)?;
            if let Some(staged) = &m.staged {
                if let Some(parent) = target.parent() {
                    fs::create_dir_all(parent).map_err(io_err(parent))?;
                }
                let staged = root.join(staged);
                fs::rename(&staged, &target).map_err(io_err(&target))?;
            }
        }
        sync_tree(&new)?;
        sync_dir(&root.join(GENERATIONS))?;
        for (rel, text) in &links {
            let path = root.join(rel);
            let wanted = fs::read_link(&path).ok().as_deref() == Some(text.as_path());
            if present(&new.join(rel)) && !wanted {
                place_link(text, &path)?;
            }
        }
        switch(&root, group.name, &id)?;
        // Past the commit point: every link point shows the new generation.
        self.done = true;
        self.building = None;
        for (rel, _) in &links {
            let path = root.join(rel);
            if !present(&new.join(rel)) && fs::read_link(&path).is_ok() {
                remove_any(&path)?;
            }
        }
        if let Some(old) = old {
            remove_any(&old)?;
        }
        remove_any(&self.staging)?;
        Ok(())
    }
}

impl Drop for Commit {
    fn drop(&mut self) {
        if !self.done {
            if let Some(building) = self.building.take() {
                let _ = remove_any(&building);
                let _ = fs::remove_dir(self.root.join(GENERATIONS));
            }
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

    fn generations(layout: &Layout) -> usize {
        fs::read_dir(layout.root().join(GENERATIONS)).map_or(0, |d| d.count())
    }

    #[test]
    fn a_group_is_published_as_one_generation_and_old_plain_outputs_are_taken_over() {
        let (_d, layout) = layout();
        let root = layout.root();
        // An older layout: plain outputs of validate, one of them to be kept.
        fs::create_dir_all(root.join("clean")).unwrap();
        fs::write(root.join("clean/quality.parquet"), "old q").unwrap();
        fs::write(root.join("clean/csat.parquet"), "old c").unwrap();
        fs::create_dir_all(root.join("rejected")).unwrap();
        fs::write(
            root.join("rejected/raw_ai_gm_ab_testing.parquet"),
            "extract's",
        )
        .unwrap();

        let mut c = Commit::begin(&layout, "validate").unwrap();
        fs::write(
            c.file(&root.join("clean/quality.parquet")).unwrap(),
            "new q",
        )
        .unwrap();
        fs::write(c.file(&root.join("reports/validation.json")).unwrap(), "{}").unwrap();
        c.finish().unwrap();
        assert!(
            fs::symlink_metadata(root.join("clean"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(
            fs::read_to_string(root.join("clean/quality.parquet")).unwrap(),
            "new q"
        );
        assert_eq!(
            fs::read_to_string(root.join("clean/csat.parquet")).unwrap(),
            "old c",
            "kept"
        );
        assert_eq!(
            fs::read_to_string(root.join("reports/validation.json")).unwrap(),
            "{}"
        );
        // Another group's file in a shared folder is left alone.
        let other = root.join("rejected/raw_ai_gm_ab_testing.parquet");
        assert!(
            !fs::symlink_metadata(&other)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(generations(&layout), 1, "the first generation is gone");

        // A second run: one switch, the old generation deleted, files shared by links.
        let mut c = Commit::begin(&layout, "validate").unwrap();
        fs::write(c.file(&root.join("clean/csat.parquet")).unwrap(), "new c").unwrap();
        c.remove(&root.join("rejected/quality.parquet"));
        c.finish().unwrap();
        assert_eq!(
            fs::read_to_string(root.join("clean/quality.parquet")).unwrap(),
            "new q"
        );
        assert_eq!(
            fs::read_to_string(root.join("clean/csat.parquet")).unwrap(),
            "new c"
        );
        assert_eq!(generations(&layout), 1);

        // A run that fails leaves the generation it was building nowhere.
        let mut c = Commit::begin(&layout, "validate").unwrap();
        fs::write(c.file(&root.join("clean/csat.parquet")).unwrap(), "half").unwrap();
        drop(c);
        assert_eq!(
            fs::read_to_string(root.join("clean/csat.parquet")).unwrap(),
            "new c"
        );
        assert_eq!(generations(&layout), 1);

        // A generation a killed run built and never switched to is deleted by recovery.
        fs::create_dir_all(root.join(GENERATIONS).join("validated-1-2/clean")).unwrap();
        recover(&layout).unwrap();
        assert_eq!(generations(&layout), 1);
        assert_eq!(
            fs::read_to_string(root.join("clean/csat.parquet")).unwrap(),
            "new c"
        );
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
