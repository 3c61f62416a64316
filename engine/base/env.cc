#include "engine/base/env.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace relayout {
namespace {

// One pread moves at most this much: large enough to stream at disk speed,
// small enough that an interrupted call loses little.
constexpr uint64_t kMaxReadChunk = 64ull << 20;

class PosixRandomAccessFile final : public RandomAccessFile {
 public:
  PosixRandomAccessFile(std::string path, int fd, uint64_t size)
      : path_(std::move(path)), fd_(fd), size_(size) {}
  ~PosixRandomAccessFile() override { ::close(fd_); }

  Status ReadAt(uint64_t offset, std::span<std::byte> dst) const override {
    if (offset > size_ || dst.size() > size_ - offset) {
      return Status::DataLoss(path_, StrCat("read of ", dst.size(), " bytes at offset ", offset,
                                            " passes end of file (", size_, " bytes)"));
    }
    uint64_t done = 0;
    while (done < dst.size()) {
      const size_t want = static_cast<size_t>(std::min<uint64_t>(dst.size() - done, kMaxReadChunk));
      const ssize_t got = ::pread(fd_, dst.data() + done, want, static_cast<off_t>(offset + done));
      if (got < 0) {
        if (errno == EINTR) continue;
        return Status::IOError(
            path_, StrCat("pread at offset ", offset + done, ": ", std::strerror(errno)));
      }
      if (got == 0) {
        return Status::DataLoss(path_,
                                StrCat("file shrank while reading: end at offset ", offset + done));
      }
      done += static_cast<uint64_t>(got);
    }
    return Status::OK();
  }

  uint64_t size() const override { return size_; }
  const std::string& path() const override { return path_; }

 private:
  std::string path_;
  int fd_;
  uint64_t size_;
};

class PosixEnv final : public Env {
 public:
  Result<std::unique_ptr<RandomAccessFile>> OpenForRead(const std::string& path) override {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      const int err = errno;
      if (err == ENOENT) return Status::NotFound(path, "no such file");
      if (err == EACCES) return Status::PermissionDenied(path, std::strerror(err));
      return Status::IOError(path, std::strerror(err));
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      const int err = errno;
      ::close(fd);
      return Status::IOError(path, std::strerror(err));
    }
    if (S_ISDIR(st.st_mode)) {
      ::close(fd);
      return Status::InvalidArgument(path, "is a directory, expected a file");
    }
    std::unique_ptr<RandomAccessFile> file =
        std::make_unique<PosixRandomAccessFile>(path, fd, static_cast<uint64_t>(st.st_size));
    return file;
  }

  bool FileExists(const std::string& path) override {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && !S_ISDIR(st.st_mode);
  }

  bool IsDirectory(const std::string& path) override {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
  }

  Result<std::vector<std::string>> ListDirectory(const std::string& path) override {
    DIR* dir = ::opendir(path.c_str());
    if (dir == nullptr) {
      if (errno == ENOENT) return Status::NotFound(path, "no such directory");
      return Status::IOError(path, std::strerror(errno));
    }
    std::vector<std::string> names;
    while (const dirent* e = ::readdir(dir)) {
      const std::string name = e->d_name;
      if (name != "." && name != "..") names.push_back(name);
    }
    ::closedir(dir);
    std::sort(names.begin(), names.end());
    return names;
  }
};

class InMemoryFile final : public RandomAccessFile {
 public:
  InMemoryFile(std::string path, std::shared_ptr<const std::string> bytes, uint64_t fail_from)
      : path_(std::move(path)), bytes_(std::move(bytes)), fail_from_(fail_from) {}

  Status ReadAt(uint64_t offset, std::span<std::byte> dst) const override {
    if (offset > bytes_->size() || dst.size() > bytes_->size() - offset) {
      return Status::DataLoss(path_, StrCat("read of ", dst.size(), " bytes at offset ", offset,
                                            " passes end of file (", bytes_->size(), " bytes)"));
    }
    if (offset + dst.size() > fail_from_) {
      return Status::IOError(path_, StrCat("injected read error at offset ", fail_from_));
    }
    if (!dst.empty()) std::memcpy(dst.data(), bytes_->data() + offset, dst.size());
    return Status::OK();
  }
  uint64_t size() const override { return bytes_->size(); }
  const std::string& path() const override { return path_; }

 private:
  std::string path_;
  std::shared_ptr<const std::string> bytes_;
  uint64_t fail_from_;
};

}  // namespace

Env* Env::Default() {
  static PosixEnv* env = new PosixEnv();  // never destroyed: used until exit
  return env;
}

Result<std::string> Env::ReadSmallFile(const std::string& path, uint64_t max_bytes) {
  ASSIGN_OR_RETURN(std::unique_ptr<RandomAccessFile> file, OpenForRead(path));
  if (file->size() > max_bytes) {
    return Status::InvalidArgument(
        path, StrCat("file is ", file->size(), " bytes, above the limit of ", max_bytes));
  }
  std::string bytes(file->size(), '\0');
  RETURN_IF_ERROR(file->ReadAt(0, std::as_writable_bytes(std::span(bytes))));
  return bytes;
}

void InMemoryEnv::AddFile(const std::string& path, std::string contents) {
  std::lock_guard lock(mu_);
  files_[path] = Entry{std::make_shared<const std::string>(std::move(contents)), UINT64_MAX};
}

void InMemoryEnv::InjectReadError(const std::string& path, uint64_t fail_from) {
  std::lock_guard lock(mu_);
  files_[path].fail_from = fail_from;
}

Result<std::unique_ptr<RandomAccessFile>> InMemoryEnv::OpenForRead(const std::string& path) {
  std::lock_guard lock(mu_);
  auto it = files_.find(path);
  if (it == files_.end() || it->second.bytes == nullptr) {
    return Status::NotFound(path, "no such file");
  }
  std::unique_ptr<RandomAccessFile> file =
      std::make_unique<InMemoryFile>(path, it->second.bytes, it->second.fail_from);
  return file;
}

bool InMemoryEnv::FileExists(const std::string& path) {
  std::lock_guard lock(mu_);
  return files_.count(path) != 0;
}

bool InMemoryEnv::IsDirectory(const std::string& path) {
  std::lock_guard lock(mu_);
  const std::string prefix = path.empty() || path.back() == '/' ? path : path + "/";
  auto it = files_.lower_bound(prefix);
  return it != files_.end() && it->first.compare(0, prefix.size(), prefix) == 0;
}

Result<std::vector<std::string>> InMemoryEnv::ListDirectory(const std::string& path) {
  std::lock_guard lock(mu_);
  const std::string prefix = path.empty() || path.back() == '/' ? path : path + "/";
  std::vector<std::string> names;
  for (auto it = files_.lower_bound(prefix);
       it != files_.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
    std::string rest = it->first.substr(prefix.size());
    rest = rest.substr(0, rest.find('/'));
    if (names.empty() || names.back() != rest) names.push_back(rest);
  }
  if (names.empty()) return Status::NotFound(path, "no such directory");
  return names;
}

std::string JoinPath(const std::string& dir, const std::string& name) {
  if (!name.empty() && name.front() == '/') return name;
  if (dir.empty()) return name;
  if (dir.back() == '/') return dir + name;
  return dir + "/" + name;
}

std::string DirName(const std::string& path) {
  const auto pos = path.find_last_of('/');
  if (pos == std::string::npos) return ".";
  if (pos == 0) return "/";
  return path.substr(0, pos);
}

std::string BaseName(const std::string& path) {
  const auto pos = path.find_last_of('/');
  return pos == std::string::npos ? path : path.substr(pos + 1);
}

}  // namespace relayout
