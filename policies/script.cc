// policies/script.cc — see script.h. One Run per message: spawn, read stdout, wait for the exit
// (or kill at the timeout), decide, close the handles, and only then deliver `done` and free.
//
// A Run's states, in order: running (child alive) -> exited (status known; stdout may still be
// open if a grandchild holds it: a short grace, then we stop waiting) -> closing (verdict known,
// handles closing) -> freed after the last close callback, which delivers `done` unless the run
// was abandoned. The process handle closes only after the child was reaped: closing it earlier
// would leave a zombie libuv no longer waits for.
#include "policies/script.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "lib/log/log.h"
#include "lib/smtp/data_stream.h"
#include "lib/spool/spool.h"
#include "lib/spool/temp_file.h"
#include "policies/registry.h"

namespace dotgate::policy {

namespace {

// stdout kept: enough for a first line of kMaxReplyText; the rest is read and dropped, so a
// chatty program never blocks on a full pipe (and never grows our memory).
constexpr std::size_t kMaxOutput = 4096;
// After the program exited, how long its stdout may stay open (a background child holding it)
// before we stop waiting for the rest of its first line.
constexpr std::uint64_t kExitGraceMs = 200;

// The message for the program: an unlinked file in `directory` (nothing survives a crash),
// rewound so a program reading fd 3 directly starts at the top. Synchronous write on the loop:
// the spool is already in the page cache and this does not wait for the disk; a thread-pool
// write is left for when messages get large enough to matter. Returns -1 and sets `error`.
int write_message_file(const std::string& directory, const std::string& message, std::string& error) {
  int fd = spool::open_unlinked_temp(directory);
  if (fd < 0) {
    error = std::string("message file: ") + std::strerror(errno);
    return -1;
  }
  if (!spool::write_all(fd, message) || ::lseek(fd, 0, SEEK_SET) != 0) {
    error = std::string("message file: ") + std::strerror(errno);
    ::close(fd);
    return -1;
  }
  return fd;
}

// The reply text from the program's stdout: its first line, printable ASCII only (CR, LF, NUL
// and other control bytes would let a program inject reply lines or break the wire), trimmed,
// at most kMaxReplyText bytes.
std::string reply_text(const std::string& output) {
  std::string text;
  for (char c : output) {
    if (c == '\n') break;
    if (c >= 0x20 && c < 0x7f) text.push_back(c);
    if (text.size() >= ScriptPolicy::kMaxReplyText) break;
  }
  auto first = text.find_first_not_of(' ');
  if (first == std::string::npos) return {};
  return text.substr(first, text.find_last_not_of(' ') - first + 1);
}

// The session names its client "address:port" ("192.0.2.1:4000", "[2001:db8::1]:4000"); a
// script wants the address alone, as Postfix's client_address. A value without a port is kept.
std::string address_only(const std::string& peer) {
  if (!peer.empty() && peer.front() == '[') {
    auto close = peer.find(']');
    return close == std::string::npos ? peer : peer.substr(1, close - 1);
  }
  auto colon = peer.rfind(':');
  if (colon == std::string::npos || peer.find(':') != colon) return peer;  // no port, or bare IPv6
  return peer.substr(0, colon);
}

std::string join(const std::vector<std::string>& items, const char* separator) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : separator) + s;
  return out;
}

class ScriptFactory final : public PolicyFactory {
 public:
  explicit ScriptFactory(std::shared_ptr<const ScriptConfig> config) : config_(std::move(config)) {}
  std::unique_ptr<Policy> create(const PolicyContext& context) const override {
    return std::make_unique<ScriptPolicy>(config_, context);
  }

 private:
  std::shared_ptr<const ScriptConfig> config_;
};

}  // namespace

struct ScriptPolicy::Run {
  ScriptPolicy* owner;  // null once abandoned
  Done done;            // null once abandoned
  std::shared_ptr<const ScriptConfig> config;

  uv_process_t process{};
  uv_pipe_t out{};
  uv_timer_t timer{};
  int open_handles = 0;
  bool process_open = false;  // uv_spawn was called (it initialises the handle even on failure)
  bool spawned = false;       // a child exists
  bool exited = false;
  bool eof = false;
  bool timed_out = false;
  bool closing = false;
  std::int64_t exit_status = 0;
  int term_signal = 0;
  std::string output;
  Verdict verdict;

  Run(ScriptPolicy* o, Done d) : owner(o), done(std::move(d)), config(o->config_) {}

