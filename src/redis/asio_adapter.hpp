// Drives a hiredis async context from the Asio loop: hiredis says, through its event hooks,
// when it wants to read or write, and this waits on the socket and calls it back. Private to
// src/redis.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include <memory>

struct redisAsyncContext;

namespace chat::redis::detail {

class AsioAdapter : public std::enable_shared_from_this<AsioAdapter> {
 public:
  // Installs the hooks on `ac`. Every completion runs on `executor`, which must be the strand
  // all other calls into `ac` run on. hiredis keeps a raw pointer to the adapter, so the
  // caller holds the returned pointer at least until hiredis has freed `ac` (the cleanup hook
  // detaches the adapter; waits in flight keep it alive themselves).
  static std::shared_ptr<AsioAdapter> attach(redisAsyncContext* ac,
                                             const boost::asio::any_io_executor& executor);
  ~AsioAdapter();
  AsioAdapter(const AsioAdapter&) = delete;
  AsioAdapter& operator=(const AsioAdapter&) = delete;

 private:
  AsioAdapter(redisAsyncContext* ac, const boost::asio::any_io_executor& executor);

  static void add_read(void* self);
  static void del_read(void* self);
  static void add_write(void* self);
  static void del_write(void* self);
  static void cleanup(void* self);

  void arm(bool read);
  void ready(bool read, const boost::system::error_code& ec);
  void detach();

  redisAsyncContext* ac_;  // null once hiredis has let go of the context
  // hiredis owns the socket: it is released, never closed, here.
  boost::asio::posix::stream_descriptor socket_;
  bool want_read_ = false;
  bool want_write_ = false;
  bool read_armed_ = false;  // a wait is in flight
  bool write_armed_ = false;
};

}  // namespace chat::redis::detail
