package io.kiln.deploy.server;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.kiln.deploy.predictor.Predictor;

/**
 * Maps a request (body already read) to a response. Transport-neutral: {@link ServeRequest} in,
 * {@link ServeResponse} out.
 *
 * <p>{@code inline} is true when the caller is an I/O thread (see {@link ModelServer}): then only
 * what is known to be quick may run, and any route that could block (a model load, a store lookup)
 * throws {@link ModelServer.Offload} before it has any effect, so that the server runs it again on a
 * predict thread.
 */
final class Router {
  static final String TARGET = "X-Kiln-Target-Model";
  static final String SAGEMAKER_TARGET = "X-Amzn-SageMaker-Target-Model";
  private final ModelServer server;

  Router(ModelServer server) {
    this.server = server;
  }

  ServeResponse route(ServeRequest req, boolean inline) throws Exception {
    String path = req.path();
    boolean get = req.isGet();
    boolean post = req.isPost();
    if (post && path.equals("/invocations")) return invocations(target(req), req, inline);
    if (get && path.equals("/metrics")) return ServeResponse.json(200, Payloads.bytes(server.metricsJson()));
    if (get && path.equals("/ping")) return ping(inline);
    String[] seg = segments(path);
    if (seg[0].equals("models")) return models(seg, req, get, post, inline);
    if (seg[0].equals("v2")) return V2.route(server, seg, req, get, post, inline);
    throw ServeException.notFound("no route " + req.method() + " " + path
        + " (GET /ping, POST /invocations, POST /models/{name}/invoke, /v2/..., GET /metrics)");
  }

  /** {@code /a/b/} to {@code [a, b]} ({@code [""]} for {@code /}). */
  static String[] segments(String path) {
    int from = 0;
    int to = path.length();
    while (from < to && path.charAt(from) == '/') from++;
    while (to > from && path.charAt(to - 1) == '/') to--;
    return path.substring(from, to).split("/");
  }

  private ServeResponse ping(boolean inline) {
    // ready = able to answer: a single model is found (loaded or loadable on demand); a multi-model server always
    String d = server.cache().source().defaultModel();
    if (d != null) {
      if (inline) throw ModelServer.Offload.INSTANCE; // locate may reach a remote store
      try {
        server.cache().source().locate(d);
      } catch (Exception e) {
        return ServeResponse.error(503, "model not available: " + e.getMessage());
      }
    }
    return ServeResponse.json(200, "{\"status\":\"ready\"}");
  }

  private String target(ServeRequest req) {
    String t = req.header(TARGET);
    if (t == null) t = req.header(SAGEMAKER_TARGET);
    if (t != null) return t;
    String d = server.cache().source().defaultModel();
    if (d == null) throw ServeException.badRequest("multi-model endpoint: name the model in header " + TARGET
        + " (or " + SAGEMAKER_TARGET + ") or POST /models/{name}/invoke");
    return d;
  }

  private ServeResponse invocations(String model, ServeRequest req, boolean inline) throws Exception {
    String contentType = req.contentType();
    float[][] rows = Payloads.parseInvocation(req.body(), contentType);
    String accept = req.header("Accept");
    boolean csvOut = Payloads.isCsv(accept != null ? accept : contentType);
    ModelServer.Result r = server.predict(model, rows, inline);
    byte[] out = Payloads.formatInvocation(r.out(), r.predictor().outputNames(), csvOut);
    server.capture(model, contentType, req.body(), csvOut ? "text/csv" : "application/json", out);
    return ModelServer.withCold(ServeResponse.of(200, csvOut ? ServeResponse.CSV : ServeResponse.JSON, out),
        r.coldStartMillis());
  }

  /** /models (list), /models/{name}/invoke, POST /models/{name}/load (409 when loaded), DELETE /models/{name}. */
  private ServeResponse models(String[] seg, ServeRequest req, boolean get, boolean post, boolean inline)
      throws Exception {
    if (seg.length == 3 && post && seg[2].equals("invoke")) return invocations(seg[1], req, inline);
    if (inline) throw ModelServer.Offload.INSTANCE; // loads, unloads (closing a model) and listings: predict threads
    ModelCache cache = server.cache();
    if (seg.length == 1 && get) {
      ObjectNode o = Payloads.JSON.createObjectNode();
      cache.loadedNames().forEach(o.putArray("loaded")::add);
      return ServeResponse.json(200, Payloads.bytes(o));
    }
    if (seg.length == 3 && post && seg[2].equals("load")) {
      if (cache.isLoaded(seg[1])) throw new ServeException(409, "model '" + seg[1] + "' is already loaded");
      try (ModelCache.Lease l = cache.acquire(seg[1])) {
        Predictor p = l.predictor();
        return ServeResponse.json(200, "{\"model\":\"" + seg[1] + "\",\"type\":\"" + p.type() + "\",\"load_ms\":"
            + l.coldStartMillis() + "}");
      }
    }
    if (seg.length == 2 && req.method().equals("DELETE")) {
      if (!cache.unload(seg[1])) throw ServeException.notFound("model '" + seg[1] + "' is not loaded");
      return ServeResponse.json(200, "{\"unloaded\":true}");
    }
    throw ServeException.notFound("no route " + req.method() + " " + req.path());
  }
}
