//! Fitting LightGBM with categorical features.
//!
//! lightgbm3 1.0 builds every `Dataset` with an empty parameter string, so
//! `categorical_feature` never reaches the bin mappers (LightGBM ignores it in
//! booster parameters once the dataset exists). This module makes the same C
//! API calls lightgbm3 makes, plus the dataset parameters, and hands back the
//! model text, which lightgbm3's safe `Booster` loads for prediction. It is
//! the only unsafe code in the workspace; drop it once lightgbm3 takes
//! dataset parameters.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString, c_char, c_void};

use lightgbm3_sys as sys;

#[derive(Debug, thiserror::Error)]
#[error("LightGBM: {0}")]
pub struct GbmError(String);

fn check(code: i32) -> Result<(), GbmError> {
    if code == 0 {
        return Ok(());
    }
    // SAFETY: LGBM_GetLastError returns a pointer to a NUL-terminated,
    // thread-local buffer that stays valid until the next LightGBM call.
    let message = unsafe { CStr::from_ptr(sys::LGBM_GetLastError()) };
    Err(GbmError(message.to_string_lossy().into_owned()))
}

fn c_string(s: &str) -> Result<CString, GbmError> {
    CString::new(s).map_err(|_| GbmError(format!("parameter string has a NUL byte: {s:?}")))
}

struct DatasetHandle(sys::DatasetHandle);

impl Drop for DatasetHandle {
    fn drop(&mut self) {
        // SAFETY: the handle came from LGBM_DatasetCreateFromSampledColumn and is freed once.
        unsafe {
            sys::LGBM_DatasetFree(self.0);
        }
    }
}

struct BoosterHandle(sys::BoosterHandle);

impl Drop for BoosterHandle {
    fn drop(&mut self) {
        // SAFETY: the handle came from LGBM_BoosterCreate and is freed once.
        unsafe {
            sys::LGBM_BoosterFree(self.0);
        }
    }
}

/// The training rows, row-major: `rows(positions)` gives the feature values
/// of the rows at those positions (0..n), one row after another.
pub type Rows<'a> = &'a dyn Fn(&[usize]) -> Vec<f64>;

/// Rows handed to LightGBM at a time: the float matrix is never whole
/// (a block of 12 features is 6 MiB; LightGBM keeps its rows binned, a byte
/// or two per value).
const BLOCK_ROWS: usize = 65_536;

/// Trains on `n_rows` rows of `n_features` features, fetched a block at a
/// time, and returns LightGBM's model text. `dataset_params` and
/// `booster_params` are LightGBM's `key=value` strings.
#[allow(clippy::too_many_arguments)]
pub fn train(
    n_rows: usize,
    n_features: usize,
    rows: Rows,
    labels: &[f32],
    dataset_params: &str,
    booster_params: &str,
    iterations: usize,
    on_round: &dyn Fn(),
) -> Result<String, GbmError> {
    if n_rows == 0 || n_features == 0 || labels.len() != n_rows {
        return Err(GbmError(format!(
            "{} labels for {n_rows} rows of {n_features} features",
            labels.len()
        )));
    }
    let dataset_params = c_string(dataset_params)?;
    let booster_params = c_string(booster_params)?;

    let dataset = dataset_from_blocks(n_rows, n_features, rows, &dataset_params)?;
    boost(&dataset, labels, &booster_params, iterations, on_round)
}

