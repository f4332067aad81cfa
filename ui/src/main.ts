// Cairn studio: jobs, a job's overview, logs, metrics and outputs, sweeps, pipelines, run comparison.
import "./style.css";
import { get, post, request, onJobsChanged, type Job, type PipelineStep, type Trial } from "./api";
import { drawChart, parallelCoordinates, type Columns, type XAxis } from "./chart";
import { fmtDuration, fmtNumber, fmtTime, h, keyValues, statusBadge } from "./dom";
import { fileTree, preview } from "./preview";

const app = document.getElementById("app")!;
let cleanup: (() => void)[] = [];

function route() {
  for (const c of cleanup) c();
  cleanup = [];
  app.replaceChildren();
  const hash = location.hash || "#/jobs";
  const [path, query] = hash.slice(1).split("?");
  const params = new URLSearchParams(query ?? "");
  const parts = path.split("/").filter(Boolean);
  const dec = (s: string) => decodeURIComponent(s);
  // MLflow's own URLs (what the mlflow client prints for a run) open the matching experiment, job or artifact.
  const page =
    parts[0] === "jobs" && parts[1]
      ? jobPage(dec(parts[1]), parts[2] ?? "overview")
      : parts[0] === "compare"
        ? comparePage(params.get("jobs")?.split(",").filter(Boolean) ?? [])
        : parts[0] === "experiments" && parts[1] && parts[2] === "runs" && parts[3]
          ? mlflowRunPage(
              dec(parts[1]),
              dec(parts[3]),
              parts[4] === "artifacts" ? parts.slice(5).map(dec).join("/") : undefined,
            )
          : parts[0] === "experiments" && parts[1]
            ? experimentPage(dec(parts[1]))
            : parts[0] === "experiments"
              ? experimentsPage()
              : parts[0] === "computes"
                ? computesPage()
                : jobsPage(params);
  page.catch(async (e: Error & { status?: number }) => {
    app.replaceChildren(h("p", { class: "error" }, e.message));
    // Not signed in, on a server with an OpenID provider: offer its sign-in, back to this page.
    if (e.status !== 401) return;
    const opts = await get<{ oidc: boolean; issuer?: string }>("/api/v1/sign-in").catch(() => null);
    if (opts?.oidc)
      app.append(
        h(
          "p",
          {},
          h(
            "a",
            {
              id: "oidc-sign-in",
              href: `/oidc/login?next=${encodeURIComponent("/" + (location.hash || "#/jobs"))}`,
            },
            `Sign in with ${new URL(opts.issuer ?? location.href).host}`,
          ),
        ),
      );
  });
}
// Who the server says is signed in, with their role (a team server's people differ; a person's own
// server has one, its Owner): shown in the header, and what "mine" means in the jobs list.
const whoami = get<{ name: string; role: string; team: boolean }>("/api/v1/whoami").then(
  (w) => {
    const el = document.getElementById("workspace-name");
    if (el && w.team)
      el.title = `${el.title ? el.title + " · " : ""}signed in as ${w.name} (${w.role})`;
    return w;
  },
  () => ({ name: "", role: "", team: false }),
);

window.addEventListener("hashchange", route);
route();

// The workspace's name in the header: a named workspace's (…/workspaces/<name>), else its folder's.
get<{ workspace?: string }>("/api/v1/health").then(
  (w) => {
    const path = w.workspace ?? "";
    const parts = path.split("/").filter(Boolean);
    const name =
      parts.length >= 2 && parts[parts.length - 2] === "workspaces"
        ? parts[parts.length - 1]
        : (parts[parts.length - 1] ?? "");
    const el = document.getElementById("workspace-name");
    if (el) {
      el.textContent = name === ".cairn" ? "default workspace" : `workspace ${name}`;
      el.title = path;
    }
  },
  () => undefined,
);

