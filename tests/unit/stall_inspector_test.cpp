// The hang report's bookkeeping (src/detail/stall_inspector.hpp) over a real TCPStore in this process: two
// inspectors stand for two ranks. What a multi-process test cannot make happen on cue: a rank frozen inside the
// very collective the others wait in (its heartbeat stands still), and a store that never answers.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "detail/stall_inspector.hpp"

using accelerate::detail::StallInspector;

namespace {

c10::intrusive_ptr<c10d::Store> server_store() {
  c10d::TCPStoreOptions options;
  options.port = 0;  // any free port
  options.isServer = true;
  options.waitWorkers = false;
  options.timeout = std::chrono::seconds(10);
  return c10::make_intrusive<c10d::TCPStore>("127.0.0.1", options);
}

bool contains(const std::string& text, const std::string& needle) { return text.find(needle) != std::string::npos; }

}  // namespace

TEST(StallInspector, ARankFrozenInsideTheSameCollectiveIsNotResponding) {
  auto store = server_store();
  StallInspector rank0(store->clone(), 0, 2, std::chrono::milliseconds(0), 0);
  StallInspector rank1(store->clone(), 1, 2, std::chrono::milliseconds(0), 0);
  rank0.enter("reduce");
  rank1.enter("reduce");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // both published: rank 1 has arrived
  auto before = rank0.report();
  EXPECT_TRUE(contains(before.text, "rank 1: arrived")) << before.text;
  EXPECT_TRUE(before.missing.empty()) << before.text;
  rank1.stop();  // its threads stop, as in a frozen process: the heartbeat stands still
  std::this_thread::sleep_for(std::chrono::milliseconds(3500));
  auto after = rank0.report();
  EXPECT_TRUE(contains(after.text, "rank 1: NOT RESPONDING: reached #1 reduce")) << after.text;
  EXPECT_TRUE(contains(after.text, "Ranks that cannot be reached: 1.")) << after.text;
  EXPECT_EQ(after.missing, std::vector<int>{1});
}

TEST(StallInspector, AStoreThatStopsAnsweringNamesItsHostAndNeverBlocks) {
  // A store whose every call blocks until released: the report must come back within about a second or two, name
  // rank 0 (the host) as unreachable, and stop() must not hang on the stuck call.
  class FrozenStore final : public c10d::Store {
   public:
    c10::intrusive_ptr<c10d::Store> clone() override { return c10::intrusive_ptr<c10d::Store>::reclaim_copy(this); }
    void set(const std::string&, const std::vector<uint8_t>&) override { block(); }
    std::vector<uint8_t> compareSet(const std::string&, const std::vector<uint8_t>&,
                                    const std::vector<uint8_t>&) override {
      block();
      return {};
    }
    std::vector<uint8_t> get(const std::string&) override {
      block();
      return {};
    }
    int64_t add(const std::string&, int64_t) override {
      block();
      return 0;
    }
    bool deleteKey(const std::string&) override {
      block();
      return false;
    }
    bool check(const std::vector<std::string>&) override {
      block();
      return false;
    }
    int64_t getNumKeys() override {
      block();
      return 0;
    }
    void wait(const std::vector<std::string>&) override { block(); }
    void wait(const std::vector<std::string>&, const std::chrono::milliseconds&) override { block(); }

   private:
    static void block() { std::this_thread::sleep_for(std::chrono::hours(1)); }
  };
  auto frozen = c10::make_intrusive<FrozenStore>();
  auto inspector = std::make_unique<StallInspector>(frozen, 1, 2, std::chrono::milliseconds(0), 0);
  inspector->enter("gather");
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));  // the first publish has been stuck for > 2 s
  const auto start = std::chrono::steady_clock::now();
  auto report = inspector->report();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  EXPECT_TRUE(contains(report.text, "rank 0: UNREACHABLE: it hosts the rendezvous store, which has not answered"))
      << report.text;
  EXPECT_EQ(report.missing, std::vector<int>{0});
  const auto stop_start = std::chrono::steady_clock::now();
  inspector.reset();  // detaches the stuck I/O thread, which keeps the store alive
  EXPECT_LT(std::chrono::steady_clock::now() - stop_start, std::chrono::seconds(3));
}

TEST(StallInspector, DifferentCollectivesAtOneNumberAreADeadlockNamingEachCall) {
  auto store = server_store();
  StallInspector rank0(store->clone(), 0, 2, std::chrono::milliseconds(0), 0);
  StallInspector rank1(store->clone(), 1, 2, std::chrono::milliseconds(0), 0);
  rank0.enter("gather_object", {"save_state", "/src/train.cpp", 61});
  rank1.enter("wait_for_everyone", {"wait_for_everyone", "/src/train.cpp", 64});
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // both published
  // Each reads the other once it has waited a second; a report forces a read at once.
  rank0.report();
  rank1.report();
  for (auto* inspector : {&rank0, &rank1}) {
    const auto d = inspector->deadlock();
    ASSERT_TRUE(d.has_value());
    EXPECT_EQ(d->sequence, 1);
    EXPECT_EQ(d->text,
              "rank 0 is in save_state (train.cpp:61), in its gather_object; rank 1 is in wait_for_everyone "
              "(train.cpp:64)");
    EXPECT_EQ(d->calls, (std::vector<std::string>{"save_state", "wait_for_everyone"}));
  }
}

TEST(StallInspector, ASlowPeerIsNeverADeadlock) {
  auto store = server_store();
  StallInspector rank0(store->clone(), 0, 2, std::chrono::milliseconds(0), 0);
  StallInspector rank1(store->clone(), 1, 2, std::chrono::milliseconds(0), 0);
  for (auto* r : {&rank0, &rank1}) {
    r->enter("reduce", {"reduce", "a.cpp", 1});
    r->leave();
  }
  rank0.enter("wait_for_everyone", {"wait_for_everyone", "a.cpp", 2});  // rank 1 has not got there yet
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  rank0.report();
  EXPECT_FALSE(rank0.deadlock().has_value());
  rank1.enter("wait_for_everyone", {"wait_for_everyone", "a.cpp", 2});  // it arrives: the same collective
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  rank0.report();
  rank1.report();
  EXPECT_FALSE(rank0.deadlock().has_value());
  EXPECT_FALSE(rank1.deadlock().has_value());
}

TEST(StallInspector, APeerThatWentOnPastADifferentCollectiveIsADeadlock) {
  // A broadcast's root can complete alone and go on: its history still shows what it called at this number.
  auto store = server_store();
  StallInspector rank0(store->clone(), 0, 2, std::chrono::milliseconds(0), 0);
  StallInspector rank1(store->clone(), 1, 2, std::chrono::milliseconds(0), 0);
  rank1.enter("broadcast", {"broadcast", "b.cpp", 10});
  rank1.leave();
  rank1.enter("reduce", {"reduce", "b.cpp", 11});
  rank0.enter("gather", {"gather", "b.cpp", 20});
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  rank0.report();
  const auto d = rank0.deadlock();
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->sequence, 1);
  EXPECT_EQ(d->text, "rank 0 is in gather (b.cpp:20); rank 1 called broadcast (b.cpp:10)");
}
