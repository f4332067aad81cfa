#include "cli/stream.h"

#include <signal.h>
#include <unistd.h>

#include <cstdio>

#include "base/util.h"
#include "compute/distribution.h"

namespace cairn::cli {

using nlohmann::json;

namespace {
void OnInterrupt(int) {
  static const char kMsg[] =
      "\nThe output streaming for the run interrupted.\nBut the run is still executing on the "
      "compute target.\n";
  (void)!write(2, kMsg, sizeof kMsg - 1);
  _exit(130);
}

bool IsFinal(const std::string& s) { return s == "Completed" || s == "Failed" || s == "Canceled"; }

const char* Colour(const std::string& status) {
  if (status == "Completed") return "\033[32m";
  if (status == "Failed") return "\033[31m";
  if (status == "Canceled" || status == "CancelRequested") return "\033[33m";
  return "\033[36m";
}
}  // namespace

namespace {

// What az ml prints when a streamed job ends: its id, page and status, warnings, and the error.
std::string ExecutionSummary(const std::string& name, const std::string& web, const json& final_job,
                             bool tty) {
  std::string status = final_job.value("status", "");
  std::string summary =
      "\nExecution Summary\n=================\nRunId: " + name + "\nWeb View: " + web + "\n";
  if (tty)
    summary += std::string("Status: ") + Colour(status) + status + "\033[0m\n";
  else
    summary += "Status: " + status + "\n";
  if (final_job.contains("notes") && !final_job["notes"].empty()) {
    summary += "\nWarnings:\n";
    for (const auto& n : final_job["notes"]) summary += n.get<std::string>() + "\n";
  }
  if (status != "Completed") {
    json err = final_job.value(
        "error", json{{"code", status}, {"message", final_job.value("status_reason", "")}});
    summary += "\nError:\n" + err.dump(4) + "\n";
  }
  return summary;
}

}  // namespace

Result<json> StreamJob(Client& client, const std::string& name, bool tty, bool all_ranks,
                       const json* known) {
  signal(SIGINT, OnInterrupt);
  auto job = known ? Result<json>(*known) : client.Get("/api/v1/jobs/" + name);
  if (!job.ok()) return job.status();
  std::string web = (*job)["services"]["Studio"].value("endpoint", "");
  std::string head = "RunId: " + name + "\nWeb View: " + web + "\n";
  fputs(head.c_str(), stdout);
  fflush(stdout);
  // The logs to follow: rank 0's (or the only one), or with all_ranks every process's.
  const json& spec = *job;
  compute::DistPlan plan =
      compute::PlanFor(spec.value("distribution", json()),
                       spec.value("resources", json::object()).value("instance_count", 1));
  struct Followed {
    std::string file = {};
    std::string prefix = {};
    long long offset = 0;
    std::string partial = {};  // a line not yet ended, held back so ranks' lines do not mix
  };
  std::vector<Followed> logs;
  for (int rank = 0; rank < (all_ranks ? plan.Total() : 1); ++rank)
    logs.push_back({compute::RankLogName(plan, rank),
                    all_ranks ? "[rank " + std::to_string(rank) + "] " : ""});
  bool header = false;
  bool at_line_start = true;
  std::string last_status = job->value("status", "");
  bool status_line = false;
  if (tty && !IsFinal(last_status)) {
    std::string why = job->value("status_reason", "");
    if (why.size() > 100) why = why.substr(0, 97) + "...";
    fprintf(stderr, "%s[%s]\033[0m %s", Colour(last_status), last_status.c_str(), why.c_str());
    fflush(stderr);
    status_line = true;
  }
  json final_summary;  // the job at its end, from the last log answer (an older server sends none)
  for (;;) {
    bool any_data = false, terminal = false;
    bool all_read = true;  // every followed log read to the size it had when the answer was made
    std::string status, reason;
    for (size_t i = 0; i < logs.size(); ++i) {
      Followed& f = logs[i];
      // The first log waits for news; the others are read as they stand.
      auto chunk = client.Logs(name, f.offset, i == 0 ? (logs.size() > 1 ? 300 : 10000) : 0, f.file,
                               tty && i == 0 ? last_status : "", /*want_final=*/i == 0);
      if (!chunk.ok()) return chunk.status();
      if (i == 0) {
        status = chunk->status;
        reason = chunk->reason;
        terminal = chunk->terminal;
        final_summary = chunk->final;
      }
      if (chunk->next_offset < chunk->size) all_read = false;
      if (chunk->data.empty()) continue;
      any_data = true;
      f.offset = chunk->next_offset;
      if (tty && status_line) {
        fputs("\r\033[K", stderr);
        status_line = false;
      }
      if (!header) {
        std::string what = all_ranks ? "user_logs/std_log_process_*.txt" : f.file;
        std::string h = "\nStreaming " + what + "\n" + std::string(what.size() + 10, '=') + "\n\n";
        fputs(h.c_str(), stdout);
        header = true;
      }
      if (f.prefix.empty()) {
        fwrite(chunk->data.data(), 1, chunk->data.size(), stdout);
        at_line_start = chunk->data.back() == '\n';
      } else {
        f.partial += chunk->data;
        size_t done = f.partial.rfind('\n');
        if (done == std::string::npos) continue;
        for (const auto& line : Split(f.partial.substr(0, done), '\n'))
          fputs((f.prefix + line + "\n").c_str(), stdout);
        f.partial.erase(0, done + 1);
      }
      fflush(stdout);
    }
    if (tty && status_line && status != last_status) {
      fputs("\r\033[K", stderr);
      status_line = false;
    }
    if (tty && !terminal && (status != last_status || !status_line)) {
      // One line, cut to fit a terminal: the status, and while waiting, why.
      std::string why = status == "Queued" || status == "Preparing" ? reason : "";
      if (why.size() > 100) why = why.substr(0, 97) + "...";
      fprintf(stderr, "%s[%s]\033[0m %s", Colour(status), status.c_str(), why.c_str());
      fflush(stderr);
      status_line = true;
    }
    last_status = status;
    // Done when the job had ended before its logs were read (the server reads the status first) and
    // every log has been read to its end: no poll more to learn that nothing follows.
    if (terminal && (!any_data || all_read)) break;
  }
  for (const auto& f : logs)
    if (!f.partial.empty()) fputs((f.prefix + f.partial + "\n").c_str(), stdout);
  if (!at_line_start) fputs("\n", stdout);
  Result<json> final_job =
      final_summary.is_object() ? Result<json>(final_summary) : client.Get("/api/v1/jobs/" + name);
  if (!final_job.ok()) return final_job.status();
  fputs(ExecutionSummary(name, web, *final_job, tty).c_str(), stdout);
  fflush(stdout);
  signal(SIGINT, SIG_DFL);
  return final_job;
}

}  // namespace cairn::cli