  void start(const Envelope& envelope, const spool::Spool& spool, uv_loop_t* loop, const std::string& directory) {
    uv_timer_init(loop, &timer);
    uv_pipe_init(loop, &out, 0);
    timer.data = out.data = process.data = this;
    open_handles = 2;

    std::string error;
    int fd = write_message_file(directory, smtp::unstuff(spool.read_all()), error);
    if (fd < 0) return fail_with(error, "io");

    // Storage for argv and envp; uv_spawn copies what it needs before returning.
    std::vector<std::string> env_storage = {
        "DOTGATE_MESSAGE=/dev/fd/3",
        "DOTGATE_CLIENT_ADDRESS=" + address_only(envelope.client_address),
        "DOTGATE_HELO=" + envelope.helo,
        "DOTGATE_SENDER=" + envelope.mail_from,
        "DOTGATE_RECIPIENTS=" + join(envelope.recipients, ","),
        "DOTGATE_SIZE=" + std::to_string(envelope.message_size),
    };
    const char* path_env = std::getenv("PATH");
    env_storage.push_back(std::string("PATH=") + (path_env ? path_env : "/usr/local/bin:/usr/bin:/bin"));
    std::vector<char*> envp;
    for (auto& s : env_storage) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::vector<std::string> arg_storage = {config->path};
    arg_storage.insert(arg_storage.end(), config->args.begin(), config->args.end());
    std::vector<char*> argv;
    for (auto& s : arg_storage) argv.push_back(s.data());
    argv.push_back(nullptr);

    uv_stdio_container_t stdio[4];
    stdio[0].flags = UV_IGNORE;  // libuv opens /dev/null for 0-2 when ignored
    stdio[1].flags = static_cast<uv_stdio_flags>(UV_CREATE_PIPE | UV_WRITABLE_PIPE);
    stdio[1].data.stream = reinterpret_cast<uv_stream_t*>(&out);
    stdio[2].flags = UV_INHERIT_FD;
    stdio[2].data.fd = 2;
    stdio[3].flags = UV_INHERIT_FD;
    stdio[3].data.fd = fd;

    uv_process_options_t options{};
    options.exit_cb = &Run::on_exit;
    options.file = config->path.c_str();
    options.args = argv.data();
    options.env = envp.data();
    options.stdio_count = 4;
    options.stdio = stdio;
    // Its own session and process group: the timeout kills the group, children included.
    options.flags = UV_PROCESS_DETACHED;

    int rc = uv_spawn(loop, &process, &options);
    process_open = true;
    ++open_handles;
    ::close(fd);  // the child has its own copy; the file vanishes when the child is done with it
    if (rc != 0) return fail_with(std::string("spawn failed: ") + uv_strerror(rc), "spawn");
    spawned = true;
    uv_read_start(reinterpret_cast<uv_stream_t*>(&out), &Run::on_alloc, &Run::on_read);
    uv_timer_start(&timer, &Run::on_timer, config->timeout_ms, 0);
  }

  // cancel(), or the policy destroyed: no `done` any more; the child is killed and reaped, the
  // handles close, the Run frees itself.
  void abandon() {
    owner = nullptr;
    done = nullptr;
    if (closing) return;
    kill_group();
    close_handles();
  }

  void kill_group() {
    if (!spawned || exited) return;
    // The negative pid is the group made by setsid (UV_PROCESS_DETACHED).
    ::kill(-process.pid, SIGKILL);
    uv_process_kill(&process, SIGKILL);
  }

  static void on_alloc(uv_handle_t*, std::size_t suggested, uv_buf_t* buf) {
    static thread_local char scratch[kMaxOutput];
    (void)suggested;
    *buf = uv_buf_init(scratch, sizeof scratch);
  }

