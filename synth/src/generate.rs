//! The generative story: each response has a provider, model and action type,
//! six code metrics and a latent quality; explanations score it, players rate
//! it (CSAT), and A/B tests predict how they will rate it.

use chrono::{DateTime, Utc};
use contract::columns::*;
use contract::io::raw_frame;
use contract::tables::utc_timestamp;
use contract::{RawTable, SYNTH_SOURCE};
use polars::prelude::*;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal, Normal};

struct Provider {
    name: &'static str,
    models: &'static [&'static str],
    /// Added to quality (0-100 points).
    quality_effect: f64,
    /// Added to the CSAT logit.
    csat_effect: f64,
    /// user_rating = intercept + slope * predicted_quality + noise.
    calibration: (f64, f64),
    /// Median response time in ms.
    latency_ms: f64,
}

const PROVIDERS: &[Provider] = &[
    Provider {
        name: "openai",
        models: &["gpt-4o", "gpt-4o-mini"],
        quality_effect: 3.0,
        csat_effect: 0.15,
        calibration: (0.06, 0.85),
        latency_ms: 1400.0,
    },
    Provider {
        name: "anthropic",
        models: &["claude-3-5-sonnet", "claude-3-haiku"],
        quality_effect: 5.0,
        csat_effect: 0.3,
        calibration: (0.12, 0.88),
        latency_ms: 1700.0,
    },
    Provider {
        name: "google",
        models: &["gemini-1.5-pro", "gemini-1.5-flash"],
        quality_effect: 0.0,
        csat_effect: -0.1,
        calibration: (-0.08, 1.05),
        latency_ms: 1100.0,
    },
    Provider {
        name: "local",
        models: &["llama-3-70b"],
        quality_effect: -7.0,
        csat_effect: -0.35,
        calibration: (0.02, 0.7),
        latency_ms: 600.0,
    },
];

/// Action types and their effect on the CSAT logit.
const ACTIONS: &[(&str, f64)] = &[
    ("combat", 0.2),
    ("dialogue", 0.35),
    ("exploration", 0.0),
    ("puzzle", -0.4),
    ("lore", 0.1),
    ("trade", -0.15),
];

const EXPERIMENTS: &[&str] = &["prompt-v2-vs-v1", "temperature-0.3", "context-8k-vs-32k"];
const VARIANTS: &[(&str, f64)] = &[("control", 0.0), ("treatment", 0.03)];

/// Feedback as players write it: commas, quotes, newlines, unicode.
const FEEDBACK_TEXTS: &[&str] = &[
    "Great answer, very clear.",
    "The \"fireball\" rule was wrong, it should be 8d6.",
    "Too long.\nI just wanted the loot table.",
    "Loved the NPC voice — très bien!",
    "Didn't understand the puzzle hint, sorry",
    "🎲 crit success, thanks GM",
    "Answer ignored my character's stats; also, \"advantage\" was mis-applied.",
    "ok",
    "Naïve question maybe, but why can't I trade with the dwarf?\r\nSecond line.",
    "Schnell und hilfreich. 👍",
];

struct Response {
    provider: usize,
    model: &'static str,
    action: usize,
    metrics: [f64; 6],
    /// Latent quality, 0-100.
    quality: f64,
}

pub struct Explanations {
    pub id: Vec<String>,
    pub created_at: Vec<i64>,
    pub provider: Vec<&'static str>,
    pub model: Vec<&'static str>,
    pub action_type: Vec<&'static str>,
    pub scenario_id: Vec<String>,
    pub quality_score: Vec<Option<f64>>,
    pub metadata: Vec<String>,
}

pub struct Feedback {
    pub id: Vec<String>,
    pub created_at: Vec<i64>,
    pub session_id: Vec<String>,
    pub user_id: Vec<String>,
    pub response_id: Vec<String>,
    pub provider: Vec<&'static str>,
    pub model: Vec<&'static str>,
    pub action_type: Vec<&'static str>,
    pub quality_rating: Vec<Option<f64>>,
    pub feedback_text: Vec<Option<&'static str>>,
    pub response_time_ms: Vec<Option<f64>>,
}

pub struct AbTesting {
    pub id: Vec<String>,
    pub created_at: Vec<i64>,
    pub experiment_name: Vec<&'static str>,
    pub variant: Vec<&'static str>,
    pub provider: Vec<&'static str>,
    pub model: Vec<&'static str>,
    pub response_id: Vec<String>,
    pub predicted_quality: Vec<f64>,
    pub user_rating: Vec<Option<f64>>,
}

