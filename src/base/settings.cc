#include "base/settings.h"

#include <cstdio>
#include <cstdlib>

namespace cairn::settings {

namespace {

constexpr Setting kSettings[] = {
    // Where things are.
    {"CAIRN_HOME", "~/.cairn", "CLI, server",
     "The workspace folder: its server, database, runs and token."},
    {"CAIRN_SERVER_BIN", "cairn-server beside cairn", "CLI",
     "The server binary the CLI starts when none runs."},
    {"CAIRN_UI_DIR", "ui/dist of the build, or share/cairn/ui", "server",
     "The studio's built files."},
    {"CAIRN_WORKSPACE", "", "CLI",
     "The URL of a workspace server on another machine; the CLI then talks to it with "
     "CAIRN_TOKEN."},
    {"CAIRN_TOKEN", "", "CLI", "The token for CAIRN_WORKSPACE."},
    {"CAIRN_OUTPUT", "", "CLI", "The default of -o/--output (json, yaml, table, tsv, none)."},
    // Jobs.
    {"CAIRN_LOCAL_SLOTS", "the server's --slots, else the CPU count", "server",
     "How many jobs run at once on the local compute."},
    {"CAIRN_MAX_LOG_BYTES", "1073741824", "server",
     "Each process's stdout and stderr kept, at most, in bytes."},
    {"CAIRN_KILL_GRACE_MS", "5000", "server",
     "Between SIGTERM and SIGKILL when a job is canceled or times out, in milliseconds."},
    {"CAIRN_FAIR_SHARE_HALF_LIFE_HOURS", "168", "server",
     "Fair share: each person's (or, on a private server, each experiment's) GPU- and CPU-seconds "
     "count half after this many hours."},
    {"CAIRN_SYSTEM_METRICS_SECONDS", "2", "server",
     "How often a supervisor samples its job's CPU, memory and GPUs into its MLflow run (0: "
     "never)."},
    {"CAIRN_SPAWNER", "on", "server",
     "off: the server forks each supervisor itself (slower; for comparison)."},
    {"CAIRN_DIRECT_EXEC", "on", "supervisor",
     "off: every command starts through bash, even one that needs no shell (for comparison)."},
    {"CAIRN_SESSION_IDLE_SECONDS", "43200", "server",
     "A studio sign-in ends after this long unused."},
    {"CAIRN_SESSION_MAX_AGE_SECONDS", "604800", "server",
     "A studio sign-in ends this long after it began."},
    {"CAIRN_OIDC_ISSUER", "", "server",
     "A team server's OpenID Connect provider (its issuer URL): the studio then offers sign-in "
     "with it."},
    {"CAIRN_OIDC_CLIENT_ID", "", "server", "The client id the provider gave this server."},
    {"CAIRN_OIDC_CLIENT_SECRET_FILE", "", "server", "A file (0600) holding the client's secret."},
    {"CAIRN_OIDC_REDIRECT_URL", "the TLS address + /oidc/callback", "server",
     "Where the provider sends the browser back (registered with the provider)."},
    {"CAIRN_OIDC_USERNAME_CLAIM", "preferred_username", "server",
     "The ID token's claim that names the person (a Unix user name where their jobs run as them)."},
    {"CAIRN_OIDC_GROUPS_CLAIM", "groups", "server",
     "The ID token's claim listing the person's groups, matched against Group role assignments."},
    {"CAIRN_OIDC_REFRESH_SECONDS", "300", "server",
     "How often a signed-in session is refreshed with the provider (a person disabled there is "
     "signed out at the next one; 0: every request)."},
    // Environments.
    {"CAIRN_CONTAINERS", "on", "server",
     "off: every job runs on the host; strict: a job whose image cannot be had fails instead."},
    {"CAIRN_CONTAINER_RUNTIME", "podman, else docker", "server, supervisor",
     "The container runtime (a name on PATH or a path); none: no containers."},
    {"CAIRN_IMAGE_RECHECK_SECONDS", "600", "server",
     "How long an image found missing is remembered as missing."},
    {"CAIRN_CDI_DIRS", "/etc/cdi:/var/run/cdi", "supervisor",
     "Where the Container Device Interface specs that hand GPUs to containers are."},
    // GPUs.
    {"CAIRN_GPUS", "", "server",
     "Declares this machine's GPUs by index (\"0,1,2,3\") instead of asking NVML; none (or empty): "
     "no GPUs."},
    {"CAIRN_NVML_LIBRARY", "libnvidia-ml.so.1", "server, supervisor", "The NVML library to load."},
    {"CAIRN_NVIDIA_SMI", "nvidia-smi", "server",
     "The nvidia-smi to ask when NVML cannot be loaded."},
    // Slurm and tracking.
    {"CAIRN_SLURM_CONF", "", "server",
     "The slurm.conf the server's Slurm commands use (SLURM_CONF for them)."},
    {"CAIRN_TRACKING_SYNC", "full", "server",
     "normal: a tracking write survives a crash of the server but not of the machine (faster)."},
    // Between Cairn's own processes.
    {"CAIRN_INTERNAL_PLAN", "", "internal",
     "A multi-node job's plan, from its supervisor to each node supervisor."},
    {"CAIRN_INTERNAL_TOKEN", "", "internal",
     "A Slurm job's supervisor credential, for a supervisor that fetches its run over HTTP."},
};

const Setting& Find(std::string_view name) {
  for (const auto& s : kSettings)
    if (s.name == name) return s;
  fprintf(stderr, "cairn: %.*s is not in the settings table (src/base/settings.cc)\n",
          static_cast<int>(name.size()), name.data());
  abort();
}

}  // namespace

std::span<const Setting> All() { return kSettings; }

std::optional<std::string> Get(std::string_view name) {
  const Setting& s = Find(name);
  const char* v = getenv(std::string(s.name).c_str());
  if (!v) return std::nullopt;
  return std::string(v);
}

std::string Text(std::string_view name) {
  auto v = Get(name);
  return v && !v->empty() ? *v : std::string(Find(name).fallback);
}

long long Integer(std::string_view name) {
  std::string text = Text(name);
  char* end = nullptr;
  long long n = strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0') {
    std::string fallback(Find(name).fallback);
    return strtoll(fallback.c_str(), nullptr, 10);
  }
  return n;
}

bool Is(std::string_view name, std::string_view value) {
  auto v = Get(name);
  return v && *v == value;
}

}  // namespace cairn::settings
