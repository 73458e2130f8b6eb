// The user's batches (POST /jobs/batch): each with its jobs' counts by status; one opened
// shows its jobs and can be canceled as a whole. An open batch that is still active is
// followed (polled) until it has finished, so a cancel is seen to land.
import { $, button, el, guarded, row } from "./ui.js";

const FOLLOW_MS = 2000;
let conveyor = null;
const pages = { cursors: [null], index: 0 };
let opened = null; // {id, timer}

/**
 * Wire the batch view's controls to `client` (once, at start).
 * @param {import("./conveyor.js").Conveyor} client the console's client
 */
export function wireBatches(client) {
  conveyor = client;
  $("#batches-refresh").addEventListener("click", guarded(() => loadBatches()));
  $("#batches-newer").addEventListener("click", guarded(() => pageBatches(-1)));
  $("#batches-older").addEventListener("click", guarded(() => pageBatches(1)));
  $("#batch-cancel").addEventListener("click", guarded(cancelOpened));
  $("#batch-close").addEventListener("click", () => closeBatch());
}

/** Counts as text: only the statuses some job is in, e.g. "queued 2, running 1". */
function countsText(counts) {
  const parts = Object.entries(counts).filter(([, count]) => count > 0).map(([status, count]) => `${status} ${count}`);
  return parts.join(", ") || "no jobs";
}

/** Load a page of the user's batches, newest first. */
export async function loadBatches() {
  const page = await conveyor.request("GET", "/batches", { query: { limit: 10, cursor: pages.cursors[pages.index] } });
  $("#batches tbody").replaceChildren(
    ...page.items.map((batch) =>
      row([
        new Date(batch.created_at).toLocaleString(),
        batch.status,
        batch.total,
        countsText(batch.counts),
        batch.id,
        button(`Open ${batch.id}`, () => openBatch(batch.id)),
      ]),
    ),
  );
  pages.cursors[pages.index + 1] = page.next_cursor;
  $("#batches-newer").disabled = pages.index === 0;
  $("#batches-older").disabled = !page.next_cursor;
}

async function pageBatches(step) {
  pages.index += step;
  await loadBatches();
}

async function openBatch(id) {
  closeBatch();
  opened = { id, timer: null };
  await showBatch(await conveyor.request("GET", `/batches/${id}`, { query: { limit: 100 } }));
}

function showBatch(batch) {
  if (opened?.id !== batch.id) return; // another one was opened meanwhile
  $("#batch").hidden = false;
  $("#batch-id").textContent = batch.id;
  $("#batch-status").textContent = batch.status;
  $("#batch-counts").textContent = countsText(batch.counts);
  $("#batch-jobs tbody").replaceChildren(
    ...batch.jobs.map((job, index) => row([index + 1, job.tool, job.status, job.id])),
  );
  const more = batch.next_cursor ? `the first ${batch.jobs.length} of ${batch.total} jobs` : "";
  $("#batch-more").textContent = more;
  $("#batch-cancel").disabled = batch.status === "finished";
  clearTimeout(opened.timer);
  if (batch.status !== "finished") opened.timer = setTimeout(guarded(follow), FOLLOW_MS);
}

async function follow() {
  if (!opened || !conveyor.user) return;
  const batch = await conveyor.request("GET", `/batches/${opened.id}`, { query: { limit: 100 } });
  showBatch(batch);
  if (batch.status === "finished") await loadBatches();
}

async function cancelOpened() {
  if (!opened) return;
  showBatch(await conveyor.request("POST", `/batches/${opened.id}/cancel`));
  await loadBatches();
}

function closeBatch() {
  if (opened) clearTimeout(opened.timer);
  opened = null;
  $("#batch").hidden = true;
}