// ---- Jobs: every job, filtered, sorted, virtually scrolled; live. ----
const ROW = 30;
async function jobsPage(params: URLSearchParams) {
  const filter = h("input", {
    type: "search",
    placeholder: "filter: name, experiment, compute, tag, creator",
    value: params.get("q") ?? "",
    id: "job-filter",
  });
  const status = h(
    "select",
    { id: "status-filter" },
    h("option", { value: "" }, "any status"),
    ...["Queued", "Running", "Completed", "Failed", "Canceled"].map((s) =>
      h("option", { value: s }, s),
    ),
  );
  const count = h("span", { class: "count" });
  const counts = h("span", { class: "status-counts", id: "status-counts" });
  // Only the jobs the signed-in person submitted.
  const mineBox = h("input", {
    type: "checkbox",
    id: "mine-filter",
    checked: params.get("mine") === "1",
  });
  const mine = h(
    "label",
    { class: "mine", title: "only the jobs you submitted" },
    mineBox,
    " mine",
  );
  const me = (await whoami).name;
  const compare = h(
    "button",
    {
      id: "compare",
      disabled: true,
      onclick: () => {
        location.hash = `#/compare?jobs=${[...picked].join(",")}`;
      },
    },
    "Compare",
  );
  const cancelPicked = h(
    "button",
    {
      id: "cancel-picked",
      disabled: true,
      onclick: async () => {
        const live = all.filter(
          (j) => picked.has(j.name) && !["Completed", "Failed", "Canceled"].includes(j.status),
        );
        await Promise.all(
          live.map((j) =>
            post(`/api/v1/jobs/${encodeURIComponent(j.name)}/cancel`).catch(() => undefined),
          ),
        );
      },
    },
    "Cancel selected",
  );
  // The columns: the fixed ones, and any param or metric the jobs have (the column chooser), in the URL (cols=)
  // and remembered for the next visit. A column is [id, label, sort value, cell text, width].
  type Column = [string, string, (j: Job) => string | number, (j: Job) => string, string];
  const num = (v: unknown) =>
    typeof v === "number"
      ? v
      : typeof v === "string" && v.trim() !== "" && isFinite(Number(v))
        ? Number(v)
        : NaN;
  const missing = () => (desc ? -Infinity : Infinity); // jobs without the value sort last either way
  const fixed: Column[] = [
    ["status", "Status", (j) => j.status, (j) => j.status, "100px"],
    ["name", "Name", (j) => j.name, (j) => j.name, "minmax(120px, 1.4fr)"],
    [
      "display_name",
      "Display name",
      (j) => j.display_name ?? "",
      (j) => j.display_name ?? "",
      "minmax(80px, 1.1fr)",
    ],
    [
      "experiment",
      "Experiment",
      (j) => j.experiment_name ?? "",
      (j) => j.experiment_name ?? "",
      "minmax(80px, 0.9fr)",
    ],
    ["compute", "Compute", (j) => j.compute ?? "", (j) => j.compute ?? "", "minmax(70px, 0.8fr)"],
    [
      "created",
      "Created",
      (j) => j.creation_context?.created_at ?? "",
      (j) => fmtTime(j.creation_context?.created_at),
      "minmax(90px, 1.1fr)",
    ],
    [
      "duration",
      "Duration",
      (j) => j.duration_seconds ?? -1,
      (j) => fmtDuration(j.duration_seconds),
      "minmax(60px, 0.6fr)",
    ],
    // Sorted by the most common metric key across the jobs (the one shown first); jobs without it last.
    [
      "metrics",
      "Key metrics",
      (j) => {
        const v = j.metrics?.[keyOrder[0]];
        return typeof v === "number" ? v : missing();
      },
      (j) => keyMetrics(j),
      "minmax(120px, 1.6fr)",
    ],
  ];
  const dynamic = (id: string): Column | undefined => {
    const colon = id.indexOf(":");
    if (colon < 0) return fixed.find((c) => c[0] === id);
    const [kind, key] = [id.slice(0, colon), id.slice(colon + 1)];
    if (kind === "param")
      return [
        id,
        key,
        (j) => {
          const v = j.params?.[key];
          return v === undefined ? missing() : isNaN(num(v)) ? v : num(v);
        },
        (j) => j.params?.[key] ?? "",
        "minmax(70px, 0.8fr)",
      ];
    if (kind === "metric")
      return [
        id,
        key,
        (j) => {
          const v = num(j.metrics?.[key]);
          return isNaN(v) ? missing() : v;
        },
        (j) => {
          const v = j.metrics?.[key];
          return v === undefined ? "" : typeof v === "number" ? fmtNumber(v) : v;
        },
        "minmax(70px, 0.8fr)",
      ];
    return undefined;
  };
  const stored = params.get("cols") ?? localStorage.getItem("cairn.columns");
  let chosen: string[] = stored
    ? stored.split(",").filter((c) => c && dynamic(c))
    : fixed.map((c) => c[0]);
  if (!chosen.length) chosen = fixed.map((c) => c[0]);
  let columns: Column[] = [];
  // Key metrics: each job's latest values, keys ordered by how many jobs log them, so the same keys line up.
  let keyOrder: string[] = [];
  let paramOrder: string[] = [];
  const keyMetrics = (j: Job) =>
    Object.entries(j.metrics ?? {})
      .filter(([k]) => !isSystem(k))
      .sort((a, b) => keyOrder.indexOf(a[0]) - keyOrder.indexOf(b[0]))
      .slice(0, 3)
      .map(([k, v]) => `${k} ${typeof v === "number" ? fmtNumber(v) : v}`)
      .join(" · ");
  let sortKey = "created",
    desc = true;
  const head = h("div", { class: "row head" });
  const table = h("div", { class: "table" });
  const layout = () => {
    columns = chosen.map(dynamic).filter((c): c is Column => !!c);
    if (!columns.some((c) => c[0] === sortKey)) {
      sortKey = "created";
      desc = true;
    }
    table.style.setProperty("--cols", ["28px", ...columns.map((c) => c[4])].join(" "));
    // A phone keeps status, name and duration of what is chosen.
    const phone: Record<string, string> = { status: "90px", name: "1fr", duration: "64px" };
    table.style.setProperty(
      "--cols-phone",
      ["28px", ...columns.filter((c) => phone[c[0]]).map((c) => phone[c[0]])].join(" "),
    );
    head.replaceChildren(
      h("span", { class: "pick" }),
      ...columns.map(([key, label]) =>
        h(
          "span",
          {
            class: `c-${key.includes(":") ? key.slice(0, key.indexOf(":")) : key}`,
            "data-col": key,
            title: key,
            onclick: () => {
              desc = sortKey === key ? !desc : key === "created" || key.includes(":");
              sortKey = key;
              layout();
              render();
            },
          },
          label,
          sortKey === key ? (desc ? " ▾" : " ▴") : "",
        ),
      ),
    );
  };
  // The chooser: a checkbox per column, param and metric; ticking one adds its column at the end.
  const chooser = h(
    "details",
    { class: "column-chooser", id: "column-chooser" },
    h("summary", {}, "Columns"),
  );
  const chooserBody = h("div", { class: "chooser-body" });
  chooser.append(chooserBody);
  const fillChooser = () => {
    const box = (id: string, label: string) =>
      h(
        "label",
        {},
        h("input", {
          type: "checkbox",
          "data-col": id,
          checked: chosen.includes(id),
          onchange: (e: Event) => {
            chosen = (e.target as HTMLInputElement).checked
              ? [...chosen, id]
              : chosen.filter((c) => c !== id);
            localStorage.setItem("cairn.columns", chosen.join(","));
            layout();
            render();
          },
        }),
        label,
      );
    const group = (title: string, items: [string, string][]) =>
      items.length
        ? h("fieldset", {}, h("legend", {}, title), ...items.map(([id, label]) => box(id, label)))
        : null;
    chooserBody.replaceChildren(
      ...[
        group(
          "Columns",
          fixed.map((c) => [c[0], c[1]]),
        ),
        // The keys the jobs have, and any chosen earlier that none has now (so it can be unticked).
        group(
          "Params",
          [
            ...new Set([
              ...paramOrder,
              ...chosen.filter((c) => c.startsWith("param:")).map((c) => c.slice(6)),
            ]),
          ].map((k) => [`param:${k}`, k]),
        ),
        group(
          "Metrics",
          [
            ...new Set([
              ...keyOrder,
              ...chosen.filter((c) => c.startsWith("metric:")).map((c) => c.slice(7)),
            ]),
          ].map((k) => [`metric:${k}`, k]),
        ),
      ].filter((g): g is HTMLFieldSetElement => !!g),
    );
  };
  chooser.addEventListener("toggle", () => {
    if (chooser.open) fillChooser();
  });
  layout();
  const viewport = h("div", {
    class: "viewport",
    id: "jobs-viewport",
    tabindex: 0,
    role: "grid",
    "aria-label": "jobs",
  });
  // The keyboard: ↑/↓ move a cursor over the rows, Enter opens its job, Space ticks it.
  let cursor = -1;
  const spacer = h("div", { class: "spacer" });
  const rows = h("div", { class: "rows" });
  viewport.append(spacer, rows);
  const picked = new Set<string>();
  const expanded = new Set<string>(params.get("expand")?.split(",").filter(Boolean) ?? []);
  status.value = params.get("status") ?? "";
  table.append(head, viewport);
  app.append(
    h(
      "div",
      { class: "toolbar" },
      filter,
      status,
      mine,
      chooser,
      compare,
      cancelPicked,
      count,
      counts,
    ),
    table,
  );

  let all: Job[] = [];
  let shown: Job[] = [];
  const load = async () => {
    all = await get<Job[]>("/api/v1/jobs?max_results=0&include_children=true&view=summary");
    const counts = new Map<string, number>();
    for (const j of all)
      for (const k in j.metrics ?? {}) if (!isSystem(k)) counts.set(k, (counts.get(k) ?? 0) + 1);
    keyOrder = [...counts.keys()].sort(
      (a, b) => counts.get(b)! - counts.get(a)! || (a < b ? -1 : 1),
    );
    const pcounts = new Map<string, number>();
    for (const j of all) for (const k in j.params ?? {}) pcounts.set(k, (pcounts.get(k) ?? 0) + 1);
    paramOrder = [...pcounts.keys()].sort(
      (a, b) => pcounts.get(b)! - pcounts.get(a)! || (a < b ? -1 : 1),
    );
    if (chooser.open) fillChooser();
    layout();
    render();
  };
  const render = () => {
    const q = filter.value.toLowerCase();
    const st = status.value;
    // A pipeline's steps and a sweep's trials are nested under it: shown, right below it, once it is expanded.
    const pipelines = new Set(
      all.filter((j) => j.type === "pipeline" || j.type === "sweep").map((j) => j.name),
    );
    const stepsOf = new Map<string, Job[]>();
    for (const j of all)
      if (j.parent_job_name && pipelines.has(j.parent_job_name))
        stepsOf.set(j.parent_job_name, [...(stepsOf.get(j.parent_job_name) ?? []), j]);
    shown = all.filter(
      (j) =>
        !(j.parent_job_name && pipelines.has(j.parent_job_name)) &&
        (!st || j.status === st) &&
        (!mineBox.checked || j.creation_context?.created_by === me) &&
        (!q ||
          [
            j.name,
            j.display_name,
            j.experiment_name,
            j.compute,
            j.creation_context?.created_by,
            ...Object.entries(j.tags ?? {}).map(([k, v]) => `${k}=${v}`),
          ].some((s) => s && s.toLowerCase().includes(q))),
    );
    const col = columns.find((c) => c[0] === sortKey)!;
    shown.sort((a, b) => {
      const x = col[2](a),
        y = col[2](b);
      return (x < y ? -1 : x > y ? 1 : 0) * (desc ? -1 : 1);
    });
    shown = shown.flatMap((j) =>
      expanded.has(j.name)
        ? [
            j,
            ...(stepsOf.get(j.name) ?? []).sort((a, b) =>
              (a.creation_context?.created_at ?? "") < (b.creation_context?.created_at ?? "")
                ? -1
                : 1,
            ),
          ]
        : [j],
    );
    count.textContent = `${shown.length} of ${all.length} jobs`;
    // How many jobs are in each status (top-level ones); a click filters by it.
    const byStatus = new Map<string, number>();
    for (const j of all)
      if (!(j.parent_job_name && pipelines.has(j.parent_job_name)))
        byStatus.set(j.status, (byStatus.get(j.status) ?? 0) + 1);
    counts.replaceChildren(
      ...[...byStatus.entries()]
        .sort((a, b) => b[1] - a[1])
        .map(([k, n]) =>
          h(
            "button",
            {
              class: `status-count status status-${k.toLowerCase()}`,
              "data-status": k,
              onclick: () => {
                status.value = status.value === k ? "" : k;
                render();
              },
            },
            `${k} ${n}`,
          ),
        ),
    );
    // The filters live in the URL, so a filtered list can be bookmarked and shared (no reload: replaceState).
    const kept = new URLSearchParams();
    if (filter.value) kept.set("q", filter.value);
    if (status.value) kept.set("status", status.value);
    if (mineBox.checked) kept.set("mine", "1");
    if (expanded.size) kept.set("expand", [...expanded].join(","));
    if (chosen.join(",") !== fixed.map((c) => c[0]).join(",")) kept.set("cols", chosen.join(","));
    const want = `#/jobs${kept.size ? "?" + kept.toString() : ""}`;
    // Only while the list is what the URL shows: a click on a job changes the hash before its hashchange event
    // runs, and a refresh landing in between must not put the list's URL back over the job's.
    const onList =
      !location.hash || location.hash === "#/jobs" || location.hash.startsWith("#/jobs?");
    if (location.hash !== want && onList) history.replaceState(null, "", want);
    spacer.style.height = `${shown.length * ROW}px`;
    paint();
  };
  const paint = () => {
    const first = Math.floor(viewport.scrollTop / ROW);
    const n = Math.ceil(viewport.clientHeight / ROW) + 2;
    rows.style.transform = `translateY(${first * ROW}px)`;
    rows.replaceChildren(
      ...shown.slice(first, first + n).map((j) => {
        const box = h("input", {
          type: "checkbox",
          checked: picked.has(j.name),
          onchange: (e: Event) => {
            (e.target as HTMLInputElement).checked ? picked.add(j.name) : picked.delete(j.name);
            compare.disabled = picked.size < 2;
            cancelPicked.disabled = picked.size < 1;
          },
        });
        return h(
          "div",
          {
            class: "row" + (shown[cursor]?.name === j.name ? " cursor" : ""),
            "data-job": j.name,
            role: "row",
          },
          h("span", { class: "pick" }, box),
          ...columns.map(([id, , , text]) =>
            id === "status"
              ? h("span", { class: "c-status" }, statusBadge(j.status))
              : id === "name"
                ? h(
                    "span",
                    { class: "c-name" },
                    j.type === "pipeline" || j.type === "sweep"
                      ? h(
                          "button",
                          {
                            class: "expand",
                            "data-expand": j.name,
                            title: j.type === "sweep" ? "trials" : "steps",
                            "aria-expanded": String(expanded.has(j.name)),
                            onclick: () => {
                              expanded.has(j.name) ? expanded.delete(j.name) : expanded.add(j.name);
                              render();
                            },
                          },
                          expanded.has(j.name) ? "▾" : "▸",
                        )
                      : j.parent_job_name && expanded.has(j.parent_job_name)
                        ? h("span", { class: "indent" })
                        : "",
                    h("a", { href: `#/jobs/${encodeURIComponent(j.name)}` }, j.name),
                  )
                : h(
                    "span",
                    {
                      class: `c-${id.includes(":") ? id.slice(0, id.indexOf(":")) : id}`,
                      "data-col": id,
                    },
                    text(j),
                  ),
          ),
        );
      }),
    );
  };
  viewport.addEventListener("scroll", () => requestAnimationFrame(paint));
  viewport.addEventListener("keydown", (e: KeyboardEvent) => {
    if (!shown.length) return;
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      cursor = Math.max(0, Math.min(shown.length - 1, cursor + (e.key === "ArrowDown" ? 1 : -1)));
      const top = cursor * ROW,
        bottom = top + ROW;
      if (top < viewport.scrollTop) viewport.scrollTop = top;
      else if (bottom > viewport.scrollTop + viewport.clientHeight)
        viewport.scrollTop = bottom - viewport.clientHeight;
      paint();
    } else if (e.key === "Enter" && shown[cursor]) {
      location.hash = `#/jobs/${encodeURIComponent(shown[cursor].name)}`;
    } else if (e.key === " " && shown[cursor]) {
      e.preventDefault();
      const n = shown[cursor].name;
      picked.has(n) ? picked.delete(n) : picked.add(n);
      compare.disabled = picked.size < 2;
      cancelPicked.disabled = picked.size < 1;
      paint();
    }
  });
  filter.addEventListener("input", render);
  status.addEventListener("change", render);
  mineBox.addEventListener("change", render);
  cleanup.push(onJobsChanged(load));
  await load();
}

