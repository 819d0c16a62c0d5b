#include "redis/asio_adapter.hpp"

#include <hiredis/async.h>

namespace chat::redis::detail {

namespace asio = boost::asio;

std::shared_ptr<AsioAdapter> AsioAdapter::attach(redisAsyncContext* ac,
                                                 const asio::any_io_executor& executor) {
  std::shared_ptr<AsioAdapter> adapter(new AsioAdapter(ac, executor));
  ac->ev.data = adapter.get();
  ac->ev.addRead = &AsioAdapter::add_read;
  ac->ev.delRead = &AsioAdapter::del_read;
  ac->ev.addWrite = &AsioAdapter::add_write;
  ac->ev.delWrite = &AsioAdapter::del_write;
  ac->ev.cleanup = &AsioAdapter::cleanup;
  return adapter;
}

AsioAdapter::AsioAdapter(redisAsyncContext* ac, const asio::any_io_executor& executor)
    : ac_(ac), socket_(executor, ac->c.fd) {}

AsioAdapter::~AsioAdapter() {
  if (socket_.is_open()) socket_.release();
}

void AsioAdapter::add_read(void* self) {
  auto* a = static_cast<AsioAdapter*>(self);
  a->want_read_ = true;
  a->arm(true);
}

void AsioAdapter::del_read(void* self) {
  // A wait already in flight is left alone: when it fires it sees that reading is no longer
  // wanted. Cancelling would also cancel the write wait (one descriptor).
  static_cast<AsioAdapter*>(self)->want_read_ = false;
}

void AsioAdapter::add_write(void* self) {
  auto* a = static_cast<AsioAdapter*>(self);
  a->want_write_ = true;
  a->arm(false);
}

void AsioAdapter::del_write(void* self) {
  static_cast<AsioAdapter*>(self)->want_write_ = false;
}

// hiredis may call this more than once for one context.
void AsioAdapter::cleanup(void* self) {
  static_cast<AsioAdapter*>(self)->detach();
}

void AsioAdapter::detach() {
  if (ac_ == nullptr) return;
  ac_ = nullptr;
  want_read_ = want_write_ = false;
  // Deregisters the socket before hiredis closes it (a reused descriptor number must not
  // inherit this registration) and aborts the waits in flight.
  socket_.release();
}

void AsioAdapter::arm(bool read) {
  bool& armed = read ? read_armed_ : write_armed_;
  if (armed || ac_ == nullptr) return;
  armed = true;
  socket_.async_wait(
      read ? asio::posix::stream_descriptor::wait_read : asio::posix::stream_descriptor::wait_write,
      [self = shared_from_this(), read](const boost::system::error_code& ec) {
        self->ready(read, ec);
      });
}

void AsioAdapter::ready(bool read, const boost::system::error_code& ec) {
  (read ? read_armed_ : write_armed_) = false;
  if (ac_ == nullptr || ec == asio::error::operation_aborted) return;
  if (!(read ? want_read_ : want_write_)) return;
  // Any other error is left for hiredis to find on the socket. The call may free the
  // context, which detaches this adapter (the lambda's pointer keeps it alive meanwhile).
  if (read) {
    redisAsyncHandleRead(ac_);
  } else {
    redisAsyncHandleWrite(ac_);
  }
  // Interest in reading lasts until delRead: wait again. Writing re-arms itself through
  // addWrite while output is left.
  if (ac_ != nullptr && (read ? want_read_ : want_write_)) arm(read);
}

}  // namespace chat::redis::detail
