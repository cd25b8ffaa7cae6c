//! The PostgreSQL path against a real server: `make test` starts a throwaway
//! one (tests/with-postgres.sh) and exports DATABASE_URL. Without it these
//! tests say they were skipped, except in CI, where that is a failure.

use std::collections::HashSet;
use std::path::Path;

use contract::columns::*;
use contract::reports::Reason;
use postgres::{Client, NoTls};
use tempfile::tempdir;

use crate::common::*;

/// A fresh database for one test on the server in DATABASE_URL (panics without one).
fn database(name: &str) -> (String, Client) {
    // These tests need a server: without one they fail, never pass silently.
    let Ok(admin_url) = std::env::var("DATABASE_URL") else {
        panic!(
            "{name}: DATABASE_URL is not set; run the tests with `make test`, which starts a \
             throwaway PostgreSQL (apt-get install postgresql)"
        );
    };
    let db = format!("gm_{name}_{}", std::process::id());
    let mut admin = Client::connect(&admin_url, NoTls).expect("connect to DATABASE_URL");
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db}"))
        .unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .unwrap();
    let (base, _) = admin_url.rsplit_once('/').expect("URL with a database");
    let url = format!("{base}/{db}");
    let mut client = Client::connect(&url, NoTls).unwrap();
    client
        .batch_execute(
            "CREATE TABLE ai_gm_explanations (
                 id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
                 created_at timestamptz NOT NULL DEFAULT now(),
                 provider text, model text, action_type text, scenario_id text,
                 quality_score double precision, metadata jsonb, user_agent text);
             CREATE TABLE ai_gm_quality_feedback (
                 id bigserial PRIMARY KEY,
                 created_at timestamptz NOT NULL DEFAULT now(),
                 session_id text, user_id uuid, response_id text,
                 provider text, model text, action_type text,
                 quality_rating numeric, feedback_text text, response_time_ms integer);
             CREATE TABLE ai_gm_ab_testing (
                 id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
                 created_at timestamptz NOT NULL DEFAULT now(),
                 experiment_name text, variant text, provider text, model text,
                 response_id text, predicted_quality real, user_rating numeric(4,3));",
        )
        .unwrap();
    (url, client)
}

/// `n` rows per table from `start`, created_at in runs of 25 equal values,
/// with learnable signal for the models.
fn insert(client: &mut Client, start: i64, n: i64) {
    client
        .execute(
            "INSERT INTO ai_gm_explanations (created_at, provider, model, action_type, scenario_id, quality_score, metadata, user_agent)
             SELECT now() - interval '2 days' + (i / 25) * interval '1 second',
                    (ARRAY['openai','anthropic','google'])[1 + i % 3], 'm' || (i % 2), (ARRAY['combat','lore'])[1 + i % 2], 's',
                    (40 + (i * 7) % 50 + (i % 3) * 3) / 100.0,
                    jsonb_build_object('codeQuality', 40 + (i * 7) % 50, 'testCoverage', 50 + i % 30, 'security', 70,
                                       'performance', 60 + i % 10, 'maintainability', 55, 'complexity', 30 + i % 40,
                                       'responseId', 'r-' || i),
                    'agent/' || i
             FROM generate_series($1::bigint, $1::bigint + $2::bigint - 1) AS i",
            &[&start, &n],
        )
        .unwrap();
    client
        .execute(
            "INSERT INTO ai_gm_quality_feedback (created_at, session_id, user_id, response_id, provider, model, action_type,
                                                 quality_rating, feedback_text, response_time_ms)
             SELECT now() - interval '2 days' + (i / 25) * interval '1 second', 's' || (i % 10), gen_random_uuid(), 'r-' || i,
                    (ARRAY['openai','anthropic','google'])[1 + i % 3], 'm' || (i % 2), (ARRAY['combat','lore'])[1 + i % 2],
                    round(((i * 7) % 50 + 30 + (i % 3) * 5) / 100.0, 3),
                    E'Great, \"quoted\"\\nsecond line 🎲 ' || i, 500 + (i % 7) * 100
             FROM generate_series($1::bigint, $1::bigint + $2::bigint - 1) AS i",
            &[&start, &n],
        )
        .unwrap();
    client
        .execute(
            "INSERT INTO ai_gm_ab_testing (created_at, experiment_name, variant, provider, model, response_id, predicted_quality, user_rating)
             SELECT now() - interval '2 days' + (i / 25) * interval '1 second', 'exp' || (i % 2), (ARRAY['control','treatment'])[1 + i % 2],
                    (ARRAY['openai','anthropic','google'])[1 + i % 3], 'm' || (i % 2), 'r-' || i,
                    ((i * 7) % 50 + 40) / 100.0, round(((i * 7) % 50 + 35 + (i % 3) * 4) / 100.0, 3)
             FROM generate_series($1::bigint, $1::bigint + $2::bigint - 1) AS i",
            &[&start, &n],
        )
        .unwrap();
}

