// Runs a blocking function on another executor (a thread pool for SQLite or for password
// hashing) and resumes the awaiting coroutine on its own executor with the result or the
// exception. Include only from .cpp files: it brings in Asio.
#pragma once

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <exception>
#include <optional>
#include <type_traits>

namespace chat {

// A plain initiating function, not a coroutine lambda: the work and its result travel in
// ordinary handlers, which also spares a coroutine frame per call.
template <class Executor, class F>
auto offload(Executor target, F f) {
  using R = std::invoke_result_t<F&>;
  namespace asio = boost::asio;
  if constexpr (std::is_void_v<R>) {
    return asio::async_initiate<const asio::use_awaitable_t<>&, void(std::exception_ptr)>(
        [target](auto handler, F fn) {
          auto work = asio::make_work_guard(asio::get_associated_executor(handler));
          asio::post(target, [handler = std::move(handler), fn = std::move(fn),
                              work = std::move(work)]() mutable {
            std::exception_ptr error;
            try {
              fn();
            } catch (...) {
              error = std::current_exception();
            }
            auto ex = asio::get_associated_executor(handler);
            asio::dispatch(
                ex, [handler = std::move(handler), error]() mutable { std::move(handler)(error); });
          });
        },
        asio::use_awaitable, std::move(f));
  } else {
    return asio::async_initiate<const asio::use_awaitable_t<>&, void(std::exception_ptr, R)>(
        [target](auto handler, F fn) {
          auto work = asio::make_work_guard(asio::get_associated_executor(handler));
          asio::post(target, [handler = std::move(handler), fn = std::move(fn),
                              work = std::move(work)]() mutable {
            std::exception_ptr error;
            std::optional<R> result;
            try {
              result.emplace(fn());
            } catch (...) {
              error = std::current_exception();
            }
            auto ex = asio::get_associated_executor(handler);
            asio::dispatch(
                ex, [handler = std::move(handler), error, result = std::move(result)]() mutable {
                  std::move(handler)(error, result ? std::move(*result) : R{});
                });
          });
        },
        asio::use_awaitable, std::move(f));
  }
}

}  // namespace chat
