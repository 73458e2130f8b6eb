// A form from a tool's input JSON Schema: one field per property, labelled by its name.
// Strings are text areas (or selects for enums), numbers and integers number inputs,
// booleans checkboxes, arrays of strings one item a line; anything else is JSON text.

/**
 * Fill `fieldset` with a field for each property of `schema` (its legend kept).
 * @param {HTMLFieldSetElement} fieldset
 * @param {object} schema a JSON Schema of type object
 */
export function renderFields(fieldset, schema) {
  fieldset.querySelectorAll(":scope > :not(legend)").forEach((node) => node.remove());
  const required = new Set(schema.required || []);
  for (const [name, property] of Object.entries(schema.properties || {})) {
    const id = `field-${name}`;
    const label = Object.assign(document.createElement("label"), { htmlFor: id, textContent: name });
    const control = controlFor(property);
    Object.assign(control, { id, name });
    control.dataset.kind = kindOf(property);
    control.required = required.has(name) && control.type !== "checkbox";
    const hint = document.createElement("small");
    hint.id = `${id}-hint`;
    hint.textContent = [required.has(name) ? "" : "Optional.", property.description].filter(Boolean).join(" ");
    control.setAttribute("aria-describedby", hint.id);
    const field = document.createElement("div");
    field.className = "field";
    field.append(label, control, hint);
    fieldset.append(field);
  }
}

/**
 * The input the fields hold, as the schema wants it: empty optional fields left out.
 * @param {HTMLFieldSetElement} fieldset
 * @returns {object}
 */
export function readFields(fieldset) {
  const input = {};
  for (const control of fieldset.querySelectorAll("[data-kind]")) {
    const value = valueOf(control);
    if (value !== undefined) input[control.name] = value;
  }
  return input;
}

function kindOf(property) {
  if (property.enum) return "enum";
  if (property.type === "array" && property.items?.type === "string" && !property.items.enum) return "lines";
  if (["string", "number", "integer", "boolean"].includes(property.type)) return property.type;
  return "json";
}

function controlFor(property) {
  const kind = kindOf(property);
  if (kind === "enum") {
    const select = document.createElement("select");
    select.append(new Option("", ""));
    for (const value of property.enum) select.append(new Option(String(value), String(value)));
    return select;
  }
  if (kind === "boolean") return Object.assign(document.createElement("input"), { type: "checkbox" });
  if (kind === "number" || kind === "integer") {
    const input = Object.assign(document.createElement("input"), { type: "number" });
    if (kind === "integer") input.step = "1";
    if (property.minimum !== undefined) input.min = property.minimum;
    if (property.maximum !== undefined) input.max = property.maximum;
    return input;
  }
  const area = document.createElement("textarea");
  area.rows = kind === "string" && (property.maxLength || 0) <= 300 ? 1 : 3;
  if (kind === "lines") area.placeholder = "one a line";
  if (kind === "json") area.placeholder = "JSON";
  if (property.maxLength) area.maxLength = property.maxLength;
  return area;
}

function valueOf(control) {
  const kind = control.dataset.kind;
  if (kind === "boolean") return control.checked ? true : undefined;
  const text = control.value.trim();
  if (text === "") return undefined;
  if (kind === "number" || kind === "integer") return Number(text);
  if (kind === "lines") return text.split("\n").map((line) => line.trim()).filter(Boolean);
  if (kind === "json") return JSON.parse(text);
  return kind === "string" ? control.value : text;
}