pub struct Tables {
    pub explanations: Explanations,
    pub feedback: Feedback,
    pub ab_testing: AbTesting,
}

fn uuid(rng: &mut StdRng) -> String {
    let a: u128 = rng.random();
    let h = format!("{a:032x}");
    format!(
        "{}-{}-4{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[16..20],
        &h[20..32]
    )
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn round_to(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

/// Sorted timestamps (µs) spread uniformly over [start, end].
fn timestamps(rng: &mut StdRng, n: usize, start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<i64> {
    let (lo, hi) = (
        start.timestamp_micros(),
        end.timestamp_micros().max(start.timestamp_micros() + 1),
    );
    let mut ts: Vec<i64> = (0..n).map(|_| rng.random_range(lo..hi)).collect();
    ts.sort_unstable();
    ts
}

fn response(rng: &mut StdRng, noise: &Normal<f64>) -> Response {
    let provider = rng.random_range(0..PROVIDERS.len());
    let p = &PROVIDERS[provider];
    let model = *p.models.choose(rng).unwrap_or(&p.models[0]);
    let action = rng.random_range(0..ACTIONS.len());
    let skill = noise.sample(rng);
    let mut metric = |centre: f64, load: f64| {
        (centre + load * skill + 10.0 * noise.sample(rng) + p.quality_effect).clamp(0.0, 100.0)
    };
    let code_quality = metric(70.0, 12.0);
    let test_coverage = metric(60.0, 15.0);
    let security = metric(72.0, 8.0);
    let performance = metric(68.0, 6.0);
    let maintainability = metric(65.0, 10.0);
    let complexity = (50.0 - 8.0 * skill + 15.0 * noise.sample(rng)).clamp(0.0, 100.0);
    // Non-linear: security below ~65 and complexity above 60 hurt sharply.
    let q = 0.30 * code_quality
        + 0.15 * test_coverage
        + 0.15 * security
        + 0.10 * performance
        + 0.20 * maintainability
        + 9.0 * ((security - 65.0) / 8.0).tanh()
        - 0.25 * (complexity - 60.0).max(0.0)
        + 2.0 * p.quality_effect
        + 4.0 * noise.sample(rng);
    Response {
        provider,
        model,
        action,
        metrics: [
            code_quality,
            test_coverage,
            security,
            performance,
            maintainability,
            complexity,
        ],
        quality: q.clamp(0.0, 100.0),
    }
}

/// One chunk of the three tables: `rows` responses, each explained once and
/// A/B tested once (2% re-test an earlier one), and `rows` feedback rows (70%
/// on a tested response), created between `start` and `end`.
pub fn generate(
    rows: usize,
    seed: u64,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> anyhow::Result<Tables> {
    let mut rng = StdRng::seed_from_u64(seed);
    let noise = Normal::new(0.0, 1.0)?;
    let responses: Vec<Response> = (0..rows).map(|_| response(&mut rng, &noise)).collect();
    let response_ids: Vec<String> = (0..rows).map(|_| uuid(&mut rng)).collect();
    let made = Responses {
        responses: &responses,
        ids: &response_ids,
        start,
        end,
    };
    // One generator drawn from in this order: the same seed, the same rows.
    let explanations = made.explanations(&mut rng);
    let (ab_testing, tested) = made.ab_testing(&mut rng, &noise);
    let feedback = made.feedback(&mut rng, &noise, &tested)?;
    Ok(Tables {
        explanations,
        feedback,
        ab_testing,
    })
}

/// A chunk's responses and their ids, and its time window.
struct Responses<'a> {
    responses: &'a [Response],
    ids: &'a [String],
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

impl Responses<'_> {
    /// Explanations: one per response.
    fn explanations(&self, rng: &mut StdRng) -> Explanations {
        let (rows, start, end) = (self.responses.len(), self.start, self.end);
        let scenarios: Vec<String> = (0..40).map(|i| format!("scenario-{i:03}")).collect();
        let created = timestamps(rng, rows, start, end);
        let mut ex = Explanations {
            id: Vec::with_capacity(rows),
            created_at: created,
            provider: Vec::with_capacity(rows),
            model: Vec::with_capacity(rows),
            action_type: Vec::with_capacity(rows),
            scenario_id: Vec::with_capacity(rows),
            quality_score: Vec::with_capacity(rows),
            metadata: Vec::with_capacity(rows),
        };
        for (r, rid) in self.responses.iter().zip(self.ids) {
            ex.id.push(uuid(rng));
            ex.provider.push(PROVIDERS[r.provider].name);
            ex.model.push(r.model);
            ex.action_type.push(ACTIONS[r.action].0);
            ex.scenario_id
                .push(scenarios.choose(rng).cloned().unwrap_or_default());
            ex.quality_score.push(Some(round_to(r.quality / 100.0, 4)));
            let m = r.metrics.map(|v| round_to(v, 1));
            // The keys transform reads, by the contract's names, plus two it ignores.
            let mut meta: serde_json::Map<String, serde_json::Value> = METRICS
                .iter()
                .zip(m)
                .map(|((key, _), v)| (key.to_string(), v.into()))
                .collect();
            meta.insert(METADATA_RESPONSE_ID.into(), rid.clone().into());
            meta.insert("promptTokens".into(), rng.random_range(200..4000).into());
            meta.insert("language".into(), "en".into());
            ex.metadata
                .push(serde_json::Value::Object(meta).to_string());
        }
        ex
    }

    /// A/B rows: one per response, 2% re-testing a response already tested.
    /// Also which response each row tested.
    fn ab_testing(&self, rng: &mut StdRng, noise: &Normal<f64>) -> (AbTesting, Vec<usize>) {
        let (rows, start, end) = (self.responses.len(), self.start, self.end);
        let created = timestamps(rng, rows, start, end);
        let mut ab = AbTesting {
            id: Vec::with_capacity(rows),
            created_at: created,
            experiment_name: Vec::with_capacity(rows),
            variant: Vec::with_capacity(rows),
            provider: Vec::with_capacity(rows),
            model: Vec::with_capacity(rows),
            response_id: Vec::with_capacity(rows),
            predicted_quality: Vec::with_capacity(rows),
            user_rating: Vec::with_capacity(rows),
        };
        let mut tested = Vec::with_capacity(rows);
        for i in 0..rows {
            let which = if i > 0 && rng.random_bool(0.02) {
                rng.random_range(0..i)
            } else {
                i
            };
            tested.push(which);
            let r = &self.responses[which];
            let p = &PROVIDERS[r.provider];
            let (variant, lift) = *VARIANTS.choose(rng).unwrap_or(&VARIANTS[0]);
            let predicted = (r.quality / 100.0 + 0.04 * noise.sample(rng)).clamp(0.0, 1.0);
            let rating =
                (p.calibration.0 + p.calibration.1 * predicted + lift + 0.05 * noise.sample(rng))
                    .clamp(0.0, 1.0);
            ab.id.push(uuid(rng));
            ab.experiment_name
                .push(EXPERIMENTS.choose(rng).copied().unwrap_or(EXPERIMENTS[0]));
            ab.variant.push(variant);
            ab.provider.push(p.name);
            ab.model.push(r.model);
            ab.response_id.push(self.ids[which].clone());
            ab.predicted_quality.push(round_to(predicted, 4));
            ab.user_rating.push(Some(round_to(rating, 4)));
        }
        (ab, tested)
    }

    /// Feedback: 70% rate a response that was A/B tested, the rest one that was not.
    fn feedback(
        &self,
        rng: &mut StdRng,
        noise: &Normal<f64>,
        tested: &[usize],
    ) -> anyhow::Result<Feedback> {
        let (rows, start, end) = (self.responses.len(), self.start, self.end);
        let created = timestamps(rng, rows, start, end);
        let mut fb = Feedback {
            id: Vec::with_capacity(rows),
            created_at: created,
            session_id: Vec::with_capacity(rows),
            user_id: Vec::with_capacity(rows),
            response_id: Vec::with_capacity(rows),
            provider: Vec::with_capacity(rows),
            model: Vec::with_capacity(rows),
            action_type: Vec::with_capacity(rows),
            quality_rating: Vec::with_capacity(rows),
            feedback_text: Vec::with_capacity(rows),
            response_time_ms: Vec::with_capacity(rows),
        };
        let sessions: Vec<String> = (0..rows.div_ceil(8).max(1)).map(|_| uuid(rng)).collect();
        let users: Vec<String> = (0..rows.div_ceil(20).max(1)).map(|_| uuid(rng)).collect();
        for _ in 0..rows {
            let fresh;
            let (r, rid) = if rng.random_bool(0.7) {
                let j = tested[rng.random_range(0..rows)];
                (&self.responses[j], self.ids[j].clone())
            } else {
                fresh = response(rng, noise);
                (&fresh, uuid(rng))
            };
            let p = &PROVIDERS[r.provider];
            let latency = LogNormal::new(p.latency_ms.ln(), 0.5)?.sample(rng);
            let logit =
                -0.2 + 6.0 * (r.quality / 100.0 - 0.6) + p.csat_effect + ACTIONS[r.action].1
                    - 0.8 * (latency / 1000.0).ln();
            let rating = (sigmoid(logit) + 0.06 * noise.sample(rng)).clamp(0.0, 1.0);
            fb.id.push(uuid(rng));
            fb.session_id
                .push(sessions.choose(rng).cloned().unwrap_or_default());
            fb.user_id
                .push(users.choose(rng).cloned().unwrap_or_default());
            fb.response_id.push(rid);
            fb.provider.push(p.name);
            fb.model.push(r.model);
            fb.action_type.push(ACTIONS[r.action].0);
            fb.quality_rating.push(Some(round_to(rating, 3)));
            fb.feedback_text.push(if rng.random_bool(0.6) {
                FEEDBACK_TEXTS.choose(rng).copied()
            } else {
                None
            });
            fb.response_time_ms.push(if rng.random_bool(0.95) {
                Some(latency.round())
            } else {
                None
            });
        }
        Ok(fb)
    }
}

fn text<S: AsRef<str>>(name: &str, values: &[S]) -> Column {
    Column::new(
        name.into(),
        values.iter().map(|s| s.as_ref()).collect::<Vec<_>>(),
    )
}

fn time(name: &str, values: &[i64]) -> PolarsResult<Column> {
    Column::new(name.into(), values).cast(&utc_timestamp())
}

impl Tables {
    /// The three raw frames, tagged `_source = synth`.
    pub fn frames(&self, extracted_at: DateTime<Utc>) -> PolarsResult<Vec<(RawTable, DataFrame)>> {
        let lineage = |n: usize| -> PolarsResult<Vec<Column>> {
            Ok(vec![
                Column::new(SOURCE.into(), vec![SYNTH_SOURCE; n]),
                Column::new(
                    EXTRACTED_AT.into(),
                    vec![extracted_at.timestamp_micros(); n],
                )
                .cast(&utc_timestamp())?,
            ])
        };
        let ex = &self.explanations;
        let n = ex.id.len();
        let mut cols = vec![
            text(ID, &ex.id),
            time(CREATED_AT, &ex.created_at)?,
            text(PROVIDER, &ex.provider),
            text(MODEL, &ex.model),
            text(ACTION_TYPE, &ex.action_type),
            text(SCENARIO_ID, &ex.scenario_id),
            Column::new(QUALITY_SCORE.into(), &ex.quality_score),
            text(METADATA, &ex.metadata),
        ];
        cols.extend(lineage(n)?);
        let explanations = raw_frame(RawTable::Explanations, cols, n)?;

        let fb = &self.feedback;
        let n = fb.id.len();
        let mut cols = vec![
            text(ID, &fb.id),
            time(CREATED_AT, &fb.created_at)?,
            text(SESSION_ID, &fb.session_id),
            text(USER_ID, &fb.user_id),
            text(RESPONSE_ID, &fb.response_id),
            text(PROVIDER, &fb.provider),
            text(MODEL, &fb.model),
            text(ACTION_TYPE, &fb.action_type),
            Column::new(QUALITY_RATING.into(), &fb.quality_rating),
            Column::new(FEEDBACK_TEXT.into(), &fb.feedback_text),
            Column::new(RESPONSE_TIME_MS.into(), &fb.response_time_ms),
        ];
        cols.extend(lineage(n)?);
        let feedback = raw_frame(RawTable::Feedback, cols, n)?;

        let ab = &self.ab_testing;
        let n = ab.id.len();
        let mut cols = vec![
            text(ID, &ab.id),
            time(CREATED_AT, &ab.created_at)?,
            text(EXPERIMENT_NAME, &ab.experiment_name),
            text(VARIANT, &ab.variant),
            text(PROVIDER, &ab.provider),
            text(MODEL, &ab.model),
            text(RESPONSE_ID, &ab.response_id),
            Column::new(PREDICTED_QUALITY.into(), &ab.predicted_quality),
            Column::new(USER_RATING.into(), &ab.user_rating),
        ];
        cols.extend(lineage(n)?);
        let ab_testing = raw_frame(RawTable::AbTesting, cols, n)?;

        Ok(vec![
            (RawTable::Explanations, explanations),
            (RawTable::Feedback, feedback),
            (RawTable::AbTesting, ab_testing),
        ])
    }
}
