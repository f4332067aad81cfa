// Artifacts as a tree with previews: images inline, text and logs with line numbers, JSON pretty-printed,
// CSV as a table (the first 1,000 rows), HTML in a sandboxed frame (no scripts), an MLflow model folder
// summarised from its MLmodel file. Every file is also a download.
import { h } from "./dom";

export interface FileEntry {
  path: string;
  size: number;
}

const MAX_TEXT = 1 << 20; // a preview reads at most the first MiB
const ext = (p: string) => (p.split("/").pop() ?? "").split(".").pop()?.toLowerCase() ?? "";
const IMAGE = new Set(["png", "jpg", "jpeg", "gif", "svg", "webp"]);
const TEXT = new Set([
  "txt",
  "log",
  "py",
  "md",
  "yaml",
  "yml",
  "sh",
  "cfg",
  "ini",
  "toml",
  "out",
  "err",
  "r",
  "sql",
]);

// The first MiB of a file, read as a stream and then let go (a 5 GB log is not downloaded to preview it).
async function readText(url: string): Promise<{ text: string; cut: boolean }> {
  const res = await fetch(url, { credentials: "same-origin" });
  if (!res.ok || !res.body) throw new Error(`${res.status} ${res.statusText}`);
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let n = 0;
  while (n < MAX_TEXT) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    n += value.length;
  }
  const cut = n >= MAX_TEXT;
  if (cut) await reader.cancel();
  const all = new Uint8Array(Math.min(n, MAX_TEXT));
  let at = 0;
  for (const c of chunks) {
    const take = Math.min(c.length, all.length - at);
    all.set(c.subarray(0, take), at);
    at += take;
    if (at === all.length) break;
  }
  return { text: new TextDecoder().decode(all), cut };
}

function numbered(text: string): HTMLElement {
  const lines = text.split("\n");
  if (lines.length && lines[lines.length - 1] === "") lines.pop();
  return h(
    "pre",
    { class: "numbered" },
    ...lines.map((l, i) => h("span", { class: "line", "data-n": String(i + 1) }, l + "\n")),
  );
}

// A CSV line's fields, quotes honoured.
function csvRow(line: string): string[] {
  const out: string[] = [];
  let cur = "",
    quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") {
      out.push(cur);
      cur = "";
    } else cur += c;
  }
  out.push(cur);
  return out;
}

// MLmodel: the flavors (keys under `flavors:`) and the signature's lines, read without a YAML library.
function mlmodelSummary(text: string): HTMLElement {
  const lines = text.split("\n");
  const flavors: string[] = [];
  let section = "";
  const signature: string[] = [];
  for (const l of lines) {
    if (/^\S/.test(l)) section = l.replace(/:.*$/, "");
    else if (section === "flavors" && /^ {2}\S/.test(l)) flavors.push(l.trim().replace(/:.*$/, ""));
    else if (section === "signature") signature.push(l.trim());
  }
  const field = (k: string) =>
    lines
      .find((l) => l.startsWith(k + ":"))
      ?.slice(k.length + 1)
      .trim() ?? "";
  return h(
    "div",
    { class: "mlmodel", id: "mlmodel-summary" },
    h(
      "p",
      {},
      h("b", {}, "MLflow model"),
      ` · flavors: `,
      h("span", { id: "mlmodel-flavors" }, flavors.join(", ") || "none"),
    ),
    ...(field("run_id") ? [h("p", {}, `run ${field("run_id")}`)] : []),
    ...(signature.length
      ? [h("p", {}, "signature:"), h("pre", { class: "yaml" }, signature.join("\n"))]
      : []),
    ...(lines.some((l) => l.startsWith("saved_input_example_info"))
      ? [h("p", {}, "has an input example")]
      : []),
  );
}

