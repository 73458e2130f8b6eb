// conveyor.js: a small browser client for the Conveyor API (an ES module, no dependencies).
//
//   import { Conveyor } from "https://conveyor.example.com/console/conveyor.js";
//   const conveyor = new Conveyor({ baseUrl: "https://conveyor.example.com" });
//   await conveyor.login({ email, password });
//   const job = await conveyor.submit("text", { prompt: "Write a haiku about queues." });
//   for await (const event of conveyor.stream(job)) {
//     if (event.type === "delta") output.textContent += event.data.text;
//   }
//
// Tokens live in memory, or in the Storage given (sessionStorage: gone with the tab);
// never put them in localStorage, where every script of the origin reads them for good.

const API = "/api/v1";
const FINISHED = new Set(["succeeded", "failed", "canceled", "expired"]);
const STREAM_EVENTS = ["queue", "status", "delta", "progress", "done"];

/** An answer of the API that is not a success, in its error shape. */
export class ConveyorError extends Error {
  /**
   * @param {number} status HTTP status
   * @param {{message?: string, errors?: object}} body the API's error body
   */
  constructor(status, body) {
    super(body?.message || `HTTP ${status}`);
    this.name = "ConveyorError";
    this.status = status;
    this.errors = body?.errors || null;
  }
}

export class Conveyor {
  /**
   * @param {object} [options]
   * @param {string} [options.baseUrl] the API's origin, e.g. "https://conveyor.example.com";
   *   empty for the page's own origin
   * @param {Storage} [options.storage] where to keep the session (sessionStorage), or none:
   *   memory only
   * @param {(user: object|null) => void} [options.onSession] called when the session
   *   starts, ends or is refused
   */
  constructor({ baseUrl = "", storage = null, onSession = () => {} } = {}) {
    this.baseUrl = baseUrl.replace(/\/$/, "");
    this.storage = storage;
    this.onSession = onSession;
    this.session = JSON.parse(storage?.getItem("conveyor.session") || "null");
    this.refreshing = null;
  }

  /** The signed-in user ({id, email, name, plan, role}), or null. */
  get user() {
    return this.session?.user || null;
  }

  /**
   * Create an account and sign in with it.
   * @param {{email: string, password: string, name: string}} account
   * @returns {Promise<object>} the user
   */
  async register({ email, password, name }) {
    const body = await this.request("POST", "/auth/register", { body: { email, password, name }, auth: false });
    return this.#start(body);
  }

  /**
   * Sign in.
   * @param {{email: string, password: string}} credentials
   * @returns {Promise<object>} the user
   */
  async login({ email, password }) {
    const body = await this.request("POST", "/auth/login", { body: { email, password }, auth: false });
    return this.#start(body);
  }

  /** End the session on the server (both tokens revoked) and forget it here. */
  async logout() {
    if (this.session) {
      const { refresh_token } = this.session;
      await this.request("POST", "/auth/logout", { body: { refresh_token } }).catch(() => {});
    }
    this.#save(null);
  }