/// Sets the labels and boosts `iterations` rounds; returns the model text.
fn boost(
    dataset: &DatasetHandle,
    labels: &[f32],
    booster_params: &CString,
    iterations: usize,
    on_round: &dyn Fn(),
) -> Result<String, GbmError> {
    let label = c_string("label")?;
    let rows_i32 = i32::try_from(labels.len()).map_err(|_| GbmError("too many rows".into()))?;
    // SAFETY: `labels` holds one f32 per row of the dataset.
    check(unsafe {
        sys::LGBM_DatasetSetField(
            dataset.0,
            label.as_ptr(),
            labels.as_ptr() as *const c_void,
            rows_i32,
            sys::C_API_DTYPE_FLOAT32 as i32,
        )
    })?;
    let mut booster = std::ptr::null_mut();
    // SAFETY: a valid dataset handle, a NUL-terminated string, an out pointer.
    check(unsafe { sys::LGBM_BoosterCreate(dataset.0, booster_params.as_ptr(), &mut booster) })?;
    let booster = BoosterHandle(booster);
    for _ in 0..iterations {
        let mut finished = 0;
        // SAFETY: a valid booster handle and an out pointer.
        check(unsafe { sys::LGBM_BoosterUpdateOneIter(booster.0, &mut finished) })?;
        on_round();
        if finished == 1 {
            break;
        }
    }
    // Ask for the length first, then fetch the text into a buffer that size.
    let mut len: i64 = 0;
    let mut probe = vec![0 as c_char; 1];
    // SAFETY: the buffer length passed matches `probe`; `len` is an out pointer.
    check(unsafe {
        sys::LGBM_BoosterSaveModelToString(booster.0, 0, -1, 0, 1, &mut len, probe.as_mut_ptr())
    })?;
    let mut buffer = vec![0 as c_char; usize::try_from(len).unwrap_or(0).max(1)];
    // SAFETY: as above, with a buffer of the length LightGBM asked for.
    check(unsafe {
        sys::LGBM_BoosterSaveModelToString(booster.0, 0, -1, 0, len, &mut len, buffer.as_mut_ptr())
    })?;
    // SAFETY: LightGBM wrote a NUL-terminated string into `buffer`.
    let text = unsafe { CStr::from_ptr(buffer.as_ptr()) };
    Ok(text.to_string_lossy().into_owned())
}

