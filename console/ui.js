// Small DOM helpers the console's modules share.

/** The first element matching `selector`. */
export const $ = (selector) => document.querySelector(selector);

/** A new element holding `text`. */
export function el(tag, text = "") {
  const node = document.createElement(tag);
  node.textContent = text;
  return node;
}

/** A button that runs `action` when clicked, its errors shown as notices. */
export function button(text, action) {
  const node = el("button", text);
  node.type = "button";
  node.addEventListener("click", guarded(action));
  return node;
}

/** Say what went wrong where a person sees it (and a screen reader hears it). */
export function notify(error) {
  const notice = $("#notice");
  notice.textContent = error ? error.message || String(error) : "";
  notice.hidden = !error;
}

/** Run `action` from a click or submit, reporting its error instead of losing it. */
export function guarded(action) {
  return async (event) => {
    event?.preventDefault?.();
    notify(null);
    try {
      await action(event);
    } catch (error) {
      notify(error);
    }
  };
}

/** A table row of `cells` (text, or nodes such as buttons). */
export function row(cells) {
  const tr = el("tr");
  for (const cell of cells) {
    const td = el("td");
    td.append(cell instanceof Node ? cell : String(cell ?? ""));
    tr.append(td);
  }
  return tr;
}
