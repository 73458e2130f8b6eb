// The console: signs in, runs tools, follows jobs live, and shows batches, usage, keys and plans.
import { Conveyor } from "./conveyor.js";
import { loadAdmin, wireAdmin } from "./admin.js";
import { loadBatches, wireBatches } from "./batches.js";
import { readFields, renderFields } from "./schema-form.js";
import { $, button, el, guarded, row } from "./ui.js";

const conveyor = new Conveyor({ storage: sessionStorage, onSession: showSession });
let running = null; // {job, abort}
const history = { cursors: [null], index: 0 };

function showSession(user) {
  $("#signin").hidden = Boolean(user);
  $("#signed-in").hidden = !user;
  $("#whoami").hidden = !user;
  $("#user-email").textContent = user?.email || "";
  $("#admin").hidden = user?.role !== "admin";
}

async function signIn(event) {
  const form = $("#auth-form");
  const data = Object.fromEntries(new FormData(form));
  if (event.submitter?.value === "register") {
    await conveyor.register({ email: data.email, password: data.password, name: data.name || data.email.split("@")[0] });
  } else {
    await conveyor.login({ email: data.email, password: data.password });
  }
  form.reset();
  await loadAll();
}

async function loadAll() {
  await Promise.all([loadTools(), loadHistory(), loadBatches(), loadUsage(), loadKeys(), loadPlans()]);
  if (conveyor.user?.role === "admin") await loadAdmin();
}

async function loadTools() {
  const tools = (await conveyor.request("GET", "/tools", { auth: false })).items;
  const select = $("#tool");
  select.replaceChildren(...tools.map((tool) => new Option(tool.title || tool.name, tool.name)));
  await showTool();
}

async function showTool() {
  const fieldset = $("#tool-fields");
  const name = $("#tool").value;
  if (fieldset.dataset.tool === name) return; // keep what was typed
  const tool = await conveyor.request("GET", `/tools/${encodeURIComponent(name)}`, { auth: false });
  if ($("#tool").value !== name) return; // another tool was picked meanwhile
  if (fieldset.dataset.tool === name) return; // shown meanwhile (a second pick): keep what was typed
  $("#tool-description").textContent = tool.description;
  renderFields(fieldset, tool.input_schema);
  fieldset.dataset.tool = name;
}

async function run() {
  const runAt = $("#run-at").value; // local time, sent with its offset
  const options = runAt ? { run_at: new Date(runAt).toISOString() } : {};
  const job = await conveyor.submit($("#tool").value, readFields($("#tool-fields")), options);
  const abort = new AbortController();
  running = { job, abort };
  $("#cancel").disabled = false;
  $("#job-output").textContent = "";
  $("#job-error").textContent = "";
  $("#job-status").textContent = queuedLabel(job.queue) || job.status;
  if (job.status === "scheduled") {
    // Nothing to follow until it is due: it stays cancelable here and is listed below.
    $("#job-status").textContent = `scheduled for ${new Date(job.run_at).toLocaleString()}`;
    await loadHistory();
    return;
  }
  try {
    for await (const event of conveyor.stream(job, { signal: abort.signal })) {
      if (event.type === "queue") $("#job-status").textContent = queuedLabel(event.data);
      if (event.type === "delta") $("#job-output").textContent += event.data.text;
      if (event.type === "status") $("#job-status").textContent = event.data.status;
      if (event.type === "done") $("#job-status").textContent = event.data.status;
    }
    const finished = await conveyor.wait(job);
    $("#job-status").textContent = finished.status;
    $("#job-error").textContent = finished.error?.message || "";
    if (finished.output && !$("#job-output").textContent) {
      $("#job-output").textContent = finished.output.text ?? JSON.stringify(finished.output, null, 2);
    }
  } finally {
    running = null;
    $("#cancel").disabled = true;
    await Promise.all([loadHistory(), loadUsage()]);
  }
}

/** The status line of a queued job: its place in the queue and, when known, about how long. */
function queuedLabel(place) {
  if (!place) return "";
  const eta = place.eta_seconds === null ? "" : `, about ${place.eta_seconds} s`;
  return `queued: position ${place.position}${eta}`;
}

async function cancel() {
  if (!running) return;
  const job = await conveyor.cancel(running.job);
  $("#job-status").textContent = job.cancel_requested && job.status === "running" ? "canceling" : job.status;
  if (job.status === "canceled") await Promise.all([loadHistory(), loadUsage()]); // a scheduled one has no stream to end
}