  /**
   * One API call with the session's access token. An expired access token is refreshed
   * once (the refresh token rotates: each works once) and the call sent again.
   * @param {string} method
   * @param {string} path under /api/v1, e.g. "/jobs"
   * @param {{body?: object, query?: object, headers?: object, auth?: boolean}} [options]
   * @returns {Promise<any>} the parsed JSON body (null for 204)
   */
  async request(method, path, { body, query, headers = {}, auth = true } = {}) {
    const url = new URL(this.baseUrl + API + path, location.href);
    for (const [name, value] of Object.entries(query || {})) {
      if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
    }
    const send = () => {
      const all = { ...headers };
      if (body !== undefined) all["Content-Type"] = "application/json";
      if (auth && this.session) all.Authorization = `Bearer ${this.session.access_token}`;
      return fetch(url, { method, headers: all, body: body === undefined ? undefined : JSON.stringify(body) });
    };
    let response = await send();
    if (response.status === 401 && auth && this.session && (await this.#refresh())) {
      response = await send();
    }
    const parsed = response.status === 204 ? null : await response.json().catch(() => null);
    if (!response.ok) throw new ConveyorError(response.status, parsed);
    return parsed;
  }

  /**
   * Submit a job. The idempotency key makes a retried submit (a lost answer) the same job.
   * @param {string} tool a tool's name (GET /tools)
   * @param {object} input the tool's input, as its JSON Schema says
   * @param {{idempotencyKey?: string, model?: string, webhook_url?: string}} [options]
   * @returns {Promise<object>} the job, with `urls: {get, cancel, stream}`
   */
  async submit(tool, input, { idempotencyKey = crypto.randomUUID(), ...options } = {}) {
    return this.request("POST", "/jobs", {
      body: { tool, input, ...options },
      headers: { "Idempotency-Key": idempotencyKey },
    });
  }

  /**
   * Follow a job live: yields `{type, id, data}` for each `queue` ({position, ahead,
   * eta_seconds}, while it waits), `status`, `delta` ({text}), `progress` and `done`
   * ({status, error}) event, and ends after `done`. It opens
   * `job.urls.stream` in a plain EventSource (a signed URL for this one job: no header),
   * which reconnects by itself after a dropped connection and resumes after the last
   * event it saw (Last-Event-ID), so nothing is lost or repeated.
   * @param {{urls: {stream: string}}} job a job as the API returns it
   * @param {{signal?: AbortSignal}} [options] abort to stop following
   * @returns {AsyncGenerator<{type: string, id: string, data: object}>}
   */
  async *stream(job, { signal } = {}) {
    const source = new EventSource(job.urls.stream);
    const queue = [];
    let wake = null;
    const push = (item) => {
      queue.push(item);
      if (wake) wake();
    };
    for (const type of STREAM_EVENTS) {
      source.addEventListener(type, (event) => push({ type, id: event.lastEventId, data: JSON.parse(event.data) }));
    }
    // A dropped connection is retried by the browser (readyState CONNECTING); a refused
    // one (an expired or foreign link: 401, 410) closes the source for good.
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED) push({ type: "error" });
    });
    signal?.addEventListener("abort", () => push({ type: "abort" }));
    try {
      while (true) {
        if (!queue.length) await new Promise((resolve) => (wake = resolve));
        wake = null;
        const event = queue.shift();
        if (event.type === "abort") return;
        if (event.type === "error") {
          throw new ConveyorError(0, {
            message: "The stream was refused: its URL expired or is not this job's. GET the job for a fresh urls.stream.",
          });
        }
        yield event;
        if (event.type === "done") return;
      }
    } finally {
      source.close();
    }
  }

  /**
   * Wait until a job has finished (long-polls, 30 s a request) and return it.
   * @param {{id: string}} job
   * @returns {Promise<object>} the finished job
   */
  async wait(job) {
    let current = job;
    while (!FINISHED.has(current.status)) {
      current = await this.request("GET", `/jobs/${job.id}`, { query: { wait: 30, until: "finished" } });
    }
    return current;
  }

  /**
   * Cancel a job: at once if queued or scheduled, within seconds if running.
   * @param {{id: string}} job
   * @returns {Promise<object>} the job
   */
  async cancel(job) {
    return this.request("POST", `/jobs/${job.id}/cancel`);
  }

  #start(body) {
    this.#save(body);
    return body.user;
  }

  #save(session) {
    this.session = session;
    if (session) this.storage?.setItem("conveyor.session", JSON.stringify(session));
    else this.storage?.removeItem("conveyor.session");
    this.onSession(this.user);
  }

  // One refresh at a time: calls that fail together wait for the same one, since sending
  // a refresh token twice ends the session.
  async #refresh() {
    this.refreshing ||= (async () => {
      const response = await fetch(new URL(this.baseUrl + API + "/auth/refresh", location.href), {
        method: "POST",
        headers: { Authorization: `Bearer ${this.session.refresh_token}` },
      });
      if (!response.ok) {
        this.#save(null);
        return false;
      }
      const tokens = await response.json();
      this.#save({ ...this.session, access_token: tokens.access_token, refresh_token: tokens.refresh_token });
      return true;
    })().finally(() => (this.refreshing = null));
    return this.refreshing;
  }
}
