package io.kiln.deploy.server;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;

/** Request bodies to rows of features and predictions back to bodies: SageMaker JSON/CSV and OIP v2. */
public final class Payloads {
  static final ObjectMapper JSON = new ObjectMapper();
  private static final Set<String> NUMERIC = Set.of("UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32",
      "INT64", "FP16", "FP32", "FP64");

  private Payloads() {}

  static boolean isCsv(String contentType) {
    return contentType != null && contentType.startsWith("text/csv");
  }

  /** {@code /invocations}: CSV lines, or JSON {@code {"instances": [[..], ..]}}, {@code [[..], ..]} or one row {@code [..]}. */
  static float[][] parseInvocation(byte[] body, String contentType) {
    if (body.length == 0) throw ServeException.badRequest("empty request body");
    if (isCsv(contentType)) return parseCsv(new String(body, StandardCharsets.UTF_8));
    float[][] plain = plainRows(body);
    if (plain != null) return plain;
    JsonNode n = readJson(body); // the general case, and every error message
    JsonNode rows = n.isObject() ? n.get("instances") : n;
    if (rows == null) throw ServeException.badRequest("JSON body needs an \"instances\" array (e.g. {\"instances\": [[1.0, 2.0]]})");
    if (!rows.isArray() || rows.isEmpty()) throw ServeException.badRequest("\"instances\" must be a non-empty array");
    if (!rows.get(0).isArray() && !rows.get(0).isObject()) return new float[][] {row(rows, 0)};
    float[][] out = new float[rows.size()][];
    for (int i = 0; i < out.length; i++) {
      JsonNode r = rows.get(i);
      if (r.isObject() && r.has("features")) r = r.get("features"); // SageMaker built-ins' {"features": [..]}
      if (!r.isArray()) throw ServeException.badRequest("instance " + i + " is not an array of numbers");
      out[i] = row(r, i);
    }
    return out;
  }

  /**
   * The common shapes ({@code {"instances": [[..], ..]}}, {@code [[..], ..]}, {@code [..]}: numbers
   * only) read with the streaming parser, without building a tree (W4's hot path: a third of the time
   * and far less garbage for a 784-number row). Null for anything else, malformed input included: the
   * tree parser then gives the same answer, or the error message, as for any other body.
   */
  static float[][] plainRows(byte[] body) {
    try (JsonParser p = JSON.getFactory().createParser(body)) {
      JsonToken t = p.nextToken();
      if (t == JsonToken.START_OBJECT) {
        float[][] rows = null;
        while ((t = p.nextToken()) == JsonToken.FIELD_NAME) {
          String field = p.currentName();
          t = p.nextToken();
          if (!field.equals("instances")) {
            p.skipChildren();
          } else {
            if (rows != null || t != JsonToken.START_ARRAY) return null; // a repeated key: the tree keeps the last
            rows = arrayRows(p);
            if (rows == null) return null;
          }
        }
        return t == JsonToken.END_OBJECT ? rows : null;
      }
      return t == JsonToken.START_ARRAY ? arrayRows(p) : null;
    } catch (IOException | RuntimeException e) {
      return null;
    }
  }

  /** After the {@code [} of the instances: {@code [..], ..]} (rows) or {@code n, ..]} (one row); null otherwise. */
  private static float[][] arrayRows(JsonParser p) throws IOException {
    JsonToken t = p.nextToken();
    if (t == JsonToken.START_ARRAY) {
      List<float[]> rows = new ArrayList<>(4);
      float[] buf = new float[64];
      while (t == JsonToken.START_ARRAY) {
        int n = 0;
        while ((t = p.nextToken()) != JsonToken.END_ARRAY) {
          if (n == buf.length) buf = java.util.Arrays.copyOf(buf, n * 2);
          if (!number(p, t, buf, n++)) return null;
        }
        rows.add(java.util.Arrays.copyOf(buf, n));
        t = p.nextToken();
      }
      return t == JsonToken.END_ARRAY ? rows.toArray(new float[0][]) : null;
    }
    float[] buf = new float[64];
    int n = 0;
    for (; t != JsonToken.END_ARRAY; t = p.nextToken()) {
      if (n == buf.length) buf = java.util.Arrays.copyOf(buf, n * 2);
      if (!number(p, t, buf, n++)) return null;
    }
    return n == 0 ? null : new float[][] {java.util.Arrays.copyOf(buf, n)};
  }

  /** Stores the current number as the tree's {@code floatValue()} would; false when it is not a plain number. */
  private static boolean number(JsonParser p, JsonToken t, float[] buf, int i) throws IOException {
    if (t == JsonToken.VALUE_NUMBER_INT) {
      switch (p.getNumberType()) {
        case INT -> buf[i] = p.getIntValue();
        case LONG -> buf[i] = p.getLongValue();
        default -> {
          return false;
        }
      }
      return true;
    }
    if (t == JsonToken.VALUE_NUMBER_FLOAT) {
      buf[i] = (float) p.getDoubleValue(); // as the tree: a double, then float
      return true;
    }
    return false;
  }

  private static float[] row(JsonNode r, int index) {
    float[] v = new float[r.size()];
    for (int j = 0; j < v.length; j++) {
      JsonNode x = r.get(j);
      if (!x.isNumber()) throw ServeException.badRequest("instance " + index + ", value " + j + " is not a number: " + x);
      v[j] = x.floatValue();
    }
    return v;
  }

