use std::path::{Path, PathBuf};

use crate::{ContractError, Dataset, RawTable};

/// Where every file of the pipeline lives under the `--data` root.
#[derive(Clone, Debug)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn raw_root(&self) -> PathBuf {
        self.root.join("raw")
    }

    /// The folder of part files of one raw table.
    pub fn raw_dir(&self, table: RawTable) -> PathBuf {
        self.raw_root().join(table.name())
    }

    /// Rows extract could not read, as their original text.
    pub fn raw_rejected(&self, table: RawTable) -> PathBuf {
        self.root
            .join("rejected")
            .join(format!("raw_{}.parquet", table.name()))
    }

    pub fn training(&self, dataset: Dataset) -> PathBuf {
        self.root
            .join("training")
            .join(format!("{}.parquet", dataset.name()))
    }

    pub fn clean(&self, dataset: Dataset) -> PathBuf {
        self.root
            .join("clean")
            .join(format!("{}.parquet", dataset.name()))
    }

    pub fn rejected(&self, dataset: Dataset) -> PathBuf {
        self.root
            .join("rejected")
            .join(format!("{}.parquet", dataset.name()))
    }

    pub fn reports_dir(&self) -> PathBuf {
        self.root.join("reports")
    }

    pub fn extract_report(&self) -> PathBuf {
        self.reports_dir().join("extract.json")
    }

    pub fn validation_report(&self) -> PathBuf {
        self.reports_dir().join("validation.json")
    }

    pub fn training_report(&self) -> PathBuf {
        self.reports_dir().join("training.json")
    }

    /// The page people read: data, CSAT insights, models (the `report` stage).
    pub fn report_html(&self) -> PathBuf {
        self.reports_dir().join("report.html")
    }

    /// The CSAT insights' headline (the optimal quality range) with its evidence.
    pub fn insights_report(&self) -> PathBuf {
        self.reports_dir().join("insights.json")
    }

    /// One insight table (`csat_by_provider`, `feature_importance`, ...).
    pub fn insight(&self, name: &str) -> PathBuf {
        self.insights_dir().join(format!("{name}.parquet"))
    }

    pub fn models_dir(&self) -> PathBuf {
        self.root.join("models")
    }

    pub fn model_dir(&self, dataset: Dataset) -> PathBuf {
        self.models_dir().join(dataset.name())
    }

    pub fn insights_dir(&self) -> PathBuf {
        self.root.join("insights")
    }

    /// Where incremental extraction remembers how far it got.
    pub fn extract_state(&self) -> PathBuf {
        self.root.join("state").join("extract.json")
    }

    /// The part files of a raw table, in name order. A missing or empty folder
    /// is an error that says what to run.
    pub fn raw_parts(&self, table: RawTable) -> Result<Vec<PathBuf>, ContractError> {
        let dir = self.raw_dir(table);
        let entries = std::fs::read_dir(&dir).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                ContractError::NotFound {
                    path: dir.clone(),
                    hint: "run `extract` or `synth` first".into(),
                }
            } else {
                ContractError::io(&dir, e)
            }
        })?;
        let mut parts = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| ContractError::io(&dir, e))?.path();
            let is_part = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("part-") && n.ends_with(".parquet"));
            if is_part {
                parts.push(path);
            }
        }
        if parts.is_empty() {
            return Err(ContractError::NotFound {
                path: dir.join("part-*.parquet"),
                hint: "no part files; run `extract` or `synth` first".into(),
            });
        }
        parts.sort();
        Ok(parts)
    }

    /// The part files of a raw table that may have none yet: a missing or
    /// empty folder is no parts; a folder that cannot be read is an error
    /// (never "no parts", which would restart part numbering at 0).
    pub fn raw_parts_if_any(&self, table: RawTable) -> Result<Vec<PathBuf>, ContractError> {
        match self.raw_parts(table) {
            Err(ContractError::NotFound { .. }) => Ok(Vec::new()),
            other => other,
        }
    }

    /// The number of the next part file of a table, after every existing one.
    pub fn next_part_index(&self, table: RawTable) -> Result<usize, ContractError> {
        Ok(self
            .raw_parts_if_any(table)?
            .iter()
            .filter_map(|p| {
                p.file_stem()?
                    .to_str()?
                    .strip_prefix("part-")?
                    .parse::<usize>()
                    .ok()
            })
            .max()
            .map_or(0, |last| last + 1))
    }
}

/// Outputs that one stage publishes together, by one atomic switch (see
/// `commit`): each link point (relative to the data folder) is a symbolic link
/// through `.current/<name>` into the group's current generation.
#[derive(Clone, Debug)]
pub struct OutputGroup {
    pub name: &'static str,
    pub links: Vec<PathBuf>,
}

impl Layout {
    /// The output group a stage writes, if its outputs are published as one
    /// generation: synth and extract (the raw tables, their rejects, the extract
    /// report and state), transform (the training datasets), validate (clean and
    /// rejected datasets, the validation report), report (its insight tables,
    /// insights.json and the page, which `serve` answers from while the report
    /// is rewritten). Train publishes model versions through champion links of
    /// its own.
    pub fn output_group(&self, stage: &str) -> Option<OutputGroup> {
        let rel = |p: PathBuf| {
            p.strip_prefix(&self.root)
                .map(Path::to_path_buf)
                .unwrap_or(p)
        };
        let (name, links): (&'static str, Vec<PathBuf>) = match stage {
            "synth" | "extract" => {
                let mut links = vec![self.raw_root()];
                links.extend(RawTable::ALL.iter().map(|t| self.raw_rejected(*t)));
                links.push(self.extract_report());
                links.push(self.extract_state());
                ("raw", links)
            }
            "transform" => ("training", vec![self.root.join("training")]),
            "validate" => {
                let mut links = vec![self.root.join("clean")];
                links.extend(Dataset::ALL.iter().map(|d| self.rejected(*d)));
                links.push(self.validation_report());
                ("validated", links)
            }
            "report" => {
                let mut links: Vec<PathBuf> = crate::reports::insight::BY_REPORT
                    .iter()
                    .map(|t| self.insight(t))
                    .collect();
                links.push(self.insights_report());
                links.push(self.report_html());
                ("reported", links)
            }
            _ => return None,
        };
        Some(OutputGroup {
            name,
            links: links.into_iter().map(rel).collect(),
        })
    }
}

impl Layout {
    /// The stage to run for `path` to exist, as a user would type it: the one
    /// whose output group holds it (see [`Layout::output_group`]), or train
    /// for its report and model folders.
    pub fn writer_of(&self, path: &Path) -> Option<&'static str> {
        let holds = |stage: &str| {
            self.output_group(stage).is_some_and(|group| {
                group
                    .links
                    .iter()
                    .any(|link| path.starts_with(self.root.join(link)))
            })
        };
        if holds("extract") {
            Some("`extract` or `synth`")
        } else if holds("transform") {
            Some("`transform`")
        } else if holds("validate") {
            Some("`validate`")
        } else if holds("report") {
            Some("`report`")
        } else if path == self.training_report() || path.starts_with(self.models_dir()) {
            Some("`train`")
        } else {
            None
        }
    }
}

/// Part files are numbered so that name order is write order.
pub fn part_name(index: usize) -> String {
    format!("part-{index:06}.parquet")
}