// ---- A job: overview, logs, metrics, outputs, trials. ----
// MLflow's system metrics (system/cpu_utilization_percentage, system/gpu_0_memory_usage_megabytes, ...).
const isSystem = (key: string) => key.startsWith("system/");
function systemTitle(key: string): string {
  if (!isSystem(key)) return key;
  const gpu = /^system\/gpu_(\d+)_(utilization_percentage|memory_usage_megabytes)$/.exec(key);
  if (gpu)
    return `GPU ${gpu[1]} ${gpu[2] === "utilization_percentage" ? "utilization (%)" : "memory (MB)"}`;
  const names: Record<string, string> = {
    "system/cpu_utilization_percentage": "CPU utilization (% of the machine)",
    "system/system_memory_usage_megabytes": "memory (MB)",
    "system/system_memory_usage_percentage": "memory (% of the machine)",
  };
  return names[key] ?? key;
}

// Where the job's command ran: the container image it was started in, or this host and why (from the
// supervisor's Preparing reasons in the status history).
function runsIn(job: Job): string {
  for (const e of [...(job.status_history ?? [])].reverse()) {
    const image = /starting the container \(([^)]+)\)/.exec(e.reason ?? "");
    if (image) return `container ${image[1]}`;
    if ((e.reason ?? "").includes("runs on this host"))
      return "this host (no container: see the status history)";
  }
  return "";
}

