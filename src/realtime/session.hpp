// What the Hub needs of a live socket, whatever carries it. A session owns its socket and
// nothing else; the hub holds sessions by shared pointer while they are attached.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace chat::realtime {

using Frame = std::shared_ptr<const std::string>;

class Session {
 public:
  virtual ~Session() = default;

  // Queues a text frame and sees that it is written; never blocks. A logged event's `seq`
  // (0 for others) lets a resuming session drop what its replay already sent. A frame with
  // a `state` key (not 0) tells a state, not an event (an unread count): a frame with the
  // same key that is still waiting to be written is dropped in its favour. A full queue
  // closes the session as a slow reader.
  virtual void deliver(const Frame& frame, std::int64_t seq = 0, std::int64_t state = 0) = 0;
  // Queues a frame as deliver() does but leaves the write to the caller, so a broadcast
  // writes each recipient once however many frames it queued: true when the caller must
  // call flush() (once), false when a write is already due. Never blocks; any thread.
  virtual bool queue(const Frame& frame, std::int64_t seq, std::int64_t state = 0) = 0;
  // Queues, as queue() does, a frame made of a part shared by many recipients (`head`)
  // followed by this recipient's own (`tail`): one event whose copies differ in a few
  // fields (a chat_updated's read state) need not be copied whole for each socket.
  virtual bool queue_split(const Frame& head, const Frame& tail, std::int64_t seq) {
    return queue(std::make_shared<const std::string>(*head + *tail), seq);
  }
  // Writes what is queued without blocking (the rest waits for room). Any thread.
  virtual void flush() = 0;
  // Sends a close frame with this code after what is queued, then ends the session.
  virtual void close(int code, const std::string& reason) = 0;

  [[nodiscard]] virtual std::int64_t user_id() const = 0;
  // The chat of a /ws/chat/{id}/ socket; 0 for a user socket (/ws/).
  [[nodiscard]] virtual std::int64_t chat_id() const = 0;
  [[nodiscard]] bool is_user_socket() const { return chat_id() == 0; }
  // The login session of the token the socket was opened with ("sid"; may be empty).
  [[nodiscard]] virtual const std::string& login_session() const = 0;
  // The socket's number in the deployment's count of the user's sockets (SocketLimit), or
  // 0 where the node alone counts them.
  [[nodiscard]] virtual std::int64_t socket_serial() const { return 0; }
};

using SessionPtr = std::shared_ptr<Session>;

}  // namespace chat::realtime
