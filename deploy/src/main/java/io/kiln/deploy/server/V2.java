package io.kiln.deploy.server;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.kiln.deploy.predictor.Predictor;
import org.apache.pekko.http.javadsl.model.HttpRequest;
import org.apache.pekko.http.javadsl.model.HttpResponse;

/** Open Inference Protocol v2 (KServe): health, server and model metadata, infer. Versions are accepted and ignored (one version per name). */
final class V2 {
  private V2() {}

  static HttpResponse route(ModelServer s, String[] seg, HttpRequest req, byte[] body, boolean get, boolean post)
      throws Exception {
    if (get && seg.length == 1) {
      return ModelServer.json(200, "{\"name\":\"kiln\",\"version\":\"1\",\"extensions\":[]}".getBytes());
    }
    if (get && seg.length == 3 && seg[1].equals("health") && (seg[2].equals("live") || seg[2].equals("ready"))) {
      return ModelServer.json(200, ("{\"" + seg[2] + "\":true}").getBytes());
    }
    if (seg.length < 3 || !seg[1].equals("models")) throw ServeException.notFound("no route " + req.getUri().path());
    String name = seg[2];
    int rest = 3;
    if (seg.length >= 5 && seg[3].equals("versions")) rest = 5;
    String op = seg.length > rest ? seg[rest] : "";
    if (seg.length > rest + 1) throw ServeException.notFound("no route " + req.getUri().path());
    if (get && op.isEmpty()) return metadata(s, name);
    if (get && op.equals("ready")) {
      s.cache().source().locate(name); // 404 when there is no such model
      return ModelServer.json(200, ("{\"name\":\"" + name + "\",\"ready\":true}").getBytes());
    }
    if (post && op.equals("infer")) {
      float[][] rows = Payloads.parseV2(body);
      ModelServer.Result r = s.predict(name, rows);
      byte[] out = Payloads.formatV2(name, Payloads.v2Id(body), r.out());
      new Router(s).capture(name, "application/json", body, "application/json", out);
      return ModelServer.withCold(ModelServer.json(200, out), r.coldStartMillis());
    }
    throw ServeException.notFound("no route " + req.method().value() + " " + req.getUri().path());
  }

  private static HttpResponse metadata(ModelServer s, String name) throws Exception {
    try (ModelCache.Lease l = s.cache().acquire(name)) {
      Predictor p = l.predictor();
      ObjectNode o = Payloads.JSON.createObjectNode();
      o.put("name", name);
      o.putArray("versions").add("1");
      o.put("platform", "kiln-" + p.type());
      ObjectNode in = o.putArray("inputs").addObject();
      in.put("name", "input0");
      in.put("datatype", "FP32");
      in.putArray("shape").add(-1).add(p.inputWidth());
      ObjectNode out = o.putArray("outputs").addObject();
      out.put("name", "output0");
      out.put("datatype", "FP32");
      out.putArray("shape").add(-1).add(p.outputNames().isEmpty() ? -1 : p.outputNames().size());
      if (!p.outputNames().isEmpty()) {
        ArrayNode names = out.putArray("column_names");
        p.outputNames().forEach(names::add);
      }
      return ModelServer.json(200, Payloads.bytes(o));
    }
  }
}
