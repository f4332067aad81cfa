#include "cli/stream.h"

#include <signal.h>
#include <unistd.h>

#include <cstdio>

#include "base/util.h"

namespace cairn::cli {

using nlohmann::json;

namespace {
void OnInterrupt(int) {
  static const char kMsg[] =
      "\nThe output streaming for the run interrupted.\nBut the run is still executing on the compute target.\n";
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

Result<json> StreamJob(Client& client, const std::string& name, bool tty) {
  signal(SIGINT, OnInterrupt);
  auto job = client.Get("/api/v1/jobs/" + name);
  if (!job.ok()) return job.status();
  std::string web = (*job)["services"]["Studio"].value("endpoint", "");
  std::string head = "RunId: " + name + "\nWeb View: " + web + "\n";
  fputs(head.c_str(), stdout);
  fflush(stdout);
  const std::string file = "user_logs/std_log.txt";
  long long offset = 0;
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
  for (;;) {
    auto chunk = client.Logs(name, offset, 10000, file, tty ? last_status : "");
    if (!chunk.ok()) return chunk.status();
    if (tty && status_line && (!chunk->data.empty() || chunk->status != last_status)) {
      fputs("\r\033[K", stderr);
      status_line = false;
    }
    if (!chunk->data.empty()) {
      if (!header) {
        std::string h = "\nStreaming " + file + "\n" + std::string(file.size() + 10, '=') + "\n\n";
        fputs(h.c_str(), stdout);
        header = true;
      }
      fwrite(chunk->data.data(), 1, chunk->data.size(), stdout);
      at_line_start = chunk->data.back() == '\n';
      fflush(stdout);
      offset = chunk->next_offset;
    }
    if (tty && !chunk->terminal && (chunk->status != last_status || !status_line)) {
      // One line, cut to fit a terminal: the status, and while waiting, why.
      std::string why = chunk->status == "Queued" || chunk->status == "Preparing" ? chunk->reason : "";
      if (why.size() > 100) why = why.substr(0, 97) + "...";
      fprintf(stderr, "%s[%s]\033[0m %s", Colour(chunk->status), chunk->status.c_str(), why.c_str());
      fflush(stderr);
      status_line = true;
    }
    last_status = chunk->status;
    if (chunk->terminal && chunk->data.empty()) break;
  }
  if (!at_line_start) fputs("\n", stdout);
  auto final_job = client.Get("/api/v1/jobs/" + name);
  if (!final_job.ok()) return final_job.status();
  std::string status = final_job->value("status", "");
  std::string summary = "\nExecution Summary\n=================\nRunId: " + name + "\nWeb View: " + web + "\n";
  if (tty) summary += std::string("Status: ") + Colour(status) + status + "\033[0m\n";
  else summary += "Status: " + status + "\n";
  if (final_job->contains("notes") && !(*final_job)["notes"].empty()) {
    summary += "\nWarnings:\n";
    for (const auto& n : (*final_job)["notes"]) summary += n.get<std::string>() + "\n";
  }
  if (status != "Completed") {
    json err = final_job->value("error", json{{"code", status}, {"message", final_job->value("status_reason", "")}});
    summary += "\nError:\n" + err.dump(4) + "\n";
  }
  fputs(summary.c_str(), stdout);
  fflush(stdout);
  signal(SIGINT, SIG_DFL);
  return final_job;
}

}  // namespace cairn::cli
