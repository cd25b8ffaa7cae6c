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
        // SAFETY: the handle came from LGBM_DatasetCreateFromMat and is freed once.
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

/// Trains on a row-major matrix and returns LightGBM's model text.
/// `dataset_params` and `booster_params` are LightGBM's `key=value` strings.
pub fn train(
    x: &[f64],
    y: &[f64],
    n_features: usize,
    dataset_params: &str,
    booster_params: &str,
    iterations: usize,
    on_round: &dyn Fn(),
) -> Result<String, GbmError> {
    let rows = y.len();
    if rows == 0 || n_features == 0 || x.len() != rows * n_features {
        return Err(GbmError(format!(
            "matrix of {} values does not hold {rows} rows of {n_features} features",
            x.len()
        )));
    }
    let rows_i32 = i32::try_from(rows).map_err(|_| GbmError(format!("{rows} rows is too many")))?;
    let cols_i32 = i32::try_from(n_features).map_err(|_| GbmError("too many features".into()))?;
    let labels: Vec<f32> = y.iter().map(|&v| v as f32).collect();
    let dataset_params = c_string(dataset_params)?;
    let booster_params = c_string(booster_params)?;
    let label = c_string("label")?;

    let mut dataset = std::ptr::null_mut();
    // SAFETY: `x` holds rows * n_features f64 values in row-major order (checked
    // above); the parameter strings are NUL-terminated; `dataset` is an out pointer.
    check(unsafe {
        sys::LGBM_DatasetCreateFromMat(
            x.as_ptr() as *const c_void,
            sys::C_API_DTYPE_FLOAT64 as i32,
            rows_i32,
            cols_i32,
            1,
            dataset_params.as_ptr(),
            std::ptr::null_mut(),
            &mut dataset,
        )
    })?;
    let dataset = DatasetHandle(dataset);
    // SAFETY: `labels` holds `rows` f32 values, as the dataset has rows.
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