  static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
    auto* self = static_cast<Run*>(stream->data);
    if (nread > 0) {
      std::size_t room = kMaxOutput - std::min(kMaxOutput, self->output.size());
      self->output.append(buf->base, std::min(room, static_cast<std::size_t>(nread)));
      return;
    }
    if (nread == 0) return;  // EAGAIN
    self->eof = true;  // UV_EOF or a read error: nothing more will come either way
    uv_read_stop(stream);
    if (self->exited && !self->closing) self->decide();
  }

  static void on_exit(uv_process_t* p, std::int64_t exit_status, int term_signal) {
    auto* self = static_cast<Run*>(p->data);
    self->exited = true;
    self->exit_status = exit_status;
    self->term_signal = term_signal;
    if (self->closing) {  // abandoned: the child is reaped, its handle may go now
      self->close_process();
      return;
    }
    if (self->eof) return self->decide();
    // stdout still open: a background child of the program holds it. Wait a little for the
    // program's own output, then stop waiting (decide() kills the rest of the group).
    uv_timer_stop(&self->timer);
    uv_timer_start(&self->timer, &Run::on_timer, kExitGraceMs, 0);
  }

  static void on_timer(uv_timer_t* t) {
    auto* self = static_cast<Run*>(t->data);
    if (self->closing) return;
    if (self->exited) return self->decide();  // the grace after exit is over
    self->timed_out = true;
    self->kill_group();  // on_exit follows (SIGKILL cannot be caught) and decides
  }

  void decide() {
    if (!eof && spawned) ::kill(-process.pid, SIGKILL);  // leftovers holding stdout
    if (timed_out) return fail_with("timed out after " + std::to_string(config->timeout_ms) + " ms", "timeout");
    if (term_signal != 0) return fail_with("killed by signal " + std::to_string(term_signal), "crash");
    std::string text = reply_text(output);
    switch (exit_status) {
      case 0:
        return finish(Verdict::pass());
      case 1:
        return finish(Verdict::fail(451, "4.7.1", text.empty() ? "Message deferred by content filter, try again later" : text,
                                    "script exit 1"));
      case 2:
        return finish(Verdict::fail(550, "5.7.1", text.empty() ? "Message rejected by content filter" : text,
                                    "script exit 2"));
      case 3: {
        Verdict v = Verdict::fail(550, "5.7.1", text.empty() ? "Message rejected by content filter" : text,
                                  "script exit 3 (keep)");
        v.action = Action::FailKeep;
        return finish(std::move(v));
      }
      default:
        return fail_with("unknown exit status " + std::to_string(exit_status), "status");
    }
  }

  // The program could not judge: on_error decides, and why is logged (and kept as the reason).
  // `label` names the kind for dotgate_policy_errors_total: spawn, timeout, crash, status, io.
  void fail_with(const std::string& why, const char* label) {
    log::warn("script policy error", {{"program", config->path}, {"reason", why}});
    Verdict v;
    switch (config->on_error) {
      case ScriptOnError::Accept:
        v = Verdict::pass();
        break;
      case ScriptOnError::Reject:
        v = Verdict::fail(550, "5.7.0", "Message refused: content filter error", "script: " + why);
        break;
      case ScriptOnError::Tempfail:
        v = Verdict::fail(451, "4.7.0", "Content filter temporarily unavailable, try again later", "script: " + why);
        break;
    }
    v.error = label;
    finish(std::move(v));
  }

  void finish(Verdict v) {
    verdict = std::move(v);
    close_handles();
  }

  void close_handles() {
    closing = true;
    if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(&timer)))
      uv_close(reinterpret_cast<uv_handle_t*>(&timer), &Run::on_close);
    if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(&out)))
      uv_close(reinterpret_cast<uv_handle_t*>(&out), &Run::on_close);
    if (!spawned || exited) close_process();  // else on_exit closes it once the child is reaped
  }

  void close_process() {
    if (!process_open || uv_is_closing(reinterpret_cast<uv_handle_t*>(&process))) return;
    uv_close(reinterpret_cast<uv_handle_t*>(&process), &Run::on_close);
  }

  // The last close delivers the verdict (from the loop, never inside data_end) and frees the Run.
  static void on_close(uv_handle_t* h) {
    auto* self = static_cast<Run*>(h->data);
    if (--self->open_handles > 0) return;
    if (self->owner) self->owner->run_ = nullptr;
    Done d = std::move(self->done);
    Verdict v = std::move(self->verdict);
    delete self;
    if (d) d(std::move(v));
  }
};

ScriptPolicy::~ScriptPolicy() { cancel(); }

void ScriptPolicy::data_end(const Envelope& envelope, SpoolRef spool, Done done) {
  cancel();  // one message at a time; a stale run (should not exist) is abandoned
  run_ = new Run(this, std::move(done));
  run_->start(envelope, *spool, context_.loop, context_.spool_directory);
}

void ScriptPolicy::cancel() {
  if (!run_) return;
  Run* r = run_;
  run_ = nullptr;
  r->abandon();
}

std::unique_ptr<PolicyFactory> make_script_factory(PolicyConfigReader& reader, const config::Config&) {
  auto c = std::make_shared<ScriptConfig>();
  c->path = reader.string("path", "");
  const std::string where = reader.path() + ".path: ";
  if (!reader.has("path")) throw config::ConfigError(where + "missing required key");
  if (c->path.empty() || c->path.front() != '/' || c->path.find('\0') != std::string::npos)
    throw config::ConfigError(where + "expected absolute path");
  // Checked at load (start and SIGHUP) so a typo is refused then, not found at the first message.
  struct stat st {};
  if (::stat(c->path.c_str(), &st) != 0)
    throw config::ConfigError(where + c->path + ": " + std::strerror(errno));
  if (!S_ISREG(st.st_mode) || ::access(c->path.c_str(), X_OK) != 0)
    throw config::ConfigError(where + c->path + ": not an executable file");
  c->args = reader.string_array("args", {});
  // Up to an hour; the session's verdict deadline bounds the wait anyway.
  double seconds = reader.number("timeout", 30, 0.001, 3600);
  c->timeout_ms = static_cast<std::uint64_t>(seconds * 1000.0 + 0.5);
  if (c->timeout_ms == 0) c->timeout_ms = 1;
  std::string on_error = reader.choice("on_error", "tempfail", {"tempfail", "accept", "reject"});
  c->on_error = on_error == "accept" ? ScriptOnError::Accept
                : on_error == "reject" ? ScriptOnError::Reject
                                       : ScriptOnError::Tempfail;
  return std::make_unique<ScriptFactory>(std::move(c));
}

}  // namespace dotgate::policy
