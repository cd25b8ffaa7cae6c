//! Response ids as 128-bit hashes: the key of transform's joins and
//! group-bys, 16 bytes a row instead of the id's text.

use polars::prelude::*;

/// The two halves of a join key's 128-bit hash, the columns the joins and
/// group-bys match on.
pub(crate) const KEY_HI: &str = "__key_hi";
pub(crate) const KEY_LO: &str = "__key_lo";

/// A response id's 128-bit xxh3 hash as its (high, low) halves: the key of
/// the joins and group-bys here, and of [`crate::earliest::Earliest`]'s table.
pub(crate) fn key_halves(id: &str) -> [u64; 2] {
    let hash = xxhash_rust::xxh3::xxh3_128(id.as_bytes());
    [(hash >> 64) as u64, hash as u64]
}

/// `plan` with `column`'s text replaced by its 128-bit xxh3 hash, as two
/// u64 columns ([`KEY_HI`], [`KEY_LO`]; null for a null key). The joins'
/// build sides and the group-by tables hold every response id of a table:
/// 16 bytes a key instead of the id's text (a UUID is 52 bytes as a view and
/// its text). Two distinct ids share a hash with odds of about n^2 / 2^129
/// (1e-23 for 30M ids). A map the streaming engine runs batch by batch.
pub(crate) fn with_key_hash(plan: LazyFrame, column: &'static str) -> LazyFrame {
    let schema = move |input: &Schema| -> PolarsResult<SchemaRef> {
        let mut schema = input.clone();
        schema.shift_remove(column);
        schema.with_column(KEY_HI.into(), DataType::UInt64);
        schema.with_column(KEY_LO.into(), DataType::UInt64);
        Ok(Arc::new(schema))
    };
    plan.map(
        move |df: DataFrame| {
            let keys = df.column(column)?.str()?.clone();
            let hashes: Vec<Option<[u64; 2]>> = keys.iter().map(|k| k.map(key_halves)).collect();
            let mut df = df.drop(column)?;
            df.hstack_mut(&[
                UInt64Chunked::from_iter_options(
                    KEY_HI.into(),
                    hashes.iter().map(|h| h.map(|h| h[0])),
                )
                .into_column(),
                UInt64Chunked::from_iter_options(
                    KEY_LO.into(),
                    hashes.iter().map(|h| h.map(|h| h[1])),
                )
                .into_column(),
            ])?;
            Ok(df)
        },
        OptFlags::STREAMING,
        Some(Arc::new(schema)),
        Some("key hash"),
    )
}

pub(crate) fn key_hash() -> [Expr; 2] {
    [col(KEY_HI), col(KEY_LO)]
}