export async function preview(path: string, url: string, into: HTMLElement) {
  into.replaceChildren(
    h(
      "p",
      { class: "preview-title" },
      path,
      " ",
      h("a", { href: url, download: path.split("/").pop()! }, "download"),
    ),
  );
  const e = ext(path);
  try {
    if (IMAGE.has(e)) {
      into.append(h("img", { src: url, alt: path, class: "preview-image", id: "preview-image" }));
    } else if (e === "html" || e === "htm") {
      const { text } = await readText(url);
      // No allow-scripts: the page is the job's, not the studio's.
      into.append(
        h("iframe", {
          sandbox: "",
          srcdoc: text,
          class: "preview-html",
          id: "preview-html",
          title: path,
        }),
      );
    } else if (e === "csv" || e === "tsv") {
      const { text } = await readText(url);
      const rows = text
        .split("\n")
        .filter((l) => l.length)
        .slice(0, 1001)
        .map((l) => (e === "tsv" ? l.split("\t") : csvRow(l)));
      const [head, ...body] = rows;
      into.append(
        h(
          "table",
          { class: "csv", id: "preview-csv" },
          h("tr", {}, ...(head ?? []).map((c) => h("th", {}, c))),
          ...body.slice(0, 1000).map((r) => h("tr", {}, ...r.map((c) => h("td", {}, c)))),
        ),
      );
      if (body.length > 1000) into.append(h("p", {}, "the first 1,000 rows"));
    } else if (e === "json") {
      const { text, cut } = await readText(url);
      let shown = text;
      try {
        if (!cut) shown = JSON.stringify(JSON.parse(text), null, 2);
      } catch {
        /* shown as it is */
      }
      into.append(numbered(shown));
    } else if (path.split("/").pop() === "MLmodel") {
      const { text } = await readText(url);
      into.append(mlmodelSummary(text), numbered(text));
    } else if (TEXT.has(e) || !e.length || e === path.split("/").pop()) {
      const { text, cut } = await readText(url);
      into.append(numbered(text), ...(cut ? [h("p", {}, "the first MiB")] : []));
    } else {
      into.append(h("p", {}, "no preview for this kind of file"));
    }
  } catch (err) {
    into.append(h("p", { class: "error" }, `cannot preview: ${(err as Error).message}`));
  }
}

// The files as a tree of folders (open two levels deep), each file a preview on click and a download.
export function fileTree(
  files: FileEntry[],
  urlOf: (p: string) => string,
  marked: string,
  into: HTMLElement,
  zipOf?: (dir: string) => string,
): HTMLElement {
  interface Node {
    dirs: Map<string, Node>;
    files: FileEntry[];
  }
  const root: Node = { dirs: new Map(), files: [] };
  for (const f of files) {
    const parts = f.path.split("/");
    let n = root;
    for (const d of parts.slice(0, -1)) {
      if (!n.dirs.has(d)) n.dirs.set(d, { dirs: new Map(), files: [] });
      n = n.dirs.get(d)!;
    }
    n.files.push(f);
  }
  const render = (n: Node, prefix: string, depth: number): HTMLElement[] => [
    ...[...n.dirs.entries()].sort().map(([d, child]) => {
      const p = prefix + d;
      const open = depth < 2 || marked.startsWith(p + "/");
      return h(
        "details",
        { open, "data-dir": p },
        h(
          "summary",
          {},
          d + "/",
          ...(zipOf
            ? [" ", h("a", { href: zipOf(p), download: `${d}.zip`, class: "download zip" }, "zip")]
            : []),
        ),
        h("div", { class: "tree-children" }, ...render(child, p + "/", depth + 1)),
      );
    }),
    ...n.files
      .sort((a, b) => (a.path < b.path ? -1 : 1))
      .map((f) =>
        h(
          "div",
          { class: "tree-file" + (f.path === marked ? " marked" : ""), "data-path": f.path },
          h(
            "a",
            {
              href: "#",
              class: "preview-link",
              onclick: (ev: Event) => {
                ev.preventDefault();
                preview(f.path, urlOf(f.path), into);
              },
            },
            f.path.split("/").pop()!,
          ),
          " ",
          h("span", { class: "size" }, `${f.size} B`),
          " ",
          h(
            "a",
            { href: urlOf(f.path), download: f.path.split("/").pop()!, class: "download" },
            "download",
          ),
        ),
      ),
  ];
  return h("div", { class: "tree", id: "file-tree" }, ...render(root, "", 0));
}
