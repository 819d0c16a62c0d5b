// The order in which frames held while a socket opened go out.
//
// A socket's chats the node heard already go on live while those it starts hearing for
// the socket are read from the log (Hub::attach, settle_chats): their older events were
// held after newer ones of the others. Logged frames (seq != 0) go out in seq order.
// A frame not logged (an `unread` count, a status) goes right after the last, in that
// order, of the logged frames that arrived before it: a count must not come ahead of a
// message it counts, as it did when such frames kept their places while the logged ones
// around them moved. Frames not logged keep their order among themselves.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace chat::ws {

// T has an `std::int64_t seq` (0: not logged).
template <class T>
void in_seq_order(std::vector<T>& held) {
  std::vector<std::size_t> logged;  // places in `held`, then sorted by seq
  for (std::size_t i = 0; i < held.size(); ++i) {
    if (held[i].seq != 0) logged.push_back(i);
  }
  std::stable_sort(logged.begin(), logged.end(),
                   [&](std::size_t a, std::size_t b) { return held[a].seq < held[b].seq; });
  std::vector<std::size_t> rank(held.size(), 0);  // 1 + place among the sorted logged frames
  for (std::size_t k = 0; k < logged.size(); ++k) rank[logged[k]] = k + 1;
  // after[r]: the frames not logged that go right after the logged frame of rank r (0: first).
  std::vector<std::vector<std::size_t>> after(logged.size() + 1);
  std::size_t latest = 0;
  for (std::size_t i = 0; i < held.size(); ++i) {
    if (held[i].seq != 0) {
      latest = std::max(latest, rank[i]);
    } else {
      after[latest].push_back(i);
    }
  }
  std::vector<T> out;
  out.reserve(held.size());
  for (std::size_t i : after[0]) out.push_back(std::move(held[i]));
  for (std::size_t k = 0; k < logged.size(); ++k) {
    out.push_back(std::move(held[logged[k]]));
    for (std::size_t i : after[k + 1]) out.push_back(std::move(held[i]));
  }
  held = std::move(out);
}

}  // namespace chat::ws
