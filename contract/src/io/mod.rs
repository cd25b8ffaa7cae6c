//! Reading and writing the pipeline's files. Reads name the file in every
//! error (`read`); writes go to a temporary file beside the target and are
//! renamed over it, so a crash never leaves half a file (`write`). The
//! tests here write and read back.

mod read;
mod write;

pub use self::read::*;
pub use self::write::*;

#[cfg(test)]
mod tests {
    use std::fs::{self, File};
    use std::path::Path;

    use polars::prelude::*;

    use super::*;
    use crate::tables::{Kind, utc_timestamp};
    use crate::{ContractError, Layout, RawTable};

    #[test]
    fn a_missing_input_names_the_stage_that_writes_it() {
        let dir = tempfile::tempdir().unwrap();
        let layout = crate::Layout::new(dir.path());
        let hint = |path: &Path| match read_json::<serde_json::Value>(path) {
            Err(ContractError::NotFound { hint, .. }) => hint,
            other => panic!("{}: {other:?}", path.display()),
        };
        let q = crate::Dataset::Quality;
        assert_eq!(hint(&layout.training(q)), "run `transform` first");
        assert_eq!(hint(&layout.clean(q)), "run `validate` first");
        assert_eq!(hint(&layout.rejected(q)), "run `validate` first");
        assert_eq!(hint(&layout.validation_report()), "run `validate` first");
        assert_eq!(
            hint(&layout.extract_report()),
            "run `extract` or `synth` first"
        );
        assert_eq!(hint(&layout.training_report()), "run `train` first");
        // extract writes the raw rows it could not parse into rejected/ too.
        assert_eq!(
            hint(&layout.raw_rejected(crate::RawTable::AbTesting)),
            "run `extract` or `synth` first"
        );
        assert_eq!(hint(&layout.insights_report()), "run `report` first");
        assert_eq!(
            hint(&dir.path().join("elsewhere.json")),
            "run the stage that writes it first"
        );
    }