/// `extract --source postgres` from `url` into `data`.
fn extract_command(url: &str, data: &Path, extra: &[&str]) -> std::process::Command {
    let mut cmd = bin("extract");
    cmd.args(["--data", data.to_str().unwrap(), "--source", "postgres"])
        .args(extra)
        .env("DATABASE_URL", url);
    cmd
}

fn extract(url: &str, data: &Path, extra: &[&str]) -> std::process::Output {
    ok(&mut extract_command(url, data, extra))
}

#[test]
fn postgres_streams_every_row_once_with_faithful_types() {
    let (url, mut client) = database("stream");
    insert(&mut client, 0, 3000);
    let data = tempdir().unwrap();
    let said = stdout(&extract(&url, data.path(), &[]));
    // A column the contract does not name is kept in _extra, and said so.
    assert!(
        said.contains(
            "extract: ai_gm_explanations       `user_agent` not in the table's contract \
             (DESIGN.md): kept in each row's `_extra`, read by no stage"
        ),
        "{said}"
    );
    let tables = extract_report(data.path()).tables;
    assert_eq!(tables["ai_gm_explanations"].extra_columns, ["user_agent"]);
    assert!(tables["ai_gm_ab_testing"].extra_columns.is_empty());
    for table in [
        "ai_gm_explanations",
        "ai_gm_quality_feedback",
        "ai_gm_ab_testing",
    ] {
        let ids = raw_ids(data.path(), table);
        let unique: HashSet<_> = ids.iter().collect();
        assert_eq!(
            (ids.len(), unique.len()),
            (3000, 3000),
            "{table}: every row exactly once"
        );
        let want: HashSet<String> = client
            .query(&format!("SELECT id::text FROM {table}"), &[])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(
            unique.into_iter().cloned().collect::<HashSet<_>>(),
            want,
            "{table}: the same ids"
        );
    }
    let fb = read(
        data.path()
            .join("raw/ai_gm_quality_feedback/part-000000.parquet"),
    );
    assert_eq!(
        strs(&fb, FEEDBACK_TEXT)[0].as_deref(),
        Some("Great, \"quoted\"\nsecond line 🎲 0")
    );
    assert_eq!(nums(&fb, RESPONSE_TIME_MS)[0], Some(500.0));
    assert_eq!(strs(&fb, SOURCE)[0].as_deref(), Some("postgres"));
    let row = client
        .query_one(
            "SELECT quality_rating::float8, (extract(epoch from created_at) * 1000000)::bigint FROM ai_gm_quality_feedback WHERE id = $1",
            &[&strs(&fb, ID)[0].as_ref().unwrap().parse::<i64>().unwrap()],
        )
        .unwrap();
    assert_eq!(nums(&fb, QUALITY_RATING)[0], Some(row.get::<_, f64>(0)));
    assert_eq!(
        fb.column(CREATED_AT)
            .unwrap()
            .datetime()
            .unwrap()
            .physical()
            .get(0),
        Some(row.get::<_, i64>(1))
    );
    let ex = read(
        data.path()
            .join("raw/ai_gm_explanations/part-000000.parquet"),
    );
    let meta: serde_json::Value =
        serde_json::from_str(strs(&ex, METADATA)[0].as_ref().unwrap()).unwrap();
    assert!(
        meta["codeQuality"].is_number(),
        "jsonb as JSON text: {meta}"
    );
    assert!(
        strs(&ex, EXTRA)[0]
            .as_ref()
            .unwrap()
            .starts_with(r#"{"user_agent":"agent/"#)
    );
    let ab = read(data.path().join("raw/ai_gm_ab_testing/part-000000.parquet"));
    assert!(
        nums(&ab, PREDICTED_QUALITY)
            .iter()
            .all(|v| v.is_some_and(|x| (0.0..=1.0).contains(&x)))
    );
}

#[test]
fn postgres_incremental_appends_only_new_rows() {
    let (url, mut client) = database("incremental");
    insert(&mut client, 0, 400);
    let data = tempdir().unwrap();
    extract(
        &url,
        data.path(),
        &["--incremental", "--lookback-minutes", "0"],
    );
    client
        .execute(
            "INSERT INTO ai_gm_ab_testing (created_at, experiment_name, variant, provider, model, response_id, predicted_quality, user_rating)
             SELECT now(), 'exp', 'control', 'openai', 'm', 'late-' || i, 0.5, 0.5 FROM generate_series(1, 40) i",
            &[],
        )
        .unwrap();
    let out = extract(
        &url,
        data.path(),
        &["--incremental", "--lookback-minutes", "0"],
    );
    let parts = files(&data.path().join("raw/ai_gm_ab_testing"));
    assert_eq!(parts, ["part-000000.parquet", "part-000001.parquet"]);
    let second = read(data.path().join("raw/ai_gm_ab_testing/part-000001.parquet"));
    // Only the new rows: the 25 that share the last created_at seen are re-read
    // (the bound is inclusive, for rows committed late) but already collected.
    assert_eq!(second.height(), 40);
    assert!(
        stdout(&out).contains("25 already collected"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        raw_ids(data.path(), "ai_gm_ab_testing")
            .iter()
            .collect::<HashSet<_>>()
            .len(),
        440
    );
    assert_eq!(
        files(&data.path().join("raw/ai_gm_explanations")),
        ["part-000000.parquet"],
        "nothing new: no part appended"
    );
    let report = extract_report(data.path());
    assert_eq!(report.tables["ai_gm_explanations"].already_collected, 25);
    let state = std::fs::read_to_string(data.path().join("state/extract.json")).unwrap();
    assert!(
        state.contains("postgres") && state.contains("ai_gm_ab_testing"),
        "{state}"
    );
}

/// Rejected rows per reason in validation.json, for one dataset.
fn rejected(data: &Path, dataset: &str) -> std::collections::BTreeMap<Reason, usize> {
    validation_report(data).datasets[dataset].rejected.clone()
}

fn source_count(client: &mut Client, table: &str) -> usize {
    let n: i64 = client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .unwrap()
        .get(0);
    n as usize
}

#[test]
fn hourly_runs_with_nothing_new_file_no_phantom_duplicates() {
    let (url, mut client) = database("phantom");
    insert(&mut client, 0, 3000);
    let data = tempdir().unwrap();
    // The default lookback (5 minutes) re-reads the newest rows on every run.
    let run = || extract(&url, data.path(), &["--incremental"]);
    for _ in 0..4 {
        run();
    }
    // Five new rows, and one committed late with a created_at inside the window.
    client
        .batch_execute(
            "INSERT INTO ai_gm_ab_testing (created_at, experiment_name, variant, provider, model, response_id, predicted_quality, user_rating)
             SELECT now(), 'exp', 'control', 'openai', 'm', 'new-' || i, 0.5, 0.5 FROM generate_series(1, 5) i;
             INSERT INTO ai_gm_ab_testing (created_at, experiment_name, variant, provider, model, response_id, predicted_quality, user_rating)
             VALUES (now() - interval '2 minutes', 'exp', 'control', 'openai', 'm', 'late', 0.5, 0.5);",
        )
        .unwrap();
    run();
    for table in [
        "ai_gm_explanations",
        "ai_gm_quality_feedback",
        "ai_gm_ab_testing",
    ] {
        let ids = raw_ids(data.path(), table);
        assert_eq!(
            ids.len(),
            source_count(&mut client, table),
            "{table}: every source row once"
        );
        assert_eq!(
            ids.iter().collect::<HashSet<_>>().len(),
            ids.len(),
            "{table}"
        );
    }
    stage("transform", data.path(), &[]);
    stage("validate", data.path(), &["--allow-small"]);
    for dataset in ["quality", "csat", "performance"] {
        assert_eq!(
            rejected(data.path(), dataset)[&Reason::Duplicate],
            0,
            "{dataset}"
        );
    }
    let clean = read(data.path().join("clean/performance.parquet"));
    assert_eq!(clean.height(), 3006);

    // A real duplicate in the source is still seen, once. (A table without a
    // primary key, as an import into a scratch table might be.)
    client
        .batch_execute(
            "ALTER TABLE ai_gm_ab_testing DROP CONSTRAINT ai_gm_ab_testing_pkey;
             INSERT INTO ai_gm_ab_testing SELECT * FROM ai_gm_ab_testing WHERE response_id = 'new-1';
             UPDATE ai_gm_ab_testing SET created_at = now() WHERE response_id = 'new-1';",
        )
        .unwrap();
    let fresh = tempdir().unwrap();
    extract(&url, fresh.path(), &[]);
    stage("transform", fresh.path(), &[]);
    stage("validate", fresh.path(), &["--allow-small"]);
    assert_eq!(rejected(fresh.path(), "performance")[&Reason::Duplicate], 1);
}

#[test]
fn a_future_dated_row_does_not_make_later_runs_skip_rows() {
    let (url, mut client) = database("future");
    insert(&mut client, 0, 300);
    // A client clock a month ahead.
    client
        .batch_execute(
            "INSERT INTO ai_gm_ab_testing (created_at, experiment_name, variant, provider, model, response_id, predicted_quality, user_rating)
             VALUES (now() + interval '30 days', 'exp', 'control', 'openai', 'm', 'future', 0.5, 0.5)",
        )
        .unwrap();
    let data = tempdir().unwrap();
    extract(&url, data.path(), &["--incremental"]);
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(data.path().join("state/extract.json")).unwrap(),
    )
    .unwrap();
    let saved = state["sources"]["postgres"]["ai_gm_ab_testing"]["created_at"]
        .as_str()
        .and_then(contract::timestamp::parse_utc)
        .unwrap();
    assert!(
        saved <= chrono::Utc::now(),
        "the cursor never passes the present: {saved}"
    );
    // Later real rows all arrive, the future one is not collected twice.
    client
        .batch_execute(
            "INSERT INTO ai_gm_ab_testing (created_at, experiment_name, variant, provider, model, response_id, predicted_quality, user_rating)
             SELECT now(), 'exp', 'control', 'openai', 'm', 'later-' || i, 0.5, 0.5 FROM generate_series(1, 120) i",
        )
        .unwrap();
    let out = extract(&url, data.path(), &["--incremental"]);
    let ids = raw_ids(data.path(), "ai_gm_ab_testing");
    assert_eq!(ids.len(), 300 + 1 + 120, "{}", stdout(&out));
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len());
    stage("transform", data.path(), &[]);
    stage("validate", data.path(), &["--allow-small"]);
    let r = rejected(data.path(), "performance");
    assert_eq!((r[&Reason::BadTimestamp], r[&Reason::Duplicate]), (1, 0));
}

