#include "realtime/broker.hpp"

namespace chat::realtime {
namespace {

class InProcessBroker final : public Broker {
 public:
  void set_handler(BrokerHandler* handler) override { handler_ = handler; }
  void publish_logged(const store::EventRecord& event) override {
    if (handler_ != nullptr) handler_->on_logged(event);
  }
  void publish_ephemeral(const Ephemeral& event) override {
    if (handler_ != nullptr) handler_->on_ephemeral(event);
  }

 private:
  BrokerHandler* handler_ = nullptr;
};

}  // namespace

std::unique_ptr<Broker> make_in_process_broker() {
  return std::make_unique<InProcessBroker>();
}

}  // namespace chat::realtime
