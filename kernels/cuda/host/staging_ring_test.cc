#include "kernels/cuda/host/staging_ring.h"

#include <gtest/gtest.h>

#include <vector>

namespace relayout::cuda {
namespace {

TEST(StagingRingTest, HandsOutAlignedSlotsInsideASegment) {
  StagingRing ring(1024, 4);
  EXPECT_EQ(ring.capacity(), 4096u);
  StagingRing::Slot s;
  ASSERT_TRUE(ring.Acquire(10, 16, &s));
  EXPECT_EQ(s.offset, 0u);
  EXPECT_EQ(s.fence_segment, -1);
  EXPECT_EQ(s.wait_segment, -1);
  ASSERT_TRUE(ring.Acquire(100, 16, &s));
  EXPECT_EQ(s.offset, 16u);
  ASSERT_TRUE(ring.Acquire(1, 256, &s));
  EXPECT_EQ(s.offset, 256u);
  ASSERT_TRUE(ring.Acquire(0, 16, &s));
  EXPECT_EQ(s.offset, 272u);
}

TEST(StagingRingTest, FencesTheSegmentItLeavesAndWaitsOnlyALapLater) {
  StagingRing ring(1024, 3);
  StagingRing::Slot s;
  ASSERT_TRUE(ring.Acquire(1000, 16, &s));  // segment 0
  ASSERT_TRUE(ring.Acquire(100, 16, &s));   // does not fit: segment 1
  EXPECT_EQ(s.offset, 1024u);
  EXPECT_EQ(s.fence_segment, 0);
  EXPECT_EQ(s.wait_segment, -1);            // never used before
  ASSERT_TRUE(ring.Acquire(1024, 16, &s));  // segment 2, whole
  EXPECT_EQ(s.offset, 2048u);
  EXPECT_EQ(s.fence_segment, 1);
  EXPECT_EQ(s.wait_segment, -1);
  ASSERT_TRUE(ring.Acquire(1, 16, &s));  // back to segment 0: wait for its fence
  EXPECT_EQ(s.offset, 0u);
  EXPECT_EQ(s.fence_segment, 2);
  EXPECT_EQ(s.wait_segment, 0);
  ASSERT_TRUE(ring.Acquire(1, 16, &s));  // same segment: nothing
  EXPECT_EQ(s.offset, 16u);
  EXPECT_EQ(s.fence_segment, -1);
  EXPECT_EQ(s.wait_segment, -1);
}

// The invariant the plugin relies on: a slot's bytes are never handed out
// again before the fence recorded after them has been waited for.
TEST(StagingRingTest, NoSlotIsReusedBeforeItsFenceIsWaitedFor) {
  StagingRing ring(512, 4);
  struct Live {
    uint64_t begin, end;
    int segment;
  };
  std::vector<Live> live;  // slots whose fence was not yet waited for
  std::vector<bool> fenced(4, false);
  for (int i = 0; i < 5000; ++i) {
    const uint64_t bytes = static_cast<uint64_t>((i * 37) % 300 + 1);
    StagingRing::Slot s;
    ASSERT_TRUE(ring.Acquire(bytes, 16, &s));
    if (s.fence_segment >= 0) fenced[s.fence_segment] = true;
    if (s.wait_segment >= 0) {
      ASSERT_TRUE(fenced[s.wait_segment]);
      fenced[s.wait_segment] = false;
      std::erase_if(live, [&](const Live& l) { return l.segment == s.wait_segment; });
    }
    for (const Live& l : live) {
      ASSERT_TRUE(s.offset + bytes <= l.begin || s.offset >= l.end) << i;
    }
    ASSERT_LE(s.offset + bytes, ring.capacity());
    ASSERT_EQ(s.offset / 512, (s.offset + bytes - 1) / 512);  // inside one segment
    live.push_back({s.offset, s.offset + bytes, static_cast<int>(s.offset / 512)});
  }
}

TEST(StagingRingTest, RefusesWhatCannotFitASegmentUntilReset) {
  StagingRing ring(256, 2);
  StagingRing::Slot s;
  EXPECT_FALSE(ring.Acquire(257, 16, &s));
  ring.Reset(1024, 2);
  ASSERT_TRUE(ring.Acquire(257, 16, &s));
  EXPECT_EQ(s.offset, 0u);
  EXPECT_EQ(ring.capacity(), 2048u);
}

}  // namespace
}  // namespace relayout::cuda