#[test]
fn the_cursor_follows_the_database_clock_when_it_is_behind_ours() {
    let (url, mut client) = database("clock");
    let db: String = client
        .query_one("SELECT current_database()", &[])
        .unwrap()
        .get(0);
    // The database's clock an hour behind ours: `now()` in its sessions
    // resolves to clock.now() (searched before pg_catalog).
    client
        .batch_execute(&format!(
            "CREATE SCHEMA clock;
             CREATE FUNCTION clock.now() RETURNS timestamptz LANGUAGE sql STABLE
                 AS $$ SELECT pg_catalog.now() - interval '1 hour' $$;
             ALTER DATABASE {db} SET search_path = clock, pg_catalog, public;"
        ))
        .unwrap();
    let insert_at = |client: &mut Client, when: &str, prefix: &str, n: i64| {
        client
            .batch_execute(&format!(
                "INSERT INTO ai_gm_ab_testing (created_at, experiment_name, variant, provider, model, response_id, predicted_quality, user_rating)
                 SELECT {when}, 'exp', 'control', 'openai', 'm', '{prefix}-' || i, 0.5, 0.5 FROM generate_series(1, {n}) i"
            ))
            .unwrap();
    };
    // Rows of two hours ago, and one dated 30 minutes ago by our clock: in
    // the future by the database's.
    insert_at(
        &mut client,
        "pg_catalog.now() - interval '2 hours'",
        "old",
        50,
    );
    insert_at(
        &mut client,
        "pg_catalog.now() - interval '30 minutes'",
        "ahead",
        1,
    );
    let data = tempdir().unwrap();
    extract(&url, data.path(), &["--incremental"]);
    // Rows the database dates at its own present, committed after that run.
    insert_at(
        &mut client,
        "pg_catalog.now() - interval '1 hour'",
        "late",
        20,
    );
    let out = extract(&url, data.path(), &["--incremental"]);
    let ids = raw_ids(data.path(), "ai_gm_ab_testing");
    assert_eq!(ids.len(), 50 + 1 + 20, "every row once: {}", stdout(&out));
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len());
}