async function loadHistory() {
  const page = await conveyor.request("GET", "/jobs", { query: { limit: 10, cursor: history.cursors[history.index] } });
  $("#history tbody").replaceChildren(
    ...page.items.map((job) => {
      const tokens = job.usage.input_tokens + job.usage.output_tokens;
      return row([new Date(job.created_at).toLocaleString(), job.tool, job.status, tokens, job.id, jobActions(job)]);
    }),
  );
  history.cursors[history.index + 1] = page.next_cursor;
  $("#history-newer").disabled = history.index === 0;
  $("#history-older").disabled = !page.next_cursor;
}

const FINISHED = ["succeeded", "failed", "canceled", "expired"];

// A finished job's thumbs up or down (the one in use is pressed) and its Delete.
function jobActions(job) {
  const cell = el("span");
  if (!FINISHED.includes(job.status)) return cell;
  for (const [rating, label] of [["up", "👍"], ["down", "👎"]]) {
    const rate = button(label, async () => {
      await conveyor.request("PUT", `/jobs/${job.id}/feedback`, { body: { rating } });
      await loadHistory();
    });
    rate.setAttribute("aria-label", `Rate ${rating}`);
    rate.setAttribute("aria-pressed", String(job.feedback?.rating === rating));
    cell.append(rate, " ");
  }
  cell.append(
    button("Delete", async () => {
      if (!confirm("Delete this job and its output? Its usage stays counted.")) return;
      await conveyor.request("DELETE", `/jobs/${job.id}`);
      await loadHistory();
    }),
  );
  return cell;
}

async function pageHistory(step) {
  history.index += step;
  await loadHistory();
}

async function loadUsage() {
  const usage = await conveyor.request("GET", "/usage");
  const { quota, totals } = usage;
  const meter = $("#quota");
  meter.max = quota.limit;
  meter.value = quota.used + quota.reserved;
  $("#quota-text").textContent = `${quota.used.toLocaleString()} of ${quota.limit.toLocaleString()} tokens used (${usage.plan}); resets ${quota.resets_on}`;
  const dollars = (totals.cost_micros / 1e6).toFixed(4);
  $("#usage-totals").textContent = `This period: ${totals.jobs} jobs, ${totals.input_tokens} tokens in, ${totals.output_tokens} out, $${dollars}.`;
}

async function loadKeys() {
  const { items } = await conveyor.request("GET", "/api-keys");
  $("#keys").replaceChildren(
    ...items.map((key) => {
      const item = el("li", `${key.name} (${key.prefix}…) `);
      if (key.revoked_at) {
        item.append(el("em", "revoked"));
      } else {
        item.append(
          button(`Revoke ${key.name}`, async () => {
            await conveyor.request("DELETE", `/api-keys/${key.id}`);
            $("#new-key").hidden = true;
            await loadKeys();
          }),
        );
      }
      return item;
    }),
  );
}

async function createKey() {
  const form = $("#key-form");
  const created = await conveyor.request("POST", "/api-keys", { body: { name: form.elements.name.value } });
  $("#new-key-secret").textContent = created.key;
  $("#new-key").hidden = false;
  form.reset();
  await loadKeys();
}

async function loadPlans() {
  const { items } = await conveyor.request("GET", "/billing/plans", { auth: false });
  // Checkout only where billing is configured: the subscription answers 503 otherwise.
  const billing = await conveyor.request("GET", "/billing/subscription").then(() => true, (error) => error.status !== 503);
  $("#plans").replaceChildren(
    ...items.map((plan) => {
      const current = plan.name === conveyor.user?.plan ? " (your plan)" : "";
      const item = el("li", `${plan.title}: ${plan.monthly_tokens.toLocaleString()} tokens a month, ${plan.jobs_per_day} jobs a day${current} `);
      if (billing && plan.purchasable && !current) {
        item.append(button(`Upgrade to ${plan.title}`, () => checkout(plan.name)));
      }
      return item;
    }),
  );
}

async function checkout(plan) {
  const back = location.href.split("#")[0];
  const session = await conveyor.request("POST", "/billing/checkout-session", {
    body: { plan, success_url: back, cancel_url: back },
  });
  location.assign(session.url);
}

wireAdmin(conveyor);
wireBatches(conveyor);
$("#auth-form").addEventListener("submit", guarded(signIn));
$("#logout").addEventListener("click", guarded(() => conveyor.logout()));
$("#tool").addEventListener("change", guarded(showTool));
$("#run-form").addEventListener("submit", guarded(run));
$("#cancel").addEventListener("click", guarded(cancel));
$("#history-newer").addEventListener("click", guarded(() => pageHistory(-1)));
$("#history-older").addEventListener("click", guarded(() => pageHistory(1)));
$("#usage-refresh").addEventListener("click", guarded(loadUsage));
$("#key-form").addEventListener("submit", guarded(createKey));

showSession(conveyor.user);
if (conveyor.user) guarded(loadAll)();
