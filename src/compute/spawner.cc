#include "compute/spawner.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>
#include <vector>

#include "base/util.h"
#include "compute/process.h"
#include "compute/supervisor.h"

namespace cairn::compute {

namespace {
// Room for the supervisors' command lines (`<cairn> supervise <run folder>`), reserved in the
// spawner's own.
constexpr size_t kTitleRoom = 4096 + 512;
constexpr int kReplyTimeoutMs = 5000;

void Reply(int fd, const std::string& text) {
  (void)!send(fd, text.data(), text.size(), MSG_NOSIGNAL);
}

void NoteChild(int) {}  // SIGCHLD only has to wake ppoll
}  // namespace

SupervisorSpawner::~SupervisorSpawner() {
  std::lock_guard<std::mutex> l(mu_);
  StopLocked();
}

void SupervisorSpawner::StopLocked() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
  if (pid_ > 0) {
    // It ends on the closed socket at once; reap it (it is this process's child). Its exit may
    // take longer (a sanitizer's leak check at exit took seconds in CI): then a thread waits for
    // it, so no zombie is left, and the caller (holding the lock) does not.
    bool reaped = false;
    for (int i = 0; i < 100 && !reaped; ++i) {
      reaped = waitpid(pid_, nullptr, WNOHANG) != 0;
      if (!reaped) usleep(1000);
    }
    if (!reaped) std::thread([pid = pid_] { waitpid(pid, nullptr, 0); }).detach();
  }
  pid_ = -1;
}

Status SupervisorSpawner::StartLocked() {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
    return Internal(std::string("socketpair: ") + strerror(errno));
  std::string room(kTitleRoom, ' ');
  auto pid = SpawnDetached({exe_, "supervise", "--spawner", "3", room}, "/dev/null", {}, sv[1]);
  close(sv[1]);
  if (!pid.ok()) {
    close(sv[0]);
    return Internal("cannot start the supervisor spawner: " + pid.status().message());
  }
  fd_ = sv[0];
  pid_ = *pid;
  return Status::Ok();
}

Result<pid_t> SupervisorSpawner::Spawn(const std::string& run_dir, const std::string& log_path) {
  std::lock_guard<std::mutex> l(mu_);
  if (fd_ < 0) {
    if (NowMillis() < retry_after_ms_) return Unavailable("");  // said when it failed to start
    if (Status s = StartLocked(); !s.ok()) {
      retry_after_ms_ = NowMillis() + 10000;
      return s;
    }
  }
  std::string req = run_dir + '\0' + log_path;
  auto fail = [&](const std::string& why) -> Result<pid_t> {
    StopLocked();  // the next call starts a fresh one
    return Unavailable("the supervisor spawner " + why);
  };
  if (send(fd_, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size()))
    return fail(std::string("did not take the request: ") + strerror(errno));
  pollfd p{fd_, POLLIN, 0};
  int r;
  do r = poll(&p, 1, kReplyTimeoutMs);
  while (r < 0 && errno == EINTR);
  if (r <= 0) return fail("did not answer");
  char buf[1024];
  ssize_t n = recv(fd_, buf, sizeof buf - 1, 0);
  if (n <= 0) return fail("closed its socket");
  std::string reply(buf, static_cast<size_t>(n));
  if (StartsWith(reply, "ok ")) return static_cast<pid_t>(atol(reply.c_str() + 3));
  // A refusal of this one request (its log cannot be opened, a path too long): the spawner stays.
  return Unavailable(reply.substr(reply.find(' ') + 1));
}

int RunSpawner(int fd, int argc, char** argv) {
  // The command line's bytes (contiguous on Linux, argv[argc - 1]'s NUL last), rewritten in each
  // child.
  char* area = argv[0];
  size_t room = static_cast<size_t>(argv[argc - 1] + strlen(argv[argc - 1]) - area);
  std::string exe = argv[0];

  sigset_t chld, empty;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigemptyset(&empty);
  sigprocmask(SIG_BLOCK, &chld, nullptr);  // delivered only inside ppoll: no reap is missed
  struct sigaction sa {};
  sa.sa_handler = NoteChild;
  sigaction(SIGCHLD, &sa, nullptr);

  std::vector<char> buf(2 * 4096 + 64);
  for (;;) {
    while (waitpid(-1, nullptr, WNOHANG) > 0) {
    }
    pollfd p{fd, POLLIN, 0};
    int r = ppoll(&p, 1, nullptr, &empty);
    if (r < 0) {
      if (errno == EINTR) continue;
      return 1;
    }
    ssize_t n = recv(fd, buf.data(), buf.size() - 1, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // the server is gone
    buf[static_cast<size_t>(n)] = '\0';
    std::string run_dir = buf.data();
    if (run_dir.size() + 1 >= static_cast<size_t>(n)) {
      Reply(fd, "error malformed request");
      continue;
    }
    std::string log_path = buf.data() + run_dir.size() + 1;
    std::string title = exe + " supervise " + run_dir;
    if (title.size() >= room) {
      Reply(fd, "error the run folder's path is too long for the spawner");
      continue;
    }
    int log = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log < 0) {
      Reply(fd, "error cannot open " + log_path + ": " + strerror(errno));
      continue;
    }
    pid_t pid = fork();
    if (pid == 0) {
      // As SpawnDetached leaves an exec'd supervisor: its own session, /dev/null in, the log out,
      // nothing else open, default signals, nothing blocked.
      setsid();
      int null = open("/dev/null", O_RDONLY);
      if (null >= 0 && null != 0) dup2(null, 0);
      dup2(log, 1);
      dup2(log, 2);
      close_range(3, ~0U, 0);
      struct sigaction dfl {};
      dfl.sa_handler = SIG_DFL;
      for (int sig = 1; sig < NSIG; ++sig) sigaction(sig, &dfl, nullptr);
      sigprocmask(SIG_SETMASK, &empty, nullptr);
      // setproctitle's way: the title, a NUL, and the area's last byte (argv's final NUL) made
      // non-NUL, which tells the kernel to show /proc/<pid>/cmdline up to the title's end.
      memset(area, 0, room);
      memcpy(area, title.data(), title.size());
      area[room] = ' ';
      exit(RunSupervisor(run_dir));
    }
    close(log);
    if (pid < 0)
      Reply(fd, std::string("error fork: ") + strerror(errno));
    else
      Reply(fd, "ok " + std::to_string(pid));
  }
  return 0;
}

}  // namespace cairn::compute
