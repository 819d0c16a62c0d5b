#include "store/sqlite/wal_batching_vfs.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <new>
#include <string>

namespace chat::store::sqlite {
namespace {

constexpr const char* kName = "chatd-wal-batching";
// A transaction larger than this (a spill in the middle of a huge write, or a group commit
// of a thousand sends) is written in pieces of about this size. Gathering more would save
// no system calls: the unix VFS writes 64 KiB per call.
constexpr std::size_t kMaxGathered = std::size_t{2} << 20;
// The buffer keeps its memory between commits up to this capacity, which growing past
// kMaxGathered by doubling stays under. It used to be freed after every commit that grew
// it past 8 MiB, and jemalloc hands allocations of 8 MiB or more back to the kernel as soon
// as they are freed, so each large group commit faulted a new buffer in page by page
// (17,000-22,000 page faults a second at 14,000 sends a second).
constexpr std::size_t kKeptCapacity = 2 * kMaxGathered;
constexpr int kFrameHeaderSize = 24;

sqlite3_vfs* base_vfs = nullptr;

// Our file, followed in the same allocation by the real one of the base VFS.
struct File {
  sqlite3_file base;      // must be first: SQLite sees this
  sqlite3_file* real;     // the base VFS's file, right after this struct
  bool wal;               // a write-ahead log: its appends are gathered
  std::string* gathered;  // bytes not yet written (WAL only)
  sqlite3_int64 gathered_at;
  sqlite3_int64 commit_page_at;  // where the commit frame's page goes; -1: none pending
  sqlite3_int64 end;             // the end of what this log holds (written or gathered)
};

File* file(sqlite3_file* f) {
  return reinterpret_cast<File*>(f);
}

int write_gathered(File* f) {
  if (f->gathered == nullptr || f->gathered->empty()) return SQLITE_OK;
  // The unix VFS writes at most 128 KiB - 1 per call (it masks the length to 17 bits).
  constexpr std::size_t kPiece = std::size_t{64} << 10;
  int rc = SQLITE_OK;
  const auto& g = *f->gathered;
  for (std::size_t done = 0; done < g.size() && rc == SQLITE_OK; done += kPiece) {
    const std::size_t n = std::min(kPiece, g.size() - done);
    rc = f->real->pMethods->xWrite(f->real, g.data() + done, static_cast<int>(n),
                                   f->gathered_at + static_cast<sqlite3_int64>(done));
  }
  f->gathered->clear();
  if (f->gathered->capacity() > kKeptCapacity) std::string().swap(*f->gathered);
  return rc;
}

std::uint32_t big_endian32(const unsigned char* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}

// ---- file methods: the WAL's writes are gathered, everything else is passed on ----

int x_close(sqlite3_file* f) {
  File* w = file(f);
  const int flushed = write_gathered(w);
  const int rc = w->real->pMethods->xClose(w->real);
  delete w->gathered;
  w->gathered = nullptr;
  return flushed != SQLITE_OK ? flushed : rc;
}

int x_read(sqlite3_file* f, void* out, int n, sqlite3_int64 at) {
  File* w = file(f);
  if (const int rc = write_gathered(w); rc != SQLITE_OK) return rc;
  return w->real->pMethods->xRead(w->real, out, n, at);
}

int x_write(sqlite3_file* f, const void* data, int n, sqlite3_int64 at) {
  File* w = file(f);
  if (!w->wal) return w->real->pMethods->xWrite(w->real, data, n, at);
  auto& g = *w->gathered;
  const auto* bytes = static_cast<const unsigned char*>(data);
  if (at == 0 && n == 32) {
    // The log's header: SQLite starts the log again from the top.
    if (const int rc = write_gathered(w); rc != SQLITE_OK) return rc;
    w->end = 0;
    w->commit_page_at = -1;
  }
  const bool follows = !g.empty() && at == w->gathered_at + static_cast<sqlite3_int64>(g.size());
  if (!follows) {
    if (const int rc = write_gathered(w); rc != SQLITE_OK) return rc;
    if (at < w->end) {
      // Rewriting what the log already holds (a page written again by the same
      // transaction, or the frame headers re-checksummed after it): written through at
      // once, so nothing is left gathered behind a commit SQLite has published.
      return w->real->pMethods->xWrite(w->real, data, n, at);
    }
    w->gathered_at = at;
  }
  g.append(static_cast<const char*>(data), static_cast<std::size_t>(n));
  w->end = std::max(w->end, at + n);
  if (n == kFrameHeaderSize && at >= 32) {
    // A frame header: its second word is non-zero only on the frame that commits.
    if (big_endian32(bytes + 4) != 0) w->commit_page_at = at + kFrameHeaderSize;
    return g.size() > kMaxGathered ? write_gathered(w) : SQLITE_OK;
  }
  if (w->commit_page_at >= 0 && at == w->commit_page_at) {
    // The commit frame is complete: the transaction's frames go out now, before SQLite
    // makes the commit visible.
    w->commit_page_at = -1;
    return write_gathered(w);
  }
  return g.size() > kMaxGathered ? write_gathered(w) : SQLITE_OK;
}

int x_truncate(sqlite3_file* f, sqlite3_int64 size) {
  File* w = file(f);
  if (const int rc = write_gathered(w); rc != SQLITE_OK) return rc;
  w->end = std::min(w->end, size);
  return w->real->pMethods->xTruncate(w->real, size);
}

int x_sync(sqlite3_file* f, int flags) {
  File* w = file(f);
  if (const int rc = write_gathered(w); rc != SQLITE_OK) return rc;
  return w->real->pMethods->xSync(w->real, flags);
}

int x_file_size(sqlite3_file* f, sqlite3_int64* size) {
  File* w = file(f);
  if (const int rc = write_gathered(w); rc != SQLITE_OK) return rc;
  return w->real->pMethods->xFileSize(w->real, size);
}

int x_lock(sqlite3_file* f, int level) {
  return file(f)->real->pMethods->xLock(file(f)->real, level);
}
int x_unlock(sqlite3_file* f, int level) {
  return file(f)->real->pMethods->xUnlock(file(f)->real, level);
}
int x_check_reserved_lock(sqlite3_file* f, int* out) {
  return file(f)->real->pMethods->xCheckReservedLock(file(f)->real, out);
}
int x_file_control(sqlite3_file* f, int op, void* arg) {
  File* w = file(f);
  if (const int rc = write_gathered(w); rc != SQLITE_OK) return rc;
  return w->real->pMethods->xFileControl(w->real, op, arg);
}
int x_sector_size(sqlite3_file* f) {
  return file(f)->real->pMethods->xSectorSize(file(f)->real);
}
int x_device_characteristics(sqlite3_file* f) {
  return file(f)->real->pMethods->xDeviceCharacteristics(file(f)->real);
}
int x_shm_map(sqlite3_file* f, int page, int size, int extend, void volatile** out) {
  return file(f)->real->pMethods->xShmMap(file(f)->real, page, size, extend, out);
}
int x_shm_lock(sqlite3_file* f, int offset, int n, int flags) {
  return file(f)->real->pMethods->xShmLock(file(f)->real, offset, n, flags);
}
void x_shm_barrier(sqlite3_file* f) {
  file(f)->real->pMethods->xShmBarrier(file(f)->real);
}
int x_shm_unmap(sqlite3_file* f, int remove) {
  return file(f)->real->pMethods->xShmUnmap(file(f)->real, remove);
}
int x_fetch(sqlite3_file* f, sqlite3_int64 at, int n, void** out) {
  return file(f)->real->pMethods->xFetch(file(f)->real, at, n, out);
}
int x_unfetch(sqlite3_file* f, sqlite3_int64 at, void* p) {
  return file(f)->real->pMethods->xUnfetch(file(f)->real, at, p);
}

sqlite3_io_methods methods_v3 = {3,
                                 x_close,
                                 x_read,
                                 x_write,
                                 x_truncate,
                                 x_sync,
                                 x_file_size,
                                 x_lock,
                                 x_unlock,
                                 x_check_reserved_lock,
                                 x_file_control,
                                 x_sector_size,
                                 x_device_characteristics,
                                 x_shm_map,
                                 x_shm_lock,
                                 x_shm_barrier,
                                 x_shm_unmap,
                                 x_fetch,
                                 x_unfetch};

// ---- the VFS: files are opened by the base VFS and wrapped ----

int x_open(sqlite3_vfs* /*vfs*/, sqlite3_filename name, sqlite3_file* f, int flags,
           int* out_flags) {
  File* w = file(f);
  w->real = reinterpret_cast<sqlite3_file*>(w + 1);
  w->wal = (flags & SQLITE_OPEN_WAL) != 0;
  w->gathered = nullptr;
  w->gathered_at = 0;
  w->commit_page_at = -1;
  w->end = 0;
  f->pMethods = nullptr;
  const int rc = base_vfs->xOpen(base_vfs, name, w->real, flags, out_flags);
  if (rc != SQLITE_OK || w->real->pMethods == nullptr) return rc;
  // The unix VFS's files are version 3 (shared memory and memory mapping); wrapping a
  // lesser one would promise methods it lacks.
  if (w->real->pMethods->iVersion < 3) {
    w->real->pMethods->xClose(w->real);
    return SQLITE_CANTOPEN;
  }
  if (w->wal) w->gathered = new (std::nothrow) std::string();
  if (w->wal && w->gathered == nullptr) {
    w->real->pMethods->xClose(w->real);
    return SQLITE_NOMEM;
  }
  f->pMethods = &methods_v3;
  return SQLITE_OK;
}

int x_delete(sqlite3_vfs* /*vfs*/, const char* name, int sync_dir) {
  return base_vfs->xDelete(base_vfs, name, sync_dir);
}
int x_access(sqlite3_vfs* /*vfs*/, const char* name, int flags, int* out) {
  return base_vfs->xAccess(base_vfs, name, flags, out);
}
int x_full_pathname(sqlite3_vfs* /*vfs*/, const char* name, int n, char* out) {
  return base_vfs->xFullPathname(base_vfs, name, n, out);
}
void* x_dl_open(sqlite3_vfs* /*vfs*/, const char* name) {
  return base_vfs->xDlOpen(base_vfs, name);
}
void x_dl_error(sqlite3_vfs* /*vfs*/, int n, char* out) {
  base_vfs->xDlError(base_vfs, n, out);
}
void (*x_dl_sym(sqlite3_vfs* /*vfs*/, void* handle, const char* symbol))() {
  return base_vfs->xDlSym(base_vfs, handle, symbol);
}
void x_dl_close(sqlite3_vfs* /*vfs*/, void* handle) {
  base_vfs->xDlClose(base_vfs, handle);
}
int x_randomness(sqlite3_vfs* /*vfs*/, int n, char* out) {
  return base_vfs->xRandomness(base_vfs, n, out);
}
int x_sleep(sqlite3_vfs* /*vfs*/, int micros) {
  return base_vfs->xSleep(base_vfs, micros);
}
int x_current_time(sqlite3_vfs* /*vfs*/, double* out) {
  return base_vfs->xCurrentTime(base_vfs, out);
}
int x_get_last_error(sqlite3_vfs* /*vfs*/, int n, char* out) {
  return base_vfs->xGetLastError(base_vfs, n, out);
}
int x_current_time_int64(sqlite3_vfs* /*vfs*/, sqlite3_int64* out) {
  return base_vfs->xCurrentTimeInt64(base_vfs, out);
}

sqlite3_vfs vfs{};

}  // namespace

const char* wal_batching_vfs() {
  static std::once_flag once;
  std::call_once(once, [] {
    base_vfs = sqlite3_vfs_find(nullptr);
    vfs.iVersion = 2;
    vfs.szOsFile = static_cast<int>(sizeof(File)) + base_vfs->szOsFile;
    vfs.mxPathname = base_vfs->mxPathname;
    vfs.zName = kName;
    vfs.xOpen = x_open;
    vfs.xDelete = x_delete;
    vfs.xAccess = x_access;
    vfs.xFullPathname = x_full_pathname;
    vfs.xDlOpen = x_dl_open;
    vfs.xDlError = x_dl_error;
    vfs.xDlSym = x_dl_sym;
    vfs.xDlClose = x_dl_close;
    vfs.xRandomness = x_randomness;
    vfs.xSleep = x_sleep;
    vfs.xCurrentTime = x_current_time;
    vfs.xGetLastError = x_get_last_error;
    vfs.xCurrentTimeInt64 = x_current_time_int64;
    sqlite3_vfs_register(&vfs, 0);
  });
  return kName;
}

}  // namespace chat::store::sqlite