#[test]
fn a_read_only_role_is_enough_and_a_missing_grant_is_named() {
    let (url, mut client) = database("readonly");
    insert(&mut client, 0, 200);
    let role = format!("gm_reader_{}", std::process::id());
    client
        .batch_execute(&format!(
            "DROP ROLE IF EXISTS {role};
             CREATE ROLE {role} LOGIN PASSWORD 'reader-pw';
             GRANT USAGE ON SCHEMA public TO {role};
             GRANT SELECT ON ai_gm_explanations, ai_gm_quality_feedback, ai_gm_ab_testing TO {role};"
        ))
        .unwrap();
    let (base, db) = url.rsplit_once('/').unwrap();
    let host = base.rsplit_once('@').map_or(base, |(_, h)| h);
    let reader_url = format!("postgresql://{role}:reader-pw@{host}/{db}");
    let data = tempdir().unwrap();
    extract(&reader_url, data.path(), &[]);
    assert_eq!(raw_ids(data.path(), "ai_gm_ab_testing").len(), 200);

    client
        .batch_execute(&format!("REVOKE SELECT ON ai_gm_ab_testing FROM {role}"))
        .unwrap();
    let data = tempdir().unwrap();
    let (code, err) = fails(&mut extract_command(&reader_url, data.path(), &[]));
    assert_eq!(code, 1);
    assert_eq!(error_lines(&err).len(), 1, "{err}");
    assert!(
        err.contains(&format!(
            "ai_gm_ab_testing: the role `{role}` may not read it at {host}/{db} (missing grant: GRANT SELECT ON ai_gm_ab_testing TO {role};)"
        )),
        "{err}"
    );
    assert_no_parquet(data.path());
    client
        .batch_execute(&format!("DROP OWNED BY {role}; DROP ROLE {role}"))
        .unwrap();
}

