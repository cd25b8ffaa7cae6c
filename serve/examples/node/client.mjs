// How the game master (Node.js 18+, no packages) asks `serve` for predictions.
//
//   SERVE_URL=http://127.0.0.1:8080 SERVE_TOKEN=... node serve/examples/node/client.mjs
//
// Copy `GmModels` into the game master; the bottom of this file is a demo.

export class GmModels {
  /**
   * @param {string} baseUrl  where `serve` listens, e.g. http://127.0.0.1:8080
   * @param {{token?: string, timeoutMs?: number}} options
   *   token: the service's SERVE_TOKEN, when it has one;
   *   timeoutMs: give up after this long (a player is waiting), default 200.
   */
  constructor(baseUrl, { token, timeoutMs = 200 } = {}) {
    this.baseUrl = baseUrl.replace(/\/$/, "");
    this.headers = { "Content-Type": "application/json" };
    if (token) this.headers.Authorization = `Bearer ${token}`;
    this.timeoutMs = timeoutMs;
    this.warned = new Set();
  }

  // Every failure is one Error whose message starts `serve METHOD PATH:` and
  // says what happened: no answer in time, no connection, an error answer
  // (serve names the problem in `error`), or an answer that is not JSON (a
  // proxy's error page).
  async #call(method, path, body) {
    const what = `serve ${method} ${path}`;
    let response, text;
    try {
      response = await fetch(this.baseUrl + path, {
        method,
        headers: this.headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      text = await response.text();
    } catch (e) {
      if (e.name === "TimeoutError") throw new Error(`${what}: no answer within ${this.timeoutMs} ms`);
      throw new Error(`${what}: cannot reach ${this.baseUrl}: ${e.cause?.code ?? e.cause?.message ?? e.message}`);
    }
    let json;
    try {
      json = JSON.parse(text);
    } catch {
      throw new Error(`${what}: ${response.status}, an answer that is not JSON: ${text.slice(0, 120)}`);
    }
    if (!response.ok) throw new Error(`${what}: ${response.status} ${json.error}`);
    return json;
  }

  /**
   * Predictions of one model for rows keyed by the dataset's column names.
   * Keys that are none of them (a misspelt `response_time`, say) are not used;
   * serve names them in `ignored_fields`, and this says so once per model and set.
   * @param {"quality"|"csat"|"performance"} model
   * @returns {Promise<{model: string, version: string, predictions: number[], ignored_fields?: string[]}>}
   */
  async predict(model, rows) {
    const answer = await this.#call("POST", `/v1/predict/${model}`, { rows });
    const ignored = answer.ignored_fields ?? [];
    const key = `${model}: ${ignored.join(", ")}`;
    if (ignored.length > 0 && !this.warned.has(key)) {
      this.warned.add(key);
      console.warn(`serve: the ${model} model ignored fields it does not know: ${ignored.join(", ")}`);
    }
    return answer;
  }

  /** The CSAT a player is expected to give this provider, model and action at a quality (0-1). */
  async expectedCsat({ provider, model, actionType, quality, responseTimeMs = null }) {
    const answer = await this.predict("csat", [
      { provider, model, action_type: actionType, quality_score: quality, response_time_ms: responseTimeMs },
    ]);
    return { csat: answer.predictions[0], version: answer.version };
  }

  /** Each model's champion: version, held-out metrics, age. */
  models() {
    return this.#call("GET", "/v1/models");
  }

  /** An insight: `optimal_quality_range`, `csat_by_provider`, `quality_baselines`, ... */
  insight(name) {
    return this.#call("GET", `/v1/insights/${encodeURIComponent(name)}`);
  }
}

// The demo, when run directly.
if (import.meta.url === `file://${process.argv[1]}`) {
  const gm = new GmModels(process.env.SERVE_URL ?? "http://127.0.0.1:8080", {
    token: process.env.SERVE_TOKEN,
    timeoutMs: 2000,
  });
  const { csat, version } = await gm.expectedCsat({
    provider: "openai",
    model: "gpt-4o",
    actionType: "combat",
    quality: 0.8,
  });
  console.log(`expected CSAT for openai gpt-4o in combat at quality 0.8: ${csat.toFixed(3)} (csat ${version})`);
  const { models } = await gm.models();
  for (const m of models) {
    console.log(`${m.model}: ${m.version ?? "not loaded"}, held-out RMSE ${m.metrics?.rmse?.toFixed(4)}`);
  }
  try {
    const optimal = await gm.insight("optimal_quality_range");
    for (const [source, s] of Object.entries(optimal.sources)) {
      const range = s.optimal ? `${s.optimal.cheapest_as_good.group} (best ${s.optimal.best.group})` : s.note;
      console.log(`optimal quality range: ${range} [${source}, ${s.rows} rows]`);
    }
  } catch (e) {
    // Insights exist once `make report` has run.
    console.log(`no insights yet: ${e.message}`);
  }
  try {
    await gm.predict("csat", [{ model: "gpt-4o" }]);
  } catch (e) {
    console.log(`a bad request is refused: ${e.message}`);
  }
}
