package io.kiln.deploy.server;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.kiln.deploy.predictor.Predictor;

/**
 * Open Inference Protocol v2 (KServe): health, server and model metadata, infer. Versions are
 * accepted and ignored (one version per name). {@code inline}: see {@link Router}.
 */
final class V2 {
  private V2() {}

  static ServeResponse route(ModelServer s, String[] seg, ServeRequest req, boolean get, boolean post, boolean inline)
      throws Exception {
    if (get && seg.length == 1) {
      return ServeResponse.json(200, "{\"name\":\"kiln\",\"version\":\"1\",\"extensions\":[]}");
    }
    if (get && seg.length == 3 && seg[1].equals("health") && (seg[2].equals("live") || seg[2].equals("ready"))) {
      return ServeResponse.json(200, "{\"" + seg[2] + "\":true}");
    }
    if (seg.length < 3 || !seg[1].equals("models")) throw ServeException.notFound("no route " + req.path());
    String name = seg[2];
    int rest = 3;
    if (seg.length >= 5 && seg[3].equals("versions")) rest = 5;
    String op = seg.length > rest ? seg[rest] : "";
    if (seg.length > rest + 1) throw ServeException.notFound("no route " + req.path());
    if (post && op.equals("infer")) {
      byte[] body = req.body();
      float[][] rows = Payloads.parseV2(body);
      ModelServer.Result r = s.predict(name, rows, inline);
      byte[] out = Payloads.formatV2(name, Payloads.v2Id(body), r.out());
      s.capture(name, "application/json", body, "application/json", out);
      return ModelServer.withCold(ServeResponse.json(200, out), r.coldStartMillis());
    }
    if (inline) throw ModelServer.Offload.INSTANCE; // metadata may load the model, ready looks it up
    if (get && op.isEmpty()) return metadata(s, name);
    if (get && op.equals("ready")) {
      s.cache().source().locate(name); // 404 when there is no such model
      return ServeResponse.json(200, "{\"name\":\"" + name + "\",\"ready\":true}");
    }
    throw ServeException.notFound("no route " + req.method() + " " + req.path());
  }

  private static ServeResponse metadata(ModelServer s, String name) throws Exception {
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
      return ServeResponse.json(200, Payloads.bytes(o));
    }
  }
}
