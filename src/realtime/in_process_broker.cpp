#include "realtime/broker.hpp"

namespace chat::realtime {
namespace {

// One node: the store calls publish in commit order, so calling the handler right away
// keeps that order, and there is nothing to subscribe to.
class InProcessBroker final : public Broker {
 public:
  void set_handler(BrokerHandler* handler) override { handler_ = handler; }
  void publish_committed(const std::vector<store::EventRecord>& events) override {
    if (handler_ == nullptr) return;
    for (const auto& e : events) handler_->on_logged(e);
  }
  void publish_ephemeral(const Ephemeral& event) override {
    if (handler_ != nullptr) handler_->on_ephemeral(event);
  }
  void publish_session_end(const SessionEnd& end) override {
    if (handler_ != nullptr) handler_->on_session_end(end);
  }
  boost::asio::awaitable<void> flush() override { co_return; }
  void subscribe(std::vector<std::int64_t> /*chat_ids*/, std::vector<std::int64_t> /*user_ids*/,
                 std::optional<std::int64_t> /*from_seq*/, std::function<void()> ready) override {
    if (ready) ready();
  }
  void unsubscribe(std::vector<std::int64_t> /*chat_ids*/,
                   std::vector<std::int64_t> /*user_ids*/) override {}
  // One node: its sockets resume from the log; there is no other node to tell.
  void resync_from(std::int64_t /*first_seq*/) override {}
  [[nodiscard]] bool healthy() const override { return true; }

 private:
  BrokerHandler* handler_ = nullptr;
};

}  // namespace

std::unique_ptr<Broker> make_in_process_broker() {
  return std::make_unique<InProcessBroker>();
}

}  // namespace chat::realtime