async function jobPage(name: string, tab: string, highlight?: string) {
  const base = `/api/v1/jobs/${encodeURIComponent(name)}`;
  let job = await get<Job>(base);
  const header = h("div", { class: "job-head" });
  const tabs = [
    ...(job.type === "pipeline" ? ["graph"] : []),
    "overview",
    "logs",
    "metrics",
    "monitoring",
    "outputs",
    ...(job.type === "sweep" ? ["trials"] : []),
  ];
  if (job.type === "pipeline" && tab === "overview" && !location.hash.endsWith("/overview"))
    tab = "graph";
  const body = h("div", { class: "tab-body" });
  const drawHeader = () => {
    const running = !["Completed", "Failed", "Canceled"].includes(job.status);
    header.replaceChildren(
      h("h1", {}, job.display_name ?? job.name, " ", statusBadge(job.status)),
      h("p", { class: "reason", id: "status-reason" }, job.status_reason ?? ""),
      running
        ? h(
            "button",
            {
              id: "cancel",
              onclick: async () => {
                await post(`${base}/cancel`);
              },
            },
            "Cancel",
          )
        : h("span"),
      job.parent_job_name
        ? h("span")
        : h("button", { id: "rerun", onclick: () => rerun(name, body) }, "Rerun"),
      h(
        "nav",
        { class: "tabs" },
        ...tabs.map((t) =>
          h(
            "a",
            { href: `#/jobs/${encodeURIComponent(name)}/${t}`, class: t === tab ? "active" : "" },
            t,
          ),
        ),
      ),
    );
  };
  drawHeader();
  app.append(header, body);
  // Live: redrawn when the job changes, except the overview while the user types in one of its forms.
  const refresh = async (force = false) => {
    job = await get<Job>(base);
    drawHeader();
    const typing =
      document.activeElement instanceof HTMLInputElement &&
      document.activeElement.closest(".editable");
    if (tab === "overview" && !body.dataset.editing && (force || !typing)) overview();
    if (tab === "graph") body.replaceChildren(pipelineGraph(job));
  };
  cleanup.push(onJobsChanged(() => refresh()));

  // The run's params and latest metrics (MLflow), and the YAML as submitted: read once.
  const extra = Promise.all([
    get<{
      run: {
        data: {
          params?: { key: string; value: string }[];
          metrics?: { key: string; value: number }[];
        };
      };
    }>(`/api/2.0/mlflow/runs/get?run_id=${encodeURIComponent(name)}`).catch(() => undefined),
    get<{ source_yaml?: string }>(`${base}?include=yaml`).catch(() => undefined),
  ]);
  const overview = async () => {
    const [run, withYaml] = await extra;
    // The Rerun editor opened while this was read: it stays.
    if (body.dataset.editing) return;
    const params = Object.fromEntries((run?.run.data.params ?? []).map((p) => [p.key, p.value]));
    const metrics = Object.fromEntries(
      (run?.run.data.metrics ?? []).map((m) => [m.key, String(m.value)]),
    );
    body.replaceChildren(
      h("h2", {}, "Status history"),
      h(
        "table",
        { class: "history" },
        ...(job.status_history ?? []).map((e) =>
          h(
            "tr",
            {},
            h("td", {}, fmtTime(e.time)),
            h("td", {}, statusBadge(e.status)),
            h("td", {}, e.reason),
          ),
        ),
      ),
      h("h2", {}, "Job"),
      h(
        "div",
        { id: "job-fields" },
        keyValues({
          name: job.name,
          type: job.type,
          experiment: job.experiment_name,
          compute: job.compute,
          command: job.command,
          created: fmtTime(job.creation_context?.created_at),
          duration: fmtDuration(job.duration_seconds),
          environment: job.environment,
          "runs in": runsIn(job),
          distribution: job.distribution,
          resources: job.resources,
          ...(job.error?.message ? { error: job.error.message } : {}),
        }),
      ),
      h("h2", {}, "Inputs"),
      ioTable("inputs", job.inputs),
      h("h2", {}, "Outputs"),
      ioTable("outputs", job.outputs),
      h("h2", {}, "Tags"),
      editableMap("tags", job, base, () => refresh(true)),
      h("h2", {}, "Properties"),
      editableMap("properties", job, base, () => refresh(true)),
      h("h2", {}, "Params"),
      h("div", { id: "params" }, keyValues(params, "no params")),
      h("h2", {}, "Metrics (latest)"),
      keyValues(metrics, "no metrics"),
      h("h2", {}, "As submitted"),
      h("pre", { class: "yaml", id: "yaml" }, (withYaml?.source_yaml ?? "").replace(/^\n+/, "")),
    );
  };

  if (tab === "logs") {
    const files = Object.keys(job.log_files ?? { "user_logs/std_log.txt": "" });
    const pick = h("select", { id: "log-file" }, ...files.map((f) => h("option", { value: f }, f)));
    const search = h("input", { type: "search", placeholder: "search the log", id: "log-search" });
    const pre = h("pre", { class: "log", id: "log" });
    body.append(h("div", { class: "toolbar" }, pick, search), pre);
    let text = "",
      offset = 0,
      file = files[0],
      stopped = false,
      generation = 0;
    const show = () => {
      const q = search.value;
      pre.textContent = q
        ? text
            .split("\n")
            .filter((l) => l.includes(q))
            .join("\n")
        : text;
      if (!q) pre.scrollTop = pre.scrollHeight;
    };
    const follow = async (gen: number) => {
      while (!stopped && gen === generation) {
        const res = await fetch(
          `${base}/logs?offset=${offset}&wait_ms=10000&file=${encodeURIComponent(file)}`,
          { credentials: "same-origin" },
        );
        if (!res.ok || gen !== generation) return;
        const chunk = await res.text();
        offset = Number(res.headers.get("X-Cairn-Offset") ?? offset);
        if (chunk) {
          text += chunk;
          show();
        }
        if (res.headers.get("X-Cairn-Terminal") === "true" && !chunk) return;
      }
    };
    pick.addEventListener("change", () => {
      file = pick.value;
      text = "";
      offset = 0;
      show();
      follow(++generation);
    });
    search.addEventListener("input", show);
    cleanup.push(() => {
      stopped = true;
    });
    follow(generation);
  } else if (tab === "metrics" || tab === "monitoring") {
    // Monitoring: what the job's processes used (the supervisor's system/ metrics), against time.
    const monitoring = tab === "monitoring";
    const data = await get<{ metrics: Record<string, Columns> }>(
      `${base}/metrics?max_points=2000&format=columns`,
    );
    const keys = Object.keys(data.metrics).filter((k) => isSystem(k) === monitoring);
    if (!keys.length) {
      body.append(
        h(
          "p",
          {},
          monitoring
            ? "No system metrics: they are sampled every 2 s while a local job runs."
            : "No metrics logged.",
        ),
      );
      return;
    }
    const log = h("input", { type: "checkbox", id: "log-scale" });
    const smoothing = h("input", {
      type: "range",
      min: 0,
      max: 0.99,
      step: 0.01,
      value: 0,
      id: "smoothing",
    });
    const xAxis = h(
      "select",
      { id: "x-axis" },
      h("option", { value: "step" }, "step"),
      h("option", { value: "timestamp" }, "time"),
      h("option", { value: "relative" }, "relative time (s)"),
    );
    if (monitoring) xAxis.value = "timestamp";
    const together = h("input", { type: "checkbox", id: "one-chart" });
    const charts = h("div", { class: "charts", id: "charts" });
    body.append(
      h(
        "div",
        { class: "toolbar" },
        h("label", {}, log, " log scale"),
        h("label", {}, " smoothing ", smoothing),
        h("label", {}, " x ", xAxis),
        h("label", {}, together, " all keys on one chart"),
      ),
      charts,
    );
    // A metric logged once is a value, not a one-point chart.
    const single = keys.filter((k) => data.metrics[k].value.length === 1);
    const curves = keys.filter((k) => data.metrics[k].value.length !== 1);
    if (single.length)
      body.insertBefore(
        h(
          "div",
          { class: "single-values", id: "single-values" },
          ...single.map((k) =>
            h(
              "div",
              { class: "value-tile", "data-key": k },
              h("div", { class: "value-key" }, systemTitle(k)),
              h(
                "div",
                { class: "value" },
                String(
                  data.metrics[k].value[0] === null
                    ? "NaN"
                    : fmtNumber(data.metrics[k].value[0] as number),
                ),
              ),
            ),
          ),
        ),
        charts,
      );
    const draw = () => {
      charts.replaceChildren();
      const opts = {
        log: log.checked,
        smoothing: Number(smoothing.value),
        x: xAxis.value as XAxis,
      };
      // Grouped by key prefix ("train/loss" and "train/acc" under "train"), a heading per group once there is
      // more than one; keys without a prefix first. System metrics are the monitoring tab's, one group.
      const ordered = [...curves].sort();
      const prefixOf = (k: string) =>
        monitoring || !k.includes("/") ? "" : k.slice(0, k.lastIndexOf("/"));
      const prefixes = [...new Set(ordered.map(prefixOf))].sort((a, b) =>
        a === "" ? -1 : b === "" ? 1 : a < b ? -1 : 1,
      );
      const groups = together.checked ? [ordered] : ordered.map((k) => [k]);
      const sections = new Map<string, HTMLElement>();
      for (const p of prefixes) {
        const grid = h("div", { class: "charts-group", "data-prefix": p });
        sections.set(p, grid);
        if (prefixes.length > 1 && !together.checked)
          charts.append(h("h3", { class: "chart-group", "data-prefix": p }, p || "metrics"));
        charts.append(grid);
      }
      for (const g of groups) {
        const box = h("div", { class: "chart", "data-keys": g.join(",") });
        (together.checked ? sections.get(prefixes[0])! : sections.get(prefixOf(g[0]))!).append(box);
        // Zoom (drag over a chart) fetches that range at full resolution: the first read was downsampled
        // to about a chart's width. "full range" goes back.
        const plot = (series: Columns[], zoomed: boolean) => {
          box.replaceChildren();
          drawChart(
            box,
            g.map((k, i) => ({ label: k, data: series[i] })),
            {
              ...opts,
              title: g.map(systemTitle).join(", "),
              onZoom: async (min, max) => {
                const t0 = (k: string) => data.metrics[k].timestamp[0] ?? 0;
                const [lo, hi] =
                  opts.x === "timestamp"
                    ? [min * 1000, max * 1000]
                    : opts.x === "relative"
                      ? [min * 1000, max * 1000]
                      : [min, max];
                const ranged = await Promise.all(
                  g.map((k) =>
                    get<{ metrics: Record<string, Columns> }>(
                      `${base}/metrics?key=${encodeURIComponent(k)}&max_points=2000&format=columns&x=${opts.x === "step" ? "step" : "timestamp"}` +
                        `&from=${Math.floor(opts.x === "relative" ? t0(k) + lo : lo)}&to=${Math.ceil(opts.x === "relative" ? t0(k) + hi : hi)}`,
                    ).then((r) => r.metrics[k] ?? { step: [], timestamp: [], value: [] }),
                  ),
                );
                plot(ranged, true);
              },
            },
          );
          box.dataset.zoomed = String(zoomed);
          if (zoomed)
            box.append(
              h(
                "button",
                {
                  class: "full-range",
                  onclick: () =>
                    plot(
                      g.map((k) => data.metrics[k]),
                      false,
                    ),
                },
                "full range",
              ),
            );
        };
        plot(
          g.map((k) => data.metrics[k]),
          false,
        );
      }
    };
    for (const c of [log, smoothing, xAxis, together]) c.addEventListener("input", draw);
    draw();
  } else if (tab === "outputs") {
    const listing = await get<{ files: { path: string; size: number }[] }>(`${base}/files`);
    // An MLflow artifact URL (#/experiments/<id>/runs/<job>/artifacts/<path>) marks its file.
    const marked = highlight ? `artifacts/${highlight}` : "";
    const urlOf = (p: string) => `${base}/files/${p}`;
    const panel = h(
      "div",
      { class: "preview", id: "preview" },
      h("p", { class: "hint" }, "Pick a file to preview it."),
    );
    const tree = fileTree(
      listing.files,
      urlOf,
      marked,
      panel,
      (dir) => `${base}/zip?path=${encodeURIComponent(dir)}`,
    );
    tree.id = "files";
    body.append(h("div", { class: "outputs" }, tree, panel));
    const hit = listing.files.find((f) => f.path === marked);
    if (hit) preview(hit.path, urlOf(hit.path), panel);
    body.querySelector(".marked")?.scrollIntoView({ block: "center" });
  } else if (tab === "trials") {
    sweepTrials(job, body);
  } else if (tab === "graph") {
    body.append(pipelineGraph(job));
  } else {
    overview();
  }
}

