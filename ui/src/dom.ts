// A few helpers to build pages without a framework.
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | number | boolean | ((e: Event) => void)> = {},
  ...children: (Node | string | null | undefined)[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (typeof v === "function") el.addEventListener(k.replace(/^on/, ""), v);
    else if (typeof v === "boolean") {
      if (v) el.setAttribute(k, "");
    } else el.setAttribute(k, String(v));
  }
  for (const c of children) if (c !== null && c !== undefined) el.append(c);
  return el;
}

export function statusBadge(status: string): HTMLElement {
  return h(
    "span",
    { class: `status status-${status.toLowerCase()}`, "data-status": status },
    status,
  );
}

export function fmtTime(iso?: string): string {
  if (!iso) return "";
  const d = new Date(iso);
  return isNaN(d.getTime()) ? iso : d.toLocaleString();
}

export function fmtDuration(seconds?: number): string {
  if (seconds === undefined || seconds === null) return "";
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} m ${Math.round(seconds % 60)} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.round((seconds % 3600) / 60)} m`;
}

// A metric value in a table cell: four significant digits, no trailing zeros.
export function fmtNumber(v: number): string {
  if (Number.isInteger(v) && Math.abs(v) < 1e6) return String(v);
  return Math.abs(v) >= 1e-3 && Math.abs(v) < 1e6
    ? String(Number(v.toPrecision(4)))
    : v.toExponential(3);
}

// A value as a person reads it: a mapping as "key value, key value" (nested ones in parentheses), a list
// joined by commas; never JSON.
export function readable(v: unknown): string {
  if (v === null || v === undefined) return "";
  if (Array.isArray(v)) return v.map(readable).join(", ");
  if (typeof v === "object")
    return Object.entries(v as Record<string, unknown>)
      .filter(([, x]) => !isEmpty(x))
      .map(([k, x]) =>
        typeof x === "object" && x !== null && !Array.isArray(x)
          ? `${k} (${readable(x)})`
          : `${k} ${readable(x)}`,
      )
      .join(", ");
  return String(v);
}
const isEmpty = (v: unknown) =>
  v === null ||
  v === undefined ||
  v === "" ||
  (typeof v === "object" && Object.keys(v as object).length === 0);

// Rows of name and value; empty values are left out, and a table with none says `none`.
export function keyValues(obj: Record<string, unknown> | undefined, none = "none"): HTMLElement {
  const rows = Object.entries(obj ?? {}).filter(([, v]) => !isEmpty(v));
  if (!rows.length) return h("p", { class: "none" }, none);
  const table = h("table", { class: "kv" });
  for (const [k, v] of rows) table.append(h("tr", {}, h("th", {}, k), h("td", {}, readable(v))));
  return table;
}