/// LightGBM's dataset built as `LGBM_DatasetCreateFromMat` builds it, without
/// the whole matrix: the same sample of rows (LightGBM's own
/// `LGBM_SampleIndices`, by `data_random_seed` and `bin_construct_sample_cnt`)
/// sets the bin boundaries, then the rows are pushed a block at a time. So
/// the bins, and the model, are the ones the whole matrix would give.
/// (~85 lines, a third of them the SAFETY notes of its four C calls.)
fn dataset_from_blocks(
    n_rows: usize,
    n_features: usize,
    rows: Rows,
    params: &CString,
) -> Result<DatasetHandle, GbmError> {
    let rows_i32 =
        i32::try_from(n_rows).map_err(|_| GbmError(format!("{n_rows} rows is too many")))?;
    let cols_i32 = i32::try_from(n_features).map_err(|_| GbmError("too many features".into()))?;
    let mut count = 0;
    // SAFETY: a NUL-terminated string and an out pointer.
    check(unsafe { sys::LGBM_GetSampleCount(rows_i32, params.as_ptr(), &mut count) })?;
    let mut sample = vec![0i32; usize::try_from(count).unwrap_or(0)];
    let mut sampled = 0;
    // SAFETY: `sample` holds the count LightGBM asked for; `sampled` is an out pointer.
    check(unsafe {
        sys::LGBM_SampleIndices(
            rows_i32,
            params.as_ptr(),
            sample.as_mut_ptr() as *mut c_void,
            &mut sampled,
        )
    })?;
    sample.truncate(usize::try_from(sampled).unwrap_or(0));
    let positions: Vec<usize> = sample.iter().map(|&i| i as usize).collect();
    let values = rows(&positions);
    // Per feature, the sampled values LightGBM bins by (zeros are implicit,
    // as in LGBM_DatasetCreateFromMat) and the sample rows they come from.
    let zero = f64::from(1e-35f32);
    let mut column_values: Vec<Vec<f64>> = vec![Vec::new(); n_features];
    let mut column_rows: Vec<Vec<i32>> = vec![Vec::new(); n_features];
    for (i, row) in values.chunks_exact(n_features).enumerate() {
        for (k, &v) in row.iter().enumerate() {
            if v.abs() > zero || v.is_nan() {
                column_values[k].push(v);
                column_rows[k].push(i as i32);
            }
        }
    }
    drop(values);
    let mut value_ptrs: Vec<*mut f64> = column_values.iter_mut().map(|v| v.as_mut_ptr()).collect();
    let mut row_ptrs: Vec<*mut i32> = column_rows.iter_mut().map(|v| v.as_mut_ptr()).collect();
    let per_column: Vec<i32> = column_values.iter().map(|v| v.len() as i32).collect();
    let mut handle = std::ptr::null_mut();
    // SAFETY: one values and one row-index array per feature, each as long as
    // `per_column` says; they outlive the call. The string is NUL-terminated.
    check(unsafe {
        sys::LGBM_DatasetCreateFromSampledColumn(
            value_ptrs.as_mut_ptr(),
            row_ptrs.as_mut_ptr(),
            cols_i32,
            per_column.as_ptr(),
            sampled,
            rows_i32,
            i64::from(rows_i32),
            params.as_ptr(),
            &mut handle,
        )
    })?;
    let dataset = DatasetHandle(handle);
    for start in (0..n_rows).step_by(BLOCK_ROWS) {
        let end = (start + BLOCK_ROWS).min(n_rows);
        let block = rows(&(start..end).collect::<Vec<_>>());
        if block.len() != (end - start) * n_features {
            return Err(GbmError(format!(
                "rows {start}..{end}: {} values for {n_features} features",
                block.len()
            )));
        }
        // SAFETY: `block` holds (end - start) rows of n_features f64 values,
        // row-major (checked above); the dataset has n_rows rows. LightGBM
        // finishes the dataset when the last row arrives.
        check(unsafe {
            sys::LGBM_DatasetPushRows(
                dataset.0,
                block.as_ptr() as *const c_void,
                sys::C_API_DTYPE_FLOAT64 as i32,
                (end - start) as i32,
                cols_i32,
                start as i32,
            )
        })?;
    }
    Ok(dataset)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the rows were handed to LightGBM as before: one whole matrix.
    fn dataset_from_mat(x: &[f64], n_features: usize, params: &CString) -> DatasetHandle {
        let mut handle = std::ptr::null_mut();
        // SAFETY: `x` holds whole rows of n_features f64 values.
        check(unsafe {
            sys::LGBM_DatasetCreateFromMat(
                x.as_ptr() as *const c_void,
                sys::C_API_DTYPE_FLOAT64 as i32,
                (x.len() / n_features) as i32,
                n_features as i32,
                1,
                params.as_ptr(),
                std::ptr::null_mut(),
                &mut handle,
            )
        })
        .unwrap();
        DatasetHandle(handle)
    }

    /// More rows than LightGBM samples for its bins (200 000) and than one
    /// block: the model is byte for byte the one the whole matrix gives.
    #[test]
    fn rows_pushed_in_blocks_give_the_whole_matrix_model() {
        let n = 2 * BLOCK_ROWS + 80_000;
        let width = 4;
        let mut x = Vec::with_capacity(n * width);
        let mut y = Vec::with_capacity(n);
        let mut state = 7u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as f64 / (1u64 << 31) as f64
        };
        for i in 0..n {
            let (a, b) = (next(), next() * 100.0);
            // A missing value now and then, exact zeros, and a category.
            let c = if i % 13 == 0 {
                f64::NAN
            } else {
                (next() * 3.0).floor()
            };
            let d = if i % 5 == 0 { 0.0 } else { next() - 0.5 };
            x.extend([a, b, c, d]);
            y.push(2.0 * a + 0.01 * b + if c == 1.0 { 1.0 } else { 0.0 } + d + 0.1 * next());
        }
        let dataset_params =
            "categorical_feature=2 max_bin=255 verbosity=-1 data_random_seed=3 num_threads=2";
        let booster_params = "objective=regression learning_rate=0.1 num_leaves=31 \
             min_data_in_leaf=20 seed=3 deterministic=true force_row_wise=true verbosity=-1 num_threads=2";
        let rows = |at: &[usize]| {
            at.iter()
                .flat_map(|&r| x[r * width..(r + 1) * width].iter().copied())
                .collect()
        };
        let labels: Vec<f32> = y.iter().map(|&v| v as f32).collect();
        let blocks = train(
            n,
            width,
            &rows,
            &labels,
            dataset_params,
            booster_params,
            20,
            &|| {},
        )
        .unwrap();
        let whole = boost(
            &dataset_from_mat(&x, width, &c_string(dataset_params).unwrap()),
            &labels,
            &c_string(booster_params).unwrap(),
            20,
            &|| {},
        )
        .unwrap();
        assert!(blocks.contains("cat_boundaries="), "the category is one");
        assert_eq!(blocks, whole);
    }
}