function sweepTrials(job: Job, body: HTMLElement) {
  const trials: Trial[] = job.trials ?? [];
  const metric = job.objective?.primary_metric ?? "";
  const maximize = (job.objective?.goal ?? "maximize").toLowerCase() === "maximize";
  const hp = [...new Set(trials.flatMap((t) => Object.keys(t.hyperparameters)))];
  const objective = (t: Trial) =>
    typeof t[metric] === "number" ? (t[metric] as number) : undefined;
  const best = trials.find((t) => objective(t) !== undefined);
  body.append(
    best
      ? h(
          "p",
          { id: "best-trial" },
          "Best trial: ",
          h("a", { href: `#/jobs/${encodeURIComponent(best.name)}` }, best.name),
          ` (${metric} = ${objective(best)})`,
        )
      : h("p", {}, "No trial has reported yet."),
  );
  body.append(
    h(
      "table",
      { class: "trials", id: "trials" },
      h(
        "tr",
        {},
        h("th", {}, "trial"),
        h("th", {}, "status"),
        ...hp.map((k) => h("th", {}, k)),
        h("th", {}, metric),
        h("th", {}, "why it stopped"),
      ),
      ...trials.map((t) =>
        h(
          "tr",
          {},
          h("td", {}, h("a", { href: `#/jobs/${encodeURIComponent(t.name)}` }, t.name)),
          h("td", {}, statusBadge(t.status)),
          ...hp.map((k) => h("td", {}, String(t.hyperparameters[k] ?? ""))),
          h("td", { class: "num" }, String(objective(t) ?? "")),
          h("td", {}, t.status_reason ?? ""),
        ),
      ),
    ),
  );
  // Objective by trial number, with the best so far.
  const byNumber = [...trials].sort(
    (a, b) => Number(a.name.split("_").pop()) - Number(b.name.split("_").pop()),
  );
  let bestSoFar: number | undefined;
  const obj: Columns = { step: [], timestamp: [], value: [] },
    run: Columns = { step: [], timestamp: [], value: [] };
  byNumber.forEach((t, i) => {
    const v = objective(t);
    if (v === undefined) return;
    bestSoFar =
      bestSoFar === undefined || (maximize ? v > bestSoFar : v < bestSoFar) ? v : bestSoFar;
    for (const [c, y] of [
      [obj, v],
      [run, bestSoFar],
    ] as [Columns, number][]) {
      c.step.push(i);
      c.timestamp.push(0);
      c.value.push(y);
    }
  });
  const chart = h("div", { class: "chart", id: "objective-chart" });
  body.append(h("h2", {}, "Objective by trial"), chart);
  if (obj.step.length)
    drawChart(
      chart,
      [
        { label: metric, data: obj },
        { label: "best so far", data: run },
      ],
      { log: false, smoothing: 0, x: "step", title: metric },
    );
  body.append(
    h("h2", {}, "Hyperparameters against the objective"),
    h(
      "div",
      { id: "parallel-coordinates" },
      parallelCoordinates(
        trials.map((t) => ({ name: t.name, values: t.hyperparameters, objective: objective(t) })),
        hp,
        metric,
        maximize,
      ),
    ),
  );
}