#[test]
fn tls_modes_verify_as_libpq_does() {
    let (url, mut client) = database("tls");
    insert(&mut client, 0, 50);
    let tls =
        std::env::var("PG_TEST_TLS_DIR").expect("tests/with-postgres.sh sets PG_TEST_TLS_DIR");
    let (base, db) = url.rsplit_once('/').unwrap();
    let port = base.rsplit_once(':').unwrap().1;
    let ca = format!("{tls}/ca.crt");
    let other = format!("{tls}/other-ca.crt");
    // gm_tls may only connect over TLS (pg_hba), so a success proves encryption.
    let conn = |host: &str, query: &str| format!("postgresql://gm_tls@{host}:{port}/{db}?{query}");
    let run = |conn: String| {
        let data = tempdir().unwrap();
        extract_command(&conn, data.path(), &["--limit", "5"])
            .output()
            .unwrap()
    };
    for (what, conn) in [
        (
            "require encrypts without verifying",
            conn("127.0.0.1", "sslmode=require"),
        ),
        (
            "verify-ca checks the chain, not the name",
            conn("127.0.0.1", &format!("sslmode=verify-ca&sslrootcert={ca}")),
        ),
        (
            "verify-full with the right CA and name",
            conn(
                "localhost",
                &format!("sslmode=verify-full&sslrootcert={ca}"),
            ),
        ),
    ] {
        let out = run(conn);
        assert!(
            out.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for (what, conn) in [
        (
            "verify-full refuses a name the certificate does not carry",
            conn(
                "127.0.0.1",
                &format!("sslmode=verify-full&sslrootcert={ca}"),
            ),
        ),
        (
            "verify-ca refuses a certificate another CA signed",
            conn(
                "127.0.0.1",
                &format!("sslmode=verify-ca&sslrootcert={other}"),
            ),
        ),
        (
            "verify-full refuses it too",
            conn(
                "localhost",
                &format!("sslmode=verify-full&sslrootcert={other}"),
            ),
        ),
        (
            "disable is refused by a TLS-only role",
            conn("127.0.0.1", "sslmode=disable"),
        ),
    ] {
        let out = run(conn);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{what}");
        assert!(
            err.contains("cannot connect to PostgreSQL at"),
            "{what}: {err}"
        );
        assert_eq!(error_lines(&err).len(), 1, "{what}: {err}");
    }
    // A bad sslmode names the option, never the string (which may hold a password).
    let out = run(format!(
        "postgresql://gm:pw-SECRET-77@127.0.0.1:{port}/{db}?sslmode=verify-maybe"
    ));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("sslmode `verify-maybe` is not one of"),
        "{err}"
    );
    assert!(!err.contains("pw-SECRET-77"), "{err}");
}

/// A table slower to read than --statement-timeout: the server cancels the
/// statement, and the error names the table, the cause and the flag.
#[test]
fn a_statement_past_the_timeout_is_cancelled_and_named() {
    let (url, mut client) = database("slow");
    insert(&mut client, 0, 10);
    client
        .batch_execute(
            "ALTER TABLE ai_gm_ab_testing RENAME TO ab_rows;
             CREATE VIEW ai_gm_ab_testing AS SELECT r.* FROM ab_rows r, pg_sleep(5);",
        )
        .unwrap();
    let data = tempdir().unwrap();
    let started = std::time::Instant::now();
    let (code, err) = fails(&mut extract_command(
        &url,
        data.path(),
        &["--statement-timeout", "1"],
    ));
    assert_eq!(code, 1, "{err}");
    let lines = error_lines(&err);
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].contains("ai_gm_ab_testing")
            && lines[0].contains("canceling statement due to statement timeout (57014)")
            && lines[0].contains("raise --statement-timeout"),
        "{err}"
    );
    assert!(started.elapsed().as_secs() < 5, "cancelled, not waited out");
    assert_no_parquet(data.path());
}

