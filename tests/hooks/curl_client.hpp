// SPDX-License-Identifier: Apache-2.0
// curl_client.hpp — the libcurl workload both hook tests run: tasklets each doing one
// curl_easy_perform() GET, counting how many transfers are in flight at once (as
// redis_server.hpp's redis_rounds() counts commands).
#pragma once

#include <curl/curl.h>

#include <atomic>
#include <string>
#include <vector>

#include "stackless/stackless.hpp"

namespace stackless_test {

struct curl_result {
  int ok = 0;  // transfers that returned CURLE_OK with the expected body
  int failed = 0;
  int max_in_flight = 0;
};

inline std::size_t curl_append(char* p, std::size_t size, std::size_t n, void* out) {
  static_cast<std::string*>(out)->append(p, size * n);
  return size * n;
}

// curl_transfers() runs `n` tasklets on `sched`, each fetching `url` once with the easy API and
// expecting `body`.
inline curl_result curl_transfers(stackless::scheduler& sched, const std::string& url, int n,
                                  std::string_view body) {
  static const bool ready = curl_global_init(CURL_GLOBAL_DEFAULT) == 0;
  if (!ready) return {0, n, 0};
  std::atomic<int> ok{0}, failed{0}, in_flight{0}, most{0};
  sched.block_on([&] {
    std::vector<stackless::tasklet<void>> ts;
    for (int i = 0; i < n; ++i) {
      ts.push_back(stackless::spawn([&] {
        CURL* h = curl_easy_init();
        if (!h) {
          failed.fetch_add(1);
          return;
        }
        std::string got;
        curl_easy_setopt(h, CURLOPT_URL, url.c_str());
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, curl_append);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &got);
        int now = in_flight.fetch_add(1) + 1;
        int m = most.load();
        while (now > m && !most.compare_exchange_weak(m, now)) {
        }
        CURLcode rc = curl_easy_perform(h);  // connect, send, poll, receive
        in_flight.fetch_sub(1);
        long code = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
        if (rc == CURLE_OK && code == 200 && got == body)
          ok.fetch_add(1);
        else
          failed.fetch_add(1);
        curl_easy_cleanup(h);
      }));
    }
    for (auto& t : ts) t.join();
  });
  return {ok.load(), failed.load(), most.load()};
}

}  // namespace stackless_test
