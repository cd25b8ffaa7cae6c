//! `serve`: the real binary over real HTTP. Its predictions are exactly
//! `predict`'s; it follows the champion without a restart, never mixing
//! versions in a request and refusing a broken model; bad requests get a 4xx
//! naming the problem; the token guards every route but the health checks;
//! SIGTERM stops it cleanly; and the Node.js example client works against it.

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use polars::prelude::*;
use serde_json::{Map, Value, json};
use tempfile::tempdir;

use crate::common::*;

const MODELS: [&str; 3] = ["quality", "csat", "performance"];

/// A running `serve`, killed when dropped; its stderr lines are kept.
pub(crate) struct Server {
    child: Child,
    base: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    pub(crate) fn start(data: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let mut cmd = bin("serve");
        cmd.args(["--data", data.to_str().unwrap(), "--bind", "127.0.0.1:0"])
            .args(["--reload-every", "0.1"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start serve");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("listening on ").nth(1) {
                    let _ = tx.send(addr.split_whitespace().next().unwrap().to_string());
                }
                lines.lock().unwrap().push(line);
            }
        });
        let base = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("serve never listened: {:?}", log.lock().unwrap()));
        Server { child, base, log }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub(crate) fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Waits up to 10 s for a log line containing `text`.
    fn wait_log(&self, text: &str) {
        let start = Instant::now();
        while !self.log().contains(text) {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "no `{text}` in the log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// (status, JSON body) of a request.
fn call(req: reqwest::blocking::RequestBuilder) -> (u16, Value) {
    let resp = req.send().expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

pub(crate) fn get(server: &Server, path: &str) -> (u16, Value) {
    call(client().get(server.url(path)))
}

fn post(server: &Server, model: &str, body: &Value) -> (u16, Value) {
    call(
        client()
            .post(server.url(&format!("/v1/predict/{model}")))
            .json(body),
    )
}

/// Synthetic data through train (and report, for the insight tables).
fn trained(dir: &Path) -> PathBuf {
    let data = dir.join("data");
    synth(&data, 2500, 0.02);
    stage("transform", &data, &[]);
    stage("validate", &data, &["--now", NOW]);
    stage("train", &data, &["--seed", "3"]);
    data
}

/// The first `n` rows of a clean dataset as JSON request rows, every column
/// (the service ignores what is not a feature).
fn json_rows(data: &Path, model: &str, n: usize) -> Vec<Value> {
    let df = read(data.join(format!("clean/{model}.parquet"))).head(Some(n));
    (0..df.height())
        .map(|i| {
            let mut row = Map::new();
            for c in df.columns() {
                let v = match c.get(i).unwrap() {
                    AnyValue::Null => Value::Null,
                    AnyValue::Float64(x) => json!(x),
                    AnyValue::String(s) => json!(s),
                    other => json!(other.to_string()),
                };
                row.insert(c.name().to_string(), v);
            }
            Value::Object(row)
        })
        .collect()
}

/// `predict`'s numbers for the first `n` clean rows of a model folder.
fn predicted(data: &Path, model_dir: &Path, model: &str, n: usize) -> Vec<f64> {
    let out = data.join(format!("predicted-{model}.parquet"));
    ok(&mut predict_command(
        model_dir,
        &data.join(format!("clean/{model}.parquet")),
        &out,
    ));
    let df = read(&out);
    let target = df
        .get_column_names()
        .into_iter()
        .find(|c| c.starts_with("predicted_"))
        .unwrap()
        .to_string();
    nums(&df, &target)
        .into_iter()
        .take(n)
        .map(Option::unwrap)
        .collect()
}

fn predictions(body: &Value) -> Vec<f64> {
    body["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

#[test]
fn serve_answers_as_predict_does_and_reports_models_insights_health_and_metrics() {
    let dir = tempdir().unwrap();
    let data = trained(dir.path());
    stage("report", &data, &[]);
    let server = Server::start(&data, &[], &[]);

    for model in MODELS {
        let rows = json_rows(&data, model, 300);
        let (status, body) = post(&server, model, &json!({ "rows": rows }));
        assert_eq!(status, 200, "{model}: {body}");
        assert_eq!(body["model"], model);
        assert_eq!(body["version"], "v0001");
        let expected = predicted(&data, &data.join("models").join(model), model, 300);
        assert_eq!(predictions(&body), expected, "{model}: served != predict");
        // Whole clean rows: every key is the dataset's, so nothing is named.
        assert!(body.get("ignored_fields").is_none(), "{model}: {body}");
        // One row at a time gives the same numbers as the batch.
        let (_, one) = post(&server, model, &json!({ "rows": [rows[7].clone()] }));
        assert_eq!(predictions(&one), vec![expected[7]]);
    }
    // Optional fields may be absent; unknown levels are missing, as in predict.
    let (status, body) = post(
        &server,
        "csat",
        &json!({"rows": [{"provider": "a-new-provider", "model": "m-new"}]}),
    );
    assert_eq!(status, 200, "{body}");
    assert!(predictions(&body)[0].is_finite());
    // A key that is none of the dataset's columns (a misspelt optional
    // feature) is not used, and the answer names it, once.
    let row = json!({"provider": "openai", "model": "gpt-4o", "quality_score": 0.8});
    let mut typo = row.clone();
    typo["response_time"] = json!(900);
    typo["latency"] = json!(3);
    let (status, body) = post(&server, "csat", &json!({ "rows": [typo.clone(), typo] }));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ignored_fields"], json!(["latency", "response_time"]));
    let (_, plain) = post(&server, "csat", &json!({ "rows": [row] }));
    assert_eq!(predictions(&body)[0], predictions(&plain)[0]);
    let (status, body) = post(&server, "csat", &json!({ "rows": [] }));
    assert_eq!((status, body["predictions"].clone()), (200, json!([])));

    let (status, models) = get(&server, "/v1/models");
    assert_eq!(status, 200);
    let models = models["models"].as_array().unwrap();
    assert_eq!(models.len(), 3);
    for m in models {
        assert_eq!(m["version"], "v0001", "{m}");
        assert!(m["metrics"]["rmse"].as_f64().unwrap() > 0.0, "{m}");
        assert!(m["metrics"]["r2"].is_number() && m["metrics"]["mae"].is_number());
        assert!(m["age_seconds"].as_i64().unwrap() >= 0);
        assert!(!m["baselines"].as_object().unwrap().is_empty(), "{m}");
    }

    let (status, list) = get(&server, "/v1/insights");
    assert_eq!(status, 200);
    for name in list["insights"].as_array().unwrap() {
        let (status, body) = get(&server, &format!("/v1/insights/{}", name.as_str().unwrap()));
        assert_eq!(status, 200, "{name}: {body}");
    }
    let (_, by_provider) = get(&server, "/v1/insights/csat_by_provider");
    let rows = by_provider["rows"].as_array().unwrap();
    assert!(!rows.is_empty());
    assert!(
        rows[0]["provider"].is_string() && rows[0]["rows"].is_number(),
        "{}",
        rows[0]
    );
    let (_, optimal) = get(&server, "/v1/insights/optimal_quality_range");
    assert!(
        optimal["sources"]["synth"]["ranges"].is_array(),
        "{optimal}"
    );

    assert_eq!(get(&server, "/healthz").0, 200);
    let (status, ready) = get(&server, "/readyz");
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["ready"], true);

    let metrics = client()
        .get(server.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains(r#"serve_requests_total{route="/v1/predict/{model}",status="200"}"#),
        "{metrics}"
    );
    assert!(metrics.contains("serve_request_duration_seconds_bucket"));
    assert!(metrics.contains(r#"serve_model_version{model="csat"} 1"#));
    assert!(metrics.contains(r#"serve_predicted_rows_total{model="quality"}"#));
    // The one request above with keys that are none of csat's columns.
    assert!(
        metrics.contains("serve_requests_with_ignored_fields_total{model=\"csat\"} 1\n"),
        "{metrics}"
    );
}

#[test]
fn bad_requests_get_a_4xx_naming_the_problem_and_never_hurt_the_service() {
    let dir = tempdir().unwrap();
    let data = trained(dir.path());
    let server = Server::start(
        &data,
        &["--max-body-bytes", "20000", "--max-rows", "50"],
        &[],
    );
    let raw = |body: &str| {
        call(
            client()
                .post(server.url("/v1/predict/csat"))
                .header("Content-Type", "application/json")
                .body(body.to_string()),
        )
    };
    let row = json!({"provider": "p", "model": "m", "action_type": "combat", "quality_score": 0.8});
    let cases: Vec<(u16, (u16, Value), &str)> = vec![
        (400, raw("{\"rows\": [{"), "malformed JSON"),
        (400, raw("[1, 2]"), "not a prediction request"),
        // The rows without their wrapper: said so, not serde's "expected a sequence".
        (
            400,
            raw(&format!("  [{row}]")),
            "not a prediction request: the body is a list; expected {\"rows\": [{...}, ...]}",
        ),
        (
            400,
            raw("{\"row\": []}"),
            "not a prediction request: unknown field `row`",
        ),
        (
            400,
            raw("{\"rows\": [{\"quality_score\": 1e999}]}"),
            "malformed JSON",
        ),
        (
            400,
            raw("{\"rows\": [{\"quality_score\": NaN}]}"),
            "malformed JSON",
        ),
        (
            422,
            post(&server, "csat", &json!({"rows": [{"model": "m"}]})),
            "`provider` is required by the csat model and is missing",
        ),
        (
            422,
            post(
                &server,
                "csat",
                &json!({"rows": [row, {"provider": "p", "model": "m", "quality_score": "high"}]}),
            ),
            "rows[1].quality_score: expected a number, got a string",
        ),
        (
            422,
            post(
                &server,
                "csat",
                &json!({"rows": [{"provider": "p", "model": "m", "quality_score": 7}]}),
            ),
            "rows[0].quality_score: 7 is outside",
        ),
        (
            404,
            post(&server, "revenue", &json!({"rows": [row]})),
            "no model `revenue`",
        ),
        (
            413,
            post(&server, "csat", &json!({ "rows": vec![row.clone(); 51] })),
            "51 rows in one request; at most 50",
        ),
        (
            413,
            post(&server, "csat", &json!({ "rows": vec![row.clone(); 400] })),
            "request body over 20000 bytes",
        ),
        (
            404,
            get(&server, "/v1/insights/..%2F..%2Fmodels%2Fcsat%2Fmodel.json"),
            "no insight `../../models/csat/model.json`; GET /v1/insights lists them",
        ),
        (
            404,
            get(&server, "/v1/insights/csat_by_providers"),
            "no insight `csat_by_providers`",
        ),
        (404, get(&server, "/etc/passwd"), "no route GET /etc/passwd"),
        (405, get(&server, "/v1/predict/csat"), "GET is not allowed"),
    ];
    for (expected, (status, body), says) in cases {
        assert_eq!(status, expected, "{says}: {body}");
        let message = body["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no JSON error: {body}"));
        assert!(message.contains(says), "{message:?} does not say {says:?}");
    }
    // The insight table does not exist before `report`: the answer says so.
    let (_, body) = get(&server, "/v1/insights/csat_by_provider");
    assert!(
        body["error"].as_str().unwrap().contains("make report"),
        "{body}"
    );
    // A client that sends half a body and goes silent is cut off by the timeout.
    let slow = Server::start(&data, &["--timeout", "1"], &[]);
    let addr = slow.base.trim_start_matches("http://").to_string();
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    use std::io::{Read, Write};
    stream
        .write_all(b"POST /v1/predict/csat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"rows\"")
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    // Still serving after all of it.
    assert_eq!(post(&server, "csat", &json!({ "rows": [row] })).0, 200);
    assert_eq!(get(&server, "/healthz").0, 200);
}

#[test]
fn serve_follows_the_champion_without_mixing_versions_and_refuses_a_broken_one() {
    let dir = tempdir().unwrap();
    let data = trained(dir.path());
    let server = Server::start(&data, &[], &[]);
    let rows = json_rows(&data, "csat", 200);
    let v1 = predicted(&data, &data.join("models/versions/csat/v0001"), "csat", 200);

    // Clients ask without pause while a new version is trained and promoted.
    let stop = Arc::new(AtomicBool::new(false));
    let answers: Arc<Mutex<Vec<(u16, Value)>>> = Arc::default();
    let hammer = {
        let (stop, answers, url) = (
            stop.clone(),
            answers.clone(),
            server.url("/v1/predict/csat"),
        );
        let body = json!({ "rows": rows });
        std::thread::spawn(move || {
            let c = client();
            while !stop.load(Ordering::Relaxed) {
                let answer = call(c.post(&url).json(&body));
                answers.lock().unwrap().push(answer);
            }
        })
    };
    synth_seeded(&data, 3000, "8", 0.02);
    stage("transform", &data, &[]);
    stage("validate", &data, &["--now", NOW]);
    stage("train", &data, &["--seed", "4", "--promote", "always"]);
    server.wait_log("csat: now serving v0002 (was v0001)");
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    hammer.join().unwrap();

    // The clean rows changed with the new data: score the rows we sent.
    // What v0002 says for the same rows, through predict.
    let v2 = served_by(&data, "v0002", &rows);
    let answers = answers.lock().unwrap();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (status, body) in answers.iter() {
        assert_eq!(*status, 200, "{body}");
        let version = body["version"].as_str().unwrap().to_string();
        let got = predictions(body);
        match version.as_str() {
            "v0001" => assert_eq!(got, v1, "a v0001 answer with other numbers"),
            "v0002" => assert_eq!(got, v2, "a v0002 answer with other numbers"),
            other => panic!("version {other}"),
        }
        *seen.entry(version).or_default() += 1;
    }
    assert!(seen.contains_key("v0002"), "{seen:?}");
    assert_eq!(
        post(&server, "csat", &json!({ "rows": rows })).1["version"],
        "v0002"
    );

    // A broken version made champion by hand is refused; v0002 stays.
    let versions = data.join("models/versions/csat");
    copy_dir(&versions.join("v0002"), &versions.join("v0003"));
    let text = fs::read_to_string(versions.join("v0003/lightgbm.txt")).unwrap();
    fs::write(versions.join("v0003/lightgbm.txt"), &text[..text.len() / 2]).unwrap();
    let card = fs::read_to_string(versions.join("v0003/model.json")).unwrap();
    fs::write(
        versions.join("v0003/model.json"),
        card.replace("\"version\": \"v0002\"", "\"version\": \"v0003\""),
    )
    .unwrap();
    let link = data.join("models/csat");
    let staged = data.join("models/.csat.next");
    std::os::unix::fs::symlink("versions/csat/v0003", &staged).unwrap();
    fs::rename(&staged, &link).unwrap();
    server.wait_log("csat: refused the champion on disk, still serving v0002");
    let (status, ready) = get(&server, "/readyz");
    assert_eq!(status, 200, "{ready}");
    assert!(
        ready["models"]["csat"]["refused"]
            .as_str()
            .unwrap()
            .contains("v0003"),
        "{ready}"
    );
    assert_eq!(
        post(&server, "csat", &json!({ "rows": rows })).1["version"],
        "v0002"
    );

    // Rollback to v0001 reaches the service too.
    ok(&mut promote_command(&data, "csat", "v0001"));
    server.wait_log("csat: now serving v0001 (was v0002)");
    let (_, body) = post(&server, "csat", &json!({ "rows": rows }));
    assert_eq!(predictions(&body), v1);
    assert!(get(&server, "/readyz").1["models"]["csat"]["refused"].is_null());

    // The champion gone from disk (the data folder moved or removed): the
    // service keeps answering with what it has, and says so, once.
    let target = fs::read_link(&link).unwrap();
    fs::remove_file(&link).unwrap();
    server.wait_log("csat: the champion on disk is gone (");
    let (status, ready) = get(&server, "/readyz");
    assert_eq!(status, 200, "{ready}");
    let csat = &ready["models"]["csat"];
    assert_eq!(csat["version"], "v0001", "{ready}");
    assert!(
        csat["refused"]
            .as_str()
            .unwrap()
            .ends_with("no champion on disk any more; still serving v0001"),
        "{ready}"
    );
    let (_, body) = post(&server, "csat", &json!({ "rows": rows }));
    assert_eq!(predictions(&body), v1);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(server.log().matches("champion on disk is gone").count(), 1);
    // Back again: loaded again, and the note goes.
    std::os::unix::fs::symlink(&target, &link).unwrap();
    server.wait_log("csat: serving v0001 again, from ");
    assert!(get(&server, "/readyz").1["models"]["csat"]["refused"].is_null());
}

/// What a version predicts for `rows`, through `predict` on a file of them.
fn served_by(data: &Path, version: &str, rows: &[Value]) -> Vec<f64> {
    let csv = data.join(format!("rows-{version}.csv"));
    let mut w = csv::Writer::from_path(&csv).unwrap();
    let columns = [
        "provider",
        "model",
        "action_type",
        "quality_score",
        "response_time_ms",
    ];
    w.write_record(columns).unwrap();
    for row in rows {
        w.write_record(columns.iter().map(|c| match &row[*c] {
            Value::Null => String::new(),
            Value::String(s) => s.clone(),
            v => v.to_string(),
        }))
        .unwrap();
    }
    w.flush().unwrap();
    let out = data.join(format!("rows-{version}.parquet"));
    ok(&mut predict_command(
        &data.join(format!("models/versions/csat/{version}")),
        &csv,
        &out,
    ));
    nums(&read(&out), "predicted_csat_score")
        .into_iter()
        .map(Option::unwrap)
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn the_token_guards_all_but_health_and_is_never_printed() {
    let dir = tempdir().unwrap();
    let data = trained(dir.path());
    let token = "s3cret-token-for-the-test";
    let server = Server::start(&data, &[], &[("SERVE_TOKEN", token)]);
    assert_eq!(get(&server, "/healthz").0, 200);
    assert_eq!(get(&server, "/readyz").0, 200);
    for path in ["/v1/models", "/metrics", "/v1/insights"] {
        let (status, body) = get(&server, path);
        assert_eq!(status, 401, "{path}: {body}");
        let (status, _) = call(
            client()
                .get(server.url(path))
                .header("Authorization", "Bearer wrong-token-of-other-length"),
        );
        assert_eq!(status, 401, "{path}");
        let (status, _) = call(client().get(server.url(path)).bearer_auth(token));
        assert_eq!(status, 200, "{path}");
    }
    let (status, _) = post(
        &server,
        "csat",
        &json!({"rows": [{"provider": "p", "model": "m"}]}),
    );
    assert_eq!(status, 401);
    assert!(!server.log().contains(token), "{}", server.log());

    // Beyond loopback without a token: refused with one line.
    let (code, err) =
        fails(bin("serve").args(["--data", data.to_str().unwrap(), "--bind", "0.0.0.0:0"]));
    assert_eq!(code, 1);
    assert_eq!(error_lines(&err).len(), 1, "{err}");
    assert!(
        err.contains("refusing to listen on 0.0.0.0:0 without SERVE_TOKEN"),
        "{err}"
    );
}

#[test]
fn sigterm_finishes_and_exits_cleanly_and_a_missing_model_is_not_ready() {
    let dir = tempdir().unwrap();
    let data = dir.path().join("empty");
    let mut server = Server::start(&data, &[], &[]);
    // A folder that is not there yet: said, in case --data has a typo.
    server.wait_log("empty does not exist yet (a typo in --data?)");
    let (status, ready) = get(&server, "/readyz");
    assert_eq!(status, 503, "{ready}");
    assert!(
        ready["models"]["csat"]["problem"]
            .as_str()
            .unwrap()
            .contains("make train")
    );
    let (status, body) = post(
        &server,
        "csat",
        &json!({"rows": [{"provider": "p", "model": "m"}]}),
    );
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("no csat model is loaded")
    );

    let pid = server.child.id().to_string();
    ok(Command::new("kill").args(["-TERM", &pid]));
    let start = Instant::now();
    let status = loop {
        if let Some(s) = server.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "serve ignored SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    server.wait_log("serve: SIGTERM: finishing the requests in flight");
    server.wait_log("serve: stopped");
}

/// A limit that would refuse every request, or a period of no time, is
/// refused at start, naming the flag, before anything listens.
#[test]
fn settings_that_would_refuse_everything_are_refused_at_start() {
    let dir = tempdir().unwrap();
    for (flag, value, code, expected) in [
        (
            "--max-rows",
            "0",
            2,
            "invalid value '0' for '--max-rows <MAX_ROWS>': must be at least 1",
        ),
        (
            "--max-body-bytes",
            "0",
            2,
            "invalid value '0' for '--max-body-bytes <MAX_BODY_BYTES>': must be at least 1",
        ),
        (
            "--threads",
            "0",
            2,
            "invalid value '0' for '--threads <THREADS>': must be at least 1",
        ),
        (
            "--timeout",
            "0",
            1,
            "serve: error: --timeout must be a positive number of seconds, not 0",
        ),
        (
            "--reload-every",
            "0",
            1,
            "serve: error: --reload-every must be a positive number of seconds, not 0",
        ),
        (
            "--timeout",
            "-1",
            1,
            "serve: error: --timeout must be a positive number of seconds, not -1",
        ),
    ] {
        let (got, err) = fails(bin("serve").args([
            "--data",
            dir.path().to_str().unwrap(),
            "--bind",
            "127.0.0.1:0",
            flag,
            value,
        ]));
        assert_eq!(got, code, "{flag} {value}: {err}");
        assert!(err.contains(expected), "{flag} {value}: {err}");
        assert!(!err.contains("listening"), "{err}");
    }
}

/// A Node.js run's stdout, once it exited 0.
fn node(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .expect("node is needed for this test (apt-get install nodejs; .ci/run installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn the_node_example_client_gets_predictions() {
    let dir = tempdir().unwrap();
    let data = trained(dir.path());
    stage("report", &data, &[]);
    let token = "node-example-token";
    let server = Server::start(&data, &[], &[("SERVE_TOKEN", token)]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../serve/examples/node/client.mjs");
    let text = node(
        Command::new("node")
            .arg(&script)
            .env("SERVE_URL", &server.base)
            .env("SERVE_TOKEN", token),
    );
    assert!(
        text.contains("expected CSAT for openai gpt-4o in combat at quality 0.8: 0."),
        "{text}"
    );
    assert!(text.contains("optimal quality range:"), "{text}");
    assert!(
        text.contains("a bad request is refused: serve POST /v1/predict/csat: 422 rows[0]: `provider` is required by the csat model and is missing"),
        "{text}"
    );

    // A misspelt field: the client warns once, and the answer names it each time.
    let client = script.canonicalize().unwrap();
    let typo = format!(
        "import {{ GmModels }} from {:?};\n\
         console.warn = (m) => console.log(`warned: ${{m}}`);\n\
         const gm = new GmModels(process.argv[1], {{ token: process.argv[2], timeoutMs: 2000 }});\n\
         for (let i = 0; i < 2; i++) {{\n\
           const a = await gm.predict('csat', [{{ provider: 'openai', model: 'gpt-4o', response_time: 900 }}]);\n\
           console.log(JSON.stringify(a.ignored_fields));\n\
         }}",
        format!("file://{}", client.display())
    );
    let text = node(Command::new("node").args([
        "--input-type=module",
        "-e",
        &typo,
        "--",
        &server.base,
        token,
    ]));
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        [
            "warned: serve: the csat model ignored fields it does not know: response_time",
            r#"["response_time"]"#,
            r#"["response_time"]"#,
        ],
        "{text}"
    );
}

/// What the game master sees when serve cannot answer: one error naming the
/// route and what happened, whether nothing listens, nothing answers in
/// time, or something else (a proxy) answers with a page that is not JSON.
#[test]
fn the_node_example_client_names_what_went_wrong() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    // Listens but never accepts: the request waits for an answer.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy_port = proxy.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let (mut stream, _) = proxy.accept().unwrap();
        let _ = stream.read(&mut [0u8; 4096]);
        let page = "<html>502 Bad Gateway</html>";
        let _ = write!(
            stream,
            "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
            page.len()
        );
    });
    let client = Path::new(env!("CARGO_MANIFEST_DIR")).join("../serve/examples/node/client.mjs");
    let script = format!(
        "import {{ GmModels }} from {:?};\n\
         for (const url of process.argv.slice(1)) {{\n\
           try {{ await new GmModels(url, {{ timeoutMs: 500 }}).models(); console.log('answered'); }}\n\
           catch (e) {{ console.log(e.message); }}\n\
         }}",
        format!("file://{}", client.canonicalize().unwrap().display())
    );
    let urls = [
        format!("http://127.0.0.1:{closed_port}"),
        format!("http://{}", silent.local_addr().unwrap()),
        format!("http://127.0.0.1:{proxy_port}"),
    ];
    let text = node(
        Command::new("node")
            .args(["--input-type=module", "-e", &script, "--"])
            .args(&urls),
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            format!(
                "serve GET /v1/models: cannot reach {}: ECONNREFUSED",
                urls[0]
            ),
            "serve GET /v1/models: no answer within 500 ms".to_string(),
            "serve GET /v1/models: 502, an answer that is not JSON: <html>502 Bad Gateway</html>"
                .to_string(),
        ],
        "{text}"
    );
}