#[test]
fn unknown_table_is_a_clear_error() {
    let (url, mut client) = database("missing");
    client.batch_execute("DROP TABLE ai_gm_ab_testing").unwrap();
    let data = tempdir().unwrap();
    let (code, err) = fails(&mut extract_command(&url, data.path(), &[]));
    assert_eq!(code, 1);
    assert!(
        err.contains("ai_gm_ab_testing: no such table at 127.0.0.1"),
        "{err}"
    );
    assert_no_parquet(data.path());
}

#[test]
fn make_pipeline_from_postgres_runs_end_to_end() {
    let (url, mut client) = database("pipeline");
    insert(&mut client, 0, 1200);
    let data = tempdir().unwrap();
    let out = ok(make()
        .args(["stages", "SOURCE=postgres", "DAYS=30"])
        .arg(format!("DATA={}", data.path().display()))
        .arg(format!("BIN={}", bin_dir().display()))
        .env("DATABASE_URL", &url)
        .env_remove("SUPABASE_URL"));
    let text = stdout(&out);
    assert!(
        text.contains("validate: performance") && text.contains("baseline RMSE"),
        "{text}"
    );
    assert_models_trained(data.path());
    let report = std::fs::read_to_string(data.path().join("reports/extract.json")).unwrap();
    assert!(report.contains("\"source\": \"postgres\""), "{report}");
}

/// `make bench`: 100k rows per table from a real PostgreSQL server.
#[test]
#[ignore = "benchmark; make bench runs it"]
fn bench_postgres_100k_rows_per_table() {
    const N: i64 = 100_000;
    let (url, mut client) = database("bench");
    insert(&mut client, 0, N);
    let data = tempdir().unwrap();
    let started = std::time::Instant::now();
    extract(&url, data.path(), &[]);
    let secs = started.elapsed().as_secs_f64();
    assert_every_raw_row_once(data.path(), N as usize);
    println!(
        "bench: postgres path: {} rows in {secs:.1} s = {:.0} rows/s",
        3 * N,
        3.0 * N as f64 / secs
    );
}
