// Writing outputs safely: a file appears complete or not at all (written under a temporary name in the same
// folder, then renamed), and one run at a time writes a target (OutputLock).
#pragma once
#include <string>
#include <utility>

namespace autoguide {

void write_file_atomic(const std::string& path, const std::string& bytes);

// Creates `dir` (and parents) and proves it is writable; throws UsageError otherwise.
void ensure_writable_dir(const std::string& dir);

// Creates the parent folder of `path` and proves it is writable.
void ensure_writable_parent(const std::string& path);

bool file_exists(const std::string& path);

// A run's exclusive claim on an output folder or file, so that two runs never write one target at once.
// It is an flock(2) on a lock file (`DIR/.autoguide.lock`, or `.NAME.autoguide.lock` beside a file) that
// holds the owner's pid. The kernel drops the lock when its process ends, however it ends, so a killed run
// never blocks the next one; a lock file it leaves behind is taken over. Released (and the lock file
// removed) when the OutputLock is destroyed; a folder the claim created is removed too if still empty.
class OutputLock {
 public:
  // Creates `dir` if needed and claims it. When another process holds it, throws UsageError:
  // "DIR is being written by another autoguide process (pid N); wait for it or choose another OPTION".
  static OutputLock claim_folder(const std::string& dir, const std::string& option = "output folder");
  // The same for one output file (its folder must be writable; the file itself is not touched).
  static OutputLock claim_file(const std::string& path, const std::string& option);

  OutputLock(OutputLock&& other) noexcept;
  OutputLock& operator=(OutputLock&& other) noexcept;
  OutputLock(const OutputLock&) = delete;
  OutputLock& operator=(const OutputLock&) = delete;
  ~OutputLock();

  const std::string& lock_path() const { return lock_path_; }

 private:
  OutputLock(int fd, std::string lock_path, std::string created_dir)
      : fd_(fd), lock_path_(std::move(lock_path)), created_dir_(std::move(created_dir)) {}
  static OutputLock claim(const std::string& target, const std::string& lock_path, const std::string& option,
                          const std::string& created_dir);
  void release() noexcept;

  int fd_ = -1;
  std::string lock_path_;
  std::string created_dir_;  // removed on release when empty; empty when the folder existed before
};

}  // namespace autoguide
