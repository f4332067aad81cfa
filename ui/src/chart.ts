// Metric charts on uPlot: several series on one x axis, log scale, exponential smoothing.
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

const COLOURS = [
  "#1f77b4",
  "#d62728",
  "#2ca02c",
  "#ff7f0e",
  "#9467bd",
  "#8c564b",
  "#e377c2",
  "#17becf",
];

// One metric's points as the server sends them with format=columns (NaN as null).
export interface Columns {
  total?: number;
  step: number[];
  timestamp: number[];
  value: (number | null)[];
}
export interface Series {
  label: string;
  data: Columns;
}

function smooth(values: (number | null)[], weight: number): (number | null)[] {
  if (weight <= 0) return values;
  let last: number | null = null;
  return values.map((v) => {
    if (v === null) return null;
    last = last === null ? v : last * weight + (1 - weight) * v;
    return last;
  });
}

export type XAxis = "step" | "timestamp" | "relative";
export function drawChart(
  target: HTMLElement,
  series: Series[],
  opts: {
    log: boolean;
    smoothing: number;
    x: XAxis;
    title: string;
    onZoom?: (min: number, max: number) => void;
  },
): uPlot {
  // Relative time: seconds since each series' first point (runs started at different times line up).
  const xOf = (c: Columns) =>
    opts.x === "step"
      ? c.step
      : opts.x === "relative"
        ? c.timestamp.map((t) => (t - (c.timestamp[0] ?? 0)) / 1000)
        : c.timestamp.map((t) => t / 1000);
  let x: number[];
  let ys: (number | null)[][];
  if (series.length === 1) {
    x = xOf(series[0].data);
    ys = [series[0].data.value.map((v) => (v !== null && (!opts.log || v > 0) ? v : null))];
  } else {
    // Several series share one x axis. Downsampled series keep different points (each its own extremes),
    // so their union would be as long as all of them together: instead x is cut into slots, about two per
    // point of the longest series, and each point lands in its slot (the later of two in one slot wins).
    // What a chart of that width can show is kept; 20 runs cost 20 short arrays, not 20 long ones.
    const xsOf = series.map((s) => xOf(s.data));
    let lo = Infinity,
      hi = -Infinity,
      longest = 0;
    for (const sx of xsOf) {
      longest = Math.max(longest, sx.length);
      for (const v of sx) {
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
    }
    const slots = Math.max(1, Math.min(2 * longest, Math.round(hi - lo) + 1));
    const width = hi > lo ? (hi - lo) / (slots - 1 || 1) : 1;
    x = Array.from({ length: slots }, (_, i) => lo + i * width);
    ys = series.map((s, k) => {
      const y: (number | null)[] = new Array(slots).fill(null);
      const sx = xsOf[k];
      s.data.value.forEach((v, i) => {
        if (v === null || (opts.log && v <= 0)) return;
        y[Math.min(slots - 1, Math.round((sx[i] - lo) / width))] = v;
      });
      return y;
    });
  }
  ys = ys.map((y) => smooth(y, opts.smoothing));
  const width = Math.max(300, target.clientWidth || 600);
  // Where the canvas is rasterised in software (no GPU), a stroke wider than one device pixel goes through
  // Skia's path stroker, and noisy curves that cross the chart hundreds of times cost ~15 ms each: Compare's
  // 100 curves took 1.4 s to reach the screen at 1.5 px and 0.1 s as hairlines. Crowded charts draw
  // hairlines (one device pixel); a few curves keep the thicker line.
  const lineWidth = series.length > 4 ? 1 / (window.devicePixelRatio || 1) : 1.5;
  // The axes in the theme's colours (uPlot draws them on the canvas, where CSS does not reach).
  const css = getComputedStyle(document.documentElement);
  const fg = css.getPropertyValue("--fg").trim() || "#1d1d1f",
    line = css.getPropertyValue("--line").trim() || "#e3e6ea";
  const themed = {
    stroke: fg,
    grid: { stroke: line, width: 1 },
    ticks: { stroke: line, width: 1 },
  };
  let xTicks: string[] | undefined; // the relative axis's labels as last drawn (for the browser tests)
  const u = new uPlot(
    {
      title: opts.title,
      width,
      height: 260,
      scales: { x: { time: opts.x === "timestamp" }, y: { distr: opts.log ? 3 : 1 } },
      // Point markers only for short series: drawn one by one, thousands of them cost more than the lines.
      series: [
        { label: opts.x },
        ...series.map((s, i) => ({
          label: s.label,
          stroke: COLOURS[i % COLOURS.length],
          width: lineWidth,
          spanGaps: true,
          points: { show: s.data.step.length <= 50 },
        })),
      ],
      // Steps are integers: the x axis says 1, 2, 3, never 0.5 (and no tick falls between two steps).
      // The drawn x axis's tick labels, for the browser tests (uPlot draws them on the canvas).
      hooks: {
        draw: [
          (p: uPlot) => {
            target.dataset.xTicks = (
              xTicks ??
              (p.axes[0] as unknown as { _values?: string[] })._values ??
              []
            ).join("|");
            target.dataset.points = String(p.data[0].length);
          },
        ],
        // A drag over the chart zooms it; the caller may then fetch that range at full resolution.
        setSelect: [
          (p: uPlot) => {
            if (!opts.onZoom || p.select.width < 2) return;
            opts.onZoom(
              p.posToVal(p.select.left, "x"),
              p.posToVal(p.select.left + p.select.width, "x"),
            );
          },
        ],
      },
      axes: [
        opts.x === "step" && x.every((v) => Number.isInteger(v))
          ? {
              ...themed,
              incrs: [
                1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 1e4, 2e4, 5e4, 1e5, 1e6, 1e7,
              ],
              values: (_u: uPlot, ticks: number[]) => ticks.map((t) => String(Math.round(t))),
            }
          : opts.x === "relative"
            ? { ...themed, values: (_u: uPlot, ticks: number[]) => (xTicks = decimalTicks(ticks)) }
            : themed,
        themed,
      ],
    },
    [x, ...ys] as uPlot.AlignedData,
    target,
  );
  return u;
}

// Tick labels with as many decimals as the spacing between ticks needs (0, 0.0005, 0.001: never 0, 0, 0.001).
function decimalTicks(ticks: number[]): string[] {
  const spacing = ticks.length > 1 ? Math.abs(ticks[1] - ticks[0]) : 1;
  const decimals =
    spacing > 0 ? Math.min(12, Math.max(0, Math.ceil(-Math.log10(spacing) - 1e-9))) : 0;
  return ticks.map((t) => (Math.abs(t) < spacing / 2 ? "0" : t.toFixed(decimals)));
}

// A parallel-coordinates plot (SVG): one axis per hyperparameter and one for the objective, one line per
// trial coloured by its objective; the best trial drawn last, thicker.
export function parallelCoordinates(
  trials: { name: string; values: Record<string, number | string>; objective?: number }[],
  axes: string[],
  objectiveName: string,
  maximize: boolean,
): SVGSVGElement {
  const ns = "http://www.w3.org/2000/svg";
  const W = Math.max(480, 140 * (axes.length + 1)),
    H = 320,
    pad = 40;
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("class", "parcoords");
  const all = [...axes, objectiveName];
  const xAt = (i: number) => pad + (i * (W - 2 * pad)) / Math.max(1, all.length - 1);
  const scales = all.map((a, i) => {
    const vals = trials
      .map((t) => (i === axes.length ? t.objective : t.values[a]))
      .filter((v) => v !== undefined && v !== null);
    if (vals.every((v) => typeof v === "number")) {
      const nums = vals as number[];
      const lo = Math.min(...nums),
        hi = Math.max(...nums);
      return (v: unknown) =>
        typeof v === "number" ? H - pad - ((v - lo) / (hi - lo || 1)) * (H - 2 * pad) : null;
    }
    const cats = [...new Set(vals.map(String))];
    return (v: unknown) =>
      v === undefined || v === null
        ? null
        : H - pad - ((cats.indexOf(String(v)) + 0.5) / cats.length) * (H - 2 * pad);
  });
  const objs = trials.map((t) => t.objective).filter((v): v is number => typeof v === "number");
  const lo = Math.min(...objs),
    hi = Math.max(...objs);
  const colour = (v?: number) => {
    if (v === undefined) return "#bbb";
    const f = (v - lo) / (hi - lo || 1);
    const good = maximize ? f : 1 - f;
    return `hsl(${Math.round(good * 120)}, 70%, 45%)`;
  };
  const best = objs.length
    ? trials.reduce((b, t) =>
        t.objective !== undefined &&
        (b.objective === undefined ||
          (maximize ? t.objective > b.objective : t.objective < b.objective))
          ? t
          : b,
      )
    : undefined;
  for (const t of [...trials.filter((t) => t !== best), ...(best ? [best] : [])]) {
    const pts: string[] = [];
    all.forEach((a, i) => {
      const y = scales[i](i === axes.length ? t.objective : t.values[a]);
      if (y !== null) pts.push(`${xAt(i)},${y}`);
    });
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", pts.join(" "));
    line.setAttribute("fill", "none");
    line.setAttribute("stroke", colour(t.objective));
    line.setAttribute("stroke-width", t === best ? "3.5" : "1.5");
    line.setAttribute("data-trial", t.name);
    const title = document.createElementNS(ns, "title");
    title.textContent = `${t.name}: ${t.objective ?? "no report"}`;
    line.append(title);
    svg.append(line);
  }
  all.forEach((a, i) => {
    const axis = document.createElementNS(ns, "line");
    axis.setAttribute("x1", String(xAt(i)));
    axis.setAttribute("x2", String(xAt(i)));
    axis.setAttribute("y1", String(pad));
    axis.setAttribute("y2", String(H - pad));
    axis.setAttribute("stroke", "#333");
    const label = document.createElementNS(ns, "text");
    label.setAttribute("x", String(xAt(i)));
    label.setAttribute("y", String(pad - 12));
    label.setAttribute("text-anchor", "middle");
    label.textContent = a;
    svg.append(axis, label);
  });
  return svg;
}