    #[test]
    fn write_then_read_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/x.parquet");
        let mut df = df!("a" => [1.0, 2.0], "b" => ["x", "y"]).unwrap();
        write_parquet(&mut df, &path).unwrap();
        assert_eq!(read_parquet(&path).unwrap(), df);
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("x.parquet")]);
    }

    /// The row-group writer on the shapes frames arrive in: chunks that line
    /// up or not, larger and smaller than a row group, many tiny ones, nulls,
    /// every type the contract uses, no rows. Read back, each is the frame;
    /// polars' metadata agrees on the rows.
    #[test]
    fn parallel_writer_round_trips_every_chunk_shape() {
        let dir = tempfile::tempdir().unwrap();
        let part = |rows: usize, offset: usize| {
            let id: Vec<Option<String>> = (0..rows)
                .map(|i| (i % 7 != 0).then(|| format!("id-{}", offset + i)))
                .collect();
            let x: Vec<Option<f64>> = (0..rows)
                .map(|i| (i % 5 != 0).then_some((offset + i) as f64 / 3.0))
                .collect();
            let provider: Vec<&str> = (0..rows).map(|i| ["a", "b", "c"][i % 3]).collect();
            let t: Vec<i64> = (0..rows).map(|i| (offset + i) as i64 * 1_000_000).collect();
            let mut df = df!("id" => id, "x" => x, "provider" => provider, "t" => t).unwrap();
            df.with_column(df.column("t").unwrap().cast(&utc_timestamp()).unwrap())
                .unwrap();
            df
        };
        let stacked = |sizes: &[usize]| {
            let mut offset = 0;
            let mut all: Option<DataFrame> = None;
            for &n in sizes {
                let df = part(n, offset);
                offset += n;
                match all.as_mut() {
                    None => all = Some(df),
                    Some(acc) => {
                        acc.vstack_mut(&df).unwrap();
                    }
                }
            }
            all.unwrap()
        };
        let mut misaligned = stacked(&[300_000, 1]);
        misaligned
            .with_column(Column::new("y".into(), vec![1.5; 300_001]))
            .unwrap();
        let cases = [
            (
                "one chunk, three row groups",
                stacked(&[ROW_GROUP_ROWS * 2 + 17]),
            ),
            (
                "uneven chunks",
                stacked(&[ROW_GROUP_ROWS + 1, 5, ROW_GROUP_ROWS]),
            ),
            ("many tiny chunks", stacked(&[10; 200])),
            ("misaligned chunks", misaligned),
            ("no rows", part(0, 0)),
        ];
        for (name, df) in cases {
            for write in [write_parquet, write_parquet_fast] {
                let path = dir.path().join("x.parquet");
                let mut copy = df.clone();
                write(&mut copy, &path).unwrap();
                let back = read_parquet(&path).unwrap();
                assert!(back.equals_missing(&df), "{name}");
                let mut reader = ParquetReader::new(File::open(&path).unwrap());
                assert_eq!(reader.num_rows().unwrap(), df.height(), "{name}");
            }
        }
    }

    #[test]
    fn corrupt_file_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.parquet");
        fs::write(&path, b"not parquet at all").unwrap();
        let err = read_parquet(&path).unwrap_err().to_string();
        assert!(
            err.contains("bad.parquet") && err.contains("not a readable Parquet file"),
            "{err}"
        );
    }

    #[test]
    fn conform_casts_and_rejects() {
        let path = Path::new("t.parquet");
        let df = df!("n" => [1i64, 2], "s" => ["a", "b"]).unwrap();
        let ok = conform(df.clone(), &[("n", Kind::Number)], path).unwrap();
        assert_eq!(ok.column("n").unwrap().dtype(), &DataType::Float64);
        let err = conform(df.clone(), &[("s", Kind::Number)], path)
            .unwrap_err()
            .to_string();
        assert_eq!(err, "t.parquet: column `s` has type str, expected f64");
        let err = conform(df, &[("zz", Kind::Text)], path)
            .unwrap_err()
            .to_string();
        assert_eq!(err, "t.parquet: missing column `zz`");
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;
        use crate::columns::*;

        /// id, created_at, experiment_name, _extra, predicted_quality, user_rating.
        type RawRow = (
            Option<String>,
            Option<i64>,
            Option<String>,
            Option<String>,
            Option<f64>,
            Option<f64>,
        );

        fn text() -> impl Strategy<Value = Option<String>> {
            prop_oneof![4 => "\\PC{0,12}".prop_map(Some), 1 => Just(None)]
        }

        fn number() -> impl Strategy<Value = Option<f64>> {
            prop_oneof![
                4 => any::<f64>().prop_map(Some),
                1 => prop_oneof![Just(f64::NAN), Just(f64::INFINITY), Just(-0.0)].prop_map(Some),
                1 => Just(None),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]
            /// Arbitrary rows written as a raw part and read back are the same rows.
            #[test]
            fn raw_rows_round_trip(rows in proptest::collection::vec(
                (text(), prop_oneof![Just(None), (-62_000_000_000_000_000i64..250_000_000_000_000_000).prop_map(Some)],
                 text(), text(), number(), number()), 0..40)
            ) {
                let dir = tempfile::tempdir().unwrap();
                let layout = Layout::new(dir.path());
                let table = RawTable::AbTesting;
                let n = rows.len();
                let texts = |f: fn(&RawRow) -> Option<String>| rows.iter().map(f).collect::<Vec<_>>();
                let columns = vec![
                    Column::new(ID.into(), texts(|r| r.0.clone())),
                    Column::new(CREATED_AT.into(), rows.iter().map(|r| r.1).collect::<Vec<_>>())
                        .cast(&crate::tables::utc_timestamp()).unwrap(),
                    Column::new(EXPERIMENT_NAME.into(), texts(|r| r.2.clone())),
                    Column::new(EXTRA.into(), texts(|r| r.3.clone())),
                    Column::new(PREDICTED_QUALITY.into(), rows.iter().map(|r| r.4).collect::<Vec<_>>()),
                    Column::new(USER_RATING.into(), rows.iter().map(|r| r.5).collect::<Vec<_>>()),
                ];
                let mut frame = raw_frame(table, columns, n).unwrap();
                let part = layout.raw_dir(table).join(crate::layout::part_name(0));
                write_parquet(&mut frame, &part).unwrap();
                let back = read_raw(&layout, table).unwrap();
                prop_assert_eq!(back.height(), n);
                for (a, b) in frame.columns().iter().zip(back.columns()) {
                    prop_assert_eq!(a.name(), b.name());
                    prop_assert_eq!(a.dtype(), b.dtype());
                    if a.dtype() == &DataType::Float64 {
                        let bits = |c: &Column| c.f64().unwrap().iter().map(|v| v.map(f64::to_bits)).collect::<Vec<_>>();
                        prop_assert_eq!(bits(a), bits(b));
                    } else {
                        prop_assert!(a.equals_missing(b), "{} differs", a.name());
                    }
                }
            }
        }
    }
}
