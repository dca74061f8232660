package io.kiln.deploy.server;

import io.kiln.deploy.predictor.Predictor;
import io.kiln.deploy.predictor.PredictorLoader;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Loaded models by name: loaded on first use (one load per name however many requests wait for it),
 * evicted least-recently-used when the estimated bytes (the model files' sizes) or the count pass the
 * budget, unloaded when idle longer than the idle timeout (serverless: scale to zero).
 *
 * <p>A request holds a {@link Lease}; an evicted model that is still in use is closed when its last
 * lease ends, so eviction never fails a request (memory may pass the budget by the models in use).
 */
public final class ModelCache implements AutoCloseable {
  private final ModelSource source;
  private final long budgetBytes;
  private final int maxModels;
  private final LinkedHashMap<String, Entry> lru = new LinkedHashMap<>(16, 0.75f, true);
  private final ConcurrentHashMap<String, CompletableFuture<Entry>> loading = new ConcurrentHashMap<>();
  private final ServeMetrics metrics;
  private long usedBytes;

  public ModelCache(ModelSource source, long budgetBytes, int maxModels, ServeMetrics metrics) {
    this.source = source;
    this.budgetBytes = budgetBytes;
    this.maxModels = maxModels;
    this.metrics = metrics;
  }

  static final class Entry {
    final String name;
    final Predictor predictor;
    final long bytes;
    final long loadMillis;
    int users;
    boolean evicted;
    long lastUsed = System.nanoTime();
    /** A moving average of this model's predict time (ns); -1 until its first predict. Racy updates are fine. */
    volatile long predictNanos = -1;

    Entry(String name, Predictor predictor, long bytes, long loadMillis) {
      this.name = name;
      this.predictor = predictor;
      this.bytes = bytes;
      this.loadMillis = loadMillis;
    }
  }

  /** A model in use by one request; {@link #coldStartMillis} &gt; 0 when the request waited for its load. */
  public final class Lease implements AutoCloseable {
    private final Entry e;
    private final long coldStartMillis;
    private boolean closed;

    Lease(Entry e, long coldStartMillis) {
      this.e = e;
      this.coldStartMillis = coldStartMillis;
    }

    public Predictor predictor() {
      return e.predictor;
    }

    public long coldStartMillis() {
      return coldStartMillis;
    }

    /** The model's recent predict time (a moving average, ns), or -1 when it has not predicted yet. */
    public long typicalPredictNanos() {
      return e.predictNanos;
    }

    /** Adds one predict's duration to the model's moving average (weight 1/8). */
    public void recordPredict(long nanos) {
      long avg = e.predictNanos;
      e.predictNanos = avg < 0 ? nanos : avg + (nanos - avg) / 8;
    }

    @Override
    public void close() {
      boolean free;
      synchronized (ModelCache.this) {
        if (closed) return;
        closed = true;
        e.users--;
        e.lastUsed = System.nanoTime();
        free = e.evicted && e.users == 0;
      }
      if (free) e.predictor.close();
    }
  }

  /** The model {@code name} if it is loaded now, else null: never loads, never waits for a load. */
  public synchronized Lease acquireIfLoaded(String name) {
    Entry e = lru.get(name);
    if (e == null) return null;
    e.users++;
    return new Lease(e, 0);
  }

  /** The model {@code name}, loading it when needed. Throws {@link ServeException} (404, 507) or the load failure. */
  public Lease acquire(String name) throws Exception {
    long t0 = System.nanoTime();
    while (true) {
      Lease loaded = acquireIfLoaded(name);
      if (loaded != null) return loaded;
      CompletableFuture<Entry> mine = new CompletableFuture<>();
      CompletableFuture<Entry> f = loading.putIfAbsent(name, mine);
      if (f == null) {
        f = mine;
        load(name, mine); // as the loader, this thread's lease is counted in the entry it inserts
        Entry e = join(mine);
        return new Lease(e, Math.max(1, (System.nanoTime() - t0) / 1_000_000));
      }
      Entry e = join(f);
      synchronized (this) {
        if (e.evicted) continue; // evicted between its load and this request: load again
        e.users++;
      }
      return new Lease(e, Math.max(1, (System.nanoTime() - t0) / 1_000_000));
    }
  }

  private void load(String name, CompletableFuture<Entry> mine) {
    try {
      synchronized (this) {
        Entry e = lru.get(name); // loaded by a request that finished between our miss and putIfAbsent
        if (e != null) {
          e.users++;
          mine.complete(e);
          return;
        }
      }
      Path path = source.locate(name);
      long bytes = PredictorLoader.estimateBytes(path);
      if (bytes > budgetBytes) {
        throw new ServeException(507, "model '" + name + "' needs about " + bytes + " bytes; the memory budget is "
            + budgetBytes);
      }
      long t = System.nanoTime();
      Predictor p = PredictorLoader.load(path);
      long ms = (System.nanoTime() - t) / 1_000_000;
      Entry e = new Entry(name, p, bytes, ms);
      e.users = 1;
      List<Entry> toClose;
      synchronized (this) {
        lru.put(name, e);
        usedBytes += bytes;
        toClose = evictOver(e);
      }
      toClose.forEach(x -> x.predictor.close());
      metrics.loaded(ms);
      mine.complete(e);
    } catch (Throwable t) {
      metrics.loadFailed();
      mine.completeExceptionally(t);
    } finally {
      loading.remove(name, mine);
    }
  }

  /** Evicts least-recently-used models (never {@code keep}) until within budget; returns those to close now. */
  private List<Entry> evictOver(Entry keep) {
    List<Entry> close = new ArrayList<>();
    Iterator<Map.Entry<String, Entry>> it = lru.entrySet().iterator();
    while ((usedBytes > budgetBytes || lru.size() > maxModels) && it.hasNext()) {
      Entry e = it.next().getValue();
      if (e == keep) continue;
      it.remove();
      remove(e, close);
      metrics.evicted();
    }
    return close;
  }

  private void remove(Entry e, List<Entry> close) {
    e.evicted = true;
    usedBytes -= e.bytes;
    if (e.users == 0) close.add(e);
  }

  /** Unloads models unused for longer than {@code idleNanos} (serverless scale-to-zero); returns how many. */
  public int unloadIdle(long idleNanos) {
    List<Entry> close = new ArrayList<>();
    long now = System.nanoTime();
    synchronized (this) {
      Iterator<Map.Entry<String, Entry>> it = lru.entrySet().iterator();
      while (it.hasNext()) {
        Entry e = it.next().getValue();
        if (e.users == 0 && now - e.lastUsed > idleNanos) {
          it.remove();
          remove(e, close);
        }
      }
    }
    close.forEach(e -> e.predictor.close());
    close.forEach(e -> metrics.unloadedIdle());
    return close.size();
  }

  /** Unloads {@code name}; false when it was not loaded. */
  public boolean unload(String name) {
    List<Entry> close = new ArrayList<>();
    synchronized (this) {
      Entry e = lru.remove(name);
      if (e == null) return false;
      remove(e, close);
    }
    close.forEach(e -> e.predictor.close());
    return true;
  }

  public synchronized boolean isLoaded(String name) {
    return lru.containsKey(name);
  }

  public synchronized int loadedCount() {
    return lru.size();
  }

  public synchronized long usedBytes() {
    return usedBytes;
  }

  public synchronized List<String> loadedNames() {
    return new ArrayList<>(lru.keySet());
  }

  public ModelSource source() {
    return source;
  }

  private static Entry join(CompletableFuture<Entry> f) throws Exception {
    try {
      return f.join();
    } catch (CompletionException e) {
      Throwable c = e.getCause();
      if (c instanceof Exception x) throw x;
      throw new RuntimeException(c);
    }
  }

  @Override
  public void close() {
    List<Entry> close = new ArrayList<>();
    synchronized (this) {
      for (Entry e : lru.values()) remove(e, close);
      lru.clear();
    }
    close.forEach(e -> e.predictor.close());
  }
}