  static float[][] parseCsv(String text) {
    List<float[]> rows = new ArrayList<>();
    String[] lines = text.split("\r?\n");
    for (int i = 0; i < lines.length; i++) {
      String line = lines[i].trim();
      if (line.isEmpty()) continue;
      String[] cells = line.split(",", -1);
      float[] r = new float[cells.length];
      for (int j = 0; j < cells.length; j++) {
        String c = cells[j].trim();
        try {
          r[j] = c.isEmpty() ? Float.NaN : Float.parseFloat(c);
        } catch (NumberFormatException e) {
          throw ServeException.badRequest("CSV line " + (i + 1) + ", column " + (j + 1) + " is not a number: '" + c + "'");
        }
      }
      rows.add(r);
    }
    if (rows.isEmpty()) throw ServeException.badRequest("CSV body has no rows");
    return rows.toArray(new float[0][]);
  }

  /** The response to {@code /invocations} in {@code accept} (JSON unless text/csv). */
  static byte[] formatInvocation(float[][] out, List<String> names, boolean csv) {
    if (csv) {
      StringBuilder sb = new StringBuilder();
      for (float[] r : out) {
        for (int j = 0; j < r.length; j++) {
          if (j > 0) sb.append(',');
          sb.append(r[j]);
        }
        sb.append('\n');
      }
      return sb.toString().getBytes(StandardCharsets.UTF_8);
    }
    ObjectNode o = JSON.createObjectNode();
    ArrayNode preds = o.putArray("predictions");
    for (float[] r : out) {
      ArrayNode a = preds.addArray();
      for (float v : r) a.add(v);
    }
    if (!names.isEmpty()) {
      ArrayNode n = o.putArray("output_names");
      names.forEach(n::add);
    }
    return bytes(o);
  }

  /** OIP v2 infer request: the first input, shape [n, w] (or [w]: one row), numeric datatype, flat or nested data. */
  static float[][] parseV2(byte[] body) {
    JsonNode n = readJson(body);
    JsonNode inputs = n.get("inputs");
    if (inputs == null || !inputs.isArray() || inputs.isEmpty()) throw ServeException.badRequest("\"inputs\" must be a non-empty array");
    if (inputs.size() > 1) throw ServeException.badRequest("the model takes one input tensor; got " + inputs.size());
    JsonNode in = inputs.get(0);
    String dt = in.path("datatype").asText("");
    if (!NUMERIC.contains(dt)) throw ServeException.badRequest("input datatype '" + dt + "' is not served (numeric: " + NUMERIC + ")");
    JsonNode shape = in.get("shape");
    if (shape == null || !shape.isArray() || shape.isEmpty() || shape.size() > 2) {
      throw ServeException.badRequest("input \"shape\" must be [rows, features] or [features]");
    }
    long rows = shape.size() == 2 ? shape.get(0).asLong() : 1;
    long cols = shape.get(shape.size() - 1).asLong();
    if (rows <= 0 || cols <= 0 || rows * cols > 50_000_000) throw ServeException.badRequest("invalid input shape " + shape);
    float[] flat = new float[(int) (rows * cols)];
    int[] k = {0};
    flatten(in.get("data"), flat, k);
    if (k[0] != flat.length) throw ServeException.badRequest("input data has " + k[0] + " values; shape " + shape + " needs " + flat.length);
    float[][] out = new float[(int) rows][(int) cols];
    for (int i = 0; i < rows; i++) System.arraycopy(flat, (int) (i * cols), out[i], 0, (int) cols);
    return out;
  }

  private static void flatten(JsonNode d, float[] flat, int[] k) {
    if (d == null) throw ServeException.badRequest("input has no \"data\"");
    if (d.isArray()) {
      for (JsonNode x : d) flatten(x, flat, k);
    } else if (d.isNumber()) {
      if (k[0] >= flat.length) throw ServeException.badRequest("input data has more values than its shape");
      flat[k[0]++] = d.floatValue();
    } else {
      throw ServeException.badRequest("input data value is not a number: " + d);
    }
  }

  static byte[] formatV2(String model, String id, float[][] out) {
    ObjectNode o = JSON.createObjectNode();
    o.put("model_name", model);
    if (id != null) o.put("id", id);
    ObjectNode t = o.putArray("outputs").addObject();
    t.put("name", "output0");
    t.putArray("shape").add(out.length).add(out.length == 0 ? 0 : out[0].length);
    t.put("datatype", "FP32");
    ArrayNode data = t.putArray("data");
    for (float[] r : out) for (float v : r) data.add(v);
    return bytes(o);
  }

  static String v2Id(byte[] body) {
    try {
      JsonNode id = JSON.readTree(body).get("id");
      return id == null ? null : id.asText();
    } catch (IOException e) {
      return null;
    }
  }

  static byte[] error(String message) {
    ObjectNode o = JSON.createObjectNode();
    o.put("error", message);
    return bytes(o);
  }

  static byte[] bytes(Object o) {
    try {
      return JSON.writeValueAsBytes(o);
    } catch (IOException e) {
      throw new IllegalStateException(e);
    }
  }

  private static JsonNode readJson(byte[] body) {
    try {
      JsonNode n = JSON.readTree(body);
      if (n == null) throw ServeException.badRequest("empty JSON body");
      return n;
    } catch (IOException e) {
      throw ServeException.badRequest("malformed JSON: " + (e instanceof com.fasterxml.jackson.core.JsonProcessingException j ? j.getOriginalMessage() : e.getMessage()));
    }
  }
}
