//! The models being served, and how they follow the champions on disk.
//!
//! Each model's champion (`data/models/<model>`) is loaded once into a
//! [`Served`]: its card and LightGBM's model text, checked by loading and
//! predicting with it before anything is swapped. A request takes an `Arc`
//! of the current `Served` and is answered wholly by it, so a switch never
//! mixes versions within a request. A watcher thread looks at the champion
//! links every `--reload-every`; a new champion is loaded beside the old one
//! and swapped in one step, and one that cannot load is refused: the service
//! keeps what it has and says so in its log and in `/readyz`, as it does
//! when the champion goes from disk.
//!
//! LightGBM's booster is a raw handle, neither `Send` nor `Sync`, so each
//! worker thread keeps its own booster per served version ([`with_fitted`]),
//! built from the shared model text the first time that thread needs it.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use contract::registry::{self, Version};
use contract::{Dataset, Layout};
use model::artifact::{self, ModelCard};
use model::features::{Categorical, Data};
use model::models::Fitted;

/// One loaded champion.
pub struct Served {
    pub dataset: Dataset,
    /// None for a model of the layout before versions.
    pub version: Option<Version>,
    pub card: ModelCard,
    /// The version folder it was loaded from.
    pub dir: PathBuf,
    pub loaded_at: DateTime<Utc>,
    /// Told apart from every other load, for the per-thread boosters.
    generation: u64,
    model_text: Option<Arc<str>>,
}

impl Served {
    /// `v0003`, or `unversioned` for the layout before versions.
    pub fn label(&self) -> String {
        self.version
            .map_or_else(|| "unversioned".to_string(), |v| v.to_string())
    }
}

/// What the watcher knows of one model beyond the served version.
#[derive(Clone, Debug, Default)]
pub struct Note {
    /// The last champion on disk that could not be loaded, and why.
    pub refused: Option<String>,
    /// Why nothing is served (no champion yet, or the first load failed).
    pub missing: Option<String>,
}

struct Slot {
    served: RwLock<Option<Arc<Served>>>,
    note: RwLock<Note>,
    /// What was last looked at on disk, loaded or refused: unchanged files
    /// are not loaded (or refused) again.
    seen: RwLock<Option<Identity>>,
}

/// The models, one slot each.
pub struct Live {
    layout: Layout,
    slots: [Slot; 3],
    next_generation: std::sync::atomic::AtomicU64,
}

/// A model folder's identity on disk: where the champion points and the size
/// and time of each of its files.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Identity {
    dir: PathBuf,
    files: Vec<(String, u64, Option<SystemTime>)>,
}

fn identity(link: &Path) -> Option<Identity> {
    let dir = registry::resolve(link).ok()?;
    let mut files: Vec<(String, u64, Option<SystemTime>)> = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            Some((
                e.file_name().to_string_lossy().into_owned(),
                meta.len(),
                meta.modified().ok(),
            ))
        })
        .collect();
    files.sort();
    Some(Identity { dir, files })
}

fn index(dataset: Dataset) -> usize {
    Dataset::ALL
        .iter()
        .position(|d| *d == dataset)
        .unwrap_or_default()
}

