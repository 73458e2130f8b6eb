// The admin part of the console: every user's jobs with filters, retry and cancel (one, or
// all a filter matches), the queues, the audit log and the stats. Shown only to accounts with the admin role.
import { $, button, el, guarded, row } from "./ui.js";

const RETRYABLE = new Set(["failed", "canceled", "expired"]);
const CANCELABLE = new Set(["scheduled", "queued", "running"]);
let conveyor = null;
let nextCursor = null;

/**
 * Wire the admin section's controls to `client` (once, at start: a search made before the
 * first load must not submit the form).
 * @param {import("./conveyor.js").Conveyor} client the console's client
 */
export function wireAdmin(client) {
  conveyor = client;
  $("#admin-filters").addEventListener("submit", guarded(() => loadJobs(false)));
  $("#admin-more").addEventListener("click", guarded(() => loadJobs(true)));
  $("#stats-form").addEventListener("submit", guarded(loadStats));
  $("#bulk-form").addEventListener("submit", guarded(bulk));
}

/** Load every user's jobs, the queues and the audit log. */
export async function loadAdmin() {
  await Promise.all([loadJobs(false), loadQueues(), loadAudit(), loadStats()]);
}

async function loadJobs(more) {
  const filters = Object.fromEntries(new FormData($("#admin-filters")));
  const page = await conveyor.request("GET", "/admin/jobs", {
    query: { ...filters, limit: 20, cursor: more ? nextCursor : null },
  });
  const rows = page.items.map((job) => {
    const actions = el("span");
    if (RETRYABLE.has(job.status)) actions.append(button(`Retry ${job.id}`, () => act(job, "retry")));
    if (CANCELABLE.has(job.status)) actions.append(button(`Cancel ${job.id}`, () => act(job, "cancel")));
    return row([new Date(job.created_at).toLocaleString(), job.user_id, job.tool, job.status, job.id, actions]);
  });
  const body = $("#admin-jobs tbody");
  if (more) body.append(...rows);
  else body.replaceChildren(...rows);
  nextCursor = page.next_cursor;
  $("#admin-more").disabled = !nextCursor;
}

async function act(job, action) {
  await conveyor.request("POST", `/admin/jobs/${job.id}/${action}`);
  await loadAdmin();
}

// POST /admin/jobs/retry or /cancel with the form's filter: Count is its dry run. More
// matches than the server's `max` is a 409, which `guarded` shows as the console's alert.
async function bulk(event) {
  const { status, tool } = Object.fromEntries(new FormData($("#bulk-form")));
  const action = event.submitter?.value || "count";
  const filter = { status: [status], ...(tool.trim() ? { tool: tool.trim() } : {}) };
  $("#bulk-result").textContent = "";
  if (action === "count") {
    const { matched } = await conveyor.request("POST", "/admin/jobs/retry", { body: { ...filter, dry_run: true } });
    $("#bulk-result").textContent = `${matched} ${matched === 1 ? "job matches" : "jobs match"}`;
    return;
  }
  let done = await conveyor.request("POST", `/admin/jobs/${action}`, { body: { ...filter, dry_run: false } });
  const verb = action === "retry" ? "Retried" : "Canceled";
  // More jobs than one request runs: a task works through them; follow its counts.
  while (done.status === "queued" || done.status === "running") {
    $("#bulk-result").textContent = `${verb} ${done.done} of ${done.matched} so far (${done.skipped} skipped), in the background`;
    await new Promise((resolve) => setTimeout(resolve, 1000));
    done = await conveyor.request("GET", `/admin/operations/${done.id}`);
  }
  $("#bulk-result").textContent = `${verb} ${done.done} of ${done.matched} matched (${done.skipped} skipped)`;
  await loadAdmin();
}

async function loadQueues() {
  const stats = await conveyor.request("GET", "/admin/queues");
  const queues = stats.queues.map((queue) =>
    el("li", `${queue.name}: ${queue.depth} waiting, ${queue.workers.length} workers`),
  );
  const jobs = Object.entries(stats.jobs).map(([status, count]) => `${status} ${count}`).join(", ");
  $("#queues").replaceChildren(...queues, el("li", `Jobs: ${jobs || "none"}`));
}

async function loadAudit() {
  const { items } = await conveyor.request("GET", "/admin/audit-log", { query: { limit: 20 } });
  $("#audit").replaceChildren(
    ...items.map((entry) =>
      el("li", `${new Date(entry.at).toLocaleString()} ${entry.actor_email} ${entry.action} ${entry.target_type} ${entry.target_id}`),
    ),
  );
}

const seconds = (p) => (p.p50 === null ? "–" : `${p.p50} s / ${p.p95} s`);
const percent = (rate) => (rate === null ? "–" : `${(rate * 100).toFixed(1)}%`);

// The last N days (GET /admin/stats): per tool, per model, and the failures by code.
async function loadStats() {
  const days = Number($("#stats-days").value);
  const from = new Date(Date.now() - days * 86400 * 1000).toISOString();
  const stats = await conveyor.request("GET", "/admin/stats", { query: { from } });
  const { jobs, failures, cache } = stats;
  $("#stats-summary").textContent =
    `${jobs.total} jobs; ${failures.failed} of ${failures.finished} finished failed (${percent(failures.rate)}). ` +
    `Response cache: ${cache.hits} hits, ${cache.misses} misses, saved $${(cache.saved_cost_micros / 1e6).toFixed(4)}.`;
  $("#stats-tools tbody").replaceChildren(
    ...stats.tools.map((tool) =>
      row([tool.tool, tool.jobs, seconds(tool.queue_wait_seconds), seconds(tool.run_seconds), tool.feedback.up, tool.feedback.down]),
    ),
  );
  $("#stats-models tbody").replaceChildren(
    ...stats.models.map((model) =>
      row([model.model, model.calls, model.input_tokens, model.output_tokens, `$${(model.cost_micros / 1e6).toFixed(4)}`]),
    ),
  );
  $("#stats-failures").replaceChildren(
    ...failures.by_code.map((code) => el("li", `${code.code}: ${code.jobs} (${percent(code.rate)})`)),
  );
}
