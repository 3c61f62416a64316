// Env: the seam between the engine and the operating system's files.
//
// Readers take an Env so tests can feed truncated or corrupted checkpoints and
// injected read errors from memory (InMemoryEnv) instead of the disk. The
// default Env reads with pread(2) in large chunks straight into the caller's
// buffer: no second copy, no mapping kept resident.
//
// Thread safety: Env and RandomAccessFile are safe for concurrent use; ReadAt
// keeps no file position.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "engine/base/status.h"

namespace relayout {

class RandomAccessFile {
 public:
  RandomAccessFile() = default;
  RandomAccessFile(const RandomAccessFile&) = delete;
  RandomAccessFile& operator=(const RandomAccessFile&) = delete;
  virtual ~RandomAccessFile() = default;

  // Fills all of dst with the bytes at [offset, offset + dst.size()).
  // On failure (I/O error, or the range passes the end of the file) returns a
  // non-OK status naming the file; dst's contents are then unspecified.
  virtual Status ReadAt(uint64_t offset, std::span<std::byte> dst) const = 0;

  // Size in bytes at the time the file was opened.
  virtual uint64_t size() const = 0;
  virtual const std::string& path() const = 0;
};

class Env {
 public:
  Env() = default;
  Env(const Env&) = delete;
  Env& operator=(const Env&) = delete;
  virtual ~Env() = default;

  // The process-wide Env over the real file system. Never null; not owned.
  static Env* Default();

  // Opens path read-only. NotFound if it does not exist.
  virtual Result<std::unique_ptr<RandomAccessFile>> OpenForRead(const std::string& path) = 0;
  virtual bool FileExists(const std::string& path) = 0;
  virtual bool IsDirectory(const std::string& path) = 0;
  // Names (not paths) of the entries of a directory, sorted; NotFound if absent.
  virtual Result<std::vector<std::string>> ListDirectory(const std::string& path) = 0;

  // Reads a whole file of at most max_bytes (larger: InvalidArgument naming the
  // limit). For configs and indexes, never for weights.
  Result<std::string> ReadSmallFile(const std::string& path, uint64_t max_bytes);
};

// Files held in memory, for tests and fuzzers. Paths are plain keys; a
// directory exists when some file's path starts with "<dir>/".
class InMemoryEnv final : public Env {
 public:
  void AddFile(const std::string& path, std::string contents);
  // Every ReadAt of path whose range reaches past fail_from fails with an
  // I/O error, as a failing disk would.
  void InjectReadError(const std::string& path, uint64_t fail_from);

  Result<std::unique_ptr<RandomAccessFile>> OpenForRead(const std::string& path) override;
  bool FileExists(const std::string& path) override;
  bool IsDirectory(const std::string& path) override;
  Result<std::vector<std::string>> ListDirectory(const std::string& path) override;

 private:
  struct Entry {
    std::shared_ptr<const std::string> bytes;
    uint64_t fail_from = UINT64_MAX;
  };
  std::mutex mu_;
  std::map<std::string, Entry> files_;  // GUARDED_BY(mu_)
};

// "dir/name" without doubling the slash; name is returned as is when absolute.
std::string JoinPath(const std::string& dir, const std::string& name);
// The directory part of path ("." when there is none).
std::string DirName(const std::string& path);
// The last component of path.
std::string BaseName(const std::string& path);

}  // namespace relayout
