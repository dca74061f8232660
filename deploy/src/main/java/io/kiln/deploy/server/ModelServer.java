package io.kiln.deploy.server;

import com.fasterxml.jackson.databind.node.ObjectNode;
import com.typesafe.config.ConfigFactory;
import io.kiln.deploy.predictor.Predictor;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.pekko.actor.ActorSystem;
import org.apache.pekko.http.javadsl.Http;
import org.apache.pekko.http.javadsl.ServerBinding;
import org.apache.pekko.http.javadsl.model.ContentTypes;
import org.apache.pekko.http.javadsl.model.HttpMethods;
import org.apache.pekko.http.javadsl.model.HttpRequest;
import org.apache.pekko.http.javadsl.model.HttpResponse;
import org.apache.pekko.http.javadsl.model.headers.RawHeader;
import org.apache.pekko.stream.Materializer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One serving process's HTTP server (pekko-http, low-level API: a handler function, no routing DSL,
 * to keep the per-request overhead small). Routes: see docs/serving.md. Every request needs
 * {@code Authorization: Bearer <token>}; at most {@code maxConcurrency} requests are in flight, the
 * rest get 429 at once (no queue, so latency stays bounded and callers can back off).
 */
public final class ModelServer implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(ModelServer.class);
  private final ServerOptions opts;
  private final ModelCache cache;
  private final ServeMetrics metrics = new ServeMetrics();
  private final ActorSystem system;
  private final Materializer mat;
  private final ServerBinding binding;
  private final ExecutorService workers;
  private final ScheduledExecutorService timers;
  private final AtomicInteger inFlight = new AtomicInteger();
  private final byte[] token;
  private final Router router;

  private ModelServer(ModelSource source, ServerOptions opts) throws Exception {
    this.opts = opts;
    this.token = opts.token().getBytes(StandardCharsets.UTF_8);
    this.cache = new ModelCache(source, opts.memoryBudgetBytes(), opts.maxModels(), metrics);
    this.router = new Router(this);
    this.workers = Executors.newFixedThreadPool(opts.maxConcurrency(), daemon("kiln-serve-predict"));
    this.timers = Executors.newSingleThreadScheduledExecutor(daemon("kiln-serve-timer"));
    // provider local: kiln-protocol's reference.conf (on the class path through the worker) makes it cluster
    this.system = ActorSystem.create("kiln-serve", ConfigFactory.parseString(
        "pekko.actor.provider = local\npekko.http.server.request-timeout = 120s\npekko.loglevel = WARNING")
        .withFallback(ConfigFactory.load()));
    this.mat = Materializer.matFromSystem(system);
    this.binding = Http.get(system).newServerAt(opts.host(), opts.port()).bind(this::handle)
        .toCompletableFuture().get(30, TimeUnit.SECONDS);
    if (opts.idleTimeout() != null) {
      long idle = opts.idleTimeout().toNanos();
      long tick = Math.max(50, Math.min(1000, opts.idleTimeout().toMillis() / 4));
      timers.scheduleWithFixedDelay(() -> cache.unloadIdle(idle), tick, tick, TimeUnit.MILLISECONDS);
    }
    if (opts.capture() != null) {
      timers.scheduleWithFixedDelay(opts.capture()::flush, 1, 1, TimeUnit.SECONDS);
    }
  }

  /** Starts a server for {@code source}; it listens when this returns. */
  public static ModelServer start(ModelSource source, ServerOptions opts) throws Exception {
    return new ModelServer(source, opts);
  }

  public int port() {
    return binding.localAddress().getPort();
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

  private CompletionStage<HttpResponse> handle(HttpRequest req) {
    metrics.requests.incrementAndGet();
    var auth = req.getHeader("Authorization");
    if (auth.isEmpty() || !authorized(auth.get().value())) {
      return done(json(401, Payloads.error(auth.isEmpty()
          ? "missing bearer token: send 'Authorization: Bearer <token>'" : "invalid bearer token")));
    }
    if (inFlight.incrementAndGet() > opts.maxConcurrency()) {
      inFlight.decrementAndGet();
      metrics.throttled.incrementAndGet();
      return done(json(429, Payloads.error("too many requests in flight (limit " + opts.maxConcurrency() + "); retry later")));
    }
    CompletionStage<HttpResponse> r;
    try {
      if (req.entity() instanceof org.apache.pekko.http.javadsl.model.HttpEntity.Strict strict) {
        // small bodies arrive whole: skip materializing a stream to collect them (W4's hot path)
        byte[] body = strict.getData().toArray();
        String type = strict.getContentType().toString();
        r = CompletableFuture.supplyAsync(() -> safely(req, body, type), workers);
      } else {
        r = req.entity().toStrict(30_000, mat)
            .thenApplyAsync(e -> safely(req, e.getData().toArray(), e.getContentType().toString()), workers);
      }
    } catch (RuntimeException e) {
      r = done(json(500, Payloads.error(e.toString())));
    }
    return r.whenComplete((x, t) -> inFlight.decrementAndGet());
  }

  private HttpResponse safely(HttpRequest req, byte[] body, String contentType) {
    try {
      HttpResponse res = router.route(req, body, contentType);
      if (res.status().intValue() >= 500) metrics.errors5xx.incrementAndGet();
      else if (res.status().intValue() >= 400) metrics.errors4xx.incrementAndGet();
      return res;
    } catch (ServeException e) {
      if (e.status() >= 500) metrics.errors5xx.incrementAndGet();
      else metrics.errors4xx.incrementAndGet();
      return json(e.status(), Payloads.error(e.getMessage()));
    } catch (IllegalArgumentException e) { // the predictor refused the input (e.g. wrong width)
      metrics.errors4xx.incrementAndGet();
      return json(400, Payloads.error(e.getMessage()));
    } catch (Exception e) {
      metrics.errors5xx.incrementAndGet();
      LOG.warn("{} {} failed", req.method().value(), req.getUri().path(), e);
      return json(500, Payloads.error(e.getClass().getSimpleName() + ": " + e.getMessage()));
    }
  }

  /** Predicts with model {@code name}; adds the cold-start header when the request waited for a load. */
  Result predict(String name, float[][] rows) throws Exception {
    try (ModelCache.Lease lease = cache.acquire(name)) {
      if (lease.coldStartMillis() > 0) metrics.coldStart(lease.coldStartMillis());
      Predictor p = lease.predictor();
      return new Result(p.predict(rows), p, lease.coldStartMillis());
    }
  }

  record Result(float[][] out, Predictor predictor, long coldStartMillis) {}

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

  private boolean authorized(String header) {
    if (!header.startsWith("Bearer ")) return false;
    return MessageDigest.isEqual(token, header.substring(7).trim().getBytes(StandardCharsets.UTF_8));
  }

  static HttpResponse json(int status, byte[] body) {
    return HttpResponse.create().withStatus(status).withEntity(ContentTypes.APPLICATION_JSON, body);
  }

  static HttpResponse withCold(HttpResponse r, long coldMs) {
    return coldMs > 0 ? r.addHeader(RawHeader.create("X-Kiln-Cold-Start-Ms", Long.toString(coldMs))) : r;
  }

  static boolean isGet(HttpRequest r) {
    return r.method().equals(HttpMethods.GET);
  }

  private static CompletionStage<HttpResponse> done(HttpResponse r) {
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

  @Override
  public void close() {
    try {
      binding.unbind().toCompletableFuture().get(10, TimeUnit.SECONDS);
    } catch (Exception e) {
      LOG.debug("unbind: {}", e.toString());
    }
    timers.shutdownNow();
    if (opts.capture() != null) opts.capture().flush();
    workers.shutdown();
    try {
      workers.awaitTermination(10, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    cache.close();
    system.terminate();
  }
}