// Rerun: the YAML as submitted, to edit and submit again (the original's code and local inputs stand for
// the local paths it names); the new job's page opens, or the errors show, each at its place.
async function rerun(name: string, body: HTMLElement) {
  body.dataset.editing = "rerun"; // from the click: an overview still being read does not draw over the editor
  const withYaml = await get<{ source_yaml?: string }>(
    `/api/v1/jobs/${encodeURIComponent(name)}?include=yaml`,
  );
  const editor = h("textarea", { id: "rerun-yaml", rows: 18, cols: 100, spellcheck: "false" });
  editor.value = withYaml.source_yaml ?? "";
  const newName = h("input", {
    id: "rerun-name",
    placeholder: "name (default: a new one)",
    size: 30,
  });
  const errors = h("pre", { class: "error", id: "rerun-errors" });
  const submit = h(
    "button",
    {
      id: "rerun-submit",
      onclick: async () => {
        errors.textContent = "";
        try {
          const made = await post<Job>(`/api/v1/jobs/${encodeURIComponent(name)}/rerun`, {
            yaml: editor.value,
            name: newName.value,
          });
          location.hash = `#/jobs/${encodeURIComponent(made.name)}`;
        } catch (e) {
          errors.textContent = (e as Error).message;
        }
      },
    },
    "Submit",
  );
  body.dataset.editing = "rerun"; // live updates leave the editor alone
  body.replaceChildren(
    h("h2", {}, `Rerun ${name}`),
    h("p", {}, "Edit the job as submitted; its code and local inputs are the original's."),
    editor,
    h("div", { class: "toolbar" }, newName, submit),
    errors,
  );
  editor.focus();
}

