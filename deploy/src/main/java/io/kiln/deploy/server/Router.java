package io.kiln.deploy.server;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.kiln.deploy.predictor.Predictor;
import java.nio.charset.StandardCharsets;
import java.util.Optional;
import org.apache.pekko.http.javadsl.model.ContentTypes;
import org.apache.pekko.http.javadsl.model.HttpMethods;
import org.apache.pekko.http.javadsl.model.HttpRequest;
import org.apache.pekko.http.javadsl.model.HttpResponse;

/** Maps a request (body already read) to a response; runs on the server's predict threads. */
final class Router {
  static final String TARGET = "X-Kiln-Target-Model";
  static final String SAGEMAKER_TARGET = "X-Amzn-SageMaker-Target-Model";
  private final ModelServer server;

  Router(ModelServer server) {
    this.server = server;
  }

  HttpResponse route(HttpRequest req, byte[] body, String contentType) throws Exception {
    String path = req.getUri().path();
    String[] seg = path.replaceAll("^/+|/+$", "").split("/");
    boolean get = ModelServer.isGet(req);
    boolean post = req.method().equals(HttpMethods.POST);
    if (get && path.equals("/ping")) return ping();
    if (get && path.equals("/metrics")) return ModelServer.json(200, Payloads.bytes(server.metricsJson()));
    if (post && path.equals("/invocations")) return invocations(target(req), req, body, contentType);
    if (seg[0].equals("models")) return models(seg, req, body, contentType, get, post);
    if (seg[0].equals("v2")) return V2.route(server, seg, req, body, get, post);
    throw ServeException.notFound("no route " + req.method().value() + " " + path
        + " (GET /ping, POST /invocations, POST /models/{name}/invoke, /v2/..., GET /metrics)");
  }

  private HttpResponse ping() {
    // ready = able to answer: a single model is found (loaded or loadable on demand); a multi-model server always
    String d = server.cache().source().defaultModel();
    if (d != null) {
      try {
        server.cache().source().locate(d);
      } catch (Exception e) {
        return ModelServer.json(503, Payloads.error("model not available: " + e.getMessage()));
      }
    }
    return ModelServer.json(200, "{\"status\":\"ready\"}".getBytes(StandardCharsets.UTF_8));
  }

  private String target(HttpRequest req) {
    Optional<String> t = req.getHeader(TARGET).or(() -> req.getHeader(SAGEMAKER_TARGET)).map(h -> h.value());
    if (t.isPresent()) return t.get();
    String d = server.cache().source().defaultModel();
    if (d == null) throw ServeException.badRequest("multi-model endpoint: name the model in header " + TARGET
        + " (or " + SAGEMAKER_TARGET + ") or POST /models/{name}/invoke");
    return d;
  }

  HttpResponse invocations(String model, HttpRequest req, byte[] body, String contentType) throws Exception {
    float[][] rows = Payloads.parseInvocation(body, contentType);
    String accept = req.getHeader("Accept").map(h -> h.value()).orElse(contentType);
    boolean csvOut = Payloads.isCsv(accept);
    ModelServer.Result r = server.predict(model, rows);
    byte[] out = Payloads.formatInvocation(r.out(), r.predictor().outputNames(), csvOut);
    capture(model, contentType, body, csvOut ? "text/csv" : "application/json", out);
    HttpResponse res = HttpResponse.create().withEntity(csvOut ? ContentTypes.TEXT_CSV_UTF8 : ContentTypes.APPLICATION_JSON, out);
    return ModelServer.withCold(res, r.coldStartMillis());
  }

  void capture(String model, String inType, byte[] in, String outType, byte[] out) {
    DataCapture c = server.options().capture();
    if (c != null && c.sample()) {
      c.record(model, inType, in, outType, out);
      server.metrics().captured.incrementAndGet();
    }
  }

  /** /models (list), /models/{name}/invoke, POST /models/{name}/load (409 when loaded), DELETE /models/{name}. */
  private HttpResponse models(String[] seg, HttpRequest req, byte[] body, String ct, boolean get, boolean post) throws Exception {
    ModelCache cache = server.cache();
    if (seg.length == 1 && get) {
      ObjectNode o = Payloads.JSON.createObjectNode();
      cache.loadedNames().forEach(o.putArray("loaded")::add);
      return ModelServer.json(200, Payloads.bytes(o));
    }
    if (seg.length == 3 && post && seg[2].equals("invoke")) return invocations(seg[1], req, body, ct);
    if (seg.length == 3 && post && seg[2].equals("load")) {
      if (cache.isLoaded(seg[1])) throw new ServeException(409, "model '" + seg[1] + "' is already loaded");
      try (ModelCache.Lease l = cache.acquire(seg[1])) {
        Predictor p = l.predictor();
        return ModelServer.json(200, ("{\"model\":\"" + seg[1] + "\",\"type\":\"" + p.type() + "\",\"load_ms\":"
            + l.coldStartMillis() + "}").getBytes(StandardCharsets.UTF_8));
      }
    }
    if (seg.length == 2 && req.method().equals(HttpMethods.DELETE)) {
      if (!cache.unload(seg[1])) throw ServeException.notFound("model '" + seg[1] + "' is not loaded");
      return ModelServer.json(200, "{\"unloaded\":true}".getBytes(StandardCharsets.UTF_8));
    }
    throw ServeException.notFound("no route " + req.method().value() + " " + req.getUri().path());
  }
}
