package io.kiln.deploy.server;

import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;

/** Counters and recent load (cold start) times, shown by {@code GET /metrics}. */
public final class ServeMetrics {
  final AtomicLong requests = new AtomicLong();
  final AtomicLong errors4xx = new AtomicLong();
  final AtomicLong errors5xx = new AtomicLong();
  final AtomicLong throttled = new AtomicLong();
  final AtomicLong loads = new AtomicLong();
  final AtomicLong loadFailures = new AtomicLong();
  final AtomicLong evictions = new AtomicLong();
  final AtomicLong idleUnloads = new AtomicLong();
  final AtomicLong captured = new AtomicLong();
  private final long[] recentLoads = new long[1024]; // ring of model load times, ms
  private long loadCount;
  private volatile long lastColdStartMs = -1;

  synchronized void loaded(long ms) {
    loads.incrementAndGet();
    recentLoads[(int) (loadCount++ % recentLoads.length)] = ms;
  }

  void loadFailed() {
    loadFailures.incrementAndGet();
  }

  void evicted() {
    evictions.incrementAndGet();
  }

  void unloadedIdle() {
    idleUnloads.incrementAndGet();
  }

  /** A request that waited for its model to load: the whole wait, as the caller saw it. */
  void coldStart(long ms) {
    lastColdStartMs = ms;
  }

  synchronized Map<String, Object> snapshot() {
    Map<String, Object> m = new LinkedHashMap<>();
    m.put("requests", requests.get());
    m.put("errors_4xx", errors4xx.get());
    m.put("errors_5xx", errors5xx.get());
    m.put("throttled_429", throttled.get());
    m.put("model_loads", loads.get());
    m.put("model_load_failures", loadFailures.get());
    m.put("evictions", evictions.get());
    m.put("idle_unloads", idleUnloads.get());
    m.put("captured", captured.get());
    m.put("last_cold_start_ms", lastColdStartMs);
    int n = (int) Math.min(loadCount, recentLoads.length);
    if (n > 0) {
      long[] s = Arrays.copyOf(recentLoads, n);
      Arrays.sort(s);
      m.put("load_ms_p50", s[(n - 1) / 2]);
      m.put("load_ms_p99", s[(int) Math.ceil(0.99 * n) - 1]);
      m.put("load_ms_max", s[n - 1]);
    }
    return m;
  }
}