// Inputs or outputs as rows: name, type, where (a link where the studio can show it), mode; no JSON.
function ioTable(
  kind: "inputs" | "outputs",
  items: Record<string, unknown> | undefined,
): HTMLElement {
  const rows = Object.entries(items ?? {}).filter(
    ([k]) => !(kind === "outputs" && k === "default"),
  );
  if (!rows.length) return h("p", { class: "none" }, `no ${kind}`);
  const where = (v: Record<string, unknown>) => {
    const path = String(v.path ?? "");
    const m = /^azureml:\/\/jobs\/([^/]+)\/outputs\/([^/]+)/.exec(String(v.job_output_uri ?? path));
    if (m)
      return h(
        "a",
        { href: `#/jobs/${encodeURIComponent(m[1])}/outputs` },
        String(v.job_output_uri ?? path),
      );
    if (/^https?:\/\//.test(path))
      return h("a", { href: path, rel: "noopener noreferrer", target: "_blank" }, path);
    return h("span", {}, path);
  };
  return h(
    "table",
    { class: "io", id: `job-${kind}` },
    h(
      "tr",
      {},
      h("th", {}, "name"),
      h("th", {}, "type"),
      h("th", {}, kind === "inputs" ? "value or path" : "location"),
      h("th", {}, "mode"),
    ),
    ...rows.map(([k, v]) => {
      const o = (
        typeof v === "object" && v !== null
          ? v
          : {
              type:
                typeof v === "number" ? "number" : typeof v === "boolean" ? "boolean" : "string",
              value: v,
            }
      ) as Record<string, unknown>;
      const literal = "value" in o;
      return h(
        "tr",
        { "data-name": k },
        h("td", {}, k),
        h("td", {}, String(o.type ?? "")),
        h("td", { class: "where" }, literal ? h("code", {}, String(o.value ?? "")) : where(o)),
        h("td", {}, String(o.mode ?? "")),
      );
    }),
  );
}

// Tags (editable, removable) or properties (append-only, as Azure ML keeps them): what `job update` does.
function editableMap(
  kind: "tags" | "properties",
  job: Job,
  base: string,
  done: () => void,
): HTMLElement {
  const values = (job[kind] ?? {}) as Record<string, string>;
  const error = h("span", { class: "error" });
  const save = async (patch: Record<string, string | null>) => {
    try {
      await request("PATCH", base, { [kind]: kind === "tags" ? { ...values, ...patch } : patch });
      done();
    } catch (e) {
      error.textContent = (e as Error).message;
    }
  };
  const key = h("input", { placeholder: "key", class: `${kind}-key`, size: 14 });
  const val = h("input", { placeholder: "value", class: `${kind}-value`, size: 20 });
  return h(
    "div",
    { class: "editable", id: `edit-${kind}` },
    h(
      "table",
      { class: "kv" },
      ...Object.entries(values).map(([k, v]) =>
        h(
          "tr",
          { "data-key": k },
          h("th", {}, k),
          h("td", {}, v),
          kind === "tags"
            ? h(
                "td",
                {},
                h(
                  "button",
                  { class: "remove", title: `remove ${k}`, onclick: () => save({ [k]: null }) },
                  "×",
                ),
              )
            : h("td"),
        ),
      ),
    ),
    h(
      "form",
      {
        class: "add",
        onsubmit: (e: Event) => {
          e.preventDefault();
          if (key.value) save({ [key.value]: val.value });
        },
      },
      key,
      val,
      h("button", { type: "submit" }, kind === "tags" ? "Set tag" : "Add property"),
      error,
    ),
  );
}

// A pipeline's steps as boxes in columns (a step's column is one past the furthest step it reads from), data
// edges between them, each box its step's status colour and a link to its job; reused steps are marked.
function pipelineGraph(job: Job): HTMLElement {
  const steps: PipelineStep[] = job.steps ?? [];
  const byName = new Map(steps.map((s) => [s.step, s]));
  const layer = new Map<string, number>();
  const layerOf = (s: PipelineStep, seen = new Set<string>()): number => {
    if (layer.has(s.step)) return layer.get(s.step)!;
    if (seen.has(s.step)) return 0;
    seen.add(s.step);
    const l =
      Math.max(-1, ...s.after.map((a) => (byName.has(a) ? layerOf(byName.get(a)!, seen) : -1))) + 1;
    layer.set(s.step, l);
    return l;
  };
  const columns: PipelineStep[][] = [];
  for (const s of steps) (columns[layerOf(s)] ??= []).push(s);
  const W = 190,
    H = 52,
    GX = 70,
    GY = 18,
    PAD = 10;
  const at = new Map<string, { x: number; y: number }>();
  columns.forEach((col, ci) =>
    col.forEach((s, ri) => at.set(s.step, { x: PAD + ci * (W + GX), y: PAD + ri * (H + GY) })),
  );
  const width = PAD * 2 + columns.length * (W + GX) - GX;
  const height = PAD * 2 + Math.max(1, ...columns.map((c) => c.length)) * (H + GY) - GY;
  const NS = "http://www.w3.org/2000/svg";
  const el = (tag: string, attrs: Record<string, string | number>, ...kids: (Node | string)[]) => {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
    for (const k of kids) e.append(k);
    return e;
  };
  const svg = el("svg", {
    width,
    height,
    viewBox: `0 0 ${width} ${height}`,
    class: "pipeline-graph",
    id: "pipeline-graph",
    role: "img",
    "aria-label": `the steps of ${job.name}`,
  });
  for (const s of steps)
    for (const a of s.after) {
      const from = at.get(a),
        to = at.get(s.step);
      if (!from || !to) continue;
      const x1 = from.x + W,
        y1 = from.y + H / 2,
        x2 = to.x,
        y2 = to.y + H / 2,
        mx = (x1 + x2) / 2;
      svg.append(
        el("path", {
          d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`,
          class: "edge",
          "data-from": a,
          "data-to": s.step,
        }),
      );
    }
  for (const s of steps) {
    const p = at.get(s.step)!;
    const status = s.reused_from ? "reused" : s.status.toLowerCase();
    const label = s.reused_from
      ? `reused from ${s.reused_from}`
      : s.status +
        (s.duration_seconds !== undefined ? ` · ${fmtDuration(s.duration_seconds)}` : "");
    const box = el(
      "g",
      {
        class: `step status-${status}`,
        "data-step": s.step,
        "data-status": s.status,
        transform: `translate(${p.x},${p.y})`,
      },
      el(
        "title",
        {},
        [s.step, s.status_reason ?? "", s.why_not_reused ? `not reused: ${s.why_not_reused}` : ""]
          .filter(Boolean)
          .join("\n"),
      ),
      el("rect", { width: W, height: H, rx: 6 }),
      el("text", { x: 10, y: 20, class: "step-name" }, s.step),
      el(
        "text",
        { x: 10, y: 39, class: "step-status" },
        label.length > 30 ? label.slice(0, 29) + "…" : label,
      ),
    );
    svg.append(s.job ? el("a", { href: `#/jobs/${encodeURIComponent(s.job)}` }, box) : box);
  }
  return h("div", { class: "graph-box" }, svg);
}

// ---- Compare: runs' metrics overlaid, their params side by side. ----
async function comparePage(names: string[]) {
  if (names.length < 2) {
    app.append(h("p", {}, "Pick two or more jobs on the Jobs page, then Compare."));
    return;
  }
  // Each run's params, and its metrics downsampled to about a chart's width, all requested at once.
  const [runs, metrics] = await Promise.all([
    Promise.all(
      names.map((n) =>
        get<{ run: { data: { params?: { key: string; value: string }[] } } }>(
          `/api/2.0/mlflow/runs/get?run_id=${encodeURIComponent(n)}`,
        ),
      ),
    ),
    Promise.all(
      names.map((n) =>
        get<{ metrics: Record<string, Columns> }>(
          `/api/v1/jobs/${encodeURIComponent(n)}/metrics?max_points=600&format=columns`,
        ),
      ),
    ),
  ]);
  const params = runs.map((r) =>
    Object.fromEntries((r.run.data.params ?? []).map((p) => [p.key, p.value])),
  );
  const keys = [...new Set(params.flatMap((p) => Object.keys(p)))].sort();
  // Each run's latest value of each metric (MLflow's run data), for the table and the parallel coordinates.
  const latest = runs.map((r) =>
    Object.fromEntries(
      ((r.run.data as { metrics?: { key: string; value: number }[] }).metrics ?? [])
        .filter((m) => !isSystem(m.key))
        .map((m) => [m.key, m.value]),
    ),
  );
  const metricNames = [...new Set(latest.flatMap((m) => Object.keys(m)))].sort();
  app.append(
    h("h1", {}, `Comparing ${names.length} runs`),
    h("h2", {}, "Params"),
    h(
      "table",
      { class: "compare", id: "compare-params" },
      h("tr", {}, h("th", {}, "param"), ...names.map((n) => h("th", {}, n))),
      ...keys.map((k) => {
        const vals = params.map((p) => p[k] ?? "");
        return h(
          "tr",
          { class: new Set(vals).size > 1 ? "differs" : "" },
          h("td", {}, k),
          ...vals.map((v) => h("td", {}, v)),
        );
      }),
    ),
  );
  if (metricNames.length)
    app.append(
      h("h2", {}, "Metrics (latest)"),
      h(
        "table",
        { class: "compare", id: "compare-metrics" },
        h("tr", {}, h("th", {}, "metric"), ...names.map((n) => h("th", {}, n))),
        ...metricNames.map((k) => {
          const vals = latest.map((m) => (m[k] === undefined ? "" : fmtNumber(m[k] as number)));
          return h(
            "tr",
            { class: new Set(vals).size > 1 ? "differs" : "" },
            h("td", {}, k),
            ...vals.map((v) => h("td", { class: "num" }, v)),
          );
        }),
      ),
    );
  // Params against the first metric, one line per run (as a sweep's trials are drawn).
  const axes = keys.filter((k) => new Set(params.map((p) => p[k])).size > 1);
  if (metricNames.length && axes.length) {
    const metric = metricNames[0];
    const typed = (v: string | undefined) =>
      v !== undefined && v !== "" && !Number.isNaN(Number(v)) ? Number(v) : (v ?? "");
    app.append(
      h("h2", {}, `Params against ${metric}`),
      h(
        "div",
        { id: "compare-parallel" },
        parallelCoordinates(
          names.map((n, i) => ({
            name: n,
            values: Object.fromEntries(axes.map((a) => [a, typed(params[i][a])])),
            objective:
              typeof latest[i][metric] === "number" ? (latest[i][metric] as number) : undefined,
          })),
          axes,
          metric,
          true,
        ),
      ),
    );
  }
  const charts = h("div", { class: "charts", id: "compare-charts" });
  app.append(h("h2", {}, "Metrics"), charts);
  const metricKeys = [...new Set(metrics.flatMap((m) => Object.keys(m.metrics)))].sort();
  // A metric each run logged once (an accuracy at the end) is a bar per run, not a chart of single points.
  const once = metricKeys.filter((k) =>
    metrics.every((m) => (m.metrics[k]?.value.length ?? 0) <= 1),
  );
  if (once.length) {
    app.insertBefore(
      h(
        "div",
        { class: "bar-charts", id: "compare-bars" },
        ...once.map((k) => {
          const vals = metrics.map((m) => {
            const v = m.metrics[k]?.value[0];
            return typeof v === "number" && isFinite(v) ? v : undefined;
          });
          const known = vals.filter((v): v is number => v !== undefined);
          const lo = Math.min(0, ...known),
            hi = Math.max(0, ...known),
            span = hi - lo || 1;
          return h(
            "div",
            { class: "bars", "data-key": k },
            h("div", { class: "bars-title" }, k),
            ...names.map((n, i) => {
              const v = vals[i];
              const left = v === undefined ? 0 : ((Math.min(v, 0) - lo) / span) * 100,
                width = v === undefined ? 0 : (Math.abs(v) / span) * 100;
              return h(
                "div",
                { class: "bar-row", "data-run": n },
                h("span", { class: "bar-label", title: n }, n),
                h(
                  "span",
                  { class: "bar-track" },
                  h("span", {
                    class: "bar",
                    style: `left:${left.toFixed(2)}%;width:${width.toFixed(2)}%`,
                  }),
                ),
                h("span", { class: "bar-value num" }, v === undefined ? "" : fmtNumber(v)),
              );
            }),
          );
        }),
      ),
      charts,
    );
  }
  for (const k of metricKeys.filter((k) => !once.includes(k))) {
    const box = h("div", { class: "chart", "data-keys": k });
    charts.append(box);
    const empty: Columns = { step: [], timestamp: [], value: [] };
    drawChart(
      box,
      names.map((n, i) => ({ label: n, data: metrics[i].metrics[k] ?? empty })),
      { log: false, smoothing: 0, x: "step", title: k },
    );
  }
}

// A run the mlflow client printed: a job's page when the run is a job's, else a page of its own.
async function mlflowRunPage(experimentId: string, runId: string, artifact?: string) {
  const isJob = await get<Job>(`/api/v1/jobs/${encodeURIComponent(runId)}`).then(
    () => true,
    () => false,
  );
  if (isJob) return jobPage(runId, artifact !== undefined ? "outputs" : "overview", artifact);
  type Kv = { key: string; value: string };
  const got = await get<{
    run: {
      info: {
        run_id: string;
        run_name?: string;
        status: string;
        start_time?: number;
        end_time?: number;
        experiment_id: string;
      };
      data: {
        params?: Kv[];
        metrics?: { key: string; value: number; step?: number }[];
        tags?: Kv[];
      };
    };
  }>(`/api/2.0/mlflow/runs/get?run_id=${encodeURIComponent(runId)}`);
  const { info, data } = got.run;
  const files = await get<{ files?: { path: string; is_dir: boolean; file_size?: number }[] }>(
    `/api/2.0/mlflow/artifacts/list?run_id=${encodeURIComponent(runId)}&path=${encodeURIComponent(artifact ?? "")}`,
  ).catch(() => ({ files: [] }));
  const link = (p: string) =>
    `/api/2.0/mlflow-artifacts/artifacts/${encodeURIComponent(info.experiment_id)}/${encodeURIComponent(runId)}/artifacts/${p.split("/").map(encodeURIComponent).join("/")}`;
  const tags = (data.tags ?? []).filter(
    (t) => !t.key.startsWith("mlflow.") || t.key === "mlflow.user",
  );
  const expName = await get<{ experiment: { name: string } }>(
    `/api/2.0/mlflow/experiments/get?experiment_id=${encodeURIComponent(experimentId)}`,
  ).then(
    (e) => e.experiment.name,
    () => experimentId,
  );
  app.append(
    h(
      "div",
      { class: "job-head" },
      h("h1", { id: "run-name" }, info.run_name ?? runId, " ", statusBadge(info.status)),
      h(
        "p",
        { class: "reason" },
        "An MLflow run logged outside a job, in experiment ",
        h(
          "a",
          { href: `#/experiments/${encodeURIComponent(experimentId)}`, id: "run-experiment" },
          expName,
        ),
        ".",
      ),
    ),
    h("h2", {}, "Run"),
    keyValues({
      run_id: runId,
      started: info.start_time ? new Date(info.start_time).toISOString() : "",
      ended: info.end_time ? new Date(info.end_time).toISOString() : "",
    }),
    h("h2", {}, "Params"),
    h(
      "div",
      { id: "params" },
      keyValues(Object.fromEntries((data.params ?? []).map((p) => [p.key, p.value]))),
    ),
    h("h2", {}, "Metrics (latest)"),
    h(
      "div",
      { id: "metrics" },
      keyValues(Object.fromEntries((data.metrics ?? []).map((m) => [m.key, String(m.value)]))),
    ),
    h("h2", {}, "Tags"),
    keyValues(Object.fromEntries(tags.map((t) => [t.key, t.value]))),
    h("h2", {}, artifact ? `Artifacts in ${artifact}` : "Artifacts"),
    h(
      "table",
      { class: "files", id: "run-artifacts" },
      ...(files.files ?? []).map((f) =>
        h(
          "tr",
          { "data-path": f.path },
          h(
            "td",
            {},
            f.is_dir
              ? h(
                  "a",
                  {
                    href: `#/experiments/${encodeURIComponent(experimentId)}/runs/${encodeURIComponent(runId)}/artifacts/${f.path}`,
                  },
                  f.path + "/",
                )
              : h("a", { href: link(f.path), download: f.path.split("/").pop()! }, f.path),
          ),
          h("td", { class: "num" }, f.is_dir ? "" : `${f.file_size ?? 0} B`),
        ),
      ),
    ),
  );
}

// An experiment (MLflow's #/experiments/<id>): its runs, jobs and others, newest first.
async function experimentPage(id: string) {
  const exp = await get<{ experiment: { name: string } }>(
    `/api/2.0/mlflow/experiments/get?experiment_id=${encodeURIComponent(id)}`,
  );
  const runs = await post<{
    runs?: { info: { run_id: string; run_name?: string; status: string; start_time?: number } }[];
  }>("/api/2.0/mlflow/runs/search", { experiment_ids: [id], max_results: 1000 });
  runs.runs?.sort((a, b) => (b.info.start_time ?? 0) - (a.info.start_time ?? 0));
  app.append(
    h("h1", { id: "experiment-name" }, exp.experiment.name),
    h(
      "p",
      {},
      h(
        "a",
        { href: `#/jobs?q=${encodeURIComponent(exp.experiment.name)}` },
        "its jobs in the jobs list",
      ),
    ),
    h(
      "table",
      { class: "list", id: "experiment-runs" },
      h("tr", {}, h("th", {}, "run"), h("th", {}, "status"), h("th", {}, "started")),
      ...(runs.runs ?? []).map((r) =>
        h(
          "tr",
          { "data-run": r.info.run_id },
          h(
            "td",
            {},
            h(
              "a",
              {
                href: `#/experiments/${encodeURIComponent(id)}/runs/${encodeURIComponent(r.info.run_id)}`,
              },
              r.info.run_name ?? r.info.run_id,
            ),
          ),
          h("td", {}, statusBadge(r.info.status)),
          h("td", {}, r.info.start_time ? fmtTime(new Date(r.info.start_time).toISOString()) : ""),
        ),
      ),
    ),
  );
}

async function experimentsPage() {
  const [exps, jobs] = await Promise.all([
    get<{ experiments?: { experiment_id: string; name: string; lifecycle_stage: string }[] }>(
      "/api/2.0/mlflow/experiments/search?max_results=1000",
    ),
    get<Job[]>("/api/v1/jobs?max_results=100000"),
  ]);
  const counts = new Map<string, Record<string, number>>();
  for (const j of jobs) {
    const c = counts.get(j.experiment_name ?? "") ?? {};
    c[j.status] = (c[j.status] ?? 0) + 1;
    counts.set(j.experiment_name ?? "", c);
  }
  app.append(
    h("h1", {}, "Experiments"),
    h(
      "table",
      { class: "list", id: "experiments" },
      h("tr", {}, h("th", {}, "experiment"), h("th", {}, "jobs"), h("th", {}, "by status")),
      ...(exps.experiments ?? []).map((e) => {
        const c = counts.get(e.name) ?? {};
        return h(
          "tr",
          {},
          h(
            "td",
            {},
            h("a", { href: `#/experiments/${encodeURIComponent(e.experiment_id)}` }, e.name),
          ),
          h("td", { class: "num" }, String(Object.values(c).reduce((a, b) => a + b, 0))),
          h(
            "td",
            {},
            Object.entries(c)
              .map(([s, n]) => `${s} ${n}`)
              .join(", "),
          ),
        );
      }),
    ),
  );
}

async function computesPage() {
  const computes = await get<
    {
      name: string;
      type: string;
      backend?: string;
      max_instances: number;
      in_use?: number;
      queued_jobs?: number;
    }[]
  >("/api/v1/computes");
  app.append(
    h("h1", {}, "Computes"),
    h(
      "table",
      { class: "list", id: "computes" },
      h(
        "tr",
        {},
        ...["name", "type", "runs on", "max instances", "in use", "queued"].map((c) =>
          h("th", {}, c),
        ),
      ),
      ...computes.map((c) =>
        h(
          "tr",
          {},
          h("td", {}, c.name),
          h("td", {}, c.type),
          h("td", {}, c.backend ?? "local"),
          h("td", { class: "num" }, String(c.max_instances)),
          h("td", { class: "num" }, String(c.in_use ?? 0)),
          h("td", { class: "num" }, String(c.queued_jobs ?? 0)),
        ),
      ),
    ),
  );
}