impl Live {
    pub fn new(layout: Layout) -> Self {
        let slot = || Slot {
            served: RwLock::new(None),
            note: RwLock::new(Note::default()),
            seen: RwLock::new(None),
        };
        Self {
            layout,
            slots: [slot(), slot(), slot()],
            next_generation: std::sync::atomic::AtomicU64::new(1),
        }
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// `quality v0002, csat v0002, performance none`, for the log.
    pub fn summary(&self) -> String {
        Dataset::ALL
            .into_iter()
            .map(|d| {
                let label = self.current(d).map_or_else(|| "none".into(), |s| s.label());
                format!("{d} {label}")
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The version answering requests for `dataset` now.
    pub fn current(&self, dataset: Dataset) -> Option<Arc<Served>> {
        self.slots[index(dataset)]
            .served
            .read()
            .ok()
            .and_then(|s| s.clone())
    }

    pub fn note(&self, dataset: Dataset) -> Note {
        self.slots[index(dataset)]
            .note
            .read()
            .map(|n| n.clone())
            .unwrap_or_default()
    }

    /// Looks at every champion on disk and loads those that changed; returns
    /// one log line per change (loaded, switched, refused).
    pub fn refresh(&self) -> Vec<String> {
        Dataset::ALL
            .into_iter()
            .filter_map(|d| self.refresh_one(d))
            .collect()
    }

    fn refresh_one(&self, dataset: Dataset) -> Option<String> {
        let slot = &self.slots[index(dataset)];
        let link = self.layout.model_dir(dataset);
        let Some(id) = identity(&link) else {
            let Some(served) = self.current(dataset) else {
                slot.note.write().ok()?.missing = Some(format!(
                    "{}: {}",
                    link.display(),
                    registry::no_champion_yet(&self.layout, dataset)
                ));
                return None;
            };
            // The champion went from disk (the data folder removed or moved):
            // keep answering with what is loaded, and say so once. Forgetting
            // what was seen loads it again should it come back.
            slot.seen.write().ok()?.take()?;
            slot.note.write().ok()?.refused = Some(format!(
                "{}: no champion on disk any more; still serving {}",
                link.display(),
                served.label()
            ));
            return Some(format!(
                "serve: {dataset}: the champion on disk is gone ({}), still serving {}",
                link.display(),
                served.label()
            ));
        };
        if slot.seen.read().ok()?.as_ref() == Some(&id) {
            return None;
        }
        *slot.seen.write().ok()? = Some(id.clone());
        let generation = self
            .next_generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let current = self.current(dataset);
        match load(dataset, &id.dir, generation) {
            Ok(served) => {
                let line = match &current {
                    Some(old) if old.dir == served.dir => format!(
                        "serve: {dataset}: serving {} again, from {}",
                        served.label(),
                        served.dir.display()
                    ),
                    Some(old) => format!(
                        "serve: {dataset}: now serving {} (was {})",
                        served.label(),
                        old.label()
                    ),
                    None => format!("serve: {dataset}: serving {}", served.label()),
                };
                *slot.served.write().ok()? = Some(Arc::new(served));
                *slot.note.write().ok()? = Note::default();
                Some(line)
            }
            Err(e) => {
                let reason = format!("{}: {e:#}", id.dir.display());
                let line = match &current {
                    Some(old) => format!(
                        "serve: {dataset}: refused the champion on disk, still serving {}: {reason}",
                        old.label()
                    ),
                    None => format!("serve: {dataset}: nothing to serve: {reason}"),
                };
                let mut note = slot.note.write().ok()?;
                if current.is_some() {
                    note.refused = Some(reason);
                } else {
                    note.missing = Some(reason);
                }
                Some(line)
            }
        }
    }
}

/// Loads a model folder, checks that it predicts, and keeps what each worker
/// thread needs to build its own booster.
fn load(dataset: Dataset, dir: &Path, generation: u64) -> Result<Served> {
    let (card, fitted) = artifact::load(dir)?;
    if card.dataset() != Some(dataset) {
        anyhow::bail!("holds the `{}` model, not {dataset}", card.model);
    }
    // A row with every feature missing: any whole model predicts a finite number.
    let blank = blank_row(dataset);
    let p = fitted
        .predict(dataset, &card.encoding.encode(&blank), &[0])
        .context("predicting a test row")?;
    if !p.first().is_some_and(|v| v.is_finite()) {
        anyhow::bail!("predicts {p:?} for a test row");
    }
    let version = card.version;
    Ok(Served {
        dataset,
        version,
        model_text: fitted.model_text.map(Arc::from),
        card,
        dir: dir.to_path_buf(),
        loaded_at: Utc::now(),
        generation,
    })
}

fn blank_row(dataset: Dataset) -> Data {
    Data {
        rows: 1,
        numeric: vec![vec![f64::NAN]; dataset.numeric_features().len()],
        categorical: dataset
            .categorical_features()
            .iter()
            .map(|_| Categorical::from_values([None]))
            .collect(),
        target: Vec::new(),
    }
}

thread_local! {
    /// This thread's fitted model per dataset, with the generation it was built for.
    static FITTED: RefCell<[Option<(u64, Fitted)>; 3]> = const { RefCell::new([None, None, None]) };
}

/// Runs `f` with this thread's fitted model for `served`, building it from
/// the model text when the thread has none for this version.
pub fn with_fitted<R>(served: &Served, f: impl FnOnce(&Fitted) -> Result<R>) -> Result<R> {
    FITTED.with(|cell| {
        let mut slots = cell.borrow_mut();
        let slot = &mut slots[index(served.dataset)];
        if slot.as_ref().map(|(g, _)| *g) != Some(served.generation) {
            let fitted = Fitted::load(
                served.card.algorithm,
                served.card.params.clone(),
                served.model_text.as_deref().map(str::to_string),
            )?
            .with_predict_threads(1);
            *slot = Some((served.generation, fitted));
        }
        match slot.as_ref() {
            Some((_, fitted)) => f(fitted),
            None => anyhow::bail!("no model on this thread"),
        }
    })
}

/// Watches the champions until the process ends.
pub fn watch(live: Arc<Live>, every: Duration) {
    std::thread::Builder::new()
        .name("champion-watch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(every);
                for line in live.refresh() {
                    eprintln!("{line}");
                }
            }
        })
        .map(|_| ())
        .unwrap_or_else(|e| eprintln!("serve: cannot watch the champions: {e}"));
}
