package io.kiln.deploy.server;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.kiln.deploy.predictor.Predictor;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One serving process's HTTP server. Routes: see docs/serving.md. Every request needs {@code
 * Authorization: Bearer <token>}; at most {@code maxConcurrency} requests are in flight, the rest get
 * 429 at once (no queue, so latency stays bounded and callers can back off).
 *
 * <p>Transport: {@link HttpTransport} (Netty, epoll, one event loop per core); the routing ({@link
 * Router}, {@link V2}, {@link Payloads}) sees only {@link ServeRequest} / {@link ServeResponse}.
 *
 * <p>Threads. A prediction of a loaded, cheap model (W4: 0.05-0.1 ms for the W1 MLP) is shorter than
 * two thread hand-offs on a busy machine (wake-up latency of a parked thread is 30 us typically and
 * milliseconds at the tail on 2 loaded cores), so a request is first tried <em>inline</em> on the I/O
 * thread that read it when its body is at most {@link #INLINE_MAX_BODY}. Inline, only quick work may
 * run: the routes that could block (a model load, waiting for another request's load, a store lookup,
 * closing a model) and predictions of a model whose recent predict time is above {@link
 * #INLINE_MAX_PREDICT_NANOS} (or not yet known) throw {@link Offload} before they have any effect, and
 * the request runs again from the start on the predict pool. So a slow model load or a slow model
 * never holds an I/O thread, and other connections' I/O goes on; the price is parsing such a body
 * twice, which is small next to a load.
 */
public final class ModelServer implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(ModelServer.class);
  /** Largest request body (as pekko-http's default before; SageMaker's own limit is 6 MB). */
  static final int MAX_BODY = 8 << 20;
  /** Largest body tried on the I/O thread (the W4 row is 2.8 KB; 64 KiB is some 20 such rows). */
  static final int INLINE_MAX_BODY = 64 << 10;
  /** A model predicts on the I/O thread only while its moving-average predict time is below this. */
  static final long INLINE_MAX_PREDICT_NANOS = 1_000_000;
  private final ServerOptions opts;
  private final ModelCache cache;
  private final ServeMetrics metrics = new ServeMetrics();
  private final HttpTransport transport;
  private final ExecutorService workers;
  private final ScheduledExecutorService timers;
  private final AtomicInteger inFlight = new AtomicInteger();
  private final byte[] token;
  private final Router router;

  /**
   * Thrown on an I/O thread by a route that cannot be answered quickly there (see the class comment);
   * the server runs the request again on a predict thread. Carries no stack trace: it is control flow.
   */
  static final class Offload extends RuntimeException {
    static final Offload INSTANCE = new Offload();

    private Offload() {
      super("run on a predict thread", null, false, false);
    }
  }

  private ModelServer(ModelSource source, ServerOptions opts) throws Exception {
    this.opts = opts;
    this.token = opts.token().getBytes(StandardCharsets.UTF_8);
    this.cache = new ModelCache(source, opts.memoryBudgetBytes(), opts.maxModels(), metrics);
    this.router = new Router(this);
    this.workers = Executors.newFixedThreadPool(opts.maxConcurrency(), daemon("kiln-serve-predict"));
    this.timers = Executors.newSingleThreadScheduledExecutor(daemon("kiln-serve-timer"));
    try {
      this.transport = new HttpTransport(opts.host(), opts.port(), MAX_BODY, new HttpTransport.Handler() {
        @Override
        public CompletableFuture<ServeResponse> handle(ServeRequest req) {
          return ModelServer.this.handle(req);
        }

        @Override
        public void rejected(int status) {
          metrics.requests.incrementAndGet();
          metrics.errors4xx.incrementAndGet();
        }
      });
    } catch (Exception e) {
      workers.shutdownNow();
      timers.shutdownNow();
      throw e;
    }
    if (opts.idleTimeout() != null) {
      long idle = opts.idleTimeout().toNanos();
      long tick = Math.max(50, Math.min(1000, opts.idleTimeout().toMillis() / 4));
      timers.scheduleWithFixedDelay(() -> cache.unloadIdle(idle), tick, tick, TimeUnit.MILLISECONDS);
    }
    if (opts.capture() != null) {
      timers.scheduleWithFixedDelay(opts.capture()::flush, 1, 1, TimeUnit.SECONDS);
    }
    LOG.debug("serving on {}:{} ({})", opts.host(), transport.port(), transport.kind());
  }

  /** Starts a server for {@code source}; it listens when this returns. */
  public static ModelServer start(ModelSource source, ServerOptions opts) throws Exception {
    return new ModelServer(source, opts);
  }

  public int port() {
    return transport.port();
  }

  public ModelCache cache() {
    return cache;
  }

  ServeMetrics metrics() {
    return metrics;
  }

  ServerOptions options() {
    return opts;
  }

  /** Called on an I/O thread: answers now when it can (see the class comment), else on the predict pool. */
  private CompletableFuture<ServeResponse> handle(ServeRequest req) {
    metrics.requests.incrementAndGet();
    String auth = req.header("Authorization");
    if (auth == null || !authorized(auth)) {
      return done(ServeResponse.error(401, auth == null
          ? "missing bearer token: send 'Authorization: Bearer <token>'" : "invalid bearer token"));
    }
    if (inFlight.incrementAndGet() > opts.maxConcurrency()) {
      inFlight.decrementAndGet();
      metrics.throttled.incrementAndGet();
      return done(ServeResponse.error(429, "too many requests in flight (limit " + opts.maxConcurrency()
          + "); retry later"));
    }
    if (req.body().length <= INLINE_MAX_BODY) {
      ServeResponse r = safely(req, true);
      if (r != null) {
        inFlight.decrementAndGet();
        return done(r);
      }
    }
    try {
      return CompletableFuture.supplyAsync(() -> safely(req, false), workers)
          .whenComplete((x, t) -> inFlight.decrementAndGet());
    } catch (RejectedExecutionException e) { // closing
      inFlight.decrementAndGet();
      return done(ServeResponse.error(503, "the server is shutting down"));
    }
  }

  /** The answer to {@code req}, errors included; null when it must run off the I/O thread ({@code inline}). */
  private ServeResponse safely(ServeRequest req, boolean inline) {
    try {
      ServeResponse res = router.route(req, inline);
      if (res.status() >= 500) metrics.errors5xx.incrementAndGet();
      else if (res.status() >= 400) metrics.errors4xx.incrementAndGet();
      return res;
    } catch (Offload o) {
      if (inline) return null;
      throw new IllegalStateException("offload off the I/O thread", o); // a bug: nothing throws it there
    } catch (ServeException e) {
      if (e.status() >= 500) metrics.errors5xx.incrementAndGet();
      else metrics.errors4xx.incrementAndGet();
      return ServeResponse.error(e.status(), e.getMessage());
    } catch (IllegalArgumentException e) { // the predictor refused the input (e.g. wrong width)
      metrics.errors4xx.incrementAndGet();
      return ServeResponse.error(400, e.getMessage());
    } catch (Exception e) {
      metrics.errors5xx.incrementAndGet();
      LOG.warn("{} {} failed", req.method(), req.path(), e);
      return ServeResponse.error(500, e.getClass().getSimpleName() + ": " + e.getMessage());
    }
  }

  /**
   * Predicts with model {@code name}; adds the cold-start header when the request waited for a load.
   * {@code inline}: throws {@link Offload} unless the model is loaded and its predictions are quick.
   */
  Result predict(String name, float[][] rows, boolean inline) throws Exception {
    ModelCache.Lease lease = inline ? cache.acquireIfLoaded(name) : cache.acquire(name);
    if (lease == null) throw Offload.INSTANCE;
    try (lease) {
      long typical = lease.typicalPredictNanos();
      if (inline && (typical < 0 || typical > INLINE_MAX_PREDICT_NANOS)) throw Offload.INSTANCE;
      if (lease.coldStartMillis() > 0) metrics.coldStart(lease.coldStartMillis());
      Predictor p = lease.predictor();
      long t0 = System.nanoTime();
      float[][] out = p.predict(rows);
      lease.recordPredict(System.nanoTime() - t0);
      return new Result(out, p, lease.coldStartMillis());
    }
  }

  record Result(float[][] out, Predictor predictor, long coldStartMillis) {}

  /** Data capture of one prediction, when enabled and sampled. */
  void capture(String model, String inType, byte[] in, String outType, byte[] out) {
    DataCapture c = opts.capture();
    if (c != null && c.sample()) {
      c.record(model, inType, in, outType, out);
      metrics.captured.incrementAndGet();
    }
  }

  ObjectNode metricsJson() {
    ObjectNode o = Payloads.JSON.valueToTree(metrics.snapshot());
    o.put("in_flight", inFlight.get() - 1);
    o.put("max_concurrency", opts.maxConcurrency());
    o.put("loaded_models", cache.loadedCount());
    o.put("loaded_bytes", cache.usedBytes());
    o.put("memory_budget_bytes", opts.memoryBudgetBytes());
    o.put("max_models", opts.maxModels());
    o.put("idle_timeout_ms", opts.idleTimeout() == null ? -1 : opts.idleTimeout().toMillis());
    return o;
  }

  /** Constant time in the token's length, whatever the header holds. */
  private boolean authorized(String header) {
    if (!header.startsWith("Bearer ")) return false;
    return MessageDigest.isEqual(token, header.substring(7).trim().getBytes(StandardCharsets.UTF_8));
  }

  static ServeResponse withCold(ServeResponse r, long coldMs) {
    return coldMs > 0 ? r.withHeader("X-Kiln-Cold-Start-Ms", Long.toString(coldMs)) : r;
  }

  private static CompletableFuture<ServeResponse> done(ServeResponse r) {
    return CompletableFuture.completedFuture(r);
  }

  private static java.util.concurrent.ThreadFactory daemon(String name) {
    AtomicInteger n = new AtomicInteger();
    return r -> {
      Thread t = new Thread(r, name + "-" + n.incrementAndGet());
      t.setDaemon(true);
      return t;
    };
  }

  /**
   * Graceful: stops accepting connections, waits (up to 10 s) for the requests in flight to be
   * answered, flushes data capture, then closes the connections and unloads the models.
   */
  @Override
  public void close() {
    transport.stopAccepting();
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
    while (inFlight.get() > 0 && System.nanoTime() < deadline) {
      try {
        Thread.sleep(5);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        break;
      }
    }
    timers.shutdownNow();
    if (opts.capture() != null) opts.capture().flush();
    workers.shutdown();
    try {
      workers.awaitTermination(10, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    transport.close(); // writes what is queued, then closes the connections
    cache.close();
  }
}
