//! How far incremental collection got, per source and table: the greatest
//! (created_at, id) written, never past the run's start. Committed together
//! with the data it describes.

use std::collections::BTreeMap;

use anyhow::Result;
use chrono::{DateTime, Utc};
use contract::{Layout, RawTable, io};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub created_at: DateTime<Utc>,
    pub id: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ExtractState {
    /// source -> table -> position
    pub sources: BTreeMap<String, BTreeMap<String, Position>>,
}

impl ExtractState {
    pub fn resume_point(&self, source: &str, table: RawTable) -> Option<(DateTime<Utc>, String)> {
        self.sources
            .get(source)?
            .get(table.name())
            .map(|p| (p.created_at, p.id.clone()))
    }

    pub fn advance(&mut self, source: &str, table: RawTable, created_at_us: i64, id: String) {
        let Some(created_at) = DateTime::from_timestamp_micros(created_at_us) else {
            return;
        };
        let entry = self.sources.entry(source.to_string()).or_default();
        let new = Position { created_at, id };
        match entry.get(table.name()) {
            Some(old) if (old.created_at, &old.id) >= (new.created_at, &new.id) => {}
            _ => {
                entry.insert(table.name().to_string(), new);
            }
        }
    }
}

pub fn load(layout: &Layout) -> Result<ExtractState> {
    let path = layout.extract_state();
    if !path.exists() {
        return Ok(ExtractState::default());
    }
    Ok(io::read_json(&path)?)
}

/// Writes the state to `path` (the staged copy of DATA/state/extract.json).
pub fn save(state: &ExtractState, path: &std::path::Path) -> Result<()> {
    io::write_json(state, path)?;
    Ok(())
}
