// The studio reads the same REST API as the CLI, signed in by the session cookie the login link set.
export class ApiError extends Error {
  constructor(
    public status: number,
    message: string,
  ) {
    super(message);
  }
}

export async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(path, {
    method,
    credentials: "same-origin",
    // The server refuses a studio change without this header: no form, and no other origin's script, can send it.
    headers:
      body === undefined
        ? { "X-Cairn-Studio": "1" }
        : { "Content-Type": "application/json", "X-Cairn-Studio": "1" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) {
    let message = text;
    try {
      const j = JSON.parse(text);
      message = j.message ?? j.error?.message ?? text;
    } catch {}
    if (res.status === 401) message = "Not signed in: open the link `cairn studio` prints.";
    throw new ApiError(res.status, message);
  }
  return (text ? JSON.parse(text) : {}) as T;
}

export const get = <T>(path: string) => request<T>("GET", path);
export const post = <T>(path: string, body: unknown = {}) => request<T>("POST", path, body);

export interface StatusEvent {
  status: string;
  reason: string;
  time: string;
}
export interface Job {
  name: string;
  display_name?: string;
  type: string;
  status: string;
  status_reason?: string;
  status_history?: StatusEvent[];
  experiment_name?: string;
  compute?: string;
  command?: string;
  creation_context?: { created_at?: string; created_by?: string };
  start_time?: string;
  end_time?: string;
  duration_seconds?: number;
  tags?: Record<string, string>;
  properties?: Record<string, string>;
  environment?: unknown;
  inputs?: Record<string, unknown>;
  outputs?: Record<string, unknown>;
  distribution?: unknown;
  resources?: unknown;
  log_files?: Record<string, string>;
  metrics?: Record<string, number | string>;
  params?: Record<string, string>;
  parent_job_name?: string;
  objective?: { primary_metric?: string; goal?: string };
  trials?: Trial[];
  steps?: PipelineStep[];
  error?: { message?: string };
}
export interface PipelineStep {
  step: string;
  job?: string;
  status: string;
  status_reason?: string;
  after: string[];
  duration_seconds?: number;
  reused_from?: string;
  why_not_reused?: string;
  attempts?: { job: string; status: string; attempt: number }[];
}
export interface Trial {
  name: string;
  status: string;
  hyperparameters: Record<string, number | string>;
  reports: number;
  status_reason?: string;
  [metric: string]: unknown;
}

// Live updates: the server's event stream says when any job changed; pages re-read what they show.
export function onJobsChanged(fn: () => void): () => void {
  const source = new EventSource("/api/v1/events", { withCredentials: true });
  let timer: number | undefined;
  const soon = () => {
    if (timer === undefined)
      timer = window.setTimeout(() => {
        timer = undefined;
        fn();
      }, 100);
  };
  source.addEventListener("jobs", soon);
  // Once connected (and after every reconnect), read again: a change between the page's first read and
  // the stream's start (a job that ended meanwhile) would otherwise never be shown.
  source.addEventListener("open", soon);
  return () => {
    source.close();
    if (timer !== undefined) clearTimeout(timer);
  };
}
